"""The sandbox's Slurm accounting: its own MariaDB (data directory, socket and port under the stack's
state; the system's database is never started or touched) and slurmdbd on top of it, both started and
stopped by pid file. Projects, QOS and budgets are applied afterwards (`aifw.sandbox.projects`).

  state/accounting/mysql/     MariaDB's data directory (owner mysql)
  state/accounting/run/       its socket and pid file (owner mysql)
  state/accounting/db-password  the password of the database user `slurm` (0600, root)
  logs/mariadb.log, state/slurm/log/slurmdbd.log
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from .layout import Stack
from .processes import SandboxError, read_pid, say, spawn_background, stop_pid_file, wait_for
from .slurm_conf import render_slurmdbd_conf
from .slurm_daemons import write_slurm_config

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
MARIADB = "/usr/bin/mariadb"
SLURMDBD = "/usr/sbin/slurmdbd"
DB_USER = "mysql"  # the unix account MariaDB runs as (Debian's package creates it)


def _dir(stack: Stack) -> Path:
    return stack.state / "accounting"


def _datadir(stack: Stack) -> Path:
    return _dir(stack) / "mysql"


def _socket(stack: Stack) -> Path:
    return _dir(stack) / "run" / "mysql.sock"


def _db_pid(stack: Stack) -> Path:
    return _dir(stack) / "run" / "mariadbd.pid"


def _password_file(stack: Stack) -> Path:
    return _dir(stack) / "db-password"


def accounting_running(stack: Stack) -> bool:
    return read_pid(_db_pid(stack)) is not None and read_pid(stack.slurm_paths.dbd_pid) is not None


def status(stack: Stack) -> dict[str, int | None]:
    return {"mariadb": read_pid(_db_pid(stack)), "slurmdbd": read_pid(stack.slurm_paths.dbd_pid)}


def _sql(stack: Stack, statement: str) -> None:
    p = subprocess.run([MARIADB, "--no-defaults", f"--socket={_socket(stack)}", "-u", "root", "-e", statement],
                       capture_output=True, text=True, timeout=20)
    if p.returncode != 0:
        raise SandboxError(f"MariaDB refused {statement.split()[0]}: {p.stderr.strip()}. See {stack.logs}/mariadb.log.")


def _db_answers(stack: Stack) -> bool:
    p = subprocess.run([MARIADB, "--no-defaults", f"--socket={_socket(stack)}", "-u", "root", "-e", "SELECT 1"],
                       capture_output=True, timeout=5)
    return p.returncode == 0


def _password(stack: Stack) -> str:
    path = _password_file(stack)
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_hex(16)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def start_database(stack: Stack) -> None:
    """MariaDB on 127.0.0.1:<database_port> with the database user `slurm` (first start: a new data dir)."""
    for tool in (MARIADBD, INSTALL_DB, MARIADB):
        if not Path(tool).exists():
            raise SandboxError(f"{tool} is missing: install mariadb-server (scripts/install.sh does) and run again")
    assert stack.site.sandbox is not None
    run_dir = _socket(stack).parent
    for d in (_dir(stack), run_dir):
        d.mkdir(parents=True, exist_ok=True)
    _dir(stack).chmod(0o711)  # mysql must reach its data and run directories; nothing here is listable
    shutil.chown(run_dir, DB_USER, DB_USER)
    if read_pid(_db_pid(stack)) is None:
        if not (_datadir(stack) / "mysql").is_dir():
            shutil.rmtree(_datadir(stack), ignore_errors=True)
            p = subprocess.run(
                [INSTALL_DB, "--no-defaults", f"--user={DB_USER}", f"--datadir={_datadir(stack)}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"],
                capture_output=True, text=True, timeout=120,
            )
            if p.returncode != 0:
                raise SandboxError(f"mariadb-install-db failed: {(p.stderr or p.stdout).strip()[-500:]}")
        # mariadbd stays in the foreground: its pid file is ours (spawn_background).
        spawn_background(
            [MARIADBD, "--no-defaults", f"--user={DB_USER}", f"--datadir={_datadir(stack)}",
             f"--socket={_socket(stack)}", f"--port={stack.site.sandbox.database_port}", "--bind-address=127.0.0.1",
             "--innodb-buffer-pool-size=64M", "--innodb-lock-wait-timeout=900", "--skip-name-resolve"],
            pid_file=_db_pid(stack), log_file=stack.logs / "mariadb.log",
        )
        wait_for(lambda: _db_answers(stack), 60, "MariaDB (slurmdbd's database)", f"See {stack.logs}/mariadb.log.")
        say(f"MariaDB is up (127.0.0.1:{stack.site.sandbox.database_port}, data in {_datadir(stack)})")
    password = _password(stack)
    for host in ("localhost", "127.0.0.1"):
        _sql(stack, f"CREATE USER IF NOT EXISTS 'slurm'@'{host}' IDENTIFIED BY '{password}'")
        _sql(stack, f"ALTER USER 'slurm'@'{host}' IDENTIFIED BY '{password}'")
        _sql(stack, f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{host}'")


def start_slurmdbd(stack: Stack) -> None:
    """slurmdbd (it daemonizes and writes its own pid file); slurmctld must start after it, or it never
    learns the associations."""
    sp = stack.slurm_paths
    if not Path(SLURMDBD).exists():
        raise SandboxError(f"{SLURMDBD} is missing: install slurmdbd and slurm-wlm-mysql-plugin (scripts/install.sh does)")
    write_slurm_config(stack)  # slurmdbd.conf lives next to it, and sacctmgr reads it
    sp.dbd_conf.write_text(render_slurmdbd_conf(stack.site, sp, db_password=_password(stack)))
    sp.dbd_conf.chmod(0o600)
    if read_pid(sp.dbd_pid) is not None:
        return
    env = dict(os.environ, SLURM_CONF=str(sp.conf))
    subprocess.run([SLURMDBD], check=True, env=env, timeout=60)
    slurm = stack.slurm
    # Ready when sacctmgr gets an answer (a fresh database lists no cluster until slurmctld registers).
    wait_for(lambda: slurm.run_sync("sacctmgr", ["-nP", "show", "cluster", "format=cluster"], timeout_s=5) is not None,
             60, "slurmdbd", f"See {sp.log_dir}/slurmdbd.log.")
    assert stack.site.sandbox is not None
    say(f"slurmdbd is up (127.0.0.1:{stack.site.sandbox.slurmdbd_port})")


def stop_accounting(stack: Stack) -> None:
    stopped = []
    if stop_pid_file(stack.slurm_paths.dbd_pid):
        stopped.append("slurmdbd")
    if stop_pid_file(_db_pid(stack), timeout_s=30):
        stopped.append("MariaDB")
    if stopped:
        say(f"stopped {', '.join(stopped)}")
