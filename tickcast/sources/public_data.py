"""Read Binance public-data files and WebSocket recordings as topic records (no Kafka here)."""
from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import IO, Iterator

from tickcast import events


def open_bytes(path: Path) -> IO[bytes]:
    """Open plain, gzip or zip (first member) by content, not by file name (e.g. `.dat.gz`)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic == b"PK\x03\x04":
        zf = zipfile.ZipFile(path)
        members = [n for n in zf.namelist() if not n.endswith("/")]
        if not members:
            raise ValueError(f"{path}: empty zip archive")
        return io.BufferedReader(zf.open(members[0]))
    return open(path, "rb")


def _is_csv(first: bytes) -> bool:
    s = first.strip()
    return bool(s) and not s.startswith((b"{", b"[")) and s.count(b",") >= 6 and b"{" not in s


def read_file(path: Path, symbol: str | None = None) -> Iterator[events.Record]:
    """Every record of one file, in file order: CSV trades/aggTrades or a WebSocket recording.

    Args:
        path: the file.
        symbol: the symbol of a CSV file whose name does not say it.
    """
    path = Path(path)
    with open_bytes(path) as f:
        first = b""
        for first in f:
            if first.strip():
                break
        if _is_csv(first):
            sym = symbol or events.symbol_from_filename(path.name)
            if not sym:
                raise ValueError(f"{path}: cannot tell the symbol from the file name; pass --symbol")
            parse = lambda line: events.from_csv_line(line, sym)  # noqa: E731
        else:
            parse = events.from_recording_line
        for line in _chain(first, f):
            rec = parse(line)
            if rec is not None:
                yield rec


def _chain(first: bytes, rest: IO[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
