"""The Slurm layer: the one place that runs Slurm commands, parses what they print, and builds the batch
scripts we submit. Everything else in the project calls it; nothing else runs sbatch, squeue, sinfo,
scontrol, scancel or sacctmgr, or writes ``#SBATCH`` lines.

Ground floor of the project: imports only `aifw.names`. Its rooms (and `rest`, `usage`, `sacctmgr`):

- `parse`: typed records (JobInfo, NodeInfo, PartitionInfo), node and job states, time strings, and the
  pure parsers of Slurm's output;
- `script`: the guarded batch-script builder (BatchJob + BatchScript -> text);
- `accounting`: project budgets (GPU-hours limit, used, held by running jobs) from slurmctld's words;
- `client`: SlurmClient, which runs the commands (argv lists, timeouts, as a user through an exec prefix);
- `clusters`: ClusterClients, one client per cluster of a site, chosen by the cluster's name.

Three outcomes of every call, kept apart on purpose:
- a parsed answer (typed dataclasses);
- `SlurmRejected`: Slurm answered and said no (bad request, unknown job...). Carries Slurm's message.
- `SlurmUnavailable`: Slurm did not answer (controller down; `SlurmTimedOut`: not within the time limit).
  Callers treat a running job as still running: "no answer" is never "gone".
"""
from .accounting import (
    ProjectBudget,
    UserAssociations,
    format_hours,
    parse_assoc_mgr_budgets,
    parse_assoc_mgr_user,
    parse_tres_usage,
)
from .client import CommandResult, SlurmClient
from .parse import (
    JOB_IDS_FORMAT,
    NODE_FORMAT,
    NODE_USABLE_STATES,
    PENDING_STATES,
    RUNNING_STATES,
    SQUEUE_JOB_FORMAT,
    JobInfo,
    NodeInfo,
    PartitionInfo,
    SlurmError,
    SlurmNotInstalled,
    SlurmRejected,
    SlurmTimedOut,
    SlurmUnavailable,
    first_node,
    format_slurm_minutes,
    node_state_base,
    node_takes_jobs,
    parse_gpus_in_use,
    parse_gres_gpus,
    parse_job_ids,
    parse_nodes,
    parse_partitions,
    parse_sbatch_job_id,
    parse_scontrol_job,
    parse_scontrol_records,
    parse_slurm_minutes,
    parse_named_jobs,
    parse_squeue_jobs,
    parse_start_estimates,
    partitions_from_nodes,
    tasks_per_node,
)
from .script import END_SIGNALS, BatchJob, BatchScript, EndSignal, UnsafeValue, build_batch_script
from .usage import (
    USAGE_FIELDS,
    AccountingUnavailable,
    JobUsage,
    SacctUsage,
    parse_alloc_tres,
    parse_sacct_usage,
    sacct_usage_args,
    sacct_usage_sync,
)

__all__ = [
    "ProjectBudget", "UserAssociations", "format_hours", "parse_assoc_mgr_budgets", "parse_assoc_mgr_user", "parse_tres_usage",
    "BatchJob", "BatchScript", "CommandResult", "END_SIGNALS", "EndSignal", "JOB_IDS_FORMAT", "JobInfo", "NODE_FORMAT", "NODE_USABLE_STATES", "NodeInfo",
    "PENDING_STATES", "PartitionInfo", "RUNNING_STATES", "SQUEUE_JOB_FORMAT", "SlurmClient", "SlurmError",
    "SlurmNotInstalled", "SlurmRejected", "SlurmTimedOut", "SlurmUnavailable", "UnsafeValue", "build_batch_script",
    "first_node", "format_slurm_minutes", "tasks_per_node", "node_state_base", "node_takes_jobs", "parse_gpus_in_use",
    "parse_gres_gpus", "parse_job_ids", "parse_nodes", "parse_partitions", "parse_sbatch_job_id", "parse_scontrol_job",
    "parse_named_jobs", "parse_scontrol_records", "parse_slurm_minutes", "parse_squeue_jobs", "parse_start_estimates", "partitions_from_nodes",
    "USAGE_FIELDS", "AccountingUnavailable", "JobUsage", "SacctUsage", "parse_alloc_tres", "parse_sacct_usage",
    "sacct_usage_args", "sacct_usage_sync",
]

# slurmrestd, a token per user (site `slurm.access: rest`).
from .rest import (  # noqa: E402
    API_VERSIONS,
    TOKEN_EXPIRED,
    TOKEN_REFUSED,
    JwtMinter,
    SlurmRestClient,
    Token,
    batch_job_from_script,
    submit_body,
    token_claims,
)

__all__ += [
    "API_VERSIONS", "TOKEN_EXPIRED", "TOKEN_REFUSED", "JwtMinter", "SlurmRestClient", "Token", "batch_job_from_script", "submit_body",
    "token_claims",
]

# Several clusters behind one hub: one client per cluster, by name (site `clusters`).
from .clusters import Client, ClusterClients, UnknownCluster  # noqa: E402

__all__ += ["Client", "ClusterClients", "UnknownCluster"]
