"""AIFSlurmSpawner: thin orchestration of start / poll / stop / progress over the pure builders.

Starts from batchspawner's SlurmSpawner (its traits and its `batchspawner-singleuser` wrapper) and
replaces what it gets wrong:
- user options are validated once into a `SessionRequest` (HTTP 400 / form error, nothing submitted);
  they never reach a template or a shell;
- Slurm commands are argv lists through `aifw.slurm.SlurmClient`, with timeouts;
- "Slurm did not answer" keeps a running server (never dropped), and a job that ends before its server
  starts fails the spawn at once with Slurm's reason and the job's last log lines;
- the state (job id, node, port, request) is everything a hub restart needs;
- progress messages say what Slurm says (job id, state, pending reason).
"""
from __future__ import annotations

import asyncio
import pwd
import socket
import time
from pathlib import Path
from typing import Any

from batchspawner import SlurmSpawner
from sqlalchemy.orm import object_session
from tornado import web
from traitlets import Float, Unicode, default

from aifw.site import Site, load_site
from aifw.slurm import JobInfo, PartitionInfo, SlurmClient, SlurmError, SlurmRejected, SlurmUnavailable

from . import callback
from .batch_script import ScriptContext, build_batch_script, log_path
from .form import PREFILL_KEYS, render_form
from .queue import describe_job, faster_option
from .request import OptionsError, SessionRequest, form_to_options, limits_for, validate_options

callback.install()


class SpawnFailed(RuntimeError):
    """A spawn that cannot succeed; the message is shown to the user on the spawn page."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


class PrefillOnly(Exception):
    """Raised by options_from_query: show the form (pre-filled), do not spawn. Shows no error message."""

    jupyterhub_message = ""


def _bad_request(message: str) -> web.HTTPError:
    err = web.HTTPError(400, message.replace("%", "%%"))  # log_message is %-formatted by tornado
    err.jupyterhub_message = message  # shown as-is above the form
    return err


class _LiveCache:
    """Live partitions, shared by all spawners of a hub, refreshed after `ttl` seconds."""

    def __init__(self) -> None:
        self.stamp = 0.0
        self.data: dict[str, PartitionInfo] | None = None
        self.lock = asyncio.Lock()


_live_cache = _LiveCache()


class AIFSlurmSpawner(SlurmSpawner):
    """Spawn each user's JupyterLab as a Slurm job, as that user, from a validated request."""

    site_file = Unicode(
        "",
        help="""Path of the site file (YAML) that describes partitions, environments and limits.
        Empty: $AIFW_SITE, else the packaged sandbox site. Set by hub_config/jupyterhub_config.py.""",
    ).tag(config=True)

    status_poll_interval = Float(
        1.0,
        help="Seconds between Slurm queries while a session is starting (pending or waiting for its port).",
    ).tag(config=True)

    live_cache_seconds = Float(
        5.0,
        help="How long the live view of the partitions (sinfo/scontrol) is reused before asking Slurm again.",
    ).tag(config=True)

    stop_wait_seconds = Float(
        15.0,
        help="How long stop() waits for Slurm to confirm the job is gone before reporting it as stuck.",
    ).tag(config=True)

    request: SessionRequest | None = None
    last_request: dict | None = None  # the last accepted options; kept across stops
    job_node: str = ""
    _last_info: JobInfo | None = None
    _events: list[dict]

    # -- site and Slurm -------------------------------------------------------------------------
    @property
    def site(self) -> Site:
        cached = getattr(self, "_site", None)
        if cached is None:
            cached = self._site = load_site(self.site_file or None)
        return cached

    @property
    def slurm(self) -> SlurmClient:
        cfg = self.site.slurm
        return SlurmClient(
            bin_dir=cfg.bin_dir, conf=cfg.conf, timeout_s=cfg.command_timeout_s, exec_prefix=tuple(cfg.exec_prefix)
        )

    async def live_partitions(self) -> dict[str, PartitionInfo] | None:
        """What Slurm reports now, cached a few seconds; None when Slurm does not answer."""
        async with _live_cache.lock:
            if time.monotonic() - _live_cache.stamp > self.live_cache_seconds:
                try:
                    parts = await self.slurm.partitions()
                    _live_cache.data = {p.name: p for p in parts}
                except SlurmUnavailable as err:
                    self.log.warning("Slurm did not answer for the partition list: %s", err)
                    _live_cache.data = None
                except SlurmError as err:
                    self.log.warning("Slurm refused the partition list: %s", err)
                    _live_cache.data = None
                _live_cache.stamp = time.monotonic()
            return _live_cache.data

    # -- options: form and REST -----------------------------------------------------------------
    @default("options_form")
    def _options_form_default(self):
        return self._render_options_form

    async def _render_options_form(self, spawner) -> str:
        live = await self.live_partitions()
        previous = dict(self.last_request or {})
        handler = getattr(self, "handler", None)
        query = handler.request.query_arguments if handler is not None else {}
        prefill = {k: v[0].decode("utf8", "replace")[:64] for k, v in query.items() if v and k in PREFILL_KEYS}
        accounts = await self.slurm.user_accounts(self.user.name)
        return render_form(self.site, live, previous=previous, prefill=prefill, user_accounts=accounts)

    def options_from_query(self, query_data):
        """Launch links (/hub/spawn?partition=gpu&gpus=1&runtime=60) pre-fill the form; they submit nothing.
        JupyterHub would spawn straight from query arguments; refusing here makes it show the form, which
        reads the same arguments as its pre-filled values."""
        raise PrefillOnly()

    def options_from_form(self, formdata):
        try:
            # Typed here; checked against live limits and the user's accounts in apply_user_options.
            options = form_to_options(formdata)
            account = options.get("account")
            # The account is checked against the user's Slurm associations in apply_user_options.
            extra = [account] if isinstance(account, str) and account else None
            return validate_options(options, self.site, None, from_form=True, user_accounts=extra).as_user_options()
        except OptionsError as err:
            raise _bad_request(str(err)) from None

    @default("apply_user_options")
    def _apply_default(self):
        async def apply(spawner: "AIFSlurmSpawner", user_options: dict) -> None:
            live = await spawner.live_partitions()
            accounts = await spawner.slurm.user_accounts(spawner.user.name) if user_options.get("account") else []
            try:
                spawner.request = validate_options(user_options, spawner.site, live, user_accounts=accounts)
            except OptionsError as err:
                # JupyterHub stored the refused options already; put back the last accepted ones so
                # that a later request without options (POST {}) does not replay the refused ones.
                spawner.forget_refused_options()
                raise _bad_request(str(err)) from None


        return apply

    # -- environment and command ----------------------------------------------------------------
    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        if self.site.slurm.conf:
            env["SLURM_CONF"] = self.site.slurm.conf
        venv_bin = str(self.site.paths.venv / "bin")
        env["PATH"] = f"{venv_bin}:/usr/local/bin:/usr/bin:/bin"
        env["AIFW_HOME"] = self.site.paths.runtime_prefix
        return env

    def session_command(self) -> list[str]:
        venv_bin = self.site.paths.venv / "bin"
        return [str(venv_bin / "batchspawner-singleuser"), str(venv_bin / "jupyterhub-singleuser"), *self.get_args()]

    def session_setup(self) -> list[list[str]]:
        """Trusted commands run in the job before JupyterLab: put the user's courses in their home."""
        mine = self.site.courses_of(self.user.name)
        if not mine:
            return []
        share = Path(self.site.paths.runtime_prefix) / "share" / "courses"
        return [[str(self.site.paths.venv / "bin" / "aifw"), "courses", "sync", "--share", str(share), *mine]]

    def _home(self) -> str:
        try:
            return pwd.getpwnam(self.user.name).pw_dir
        except KeyError:
            raise SpawnFailed(
                f"there is no unix account {self.user.name!r} on the hub host; ask an admin to create it"
            ) from None

    # -- state ----------------------------------------------------------------------------------
    def forget_refused_options(self) -> None:
        good = dict(self.last_request or {})
        self.user_options = good
        if self.orm_spawner is not None:
            self.orm_spawner.user_options = good
            session = object_session(self.orm_spawner)
            if session is not None:
                session.commit()

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.last_request:
            state["last_request"] = self.last_request
        if self.job_id:
            state["job_node"] = self.job_node
            state["port"] = self.port
            if self.request:
                state["request"] = self.request.as_user_options()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.job_node = state.get("job_node", "")
        self.last_request = state.get("last_request") or None
        if state.get("port"):
            self.port = int(state["port"])
        if state.get("request"):
            try:
                self.request = validate_options(state["request"], self.site)
            except OptionsError:
                self.request = None

    def clear_state(self) -> None:
        super().clear_state()
        self.job_node = ""
        self.port = 0

    def _save_state(self) -> None:
        if self.orm_spawner is not None:
            self.orm_spawner.state = self.get_state()
            session = object_session(self.orm_spawner)
            if session is not None:
                session.commit()

    # -- the port callback ----------------------------------------------------------------------
    def accept_port_report(self, data: Any) -> str | None:
        """Called by the hardened callback. Returns an error message, or None when accepted."""
        if not isinstance(data, dict):
            return "the body must be a JSON object like {\"port\": 8888}"
        extra = sorted(str(k)[:40] for k in data if k not in {"port", "host"})
        if extra:
            return f"only 'port' may be reported; refused: {', '.join(extra)}"
        if not self.job_id or self.pending != "spawn":
            return "no server of yours is starting"
        if self.port:
            return "the port was already reported"
        port = data.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            return "port must be an integer between 1024 and 65535"
        host = data.get("host")
        if host is not None and host not in {self.job_node, self._node_address(self.job_node)}:
            return "host must be the node the job runs on"
        self.port = port
        return None

    @staticmethod
    def _node_address(node: str) -> str:
        try:
            return socket.gethostbyname(node)
        except OSError:
            return node

    # -- lifecycle ------------------------------------------------------------------------------
    def _event(self, message: str, progress: int | None = None) -> None:
        if not hasattr(self, "_events"):
            self._events = []
        ev: dict[str, Any] = {"message": message}
        if progress is not None:
            ev["progress"] = progress
        self._events.append(ev)
        self.log.info("%s: %s", self._log_name, message)

    async def _job(self) -> JobInfo | None:
        try:
            info = await self.slurm.job(self.job_id)
        except SlurmUnavailable as err:
            self.log.warning("Slurm did not answer about job %s: %s", self.job_id, err)
            return None
        self._last_info = info
        return info

    def _log_tail(self, lines: int = 12) -> str:
        path = Path(log_path(self._home()).replace("%j", self.job_id))
        try:
            text = path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def _ended_message(self, info: JobInfo, when: str) -> str:
        reason = f", reason: {info.reason}" if info.reason else ""
        code = f", exit code {info.exit_code}" if info.exit_code and info.exit_code != "0:0" else ""
        state = "is no longer known to Slurm" if info.state == "GONE" else f"ended ({info.state}{reason}{code})"
        msg = f"Slurm job {self.job_id} {state} {when}."
        tail = self._log_tail()
        if tail:
            msg += f"\nLast lines of its log ({log_path(self._home()).replace('%j', self.job_id)}):\n{tail}"
        return msg

    async def start(self):
        self._events = []
        site = self.site
        if self.request is None:
            try:
                self.request = validate_options({}, site, await self.live_partitions())
            except OptionsError as err:
                raise SpawnFailed(str(err)) from None
        req = self.request
        self.ip = site.hub.singleuser_ip
        self.port = 0
        if self.server:
            self.server.port = 0
        env = site.environment(req.environment)
        assert env is not None  # validated
        script = build_batch_script(
            req, env, ScriptContext(self.user.name, self._home(), self.session_command(), setup=self.session_setup())
        )
        try:
            self.job_id = await self.slurm.submit(script, user=self.user.name, env=self.get_env())
        except SlurmRejected as err:
            self.forget_refused_options()
            raise SpawnFailed(f"Slurm refused the session: {err}") from None
        except SlurmUnavailable as err:
            raise SpawnFailed(f"Slurm did not answer ({err}); nothing was submitted. Try again in a minute.") from None
        except SlurmError as err:
            raise SpawnFailed(f"The hub cannot submit jobs: {err}. Tell your administrator.") from None
        self._save_state()
        gpu = f", {req.gpus} GPU(s)" if req.gpus else ""
        self._event(
            f"Submitted Slurm job {self.job_id} to partition {req.partition} "
            f"({req.cpus} CPU, {req.memory_gb} GB{gpu}, {req.runtime_minutes} min)",
            10,
        )
        try:
            served = await self._wait_until_serving()
        except asyncio.CancelledError:
            raise
        except SpawnFailed:
            await self._cancel_quietly()
            self.forget_refused_options()
            raise
        self.last_request = req.as_user_options()  # remembered only once it worked
        self._save_state()
        return served

    async def _queue_explanation(self, info: JobInfo) -> str:
        """What Slurm says about a pending job: reason, position, estimated start, a faster option."""
        req = self.request
        position, start, faster = None, "", ""
        try:
            order = await self.slurm.pending_order(info.partition or req.partition)
            position = order.index(self.job_id) + 1 if self.job_id in order else None
            start = (await self.slurm.start_estimates([self.job_id])).get(self.job_id, "")
        except SlurmError as err:
            self.log.debug("No queue details for job %s: %s", self.job_id, err)
        live = await self.live_partitions()
        if live is not None and req is not None:
            visible = {p.name: limits_for(p, live.get(p.name)) for p in self.site.visible_partitions}
            faster = faster_option(req.partition, req.cpus, req.gpus, req.runtime_minutes,
                                   {n: live[n] for n in visible if n in live}, visible)
        text = describe_job(info, position, start)
        return f"{text}. Faster: {faster}" if faster else text

    async def _wait_until_serving(self):
        last_seen, last_explained = "", 0.0
        while True:
            info = await self._job()
            if info is None:
                if last_seen != "silent":
                    self._event("Slurm is not answering right now; still waiting for the job", 20)
                    last_seen = "silent"
            elif info.is_pending:
                key = f"{info.state}/{info.reason}"
                if key != last_seen or time.monotonic() - last_explained > 15:
                    self._event(await self._queue_explanation(info), 20)
                    last_seen, last_explained = key, time.monotonic()
            elif info.is_running:
                self.job_node = info.node.split(",")[0]
                self._event(f"Job {self.job_id} is running on {self.job_node}; starting JupyterLab", 60)
                break
            else:
                raise SpawnFailed(self._ended_message(info, "before its server started"))
            await asyncio.sleep(self.status_poll_interval)
        self.ip = self._node_address(self.job_node)
        self._save_state()
        checks = 0
        while not self.port:
            await asyncio.sleep(min(0.25, self.status_poll_interval))
            checks += 1
            if checks % 4 == 0:
                info = await self._job()
                if info is not None and info.is_finished:
                    raise SpawnFailed(self._ended_message(info, "before its server reported a port"))
        self._save_state()
        self._event(f"JupyterLab listens on {self.job_node}:{self.port}; connecting", 90)
        return (self.ip, self.port)

    async def _cancel_quietly(self) -> None:
        if not self.job_id:
            return
        try:
            await self.slurm.cancel(self.job_id, user=self.user.name)
        except Exception as err:  # noqa: BLE001 - best effort after a failure; logged
            self.log.warning("Could not cancel job %s after a failed spawn: %s", self.job_id, err)

    async def poll(self):
        if not self.job_id:
            return 0
        info = await self._job()
        if info is None:
            return None  # no answer is not "gone": keep the session
        if info.is_pending or info.is_running:
            return None
        self.log.info("Job %s of %s ended (%s %s)", self.job_id, self._log_name, info.state, info.reason)
        self.clear_state()
        return 1

    async def stop(self, now: bool = False):
        if not self.job_id:
            return
        job_id = self.job_id
        try:
            await self.slurm.cancel(job_id, user=self.user.name)
        except SlurmUnavailable as err:
            self.log.error("Could not cancel job %s, Slurm did not answer: %s", job_id, err)
            raise
        if now:
            return
        deadline = time.monotonic() + self.stop_wait_seconds
        while time.monotonic() < deadline:
            info = await self._job()
            if info is not None and info.is_finished:
                return
            await asyncio.sleep(0.5)
        self.log.warning("Job %s of %s is still in the queue after scancel", job_id, self._log_name)

    async def progress(self):
        sent = 0
        while True:
            events = getattr(self, "_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            await asyncio.sleep(0.5)
