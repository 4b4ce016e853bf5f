"""Instant checks (aifw.extensions.kernel.checks): ✓ or the failed assertion plus a hint; nothing hidden leaks.

The learner's copy of a test cell is what ``nbgrader generate_assignment`` leaves of it: the visible tests
inside the ``@check`` function, without the hidden region. These tests show the check's behaviour in
plain Python, and that no hidden test or model answer of any shipped module (read from the checkout's
courses/, explicitly) reaches the checks module or any other learner-facing file. In a real kernel, and
through nbgrader's release: tests/integration/test_instant_checks.py.
"""
from __future__ import annotations

import json
import linecache
from pathlib import Path

import nbformat
import pytest

from aifw.courses import cells as nbcells
from aifw.courses.catalogue import load_catalogue
from aifw.extensions.kernel import checks
from aifw.extensions.kernel.checks import CheckFailed, check, check_all

REPO = Path(__file__).resolve().parents[2]
COURSES = REPO / "courses"  # the checkout's courses (the unit tier runs without the installed sources)


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(checks, "_REGISTRY", {})


# --------------------------------------------------------------------------- in plain Python
def test_a_passing_check_shows_a_tick(capsys):
    @check("Exercise 1a", hint="never shown")
    def visible():
        assert 1 + 1 == 2

    out = capsys.readouterr()
    assert out.out.strip() == "✓ Exercise 1a: the visible tests pass."
    assert out.err == ""  # nbgrader scores any stderr in a test cell as a failure
    assert visible.last.passed and "never shown" not in out.out


def test_a_failing_check_shows_the_assertion_and_the_hint_and_raises(capsys):
    with pytest.raises(CheckFailed, match="Exercise 2b: expected 4, got 5"):

        @check("Exercise 2b", hint="Count from zero.")
        def _():
            got = 5
            assert got == 4, f"expected 4, got {got}"

    out = capsys.readouterr().out
    assert "✗ Exercise 2b: expected 4, got 5" in out
    assert "Hint: Count from zero." in out


def test_an_assertion_without_message_shows_the_assert_line(capsys):
    # compiled like a notebook cell (IPython registers cell sources with linecache), so that pytest's
    # assertion rewriting does not add a message of its own
    cell = 'def visible():\n    value = 3\n    assert value == 2\n'
    filename = "<ipython-input-7>"
    linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
    namespace: dict = {}
    exec(compile(cell, filename, "exec"), namespace)
    with pytest.raises(CheckFailed):
        check("Exercise 3")(namespace["visible"])
    assert "this assertion failed: assert value == 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NotImplementedError(), "not answered yet: the exercise cell still raises NotImplementedError"),
        (NameError("name 'pick_device' is not defined"), "did you run the exercise cell"),
        (KeyError("SLURM_JOB_ID"), "KeyError: 'SLURM_JOB_ID'"),
    ],
)
def test_errors_from_the_learners_code_are_explained(capsys, error, expected):
    def learner_code():
        raise error

    with pytest.raises(CheckFailed):

        @check("Exercise 4")
        def _():
            learner_code()

    assert expected in capsys.readouterr().out


def test_check_again_runs_the_same_visible_tests_on_the_fixed_code(capsys):
    answer = {"value": 1}
    chk = check("Exercise 5", raise_on_failure=False)(lambda: None if answer["value"] == 2 else (_ for _ in ()).throw(AssertionError("not 2")))
    assert not chk.last.passed
    answer["value"] = 2  # the learner fixes the code and presses "Check again"
    assert chk().passed
    assert "✓ Exercise 5" in capsys.readouterr().out.splitlines()[-1]


def test_check_all_summarises_every_check_of_the_kernel(capsys):
    @check("A")
    def _():
        pass

    check("B", raise_on_failure=False)(lambda: (_ for _ in ()).throw(AssertionError("wrong")))
    results = check_all()
    assert [(r.title, r.passed) for r in results] == [("A", True), ("B", False)]
    assert "1 of 2 checks pass" in capsys.readouterr().out


def test_the_html_escapes_what_the_learners_code_printed():
    html = checks.CheckResult("T", False, "<script>alert(1)</script>", "use <b>").as_html()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html


# --------------------------------------------------------------------------- nothing hidden reaches the learner
def test_no_learner_facing_file_contains_a_hidden_test_or_a_model_answer():
    """The checks and the other helpers a session imports contain no hidden test and no model answer.

    (Solution *code* is not part of this scan: a shared helper such as ``timing.time_it`` legitimately does
    what an exercise asks the learner to write, and the notebook says so after the exercise. Solution code
    in the learner's copy of a notebook is caught by the release scan above.)"""
    sources = [
        nbcells.read_notebook(c.notebook_path(m.id, n))
        for c in load_catalogue(COURSES)
        for m in c.modules
        for n in m.notebooks
        if c.notebook_path(m.id, n).exists()
    ]
    secrets = nbcells.secret_lines(sources, solutions=False)
    assert len(secrets) > 100  # the scan has something to look for
    learner_files = [p for p in sorted((REPO / "extensions").rglob("*.py")) + sorted((REPO / "extensions").rglob("*.js"))
                     if p.is_file() and "node_modules" not in p.parts]  # npm's own packages are not ours
    learner_files += sorted((REPO / "notebooks").glob("*.ipynb"))
    for path in learner_files:
        text = path.read_text(encoding="utf-8", errors="ignore")
        if path.suffix == ".ipynb":
            text = nbcells.notebook_text(json.loads(text))
        leaks = [s for s in nbcells.find_leaks(text, secrets) if s not in nbcells.MARKERS]
        assert leaks == [], f"{path.relative_to(REPO)} contains hidden tests or model answers: {leaks[:5]}"


def test_a_hidden_test_planted_in_a_learner_file_would_be_found(tmp_path):
    source = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(123456) == 654321, 'secret-case'\n### END HIDDEN TESTS")])
    secrets = nbcells.secret_lines([source])
    assert nbcells.find_leaks("def helper():\n    assert f(123456) == 654321, 'secret-case'\n", secrets)
    assert not nbcells.find_leaks("def helper():\n    assert f(1) == 1\n", secrets)
