"""The main loop of ``aifw grade``, top to bottom: plan the run (`plan`), start the merge service
(`merge_client`) and the workers (`workers`), merge each result as it arrives, then ask for scores,
feedback and reports; hand back what happened to every submission (`Outcome`, `GradeResult`).

Every exit that is not a normal finish (an error, the merge service ending, Ctrl-C) stops the workers
first; if they cannot be stopped, `WorkersNotStopped` says which and how to stop them by hand.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .merge_client import MergeClient
from .plan import GradeError, GradeOptions, plan_run, prepare_run
from .rundir import RunDir, Status
from .workers import Workers, WorkersNotStopped, start_workers

__all__ = ["GradeError", "GradeOptions", "GradeResult", "Outcome", "WorkersNotStopped", "follow", "grade"]


@dataclass
class Outcome:
    """What happened to one submission, for the summary."""

    student: str
    state: str  # graded | timed_out | failed | not_run
    reasons: list[str] = field(default_factory=list)
    merged: bool = False
    score: float | None = None
    max_score: float | None = None
    status: Status | None = None
    merge_s: float = 0.0  # time spent writing it into the gradebook (nbgrader autograde without execution)

    def to_json(self) -> dict:
        st = self.status
        times = None if st is None else {
            "prepare_s": round(st.prepare_s, 3), "kernel_start_s": round(st.kernel_start_s, 3),
            "execution_s": round(st.execution_s, 3), "merge_s": round(self.merge_s, 3)}
        return {"student": self.student, "state": self.state, "reasons": self.reasons, "merged": self.merged,
                "score": self.score, "max_score": self.max_score, "worker": st.worker if st else None, "times": times}


@dataclass
class GradeResult:
    run: RunDir | None
    outcomes: list[Outcome]
    reports: Path | None = None
    feedback_failed: list[str] = field(default_factory=list)


ProgressFn = Callable[[Outcome, int, int], None]
SayFn = Callable[[str], None]


def grade(opts: GradeOptions, progress: ProgressFn | None = None, say: SayFn = print,
          poll_s: float = 0.5) -> GradeResult:
    """Grade what needs grading: one Outcome per submission, then feedback and reports."""
    plan = plan_run(opts)
    for p in plan.problems:
        say(f"skipped: {p}")
    if plan.done:
        say(f"{len(plan.done)} submission(s) already graded and unchanged (use --force to grade them again)")
    if not plan.todo:
        return GradeResult(None, [])
    run = prepare_run(opts, plan)
    merger = MergeClient(opts, run)
    try:
        workers = start_workers(run, opts, len(plan.todo))
        return follow(opts, run, list(plan.todo), workers, merger, progress, say, poll_s)
    finally:
        merger.close()


def follow(opts: GradeOptions, run: RunDir, todo: list[str], workers: Workers, merger: MergeClient,
           progress: ProgressFn | None = None, say: SayFn = print, poll_s: float = 0.5) -> GradeResult:
    """Follow started workers to the end: merge, then scores, feedback and reports. On any other exit the
    workers are stopped, and the exit goes on (WorkersNotStopped instead when they could not be)."""
    try:
        say(f"grading {len(todo)} submission(s) of {opts.assignment} with {workers.describe}; run directory {run.path}")
        if workers.note:
            say(workers.note)
        outcomes = _merge_as_they_come(run, todo, workers, merger, progress, say, poll_s)
        return _finish(opts, run, todo, outcomes, merger, say)
    except BaseException as err:
        try:
            workers.stop()
        except WorkersNotStopped as failure:
            why = "interrupted" if isinstance(err, KeyboardInterrupt) else str(err) or type(err).__name__
            raise WorkersNotStopped(f"{why}; {failure}") from err
        if not isinstance(err, KeyboardInterrupt):  # the command line says it for Ctrl-C
            say(f"the workers were stopped ({workers.describe})")
        raise


def _merge_as_they_come(run: RunDir, todo: list[str], workers: Workers, merger: MergeClient,
                        progress: ProgressFn | None, say: SayFn, poll_s: float) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}

    def record(out: Outcome) -> None:
        outcomes[out.student] = out
        if progress:
            progress(out, len(outcomes), len(todo))

    workers_gone_at = None
    shown_state = ""
    while len(outcomes) < len(todo):
        finished = run.finished()
        new = [s for s in todo if s in finished and s not in outcomes]
        for student in new:
            st = finished[student]
            out = Outcome(student, st.state, list(st.reasons), status=st)
            merger.hand_over(run.results(student))
            if st.notebooks:
                answer = merger.request(op="merge", student=student)
                out.merge_s = answer.get("seconds", 0.0)
                out.merged = bool(answer.get("ok"))
                if not out.merged:
                    err = (answer.get("error") or "").strip()
                    out.state = "failed"
                    out.reasons.append("not merged: " + (err.splitlines()[-1] if err else "nbgrader failed"))
            record(out)
        if new:
            continue
        if workers.alive():
            workers_gone_at = None
            if workers.state and workers.state != shown_state and not outcomes:
                say(workers.state)  # until results come, say what Slurm is doing
            shown_state = workers.state
        elif workers_gone_at is None:
            workers_gone_at = time.monotonic()  # one more look: a last status may be landing
        elif time.monotonic() - workers_gone_at > 2:
            for student in todo:
                if student not in outcomes:
                    record(Outcome(student, "not_run", [f"the worker ended before grading it; see {run.logs}/worker-*.log"]))
            break
        time.sleep(poll_s)
    return outcomes


def _finish(opts: GradeOptions, run: RunDir, todo: list[str], outcomes: dict[str, Outcome], merger: MergeClient,
            say: SayFn) -> GradeResult:
    merged = [o.student for o in outcomes.values() if o.merged]
    for student, (score, max_score) in merger.request(op="scores", students=merged).get("scores", {}).items():
        outcomes[student].score, outcomes[student].max_score = score, max_score
    result = GradeResult(run, [outcomes[s] for s in todo])
    if opts.feedback and merged:
        say(f"generating feedback for {len(merged)} submission(s)")
        result.feedback_failed = [s for s in merged if not merger.request(op="feedback", student=s).get("ok")]
    if opts.reports:
        answer = merger.request(op="reports", outcomes=[o.to_json() for o in result.outcomes],
                                logs=str(run.results_root))
        if answer.get("ok"):
            result.reports = Path(answer["path"])
        else:
            say(f"the reports could not be written: {answer.get('error')}")
    return result
