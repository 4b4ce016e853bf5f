"""Every researcher template in notebooks/ (package aifw.notebooks) runs top to bottom and says what it should.

`test_template_runs` runs each notebook in the test process's environment (Slurm or not: the templates must
work both ways). Two more tests run them on Slurm: 02 with its Dask workers as Slurm jobs (on both compute
nodes in cluster mode), and 03 inside a batch job of 2 nodes and 2 tasks (sbatch -N2 -n2), where it must
launch with srun and its ranks meet across the nodes. Their Slurm is the one `sinfo` answers from here, else
(as root) the test stack's; otherwise they skip, saying why.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from importlib import resources

import nbformat
import pytest
from nbclient import NotebookClient

from aifw.extensions.kernel.dask_cluster import BACKEND_ENV
from aifw.slurm import BatchJob, BatchScript
from aifw_testing import run_batch_job

pytestmark = pytest.mark.integration

CELL_TIMEOUT_S = 180
NOTEBOOK_BUDGET_S = 120  # each aims at < 20 s on 2 cores; generous for a loaded machine or a busy Slurm

# key outputs (regular expressions over the notebook's printed text) per template
EXPECTED: dict[str, list[str]] = {
    "01-check-my-gpu-and-node.ipynb": [
        r"CPU cores\s+: \d+ on the machine, \d+ usable",
        r"(Inside Slurm job \d+|Not inside a Slurm job)",
        r"GPUs visible to torch: \d+",
        r"device for this notebook: (cpu|cuda|mps)",
        r"float32 matmul on (cpu|cuda|mps).*GFLOP/s",
        r"SUMMARY: \{'node': .*'matmul_gflops': [\d.]+\}",
    ],
    "02-dask-sweep-on-slurm.ipynb": [
        r"dask_cluster: (Slurm answered|Slurm is not available)",
        r"backend: (slurm|local)",
        r"workers: 2",
        r"12 runs in [\d.]+ s on 2 workers",
        r"BEST: C=[\d.e+-]+, accuracy=0\.9\d\d",
        r"cluster closed",
    ],
    "03-ddp-across-the-allocation.ipynb": [
        r"LAUNCH: (srun|torchrun)",
        r"rank 0/\d+ on .*samples per epoch",
        r"rank 1/\d+ on .*samples per epoch",
        r"NODES: \d+ \[",
        r"ALL_REDUCE: \[[\d., ]+\] expected \d+ ok=True",
        r"samples per rank : \[\d+, \d+.*\] = total 1400",
        r"max parameter difference between ranks: 0\.0",
        r"DDP RESULT: world_size=[2-9]\d* backend=(gloo|nccl) test_accuracy=0\.9\d\d identical=True",
    ],
    "04-model-explorer-widgets.ipynb": [
        r"test accuracy 0\.9\d\d",
        r"VIEW: \{'index': 0, .*'coverage': ",
        r"EXPLORER: \{'index': \d+, .*'coverage': ",
    ],
}


def _notebooks() -> list[str]:
    return sorted(p.name for p in resources.files("aifw.notebooks").iterdir() if p.name.endswith(".ipynb"))


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def _outputs(nb, mime: str) -> int:
    return sum(mime in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def test_every_template_has_expectations():
    assert _notebooks(), "no notebooks found in aifw.notebooks"
    assert set(_notebooks()) == set(EXPECTED)


@pytest.mark.parametrize("name", _notebooks())
def test_template_is_stored_clean(name):
    """Package data ships without outputs: learners see a fresh notebook."""
    nb = nbformat.reads(resources.files("aifw.notebooks").joinpath(name).read_text(), as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: stored with outputs"


@pytest.mark.parametrize("name", _notebooks())
def test_template_runs(name, tmp_path):
    nb = nbformat.reads(resources.files("aifw.notebooks").joinpath(name).read_text(), as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.1f} s")

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = _text(nb)
    for pattern in EXPECTED[name]:
        assert re.search(pattern, text), f"{name}: no output matches {pattern!r}\n---\n{text[-3000:]}"
    if name != "01-check-my-gpu-and-node.ipynb":
        assert _outputs(nb, "image/png") >= 1, f"{name}: no plot"
    if name == "04-model-explorer-widgets.ipynb":
        assert _outputs(nb, "application/vnd.jupyter.widget-view+json") >= 1, "no widget displayed"
    assert seconds < NOTEBOOK_BUDGET_S, f"{name} took {seconds:.0f} s"


# ---------------------------------------------------------------- on Slurm


def _jobs_named(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    return [ln for ln in out.stdout.splitlines() if ln.split()[1:2] and ln.split()[1] in {"PENDING", "RUNNING", "CONFIGURING"}]


def test_dask_template_runs_its_workers_as_slurm_jobs(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "slurm")  # no silent fallback to a LocalCluster
    name = "02-dask-sweep-on-slurm.ipynb"
    nb = nbformat.reads(resources.files("aifw.notebooks").joinpath(name).read_text(), as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = _text(nb)
    assert "backend: slurm" in text, text[-2000:]
    hosts = set(re.findall(r"on (\S+) job \d+ pid \d+", text))
    assert hosts, "no task ran inside a Slurm job"
    nodes = {n.name for n in slurm.default_partition.usable_nodes}  # the notebook's PARTITION = None
    if len(nodes) >= 2:  # cluster mode: the two worker jobs land on different nodes (LLN partitions)
        assert hosts == nodes, (hosts, nodes)
    deadline = time.monotonic() + 30
    while _jobs_named("aifw-dask") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _jobs_named("aifw-dask"), "the worker jobs are still there after cluster.close()"


_RUN_NOTEBOOK = (
    "import sys, nbformat\n"
    "from nbclient import NotebookClient\n"
    "nb = nbformat.read(sys.argv[1], as_version=4)\n"
    "NotebookClient(nb, timeout=int(sys.argv[4]), kernel_name='python3',\n"
    "               resources={'metadata': {'path': sys.argv[3]}}).execute()\n"
    "nbformat.write(nb, sys.argv[2])\n"
)


def test_ddp_template_runs_across_two_nodes_with_srun(slurm, tmp_path):
    """sbatch -N2 -n2 runs the notebook on the first node; it launches its ranks with srun on both nodes, and
    they meet at the first node's address."""
    part = slurm.default_partition
    nodes = {n.name for n in part.usable_nodes}
    if len(nodes) < 2:
        pytest.skip(f"partition {part.name} has {len(nodes)} node(s) that take jobs: DDP across nodes needs two")
    name = "03-ddp-across-the-allocation.ipynb"
    runner, out = tmp_path / "run_notebook.py", tmp_path / "out.ipynb"
    runner.write_text(_RUN_NOTEBOOK)
    src = tmp_path / name
    src.write_text(resources.files("aifw.notebooks").joinpath(name).read_text())
    job = BatchJob(job_name="aifw-test-ddp", time_minutes=10, partition=part.name, nodes=2, ntasks=2,
                   output=str(tmp_path / "job-%j.out"), chdir=str(tmp_path))
    body = BatchScript(command=[sys.executable, str(runner), str(src), str(out), str(tmp_path), str(CELL_TIMEOUT_S)],
                       purpose="DDP test", exports={"SLURM_CONF": os.environ["SLURM_CONF"]})
    log = run_batch_job(job, body, within_s=NOTEBOOK_BUDGET_S * 2, logs=tmp_path)
    assert out.exists(), f"the notebook did not finish in {log[:16]}; its log:\n{log[-3000:]}"
    text = _text(nbformat.read(out, as_version=4))
    assert re.search(r"LAUNCH: srun: 2 tasks across the allocation \S+ \(2 node\(s\)\)", text), text[-2000:]
    ranks_on = re.search(r"NODES: 2 \[(.*?)\]", text)
    assert ranks_on and set(re.findall(r"'([^']+)'", ranks_on.group(1))) == nodes, text[-2000:]
    assert re.search(r"ALL_REDUCE: \[3\.0, 3\.0\] expected 3 ok=True", text), text[-2000:]
    assert re.search(r"DDP RESULT: world_size=2 backend=(gloo|nccl) test_accuracy=0\.9\d\d identical=True", text), text[-2000:]
