"""Every researcher template in notebooks/ (package aifw.notebooks) runs top to bottom and says what it should.

`test_template_runs` runs each notebook in the test process's environment (Slurm or not: the templates must
work both ways). Two more tests run them on Slurm: 02 with its Dask workers as Slurm jobs, and 03 inside an
allocation of 2 tasks, where it must launch with srun. Their Slurm is the one `sinfo` answers from here, else
(as root) the test stack's; otherwise they skip, saying why.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from importlib import resources

import nbformat
import pytest
from nbclient import NotebookClient

from aifw.extensions.kernel.dask_cluster import BACKEND_ENV

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
    assert re.search(r"on \S+ job \d+ pid \d+", text), "no task ran inside a Slurm job"
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


def test_ddp_template_uses_srun_inside_an_allocation(slurm, tmp_path):
    name = "03-ddp-across-the-allocation.ipynb"
    out = tmp_path / "out.ipynb"
    with resources.as_file(resources.files("aifw.notebooks").joinpath(name)) as src:
        proc = subprocess.run(
            ["salloc", "--ntasks=2", "--time=10", "--job-name=aifw-test-ddp",
             sys.executable, "-c", _RUN_NOTEBOOK, str(src), str(out), str(tmp_path), str(CELL_TIMEOUT_S)],
            capture_output=True, text=True, timeout=NOTEBOOK_BUDGET_S * 2,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = _text(nbformat.read(out, as_version=4))
    assert re.search(r"LAUNCH: srun: 2 tasks across the allocation", text), text[-2000:]
    assert re.search(r"DDP RESULT: world_size=2 backend=(gloo|nccl) test_accuracy=0\.9\d\d identical=True", text), text[-2000:]
