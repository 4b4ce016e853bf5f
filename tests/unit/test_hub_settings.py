"""Hub config building (pure) and the config file JupyterHub loads."""
from __future__ import annotations

import importlib.resources
import subprocess
import sys

import yaml

from aifw.hub_config.settings import ADMIN_SERVICE, apply_settings, build_settings
from aifw.site import example_site_path, load_site


def test_settings_from_the_sandbox_site():
    site = load_site(example_site_path("sandbox"))
    s = build_settings(site, home="/srv/aifw", admin_token="tok", site_file="/srv/aifw/state/site.yaml")
    jh = s["JupyterHub"]
    assert jh["bind_url"] == "http://127.0.0.1:8000"
    assert jh["cleanup_servers"] is False
    assert jh["spawner_class"] == "aifw-slurm" and jh["authenticator_class"] == "pam"
    assert jh["db_url"] == "sqlite:////srv/aifw/state/hub/jupyterhub.sqlite"
    assert jh["services"] == [{"name": ADMIN_SERVICE, "api_token": "tok"}]
    assert jh["load_roles"][0]["services"] == [ADMIN_SERVICE]
    assert s["Authenticator"]["admin_users"] == {"trainer1"}
    assert s["Authenticator"]["allowed_users"] == {"learner1", "learner2", "learner3", "researcher1"}
    assert s["AIFSlurmSpawner"]["site_file"] == "/srv/aifw/state/site.yaml"


def test_no_admin_service_without_a_token():
    s = build_settings(load_site(example_site_path("sandbox")), home="/x")
    assert "services" not in s["JupyterHub"] and "load_roles" not in s["JupyterHub"]


def test_apply_settings_only_sets():
    from traitlets.config import Config

    c = Config()
    apply_settings(c, {"JupyterHub": {"bind_url": "http://x:1"}, "Spawner": {"start_timeout": 5}})
    assert c.JupyterHub.bind_url == "http://x:1" and c.Spawner.start_timeout == 5


def test_the_spawner_is_registered_under_the_jupyterhub_entry_point():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="jupyterhub.spawners")}
    assert eps["aifw-slurm"].load().__name__ == "AIFSlurmSpawner"


def test_config_file_refuses_a_wrong_site_file_naming_the_key(tmp_path):
    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["partitions"][0]["max_cpus"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    config = importlib.resources.files("aifw.hub_config") / "jupyterhub_config.py"
    code = f"c = None\ndef get_config(): return None\nexec(open({str(config)!r}).read())"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"AIFW_SITE": str(bad), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 2
    assert "cannot start the hub" in p.stderr and "partitions[0].max_cpus" in p.stderr


def test_each_course_becomes_a_trainers_and_a_learners_group():
    s = build_settings(load_site(example_site_path("sandbox")), home="/x")
    groups = s["JupyterHub"]["load_groups"]
    assert groups["course-aif-foundations-trainers"]["users"] == ["trainer1"]
    assert groups["course-aif-foundations-learners"]["users"] == ["learner1", "learner2", "learner3"]
    assert groups["course-aif-foundations-learners"]["properties"] == {"course": "aif-foundations", "role": "learner"}


def test_a_plain_course_id_is_a_course_without_members():
    site = load_site(example_site_path("lumi-like"))
    assert site.course_ids == ["aif-foundations"] and site.courses[0].learners == []
