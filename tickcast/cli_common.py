"""What every command module shares (the core CLI and the components' `commands.py`): the settings
as a command sees them, and the parsers of symbol lists and ISO times."""
from __future__ import annotations

from datetime import datetime, timezone

import click

from tickcast.settings import Settings, SettingsError, load


def settings(quiet_tensorflow: bool = False) -> Settings:
    """The settings, or a click error naming the bad one. `quiet_tensorflow` for commands that load
    TensorFlow (training, benchmarks): its C++ chatter stays off the terminal."""
    try:
        s = load()
    except SettingsError as e:
        raise click.ClickException(f"bad setting: {e}") from None
    if quiet_tensorflow:
        s.quiet_tensorflow()
    return s


def symbols(value: str | None) -> tuple[str, ...] | None:
    """`A,B` -> ("A", "B"); empty -> None (every symbol)."""
    return tuple(x.strip() for x in value.split(",") if x.strip()) if value else None


def time_ms(value: str | None) -> int | None:
    """An ISO time (UTC when it names no zone) -> epoch milliseconds; empty -> None."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO time such as 2024-06-30T23:59Z, got {value!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1000)
