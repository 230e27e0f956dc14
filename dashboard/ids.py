"""Every component id of the dashboard, defined once (layouts, callbacks and tests import them)."""
from __future__ import annotations

# App shell: on every page.
TICK = "tick"                       # dcc.Interval: every TICKCAST_DASHBOARD_REFRESH_SECONDS
HEADER = "header"
HEADER_SOURCE = "header-source"
HEADER_BAR_AGE = "header-bar-age"
HEADER_CHAMPIONS = "header-champions"
HEADER_STATUS = "header-status"
HEADER_ALERTS = "header-alerts"
HEADER_SEEN = "header-seen"

# Market page (/).
SYMBOL = "market-symbol"
RANGE = "market-range"
MARKET_GRAPH = "market-graph"
MARKET_MESSAGE = "market-message"
MARKET_SEEN = "market-seen"

# Model page (/model).
HORIZON = "model-horizon"
VERSION = "model-version"
MODEL_BANNER = "model-banner"
MODEL_MESSAGE = "model-message"
ROLLING_HIT = "model-rolling-hit"
ROLLING_BRIER = "model-rolling-brier"
CUMULATIVE = "model-cumulative"
CALIBRATION = "model-calibration"
DRIFT = "model-drift"
MODEL_REPORT = "model-report"
MODEL_VERSIONS = "model-versions"
MODEL_SEEN = "model-seen"
MODEL_REGISTRY_SEEN = "model-registry-seen"
MODEL_EVENTS = "model-events"
MODEL_HORIZON_AUTO = "model-horizon-auto"

# Pipeline page (/pipeline).
SPAN = "pipeline-span"
PIPELINE_MESSAGE = "pipeline-message"
INPUT_RATE = "pipeline-input-rate"
BATCH_DURATION = "pipeline-batch-duration"
LAG_MESSAGES = "pipeline-lag-messages"
LAG_SECONDS = "pipeline-lag-seconds"
FRESHNESS = "pipeline-freshness"
QUARANTINE = "pipeline-quarantine"
QUALITY = "pipeline-quality"
PIPELINE_SEEN = "pipeline-seen"
QUALITY_SEEN = "pipeline-quality-seen"

# Backtest page (/backtest).
BACKTEST_RUN = "backtest-run"
BACKTEST_MESSAGE = "backtest-message"
BACKTEST_ACCURACY = "backtest-accuracy"
BACKTEST_RETURN = "backtest-return"
BACKTEST_PERIODS = "backtest-periods"
BACKTEST_SEEN = "backtest-seen"
