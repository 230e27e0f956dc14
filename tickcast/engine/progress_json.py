"""ADR 0006: streaming progress read as one JSON string per query through `_jsq`
(docs/adr/0006-progress-polled-as-json.md)."""
from __future__ import annotations

import json


def last_progress(q) -> dict | None:
    """The query's latest progress event as a plain dict, read as one JSON string.

    pyspark's `lastProgress` walks the Java object field by field over py4j, and ends every
    collection by catching a Java exception (a dozen more round trips each): ~300 calls per read.
    """
    p = q._jsq.lastProgress()
    return None if p is None else json.loads(p.json())


def recent_progress(q) -> list[dict]:
    """The query's recent progress events (up to 100), as `last_progress` reads them."""
    return [json.loads(p.json()) for p in q._jsq.recentProgress()]
