"""tickcast.pyworker: cache invalidation re-reads a zip archive only when it changed."""
import sys
import zipfile
import zipimport

import pytest

from tickcast.engine import zipimport_cache as pyworker

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python >= 3.12 invalidates zip caches lazily")


def _zip(path, names):
    with zipfile.ZipFile(path, "w") as z:
        for n in names:
            z.writestr(n, "X = 1\n")


def test_unchanged_archive_is_not_reread_and_changed_one_is(tmp_path, monkeypatch):
    # Restored after the test: the patch is process-wide.
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches", zipimport.zipimporter.invalidate_caches)
    archive = tmp_path / "mods.zip"
    _zip(archive, ["a.py"])
    imp = zipimport.zipimporter(str(archive))

    imp.invalidate_caches()                      # unpatched: re-reads every time
    before = imp._files
    imp.invalidate_caches()
    assert imp._files is not before

    pyworker.cheap_import_invalidation()
    pyworker.cheap_import_invalidation()         # idempotent: wraps once
    imp.invalidate_caches()                      # first call after the patch: reads and stamps
    files = imp._files
    imp.invalidate_caches()
    assert imp._files is files                   # unchanged archive: no re-read

    _zip(archive, ["a.py", "b.py"])              # replaced in place (new size)
    imp.invalidate_caches()
    assert "b.py" in imp._files and imp._files is not files
