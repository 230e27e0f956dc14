"""The CLI root registers the producers' commands instead of importing them (issue 25, in part)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
    return out


def test_the_cli_root_imports_no_producer_server_dashboard_or_benchmark():
    assert not _imports(REPO / "tickcast" / "cli.py") & {"producers", "serving", "dashboard", "bench"}


def test_produce_is_registered_by_the_producers():
    from click.testing import CliRunner

    from tickcast.cli import cli

    r = CliRunner().invoke(cli, ["produce", "--help"])
    assert r.exit_code == 0 and "--plant-signal" in r.output
