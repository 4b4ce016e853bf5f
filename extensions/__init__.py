"""What runs inside a session and beside the hub: instant checks, dask_cluster(), services."""
