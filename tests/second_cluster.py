"""A second Slurm cluster beside the test stack's, and a hub in front of both (issue 15, several sites behind
one hub): two slurmctld on this machine, each found through its own slurm.conf.

`start_second_cluster` writes the cluster's own slurm.conf (ClusterName `aifwt2`, its own slurmctld and slurmd
ports, its state under `home`, no accounting so it starts in a second or two) and starts its slurmctld and one
slurmd (`c2node1`) in one network namespace of its own (`aifwt-node2nd`, 198.18.0.150 on the test stack's
bridge, inside the stack's half 198.18.0.128/25: the login node is .129, the stack's nodes .139 and .140).
Both names carry the stack's prefix, so `aifw sandbox down` (and the stack's next cold start) removes a
namespace a crashed run left; this module's own start removes it first too. `stop_second_cluster` cancels its
jobs, stops both daemons, kills whatever else still runs in the namespace and removes it.

`start_two_cluster_hub` starts a hub like tests/rest_hub.py's (own ports 18600-18699, no courses, no LTI) as
root, whose site names two clusters: `aifwtest` (the stack's cluster, through its slurm.conf) and `aifwt2`
(this one), each through the command line.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from aifw.sandbox.network import NetworkPlan, NodeNet, build_node, namespaces, remove_node
from aifw.sandbox.processes import read_pid, stop_pid_file
from aifw.sandbox.slurm_conf import SLURMD_TIMEOUT_S, SlurmPaths, render_cgroup_conf
from lti_platform import LtiHub, stop_lti_hub, wait_for_hub

SLURMCTLD, SLURMD = "/usr/sbin/slurmctld", "/usr/sbin/slurmd"
CLUSTER = "aifwt2"  # Slurm's ClusterName and the hub's name for it
STACK_CLUSTER = "aifwtest"  # the hub's name for the test stack's cluster
NODE = "c2node1"
PARTITION = "remote"
ADDRESS, PREFIXLEN = "198.18.0.150", 25
CTLD_PORT, SLURMD_PORT = 16827, 16828  # the stack's are 16817-16820
NET = NodeNet(name=NODE, address=ADDRESS, prefixlen=PREFIXLEN, netns="aifwt-node2nd", veth="aifwt-v2nd")
NODE_CPUS, NODE_MEMORY_MB = 2, 4000
HUB_PORTS = {"bind": 18600, "hub": 18681, "proxy_api": 18601, "services": 18610}
#: The second cluster's partition as the hub's site offers it.
SECOND_PARTITION = {"name": PARTITION, "description": "The second site's only partition", "default": True,
                    "max_cpus": 2, "max_memory_gb": 2, "max_gpus": 0, "max_runtime_minutes": 60,
                    "default_runtime_minutes": 15}


@dataclass(frozen=True)
class SecondCluster:
    paths: SlurmPaths

    @property
    def conf(self) -> str:
        return str(self.paths.conf)

    def slurm(self, *args: str, timeout: float = 15) -> subprocess.CompletedProcess:
        """A Slurm command against this cluster (its SLURM_CONF)."""
        env = dict(os.environ, SLURM_CONF=self.conf)
        return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for log in sorted(self.paths.log_dir.glob("*.log")):
            out.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def render_second_slurm_conf(paths: SlurmPaths) -> str:
    """The second cluster's slurm.conf (pure): one node, one partition, munge only, no accounting."""
    return "\n".join([
        "# Written by tests/second_cluster.py: the tests' second cluster (no accounting).",
        f"ClusterName={CLUSTER}",
        f"SlurmctldHost=localhost({ADDRESS})",
        f"SlurmctldPort={CTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CryptoType=crypto/munge",
        "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MessageTimeout=3",  # a stopped slurmctld is "not answering" within seconds, not the default 10 s
        f"SlurmdTimeout={SLURMD_TIMEOUT_S}",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        "JobRequeue=0",
        "KillWait=5",
        "MinJobAge=60",
        "MailProg=/bin/true",
        f"StateSaveLocation={paths.ctld_state}",
        f"SlurmdSpoolDir={paths.spool}/%n",
        f"SlurmctldPidFile={paths.ctld_pid}",
        f"SlurmdPidFile={paths.root}/slurmd-%n.pid",
        f"SlurmctldLogFile={paths.log_dir / 'slurmctld.log'}",
        f"SlurmdLogFile={paths.log_dir}/slurmd-%n.log",
        f"NodeName={NODE} NodeAddr={ADDRESS} CPUs={NODE_CPUS} Boards=1 SocketsPerBoard=1 CoresPerSocket={NODE_CPUS} "
        f"ThreadsPerCore=1 RealMemory={NODE_MEMORY_MB} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=01:00:00 DefaultTime=00:15:00 "
        f"DefMemPerCPU=512 State=UP",
    ]) + "\n"


def _kill_namespace_processes() -> None:
    """SIGKILL whatever still runs in the cluster's namespace (a session a crashed run left)."""
    if NET.netns not in namespaces():
        return
    out = subprocess.run(["ip", "netns", "pids", NET.netns], capture_output=True, text=True, timeout=15).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def stop_second_cluster(cluster: SecondCluster) -> None:
    """Cancel its jobs, stop slurmd and slurmctld, kill what is left in the namespace, remove it."""
    if read_pid(cluster.paths.ctld_pid) is not None:
        cluster.slurm("scancel", "--full", f"--partition={PARTITION}", timeout=10)
    stop_pid_file(cluster.paths.slurmd_pid(NODE), timeout_s=10)
    stop_pid_file(cluster.paths.ctld_pid, timeout_s=10)
    _kill_namespace_processes()
    remove_node(NET)


def start_second_cluster(home: Path, bridge: str, timeout_s: float = 30) -> SecondCluster:
    """Start the second cluster with its state under `home` (made anew); returns once its node takes jobs."""
    cluster = SecondCluster(SlurmPaths(Path(home)))
    stop_second_cluster(cluster)  # whatever a crashed run left: its daemons by pid file, its namespace
    shutil.rmtree(home, ignore_errors=True)
    sp = cluster.paths
    for d in (sp.root, sp.ctld_state, sp.log_dir, sp.node_spool(NODE)):
        d.mkdir(parents=True, exist_ok=True)
    sp.root.chmod(0o755)
    sp.conf.write_text(render_second_slurm_conf(sp))
    sp.cgroup_conf.write_text(render_cgroup_conf())
    for f in (sp.conf, sp.cgroup_conf):
        f.chmod(0o644)
    try:
        build_node(NetworkPlan(prefix="aifwt", bridge=bridge, login_address="", prefixlen=PREFIXLEN, nodes=(NET,)), NET)
        env = dict(os.environ, SLURM_CONF=cluster.conf)
        subprocess.run(["ip", "netns", "exec", NET.netns, SLURMCTLD, "-i", "-f", cluster.conf], check=True, env=env,
                       timeout=30)
        subprocess.run(["ip", "netns", "exec", NET.netns, "unshare", "--uts", "--", "/bin/sh", "-c",
                        'hostname "$1" && exec "$2" -N "$1" -f "$3"', "sh", NODE, SLURMD, cluster.conf],
                       check=True, env=env, timeout=30)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out = cluster.slurm("sinfo", "-h", "-N", "-o", "%N %t", timeout=10).stdout.split()
            if out[:1] == [NODE] and out[1:2] and out[1].rstrip("*") in ("idle", "mix", "alloc"):
                return cluster
            time.sleep(0.5)
        raise AssertionError(f"the second cluster's node did not take jobs within {timeout_s} s:\n"
                             f"{cluster.log_tail()}")
    except BaseException:
        stop_second_cluster(cluster)
        raise


def two_cluster_site(stack_site: Path, second_conf: str) -> dict:
    """The stack's effective site as a two-cluster hub's: own ports, no courses, no LTI, and `clusters`: the
    stack's cluster (its slurm settings and partitions) first, then the second one."""
    data = yaml.safe_load(Path(stack_site).read_text())
    data["hub"].update(bind_url=f"http://127.0.0.1:{HUB_PORTS['bind']}", hub_port=HUB_PORTS["hub"],
                       proxy_api_port=HUB_PORTS["proxy_api"], services_port_base=HUB_PORTS["services"],
                       authenticator="pam")
    data["courses"] = []
    data["lti"] = None
    first = {"name": STACK_CLUSTER, "description": "the test stack's cluster", "slurm": data.pop("slurm"),
             "partitions": data.pop("partitions")}
    second_slurm = {k: v for k, v in first["slurm"].items() if k in ("bin_dir", "exec_prefix")}
    second_slurm.update(conf=second_conf, command_timeout_s=8, accounts=[], reservations=[], account_required=False)
    data["clusters"] = [first, {"name": CLUSTER, "description": "a second site", "slurm": second_slurm,
                                "partitions": [dict(SECOND_PARTITION)]}]
    return data


def start_two_cluster_hub(stack_site: Path, home: Path, venv_bin: Path, second_conf: str,
                          timeout_s: float = 60) -> LtiHub:
    """Start the two-cluster hub (root, as the stack's) with its state under `home` (made anew)."""
    import aifw.hub_config

    home = Path(home)
    shutil.rmtree(home, ignore_errors=True)
    (home / "state" / "hub").mkdir(parents=True)
    (home / "proxy").symlink_to(Path(venv_bin).parents[1] / "proxy")
    site = home / "site.yaml"
    site.write_text(yaml.safe_dump(two_cluster_site(stack_site, second_conf), sort_keys=False))
    token = secrets.token_hex(24)
    env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home / "state" / "hub"),
           "LANG": "C.UTF-8", "AIFW_SITE": str(site), "AIFW_HOME": str(home), "AIFW_ADMIN_TOKEN": token,
           "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(24)}
    log = home / "hub.log"
    config = Path(aifw.hub_config.__file__).with_name("jupyterhub_config.py")
    with log.open("w") as out:
        process = subprocess.Popen([str(Path(venv_bin) / "jupyterhub"), "-f", str(config)], env=env,
                                   cwd=str(home / "state" / "hub"), stdout=out, stderr=subprocess.STDOUT)
    hub = LtiHub(url=f"http://127.0.0.1:{HUB_PORTS['bind']}", api_token=token, home=home, process=process, log=log)
    return wait_for_hub(hub, timeout_s, "two-cluster hub")


stop_two_cluster_hub = stop_lti_hub
