"""The hot path's driver-held feature state (no JVM): rebuilt from the bars table after a restart, it
gives every later bar the row the uninterrupted stream gives."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.live_features import rebuild, segment_start
from tests.unit.test_features_pure import make_bars
from tickcast import features as F


@pytest.mark.parametrize("cut", [50, 300, 395, 405, 700, 939, 950, 1100, 1400])
def test_a_state_rebuilt_from_the_bars_so_far_continues_as_the_stream(cut):
    bars = make_bars(n=1500, seed=3)
    whole = F.advance(F.State(), bars, "X")[1]
    st = rebuild(bars.iloc[:cut].sample(frac=1.0, random_state=1), "X")     # any order, as a table read gives
    later = F.advance(st, bars.iloc[cut:], "X")[1]
    want = whole.iloc[cut:].reset_index(drop=True)
    assert len(later) == len(want) > 0
    assert (later["window_ms"].to_numpy() == want["window_ms"].to_numpy()).all()
    assert (later["minutes_in_segment"].to_numpy() == want["minutes_in_segment"].to_numpy()).all()
    assert (later["warmup"].to_numpy() == want["warmup"].to_numpy()).all()
    for c in F.COLUMNS:
        # Equal but for the last bit: a matrix product sums in an order that depends on the rows in it.
        np.testing.assert_allclose(later[c].to_numpy(), want[c].to_numpy(), rtol=1e-12, atol=1e-15, err_msg=c)


def test_segment_start_is_after_the_last_long_gap():
    m = np.array([0, 1, 2, 10, 11, 40, 41, 50])      # gaps of 7 (kept), 28 (> GAP_RESET: resets), 8
    assert segment_start(m) == 40
    assert segment_start(np.array([5])) == 5
    assert rebuild(pd.DataFrame(columns=["window_ms", *F.RAW]), "X").empty


def test_feature_rows_become_the_tables_rows_and_owed_rows_come_first_once():
    from jobs.hotpath import _concat, feature_table
    from tickcast import lake, schemas

    rows = F.advance(F.State(), make_bars(n=300, seed=4), "X")[1]
    t = feature_table(rows)
    assert t.schema.names == list(schemas.FEATURES.names)
    assert (lake.to_ms(t["window_start"]) == rows["window_ms"].to_numpy()).all()
    both = _concat(t.slice(0, 200), t.slice(150))          # the owed rows overlap this batch's by 50
    assert both.num_rows == t.num_rows
    assert (lake.to_ms(both["window_start"]) == rows["window_ms"].to_numpy()).all()
    assert _concat(None, None) is None
