"""The engine workarounds that need a JVM to check (tickcast/engine/; their removal tests without a
JVM are in tests/unit/test_engine.py)."""
from pyspark.sql import functions as F

from tickcast.engine import py4j_names
from tickcast.engine.columns import Columns


def test_the_built_session_has_its_hot_jvm_names_pinned(spark):
    """ADR 0003: applied where the session is built (tickcast.spark.session -> engine.apply)."""
    jvm = spark.sparkContext._jvm
    assert set(py4j_names.HOT_JVM_NAMES) - {"py4j.reflection.TypeUtil"} <= set(vars(jvm))


def test_a_column_is_a_py4j_object_built_once_per_jvm(spark):
    """ADR 0008: a classic Column holds a JVM object (remove when it does not); `Columns` builds it once."""
    built = []
    cols = Columns()
    a = cols.get("x", lambda: built.append(1) or F.col("x") + 1)
    b = cols.get("x", lambda: built.append(1) or F.col("x") + 1)
    assert a is b and built == [1]
    assert type(a._jc).__module__.startswith("py4j")
    assert spark.range(3).withColumnRenamed("id", "x").select(a.alias("y")).toPandas()["y"].tolist() == [1, 2, 3]
