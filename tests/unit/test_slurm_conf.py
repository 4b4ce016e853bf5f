"""slurm.conf / gres.conf rendered from the site file."""
from __future__ import annotations

from pathlib import Path

import pytest

from aifw.sandbox.slurm_conf import SlurmPaths, render_gres_conf, render_slurm_conf
from aifw.site import example_site_path, load_site


def test_slurm_conf_has_partitions_gpus_and_slots_for_a_class():
    site = load_site(example_site_path("sandbox"))
    conf = render_slurm_conf(site, SlurmPaths(Path("/s")))
    assert "PartitionName=cpu Nodes=localhost Default=YES MaxTime=08:00:00" in conf
    assert "PartitionName=debug Nodes=localhost Default=NO MaxTime=00:30:00" in conf
    assert "PartitionName=gpu" in conf
    assert "Gres=gpu:2" in conf and "GresTypes=gpu" in conf
    assert "CPUs=16" in conf and "SlurmdParameters=config_overrides" in conf  # 12+ one-CPU sessions on 2 cores
    assert "StateSaveLocation=/s/ctld" in conf and "SlurmctldPort=6817" in conf
    gres = render_gres_conf(site, SlurmPaths(Path("/s")))
    assert "NodeName=localhost Name=gpu File=/s/fake-gpus/gpu[0-1]" in gres


def test_a_real_site_is_not_a_sandbox():
    with pytest.raises(ValueError, match="no 'sandbox' section"):
        render_slurm_conf(load_site(example_site_path("lumi-like")), SlurmPaths(Path("/s")))
