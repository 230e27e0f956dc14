"""The feature math (no JVM): stream = batch, an independent pandas computation, point in time, gaps."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.expected_features import expected
from tickcast import features as F

T0 = 28_000_000  # epoch minutes (2023-03-28)


def make_bars(n=1500, seed=0, symbol="X", drop=0.03, gaps=((400, 8), (900, 40))) -> pd.DataFrame:
    """Random-walk bars with scattered missing minutes, a short gap and a long (resetting) gap."""
    rng = np.random.default_rng(seed)
    m = np.arange(n)
    keep = rng.random(n) > drop
    for at, length in gaps:
        keep[at:at + length] = False
    m = m[keep]
    c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(m))))
    vol = rng.gamma(2.0, 1.0, len(m))
    vwap = c * (1 + rng.normal(0, 2e-4, len(m)))
    return pd.DataFrame({"symbol": symbol, "window_ms": (m + T0) * 60_000, "close": c, "volume": vol,
                         "quote_volume": vol * vwap, "trade_count": rng.integers(1, 80, len(m)).astype(float),
                         "imbalance": rng.uniform(-1, 1, len(m)), "vwap": vwap})


def stream(bars: pd.DataFrame, sizes, roundtrip=True) -> pd.DataFrame:
    """Feed bars in chunks of the given sizes; optionally pass the state through plain lists (a restart)."""
    st, out, i, k = F.State(), [], 0, 0
    while i < len(bars):
        n = sizes[k % len(sizes)]
        st, rows, late = F.advance(st, bars.iloc[i:i + n], "X")
        assert late.empty
        out.append(rows)
        if roundtrip and not st.empty:
            st = F.State(st.seg_start, st.buf_start, {c: np.asarray(st.buf[c].tolist()) for c in F.RAW})
        i, k = i + n, k + 1
    return pd.concat(out, ignore_index=True)


def test_stream_equals_batch_across_gaps_and_restarts():
    bars = make_bars()
    batch = F.compute(bars)
    assert len(batch) == len(bars)
    for sizes in ([1], [7, 1, 50], [333]):
        s = stream(bars, sizes)
        assert (s["window_ms"].to_numpy() == batch["window_ms"].to_numpy()).all()
        np.testing.assert_allclose(s[list(F.FEATURES)].to_numpy(), batch[list(F.FEATURES)].to_numpy(), rtol=0, atol=1e-9)
        assert (s["minutes_in_segment"].to_numpy() == batch["minutes_in_segment"].to_numpy()).all()


def test_batch_equals_independent_pandas_computation():
    bars = make_bars(n=900, seed=3, gaps=((300, 5), (500, 30)))
    got = F.compute(bars)
    exp = expected(bars)
    assert (got["window_ms"].to_numpy() == exp["window_ms"].to_numpy()).all()
    for name in F.FEATURES:
        np.testing.assert_allclose(got[name].to_numpy(), exp[name].to_numpy(), rtol=0, atol=1e-9, err_msg=name)
    assert (got["minutes_in_segment"].to_numpy() == exp["minutes_in_segment"].to_numpy()).all()


def test_segments_warmup_and_gap_reset():
    bars = make_bars(n=700, drop=0.0, gaps=((300, GAP := F.GAP_RESET), (500, F.GAP_RESET + 1)))
    rows = F.compute(bars).set_index(bars["window_ms"].to_numpy() // 60_000 - T0)
    # A gap of exactly GAP_RESET minutes is bridged; one more resets the segment.
    assert rows.loc[300 + GAP, "minutes_in_segment"] == 300 + GAP + 1
    assert rows.loc[500 + GAP + 1, "minutes_in_segment"] == 1
    assert rows.loc[500 + GAP + 1, "warmup"] and rows.loc[500 + GAP + 1, "ret_1"] == 0.0
    assert not rows.loc[F.WINDOW - 1, "warmup"] and rows.loc[F.WINDOW - 2, "warmup"]
    # Bridged minutes count as no trading: the price is carried, so the return spans the gap.
    before = bars.set_index(bars["window_ms"] // 60_000 - T0)["close"]
    assert rows.loc[300 + GAP, "ret_1"] == pytest.approx(np.log(before[300 + GAP] / before[299]), abs=1e-12)


def test_point_in_time_changing_later_bars_never_changes_earlier_rows():
    bars = make_bars(n=600, seed=5)
    base = F.compute(bars)
    t = int(bars["window_ms"].iloc[350])
    changed = bars.copy()
    later = changed["window_ms"] > t
    changed.loc[later, "close"] *= 1.5
    changed.loc[later, "volume"] *= 3
    changed = changed.drop(changed[later].index[::4])   # and some later minutes disappear
    again = F.compute(changed)
    a = base[base["window_ms"] <= t].reset_index(drop=True)
    b = again[again["window_ms"] <= t].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_late_and_repeated_bars_are_counted_not_applied():
    bars = make_bars(n=400, gaps=())
    st, rows1, late1 = F.advance(F.State(), bars.iloc[:300], "X")
    old = bars.iloc[[10, 250]]
    mixed = pd.concat([bars.iloc[300:], old, bars.iloc[[320]]])
    st, rows2, late2 = F.advance(st, mixed, "X")
    assert sorted(late2["window_ms"]) == sorted([*old["window_ms"], bars["window_ms"].iloc[320]])
    both = pd.concat([rows1, rows2], ignore_index=True)
    np.testing.assert_allclose(both[list(F.FEATURES)].to_numpy(), F.compute(bars)[list(F.FEATURES)].to_numpy(),
                               rtol=0, atol=1e-9)


def test_state_is_bounded():
    st, _, _ = F.advance(F.State(), make_bars(n=3000, gaps=()), "X")
    assert all(len(v) == F.WINDOW for v in st.buf.values())


def test_feature_version_is_a_hash_of_the_spec(monkeypatch):
    v = F.feature_version()
    assert len(v) == 12 and v == F.feature_version()
    monkeypatch.setattr(F, "GAP_RESET", F.GAP_RESET + 1)
    assert F.feature_version() != v
