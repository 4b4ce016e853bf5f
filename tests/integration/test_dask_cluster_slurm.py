"""dask_cluster() against the real Slurm: a worker really runs as a Slurm job, and the job is gone after close.

Which Slurm: the one `sinfo` answers from in this environment (SLURM_CONF honoured); otherwise, when running as
root, the test stack's (the `stack` fixture of tests/conftest.py); otherwise the tests skip, saying why.
"""
from __future__ import annotations

import os
import time

import pytest

from aifw.extensions.kernel.dask_cluster import dask_cluster
from aifw.slurm import SlurmClient

pytestmark = pytest.mark.integration


def _squeue_state(job_id: str) -> str:
    """The job's state as squeue shows it ('' when squeue no longer lists it)."""
    tasks = SlurmClient(bin_dir=None).job_tasks_sync(str(job_id))
    return tasks[0].state if tasks else ""


def test_worker_runs_as_a_slurm_job_and_is_cancelled_on_close(slurm, tmp_path):
    from dask.distributed import Client

    cluster = dask_cluster(
        n_workers=1, backend="slurm", cores=1, memory="512MiB", walltime="00:05:00",
        log_directory=str(tmp_path / "logs"),
    )
    job_ids: list[str] = []
    try:
        assert cluster.aifw_backend == "slurm"
        assert cluster.scheduler_address.startswith("tcp://")
        client = Client(cluster)
        try:
            client.wait_for_workers(1, timeout=90)
            job_ids = [str(job.job_id) for job in cluster.workers.values() if job.job_id]
            assert len(job_ids) == 1, cluster.workers
            # the task runs inside that Slurm job
            seen = client.submit(lambda: os.environ.get("SLURM_JOB_ID"), pure=False).result(timeout=60)
            assert seen == job_ids[0]
            assert _squeue_state(job_ids[0]) == "RUNNING"
            assert client.submit(sum, range(10)).result(timeout=60) == 45
        finally:
            client.close()
    finally:
        cluster.close()

    deadline = time.monotonic() + 30
    states = {}
    while time.monotonic() < deadline:
        states = {j: _squeue_state(j) for j in job_ids}
        if not any(s in {"RUNNING", "PENDING", "CONFIGURING", "SUSPENDED"} for s in states.values()):
            break
        time.sleep(0.5)
    assert all(s in {"", "COMPLETING", "CANCELLED", "COMPLETED"} for s in states.values()), states


def test_the_probe_sees_the_default_partition_with_nodes_that_take_jobs(slurm):
    default = slurm.default_partition
    assert default is not None and default.default, slurm.partitions
    assert default.usable_nodes and all(n.address for n in default.usable_nodes)


def test_unknown_partition_names_the_real_ones(slurm):
    with pytest.raises(ValueError) as err:
        dask_cluster(partition="no-such-partition-xyz", quiet=True)
    for name in slurm.partitions:
        assert name in str(err.value)
