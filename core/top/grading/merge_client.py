"""The orchestrator's side of the merge service (`aifw.grading.merge`): starts it as the owner of the course
directory, hands it each result folder, and asks it one JSON request per line (merge, scores, feedback,
reports). The service is the only writer of the course directory; this side writes nothing there.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from .jail import chown_tree
from .plan import GradeError, GradeOptions
from .rundir import RunDir


class MergeClient:
    """The merge service, started as the owner of the course directory."""

    def __init__(self, opts: GradeOptions, run: RunDir):
        st = opts.course_dir.stat()
        self.owner_uid, self.owner_gid = st.st_uid, st.st_gid
        argv = [opts.python, "-m", "aifw.grading.merge", str(opts.course_dir), str(run.results_root),
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
               "HOME": str(opts.course_dir), "MPLCONFIGDIR": str(run.results_root / ".mpl")}
        self.log = open(run.merge_log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, text=True, cwd=str(opts.course_dir))

    def hand_over(self, folder: Path) -> None:
        """Let the service read a result folder (written by root)."""
        if self.owner_uid is not None:
            chown_tree(folder, self.owner_uid, self.owner_gid)

    def request(self, **req) -> dict:
        """One request, its answer; GradeError when the service has ended."""
        if self.proc.poll() is not None:
            raise GradeError(f"the merge service ended (exit {self.proc.returncode}); see {self.log.name}")
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise GradeError(f"the merge service ended; see {self.log.name}") from None
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
            self.proc.wait()
        self.log.close()
