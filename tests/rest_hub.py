"""A second hub of the test stack that reaches Slurm through slurmrestd (site `slurm.access: rest`) and runs
as an unprivileged system account, not root (issue 15).

`start_rest_hub` derives its site from the stack's effective site: its own ports (18400-18499), no courses
(formgraders run as the course's grader account, which needs root) and no LTI, `slurm.access: rest` with
the stack's slurmrestd. The hub account (`HUB_ACCOUNT`) is created here when missing. It mints its users'
tokens with a copy of the stack's JWT key that only it may read (0600, owned by the hub account): the
same bytes slurmctld verifies with, without changing the shared stack's key file (a site gives the key
to the hub's group instead, docs/admin.md "Choosing cli or rest")."""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import yaml

from lti_platform import LtiHub, stop_lti_hub, wait_for_hub

#: The unprivileged system account the REST hub runs as.
HUB_ACCOUNT = "aifwt-hub"
REST_HUB_PORTS = {"bind": 18400, "hub": 18481, "proxy_api": 18401, "services": 18410}


def ensure_hub_account(name: str = HUB_ACCOUNT) -> pwd.struct_passwd:
    """The hub's system account (no home, no login shell), made when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin",
                        "--comment", "AIF Workbench tests, a hub that is not root", name],
                       check=True, capture_output=True, timeout=30)
        return pwd.getpwnam(name)


def rest_site(stack_site: Path, *, rest_url: str, api_version: str, jwt_key_file: Path) -> dict:
    """The stack's effective site as a REST hub's: own ports, no courses, no LTI, slurm.access rest."""
    data = yaml.safe_load(Path(stack_site).read_text())
    data["hub"].update(bind_url=f"http://127.0.0.1:{REST_HUB_PORTS['bind']}", hub_port=REST_HUB_PORTS["hub"],
                       proxy_api_port=REST_HUB_PORTS["proxy_api"], services_port_base=REST_HUB_PORTS["services"],
                       authenticator="pam")
    data["courses"] = []
    data["lti"] = None
    data["slurm"].update(access="rest", rest_url=rest_url, rest_api_version=api_version,
                         jwt_key_file=str(jwt_key_file), token_lifespan_s=60)
    return data


def start_rest_hub(stack_site: Path, home: Path, venv_bin: Path, slurm_conf: str, *, rest_url: str,
                   api_version: str, jwt_key: Path, timeout_s: float = 60) -> LtiHub:
    """Start the REST hub as HUB_ACCOUNT with its state under `home` (made anew, owned by that account);
    returns once /hub/health answers."""
    import aifw.hub_config

    account = ensure_hub_account()
    home = Path(home)
    shutil.rmtree(home, ignore_errors=True)
    (home / "state" / "hub").mkdir(parents=True)
    (home / "proxy").symlink_to(Path(venv_bin).parents[1] / "proxy")
    key = home / "jwt_hs256.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(Path(jwt_key).read_bytes())
    site = home / "site.yaml"
    site.write_text(yaml.safe_dump(rest_site(stack_site, rest_url=rest_url, api_version=api_version,
                                             jwt_key_file=key), sort_keys=False))
    for path in (home, home / "state", home / "state" / "hub", key, site):
        os.chown(path, account.pw_uid, account.pw_gid)
    (home / "state" / "hub").chmod(0o700)
    token = secrets.token_hex(24)
    env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home / "state" / "hub"),
           "LANG": "C.UTF-8", "AIFW_SITE": str(site), "AIFW_HOME": str(home), "AIFW_ADMIN_TOKEN": token,
           "SLURM_CONF": slurm_conf, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(24)}
    log = home / "hub.log"
    config = Path(aifw.hub_config.__file__).with_name("jupyterhub_config.py")
    with log.open("w") as out:
        process = subprocess.Popen([str(Path(venv_bin) / "jupyterhub"), "-f", str(config)], env=env,
                                   cwd=str(home / "state" / "hub"), stdout=out, stderr=subprocess.STDOUT,
                                   user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    hub = LtiHub(url=f"http://127.0.0.1:{REST_HUB_PORTS['bind']}", api_token=token, home=home, process=process,
                 log=log)
    return wait_for_hub(hub, timeout_s, "REST hub")


# The REST hub stops as the LTI hub does (the hub, then its proxy by pid file).
stop_rest_hub = stop_lti_hub
