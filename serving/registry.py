"""The model registry as the service sees it: one process resolves the aliases, workers read a file.

`sync()` asks MLflow, for every `tickcast-h<H>`, which version is the champion (and which are
challengers, with their walk-forward scores and the gate's words), puts each champion's LiteRT
artefact + meta.json in a local cache (`model_io.materialize`) and writes everything to
`state.json` atomically. Under gunicorn one watcher process (`python -m serving.registry`, started
by the gunicorn config) does this every `serve_reload_seconds` and at once on SIGUSR1, and
publishes the newest feature rows to `feed.json` every `serve_feed_seconds` (`serving.feed`);
workers only stat those files (MLflow alone would add ~100 MiB and 1.2 s to every worker, Delta
reads ~200 MiB). Without gunicorn
(the Flask test client) the app calls `sync()` in its own process.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

from tickcast import settings
from tickcast.settings import Settings

log = logging.getLogger("tickcast.serving.registry")

STATE = "state.json"
EVENTS_SHOWN = 10     # newest ops.model_events rows per horizon in /v1/models


def run_dir(s: Settings, port: int | None = None) -> Path:
    """Working folder of the service on `port`: registry state, model cache, metrics."""
    return Path(s.data_dir) / "serve" / str(port or s.serve_port)


def cache_dir(s: Settings) -> Path:
    """LiteRT artefacts by name/version, shared by every service of this data dir (immutable)."""
    return Path(s.data_dir) / "serve" / "models"


def _live_scores(s: Settings) -> dict[tuple[str, str], list[dict]]:
    """The newest rolling scores per (model, version) from gold.model_scores, all symbols (`*`)."""
    from tickcast import lake, tables  # deferred: heavy (imports numpy)

    if not lake.exists(tables.MODEL_SCORES, s):
        return {}
    cols = ["batch_id", "computed_at", "model_name", "model_version", "symbol", "window", "n", "brier",
            "accuracy", "climatology_brier", "momentum_brier", "climatology_accuracy", "momentum_accuracy"]
    df = lake.read(tables.MODEL_SCORES, s, columns=cols, filters=[("symbol", "=", "*")]).to_pandas()
    out: dict[tuple[str, str], list[dict]] = {}
    if df.empty:
        return out
    df = df.sort_values("batch_id")
    for (name, ver, window), g in df.groupby(["model_name", "model_version", "window"]):
        r = g.iloc[-1]

        def num(v):
            return None if v is None or v != v else float(v)
        out.setdefault((name, str(ver)), []).append({
            "window": window, "computed_at": r["computed_at"].isoformat(), "n": int(r["n"]),
            "hit_rate": num(r["accuracy"]), "brier": num(r["brier"]),
            "baselines": {"climatology": {"hit_rate": num(r["climatology_accuracy"]),
                                          "brier": num(r["climatology_brier"])},
                          "momentum": {"hit_rate": num(r["momentum_accuracy"]), "brier": num(r["momentum_brier"])}}})
    return out


def _version_info(client, name: str, v: dict, live: dict) -> dict:
    mv = client.get_model_version(name, v["version"])
    t = mv.tags or {}

    def num(x):
        try:
            return float(x)
        except (TypeError, ValueError):
            return None
    return {"version": v["version"], "aliases": v["aliases"], "feature_version": v["feature_version"],
            "training_end": v["training_end"],
            "walk_forward": {"brier": num(v["brier"]), "hit_rate": num(v["accuracy"])},
            "gate": {"result": t.get("gate"), "reason": t.get("gate_reason")},
            "live": live.get((name, v["version"]), [])}


def sync(s: Settings, folder: Path, before_write=None) -> dict:
    """Resolve every registered model's aliases, cache the champions' artefacts, write state.json.

    `before_write(state)` runs before state.json is replaced: the feed publishes the columns a new
    champion needs before any worker can load it."""
    from tickcast import model_io  # deferred: heavy (imports mlflow)

    client = model_io.configure(s)
    try:
        live = _live_scores(s)
        live_error = None
    except Exception as e:      # a table being written: the models still load
        live, live_error = {}, f"{type(e).__name__}: {e}"
    try:
        from tickcast import model_events as events

        recent = events.newest(s, limit=EVENTS_SHOWN * 8)
    except Exception as e:      # being written: the models still load
        recent = []
        log.warning("ops.model_events unreadable: %s: %s", type(e).__name__, e)
    models = {}
    for name in model_io.registered_names(client):
        horizon = int(name[len("tickcast-h"):])
        versions = model_io.versions(client, name)
        champ = next((v for v in versions if model_io.CHAMPION in v["aliases"]), None)
        entry = {"name": name, "horizon": horizon, "champion": None, "folder": None, "error": None,
                 "versions": [v["version"] for v in versions],      # for the V2 version segment
                 "challengers": [_version_info(client, name, v, live) for v in versions
                                 if model_io.CHALLENGER in v["aliases"]][:5]}
        last_move = next((e for e in recent if e["model_name"] == name
                          and e["event"] in ("demotion", "expiry", "promotion", "manual_promotion", "rollback")), None)
        if champ is None and last_move is not None and last_move["event"] in ("demotion", "expiry"):
            entry["error"] = (f"{name} has no champion: v{last_move['model_version']} lost it "
                              f"({last_move['event']}: {last_move['reason']})")
        elif champ is None:
            newest = versions[0] if versions else None
            reason = (client.get_model_version(name, newest["version"]).tags or {}).get("gate_reason") \
                if newest else None
            entry["error"] = (f"{name} has no champion: the gate promoted no version"
                              + (f" (newest v{newest['version']}: {reason})" if reason else ""))
        else:
            entry["champion"] = _version_info(client, name, champ, live)
            try:
                entry["folder"] = str(model_io.materialize(client, name, champ["version"], cache_dir(s),
                                                           warn=log.warning))
                meta = json.loads((Path(entry["folder"]) / "meta.json").read_text())
                entry["features"], entry["feature_version"] = list(meta["features"]), meta["feature_version"]
            except Exception as e:
                entry["error"] = f"{name} v{champ['version']} cannot be served: {type(e).__name__}: {e}"
                log.error("%s", entry["error"])
        entry["events"] = [e for e in recent if e["model_name"] == name][:EVENTS_SHOWN]
        models[str(horizon)] = entry
    state = {"synced_at": time.time(), "pid": os.getpid(), "models": models, "live_scores_error": live_error}
    folder.mkdir(parents=True, exist_ok=True)
    if before_write is not None:
        before_write(state)
    tmp = folder / f".{STATE}.{os.getpid()}"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / STATE)
    return state


def read_state(folder: Path) -> tuple[dict | None, int]:
    """(state, mtime_ns) of the folder's state.json; (None, 0) if there is none yet."""
    p = Path(folder) / STATE
    try:
        st = p.stat()
        return json.loads(p.read_text()), st.st_mtime_ns
    except (FileNotFoundError, json.JSONDecodeError):
        return None, 0


def watch(s: Settings, folder: Path, stop: threading.Event | None = None) -> None:
    """Sync every `serve_reload_seconds`, and at once on SIGUSR1, until SIGTERM/SIGINT (or `stop`);
    publish the feature feed every `serve_feed_seconds` from a thread of its own (a slow MLflow
    read or a one-off conversion must not hold the newest rows back)."""
    from serving.feed import wanted  # deferred: heavy (imports numpy)
    from serving.latest import FeedWriter  # deferred: heavy (imports numpy)

    stop = stop or threading.Event()
    wake = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, lambda *_: wake.set())
        signal.signal(signal.SIGTERM, lambda *_: (stop.set(), wake.set()))
        signal.signal(signal.SIGINT, lambda *_: (stop.set(), wake.set()))
    (folder / "registry.pid").write_text(str(os.getpid()))
    feed = FeedWriter(s, folder)
    first = threading.Event()

    def publish_loop():
        while not first.wait(0.2):      # the first publish carries the first state's columns (sync's hook)
            if stop.is_set():
                return
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                feed.publish()
            except Exception as e:     # e.g. the disk: say so, retry; workers see the feed age
                log.error("feature feed not published: %s: %s", type(e).__name__, e)
            stop.wait(max(0.05, s.serve_feed_seconds - (time.monotonic() - t0)))

    publisher = threading.Thread(target=publish_loop, name="feature-feed", daemon=True)
    publisher.start()
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            sync(s, folder, before_write=lambda state: feed.publish(wanted(state)))
        except Exception as e:     # MLflow unreachable: keep serving what is loaded, say so, retry
            log.error("registry sync failed: %s: %s", type(e).__name__, e)
            (folder / "registry.error").write_text(f"{type(e).__name__}: {e}")
        else:
            (folder / "registry.error").unlink(missing_ok=True)
        first.set()
        wake.wait(max(0.1, s.serve_reload_seconds - (time.monotonic() - t0)))
        wake.clear()
    publisher.join(5)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="tickcast serving: the model registry watcher")
    ap.add_argument("--dir", required=True, type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s registry %(levelname)s %(message)s")
    watch(settings.load(), args.dir)


if __name__ == "__main__":
    main()
