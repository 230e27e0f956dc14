"""Pure logic of the live source: backoff, limits, weight budget, frame parsing, ordering and dedupe."""
import json
import random

import pytest

from producers import live
from tickcast.sources.limits import Backoff, SlidingWindow, Spacing, WeightBudget, retry_after_seconds
from producers.live.sequencer import Sequencer
from tickcast.sources.rest import agg_row_to_event, trade_row_to_event
from producers.live.frames import chunk_streams, classify
from tickcast import events

TRADE = {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": 3735683259, "p": "61837.63000000",
         "q": "0.02000000", "T": 1723161255342, "m": True, "M": True}


def wrap(ev, stream="btcusdt@trade") -> str:
    return json.dumps({"stream": stream, "data": ev}, separators=(",", ":"))


# ---- backoff and limits ----
def test_backoff_grows_exponentially_with_jitter_up_to_the_cap_and_resets():
    b = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [b.next() for _ in range(7)]
    for n, d in enumerate(delays):
        top = min(8.0, 2 ** n)
        assert top / 2 <= d <= top
    assert len({round(d, 6) for d in delays[4:]}) > 1, "jitter: capped delays are not all equal"
    b.reset()
    assert 0.5 <= b.next() <= 1.0


def test_backoff_jitter_spreads_clients():
    firsts = {round(Backoff(2.0, 60, random.Random(i)).next(), 3) for i in range(50)}
    assert len(firsts) > 40


def test_spacing_keeps_control_messages_under_five_per_second():
    sp = Spacing(4.0)
    now, sent = 100.0, []
    for _ in range(20):                 # a burst of 20 wanted at once
        sent.append(now + sp.reserve(now))
    for i in range(len(sent)):
        in_window = [t for t in sent if sent[i] <= t < sent[i] + 1.0]
        assert len(in_window) <= 4


def test_sliding_window_caps_connection_attempts():
    w = SlidingWindow(limit=3, window=300)
    for t in (0, 1, 2):
        assert w.delay(t) == 0
        w.record(t)
    assert w.delay(3) == pytest.approx(297)
    assert w.delay(300.5) == 0


def test_weight_budget_waits_for_next_minute_and_trusts_the_exchange_header():
    b = WeightBudget(100)
    now = 60 * 1000 + 10.0
    assert b.wait(25, now) == 0
    b.spend(25, now)
    b.observe("90", now)                # other clients on the IP used more: the header wins
    assert b.used == 90
    wait = b.wait(25, now)
    assert wait == pytest.approx(50.05)
    assert b.wait(25, now + wait) == 0  # a new minute starts from zero
    b.observe("not a number", now)


def test_weight_budget_honours_retry_after_bans():
    b = WeightBudget(6000)
    b.ban(retry_after_seconds("7", 60.0), 1000.0)
    assert b.wait(1, 1000.0) == pytest.approx(7.0)
    assert b.wait(1, 1007.0) == 0
    assert retry_after_seconds(None, 60.0) == 60.0 and retry_after_seconds("x", 5.0) == 5.0


def test_streams_are_split_at_1024_per_connection():
    streams = [f"s{i}usdt@trade" for i in range(2500)]
    groups = chunk_streams(streams)
    assert [len(g) for g in groups] == [1024, 1024, 452]
    assert sum(groups, []) == streams
    with pytest.raises(ValueError):
        chunk_streams(streams, 1025)


# ---- parsing ----
def test_combined_frame_is_unwrapped_to_the_exchange_bytes():
    f = classify(wrap(TRADE))
    assert f.what == "trade" and (f.symbol, f.kind, f.id) == ("BTCUSDT", "trade", 3735683259)
    assert f.value == events.compact(TRADE) and f.event_ms == TRADE["E"] and f.trade_ms == TRADE["T"]


def test_agg_trade_and_bare_events_and_spaced_json():
    agg = {"e": "aggTrade", "E": 2, "s": "ETHUSDT", "a": 7, "p": "1.0", "q": "2.0", "f": 10, "l": 12, "T": 1,
           "m": False, "M": True}
    f = classify(wrap(agg, "ethusdt@aggTrade"))
    assert (f.what, f.kind, f.id) == ("trade", "aggTrade", 7)
    assert classify(json.dumps(agg, separators=(",", ":"))).value == events.compact(agg)
    spaced = json.dumps({"stream": "ethusdt@aggTrade", "data": agg})     # with spaces: re-encoded compact
    assert classify(spaced).value == events.compact(agg)


@pytest.mark.parametrize("frame,what", [
    ("not json {", "forward"),
    (b"\xff\xfe\x00 garbage", "forward"),
    ("[1,2]", "forward"),
    (wrap({"e": "trade", "s": "BTCUSDT", "p": "1.0"}), "forward"),          # a trade without its id
    (wrap({"e": "depthUpdate", "E": 1, "s": "BTCUSDT"}, "btcusdt@depth"), "skip"),
    ('{"e":"serverShutdown","E":1746012020000}', "shutdown"),
    ('{"result":null,"id":1}', "control"),
    ('{"error":{"code":2,"msg":"Invalid request"},"id":3}', "control"),
])
def test_frames_are_classified(frame, what):
    f = classify(frame)
    assert f.what == what
    if what == "forward":
        assert f.value and b'"stream"' not in f.value   # forwarded bare, never the wrapper


def test_rest_rows_become_ws_events_with_e_equal_t():
    agg = agg_row_to_event({"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781,
                            "T": 1498793709153, "m": True, "M": True}, "BNBBTC")
    assert agg == {"e": "aggTrade", "E": 1498793709153, "s": "BNBBTC", "a": 26129, "p": "0.01633102",
                   "q": "4.70443515", "f": 27781, "l": 27781, "T": 1498793709153, "m": True, "M": True}
    tr = trade_row_to_event({"id": 28457, "price": "4.00000100", "qty": "12.00000000", "quoteQty": "48.000012",
                             "time": 1499865549590, "isBuyerMaker": True, "isBestMatch": True}, "BNBBTC")
    assert list(tr) == list(TRADE)            # the WS field order
    assert (tr["t"], tr["E"], tr["T"], tr["p"], tr["q"], tr["m"]) == (28457, 1499865549590, 1499865549590,
                                                                       "4.00000100", "12.00000000", True)
    assert classify(events.compact(tr)).id == 28457


# ---- ordering and dedupe ----
class Sink:
    def __init__(self):
        self.out = []

    def __call__(self, key, ident, value, source, arrival):
        self.out.append((key, ident, source))


K = ("BTCUSDT", "trade")


def test_sequencer_publishes_in_order_once_and_holds_ids_behind_a_gap():
    sink = Sink()
    q = Sequencer(sink)
    for i in (1, 2, 3):
        assert not q.live(K, i, b"x", 0.0)
    assert not q.live(K, 2, b"x", 0.0)          # a duplicate (rotation overlap)
    assert q.live(K, 6, b"x", 0.0)              # gap 4..5: held, the caller schedules a fill
    assert q.live(K, 7, b"x", 0.0) and q.gap_from(K) == 4   # also held (a fill is already due)
    assert q.rest(K, 3, b"r", 0.0) is False     # already published
    assert q.rest(K, 4, b"r", 0.0) and q.rest(K, 5, b"r", 0.0)
    assert [x[1] for x in sink.out] == [1, 2, 3, 4, 5, 6, 7]
    assert [x[2] for x in sink.out] == ["live"] * 3 + ["gapfill"] * 2 + ["live"] * 2
    assert q.duplicates == 1 and q.gap_from(K) is None


def test_sequencer_out_of_order_from_two_connections_closes_its_own_gap():
    sink = Sink()
    q = Sequencer(sink)
    q.live(K, 10, b"", 0)
    assert q.live(K, 12, b"", 0)                # the new connection is ahead
    assert not q.live(K, 11, b"", 0)            # the old one delivers the missing id: no REST needed
    assert not q.live(K, 12, b"", 0)
    assert [x[1] for x in sink.out] == [10, 11, 12] and q.gap_from(K) is None


def test_sequencer_random_interleaving_never_duplicates_nor_reorders():
    rng = random.Random(3)
    sink = Sink()
    q = Sequencer(sink)
    ids = list(range(1, 2001))
    # Two "connections" deliver overlapping windows, shuffled a little; REST fills what both miss.
    a = [i for i in ids if not 500 <= i < 700]
    b = [i for i in ids if 600 <= i < 1500 and i % 97]
    stream = [(i, "a") for i in a] + [(i, "b") for i in b]
    stream.sort(key=lambda x: x[0] + rng.uniform(-3, 3))
    for i, _ in stream:
        q.live(K, i, b"", 0)
        while (gap := q.gap_from(K)) is not None:
            q.rest(K, gap, b"", 0)
    got = [x[1] for x in sink.out]
    assert got == ids[:len(got)] and len(got) == len(ids)


def test_sequencer_restart_from_a_recovered_id_skips_what_the_topic_holds():
    sink = Sink()
    q = Sequencer(sink)
    q.state(K).last = 100                       # recovered from the topic
    assert not q.live(K, 99, b"", 0) and not q.live(K, 100, b"", 0)
    assert q.live(K, 105, b"", 0) and q.gap_from(K) == 101
    published = [q.rest(K, i, b"", 0) for i in range(101, 106)]
    assert published == [True] * 4 + [False]    # 105 came live and was drained after 104
    assert [(x[1], x[2]) for x in sink.out] == [(i, "gapfill") for i in range(101, 105)] + [(105, "live")]


def test_a_hole_in_the_exchange_history_is_counted_not_hidden():
    sink = Sink()
    q = Sequencer(sink)
    q.live(K, 1, b"", 0)
    q.rest(K, 5, b"", 0)
    assert q.lost == 3 and [x[1] for x in sink.out] == [1, 5]


def test_live_options_reject_unknown_kinds():
    from tickcast.settings import load

    with pytest.raises(ValueError):
        live.LiveProducer(load({}), live.LiveOptions(symbols=["BTCUSDT"], kind="depth"))


# ---- settings of the live source ----
def test_live_settings_defaults():
    from tickcast.settings import load

    s = load({})
    assert (s.binance_ws_lifetime_seconds, s.binance_rest_weight_per_minute, s.backfill_lookback_hours,
            s.producer_metrics_port) == (82800.0, 6000, 2160.0, 9108)
    assert s.binance_ws_lifetime_seconds < 24 * 3600, "rotates before Binance's 24 h cut"
    assert load({"TICKCAST_PRODUCER_METRICS_PORT": "0", "TICKCAST_BACKFILL_LOOKBACK_HOURS": "0"}).producer_metrics_port == 0


@pytest.mark.parametrize("name,value", [
    ("BINANCE_WS_LIFETIME_SECONDS", "0"), ("BINANCE_WS_LIFETIME_SECONDS", "soon"),
    ("BINANCE_REST_WEIGHT_PER_MINUTE", "0"), ("BINANCE_REST_WEIGHT_PER_MINUTE", "1.5"),
    ("BACKFILL_LOOKBACK_HOURS", "-1"), ("PRODUCER_METRICS_PORT", "70000"), ("PRODUCER_METRICS_PORT", "-1"),
])
def test_bad_live_setting_fails_naming_it(name, value):
    from tickcast.settings import SettingsError, load

    with pytest.raises(SettingsError) as e:
        load({f"TICKCAST_{name}": value})
    assert str(e.value).startswith(f"TICKCAST_{name}:")
