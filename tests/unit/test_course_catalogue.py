"""The course catalogue: course.yaml / wrong_answers.yaml validation, launch links, and the shipped courses.

Broken course files are written to tmp_path; the shipped courses are checked as they are, from the
checkout's courses/ folder (given as `root=` explicitly: the package carries no course content and the unit
tier runs from an install without the course sources): every file valid, every listed notebook present,
every autograded test cell with exactly one planted wrong answer. Nothing here runs nbgrader or a kernel.
"""
from __future__ import annotations

import json
import sys
import textwrap
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
import yaml

from aifw.commands import main as aifw_main
from aifw.courses import cells as nbcells
from aifw.courses import proof
from aifw.courses.catalogue import (
    CourseFileError,
    course_problems,
    default_root,
    find_course,
    load_catalogue,
    load_course,
    load_wrong_answers,
    module_problems,
    unlisted_module_problems,
)

REPO = Path(__file__).resolve().parents[2]
COURSES = REPO / "courses"  # the checkout's courses: the unit tier reads them from here, explicitly

# --------------------------------------------------------------------------- builders
GOOD_COURSE = {
    "id": "demo",
    "title": "Demo course",
    "summary": "A course for tests.",
    "modules": [
        {
            "id": "m1-intro",
            "title": "Intro",
            "goals": ["learn"],
            "minutes": 30,
            "partition": "gpu",
            "gpus": 1,
            "notebooks": ["01-a.ipynb"],
        }
    ],
}


def nb_cell(kind: str, source: str, grade_id: str | None = None, points: int = 1):
    """A notebook cell of an nbgrader source: kind = md | code | solution | test | manual."""
    if kind in ("md", "manual"):
        cell = nbformat.v4.new_markdown_cell(source)
    else:
        cell = nbformat.v4.new_code_cell(source)
    meta = {
        "solution": {"grade": False, "solution": True, "locked": False},
        "test": {"grade": True, "solution": False, "locked": True, "points": points},
        "manual": {"grade": True, "solution": True, "locked": False, "points": points},
    }.get(kind)
    if meta is not None:
        cell.metadata["nbgrader"] = {**meta, "grade_id": grade_id, "schema_version": 3, "task": False}
    return cell


def write_notebook(path: Path, cells) -> None:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


ADD_CELLS = [
    nb_cell("md", "# Add"),
    nb_cell("solution", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION", "ex1"),
    nb_cell("test", "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-5, 5) == 0\n### END HIDDEN TESTS", "ex1-a"),
    nb_cell("test", 'assert add("a", "b") == "ab"', "ex1-b"),
    nb_cell("manual", "Adding is commutative.", "r1", points=2),
]


def write_course(root: Path, data=None, wrong=None, cells=None, course_id: str = "demo") -> Path:
    folder = root / course_id
    folder.mkdir(parents=True, exist_ok=True)
    data = GOOD_COURSE if data is None else data
    (folder / "course.yaml").write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    if cells is not False:
        write_notebook(folder / "source" / "m1-intro" / "01-a.ipynb", cells or ADD_CELLS)
    if wrong is not None:
        (folder / "wrong_answers.yaml").write_text(wrong if isinstance(wrong, str) else yaml.safe_dump(wrong))
    return folder


GOOD_WRONG = {
    "m1-intro": {
        "01-a.ipynb": {
            "ex1-a": {"cell": "ex1", "source": "def add(a, b):\n    return a * b\n"},
            "ex1-b": {"cell": "ex1", "source": "def add(a, b):\n    return int(a) + int(b)\n"},
        }
    }
}


def with_module(**changes):
    data = json.loads(json.dumps(GOOD_COURSE))
    data["modules"][0].update(changes)
    return data


def without(key, module=False):
    data = json.loads(json.dumps(GOOD_COURSE))
    (data["modules"][0] if module else data).pop(key)
    return data


# --------------------------------------------------------------------------- course.yaml schema
def test_a_good_course_file_loads(tmp_path):
    course = load_course(write_course(tmp_path, wrong=GOOD_WRONG))
    assert course.id == "demo" and [m.id for m in course.modules] == ["m1-intro"]
    assert course.root == (tmp_path / "demo").resolve()
    assert course_problems(course) == []


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        (without("title"), "title", "required but missing"),
        (without("modules"), "modules", "required but missing"),
        (without("minutes", module=True), "modules[0] (m1-intro).minutes", "required but missing"),
        (with_module(minutes=0), "modules[0] (m1-intro).minutes", "expected a number > 0"),
        (with_module(minutes="soon"), "modules[0] (m1-intro).minutes", "expected a whole number"),
        (with_module(gpus=-1), "modules[0] (m1-intro).gpus", "expected a number >= 0"),
        (with_module(gpus=2.5), "modules[0] (m1-intro).gpus", "expected a whole number"),
        (with_module(id="M1 Intro"), "modules[0] (M1 Intro).id", "lower-case letters, digits and '-'"),
        (with_module(partition="gpu x"), "modules[0] (m1-intro).partition", "a Slurm name"),
        (with_module(notebooks=["intro.py"]), "modules[0] (m1-intro).notebooks[0]", "ending in .ipynb"),
        (with_module(notebooks=[]), "modules[0] (m1-intro).notebooks", "at least 1 item"),
        (with_module(notebooks=["a.ipynb", "a.ipynb"]), "modules[0] (m1-intro).notebooks", "must be unique"),
        (with_module(goals=[]), "modules[0] (m1-intro).goals", "at least 1 item"),
        (with_module(colour="red"), "modules[0] (m1-intro).colour", "unknown key"),
        ({**GOOD_COURSE, "modules": GOOD_COURSE["modules"] * 2}, "modules", "module ids must be unique"),
        ({**GOOD_COURSE, "id": "other"}, "id", "expected the folder's name 'demo'"),
    ],
)
def test_a_wrong_course_file_names_file_key_and_expectation(tmp_path, data, key, expected):
    folder = write_course(tmp_path, data=data)
    with pytest.raises(CourseFileError) as err:
        load_course(folder)
    message = str(err.value)
    assert str(folder / "course.yaml") in message
    assert f"key '{key}'" in message
    assert expected in message
    assert err.value.path == folder / "course.yaml"


def test_a_wrong_value_is_shown_as_given(tmp_path):
    with pytest.raises(CourseFileError, match=r"got 'soon'"):
        load_course(write_course(tmp_path, data=with_module(minutes="soon")))


def test_all_problems_of_a_file_are_reported_at_once(tmp_path):
    with pytest.raises(CourseFileError) as err:
        load_course(write_course(tmp_path, data=with_module(minutes=0, gpus=-3, colour="red")))
    assert len(err.value.problems) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: demo\ntitle: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping with keys id, title, summary, modules"),
        ("id: demo\nid: demo\n", "found the key 'id' twice"),
    ],
)
def test_unreadable_course_files_are_reported(tmp_path, text, expected):
    folder = write_course(tmp_path, data=text, cells=False)
    with pytest.raises(CourseFileError, match=expected):
        load_course(folder)


# --------------------------------------------------------------------------- wrong_answers.yaml schema
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m1-intro:\n  01-a.ipynb:\n    ex1-a: {source: x}\n", "key 'm1-intro.01-a.ipynb.ex1-a.cell': required but missing"),
        ("m1-intro:\n  01-a.ipynb:\n    ex1-a: {cell: ex1, source: x, why: y}\n", "ex1-a.why': unknown key"),
        ("m1-intro:\n  a.py:\n    ex1-a: {cell: ex1, source: x}\n", "key 'm1-intro.a.py': this name is not allowed: expected a notebook file name ending in .ipynb"),
        ("m1-intro:\n  01-a.ipynb:\n    ex1-a: {cell: ex1, source: x}\n    ex1-a: {cell: ex1, source: y}\n",
         "found the key 'ex1-a' twice"),
        ("- a\n", "expected a mapping of module ids"),
    ],
)
def test_a_wrong_wrong_answers_file_is_reported(tmp_path, text, expected):
    path = tmp_path / "wrong_answers.yaml"
    path.write_text(text)
    with pytest.raises(CourseFileError) as err:
        load_wrong_answers(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_empty_module_sections_and_a_missing_file_mean_no_entries(tmp_path):
    path = tmp_path / "wrong_answers.yaml"
    assert load_wrong_answers(path) == {}
    path.write_text("m1-intro: {}\nm2-next:\n")
    assert load_wrong_answers(path) == {"m1-intro": {}, "m2-next": {}}


# --------------------------------------------------------------------------- launch links
def test_launch_link_asks_for_the_module_partition_gpus_and_time(tmp_path):
    module = load_course(write_course(tmp_path)).modules[0]
    link = module.launch_link()
    parts = urlsplit(link)
    assert parts.path == "/hub/spawn"
    assert parse_qs(parts.query) == {"partition": ["gpu"], "gpus": ["1"], "runtime": ["30"]}
    assert link == "/hub/spawn?partition=gpu&gpus=1&runtime=30"


def test_launch_link_uses_session_minutes_and_a_base_url(tmp_path):
    module = load_course(write_course(tmp_path, data=with_module(session_minutes=90, gpus=0, partition="cpu"))).modules[0]
    assert module.launch_link("/jupyter/") == "/jupyter/hub/spawn?partition=cpu&gpus=0&runtime=90"


# --------------------------------------------------------------------------- consistency between files
def problems_of(folder: Path) -> list[str]:
    course = load_course(folder)
    return [p.message for p in module_problems(course, "m1-intro")]


def test_missing_notebook_is_a_problem(tmp_path):
    folder = write_course(tmp_path, data=with_module(notebooks=["01-a.ipynb", "02-b.ipynb"]), wrong=GOOD_WRONG)
    assert any("02-b.ipynb is listed in course.yaml but" in p for p in problems_of(folder))


def test_unlisted_notebook_is_a_problem(tmp_path):
    folder = write_course(tmp_path, wrong=GOOD_WRONG)
    write_notebook(folder / "source" / "m1-intro" / "99-extra.ipynb", [nb_cell("md", "x")])
    assert any("99-extra.ipynb is in m1-intro/ but not in the module's `notebooks` list" in p for p in problems_of(folder))


def test_a_test_cell_without_wrong_answer_is_a_problem_that_says_where_to_add_it(tmp_path):
    wrong = json.loads(json.dumps(GOOD_WRONG))
    del wrong["m1-intro"]["01-a.ipynb"]["ex1-b"]
    folder = write_course(tmp_path, wrong=wrong)
    assert problems_of(folder) == [
        "01-a.ipynb: test cell 'ex1-b' has no planted wrong answer; add m1-intro -> 01-a.ipynb -> ex1-b to wrong_answers.yaml"
    ]


@pytest.mark.parametrize(
    ("entry_id", "entry", "expected"),
    [
        ("ex1-zzz", {"cell": "ex1", "source": "x"}, "ex1-zzz: no autograded test cell has this grade_id"),
        ("ex1-b", {"cell": "nope", "source": "x"}, "cell 'nope' is not a code solution cell"),
        ("ex1-b", {"cell": "ex1-a", "source": "x"}, "cell 'ex1-a' is not a code solution cell"),
    ],
)
def test_a_wrong_answer_pointing_nowhere_is_a_problem(tmp_path, entry_id, entry, expected):
    wrong = json.loads(json.dumps(GOOD_WRONG))
    wrong["m1-intro"]["01-a.ipynb"][entry_id] = entry
    folder = write_course(tmp_path, wrong=wrong)
    assert any(expected in p for p in problems_of(folder))


def test_wrong_answers_for_unknown_modules_and_notebooks_are_problems(tmp_path):
    wrong = json.loads(json.dumps(GOOD_WRONG))
    wrong["m9-ghost"] = {}
    wrong["m1-intro"]["nothere.ipynb"] = {}
    course = load_course(write_course(tmp_path, wrong=wrong))
    messages = [p.message for p in course_problems(course)]
    assert any("module 'm9-ghost' is not in course.yaml" in m for m in messages)
    assert any("notebook 'nothere.ipynb' is not a notebook of module m1-intro" in m for m in messages)
    # the module-less problem is not a problem of any listed module, so only the course check finds it
    assert [p.module for p in unlisted_module_problems(course)] == ["m9-ghost"]
    assert not any("m9-ghost" in p.message for p in module_problems(course, "m1-intro"))


def test_the_course_files_proof_fails_on_a_module_course_yaml_does_not_list(tmp_path):
    good = proof.prove_course_files(load_course(write_course(tmp_path / "a", wrong=GOOD_WRONG)))
    assert good.ok and good.module == proof.COURSE_FILES
    wrong = {**GOOD_WRONG, "m9-ghost": {"01-a.ipynb": {}}}
    bad = proof.prove_course_files(load_course(write_course(tmp_path / "b", wrong=wrong)))
    (check,) = bad.checks
    assert not bad.ok and check.check == "consistency"
    assert "module 'm9-ghost' is not in course.yaml" in check.message


def test_aifw_courses_check_fails_naming_a_module_that_course_yaml_does_not_list(tmp_path, capsys, monkeypatch):
    """The module proofs are stubbed (they run nbgrader: tests/integration/test_course_proof.py); every
    module passes, and the check still fails because of the unlisted wrong-answer section."""
    def all_pass(targets, options, progress=None, on_done=None):
        out = []
        for course, module_id in targets:
            p = proof.ModuleProof(course.id, module_id, [proof.CheckOutcome(course.id, module_id, "release", True, "x", "x")])
            if on_done:
                on_done(p)
            out.append(p)
        return out

    monkeypatch.setattr(proof, "prove", all_pass)
    write_course(tmp_path, wrong={**GOOD_WRONG, "m9-ghost": {}})
    out_json = tmp_path / "proof.json"
    assert aifw_main(["courses", "check", "demo", "--root", str(tmp_path), "--json", str(out_json)]) == 1
    printed = capsys.readouterr().out
    assert "demo/(course files) consistency" in printed
    assert "module 'm9-ghost' is not in course.yaml" in printed
    assert "1 module(s)" in printed
    proofs = {p["module"]: p for p in json.loads(out_json.read_text())}
    assert proofs["m1-intro"]["ok"] and not proofs[proof.COURSE_FILES]["ok"]
    # without the stray section the same check passes
    write_course(tmp_path, wrong=GOOD_WRONG)
    assert aifw_main(["courses", "check", "demo", "--root", str(tmp_path)]) == 0
    assert "(course files)" not in capsys.readouterr().out


def test_duplicate_grade_ids_and_pointless_cells_are_problems(tmp_path):
    cells = ADD_CELLS + [nb_cell("test", "assert True", "ex1-a"), nb_cell("test", "assert True", "t0", points=0)]
    folder = write_course(tmp_path, wrong=GOOD_WRONG, cells=cells)
    messages = problems_of(folder)
    assert any("grade_id 'ex1-a' is also used" in m for m in messages)
    assert any("graded cell 't0' has no points" in m for m in messages)


def test_exercises_group_test_cells_under_their_solution_and_count_manual_answers(tmp_path):
    course = load_course(write_course(tmp_path, wrong=GOOD_WRONG))
    exercises = course.exercises("m1-intro")
    assert [(e.key, e.tests, e.manual, e.points) for e in exercises] == [
        ("ex1", ("ex1-a", "ex1-b"), False, 2.0),
        ("r1", (), True, 2.0),
    ]


def test_secret_lines_are_solutions_model_answers_and_hidden_tests_but_not_what_the_learner_sees():
    nb = nbformat.v4.new_notebook(cells=ADD_CELLS + [nb_cell("md", "Hint: `return a + b` works.")])
    secrets = nbcells.secret_lines([nb])
    assert "assert add(-5, 5) == 0" in secrets
    assert "Adding is commutative." in secrets
    assert "return a + b" not in secrets  # shown in the hint, so no secret
    assert "def add(a, b):" not in secrets  # outside the solution region: part of the release


# --------------------------------------------------------------------------- where the courses are
def _package_files(node, prefix=""):
    for child in node.iterdir():
        name = f"{prefix}{child.name}"
        if child.is_dir():
            yield name + "/"
            yield from _package_files(child, name + "/")
        else:
            yield name


def test_the_package_carries_code_only_and_no_course_content():
    """Answers and hidden tests are not in what `import aifw.courses` can read: install.sh puts them in a
    root-only folder of the runtime prefix."""
    package = resources.files("aifw.courses")
    if Path(str(package)).resolve() == COURSES.resolve():
        pytest.skip("aifw.courses is the checkout itself (an editable install): no built package to inspect")
    files = sorted(_package_files(package))
    assert "catalogue.py" in files and "proof.py" in files  # the listing works
    content = [f for f in files if not (f.endswith((".py", ".pyc")) or f == "__pycache__/"
                                        or f.startswith("__pycache__/"))]
    assert content == [], f"course content in the package aifw.courses: {content}"
    assert not [f for f in files if "source/" in f or f.endswith((".ipynb", "wrong_answers.yaml", "course.yaml"))]


def test_the_installed_courses_are_looked_for_in_the_runtime_prefix():
    assert default_root() == Path(sys.prefix).parent / "course-sources"


def test_a_missing_or_unreadable_folder_of_courses_is_an_error_not_an_empty_catalogue(tmp_path, monkeypatch):
    with pytest.raises(CourseFileError, match="no course sources here: install them with `scripts/install.sh"):
        load_catalogue(tmp_path / "nothing")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CourseFileError, match="not a folder"):
        load_catalogue(tmp_path / "a-file")
    assert load_catalogue(tmp_path) == []  # a readable folder without courses is an empty catalogue

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)  # the tests run as root, who may read anything
    with pytest.raises(CourseFileError, match="only root may read them; run this as root, or give a checkout"):
        load_catalogue(tmp_path)


def test_the_command_line_says_where_the_courses_are_missing(tmp_path, capsys):
    assert aifw_main(["courses", "list", "--root", str(tmp_path / "nothing")]) == 1
    assert "no course sources here" in capsys.readouterr().out


# --------------------------------------------------------------------------- the shipped courses
SHIPPED = load_catalogue(COURSES)
SHIPPED_MODULES = [(c, m.id) for c in SHIPPED for m in c.modules]


def test_there_is_a_catalogue_with_the_foundations_course():
    course = find_course("aif-foundations", COURSES)
    assert [m.id for m in course.modules] == [
        "m1-first-steps",
        "m2-training-loop",
        "m3-dask-on-slurm",
        "m4-data-parallel",
        "m5-efficient-gpu",
        "m6-trustworthy-ai",
        "m7-fine-tune-and-serve",
    ]
    for m in course.modules:
        assert m.launch_link().startswith(f"/hub/spawn?partition={m.partition}&gpus={m.gpus}&runtime=")


@pytest.mark.parametrize(("course", "module_id"), SHIPPED_MODULES, ids=[f"{c.id}/{m}" for c, m in SHIPPED_MODULES])
def test_every_shipped_module_is_consistent(course, module_id):
    """Every listed notebook exists, every grade_id is unique, every test cell has exactly one wrong answer."""
    assert [p.message for p in module_problems(course, module_id)] == []


@pytest.mark.parametrize(("course", "module_id"), SHIPPED_MODULES, ids=[f"{c.id}/{m}" for c, m in SHIPPED_MODULES])
def test_every_shipped_source_notebook_is_clean(course, module_id):
    for name in course.module(module_id).notebooks:
        path = course.notebook_path(module_id, name)
        if not path.exists():
            continue  # reported by test_every_shipped_module_is_consistent
        nbformat.validate(nbformat.read(str(path), as_version=4))
        nb = nbcells.read_notebook(path)
        assert nb["metadata"]["kernelspec"]["name"] == "python3", name
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), f"{name} has outputs"
        for c in nbcells.cells(nb):
            if c.kind == "test":
                assert nbcells.SOLUTION_BEGIN not in c.source


def test_every_shipped_test_cell_has_exactly_one_wrong_answer():
    for course in SHIPPED:
        wrong = course.wrong_answers
        for module in course.modules:
            for name in module.notebooks:
                path = course.notebook_path(module.id, name)
                if not path.exists():
                    continue
                tests = [c.grade_id for c in nbcells.cells(nbcells.read_notebook(path)) if c.kind == "test"]
                entries = wrong.get(module.id, {}).get(name, {})
                assert sorted(entries) == sorted(tests), f"{course.id}/{module.id}/{name}"


def test_foundations_has_enough_graded_exercises_and_a_reflection():
    course = find_course("aif-foundations", COURSES)
    per_module = {m.id: course.exercises(m.id) for m in course.modules}
    first_three = sum(len(per_module[m]) for m in ("m1-first-steps", "m2-training-loop", "m3-dask-on-slurm"))
    assert first_three >= 15
    assert sum(len(e) for e in per_module.values()) >= 30
    assert any(e.manual for ex in per_module.values() for e in ex)
    # partial credit: some exercises have several test cells
    assert sum(len(e.tests) > 1 for ex in per_module.values() for e in ex) >= 5


# --------------------------------------------------------------------------- the command line
def test_aifw_courses_list_prints_the_catalogue(capsys):
    assert aifw_main(["courses", "list", "--json", "--root", str(COURSES)]) == 0
    rows = json.loads(capsys.readouterr().out)
    m1 = next(r for r in rows if r["module"] == "m1-first-steps")
    assert m1["course"] == "aif-foundations" and m1["exercises"] >= 5
    assert m1["launch_link"] == "/hub/spawn?partition=gpu&gpus=1&runtime=45"


def test_aifw_courses_list_table_and_a_broken_catalogue(tmp_path, capsys):
    write_course(tmp_path, wrong=GOOD_WRONG)
    assert aifw_main(["courses", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "m1-intro" in out and "/hub/spawn?partition=gpu&gpus=1&runtime=30" in out.replace("\n", "")
    write_course(tmp_path, data=with_module(minutes=0))
    assert aifw_main(["courses", "list", "--root", str(tmp_path)]) == 1
    assert "minutes" in capsys.readouterr().out


def test_aifw_courses_check_refuses_unknown_courses_and_modules(tmp_path, capsys):
    write_course(tmp_path, wrong=GOOD_WRONG)
    assert aifw_main(["courses", "check", "nope", "--root", str(tmp_path)]) == 2
    assert "no course 'nope'; the courses are: demo" in capsys.readouterr().out
    assert aifw_main(["courses", "check", "demo", "--module", "m7", "--root", str(tmp_path)]) == 2
    assert "has no module 'm7'" in capsys.readouterr().out


def test_course_format_doc_matches_the_models():
    doc = (REPO / "docs" / "course-format.md").read_text()
    example = doc.split("```yaml", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(textwrap.dedent(example))
    assert data["id"] == "aif-foundations"
    assert {"id", "title", "goals", "minutes", "partition", "gpus", "notebooks"} <= set(data["modules"][0])
