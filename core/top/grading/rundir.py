"""The private run directory of one `aifw grade` run, shared by the orchestrator and its workers: its
layout (`RunDir`) and the records kept in it (`RunSpec`, `Limits`, `Status`). Nothing else here.

    <runs root>/<course>/ 0711 root
    <run>/                0711 root: traversable (sandboxes reach their own work dir), not listable;
                          named <assignment>-<UTC time>-<random>
      run.json            what to grade and how (RunSpec), written once (0600)
      job.sh              the Slurm array job's batch script (Slurm runs only)
      gradebook.db        snapshot of the course's gradebook (0600: test cells, other students' grades)
      source/             the assignment's source files other than notebooks (copied next to each submission)
      submitted/<student> the submissions as collected (snapshot)
      claims/<student>    made (mkdir, atomic) by the worker that grades it
      results/<student>/  executed notebooks, status.json, <student>.log and <student>.kernel.log, written
                          by the (trusted) worker, then handed to the merge service (the course
                          directory's owner)
      logs/               worker-<n>.log (Slurm: worker-<array task>.log), merge.log
      work/<student>/     0700, owned by the submission's throwaway uid: its working copy
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

STATUS = "status.json"


@dataclass(frozen=True)
class Limits:
    cell_timeout_s: int = 30
    submission_timeout_s: int = 300
    memory_mb: int = 4096
    max_processes: int = 64
    fsize_mb: int = 1024


@dataclass(frozen=True)
class RunSpec:
    course: str
    assignment: str
    students: tuple[str, ...]
    notebooks: tuple[str, ...]  # notebook ids of the assignment in the gradebook
    limits: Limits = Limits()
    uid_base: int | None = 2_000_000  # None: no jail (kernels run as the grader's user)
    python: str = ""

    def uid_for(self, student: str) -> int | None:
        if self.uid_base is None:
            return None
        return self.uid_base + self.students.index(student)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        data = json.loads(text)
        data["students"] = tuple(data["students"])
        data["notebooks"] = tuple(data["notebooks"])
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


@dataclass
class Status:
    """What a worker reports for one submission (written by trusted code only)."""

    student: str
    state: str  # graded | timed_out | failed
    reasons: list[str] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)  # executed notebooks in results/<student>/
    worker: str = ""
    prepare_s: float = 0.0
    kernel_start_s: float = 0.0
    execution_s: float = 0.0

    @classmethod
    def read(cls, path: Path) -> "Status":
        return cls(**json.loads(path.read_text()))

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def new(cls, runs_root: Path, course: str, assignment: str) -> "RunDir":
        """A new, empty run directory of `assignment` under `runs_root` (made, with its modes)."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        for parent in (runs_root, runs_root / course):
            parent.mkdir(parents=True, exist_ok=True)
            parent.chmod(0o711)
        run = cls(runs_root / course / f"{assignment}-{stamp}-{secrets.token_hex(3)}")
        run.create()
        return run

    @property
    def spec_file(self) -> Path:
        return self.path / "run.json"

    @property
    def job_script(self) -> Path:
        return self.path / "job.sh"

    @property
    def gradebook(self) -> Path:
        return self.path / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    @property
    def source(self) -> Path:
        return self.path / "source"

    def submitted(self, student: str) -> Path:
        return self.path / "submitted" / student

    def claim(self, student: str) -> Path:
        return self.path / "claims" / student

    @property
    def results_root(self) -> Path:
        return self.path / "results"

    def results(self, student: str) -> Path:
        return self.results_root / student

    def status_file(self, student: str) -> Path:
        return self.results(student) / STATUS

    def work(self, student: str) -> Path:
        return self.path / "work" / student

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def worker_log(self, name: str) -> Path:
        """worker-<name>.log (`name` may be sbatch's %a: the array task)."""
        return self.logs / f"worker-{name}.log"

    @property
    def merge_log(self) -> Path:
        return self.logs / "merge.log"

    def spec(self) -> RunSpec:
        return RunSpec.from_json(self.spec_file.read_text())

    def write_spec(self, spec: RunSpec) -> None:
        """run.json, once (0600): a second write is an error."""
        fd = os.open(self.spec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(spec.to_json())

    def create(self) -> None:
        """The directory tree with its modes (the caller is the trusted grader, normally root)."""
        self.path.mkdir(parents=True, exist_ok=False, mode=0o700)
        for sub, mode in (("source", 0o700), ("submitted", 0o700), ("claims", 0o700), ("results", 0o711),
                          ("logs", 0o700), ("work", 0o711)):
            (self.path / sub).mkdir(mode=mode)
            (self.path / sub).chmod(mode)
        self.path.chmod(0o711)

    def finished(self) -> dict[str, Status]:
        """student -> Status of every submission a worker has finished. A status file that cannot be read
        is skipped: its submission counts as not finished (reported as not run if no worker writes it)."""
        out = {}
        for status in self.results_root.glob(f"*/{STATUS}"):
            try:
                st = Status.read(status)
            except (OSError, ValueError, TypeError):
                continue
            out[st.student] = st
        return out
