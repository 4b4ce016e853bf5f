"""The sandbox's Slurm daemons: their config written from the site file, slurmctld and slurmd started and
stopped by pid file, and every job of the (one-node, sandbox-only) cluster cancelled when the daemons stop
or come back after a machine restart. Slurm itself is asked only through `aifw.slurm`."""
from __future__ import annotations

import os
import stat
import subprocess

from aifw.slurm import SlurmError

from .layout import Stack
from .processes import SandboxError, read_pid, say, stop_pid_file, wait_for
from .slurm_conf import render_gres_conf, render_slurm_conf

SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"


def write_slurm_config(stack: Stack) -> None:
    """slurm.conf, gres.conf and the fake GPU devices under state/slurm."""
    sp = stack.slurm_paths
    for d in (sp.root, sp.ctld_state, sp.spool, sp.log_dir, sp.gpu_dir):
        d.mkdir(parents=True, exist_ok=True)
    sp.root.chmod(0o755)
    sp.conf.write_text(render_slurm_conf(stack.site, sp))
    sp.gres_conf.write_text(render_gres_conf(stack.site, sp))
    sp.conf.chmod(0o644)
    sp.gres_conf.chmod(0o644)
    assert stack.site.sandbox is not None
    for i in range(stack.site.sandbox.node.gpus):
        dev = sp.gpu_dir / f"gpu{i}"
        if dev.exists() and not stat.S_ISCHR(dev.stat().st_mode):
            dev.unlink()
        if not dev.exists():
            # Fake GPUs must be character devices or slurmd silently drops them (a copy of /dev/null).
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


def slurm_running(stack: Stack) -> bool:
    sp = stack.slurm_paths
    return read_pid(sp.ctld_pid) is not None and read_pid(sp.slurmd_pid) is not None


def node_ready(stack: Stack) -> bool:
    """Slurm lists the node, and in every partition it is in a state that takes jobs."""
    nodes = stack.slurm.nodes_sync(timeout_s=5)
    return bool(nodes) and all(n.takes_jobs for n in nodes)


def start_slurm(stack: Stack) -> None:
    """Start whichever of slurmctld and slurmd is not running, and wait until the node takes jobs."""
    sp = stack.slurm_paths
    if slurm_running(stack):
        return
    write_slurm_config(stack)
    env = dict(os.environ, SLURM_CONF=str(sp.conf))
    cold_start = read_pid(sp.ctld_pid) is None and read_pid(sp.slurmd_pid) is None
    if read_pid(sp.ctld_pid) is None:
        subprocess.run([SLURMCTLD, "-i", "-f", str(sp.conf)], check=True, env=env)
    if read_pid(sp.slurmd_pid) is None:
        subprocess.run([SLURMD, "-N", "localhost", "-f", str(sp.conf)], check=True, env=env)
    wait_for(lambda: node_ready(stack), 60, "the Slurm node", f"See {sp.log_dir}/slurmctld.log and slurmd.log.")
    if cold_start:
        # Jobs recovered from the saved state belong to a run that was killed (machine restart): none of
        # them can still be running, so clear them rather than let them hold slots.
        cancel_all_jobs(stack)
    assert stack.site.sandbox is not None
    say(f"Slurm is up (cluster {stack.site.sandbox.cluster_name}, SLURM_CONF={sp.conf})")


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
    stopped = [name for name, pf in (("slurmd", sp.slurmd_pid), ("slurmctld", sp.ctld_pid)) if stop_pid_file(pf)]
    if stopped:
        say(f"stopped {', '.join(stopped)}")
