"""Shared fixtures. The integration and browser tiers use `stack`: a real Slurm + JupyterHub of the
tests' own (own ports, own cluster, own users, own state under $AIFW_TEST_HOME), started on first use
and stopped at the end if this session started it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import proof_in_background
from aifw_testing import HubClient, StackInfo

TEST_HOME = Path(os.environ.get("AIFW_TEST_HOME", "/opt/aifw-test"))
TEST_USERS = [
    {"name": "test-learner1"},
    {"name": "test-learner2"},
    {"name": "test-trainer1"},
    {"name": "test-researcher1"},
]


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected: no proof for tests that will not run
def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath)
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
    # The course proof runs in the background at idle priority from now on; the tests that read it go last.
    proof = [i for i in items if "course_proofs" in getattr(i, "fixturenames", ())]
    if proof and not config.option.collectonly:
        proof_in_background.start()
        items[:] = [i for i in items if i not in proof] + proof


def pytest_sessionfinish(session, exitstatus):
    proof_in_background.stop()


def write_test_site(home: Path) -> Path:
    """The packaged sandbox site with the tests' own ports, cluster and users."""
    from aifw.site import example_site_path

    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["name"] = "AIF Workbench test stack"
    data["hub"].update(bind_url="http://127.0.0.1:18000", hub_port=18081, proxy_api_port=18001,
                       services_port_base=18100,
                       admin_users=["test-trainer1"], start_timeout_s=60, poll_interval_s=5)
    # The tests' own grader account and course group: the test stack never touches the sandbox's.
    data["courses"] = [{"id": "aif-foundations", "trainers": ["test-trainer1"],
                        "learners": ["test-learner1", "test-learner2"],
                        "grader": "test-grader-aif-foundations", "group": "test-aifw-aif-foundations"}]
    # A partition whose walltime ends soon: the end-of-walltime tests (warnings, save before the kill).
    data["partitions"].append({"name": "short", "description": "2 minutes at most (tests: the end of the walltime)",
                               "max_cpus": 2, "max_memory_gb": 2, "max_runtime_minutes": 2,
                               "default_runtime_minutes": 2})
    # A reservation the site offers but Slurm does not have (sbatch refuses it), and the workshop's, which the
    # sandbox makes: 2 cores (one on each node, so that least-loaded placement stays even) for the course's
    # project (the class tests start in it).
    data["slurm"]["reservations"] = ["no-such-event", "test-workshop"]
    data["sandbox"]["reservations"] = [{"name": "test-workshop", "accounts": ["training-2026"], "cores": 2}]
    # A software environment that cannot start, as when a module is missing on the node.
    data["environments"].append({"name": "broken", "description": "fails at start (tests)",
                                 "prologue": "echo 'ERROR: module nonexistent/1.0 not found' >&2\nexit 3"})
    # Projects (Slurm accounts): a small GPU budget for the budget tests, a training project with its QOS.
    data["projects"] = [
        {"name": "proj-llm", "description": "tests: research project", "users": ["test-researcher1", "test-trainer1"],
         "gpu_hours": 2},
        {"name": "training-2026", "description": "tests: course project",
         "users": ["test-learner1", "test-learner2", "test-trainer1"], "gpu_hours": 20, "qos": ["training"]},
    ]
    # The tests' own cluster: its own ports, its own half of 198.18.0.0/24 and its own namespace names.
    data["sandbox"].update(cluster_name="aifwtest", slurmctld_port=16817, slurmd_port=16818, slurmdbd_port=16819,
                           database_port=16306, slurmrestd_port=16820, network="198.18.0.128/25", netns_prefix="aifwt",
                           demo_users=TEST_USERS)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "test-site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def stack():
    if os.geteuid() != 0:
        pytest.fail("the integration and browser tests start Slurm and create accounts: run them as root (make test)")
    from aifw.sandbox import stack as st

    s = st.make_stack(TEST_HOME, write_test_site(TEST_HOME))
    started = st.up(s)
    info = StackInfo.load(s)
    try:
        yield info
    finally:
        if started:
            st.down(s)


@pytest.fixture
def slurm(request, monkeypatch):
    """A Slurm that answers, with SLURM_CONF in os.environ pointing at it (inherited by kernels, srun,
    dask-jobqueue): the one already configured here, else the test stack's (started on demand, as root)."""
    from aifw.extensions.kernel.dask_cluster import probe_slurm

    probe = probe_slurm(timeout=5)
    if probe.available:
        return probe
    if os.geteuid() != 0:
        pytest.skip(f"Slurm does not answer here ({probe.reason}) and the test stack needs root; "
                    "set SLURM_CONF to a running Slurm to run this test")
    info = request.getfixturevalue("stack")
    monkeypatch.setenv("SLURM_CONF", info.slurm_conf)
    probe = probe_slurm(timeout=10)
    if not probe.available:
        pytest.fail(f"the test stack's Slurm does not answer: {probe.reason}")
    return probe


@pytest.fixture
def hub(stack) -> HubClient:
    client = HubClient(stack)
    yield client
    client.stop_all_servers()
