"""`tickcast train`: walk-forward evaluation against naive baselines, MLflow logging, the promotion gate.

Reads the Delta tables only (silver.features for inputs, silver.bars_1m for labels). The candidate
(a Keras MLP) and the baselines (climatology, momentum, linear) are fitted on the same expanding
training windows and scored on the same out-of-sample test blocks. The registered version gets
`champion` only if the lower end of the 95% paired block-bootstrap interval of its Brier
improvement is above zero against every baseline and against the current champion (on test rows
after that champion's training end); otherwise it gets `challenger` and the reason is reported.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from tickcast import dataset, evaluation, features, lake, modeling, tables
from tickcast.evaluation import Bootstrap, Comparison, Sample
from tickcast.settings import Settings

BASELINES = ("climatology", "momentum", "linear")
CANDIDATE = "mlp"


class TrainingError(RuntimeError):
    """Training cannot go on (no data, a leak, mixed symbols); the message says why."""


class LeakageError(TrainingError):
    pass


@dataclass(frozen=True)
class TrainConfig:
    horizon: int
    symbols: tuple[str, ...] | None = None
    end_ms: int | None = None                # use bars/features up to this time only
    folds: int = 4
    initial: float = 0.5
    bootstrap_reps: int = 1000
    seed: int = 0
    guard_samples: int = 20
    min_champion_rows: int = 500
    shuffle_labels: bool = False             # negative control: should find nothing
    mlp: modeling.MlpConfig = field(default_factory=modeling.MlpConfig)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- reading the tables

def read_features(s: Settings, version: str, symbols=None, end_ms: int | None = None) -> pd.DataFrame:
    if not lake.exists(tables.FEATURES, s):
        raise TrainingError(f"{tables.FEATURES.name} does not exist yet: run `tickcast job features --available-now`")
    filters = [("feature_version", "=", version)]
    if symbols:
        filters.append(("symbol", "in", list(symbols)))
    t = lake.read(tables.FEATURES, s, filters=filters)
    df = t.drop(["window_start"]).to_pandas()
    df.insert(1, "window_ms", lake.to_ms(t["window_start"]))
    if end_ms is not None:
        df = df[df["window_ms"] <= end_ms]
    return df


def read_bars(s: Settings, symbols=None, end_ms: int | None = None) -> pd.DataFrame:
    """Bars as the float inputs of the feature math (symbol, window_ms, RAW columns)."""
    import pyarrow as pa

    if not lake.exists(tables.BARS, s):
        raise TrainingError(f"{tables.BARS.name} does not exist yet: backfill klines or run the bars job")
    filters = [("symbol", "in", list(symbols))] if symbols else None
    t = lake.read(tables.BARS, s, columns=["symbol", "window_start", *features.RAW], filters=filters)
    df = pd.DataFrame({"symbol": t["symbol"].to_numpy(zero_copy_only=False),
                       "window_ms": lake.to_ms(t["window_start"])})
    for c in features.RAW:
        df[c] = t[c].cast(pa.float64()).to_numpy(zero_copy_only=False)
    df["vwap"] = df["vwap"].fillna(df["close"])
    df["imbalance"] = df["imbalance"].fillna(0.0)
    if end_ms is not None:
        df = df[df["window_ms"] <= end_ms]
    return df.sort_values(["symbol", "window_ms"], kind="stable").reset_index(drop=True)


def choose_symbols(available: list[str], asked) -> list[str]:
    """The symbols to train on: as asked, or all; real and simulated data never mix silently."""
    if asked:
        missing = sorted(set(asked) - set(available))
        if missing:
            raise TrainingError(f"no feature rows for symbol(s) {', '.join(missing)}; have {', '.join(available)}")
        return sorted(asked)
    synthetic = [x for x in available if "-SIM" in x]
    if synthetic and len(synthetic) < len(available):
        raise TrainingError("silver.features holds both real and simulated symbols; pass --symbols to choose")
    return sorted(available)


# ---------------------------------------------------------------- leakage guard

def leakage_guard(rows: pd.DataFrame, bars: pd.DataFrame, samples: int, seed: int = 0,
                  compute=features.compute, lookback_minutes: int = 3 * 1440) -> dict:
    """Recompute sampled feature rows from bars truncated at their own minute; refuse if any differs.

    A feature that looks ahead (a `shift(-1)`, a centred window, a full-sample normalisation)
    changes when the future is cut off, so it cannot pass.
    """
    if len(rows) == 0:
        return {"checked": 0}
    rng = np.random.default_rng(seed)
    pick = rows.iloc[np.sort(rng.choice(len(rows), size=min(samples, len(rows)), replace=False))]
    worst, bad = 0.0, []
    for _, r in pick.iterrows():
        b = bars[(bars["symbol"] == r["symbol"]) & (bars["window_ms"] <= r["window_ms"])
                 & (bars["window_ms"] > r["window_ms"] - lookback_minutes * features.MINUTE_MS)]
        again = compute(b)
        again = again[again["window_ms"] == r["window_ms"]]
        # Every computed column but the row's identity: the features, and anything a variant adds.
        names = [c for c in again.columns if c not in features.META and c in rows.columns]
        if again.empty:
            bad.append((r["symbol"], int(r["window_ms"]), "row not reproducible from bars up to its minute"))
            continue
        a = again.iloc[0][names].to_numpy(float)
        t = r[names].to_numpy(float)
        same = np.isclose(a, t, rtol=0, atol=1e-9) | (np.isnan(a) & np.isnan(t))
        if not same.all():
            cols = [n for n, ok in zip(names, same) if not ok]
            bad.append((r["symbol"], int(r["window_ms"]), f"differs in {', '.join(cols)}"))
        with np.errstate(invalid="ignore"):
            worst = max(worst, float(np.nanmax(np.abs(a - t), initial=0.0)))
    if bad:
        first = "; ".join(f"{sym} {iso(ms)}: {why}" for sym, ms, why in bad[:3])
        raise LeakageError(f"leakage guard: {len(bad)} of {len(pick)} sampled feature rows change when the "
                           f"bars after their minute are removed ({first}); refusing to train")
    return {"checked": len(pick), "max_abs_diff": worst}


# ---------------------------------------------------------------- walk-forward evaluation

WEEKLY = ("dow_sin", "dow_cos")
MIN_DAYS_FOR_WEEKLY = 28


def model_features(data: pd.DataFrame) -> list[str]:
    """The features a training window can support: day-of-week needs weeks of history.

    With a few days, a test block's weekday is a value the model never saw, and a network
    extrapolates it wildly (measured: Brier 0.26 vs 0.25 on 3 simulated days). The model's
    signature and meta say which features it takes.
    """
    span_days = (int(data["window_ms"].max()) - int(data["window_ms"].min())) / 86_400_000 if len(data) else 0
    return [f for f in features.FEATURES if span_days >= MIN_DAYS_FOR_WEEKLY or f not in WEEKLY]


@dataclass
class Evaluation:
    report: dict
    samples: dict[str, Sample]         # model -> overall out-of-sample predictions
    test_mask: np.ndarray              # rows of the data that were tested
    boot: Bootstrap
    comparisons: list[Comparison]


def fit_all(X: np.ndarray, y: np.ndarray, names: list[str], cfg: TrainConfig) -> dict[str, modeling.Fitted]:
    return {
        "climatology": modeling.climatology(X, y),
        "momentum": modeling.momentum(X, y, names, cfg.seed),
        "linear": modeling.linear(X, y, cfg.seed),
        CANDIDATE: modeling.mlp(X, y, cfg.mlp),
    }


def _sample(ms: np.ndarray, minutes: np.ndarray, p, r, y) -> Sample:
    return Sample(np.searchsorted(minutes, ms), np.asarray(p, float), np.asarray(r, float), np.asarray(y, float))


def evaluate(data: pd.DataFrame, cfg: TrainConfig) -> Evaluation:
    """Fit every model on each fold's training rows; score on its test block; metrics with intervals."""
    names = model_features(data)
    X = data[names].to_numpy(float)
    y = data["label_return"].to_numpy(float)
    if cfg.shuffle_labels:
        y = np.random.default_rng(cfg.seed).permutation(y)
    ms = data["window_ms"].to_numpy(np.int64)
    folds = dataset.walk_forward(ms, cfg.horizon, cfg.folds, cfg.initial)
    models = (CANDIDATE, *BASELINES)
    prob = {m: np.full(len(y), np.nan) for m in models}
    ret = {m: np.full(len(y), np.nan) for m in models}
    fold_reports = []
    tested = np.zeros(len(y), bool)
    for f in folds:
        tr, te = f.train_mask(ms, cfg.horizon), f.test_mask(ms)
        if tr.sum() < 200 or te.sum() == 0:
            raise TrainingError(f"fold {f.number}: {int(tr.sum())} training and {int(te.sum())} test rows; "
                                "need more history (or fewer folds)")
        t0 = time.monotonic()
        fitted = fit_all(X[tr], y[tr], names, cfg)
        for m, fm in fitted.items():
            prob[m][te], ret[m][te] = fm.predict(X[te])
        tested |= te
        fold_minutes = np.unique(ms[te])
        boot = Bootstrap(len(fold_minutes), evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
        fold_reports.append({
            "fold": f.number, "train_rows": int(tr.sum()), "test_rows": int(te.sum()),
            "train_end": iso(f.train_end_ms), "test_start": iso(f.test_start_ms), "test_end": iso(f.test_end_ms),
            "fit_seconds": round(time.monotonic() - t0, 2), "mlp": fitted[CANDIDATE].info,
            "metrics": {m: evaluation.metrics_with_ci(_sample(ms[te], fold_minutes, prob[m][te], ret[m][te], y[te]), boot)
                        for m in models}})
    minutes = np.unique(ms[tested])
    boot = Bootstrap(len(minutes), evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
    samples = {m: _sample(ms[tested], minutes, prob[m][tested], ret[m][tested], y[tested]) for m in models}
    overall = {m: evaluation.metrics_with_ci(samples[m], boot) for m in models}
    comps = [evaluation.compare(samples[CANDIDATE], samples[b], b, boot) for b in BASELINES]
    # The majority-class rate of the test rows, with its interval: what "no skill" looks like.
    yt = samples[CANDIDATE].realized
    maj_up = float(np.mean(yt[yt != 0] > 0)) >= 0.5
    majority = evaluation.metrics_with_ci(
        Sample(samples[CANDIDATE].time_index, np.full(len(yt), 0.75 if maj_up else 0.25), np.zeros(len(yt)), yt), boot)
    zero = int((y == 0).sum())
    report = {
        "horizon": cfg.horizon, "rows": len(y), "tested_rows": int(tested.sum()), "test_minutes": len(minutes),
        "zero_returns": {"all_rows": zero, "tested_rows": int((yt == 0).sum())},
        "up_rate_tested": float(np.mean(yt[yt != 0] > 0)) if (yt != 0).any() else None,
        "block_minutes": evaluation.block_length(cfg.horizon), "bootstrap_reps": cfg.bootstrap_reps,
        "level": evaluation.LEVEL, "folds": fold_reports, "overall": overall,
        "majority_rate": majority["accuracy"],
        "comparisons": [asdict(c) for c in comps], "shuffle_labels": cfg.shuffle_labels,
    }
    return Evaluation(report, samples, tested, boot, comps)


def compare_champion(ev: Evaluation, data: pd.DataFrame, champion, cfg: TrainConfig) -> Comparison:
    """The candidate against the current champion on tested rows after the champion's training end."""
    against = f"champion v{champion.version}"
    if champion.feature_version != features.feature_version():
        return Comparison(against + f" (feature version {champion.feature_version})", float("nan"),
                          float("nan"), float("nan"), 0, False)
    ms = data["window_ms"].to_numpy(np.int64)[ev.test_mask]
    after = ms > champion.training_end_ms
    if after.sum() < cfg.min_champion_rows:
        return Comparison(against + f" (only {int(after.sum())} tested rows after its training end "
                          f"{iso(champion.training_end_ms)}; need {cfg.min_champion_rows})",
                          float("nan"), float("nan"), float("nan"), int(after.sum()), False)
    cand, n_min = evaluation.subset(ev.samples[CANDIDATE], after)
    X = data[list(champion.features)].to_numpy(float)[ev.test_mask][after]
    p, r = champion.predictor()(X)
    champ = Sample(cand.time_index, p, r, cand.realized)
    boot = Bootstrap(n_min, evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
    return evaluation.compare(cand, champ, against, boot)


# ---------------------------------------------------------------- the command

def markdown(report: dict) -> str:
    """The walk-forward table: each model's overall metrics with intervals, then the gate."""
    lines = [f"## Walk-forward, horizon {report['horizon']} min: {report['tested_rows']} tested rows, "
             f"{len(report['folds'])} folds, block bootstrap ({report['block_minutes']} min blocks)", "",
             "| model | Brier | log loss | accuracy | MAE | R² |", "|---|---|---|---|---|---|"]
    for m, mt in report["overall"].items():
        cell = lambda k, f="{:.5f}": f"{f.format(mt[k]['value'])} [{f.format(mt[k]['lo'])}, {f.format(mt[k]['hi'])}]"  # noqa: E731
        lines.append(f"| {m} | {cell('brier')} | {cell('log_loss')} | {cell('accuracy', '{:.4f}')} | "
                     f"{cell('mae', '{:.2e}')} | {cell('r2', '{:.4f}')} |")
    mr = report["majority_rate"]
    lines += ["", f"Majority-class rate: {mr['value']:.4f} [{mr['lo']:.4f}, {mr['hi']:.4f}]; zero returns "
              f"(left out of direction metrics): {report['zero_returns']['tested_rows']} tested rows.", ""]
    for c in report["comparisons"]:
        lines.append(f"- {Comparison(**c).describe()}")
    if "gate" in report:
        lines.append(f"\nGate: **{report['gate']['result']}**. {report['gate']['reason']}")
    return "\n".join(lines) + "\n"


def train(s: Settings, cfg: TrainConfig, echo=print) -> dict:
    """Evaluate, register and gate one model for `cfg.horizon`; returns the report."""
    import mlflow

    from tickcast import model_io

    t_start = time.monotonic()
    version = features.feature_version()
    rows = read_features(s, version, cfg.symbols, cfg.end_ms)
    if rows.empty:
        raise TrainingError(f"no rows of feature version {version} in {tables.FEATURES.name}: "
                            "run `tickcast job features --available-now` after the bars")
    symbols = choose_symbols(sorted(rows["symbol"].unique()), cfg.symbols)
    rows = rows[rows["symbol"].isin(symbols)]
    bars = read_bars(s, symbols, cfg.end_ms)
    guard = leakage_guard(rows[~rows["warmup"]], bars, cfg.guard_samples, cfg.seed)
    echo(f"train: leakage guard recomputed {guard['checked']} sampled rows from truncated bars: identical")
    data = dataset.join(rows, dataset.labels(bars[["symbol", "window_ms", "close"]], cfg.horizon))
    if len(data) < 1000:
        raise TrainingError(f"only {len(data)} labelled rows after warm-up for horizon {cfg.horizon}; need 1000+")
    echo(f"train: {len(data)} labelled rows, {len(symbols)} symbol(s) ({', '.join(symbols)}), "
         f"{iso(int(data['window_ms'].min()))} .. {iso(int(data['window_ms'].max()))}")
    ev = evaluate(data, cfg)
    report = ev.report
    report["leakage_guard"] = guard
    report["features"] = model_features(data)
    report["symbols"] = symbols

    client = model_io.configure(s)
    name = model_io.model_name(cfg.horizon)
    champion = model_io.load(s, name, model_io.CHAMPION)
    comps = list(ev.comparisons)
    if champion is not None:
        comps.append(compare_champion(ev, data, champion, cfg))
        report["comparisons"] = [asdict(c) for c in comps]
    failed = [c for c in comps if not c.passed]
    passed = not failed and not cfg.shuffle_labels
    reason = ("beats every baseline" + (" and the champion" if champion else "") if passed else
              "shuffled labels: a negative control is never promoted" if cfg.shuffle_labels else
              "; ".join(c.describe() for c in failed))
    report["gate"] = {"result": "promoted" if passed else "not promoted", "reason": reason}

    # The registered model: the candidate refitted on every labelled row.
    names = model_features(data)
    X = data[names].to_numpy(float)
    y = data["label_return"].to_numpy(float)
    final = modeling.mlp(X, y, cfg.mlp)
    ms = data["window_ms"].to_numpy(np.int64)
    training_end_ms = int(ms.max()) + cfg.horizon * features.MINUTE_MS
    meta = {"horizon": cfg.horizon, "features": names, "feature_version": version,
            "training_start_ms": int(ms.min()), "training_end_ms": training_end_ms,
            "training_end": iso(training_end_ms), "symbols": symbols, "rows": len(data),
            "baselines": modeling.baseline_params(X, y, names, cfg.seed)}
    ref = model_io.reference_distribution(X, names, seed=cfg.seed)
    example = pd.DataFrame(X[:5], columns=names)
    with mlflow.start_run(run_name=f"{name} {iso(training_end_ms)}") as run:
        mlflow.log_params({"horizon": cfg.horizon, "folds": cfg.folds, "initial_share": cfg.initial,
                           "symbols": ",".join(symbols), "rows": len(data), "feature_version": version,
                           "features": ",".join(names), "bootstrap_reps": cfg.bootstrap_reps,
                           "block_minutes": report["block_minutes"], "seed": cfg.seed,
                           "training_end": iso(training_end_ms), "shuffle_labels": cfg.shuffle_labels,
                           **{f"mlp_{k}": v for k, v in asdict(cfg.mlp).items()}})
        for m, mt in report["overall"].items():
            for k, v in mt.items():
                mlflow.log_metrics({f"{m}_{k}": v["value"], f"{m}_{k}_lo": v["lo"], f"{m}_{k}_hi": v["hi"]})
        for fr in report["folds"]:
            for m, mt in fr["metrics"].items():
                mlflow.log_metrics({f"fold_{m}_{k}": v["value"] for k, v in mt.items()}, step=fr["fold"])
        for c in comps:
            key = c.against.split(" (")[0].replace(" ", "_")
            mlflow.log_metrics({f"gain_vs_{key}": c.improvement, f"gain_vs_{key}_lo": c.lo})
        mlflow.log_dict(report, "evaluation/report.json")
        mlflow.log_text(markdown(report), "evaluation/report.md")
        mlflow.set_tags({"training_end": iso(training_end_ms), "feature_version": version, "gate": report["gate"]["result"]})
        _, mv = model_io.log_model(final.model, meta, ref, example, reference_rows=X[-256:])
        report["run_id"] = run.info.run_id
    cand = report["overall"][CANDIDATE]
    for k, v in {"brier": f"{cand['brier']['value']:.6f}", "accuracy": f"{cand['accuracy']['value']:.4f}",
                 "training_end": iso(training_end_ms), "feature_version": version,
                 "gate": report["gate"]["result"], "gate_reason": reason[:5000],
                 # What the streaming job needs per batch without downloading artifacts.
                 "meta": json.dumps(meta)}.items():
        client.set_model_version_tag(name, mv, k, v)
    alias = model_io.CHAMPION if passed else model_io.CHALLENGER
    model_io.set_alias(client, name, alias, mv, reason[:5000])
    report.update(model=name, version=mv, alias=alias, seconds=round(time.monotonic() - t_start, 1),
                  training_end=iso(training_end_ms))
    return report
