"""nbgrader on a private course directory: its Python API run quietly, releases, leak scans, results.

The grading proof (:mod:`aifw.courses.proof`), publishing (:mod:`aifw.courses.publish`) and the grading
benchmark (``benchmarks/grade_parallel.py``) all drive nbgrader the same way: a throw-away course
directory ``root`` with ``root/source/<module>/``, nbgrader's own API on it (``NbGraderAPI``: the same
converters and preprocessors as the ``nbgrader`` command line, without its import cost per call), and the
release in ``root/release/<module>/``.

    >>> api = nbgrader_api(root)
    >>> copy_sources(course, [module_id], root)
    >>> release = generate_release(api, module_id)       # raises ReleaseFailed with nbgrader's log
    >>> scan_release(release, source_notebooks)           # [] or every leaked secret line
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from aifw import gradebook

from . import cells as nbcells

if TYPE_CHECKING:
    from nbgrader.apps import NbGraderAPI

    from .catalogue import Course

#: Files of a source folder that are never copied into a course directory.
IGNORED = (".ipynb_checkpoints", "__pycache__")


class ReleaseFailed(RuntimeError):
    """nbgrader's ``generate_assignment`` failed; ``log`` is the end of what it said."""

    def __init__(self, module_id: str, log: str):
        self.module_id = module_id
        self.log = log
        super().__init__(f"nbgrader could not release {module_id}:\n{log}")


def nbgrader_api(root: Path, *, cell_timeout: int = 60, kill_kernels: bool = True) -> "NbGraderAPI":
    """nbgrader's API on the private course directory `root`.

    Every notebook cell runs under `cell_timeout` seconds (then it is interrupted). `kill_kernels`: kill
    each kernel as soon as its notebook has run - a kernel that started a local Dask cluster takes ~2.5 s
    to exit gracefully; with Slurm workers the graceful exit is what cancels their jobs, so pass False.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    # nbgrader's gradebook runs `alembic` from PATH: make this interpreter's scripts findable
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")

    root = Path(root)
    cfg = Config()
    cfg.CourseDirectory.root = str(root)
    cfg.Exchange.root = str(root / "exchange")  # unused, but nbgrader checks it is writable
    (root / "exchange").mkdir(parents=True, exist_ok=True)
    cfg.Execute.timeout = int(cell_timeout)
    cfg.Execute.interrupt_on_timeout = True
    cfg.Execute.startup_timeout = 120
    if kill_kernels:
        cfg.Execute.shutdown_kernel = "immediate"
    cfg.NbGraderAPI.log_level = "WARN"
    return NbGraderAPI(config=cfg)


@contextlib.contextmanager
def environment(updates: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernels (they inherit this process's), and restore them after."""
    saved = dict(os.environ)
    os.environ.update(updates)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send this process's stderr (and the kernels', which inherit it) to a file: nbgrader, SQLAlchemy
    and the kernels write warnings there that would tear a progress display apart."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def copy_sources(course: "Course", module_ids: Iterable[str], root: Path) -> None:
    """Copy the modules' nbgrader source folders into the course directory `root` (``root/source/<id>``)."""
    for module_id in module_ids:
        shutil.copytree(course.source_dir(module_id), Path(root) / "source" / module_id,
                        ignore=shutil.ignore_patterns(*IGNORED))


def log_tail(result: dict, lines: int = 15) -> str:
    """The last lines of what an NbGraderAPI call said (its ``error`` and ``log``)."""
    text = (result.get("error") or "") + "\n" + (result.get("log") or "")
    return "\n".join([ln for ln in text.strip().splitlines() if ln.strip()][-lines:])


def generate_release(api: "NbGraderAPI", module_id: str) -> Path:
    """nbgrader's release of one module (``generate_assignment``); raises :class:`ReleaseFailed`."""
    result = api.generate_assignment(module_id, force=True)
    if not result.get("success"):
        raise ReleaseFailed(module_id, log_tail(result))
    return Path(api.coursedir.root) / "release" / module_id


def scan_release(release_dir: Path, source_nbs: Iterable[dict]) -> list[str]:
    """Every leak in the release: ``"<file>: <secret line>"`` for each solution, model answer or hidden
    test line of the source notebooks that is found in any file of the release."""
    secrets = nbcells.secret_lines(source_nbs)
    leaks = []
    for path in sorted(p for p in release_dir.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if path.suffix == ".ipynb":
            try:
                text = nbcells.notebook_text(json.loads(text)) + "\n" + text
            except ValueError:
                pass
        for leak in nbcells.find_leaks(text, secrets):
            leaks.append(f"{path.relative_to(release_dir)}: {leak}")
    return leaks


# --------------------------------------------------------------------------- reading results
@dataclass(frozen=True)
class CellResult:
    """One cell of an autograded notebook: its score from the gradebook, its errors from the outputs."""

    grade_id: str | None
    index: int
    kind: str
    score: float | None
    max_score: float
    errors: tuple[str, ...]  # "Ename: evalue" of error outputs, "stderr: ..." of stderr output

    @property
    def raised(self) -> bool:
        return any(not e.startswith("stderr: ") for e in self.errors)

    @property
    def timed_out(self) -> bool:
        return any("CellTimeoutError" in e or "timed out" in e.lower() for e in self.errors)


def _cell_errors(cell: dict) -> tuple[str, ...]:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            out.append(f"{o.get('ename')}: {o.get('evalue')}".strip())
        elif o.get("output_type") == "stream" and o.get("name") == "stderr":
            text = "".join(o.get("text", "")) if isinstance(o.get("text"), list) else o.get("text", "")
            out.append("stderr: " + " ".join(text.split())[:200])
    return tuple(out)


def read_scores(root: Path, module_id: str) -> dict[tuple[str, str, str], tuple[float | None, float]]:
    """(student, notebook id, grade id) -> (score, max score) of every graded cell of the module, read once
    from the gradebook (`aifw.gradebook`); a cell that waits for a manual grade has no score."""
    return {(r.student, r.notebook, r.cell): (r.score if not r.needs_manual_grade else None, r.max_score)
            for r in gradebook.cell_scores(Path(root), module_id)}


def read_results(root: Path, module_id: str, student: str, notebook: str, source_nb: dict,
                 grades: dict[tuple[str, str, str], tuple[float | None, float]]) -> tuple[list[CellResult], bool]:
    """Per cell of one autograded notebook: score (from `grades`, see read_scores) and errors (from the
    outputs); and whether the autograded notebook exists."""
    stem = Path(notebook).stem
    scores = {cell: score for (who, nb, cell), score in grades.items() if who == student and nb == stem}
    graded_path = Path(root) / "autograded" / student / module_id / notebook
    graded = nbcells.read_notebook(graded_path) if graded_path.exists() else {"cells": []}
    kinds = {c.grade_id: c.kind for c in nbcells.cells(source_nb) if c.grade_id}
    out = []
    for i, cell in enumerate(graded.get("cells", [])):
        gid = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        kind = kinds.get(gid, "plain") if gid else "plain"
        score, max_score = scores.get(gid, (None, 0.0)) if gid else (None, 0.0)
        out.append(CellResult(gid, i, kind, score, max_score, _cell_errors(cell)))
    return out, graded_path.exists()


# --------------------------------------------------------------------------- running a notebook as a learner
def run_notebook(nb: dict, cwd: Path, *, cell_timeout: int = 60, kill_kernel: bool = True) -> dict:
    """Run a notebook the way a learner's session does (no nbgrader: a release has no hidden test), in
    the folder `cwd`, every cell under `cell_timeout` seconds; a cell that raises does not stop the
    rest. Returns the executed notebook (its outputs)."""
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.reads(json.dumps(nb), as_version=4)
    kernel = ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name") or "python3"
    client = NotebookClient(node, timeout=int(cell_timeout), kernel_name=kernel, allow_errors=True,
                            interrupt_on_timeout=True, startup_timeout=120,
                            shutdown_kernel="immediate" if kill_kernel else "graceful",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return json.loads(nbformat.writes(node))
