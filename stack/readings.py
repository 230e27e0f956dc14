"""What `up`'s status panel reads: rows per table, the latest prediction and hit rates (delta-rs, no
JVM), and the CPU and memory of the local stack."""
from __future__ import annotations

import time

import psutil

from tickcast import kafka_broker, lake, tables
from tickcast.settings import Settings


def table_rows(s: Settings) -> dict[str, int]:
    """Rows per table from the Delta log's file statistics (delta-rs: no scan, no JVM)."""
    from deltalake import DeltaTable  # deferred: heavy (pyarrow)

    out = {}
    for t in (tables.TICKS, tables.QUARANTINE, tables.BARS, tables.FEATURES, tables.PREDICTIONS):
        try:
            adds = DeltaTable(t.path(s)).get_add_actions(flatten=True)
            out[t.name] = int(sum(adds.column("num_records").to_pylist() or [0]))
        except Exception:  # not created yet (TableNotFoundError) or being written: show 0, not a crash
            out[t.name] = 0
    return out


def prediction_summary(s: Settings) -> str:
    """The latest prediction and the live hit rate vs the baselines (last hour), from delta-rs reads."""
    parts = []
    try:
        if lake.exists(tables.PREDICTIONS, s):
            t = lake.read(tables.PREDICTIONS, s, columns=["symbol", "window_start", "horizon", "model_version",
                                                          "prob_up"]).to_pandas()
            if len(t):
                r = t.sort_values("window_start").iloc[-1]
                parts.append(f"pred {r['symbol']} {r['window_start']:%H:%M} h{r['horizon']} "
                             f"P(up)={r['prob_up']:.3f} v{r['model_version']}")
        if lake.exists(tables.MODEL_SCORES, s):
            m = lake.read(tables.MODEL_SCORES, s, filters=[("symbol", "=", "*"), ("window", "=", "1h")]).to_pandas()
            if len(m):
                last = m[m["computed_at"] == m["computed_at"].max()].sort_values("horizon")
                for _, r in last.iterrows():
                    if r["n"]:
                        parts.append(f"hit h{r['horizon']} {r['accuracy']:.1%} (clim {r['climatology_accuracy']:.1%}, "
                                     f"mom {r['momentum_accuracy']:.1%}, n={r['n']})")
    except Exception:  # a table being written or compacted: skip this refresh, never crash the line
        return ""
    return " | ".join(parts)


class StackMeter:
    """CPU (cores, averaged since the last reading) and resident memory of the local stack."""

    def __init__(self, s: Settings, producer_pid: int, others: list[int] = ()):
        self.psutil = psutil
        self.pids = [psutil.Process().pid, producer_pid, *[p for p in others if p != producer_pid]]
        bpid = kafka_broker._read_pid(s)
        if bpid:
            self.pids.append(bpid)
        self._last = (time.monotonic(), self._cpu())

    def _procs(self):
        seen: dict[int, object] = {}     # by pid: `up`'s own children are also in its recursive children
        for pid in self.pids:
            try:
                p = self.psutil.Process(pid)
                for q in (p, *p.children(recursive=True)):
                    seen.setdefault(q.pid, q)
            except self.psutil.NoSuchProcess:
                pass
        return list(seen.values())

    def _cpu(self) -> float:
        total = 0.0
        for p in self._procs():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except self.psutil.NoSuchProcess:
                pass
        return total

    def describe(self) -> str:
        now, cpu = time.monotonic(), self._cpu()
        t0, c0 = self._last
        cores = (cpu - c0) / (now - t0) if now > t0 and cpu >= c0 else 0.0
        self._last = (now, cpu)
        rss = 0
        for p in self._procs():
            try:
                rss += p.memory_info().rss
            except self.psutil.NoSuchProcess:
                pass
        return f"cpu {cores:.2f} cores, mem {rss / 2**30:.2f} GiB"


LIFECYCLE_WORDS = {"promotion": "promoted", "refusal": "refused by the gate", "demotion": "DEMOTED (live decay)",
                   "expiry": "EXPIRED (max age)", "failed_retrain": "retrain FAILED", "abandoned": "abandoned",
                   "manual_promotion": "promoted by hand", "rollback": "rolled back"}


def lifecycle_summary(s: Settings, retrainer=None) -> str:
    """The newest ops.model_events row per horizon, in words, and whether the retrainer runs."""
    from tickcast import model_events as events

    parts = []
    if retrainer is not None and retrainer.poll() is not None:
        parts.append(f"retrainer not running (exit {retrainer.returncode}; see retrainer.log)")
    try:
        df = events.read(s)
    except Exception:  # being written: nothing this refresh
        return " | ".join(parts)
    for h, g in sorted(df.groupby("horizon"), key=lambda kv: int(kv[0])):
        r = g.iloc[0]
        what = LIFECYCLE_WORDS.get(r["event"], r["event"])
        v = f" v{r['model_version']}" if isinstance(r["model_version"], str) else ""
        line = f"h{int(h)}{v} {what} {r['event_time']:%m-%d %H:%M}"
        if r["event"] in ("failed_retrain", "demotion", "expiry"):
            line += f": {r['reason'][:120]}"
        parts.append(line)
    return " | ".join(parts)


def serving_words(horizon: int, champion: dict | None, newest: dict | None, all_families: tuple[str, ...]) -> str:
    """Which model serves a horizon and why, in words (pure).

    Args:
        champion / newest: the `champion` version's and the newest complete version's `version` and
            tags (`family`, `candidates`, `gate_reason`, `champion_reason`); None when there is none.
        all_families: every candidate family the retrainer fits (training.CANDIDATES).
    """
    def quick(v: dict) -> str:
        trained = [f for f in (v.get("candidates") or "").split(",") if f]
        rest = [f for f in all_families if f not in trained]
        if not trained or not rest:
            return ""
        return (f"; the quick bootstrap model ({', '.join(trained)} only, fitted in seconds so predictions "
                f"start at once): {', '.join(rest)} follow in the first retrain, through the same gate")

    if champion is not None:
        why = champion.get("champion_reason") or champion.get("gate_reason") or "no reason recorded"
        how = "promoted by hand" if why.startswith(("manual promote", "rollback")) else "the gate passed it"
        return (f"h{horizon} serving v{champion['version']} ({champion.get('family') or '?'}){quick(champion)}; "
                f"{how}: {why}")
    if newest is None:
        return f"h{horizon} serving nothing: no model trained yet"
    return (f"h{horizon} serving nothing: v{newest['version']} ({newest.get('family') or '?'}) was refused by the "
            f"gate{quick(newest)}: {newest.get('gate_reason') or 'no reason recorded'}")


def serving_summary(s: Settings, client) -> list[str]:
    """`serving_words` per horizon, from the registry (MLflow's client; `[]` while it cannot be read)."""
    from tickcast import model_io
    from tickcast.training.config import CANDIDATES

    out = []
    try:
        for h in s.horizons:
            name = model_io.model_name(h)
            mv = model_io.resolve(client, name, model_io.CHAMPION)
            champ = None if mv is None else {"version": str(mv.version), **(mv.tags or {})}
            newest = None
            if champ is None:
                done = [v for v in client.search_model_versions(f"name='{name}'")
                        if (v.tags or {}).get(model_io.REGISTRATION, model_io.COMPLETE) == model_io.COMPLETE]
                if done:
                    v = max(done, key=lambda v: int(v.version))
                    newest = {"version": str(v.version), **(v.tags or {})}
            out.append(serving_words(h, champ, newest, CANDIDATES))
    except Exception:  # the registry being written or away: nothing this refresh, never crash the panel
        return []
    return out


def newest_minute_end_s(t, s: Settings) -> float | None:
    """The end (epoch s) of the newest minute in a table with `window_start`; None when it has none."""
    if not lake.exists(t, s):
        return None
    col = lake.read(t, s, columns=["window_start"])["window_start"]
    return None if len(col) == 0 else float(lake.to_ms(col).max()) / 1000 + 60.0


def backlog_words(queries: dict[str, dict]) -> str:
    """The queries' Kafka backlog from their last progress (messages behind), in words; "" for none."""
    behind = []
    for name, p in queries.items():
        lag = ((p.get("sources") or [{}])[0].get("metrics") or {}).get("maxOffsetsBehindLatest")
        if lag is not None and int(lag) > 0:
            behind.append(f"{name} {int(lag):,} msgs behind")
    return ", ".join(behind)


def catch_up(s: Settings, started_s: float, queries: dict[str, dict], now_s: float | None = None):
    """tickcast.catchup.judge for `up`'s streams started at `started_s` (epoch s), from the lake."""
    from tickcast import catchup

    now_s = time.time() if now_s is None else now_s
    try:
        bar, pred = newest_minute_end_s(tables.BARS, s), newest_minute_end_s(tables.PREDICTIONS, s)
    except Exception:  # a table being written: judge from nothing new (still catching up, if it was)
        bar = pred = None
    return catchup.judge(now_s, started_s, bar, pred, backlog_words(queries))
