"""Pure parts of `aifw grade`: ids, finding submissions, the array job script, the run spec, the merge's
refusal of results that do not match, restored cell flags, option checks and the reports."""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

import grading_course as gc
from aifw.grading import jail
from aifw.grading.merge import ResultMismatch, UseExecuted
from aifw.grading.report import CellScore, exercise_summary, plot_png, summary_line, totals
from aifw.grading.run import GradeError, Outcome, RunDir, batch_script, check_id, find_submissions, job_minutes
from aifw.grading.rundir import Limits, RunSpec, Status


@pytest.mark.parametrize("bad", ["", "../etc", "a b", "a;rm -rf", "-rf", "x" * 101, "é"])
def test_ids_that_could_escape_are_refused(bad):
    with pytest.raises(GradeError, match="not a valid id"):
        check_id("student", bad)


def test_good_ids_pass():
    assert check_id("assignment", "m1-first-steps") == "m1-first-steps"
    assert check_id("student", "alice.smith@uni") == "alice.smith@uni"


def _submitted(course: Path, student: str, assignment: str = "a1", ts: str | None = None) -> Path:
    d = course / "submitted" / student / assignment
    d.mkdir(parents=True)
    if ts:
        (d / "timestamp.txt").write_text(ts)
    return d


def _autograded(course: Path, student: str, assignment: str = "a1", ts: str | None = None) -> None:
    d = course / "autograded" / student / assignment
    d.mkdir(parents=True)
    if ts:
        (d / "timestamp.txt").write_text(ts)


def test_find_submissions_grades_new_and_resubmitted_only(tmp_path):
    _submitted(tmp_path, "new")
    _submitted(tmp_path, "same", ts="2026-01-01 10:00:00")
    _autograded(tmp_path, "same", ts="2026-01-01 10:00:00")
    _submitted(tmp_path, "resubmitted", ts="2026-01-02 10:00:00")
    _autograded(tmp_path, "resubmitted", ts="2026-01-01 10:00:00")
    _submitted(tmp_path, "bad name")
    (tmp_path / "submitted" / "linked").mkdir()
    (tmp_path / "submitted" / "linked" / "a1").symlink_to(tmp_path / "submitted" / "new" / "a1")
    todo, done, problems = find_submissions(tmp_path, "a1", None, force=False)
    assert todo == ["new", "resubmitted"]
    assert done == ["same"]
    assert problems == ["'bad name': not a valid student id; skipped"]
    todo, done, _ = find_submissions(tmp_path, "a1", None, force=True)
    assert todo == ["new", "resubmitted", "same"] and done == []


def test_find_submissions_names_students_without_a_submission(tmp_path):
    _submitted(tmp_path, "alice")
    todo, _, problems = find_submissions(tmp_path, "a1", ("alice", "bob"), force=False)
    assert todo == ["alice"]
    assert problems == ["bob: no collected submission of a1 (nbgrader collect first)"]


def test_array_job_script(tmp_path):
    run = RunDir(tmp_path / "run dir")
    script = batch_script(run, workers=3, partition="cpu", memory_mb=5120, minutes=17, python="/opt/aifw/venv/bin/python",
                          job_name="aifw-grade-course1", slurm_conf="/etc/slurm/slurm.conf")
    assert "#SBATCH --array=0-2\n" in script
    assert "#SBATCH --partition=cpu\n" in script
    assert "#SBATCH --mem=5120M\n" in script and "#SBATCH --time=17\n" in script
    assert f"#SBATCH --output={run.logs}/worker-%a.log" in script
    assert script.rstrip().endswith(f"exec /opt/aifw/venv/bin/python -m aifw.grading.worker '{run.path}'")


def test_array_job_script_refuses_what_cannot_be_quoted(tmp_path):
    with pytest.raises(GradeError):
        batch_script(RunDir(tmp_path), workers=1, partition="cpu\n#SBATCH --uid=0", memory_mb=1, minutes=1,
                     python="python", job_name="j", slurm_conf=None)


def test_job_time_covers_each_workers_share():
    limits = Limits(submission_timeout_s=120)
    assert job_minutes(10, 2, limits) == 15  # 5 submissions x 2 min + 5 min start-up
    assert job_minutes(1, 8, limits) == 7
    assert job_minutes(100000, 1, limits) == 24 * 60
    assert job_minutes(500, 1, limits, partition_max=480) == 480  # never past the partition's MaxTime
    assert job_minutes(10, 2, limits, partition_max=480) == 15


def test_run_spec_round_trip_and_one_uid_per_submission():
    spec = RunSpec(course="c", assignment="a", students=("s1", "s2", "s3"), notebooks=("nb",), uid_base=3_000_000)
    again = RunSpec.from_json(spec.to_json())
    assert again == spec
    assert [spec.uid_for(s) for s in spec.students] == [3_000_000, 3_000_001, 3_000_002]
    assert RunSpec(course="c", assignment="a", students=("s",), notebooks=(), uid_base=None).uid_for("s") is None


def test_finished_ignores_broken_status_files(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    run.results("ok").mkdir()
    Status(student="ok", state="graded", notebooks=["nb"]).write(run.status_file("ok"))
    run.results("broken").mkdir()
    run.status_file("broken").write_text("{not json")
    assert list(run.finished()) == ["ok"]
    assert oct(run.path.stat().st_mode & 0o777) == "0o711"
    assert oct((run.path / "results").stat().st_mode & 0o777) == "0o711"  # the merge service passes through
    assert oct((run.path / "submitted").stat().st_mode & 0o777) == "0o700"
    assert oct(run.gradebook.parent.stat().st_mode & 0o777) == "0o711"


def test_jail_refuses_system_uids():
    with pytest.raises(ValueError, match="system uid"):
        jail.drop_to(0)
    with pytest.raises(ValueError):
        jail.drop_to(999)


def _nb(*sources: str) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell("# title")] + [new_code_cell(s) for s in sources]
    return nb


def _use_executed(tmp_path: Path, executed: nbformat.NotebookNode, submitted: nbformat.NotebookNode):
    (tmp_path / "alice").mkdir()
    nbformat.write(executed, str(tmp_path / "alice" / "nb.ipynb"))
    pp = UseExecuted(results_dir=str(tmp_path))
    resources = {"nbgrader": {"student": "alice", "notebook": "nb", "assignment": "a"}}
    return pp(submitted, resources)


def test_use_executed_takes_the_outputs_of_the_same_cells(tmp_path):
    executed = _nb("print(1)", "1/0")
    executed.cells[1].outputs = [new_output("stream", name="stdout", text="1\n")]
    executed.cells[1].execution_count = 1
    executed.cells[2].outputs = [new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    nb, _ = _use_executed(tmp_path, executed, _nb("print(1)", "1/0"))
    assert nb.cells[1].outputs[0]["text"] == "1\n" and nb.cells[1].execution_count == 1
    assert nb.cells[2].outputs[0]["ename"] == "ZeroDivisionError"


@pytest.mark.parametrize("submitted", [_nb("print(1)"), _nb("print(2)", "1/0"), _nb("print(1)", "1/0", "x")])
def test_use_executed_refuses_a_result_of_other_cells(tmp_path, submitted):
    with pytest.raises(ResultMismatch, match="grade it again|no executed|differs"):
        _use_executed(tmp_path, _nb("print(1)", "1/0"), submitted)


def test_edited_cell_flags_are_restored_from_the_gradebook(tmp_path):
    from aifw.grading.sanitize import RestoreCellFlags

    course = gc.make_course(tmp_path / "course")
    nb = gc.answer(course, edit={"test_squares": {"metadata": {"grade": False, "points": 99, "locked": False}},
                                  "squares": {"metadata": {"locked": True}}})
    resources = {"nbgrader": {"db_url": f"sqlite:///{course / 'gradebook.db'}", "notebook": gc.NOTEBOOK,
                              "assignment": gc.ASSIGNMENT, "student": "x"}}
    nb, _ = RestoreCellFlags()(nb, resources)
    meta = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in nb.cells if "nbgrader" in c.metadata}
    assert (meta["test_squares"]["grade"], meta["test_squares"]["points"], meta["test_squares"]["locked"]) == (True, 2.0, True)
    assert meta["squares"]["locked"] is False and meta["squares"]["solution"] is True


def _args(**kw) -> argparse.Namespace:
    base = dict(course="aif-foundations", assignment="m1-first-steps", local=None, workers=None, partition=None,
                student=None, force=False, cell_timeout=None, timeout=None, memory_gb=None, max_processes=None,
                no_sandbox=False, no_feedback=False, no_reports=False, site=None, course_dir=None, runs_dir=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_options_come_from_the_site_file():
    from aifw.grading.cli import options_from_args

    opts = options_from_args(_args())
    assert opts.mode == "slurm" and opts.workers == 2 and opts.partition == "cpu"
    assert opts.course_dir.name == "aif-foundations"
    assert opts.limits.cell_timeout_s == 30 and opts.limits.memory_mb == 4096
    local = options_from_args(_args(local=3, memory_gb=0.5))
    assert local.mode == "local" and local.workers == 3 and local.limits.memory_mb == 512


@pytest.mark.parametrize("kw, message", [
    ({"course": "no-such-course"}, "not in the site file"),
    ({"local": 0}, "--local must be at least 1"),
    ({"timeout": -5}, "--timeout must be at least 1"),
    ({"memory_gb": 0.0}, "--memory-gb must be positive"),
    ({"site": "/nonexistent/site.yaml"}, "cannot read the file"),
])
def test_bad_options_say_what_to_fix(kw, message):
    from aifw.grading.cli import options_from_args

    with pytest.raises(GradeError, match=message):
        options_from_args(_args(**kw))


def test_report_numbers_and_plot():
    rows = [CellScore("a", "nb", "t1", 2, 2), CellScore("a", "nb", "t2", 0, 3),
            CellScore("b", "nb", "t1", 2, 2), CellScore("b", "nb", "t2", 3, 3)]
    summary = {(e["notebook"], e["cell"]): e for e in exercise_summary(rows)}
    assert summary[("nb", "t1")]["success_rate"] == 1.0
    assert summary[("nb", "t2")]["success_rate"] == 0.5 and summary[("nb", "t2")]["mean_score"] == 1.5
    assert totals(rows) == {"a": (2, 5), "b": (5, 5)}
    assert plot_png(rows, list(summary.values()), "a1").startswith(b"\x89PNG")
    outs = [Outcome("a", "graded").to_json(), Outcome("b", "timed_out").to_json(), Outcome("c", "failed").to_json()]
    assert summary_line(outs) == "1 graded, 1 timed out, 1 failed"


def test_cli_refuses_to_sandbox_without_root(tmp_path, monkeypatch):
    from aifw.grading.run import GradeOptions, grade

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    course = tmp_path / "c"
    course.mkdir()
    with pytest.raises(GradeError, match="needs root"):
        grade(GradeOptions(course="c", assignment="a", course_dir=course, runs_root=tmp_path / "runs"))


def _fake_sbatch(tmp_path: Path, stderr: str, rc: int) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "sbatch"
    script.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{stderr}' >&2\nexit {rc}\n")
    script.chmod(0o755)
    return bindir


@pytest.mark.parametrize("stderr, rc, message", [
    ("sbatch: error: invalid partition specified: nope", 1, "Slurm refused the grading job: .*invalid partition"),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", 1,
     "Slurm is not reachable .* --local N"),
])
def test_slurm_saying_no_or_not_answering_is_told_apart(tmp_path, stderr, rc, message):
    from aifw.grading.run import GradeOptions, SlurmWorkers

    run = RunDir(tmp_path / "run")
    run.create()
    opts = GradeOptions(course="c", assignment="a", course_dir=tmp_path, runs_root=tmp_path, mode="slurm",
                        partition="nope", slurm_bin=str(_fake_sbatch(tmp_path, stderr, rc)))
    with pytest.raises(GradeError, match=message):
        SlurmWorkers(run, opts, 3)
    assert "#SBATCH --array=0-1" in (run.path / "job.sh").read_text()


def test_a_pending_array_is_explained():
    from aifw.grading.run import describe_array

    assert describe_array("7", [["PENDING", "Resources"]]) == "Slurm job 7: tasks pending (Resources)"
    assert describe_array("7", [["RUNNING", "None"], ["PENDING", "JobArrayTaskLimit"]]) == \
        "Slurm job 7: 1 task(s) running, tasks pending (JobArrayTaskLimit)"
    assert describe_array("7", []) == ""


def test_an_unknown_assignment_or_a_folder_without_gradebook_says_what_to_do(tmp_path):
    from aifw.grading.run import assignment_notebooks

    with pytest.raises(GradeError, match="no gradebook.db"):
        assignment_notebooks(tmp_path, "tiny")
    course = gc.make_course(tmp_path / "course")
    assert assignment_notebooks(course, gc.ASSIGNMENT) == [gc.NOTEBOOK]
    with pytest.raises(GradeError, match=r"'m9' is not in the gradebook .*known: tiny.*generate_assignment m9"):
        assignment_notebooks(course, "m9")


def test_slurm_calls_work_from_inside_a_running_event_loop(tmp_path):
    import asyncio
    import threading

    from aifw.grading.run import GradeOptions, SlurmWorkers

    run = RunDir(tmp_path / "run")
    run.create()
    opts = GradeOptions(course="c", assignment="a", course_dir=tmp_path, runs_root=tmp_path, mode="slurm",
                        partition="nope", slurm_bin=str(_fake_sbatch(tmp_path, "sbatch: error: invalid partition", 1)))

    async def inside_a_loop():
        SlurmWorkers(run, opts, 2)

    # A thread of its own: the test session may itself run a loop here (Playwright's sync API does).
    errors = []
    thread = threading.Thread(target=lambda: _catch(errors, lambda: asyncio.run(inside_a_loop())))
    thread.start()
    thread.join(60)
    assert len(errors) == 1 and isinstance(errors[0], GradeError) and "Slurm refused" in str(errors[0]), errors


def _catch(errors: list, fn) -> None:
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - handed to the test
        errors.append(err)
