"""The grading proof: show, through nbgrader itself, that every module of a course grades as intended.

For one module (= one nbgrader assignment) :func:`prove_module` builds a throw-away nbgrader course
directory and, using nbgrader's own Python API (``NbGraderAPI``; the same converters and preprocessors
as the ``nbgrader`` command line, without its import cost per call):

1. ``consistency`` - course.yaml, the source notebooks and wrong_answers.yaml agree; every autograded test
   cell has exactly one planted wrong answer (:func:`aifw.courses.catalogue.module_problems`);
2. ``release`` - ``generate_assignment`` succeeds and no file of the release contains a solution, a model
   answer, a hidden test or an nbgrader marker;
3. ``solution`` - the instructor's answers typed into the release autograde to full marks on every test
   cell, and no cell of those notebooks raises;
4. ``blank`` - the untouched release autogrades to 0 points, without crashing or hanging (every cell
   runs under a timeout);
5. ``wrong:<test grade_id>`` - for each planted wrong answer: that test cell scores 0 and every other
   autograded test cell of the module keeps full marks;
6. ``cheat:<kind>`` - for each way of passing tests without solving (always-equal objects, patched
   comparisons, outputs hard-coded to what the learner can see; :mod:`aifw.courses.submissions`): the
   cheating student, all of the module's notebooks at once, earns at most 10% of the module's autograded
   points. The hard-coded cheat learns its literals from a *probe*: the solution run on the release, as a
   learner would run it (no hidden test), with every call of an answer's functions recorded. Each cheat
   is one more student with all of the module's notebooks; ``ProofOptions(cheats=False)`` leaves them out
   (and the probe), for a quick proof of the other checks.

What belongs to no module is checked once per course by :func:`prove_course_files` (a section of
wrong_answers.yaml for a module that course.yaml does not list); ``aifw courses check`` reports it as a
failed ``consistency`` check of ``<course>/(course files)``.

The nbgrader machinery (the API on a private course directory, releases, the leak scan, reading scores)
is :mod:`aifw.courses.nbgrader_tools`; the fake students are built by :mod:`aifw.courses.submissions`.

All submissions of a module are fake students of ONE course directory, graded one after another by
in-process ``autograde`` calls; independent modules run in parallel worker processes (one more than the
CPUs: a worker idles while its kernel starts). A planted wrong answer submits only the notebook it changes:
the module's other notebooks would be byte-identical to the ``solution`` student's, whose full marks are
checked there, and notebooks run in separate kernels. Every cell runs under ``ProofOptions.cell_timeout``.

The notebooks run with ``AIFW_DASK_BACKEND=local`` unless ``ProofOptions.dask_backend`` says otherwise
(exercises must grade the same on Slurm and locally; the local cluster keeps the proof hermetic), and each
kernel is then killed as soon as its notebook has run (a kernel that started Dask needs ~2.5 s to exit).

    >>> from aifw.courses.catalogue import find_course
    >>> from aifw.courses.proof import prove
    >>> course = find_course("aif-foundations")
    >>> proofs = prove([(course, m.id) for m in course.modules])
    >>> [(p.module, p.ok) for p in proofs]
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import queue as queue_mod
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from . import cells as nbcells
from .catalogue import Course, CourseFileError, load_course, module_problems, unlisted_module_problems
from .nbgrader_tools import (
    CellResult,
    ReleaseFailed,
    copy_sources,
    environment,
    generate_release,
    log_tail,
    nbgrader_api,
    read_results,
    read_scores,
    run_notebook,
    scan_release,
    stderr_to,
)
from .submissions import (
    BLANK_STUDENT,
    CHEAT_KINDS,
    CHEAT_LIMIT,
    SOLUTION_STUDENT,
    Recording,
    build_submissions,
    probe_notebook,
)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class CheckOutcome:
    """One check of one module: ok or failed, what was expected, what happened, what to fix."""

    course: str
    module: str
    check: str
    ok: bool
    expected: str
    got: str
    message: str = ""


@dataclass
class ModuleProof:
    course: str
    module: str
    checks: list[CheckOutcome] = field(default_factory=list)
    seconds: float = 0.0
    workdir: str | None = None  # kept course directory (ProofOptions.keep)
    timings: dict[str, float] = field(default_factory=dict)  # step (release, student) -> seconds

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class ProofOptions:
    cell_timeout: int = 60  # seconds per cell before nbgrader interrupts it
    jobs: int | None = None  # worker processes; default: min(#modules, #CPUs + 1)
    keep: bool = False  # keep the nbgrader course directories (for debugging)
    workdir: str | None = None  # where to put them; default: a temporary directory
    dask_backend: str | None = "local"  # AIFW_DASK_BACKEND for the notebooks; None = inherit
    single_threaded: bool = True  # OMP/MKL threads = 1 in the kernels (parallel proofs share the CPUs)
    only_wrong: tuple[str, ...] | None = None  # plant only these test cells' wrong answers (quick iteration)
    cheats: bool = True  # try the cheating students (and run the probe they need); False: skip ``cheat:*``


ProgressFn = Callable[[str, str], None]  # (module key, what just finished)


def module_key(course_id: str, module_id: str) -> str:
    return f"{course_id}/{module_id}"


def planned_steps(course: Course, module_id: str, only_wrong: Iterable[str] | None = None,
                  cheats: bool = True) -> int:
    """Progress units of a module: 1 (release) + one per submission (+ 1 for the cheats' probe)."""
    entries = course.wrong_answers.get(module_id, {}) if _safe_wrong(course) else {}
    wanted = set(only_wrong) if only_wrong is not None else None
    extra = 1 + len(CHEAT_KINDS) if cheats else 0
    return 3 + extra + sum(1 for v in entries.values() for t in v if wanted is None or t in wanted)


def _safe_wrong(course: Course) -> bool:
    try:
        course.wrong_answers
    except CourseFileError:
        return False
    return True


# --------------------------------------------------------------------------- the course's own files
#: The pseudo-module under which problems that belong to no module are reported.
COURSE_FILES = "(course files)"


def prove_course_files(course: Course) -> ModuleProof:
    """The checks of a course that belong to no module (no nbgrader run): wrong_answers.yaml has a
    section only for modules that course.yaml lists. An unreadable wrong_answers.yaml is reported by
    every module's ``consistency`` check instead."""
    problems = unlisted_module_problems(course)
    proof = ModuleProof(course.id, COURSE_FILES)
    proof.checks.append(CheckOutcome(
        course.id, COURSE_FILES, "consistency", not problems,
        "wrong_answers.yaml names only modules of course.yaml",
        "agree" if not problems else f"{len(problems)} problem(s)",
        "\n".join(p.message for p in problems),
    ))
    return proof


# --------------------------------------------------------------------------- the proof of one module
def _fmt_score(x: float | None) -> str:
    return "manual" if x is None else f"{x:g}"


def _cell_label(c: CellResult) -> str:
    return c.grade_id or f"cell {c.index}"


def _errors_text(c: CellResult) -> str:
    return f" ({'; '.join(c.errors)[:300]})" if c.errors else ""


def prove_module(
    course_root: str | Path,
    module_id: str,
    options: ProofOptions = ProofOptions(),
    progress: ProgressFn | None = None,
) -> ModuleProof:
    """Run every check of one module through nbgrader; never raises for a failing course."""
    start = time.monotonic()
    course = load_course(course_root)
    key = module_key(course.id, module_id)
    proof = ModuleProof(course.id, module_id)

    last = [time.monotonic()]

    def step(what: str) -> None:
        now = time.monotonic()
        proof.timings[what] = round(now - last[0], 2)
        last[0] = now
        if progress:
            progress(key, what)

    def add(check: str, ok: bool, expected: str, got: str, message: str = "") -> None:
        proof.checks.append(CheckOutcome(course.id, module_id, check, ok, expected, got, "" if ok else message))

    problems = module_problems(course, module_id)
    add(
        "consistency",
        not problems,
        "course.yaml, notebooks and wrong_answers.yaml agree",
        "agree" if not problems else f"{len(problems)} problem(s)",
        "\n".join(p.message for p in problems),
    )
    module = course.module(module_id)
    missing = [n for n in module.notebooks if not course.notebook_path(module_id, n).is_file()]
    if missing:
        add("release", False, "a release", "not generated", f"missing notebooks: {', '.join(missing)}")
        proof.seconds = time.monotonic() - start
        return proof

    env: dict[str, str] = {}
    if options.dask_backend:
        env["AIFW_DASK_BACKEND"] = options.dask_backend
    if options.single_threaded:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

    base = Path(options.workdir) if options.workdir else None
    if base:
        base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"proof-{course.id}-{module_id}-", dir=base))
    try:
        with environment(env), stderr_to(root / "stderr.log"):
            _prove_in(root, course, module_id, options, add, step)
    finally:
        if options.keep:
            proof.workdir = str(root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    proof.seconds = time.monotonic() - start
    return proof


def _prove_in(root: Path, course: Course, module_id: str, options: ProofOptions, add, step) -> None:
    module = course.module(module_id)
    copy_sources(course, [module_id], root)
    api = nbgrader_api(root, cell_timeout=options.cell_timeout, kill_kernels=options.dask_backend == "local")

    # ---- release
    try:
        release_dir = generate_release(api, module_id)
    except ReleaseFailed as err:
        add("release", False, "generate_assignment succeeds", "it failed", err.log)
        return
    sources = {n: nbcells.read_notebook(course.notebook_path(module_id, n)) for n in module.notebooks}
    absent = [n for n in module.notebooks if not (release_dir / n).is_file()]
    leaks = scan_release(release_dir, sources.values())
    files = sum(1 for p in release_dir.rglob("*") if p.is_file())
    add(
        "release",
        not leaks and not absent,
        "no solution, model answer or hidden test in any release file",
        f"{files} file(s) scanned, {len(leaks)} leak(s)" + (f", missing {absent}" if absent else ""),
        "these solution/hidden-test lines reach the learner's copy - keep them inside solution cells "
        "(### BEGIN/END SOLUTION) or hidden-test regions (### BEGIN/END HIDDEN TESTS), and do not ship "
        "files that contain them:\n" + "\n".join(leaks[:20]),
    )
    step("release")
    if absent:
        return

    # ---- the probe: the solution run on the release, recording what the learner can see
    recordings, probe_failed = None, {}
    if options.cheats:
        recordings, probe_failed = _probe(root, module_id, module.notebooks, sources, release_dir, options)
        step("probe")

    # ---- submissions, graded one after another in this course directory
    subs = build_submissions(course, module_id, release_dir, options.only_wrong, recordings)
    crashed: dict[str, str] = {}
    for sub in subs:
        folder = root / "submitted" / sub.student / module_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, nb in sub.notebooks.items():
            (folder / name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
        res = api.autograde(module_id, sub.student, force=True, create=True)
        if not res.get("success"):
            crashed[sub.student] = log_tail(res)
        step(sub.student)

    grades = read_scores(root, module_id)
    results = {
        sub.student: {
            n: read_results(root, module_id, sub.student, n, sources[n], grades)[0] for n in sub.notebooks
        }
        for sub in subs
    }

    # ---- solution: full marks on every test cell, no cell raises
    sol = results[SOLUTION_STUDENT]
    lost = [c for cs in sol.values() for c in cs if c.kind == "test" and (c.score or 0) < c.max_score]
    raising = [c for cs in sol.values() for c in cs if c.kind != "test" and c.raised]
    tests = [c for cs in sol.values() for c in cs if c.kind == "test"]
    got_points = sum(c.score or 0 for c in tests)
    max_points = sum(c.max_score for c in tests)
    msg = []
    if SOLUTION_STUDENT in crashed:
        msg.append("autograde failed:\n" + crashed[SOLUTION_STUDENT])
    msg += [
        f"test cell {_cell_label(c)} gives the solution {_fmt_score(c.score)}/{c.max_score:g}{_errors_text(c)}"
        for c in lost
    ]
    msg += [f"{_cell_label(c)} raises in the solution{_errors_text(c)}" for c in raising]
    add(
        "solution",
        not msg,
        f"{max_points:g}/{max_points:g} autograded points, no cell raises",
        f"{got_points:g}/{max_points:g}" + (f", {len(raising)} cell(s) raise" if raising else ""),
        "fix the solution or its tests:\n" + "\n".join(msg),
    )

    # ---- blank: 0 points, no crash, no hang
    blank = results[BLANK_STUDENT]
    graded = [c for cs in blank.values() for c in cs if c.kind in ("test", "manual")]
    scored = [c for c in graded if (c.score or 0) > 0]
    hung = [c for cs in blank.values() for c in cs if c.timed_out]
    msg = []
    if BLANK_STUDENT in crashed:
        msg.append("autograde crashed on the blank release:\n" + crashed[BLANK_STUDENT])
    msg += [
        f"{_cell_label(c)} gives {c.score:g}/{c.max_score:g} to the blank notebook - its test must "
        "exercise the learner's code" for c in scored
    ]
    msg += [f"{_cell_label(c)} hangs on the blank notebook (timed out after {options.cell_timeout} s)" for c in hung]
    add(
        "blank",
        not msg,
        "0 points, no crash, no cell timed out",
        f"{sum((c.score or 0) for c in graded):g} points" + (", crashed" if BLANK_STUDENT in crashed else "")
        + (f", {len(hung)} timeout(s)" if hung else ""),
        "\n".join(msg),
    )

    # ---- each cheat earns at most CHEAT_LIMIT of the points
    for outcome in cheat_checks(subs, results, crashed, probe_failed, max_points):
        add(*outcome)

    # ---- each planted wrong answer loses exactly its test cell
    sol_by_nb = {n: {c.grade_id: c for c in cs if c.kind == "test"} for n, cs in sol.items()}
    for sub in subs:
        if sub.planted is None:
            continue
        nb_name, test_id, cell_id = sub.planted
        cells_ = [c for c in results[sub.student][nb_name] if c.kind == "test"]
        target = next((c for c in cells_ if c.grade_id == test_id), None)
        others_lost = [c for c in cells_ if c.grade_id != test_id and (c.score or 0) < c.max_score]
        hung = [c for c in results[sub.student][nb_name] if c.timed_out]
        msg = []
        if sub.student in crashed:
            msg.append("autograde failed:\n" + crashed[sub.student])
        if target is None:
            msg.append(f"test cell {test_id} was not graded")
        elif (target.score or 0) != 0:
            msg.append(
                f"the wrong answer planted in {cell_id} still passes {test_id} "
                f"({_fmt_score(target.score)}/{target.max_score:g}): strengthen {test_id}'s tests "
                "(a hidden assert that this answer fails), or plant an answer that is really wrong"
            )
        for c in others_lost:
            if sol_by_nb[nb_name].get(c.grade_id) and (sol_by_nb[nb_name][c.grade_id].score or 0) < c.max_score:
                continue  # already reported by the solution check
            msg.append(
                f"the wrong answer for {test_id} also fails {c.grade_id}{_errors_text(c)}: make {c.grade_id} "
                f"independent of {cell_id} (give it its own inputs), or plant an answer that breaks only {test_id}"
            )
        for c in hung:
            msg.append(f"{_cell_label(c)} hangs with the wrong answer (timed out after {options.cell_timeout} s)")
        got = "not graded" if target is None else f"{test_id} {_fmt_score(target.score)}/{target.max_score:g}"
        if others_lost:
            got += ", also lost: " + ", ".join(c.grade_id or "?" for c in others_lost)
        add(
            f"wrong:{test_id}",
            not msg,
            f"{test_id} 0/{target.max_score if target else 0:g}, every other test cell full marks",
            got,
            f"{nb_name}: " + "\n".join(msg),
        )


def _probe(root: Path, module_id: str, notebooks, sources: dict, release_dir: Path,
           options: ProofOptions) -> tuple[dict[str, Recording], dict[str, str]]:
    """Run each notebook's probe (:func:`aifw.courses.submissions.probe_notebook`) in a copy of the
    release, as a learner's session would (NBGRADER_EXECUTION set, so no widget waits). Returns the
    recordings, and for each notebook whose probe did not finish, why (the hard-coded cheat of that
    notebook then knows nothing, and its check says so)."""
    folder = root / "probe" / module_id
    shutil.copytree(release_dir, folder)
    out: dict[str, Recording] = {}
    failed: dict[str, str] = {}
    with environment({"NBGRADER_EXECUTION": "autograde"}):
        for name in notebooks:
            target = folder / f"{Path(name).stem}.recording.json"
            nb = probe_notebook(sources[name], nbcells.read_notebook(release_dir / name), str(target))
            try:
                run_notebook(nb, (folder / name).parent, cell_timeout=options.cell_timeout,
                             kill_kernel=options.dask_backend == "local")
                out[name] = Recording.from_json(json.loads(target.read_text(encoding="utf-8")))
            except Exception as err:  # reported by the hard-coded cheat's check
                out[name] = Recording({}, {})
                failed[name] = f"{type(err).__name__}: {err}"[:500]
    return out, failed


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def cheat_checks(subs, results: dict[str, dict[str, list[CellResult]]], crashed: dict[str, str],
                 probe_failed: dict[str, str], max_points: float) -> list[tuple[str, bool, str, str, str]]:
    """``cheat:<kind>`` as (check, ok, expected, got, message), one per cheating student of `subs`:
    it earns at most CHEAT_LIMIT of the module's `max_points` (`results`: student -> notebook -> its
    graded cells; `crashed`: student -> autograde's log; the hard-coded cheat also needs every
    notebook's probe to have run, `probe_failed`: notebook -> why not). Pure."""
    out = []
    for sub in subs:
        if sub.cheat is None:
            continue
        fooled = [(nb, c) for nb, cs in results[sub.student].items() for c in cs
                  if c.kind == "test" and (c.score or 0) > 0]
        earned = sum(c.score or 0 for _, c in fooled)
        blind = probe_failed if sub.cheat == "hard-coded" else {}
        ok = sub.student not in crashed and not blind and earned <= CHEAT_LIMIT * max_points
        msg = []
        if sub.student in crashed:
            msg.append("autograde failed:\n" + crashed[sub.student])
        msg += [f"the probe of {nb} (the solution run on the release, to learn what the learner sees) "
                f"did not finish, so this cheat could not be tried there: {why}" for nb, why in blind.items()]
        if earned > CHEAT_LIMIT * max_points:
            msg.append(
                f"{sub.student} ({CHEAT_WHAT[sub.cheat]}) earns {earned:g} of {max_points:g} autograded points "
                f"({_pct(earned, max_points)}; at most {CHEAT_LIMIT:.0%} allowed). It passes:"
            )
            by_nb: dict[str, list[str]] = {}
            for nb, c in fooled:
                by_nb.setdefault(nb, []).append(f"{_cell_label(c)} ({_fmt_score(c.score)}/{c.max_score:g})")
            msg += [f"  {nb}: {', '.join(cells_)}" for nb, cells_ in by_nb.items()]
            msg.append(CHEAT_FIX[sub.cheat])
        out.append((
            f"cheat:{sub.cheat}",
            ok,
            f"at most {CHEAT_LIMIT:.0%} of {max_points:g} autograded points",
            f"{earned:g}/{max_points:g} ({_pct(earned, max_points)})" + (", crashed" if sub.student in crashed else "")
            + (f", {len(blind)} probe(s) failed" if blind else ""),
            "\n".join(msg),
        ))
    return out


#: What each cheat does, and what makes a test cell resist it, in a course author's words.
CHEAT_WHAT = {
    "always-equal": "every answer is an object equal to anything, every function returns it",
    "patched": "numpy/math/torch comparisons, isinstance and the instant checks patched to always pass; "
               "every answer None",
    "hard-coded": "every answer the literal the solution gave for the inputs the learner can see",
}
CHEAT_FIX = {
    "always-equal": "In those cells, check the type exactly before comparing (`assert type(x) is float`, "
                    "`type(t) is torch.Tensor and t.dtype == torch.float32 and tuple(t.shape) == (3,)`), "
                    "and compare values with plain arithmetic (`abs(x - 0.25) < 1e-6`), not with == alone.",
    "patched": "In those cells, do not rely on numpy.allclose, math.isclose, torch.allclose/equal or "
               "isinstance alone: check `type(x) is ...` and compare with plain Python arithmetic (or the "
               "strict helpers of aifw.extensions.kernel.checks, which refuse patched functions).",
    "hard-coded": "In those cells, add hidden asserts on fresh inputs the learner never sees (call the "
                  "learner's functions with new arguments), so that an answer typed in from the visible "
                  "checks fails them.",
}


# --------------------------------------------------------------------------- many modules, in parallel
_QUEUE = None


def _init_worker(q) -> None:
    global _QUEUE
    _QUEUE = q


def _worker(course_root: str, module_id: str, options: ProofOptions) -> ModuleProof:
    def progress(key: str, what: str) -> None:
        if _QUEUE is not None:
            _QUEUE.put((key, what))

    try:
        return prove_module(course_root, module_id, options, progress)
    except Exception as err:  # a bug in the machinery, not in the course: report it, don't lose the rest
        import traceback

        course = Path(course_root).name
        return ModuleProof(
            course,
            module_id,
            [CheckOutcome(course, module_id, "proof", False, "the proof runs", "it crashed",
                          "".join(traceback.format_exception(err))[-3000:])],
        )


def prove(
    targets: list[tuple[Course, str]],
    options: ProofOptions = ProofOptions(),
    progress: ProgressFn | None = None,
    on_done: Callable[[ModuleProof], None] | None = None,
) -> list[ModuleProof]:
    """Prove several (course, module) pairs, in parallel worker processes; results in the given order."""
    # one more worker than CPUs: a worker idles while a kernel starts or a notebook waits (measured on
    # 2 cores: 2 workers ran the 6-module course in 351 s at ~1.1 busy cores, 3 workers in 243 s)
    jobs = options.jobs or min(len(targets), (os.cpu_count() or 1) + 1)
    if not targets:
        return []
    if jobs <= 1 or len(targets) == 1:
        out = []
        for course, module_id in targets:
            p = prove_module(course.root, module_id, options, progress)
            if on_done:
                on_done(p)
            out.append(p)
        return out

    # biggest first, so that the last module to finish is a short one
    order = sorted(range(len(targets)), key=lambda i: -planned_steps(*targets[i], options.only_wrong, options.cheats))
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    results: dict[int, ModuleProof] = {}
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(q,)) as ex:
        futures = {ex.submit(_worker, str(targets[i][0].root), targets[i][1], options): i for i in order}
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            _drain(q, progress)
            for f in done:
                results[futures[f]] = f.result()
                if on_done:
                    on_done(results[futures[f]])
        _drain(q, progress)
    return [results[i] for i in range(len(targets))]


def _drain(q, progress: ProgressFn | None) -> None:
    while True:
        try:
            key, what = q.get_nowait()
        except queue_mod.Empty:
            return
        if progress:
            progress(key, what)
