"""A site with two clusters behind one hub, made from the sandbox site for the tests: `antenna`, the
sandbox's own cluster through the command line (its partitions and slurm settings), and `factory`, a
second cluster through slurmrestd with partitions of its own (`gpu` on both, `big` only on the factory)."""
from __future__ import annotations

import copy

import yaml

from aifw.site import Site, example_site_path, site_from_dict

FACTORY_SLURM = {"access": "rest", "rest_url": "http://127.0.0.1:6920", "rest_api_version": "v0.0.38",
                 "jwt_key_file": "/etc/aifw/factory-jwt.key", "token_lifespan_s": 60,
                 "accounts": ["factory-proj"], "reservations": ["factory-event"], "account_required": True}
FACTORY_PARTITIONS = [
    {"name": "big", "description": "Whole GPU nodes of the factory", "default": True, "max_cpus": 32,
     "max_memory_gb": 256, "max_gpus": 4, "max_runtime_minutes": 720, "default_runtime_minutes": 120},
    {"name": "gpu", "description": "Shared GPU nodes of the factory", "max_cpus": 8, "max_memory_gb": 64,
     "max_gpus": 1},
]


def sandbox_data() -> dict:
    return yaml.safe_load(example_site_path("sandbox").read_text())


def two_cluster_data(base: dict | None = None) -> dict:
    """The site file's data with `clusters` in place of the top-level slurm and partitions."""
    data = copy.deepcopy(base if base is not None else sandbox_data())
    antenna = {"name": "antenna", "description": "The antenna's own cluster",
               "slurm": data.pop("slurm"),
               "partitions": data.pop("partitions")}
    factory = {"name": "factory", "description": "The hosting AI Factory",
               "slurm": copy.deepcopy(FACTORY_SLURM), "partitions": copy.deepcopy(FACTORY_PARTITIONS)}
    data["clusters"] = [antenna, factory]
    return data


def two_cluster_site() -> Site:
    return site_from_dict(two_cluster_data(), source="two-clusters.yaml")
