"""What an nbgrader *source* notebook contains: its graded cells, exercises and secret text.

Pure functions over notebook JSON (no nbgrader import, no kernel), shared by the catalogue (exercise
counts, consistency checks) and the grading proof (building submissions, scanning releases for leaks).

Cell kinds (nbgrader metadata ``cell.metadata.nbgrader``):

- ``solution``: ``solution: true, grade: false`` - the learner writes code here;
- ``test``: ``grade: true, solution: false`` code cell - autograded (all points, or 0 on an error);
- ``manual``: ``grade: true, solution: true`` - a manually graded answer (reflection);
- ``plain``: everything else (prose, setup, demos).

An *exercise* is a manually graded answer, or the group of test cells that follow one solution cell
(each test cell belongs to the nearest solution cell above it). Several test cells per exercise give
partial credit.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
#: Texts that must never appear in anything a learner receives.
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")

CellKind = Literal["solution", "test", "manual", "plain"]


@dataclass(frozen=True)
class Cell:
    index: int
    cell_type: str  # "code" | "markdown" | "raw"
    kind: CellKind
    grade_id: str | None
    points: float
    source: str


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``key`` is the solution cell's grade_id (or the manual cell's own id)."""

    key: str
    tests: tuple[str, ...]  # grade_ids of its autograded test cells (empty for a manual answer)
    manual: bool
    points: float


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def cell_kind(cell: dict) -> CellKind:
    meta = (cell.get("metadata") or {}).get("nbgrader") or {}
    solution, grade = bool(meta.get("solution")), bool(meta.get("grade"))
    if grade and solution:
        return "manual"
    if grade and cell.get("cell_type") == "code":
        return "test"
    if solution:
        return "solution"
    return "plain"


def read_notebook(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def cells(nb: dict) -> list[Cell]:
    """The notebook's cells, classified."""
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        out.append(
            Cell(
                index=i,
                cell_type=cell.get("cell_type", "code"),
                kind=cell_kind(cell),
                grade_id=meta.get("grade_id"),
                points=float(meta.get("points") or 0),
                source=_source(cell),
            )
        )
    return out


def exercises(nb: dict) -> list[Exercise]:
    """Group the graded cells into exercises (see the module docstring)."""
    groups: dict[str, list[Cell]] = {}
    manual: list[Cell] = []
    current: str | None = None
    order: list[str] = []
    for c in cells(nb):
        if c.kind == "solution" and c.cell_type == "code":
            current = c.grade_id or f"cell-{c.index}"
        elif c.kind == "test":
            key = current or (c.grade_id or f"cell-{c.index}")
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(c)
        elif c.kind == "manual":
            manual.append(c)
            order.append(c.grade_id or f"cell-{c.index}")
    result = []
    manual_by_key = {(m.grade_id or f"cell-{m.index}"): m for m in manual}
    for key in order:
        if key in manual_by_key:
            m = manual_by_key[key]
            result.append(Exercise(key, (), True, m.points))
        else:
            tests = groups[key]
            result.append(Exercise(key, tuple(t.grade_id or "" for t in tests), False, sum(t.points for t in tests)))
    return result


def _regions(text: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """Split ``text`` into (lines inside begin/end regions, lines outside); marker lines are dropped."""
    inside, outside, depth = [], [], 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(begin):
            depth += 1
            continue
        if stripped.startswith(end):
            depth = max(0, depth - 1)
            continue
        (inside if depth else outside).append(line)
    return inside, outside


def strip_solution_markers(text: str) -> str:
    """The instructor's answer as a learner would type it: the solution markers removed."""
    lines = [ln for ln in text.splitlines() if ln.strip() not in (SOLUTION_BEGIN, SOLUTION_END)]
    return "\n".join(lines)


def secret_and_public_lines(nb: dict, solutions: bool = True) -> tuple[list[str], set[str]]:
    """Lines a learner must not see (hidden tests, model answers and - unless ``solutions=False`` - the
    code of solution cells) and lines they do see."""
    secret: list[str] = []
    public: set[str] = set()
    for c in cells(nb):
        text = c.source
        hidden, rest = _regions(text, HIDDEN_BEGIN, HIDDEN_END)
        secret.extend(hidden)
        rest_text = "\n".join(rest)
        if c.kind in ("solution", "manual"):
            keep = solutions or c.kind == "manual"
            if SOLUTION_BEGIN in rest_text:
                sol, visible = _regions(rest_text, SOLUTION_BEGIN, SOLUTION_END)
                if keep:
                    secret.extend(sol)
                public.update(normalise(ln) for ln in visible)
            elif keep:  # nbgrader replaces the whole cell by the stub
                secret.extend(rest)
        else:
            public.update(normalise(ln) for ln in rest)
    return secret, public


_WS = re.compile(r"\s+")


def normalise(line: str) -> str:
    return _WS.sub(" ", line).strip()


def is_meaningful(line: str, min_chars: int = 12) -> bool:
    """Long enough and with enough letters/digits that finding it elsewhere is not a coincidence."""
    text = normalise(line)
    return len(text) >= min_chars and sum(ch.isalnum() for ch in text) >= 4


def secret_lines(nbs: Iterable[dict], solutions: bool = True) -> list[str]:
    """Normalised secret lines of several notebooks, minus lines that also appear in learner-visible text."""
    secrets: list[str] = []
    public: set[str] = set()
    for nb in nbs:
        s, p = secret_and_public_lines(nb, solutions)
        secrets.extend(s)
        public |= p
    public_text = "\n".join(sorted(public))
    seen: set[str] = set()
    out = []
    for line in secrets:
        n = normalise(line)
        # a line the learner sees anyway (in a hint, a visible test, the prose) is no secret
        if n and n not in seen and is_meaningful(n) and n not in public_text:
            seen.add(n)
            out.append(n)
    return out


def notebook_text(nb: dict) -> str:
    """Every string in a notebook (sources, outputs, metadata), one after another."""
    parts: list[str] = []

    def walk(obj) -> None:
        if isinstance(obj, str):
            parts.append(obj)
        elif isinstance(obj, list):
            if obj and all(isinstance(x, str) for x in obj):
                parts.append("".join(obj))
            else:
                for x in obj:
                    walk(x)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                parts.append(str(k))
                walk(v)

    walk(nb)
    return "\n".join(parts)


def find_leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """nbgrader markers and secret lines found anywhere in ``text`` (whitespace-insensitive).

    Substring matching is safe because :func:`secret_lines` already dropped every line that occurs in
    the learner-visible text of the sources (the release is made of that text plus nbgrader's stubs)."""
    flat = " ".join(normalise(ln) for ln in text.splitlines())
    leaks = [m for m in MARKERS if m in text]
    leaks += [s for s in secrets if s in flat]
    return leaks
