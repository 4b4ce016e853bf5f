"""The one place grades are written: stock nbgrader ``autograde`` on the course directory, with its
``Execute`` step replaced by ``UseExecuted``, which takes the outputs from the worker's executed notebook.

Everything else is nbgrader's own: the submission and its timestamp, the sanitize step (test cells and
their metadata restored from the gradebook), ``SaveAutoGrades``, late penalties, the autograded copy and
its permissions. So the gradebook has the same form as after a serial ``nbgrader autograde``. Before any
output is taken, every cell of the executed notebook must match the sanitized submission (type and
source): a result that does not belong to this submission is refused, not merged.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode
from traitlets.config import Config

from .sanitize import configure


# nbgrader's gradebook trips SQLAlchemy 2 warnings on every submission: noise in a trainer's terminal
warnings.filterwarnings("ignore", module=r"nbgrader\.api")


class ResultMismatch(Exception):
    """The executed notebook is not the sanitized submission (changed since the snapshot?)."""


class UseExecuted(Preprocessor):
    """Replaces nbgrader's Execute in the merge: outputs come from ``<results_dir>/<student>/<notebook>.ipynb``."""

    enabled = Bool(True)  # nbconvert preprocessors are off by default; this one must always run
    results_dir = Unicode("", help="Folder of the run's results (one folder per student).").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        path = Path(self.results_dir) / info["student"] / f"{info['notebook']}.ipynb"
        if not path.is_file():
            raise ResultMismatch(f"no executed notebook for {info['student']}/{info['notebook']}")
        executed = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
        if len(executed.cells) != len(nb.cells):
            raise ResultMismatch(
                f"{info['notebook']}: {len(executed.cells)} cells were executed but the submission has "
                f"{len(nb.cells)}; grade it again"
            )
        for index, (mine, theirs) in enumerate(zip(nb.cells, executed.cells)):
            if mine.cell_type != theirs.cell_type or mine.source != theirs.source:
                raise ResultMismatch(
                    f"{info['notebook']}: cell {index + 1} differs from the executed one (the submission "
                    "changed while it was graded?); grade it again"
                )
            if mine.cell_type == "code":
                mine.outputs = theirs.get("outputs", [])
                mine.execution_count = theirs.get("execution_count")
                if "execution" in theirs.get("metadata", {}):
                    mine.metadata["execution"] = theirs.metadata["execution"]
        return nb, resources


def merge_config(course_dir: Path, results_dir: Path) -> Config:
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    steps = [UseExecuted if cls is Execute else cls for cls in Autograde.class_traits()["autograde_preprocessors"].default()]
    if UseExecuted not in steps:
        raise RuntimeError("nbgrader's autograde has no Execute step to replace; this nbgrader version is not supported")
    cfg = Config()
    cfg.CourseDirectory.root = str(course_dir)
    cfg.Autograde.autograde_preprocessors = steps
    cfg.UseExecuted.results_dir = str(results_dir)
    cfg.NbGraderAPI.log_level = "WARN"
    return configure(cfg)


class Merger:
    """Merges finished submissions into the course's gradebook, one at a time, in this process."""

    def __init__(self, course_dir: Path, results_dir: Path, assignment: str):
        from nbgrader.apps import NbGraderAPI

        # nbgrader's gradebook runs `alembic` from PATH: make this interpreter's scripts findable
        bindir = str(Path(sys.executable).parent)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        self.course_dir = course_dir
        self.assignment = assignment
        self.api = NbGraderAPI(config=merge_config(course_dir, results_dir))

    def merge(self, student: str) -> tuple[bool, str]:
        """(ok, nbgrader's error log when not ok)."""
        result = self.api.autograde(self.assignment, student, force=True, create=True)
        if result.get("success"):
            return True, ""
        text = (result.get("error") or "") + "\n" + (result.get("log") or "")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        mismatch = [ln for ln in lines if "ResultMismatch" in ln or "grade it again" in ln]
        return False, "\n".join((mismatch or lines)[-8:])

    def feedback(self, student: str) -> bool:
        return bool(self.api.generate_feedback(self.assignment, student, force=True).get("success"))

    def scores(self, students: list[str]) -> dict[str, tuple[float, float]]:
        from aifw.gradebook import submission_scores

        return submission_scores(self.course_dir, self.assignment, students)


# --------------------------------------------------------------------------- the merge service
# The orchestrator runs as root; what it writes in the course directory (gradebook, autograded copies,
# feedback, reports) is written by this service, started as the directory's owner (the course's grader
# account), so nothing the grader account controls there (a symlink, say) can turn into a root write.
# Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.

def serve(course_dir: Path, results_dir: Path, assignment: str, course: str, inp=None, out=None) -> int:
    import json
    import time

    inp = inp or sys.stdin
    out = out or sys.stdout
    merger = Merger(course_dir, results_dir, assignment)
    for line in inp:
        req = json.loads(line)
        op = req.get("op")
        t0 = time.perf_counter()
        try:
            if op == "merge":
                ok, err = merger.merge(req["student"])
                answer = {"ok": ok, "error": err}
            elif op == "feedback":
                answer = {"ok": merger.feedback(req["student"])}
            elif op == "scores":
                answer = {"ok": True, "scores": merger.scores(req["students"])}
            elif op == "reports":
                from .report import write_reports

                path = write_reports(course_dir, course, assignment, req["outcomes"], req.get("logs"))
                answer = {"ok": True, "path": str(path)}
            elif op == "quit":
                return 0
            else:
                answer = {"ok": False, "error": f"unknown request {op!r}"}
        except Exception as err:  # noqa: BLE001 - answered, the service goes on
            answer = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        answer["seconds"] = time.perf_counter() - t0
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m aifw.grading.merge")
    p.add_argument("course_dir", type=Path)
    p.add_argument("results_dir", type=Path)
    p.add_argument("assignment")
    p.add_argument("course")
    args = p.parse_args(argv)
    # Answers go to the real stdout; anything a library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(args.course_dir, args.results_dir, args.assignment, args.course, out=answers)


if __name__ == "__main__":
    sys.exit(main())
