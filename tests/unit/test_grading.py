"""Pure parts of `aifw grade`: ids, finding submissions, the array job script, the run spec, the workers
against a fake Slurm client, the main loop against fake workers and merge service, the gradebook reader
on a gradebook made with nbgrader's API, the merge's refusal of results that do not match, option checks
and the reports. Nothing here starts a kernel, nbgrader, a worker or Slurm (tests/integration does)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from aifw import gradebook
from aifw.grading import jail
from aifw.gradebook import CellScore
from aifw.grading.merge import ResultMismatch, UseExecuted
from aifw.grading.plan import GradeError, GradeOptions, assignment_notebooks, check_id, find_submissions, job_minutes
from aifw.grading.report import exercise_summary, plot_png, summary_line, totals
from aifw.grading.run import Outcome, follow
from aifw.grading.rundir import Limits, RunDir, RunSpec, Status
from aifw.grading.workers import SlurmWorkers, Workers, WorkersNotStopped, array_script, describe_array
from aifw.slurm import JobInfo, PartitionInfo, SlurmRejected, SlurmUnavailable


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


def _opts(tmp_path: Path, **kw) -> GradeOptions:
    base = dict(course="course1", assignment="a1", course_dir=tmp_path / "course", runs_root=tmp_path / "runs",
                mode="slurm", workers=3, partition="cpu", python="/opt/aifw/venv/bin/python",
                slurm_conf="/etc/slurm/slurm.conf")
    base.update(kw)
    return GradeOptions(**base)


def test_array_job_script(tmp_path):
    run = RunDir(tmp_path / "run")
    script = array_script(run, _opts(tmp_path), minutes=17)
    assert "#SBATCH --job-name=aifw-grade-course1\n" in script
    assert "#SBATCH --array=0-2\n" in script
    assert "#SBATCH --partition=cpu\n" in script
    assert "#SBATCH --mem=5G\n" in script  # the submission's 4 GB and 1 GB for the worker
    assert "#SBATCH --time=00:17:00\n" in script  # Slurm's D-HH:MM:SS (format_slurm_minutes)
    assert f"#SBATCH --output={run.logs}/worker-%a.log\n" in script
    assert "export SLURM_CONF=/etc/slurm/slurm.conf\n" in script
    assert script.rstrip().endswith(f"exec /opt/aifw/venv/bin/python -m aifw.grading.worker {run.path}")


@pytest.mark.parametrize("kw, run_name", [
    ({"partition": "cpu\n#SBATCH --uid=0"}, "run"),
    ({"course": "c;rm"}, "run"),
    ({}, "run dir"),  # a path sbatch would split
])
def test_array_job_script_refuses_what_cannot_go_into_it(tmp_path, kw, run_name):
    with pytest.raises(GradeError, match="batch script.*--local N"):
        array_script(RunDir(tmp_path / run_name), _opts(tmp_path, **kw), minutes=1)


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


def test_a_new_run_directory_and_its_spec_written_once(tmp_path):
    run = RunDir.new(tmp_path / "runs", "c1", "a1")
    assert run.path.parent == tmp_path / "runs" / "c1" and run.path.name.startswith("a1-")
    assert oct((tmp_path / "runs" / "c1").stat().st_mode & 0o777) == "0o711"
    spec = RunSpec(course="c1", assignment="a1", students=("s",), notebooks=("nb",))
    run.write_spec(spec)
    assert run.spec() == spec and oct(run.spec_file.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        run.write_spec(spec)
    assert RunDir.new(tmp_path / "runs", "c1", "a1") != run  # two runs never share a directory


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
    from aifw.grading.run import grade

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    course = tmp_path / "c"
    course.mkdir()
    with pytest.raises(GradeError, match="needs root"):
        grade(GradeOptions(course="c", assignment="a", course_dir=course, runs_root=tmp_path / "runs"))




# --------------------------------------------------------------------------- the workers, on a fake Slurm
class FakeSlurm:
    """What SlurmWorkers asks of aifw.slurm's client, scripted; `calls` records what was asked."""

    def __init__(self, *, submit="412", tasks=(), cancel=None, partitions=None):
        self.bin_dir, self.conf = "/usr/bin", "/etc/slurm/slurm.conf"
        self.calls: list[tuple] = []
        self._submit, self._tasks, self._cancel = submit, iter(tasks), cancel  # tasks: one answer per call
        self._partitions = partitions if partitions is not None else [PartitionInfo(name="cpu", default=True)]

    @staticmethod
    def _answer(what):
        if isinstance(what, BaseException):
            raise what
        return what

    def submit_sync(self, script):
        self.calls.append(("submit", script))
        return self._answer(self._submit)

    def partitions_sync(self):
        self.calls.append(("partitions",))
        return self._answer(self._partitions)

    def job_tasks_sync(self, job_id):
        self.calls.append(("tasks", job_id))
        return self._answer(next(self._tasks))

    def cancel_sync(self, job_ids):
        self.calls.append(("cancel", list(job_ids)))
        return self._answer(self._cancel)


def _run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.create()
    return run


def test_the_array_is_built_and_submitted_through_the_slurm_layer(tmp_path):
    run = _run(tmp_path)
    slurm = FakeSlurm(partitions=[PartitionInfo(name="cpu", max_time_minutes=480)])
    workers = SlurmWorkers(run, _opts(tmp_path, workers=2), 3, client=slurm)
    submitted = [c[1] for c in slurm.calls if c[0] == "submit"]
    assert submitted == [run.job_script.read_text()] and "#SBATCH --array=0-1\n" in submitted[0]
    assert workers.job_id == "412" and workers.describe == "Slurm array job 412 (2 task(s) on partition cpu)"
    assert workers.note == ""


def test_a_partition_shorter_than_the_work_is_said(tmp_path):
    slurm = FakeSlurm(partitions=[PartitionInfo(name="cpu", max_time_minutes=10)])
    run = _run(tmp_path)
    workers = SlurmWorkers(run, _opts(tmp_path, workers=1), 50, client=slurm)
    assert "#SBATCH --time=00:10:00\n" in run.job_script.read_text()
    assert "partition cpu allows 10 min per job" in workers.note


@pytest.mark.parametrize("error, message", [
    (SlurmRejected("sbatch: error: invalid partition specified: nope"), "Slurm refused the grading job: .*invalid partition"),
    (SlurmUnavailable("Unable to contact slurm controller (connect failure)"), "Slurm is not reachable .* --local N"),
])
def test_slurm_saying_no_or_not_answering_is_told_apart(tmp_path, error, message):
    run = _run(tmp_path)
    with pytest.raises(GradeError, match=message):
        SlurmWorkers(run, _opts(tmp_path, workers=2), 3, client=FakeSlurm(submit=error))
    assert "#SBATCH --array=0-1" in run.job_script.read_text()


def test_the_array_is_alive_while_slurm_lists_it_or_does_not_answer(tmp_path, monkeypatch):
    slurm = FakeSlurm(tasks=[[JobInfo("412", "RUNNING"), JobInfo("412", "PENDING", reason="JobArrayTaskLimit")],
                             SlurmUnavailable("Socket timed out"), []])
    workers = SlurmWorkers(_run(tmp_path), _opts(tmp_path), 3, client=slurm)
    clock = iter(range(100, 1000, 10))
    monkeypatch.setattr("aifw.grading.workers.time.monotonic", lambda: next(clock))
    assert workers.alive() and workers.state == "Slurm job 412: 1 task(s) running, tasks pending (JobArrayTaskLimit)"
    assert workers.alive()  # no answer is not "gone"
    assert not workers.alive()  # Slurm lists no task any more


def test_stopping_cancels_the_array(tmp_path):
    slurm = FakeSlurm()
    SlurmWorkers(_run(tmp_path), _opts(tmp_path), 3, client=slurm).stop()
    assert ("cancel", ["412"]) in slurm.calls


@pytest.mark.parametrize("error", [SlurmUnavailable("scancel did not answer within 20 s"),
                                   SlurmRejected("scancel: error: Access/permission denied")])
def test_a_failed_cancel_names_the_job_and_how_to_cancel_it_by_hand(tmp_path, monkeypatch, error):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    workers = SlurmWorkers(_run(tmp_path), _opts(tmp_path), 3, client=FakeSlurm(cancel=error))
    with pytest.raises(WorkersNotStopped) as caught:
        workers.stop()
    text = str(caught.value)
    assert "Slurm array job 412 could not be cancelled" in text and str(error) in text
    assert text.endswith("cancel it by hand: sudo SLURM_CONF=/etc/slurm/slurm.conf /usr/bin/scancel 412")


def test_slurm_calls_work_from_inside_a_running_event_loop(tmp_path):
    """The real client's blocking calls (a fake sbatch on disk) from inside a running event loop."""
    from aifw_testing import run_coroutine

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text("#!/bin/sh\ncat >/dev/null\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    (bindir / "sbatch").chmod(0o755)
    run = _run(tmp_path)
    opts = _opts(tmp_path, partition="nope", slurm_bin=str(bindir))

    async def inside_a_loop():
        SlurmWorkers(run, opts, 2)

    with pytest.raises(GradeError, match="Slurm refused"):
        run_coroutine(inside_a_loop())


def test_a_pending_array_is_explained():
    assert describe_array("7", [JobInfo("7", "PENDING", reason="Resources")]) == "Slurm job 7: tasks pending (Resources)"
    assert describe_array("7", [JobInfo("7", "RUNNING"), JobInfo("7", "PENDING", reason="JobArrayTaskLimit")]) == \
        "Slurm job 7: 1 task(s) running, tasks pending (JobArrayTaskLimit)"
    assert describe_array("7", []) == ""


# --------------------------------------------------------------------------- the main loop, on fakes
class FakeWorkers(Workers):
    describe = "2 fake worker(s)"

    def __init__(self, stop_error: Exception | None = None):
        self.stopped = 0
        self.stop_error = stop_error

    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        self.stopped += 1
        if self.stop_error:
            raise self.stop_error


class FakeMerger:
    """The merge service's client; `fail` is raised on the first request."""

    def __init__(self, fail: BaseException | None = None):
        self.fail, self.requests = fail, []

    def hand_over(self, folder: Path) -> None:
        pass

    def request(self, **req) -> dict:
        self.requests.append(req)
        if self.fail:
            raise self.fail
        if req["op"] == "scores":
            return {"ok": True, "scores": {s: [6.0, 6.0] for s in req["students"]}}
        return {"ok": True, "seconds": 0.1, "path": "/reports"}


def _finished_run(tmp_path: Path, students: list[str]) -> RunDir:
    run = _run(tmp_path)
    for s in students:
        run.results(s).mkdir()
        Status(student=s, state="graded", notebooks=["nb"], worker="w0").write(run.status_file(s))
    return run


def test_a_normal_finish_merges_every_result_and_leaves_the_workers_alone(tmp_path):
    run, workers, merger, said = _finished_run(tmp_path, ["alice", "bob"]), FakeWorkers(), FakeMerger(), []
    result = follow(_opts(tmp_path, feedback=False), run, ["alice", "bob"], workers, merger, say=said.append, poll_s=0)
    assert [(o.student, o.state, o.merged, o.score) for o in result.outcomes] == [("alice", "graded", True, 6.0),
                                                                                   ("bob", "graded", True, 6.0)]
    assert [r["op"] for r in merger.requests] == ["merge", "merge", "scores", "reports"]
    assert workers.stopped == 0 and result.reports == Path("/reports")


@pytest.mark.parametrize("fail", [GradeError("the merge service ended (exit 1); see merge.log"), RuntimeError("bug")])
def test_a_merge_error_stops_the_workers_and_says_so(tmp_path, fail):
    run, workers, said = _finished_run(tmp_path, ["alice"]), FakeWorkers(), []
    with pytest.raises(type(fail), match=re.escape(str(fail))):
        follow(_opts(tmp_path), run, ["alice"], workers, FakeMerger(fail=fail), say=said.append, poll_s=0)
    assert workers.stopped == 1
    assert said[-1] == "the workers were stopped (2 fake worker(s))"


def test_an_interrupt_stops_the_workers(tmp_path):
    run, workers = _finished_run(tmp_path, ["alice"]), FakeWorkers()
    with pytest.raises(KeyboardInterrupt):
        follow(_opts(tmp_path), run, ["alice"], workers, FakeMerger(fail=KeyboardInterrupt()), say=lambda m: None, poll_s=0)
    assert workers.stopped == 1


@pytest.mark.parametrize("fail, why", [(GradeError("the merge service ended"), "the merge service ended"),
                                       (KeyboardInterrupt(), "interrupted")])
def test_workers_that_cannot_be_stopped_are_named_with_the_way_out(tmp_path, fail, why):
    run = _finished_run(tmp_path, ["alice"])
    workers = FakeWorkers(stop_error=WorkersNotStopped("Slurm array job 412 could not be cancelled (x); "
                                                       "cancel it by hand: sudo /usr/bin/scancel 412"))
    said = []
    with pytest.raises(WorkersNotStopped) as caught:
        follow(_opts(tmp_path), run, ["alice"], workers, FakeMerger(fail=fail), say=said.append, poll_s=0)
    assert str(caught.value) == f"{why}; Slurm array job 412 could not be cancelled (x); cancel it by hand: sudo /usr/bin/scancel 412"
    assert caught.value.__cause__ is fail
    assert not any("stopped" in m for m in said)


def test_the_command_line_says_which_job_still_runs(monkeypatch, capsys):
    from aifw.grading import cli

    not_stopped = WorkersNotStopped("interrupted; Slurm array job 412 could not be cancelled (x); "
                                    "cancel it by hand: sudo /usr/bin/scancel 412")
    not_stopped.__cause__ = KeyboardInterrupt()

    def grade(*a, **kw):
        raise not_stopped

    monkeypatch.setattr(cli, "options_from_args", lambda args: None)
    monkeypatch.setattr(cli, "grade", grade)
    assert cli.cmd_grade(_args()) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert "Slurm array job 412 could not be cancelled" in err and "sudo /usr/bin/scancel 412" in err
    assert "the workers were stopped" not in err


# --------------------------------------------------------------------------- the gradebook reader
@pytest.fixture
def book(tmp_path) -> Path:
    """A course directory whose gradebook is made with nbgrader's API (no nbgrader app runs): assignments
    a1 (notebook nb: cells t1 2 points, t2 3 points; alice and bob submitted) and a2 (nothing)."""
    from aifw_testing import new_gradebook

    course = tmp_path / "course"
    course.mkdir()
    with new_gradebook(course / "gradebook.db") as gb:
        gb.add_assignment("a1")
        gb.add_assignment("a2")
        gb.add_notebook("nb", "a1")
        gb.add_grade_cell("t1", "nb", "a1", max_score=2, cell_type="code")
        gb.add_grade_cell("t2", "nb", "a1", max_score=3, cell_type="code")
        for student, (t1, t2) in {"alice": (2, 3), "bob": (0, 3)}.items():
            gb.add_student(student)
            gb.add_submission("a1", student)
            gb.find_grade("t1", "nb", "a1", student).auto_score = t1
            gb.find_grade("t2", "nb", "a1", student).auto_score = t2
            for cell in ("t1", "t2"):  # as nbgrader's SaveAutoGrades leaves a test cell
                gb.find_grade(cell, "nb", "a1", student).needs_manual_grade = False
    return course


def test_the_gradebook_is_read_without_a_write(book):
    db = book / "gradebook.db"
    db.chmod(0o444)
    before = db.read_bytes()
    assert gradebook.assignments(book) == ["a1", "a2"]
    assert gradebook.assignment_notebooks(book, "a1") == ["nb"]
    assert gradebook.submission_scores(book, "a1") == {"alice": (5.0, 5.0), "bob": (3.0, 5.0)}
    assert gradebook.submission_scores(db, "a1", ["bob", "carol"]) == {"bob": (3.0, 5.0)}
    assert gradebook.cell_scores(book, "a1", ["bob"]) == [
        CellScore("bob", "nb", "t1", 0.0, 2.0, auto_score=0.0), CellScore("bob", "nb", "t2", 3.0, 3.0, auto_score=3.0)]
    assert db.read_bytes() == before and sorted(p.name for p in book.iterdir()) == ["gradebook.db"]


def test_a_missing_gradebook_is_an_error_and_stays_missing(tmp_path):
    with pytest.raises(gradebook.NoGradebook, match="no gradebook.db.*generate_assignment"):
        gradebook.cell_scores(tmp_path, "a1")
    assert not (tmp_path / "gradebook.db").exists()


def test_an_unknown_assignment_or_a_folder_without_gradebook_says_what_to_do(tmp_path, book):
    with pytest.raises(GradeError, match="no gradebook.db"):
        assignment_notebooks(tmp_path / "elsewhere", "a1")
    assert assignment_notebooks(book, "a1") == ["nb"]
    with pytest.raises(GradeError, match=r"'m9' is not in the gradebook .*known: a1, a2.*generate_assignment m9"):
        assignment_notebooks(book, "m9")
    with pytest.raises(GradeError, match=r"'a2' is not in the gradebook"):  # known, but without notebooks
        assignment_notebooks(book, "a2")


def test_the_snapshot_is_a_private_copy(tmp_path, book):
    dest = tmp_path / "snap.db"
    gradebook.snapshot(book, dest)
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert gradebook.submission_scores(dest, "a1") == gradebook.submission_scores(book, "a1")
    with pytest.raises(FileExistsError):
        gradebook.snapshot(book, dest)
