"""testkit.faults: the chaos test's kill hooks, installed in a child through PYTHONPATH, inert otherwise."""
from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from testkit import faults

CODE = ("import sys, pyarrow as pa\nfrom tickcast.lake.write import rs_append\n"
        "print(rs_append(pa.table({'x': [2]}), sys.argv[1]), flush=True)\n")


def _run(env, path):
    return subprocess.run([sys.executable, "-c", CODE, path], env=env, capture_output=True, text=True,
                          timeout=120, start_new_session=True)


def test_mid_append_kills_the_child_between_the_data_file_and_the_commit(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"x": [1]}))
    files = lambda: sorted(p.name for p in (tmp_path / "t").glob("*.parquet"))  # noqa: E731
    before = files()
    aimed = _run(faults.child_env(dict(os.environ), "mid-append"), path)
    assert aimed.returncode == -9 and "delta-rs" not in aimed.stdout
    assert faults.message("mid-append") in aimed.stderr
    assert len(files()) == len(before) + 1                   # the stray data file is there...
    assert DeltaTable(path).version() == 0                   # ...and no commit names it
    calm = _run(faults.child_env(dict(os.environ), ""), path)
    assert calm.returncode == 0 and calm.stdout.strip() == "delta-rs", calm.stderr
    assert sorted(DeltaTable(path).to_pyarrow_table().column("x").to_pylist()) == [1, 2]


def test_an_unknown_point_is_refused():
    with pytest.raises(ValueError, match="mid-append"):
        faults.child_env({}, "mid-commit")
    with pytest.raises(ValueError, match="after-commit"):
        faults.install("nowhere")


def test_a_kill_window_kills_only_while_its_block_runs_and_says_so():
    code = ("import sys, time\nfrom testkit import faults\n"
            "with faults.kill_window('mid-merge', 0.2):\n    time.sleep(float(sys.argv[1]))\n"
            "time.sleep(0.5)\nprint('alive')\n")

    def run(seconds: str):
        return subprocess.run([sys.executable, "-c", code, seconds], capture_output=True, text=True, timeout=60,
                              start_new_session=True)

    quick = run("0")
    assert quick.returncode == 0 and quick.stdout.strip() == "alive", quick.stderr    # ended first: no kill
    slow = run("5")
    assert slow.returncode == -9 and "alive" not in slow.stdout
    assert faults.message("mid-merge") in slow.stderr and faults.INSIDE in slow.stderr
