"""Time units in epoch milliseconds, the one definition every layer imports (bars are one minute)."""
from __future__ import annotations

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
