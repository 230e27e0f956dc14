"""ADR 0002: the zipimport cache re-read only on change in the PySpark Python workers
(docs/adr/0002-python-worker-zip-reread.md); called from inside the UDFs that run there."""
from __future__ import annotations

import sys

_STAMP = "_tickcast_stamp"


def cheap_import_invalidation() -> None:
    """Make `importlib.invalidate_caches()` cheap in this worker; idempotent, a no-op on Python >= 3.12.

    PySpark calls it at the start of every task a worker runs (`setup_spark_files`). On Python
    3.10-3.11 each zipimporter then re-reads its archive's whole directory at once (CPython
    gh-103200, made lazy in 3.12), and a worker holds one per imported subpackage of pyspark.zip
    plus one for spark-core's jar, which Spark puts on every worker's path: ~110-170 ms before each
    Python task of features, predict and outcomes could start (measured: an empty mapInArrow task
    from call to the function's start, 225-260 -> 73-92 ms). Archives are re-read only when their
    size or modification time changed, so an archive replaced in place is still seen.
    """
    import zipimport

    if sys.version_info >= (3, 12) or getattr(zipimport.zipimporter.invalidate_caches, _STAMP, False):
        return
    reread = zipimport.zipimporter.invalidate_caches

    def invalidate_caches(self) -> None:
        import os

        try:
            st = os.stat(self.archive)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is None or getattr(self, _STAMP, None) != stamp:
            reread(self)
            setattr(self, _STAMP, stamp)

    setattr(invalidate_caches, _STAMP, True)
    zipimport.zipimporter.invalidate_caches = invalidate_caches
