"""Test-only start-up hook (testkit.faults.child_env puts this folder on a child's PYTHONPATH)."""
import os

if os.environ.get("TESTKIT_KILL_AT"):
    from testkit import faults

    faults.install(os.environ["TESTKIT_KILL_AT"])
