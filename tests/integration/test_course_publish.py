"""Publishing learner copies through nbgrader, and syncing them into a home without overwriting.

The courses are the installed ones (``<runtime prefix>/course-sources``, root-only), as `aifw sandbox up`
publishes them."""
from __future__ import annotations

import json
import stat

from aifw.courses.catalogue import load_catalogue
from aifw.courses.publish import publish, sync


def test_publish_releases_every_module_without_solutions_and_sync_never_overwrites(tmp_path):
    courses = load_catalogue()
    share, home = tmp_path / "share", tmp_path / "home"
    assert publish(courses, share, say=lambda m: None) == [c.id for c in courses]
    for course in courses:
        for module in course.modules:
            for nb in module.notebooks:
                text = (share / course.id / module.id / nb).read_text()
                json.loads(text)
                assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert (share / course.id / "README.md").read_text().startswith(f"# {course.title}")
        for path in [share / course.id, *(share / course.id).rglob("*")]:  # world-readable copies
            assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    assert publish(courses, share, say=lambda m: None) == []  # unchanged sources: nothing to do
    added = sync(share, home)
    assert added and all(p.is_file() for p in added)
    mine = added[0]
    mine.write_text("my work")
    assert sync(share, home) == []
    assert mine.read_text() == "my work"
    mine.unlink()
    assert sync(share, home) == [mine]  # a deleted notebook comes back fresh
