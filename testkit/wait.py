"""Waiting on a condition, never a fixed sleep: one poll loop for tests and benchmarks."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold in time (an AssertionError, so pytest reports it as a failure)."""


def until(cond: Callable[[], T], timeout: float, what: str, *, proc=None, interval: float = 0.2,
          detail: Callable[[], str] = lambda: "") -> T:
    """Poll `cond` until it returns something truthy and return that; raise WaitTimeout after `timeout`
    seconds, or as soon as `proc` (a Popen the condition depends on) has exited. `detail` adds context
    (a log's tail, say) to the message."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise WaitTimeout(f"exited ({proc.returncode}) before {what}\n{detail()}")
        if time.monotonic() > deadline:
            raise WaitTimeout(f"no {what} after {timeout:.0f} s\n{detail()}")
        time.sleep(interval)
