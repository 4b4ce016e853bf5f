"""`aifw grade` against hostile submissions: every attack of the issue in one parallel run (--local 2),
then one test per submission on what it got, what the summary says and what it could not touch.
Needs root (throwaway uids), not Slurm; the Slurm path is in test_grading_slurm.py."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest

import grading_course as gc

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxed grading switches uids: run as root (make test)")


def _write_attempts(targets: dict[str, str]) -> str:
    return (
        "import os\n"
        f"for label, path in {targets!r}.items():\n"
        "    try:\n"
        "        with open(path, 'a') as f:\n"
        "            f.write('pwned')\n"
        "        print('LEAK wrote', label)\n"
        "    except OSError as e:\n"
        "        print('denied', label, type(e).__name__)\n"
        + gc.SQUARES.replace("    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION", "")
    )


def _read_attempts(targets: dict[str, str]) -> str:
    return (
        "import os\n"
        f"for label, path in {targets!r}.items():\n"
        "    try:\n"
        "        data = os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read(64)\n"
        "        print('LEAK read', label, str(data)[:40])\n"
        "    except OSError as e:\n"
        "        print('denied', label, type(e).__name__)\n"
        + gc.SQUARES.replace("    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION", "")
    )


FORK_STORM = """import os, time
children = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        children.append(pid)
finally:
    print('forked', len(children))
"""

MEMORY_BOMB = """blocks = []
while True:
    blocks.append(bytearray(64 * 1024 * 1024))
"""


@pytest.fixture(scope="module")
def graded():
    """One course, every kind of submission, one `aifw grade --local 2` run (as the CLI runs it)."""
    base = Path(tempfile.mkdtemp(prefix="aifw-grade-test-"))
    base.chmod(0o711)
    course = gc.make_course(base / "course")
    course.chmod(0o700)
    runs = base / "runs"
    master_db = course / "gradebook.db"
    good_nb = course / "submitted" / "good" / gc.ASSIGNMENT / f"{gc.NOTEBOOK}.ipynb"

    subs = {
        "good": gc.answer(course),
        "partial": gc.answer(course, mean="def mean(xs):\n    return 2"),
        "loop": gc.answer(course, squares="while True:\n    pass"),
        "membomb": gc.answer(course, squares=MEMORY_BOMB),
        "forkstorm": gc.answer(course, squares=FORK_STORM),
        "crasher": gc.answer(course, squares="import os\nos._exit(3)"),
        "sleeper": gc.answer(course, extra_cells=["import time\ntime.sleep(2.5)"] * 5),
        "litterer": gc.answer(course, extra_cells=[
            "import os\nopen('/tmp/aifw-litter-test', 'w').write('x')\nos.makedirs('/dev/shm/aifw-litter-dir/a', exist_ok=True)"]),
        "writer": gc.answer(course, squares=_write_attempts({
            "master gradebook": str(master_db), "another submission": str(good_nb),
            "run results": "../../results/writer/exercises.ipynb", "run gradebook": "../../gradebook.db",
            "course source": str(course / "source" / gc.ASSIGNMENT / f"{gc.NOTEBOOK}.ipynb"),
        })),
        "reader": gc.answer(course, squares=_read_attempts({
            "master gradebook": str(master_db), "run gradebook": "../../gradebook.db",
            "another submission": str(good_nb), "its snapshot": "../../submitted/good/exercises.ipynb",
            "the run directory": "../..", "the other work dirs": "..",
            "course source (hidden tests)": str(course / "source" / gc.ASSIGNMENT / f"{gc.NOTEBOOK}.ipynb"),
        })),
        "cheater": gc.answer(course, squares="def squares(n):\n    return []", edit={
            "test_squares": {"source": "pass", "metadata": {"points": 100}},
            "test_after": {"metadata": {"grade": False, "points": 0}},
        }),
        "faker": gc.answer(course, squares="def squares(n):\n    return []", extra_cells=[
            "from IPython.display import Markdown, display\nprint('Points: 6 / 6')\ndisplay(Markdown('**Score: 100%**'))\n"
            "open('status.json', 'w').write('{\"state\": \"graded\", \"score\": 6}')"]),
    }
    for student, nb in subs.items():
        gc.submit(course, student, nb)

    # Stock serial nbgrader on the submissions that are safe to run as root, for comparison.
    serial = gc.copy_course(course, base / "serial")
    for student in ("good", "partial", "faker"):
        gc.nbgrader(serial, "autograde", gc.ASSIGNMENT, "--student", student, "--force")

    hashes_before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (good_nb,)}
    aifw = Path(os.sys.executable).parent / "aifw"
    res = subprocess.run(
        [str(aifw), "grade", "aif-foundations", gc.ASSIGNMENT, "--course-dir", str(course), "--runs-dir", str(runs),
         "--local", "2", "--cell-timeout", "3", "--timeout", "8", "--memory-gb", "1", "--max-processes", "40"],
        capture_output=True, text=True, timeout=240,
    )
    run_dir = next((runs / "aif-foundations").iterdir())
    summary = json.loads((course / "reports" / gc.ASSIGNMENT / "grading-summary.json").read_text())
    yield {"course": course, "serial": serial, "res": res, "run": run_dir, "base": base,
           "summary": {s["student"]: s for s in summary["submissions"]}, "hashes_before": hashes_before,
           "good_nb": good_nb}
    shutil.rmtree(base, ignore_errors=True)


def _outputs(course: Path, student: str) -> str:
    nb = nbformat.read(str(course / "autograded" / student / gc.ASSIGNMENT / f"{gc.NOTEBOOK}.ipynb"), as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") + " " + out.get("ename", "") + " " + out.get("evalue", ""))
    return "\n".join(texts)


def test_the_run_finishes_and_reports(graded):
    res = graded["res"]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "aifw grade: summary" in res.stdout
    assert set(graded["summary"]) == {"litterer", "good", "partial", "loop", "membomb", "forkstorm", "crasher", "sleeper",
                                      "writer", "reader", "cheater", "faker"}


def test_honest_grades_are_nbgraders_own(graded):
    mine, stock = gc.grades(graded["course"]), gc.grades(graded["serial"])
    for student in ("good", "partial", "faker"):
        assert {k: v for k, v in mine.items() if k[0] == student} == {k: v for k, v in stock.items() if k[0] == student}
    totals = gc.totals(graded["course"])
    assert totals["good"] == gc.MAX_SCORE
    assert totals["partial"] == gc.MAX_SCORE - 3


def test_infinite_loop_times_out_and_loses_only_what_it_broke(graded):
    assert gc.totals(graded["course"])["loop"] == 3  # squares undefined: test_squares and test_after lost
    s = graded["summary"]["loop"]
    assert s["state"] == "timed_out" and any("cell time limit" in r for r in s["reasons"])


def test_memory_bomb_hits_the_memory_limit(graded):
    assert gc.totals(graded["course"])["membomb"] == 3
    assert any("memory limit" in r for r in graded["summary"]["membomb"]["reasons"])
    assert "MemoryError" in _outputs(graded["course"], "membomb")


def test_fork_storm_stops_at_the_process_limit_and_leaves_nothing_running(graded):
    assert gc.totals(graded["course"])["forkstorm"] == 3
    assert any("process limit" in r for r in graded["summary"]["forkstorm"]["reasons"])
    spec = json.loads((graded["run"] / "run.json").read_text())
    uids = {spec["uid_base"] + i for i in range(len(spec["students"]))}
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid_of(p) in uids]
    assert left == [], f"processes of sandbox uids still running: {left}"


def _uid_of(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


def test_a_dying_kernel_scores_zero_for_the_cells_it_did_not_run(graded):
    assert gc.totals(graded["course"])["crasher"] == 0
    s = graded["summary"]["crasher"]
    assert s["state"] == "failed" and any("kernel died" in r for r in s["reasons"])


def test_submission_time_limit_kills_and_reports(graded):
    assert gc.totals(graded["course"])["sleeper"] == 0
    s = graded["summary"]["sleeper"]
    assert s["state"] == "timed_out" and any("time limit (8 s)" in r for r in s["reasons"])


def test_writes_outside_its_directory_are_denied(graded):
    out = _outputs(graded["course"], "writer")
    assert "LEAK" not in out
    assert out.count("denied") == 5
    assert hashlib.sha256(graded["good_nb"].read_bytes()).hexdigest() == graded["hashes_before"][graded["good_nb"]]
    assert gc.totals(graded["course"])["writer"] == gc.MAX_SCORE  # it broke nothing of its own


def test_files_left_in_shared_tmp_folders_are_removed(graded):
    assert gc.totals(graded["course"])["litterer"] == gc.MAX_SCORE
    assert not Path("/tmp/aifw-litter-test").exists()
    assert not Path("/dev/shm/aifw-litter-dir").exists()


def test_reads_of_the_gradebook_and_other_submissions_are_denied(graded):
    out = _outputs(graded["course"], "reader")
    assert "LEAK" not in out, out
    assert out.count("denied") == 7


def test_edited_test_cells_and_metadata_are_restored(graded):
    """Stock nbgrader gives up on a test cell whose `grade` flag was edited ("Inconsistent checksums");
    here the flags come back from the gradebook and the cell is graded as the instructor wrote it."""
    g = gc.grades(graded["course"])
    assert g[("cheater", "test_squares")] == (0.0, 2.0)
    assert g[("cheater", "test_after")] == (0.0, 1.0)
    assert gc.totals(graded["course"])["cheater"] == 3


def test_printed_points_change_nothing(graded):
    assert gc.totals(graded["course"])["faker"] == 3
    assert graded["summary"]["faker"]["state"] == "graded"


def test_the_gradebook_holds_one_submission_per_student(graded):
    from aifw.gradebook import submission_scores

    scores = submission_scores(graded["course"], gc.ASSIGNMENT)
    assert sorted(scores) == sorted(graded["summary"])
    assert scores["good"] == (gc.MAX_SCORE, gc.MAX_SCORE)


def test_reports_and_feedback_are_written(graded):
    reports = graded["course"] / "reports" / gc.ASSIGNMENT
    for name in ("grades.csv", "exercises.csv", "exercise-summary.csv", "grades.png", "report.html"):
        assert (reports / name).stat().st_size > 0, name
    rows = (reports / "exercise-summary.csv").read_text().splitlines()
    assert rows[0].startswith("notebook,cell,max_score,mean_score,success_rate")
    assert (graded["course"] / "feedback" / "good" / gc.ASSIGNMENT / f"{gc.NOTEBOOK}.html").is_file()
    assert (reports / "logs" / "loop.log").is_file()


def test_inside_a_course_directory_the_course_comes_from_its_nbgrader_config(graded):
    """`aifw grade ASSIGNMENT` in an nbgrader course directory that the site file does not list: the course id
    and directory come from its plain nbgrader_config.py, read as the directory's owner (never as root), and the
    merge writes the autograded copy as that owner, its grader account."""
    import pwd

    course, runs = graded["course"], graded["base"] / "runs"
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        "c.CourseDirectory.course_id = 'ML101_2026'\n"
        "import os\nassert os.geteuid() != 0, 'aifw grade ran this file as root'\n")
    shutil.rmtree(course / "autograded" / "good")  # made again by this run's merge
    nobody = pwd.getpwnam("nobody")
    for path in (course, *course.rglob("*")):
        os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
    aifw = Path(os.sys.executable).parent / "aifw"
    res = subprocess.run([str(aifw), "grade", gc.ASSIGNMENT, "--student", "good", "--local", "1",
                          "--runs-dir", str(runs), "--no-feedback", "--no-reports"],
                         cwd=course, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = " ".join(res.stdout.split())
    assert "grading 1 submission(s) of tiny" in out
    assert "ML101_2026 is not a course of the site file" in out  # so no learners' progress is sent
    [run] = (runs / "ML101_2026").iterdir()
    assert json.loads((run / "run.json").read_text())["course"] == "ML101_2026"
    assert json.loads((run / "results" / "good" / "status.json").read_text())["state"] == "graded"
    assert (course / "autograded" / "good" / gc.ASSIGNMENT).stat().st_uid == nobody.pw_uid
    assert gc.totals(course)["good"] == gc.MAX_SCORE


def _sandbox_processes(uid_floor: int = 2_000_000) -> list[int]:
    """Pids of processes running as a throwaway grading uid (the default sandbox_uid_base and above)."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and (_uid_of(p) or 0) >= uid_floor]


def test_stopping_a_run_leaves_no_submission_code_running():
    """Ctrl-C on `aifw grade`: the orchestrator stops its workers (SIGTERM), and each worker cleans up the
    sandbox of the submission in hand: neither its kernel nor a process it started on its own (which the
    kernel's parent poller would leave behind) outlives the run."""
    import signal
    import time

    assert _sandbox_processes() == [], "a sandboxed process of an earlier test still runs"
    base = Path(tempfile.mkdtemp(prefix="aifw-grade-stop-"))  # the sandbox uid must traverse it
    base.chmod(0o711)
    course = gc.make_course(base / "course")
    gc.submit(course, "napper", gc.answer(course, squares=(
        "import subprocess, time\nsubprocess.Popen(['/bin/sleep', '600'], start_new_session=True)\ntime.sleep(600)")))
    aifw = Path(os.sys.executable).parent / "aifw"
    proc = subprocess.Popen(
        [str(aifw), "grade", "aif-foundations", gc.ASSIGNMENT, "--course-dir", str(course), "--runs-dir",
         str(base / "runs"), "--local", "1", "--cell-timeout", "600", "--timeout", "900"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_sandbox_processes()) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it was stopped:\n{proc.communicate()[0][-3000:]}")
        assert len(_sandbox_processes()) >= 2, "the kernel and its sleep never ran as a throwaway uid"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "the workers were stopped" in out
    deadline = time.monotonic() + 15
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _sandbox_processes() == [], "the submission's code outlived the run"
