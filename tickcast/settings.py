"""The one place that reads the environment: every `TICKCAST_*` setting, validated at start.

Other modules take a `Settings` object (usually from `load()`); none reads `os.environ`.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

PREFIX = "TICKCAST_"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a bad value; the message starts with the setting's name."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    lake_uri: str
    checkpoint_uri: str
    kafka_bootstrap: str
    topic: str
    trigger_seconds: float
    ingest_phase_seconds: float   # ingest's batches start this long after each trigger boundary (jobs/trigger_phase.py)
    bars_trigger_seconds: float   # the bars query's own trigger
    outcomes_trigger_seconds: float  # the outcomes query's own trigger (off the bar -> prediction path)
    minute_trigger_seconds: float    # features and predict: input once a minute, idle polls cheap
    watermark_seconds: int
    mlflow_uri: str
    binance_ws_url: str
    binance_rest_url: str
    # Local platform (not in CONTRACTS.md's table: they only shape the embedded run).
    kafka_controller_port: int
    kafka_heap: str
    topic_partitions: int
    topic_retention_hours: float
    max_offsets_per_trigger: int  # 0 = no limit
    jars_dir: Path
    spark_master: str
    spark_driver_memory: str
    max_event_bytes: int
    max_future_skew_seconds: int
    # Live Binance source (issue 4).
    binance_ws_lifetime_seconds: float      # rotate each WebSocket before this age (Binance cuts at 24 h)
    binance_rest_weight_per_minute: int     # REST weight the producer spends per minute at most
    backfill_lookback_hours: float          # klines loaded over REST at the start of `up --source live`; 0 = none
    producer_metrics_port: int              # Prometheus endpoint of the live producer; 0 = off
    producer_metrics_host: str              # its bind address; loopback unless set
    metrics_port: int                       # the streaming stack's Prometheus endpoint (the Spark driver); 0 = off
    metrics_host: str                       # its bind address; loopback unless set
    spark_ui_host: str                      # bind address of the local Spark UI (SPARK_LOCAL_IP); loopback unless set
    # Predictions, outcomes and drift (issue 7).
    horizons: tuple[int, ...]               # minutes ahead; one registered model tickcast-h<H> each
    model_ref: str                          # alias or version number the predict job scores with
    drift_window_hours: float               # live feature window compared with the training reference
    drift_psi_threshold: float              # PSI above this flags a feature as drifted
    max_files_per_trigger: int              # Delta-sourced streams: files per micro-batch at most (bounds catch-up)
    # Prediction service (issue 22).
    serve_host: str                         # bind address of `tickcast serve`; loopback unless set
    serve_port: int
    serve_workers: int                      # gunicorn worker processes
    serve_admin_token: str                  # bearer token for POST /v1/models/reload; empty = reload refused (401)
    serve_api_keys: tuple[str, ...]         # keys accepted on the predict routes (X-API-Key); empty = open
    serve_reload_seconds: float             # each worker re-reads the model aliases this often
    serve_max_rows: int                     # rows per POST /v1/predict (and V2 infer) at most; more is a 413
    serve_feed_seconds: float               # the registry watcher publishes the newest feature rows this often
    # Dashboard (issue 23).
    dashboard_host: str                     # bind address of `tickcast dashboard`; loopback unless set
    dashboard_port: int
    dashboard_refresh_seconds: float        # pages re-read the tables this often
    dashboard_cache_dir: str                # the read caches kept on disk across restarts; "" = off
    alert_bar_age_seconds: float            # newest bar older than this -> red status
    alert_freshness_seconds: float          # bar end -> prediction commit above this -> red
    alert_lag_seconds: float                # Kafka lag (seconds) above this -> red
    alert_batch_seconds: float              # a query's batch duration above this -> red
    alert_quarantine_ratio: float           # quarantined / ingested records (5 min) above this -> alert
    alert_min_outcomes: int                 # live outcomes (24 h) before a champion is judged against the baselines
    alert_model_age_seconds: float          # served version's training data older than this -> stale champion
    # Model lifecycle (issue 32): durations as written (`24h`, `90d`); `duration_seconds` reads them.
    retrain_every: str                      # the retrainer retrains each horizon this often
    train_window: str                       # ... on this much of silver.features, up to its newest row
    decay_window: str                       # live outcomes (by bar time) a champion is judged on
    decay_min_outcomes: int                 # ... and at least this many of them, else no judgement
    model_max_age: str                      # a champion whose training data ended longer ago is flagged; off = never

    @property
    def retrain_every_s(self) -> float:
        return duration_seconds(self.retrain_every)

    @property
    def train_window_s(self) -> float:
        return duration_seconds(self.train_window)

    @property
    def decay_window_s(self) -> float:
        return duration_seconds(self.decay_window)

    @property
    def model_max_age_s(self) -> float | None:
        return None if self.model_max_age == "off" else duration_seconds(self.model_max_age)

    @property
    def kafka_host(self) -> str:
        return self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[0]

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])

    @property
    def python(self) -> str:
        """The interpreter Spark's Python workers must run (otherwise they run `python3` from PATH, not this venv)."""
        return sys.executable

    def child_env(self) -> dict[str, str]:
        """Environment for a child process (broker, job) that must see these same settings."""
        env = dict(os.environ)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            env[PREFIX + f.name.upper()] = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
        env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = self.python
        return env

    def pin_worker_python(self) -> None:
        """Make Spark's Python workers run this interpreter in this process.

        PySpark takes the workers' interpreter from PYSPARK_PYTHON when the SparkContext starts
        (the `spark.pyspark.python` conf only reaches spark-submit), and defaults to `python3`.
        """
        os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = self.python

    def pin_spark_bind_address(self) -> None:
        """Make the local Spark driver's UI listen on `spark_ui_host` (Spark's web UI binds to
        SPARK_LOCAL_IP, read from the environment when the JVM starts, else to 0.0.0.0)."""
        os.environ["SPARK_LOCAL_IP"] = self.spark_ui_host

    def quiet_tensorflow(self) -> None:
        """Keep TensorFlow's C++ start-up chatter out of CLI output (read by TF when it is imported)."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _int(name: str, raw: str, minimum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}: expected an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{PREFIX}{name}: must be >= {minimum}, got {value}")
    return value


def _float(name: str, raw: str, minimum: float = 0.0, strict: bool = True) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}: expected a number, got {raw!r}") from None
    if value != value or (value <= minimum if strict else value < minimum):
        raise SettingsError(f"{PREFIX}{name}: must be {'>' if strict else '>='} {minimum}, got {raw}")
    return value


def _horizons(raw: str) -> tuple[int, ...]:
    try:
        hs = tuple(sorted({int(x) for x in raw.split(",") if x.strip()}))
    except ValueError:
        raise SettingsError(f"{PREFIX}HORIZONS: expected minutes such as 1,5,15, got {raw!r}") from None
    if not hs or not all(1 <= h <= 1440 for h in hs):
        raise SettingsError(f"{PREFIX}HORIZONS: expected minutes between 1 and 1440, got {raw!r}")
    return hs


_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:(\d{1,5})$")
_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
_MEM = re.compile(r"^\d+[kmgKMG]$")
_URL = re.compile(r"^[a-z][a-z0-9+.\-]*://\S+$")
_HOST = re.compile(r"^[A-Za-z0-9_.\-:]{1,253}$")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(raw: str) -> float:
    """`90s`, `30m`, `24h`, `90d`, `2w` -> seconds (a bare number is seconds); ValueError otherwise."""
    m = _DURATION.match(raw.strip().lower()) or re.match(r"^(\d+(?:\.\d+)?)()$", raw.strip())
    if not m:
        raise ValueError(raw)
    return float(m.group(1)) * _UNIT_SECONDS.get(m.group(2) or "s", 1)


def _duration(name: str, raw: str, off: bool = False) -> str:
    """A positive duration (or `off` where allowed), returned as written (children re-read it)."""
    if off and raw.lower() in ("off", "0", "none"):
        return "off"
    try:
        seconds = duration_seconds(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}: expected a duration such as 30m, 24h or 90d"
                            f"{' (or off)' if off else ''}, got {raw!r}") from None
    if seconds <= 0:
        raise SettingsError(f"{PREFIX}{name}: must be > 0, got {raw!r}")
    return raw.lower().replace(" ", "")


def _port(name: str, raw: str) -> int:
    value = _int(name, raw, minimum=1)
    if value > 65535:
        raise SettingsError(f"{PREFIX}{name}: not a port: {value}")
    return value


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings from `env` (default: the process environment).

    Raises:
        SettingsError: naming the first setting whose value is unusable.
    """
    env = os.environ if env is None else env

    def get(name: str, default: str) -> str:
        raw = env.get(PREFIX + name)
        return default if raw is None or raw.strip() == "" else raw.strip()

    data_dir = Path(get("DATA_DIR", ".data")).expanduser().absolute()
    lake_uri = get("LAKE_URI", str(data_dir / "delta"))
    checkpoint_uri = get("CHECKPOINT_URI", str(data_dir / "checkpoints"))

    bootstrap = get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    for hp in bootstrap.split(","):
        m = _HOSTPORT.match(hp.strip())
        if not m or not 0 < int(m.group(1)) < 65536:
            raise SettingsError(f"{PREFIX}KAFKA_BOOTSTRAP: expected host:port[,host:port...], got {bootstrap!r}")

    topic = get("TOPIC", "ticks")
    if not _TOPIC.match(topic):
        raise SettingsError(f"{PREFIX}TOPIC: not a legal Kafka topic name: {topic!r}")

    trigger = _float("TRIGGER_SECONDS", get("TRIGGER_SECONDS", "1"))
    # Spark fires on multiples of the interval, i.e. on whole seconds, when minutes end; a batch
    # a little later carries the first trades of the new minute, which close the minute's bars.
    ingest_phase = _float("INGEST_PHASE_SECONDS", get("INGEST_PHASE_SECONDS", "0.4"), strict=False)
    if ingest_phase >= trigger:
        raise SettingsError(f"{PREFIX}INGEST_PHASE_SECONDS: must be < TICKCAST_TRIGGER_SECONDS ({trigger:g}), "
                            f"got {ingest_phase:g}")
    bars_trigger = _float("BARS_TRIGGER_SECONDS", get("BARS_TRIGGER_SECONDS", "0.5"))
    outcomes_trigger = _float("OUTCOMES_TRIGGER_SECONDS", get("OUTCOMES_TRIGGER_SECONDS", "30"))
    minute_trigger = _float("MINUTE_TRIGGER_SECONDS", get("MINUTE_TRIGGER_SECONDS", "0.25"))
    watermark = _int("WATERMARK_SECONDS", get("WATERMARK_SECONDS", "5"), minimum=0)

    mlflow_uri = get("MLFLOW_URI", f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}")
    ws_url = get("BINANCE_WS_URL", "wss://stream.binance.com:9443")
    rest_url = get("BINANCE_REST_URL", "https://api.binance.com")
    for name, url in (("MLFLOW_URI", mlflow_uri), ("BINANCE_WS_URL", ws_url), ("BINANCE_REST_URL", rest_url)):
        if not _URL.match(url) and not (name == "MLFLOW_URI" and url.startswith("/")):
            raise SettingsError(f"{PREFIX}{name}: expected a URL, got {url!r}")
    for name, uri in (("LAKE_URI", lake_uri), ("CHECKPOINT_URI", checkpoint_uri)):
        if not (uri.startswith("/") or _URL.match(uri)):
            raise SettingsError(f"{PREFIX}{name}: expected an absolute path or a URI, got {uri!r}")

    controller_port = _int("KAFKA_CONTROLLER_PORT", get("KAFKA_CONTROLLER_PORT", "9093"), minimum=1)
    if controller_port > 65535:
        raise SettingsError(f"{PREFIX}KAFKA_CONTROLLER_PORT: not a port: {controller_port}")
    heap = get("KAFKA_HEAP", "512m")
    if not _MEM.match(heap):
        raise SettingsError(f"{PREFIX}KAFKA_HEAP: expected a JVM size such as 512m, got {heap!r}")
    driver_memory = get("SPARK_DRIVER_MEMORY", "2g")
    if not _MEM.match(driver_memory):
        raise SettingsError(f"{PREFIX}SPARK_DRIVER_MEMORY: expected a JVM size such as 2g, got {driver_memory!r}")

    metrics_port = _int("PRODUCER_METRICS_PORT", get("PRODUCER_METRICS_PORT", "9108"), minimum=0)
    if metrics_port > 65535:
        raise SettingsError(f"{PREFIX}PRODUCER_METRICS_PORT: not a port: {metrics_port}")

    stack_metrics_port = _int("METRICS_PORT", get("METRICS_PORT", "9109"), minimum=0)
    if stack_metrics_port > 65535:
        raise SettingsError(f"{PREFIX}METRICS_PORT: not a port: {stack_metrics_port}")

    horizons = _horizons(get("HORIZONS", "1,5"))
    model_ref = get("MODEL_REF", "champion")
    if not re.match(r"^([a-z][a-z0-9_-]{0,63}|[0-9]{1,9})$", model_ref):
        raise SettingsError(f"{PREFIX}MODEL_REF: expected an alias (champion, challenger, ...) or a version "
                            f"number, got {model_ref!r}")

    serve_host = get("SERVE_HOST", "127.0.0.1")
    dashboard_host = get("DASHBOARD_HOST", "127.0.0.1")
    metrics_host = get("PRODUCER_METRICS_HOST", "127.0.0.1")
    stack_metrics_host = get("METRICS_HOST", "127.0.0.1")
    spark_ui_host = get("SPARK_UI_HOST", "127.0.0.1")
    for name, host in (("SERVE_HOST", serve_host), ("DASHBOARD_HOST", dashboard_host),
                       ("PRODUCER_METRICS_HOST", metrics_host), ("METRICS_HOST", stack_metrics_host),
                       ("SPARK_UI_HOST", spark_ui_host)):
        if not _HOST.match(host):
            raise SettingsError(f"{PREFIX}{name}: expected a host name or IP address, got {host!r}")
    api_keys = tuple(k.strip() for k in get("SERVE_API_KEYS", "").split(",") if k.strip())
    retrain_every = _duration("RETRAIN_EVERY", get("RETRAIN_EVERY", "24h"))
    train_window = _duration("TRAIN_WINDOW", get("TRAIN_WINDOW", "90d"))
    decay_window = _duration("DECAY_WINDOW", get("DECAY_WINDOW", "24h"))
    if duration_seconds(train_window) < 86400:
        raise SettingsError(f"{PREFIX}TRAIN_WINDOW: must be at least 1d (walk-forward folds need days), "
                            f"got {train_window!r}")

    return Settings(
        data_dir=data_dir,
        lake_uri=lake_uri.rstrip("/"),
        checkpoint_uri=checkpoint_uri.rstrip("/"),
        kafka_bootstrap=bootstrap,
        topic=topic,
        trigger_seconds=trigger,
        ingest_phase_seconds=ingest_phase,
        bars_trigger_seconds=bars_trigger,
        outcomes_trigger_seconds=outcomes_trigger,
        minute_trigger_seconds=minute_trigger,
        watermark_seconds=watermark,
        mlflow_uri=mlflow_uri,
        binance_ws_url=ws_url.rstrip("/"),
        binance_rest_url=rest_url.rstrip("/"),
        kafka_controller_port=controller_port,
        kafka_heap=heap,
        topic_partitions=_int("TOPIC_PARTITIONS", get("TOPIC_PARTITIONS", "2"), minimum=1),
        topic_retention_hours=_float("TOPIC_RETENTION_HOURS", get("TOPIC_RETENTION_HOURS", "168")),
        max_offsets_per_trigger=_int("MAX_OFFSETS_PER_TRIGGER", get("MAX_OFFSETS_PER_TRIGGER", "0"), minimum=0),
        jars_dir=Path(get("JARS_DIR", str(REPO_ROOT / ".cache" / "jars"))).expanduser().absolute(),
        spark_master=get("SPARK_MASTER", "local[2]"),
        spark_driver_memory=driver_memory,
        max_event_bytes=_int("MAX_EVENT_BYTES", get("MAX_EVENT_BYTES", "4096"), minimum=64),
        max_future_skew_seconds=_int("MAX_FUTURE_SKEW_SECONDS", get("MAX_FUTURE_SKEW_SECONDS", "300"), minimum=0),
        binance_ws_lifetime_seconds=_float("BINANCE_WS_LIFETIME_SECONDS", get("BINANCE_WS_LIFETIME_SECONDS", "82800")),
        binance_rest_weight_per_minute=_int("BINANCE_REST_WEIGHT_PER_MINUTE",
                                            get("BINANCE_REST_WEIGHT_PER_MINUTE", "6000"), minimum=1),
        backfill_lookback_hours=_float("BACKFILL_LOOKBACK_HOURS", get("BACKFILL_LOOKBACK_HOURS", "2160"), strict=False),
        producer_metrics_port=metrics_port,
        producer_metrics_host=metrics_host,
        metrics_port=stack_metrics_port,
        metrics_host=stack_metrics_host,
        spark_ui_host=spark_ui_host,
        horizons=horizons,
        model_ref=model_ref,
        drift_window_hours=_float("DRIFT_WINDOW_HOURS", get("DRIFT_WINDOW_HOURS", "24")),
        drift_psi_threshold=_float("DRIFT_PSI_THRESHOLD", get("DRIFT_PSI_THRESHOLD", "0.2")),
        max_files_per_trigger=_int("MAX_FILES_PER_TRIGGER", get("MAX_FILES_PER_TRIGGER", "1000"), minimum=1),
        serve_host=serve_host,
        serve_port=_port("SERVE_PORT", get("SERVE_PORT", "8000")),
        serve_workers=_int("SERVE_WORKERS", get("SERVE_WORKERS", "2"), minimum=1),
        serve_admin_token=get("SERVE_ADMIN_TOKEN", ""),
        serve_api_keys=api_keys,
        serve_reload_seconds=_float("SERVE_RELOAD_SECONDS", get("SERVE_RELOAD_SECONDS", "5")),
        serve_max_rows=_int("SERVE_MAX_ROWS", get("SERVE_MAX_ROWS", "1000"), minimum=1),
        serve_feed_seconds=_float("SERVE_FEED_SECONDS", get("SERVE_FEED_SECONDS", "0.25")),
        dashboard_host=dashboard_host,
        dashboard_port=_port("DASHBOARD_PORT", get("DASHBOARD_PORT", "8050")),
        dashboard_refresh_seconds=_float("DASHBOARD_REFRESH_SECONDS", get("DASHBOARD_REFRESH_SECONDS", "5")),
        dashboard_cache_dir=get("DASHBOARD_CACHE_DIR", str(data_dir / "dashboard-cache")),
        alert_bar_age_seconds=_float("ALERT_BAR_AGE_SECONDS", get("ALERT_BAR_AGE_SECONDS", "180")),
        alert_freshness_seconds=_float("ALERT_FRESHNESS_SECONDS", get("ALERT_FRESHNESS_SECONDS", "10")),
        alert_lag_seconds=_float("ALERT_LAG_SECONDS", get("ALERT_LAG_SECONDS", "30")),
        alert_batch_seconds=_float("ALERT_BATCH_SECONDS", get("ALERT_BATCH_SECONDS", "5")),
        alert_quarantine_ratio=_float("ALERT_QUARANTINE_RATIO", get("ALERT_QUARANTINE_RATIO", "0.01")),
        alert_min_outcomes=_int("ALERT_MIN_OUTCOMES", get("ALERT_MIN_OUTCOMES", "100"), minimum=1),
        alert_model_age_seconds=_float("ALERT_MODEL_AGE_SECONDS", get("ALERT_MODEL_AGE_SECONDS", "172800")),
        retrain_every=retrain_every,
        train_window=train_window,
        decay_window=decay_window,
        decay_min_outcomes=_int("DECAY_MIN_OUTCOMES", get("DECAY_MIN_OUTCOMES", "720"), minimum=1),
        model_max_age=_duration("MODEL_MAX_AGE", get("MODEL_MAX_AGE", "off"), off=True),
    )


# What each setting means, by field: rendered as docs/configuration.md by `python -m tickcast.settings`
# (a unit test keeps that file and this table in step with the Settings fields).
HELP: dict[str, str] = {
    "data_dir": "local state: Kafka log, MLflow store, tables, checkpoints, logs, the writer lock",
    "lake_uri": "root of the Delta tables (`s3a://...` on Kubernetes)",
    "checkpoint_uri": "streaming checkpoints, one folder per query",
    "kafka_bootstrap": "Kafka bootstrap servers (the local broker listens here)",
    "topic": "the raw trade topic",
    "trigger_seconds": "micro-batch trigger interval",
    "ingest_phase_seconds": "ingest's micro-batches start this long after each trigger boundary (Spark fires a 1 s "
                            "trigger on whole seconds, when minutes end; a batch a little later carries the trades "
                            "that close the minute's bars); 0 keeps Spark's alignment; below the trigger interval",
    "bars_trigger_seconds": "the bars query's own trigger: a minute closes in the first bars batch that finds it "
                            "final (its trade ids complete past its end, or the watermark past it)",
    "outcomes_trigger_seconds": "the outcomes query's own trigger, off the bar -> prediction path",
    "minute_trigger_seconds": "the trigger of features and predict, whose input comes once a minute",
    "watermark_seconds": "how late a trade may arrive (by trade time) and still count in its bar",
    "mlflow_uri": "MLflow tracking and registry (default: SQLite + artifacts under the data directory)",
    "binance_ws_url": "Binance WebSocket endpoint (tests point it at the stand-in exchange on 127.0.0.1)",
    "binance_rest_url": "Binance REST endpoint (likewise)",
    "kafka_controller_port": "the local broker's KRaft controller port",
    "kafka_heap": "the local broker's JVM heap",
    "topic_partitions": "partitions of the topic when tickcast creates it",
    "topic_retention_hours": "retention of the topic when tickcast creates it",
    "max_offsets_per_trigger": "cap on records per ingest micro-batch; 0 = no limit",
    "jars_dir": "where set-up put the broker jars",
    "spark_master": "Spark master",
    "spark_driver_memory": "Spark driver memory",
    "max_event_bytes": "larger Kafka values are quarantined as oversized",
    "max_future_skew_seconds": "trades this far past the ingest clock are quarantined",
    "binance_ws_lifetime_seconds": "the live producer rotates each WebSocket at this age (Binance cuts at 24 h)",
    "binance_rest_weight_per_minute": "REST weight the live producer spends per minute at most (gap-fill, klines)",
    "backfill_lookback_hours": "hours of 1m klines `up --source live` (and `backfill --rest`) load first "
                               "(90 days: enough to train on); 0 = none",
    "producer_metrics_port": "Prometheus /metrics of the live producer; 0 = off",
    "producer_metrics_host": "bind address of the live producer's /metrics (loopback unless set; 0.0.0.0 on Kubernetes)",
    "metrics_port": "the streaming stack's Prometheus /metrics (the Spark driver of `up`, or of each "
                    "SparkApplication); 0 = off",
    "metrics_host": "bind address of the stack's /metrics (loopback unless set; 0.0.0.0 on Kubernetes)",
    "spark_ui_host": "bind address of the local Spark driver's UI (loopback unless set; its kill links are off)",
    "horizons": "minutes ahead the predict job scores; one registered model tickcast-h<H> each",
    "model_ref": "the alias (or version number) the predict job scores with",
    "drift_window_hours": "live feature window compared with the model's training reference",
    "drift_psi_threshold": "PSI above this flags a feature as drifted in gold.drift",
    "max_files_per_trigger": "Delta-sourced streams (features, predict, outcomes): files per micro-batch at most",
    "serve_host": "bind address of the prediction service (loopback unless set)",
    "serve_port": "port of the prediction service",
    "serve_workers": "gunicorn worker processes of the prediction service",
    "serve_admin_token": "bearer token POST /v1/models/reload needs; empty = reload refused (401)",
    "serve_api_keys": "comma-separated keys accepted on the predict routes (header X-API-Key); empty = open",
    "serve_reload_seconds": "each service worker re-reads the model aliases this often",
    "serve_max_rows": "rows per POST /v1/predict (and V2 infer) at most; more is a 413",
    "serve_feed_seconds": "the service's registry watcher publishes each symbol's newest feature row "
                          "(and the lost Kafka offsets) to the workers this often",
    "dashboard_host": "bind address of the dashboard (loopback unless set)",
    "dashboard_port": "port of the dashboard",
    "dashboard_refresh_seconds": "the dashboard's pages re-read the tables this often",
    "dashboard_cache_dir": "the dashboard's read caches saved here, so a restart reads only what changed (empty: off)",
    "alert_bar_age_seconds": "the newest bar older than this turns the dashboard's status red",
    "alert_freshness_seconds": "bar end -> prediction commit above this turns the status red",
    "alert_lag_seconds": "Kafka lag (seconds) above this turns the status red",
    "alert_batch_seconds": "a query's batch duration above this turns the status red",
    "alert_quarantine_ratio": "Prometheus alert: quarantined / ingested Kafka records over 5 minutes above this",
    "alert_min_outcomes": "Prometheus alert: live outcomes (24 h) a champion needs before it is judged "
                          "against the baselines",
    "alert_model_age_seconds": "Prometheus alert: the served version's training data ends longer ago than this "
                               "(stale champion; 2 days = twice the retrain cadence)",
    "retrain_every": "the retrainer (a child of `up`; the cluster's `train` schedule) retrains each horizon this "
                     "often (durations: 30m, 24h, 90d, 2w)",
    "train_window": "a retrain learns from this much of silver.features, ending at its newest row (at least 1d)",
    "decay_window": "a champion's live outcomes over this span (by bar time, ending at the newest outcome) are "
                    "compared with climatology and momentum; significantly worse demotes it",
    "decay_min_outcomes": "outcomes (nonzero returns, after the training end) the decay window needs before a "
                          "champion is judged",
    "model_max_age": "a champion whose training data ended longer ago than this (before the newest feature row) "
                     "loses `champion` as on decay; off = never",
}


def reference_markdown() -> str:
    """Every setting with its default and meaning, as a Markdown table (docs/configuration.md)."""
    defaults = load({})
    data_dir = str(defaults.data_dir)
    lines = ["# Configuration", "",
             "Every setting is an environment variable read by `tickcast/settings.py` only; a bad value fails at "
             "start and names the setting. The Kubernetes ConfigMap (`k8s/base/settings.yaml`) sets the same "
             "variables. Generated by `python -m tickcast.settings > docs/configuration.md`.", "",
             "| setting | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(Settings):
        v = getattr(defaults, f.name)
        shown = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
        shown = ".data" if f.name == "data_dir" else shown.replace(data_dir, "$TICKCAST_DATA_DIR")
        shown = shown.replace(str(REPO_ROOT), "<repo>")
        lines.append(f"| `{PREFIX}{f.name.upper()}` | `{shown}` | {HELP.get(f.name, '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
