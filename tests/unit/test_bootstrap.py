"""Where `tickcast up`'s simulator starts: the newest simulated close in silver.bars_1m, so that a
restart continues the chart (delta-rs writes; no JVM)."""
from __future__ import annotations

import pyarrow.compute as pc
import pytest

from stack.bootstrap import sim_bars, sim_start_prices
from tests.unit.test_dashboard_data import MIN, T0, bar_rows
from tickcast import tables


@pytest.fixture
def settings(tmp_path):
    from tickcast.settings import load

    return load({"TICKCAST_DATA_DIR": str(tmp_path)})


def test_a_first_run_starts_at_the_profiles_prices(settings):
    assert sim_bars(settings, ["BTCUSDT", "ETHUSDT"]) == {}
    assert sim_start_prices(settings, ["BTCUSDT", "ETHUSDT", "XRPUSDT"]) == {
        "BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "XRPUSDT": 100.0}


def test_a_restart_goes_on_from_the_newest_simulated_close(settings):
    from deltalake import write_deltalake

    rows = []
    for k in (2, 0, 1):                  # appended out of time order: the newest by window, not by file
        rows.append(bar_rows(["BTCUSDT-SIMSIG", "ETHUSDT-SIM", "SOLUSDT"], T0 + k * MIN, 1, seed=k))
        write_deltalake(tables.BARS.path(settings), rows[-1], mode="append")
    newest = rows[0]
    want = float(newest.filter(pc.equal(newest["symbol"], "BTCUSDT-SIMSIG"))["close"][0].as_py())
    assert sim_bars(settings, ["BTCUSDT", "ETHUSDT"]) == {"BTCUSDT": (3, pytest.approx(want))}
    # ETHUSDT has only unsignalled -SIM bars (not what `up` publishes): its profile's price.
    assert sim_start_prices(settings, ["BTCUSDT", "ETHUSDT"]) == {"BTCUSDT": pytest.approx(want), "ETHUSDT": 3_000.0}
