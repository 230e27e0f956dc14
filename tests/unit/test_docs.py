"""The README and docs stay true: short, every link and named file exists, the settings list is current."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tickcast import settings

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted((REPO / "docs").rglob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
NAMED = re.compile(r"`((?:[\w.-]+/)+[\w.-]*|[\w-]+\.(?:sh|py|md|toml|yaml|txt))`")


def test_readme_is_short():
    assert (REPO / "README.md").stat().st_size <= 12 * 1024


@pytest.mark.parametrize("doc", [REPO / "README.md", *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_and_named_file_exists(doc):
    text = doc.read_text()
    missing = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (doc.parent / target).exists():
            missing.append(target)
    if doc.name == "README.md":
        for name in NAMED.findall(text):
            if name.startswith((".data", "bench-results", ".venv", "data/")) or "<" in name:
                continue  # made by a run, or an example argument
            if not (REPO / name).exists():
                missing.append(name)
    assert not missing, f"{doc.name} names what does not exist: {missing}"


def test_every_setting_is_documented_and_the_reference_is_current():
    fields = {f.name for f in dataclasses.fields(settings.Settings)}
    assert fields == set(settings.HELP), {"undocumented": fields - set(settings.HELP),
                                          "stale": set(settings.HELP) - fields}
    assert (REPO / "docs" / "configuration.md").read_text() == settings.reference_markdown(), \
        "docs/configuration.md is stale: python -m tickcast.settings > docs/configuration.md"
