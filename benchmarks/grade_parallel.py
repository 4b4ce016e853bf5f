"""Benchmark: `aifw grade` (parallel, sandboxed, on Slurm) against stock serial `nbgrader autograde`.

    sudo /opt/aifw/venv/bin/python benchmarks/grade_parallel.py                 # 100 submissions, sandbox Slurm
    sudo /opt/aifw/venv/bin/python benchmarks/grade_parallel.py -n 20 --local   # local processes, no Slurm

Builds an nbgrader course directory with one bundled assignment (default aif-foundations/m1-first-steps)
and N submissions (the model answer and the course's planted wrong answers, in turn), copies it, then in
one run, on one machine: stock `nbgrader autograde ASSIGNMENT` on one copy, `aifw grade` on the other. It
prints both wall times, the ratio, whether both gradebooks hold identical scores, and where the time goes
(workers: preparing, starting kernels, executing; orchestrator: gradebook writes). Slurm: set SLURM_CONF
or pass --site (the sandbox's state/site.yaml); needs root (sandboxed kernels switch uids).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aifw.courses.catalogue import load_catalogue
from aifw.courses.nbgrader_tools import nbgrader_api
from aifw.courses.submissions import build_submissions
from aifw.gradebook import cell_scores
from aifw.grading.plan import GradeOptions
from aifw.grading.run import grade
from aifw.grading.rundir import Limits
from aifw.site import load_site


def build_course(root: Path, course_id: str, module_id: str, n: int) -> list[str]:
    course = next(c for c in load_catalogue() if c.id == course_id)
    shutil.copytree(course.source_dir(module_id), root / "source" / module_id,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    api = nbgrader_api(root)
    res = api.generate_assignment(module_id, force=True)
    if not res.get("success"):
        sys.exit(f"nbgrader could not generate {module_id}: {res.get('error')}")
    variants = build_submissions(course, module_id, root / "release" / module_id)
    students = []
    for i in range(n):
        sub = variants[i % len(variants)]
        student = f"learner{i:03d}"
        folder = root / "submitted" / student / module_id
        folder.mkdir(parents=True)
        for name, nb in sub.notebooks.items():
            (folder / name).write_text(json.dumps(nb, indent=1))
        (folder / "timestamp.txt").write_text("2026-11-25 10:00:00.000000 UTC")
        students.append(student)
    return students


def scores(course_dir: Path, assignment: str) -> dict:
    """(student, notebook, grade cell) -> (automatic score, max score, needs manual grade)."""
    return {(r.student, r.notebook, r.cell): (r.auto_score, r.max_score, r.needs_manual_grade)
            for r in cell_scores(course_dir, assignment)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--submissions", type=int, default=100)
    p.add_argument("--course", default="aif-foundations")
    p.add_argument("--assignment", default="m1-first-steps")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="array tasks / local processes (default: cores)")
    p.add_argument("--local", action="store_true", help="local worker processes instead of a Slurm array")
    p.add_argument("--partition", default=None)
    p.add_argument("--site", default=None, help="site file (Slurm settings); default $AIFW_SITE or the sandbox's")
    p.add_argument("--keep", action="store_true", help="keep the course directories")
    p.add_argument("--no-one-worker", action="store_true",
                   help="skip the third run (aifw grade with one worker), which splits the speed-up into "
                        "parallelism and per-submission cost")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: aifw grade starts each submission's kernel as a throwaway uid")

    site = load_site(args.site)
    base = Path(tempfile.mkdtemp(prefix="aifw-bench-grade-"))
    base.chmod(0o711)
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    try:
        t = time.perf_counter()
        mine = base / "parallel"
        students = build_course(mine, args.course, args.assignment, args.submissions)
        stock = base / "serial"
        shutil.copytree(mine, stock)
        one = base / "one-worker"
        if not args.no_one_worker:
            shutil.copytree(mine, one)
        print(f"{len(students)} submissions of {args.course}/{args.assignment} ready in {time.perf_counter() - t:.0f} s; "
              f"{os.cpu_count()} cores", flush=True)

        print("stock nbgrader autograde (serial) ...", flush=True)
        t = time.perf_counter()
        res = subprocess.run([f"{bindir}/nbgrader", "autograde", args.assignment, f"--CourseDirectory.root={stock}"],
                             capture_output=True, text=True, cwd=stock)
        serial_s = time.perf_counter() - t
        if res.returncode != 0:
            print(res.stderr[-2000:])

        mode = "local" if args.local else "slurm"

        def run_aifw(course_dir: Path, workers: int):
            print(f"aifw grade ({mode}, {workers} worker(s), sandboxed) ...", flush=True)
            opts = GradeOptions(
                course=args.course, assignment=args.assignment, course_dir=course_dir, runs_root=base / "runs",
                mode=mode, workers=workers,
                partition=args.partition or site.grading.partition or site.default_partition.name,
                limits=Limits(cell_timeout_s=site.grading.cell_timeout_s,
                              submission_timeout_s=site.grading.submission_timeout_s,
                              memory_mb=int(site.grading.memory_gb * 1024), max_processes=site.grading.max_processes),
                slurm_conf=site.slurm.conf or os.environ.get("SLURM_CONF"), slurm_bin=site.slurm.bin_dir,
                feedback=False, reports=False,  # stock autograde makes neither
            )
            t = time.perf_counter()
            first = []
            outs = grade(opts, progress=lambda o, i, n: first.append(time.perf_counter() - t) if i == 1 else None,
                         say=lambda m: None).outcomes
            return time.perf_counter() - t, outs, (first[0] if first else float("nan"))

        parallel_s, outcomes, first_s = run_aifw(mine, args.workers)
        one_s = None
        if not args.no_one_worker:
            one_s, _, _ = run_aifw(one, 1)

        a, b = scores(stock, args.assignment), scores(mine, args.assignment)
        identical = a == b and len(a) > 0
        st = [o.status for o in outcomes if o.status]
        states = {s: sum(1 for o in outcomes if o.state == s) for s in ("graded", "timed_out", "failed", "not_run")}
        print()
        print(f"submissions                 {len(students)} ({', '.join(f'{v} {k}' for k, v in states.items() if v)})")
        print(f"stock nbgrader autograde    {serial_s:8.1f} s   ({serial_s / len(students):.2f} s per submission, one process)")
        print(f"aifw grade                  {parallel_s:8.1f} s   ({mode}, {args.workers} workers)")
        print(f"speed-up                    {serial_s / parallel_s:8.2f} x")
        if one_s:
            print(f"  aifw grade, one worker    {one_s:8.1f} s   -> parallelism {one_s / parallel_s:.2f} x "
                  f"(1 -> {args.workers} workers), per-submission cost {serial_s / one_s:.2f} x (stock / one worker)")
        print(f"identical scores            {'yes' if identical else 'NO'} ({len(b)} graded cells compared)")
        print("where the time goes in aifw grade (seconds, summed over submissions):")
        print(f"  workers  prepare (copy, sanitize)  {sum(s.prepare_s for s in st):8.1f}")
        print(f"  workers  kernel start              {sum(s.kernel_start_s for s in st):8.1f}")
        print(f"  workers  execution                 {sum(s.execution_s for s in st):8.1f}")
        print(f"  merge    gradebook writes          {sum(o.merge_s for o in outcomes):8.1f}   (one process, while workers run)")
        print(f"  first result after                 {first_s:8.1f}   (snapshot, job start, first kernel)")
        if not identical:
            diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
            print(f"differences ({len(diff)}):", sorted(diff)[:10])
        return 0 if identical else 1
    finally:
        if args.keep:
            print(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
