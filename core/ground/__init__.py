"""AIF Workbench: JupyterHub on Slurm with courses and graded exercises."""
__version__ = "0.1.0"
