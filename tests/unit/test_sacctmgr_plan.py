"""The site's projects, QOS and budgets as sacctmgr commands: only the differences (aifw.slurm.sacctmgr,
aifw.sandbox.projects)."""
from __future__ import annotations

from aifw.sandbox.projects import GENERAL_ACCOUNT, wanted
from aifw.site import example_site_path, load_site
from aifw.slurm.sacctmgr import (
    AccountingState,
    WantedAccount,
    WantedMember,
    WantedQos,
    parse_accounting_state,
    plan_commands,
)

QOS = "normal||\ntraining|gres/gpu=1|02:00:00\n"
ASSOC = ("root|||normal|\nroot|root||normal|\nproj-llm||gres/gpu=6000|normal|\n"
         "proj-llm|researcher1||normal|\nproj-llm|olduser||normal|\n"
         "training-2026||gres/gpu=3000|normal|\ntraining-2026|learner1||normal,training|training\n")
USERS = "root|root\nresearcher1|proj-llm\nlearner1|training-2026\nolduser|proj-llm\n"


def test_sacctmgr_listings_are_read_into_one_state():
    state = parse_accounting_state(QOS, ASSOC, USERS)
    assert state.qos == {"normal": (None, None), "training": (1, 120)}
    assert state.accounts == {"root": None, "proj-llm": 6000, "training-2026": 3000}
    assert state.associations[("training-2026", "learner1")] == (frozenset({"normal", "training"}), "training")
    assert state.default_accounts["researcher1"] == "proj-llm"


def test_a_fresh_database_gets_every_qos_account_budget_and_member():
    qos = [WantedQos("training", 1, 120, "Workshops: 1 GPU")]
    accounts = [WantedAccount("proj-llm", "LLM pilot", 6000, (WantedMember("researcher1", (), True),)),
                WantedAccount("training-2026", "", 3000, (WantedMember("learner1", ("training",), True),))]
    cmds = plan_commands(AccountingState(), qos, accounts)
    assert cmds == [
        ["add", "qos", "training", "Description=Workshops: 1 GPU", "MaxTRESPerUser=gres/gpu=1", "MaxWall=02:00:00"],
        ["add", "account", "proj-llm", "Description=LLM pilot", "Organization=aifw"],
        ["modify", "account", "where", "name=proj-llm", "set", "GrpTRESMins=gres/gpu=6000"],
        ["add", "user", "researcher1", "Account=proj-llm", "DefaultAccount=proj-llm"],
        ["add", "account", "training-2026", "Description=training-2026", "Organization=aifw"],
        ["modify", "account", "where", "name=training-2026", "set", "GrpTRESMins=gres/gpu=3000"],
        ["add", "user", "learner1", "Account=training-2026", "DefaultAccount=training-2026"],
        ["modify", "user", "where", "name=learner1", "account=training-2026", "set", "QOS=normal,training",
         "DefaultQOS=training"],
    ]


def test_a_database_in_line_gets_nothing_and_a_change_gets_only_the_difference():
    state = parse_accounting_state(QOS, ASSOC, USERS)
    same = [WantedAccount("proj-llm", "", 6000, (WantedMember("researcher1", (), True), WantedMember("olduser", (), True))),
            WantedAccount("training-2026", "", 3000, (WantedMember("learner1", ("training",), True),))]
    assert plan_commands(state, [WantedQos("training", 1, 120)], same) == []
    changed = [WantedAccount("proj-llm", "", None, (WantedMember("researcher1", (), True),))]
    assert plan_commands(state, [WantedQos("training", 2, None)], changed) == [
        ["modify", "qos", "where", "name=training", "set", "MaxTRESPerUser=gres/gpu=2", "MaxWall=-1"],
        ["modify", "account", "where", "name=proj-llm", "set", "GrpTRESMins=gres/gpu=-1"],
        ["delete", "user", "where", "name=olduser", "account=proj-llm"],  # no longer listed in the project
    ]


def test_a_description_cannot_smuggle_another_setting():
    cmds = plan_commands(AccountingState(), [], [WantedAccount("p1", "x' GrpTRESMins=gres/gpu=999\n", None)])
    assert cmds[0][3] == "Description=x GrpTRESMins gres/gpu 999"
    assert len(cmds[0]) == 5


def test_the_sandbox_site_puts_every_user_in_a_project_or_in_general():
    site = load_site(example_site_path("sandbox"))
    qos, accounts = wanted(site)
    assert [q.name for q in qos] == ["training"]
    by_name = {a.name: a for a in accounts}
    assert by_name["proj-llm"].gpu_minutes == 6000
    trainer = {a.name: m for a in accounts for m in a.members if m.user == "trainer1"}
    assert trainer["proj-llm"].default_account and not trainer["training-2026"].default_account
    assert by_name["training-2026"].members[0].qos == ("training",)
    general = {m.user for m in by_name[GENERAL_ACCOUNT].members}
    assert "grader-aif-foundations" in general and "researcher1" not in general
