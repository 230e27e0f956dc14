"""Independent readings of the shared Binance files (plain gzip/csv/json, not tickcast's parsers)."""
from __future__ import annotations

import csv
import gzip
import json
from decimal import Decimal
from pathlib import Path


def recording_trades(path: Path) -> list[dict]:
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            _, _, body = line.partition(" ")
            msg = json.loads(body)
            d = msg.get("data", {})
            if d.get("e") == "trade":
                out.append({"symbol": d["s"], "event_kind": "trade", "id": d["t"], "first_trade_id": d["t"],
                            "last_trade_id": d["t"], "price": Decimal(d["p"]), "quantity": Decimal(d["q"]),
                            "trade_ms": d["T"], "event_ms": d["E"], "is_buyer_maker": d["m"]})
    return out


def agg_trades(path: Path, symbol: str = "BTCUSDT") -> list[dict]:
    out = []
    with gzip.open(path, "rt") as f:
        for row in csv.reader(f):
            ms = int(row[5]) // 1000  # the file is in microseconds; events carry milliseconds
            out.append({"symbol": symbol, "event_kind": "aggTrade", "id": int(row[0]),
                        "first_trade_id": int(row[3]), "last_trade_id": int(row[4]),
                        "price": Decimal(row[1]), "quantity": Decimal(row[2]), "trade_ms": ms, "event_ms": ms,
                        "is_buyer_maker": row[6] == "True"})
    return out
