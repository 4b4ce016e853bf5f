"""The one-machine sandbox: a real Slurm cluster (munge, MariaDB + slurmdbd, slurmctld on the host = the
login node, one slurmd per compute node in its own network namespace) and JupyterHub, started and
stopped by pid file under AIFW_HOME, plus demo accounts and the site's projects. Used by `make sandbox` and by the test suite (with its
own home, ports and users).

Rooms, each with one job (arrows point down the list; `processes` is used by all):

- `cli`            `aifw sandbox up|down|status`
- `stack`          the orchestrator: up, down, status, is_up (the order of the steps below)
- `hub_groups`     the courses' hub groups kept equal to the site file (hub REST API)
- `hub`            the JupyterHub process: start, stop, health
- `publishing`     the learners' copies of the courses under home/share/courses
- `provisioning`   the site's courses on this machine (also `python -m aifw.sandbox.provisioning`)
- `course_dirs`    an nbgrader course directory: read as root, completed as the grader
- `jupyter_config` the venv's Jupyter config for sessions and formgrader services
- `directories`    directories made and fixed by root without following symlinks
- `accounts`       unix users and groups: demo users, graders, group members
- `sandbox_json`   sandbox.json (hub URL, admin token, demo passwords)
- `jsonfiles`      small JSON files read strictly (damaged is an error, not empty)
- `projects`       the site's projects, QOS and GPU budgets applied with sacctmgr (only the differences)
- `slurm_daemons`  slurm.conf written, slurmctld and each node's slurmd started and stopped, all jobs cancelled
- `network`        cluster mode: the bridge and each node's namespace + veth, made, rebuilt and removed
- `accounting`     the sandbox's own MariaDB and slurmdbd
- `rest`           slurmrestd with JWT: the key, its unprivileged account, the daemon
- `munge`          munged checked, started, stopped by the stack that started it
- `layout`         the paths under AIFW_HOME (Stack), the effective site, make_stack
- `slurm_conf`     slurm.conf, gres.conf, cgroup.conf and slurmdbd.conf rendered from the site file (pure)
- `processes`      pid files, waiting, SandboxError, say
"""
