"""The settings AIFSlurmSpawner inherits and does not use, each with what replaces it (pure).

AIFSlurmSpawner starts from batchspawner's SlurmSpawner (for its base class and its
`batchspawner-singleuser` wrapper) but builds the batch script, runs Slurm and reads job states itself.
So batchspawner's templates, commands and regexes, and a few of JupyterHub's own Spawner settings, would
do nothing here. A config that sets one is refused, naming what to use instead: when the hub loads its
config (hub_config/jupyterhub_config.py) and again whenever a spawner is made (`AIFSlurmSpawner.__init__`),
so nothing is ever submitted under a setting that was silently dropped.

`REPLACED` is the one table: the check uses it and docs/config-reference.md shows it (`aifw reference`).
batchspawner's `startup_poll_interval` is the one of its settings that is honoured.
"""
from __future__ import annotations

from typing import Any, Iterable

_SCRIPT = "the session's batch script is built by aifw.slurm from the validated request"
_SLURM = "Slurm commands are run by aifw.slurm (argv lists, with timeouts)"

#: setting -> what replaces it (site-file keys, the user's options, or why there is nothing to set)
REPLACED: dict[str, str] = {
    # batchspawner: the batch script and what goes into it
    "batch_script": f"site `environments[].prologue` (shell lines run before the server); {_SCRIPT}",
    "req_prologue": "site `environments[].prologue`",
    "req_epilogue": "nothing: the server replaces the job's shell (exec), so no line runs after it",
    "req_options": f"nothing: no free-form `#SBATCH` lines; {_SCRIPT}",
    "req_partition": "site `partitions[]` (`default: true` for the pre-selected one); the user's `partition` option",
    "req_queue": "site `partitions[]`; the user's `partition` option",
    "req_runtime": "site `partitions[].default_runtime_minutes` and `max_runtime_minutes`; the user's `runtime_minutes` option",
    "req_memory": "site `partitions[].max_memory_gb`; the user's `memory_gb` option",
    "req_nprocs": "site `partitions[].max_cpus`; the user's `cpus` option",
    "req_ngpus": "site `partitions[].max_gpus`; the user's `gpus` option",
    "req_gres": "site `partitions[].max_gpus` and `gpu_type`; the user's `gpus` option",
    "req_account": "site `slurm.accounts` and `slurm.account_required`; the user's `account` option",
    "req_reservation": "site `slurm.reservations`; the user's `reservation` option",
    "req_qos": "nothing: sessions use the QOS of the user's Slurm association",
    "req_cluster": "site `clusters[]` (each reached through its own `slurm.conf` or slurmrestd); the user's `cluster` option",
    "req_host": "site `slurm.conf` (its controller)",
    "req_srun": "nothing: the server runs in the batch step itself",
    "req_keepvars_extra": "`c.Spawner.environment` (what the spawner's environment holds reaches the job)",
    "batchspawner_singleuser_cmd": "site `paths.runtime_prefix` (the job runs `<runtime_prefix>/venv/bin/batchspawner-singleuser`)",
    # batchspawner: the Slurm commands and how their output is read
    "exec_prefix": "site `slurm.exec_prefix` (an argv list; {username} is replaced)",
    "batch_submit_cmd": f"site `slurm.bin_dir` and `slurm.conf`; {_SLURM}",
    "batch_query_cmd": f"site `slurm.bin_dir` and `slurm.conf`; {_SLURM}",
    "batch_cancel_cmd": f"site `slurm.bin_dir` and `slurm.conf`; {_SLURM}",
    "state_pending_re": "nothing: job states are parsed by aifw.slurm",
    "state_running_re": "nothing: job states are parsed by aifw.slurm",
    "state_unknown_re": "nothing: 'Slurm did not answer' is told apart by aifw.slurm (SlurmUnavailable)",
    "state_exechost_re": "nothing: the job's node is parsed by aifw.slurm",
    "state_exechost_exp": "nothing: the job's node is parsed by aifw.slurm",
    # JupyterHub's Spawner settings that this spawner sets itself
    "ip": "site `hub.singleuser_ip` (where the server listens on its node)",
    "port": "nothing: batchspawner-singleuser picks a free port on the job's node and reports it",
    "cmd": "site `paths.runtime_prefix` (the job runs `<runtime_prefix>/venv/bin/jupyterhub-singleuser`)",
    "options_from_form": "nothing: the spawner reads its own form (spawners/request.py)",
    "apply_user_options": "site `partitions[]`, `environments[]`, `slurm.accounts`, `slurm.reservations`: "
                          "the spawner validates user options itself (spawners/request.py)",
    "cpu_limit": "site `partitions[].max_cpus`; the user's `cpus` option (Slurm enforces it)",
    "cpu_guarantee": "site `partitions[].max_cpus`; the user's `cpus` option (Slurm enforces it)",
    "mem_limit": "site `partitions[].max_memory_gb`; the user's `memory_gb` option (Slurm enforces it)",
    "mem_guarantee": "site `partitions[].max_memory_gb`; the user's `memory_gb` option (Slurm enforces it)",
}


class ReplacedSettings(ValueError):
    """A config sets settings that AIFSlurmSpawner does not use; the message names each and its replacement."""

    def __init__(self, found: list[tuple[str, str]]):
        self.found = found
        lines = [f"  c.{section}.{key}: use {REPLACED[key]}" for section, key in found]
        super().__init__(
            "AIF Workbench: the config sets spawner settings that AIFSlurmSpawner does not use. "
            "Remove them; what replaces each (docs/config-reference.md):\n" + "\n".join(lines)
        )


def replaced_in(config: Any, sections: Iterable[str]) -> list[tuple[str, str]]:
    """(section, key) of each setting of `REPLACED` that `config` (a traitlets Config) sets in one of
    `sections` (the spawner class's config sections: its own and its base classes')."""
    found = []
    for section in sections:
        if section in config:
            found += [(section, key) for key in config[section] if key in REPLACED]
    return found


def refuse_replaced(config: Any, sections: Iterable[str]) -> None:
    """Raise ReplacedSettings when `config` sets any setting of `REPLACED` in `sections`."""
    found = replaced_in(config, sections)
    if found:
        raise ReplacedSettings(found)
