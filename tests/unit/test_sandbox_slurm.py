"""The sandbox's Slurm daemons: jobs are cancelled through aifw.slurm, a Slurm that does not answer is an
error (never "no jobs"), and `down` stops the daemons even then. Slurm itself is a stand-in here."""
from __future__ import annotations

import pytest

from aifw.sandbox import slurm_daemons
from aifw.sandbox.layout import Stack
from aifw.sandbox.processes import SandboxError
from aifw.site import example_site_path, load_site
from aifw.slurm import NodeInfo, SlurmUnavailable


class FakeSlurm:
    def __init__(self, jobs=(), *, fail=None, nodes=()):
        self.jobs, self.fail, self.nodes, self.cancelled = list(jobs), fail, list(nodes), []

    def job_ids_sync(self, *, timeout_s=None):
        if self.fail:
            raise self.fail
        return list(self.jobs)

    def cancel_sync(self, ids, *, user=None):
        self.cancelled.append(list(ids))
        self.jobs = [j for j in self.jobs if j not in ids]

    def nodes_sync(self, *, timeout_s=None):
        return self.nodes


@pytest.fixture
def stack(tmp_path, monkeypatch):
    s = Stack(home=tmp_path, site=load_site(example_site_path("sandbox")))
    fake = FakeSlurm()
    monkeypatch.setattr(Stack, "slurm", property(lambda self: fake))
    return s, fake


def test_every_job_is_cancelled_and_waited_for(stack):
    s, fake = stack
    fake.jobs = ["41", "42"]
    assert slurm_daemons.cancel_all_jobs(s) == 2
    assert fake.cancelled == [["41", "42"]] and fake.jobs == []
    assert slurm_daemons.cancel_all_jobs(s) == 0 and fake.cancelled == [["41", "42"]]


def test_a_slurm_that_does_not_answer_is_an_error_not_no_jobs(stack):
    s, fake = stack
    fake.fail = SlurmUnavailable("squeue did not answer within 10 s")
    with pytest.raises(SandboxError, match="could not cancel the jobs of the sandbox's Slurm: squeue did not answer"):
        slurm_daemons.cancel_all_jobs(s)


def test_down_stops_the_daemons_even_when_the_jobs_cannot_be_cancelled(stack, monkeypatch, capsys):
    s, fake = stack
    fake.fail = SlurmUnavailable("Unable to contact slurm controller")
    stopped = []
    monkeypatch.setattr(slurm_daemons, "slurm_running", lambda st: True)
    monkeypatch.setattr(slurm_daemons, "stop_pid_file", lambda pf: stopped.append(pf.name) or True)
    monkeypatch.setattr(slurm_daemons, "remove_network", lambda plan: stopped.append(plan.bridge) or [plan.bridge])
    slurm_daemons.stop_slurm(s)
    assert stopped == ["slurmd-node1.pid", "slurmd-node2.pid", "slurmctld.pid", "aifw-br"]
    out = capsys.readouterr().out
    assert "Unable to contact slurm controller" in out and "Stopping the daemons anyway" in out


def test_the_nodes_are_ready_when_every_node_takes_jobs_in_every_partition(stack):
    s, fake = stack
    assert slurm_daemons.node_ready(s) is False  # Slurm lists no node yet
    fake.nodes = [NodeInfo("node1", "cpu", "idle"), NodeInfo("node1", "gpu", "mix")]
    assert slurm_daemons.node_ready(s) is False  # node2 is missing
    fake.nodes += [NodeInfo("node2", "cpu", "idle"), NodeInfo("node2", "gpu", "alloc")]
    assert slurm_daemons.node_ready(s) is True
    fake.nodes[-1] = NodeInfo("node2", "gpu", "idle*")  # not responding
    assert slurm_daemons.node_ready(s) is False


def test_the_sandbox_refuses_a_site_with_several_clusters_in_words(tmp_path):
    from aifw.sandbox.layout import effective_site
    from two_clusters import two_cluster_site

    with pytest.raises(SandboxError, match="the sandbox runs one Slurm cluster: write its slurm and partitions at the top level"):
        effective_site(two_cluster_site(), tmp_path)
    assert effective_site(load_site(example_site_path("sandbox")), tmp_path).slurm.conf.startswith(str(tmp_path))
