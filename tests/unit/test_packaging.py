"""pyproject.toml agrees with the pinned, tested set (requirements.txt) and packages every component."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version
    return out


def _declared() -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("tickcast[")]
    return reqs


def test_every_declared_range_holds_the_pinned_version():
    pins = _pins()
    wrong = {str(r): pins.get(canonicalize_name(r.name)) for r in _declared()
             if canonicalize_name(r.name) not in pins or not r.specifier.contains(pins[canonicalize_name(r.name)])}
    assert wrong == {}


def test_the_extras_name_only_themselves_and_known_extras():
    extras = PROJECT["optional-dependencies"]
    for reqs in extras.values():
        for r in map(Requirement, reqs):
            if r.name == "tickcast":
                assert r.extras <= set(extras)


def test_every_top_level_package_is_packaged_and_every_command_group_is_declared():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = {x.rstrip("*") for x in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert include == packages
    eps = PROJECT["entry-points"]["tickcast.commands"]
    assert {v.split(".")[0] for v in eps.values()} == {p.parent.name for p in REPO.glob("*/commands.py")}
