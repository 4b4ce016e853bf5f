"""`aifw grade` on the real Slurm: the workers are the tasks of one array job, spread over the compute nodes
(cluster mode), and the grades are serial nbgrader's."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import grading_course as gc
from aifw.slurm import SlurmClient

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxed grading switches uids: run as root (make test)")


def test_grading_runs_as_a_slurm_array_and_matches_serial_nbgrader(stack):
    base = Path(tempfile.mkdtemp(prefix="aifw-grade-slurm-"))
    base.chmod(0o711)
    try:
        course = gc.make_course(base / "course")
        for i in range(4):
            gc.submit(course, f"s{i}", gc.answer(course, mean="def mean(xs):\n    return 2" if i % 2 else None))
        serial = gc.copy_course(course, base / "serial")
        gc.nbgrader(serial, "autograde", gc.ASSIGNMENT, "--force")

        aifw = Path(os.sys.executable).parent / "aifw"
        res = subprocess.run(
            [str(aifw), "grade", "aif-foundations", gc.ASSIGNMENT, "--course-dir", str(course),
             "--runs-dir", str(base / "runs"), "--workers", "2", "--partition", "cpu", "--no-feedback",
             "--site", str(stack.stack.site_file)],  # the test stack's Slurm
            capture_output=True, text=True, timeout=240,
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert "Slurm array job" in res.stdout
        run = next((base / "runs" / "aif-foundations").iterdir())
        assert "#SBATCH --array=0-1" in (run / "job.sh").read_text()
        # each result names its worker: "<host>:<SLURM_ARRAY_TASK_ID>"; a node's host name is its Slurm name
        workers = {json.loads((run / "results" / f"s{i}" / "status.json").read_text())["worker"] for i in range(4)}
        assert all(w.split(":")[-1] in {"0", "1"} for w in workers), workers
        nodes = {n.name for n in SlurmClient(bin_dir=None, conf=stack.slurm_conf).nodes_sync() if n.partition == "cpu"}
        hosts = {w.rsplit(":", 1)[0] for w in workers}
        assert hosts <= nodes, (hosts, nodes)
        if len(nodes) >= 2:  # cluster mode: the two tasks ran on two nodes (LLN partitions)
            assert len(hosts) == 2, workers
        assert gc.grades(course) == gc.grades(serial)
        assert gc.totals(course) == {"s0": 6.0, "s1": 3.0, "s2": 6.0, "s3": 3.0}
    finally:
        shutil.rmtree(base, ignore_errors=True)
