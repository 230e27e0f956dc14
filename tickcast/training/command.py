"""`tickcast train` for one horizon: read the window, evaluate, gate, register every candidate in MLflow."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tickcast import dataset, features, modeling, tables
from tickcast.settings import Settings
from tickcast.training.config import TrainConfig, TrainingError, iso
from tickcast.training.data import choose_symbols, enough_history, leakage_guard, read_bars, read_features
from tickcast.training.gate import compare_champion, gate, margins
from tickcast.training.report import markdown
from tickcast.training.walkforward import Evaluation, evaluate, fit, model_features
from tickcast.timeunits import MINUTE_MS

LEAK_LOOKBACK_MS = 3 * 1440 * MINUTE_MS   # the leakage guard recomputes a row from this much history


@dataclass
class Prepared:
    """A horizon's labelled rows within the config's window, and what was checked on the way."""
    data: pd.DataFrame
    symbols: list[str]
    guard: dict
    feature_version: str


def prepare(s: Settings, cfg: TrainConfig, echo=print) -> Prepared:
    """Read the window's feature rows and bars, run the leakage guard, label, and check the history is enough."""
    version = features.feature_version()
    rows = read_features(s, version, cfg.symbols, cfg.end_ms, cfg.start_ms)
    if rows.empty:
        window = "" if cfg.start_ms is None and cfg.end_ms is None else (
            f" between {iso(cfg.start_ms) if cfg.start_ms is not None else 'the start'} and "
            f"{iso(cfg.end_ms) if cfg.end_ms is not None else 'the end'}")
        raise TrainingError(f"no rows of feature version {version} in {tables.FEATURES.name}{window}: "
                            "run `tickcast job features --available-now` after the bars")
    symbols = choose_symbols(sorted(rows["symbol"].unique()), cfg.symbols)
    rows = rows[rows["symbol"].isin(symbols)]
    # Bars from before the window too: the guard recomputes a row from the history before it.
    bars = read_bars(s, symbols, cfg.end_ms, None if cfg.start_ms is None else cfg.start_ms - LEAK_LOOKBACK_MS)
    guard = leakage_guard(rows[~rows["warmup"]], bars, cfg.guard_samples, cfg.seed)
    echo(f"train: leakage guard recomputed {guard['checked']} sampled rows from truncated bars: identical")
    data = dataset.join(rows, dataset.labels(bars[["symbol", "window_ms", "close"]], cfg.horizon))
    del rows
    enough_history(data, cfg)
    echo(f"train: {len(data)} labelled rows, {len(symbols)} symbol(s) ({', '.join(symbols)}), "
         f"{iso(int(data['window_ms'].min()))} .. {iso(int(data['window_ms'].max()))}; "
         f"candidates {', '.join(cfg.families)}")
    return Prepared(data, symbols, guard, version)


def decide(prep: Prepared, cfg: TrainConfig, champion=None, echo=print) -> tuple[Evaluation, dict]:
    """Walk-forward evaluation and the gate against the baselines and `champion` (a model_io.Loaded or None).

    Returns the evaluation and the report (with `gate`, `champion`, `margins`); registers nothing.
    """
    data = prep.data
    ev = evaluate(data, cfg, echo)
    report = ev.report
    report["leakage_guard"] = prep.guard
    report["features"] = model_features(data)
    report["symbols"] = prep.symbols
    best0 = min(cfg.families, key=lambda f: (report["overall"][f]["brier"]["value"], list(cfg.families).index(f)))
    champ_check = compare_champion(ev, data, best0, champion, cfg) if champion is not None else None
    g = gate(ev, cfg, champ_check)
    report["gate"] = {"result": "promoted" if g["promoted"] else "not promoted", "reason": g["reasons"][g["best"]],
                      **g}
    report["champion"] = g["best"] if g["promoted"] else None
    report["margins"] = margins(report, g["best"])
    # Kept for readers of the single-model report: the best candidate against each baseline.
    report["comparisons"] = [c["comparison"] for c in g["checks"] if c["comparison"] is not None]
    return ev, report


def train(s: Settings, cfg: TrainConfig, echo=print, source: str = "train") -> dict:
    """Evaluate every candidate for `cfg.horizon`, register each, and promote at most one; returns the report.

    The report's `model`, `version` and `alias` are those of the best-Brier candidate (the champion
    when promoted); `registered` lists every candidate's version, alias and reason.
    """
    from tickcast import model_io  # deferred: heavy (imports mlflow)

    t_start = time.monotonic()
    prep = prepare(s, cfg, echo)
    model_io.configure(s)
    champion = model_io.load(s, model_io.model_name(cfg.horizon), model_io.CHAMPION)
    ev, report = decide(prep, cfg, champion, echo)
    report["walk_forward_seconds"] = round(time.monotonic() - t_start, 1)
    return register(s, cfg, prep, report, t_start, echo, source)


def register(s: Settings, cfg: TrainConfig, prep: Prepared, report: dict, t_start: float, echo=print,
             source: str = "train") -> dict:
    """Refit every candidate on all of the window's rows, log and register each; `champion` only on the gate's yes.

    The decision is one ops.model_events row (promotion or refusal), written by `source`.
    """
    import mlflow

    from tickcast import model_io  # deferred: heavy (imports mlflow)

    client = model_io.configure(s)
    name = model_io.model_name(cfg.horizon)
    data, symbols, version = prep.data, prep.symbols, prep.feature_version
    g = report["gate"]
    t_wf = report["walk_forward_seconds"]

    # Every candidate refitted on all labelled rows and registered; the best last, so that it
    # holds `challenger` when nothing is promoted and `version` is the newest.
    t_reg = time.monotonic()
    y = data["label_return"].to_numpy(float)
    ms = data["window_ms"].to_numpy(np.int64)
    training_end_ms = int(ms.max()) + cfg.horizon * MINUTE_MS
    summary = model_features(data)
    Xs = data[summary].to_numpy(float)
    base_params = modeling.baseline_params(Xs, y, summary, cfg.seed)
    order = sorted(cfg.families, key=lambda f: -report["overall"][f]["brier"]["value"])
    registered = {}
    with mlflow.start_run(run_name=f"{name} {iso(training_end_ms)}") as run:
        mlflow.log_params({"horizon": cfg.horizon, "folds": cfg.folds, "initial_share": cfg.initial,
                           "symbols": ",".join(symbols), "rows": len(data), "feature_version": version,
                           "candidates": ",".join(cfg.families), "bootstrap_reps": cfg.bootstrap_reps,
                           "block_minutes": report["block_minutes"], "seed": cfg.seed,
                           "training_end": iso(training_end_ms), "shuffle_labels": cfg.shuffle_labels,
                           **{f"mlp_{k}": v for k, v in asdict(cfg.mlp).items()},
                           **{f"conv_{k}": v for k, v in asdict(cfg.conv).items()}})
        for m, mt in report["overall"].items():
            for k, v in mt.items():
                mlflow.log_metrics({f"{m}_{k}": v["value"], f"{m}_{k}_lo": v["lo"], f"{m}_{k}_hi": v["hi"]})
        for fr in report["folds"]:
            for m, mt in fr["metrics"].items():
                mlflow.log_metrics({f"fold_{m}_{k}": v["value"] for k, v in mt.items()}, step=fr["fold"])
        # Every final fit first: a failure (or a kill) while fitting leaves nothing registered.
        finals = {}
        for fam in order:
            cols = report["inputs"][fam]
            X = data[cols].to_numpy(np.float32)
            finals[fam] = (cols, X, fit(fam, X, y, cfg))
        # Then every registration, each version born tagged `registration=unfinished` (one registry
        # write); aliases move only once all are registered, so a version of a run killed in between
        # is never served, and the retrainer marks it abandoned (tickcast.lifecycle.retrain).
        tags = {}
        for fam in order:
            cols, X, final = finals[fam]
            meta = {"horizon": cfg.horizon, "family": fam, "features": cols, "feature_version": version,
                    "training_start_ms": int(ms.min()), "training_end_ms": training_end_ms,
                    "training_end": iso(training_end_ms), "symbols": symbols, "rows": len(data),
                    "baselines": base_params}
            ref = model_io.reference_distribution(X[:, :len(summary)].astype(float), summary, seed=cfg.seed)
            example = pd.DataFrame(X[:5].astype(np.float64), columns=cols)   # the table's doubles: the signature
            mt = report["overall"][fam]
            promoted = g["promoted"] and fam == g["best"]
            tags[fam] = {"brier": f"{mt['brier']['value']:.6f}", "accuracy": f"{mt['accuracy']['value']:.4f}",
                         "family": fam, "training_end": iso(training_end_ms), "feature_version": version,
                         # The families this run fitted: fewer than all marks a quick (bootstrap) model.
                         "candidates": ",".join(cfg.families),
                         "gate": "promoted" if promoted else "not promoted", "gate_reason": g["reasons"][fam][:5000],
                         "run_id": run.info.run_id,
                         # What the streaming job needs per batch without downloading artifacts.
                         "meta": json.dumps(meta)}
            with mlflow.start_run(run_name=f"{name} {fam}", nested=True):
                mlflow.log_metrics({f"{k}{sfx}": v[key] for k, v in mt.items()
                                    for sfx, key in (("", "value"), ("_lo", "lo"), ("_hi", "hi"))})
                mlflow.set_tags({"family": fam, "training_end": iso(training_end_ms), "feature_version": version})
                _, mv = model_io.log_model(final.model, meta, ref, example, reference_rows=X[-256:],
                                           version_tags={**tags[fam], model_io.REGISTRATION: model_io.UNFINISHED})
            registered[fam] = {"version": mv, "promoted": promoted, "reason": g["reasons"][fam]}
        for fam in order:
            client.set_model_version_tag(name, registered[fam]["version"], model_io.REGISTRATION, model_io.COMPLETE)
        for fam in order:
            r = registered.pop(fam)
            alias = model_io.CHAMPION if r["promoted"] else model_io.CHALLENGER
            model_io.set_alias(client, name, alias, r["version"], r["reason"][:5000])
            registered[fam] = {"version": r["version"], "alias": alias, "reason": r["reason"]}
            echo(f"train: {name} v{r['version']} ({fam}) -> {alias}")
        if g["promoted"]:   # the best loser keeps `challenger` (aliases are one version each)
            losers = [f for f in order if f != g["best"]]
            if losers:
                model_io.set_alias(client, name, model_io.CHALLENGER, registered[losers[-1]]["version"],
                                   registered[losers[-1]]["reason"][:5000])
        report["registered"] = registered
        report.update(walk_forward_seconds=t_wf, register_seconds=round(time.monotonic() - t_reg, 1),
                      train_seconds=round(time.monotonic() - t_start, 1))
        mlflow.log_metrics({"train_seconds": report["train_seconds"], "walk_forward_seconds": report["walk_forward_seconds"]})
        mlflow.log_dict(report, "evaluation/report.json")
        mlflow.log_text(markdown(report), "evaluation/report.md")
        mlflow.set_tags({"training_end": iso(training_end_ms), "feature_version": version,
                         "gate": report["gate"]["result"], "decision": g["decision"][:5000],
                         "champion": report["champion"] or ""})
        report["run_id"] = run.info.run_id
    best = registered[g["best"]]
    report.update(model=name, version=best["version"], alias=best["alias"], family=g["best"],
                  seconds=report["train_seconds"], training_end=iso(training_end_ms))
    _record_decision(s, cfg, report, int(ms.min()), training_end_ms, source, echo)
    return report


def _record_decision(s: Settings, cfg: TrainConfig, report: dict, start_ms: int, end_ms: int, source: str,
                     echo) -> None:
    """The gate's decision as an ops.model_events row; the registry is already right if this fails."""
    from tickcast import model_events as events

    g = report["gate"]
    o = report["overall"]
    numbers = {"family": g["best"], "candidates": list(cfg.families), "rows": report["rows"],
               "tested_rows": report["tested_rows"],
               "training_start": iso(start_ms), "training_end": iso(end_ms),
               "window_start": iso(cfg.start_ms) if cfg.start_ms is not None else None,
               "window_end": iso(cfg.end_ms) if cfg.end_ms is not None else None,
               "brier": {m: o[m]["brier"] for m in o}, "accuracy": {m: o[m]["accuracy"] for m in o},
               "margins": report["margins"], "run_id": report.get("run_id")}
    try:
        events.record(s, horizon=cfg.horizon, model_name=report["model"], version=report["version"],
                      event=events.PROMOTION if g["promoted"] else events.REFUSAL, reason=g["decision"],
                      numbers=numbers, source=source)
    except Exception as e:  # the lake unwritable: the models are registered; say so loudly, do not undo them
        echo(f"train: could not append to ops.model_events: {type(e).__name__}: {e}")
