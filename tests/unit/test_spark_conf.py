"""The session recipe's pure parts: pinning PySpark's hot JVM names on the py4j view."""
from tickcast.engine.py4j_names import HOT_JVM_NAMES, pin_jvm_names


class View:
    """Resolves names the way py4j's JVMView does: through __getattr__, on every access."""

    def __init__(self, prefix=""):
        self._prefix = prefix
        self._asked = []

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        self._asked.append(name)
        return View(self._prefix + name + ".")


def test_pinned_names_are_resolved_once_then_read_without_a_lookup():
    jvm = View()
    pin_jvm_names(jvm)
    asked = list(jvm._asked)
    # Bare names resolve through their fully qualified class; dotted ones level by level.
    assert "org.apache.spark.sql.functions" in asked and "py4j" in asked
    assert jvm.functions._prefix == "org.apache.spark.sql.functions."
    assert jvm.PythonUtils._prefix == "org.apache.spark.api.python.PythonUtils."
    assert jvm.py4j.reflection.TypeUtil._prefix == "py4j.reflection.TypeUtil."
    # Reading them again asks the view nothing (py4j would scan the classpath each time).
    for _ in range(3):
        jvm.functions, jvm.PythonSQLUtils, jvm.py4j.reflection.TypeUtil
    assert jvm._asked == asked
    assert len(asked) == len(HOT_JVM_NAMES)
    # Pinning twice (a second session in the same process) changes nothing.
    pin_jvm_names(jvm)
    assert jvm.functions._prefix == "org.apache.spark.sql.functions."
