"""Where `up` talks: a live panel on a terminal, a plain line every N seconds otherwise."""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time

import click
from rich.live import Live

from tickcast import status


class Terminal:
    """Where `up` talks: a live panel on a terminal, a plain line every `every` seconds otherwise.

    Writes never raise: when stdout is a closed pipe (`up | tee log`, then Ctrl-C) the run must still
    stop every child it started, so a broken pipe only sets `broken` and asks the run to stop.
    """

    def __init__(self, every: float, stop: threading.Event):
        self.every, self.stop = every, stop
        self.tty = sys.stdout.isatty()
        self.broken = False
        self.live = None
        self._last_plain = 0.0
        self._said: dict = {}

    def say(self, text: str, **style) -> None:
        if self.broken:
            return
        try:
            if self.live is not None:
                self.live.console.print(text, style="bold " + style["fg"] if "fg" in style else None,
                                        highlight=False, markup=False)
            elif self.tty:   # a terminal folds a long line mid-word: wrap it at word boundaries first
                width = shutil.get_terminal_size().columns
                click.secho("\n".join(status.wrap(text, width, "    ")), **style)
            else:            # a pipe or a log file: one line per message, as said
                click.secho(text, **style)
        except (BrokenPipeError, OSError):
            self._broke()

    def show(self, st) -> None:
        if self.broken:
            return
        try:
            if self.tty:
                if self.live is None:
                    self.live = Live(auto_refresh=False, transient=False)
                    self.live.start()
                # The terminal's width now (it may have been resized): long reasons wrap to it by words.
                self.live.update(status.panel(st, self.live.console.width), refresh=True)
            else:
                for line in status.plain_news(st, self._said):   # whole, once: the plain line stays short
                    click.echo(line)
                if time.monotonic() - self._last_plain >= self.every:
                    self._last_plain = time.monotonic()
                    click.echo(status.plain_line(st))
                sys.stdout.flush()
        except (BrokenPipeError, OSError):
            self._broke()

    def close(self) -> None:
        if self.live is not None:
            try:
                self.live.stop()
            except (BrokenPipeError, OSError):
                self._broke()
            self.live = None

    def _broke(self) -> None:
        self.broken = True
        self.stop.set()
        try:  # later writes (and the interpreter's final flush) go nowhere instead of raising
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except OSError:
            pass
