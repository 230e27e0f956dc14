"""Pure parsing of Binance inputs into the topic's records: one bare trade event per record.

The producer drops only events it knows are not trades; anything else (garbage included) is
forwarded unchanged, so ingest is the one place that validates and quarantines.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Event types of Binance streams that are not trades (skipped and counted by the producer).
NON_TRADE_EVENTS = frozenset({
    "depthUpdate", "kline", "bookTicker", "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker",
    "avgPrice", "markPriceUpdate", "forceOrder", "referencePrice", "blockTrade", "serverShutdown",
    "outboundAccountPosition", "balanceUpdate", "executionReport", "listStatus",
})
TRADE_EVENTS = frozenset({"trade", "aggTrade"})

# The sane range of a trade time in epoch ms: before 2010 means a unit or garbage error (ingest
# quarantines it); after 2100 is garbage too. Only times inside it may pace a replay.
MIN_TRADE_MS = 1_262_304_000_000          # 2010-01-01
MAX_TRADE_MS = 4_102_444_800_000          # 2100-01-01

_LEADING_TS = re.compile(rb"^\s*(\d+(?:\.\d+)?):?\s+(?=[\[{])")


@dataclass(frozen=True)
class Record:
    """One thing read from a source: a record to publish, or a known non-trade event to skip."""
    value: bytes | None            # the Kafka value (None when skipped)
    key: bytes | None = None       # the symbol, when known
    trade_time_ms: int | None = None
    skipped: str | None = None     # the non-trade kind, when skipped


def compact(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def _non_trade_kind(obj: dict) -> str | None:
    e = obj.get("e")
    if isinstance(e, str):
        return e if e in NON_TRADE_EVENTS else None
    # Payloads without `e`: spot bookTicker ({u,s,b,B,a,A}) and depth snapshots / partial depth.
    if "lastUpdateId" in obj and ("bids" in obj or "asks" in obj):
        return "depthSnapshot"
    if {"u", "s", "b", "B", "a", "A"} <= obj.keys():
        return "bookTicker"
    return None


def from_object(obj: object, raw: bytes) -> Record:
    """A parsed JSON value -> Record: unwrap the combined-stream wrapper, skip non-trades, forward the rest."""
    if isinstance(obj, dict) and "stream" in obj and "data" in obj and isinstance(obj["data"], dict):
        obj = obj["data"]
        raw = compact(obj)
    elif isinstance(obj, dict) and isinstance(obj.get("e"), str) and obj["e"] in TRADE_EVENTS:
        raw = compact(obj)
    if not isinstance(obj, dict):
        return Record(value=raw)
    kind = _non_trade_kind(obj)
    if kind is not None:
        return Record(value=None, skipped=kind)
    sym = obj.get("s")
    key = sym.encode() if isinstance(sym, str) and sym else None
    t = obj.get("T")
    sane = isinstance(t, int) and not isinstance(t, bool) and MIN_TRADE_MS <= t < MAX_TRADE_MS
    return Record(value=raw, key=key, trade_time_ms=t if sane else None)


def from_recording_line(line: bytes) -> Record | None:
    """One line of a WebSocket recording: `[<local time>[:]] <JSON>`; None for a blank line."""
    line = line.strip()
    if not line:
        return None
    m = _LEADING_TS.match(line)
    body = line[m.end():] if m else line
    if body.startswith((b"http://", b"https://", b"ws://", b"wss://")):
        # Recorders' own log lines (connection URL, REST snapshot prefix) are not market events.
        if b"-> " in body and body.rstrip().endswith((b"}", b"]")):
            return Record(value=None, skipped="restSnapshot")
        return Record(value=None, skipped="recorderLog")
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):    # RecursionError: JSON nested deeper than Python parses
        return Record(value=body)          # garbage: forwarded as is, ingest quarantines it
    return from_object(obj, body)


def to_ms(ts: int) -> int:
    """Binance file timestamps: ms (13 digits) until 2024, µs (16 digits) since 2025-01-01."""
    return ts // 1000 if ts >= 10**14 else ts


def _flag(v: str) -> bool:
    v = v.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {v!r}")


def from_agg_trades_row(fields: list[str], symbol: str) -> dict:
    """aggTrades file row: agg id, price, qty, first id, last id, time, buyer maker, best match."""
    a, p, q, f, l, t, m, bm = fields[:8]
    T = to_ms(int(t))
    return {"e": "aggTrade", "E": T, "s": symbol, "a": int(a), "p": p.strip(), "q": q.strip(),
            "f": int(f), "l": int(l), "T": T, "m": _flag(m), "M": _flag(bm)}


def from_trades_row(fields: list[str], symbol: str) -> dict:
    """trades file row: id, price, qty, quote qty, time, buyer maker, best match."""
    i, p, q, _qq, t, m, bm = fields[:7]
    T = to_ms(int(t))
    return {"e": "trade", "E": T, "s": symbol, "t": int(i), "p": p.strip(), "q": q.strip(),
            "T": T, "m": _flag(m), "M": _flag(bm)}


CSV_KINDS = {8: from_agg_trades_row, 7: from_trades_row}


def from_csv_line(line: bytes, symbol: str) -> Record | None:
    """One CSV row of a Binance public-data trades/aggTrades file; header rows are None."""
    text = line.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    fields = text.split(",")
    if not fields[0].strip().lstrip("-").isdigit():
        if fields[0].strip().replace("_", "").isalpha():
            return None                    # header row (agg_trade_id,price,...)
        return Record(value=line.strip())
    build = CSV_KINDS.get(len(fields))
    try:
        if build is None:
            raise ValueError(f"{len(fields)} columns")
        ev = build(fields, symbol)
    except (ValueError, IndexError):
        return Record(value=line.strip())  # a bad row is forwarded; ingest quarantines it
    t = ev["T"]
    return Record(value=compact(ev), key=symbol.encode(),
                  trade_time_ms=t if MIN_TRADE_MS <= t < MAX_TRADE_MS else None)


_SYMBOL_IN_NAME = re.compile(r"([A-Z0-9]{4,20})-(?:aggTrades|trades)-", re.I)


def symbol_from_filename(name: str) -> str | None:
    m = _SYMBOL_IN_NAME.search(name)
    return m.group(1).upper() if m else None
