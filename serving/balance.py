"""Each gunicorn worker listens on a socket of its own (SO_REUSEPORT), so the kernel spreads new
connections over the workers (docs/adr/0012-a-listening-socket-per-worker.md).

Why: gunicorn's workers share the master's one listening socket, and whichever worker wakes first
accepts. Keep-alive connections then stay with the worker that accepted them, so a client pool that
connects at once often lands on one worker: `tickcast bench serve` saw the service at ~1.1 of 2
cores in about half of its runs (one worker busy, the other idle) and at ~1.8 in the rest.
With a socket per worker, Linux picks the socket by a hash of the connection's addresses.

The shared socket stays open in every worker too: it receives its share of connections (taken by
whichever worker is free) and covers the moments when a worker is being replaced.
"""
from __future__ import annotations

import socket


def own_listener(host: str, port: int, backlog: int) -> socket.socket | None:
    """A non-blocking TCP listener on host:port in the SO_REUSEPORT group of the master's socket;
    None where the platform has no SO_REUSEPORT (the shared socket alone then)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as gunicorn's own TCP sockets
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        return None
    return sock


def add_own_listener(worker, host: str, port: int, backlog: int) -> None:
    """gunicorn's `post_fork`: the worker listens on its own socket before the shared ones."""
    own = own_listener(host, port, backlog)
    if own is None:
        worker.log.warning("no listening socket of its own (SO_REUSEPORT refused): the shared socket only")
        return
    worker.sockets = [own, *worker.sockets]
