"""InsertOnce's choice between an idempotent append and the insert-only MERGE (pure parts)."""
from jobs.delta_io import appendable, spans_of

from tickcast.timeunits import MINUTE_MS as M


def test_spans_per_group():
    assert spans_of(["B", "E", "B", "E", "B"], [3 * M, 5 * M, M, 5 * M, 2 * M]) == {"B": (M, 3 * M), "E": (5 * M, 5 * M)}
    assert spans_of([], []) == {}


def test_a_symbol_closing_after_another_in_the_same_minute_appends():
    # BTC's minute 10 is in the table; ETH's minute 10 arrives a batch later. Against the table's
    # newest row (BTC at 10) it is not newer, yet no ETH row of minute 10 can be there.
    newest = {"BTC": 10 * M, "ETH": 9 * M}
    assert appendable({"ETH": (10 * M, 10 * M)}, newest)
    assert appendable({"NEW": (1 * M, 2 * M)}, newest)            # a symbol the table has never had


def test_a_row_at_or_before_its_symbols_newest_merges():
    newest = {"BTC": 10 * M, "ETH": 9 * M}
    assert not appendable({"BTC": (10 * M, 11 * M)}, newest)      # BTC's minute 10 may be there
    assert not appendable({"ETH": (10 * M, 10 * M), "BTC": (5 * M, 11 * M)}, newest)   # one group decides
    assert appendable({"ETH": (10 * M, 12 * M), "BTC": (11 * M, 11 * M)}, newest)
