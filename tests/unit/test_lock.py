"""One writer per data directory: real processes holding, dying (kill -9) and refusing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tickcast.lock import LockHeld, WriterLock, read_holder

HOLD = ("import sys, time; from tickcast.lock import hold_writer_lock; "
        "hold_writer_lock(sys.argv[1], 'tickcast up'); print('held', flush=True); time.sleep(600)")
TRY = ("import sys; from tickcast.lock import hold_writer_lock, LockHeld\n"
       "try:\n    hold_writer_lock(sys.argv[1], 'job ingest'); print('took')\n"
       "except LockHeld as e:\n    print('refused:', e)\n")


def _holder(d):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"held"
    return p


def test_a_second_writer_is_refused_with_the_pid_and_the_lock_file(tmp_path):
    p = _holder(tmp_path)
    try:
        with pytest.raises(LockHeld) as e:
            WriterLock(tmp_path, "job bars").acquire()
        msg = str(e.value)
        assert f"process {p.pid} (tickcast up)" in msg and str(tmp_path / "writer.lock") in msg
        assert e.value.pid == p.pid
    finally:
        p.kill()
        p.wait()


def test_kill_9_releases_it_and_the_stale_pid_is_reported(tmp_path):
    p = _holder(tmp_path)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert read_holder(tmp_path / "writer.lock")[0] == p.pid        # the file still names the dead one
    lock = WriterLock(tmp_path, "tickcast up").acquire()
    try:
        assert lock.held and lock.stale_pid == p.pid
        assert read_holder(tmp_path / "writer.lock") == (os.getpid(), "tickcast up")
    finally:
        lock.release()
    assert read_holder(tmp_path / "writer.lock") == (None, "")      # a clean exit leaves no pid


def test_a_job_started_by_the_holder_runs_and_a_stranger_does_not(tmp_path):
    with WriterLock(tmp_path, "tickcast up"):
        # A child (as `up` starts its jobs): part of the same writer.
        child = subprocess.run([sys.executable, "-c", TRY, str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert child.stdout.startswith("took"), child.stdout + child.stderr
    # Now held by a process that is not an ancestor: refused, naming it.
    p = _holder(tmp_path)
    try:
        other = subprocess.run([sys.executable, "-c", TRY, str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert other.stdout.startswith("refused:") and f"process {p.pid} (tickcast up)" in other.stdout
    finally:
        p.kill()
        p.wait()
    # And free again once that holder is gone.
    t0 = time.monotonic()
    with WriterLock(tmp_path, "job backfill") as lock:
        assert lock.held
    assert time.monotonic() - t0 < 1
