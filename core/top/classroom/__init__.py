"""A class started before it arrives: `aifw class start|status` (plan.py pure, cli.py the hub and Slurm)."""
