"""`tickcast up`'s live status: one snapshot, drawn as a multi-line panel on a terminal or as one
plain line where stdout is a pipe or a file.

The snapshot is plain data (`Status`), so both renderings are pure and unit-tested.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

PANEL_WIDTH = 100          # the panel's text width when the terminal's is unknown


@dataclass
class Status:
    elapsed_s: float = 0.0
    source: str = ""
    queries: dict[str, dict] = field(default_factory=dict)   # query name -> last progress (Spark's JSON)
    rows: dict[str, int] = field(default_factory=dict)       # table -> rows
    prediction: str = ""                                     # the latest prediction, in words
    scores: str = ""                                         # live hit rate against the baselines
    stack: str = ""                                          # CPU and memory of the whole stack
    urls: dict[str, str] = field(default_factory=dict)       # component -> URL (or why it is not running)
    data_loss: str = ""                                      # Kafka offsets lost to retention, never silent
    lifecycle: str = ""                                      # the newest model event per horizon, the retrainer
    serving: list[str] = field(default_factory=list)         # per horizon: which model serves and why
    catching_up: str = ""                                    # "catching up: waiting for ..." after a start
    log_dir: str = ""


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """`text` in lines of at most `width` characters, broken at spaces only (a word longer than a
    line keeps its own line whole: a gate's numbers and version names must stay readable)."""
    return textwrap.wrap(text, width=max(20, width), subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [""]



def _query_cells(name: str, p: dict) -> tuple[str, str, str, str]:
    src = (p.get("sources") or [{}])[0]
    lag = (src.get("metrics") or {}).get("maxOffsetsBehindLatest")
    rate = p.get("inputRowsPerSecond") or 0.0
    batch = (p.get("durationMs") or {}).get("triggerExecution", 0)
    return name, f"{rate:,.0f}/s", f"{batch:,} ms", "" if lag is None else f"{lag}"


def plain_line(st: Status) -> str:
    """One line for logs and pipes: elapsed, per query rate/batch/lag, rows, prediction, stack."""
    parts = [f"{st.elapsed_s:.0f}s {st.source}".strip()]
    for name, p in st.queries.items():
        n, rate, batch, lag = _query_cells(name, p)
        parts.append(f"{n} {rate} {batch}" + (f" lag {lag}" if lag else ""))
    if st.rows:
        parts.append("rows " + " ".join(f"{k}={v}" for k, v in st.rows.items()))
    parts += [x for x in (st.prediction, st.scores, st.lifecycle, st.data_loss, st.stack) if x]
    return " | ".join(parts)


def plain_news(st: Status, said: dict) -> list[str]:
    """Lines to print once, where stdout is a pipe or a file, beside the plain line: which model
    serves each horizon and why (whole, when it changes), and catching up (when it starts, when it
    changes, and once when it ends). `said` keeps what was printed; it is updated."""
    out = []
    for i, x in enumerate(st.serving):
        if said.get(("serving", i)) != x:
            said[("serving", i)] = x
            out.append(f"model: {x}")
    was = said.get("catching_up", "")
    if st.catching_up != was:
        said["catching_up"] = st.catching_up
        out.append(st.catching_up or "caught up: a minute that ended after the streams started has its prediction")
    return out


def panel(st: Status, width: int | None = None):
    """A rich renderable that fits the terminal: URLs, queries, tables, the model, the stack.

    `width`: the terminal's columns; the model's lines (gate reasons are long) are wrapped to fit
    it at word boundaries, never mid-word.
    """
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    inner = (width or PANEL_WIDTH) - 4          # the panel's border and padding

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    for name, url in st.urls.items():
        head.add_row(name, url)
    head.add_row("stack", st.stack or "-")
    if st.data_loss:
        head.add_row("kafka", st.data_loss, style="bold red" if st.data_loss.startswith("LOST") else None)
    if st.log_dir:
        head.add_row("logs", st.log_dir)

    q = Table(box=None, pad_edge=False, expand=False)
    for col, just in (("query", "left"), ("input", "right"), ("batch", "right"), ("lag (msgs)", "right")):
        q.add_column(col, justify=just, no_wrap=True)
    for name, p in st.queries.items():
        q.add_row(*_query_cells(name, p))

    rows = Table(box=None, pad_edge=False, expand=False)
    rows.add_column("table", no_wrap=True)
    rows.add_column("rows", justify="right", no_wrap=True)
    for k, v in st.rows.items():
        rows.add_row(k, f"{v:,}")

    model = Table.grid()
    model.add_column(no_wrap=True)

    def lines(text: str, style=None) -> None:
        for line in wrap(text, inner, "    "):
            model.add_row(Text(line, style=style or ""))

    if st.catching_up:    # yellow, not red: the start's backlog is expected (tickcast/catchup.py)
        lines(st.catching_up, "bold yellow")
    for x in st.serving:
        lines(x)
    lines(st.prediction or "no prediction yet")
    if st.scores:
        lines(st.scores)
    if st.lifecycle:
        lines(st.lifecycle, "bold red" if "FAILED" in st.lifecycle or "not running" in st.lifecycle else None)

    body = Table.grid(padding=(0, 3))
    body.add_column()
    body.add_column()
    body.add_row(q, rows)
    return Panel(Group(head, "", body, "", model), title=f"tickcast up · {st.source} · {st.elapsed_s:.0f} s",
                 title_align="left")
