"""The trust boundary: user options → SessionRequest, table tests and properties."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifw.site import example_site_path, load_site
from aifw.slurm import PartitionInfo
from aifw.spawners.request import OPTION_KEYS, OptionsError, form_to_options, request_from_state, validate_options

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
        ({"sbatch_extra": "--uid=0"}, "unknown option(s) 'sbatch_extra'; allowed: partition, cpus"),
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
        "unknown option(s) 'evil'; allowed: partition, cpus, memory_gb, gpus, runtime_minutes, account, reservation, environment",
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
    r = validate_options({"account": "proj-mine"}, SITE, LIVE, user_accounts=["proj-mine"])
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


def test_the_users_own_slurm_associations_are_offered_besides_the_sites():
    r = validate_options({"account": "proj-mine"}, SITE, LIVE, user_accounts=["proj-mine"])
    assert r.account == "proj-mine"
    with pytest.raises(OptionsError, match="account 'proj-other' is not offered; allowed: proj-mine"):
        validate_options({"account": "proj-other"}, SITE, LIVE, user_accounts=["proj-mine"])
    r = validate_options({"partition": "dev-g", "account": "project_9"}, LUMI, user_accounts=["project_9"])
    assert r.account == "project_9"
