"""Job `outcomes`: gold.predictions + silver.bars_1m (stream) -> gold.outcomes and gold.model_scores.

New bars are what make outcomes knowable, so the query streams silver.bars_1m. Each micro-batch:

1. The latest bar minute per symbol is advanced (kept in the driver, read from the table once after
   a (re)start).
2. Every prediction whose target bar (window_start + horizon) is at or before its symbol's latest
   bar and that is not in gold.outcomes yet is realized: all of them, not only those near the new
   bars, because predictions may be written after the bars that realize them (a lagging predict
   job, a replay). A prediction whose symbol has no bar at or after its target stays pending.
3. The realized close is the close of the last bar in (window_start, target_time]; minutes without
   trades carry the previous close (the features' convention), so with no bar at all in that range
   it is the prediction's own close and the return is zero. Rows are inserted by an insert-only
   MERGE on (symbol, window_start, horizon, model_name, model_version): a batch re-run after a
   crash adds nothing twice.
4. gold.model_scores gets each model version's rolling scores over the 1 h and 24 h of target
   times up to the batch's latest bar, appended once per batch (Delta txnAppId/txnVersion).

The per-row outcome math (`realize`) and the metrics (`model_scores`) are pure pandas functions;
the metrics are `tickcast.evaluation.per_row`, the definitions training's gate uses.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from jobs.delta_io import QuerySink, read_stream, start_sink
from tickcast.engine.arrow_frames import local_frame
from tickcast.lake.write import append_once, ensure_table
from tickcast import metrics, schemas, tables
from tickcast.evaluation import Sample, per_row
from tickcast.engine.zipimport_cache import cheap_import_invalidation
from tickcast.settings import Settings
from tickcast.timeunits import DAY_MS, HOUR_MS, MINUTE_MS

QUERY = "outcomes"
SCORES_APP_ID = "outcomes-scores"
WINDOWS: tuple[tuple[str, int], ...] = (("1h", HOUR_MS), ("24h", DAY_MS))
ALL_SYMBOLS = "*"
KEY = schemas.OUTCOMES_KEY
# Up to this many pending predictions a batch realizes them in pandas on the driver; a bigger backlog
# goes through the Python workers, one symbol per group.
DRIVER_ROWS = 200_000
# After the first batch of a run, a batch only looks at predictions that were not due at the previous
# batch (target after that batch's latest bar) or that were scored since it started, less this margin
# (a predict batch that started before and committed after the previous snapshot).
RESCAN_MARGIN_MS = HOUR_MS
MAX_SYMBOL_TERMS = 64
# Timestamps travel through pandas as epoch ms (PySpark hands pandas naive local-time datetimes).
# Flooring to ms keeps both comparisons exact, as window_start and target_time are whole minutes;
# the outcome rows take the prediction's own columns from Spark, at full precision.
MS_COLS = ("window_start", "target_time", "training_end", "prediction_time")
# What `realize` reads of a prediction.
INPUT_COLS = ("symbol", "window_start", "horizon", "model_name", "model_version", "target_time", "close", "prob_up",
              "climatology_prob_up", "momentum_prob_up", "training_end", "prediction_time")
DERIVED = ("realized_close", "realized_return", "missing_minutes", "hit", "climatology_hit", "momentum_hit",
           "after_training_end", "made_before_outcome")
SCORE_COLS = ("model_name", "model_version", "horizon", "symbol", "window", "n", "brier", "accuracy", "mae",
              "climatology_brier", "momentum_brier", "climatology_accuracy", "momentum_accuracy")

log = logging.getLogger("tickcast.outcomes")


# --- pure parts --------------------------------------------------------------------------------------

def direction_hit(prob_up, realized_return) -> pd.Series:
    """(prob_up > 0.5) == (return > 0) as a nullable boolean: NULL for a zero return or no probability."""
    p = pd.Series(prob_up, dtype="float64").to_numpy()
    r = pd.Series(realized_return, dtype="float64").to_numpy()
    values = (p > 0.5) == (r > 0)
    mask = (r == 0) | np.isnan(p) | np.isnan(r)
    return pd.Series(pd.arrays.BooleanArray(values, mask))


def realize(preds: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """Predictions of ONE symbol + that symbol's bars -> the predictions with the outcome columns.

    Args:
        preds: at least INPUT_COLS, the MS_COLS as epoch ms; every target bar must be known
            (a bar at or after target_time exists) and `bars` must cover (window_start, target_time].
        bars: `window_ms` (minute start, epoch ms) and `close` (float) of the symbol's bars.
    Returns:
        `preds` with DERIVED appended (same row order).
    """
    b = bars.sort_values("window_ms")
    t = b["window_ms"].to_numpy(dtype="int64")
    c = b["close"].to_numpy(dtype="float64")
    ws = preds["window_start"].to_numpy(dtype="int64")
    tt = preds["target_time"].to_numpy(dtype="int64")
    base = preds["close"].to_numpy(dtype="float64")
    hi = np.searchsorted(t, tt, side="right")          # bars at or before the target
    lo = np.searchsorted(t, ws, side="right")          # bars at or before the prediction's own minute
    n = hi - lo                                        # bars in (window_start, target_time]
    last = c[np.maximum(hi - 1, 0)] if len(c) else np.full(len(preds), np.nan)
    realized_close = np.where(n > 0, last, base)       # no bar since: the close carries
    realized_return = np.log(realized_close / base)
    out = preds.copy()
    out["realized_close"] = realized_close
    out["realized_return"] = realized_return
    out["missing_minutes"] = ((tt - ws) // MINUTE_MS - n).astype("int32")
    out["hit"] = direction_hit(preds["prob_up"], realized_return).to_numpy()
    out["climatology_hit"] = direction_hit(preds["climatology_prob_up"], realized_return).to_numpy()
    out["momentum_hit"] = direction_hit(preds["momentum_prob_up"], realized_return).to_numpy()
    out["after_training_end"] = ws > preds["training_end"].to_numpy(dtype="int64")
    # The target bar's close is known at target_time + 1 minute (its window end).
    out["made_before_outcome"] = preds["prediction_time"].to_numpy(dtype="int64") < tt + MINUTE_MS
    return out


def _metrics(prob_up: np.ndarray, pred_return: np.ndarray, realized: np.ndarray) -> dict[str, float | None]:
    if len(realized) == 0:
        return {"brier": None, "accuracy": None, "mae": None}
    parts = per_row(Sample(np.zeros(len(realized), dtype=int), prob_up, pred_return, realized))

    def ratio(m):
        num, den = parts[m]
        return float(num.sum() / den.sum()) if den.sum() > 0 else None

    return {"brier": ratio("brier"), "accuracy": ratio("accuracy"), "mae": ratio("mae")}


def model_scores(outcomes: pd.DataFrame, latest_ms: int) -> pd.DataFrame:
    """gold.outcomes rows -> rolling scores per (model, version, horizon, symbol and '*', window).

    Windows are the 1 h and 24 h of target times up to `latest_ms` (the latest bar, epoch ms):
    target_time in (latest - window, latest]. Counted rows: after_training_end AND
    made_before_outcome. Brier and accuracy are over counted rows with a nonzero return, MAE over
    all counted rows (tickcast.evaluation.per_row); a baseline's are over the same rows where the
    baseline has a probability. A group appears when it has any outcome in the 24 h window, even
    with n = 0 (metrics NULL then).

    Args:
        outcomes: columns model_name, model_version, horizon, symbol, target_time (epoch ms),
            prob_up, pred_return, realized_return, climatology_prob_up, momentum_prob_up,
            after_training_end, made_before_outcome.
        latest_ms: the window's end.
    Returns:
        One row per group and window, columns SCORE_COLS.
    """
    longest = max(w for _, w in WINDOWS)
    o = outcomes[(outcomes["target_time"] > latest_ms - longest) & (outcomes["target_time"] <= latest_ms)]
    rows: list[dict] = []
    if o.empty:
        return pd.DataFrame(columns=list(SCORE_COLS))
    both = pd.concat([o, o.assign(symbol=ALL_SYMBOLS)], ignore_index=True)
    for (name, version, horizon, symbol), g in both.groupby(["model_name", "model_version", "horizon", "symbol"],
                                                            sort=True):
        counted = g["after_training_end"].astype(bool) & g["made_before_outcome"].astype(bool)
        for window, width in WINDOWS:
            sel = g[counted & (g["target_time"] > latest_ms - width)]
            y = sel["realized_return"].to_numpy(dtype="float64")
            m = _metrics(sel["prob_up"].to_numpy(dtype="float64"), sel["pred_return"].to_numpy(dtype="float64"), y)
            row = {"model_name": name, "model_version": version, "horizon": int(horizon), "symbol": symbol,
                   "window": window, "n": int(len(sel)), **m}
            for base in ("climatology", "momentum"):
                p = sel[f"{base}_prob_up"].to_numpy(dtype="float64")
                ok = ~np.isnan(p)
                bm = _metrics(p[ok], np.zeros(int(ok.sum())), y[ok])
                row[f"{base}_brier"], row[f"{base}_accuracy"] = bm["brier"], bm["accuracy"]
            rows.append(row)
    return pd.DataFrame(rows, columns=list(SCORE_COLS))


def live_scores(outcomes: pd.DataFrame, scores: pd.DataFrame) -> list[tuple[int, str, int, dict]]:
    """The served version's scores per (horizon, window), all symbols, beside the baselines' (pure).

    The served version of a horizon is the one whose prediction has the latest target time.

    Returns:
        (horizon, window, n, {predictor: (hit ratio, Brier)}) with predictors model, climatology, momentum.
    """
    def num(v):
        return None if v is None or pd.isna(v) else float(v)

    out = []
    for horizon, g in outcomes.groupby("horizon", sort=True):
        served = str(g.loc[g["target_time"].idxmax(), "model_version"])
        rows = scores[(scores["horizon"] == int(horizon)) & (scores["symbol"] == ALL_SYMBOLS)
                      & (scores["model_version"].astype(str) == served)]
        for r in rows.itertuples(index=False):
            per = {"model": (num(r.accuracy), num(r.brier)),
                   "climatology": (num(r.climatology_accuracy), num(r.climatology_brier)),
                   "momentum": (num(r.momentum_accuracy), num(r.momentum_brier))}
            out.append((int(horizon), str(r.window), int(r.n), per))
    return out


# --- Spark side --------------------------------------------------------------------------------------

def _realized_names() -> list[str]:
    return [*KEY, *DERIVED]


def _realized_ddl() -> str:
    types = {c.name: c.type for c in schemas.OUTCOMES.cols}
    return ", ".join(f"`{c}` {'bigint' if c in MS_COLS else types[c]}" for c in _realized_names())


def _realize_group(key, preds: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """cogroup step (runs in a Python worker): one symbol's pending predictions and bars."""
    cheap_import_invalidation()
    if preds.empty:
        return pd.DataFrame(columns=_realized_names())
    return realize(preds, bars)[_realized_names()]


def realize_frames(preds: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """`realize` for several symbols at once (bars carry a `symbol` column too)."""
    parts = [realize(p, bars[bars["symbol"] == sym]) for sym, p in preds.groupby("symbol", sort=False)]
    return pd.concat(parts, ignore_index=True)[_realized_names()] if parts else pd.DataFrame(columns=_realized_names())


def candidates(latest: dict[str, int], since_ms: int):
    """Predictions a batch may still have to realize, given what the previous one realized.

    Those not due then (target after their symbol's latest bar of that batch; symbols it did not
    know: all) and those scored since it started, less RESCAN_MARGIN_MS. A literal predicate on
    gold.predictions / gold.outcomes columns, so Delta's file statistics skip the rest.
    """
    from pyspark.sql import functions as F

    recent = F.col("prediction_time") >= _lit_ts(since_ms - RESCAN_MARGIN_MS)
    if not latest:
        return F.lit(True)
    if len(latest) > MAX_SYMBOL_TERMS:   # many symbols: one bound, the oldest of them
        return recent | (F.col("target_time") > _lit_ts(min(latest.values())))
    known = F.col("symbol").isin(*sorted(latest))
    cond = recent | ~known
    for sym, ms in sorted(latest.items()):
        cond = cond | ((F.col("symbol") == sym) & (F.col("target_time") > _lit_ts(ms)))
    return cond


def _lit_ts(ms: int):
    from pyspark.sql import functions as F

    return F.timestamp_millis(F.lit(int(ms)))


class OutcomeWriter(QuerySink):
    """foreachBatch sink: realize what the bars made knowable, insert-only; then the rolling scores."""

    def __init__(self, s: Settings, driver_rows: int | None = None):
        super().__init__()
        self.s = s
        self.driver_rows = DRIVER_ROWS if driver_rows is None else driver_rows
        self.latest: dict[str, int] | None = None   # symbol -> latest bar minute (epoch ms)
        # What the previous batch of this run realized up to: (latest per symbol, its start time).
        self.done_upto: tuple[dict[str, int], int] | None = None
        self.predictions_exist = False

    def _load_latest(self, spark) -> dict[str, int]:
        from pyspark.sql import functions as F

        df = (spark.read.format("delta").load(tables.BARS.path(self.s))
              .groupBy("symbol").agg(F.max(F.unix_millis("window_start")).alias("ms")))
        return {r["symbol"]: int(r["ms"]) for r in df.collect()}

    def __call__(self, batch, batch_id: int) -> None:
        import time

        # One literal time for the whole batch (not current_timestamp() re-evaluated per action).
        spark, now_ms = batch.sparkSession, int(time.time() * 1000)
        self._advance_latest(spark, batch)
        if not self.latest or not self._predictions_exist(spark):
            return
        inserted = self.realize_pending(spark, now_ms)
        self.write_scores(spark, batch_id, now_ms)
        log.info("outcomes batch %d: %d realized", batch_id, inserted)

    def _advance_latest(self, spark, batch) -> None:
        """The latest bar minute per symbol, advanced by the batch's bars."""
        from pyspark.sql import functions as F

        new = {r["symbol"]: int(r["ms"]) for r in
               batch.groupBy("symbol").agg(F.max(F.unix_millis("window_start")).alias("ms")).collect()}
        if self.latest is None:
            self.latest = self._load_latest(spark)
        for sym, ms in new.items():
            self.latest[sym] = max(self.latest.get(sym, ms), ms)

    def _predictions_exist(self, spark) -> bool:
        from delta.tables import DeltaTable

        if not self.predictions_exist:
            if not DeltaTable.isDeltaTable(spark, tables.PREDICTIONS.path(self.s)):
                log.info("outcomes: %s does not exist yet (the predict job creates it)", tables.PREDICTIONS.name)
                return False
            self.predictions_exist = True
        return True

    def realize_pending(self, spark, now_ms: int) -> int:
        """Insert the outcomes of every pending prediction whose target bar is known; returns the count."""
        pending = self._pending(spark).persist()
        try:
            n, rows, window_span = self._realized(spark, pending, now_ms)
            if n:
                self._merge(rows, window_span)
            self.done_upto = (dict(self.latest), now_ms)      # only once the MERGE has committed
            return n
        finally:
            pending.unpersist()

    def _pending(self, spark):
        """Predictions whose target bar is known and that are not in gold.outcomes yet."""
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        hi = max(self.latest.values())
        pred_path = tables.PREDICTIONS.path(self.s)
        # One snapshot of the predictions for the whole batch (the predict job appends meanwhile).
        version = DeltaTable.forPath(spark, pred_path).history(1).select("version").first()["version"]
        latest = local_frame(spark, sorted(self.latest.items()), "symbol string, latest_ms bigint")
        due = (spark.read.format("delta").option("versionAsOf", version).load(pred_path)
               .where(F.col("target_time") <= _lit_ts(hi))             # literal: file skipping
               .join(F.broadcast(latest), "symbol")
               .where(F.unix_millis("target_time") <= F.col("latest_ms")).drop("latest_ms"))
        done = (spark.read.format("delta").load(tables.OUTCOMES.path(self.s))
                .where(F.col("target_time") <= _lit_ts(hi)))
        if self.done_upto is not None:
            # Bound the scan: both sides get the same literal predicate, so Delta skips old files.
            recent = candidates(*self.done_upto)
            due, done = due.where(recent), done.where(recent)
        done = done.select(*KEY)
        # dropDuplicates: the predictions' key is unique by contract; this keeps outcomes unique even if not.
        return due.join(done, list(KEY), "left_anti").dropDuplicates(list(KEY))

    def _realized(self, spark, pending, now_ms: int):
        """(count, gold.outcomes rows, (min, max) window start in epoch ms) of the pending predictions;
        (0, None, None) when there are none."""
        from pyspark.sql import functions as F

        inputs = pending.select(*[F.unix_millis(c).alias(c) if c in MS_COLS else c for c in INPUT_COLS])
        # The usual batch (a minute's predictions) fits the driver: one collect gives the rows and
        # their bounds, and pandas realizes them with no Python-worker round trip.
        small = inputs.limit(self.driver_rows + 1).toPandas()
        if len(small) <= self.driver_rows:
            n = len(small)
            if not n:
                return 0, None, None
            ws_lo, ws_hi = int(small["window_start"].min()), int(small["window_start"].max())
            t_hi = int(small["target_time"].max())
        else:
            small = None
            b = pending.agg(F.count(F.lit(1)).alias("n"), F.min(F.unix_millis("window_start")).alias("ws_lo"),
                            F.max(F.unix_millis("window_start")).alias("ws_hi"),
                            F.max(F.unix_millis("target_time")).alias("t_hi")).first()
            n, ws_lo, ws_hi, t_hi = b["n"], b["ws_lo"], b["ws_hi"], b["t_hi"]
        bars = (spark.read.format("delta").load(tables.BARS.path(self.s))
                .where((F.col("window_start") > _lit_ts(ws_lo)) & (F.col("window_start") <= _lit_ts(t_hi)))
                .select("symbol", F.unix_millis("window_start").alias("window_ms"),
                        F.col("close").cast("double").alias("close")))
        if small is not None:
            realized = spark.createDataFrame(realize_frames(small, bars.toPandas()), _realized_ddl())
        else:
            # A backlog (first run after a long backfill, a replay): per symbol in the Python workers.
            realized = (inputs.groupBy("symbol").cogroup(bars.groupBy("symbol"))
                        .applyInPandas(_realize_group, _realized_ddl()))
        realized = realized.withColumn("window_start", F.timestamp_millis("window_start"))
        rows = (pending.join(realized, list(KEY))
                .select(*schemas.PREDICTIONS.names, *DERIVED, _lit_ts(now_ms).alias("outcome_time"))
                .select(*schemas.OUTCOMES.names))
        return int(n), rows, (ws_lo, ws_hi)

    def _merge(self, rows, window_span: tuple[int, int]) -> None:
        """Insert-only MERGE of the outcome rows on the key, bounded by their window starts."""
        from delta.tables import DeltaTable

        ws_lo, ws_hi = window_span
        rows = rows.persist()   # the MERGE must see exactly what was computed once
        try:
            cond = (" AND ".join(f"t.{k} = s.{k}" for k in KEY)
                    + f" AND t.window_start BETWEEN timestamp_millis({ws_lo}) AND timestamp_millis({ws_hi})")
            (DeltaTable.forPath(rows.sparkSession, tables.OUTCOMES.path(self.s)).alias("t")
             .merge(rows.alias("s"), cond).whenNotMatchedInsertAll().execute())
        finally:
            rows.unpersist()

    def write_scores(self, spark, batch_id: int, now_ms: int) -> None:
        """Append this batch's rolling scores once (a re-run batch finds its txnVersion committed)."""
        from pyspark.sql import functions as F

        hi = max(self.latest.values())
        longest = max(w for _, w in WINDOWS)
        cols = ["model_name", "model_version", "horizon", "symbol", "prob_up", "pred_return", "realized_return",
                "climatology_prob_up", "momentum_prob_up", "after_training_end", "made_before_outcome"]
        df = (spark.read.format("delta").load(tables.OUTCOMES.path(self.s))
              .where((F.col("target_time") > _lit_ts(hi - longest)) & (F.col("target_time") <= _lit_ts(hi)))
              .select(*cols, F.unix_millis("target_time").alias("target_time")).toPandas())
        if df.empty:
            return
        scores = model_scores(df, hi)
        if scores.empty:
            return
        for horizon, window, n, per in live_scores(df, scores):
            metrics.set_live_scores(horizon, window, n, per)

        def val(v):
            v = v.item() if isinstance(v, np.generic) else v
            return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

        data = [tuple(val(v) for v in r) for r in scores.itertuples(index=False, name=None)]
        out = (local_frame(spark, data, _scores_type())
               .select(_lit_ts(now_ms).alias("computed_at"), F.lit(batch_id).cast("bigint").alias("batch_id"),
                       *SCORE_COLS)
               .select(*schemas.MODEL_SCORES.names))
        # Keyed by the query's id, not a constant: after a deleted checkpoint the batch ids start at
        # 0 again, and a constant id made every append up to the old run's last batch a "re-run".
        append_once(out, tables.MODEL_SCORES.path(self.s), self.app_id(SCORES_APP_ID), batch_id)


def _scores_type():
    """SCORE_COLS with their gold.model_scores types (NULL-able doubles stay None, not NaN)."""
    from pyspark.sql.types import StructType

    types = {c.name: c.type for c in schemas.MODEL_SCORES.cols}
    return StructType.fromDDL(", ".join(f"`{c}` {types[c]}" for c in SCORE_COLS))


def start(spark, s: Settings, available_now: bool = False):
    """Start the outcomes query on the silver.bars_1m stream; returns the StreamingQuery."""
    for t in (tables.BARS, tables.OUTCOMES, tables.MODEL_SCORES):
        ensure_table(spark, t, s)
    bars = read_stream(spark, tables.BARS, s).select("symbol", "window_start")
    # Its own trigger (TICKCAST_OUTCOMES_TRIGGER_SECONDS, 30 s: at :00 and :30): a batch takes seconds of
    # both cores, and run on each new bar it ran exactly while features and predict worked on that bar.
    # Triggers fall on multiples of the interval, so at 30 s it realizes a minute's outcomes at :30,
    # after that minute's predictions (bars close at ~:08).
    return start_sink(bars, QUERY, OutcomeWriter(s), s, available_now, trigger_seconds=s.outcomes_trigger_seconds)
