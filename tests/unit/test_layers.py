"""Layers point one way (issue 25): the core imports no component, even inside a function; the
components register their own commands; the test doubles and benchmarks stay out of the product.
import-linter checks the same contracts on the whole graph (pyproject.toml); these read the source."""
from __future__ import annotations

import ast
from pathlib import Path

from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = {"jobs", "producers", "serving", "dashboard", "stack", "bench", "testkit"}
PRODUCT = ["tickcast", "jobs", "producers", "serving", "dashboard", "stack"]


def _imports(path: Path) -> set[str]:
    """Top-level packages a file imports anywhere in it (module level or inside a function)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
    return out


def test_the_core_imports_no_component_anywhere():
    bad = {str(p.relative_to(REPO)): sorted(_imports(p) & COMPONENTS) for p in (REPO / "tickcast").rglob("*.py")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_product_never_imports_the_test_doubles_or_the_benchmarks():
    bad = {str(p.relative_to(REPO)): sorted(_imports(p) & {"testkit", "bench"})
           for pkg in PRODUCT for p in (REPO / pkg).rglob("*.py")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_each_command_is_registered_by_its_component():
    from tickcast.cli import cli

    owner = {name: cmd.callback.__module__.split(".")[0] for name, cmd in cli.commands.items()}
    assert owner == {"kafka": "tickcast", "sql": "tickcast", "train": "tickcast", "models": "tickcast", "backtest": "tickcast",
                     "retrain": "tickcast",
                     "job": "jobs", "backfill": "jobs", "simulate-history": "jobs", "produce": "producers",
                     "serve": "serving", "dashboard": "dashboard", "up": "stack", "bench": "bench"}


def test_produce_is_registered_by_the_producers():
    from tickcast.cli import cli

    r = CliRunner().invoke(cli, ["produce", "--help"])
    assert r.exit_code == 0 and "--plant-signal" in r.output


def test_up_checks_its_jobs_before_it_starts_anything():
    from tickcast.cli import cli

    r = CliRunner().invoke(cli, ["up", "--jobs", "ingest,nope"])
    assert r.exit_code == 2 and "unknown job(s) nope; known: hotpath, ingest, bars, features, predict, outcomes" in r.output
    r = CliRunner().invoke(cli, ["up", "--jobs", "hotpath,bars,outcomes"])     # two writers of silver.bars_1m
    assert r.exit_code == 2 and "hotpath writes what bars write(s)" in r.output


def test_the_import_graph_script_finds_no_cycle_between_packages():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(REPO / "scripts" / "import_graph.py")], capture_output=True, text=True,
                       timeout=120)
    assert "package cycles: none" in r.stdout, r.stdout + r.stderr
    edges = {tuple(line.split()[:3:2]) for line in r.stdout.splitlines() if " -> " in line}
    assert not {e for e in edges if e[0] == "tickcast"}, edges
    assert ("stack", "jobs") in edges and ("jobs", "tickcast") in edges
