"""`tickcast train`: candidate families walk-forward against the naive baselines, one champion per horizon.

Reads the Delta tables only (silver.features for inputs, silver.bars_1m for labels). The candidates
(`linear`, `mlp`, `conv`: Keras models on one silver.features row) and the naive baselines
(climatology, momentum) are fitted on the same expanding training windows and scored on the same
out-of-sample test blocks. One rule picks the champion: the candidate with the best walk-forward
Brier score, promoted only if the lower ends of the 95% paired block-bootstrap intervals of its
Brier improvement over climatology and over momentum are above zero, no other candidate beats it
significantly, its direction accuracy is not above the leak threshold, and it is not significantly
worse than the current champion on rows after that champion's training end. Every candidate is
registered; the others get `challenger` and the reason in words.
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

BASELINES = ("climatology", "momentum")
CANDIDATES = ("linear", "mlp", "conv")
LEAK_ACCURACY = 0.60        # direction accuracy above this at minutes' horizons is treated as a leak
MIN_BLOCKS_PER_FOLD = 5     # bootstrap blocks each walk-forward test block must span at least


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
    families: tuple[str, ...] = CANDIDATES
    leak_accuracy: float = LEAK_ACCURACY
    min_blocks_per_fold: int = MIN_BLOCKS_PER_FOLD
    importance_rows: int = 20_000            # test rows per fold used for permutation importance at most
    mlp: modeling.MlpConfig = field(default_factory=modeling.MlpConfig)
    conv: modeling.ConvConfig = field(default_factory=modeling.ConvConfig)


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
    """The summary features a training window can support: day-of-week needs weeks of history.

    With a few days, a test block's weekday is a value the model never saw, and a network
    extrapolates it wildly (measured: Brier 0.26 vs 0.25 on 3 simulated days). The model's
    signature and meta say which features it takes.
    """
    span_days = (int(data["window_ms"].max()) - int(data["window_ms"].min())) / 86_400_000 if len(data) else 0
    return [f for f in features.FEATURES if span_days >= MIN_DAYS_FOR_WEEKLY or f not in WEEKLY]


def inputs(family: str, data: pd.DataFrame) -> list[str]:
    """The silver.features columns a family takes (its model's signature, in order)."""
    summary = model_features(data)
    return summary + list(features.HISTORY) if family == "conv" else summary


def fit(family: str, X: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> modeling.Fitted:
    if family == "linear":
        return modeling.linear_keras(X, y, cfg.seed)
    if family == "mlp":
        return modeling.mlp(X, y, cfg.mlp)
    if family == "conv":
        return modeling.conv(X, y, cfg.conv, channels=len(features.HISTORY_CHANNELS), history=len(features.HISTORY))
    raise TrainingError(f"unknown candidate family {family!r}; known: {', '.join(CANDIDATES)}")


def fit_baselines(X: np.ndarray, y: np.ndarray, names: list[str], cfg: TrainConfig) -> dict[str, modeling.Fitted]:
    return {"climatology": modeling.climatology(X, y), "momentum": modeling.momentum(X, y, names, cfg.seed)}


@dataclass
class Evaluation:
    report: dict
    samples: dict[str, Sample]         # model -> overall out-of-sample predictions
    test_mask: np.ndarray              # rows of the data that were tested
    boot: Bootstrap


def _sample(ms: np.ndarray, minutes: np.ndarray, p, r, y) -> Sample:
    return Sample(np.searchsorted(minutes, ms), np.asarray(p, float), np.asarray(r, float), np.asarray(y, float))


def _groups(names: list[str]) -> dict[str, list[int]]:
    """Permutation groups: each summary feature alone, each history channel as one group."""
    out: dict[str, list[int]] = {}
    for j, n in enumerate(names):
        key = n
        for c, _ in features.HISTORY_CHANNELS:
            if n.startswith(c + "_") and n in features.HISTORY:
                key = f"{c}_* (last {features.HISTORY_BARS} min)"
        out.setdefault(key, []).append(j)
    return out


def permutation_importance(predict, X: np.ndarray, y: np.ndarray, names: list[str], rng) -> dict[str, tuple[float, int]]:
    """Brier increase when a feature (group) is shuffled across the test rows: {group: (sum, rows)}."""
    d = y != 0
    X, y = X[d], (y[d] > 0).astype(float)
    if len(y) == 0:
        return {}
    base = np.mean((predict(X)[0] - y) ** 2)
    out = {}
    for g, cols in _groups(names).items():
        Z = X.copy()
        Z[:, cols] = Z[rng.permutation(len(Z))][:, cols]
        out[g] = (float(np.mean((predict(Z)[0] - y) ** 2) - base) * len(y), len(y))
    return out


def evaluate(data: pd.DataFrame, cfg: TrainConfig, echo=lambda *_: None) -> Evaluation:
    """Fit every model on each fold's training rows; score on its test block; metrics with intervals."""
    summary = model_features(data)
    y = data["label_return"].to_numpy(float)
    if cfg.shuffle_labels:
        y = np.random.default_rng(cfg.seed).permutation(y)
    ms = data["window_ms"].to_numpy(np.int64)
    folds = dataset.walk_forward(ms, cfg.horizon, cfg.folds, cfg.initial)
    cols = {f: inputs(f, data) for f in cfg.families}
    X = {f: data[c].to_numpy(np.float32) for f, c in cols.items()}
    Xs = data[summary].to_numpy(float)
    models = (*cfg.families, *BASELINES)
    prob = {m: np.full(len(y), np.nan) for m in models}
    ret = {m: np.full(len(y), np.nan) for m in models}
    imp = {f: {} for f in cfg.families}
    rng = np.random.default_rng(cfg.seed)
    fold_reports = []
    tested = np.zeros(len(y), bool)
    for f in folds:
        tr, te = f.train_mask(ms, cfg.horizon), f.test_mask(ms)
        if tr.sum() < 200 or te.sum() == 0:
            raise TrainingError(f"fold {f.number}: {int(tr.sum())} training and {int(te.sum())} test rows; "
                                "need more history (or fewer folds)")
        seconds, info = {}, {}
        for b, fm in fit_baselines(Xs[tr], y[tr], summary, cfg).items():
            prob[b][te], ret[b][te] = fm.predict(Xs[te])
        for fam in cfg.families:
            t0 = time.monotonic()
            fm = fit(fam, X[fam][tr], y[tr], cfg)
            prob[fam][te], ret[fam][te] = fm.predict(X[fam][te])
            seconds[fam] = round(time.monotonic() - t0, 2)
            info[fam] = {k: v for k, v in fm.info.items() if isinstance(v, (int, float))}
            # Permutation importance on this fold's test block (a sample of it on months of rows).
            idx = np.nonzero(te)[0]
            if len(idx) > cfg.importance_rows:
                idx = np.sort(rng.choice(idx, cfg.importance_rows, replace=False))
            for g, (sm, n) in permutation_importance(fm.predict, X[fam][idx], y[idx], cols[fam], rng).items():
                a, b = imp[fam].get(g, (0.0, 0))
                imp[fam][g] = (a + sm, b + n)
        echo(f"train: fold {f.number + 1}/{len(folds)}: {int(tr.sum())} training, {int(te.sum())} test rows; "
             + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
        tested |= te
        fold_minutes = np.unique(ms[te])
        boot = Bootstrap(len(fold_minutes), evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
        fold_reports.append({
            "fold": f.number, "train_rows": int(tr.sum()), "test_rows": int(te.sum()),
            "train_end": iso(f.train_end_ms), "test_start": iso(f.test_start_ms), "test_end": iso(f.test_end_ms),
            "fit_seconds": seconds, "fit_info": info,
            "metrics": {m: evaluation.metrics_with_ci(_sample(ms[te], fold_minutes, prob[m][te], ret[m][te], y[te]), boot)
                        for m in models}})
    minutes = np.unique(ms[tested])
    boot = Bootstrap(len(minutes), evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
    samples = {m: _sample(ms[tested], minutes, prob[m][tested], ret[m][tested], y[tested]) for m in models}
    overall = {m: evaluation.metrics_with_ci(samples[m], boot) for m in models}
    # The majority-class rate of the test rows, with its interval: what "no skill" looks like.
    yt = samples[BASELINES[0]].realized
    maj_up = float(np.mean(yt[yt != 0] > 0)) >= 0.5
    majority = evaluation.metrics_with_ci(
        Sample(samples[BASELINES[0]].time_index, np.full(len(yt), 0.75 if maj_up else 0.25), np.zeros(len(yt)), yt), boot)
    zero = int((y == 0).sum())
    importance = {fam: sorted(({"feature": g, "brier_increase": s / n} for g, (s, n) in imp[fam].items() if n),
                              key=lambda r: -r["brier_increase"]) for fam in cfg.families}
    report = {
        "horizon": cfg.horizon, "rows": len(y), "tested_rows": int(tested.sum()), "test_minutes": len(minutes),
        "zero_returns": {"all_rows": zero, "tested_rows": int((yt == 0).sum())},
        "up_rate_tested": float(np.mean(yt[yt != 0] > 0)) if (yt != 0).any() else None,
        "block_minutes": evaluation.block_length(cfg.horizon), "bootstrap_reps": cfg.bootstrap_reps,
        "level": evaluation.LEVEL, "candidates": list(cfg.families), "baselines": list(BASELINES),
        "inputs": cols, "folds": fold_reports, "overall": overall,
        "majority_rate": majority["accuracy"], "importance": importance, "shuffle_labels": cfg.shuffle_labels,
    }
    return Evaluation(report, samples, tested, boot)


def compare_champion(ev: Evaluation, data: pd.DataFrame, best: str, champion, cfg: TrainConfig) -> Comparison:
    """The current champion against the best candidate on tested rows after the champion's training end.

    `passed` means the champion is significantly BETTER (the candidate must then not be promoted).
    """
    against = f"champion v{champion.version}"
    nan = float("nan")
    if champion.feature_version != features.feature_version():
        return Comparison(against + f" (feature version {champion.feature_version}: not comparable)", nan, nan, nan,
                          0, False)
    ms = data["window_ms"].to_numpy(np.int64)[ev.test_mask]
    after = ms > champion.training_end_ms
    if after.sum() < cfg.min_champion_rows:
        return Comparison(against + f" (only {int(after.sum())} tested rows after its training end "
                          f"{iso(champion.training_end_ms)}; need {cfg.min_champion_rows} to compare)",
                          nan, nan, nan, int(after.sum()), False)
    cand, n_min = evaluation.subset(ev.samples[best], after)
    X = data[list(champion.features)].to_numpy(float)[ev.test_mask][after]
    p, r = champion.predictor()(X)
    champ = Sample(cand.time_index, p, r, cand.realized)
    boot = Bootstrap(n_min, evaluation.block_length(cfg.horizon), cfg.bootstrap_reps, cfg.seed)
    return evaluation.compare(champ, cand, f"{best} (by {against})", boot)


def gate(ev: Evaluation, cfg: TrainConfig, champion_check=None) -> dict:
    """The one rule: the best walk-forward Brier among the candidates, then every check.

    Returns {"best", "promoted", "checks": [...], "reasons": {family: words}, "decision": sentence}.
    """
    o = ev.report["overall"]
    fams = list(cfg.families)
    best = min(fams, key=lambda f: (o[f]["brier"]["value"], fams.index(f)))
    checks = []
    for b in BASELINES:
        c = evaluation.compare(ev.samples[best], ev.samples[b], b, ev.boot)
        checks.append({"check": f"beats {b}", "passed": c.passed, "comparison": asdict(c), "words": c.describe()})
    for f in fams:
        if f == best:
            continue
        c = evaluation.compare(ev.samples[f], ev.samples[best], best, ev.boot)
        checks.append({"check": f"not beaten by {f}", "passed": not c.passed, "comparison": asdict(c),
                       "words": f"{f} " + ("beats" if c.passed else "does not significantly beat") +
                       f" {best}: Brier improvement {c.improvement:+.6f} [{c.lo:+.6f}, {c.hi:+.6f}]"})
    leaks = [f for f in fams if o[f]["accuracy"]["value"] > cfg.leak_accuracy]
    leak_list = ", ".join(f"{f} {o[f]['accuracy']['value']:.3f}" for f in leaks)
    checks.append({"check": "no leak", "passed": not leaks, "comparison": None,
                   "words": (f"direction accuracy of {leak_list} "
                             f"is above {cfg.leak_accuracy:.0%}: treated as a leak") if leaks else
                   f"every candidate's direction accuracy is at most {cfg.leak_accuracy:.0%}"})
    if champion_check is not None:
        c = champion_check
        words = (f"the current {c.against.split('(by ')[-1].rstrip(')')} is significantly better on rows after its "
                 f"training end: Brier improvement {c.improvement:+.6f} [{c.lo:+.6f}, {c.hi:+.6f}]" if c.passed else
                 f"not significantly worse than the current champion ({c.against})" if c.rows == 0 else
                 f"not significantly worse than the current champion: its Brier improvement over {best} "
                 f"{c.improvement:+.6f} [{c.lo:+.6f}, {c.hi:+.6f}] over {c.rows} rows")
        checks.append({"check": "not worse than the champion", "passed": not c.passed, "comparison": asdict(c),
                       "words": words})
    if cfg.shuffle_labels:
        checks.append({"check": "real labels", "passed": False, "comparison": None,
                       "words": "shuffled labels: a negative control is never promoted"})
    failed = [c for c in checks if not c["passed"]]
    promoted = not failed
    b_brier = o[best]["brier"]["value"]
    reasons = {}
    for f in fams:
        if f == best:
            reasons[f] = ("promoted: " + "; ".join(c["words"] for c in checks) if promoted else
                          "best walk-forward Brier but not promoted: " + "; ".join(c["words"] for c in failed))
        else:
            reasons[f] = (f"walk-forward Brier {o[f]['brier']['value']:.6f} is worse than {best}'s {b_brier:.6f}"
                          + ("" if promoted else f" (and {best} itself was not promoted)"))
    bl = {b: o[best]["brier"]["value"] - o[b]["brier"]["value"] for b in BASELINES}
    if promoted:
        decision = (f"{best} is promoted to champion: best walk-forward Brier {b_brier:.5f}, significantly better "
                    f"than " + " and ".join(f"{b} ({-bl[b]:+.5f})" for b in BASELINES)
                    + ", and no other candidate beats it.")
    else:
        decision = (f"Nothing is promoted: the best candidate, {best} (Brier {b_brier:.5f}), fails "
                    + "; ".join(c["words"] for c in failed) + ".")
    return {"best": best, "promoted": promoted, "checks": checks, "reasons": reasons, "decision": decision}


def margins(report: dict, family: str) -> dict:
    """The family's margin over each naive baseline: accuracy points and Brier, with paired intervals."""
    o = report["overall"]
    out = {}
    for b in BASELINES:
        c = next((x["comparison"] for x in report["gate"]["checks"] if x["check"] == f"beats {b}"), None)
        out[b] = {"accuracy_points": 100 * (o[family]["accuracy"]["value"] - o[b]["accuracy"]["value"]),
                  "accuracy_lo_vs_baseline_hi": 100 * (o[family]["accuracy"]["lo"] - o[b]["accuracy"]["hi"]),
                  "brier_improvement": c["improvement"] if c else None,
                  "brier_improvement_lo": c["lo"] if c else None, "brier_improvement_hi": c["hi"] if c else None}
    return out


# ---------------------------------------------------------------- the report

def markdown(report: dict) -> str:
    """The report a person reads: candidates x metrics with intervals, margins, importance, the decision."""
    lines = [f"## tickcast-h{report['horizon']}: walk-forward, {report['tested_rows']} tested rows, "
             f"{len(report['folds'])} folds, {report['bootstrap_reps']} block-bootstrap replicates "
             f"({report['block_minutes']} min blocks, {report['level']:.0%} intervals)", "",
             "| model | kind | Brier | log loss | direction accuracy | MAE | R² |", "|---|---|---|---|---|---|---|"]
    for m, mt in report["overall"].items():
        cell = lambda k, f="{:.5f}": f"{f.format(mt[k]['value'])} [{f.format(mt[k]['lo'])}, {f.format(mt[k]['hi'])}]"  # noqa: E731
        kind = "baseline" if m in BASELINES else "candidate"
        lines.append(f"| {m} | {kind} | {cell('brier')} | {cell('log_loss')} | {cell('accuracy', '{:.4f}')} | "
                     f"{cell('mae', '{:.2e}')} | {cell('r2', '{:.4f}')} |")
    mr = report["majority_rate"]
    lines += ["", f"Majority-class rate: {mr['value']:.4f} [{mr['lo']:.4f}, {mr['hi']:.4f}]; zero returns "
              f"(left out of direction metrics): {report['zero_returns']['tested_rows']} tested rows.", ""]
    g = report.get("gate")
    if g:
        best = g["best"]
        lines.append(f"### Margin of {best} (best Brier) over the naive baselines")
        for b, m in report["margins"].items():
            lines.append(f"- vs {b}: {m['accuracy_points']:+.2f} accuracy points; Brier improvement "
                         f"{m['brier_improvement']:+.6f} [{m['brier_improvement_lo']:+.6f}, {m['brier_improvement_hi']:+.6f}]")
        lines += ["", f"### Features that matter to {best} (permutation importance on the test folds, Brier increase)"]
        for r in report["importance"].get(best, [])[:10]:
            lines.append(f"- {r['feature']}: {r['brier_increase']:+.6f}")
        lines += ["", "### Gate"]
        for c in g["checks"]:
            lines.append(f"- [{'x' if c['passed'] else ' '}] {c['check']}: {c['words']}")
        lines += ["", f"**Decision:** {g['decision']}"]
    if report.get("registered"):
        lines += ["", "| candidate | version | alias | reason |", "|---|---|---|---|"]
        for f, r in report["registered"].items():
            lines.append(f"| {f} | {r['version']} | {r['alias']} | {r['reason']} |")
    if report.get("train_seconds") is not None:
        lines.append(f"\nTraining time: {report['train_seconds']:.0f} s (walk-forward {report['walk_forward_seconds']:.0f} s, "
                     f"final fits and registration {report['register_seconds']:.0f} s).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the command

def needed_minutes(cfg: TrainConfig) -> int:
    """Minutes of labelled history a walk-forward needs: every test block `min_blocks_per_fold`
    bootstrap blocks long (fewer, and its intervals say nothing), after the training-only share."""
    return int(np.ceil(cfg.min_blocks_per_fold * evaluation.block_length(cfg.horizon) * cfg.folds / (1 - cfg.initial)))


def enough_history(data: pd.DataFrame, cfg: TrainConfig) -> None:
    """Refuse plainly when there is too little labelled history for the horizon."""
    span = (int(data["window_ms"].max()) - int(data["window_ms"].min())) // features.MINUTE_MS + 1 if len(data) else 0
    need = needed_minutes(cfg)
    if len(data) < 1000 or span < need:
        raise TrainingError(
            f"too little history for horizon {cfg.horizon} min: {len(data)} labelled rows over {span / 1440:.1f} days; "
            f"need at least {need / 1440:.1f} days ({cfg.folds} walk-forward test blocks of "
            f"{cfg.min_blocks_per_fold} x {evaluation.block_length(cfg.horizon)} min after the first "
            f"{cfg.initial:.0%}). Backfill more klines: `tickcast backfill --rest` (TICKCAST_BACKFILL_LOOKBACK_HOURS) "
            "or `tickcast backfill --klines FILE...`")


def train(s: Settings, cfg: TrainConfig, echo=print) -> dict:
    """Evaluate every candidate for `cfg.horizon`, register each, and promote at most one; returns the report.

    The report's `model`, `version` and `alias` are those of the best-Brier candidate (the champion
    when promoted); `registered` lists every candidate's version, alias and reason.
    """
    import mlflow

    from tickcast import model_io  # deferred: heavy (imports mlflow)

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
    del rows
    enough_history(data, cfg)
    echo(f"train: {len(data)} labelled rows, {len(symbols)} symbol(s) ({', '.join(symbols)}), "
         f"{iso(int(data['window_ms'].min()))} .. {iso(int(data['window_ms'].max()))}; "
         f"candidates {', '.join(cfg.families)}")
    ev = evaluate(data, cfg, echo)
    t_wf = time.monotonic() - t_start
    report = ev.report
    report["leakage_guard"] = guard
    report["features"] = model_features(data)
    report["symbols"] = symbols

    client = model_io.configure(s)
    name = model_io.model_name(cfg.horizon)
    champion = model_io.load(s, name, model_io.CHAMPION)
    best0 = min(cfg.families, key=lambda f: (report["overall"][f]["brier"]["value"], list(cfg.families).index(f)))
    champ_check = compare_champion(ev, data, best0, champion, cfg) if champion is not None else None
    g = gate(ev, cfg, champ_check)
    report["gate"] = {"result": "promoted" if g["promoted"] else "not promoted", "reason": g["reasons"][g["best"]],
                      **g}
    report["champion"] = g["best"] if g["promoted"] else None
    report["margins"] = margins(report, g["best"])
    # Kept for readers of the single-model report: the best candidate against each baseline.
    report["comparisons"] = [c["comparison"] for c in g["checks"] if c["comparison"] is not None]

    # Every candidate refitted on all labelled rows and registered; the best last, so that it
    # holds `challenger` when nothing is promoted and `version` is the newest.
    t_reg = time.monotonic()
    y = data["label_return"].to_numpy(float)
    ms = data["window_ms"].to_numpy(np.int64)
    training_end_ms = int(ms.max()) + cfg.horizon * features.MINUTE_MS
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
        for fam in order:
            cols = report["inputs"][fam]
            X = data[cols].to_numpy(np.float32)
            final = fit(fam, X, y, cfg)
            meta = {"horizon": cfg.horizon, "family": fam, "features": cols, "feature_version": version,
                    "training_start_ms": int(ms.min()), "training_end_ms": training_end_ms,
                    "training_end": iso(training_end_ms), "symbols": symbols, "rows": len(data),
                    "baselines": base_params}
            ref = model_io.reference_distribution(X[:, :len(summary)].astype(float), summary, seed=cfg.seed)
            example = pd.DataFrame(X[:5].astype(np.float64), columns=cols)   # the table's doubles: the signature
            with mlflow.start_run(run_name=f"{name} {fam}", nested=True):
                mt = report["overall"][fam]
                mlflow.log_metrics({f"{k}{sfx}": v[key] for k, v in mt.items()
                                    for sfx, key in (("", "value"), ("_lo", "lo"), ("_hi", "hi"))})
                mlflow.set_tags({"family": fam, "training_end": iso(training_end_ms), "feature_version": version})
                _, mv = model_io.log_model(final.model, meta, ref, example, reference_rows=X[-256:])
            promoted = g["promoted"] and fam == g["best"]
            reason = g["reasons"][fam]
            for k, v in {"brier": f"{mt['brier']['value']:.6f}", "accuracy": f"{mt['accuracy']['value']:.4f}",
                         "family": fam, "training_end": iso(training_end_ms), "feature_version": version,
                         "gate": "promoted" if promoted else "not promoted", "gate_reason": reason[:5000],
                         "run_id": run.info.run_id,
                         # What the streaming job needs per batch without downloading artifacts.
                         "meta": json.dumps(meta)}.items():
                client.set_model_version_tag(name, mv, k, v)
            alias = model_io.CHAMPION if promoted else model_io.CHALLENGER
            model_io.set_alias(client, name, alias, mv, reason[:5000])
            registered[fam] = {"version": mv, "alias": alias, "reason": reason}
            echo(f"train: {name} v{mv} ({fam}) -> {alias}")
        if g["promoted"]:   # the best loser keeps `challenger` (aliases are one version each)
            losers = [f for f in order if f != g["best"]]
            if losers:
                model_io.set_alias(client, name, model_io.CHALLENGER, registered[losers[-1]]["version"],
                                   registered[losers[-1]]["reason"][:5000])
        report["registered"] = registered
        report.update(walk_forward_seconds=round(t_wf, 1), register_seconds=round(time.monotonic() - t_reg, 1),
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
    return report
