"""Loopback ports and HTTP readiness for tests and benchmarks."""
from __future__ import annotations

import socket
import urllib.request

from testkit.wait import until


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def wait_http(url: str, timeout: float = 60.0, proc=None, what: str = "", detail=lambda: "") -> None:
    """Wait until `url` answers 200; fail early when `proc` (the server) exited."""
    until(lambda: answers(url), timeout, what or f"answer from {url}", proc=proc, interval=0.2, detail=detail)
