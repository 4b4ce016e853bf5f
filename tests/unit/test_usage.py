"""`aifw usage`: sacct's job records (aifw.slurm.usage), the sums by project and user, their rendering and
plot (aifw.usage), and the command with a fake sacct (what it is asked, what it answers)."""
from __future__ import annotations

import csv
import io
import json
import stat
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from aifw.site import example_site_path
from aifw.slurm import (
    AccountingUnavailable,
    JobUsage,
    SlurmClient,
    SlurmRejected,
    parse_alloc_tres,
    parse_sacct_usage,
    sacct_usage_args,
    sacct_usage_sync,
)
from aifw.usage import UsageError, make_options, parse_time, render_csv, render_json, render_table, summarise
from aifw.usage.plot import stacks, write_plot

# sacct -X -P -n --noconvert -o JobIDRaw,User,Account,Partition,State,ElapsedRaw,AllocTRES,Start,End (22.05)
SACCT = """\
101|researcher1|proj-llm|gpu|COMPLETED|3600|billing=2,cpu=2,gres/gpu=1,mem=1000M,node=1|2026-03-02T10:00:00|2026-03-02T11:00:00
102|researcher1|proj-llm|gpu|RUNNING|1800|billing=4,cpu=4,gres/gpu=2,gres/gpu:a100=2,mem=2000M,node=1|2026-03-03T09:00:00|Unknown
103|learner1|training-2026|cpu|COMPLETED|7200|billing=1,cpu=1,mem=500M,node=1|2026-03-02T08:00:00|2026-03-02T10:00:00
104|learner2|training-2026|gpu|PENDING|0||Unknown|Unknown
105|learner2|training-2026|gpu|CANCELLED by 1004|0||None|2026-03-02T09:00:00
106|trainer1|training-2026|gpu|TIMEOUT|600|billing=1,cpu=1,gres/gpu=1,mem=500M,node=1|2026-03-04T12:00:00|2026-03-04T12:10:00

"""
# Seen on the test stack: jobs cancelled while accounting missed their end; sacct counts them up to now.
RUNAWAY = "372|learner1||cpu|CANCELLED|1432|billing=1,cpu=1,mem=1G,node=1|2026-03-02T00:24:50|Unknown\n"
ODD = """\
107.batch|researcher1|proj-llm||COMPLETED|3600|cpu=2,mem=1000M,node=1|2026-03-02T10:00:00|2026-03-02T11:00:00
sacct: error: something unexpected
108|researcher1|proj-llm|gpu|COMPLETED|abc|cpu=1|2026-03-02T10:00:00|2026-03-02T11:00:00
109|researcher1|proj-llm|gpu|COMPLETED|60|cpu=lots,gres/gpu=1|2026-03-02T10:00:00|2026-03-02T10:01:00
110|researcher1|proj-llm|gpu|COMPLETED|60|cpu=1|2026-03-02T10:00:00|2026-03-02T10:01:00|extra
"""
MARCH = (datetime(2026, 3, 1), datetime(2026, 4, 1))


# ---------------------------------------------------------------------------------- the Slurm layer
def test_sacct_lines_become_typed_job_records():
    usage = parse_sacct_usage(SACCT)
    assert usage.skipped == ()
    jobs = {j.job_id: j for j in usage.jobs}
    assert list(jobs) == ["101", "102", "103", "104", "105", "106"]
    assert jobs["101"] == JobUsage("101", "researcher1", "proj-llm", "gpu", "COMPLETED", 3600, cpus=2, gpus=1,
                                   start=datetime(2026, 3, 2, 10), end=datetime(2026, 3, 2, 11))
    assert (jobs["102"].gpus, jobs["102"].cpus, jobs["102"].is_running) == (2, 4, True)  # typed GPUs not counted twice
    assert (jobs["103"].gpus, jobs["103"].cpus) == (0, 1)
    assert jobs["104"] == JobUsage("104", "learner2", "training-2026", "gpu", "PENDING", 0, 0, 0, None, None)
    assert jobs["105"].state == "CANCELLED" and jobs["105"].seconds_between(*MARCH) == 0
    assert not any(j.is_runaway for j in jobs.values())  # the running one has no end either, rightly


def test_a_runaway_job_counts_as_a_job_with_no_hours():
    [job] = parse_sacct_usage(RUNAWAY).jobs
    assert (job.state, job.elapsed_s, job.end, job.is_runaway) == ("CANCELLED", 1432, None, True)
    assert job.seconds_between(*MARCH) == 0
    r = summarise(parse_sacct_usage(SACCT + RUNAWAY).jobs, *MARCH)
    assert r.runaway_jobs == 1 and r.total.jobs == 7
    assert round(r.total.cpu_hours, 4) == 6.1667  # as without it
    assert "1 job(s) ended in Slurm but have no end time" in render_table(r)
    assert "sacctmgr show runawayjobs" in json.loads(render_json(r))["runaway_note"]
    assert json.loads(render_json(report()))["runaway_note"] is None


def test_odd_sacct_lines_are_kept_aside_never_a_crash():
    usage = parse_sacct_usage(SACCT + ODD)
    assert len(usage.jobs) == 6
    assert [line.split("|")[0] for line in usage.skipped] == ["107.batch", "sacct: error: something unexpected",
                                                              "108", "109", "110"]


def test_typed_gpus_count_when_no_generic_count_is_listed():
    assert parse_alloc_tres("cpu=2,gres/gpu:a100=2,gres/gpu:mi250=1,odd") == {
        "cpu": "2", "gres/gpu:a100": "2", "gres/gpu:mi250": "1"}
    [job] = parse_sacct_usage("7|u1|p|gpu|COMPLETED|10|cpu=2,gres/gpu:a100=2,gres/gpu:mi250=1|2026-03-02T10:00:00|"
                              "2026-03-02T10:00:10").jobs
    assert job.gpus == 3


def test_run_time_is_cut_to_the_window():
    job = JobUsage("1", "u", "p", "gpu", "COMPLETED", 3600, 1, 1, start=datetime(2026, 3, 2, 10),
                   end=datetime(2026, 3, 2, 11))
    assert job.seconds_between(datetime(2026, 3, 2, 10, 30), datetime(2026, 3, 3)) == 1800
    assert job.seconds_between(datetime(2026, 3, 1), datetime(2026, 3, 2, 10, 15)) == 900
    assert job.seconds_between(datetime(2026, 3, 3), datetime(2026, 3, 4)) == 0
    assert job.seconds_between(*MARCH) == 3600
    unknown_start = JobUsage("2", "u", "p", "gpu", "COMPLETED", 60, 1, 1, start=None, end=datetime(2026, 3, 2))
    assert unknown_start.seconds_between(*MARCH) == 60
    running = JobUsage("3", "u", "p", "gpu", "RUNNING", 7200, 1, 1, start=datetime(2026, 3, 31, 23))
    assert running.seconds_between(*MARCH) == 3600  # up to now, cut at the window's end


def test_sacct_argv_asks_allocations_in_the_window_of_one_user_and_account():
    since, until = datetime(2026, 3, 1), datetime(2026, 3, 14, 15, 2, 11)
    base = ["-X", "-P", "-n", "--noconvert", "-o", "JobIDRaw,User,Account,Partition,State,ElapsedRaw,AllocTRES,Start,End",
            "-S", "2026-03-01T00:00:00", "-E", "2026-03-14T15:02:11"]
    assert sacct_usage_args(since, until) == [*base, "-a"]
    assert sacct_usage_args(since, until, user="researcher1", account="proj-llm") == [
        *base, "-u", "researcher1", "-A", "proj-llm"]
    with pytest.raises(ValueError, match="user 'bob;rm' is not a unix name"):
        sacct_usage_args(since, until, user="bob;rm")
    with pytest.raises(ValueError, match="project"):
        sacct_usage_args(since, until, account="proj llm")
    with pytest.raises(ValueError, match="starts"):
        sacct_usage_args(until, since)


def fake_sacct(tmp_path: Path, body: str) -> Path:
    """A folder whose `sacct` is a shell script; it writes its arguments, one a line, to argv.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "sacct"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/argv.txt\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_sacct_runs_through_the_client_and_its_lines_are_parsed(tmp_path):
    (tmp_path / "out.txt").write_text(SACCT)
    client = SlurmClient(bin_dir=str(fake_sacct(tmp_path, f"cat {tmp_path}/out.txt")))
    usage = sacct_usage_sync(client, *MARCH, account="proj-llm")
    assert len(usage.jobs) == 6
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[-3:] == ["-a", "-A", "proj-llm"] and "-X" in argv


@pytest.mark.parametrize("body, words", [
    ("echo 'Slurm accounting storage is disabled' >&2; exit 1", "keeps no job accounting"),
    ("echo 'Slurm accounting storage is disabled'; exit 0", "keeps no job accounting"),
    ("echo 'sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection to host:"
     "127.0.0.1:16819: Connection refused' >&2; echo 'sacct: error: Problem talking to the database: "
     "Connection refused' >&2; exit 1", "accounting database did not answer"),
])
def test_no_accounting_is_said_with_what_the_site_needs(tmp_path, body, words):
    client = SlurmClient(bin_dir=str(fake_sacct(tmp_path, body)))
    with pytest.raises(AccountingUnavailable, match=words) as err:
        sacct_usage_sync(client, *MARCH)
    assert "slurmdbd" in str(err.value)


def test_other_sacct_errors_stay_slurms_own_words(tmp_path):
    client = SlurmClient(bin_dir=str(fake_sacct(tmp_path, "echo 'sacct: error: Invalid user: nobody1' >&2; exit 1")))
    with pytest.raises(SlurmRejected, match="Invalid user: nobody1"):
        sacct_usage_sync(client, *MARCH, user="nobody1")


# ---------------------------------------------------------------------------------- sums and rendering
def report(**kw):
    return summarise(parse_sacct_usage(SACCT).jobs, *MARCH, **kw)


def test_gpu_and_cpu_hours_by_project_and_user_sorted_by_gpu_hours_with_totals():
    r = report()
    rows = [(x.project, x.user, x.jobs, x.running, round(x.gpu_hours, 4), round(x.cpu_hours, 4)) for x in r.rows]
    assert rows == [
        ("proj-llm", "researcher1", 2, 1, 2.0, 4.0),  # 1 h x 1 GPU + 0.5 h x 2 GPUs; 1 h x 2 + 0.5 h x 4 CPUs
        ("training-2026", "trainer1", 1, 0, 0.1667, 0.1667),
        ("training-2026", "learner1", 1, 0, 0.0, 2.0),
        ("training-2026", "learner2", 2, 0, 0.0, 0.0),  # pending and cancelled before start: jobs, no hours
    ]
    assert [(p.project, p.users, p.jobs, round(p.gpu_hours, 4), round(p.cpu_hours, 4)) for p in r.projects] == [
        ("proj-llm", 1, 2, 2.0, 4.0), ("training-2026", 3, 4, 0.1667, 2.1667)]
    t = r.total
    assert (t.jobs, t.running, t.users, round(t.gpu_hours, 4), round(t.cpu_hours, 4)) == (6, 1, 4, 2.1667, 6.1667)


def test_user_and_project_narrow_the_report():
    assert [x.user for x in report(user="learner2").rows] == ["learner2"]
    assert {x.project for x in report(project="proj-llm").rows} == {"proj-llm"}
    assert report(user="nobody").rows == () and report(user="nobody").total.jobs == 0


def test_a_job_without_an_account_is_shown_as_no_project():
    [row] = summarise(parse_sacct_usage("9|u1||cpu|COMPLETED|3600|cpu=1|2026-03-02T10:00:00|2026-03-02T11:00:00").jobs,
                      *MARCH).rows
    assert (row.project, row.cpu_hours) == ("(no project)", 1.0)


def test_table_says_the_window_the_units_and_that_running_jobs_count_up_to_now():
    text = render_table(summarise(parse_sacct_usage(SACCT).jobs, datetime(2026, 3, 1), datetime(2026, 3, 14, 15),
                                  counted_at=datetime(2026, 3, 14, 15)))
    lines = text.splitlines()
    assert lines[0] == "GPU-hours and CPU-hours from 2026-03-01 00:00:00 to 2026-03-14 15:00:00 (now); all users, all projects"
    assert "running count up to now" in lines[1]
    by_user = lines[lines.index("By project and user") + 1:]
    assert by_user[0].split() == ["project", "user", "jobs", "running", "GPU-hours", "CPU-hours"]
    assert [line.split()[1] for line in by_user[1:5]] == ["researcher1", "trainer1", "learner1", "learner2"]
    assert by_user[1].split() == ["proj-llm", "researcher1", "2", "1", "2.00", "4.00"]
    assert by_user[5].split() == ["total", "6", "1", "2.17", "6.17"]
    by_project = lines[lines.index("By project") + 1:lines.index("By project and user") - 1]
    assert [line.split()[0] for line in by_project] == ["project", "proj-llm", "training-2026", "total"]


def test_an_empty_window_says_so():
    text = render_table(summarise([], *MARCH, user="learner1"))
    assert "user learner1" in text and "No jobs in this window." in text and "(now)" not in text


def test_csv_and_json_carry_the_same_numbers():
    r = report()
    rows = list(csv.DictReader(io.StringIO(render_csv(r))))
    assert list(rows[0]) == ["project", "user", "jobs", "running", "gpu_hours", "cpu_hours"]
    assert [(x["project"], x["user"], x["gpu_hours"]) for x in rows] == [
        ("proj-llm", "researcher1", "2.0000"), ("training-2026", "trainer1", "0.1667"),
        ("training-2026", "learner1", "0.0000"), ("training-2026", "learner2", "0.0000"), ("total", "", "2.1667")]
    data = json.loads(render_json(r))
    assert data["since"] == "2026-03-01T00:00:00" and "running" in data["note"] and "GPU" in data["units"]["gpu_hours"]
    assert data["rows"][0] == {"project": "proj-llm", "user": "researcher1", "jobs": 2, "running": 1,
                               "gpu_hours": 2.0, "cpu_hours": 4.0}
    assert data["projects"][1]["users"] == 3 and data["total"]["jobs"] == 6


def test_plot_stacks_each_projects_gpu_hours_by_user_and_is_a_png(tmp_path):
    r = report()
    projects, layers = stacks(r)
    assert projects == ["proj-llm", "training-2026"]
    assert layers[0] == ("researcher1", [2.0, 0.0])
    assert dict(layers)["trainer1"] == [0.0, pytest.approx(600 / 3600)]
    path = write_plot(r, tmp_path / "usage.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    empty = write_plot(summarise([], *MARCH), tmp_path / "empty.png")
    assert empty.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------- options
NOW = datetime(2026, 3, 14, 15, 2, 11)


@pytest.mark.parametrize("text, end_of_day, expected", [
    ("2026-03-01", False, datetime(2026, 3, 1)),
    ("2026-03-31", True, datetime(2026, 4, 1)),
    ("2026-03-02T08:30", False, datetime(2026, 3, 2, 8, 30)),
    ("2026-03-02T08:30:15", True, datetime(2026, 3, 2, 8, 30, 15)),
    ("now", False, NOW),
    ("now-7days", False, datetime(2026, 3, 7, 15, 2, 11)),
    ("now-1day", False, datetime(2026, 3, 13, 15, 2, 11)),
    ("now-12hours", False, datetime(2026, 3, 14, 3, 2, 11)),
    ("now-2weeks", False, datetime(2026, 2, 28, 15, 2, 11)),
    ("now-30minutes", False, datetime(2026, 3, 14, 14, 32, 11)),
])
def test_times_sacct_can_take(text, end_of_day, expected):
    assert parse_time(text, now=NOW, end_of_day=end_of_day) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-02-30", "03/01/2026", "now+1day", "now-7years",
                                  "2026-03-01 08:00", "-7days", "2026-03-01T25:00", ""])
def test_other_times_are_refused_with_the_forms_that_work(text):
    with pytest.raises(UsageError, match="--since") as err:
        parse_time(text, now=NOW, what="--since")
    assert "YYYY-MM-DD" in str(err.value) or "no date" in str(err.value) or "no time" in str(err.value)


def test_default_window_is_this_month_up_to_now_and_until_never_passes_now():
    opts = make_options(now=NOW)
    assert (opts.since, opts.until, opts.format, opts.plot) == (datetime(2026, 3, 1), NOW, "table", None)
    assert make_options(now=NOW, since="2026-03-01", until="2026-12-31").until == NOW
    assert make_options(now=NOW, since="2026-02-01", until="2026-02-28").until == datetime(2026, 3, 1)


@pytest.mark.parametrize("kw, words", [
    ({"user": "Bob"}, "--user 'Bob' is not a unix name"),
    ({"user": "bob; rm -rf /"}, "--user"),
    ({"project": "proj llm"}, "--project 'proj llm' is not a Slurm name"),
    ({"project": "-A"}, "--project"),
    ({"format": "xml"}, "choose one of table, csv, json"),
    ({"since": "2026-03-20"}, "not in the past"),
    ({"since": "2026-03-10", "until": "2026-03-05"}, "must come before --until"),
    ({"plot": "usage.svg"}, "ending in .png"),
    ({"plot": "/no/such/folder/usage.png"}, "does not exist"),
])
def test_bad_options_are_refused_in_words(kw, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        make_options(now=NOW, **kw)


# ---------------------------------------------------------------------------------- the command
@pytest.fixture
def site_with_fake_sacct(tmp_path):
    def make(body: str) -> Path:
        data = yaml.safe_load(example_site_path("sandbox").read_text())
        data["slurm"].update(bin_dir=str(fake_sacct(tmp_path, body)), conf=None)
        path = tmp_path / "site.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path
    return make


def run_aifw(*args: str) -> int:
    from aifw.commands import main

    return main(["usage", *args])


def test_command_prints_the_report_and_writes_the_plot(tmp_path, site_with_fake_sacct, capsys):
    (tmp_path / "out.txt").write_text(SACCT)
    site = site_with_fake_sacct(f"cat {tmp_path}/out.txt")
    assert run_aifw("--site", str(site), "--since", "2026-03-01", "--until", "2026-03-31", "--format", "json",
                    "--plot", str(tmp_path / "u.png")) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["total"]["jobs"] == 6 and data["until"] == "2026-04-01T00:00:00"
    assert (tmp_path / "u.png").read_bytes()[:4] == b"\x89PNG" and "plot:" in out.err
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[argv.index("-S") + 1] == "2026-03-01T00:00:00" and argv[argv.index("-E") + 1] == "2026-04-01T00:00:00"


def test_command_narrows_to_a_user_and_tells_of_lines_it_left_out(tmp_path, site_with_fake_sacct, capsys):
    (tmp_path / "out.txt").write_text(SACCT + ODD)
    site = site_with_fake_sacct(f"cat {tmp_path}/out.txt")
    assert run_aifw("--site", str(site), "--since", "2026-03-01", "--user", "learner1", "--format", "csv") == 0
    out = capsys.readouterr()
    assert [line.split(",")[:2] for line in out.out.splitlines()[1:]] == [["training-2026", "learner1"], ["total", ""]]
    assert "5 line(s) of sacct's output were not understood" in out.err
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[-2:] == ["-u", "learner1"] and "-a" not in argv


def test_a_bad_user_is_exit_2_and_never_reaches_sacct(tmp_path, site_with_fake_sacct, capsys):
    site = site_with_fake_sacct("exit 0")
    assert run_aifw("--site", str(site), "--user", "x;id") == 2
    assert "--user 'x;id' is not a unix name" in capsys.readouterr().err
    assert not (tmp_path / "argv.txt").exists()


def test_no_accounting_is_exit_3_with_a_message_not_a_traceback(tmp_path, site_with_fake_sacct, capsys):
    site = site_with_fake_sacct("echo 'Slurm accounting storage is disabled' >&2; exit 1")
    assert run_aifw("--site", str(site)) == 3
    err = capsys.readouterr().err
    assert err.startswith("aifw usage: this Slurm keeps no job accounting") and "slurmdbd" in err
    assert "Traceback" not in err


def test_an_unknown_project_is_named_against_the_site_files_projects(tmp_path, site_with_fake_sacct, capsys):
    site = site_with_fake_sacct("exit 0")
    assert run_aifw("--site", str(site), "--project", "proj-nope") == 0
    out = capsys.readouterr()
    assert "No jobs in this window." in out.out
    assert "project 'proj-nope' is not in the site file (projects: proj-llm, training-2026)" in out.err


def test_a_slurm_that_does_not_answer_is_exit_1(tmp_path, site_with_fake_sacct, capsys):
    site = site_with_fake_sacct("echo 'sacct: error: Unable to contact slurm controller' >&2; exit 1")
    assert run_aifw("--site", str(site)) == 1
    assert "sacct failed: sacct: error: Unable to contact slurm controller" in capsys.readouterr().err
