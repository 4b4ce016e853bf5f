"""Kernel-side helpers: what a notebook imports inside a session (instant checks and widgets, the
device and timing helpers, `dask_cluster()`). They run in the learner's kernel, as the learner."""
