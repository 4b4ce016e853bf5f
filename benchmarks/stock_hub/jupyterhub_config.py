"""JupyterHub config of benchmark 1's "stock" server: batchspawner.SlurmSpawner as its README sets it up,
on the same Slurm, users, partition and single-user command as AIF Workbench's hub, with its own ports and
its own state. benchmarks/spawn_overhead.py starts the hub with this file and stops it again; it sets:

    STOCK_HUB_STATE        a fresh folder for the database, cookie secret and pid files
    STOCK_HUB_VENV         the runtime venv (jupyterhub, batchspawner, jupyterhub-singleuser)
    STOCK_HUB_HUB_IP       the login node's address the compute nodes reach (the hub binds it)
    STOCK_HUB_PORTS        "PROXY,HUB,PROXY_API": the public proxy on 127.0.0.1, the hub, the proxy's API
    STOCK_HUB_PROXY        the configurable-http-proxy command
    STOCK_HUB_USERS        comma-separated users allowed to spawn
    STOCK_HUB_TOKEN        the API token of the benchmark's admin service
    STOCK_HUB_PARTITION, STOCK_HUB_CPUS, STOCK_HUB_MEMORY (e.g. 1G), STOCK_HUB_RUNTIME (HH:MM:SS)
    STOCK_HUB_SERVER_ARGS  JSON list: the arguments AIF Workbench's hub gives the single-user server
    SLURM_CONF             the cluster's slurm.conf (kept in the jobs' environment)

What differs from batchspawner's defaults, and why (everything else is stock, e.g. its batch script, `srun`,
its 0.5 s start-up poll and its unvalidated callback):
- `exec_prefix`: `runuser -u {username} --` instead of `sudo -E -u {username}`: the hub runs as root and
  sudo is not installed;
- `batch_query_cmd`: squeue's `%B` names the node (`node1`), and node names resolve nowhere on this
  cluster, so the query prints the node's address from `sinfo -o %o` instead (one sinfo more per poll);
- `Spawner.ip = 0.0.0.0` so that the server listens on the node's address, as AIF Workbench's sessions do.
"""
import json
import os

from batchspawner.api import BatchSpawnerAPIHandler
from jupyterhub import apihandlers
from jupyterhub.app import JupyterHub

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# JupyterHub imports every spawner entry point of the venv at start (to list their config classes). With AIF
# Workbench in the venv, that import swaps batchspawner's /hub/api/batchspawner handler for AIF Workbench's
# hardened one, which takes reports only from AIFSlurmSpawner. Make the import happen now, then put the stock
# handler back: this hub is stock.
JupyterHub.instance().classes  # noqa: B018 - computes the class list, which imports the entry points
apihandlers.default_handlers[:] = [h for h in apihandlers.default_handlers if h[0] != r"/api/batchspawner"]
apihandlers.default_handlers.append((r"/api/batchspawner", BatchSpawnerAPIHandler))
env = os.environ
state = env["STOCK_HUB_STATE"]
venv_bin = os.path.join(env["STOCK_HUB_VENV"], "bin")
proxy_port, hub_port, proxy_api_port = (int(p) for p in env["STOCK_HUB_PORTS"].split(","))

c.JupyterHub.bind_url = f"http://127.0.0.1:{proxy_port}"
c.JupyterHub.hub_ip = env["STOCK_HUB_HUB_IP"]
c.JupyterHub.hub_connect_ip = env["STOCK_HUB_HUB_IP"]
c.JupyterHub.hub_port = hub_port
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{state}/jupyterhub.pid"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [env["STOCK_HUB_PROXY"]]
c.ConfigurableHTTPProxy.pid_file = f"{state}/proxy.pid"

c.Authenticator.allowed_users = set(env["STOCK_HUB_USERS"].split(","))
c.JupyterHub.services = [{"name": "bench", "api_token": env["STOCK_HUB_TOKEN"]}]
c.JupyterHub.load_roles = [{
    "name": "bench",
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "access:servers"],
    "services": ["bench"],
}]

c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.Spawner.default_url = "/lab"
c.Spawner.ip = "0.0.0.0"
c.Spawner.cmd = [os.path.join(venv_bin, "jupyterhub-singleuser")]
c.Spawner.args = json.loads(env.get("STOCK_HUB_SERVER_ARGS", "[]"))
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "SLURM_CONF"]
c.SlurmSpawner.batchspawner_singleuser_cmd = os.path.join(venv_bin, "batchspawner-singleuser")
c.SlurmSpawner.exec_prefix = "runuser -u {username} --"
c.SlurmSpawner.batch_query_cmd = (
    "squeue -h -j {job_id} -o '%T %B' | "
    # no braces: batchspawner fills the command in with str.format
    "( read -r state node; echo \"$state $(sinfo -h -N -n \"$node\" -o %o 2>/dev/null | head -n 1)\" )"
)
c.SlurmSpawner.req_partition = env["STOCK_HUB_PARTITION"]
c.SlurmSpawner.req_nprocs = env["STOCK_HUB_CPUS"]
c.SlurmSpawner.req_memory = env["STOCK_HUB_MEMORY"]
c.SlurmSpawner.req_runtime = env["STOCK_HUB_RUNTIME"]
