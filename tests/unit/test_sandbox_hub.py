"""The sandbox's hub process: the services a killed hub left running are found by what JupyterHub put in
their environment (aifw.sandbox.hub.service_processes), and only those."""
from __future__ import annotations

from aifw.sandbox.hub import service_processes
from aifw.sandbox.layout import Stack
from aifw.site import example_site_path, load_site


def fake_proc(root, processes: dict[str, dict[str, str] | None]):
    for pid, env in processes.items():
        d = root / pid
        d.mkdir(parents=True)
        if env is not None:  # None: a process whose environ cannot be read (gone, or another user's)
            (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0")
    (root / "self").mkdir()
    return root


def test_only_this_hubs_own_services_are_found(tmp_path):
    stack = Stack(home=tmp_path / "home", site=load_site(example_site_path("sandbox")))
    port = stack.site.hub.hub_port
    course = stack.site.courses[0].id
    mine = {"JUPYTERHUB_SERVICE_NAME": f"formgrader-{course}", "JUPYTERHUB_API_URL": f"http://198.18.0.1:{port}/hub/api"}
    proc = fake_proc(tmp_path / "proc", {
        "101": mine,
        "102": {**mine, "JUPYTERHUB_API_URL": f"http://198.18.0.129:{port + 10000}/hub/api"},  # another stack's hub
        "103": {**mine, "JUPYTERHUB_SERVICE_NAME": "someone-elses-service"},
        "104": {"JUPYTERHUB_API_URL": mine["JUPYTERHUB_API_URL"], "JUPYTERHUB_USER": "learner1"},  # a session
        "105": None,
        "106": {**mine, "JUPYTERHUB_API_URL": f"http://127.0.0.1:{port}/hub/api/"},
    })
    assert service_processes(stack, proc) == [101, 106]


def test_a_hub_started_before_a_reinstall_is_known_to_run_old_code(tmp_path):
    from aifw.sandbox.hub import CODE_STAMP, hub_runs_old_code, installed_code

    stack = Stack(home=tmp_path / "home", site=load_site(example_site_path("sandbox")))
    venv = stack.venv_bin.parent
    venv.mkdir(parents=True)
    (venv / ".aifw-src").write_text("aaaa\n")
    assert installed_code(stack) == "aaaa"
    assert hub_runs_old_code(stack)  # no record of what the running hub loaded: restart it
    stack.hub_state.mkdir(parents=True)
    (stack.hub_state / CODE_STAMP).write_text("aaaa")
    assert not hub_runs_old_code(stack)
    (venv / ".aifw-src").write_text("bbbb\n")  # make install-test put new code in
    assert hub_runs_old_code(stack)


def test_every_service_the_hub_starts_itself_is_known_by_name(tmp_path):
    from aifw.sandbox.hub import managed_service_names

    stack = Stack(home=tmp_path / "home", site=load_site(example_site_path("sandbox")))
    names = managed_service_names(stack)
    assert {f"formgrader-{stack.site.courses[0].id}", "idle-culler", "aifw-progress"} <= names
    assert "aifw-admin" not in names  # the scripts' token, no process
