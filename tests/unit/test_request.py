"""The trust boundary: user options → SessionRequest, table tests and properties."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifw.site import example_site_path, load_site
from aifw.slurm import PartitionInfo, ProjectBudget
from aifw.spawners.request import (
    OPTION_KEYS,
    OptionsError,
    UserProjects,
    form_to_options,
    request_from_state,
    validate_options,
)

SITE = load_site(example_site_path("sandbox"))
LUMI = load_site(example_site_path("lumi-like"))
LIVE = {
    "cpu": PartitionInfo("cpu", cpus_per_node=16, memory_mb_per_node=16000, gpus_per_node=2, max_time_minutes=480),
    "gpu": PartitionInfo("gpu", cpus_per_node=16, memory_mb_per_node=16000, gpus_per_node=2, max_time_minutes=240),
    "debug": PartitionInfo("debug", cpus_per_node=16, memory_mb_per_node=16000, gpus_per_node=2, max_time_minutes=30),
}


def test_defaults_come_from_the_site():
    r = validate_options({}, SITE, LIVE)
    assert (r.partition, r.cpus, r.memory_gb, r.gpus, r.runtime_minutes, r.environment) == ("cpu", 1, 1, 0, 60, "default")


def test_a_full_valid_request():
    r = validate_options({"partition": "gpu", "cpus": 2, "memory_gb": 4, "gpus": 2, "runtime_minutes": 120}, SITE, LIVE)
    assert (r.partition, r.cpus, r.memory_gb, r.gpus, r.runtime_minutes, r.gpu_type) == ("gpu", 2, 4, 2, 120, None)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"partition": "gpu", "gpus": 4}, "partition gpu allows at most 2 GPUs per node; you asked for 4"),
        ({"partition": "cpu", "gpus": 1}, "partition cpu has no GPUs; you asked for 1; GPUs are on: gpu"),
        ({"partition": "debug", "runtime_minutes": 31}, "partition debug allows at most 30 minutes of walltime; you asked for 31"),
        ({"partition": "nope"}, "partition 'nope' is not offered here; choose one of: cpu, gpu, debug"),
        ({"cpus": 0}, "partition cpu allows 1 to 4 CPUs; you asked for 0"),
        ({"cpus": 10**9}, "partition cpu allows 1 to 4 CPUs; you asked for 1000000000"),
        ({"memory_gb": -5}, "allows 1 to 8 GB of memory; you asked for -5"),
        ({"gpus": -1, "partition": "gpu"}, "partition gpu allows at most 2 GPUs per node; you asked for -1"),
        ({"runtime_minutes": 0}, "runtime_minutes must be at least 1"),
        ({"cpus": "2"}, "cpus must be a whole number, not '2'"),
        ({"cpus": 2.5}, "cpus must be a whole number, not 2.5"),
        ({"gpus": True}, "gpus must be a whole number, not True"),
        ({"partition": ["cpu"]}, "partition must be text"),
        ({"partition": "x" * 500}, "partition is too long (500 characters"),
        ({"account": "someone-else"}, "account 'someone-else' is not offered; allowed: none are configured"),
        ({"reservation": "vip"}, "reservation 'vip' is not offered"),
        ({"environment": "$(curl evil)"}, "environment '$(curl evil)' is not offered; choose one of: default"),
        ({"sbatch_extra": "--uid=0"}, "unknown option(s) 'sbatch_extra'; allowed: cluster, partition, cpus"),
        ({"partition": "cpu\n#SBATCH --uid=0"}, "is not offered here"),
        ({"partition": "cpu; id"}, "is not offered here"),
        ({"partition": "cpu`id`"}, "is not offered here"),
        ({"partition": "cpü"}, "is not offered here"),
    ],
)
def test_bad_requests_are_refused_saying_what_is_allowed(options, message):
    with pytest.raises(OptionsError) as err:
        validate_options(options, SITE, LIVE)
    assert message in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(OptionsError) as err:
        validate_options({"cpus": 99, "memory_gb": 99, "bogus": 1}, SITE, LIVE)
    assert len(err.value.problems) == 3


def test_live_limits_cap_the_site_policy():
    small = dict(LIVE, gpu=PartitionInfo("gpu", cpus_per_node=2, memory_mb_per_node=4096, gpus_per_node=1, max_time_minutes=30))
    with pytest.raises(OptionsError, match="allows at most 1 GPUs per node; you asked for 2"):
        validate_options({"partition": "gpu", "gpus": 2}, SITE, small)
    with pytest.raises(OptionsError, match="allows 1 to 2 CPUs"):
        validate_options({"partition": "gpu", "cpus": 3}, SITE, small)


def test_a_partition_missing_or_down_in_slurm_is_refused():
    with pytest.raises(OptionsError, match="not in Slurm right now"):
        validate_options({"partition": "gpu"}, SITE, {"cpu": LIVE["cpu"]})
    down = dict(LIVE, cpu=PartitionInfo("cpu", available=False, cpus_per_node=16, memory_mb_per_node=16000))
    with pytest.raises(OptionsError, match="is down in Slurm"):
        validate_options({}, SITE, down)


def test_without_slurm_the_site_policy_alone_applies():
    assert validate_options({"partition": "gpu", "gpus": 2}, SITE, None).gpus == 2


def test_hidden_partitions_and_required_accounts_on_a_real_site():
    with pytest.raises(OptionsError, match="not offered here"):
        validate_options({"partition": "debug", "account": "project_465000001"}, LUMI)
    with pytest.raises(OptionsError, match="an account \\(project\\) is required"):
        validate_options({"partition": "dev-g"}, LUMI)
    r = validate_options({"partition": "small-g", "account": "project_465000001", "gpus": 8, "reservation": "aif-training-2026"}, LUMI)
    assert r.account == "project_465000001" and r.reservation == "aif-training-2026"


def test_form_data_is_parsed_to_typed_values_once():
    opts = form_to_options({"partition": ["gpu"], "gpus": ["1"], "runtime_minutes": [" 45 "], "cpus": [""], "_xsrf": ["t"]})
    assert opts == {"partition": "gpu", "gpus": 1, "runtime_minutes": 45}
    assert validate_options(opts, SITE, LIVE).gpus == 1
    hostile = form_to_options({"gpus": ["1; id"], "cpus": ["2.5"], "evil": ["$(id)"]})
    assert hostile == {"gpus": "1; id", "cpus": "2.5", "evil": "$(id)"}  # kept as text: validation says why
    with pytest.raises(OptionsError) as err:
        validate_options(hostile, SITE, LIVE)
    assert err.value.problems == [
        "unknown option(s) 'evil'; allowed: cluster, partition, cpus, memory_gb, gpus, runtime_minutes, stop_if_unused_s, account, reservation, environment",
        "cpus must be a whole number, not '2.5'",
        "gpus must be a whole number, not '1; id'",
    ]


def test_digit_strings_are_numbers_only_from_the_form():
    # REST user_options are JSON: a number is a number there.
    with pytest.raises(OptionsError, match="gpus must be a whole number, not '1'"):
        validate_options({"partition": "gpu", "gpus": "1"}, SITE, LIVE)


# -- the spawner's state, read back after a hub restart ------------------------------------------------
def test_a_stored_request_comes_back_as_it_was():
    r = validate_options({"partition": "gpu", "gpus": 2, "cpus": 3, "runtime_minutes": 90}, SITE, LIVE)
    assert request_from_state(r.as_user_options(), SITE) == r


def test_a_stored_account_from_the_users_associations_comes_back():
    r = validate_options({"account": "proj-mine"}, SITE, LIVE, projects=UserProjects.from_slurm(["proj-mine"], "", None))
    assert request_from_state(r.as_user_options(), SITE).account == "proj-mine"


@pytest.mark.parametrize("stored, message", [
    ({"partition": "cpu", "account": "a;id"}, "account 'a;id' is not offered"),
    ({"partition": "cpu\n#SBATCH --uid=0"}, "is not offered here"),
    ({"partition": "gpu", "gpus": 3}, "allows at most 2 GPUs per node; you asked for 3"),
    ({"partition": "cpu", "cmd": ["/bin/sh"]}, "unknown option(s) 'cmd'"),
    (["cpu"], "the stored request is not a mapping"),
])
def test_a_stored_request_that_no_longer_fits_or_was_tampered_with_is_refused(stored, message):
    with pytest.raises(OptionsError) as err:
        request_from_state(stored, SITE)
    assert message in str(err.value)


# -- properties over the boundary -----------------------------------------------------------------
NAMES_OK = {"partition": {"cpu", "gpu", "debug"}, "environment": {"default"}, "account": {""}, "reservation": {""}}
anything = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=200), st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
hostile_text = st.sampled_from(["\n#SBATCH --uid=0", "; rm -rf ~", "$(id)", "`id`", "cpu\x00", "gpu\r\n", "ｃｐｕ", "../../etc", "-p gpu"])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(list(OPTION_KEYS) + ["extra", "cmd", "port"]), st.one_of(anything, hostile_text), max_size=8))
def test_any_input_is_either_refused_or_a_request_within_limits(options):
    try:
        r = validate_options(options, SITE, LIVE)
    except OptionsError as err:
        assert err.problems and all(isinstance(p, str) and len(p) < 400 for p in err.problems)
        return
    part = SITE.partition(r.partition)
    assert r.partition in NAMES_OK["partition"] and r.environment in NAMES_OK["environment"]
    assert r.account == "" and r.reservation == ""
    assert 1 <= r.cpus <= part.max_cpus and 1 <= r.memory_gb <= part.max_memory_gb
    assert 0 <= r.gpus <= part.max_gpus and 1 <= r.runtime_minutes <= part.max_runtime_minutes


@given(st.text(min_size=1, max_size=80))
def test_no_string_but_an_offered_name_passes(name):
    for key in ("partition", "environment", "account", "reservation"):
        try:
            r = validate_options({key: name}, SITE, LIVE)
        except OptionsError:
            continue
        assert getattr(r, key) in NAMES_OK[key] | {"cpu"}


# -- projects: the user's real associations and their GPU budgets ------------------------------------------
def mine(*accounts: str, default: str = "", **budgets: ProjectBudget) -> UserProjects:
    return UserProjects.from_slurm(list(accounts), default, {b.account: b for b in budgets.values()})


def test_the_users_slurm_associations_are_the_projects_offered():
    projects = mine("proj-mine", "training-2026", default="training-2026")
    assert projects.accounts == ("training-2026", "proj-mine")  # the default first
    assert validate_options({"account": "proj-mine"}, SITE, LIVE, projects=projects).account == "proj-mine"
    with pytest.raises(OptionsError) as err:
        validate_options({"account": "proj-other"}, SITE, LIVE, projects=projects)
    assert err.value.problems == ["you are not a member of project 'proj-other' (you have no Slurm association with "
                                  "it); your projects: training-2026, proj-mine"]
    with pytest.raises(OptionsError, match="you are in no project; ask an administrator to add you to one"):
        validate_options({"account": "proj-other"}, SITE, LIVE, projects=mine())
    # With the real associations known, an account the site lists but the user is not in is refused too
    # (sbatch would refuse it); the site's list is what is offered when accounting does not answer.
    with pytest.raises(OptionsError, match="not a member of project 'project_465000001'.*your projects: project_9"):
        validate_options({"partition": "dev-g", "account": "project_465000001"}, LUMI, projects=mine("project_9"))
    assert validate_options({"partition": "dev-g", "account": "project_9"}, LUMI, projects=mine("project_9")).account == "project_9"


def test_without_accounting_the_site_files_projects_are_offered():
    projects = UserProjects.from_site(SITE, "trainer1")
    assert (projects.accounts, projects.default, projects.known, projects.budgets) == (
        ("proj-llm", "training-2026"), "proj-llm", False, None)
    assert validate_options({"account": "proj-llm", "partition": "gpu", "gpus": 2, "runtime_minutes": 240}, SITE,
                            LIVE, projects=projects).account == "proj-llm"  # no budget known: Slurm decides
    with pytest.raises(OptionsError, match="account 'proj-x' is not offered; allowed: proj-llm, training-2026"):
        validate_options({"account": "proj-x"}, SITE, LIVE, projects=projects)
    assert UserProjects.from_site(LUMI, "anyone").accounts == ("project_465000001", "project_465000002")


LLM = ProjectBudget("proj-llm", limit_minutes=120, used_minutes=30)  # 1.5 GPU-hours left


@pytest.mark.parametrize("options", [
    {"partition": "gpu", "gpus": 2, "runtime_minutes": 60, "account": "proj-llm"},
    {"partition": "gpu", "gpus": 2, "runtime_minutes": 60},  # no account named: the user's default one
])
def test_a_gpu_request_over_the_projects_budget_is_refused_saying_what_is_left(options):
    projects = mine("proj-llm", "training-2026", default="proj-llm", llm=LLM)
    with pytest.raises(OptionsError) as err:
        validate_options(options, SITE, LIVE, projects=projects)
    [problem] = err.value.problems
    assert problem.startswith("project proj-llm has 1.5 GPU-hours left; 2 GPUs for 60 min need 2; ")
    assert "ask for fewer GPUs or a shorter walltime, or choose another project" in problem


def test_requests_that_fit_or_are_not_billed_in_gpu_hours_pass():
    projects = mine("proj-llm", "open", default="proj-llm", llm=LLM, other=ProjectBudget("open", None, 5000))
    assert validate_options({"partition": "gpu", "gpus": 1, "runtime_minutes": 90}, SITE, LIVE, projects=projects).gpus == 1
    assert validate_options({"partition": "cpu", "runtime_minutes": 480}, SITE, LIVE, projects=projects).gpus == 0
    assert validate_options({"partition": "gpu", "gpus": 2, "runtime_minutes": 240, "account": "open"}, SITE, LIVE,
                            projects=projects).account == "open"  # no GPU-hours limit
    unknown = UserProjects.from_slurm(["proj-llm"], "proj-llm", None)  # budgets could not be read
    assert validate_options({"partition": "gpu", "gpus": 2, "runtime_minutes": 240}, SITE, LIVE, projects=unknown).gpus == 2


def test_an_exhausted_budget_refuses_every_gpu_request_and_other_problems_come_first():
    projects = mine("proj-llm", default="proj-llm", llm=ProjectBudget("proj-llm", 120, used_minutes=130))
    with pytest.raises(OptionsError, match="project proj-llm has 0 GPU-hours left; 1 GPU for 1 min need 0.02"):
        validate_options({"partition": "gpu", "gpus": 1, "runtime_minutes": 1}, SITE, LIVE, projects=projects)
    with pytest.raises(OptionsError) as err:  # the GPU count is wrong: the budget is not the point yet
        validate_options({"partition": "gpu", "gpus": 3}, SITE, LIVE, projects=projects)
    assert err.value.problems == ["partition gpu allows at most 2 GPUs per node; you asked for 3"]


def test_a_request_beyond_the_projects_qos_is_refused_before_sbatch():
    # training-2026 runs under the site's QOS `training`: 1 GPU per user, 120 minutes.
    learner = mine("training-2026", default="training-2026")
    with pytest.raises(OptionsError, match=r"project training-2026 runs under QOS training, which allows 1 GPU\(s\) "
                                           r"per user; you asked for 2"):
        validate_options({"partition": "gpu", "gpus": 2}, SITE, LIVE, projects=learner)
    with pytest.raises(OptionsError, match="which allows 120 minutes of walltime; you asked for 180"):
        validate_options({"partition": "gpu", "gpus": 1, "runtime_minutes": 180}, SITE, LIVE, projects=learner)
    assert validate_options({"partition": "gpu", "gpus": 1, "runtime_minutes": 120}, SITE, LIVE, projects=learner).gpus == 1
    # proj-llm has no QOS of its own: its members may ask for the partition's most.
    assert validate_options({"partition": "gpu", "gpus": 2}, SITE, LIVE,
                            projects=mine("proj-llm", default="proj-llm")).gpus == 2


# -- several clusters: the cluster first, then everything is checked against it ----------------------------------
from two_clusters import two_cluster_site  # noqa: E402

TWO = two_cluster_site()  # antenna: the sandbox's cluster (cpu, gpu, debug); factory: big (default) and gpu
FACTORY_LIVE = {
    "big": PartitionInfo("big", cpus_per_node=64, memory_mb_per_node=512000, gpus_per_node=4, max_time_minutes=720),
    "gpu": PartitionInfo("gpu", cpus_per_node=8, memory_mb_per_node=64000, gpus_per_node=1, max_time_minutes=480),
}
FACTORY_PROJECTS = mine("factory-proj", default="factory-proj")


@pytest.mark.parametrize("options, live, expected", [
    ({}, LIVE, ("antenna", "cpu", "")),  # nothing named: the first cluster and its default partition
    ({"cluster": "antenna", "partition": "debug"}, LIVE, ("antenna", "debug", "")),
    ({"cluster": "factory"}, FACTORY_LIVE, ("factory", "big", "factory-proj")),
    ({"cluster": "factory", "partition": "gpu", "gpus": 1}, FACTORY_LIVE, ("factory", "gpu", "factory-proj")),
    ({"cluster": " factory ", "partition": "big", "reservation": "factory-event"}, None, ("factory", "big", "factory-proj")),
])
def test_a_request_on_a_site_with_several_clusters_names_its_cluster(options, live, expected):
    projects = FACTORY_PROJECTS if expected[0] == "factory" else None
    account = {"account": "factory-proj"} if expected[0] == "factory" else {}
    r = validate_options({**options, **account}, TWO, live, projects=projects)
    assert (r.cluster, r.partition, r.account) == expected
    assert r.as_user_options()["cluster"] == expected[0]  # what the state and JupyterHub keep
    assert request_from_state(r.as_user_options(), TWO) == r


@pytest.mark.parametrize("options, message", [
    ({"cluster": "west"}, "cluster 'west' is not offered here; choose one of: antenna, factory"),
    ({"cluster": ["factory"]}, "cluster must be text, not ['factory']"),
    ({"cluster": "antenna", "partition": "big"},
     "partition 'big' is not offered on cluster antenna (it is a partition of cluster factory: choose that cluster "
     "first); choose one of: cpu, gpu, debug"),
    ({"cluster": "factory", "partition": "cpu", "account": "factory-proj"},
     "partition 'cpu' is not offered on cluster factory (it is a partition of cluster antenna: choose that cluster "
     "first); choose one of: big, gpu"),
    ({"cluster": "factory", "partition": "nope"}, "partition 'nope' is not offered on cluster factory; choose one of: big, gpu"),
    ({"partition": "big"}, "partition 'big' is not offered on cluster antenna (it is a partition of cluster factory"),
    ({"cluster": "factory", "partition": "gpu", "gpus": 2, "account": "factory-proj"},
     "partition gpu allows at most 1 GPUs per node; you asked for 2"),  # the factory's gpu, not the antenna's
    ({"cluster": "factory"}, "an account (project) is required; choose one of: factory-proj"),  # its account_required
    ({"cluster": "factory", "account": "factory-proj", "reservation": "workshop"},
     "reservation 'workshop' is not offered; allowed: factory-event"),  # the antenna's reservation
    ({"cluster": "antenna", "reservation": "factory-event"}, "reservation 'factory-event' is not offered; allowed: workshop"),
    ({"cluster": "factory", "account": "training-2026"}, "account 'training-2026' is not offered; allowed: factory-proj"),
])
def test_a_partition_account_or_reservation_of_another_cluster_is_refused_naming_the_cluster(options, message):
    live = FACTORY_LIVE if options.get("cluster") == "factory" else LIVE
    with pytest.raises(OptionsError) as err:
        validate_options(options, TWO, live)
    assert message in str(err.value)


def test_on_a_site_with_one_cluster_the_cluster_may_be_named_and_is_not_kept():
    r = validate_options({"cluster": "default", "partition": "gpu"}, SITE, LIVE)
    assert r.cluster == "" and "cluster" not in r.as_user_options()
    assert r == validate_options({"partition": "gpu"}, SITE, LIVE)
    with pytest.raises(OptionsError, match="cluster 'factory' is not offered here: this hub has one cluster; leave cluster out"):
        validate_options({"cluster": "factory"}, SITE, LIVE)


def test_a_stored_request_of_a_cluster_the_site_no_longer_has_is_refused():
    stored = {"cluster": "factory", "partition": "big", "account": "factory-proj"}
    assert request_from_state(stored, TWO).cluster == "factory"
    with pytest.raises(OptionsError, match="cluster 'factory' is not offered here"):
        request_from_state(stored, SITE)


def test_without_accounting_each_cluster_offers_its_own_accounts():
    assert UserProjects.from_site(TWO, "learner1", "factory").accounts == ("factory-proj", "training-2026")
    assert UserProjects.from_site(TWO, "learner1").accounts == ("training-2026",)  # the antenna lists none itself


@pytest.mark.parametrize("raw, cluster", [
    ({}, "antenna"), (None, "antenna"), ({"cluster": ""}, "antenna"), ({"cluster": "factory"}, "factory"),
    ({"cluster": "west"}, None), ({"cluster": 3}, None), ({"cluster": "f" * 500}, None),
])
def test_the_cluster_whose_live_state_a_request_needs_is_found_before_validation(raw, cluster):
    from aifw.spawners.request import requested_cluster

    found = requested_cluster(raw, TWO)
    assert (found.name if found is not None else None) == cluster
