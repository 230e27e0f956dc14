"""`up`'s status: the panel fits the terminal's width and the plain line carries the same numbers."""
from __future__ import annotations

import io

from rich.console import Console

from tickcast.status import Status, panel, plain_line

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
