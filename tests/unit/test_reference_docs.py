"""docs/config-reference.md is generated from the code and must match it."""
from __future__ import annotations

from pathlib import Path

from aifw.commands.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"


def test_config_reference_matches_the_code():
    assert DOC.read_text() == render(), "docs/config-reference.md is stale: run `aifw reference > docs/config-reference.md`"


def test_every_site_key_is_documented():
    missing = [line.split("|")[1].strip() for line in render().splitlines() if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert missing == []


def test_course_catalogue_doc_matches_the_course_files():
    from aifw.courses.publish import catalogue_markdown

    doc = DOC.with_name("catalogue.md")
    assert doc.read_text() == catalogue_markdown(DOC.parents[1] / "courses"), (
        "docs/catalogue.md is stale: run `aifw courses catalogue --root courses > docs/catalogue.md`")


def test_every_refused_spawner_setting_is_documented_with_what_replaces_it():
    from aifw.spawners.replaced import REPLACED

    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    for key, instead in REPLACED.items():
        assert f"| `{key}` | {instead} |" in rows, f"{key} is refused but not documented"
