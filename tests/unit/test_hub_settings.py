"""Hub config building (pure) and the config file JupyterHub loads."""
from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
import typing
from importlib.metadata import entry_points

import yaml
from traitlets.config import Config

from aifw.hub_config.settings import ADMIN_SERVICE, AUTHENTICATORS, apply_settings, build_settings, formgrader_services
from aifw.site import HubSettings, example_site_path, load_site, site_from_dict

CONFIG_FILE = importlib.resources.files("aifw.hub_config") / "jupyterhub_config.py"


def test_settings_from_the_sandbox_site():
    site = load_site(example_site_path("sandbox"))
    s = build_settings(site, home="/srv/aifw", admin_token="tok")
    jh = s["JupyterHub"]
    assert jh["bind_url"] == "http://127.0.0.1:8000"
    assert jh["cleanup_servers"] is False
    assert jh["spawner_class"] == "aifw-slurm" and jh["authenticator_class"] == "pam"
    assert jh["db_url"] == "sqlite:////srv/aifw/state/hub/jupyterhub.sqlite"
    assert jh["services"][0] == {"name": ADMIN_SERVICE, "api_token": "tok"}
    assert jh["load_roles"][0]["services"] == [ADMIN_SERVICE]
    assert s["Authenticator"]["admin_users"] == {"trainer1"}
    assert s["Authenticator"]["allowed_users"] == {"learner1", "learner2", "learner3", "researcher1"}
    assert s["AIFSlurmSpawner"] == {"site": site}  # the one route from the site to the spawner
    assert s["AIFSlurmSpawner"]["site"] is site


def test_the_site_authenticator_is_what_reaches_the_hub():
    site = load_site(example_site_path("sandbox"))
    assert site.hub.authenticator == "pam"
    c = Config()
    apply_settings(c, build_settings(site, home="/x"))
    assert c.JupyterHub.authenticator_class == "pam"
    assert c.PAMAuthenticator.open_sessions is False


def test_every_authenticator_the_site_file_accepts_is_a_jupyterhub_authenticator():
    accepted = set(typing.get_args(HubSettings.model_fields["authenticator"].annotation))
    assert accepted == set(AUTHENTICATORS)
    installed = {ep.name: ep for ep in entry_points(group="jupyterhub.authenticators")}
    for name, (entry_point, sections) in AUTHENTICATORS.items():
        cls = installed[entry_point].load()
        assert set(sections) <= {k.__name__ for k in cls.__mro__}, f"{name}: settings for another class"


def test_no_admin_service_without_a_token():
    s = build_settings(load_site(example_site_path("sandbox")), home="/x")
    assert ADMIN_SERVICE not in [svc["name"] for svc in s["JupyterHub"]["services"]]
    assert "aifw-admin" not in [r["name"] for r in s["JupyterHub"]["load_roles"]]


def test_no_services_or_roles_without_a_token_or_courses():
    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["courses"] = []
    data["session"] = {**data.get("session", {}), "idle_cull_minutes_cpu": 0, "idle_cull_minutes_gpu": 0}
    s = build_settings(site_from_dict(data), home="/x")
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
    code = f"c = None\ndef get_config(): return None\nexec(open({str(CONFIG_FILE)!r}).read())"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"AIFW_SITE": str(bad), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 2
    assert "cannot start the hub" in p.stderr and "partitions[0] (cpu).max_cpus" in p.stderr


def _run_config_file(prelude: str) -> subprocess.CompletedProcess:
    """Execute jupyterhub_config.py as JupyterHub would (get_config() gives the Config it fills), after
    `prelude`; prints the settings it made. Starts nothing."""
    code = "\n".join([
        "from traitlets.config import Config",
        "_c = Config()",
        "def get_config(): return _c",
        prelude,
        f"exec(open({str(CONFIG_FILE)!r}).read())",
        "print('spawner:', sorted(_c.AIFSlurmSpawner), 'authenticator:', _c.JupyterHub.authenticator_class)",
    ])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"AIFW_SITE": str(example_site_path("sandbox")), "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": os.environ.get("PYTHONPATH", "")})


def test_config_file_sets_the_site_on_the_spawner_and_the_authenticator():
    p = _run_config_file("")
    assert p.returncode == 0, p.stderr
    assert "spawner: ['site'] authenticator: pam" in p.stdout


def test_config_file_refuses_a_batchspawner_setting_from_the_command_line_naming_its_replacement():
    # JupyterHub parses its command line before it loads the config file.
    p = _run_config_file(
        "from jupyterhub.app import JupyterHub\n"
        "JupyterHub.instance().parse_command_line(['--SlurmSpawner.req_partition=gpu', '--BatchSpawnerBase.exec_prefix=sudo'])"
    )
    assert p.returncode == 2, p.stdout + p.stderr
    assert "cannot start the hub" in p.stderr
    assert "c.SlurmSpawner.req_partition: use site `partitions[]`" in p.stderr
    assert "c.BatchSpawnerBase.exec_prefix: use site `slurm.exec_prefix`" in p.stderr


def test_each_course_becomes_a_trainers_and_a_learners_group():
    s = build_settings(load_site(example_site_path("sandbox")), home="/x")
    groups = s["JupyterHub"]["load_groups"]
    assert groups["course-aif-foundations-trainers"]["users"] == ["trainer1"]
    assert groups["course-aif-foundations-learners"]["users"] == ["learner1", "learner2", "learner3"]
    assert groups["course-aif-foundations-learners"]["properties"] == {"course": "aif-foundations", "role": "learner"}


def test_a_plain_course_id_is_a_course_without_members():
    site = load_site(example_site_path("lumi-like"))
    assert site.course_ids == ["aif-foundations"] and site.courses[0].learners == []


# -- formgrader services --------------------------------------------------------------------------
def _two_course_site(**hub):
    data = yaml.safe_load(example_site_path("sandbox").read_text())
    data["hub"].update(hub)
    data["paths"] = {"runtime_prefix": "/srv/aifw"}
    data["courses"] = [
        {"id": "aif-foundations", "trainers": ["trainer1"], "learners": ["learner1"]},
        {"id": "other-course", "trainers": ["trainer2"], "grader": "grader-x", "group": "grp-x"},
    ]
    return site_from_dict(data)


def test_each_course_gets_a_formgrader_service_run_by_its_grader():
    services, _ = formgrader_services(_two_course_site())
    fg = services[0]
    assert fg["name"] == "formgrader-aif-foundations"
    assert fg["user"] == "grader-aif-foundations"
    assert fg["cwd"] == "/srv/aifw/grading/aif-foundations"
    assert fg["url"] == "http://127.0.0.1:8100"
    assert fg["command"][0] == "/srv/aifw/venv/bin/jupyterhub-singleuser"
    assert "--ServerApp.root_dir=/srv/aifw/grading/aif-foundations" in fg["command"]
    assert "--CourseDirectory.root=/srv/aifw/grading/aif-foundations" in fg["command"]
    assert "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=True" in fg["command"]
    assert fg["environment"]["JUPYTERHUB_DEFAULT_URL"] == "/formgrader"
    assert fg["environment"]["PATH"].startswith("/srv/aifw/venv/bin:")
    assert fg["environment"]["JUPYTER_CONFIG_PATH"] == "/srv/aifw/venv/etc/aifw-formgrader"
    assert fg["oauth_no_confirm"] is True
    other = services[1]
    assert (other["user"], other["url"]) == ("grader-x", "http://127.0.0.1:8101")


def test_only_the_course_trainers_group_gets_the_formgrader_role():
    _, roles = formgrader_services(_two_course_site())
    assert roles[0]["groups"] == ["course-aif-foundations-trainers"]
    assert "access:services!service=formgrader-aif-foundations" in roles[0]["scopes"]
    assert not any("other-course" in scope for scope in roles[0]["scopes"])
    assert roles[1]["groups"] == ["course-other-course-trainers"]
    # no role anywhere grants a learners' group a service
    assert not any(g.endswith("-learners") for r in roles for g in r["groups"])


def test_service_ports_come_from_the_site_and_do_not_clash_with_the_hub():
    site = _two_course_site(bind_url="http://127.0.0.1:18000", hub_port=18081, proxy_api_port=18001,
                            services_port_base=18100)
    s = build_settings(site, home="/srv/aifw", admin_token="tok")
    ports = [int(svc["url"].rsplit(":", 1)[1]) for svc in s["JupyterHub"]["services"] if "url" in svc]
    assert ports == [18100, 18101, 18103]  # the formgraders, then aifw-progress (18102 is aifw-lti-grades' with lti)
    assert not {18000, 18081, 18001} & set(ports)
    names = [svc["name"] for svc in s["JupyterHub"]["services"]]
    assert names == [ADMIN_SERVICE, "formgrader-aif-foundations", "formgrader-other-course", "idle-culler",
                     "aifw-progress"]
    assert [r["name"] for r in s["JupyterHub"]["load_roles"]] == [
        "aifw-admin", "formgrader-aif-foundations-trainers", "formgrader-other-course-trainers", "idle-culler",
        "course-aif-foundations-class", "course-other-course-class",
        "aifw-progress-service", "aifw-progress-trainers", "aifw-progress-learners", "aifw-progress-graders"]


def test_sandbox_and_test_sites_use_different_service_ports():
    import conftest  # tests/conftest.py: the test stack's site

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        test_site = load_site(conftest.write_test_site(Path(d)))
    sandbox = load_site(example_site_path("sandbox"))
    sandbox_ports = {8000, 8081, 8001} | {sandbox.hub.services_port_base + i for i in range(len(sandbox.courses))}
    test_ports = {18000, 18081, 18001} | {test_site.hub.services_port_base + i for i in range(len(test_site.courses))}
    assert not sandbox_ports & test_ports


def test_only_a_long_random_admin_token_skips_the_hubs_hashing_rounds():
    # JupyterHub stretches config-given tokens (16384 SHA-512 rounds at every request) unless told to trust them.
    site = load_site(example_site_path("sandbox"))
    assert build_settings(site, home="/srv/aifw", admin_token="a" * 64)["JupyterHub"]["trust_user_provided_tokens"] is True
    assert build_settings(site, home="/srv/aifw", admin_token="short-chosen-word")["JupyterHub"]["trust_user_provided_tokens"] is False
    assert "trust_user_provided_tokens" not in build_settings(site, home="/srv/aifw")["JupyterHub"]
