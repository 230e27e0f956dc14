"""One writer per data directory: a lock file held by the running process.

`tickcast up`, and any job that writes the tables, takes `$TICKCAST_DATA_DIR/writer.lock` before
it starts; a second one refuses with a message that names the running process and the lock file.

The lock is `fcntl.flock` on an open file descriptor, so the kernel releases it when the holder
exits by any route, `kill -9` included: a lock file left behind by a dead process is stale and
is taken over (its pid is reported as gone). The pid and command written into the file are only
for the message; the flock is the truth. Child processes started with `close_fds` (the default of
`subprocess`) do not inherit the descriptor, so a surviving child never keeps a dead parent's lock.
"""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

LOCK_NAME = "writer.lock"


class LockHeld(RuntimeError):
    """Another live process holds the data directory's writer lock."""

    def __init__(self, path: Path, pid: int | None, what: str):
        self.path, self.pid, self.what = path, pid, what
        who = f"process {pid} ({what})" if pid else "another process"
        super().__init__(f"{who} is already writing to this data directory; it holds {path}. "
                         f"Stop it first (or use another TICKCAST_DATA_DIR).")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ancestors() -> set[int]:
    """This process's parent, grandparent, ... (a job `up` started runs under the lock's holder)."""
    import psutil

    try:
        return {p.pid for p in psutil.Process().parents()}
    except psutil.Error:
        return {os.getppid()}


def read_holder(path: Path) -> tuple[int | None, str]:
    """(pid, what) written in a lock file; (None, "") when absent or unreadable."""
    try:
        first, _, rest = Path(path).read_text().partition("\n")
        return int(first), rest.strip()
    except (OSError, ValueError):
        return None, ""


class WriterLock:
    """The writer lock of one data directory; a context manager, or `acquire()`/`release()`.

    Args:
        data_dir: the data directory (`Settings.data_dir`).
        what: what holds it, for the other process's message (e.g. "tickcast up", "job ingest").
    """

    def __init__(self, data_dir: Path, what: str):
        self.path = Path(data_dir) / LOCK_NAME
        self.what = what
        self._fd: int | None = None
        self.stale_pid: int | None = None      # a dead holder's pid found in the file, if any

    def acquire(self) -> "WriterLock":
        """Take the lock or raise `LockHeld`. Re-entrant within one process."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid, what = read_holder(self.path)
            if pid is not None and pid in _ancestors():
                return self                     # a job started by the `up` that holds it
            raise LockHeld(self.path, pid, what) from None
        pid, _ = read_holder(self.path)
        if pid and pid != os.getpid() and not _alive(pid):
            self.stale_pid = pid                # died without releasing (kill -9): the kernel did
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{self.what}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)           # no pid left behind to mislead a reader
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_held: dict[Path, WriterLock] = {}


def hold_writer_lock(data_dir: Path, what: str | None = None) -> WriterLock:
    """Take the data directory's writer lock for the rest of this process (released at exit, by
    the kernel if need be). Raises `LockHeld` naming the holder and the lock file."""
    key = Path(data_dir).resolve()
    if key not in _held:
        _held[key] = WriterLock(key, what or " ".join(os.path.basename(a) for a in sys.argv[:3]))
    return _held[key].acquire()
