"""One Slurm client per cluster (aifw.slurm.ClusterClients), chosen by the cluster's name: each command-line
cluster's commands run with that cluster's own SLURM_CONF (fake commands answer per SLURM_CONF), a REST
cluster gets the REST client of its slurmrestd, and a name the site lacks is an error that names the
clusters."""
from __future__ import annotations

import pytest

from aifw.site import site_from_dict
from aifw.slurm import ClusterClients, SlurmClient, SlurmRestClient, SlurmUnavailable, UnknownCluster
from two_clusters import FACTORY_SLURM

# Fake sinfo and sbatch that answer as the cluster whose slurm.conf the command was given.
FAKE = {
    "sinfo": """case "$SLURM_CONF" in
  */north.conf) echo 198.18.0.11 ;;
  */south.conf) echo 198.18.0.140 ;;
  */silent.conf) echo 'sinfo: error: Unable to contact slurm controller (connect failure)' >&2; exit 1 ;;
  *) echo "no SLURM_CONF: $SLURM_CONF" >&2; exit 1 ;;
esac""",
    "sbatch": """cat >/dev/null
case "$SLURM_CONF" in */north.conf) echo 101 ;; */south.conf) echo 202 ;; *) echo nope >&2; exit 1 ;; esac""",
}


@pytest.fixture
def site(tmp_path):
    for name, body in FAKE.items():
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\n" + body + "\n")
        tool.chmod(0o755)

    def cli(conf: str) -> dict:
        return {"conf": str(tmp_path / conf), "bin_dir": str(tmp_path), "exec_prefix": [], "command_timeout_s": 5}

    return site_from_dict({"name": "three clusters", "clusters": [
        {"name": "north", "slurm": cli("north.conf"), "partitions": [{"name": "cpu"}]},
        {"name": "south", "slurm": cli("south.conf"), "partitions": [{"name": "cpu"}, {"name": "gpu", "max_gpus": 2}]},
        {"name": "silent", "slurm": cli("silent.conf"), "partitions": [{"name": "cpu"}]},
        {"name": "factory", "slurm": FACTORY_SLURM, "partitions": [{"name": "big"}]},
    ]})


@pytest.mark.parametrize("cluster, address, job", [
    ("north", "198.18.0.11", "101"),
    ("south", "198.18.0.140", "202"),
    ("", "198.18.0.11", "101"),  # "": the default, the first
])
def test_each_clusters_commands_reach_that_cluster_through_its_own_slurm_conf(site, cluster, address, job):
    clients = ClusterClients.for_site(site.all_clusters)
    client = clients.client(cluster)
    assert client.node_address_sync("node1") == address
    assert client.submit_sync("#!/bin/sh\ntrue\n", env={"PATH": "/usr/bin:/bin"}) == job


def test_a_silent_cluster_is_an_error_of_that_cluster_only(site):
    clients = ClusterClients.for_site(site.all_clusters)
    with pytest.raises(SlurmUnavailable, match="Unable to contact slurm controller"):
        clients.client("silent").node_address_sync("node1")
    assert clients.client("south").node_address_sync("node1") == "198.18.0.140"


def test_a_rest_cluster_gets_the_client_of_its_own_slurmrestd_and_every_cluster_its_own_identity(site):
    clients = ClusterClients.for_site(site.all_clusters)
    assert clients.names == ["north", "south", "silent", "factory"] and clients.default == "north"
    factory = clients.client("factory")
    assert isinstance(factory, SlurmRestClient) and factory.url == "http://127.0.0.1:6920"
    assert isinstance(clients.client("north"), SlurmClient) and clients.client("north").conf.endswith("north.conf")
    identities = {clients.client(n).identity for n in clients.names}
    assert len(identities) == 4  # one job watcher per cluster in the spawner


def test_timeout_s_overrides_each_clusters_own_time_limit(site):
    clients = ClusterClients.for_site(site.all_clusters, timeout_s=1.5)
    assert {clients.client(n).timeout_s for n in clients.names} == {1.5}
    assert ClusterClients.for_site(site.all_clusters).client("north").timeout_s == 5


def test_an_unknown_cluster_names_the_clusters_and_a_client_can_be_replaced(site):
    clients = ClusterClients.for_site(site.all_clusters)
    with pytest.raises(UnknownCluster, match="no cluster 'west' here; the clusters are: north, south, silent, factory"):
        clients.client("west")
    stand_in = object()
    replaced = clients.with_client("south", stand_in)
    assert replaced.client("south") is stand_in and replaced.client("north") is clients.client("north")
    assert clients.with_client("", stand_in).client("north") is stand_in  # "": the default
    with pytest.raises(UnknownCluster):
        clients.with_client("west", stand_in)


@pytest.mark.parametrize("clients, problem", [
    ((), "at least one cluster"),
    ((("a", None), ("a", None)), "cluster names must be unique: a, a"),
])
def test_cluster_clients_refuse_no_cluster_and_repeated_names(clients, problem):
    with pytest.raises(ValueError, match=problem):
        ClusterClients(clients)


def test_a_site_with_one_cluster_has_one_client_named_default():
    site = site_from_dict({"name": "one", "slurm": {"conf": "/etc/slurm/slurm.conf"}, "partitions": [{"name": "cpu"}]})
    clients = ClusterClients.for_site(site.all_clusters)
    assert clients.names == ["default"] and clients.client("").conf == "/etc/slurm/slurm.conf"
