"""Course provisioning reads a course directory before it changes anything, and what must not be there (a
gradebook that cannot be read, a symlink where a folder belongs) stops that course untouched, instead of
being read as "missing" (which would regenerate every module). Also sandbox.json: damaged is an error."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from aifw.sandbox import course_dirs, provisioning
from aifw.sandbox.layout import Stack
from aifw.sandbox.processes import SandboxError
from aifw.sandbox.sandbox_json import load_sandbox_json
from aifw.site import example_site_path, load_site, site_from_dict

COURSE = "aif-foundations"


def make_gradebook(path: Path, assignments: list[str]) -> None:
    """A real nbgrader gradebook (its API; no nbgrader app runs) holding `assignments`."""
    from aifw_testing import new_gradebook

    with new_gradebook(path) as gb:
        for name in assignments:
            gb.add_assignment(name)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind, size and mtime (what "untouched" means)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = os.lstat(p)
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def site(tmp_path):
    data = load_site(example_site_path("sandbox")).model_dump(mode="json")
    data["paths"]["runtime_prefix"] = str(tmp_path / "home")
    data["courses"] = [{"id": COURSE, "trainers": ["t1"], "learners": ["l1"]}]
    return site_from_dict(data, source="test")


@pytest.fixture
def course_dir(site):
    d = site.paths.course_dir(COURSE)
    (d / "source" / "m1-first-steps").mkdir(parents=True)
    (d / "nbgrader_config.py").write_text("c = get_config()\n")
    return d


@pytest.fixture
def nothing_may_change(monkeypatch):
    """Every step of provision_course that changes something fails the test when called."""
    called = []

    def refuse(name):
        def step(*args, **kwargs):
            called.append(name)
            raise AssertionError(f"{name} was called for a course that must stay untouched")
        return step

    for name in ("ensure_group", "ensure_grader", "sync_members", "ensure_course_dir"):
        monkeypatch.setattr(provisioning, name, refuse(name))
    for name in ("as_user", "ensure_tree"):
        monkeypatch.setattr(course_dirs, name, refuse(name))
    return called


def course_of_catalogue():
    from aifw.courses.catalogue import load_catalogue

    return {c.id: c for c in load_catalogue()}[COURSE]


def test_a_readable_gradebook_gives_its_assignments(course_dir):
    make_gradebook(course_dir / "gradebook.db", ["m1-first-steps", "m2-data"])
    found = course_dirs.read_course_dir(course_dir)
    assert found.exists and found.has_config and found.sources == {"m1-first-steps"}
    assert found.in_gradebook == {"m1-first-steps", "m2-data"}


def test_no_gradebook_or_no_course_directory_is_missing_not_an_error(course_dir, tmp_path):
    assert course_dirs.read_course_dir(course_dir).in_gradebook is None
    assert course_dirs.read_course_dir(tmp_path / "no" / "such").exists is False
    (course_dir / "gradebook.db").write_bytes(b"")  # an empty file is an empty SQLite database
    assert course_dirs.read_course_dir(course_dir).in_gradebook == frozenset()


def test_a_corrupt_gradebook_stops_the_course_and_nothing_is_regenerated(site, course_dir, nothing_may_change):
    db = course_dir / "gradebook.db"
    db.write_bytes(b"this is no sqlite database, a disk error ate it " * 200)
    before = snapshot(course_dir)
    with pytest.raises(SandboxError) as err:
        course_dirs.read_course_dir(course_dir)
    message = str(err.value)
    assert f"the gradebook {db} cannot be read" in message
    assert "nothing of this course was changed" in message and "Restore it from a backup" in message
    with pytest.raises(SandboxError, match="cannot be read"):
        provisioning.provision_course(site, site.course(COURSE), course_of_catalogue(), Path("/nonexistent-venv"),
                                      say=lambda m: None)
    assert nothing_may_change == []
    assert snapshot(course_dir) == before


def test_a_gradebook_without_nbgraders_tables_is_an_error_too(course_dir):
    con = sqlite3.connect(course_dir / "gradebook.db")
    con.execute("CREATE TABLE other (x)")
    con.commit()
    con.close()
    with pytest.raises(SandboxError, match=r"the gradebook .* cannot be read \(.+\); nothing of this course was changed"):
        course_dirs.read_course_dir(course_dir)


def test_a_symlinked_source_folder_is_refused_not_missing(site, course_dir, tmp_path, nothing_may_change):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (course_dir / "source" / "m1-first-steps").rmdir()
    (course_dir / "source").rmdir()
    (course_dir / "source").symlink_to(elsewhere)
    before = snapshot(course_dir)
    with pytest.raises(SandboxError) as err:
        course_dirs.read_course_dir(course_dir)
    message = str(err.value)
    assert f"{course_dir / 'source'} is a symbolic link, where a plain folder must be" in message
    assert "Replace it with a real folder" in message
    with pytest.raises(SandboxError, match="is a symbolic link"):
        provisioning.provision_course(site, site.course(COURSE), course_of_catalogue(), Path("/nonexistent-venv"),
                                      say=lambda m: None)
    assert nothing_may_change == []
    assert snapshot(course_dir) == before and list(elsewhere.iterdir()) == []


def test_a_file_or_a_symlink_where_the_course_directory_must_be_is_refused(course_dir, tmp_path):
    (course_dir / "source").rename(tmp_path / "moved")
    (course_dir / "source").write_text("not a folder")
    with pytest.raises(SandboxError, match="is a file, where a plain folder must be"):
        course_dirs.read_course_dir(course_dir)
    link = tmp_path / "link-to-course"
    link.symlink_to(course_dir)
    with pytest.raises(SandboxError, match="is a symbolic link"):
        course_dirs.read_course_dir(link)


def test_a_damaged_sandbox_json_is_an_error_not_a_fresh_start(tmp_path):
    stack = Stack(home=tmp_path, site=load_site(example_site_path("sandbox")))
    assert load_sandbox_json(stack) == {}  # none yet
    stack.sandbox_json.write_text(json.dumps({"api_token": "t", "users": {"a": "p"}}))
    assert load_sandbox_json(stack)["users"] == {"a": "p"}
    for damaged in ('{"api_token": "t", "users"', "[1, 2]"):
        stack.sandbox_json.write_text(damaged)
        with pytest.raises(SandboxError, match=r"sandbox.json is damaged .*move it away"):
            load_sandbox_json(stack)
