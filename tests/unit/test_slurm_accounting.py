"""Project budgets from slurmctld's association manager (aifw.slurm.accounting)."""
import pytest

from aifw.slurm import (
    ProjectBudget,
    SlurmUnavailable,
    UserAssociations,
    format_hours,
    parse_assoc_mgr_budgets,
    parse_assoc_mgr_user,
    parse_tres_usage,
)

ASSOC_MGR = (
    "ClusterName=aifw Account=proj-llm UserName= Partition= Priority=0 ID=2 SharesRaw/Norm/Level/Factor=1/0.50/2/0.00 "
    "UsageRaw/Norm/Efctv=2700.00/0.00/0.00 ParentAccount=root(1) Lft=2 DefAssoc=No GrpJobs=N(1) "
    "GrpTRES=cpu=N(2),mem=N(2000),energy=N(0),node=N(1),billing=N(2),fs/disk=N(0),vmem=N(0),pages=N(0),gres/gpu=N(1) "
    "GrpTRESMins=cpu=N(90),mem=N(90000),energy=N(0),node=N(45),billing=N(90),fs/disk=N(0),vmem=N(0),pages=N(0),gres/gpu=120(30) "
    "GrpTRESRunMins=cpu=N(120),mem=N(0),energy=N(0),node=N(60),billing=N(120),fs/disk=N(0),vmem=N(0),pages=N(0),gres/gpu=N(60) "
    "MaxJobs= MaxJobsAccrue= MaxSubmitJobs= MaxWallPJ= MaxTRESPJ= MaxTRESPN= MaxTRESMinsPJ= MinPrioThresh=\n"
    "ClusterName=aifw Account=proj-llm UserName=researcher1(1003) Partition= Priority=0 ID=5 "
    "GrpTRESMins=cpu=N(90),gres/gpu=N(30) GrpTRESRunMins=cpu=N(0),gres/gpu=N(0)\n"
    "ClusterName=aifw Account=training UserName= Partition= Priority=0 ID=3 "
    "GrpTRESMins=cpu=N(0),mem=N(0),gres/gpu=N(0) GrpTRESRunMins=cpu=N(0),gres/gpu=N(0)\n"
)


def test_account_lines_give_limit_used_and_running_gpu_minutes():
    budgets = parse_assoc_mgr_budgets(ASSOC_MGR)
    assert set(budgets) == {"proj-llm", "training"}
    llm = budgets["proj-llm"]
    assert (llm.limit_minutes, llm.used_minutes, llm.running_minutes) == (120, 30, 60)
    assert llm.left_minutes == 90 and llm.left_hours == 1.5
    assert budgets["training"].limited is False and budgets["training"].left_hours is None


def test_a_request_over_the_budget_is_refused_in_words():
    budget = ProjectBudget("proj-llm", limit_minutes=120, used_minutes=30)
    assert budget.refusal(2, 60) == "project proj-llm has 1.5 GPU-hours left; 2 GPUs for 60 min need 2"
    assert budget.refusal(1, 90) is None
    assert budget.refusal(0, 600) is None  # CPU-only work does not touch a GPU budget
    assert ProjectBudget("open", None).refusal(8, 600) is None


def test_tres_lists_and_hours():
    assert parse_tres_usage("cpu=N(0),gres/gpu=180(45)") == {"cpu": (None, 0), "gres/gpu": (180, 45)}
    assert parse_tres_usage("") == {}
    assert [format_hours(m) for m in (90, 120, 5, 0)] == ["1.5", "2", "0.08", "0"]
    assert ProjectBudget("p", 100, used_minutes=250).left_minutes == 0


# `scontrol -o show assoc_mgr users=test-researcher1 flags=users,assoc` as Slurm 22.05 prints it (trimmed
# to the keys read), with the researcher in two projects, one of them through a partition association too.
USER_ASSOC = """Current Association Manager state
User Records
UserName=test-researcher1(1004) DefAccount=proj-llm DefWckey= AdminLevel=None
Association Records
ClusterName=aifwtest Account=root UserName= ID=1 ParentAccount= DefAssoc=No GrpTRESMins=cpu=N(80),gres/gpu=N(25) GrpTRESRunMins=cpu=N(0),gres/gpu=N(0)
ClusterName=aifwtest Account=general UserName= ID=10 ParentAccount=root(1) DefAssoc=No GrpTRESMins=cpu=N(0),gres/gpu=N(0) GrpTRESRunMins=gres/gpu=N(0)
ClusterName=aifwtest Account=proj-llm UserName= ID=3 ParentAccount=root(1) DefAssoc=No GrpTRESMins=cpu=N(13),mem=N(13233),gres/gpu=120(23) GrpTRESRunMins=cpu=N(0),gres/gpu=N(30)
ClusterName=aifwtest Account=proj-llm UserName=test-researcher1(1004) ID=4 ParentAccount= DefAssoc=Yes GrpTRESMins=cpu=N(11),gres/gpu=N(21) GrpTRESRunMins=gres/gpu=N(0)
ClusterName=aifwtest Account=training-2026 UserName= ID=6 ParentAccount=root(1) DefAssoc=No GrpTRESMins=gres/gpu=1200(2) GrpTRESRunMins=gres/gpu=N(0)
ClusterName=aifwtest Account=training-2026 UserName=test-researcher1(1004) Partition=gpu ID=8 ParentAccount= DefAssoc=No GrpTRESMins=gres/gpu=N(0) GrpTRESRunMins=gres/gpu=N(0)
ClusterName=aifwtest Account=training-2026 UserName=test-researcher1(1004) ID=9 ParentAccount= DefAssoc=No GrpTRESMins=gres/gpu=N(0) GrpTRESRunMins=gres/gpu=N(0)
"""


def test_one_assoc_mgr_answer_gives_the_users_projects_default_and_budgets():
    mine = parse_assoc_mgr_user(USER_ASSOC, "test-researcher1")
    assert mine.accounts == ("proj-llm", "training-2026") and mine.default == "proj-llm"
    assert mine.budgets == {  # the accounts' own records, not the user's share, and only the user's accounts
        "proj-llm": ProjectBudget("proj-llm", limit_minutes=120, used_minutes=23, running_minutes=30),
        "training-2026": ProjectBudget("training-2026", limit_minutes=1200, used_minutes=2, running_minutes=0)}
    # A user whose name another's begins with, or one slurmctld has not cached: in no project.
    assert parse_assoc_mgr_user(USER_ASSOC, "test-researcher") == UserAssociations((), "", {})

def test_a_default_account_without_an_association_is_no_default():
    text = USER_ASSOC.replace("DefAccount=proj-llm", "DefAccount=proj-old")
    assert parse_assoc_mgr_user(text, "test-researcher1").default == ""


def test_a_controller_without_accounting_data_is_no_answer_not_no_projects():
    text = "Current Association Manager state\nNo users currently cached in Slurm.\nNo associations currently cached in Slurm.\n"
    with pytest.raises(SlurmUnavailable, match="accounting .slurmdbd. is not in use or has not been reached"):
        parse_assoc_mgr_user(text, "test-learner1")
