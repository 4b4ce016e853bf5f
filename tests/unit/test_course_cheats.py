"""The proof's cheating students (aifw.courses.submissions) and the 10% rule (aifw.courses.proof.cheat_checks).

A small nbgrader source notebook goes in, the cheating notebook comes out; its cells are then run here, in
a fresh namespace (the patched cheat in a subprocess: it patches numpy, math and builtins for good), to see
that each cheat passes what a plain `==` test would accept and fails what a strict test checks.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from aifw.courses import submissions as subs
from aifw.courses.nbgrader_tools import CellResult
from aifw.courses.proof import cheat_checks


def _cell(kind: str, source: str, grade_id: str | None = None) -> dict:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}
    if kind == "solution":
        cell["metadata"]["nbgrader"] = {"solution": True, "grade": False, "grade_id": grade_id}
    elif kind == "test":
        cell["metadata"]["nbgrader"] = {"solution": False, "grade": True, "grade_id": grade_id, "points": 1}
    return cell


SOLUTION = '''\
import math
def mean(xs):
    """The mean of xs."""
    ### BEGIN SOLUTION
    return sum(xs) / len(xs)
    ### END SOLUTION
### BEGIN SOLUTION
scale = 2.5
class Box:
    pass
if True:
    a, (b, c) = 1, (2, 3)
for i in range(2):
    pass
### END SOLUTION
'''
STUB = 'import math\ndef mean(xs):\n    """The mean of xs."""\n    raise NotImplementedError()\nscale = None\n'
VISIBLE = "assert mean([1, 2, 3]) == 2\nassert scale == 2.5"


def _notebooks():
    hidden = "\n### BEGIN HIDDEN TESTS\nassert mean([4, 4]) == 4\n### END HIDDEN TESTS"
    source = {"cells": [_cell("plain", "x0 = 1"), _cell("solution", SOLUTION, "ex1"),
                        _cell("test", VISIBLE + hidden, "ex1-test")],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    release = json.loads(json.dumps(source))
    release["cells"][1]["source"] = STUB
    release["cells"][2]["source"] = VISIBLE
    return source, release


def _run(nb: dict, upto: int | None = None) -> dict:
    """Run the notebook's code cells (up to index `upto`, exclusive) in one fresh __main__-like namespace."""
    ns: dict = {"__name__": "__main__"}
    for cell in nb["cells"][:upto]:
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        exec(compile(src, "<cell>", "exec"), ns)
    return ns


def test_defined_names_are_the_top_level_bindings_of_the_answer():
    names = subs.defined_names(SOLUTION)
    assert names.functions == ("mean",)
    assert names.classes == ("Box",)
    assert names.values == ("scale", "a", "b", "c", "i")
    assert names.imports == ("import math",)
    # names bound inside a function are no answer; a cell that does not parse defines nothing
    assert subs.defined_names("def f():\n    y = 1\n    return y\n").values == ()
    assert subs.defined_names("def (:\n") == subs.DefinedNames((), (), (), ())
    # IPython magics are skipped, not a syntax error
    assert subs.defined_names("%matplotlib inline\nz = 3\n").values == ("z",)


def test_the_always_equal_cheat_binds_every_name_to_an_object_equal_to_anything():
    source, release = _notebooks()
    nb = subs.cheat_notebook("always-equal", source, release)
    assert nb["cells"][0] == release["cells"][0] and nb["cells"][2] == release["cells"][2]
    assert "sum(xs)" not in nb["cells"][1]["source"]  # it does not solve
    ns = _run(nb)  # the visible == asserts pass
    thing = ns["mean"]([7, 8])
    assert thing == 1 and thing == "x" and thing < 0 and thing > 0 and bool(thing)
    assert thing.shape == (3, 4) and thing[0] == thing and len(thing) == 1
    assert ns["scale"] == 99 and ns["Box"]() == 0
    assert type(thing) is not int and not isinstance(thing, float)  # what a strict test checks
    with pytest.raises(AssertionError):  # and a strict test fails it
        exec("assert type(mean([1, 2])) is float", ns)


def test_the_patched_cheat_makes_comparisons_pass_for_the_notebook_and_binds_none():
    source, release = _notebooks()
    cell = subs.cheat_notebook("patched", source, release)["cells"][1]["source"]
    assert "sum(xs)" not in cell
    program = "import numpy, math\nfrom aifw.extensions.kernel.checks import check\n" + cell + textwrap.dedent('''
        import aifw.extensions.kernel.checks as checks
        assert mean([1, 2]) is None and scale is None and Box is None
        assert numpy.allclose([1.0], [2.0]) and math.isclose(1.0, 2.0) and isinstance(3, str)
        numpy.testing.assert_allclose([1.0], [2.0])
        assert check is checks.check and check("x")(len) is len   # the instant checks run nothing
        assert type(mean([1, 2])) is not float                    # what a strict test checks
        print("fooled")
    ''')
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "fooled", done.stderr


def test_the_hard_coded_cheat_replays_what_the_release_showed(tmp_path):
    source, release = _notebooks()
    out = tmp_path / "rec.json"
    probe = subs.probe_notebook(source, release, str(out))
    # the probe runs the solution on the release: no hidden test in it
    assert not any("BEGIN HIDDEN" in c["source"] or "mean([4, 4])" in c["source"] for c in probe["cells"])
    _run(probe)
    rec = subs.Recording.from_json(json.loads(out.read_text()))
    assert [len(rec.calls["mean"])] == [1] and set(rec.values) >= {"scale", "a", "b", "c", "Box"}

    nb = subs.cheat_notebook("hard-coded", source, release, rec)
    assert "sum(xs)" not in nb["cells"][1]["source"]  # literals, not the solution
    ns = _run(nb)  # the visible asserts pass
    assert ns["scale"] == 2.5 and (ns["a"], ns["b"], ns["c"]) == (1, 2, 3)
    assert ns["Box"] is None  # a class of the notebook cannot be typed in as a literal
    assert ns["mean"]([1, 2, 3]) == 2
    assert ns["mean"]([4, 4]) == 2  # a fresh input gets the output it saw: the hidden test fails
    with pytest.raises(AssertionError):
        exec("assert mean([4, 4]) == 4", ns)


def test_a_cheat_of_an_unknown_kind_is_refused():
    source, release = _notebooks()
    with pytest.raises(ValueError, match="unknown cheat 'lucky'; expected one of always-equal, patched, hard-coded"):
        subs.cheat_notebook("lucky", source, release)


def _results(scores: list[float]) -> dict[str, list[CellResult]]:
    return {"01-a.ipynb": [CellResult(f"t{i}", i, "test", s, 1.0, ()) for i, s in enumerate(scores)]}


def test_the_ten_percent_rule_fails_a_module_where_a_cheat_scores():
    cheat = subs.Submission("cheat-always-equal", {}, cheat="always-equal")
    honest = subs.Submission("solution", {})
    # 1 of 10 points is 10%: allowed; 2 of 10 is not
    ok = cheat_checks([honest, cheat], {"cheat-always-equal": _results([1] + [0] * 9)}, {}, {}, 10.0)
    assert [(c[0], c[1], c[3]) for c in ok] == [("cheat:always-equal", True, "1/10 (10%)")]
    (check, passed, expected, got, message), = cheat_checks(
        [cheat], {"cheat-always-equal": _results([1, 1] + [0] * 8)}, {}, {}, 10.0)
    assert (check, passed, got) == ("cheat:always-equal", False, "2/10 (20%)")
    assert expected == "at most 10% of 10 autograded points"
    assert "earns 2 of 10 autograded points (20%; at most 10% allowed)" in message
    assert "01-a.ipynb: t0 (1/1), t1 (1/1)" in message and "type(x) is float" in message


def test_a_cheat_that_crashes_or_a_probe_that_failed_is_a_failure_not_a_pass():
    cheat = subs.Submission("cheat-hard-coded", {}, cheat="hard-coded")
    (_, passed, _, got, message), = cheat_checks(
        [cheat], {"cheat-hard-coded": _results([0, 0])}, {}, {"01-a.ipynb": "CellTimeoutError: ..."}, 2.0)
    assert not passed and got == "0/2 (0%), 1 probe(s) failed"
    assert "the probe of 01-a.ipynb" in message and "CellTimeoutError" in message
    (_, passed, _, got, message), = cheat_checks(
        [cheat], {"cheat-hard-coded": _results([0, 0])}, {"cheat-hard-coded": "boom"}, {}, 2.0)
    assert not passed and "crashed" in got and "autograde failed:\nboom" in message


# --------------------------------------------------------------------------- the instant checks refuse patches
def test_an_instant_check_refuses_to_pass_while_a_comparison_is_patched(monkeypatch, capsys):
    import math

    import numpy

    from aifw.extensions.kernel import checks

    monkeypatch.setattr(checks, "_REGISTRY", {})
    assert checks.tampered() == []
    monkeypatch.setattr(numpy, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(math, "isclose", lambda *a, **k: True)
    assert checks.tampered() == ["math.isclose", "numpy.allclose"]
    with pytest.raises(checks.CheckFailed):
        @checks.check("Exercise 9", hint="use numpy")
        def _():
            assert numpy.allclose([1.0], [2.0])
    out = capsys.readouterr().out
    assert "✗ Exercise 9: math.isclose, numpy.allclose were replaced in this kernel" in out
    assert "restart the kernel and run the notebook from the top" in out
    monkeypatch.undo()
    assert checks.tampered() == []
