"""The site file: schema errors name the key and what is expected; examples are valid."""
from __future__ import annotations

import pytest
import yaml

from aifw.site import SiteError, example_site_path, load_site, site_from_dict


def sandbox_data() -> dict:
    return yaml.safe_load(example_site_path("sandbox").read_text())


@pytest.mark.parametrize("name", ["sandbox", "lumi-like"])
def test_example_sites_are_valid(name):
    site = load_site(example_site_path(name))
    assert site.partitions and site.default_partition.name in {p.name for p in site.partitions}


def test_sandbox_site_has_the_partitions_and_demo_accounts_the_brief_asks_for():
    site = load_site(example_site_path("sandbox"))
    assert {p.name for p in site.partitions} >= {"cpu", "gpu", "debug"}
    assert site.default_partition.name == "cpu"
    assert site.partition("gpu").max_gpus == 2 and site.partition("cpu").max_gpus == 0
    assert site.partition("debug").max_runtime_minutes <= 60
    assert {"learner1", "learner2", "learner3", "trainer1", "researcher1"} <= set(site.users)
    assert site.hub.admin_users == ["trainer1"]


def test_lumi_like_site_shows_accounts_modules_and_hidden_partitions():
    site = load_site(example_site_path("lumi-like"))
    assert {"small-g", "standard-g", "dev-g"} <= {p.name for p in site.partitions}
    assert site.slurm.account_required and site.slurm.accounts
    assert any("module load" in e.prologue for e in site.environments)
    assert "debug" not in {p.name for p in site.visible_partitions}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["partitions"][1].update(max_gpus=-1), "key 'partitions[1] (gpu).max_gpus': expected a number >= 0; got -1"),
        (lambda d: d["partitions"][0].update(max_cpus="four"), "key 'partitions[0] (cpu).max_cpus': expected a whole number; got 'four'"),
        (lambda d: d["hub"].update(admin_user=["x"]), "key 'hub.admin_user': unknown key (check its spelling against docs/config-reference.md)"),
        (lambda d: d.pop("partitions"), "key 'partitions': required but missing"),
        (lambda d: d["partitions"][0].update(name="cpu; rm -rf /"), "key 'partitions[0] (cpu; rm -rf /).name': expected a Slurm name"),
        (lambda d: d["partitions"].append(dict(d["partitions"][0])), "partition names must be unique; repeated: cpu"),
        (lambda d: d["partitions"][1].update(default=True), "at most one partition may be the default"),
        (lambda d: d["partitions"][2].update(default_runtime_minutes=90), "default_runtime_minutes (90) is above max_runtime_minutes (30)"),
        (lambda d: d["sandbox"]["demo_users"].append({"name": "Bad User"}), "key 'sandbox.demo_users[5] (Bad User).name': expected a unix name"),
        (lambda d: d["hub"].update(authenticator="ldap"), "key 'hub.authenticator': expected 'pam'"),
    ],
)
def test_a_wrong_site_file_names_the_key_and_what_is_expected(mutate, expected):
    data = sandbox_data()
    mutate(data)
    with pytest.raises(SiteError) as err:
        site_from_dict(data, source="site.yaml")
    assert str(err.value).startswith("site.yaml: invalid site file")
    assert expected in str(err.value)


def test_unreadable_and_non_yaml_files_get_clear_errors(tmp_path):
    with pytest.raises(SiteError, match="cannot read the file"):
        load_site(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("partitions: [\n")
    with pytest.raises(SiteError, match="not valid YAML"):
        load_site(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SiteError, match="mapping at the top level"):
        load_site(scalar)


def test_aifw_site_env_selects_the_site_file(tmp_path, monkeypatch):
    data = sandbox_data()
    data["name"] = "from env"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AIFW_SITE", str(path))
    assert load_site().name == "from env"


def test_a_user_gets_the_courses_they_take_or_teach_and_open_ones():
    from aifw.site import site_from_dict

    site = site_from_dict({"name": "s", "partitions": [{"name": "cpu"}], "courses": [
        {"id": "closed", "learners": ["ann"], "trainers": ["tom"]},
        "open-to-all",
    ]})
    assert site.courses_of("ann") == ["closed", "open-to-all"]
    assert site.courses_of("tom") == ["closed", "open-to-all"]
    assert site.courses_of("bob") == ["open-to-all"]


def test_a_key_written_twice_is_refused_not_silently_overwritten(tmp_path):
    text = example_site_path("sandbox").read_text().replace("name: ", "name: first\nname: ", 1)
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(SiteError) as err:
        load_site(path)
    assert "found the key 'name' twice" in str(err.value)
    assert str(path) in str(err.value)
