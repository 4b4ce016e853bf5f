"""What JupyterHub loads: jupyterhub_config.py and the example site files under sites/."""
