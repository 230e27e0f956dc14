"""Kafka offsets lost to retention before ingest read them: counted, kept, never silent.

Ingest reads the topic with `failOnDataLoss=false` (a deleted segment must not stop the stream),
so Spark skips offsets that retention removed. Each micro-batch's planned offset range per
partition is in the query's checkpoint (`offsets/<batch>`, and `sources/0/0` for the first); a
non-transactional topic has no gaps, so planned minus read is what was lost. Ingest appends each
loss to `ops.lost_offsets`; `lost_offsets` sums them for `up`'s status line and metrics.
"""
from __future__ import annotations

import json
import os

from tickcast import lake, tables
from tickcast.settings import Settings


def _last_json(text: str) -> dict:
    for line in reversed(text.splitlines()):
        line = line.strip().lstrip("\x00")
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no offsets in the file")


def planned_ranges(checkpoint: str, batch_id: int) -> dict[tuple[str, int], tuple[int, int]] | None:
    """{(topic, partition): (start, end)} the query planned for a batch, from its checkpoint (a local
    folder); None when the checkpoint cannot tell (not local, files absent)."""
    if "://" in checkpoint and not checkpoint.startswith("file://"):
        return None
    root = checkpoint.removeprefix("file://")
    try:
        with open(os.path.join(root, "offsets", str(batch_id))) as f:
            end = _last_json(f.read())
        if batch_id == 0:
            with open(os.path.join(root, "sources", "0", "0"), errors="replace") as f:
                start = _last_json(f.read())
        else:
            with open(os.path.join(root, "offsets", str(batch_id - 1))) as f:
                start = _last_json(f.read())
    except (OSError, ValueError):
        return None
    out = {}
    for topic, parts in end.items():
        for p, hi in parts.items():
            lo = start.get(topic, {}).get(p, hi)
            if lo >= 0 and hi >= lo:
                out[(topic, int(p))] = (int(lo), int(hi))
    return out


def losses(planned: dict[tuple[str, int], tuple[int, int]], read: dict[tuple[str, int], int]) -> dict:
    """{(topic, partition): lost} where a batch read fewer records than its range holds (pure)."""
    return {g: (hi - lo) - read.get(g, 0) for g, (lo, hi) in planned.items() if (hi - lo) > read.get(g, 0)}


def lost_offsets(s: Settings) -> dict[tuple[str, int], int]:
    """Offsets lost so far per (topic, partition), from ops.lost_offsets (delta-rs; {} if none)."""
    if not lake.exists(tables.LOST_OFFSETS, s):
        return {}
    t = lake.read(tables.LOST_OFFSETS, s, columns=["topic", "partition", "lost"])
    out: dict[tuple[str, int], int] = {}
    for r in t.to_pylist():
        g = (r["topic"], r["partition"])
        out[g] = out.get(g, 0) + int(r["lost"])
    return out


def describe(lost: dict[tuple[str, int], int]) -> str:
    """`lost 0` or `LOST 12 offsets (ticks/0: 12)`: for a status line."""
    total = sum(lost.values())
    if not total:
        return "lost 0"
    return f"LOST {total} offsets (" + ", ".join(f"{t}/{p}: {n}" for (t, p), n in sorted(lost.items()) if n) + ")"
