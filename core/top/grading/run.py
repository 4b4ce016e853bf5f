"""The orchestrator of ``aifw grade``: plan a run, start the workers (Slurm array or local processes),
merge results into the gradebook as they arrive, and hand back what happened to every submission."""
from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .jail import chown_tree
from .rundir import Limits, RunDir, RunSpec, Status

# nbgrader ids that reach paths and batch scripts: conservative.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}$")


class GradeError(Exception):
    """Grading cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class GradeOptions:
    course: str
    assignment: str
    course_dir: Path
    runs_root: Path
    students: tuple[str, ...] | None = None  # None: every collected submission
    force: bool = False  # also those already autograded (and not newer)
    mode: str = "local"  # local | slurm
    workers: int = 2
    partition: str | None = None
    limits: Limits = Limits()
    jail: bool = True
    feedback: bool = True  # nbgrader generate_feedback for every merged submission
    reports: bool = True  # CSV exports, plot, HTML report
    uid_base: int = 2_000_000
    python: str = sys.executable
    slurm_conf: str | None = None
    slurm_bin: str = "/usr/bin"


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


# --------------------------------------------------------------------------- planning (pure-ish)
def check_id(kind: str, value: str) -> str:
    if not ID_PATTERN.fullmatch(value or ""):
        raise GradeError(f"{kind} {value!r} is not a valid id (letters, digits, '_', '.', '@', '-'; at most 100)")
    return value


def assignment_notebooks(course_dir: Path, assignment: str) -> list[str]:
    """The assignment's notebook ids from the gradebook, read-only."""
    db = course_dir / "gradebook.db"
    if not db.is_file():
        raise GradeError(f"{course_dir} has no gradebook.db: is this an nbgrader course directory? "
                         "(nbgrader generate_assignment creates it)")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "select n.name from notebook n join assignment a on n.assignment_id = a.id where a.name = ? order by n.name",
            (assignment,),
        ).fetchall()
        known = [r[0] for r in con.execute("select name from assignment order by name")]
    finally:
        con.close()
    if not rows:
        raise GradeError(
            f"assignment {assignment!r} is not in the gradebook of {course_dir.name} "
            f"(known: {', '.join(known) or 'none'}); run `nbgrader generate_assignment {assignment}` first"
        )
    return [r[0] for r in rows]


def _timestamp(folder: Path) -> str | None:
    try:
        return (folder / "timestamp.txt").read_text().strip() or None
    except OSError:
        return None


def find_submissions(course_dir: Path, assignment: str, students: tuple[str, ...] | None, force: bool) -> tuple[list[str], list[str], list[str]]:
    """(to grade, already graded and unchanged, problems) among the collected submissions."""
    submitted = course_dir / "submitted"
    found = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir() and not p.is_symlink())
    problems = []
    if students is not None:
        missing = [s for s in students if s not in found]
        problems += [f"{s}: no collected submission of {assignment} (nbgrader collect first)" for s in missing]
        found = [s for s in found if s in students]
    todo, done = [], []
    for student in found:
        if not ID_PATTERN.fullmatch(student):
            problems.append(f"{student!r}: not a valid student id; skipped")
            continue
        graded = course_dir / "autograded" / student / assignment
        if force or not graded.exists():
            todo.append(student)
            continue
        new, old = _timestamp(submitted / student / assignment), _timestamp(graded)
        (todo if new and old and new > old else done).append(student)
    return todo, done, problems


def _copy_regular(src: Path, dest: Path) -> None:
    """Copy a submission: regular files and folders only; symbolic links are dropped, never followed."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in os.scandir(src):
        if entry.is_symlink():
            continue
        target = dest / entry.name
        if entry.is_dir(follow_symlinks=False):
            _copy_regular(Path(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, target)


def prepare_run(opts: GradeOptions, students: list[str], notebooks: list[str]) -> RunDir:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    run = RunDir(opts.runs_root / opts.course / f"{opts.assignment}-{stamp}-{secrets.token_hex(3)}")
    for parent in (opts.runs_root, opts.runs_root / opts.course):
        parent.mkdir(parents=True, exist_ok=True)
        parent.chmod(0o711)
    run.create()
    # Each run gets its own block of throwaway uids, so two runs at once never share one.
    uid_base = opts.uid_base + secrets.randbelow(10_000) * 100_000 if opts.jail else None
    spec = RunSpec(course=opts.course, assignment=opts.assignment, students=tuple(students), notebooks=tuple(notebooks),
                   limits=opts.limits, uid_base=uid_base, python=opts.python)
    fd = os.open(run.spec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(spec.to_json())
    # a consistent copy of the gradebook even if the formgrader writes to it right now
    src = sqlite3.connect(f"file:{opts.course_dir / 'gradebook.db'}?mode=ro", uri=True)
    dst = sqlite3.connect(run.gradebook)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    run.gradebook.chmod(0o600)
    source = opts.course_dir / "source" / opts.assignment
    if source.is_dir():
        _copy_regular(source, run.source)
    for student in students:
        _copy_regular(opts.course_dir / "submitted" / student / opts.assignment, run.submitted(student))
    return run


def batch_script(run: RunDir, *, workers: int, partition: str | None, memory_mb: int, minutes: int,
                 python: str, job_name: str, slurm_conf: str | None) -> str:
    """The Slurm array job: one worker per task, each pulling submissions until none is left."""
    for value in (job_name, partition or "x"):
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise GradeError(f"{value!r} cannot go into a batch script")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{workers - 1}",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=1",
        f"#SBATCH --mem={memory_mb}M",
        f"#SBATCH --time={minutes}",
        f"#SBATCH --output={run.logs}/worker-%a.log",
    ]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if slurm_conf:
        lines.append(f"export SLURM_CONF={shlex.quote(slurm_conf)}")
    lines.append(f"exec {shlex.quote(python)} -m aifw.grading.worker {shlex.quote(str(run.path))}")
    return "\n".join(lines) + "\n"


def job_minutes(n_submissions: int, workers: int, limits: Limits, partition_max: int | None = None) -> int:
    """Time limit of each array task: its share of submissions at their time limit, plus start-up, within
    the partition's MaxTime (a longer request would pend forever: PartitionTimeLimit)."""
    per_worker = -(-n_submissions // max(1, workers))
    wanted = max(5, min(24 * 60, -(-per_worker * limits.submission_timeout_s // 60) + 5))
    return min(wanted, partition_max) if partition_max else wanted


# --------------------------------------------------------------------------- workers
class Workers:
    """Started workers; `alive()` says whether any may still report a result."""

    def alive(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    describe = ""
    note = ""  # a warning about the run, said once at the start
    state = ""  # what the workers are doing, in words, for the progress line ("" when nothing to say)


def describe_array(job_id: str, lines: list[list[str]]) -> str:
    """squeue's "STATE|REASON" lines of an array job, in words."""
    running = sum(1 for ln in lines if ln[0] == "RUNNING")
    pending = [ln for ln in lines if ln[0] == "PENDING"]
    parts = []
    if running:
        parts.append(f"{running} task(s) running")
    if pending:
        reason = pending[0][1] if len(pending[0]) > 1 else ""
        parts.append("tasks pending" + (f" ({reason})" if reason and reason != "None" else ""))
    return f"Slurm job {job_id}: " + ", ".join(parts) if parts else ""


class LocalWorkers(Workers):
    def __init__(self, run: RunDir, n: int, python: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "AIFW_ADMIN"))}
        self.procs = []
        for i in range(n):
            log = open(run.logs / f"worker-{i}.log", "ab")  # noqa: SIM115 - owned by the child
            self.procs.append(subprocess.Popen(
                [python, "-m", "aifw.grading.worker", str(run.path), "--name", f"local-{i}"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            ))
            log.close()
        self.describe = f"{n} local worker process(es)"

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


class SlurmWorkers(Workers):
    def __init__(self, run: RunDir, opts: GradeOptions, n_submissions: int):
        from aifw.slurm import SlurmClient, SlurmRejected, SlurmError

        self.client = SlurmClient(bin_dir=opts.slurm_bin, conf=opts.slurm_conf, timeout_s=20)
        minutes = job_minutes(n_submissions, opts.workers, opts.limits, self._partition_max(opts.partition))
        if minutes < job_minutes(n_submissions, opts.workers, opts.limits):
            self.note = (f"partition {opts.partition} allows {minutes} min per job: if submissions run long, some may "
                         "not be reached (they are reported as not run); more --workers share the load")
        script = batch_script(
            run, workers=opts.workers, partition=opts.partition,
            memory_mb=opts.limits.memory_mb + 1024, minutes=minutes,
            python=opts.python, job_name=f"aifw-grade-{opts.course}", slurm_conf=opts.slurm_conf,
        )
        (run.path / "job.sh").write_text(script)
        try:
            res = self.client.run_sync("sbatch", ["--parsable"], stdin=script)
        except SlurmRejected as err:
            raise GradeError(f"Slurm refused the grading job: {err}") from None
        except SlurmError as err:
            raise GradeError(f"Slurm is not reachable ({err}); start it, or grade without it: --local N") from None
        self.job_id = res.stdout.strip().split(";")[0]
        self.describe = f"Slurm array job {self.job_id} ({opts.workers} task(s) on partition {opts.partition or 'default'})"
        self._last_check = 0.0
        self._alive = True

    def _partition_max(self, partition: str | None) -> int | None:
        from aifw.slurm import SlurmError, parse_partitions

        try:
            parts = parse_partitions(self.client.run_sync("scontrol", ["show", "partition", "-o"]).stdout, "")
        except SlurmError:
            return None  # sbatch will say what is wrong
        for part in parts:
            if (partition and part.name == partition) or (not partition and part.default):
                return part.max_time_minutes
        return None

    def alive(self) -> bool:
        from aifw.slurm import SlurmError, SlurmUnavailable

        if time.monotonic() - self._last_check < 2:
            return self._alive
        self._last_check = time.monotonic()
        try:
            res = self.client.run_sync("squeue", ["-h", "-j", self.job_id, "-o", "%T|%r"])
            lines = [ln.split("|", 1) for ln in res.stdout.split("\n") if ln.strip()]
            self._alive = bool(lines)
            self.state = describe_array(self.job_id, lines)
        except SlurmUnavailable:
            pass  # no answer is not "gone"
        except SlurmError:
            self._alive = False  # invalid job id: finished and forgotten
        return self._alive

    def stop(self) -> None:
        from aifw.slurm import SlurmError

        try:
            self.client.run_sync("scancel", [self.job_id])
        except SlurmError:
            pass


# --------------------------------------------------------------------------- the merge service
class MergeClient:
    """The merge service (aifw.grading.merge), started as the owner of the course directory."""

    def __init__(self, opts: GradeOptions, run: RunDir):
        import pwd

        st = opts.course_dir.stat()
        self.owner_uid, self.owner_gid = st.st_uid, st.st_gid
        argv = [opts.python, "-m", "aifw.grading.merge", str(opts.course_dir), str(run.path / "results"),
                opts.assignment, opts.course]
        if os.geteuid() == 0 and st.st_uid != 0:
            try:
                owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                raise GradeError(f"{opts.course_dir} is owned by uid {st.st_uid}, which has no account") from None
            runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
            if runuser is None:
                raise GradeError("runuser (util-linux) is needed to write the gradebook as its owner; install util-linux")
            argv = [runuser, "-u", owner, "--", *argv]
        else:
            self.owner_uid = None  # no hand-over needed: the service runs as this user
        env = {"PATH": f"{Path(opts.python).parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "HOME": str(opts.course_dir), "MPLCONFIGDIR": str(run.path / "results" / ".mpl")}
        self.log = open(run.logs / "merge.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, text=True, cwd=str(opts.course_dir))

    def hand_over(self, folder: Path) -> None:
        """Let the service read a result folder (written by root)."""
        if self.owner_uid is not None:
            chown_tree(folder, self.owner_uid, self.owner_gid)

    def request(self, **req) -> dict:
        import json

        if self.proc.poll() is not None:
            raise GradeError(f"the merge service ended (exit {self.proc.returncode}); see {self.log.name}")
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise GradeError(f"the merge service ended; see {self.log.name}")
        return json.loads(line)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.log.close()


# --------------------------------------------------------------------------- the run
ProgressFn = Callable[[Outcome, int, int], None]


def grade(opts: GradeOptions, progress: ProgressFn | None = None, say: Callable[[str], None] = print,
          poll_s: float = 0.5) -> GradeResult:
    """Grade what needs grading: one Outcome per submission, then feedback and reports."""
    check_id("course", opts.course)
    check_id("assignment", opts.assignment)
    if not opts.course_dir.is_dir():
        raise GradeError(f"no course directory at {opts.course_dir}")
    if opts.jail and os.geteuid() != 0:
        raise GradeError("aifw grade runs each submission as a throwaway uid, which needs root: run it with sudo "
                         "(or pass --no-sandbox to run students' code as yourself, like plain nbgrader)")
    notebooks = assignment_notebooks(opts.course_dir, opts.assignment)
    todo, done, problems = find_submissions(opts.course_dir, opts.assignment, opts.students, opts.force)
    for p in problems:
        say(f"skipped: {p}")
    if done:
        say(f"{len(done)} submission(s) already graded and unchanged (use --force to grade them again)")
    if not todo:
        return GradeResult(None, [])
    run = prepare_run(opts, todo, notebooks)
    merger = MergeClient(opts, run)
    try:
        workers: Workers = (SlurmWorkers(run, opts, len(todo)) if opts.mode == "slurm"
                            else LocalWorkers(run, min(opts.workers, len(todo)), opts.python))
    except BaseException:
        merger.close()
        raise
    say(f"grading {len(todo)} submission(s) of {opts.assignment} with {workers.describe}; run directory {run.path}")
    if workers.note:
        say(workers.note)
    outcomes: dict[str, Outcome] = {}

    def record(out: Outcome) -> None:
        outcomes[out.student] = out
        if progress:
            progress(out, len(outcomes), len(todo))

    workers_gone_at = None
    shown_state = ""
    try:
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

        merged = [o.student for o in outcomes.values() if o.merged]
        for student, (score, max_score) in merger.request(op="scores", students=merged).get("scores", {}).items():
            outcomes[student].score, outcomes[student].max_score = score, max_score
        result = GradeResult(run, [outcomes[s] for s in todo])
        if opts.feedback and merged:
            say(f"generating feedback for {len(merged)} submission(s)")
            result.feedback_failed = [s for s in merged if not merger.request(op="feedback", student=s).get("ok")]
        if opts.reports:
            answer = merger.request(op="reports", outcomes=[o.to_json() for o in result.outcomes],
                                    logs=str(run.path / "results"))
            if answer.get("ok"):
                result.reports = Path(answer["path"])
            else:
                say(f"the reports could not be written: {answer.get('error')}")
        return result
    except KeyboardInterrupt:
        workers.stop()
        raise
    finally:
        merger.close()
