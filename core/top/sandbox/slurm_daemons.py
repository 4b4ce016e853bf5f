"""The sandbox's Slurm daemons: their config written from the site file, slurmctld and one slurmd per compute
node started and stopped by pid file, and every job of the (sandbox-only) cluster cancelled when the
daemons stop or come back after a machine restart. Slurm itself is asked only through `aifw.slurm`.

Cluster mode: each slurmd runs inside its node's network namespace (`aifw.sandbox.network`) and its own
UTS namespace, so that `hostname` in a job says node2, as on a real cluster. A node whose slurmd is not
running has its namespace rebuilt from nothing before slurmd starts."""
from __future__ import annotations

import os
import stat
import subprocess

from aifw.slurm import SlurmError

from .layout import Stack
from .network import build_node, ensure_bridge, network_plan, remove_network, remove_stale
from .processes import SandboxError, read_pid, say, stop_pid_file, wait_for
from .slurm_conf import render_cgroup_conf, render_gres_conf, render_slurm_conf

SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"


def write_slurm_config(stack: Stack) -> None:
    """slurm.conf, gres.conf and the fake GPU devices under state/slurm."""
    sp = stack.slurm_paths
    assert stack.site.sandbox is not None
    for d in (sp.root, sp.ctld_state, sp.spool, sp.log_dir, sp.gpu_dir):
        d.mkdir(parents=True, exist_ok=True)
    for name, _ in stack.site.sandbox.nodes:
        sp.node_spool(name).mkdir(exist_ok=True)  # slurmd does not create its %n spool directory
    sp.root.chmod(0o755)
    sp.conf.write_text(render_slurm_conf(stack.site, sp))
    sp.gres_conf.write_text(render_gres_conf(stack.site, sp))
    sp.cgroup_conf.write_text(render_cgroup_conf())
    for f in (sp.conf, sp.gres_conf, sp.cgroup_conf):
        f.chmod(0o644)
    for i in range(stack.site.sandbox.node.gpus):
        dev = sp.gpu_dir / f"gpu{i}"
        if dev.exists() and not stat.S_ISCHR(dev.stat().st_mode):
            dev.unlink()
        if not dev.exists():
            # Fake GPUs must be character devices or slurmd silently drops them (a copy of /dev/null).
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


def node_names(stack: Stack) -> list[str]:
    assert stack.site.sandbox is not None
    return [name for name, _ in stack.site.sandbox.nodes]


def slurmd_pids(stack: Stack) -> dict[str, int | None]:
    return {name: read_pid(stack.slurm_paths.slurmd_pid(name)) for name in node_names(stack)}


def slurm_running(stack: Stack) -> bool:
    return read_pid(stack.slurm_paths.ctld_pid) is not None and all(slurmd_pids(stack).values())


def node_ready(stack: Stack) -> bool:
    """Slurm lists every node, and in every partition each is in a state that takes jobs."""
    nodes = stack.slurm.nodes_sync(timeout_s=5)
    return {n.name for n in nodes} >= set(node_names(stack)) and all(n.takes_jobs for n in nodes)


def start_slurmd(stack: Stack, node: str) -> None:
    """One node's slurmd: in cluster mode inside the node's namespace (rebuilt first), named by `hostname`."""
    sp = stack.slurm_paths
    assert stack.site.sandbox is not None
    env = dict(os.environ, SLURM_CONF=str(sp.conf))
    if not stack.site.sandbox.is_cluster:
        subprocess.run([SLURMD, "-N", node, "-f", str(sp.conf)], check=True, env=env, timeout=60)
        return
    plan = network_plan(stack.site.sandbox)
    net = next(n for n in plan.nodes if n.name == node)
    build_node(plan, net)
    # Node name and config path travel as positional parameters, never inside the shell text.
    subprocess.run(
        ["ip", "netns", "exec", net.netns, "unshare", "--uts", "--", "/bin/sh", "-c",
         'hostname "$1" && exec "$2" -N "$1" -f "$3"', "sh", node, SLURMD, str(sp.conf)],
        check=True, env=env, timeout=60,
    )


def start_slurm(stack: Stack) -> None:
    """Start whichever of slurmctld and the slurmds is not running, and wait until every node takes jobs."""
    sp = stack.slurm_paths
    if slurm_running(stack):
        return
    write_slurm_config(stack)
    env = dict(os.environ, SLURM_CONF=str(sp.conf))
    pids = slurmd_pids(stack)
    cold_start = read_pid(sp.ctld_pid) is None and not any(pids.values())
    if cold_start and stack.site.sandbox is not None and stack.site.sandbox.is_cluster:
        removed = remove_network(network_plan(stack.site.sandbox))  # whatever a crashed run left
        if removed:
            say(f"removed what an earlier run left: {', '.join(removed)}")
    if stack.site.sandbox is not None and stack.site.sandbox.is_cluster:
        plan = network_plan(stack.site.sandbox)
        removed = remove_stale(plan)
        if removed:
            say(f"removed namespaces and interfaces the site no longer has: {', '.join(removed)}")
        ensure_bridge(plan)  # slurmctld's address, which every node dials
    if read_pid(sp.ctld_pid) is None:
        subprocess.run([SLURMCTLD, "-i", "-f", str(sp.conf)], check=True, env=env, timeout=60)
    for node, pid in pids.items():
        if pid is None:
            start_slurmd(stack, node)
    wait_for(lambda: node_ready(stack), 60, "the Slurm nodes", f"See {sp.log_dir}/slurmctld.log and slurmd-*.log.")
    if cold_start:
        # Jobs recovered from the saved state belong to a run that was killed (machine restart): none of
        # them can still be running, so clear them rather than let them hold slots.
        cancel_all_jobs(stack)
    assert stack.site.sandbox is not None
    sb = stack.site.sandbox
    where = (f"{len(sb.nodes)} compute nodes in network namespaces: "
             + ", ".join(f"{n} {a}" for n, a in sb.nodes) + f"; login node {sb.login_address}"
             if sb.is_cluster else "single-node mode: one node on this host at 127.0.0.1")
    say(f"Slurm is up (cluster {sb.cluster_name}, {where}, SLURM_CONF={sp.conf})")


def cancel_all_jobs(stack: Stack) -> int:
    """Cancel every job of this stack's cluster (the cluster is ours alone) and wait until none is left.
    Returns how many jobs there were; raises SandboxError when Slurm does not list or cancel them."""
    slurm = stack.slurm
    hint = f"See {stack.slurm_paths.log_dir}/slurmctld.log."
    try:
        ids = slurm.job_ids_sync()
        if not ids:
            return 0
        slurm.cancel_sync(ids)
    except SlurmError as err:
        raise SandboxError(f"could not cancel the jobs of the sandbox's Slurm: {err}. {hint}") from None
    wait_for(lambda: not slurm.job_ids_sync(timeout_s=5), 30, f"cancelling {len(ids)} job(s)", hint)
    say(f"cancelled {len(ids)} job(s)")
    return len(ids)


def stop_slurm(stack: Stack) -> None:
    """Cancel every job, then stop slurmd and slurmctld. A failure to cancel is said, and the daemons are
    stopped all the same (jobs left in the saved state are cancelled at the next start)."""
    if slurm_running(stack):
        try:
            cancel_all_jobs(stack)
        except SandboxError as err:
            say(f"{err} Stopping the daemons anyway; the jobs left are cancelled when Slurm starts again.")
    sp = stack.slurm_paths
    daemons = [(f"slurmd ({n})", sp.slurmd_pid(n)) for n in node_names(stack)] + [("slurmctld", sp.ctld_pid)]
    stopped = [name for name, pf in daemons if stop_pid_file(pf)]
    if stopped:
        say(f"stopped {', '.join(stopped)}")
    assert stack.site.sandbox is not None
    if stack.site.sandbox.is_cluster:
        removed = remove_network(network_plan(stack.site.sandbox))
        if removed:
            say(f"removed the cluster network: {', '.join(removed)}")
