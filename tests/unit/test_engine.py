"""Each engine workaround (tickcast/engine/, docs/adr/) has a test here that fails once its removal
condition holds: the engine behaviour it exists for is gone, or the version it is tied to moved.
A failure here is a prompt to re-measure and remove the workaround, not a bug."""
from __future__ import annotations

import inspect
import subprocess
import sys
import tomllib

import pyarrow as pa

from tests.conftest import REPO


def test_0001_spark_offers_no_trigger_phase():
    """ADR 0001 (trigger_clock): remove when a processing-time trigger takes a phase or offset."""
    from pyspark.sql.streaming.readwriter import DataStreamWriter

    params = set(inspect.signature(DataStreamWriter.trigger).parameters)
    assert not {p for p in params if "phase" in p.lower() or "offset" in p.lower()}, params
    import pyspark

    assert pyspark.__version__ == "4.0.0"     # the private executor field it swaps (tests/spark checks it)


def test_0002_workers_run_a_python_whose_zipimporter_rereads_at_once():
    """ADR 0002 (zipimport_cache): remove when the workers' Python is >= 3.12 (CPython gh-103200)."""
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11", requires
    # The behaviour itself, in a fresh interpreter (an earlier test may have patched this one).
    code = ("import sys, zipfile, zipimport\n"
            "p = sys.argv[1]\nzipfile.ZipFile(p, 'w').writestr('m.py', 'x = 1')\n"
            "z = zipimport.zipimporter(p)\nn = []\nr = zipimport._read_directory\n"
            "zipimport._read_directory = lambda a: n.append(a) or r(a)\n"
            "z.invalidate_caches()\nprint(len(n))\n")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", code, f"{d}/a.zip"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1", out.stderr        # eager re-read: the cost the workaround avoids


def test_0003_py4j_resolves_every_jvm_name_anew():
    """ADR 0003 (py4j_names): remove when py4j caches resolved names on its JVM view."""
    from py4j.java_gateway import JVMView

    src = inspect.getsource(JVMView.__getattr__)
    assert "send_command" in src and "__dict__" not in src and "setattr" not in src


def test_0004_delta_rs_writes_no_version_checksum(tmp_path):
    """ADR 0004 (tickcast.lake._checksum): remove when a delta-rs append leaves `<version>.crc`."""
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path), pa.table({"x": [1]}))
    write_deltalake(str(tmp_path), pa.table({"x": [2]}), mode="append")
    assert not list((tmp_path / "_delta_log").glob("*.crc"))


def test_0006_classic_progress_is_built_from_the_java_object():
    """ADR 0006 (progress_json): remove when classic PySpark builds progress from its JSON."""
    from pyspark.sql.streaming.query import StreamingQuery

    src = inspect.getsource(StreamingQuery.lastProgress.fget)
    assert "fromJObject" in src and "fromJson" not in src


def test_0007_create_dataframe_of_a_list_goes_through_a_python_rdd():
    """ADR 0007 (arrow_frames): drop the rule when a small list no longer becomes a Python RDD."""
    from pyspark.sql.session import SparkSession

    assert "parallelize" in inspect.getsource(SparkSession._createFromLocal)


def test_0008_classic_columns_are_built_over_py4j():
    """ADR 0008 (columns): remove when building a Column makes no JVM call (e.g. Spark Connect)."""
    from pyspark.sql.classic import column

    assert "_jc" in inspect.getsource(column.Column.__init__)
