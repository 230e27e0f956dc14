"""`up`'s status: the panel fits the terminal's width and the plain line carries the same numbers."""
from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from tickcast.status import Status, panel, plain_line, plain_news

PROGRESS = {
    "ingest": {"inputRowsPerSecond": 51.2, "durationMs": {"triggerExecution": 412},
               "sources": [{"metrics": {"maxOffsetsBehindLatest": "3"}}]},
    "bars": {"inputRowsPerSecond": 50.0, "durationMs": {"triggerExecution": 230}, "sources": [{}]},
}


def status() -> Status:
    return Status(elapsed_s=125.4, source="simulate", queries=PROGRESS,
                  rows={"bronze.ticks": 123456, "silver.bars_1m": 42},
                  prediction="pred BTCUSDT-SIMSIG 12:03 h5 P(up)=0.531 v2",
                  scores="hit h5 54.0% (clim 50.1%, mom 49.0%, n=300)", stack="cpu 0.81 cores, mem 4.90 GiB",
                  urls={"service": "http://127.0.0.1:8000/", "dashboard": "http://127.0.0.1:8050/"},
                  log_dir="/x/.data/logs", data_loss="LOST 12 offsets (ticks/0: 12)")


def render(width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, color_system=None).print(panel(status()))
    return out.getvalue().splitlines()


def test_panel_fits_the_terminal_and_shows_the_urls_and_numbers():
    for width in (80, 120, 200):
        lines = render(width)
        assert all(len(x) <= width for x in lines), width
        text = "\n".join(lines)
        for needle in ("http://127.0.0.1:8000/", "http://127.0.0.1:8050/", "ingest", "51/s", "412 ms",
                       "123,456", "P(up)=0.531", "clim 50.1%", "0.81 cores", "LOST 12 offsets"):
            assert needle in text, (width, needle)
    # Several lines, so a refresh redraws them in place rather than appending one long wrapped line.
    assert len(render(120)) >= 8


def test_plain_line_is_one_line_with_the_same_numbers():
    line = plain_line(status())
    assert "\n" not in line
    assert line.startswith("125s simulate | ingest 51/s 412 ms lag 3 | bars 50/s 230 ms | ")
    assert "rows bronze.ticks=123456 silver.bars_1m=42" in line and line.endswith("mem 4.90 GiB")
    assert "| LOST 12 offsets (ticks/0: 12) |" in line


REASON = ("not promoted: linear's Brier improvement over momentum is +0.000012 [-0.000031, +0.000058] over 2,316 "
          "minutes, whose lower end is not above zero; climatology +0.000101 [+0.000020, +0.000190]; "
          "tickcast-h5-champion-history-v12345678901234567890 unchanged")


def test_long_gate_reasons_wrap_at_word_boundaries_never_mid_word():
    from tickcast.status import wrap

    words = REASON.split()
    for width in (80, 120, 200):
        lines = wrap(REASON, width - 4, "    ")
        assert len(lines) > 1 or width == 200
        assert all(len(x) <= width - 4 or " " not in x.strip() for x in lines)
        assert " ".join(x.strip() for x in lines).split() == words      # every word whole, in order
        out = io.StringIO()
        st = dataclasses.replace(status(), serving=[f"h5 serving nothing: v3 (linear) was refused by the gate: {REASON}"])
        Console(file=out, width=width, force_terminal=False, color_system=None).print(panel(st, width))
        rendered = out.getvalue().splitlines()
        assert all(len(x) <= width for x in rendered), width
        tokens = " ".join(x.strip(" │╭╮╰╯─") for x in rendered).split()
        for w in words:      # each of the reason's words appears whole in the panel
            assert w in tokens, (width, w)
    # Where stdout is a pipe: the plain line stays short; the reasons are printed whole, once per change.
    st = dataclasses.replace(status(), serving=[f"h1 serving v2 (linear); the gate passed it: {REASON}"],
                             catching_up="catching up: waiting for the first live minute's bar")
    assert "serving" not in plain_line(st) and "catching up" not in plain_line(st)
    said: dict = {}
    assert plain_news(st, said) == [f"model: h1 serving v2 (linear); the gate passed it: {REASON}",
                                    "catching up: waiting for the first live minute's bar"]
    assert plain_news(st, said) == []
    st.catching_up = ""
    assert plain_news(st, said) == ["caught up: a minute that ended after the streams started has its prediction"]
    assert plain_news(st, said) == []
