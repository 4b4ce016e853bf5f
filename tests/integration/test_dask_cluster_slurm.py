"""dask_cluster() against the real Slurm: the workers are Slurm jobs spread over the compute nodes, they reach
the scheduler at this machine's address towards the nodes, they compute the right result, and their jobs
are gone after close. Once with the kernel on the login node (this process), once inside a job on a
compute node (as in a session: a network namespace with only lo and the node's address).

Which Slurm: the one `sinfo` answers from in this environment (SLURM_CONF honoured); otherwise, when running as
root, the test stack's (the `stack` fixture of tests/conftest.py); otherwise the tests skip, saying why.
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys
import time

import pytest

from aifw.extensions.kernel.dask_cluster import dask_cluster
from aifw.slurm import BatchJob, BatchScript, SlurmClient
from aifw_testing import run_batch_job

pytestmark = pytest.mark.integration

ACTIVE = {"RUNNING", "PENDING", "CONFIGURING", "SUSPENDED"}


def _squeue_state(job_id: str) -> str:
    """The job's state as squeue shows it ('' when squeue no longer lists it)."""
    tasks = SlurmClient(bin_dir=None).job_tasks_sync(str(job_id))
    return tasks[0].state if tasks else ""


def _wait_until_gone(job_ids: list[str], seconds: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {j: _squeue_state(j) for j in job_ids}
        if not any(s in ACTIVE for s in states.values()):
            break
        time.sleep(0.5)
    return states


def _two_node_partition(slurm):
    part = slurm.default_partition
    if len(part.usable_nodes) < 2:
        pytest.skip(f"partition {part.name} has {len(part.usable_nodes)} node(s) that take jobs: "
                    "Dask across nodes needs the cluster mode's two")
    return part


def test_workers_on_two_nodes_reach_the_scheduler_and_compute(slurm, tmp_path):
    from dask.distributed import Client

    def where_am_i() -> dict:  # defined here, so that it travels to the workers by value
        import os

        return {"node": os.environ.get("SLURMD_NODENAME"), "job": os.environ.get("SLURM_JOB_ID")}

    part = _two_node_partition(slurm)
    addresses = {n.name: n.address for n in part.usable_nodes}
    cluster = dask_cluster(n_workers=2, partition=part.name, backend="slurm", cores=1, memory="512MiB",
                           walltime="00:05:00", log_directory=str(tmp_path / "logs"))
    job_ids: list[str] = []
    try:
        assert cluster.aifw_backend == "slurm"
        host = cluster.scheduler_address.removeprefix("tcp://").rsplit(":", 1)[0]
        if not all(ipaddress.ip_address(a).is_loopback for a in addresses.values()):
            assert not ipaddress.ip_address(host).is_loopback, cluster.scheduler_address
        client = Client(cluster)
        try:
            client.wait_for_workers(2, timeout=90)
            job_ids = sorted(str(job.job_id) for job in cluster.workers.values() if job.job_id)
            assert len(job_ids) == 2, cluster.workers
            where = client.run(where_am_i)  # {worker address: where it runs}
            assert sorted(w["job"] for w in where.values()) == job_ids  # each worker inside its own job
            assert {w["node"] for w in where.values()} == set(addresses), where  # both nodes
            for worker, w in where.items():  # each worker listens on its own node's address
                assert worker.removeprefix("tcp://").rsplit(":", 1)[0] == addresses[w["node"]], where
            assert all(_squeue_state(j) == "RUNNING" for j in job_ids)
            # one share of the work on each worker, summed here
            parts = [client.submit(lambda lo, hi: sum(i * i for i in range(lo, hi)), lo, lo + 500, workers=[w])
                     for lo, w in zip((0, 500), where)]
            assert sum(client.gather(parts)) == sum(i * i for i in range(1000))
        finally:
            client.close()
    finally:
        cluster.close()
    states = _wait_until_gone(job_ids)
    assert all(s in {"", "COMPLETING", "CANCELLED", "COMPLETED"} for s in states.values()), states


# Runs inside a batch job on a compute node, as a notebook in a session would.
_FROM_A_NODE = """
import json, os, sys
from dask.distributed import Client
from aifw.extensions.kernel.dask_cluster import dask_cluster

cluster = dask_cluster(n_workers=2, partition=sys.argv[1], backend="slurm", cores=1, memory="512MiB",
                       walltime="00:05:00", log_directory=sys.argv[2], quiet=True)
try:
    with Client(cluster) as client:
        client.wait_for_workers(2, timeout=90)
        nodes = client.run(lambda: os.environ.get("SLURMD_NODENAME"))
        totals = [client.submit(sum, range(100), workers=[w], pure=False).result(timeout=60) for w in nodes]
        report = {"scheduler": cluster.scheduler_address, "here": os.environ.get("SLURMD_NODENAME"),
                  "worker_nodes": sorted(nodes.values()), "totals": totals}
finally:
    cluster.close()
with open(sys.argv[3], "w") as fh:
    json.dump(report, fh)
"""


def test_a_kernel_on_a_compute_node_gets_workers_on_both_nodes(slurm, tmp_path):
    part = _two_node_partition(slurm)
    addresses = {n.name: n.address for n in part.usable_nodes}
    program, report = tmp_path / "from_a_node.py", tmp_path / "report.json"
    program.write_text(_FROM_A_NODE)
    job = BatchJob(job_name="aifw-test-dask-node", time_minutes=5, partition=part.name,
                   output=str(tmp_path / "job-%j.out"), chdir=str(tmp_path))
    body = BatchScript(command=[sys.executable, str(program), part.name, str(tmp_path / "logs"), str(report)],
                       purpose="dask test", exports={"SLURM_CONF": os.environ["SLURM_CONF"]})
    log = run_batch_job(job, body, within_s=180, logs=tmp_path)
    assert report.exists(), f"the job left no report; its log:\n{log[-3000:]}"
    got = json.loads(report.read_text())
    assert got["here"] in addresses, got
    # the scheduler listens on the kernel's node's own address, which the other node reaches
    assert got["scheduler"].removeprefix("tcp://").rsplit(":", 1)[0] == addresses[got["here"]], got
    # the first worker goes to the least loaded node (LLN), the one without this job: across the network
    assert set(got["worker_nodes"]) <= set(addresses) and set(got["worker_nodes"]) - {got["here"]}, got
    assert got["totals"] == [4950, 4950], got  # each worker computed its share


def test_the_probe_sees_the_default_partition_with_nodes_that_take_jobs(slurm):
    default = slurm.default_partition
    assert default is not None and default.default, slurm.partitions
    assert default.usable_nodes and all(n.address for n in default.usable_nodes)


def test_unknown_partition_names_the_real_ones(slurm):
    with pytest.raises(ValueError) as err:
        dask_cluster(partition="no-such-partition-xyz", quiet=True)
    for name in slurm.partitions:
        assert name in str(err.value)
