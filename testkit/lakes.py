"""Lakes for tests: settings with a lake, checkpoints and MLflow store of their own, and forks of a
built lake, so that a test that changes data or aliases never changes what another test reads."""
from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

from tickcast.settings import Settings
from tickcast.tables import Table


def own_lake(base: Settings, root: Path) -> Settings:
    """Settings with a lake, checkpoints and MLflow store of their own under `root` (no broker needed)."""
    return dataclasses.replace(base, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "checkpoints"),
                               mlflow_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")


def sqlite_path(s: Settings) -> Path:
    assert s.mlflow_uri.startswith("sqlite:///"), f"a fork needs the local SQLite registry, not {s.mlflow_uri}"
    return Path(s.mlflow_uri[len("sqlite:///"):])


def fork(s: Settings, root: Path, tables: tuple[Table, ...] | None = (), registry: bool = True) -> Settings:
    """A copy of `tables` of `s`'s lake (None: the whole lake) under `root`, with checkpoints and an
    MLflow store of its own: a copy of `s`'s registry (`registry`), or an empty one. The registry's database is copied, its
    artefacts are not: the copied versions read the original's artefacts and new versions write
    beside the copy, so that aliases and versions changed in the fork are the fork's alone."""
    f = own_lake(s, Path(root))
    if tables is None:
        shutil.copytree(s.lake_uri, f.lake_uri)
    for t in tables or ():
        shutil.copytree(t.path(s), t.path(f))
    if registry:
        db = sqlite_path(f)
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sqlite_path(s), db)
        # New runs write their artefacts under the experiment's location: the fork's folder, never
        # the original's (a location fixed when the experiment was created; MLflow has no API to move it).
        with sqlite3.connect(db) as con:
            con.execute("UPDATE experiments SET artifact_location = ?", ((db.parent / "artifacts").as_uri(),))
    return f


def code_key(repo: Path, packages: tuple[str, ...], files: tuple[Path, ...] = ()) -> str:
    """A hash of the code that builds a cached lake: every .py file of `packages` and `files`."""
    import hashlib

    h = hashlib.sha256()
    paths = sorted(p for pkg in packages for p in (repo / pkg).rglob("*.py")) + sorted(files)
    for p in paths:
        h.update(str(p.relative_to(repo)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cached(folder: Path, build) -> Path:
    """`folder`, built once by `build(folder)` and kept (the next test run reuses it). A lock makes
    concurrent runs wait for one build; a build that did not finish is thrown away and done again.
    The folder is built in place (MLflow records absolute artefact paths); of the siblings built by
    other code versions, the two newest are kept (a run of another version may still use them)."""
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    done = folder / ".complete"
    with open(folder.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            others = sorted((d for d in folder.parent.iterdir() if d.is_dir() and d != folder),
                            key=lambda d: d.stat().st_mtime)
            for old in [*others[:-2], *([folder] if folder.exists() else [])]:     # and a build that died
                shutil.rmtree(old)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
