"""slurm.conf, gres.conf and slurmdbd.conf rendered from the site file, and the cluster network's plan."""
from __future__ import annotations

from pathlib import Path

import pytest

from aifw.sandbox.network import network_plan
from aifw.sandbox.slurm_conf import SlurmPaths, render_gres_conf, render_slurm_conf, render_slurmdbd_conf
from aifw.site import SiteError, example_site_path, load_site, site_from_dict


def _site(**sandbox):
    site = load_site(example_site_path("sandbox"))
    data = site.model_dump(mode="json")
    data["sandbox"].update(sandbox)
    return site_from_dict(data)


def test_cluster_mode_declares_each_node_at_its_own_address_with_its_own_spool_and_log():
    site = load_site(example_site_path("sandbox"))
    conf = render_slurm_conf(site, SlurmPaths(Path("/s")))
    assert "SlurmctldHost=localhost(198.18.0.1)" in conf
    assert "NodeName=node1 NodeAddr=198.18.0.11 CPUs=8 " in conf and "NodeName=node2 NodeAddr=198.18.0.12 " in conf
    assert "PartitionName=cpu Nodes=node1,node2 LLN=YES Default=YES MaxTime=08:00:00" in conf
    assert "PartitionName=debug Nodes=node1,node2 LLN=YES Default=NO MaxTime=00:30:00" in conf
    assert "SlurmdSpoolDir=/s/spool/%n" in conf and "SlurmdPidFile=/s/slurmd-%n.pid" in conf
    assert "SlurmdLogFile=/s/log/slurmd-%n.log" in conf
    assert "Gres=gpu:2" in conf and "GresTypes=gpu" in conf and "SlurmdParameters=config_overrides" in conf
    assert "StateSaveLocation=/s/ctld" in conf and "SlurmctldPort=6817" in conf
    assert "JobRequeue=0" in conf.splitlines()  # a node failure ends a session as NODE_FAIL
    gres = render_gres_conf(site, SlurmPaths(Path("/s")))
    assert "NodeName=node1,node2 Name=gpu File=/s/fake-gpus/gpu[0-1]" in gres


def test_accounting_enforces_associations_limits_qos_and_gpu_budgets():
    site = load_site(example_site_path("sandbox"))
    conf = render_slurm_conf(site, SlurmPaths(Path("/s")))
    for line in ("AuthAltTypes=auth/jwt", "AuthAltParameters=jwt_key=/s/jwt_hs256.key",
                 "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStoragePort=6819",
                 "AccountingStorageTRES=gres/gpu", "AccountingStorageEnforce=associations,limits,qos,safe",
                 "PriorityType=priority/multifactor"):
        assert line in conf.splitlines()
    dbd = render_slurmdbd_conf(site, SlurmPaths(Path("/s")), db_password="pw")
    assert "StoragePort=6306" in dbd and "StorageHost=127.0.0.1" in dbd and "StoragePass=pw" in dbd
    assert "SlurmUser=root" in dbd and "DbdPort=6819" in dbd and "PidFile=/s/slurmdbd.pid" in dbd
    assert "AuthAltTypes=auth/jwt" in dbd and "AuthAltParameters=jwt_key=/s/jwt_hs256.key" in dbd


def test_single_node_mode_is_one_node_on_loopback():
    site = _site(mode="single-node", compute_nodes=None)
    conf = render_slurm_conf(site, SlurmPaths(Path("/s")))
    assert "SlurmctldHost=localhost(127.0.0.1)" in conf
    assert "NodeName=localhost NodeAddr=127.0.0.1 " in conf and "NodeName=node" not in conf
    assert "PartitionName=cpu Nodes=localhost " in conf
    with pytest.raises(SiteError, match="single-node mode runs one node"):
        _site(mode="single-node", compute_nodes=2)


def test_the_network_plan_names_everything_with_the_prefix_and_stays_in_the_test_range():
    plan = network_plan(_site(network="198.18.0.128/25", netns_prefix="aifwt", compute_nodes=3).sandbox)
    assert (plan.bridge, plan.login_address, plan.prefixlen) == ("aifwt-br", "198.18.0.129", 25)
    assert [(n.name, n.address, n.netns, n.veth) for n in plan.nodes] == [
        ("node1", "198.18.0.139", "aifwt-node1", "aifwt-v1"),
        ("node2", "198.18.0.140", "aifwt-node2", "aifwt-v2"),
        ("node3", "198.18.0.141", "aifwt-node3", "aifwt-v3"),
    ]
    assert all(len(name) <= 15 for n in plan.nodes for name in (n.veth, plan.bridge))  # Linux IFNAMSIZ


@pytest.mark.parametrize("network, problem", [
    ("10.0.0.0/24", "outside it"),
    ("198.18.1.0/25", "outside it"),
    ("198.18.0.0/28", "too small"),
    ("198.18.0.5/25", "host bits set"),
])
def test_a_network_outside_the_test_range_is_refused(network, problem):
    with pytest.raises(SiteError, match=problem):
        _site(network=network)


def test_a_real_site_is_not_a_sandbox():
    with pytest.raises(ValueError, match="no 'sandbox' section"):
        render_slurm_conf(load_site(example_site_path("lumi-like")), SlurmPaths(Path("/s")))
