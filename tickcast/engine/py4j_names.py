"""ADR 0003: PySpark's hot JVM names pinned on the py4j view (docs/adr/0003-py4j-jvm-name-pinning.md)."""
from __future__ import annotations


# Names PySpark looks up on its JVM view on almost every call (every F.col/F.lit, every select,
# every converted exception), with the classes they resolve to.
HOT_JVM_NAMES = {
    "functions": "org.apache.spark.sql.functions",
    "PythonUtils": "org.apache.spark.api.python.PythonUtils",
    "PythonSQLUtils": "org.apache.spark.sql.api.python.PythonSQLUtils",
    "py4j.reflection.TypeUtil": "py4j.reflection.TypeUtil",
}


def pin_jvm_names(jvm) -> None:
    """Resolve PySpark's hot JVM names once, on the view itself.

    py4j resolves `jvm.<name>` anew on every access (it caches nothing): `Class.forName` on the
    bare name, then on each imported package, and every miss scans all ~290 jars of the classpath.
    JFR on a live ingest + bars driver: those scans were ~60% of the py4j threads' CPU. The
    view's own attributes are read before py4j's `__getattr__`, so pinned names never reach the JVM.
    """
    for name, fqn in HOT_JVM_NAMES.items():
        head, *rest = name.split(".")
        if not rest:
            vars(jvm)[head] = getattr(jvm, fqn)
            continue
        node = vars(jvm).setdefault(head, getattr(jvm, head))   # a JavaPackage: pin each level
        for part in rest:
            node = vars(node).setdefault(part, getattr(node, part))
