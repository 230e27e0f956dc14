"""Synthetic trade simulator: determinism, wire format, realism targets, planted signal.

No JVM, no network. The two large frames are built once per module (fixtures below); the
slowest test pays for one of them (~5 s here, well under 20 s on a slow 2-core machine).
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from producers.realism import minute_returns, realism_report, signal_edge, signal_edge_detail
from tickcast.sources.simulator import (
    TRADE_ID_BASE, SimConfig, first_trade_id, TradeBatch, encode_events, sim_symbol, simulate_batches, simulate_frame,
)

START_MS = 1_723_161_255_343      # deliberately not on a minute boundary
KEYS = ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
DEC8 = re.compile(r"^[0-9]+\.[0-9]{8}$")

# The reference realism configuration named in docs/simulator.md.
REALISM = SimConfig(("BTCUSDT", "ETHUSDT"), rate=50.0, seed=0, start_ms=1_723_161_240_000)
REALISM_MINUTES = 3000
# Signal tests: 2 symbols x 12000 minutes = ~24000 (imbalance, next return) pairs, so the
# standard error of an accuracy near 0.5 is sqrt(0.25 / 24000) = 0.0032. Measured over 16 seeds
# at this config the edge is 0.528 (signal on, seed-to-seed sd 0.004) and 0.499 (off), so the
# 0.51 and 0.5 +- 0.02 bounds are >= 5 standard errors away. A low rate keeps this fast; the
# edge hardly depends on the rate (0.526 at 50/s, docs/simulator.md).
SIGNAL_SYMBOLS = ("BTCUSDT", "ETHUSDT")
SIGNAL_RATE = 3.0
SIGNAL_MINUTES = 12_000
SIGNAL_SEED = 7


def take(cfg: SimConfig, n: int) -> list[TradeBatch]:
    stream = simulate_batches(cfg)
    return [next(stream) for _ in range(n)]


def all_events(cfg: SimConfig, minutes: int) -> list[tuple[str, int, bytes]]:
    return [ev for b in take(cfg, minutes) for ev in encode_events(b)]


@pytest.fixture(scope="module")
def report() -> dict:
    return realism_report(simulate_frame(REALISM, REALISM_MINUTES))


def edge_of(plant_signal: bool) -> dict:
    cfg = SimConfig(SIGNAL_SYMBOLS, rate=SIGNAL_RATE, seed=SIGNAL_SEED, plant_signal=plant_signal)
    return signal_edge_detail(simulate_frame(cfg, SIGNAL_MINUTES))


# --- determinism -----------------------------------------------------------------------------

def test_same_config_gives_identical_bytes():
    cfg = SimConfig(("BTCUSDT", "ETHUSDT"), rate=200.0, seed=42, start_ms=START_MS)
    a, b = all_events(cfg, 3), all_events(cfg, 3)
    assert len(a) > 1000
    assert a == b


def test_different_seed_or_start_changes_output():
    cfg = SimConfig(("BTCUSDT", "ETHUSDT"), rate=200.0, seed=42, start_ms=START_MS)
    base = all_events(cfg, 2)
    assert all_events(SimConfig(cfg.symbols, cfg.rate, seed=43, start_ms=START_MS), 2) != base
    assert all_events(SimConfig(cfg.symbols, cfg.rate, seed=42, start_ms=START_MS + 60_000), 2) != base


def test_symbol_order_does_not_change_a_symbols_stream():
    cols = ["trade_id", "time_ms", "price", "qty", "buyer_maker"]
    a = simulate_frame(SimConfig(("BTCUSDT", "ETHUSDT"), rate=30.0, seed=3), 20)
    b = simulate_frame(SimConfig(("ETHUSDT", "BTCUSDT"), rate=30.0, seed=3), 20)
    for sym in ("BTCUSDT-SIM", "ETHUSDT-SIM"):
        pd.testing.assert_frame_equal(a.loc[a.symbol == sym, cols].reset_index(drop=True),
                                      b.loc[b.symbol == sym, cols].reset_index(drop=True))


def test_adding_a_symbol_keeps_the_others_minute_path():
    # Rate shares change, so trades differ, but vol/return/jump draws are per (seed, symbol).
    a = minute_returns(simulate_frame(SimConfig(("BTCUSDT", "ETHUSDT"), rate=20.0, seed=3), 300))
    b = minute_returns(simulate_frame(SimConfig(("BTCUSDT", "ETHUSDT", "SOLUSDT"), rate=20.0, seed=3), 300))
    j = pd.concat([a.loc["BTCUSDT-SIM"], b.loc["BTCUSDT-SIM"]], axis=1).dropna()
    corr = float(np.corrcoef(j.iloc[:, 0], j.iloc[:, 1])[0, 1])
    assert len(j) > 250 and corr > 0.95, f"corr of BTC minute returns with/without SOLUSDT = {corr:.4f}"


# --- wire format and invariants --------------------------------------------------------------

def test_encoding_matches_binance_trade_event_exactly():
    batch = TradeBatch(names=("BTCUSDT-SIM",), symbol=np.array([0], np.int16),
                       trade_id=np.array([1_000_000], np.int64), time_ms=np.array([1723161255343], np.int64),
                       price=np.array([61837.63]), qty=np.array([0.02]), buyer_maker=np.array([True]))
    assert encode_events(batch) == [("BTCUSDT-SIM", 1723161255343,
        b'{"e":"trade","E":1723161255343,"s":"BTCUSDT-SIM","t":1000000,"p":"61837.63000000",'
        b'"q":"0.02000000","T":1723161255343,"m":true,"M":true}')]


def test_encoded_events_parse_with_exact_fields_and_types():
    cfg = SimConfig(("BTCUSDT", "ETHUSDT", "SOLUSDT"), rate=300.0, seed=5, start_ms=START_MS)
    batches = take(cfg, 4)
    events = [ev for b in batches for ev in encode_events(b)]
    assert len(events) == sum(len(b) for b in batches) > 3000
    next_id: dict[str, int] = {}
    last_t = START_MS
    seen_m = set()
    for sym, t, value in events:
        obj = json.loads(value)
        assert list(obj) == KEYS
        assert value == json.dumps(obj, separators=(",", ":")).encode()  # compact, key order kept
        assert obj["e"] == "trade" and obj["s"] == sym and obj["M"] is True
        assert type(obj["E"]) is int and type(obj["T"]) is int and type(obj["t"]) is int
        assert obj["E"] == obj["T"] == t
        assert type(obj["m"]) is bool
        seen_m.add(obj["m"])
        assert DEC8.match(obj["p"]) and DEC8.match(obj["q"]), value
        assert obj["p"].endswith("000000"), f"price off the 0.01 tick grid: {obj['p']}"
        assert obj["q"].endswith("000"), f"qty not rounded to 5 decimals: {obj['q']}"
        assert float(obj["p"]) > 0 and float(obj["q"]) > 0
        assert t >= last_t, "trade times must be non-decreasing"
        last_t = t
        assert obj["t"] == next_id.get(sym, first_trade_id(START_MS)), f"ids not contiguous for {sym}"
        next_id[sym] = obj["t"] + 1
    assert seen_m == {True, False}
    assert set(next_id) == {"BTCUSDT-SIM", "ETHUSDT-SIM", "SOLUSDT-SIM"}


def test_batch_arrays_and_minute_alignment():
    cfg = SimConfig(("BTCUSDT", "ETHUSDT"), rate=100.0, seed=1, start_ms=START_MS)
    batches = take(cfg, 3)
    first_minute = START_MS - START_MS % 60_000
    for k, b in enumerate(batches):
        assert b.trade_id.dtype == np.int64 and b.time_ms.dtype == np.int64
        assert b.price.dtype == np.float64 and b.qty.dtype == np.float64 and b.buyer_maker.dtype == bool
        lo = max(START_MS, first_minute + k * 60_000)
        assert b.time_ms.min() >= lo and b.time_ms.max() < first_minute + (k + 1) * 60_000
        assert np.all(np.diff(b.time_ms) >= 0)
        assert np.all(b.price > 0) and np.all(b.qty >= 1e-5)
        assert np.array_equal(np.round(b.price, 2), b.price) and np.array_equal(np.round(b.qty, 5), b.qty)


def test_frame_columns():
    df = simulate_frame(SimConfig(("BTCUSDT",), rate=10.0, seed=2), 2)
    assert list(df.columns) == ["symbol", "trade_id", "time_ms", "price", "qty", "buyer_maker"]
    assert len(df) > 0 and set(df["symbol"].astype(str)) == {"BTCUSDT-SIM"}
    assert df["trade_id"].tolist() == list(range(TRADE_ID_BASE, TRADE_ID_BASE + len(df)))
    assert simulate_frame(SimConfig(("BTCUSDT",), rate=10.0), 0).empty


def test_symbol_suffixes():
    assert sim_symbol("BTCUSDT", False) == "BTCUSDT-SIM"
    assert sim_symbol("BTCUSDT", True) == "BTCUSDT-SIMSIG"
    on = take(SimConfig(("BTCUSDT", "ETHUSDT"), rate=20.0, plant_signal=True), 1)[0]
    off = take(SimConfig(("BTCUSDT", "ETHUSDT"), rate=20.0), 1)[0]
    assert on.names == ("BTCUSDT-SIMSIG", "ETHUSDT-SIMSIG")
    assert {s for s, _, _ in encode_events(off)} == {"BTCUSDT-SIM", "ETHUSDT-SIM"}


@pytest.mark.parametrize("kwargs", [
    dict(symbols=(), rate=1.0), dict(symbols=("BTCUSDT", "BTCUSDT"), rate=1.0),
    dict(symbols=("BTC-USDT",), rate=1.0), dict(symbols=("BTCUSDT",), rate=0.0),
    dict(symbols=("BTCUSDT",), rate=1.0, seed=-1), dict(symbols=("BTCUSDT",), rate=1.0, signal_strength=-0.1),
])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        SimConfig(**kwargs)


# --- realism targets (2 symbols, rate 50/s, 3000 minutes, seed 0) ----------------------------

def test_returns_are_fat_tailed(report):
    k = report["kurtosis_1m"]
    assert k > 6, f"excess kurtosis of 1-minute returns = {k:.2f} (per symbol: " \
                  f"{ {s: round(v['kurtosis_1m'], 2) for s, v in report['per_symbol'].items()} })"


def test_volatility_clusters(report):
    acf = report["acf_abs_r"]
    assert min(acf) > 0.05, f"ACF of |r|, lags 1..10 = {[round(a, 3) for a in acf]}"


def test_returns_are_not_autocorrelated(report):
    acf = report["acf_r"]
    assert max(map(abs, acf)) < 0.05, f"ACF of r, lags 1..10 = {[round(a, 3) for a in acf]}"


def test_arrivals_are_overdispersed(report):
    cv = report["interarrival_cv"]
    assert cv > 1, f"inter-arrival CV over positive gaps = {cv:.3f} " \
                   f"(all gaps {report['interarrival_cv_all']:.3f})"


def test_aggressor_side_is_persistent(report):
    run, coin = report["mean_run_length"], report["coin_flip_run_length"]
    assert run > 1.5 * coin, f"mean run length {run:.3f} vs coin flip {coin:.3f}"
    assert 3.0 < run < 6.0, f"mean run length {run:.3f}: P(same side) ~0.7-0.8 means ~3.3-5"


# --- planted signal --------------------------------------------------------------------------

def test_planted_signal_gives_an_edge():
    e = edge_of(True)
    assert e["n"] > 23_000
    assert e["edge"] > 0.51, f"edge with signal = {e['edge']:.4f} (n={e['n']}, se={e['se']:.4f})"


def test_no_edge_without_signal():
    e = edge_of(False)
    assert e["n"] > 23_000
    assert abs(e["edge"] - 0.5) < 0.02, f"edge without signal = {e['edge']:.4f} (n={e['n']}, se={e['se']:.4f})"


def test_signal_edge_on_a_hand_made_frame():
    # Minute 0 net buying, minute 1 price up; minute 1 net selling, minute 2 price down: 2/2 hits.
    rows = [(0, 100.0, 1.0, False), (30_000, 100.0, 0.5, True),
            (60_000, 101.0, 0.2, False), (61_000, 101.0, 1.0, True),
            (120_000, 100.5, 1.0, True)]
    df = pd.DataFrame([("X", 1 + i, t, p, q, m) for i, (t, p, q, m) in enumerate(rows)],
                      columns=["symbol", "trade_id", "time_ms", "price", "qty", "buyer_maker"])
    assert signal_edge(df) == 1.0
    assert math.isclose(minute_returns(df).loc[("X", 60_000)], math.log(101.0 / 100.0))


def test_a_later_run_starts_above_every_id_of_an_earlier_one():
    # A second `tickcast up` must not reuse ids: bronze.ticks would take its trades for replays.
    first = simulate_frame(SimConfig(("BTCUSDT",), rate=2000.0, seed=1, start_ms=START_MS), 3)
    later = simulate_frame(SimConfig(("BTCUSDT",), rate=2000.0, seed=1, start_ms=START_MS + 3 * 60_000), 1)
    assert first["trade_id"].iloc[0] == first_trade_id(START_MS) > TRADE_ID_BASE
    assert later["trade_id"].min() > first["trade_id"].max()


# --- continuing a chart: start prices, histories that end where the simulator starts ----------

def test_a_start_price_moves_the_level_not_the_path():
    base = simulate_frame(SimConfig(("BTCUSDT", "ETHUSDT"), rate=5.0, seed=3, start_ms=START_MS), 30)
    moved = simulate_frame(SimConfig(("BTCUSDT", "ETHUSDT"), rate=5.0, seed=3, start_ms=START_MS,
                                     start_prices={"BTCUSDT": 58_512.34}), 30)
    btc_b, btc_m = (f[f["symbol"] == "BTCUSDT-SIM"]["price"].to_numpy() for f in (base, moved))
    assert abs(btc_m[0] / 58_512.34 - 1) < 0.005 and abs(btc_b[0] / 60_000.0 - 1) < 0.005
    # Same trades, same log returns (up to the 0.01 tick), at another level.
    assert len(btc_b) == len(btc_m)
    np.testing.assert_allclose(np.diff(np.log(btc_m)), np.diff(np.log(btc_b)), atol=2e-6)
    eth_b, eth_m = (f[f["symbol"] == "ETHUSDT-SIM"]["price"].to_numpy() for f in (base, moved))
    np.testing.assert_array_equal(eth_b, eth_m)           # a symbol without a start price is untouched


@pytest.mark.parametrize("prices", [{"SOLUSDT": 100.0}, {"BTCUSDT": 0.0}, {"BTCUSDT": float("nan")},
                                    {"BTCUSDT": -5.0}])
def test_bad_start_prices_are_refused(prices):
    with pytest.raises(ValueError, match="start_prices"):
        SimConfig(("BTCUSDT",), rate=1.0, start_prices=prices)


def test_a_history_ends_at_the_price_the_simulator_starts_from():
    from jobs.sim_history import end_at

    cfg = SimConfig(("BTCUSDT", "ETHUSDT"), rate=2.0, seed=7, start_ms=START_MS, plant_signal=True)
    df = simulate_frame(cfg, 120)
    out = end_at(df, {"BTCUSDT": 58_512.34})
    btc = (out["symbol"] == "BTCUSDT-SIMSIG").to_numpy()
    assert out.loc[btc, "price"].to_numpy()[-1] == pytest.approx(58_512.34, abs=1e-9)
    np.testing.assert_allclose(np.diff(np.log(out.loc[btc, "price"].to_numpy())),
                               np.diff(np.log(df.loc[btc, "price"].to_numpy())), atol=2e-6)
    cents = out.loc[btc, "price"].to_numpy() * 100                                         # on the tick grid
    np.testing.assert_allclose(cents, np.round(cents), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out.loc[~btc, "price"].to_numpy(), df.loc[~btc, "price"].to_numpy())
    assert df.loc[btc, "price"].to_numpy()[-1] != pytest.approx(58_512.34, abs=1.0)        # it did move


def test_produce_parses_start_prices_and_refuses_bad_ones():
    import click

    from producers.commands import _start_prices

    assert _start_prices(("BTCUSDT=58512.34", "ethusdt-SIMSIG=3001.5")) == {"BTCUSDT": 58512.34, "ETHUSDT": 3001.5}
    for bad in ("BTCUSDT", "=5", "BTCUSDT=abc"):
        with pytest.raises(click.BadParameter, match="SYMBOL=PRICE"):
            _start_prices((bad,))


def test_a_signal_flip_leaves_the_minutes_before_it_unchanged_and_reverses_the_edge_after_it():
    from tickcast.sources.simulator import MINUTE_MS, SimConfig, simulate_frame

    start = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE_MS
    flip = start + 30 * MINUTE_MS
    base = dict(symbols=("BTCUSDT",), rate=5.0, seed=3, start_ms=start, plant_signal=True, signal_strength=2.0)
    a = simulate_frame(SimConfig(**base), 60)
    b = simulate_frame(SimConfig(**base, signal_flip_ms=flip), 60)
    before_a, before_b = a[a["time_ms"] < flip], b[b["time_ms"] < flip]
    assert len(before_a) > 100
    pd.testing.assert_frame_equal(before_a.reset_index(drop=True), before_b.reset_index(drop=True))
    after_a, after_b = a[a["time_ms"] >= flip], b[b["time_ms"] >= flip]
    assert not np.array_equal(after_a["price"].to_numpy()[:50], after_b["price"].to_numpy()[:50])
    with pytest.raises(ValueError, match="signal_flip_ms"):
        SimConfig(symbols=("BTCUSDT",), rate=5.0, signal_flip_ms=flip)
