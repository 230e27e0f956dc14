"""WebSocket frames of Binance's combined streams: stream names, connections' stream groups, and each
frame classified (the producer's hot path; pure)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from tickcast import events

KINDS = ("trade", "aggTrade")
ID_FIELD = {"trade": "t", "aggTrade": "a"}
MAX_STREAMS_PER_CONNECTION = 1024


def stream_name(symbol: str, kind: str) -> str:
    return f"{symbol.lower()}@{kind}"


def chunk_streams(streams: list[str], per_connection: int = MAX_STREAMS_PER_CONNECTION) -> list[list[str]]:
    if not 1 <= per_connection <= MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"streams per connection must be in 1..{MAX_STREAMS_PER_CONNECTION}")
    return [streams[i:i + per_connection] for i in range(0, len(streams), per_connection)]



@dataclass
class Frame:
    """One WebSocket frame, classified."""
    what: str                     # trade | forward | skip | shutdown | control
    value: bytes | None = None    # what to publish (trade / forward)
    symbol: str | None = None
    kind: str | None = None
    id: int | None = None
    event_ms: int | None = None
    trade_ms: int | None = None
    detail: str | None = None


_WRAP = '{"stream":"'


def classify(text: str | bytes) -> Frame:
    """A frame as received -> what to do with it (pure; the hot path of the producer).

    The combined-stream wrapper is removed. Binance sends compact JSON, so the bare event is the
    `data` slice of the frame itself (same bytes as the exchange's); otherwise it is re-encoded.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return Frame("forward", value=text)
    try:
        obj = json.loads(text)
    except ValueError:
        return Frame("forward", value=text.encode())
    if not isinstance(obj, dict):
        return Frame("forward", value=text.encode())
    data = obj
    raw = None
    if "stream" in obj and "data" in obj:
        data = obj["data"]
        if not isinstance(data, dict):
            return Frame("forward", value=events.compact(data) if data is not None else text.encode())
        if text.startswith(_WRAP):
            i = text.find('","data":', len(_WRAP))
            if i > 0 and text.endswith("}}") and " " not in text:
                raw = text[i + 9:-1]
    elif "result" in obj and "id" in obj or "error" in obj and "id" in obj:
        return Frame("control", detail=text)
    e = data.get("e")
    if e in events.TRADE_EVENTS:
        sym, ident = data.get("s"), data.get(ID_FIELD[e])
        if isinstance(sym, str) and sym and isinstance(ident, int) and not isinstance(ident, bool):
            value = raw.encode() if raw is not None else (
                text.encode() if data is obj and " " not in text else events.compact(data))
            E, T = data.get("E"), data.get("T")
            return Frame("trade", value=value, symbol=sym, kind=e, id=ident,
                         event_ms=E if isinstance(E, int) else None, trade_ms=T if isinstance(T, int) else None)
        # A trade without a usable id or symbol: forwarded (bare), ingest quarantines it.
        return Frame("forward", value=events.compact(data))
    if e == "serverShutdown":
        return Frame("shutdown", detail=text)
    rec = events.from_object(data, raw.encode() if raw is not None else events.compact(data))
    if rec.value is None:
        return Frame("skip", detail=rec.skipped)
    return Frame("forward", value=rec.value)
