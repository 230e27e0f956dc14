"""Per (symbol, kind): trade ids published strictly in order, each once (pure)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable
log = logging.getLogger("tickcast.live")


@dataclass
class KeyState:
    last: int | None = None
    pending: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    filling: bool = False
    last_live_at: float = 0.0     # monotonic time of the last live frame for this key


class Sequencer:
    """Per (symbol, kind): publish ids strictly in order, each once; hold ids that follow a gap.

    `emit(key, id, value, source, arrival)` publishes. Pure: no I/O, no clock (arrival is passed in).
    """

    def __init__(self, emit: Callable[[tuple[str, str], int, bytes, str, float], None]):
        self.emit = emit
        self.keys: dict[tuple[str, str], KeyState] = {}
        self.duplicates = 0
        self.lost = 0             # ids the exchange could not give back (REST history jumped)

    def state(self, key) -> KeyState:
        st = self.keys.get(key)
        if st is None:
            st = self.keys[key] = KeyState()
        return st

    def live(self, key, ident: int, value: bytes, arrival: float) -> bool:
        """A live event; True when it is held behind a gap (the caller should arrange a fill)."""
        st = self.state(key)
        st.last_live_at = arrival
        last = st.last
        if last is not None and ident <= last or ident in st.pending:
            self.duplicates += 1
            return False
        if last is None or ident == last + 1:
            self.emit(key, ident, value, "live", arrival)
            st.last = ident
            if st.pending:
                self._drain(key, st)
            return False
        st.pending[ident] = (value, arrival)
        return True

    def gap_from(self, key) -> int | None:
        """The first missing id when events wait behind a gap, else None."""
        st = self.keys.get(key)
        if st is None or not st.pending or st.last is None:
            return None
        return st.last + 1 if min(st.pending) > st.last + 1 else None

    def rest(self, key, ident: int, value: bytes, arrival: float) -> bool:
        """A trade fetched over REST; published (gapfill) only if it is the next id."""
        st = self.state(key)
        if st.last is not None and ident <= st.last:
            return False
        if st.last is not None and ident > st.last + 1:
            # The exchange's history itself jumps (cannot be recovered): say so, count it, go on.
            self.lost += ident - st.last - 1
            log.error("%s %s: ids %d..%d are missing from the exchange's history too", key[0], key[1],
                      st.last + 1, ident - 1)
        st.pending.pop(ident, None)
        self.emit(key, ident, value, "gapfill", arrival)
        st.last = ident
        if st.pending:
            self._drain(key, st)
        return True

    def _drain(self, key, st: KeyState) -> None:
        while st.last + 1 in st.pending:
            nxt = st.last + 1
            value, arrival = st.pending.pop(nxt)
            self.emit(key, nxt, value, "live", arrival)
            st.last = nxt
