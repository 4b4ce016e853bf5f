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


# -- several clusters behind one hub ---------------------------------------------------------------------------
def two_clusters() -> dict:
    from two_clusters import two_cluster_data

    return two_cluster_data()


def test_a_site_with_one_cluster_is_that_cluster_named_default():
    site = load_site(example_site_path("sandbox"))
    (only,) = site.all_clusters
    assert (only.name, only.slurm, only.partitions) == ("default", site.slurm, site.partitions)
    assert not site.several_clusters and site.clusters == []
    assert site.cluster("") == site.cluster(None) == site.cluster("default") == only
    assert site.cluster("antenna") is None


def test_a_site_with_several_clusters_gives_each_its_slurm_and_partitions_the_first_being_the_default():
    site = site_from_dict(two_clusters())
    assert [c.name for c in site.all_clusters] == ["antenna", "factory"] and site.several_clusters
    antenna, factory = site.all_clusters
    assert antenna.slurm.access == "cli" and factory.slurm.access == "rest"
    assert [p.name for p in factory.partitions] == ["big", "gpu"] and factory.default_partition.name == "big"
    assert factory.partition("cpu") is None and antenna.partition("cpu") is not None
    # The Site's own slurm and partitions are the first cluster's: the sandbox, aifw grade, class and usage use them.
    assert (site.slurm, site.partitions, site.default_partition.name) == (antenna.slurm, antenna.partitions, "cpu")
    assert site.cluster("") == antenna and site.cluster("factory") == factory and site.cluster("default") is None


def test_a_site_with_several_clusters_dumps_as_it_is_written_and_loads_again():
    site = site_from_dict(two_clusters())
    dumped = site.model_dump(mode="json")
    assert "slurm" not in dumped and "partitions" not in dumped and len(dumped["clusters"]) == 2
    assert site_from_dict(yaml.safe_load(yaml.safe_dump(dumped))) == site
    single = load_site(example_site_path("sandbox"))
    assert site_from_dict(single.model_dump(mode="json")) == single and "clusters" in single.model_dump()


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["clusters"][1].update(name="antenna"), "cluster names must be unique; repeated: antenna"),
    (lambda d: d["clusters"][1].update(name="fac tory"), "key 'clusters[1] (fac tory).name': expected a Slurm name"),
    (lambda d: d.update(slurm={"conf": "/etc/slurm/slurm.conf"}),
     "key 'slurm': with `clusters`, each cluster has its own slurm settings: move these under clusters[].slurm "
     "(of antenna, factory), or remove them"),
    (lambda d: d.update(partitions=[{"name": "cpu"}]),
     "key 'partitions': with `clusters`, each cluster lists its own partitions: move these under "
     "clusters[].partitions (of antenna, factory), or remove them"),
    (lambda d: d["clusters"][1].pop("partitions"), "key 'clusters[1] (factory).partitions': required but missing"),
    (lambda d: d["clusters"][1].update(partitions=[]), "key 'clusters[1] (factory).partitions': expected at least 1 item(s)"),
    (lambda d: d["clusters"][1]["partitions"].append({"name": "big"}),
     "key 'clusters[1] (factory).partitions': partition names must be unique; repeated: big"),
    (lambda d: d["clusters"][1]["partitions"][1].update(default=True),
     "key 'clusters[1] (factory).partitions': at most one partition may be the default; got big, gpu"),
    (lambda d: d["clusters"][1]["partitions"][0].update(max_gpus=-2),
     "key 'clusters[1] (factory).partitions[0] (big).max_gpus': expected a number >= 0; got -2"),
    (lambda d: d["clusters"][1]["slurm"].pop("rest_url"),
     "key 'clusters[1] (factory).slurm': access: rest needs rest_url (see docs/admin.md)"),
    (lambda d: d["clusters"][1]["slurm"].update(rest_url="http://factory.example.eu:6820"),
     "key 'clusters[1] (factory).slurm.rest_url': tokens would cross the network in plain text"),
    (lambda d: d["clusters"][1]["slurm"].update(partition="big"),
     "key 'clusters[1] (factory).slurm.partition': unknown key"),
    (lambda d: d["clusters"][0]["slurm"].pop("conf"),
     "key 'clusters': cluster(s) antenna reached with access: cli need their own slurm.conf"),
    (lambda d: d["clusters"].append({**d["clusters"][0], "name": "copy"}),
     "key 'clusters': clusters antenna and copy are both reached through slurm.conf /opt/aifw/state/slurm/slurm.conf: "
     "give each cluster its own slurm.conf or slurmrestd"),
    (lambda d: d["clusters"].append({**d["clusters"][1], "name": "twin"}),
     "clusters factory and twin are both reached through slurmrestd http://127.0.0.1:6920"),
    (lambda d: d["clusters"][0].update(cluster_name="x"), "key 'clusters[0] (antenna).cluster_name': unknown key"),
])
def test_a_wrong_clusters_section_names_the_key_and_what_to_fix(mutate, expected):
    data = two_clusters()
    mutate(data)
    with pytest.raises(SiteError) as err:
        site_from_dict(data, source="site.yaml")
    assert expected in str(err.value)
    assert len(err.value.problems) == 1, err.value.problems  # one mistake, one problem (not echoed elsewhere)


def test_one_named_cluster_is_a_site_with_one_cluster_that_needs_no_conf():
    data = two_clusters()
    data["clusters"] = data["clusters"][:1]
    data["clusters"][0]["slurm"].pop("conf")
    site = site_from_dict(data)
    assert [c.name for c in site.all_clusters] == ["antenna"] and not site.several_clusters


def test_a_site_with_neither_partitions_nor_clusters_says_partitions_are_missing():
    data = sandbox_data()
    data["partitions"] = []
    with pytest.raises(SiteError, match=r"key 'partitions': expected at least 1 item\(s\)"):
        site_from_dict(data)


def test_the_admin_guides_example_of_several_clusters_is_a_valid_site():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "admin.md").read_text()
    section = text.split("### Several clusters behind one hub", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    site = site_from_dict({"name": "antenna hub", **yaml.safe_load(example)}, source="docs/admin.md")
    assert [(c.name, c.slurm.access) for c in site.all_clusters] == [("antenna", "cli"), ("factory", "rest")]
