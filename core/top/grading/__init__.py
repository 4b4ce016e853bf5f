"""Parallel, sandboxed autograding: ``aifw grade COURSE ASSIGNMENT``.

The way a submission goes (trusted parts run as root, the student's code never does):

1. ``plan``: the orchestrator finds the collected submissions in the nbgrader course directory, snapshots
   them and the gradebook into a private run directory (root only, 0700) and starts the workers: a Slurm
   array job (one task per worker) or ``--local N`` processes.
2. ``worker``: a worker claims submissions one at a time; for each it runs nbgrader's own sanitize
   preprocessors (test cells restored from the gradebook snapshot) and nbgrader's ``Execute``, whose kernel
   is started through ``jail`` as a throwaway uid with no groups, rlimits on memory, processes and file
   size, in a private working copy of the submission. Everything that uid ran is killed afterwards. The
   executed notebooks and a status file go to the run directory, which that uid cannot read or write.
3. ``merge``: the orchestrator runs stock nbgrader ``autograde`` on the master course directory with
   ``Execute`` swapped for ``UseExecuted`` (outputs taken from the worker's executed notebook after the
   cells are checked to be the same), so grades, comments and files land in the gradebook in the same form
   as a serial ``nbgrader autograde``, written from one process.
4. ``report``: summary (graded, failed, timed out, with reasons), feedback, CSV exports and plots.
"""
