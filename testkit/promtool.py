"""The monitoring checkers `scripts/setup-monitoring-tools.sh` installs: promtool and dashboard-check."""
from __future__ import annotations

import subprocess
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / ".cache" / "monitoring"


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `bash scripts/setup-monitoring-tools.sh` (make test does)")
    return str(path)


def promtool(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], input=stdin, capture_output=True, cwd=cwd, timeout=120)


def check_metrics(text: bytes) -> None:
    """`promtool check metrics` on an exposition: raises with its complaints (it exits 0 when clean)."""
    r = promtool("check", "metrics", stdin=text)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    assert r.returncode == 0 and not out, f"promtool check metrics: {out}"
