"""The one-machine sandbox: a real Slurm (munge, slurmctld, slurmd) and JupyterHub, started and stopped
by pid file under AIFW_HOME, plus demo accounts. Used by `make sandbox` and by the test suite (with its
own home, ports and users)."""
