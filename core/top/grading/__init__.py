"""Parallel, sandboxed autograding: ``aifw grade [COURSE] ASSIGNMENT``.

The way a submission goes (trusted parts run as root, the student's code never does):

1. plan: the orchestrator finds the collected submissions in the nbgrader course directory, snapshots
   them and the gradebook into a private run directory (root only, 0700) and starts the workers: a Slurm
   array job (one task per worker) or ``--local N`` processes.
2. work: a worker claims submissions one at a time; for each it runs nbgrader's own sanitize
   preprocessors (test cells restored from the gradebook snapshot) and nbgrader's ``Execute``, whose kernel
   is started through ``jail`` as a throwaway uid with no groups, rlimits on memory, processes and file
   size, in a private working copy of the submission. Everything that uid ran is killed afterwards. The
   executed notebooks and a status file go to the run directory, which that uid cannot read or write.
3. merge: the merge service runs stock nbgrader ``autograde`` on the master course directory with
   ``Execute`` swapped for ``UseExecuted`` (outputs taken from the worker's executed notebook after the
   cells are checked to be the same), so grades, comments and files land in the gradebook in the same form
   as a serial ``nbgrader autograde``, written from one process.
4. report: summary (graded, failed, timed out, with reasons), feedback, CSV exports and plots.

Rooms, from the top (a room imports only rooms below it, and `aifw.slurm`, `aifw.names`):

- `cli`: the ``aifw grade`` command: options from the site file, progress, the summary table.
- `course_config`: without COURSE, the course an nbgrader course directory's ``nbgrader_config.py`` names
  (read with traitlets' loader in a child process, as the directory's owner when run as root; checked).
- `run`: the main loop `grade()`, top to bottom: plan, start the merge service and the workers, merge each
  result as it arrives, then scores, feedback, reports; `Outcome`, `GradeResult`. Every exit that is not
  a normal finish stops the workers.
- `workers`: `LocalWorkers` (processes) and `SlurmWorkers` (one array job, through `aifw.slurm` only):
  start, alive, stop (`WorkersNotStopped` when they cannot be stopped, with the command to do it by hand).
- `merge_client`: the orchestrator's side of the merge service (started as the course directory's owner).
- `plan`: `GradeOptions`, `GradeError`; ids, which submissions to grade (`plan_run`), the snapshot into a
  new run directory (`prepare_run`), each array task's time limit (`job_minutes`).
- `merge`: the merge service, the one writer of the course directory; `report`: what a trainer reads.
- `worker`: one worker process; `kernel` and `jail`: the sandbox of one submission; `sanitize`:
  nbgrader's sanitize step plus restored cell flags.
- `rundir`: the run directory's layout (`RunDir`) and its records (`RunSpec`, `Limits`, `Status`).
Every read of a gradebook goes through `aifw.gradebook` (ground floor: read-only, through nbgrader's own
Gradebook), as every Slurm call goes through `aifw.slurm`.
"""
