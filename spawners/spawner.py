"""AIFSlurmSpawner: thin orchestration of start / poll / stop / progress over the pure builders.

Starts from batchspawner's SlurmSpawner (its base class and its `batchspawner-singleuser` wrapper) and
replaces what it gets wrong:
- the site (`c.AIFSlurmSpawner.site`, loaded once by hub_config/jupyterhub_config.py) says everything
  batchspawner's templates and commands said; a config that sets one of those is refused
  (`aifw.spawners.replaced`), never silently ignored;
- user options are validated once into a `SessionRequest` (HTTP 400 / form error, nothing submitted) and
  travel as that type; they never reach a template or a shell;
- Slurm commands are argv lists through `aifw.slurm.SlurmClient`, with timeouts; the job's environment is
  the spawner's own (`get_env`), nothing of the hub process's;
- a failed spawn carries an HTTP status that says whose it is (`SpawnFailed`);
- "Slurm did not answer" keeps a running server (never dropped), and a job that ends before its server
  starts fails the spawn at once with Slurm's reason and the job's last log lines;
- the user's projects come from Slurm's accounting (associations, default account, GPU budgets): the
  form shows them, and a GPU request that cannot fit what is left is refused before sbatch;
- sessions run on compute nodes: the hub routes to the node's address as Slurm knows it (NodeAddr; node
  names need not resolve), and accepts the port report only from that address;
- a session that ends by itself (NODE_FAIL, TIMEOUT, ...) is logged and remembered in the state, and the
  next spawn form says how and why it ended;
- the state (job id, node, address, port, request) is everything a hub restart needs;
- progress messages say what Slurm says (job id, state, pending reason, node);
- every spawner of the hub shares one Slurm query per interval (`aifw.spawners.job_watch`): Slurm's load
  does not grow with the number of sessions starting or running;
- a site may put several clusters behind the hub (site `clusters`): the form offers the cluster first, the
  request names it, and the state records it (`cluster`), so that poll, stop, restart and the queue
  explanation ask that cluster's client (`aifw.slurm.ClusterClients`); one cluster that does not answer
  leaves the others' forms and sessions as they are.
"""
from __future__ import annotations

import asyncio
import ipaddress
import pwd
import time
from pathlib import Path
from typing import Any

from batchspawner import SlurmSpawner
from sqlalchemy.orm import object_session
from tornado import web
from traitlets import Float, Instance, default

from aifw.names import COURSE_ROLES, course_group, matches
from aifw.site import Site
from aifw.slurm import Client, ClusterClients, JobInfo, PartitionInfo, SlurmError, SlurmRejected, SlurmUnavailable

from . import callback, job_watch, prestart
from .cards import SessionCard, session_card
from .batch_script import SERVER_NAME, SERVER_NAME_MEANING, ScriptContext, log_path, session_script
from .form import PREFILL_KEYS, ClusterState, render_form
from .queue import describe_job, explain_end, faster_option
from .replaced import refuse_replaced
from .request import (
    OptionsError,
    SessionRequest,
    UserProjects,
    form_to_options,
    limits_for,
    request_from_state,
    requested_cluster,
    validate_options,
)
#: The nice value of a sandbox session (its server and kernels), whose cores are the login node's too.
SANDBOX_SESSION_NICE = 10

callback.install()


class SpawnFailed(web.HTTPError):
    """A spawn that cannot succeed, with its HTTP status: the message is shown as it is on the spawn page,
    in the REST reply and in the last progress event. 400: the request was refused (by the options' check
    or by Slurm); 403: this user cannot run sessions here; 502: the session's job ended before its server
    came up; 503: Slurm did not answer, try again; 500 only where the hub itself is broken."""

    def __init__(self, status_code: int, message: str):
        super().__init__(status_code, message.replace("%", "%%"))  # log_message is %-formatted by tornado
        self.jupyterhub_message = message


class PrefillOnly(Exception):
    """Raised by options_from_query: show the form (pre-filled), do not spawn. Shows no error message."""

    jupyterhub_message = ""


class _LiveCache:
    """One cluster's live partitions, shared by all spawners of a hub, refreshed after `ttl` seconds."""

    def __init__(self) -> None:
        self.stamp = 0.0
        self.data: dict[str, PartitionInfo] | None = None
        self.lock = asyncio.Lock()


#: One cache per cluster (its name and its client's identity): a cluster that does not answer holds its own
#: lock only, so the others' forms and validations go on.
_live_caches: dict[tuple, _LiveCache] = {}


def _live_cache(cluster: str, client: Any) -> _LiveCache:
    identity = getattr(client, "identity", None)
    key = (cluster, identity if identity is not None else id(client))
    return _live_caches.setdefault(key, _LiveCache())

#: A pending job's queue explanation is said again after this many seconds even when nothing changed.
_EXPLAIN_EVERY_S = 15.0


class AIFSlurmSpawner(SlurmSpawner):
    """Spawn each user's JupyterLab as a Slurm job, as that user, from a validated request."""

    site = Instance(
        Site,
        allow_none=True,
        help="""The validated site (an `aifw.site.Site`): partitions, environments, limits, Slurm and paths.
        hub_config/jupyterhub_config.py loads the site file ($AIFW_SITE) once and sets it; the spawner
        reads no file itself. Change the site file, not this.""",
    ).tag(config=True)

    startup_poll_interval = Float(
        1.0,
        help="""Seconds between Slurm queries while a session is starting (pending or waiting for its
        port). batchspawner's own setting, honoured (its default there is 0.5).""",
    ).tag(config=True)

    live_cache_seconds = Float(
        5.0,
        help="How long the live view of the partitions (sinfo/scontrol) is reused before asking Slurm again.",
    ).tag(config=True)

    stop_wait_seconds = Float(
        15.0,
        help="How long stop() waits for Slurm to confirm the job is gone before reporting it as stuck.",
    ).tag(config=True)

    request: SessionRequest | None = None  # the request of the session being started or running
    last_request: SessionRequest | None = None  # the last one that started; kept across stops
    job_node: str = ""  # the node the job runs on, by Slurm's name
    job_address: str = ""  # that node's address as Slurm reaches it (NodeAddr): where the hub routes
    last_end: str = ""  # how the last session ended by itself, in words; kept across stops, shown in the form
    ready_at: float = 0.0  # when the running session's server became ready (epoch s; 0: not yet, or none)
    job_cluster: str = ""  # the cluster of the session being started or running ("": the default one)
    _projects: UserProjects | None = None  # the user's projects, as the last validation saw them
    _from_form: SessionRequest | None = None  # validated by options_from_form, taken by apply_user_options
    cluster_clients: ClusterClients  # one Slurm client per cluster of the site (ClusterClients.for_site)
    _last_info: JobInfo | None = None
    _events: list[dict]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        refuse_replaced(self.config, self.section_names())
        if self.site is None:
            raise ValueError(
                "AIFSlurmSpawner needs the site: start the hub with hub_config/jupyterhub_config.py, which "
                "loads $AIFW_SITE and sets c.AIFSlurmSpawner.site"
            )
        self.cluster_clients = ClusterClients.for_site(self.site.all_clusters)

    # -- Slurm ----------------------------------------------------------------------------------
    @property
    def slurm(self) -> Client:
        """The Slurm client of the session's cluster (`job_cluster`; the default cluster's before a session)."""
        return self.cluster_clients.client(self.job_cluster)

    @slurm.setter
    def slurm(self, client: Any) -> None:
        """Reach the session's cluster through `client` instead (a stand-in in tests)."""
        self.cluster_clients = self.cluster_clients.with_client(self.job_cluster, client)

    def _cluster_words(self, cluster: str) -> str:
        """" of cluster NAME" on a site with several clusters, else "" (for messages and logs)."""
        return f" of cluster {cluster or self.cluster_clients.default}" if self.site.several_clusters else ""

    async def live_partitions(self, cluster: str = "") -> dict[str, PartitionInfo] | None:
        """What the Slurm of `cluster` ("": the default) reports now, cached a few seconds; None when it does
        not answer."""
        client = self.cluster_clients.client(cluster)
        cache = _live_cache(cluster or self.cluster_clients.default, client)
        async with cache.lock:
            if time.monotonic() - cache.stamp > self.live_cache_seconds:
                try:
                    parts = await client.partitions()
                    cache.data = {p.name: p for p in parts}
                except SlurmUnavailable as err:
                    self.log.warning("Slurm%s did not answer for the partition list: %s", self._cluster_words(cluster), err)
                    cache.data = None
                except SlurmError as err:
                    self.log.warning("Slurm%s refused the partition list: %s", self._cluster_words(cluster), err)
                    cache.data = None
                cache.stamp = time.monotonic()
            return cache.data

    # -- options: form and REST -----------------------------------------------------------------
    @default("options_form")
    def _options_form_default(self):
        return self._render_options_form

    async def _render_options_form(self, spawner) -> str:
        previous = self.last_request.as_user_options() if self.last_request else {}
        handler = getattr(self, "handler", None)
        query = handler.request.query_arguments if handler is not None else {}
        prefill = {k: v[0].decode("utf8", "replace")[:64] for k, v in query.items() if v and k in PREFILL_KEYS}
        return render_form(self.site, None, previous=previous, prefill=prefill, notice=self.last_end,
                           clusters=await self.cluster_states())

    async def cluster_states(self) -> dict[str, ClusterState]:
        """Each cluster's live partitions and the user's projects there, every cluster asked at once (one that
        does not answer takes its own time limit, and shows as unavailable)."""
        names = [c.name for c in self.site.all_clusters]

        async def state(name: str) -> ClusterState:
            live, projects = await asyncio.gather(self.live_partitions(name), self.user_projects(name))
            return ClusterState(live, projects)

        return dict(zip(names, await asyncio.gather(*(state(n) for n in names))))

    def options_from_query(self, query_data):
        """Launch links (/hub/spawn?partition=gpu&gpus=1&runtime=60) pre-fill the form; they submit nothing.
        JupyterHub would spawn straight from query arguments; refusing here makes it show the form, which
        reads the same arguments as its pre-filled values."""
        raise PrefillOnly()

    async def user_projects(self, cluster: str = "") -> UserProjects:
        """The user's projects from the accounting of `cluster` ("": the default): associations (the default
        first) and each one's GPU budget. When accounting does not answer: the site file's projects, budgets
        unknown (logged)."""
        name = self.user.name
        try:
            mine = await self.cluster_clients.client(cluster).user_associations(name)
        except (SlurmError, ValueError) as err:
            self.log.warning("Slurm's accounting%s did not answer about the projects of %s (%s); the form "
                             "offers the site file's", self._cluster_words(cluster), name, err)
            return UserProjects.from_site(self.site, name, cluster)
        return UserProjects.from_slurm(list(mine.accounts), mine.default, mine.budgets)

    async def validate_request(self, options: dict[str, Any]) -> SessionRequest:
        """Typed options → a SessionRequest, checked against the site, the live partitions of the cluster it
        names, the user's Slurm associations there and the chosen project's GPU budget. Raises OptionsError."""
        cluster = requested_cluster(options, self.site)
        if cluster is None:  # not one of the site's: validate_options says so, nothing is asked of any Slurm
            self._projects = None
            return validate_options(options, self.site)
        live = await self.live_partitions(cluster.name)
        self._projects = await self.user_projects(cluster.name)
        return validate_options(options, self.site, live, projects=self._projects)

    async def options_from_form(self, formdata):
        """The form, parsed to typed values and validated once. JupyterHub stores the returned dict as the
        user's options and hands it to apply_user_options, which takes this request as it is."""
        try:
            request = await self.validate_request(form_to_options(formdata))
        except OptionsError as err:
            raise SpawnFailed(400, str(err)) from None
        self._from_form = request
        return request.as_user_options()

    @default("apply_user_options")
    def _apply_default(self):
        async def apply(spawner: "AIFSlurmSpawner", user_options: dict) -> None:
            from_form, spawner._from_form = spawner._from_form, None
            if from_form is not None and from_form.as_user_options() == user_options:
                spawner.request = from_form  # what options_from_form just returned: validated already
                return
            # REST `user_options`, or the stored ones replayed by a start without options: the boundary.
            try:
                spawner.request = await spawner.validate_request(user_options)
            except OptionsError as err:
                # JupyterHub stored the refused options already; put back the last accepted ones so
                # that a later request without options (POST {}) does not replay the refused ones.
                spawner.forget_refused_options()
                raise SpawnFailed(400, str(err)) from None

        return apply

    # -- environment and command ----------------------------------------------------------------
    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        cluster = self.site.cluster(self.job_cluster) or self.site.default_cluster
        if cluster.slurm.conf:  # the session's own Slurm commands (srun, a Dask cluster) reach its cluster
            env["SLURM_CONF"] = cluster.slurm.conf
        venv_bin = str(self.site.paths.venv / "bin")
        env["PATH"] = f"{venv_bin}:/usr/local/bin:/usr/bin:/bin"
        env["AIFW_HOME"] = self.site.paths.runtime_prefix
        if self.site.courses:  # where a passed instant check is posted (aifw.extensions.kernel.progress_report)
            env["AIFW_PROGRESS_URL"] = self.site.progress_service_url + "/services/aifw-progress/"
        return env

    def session_command(self) -> list[str]:
        venv_bin = self.site.paths.venv / "bin"
        server = [str(venv_bin / "batchspawner-singleuser"), str(venv_bin / "jupyterhub-singleuser"), *self.get_args()]
        if self.site.sandbox is None:
            return server
        # The sandbox's compute nodes share the login node's cores: its sessions (their servers and kernels) run
        # at nice 10, so that the hub and the proxy beside them get a core first when a class keeps the cores
        # busy, as at a site whose jobs run on other machines. Slurm's own daemons keep their priority.
        return ["nice", "-n", str(SANDBOX_SESSION_NICE), *server]

    def session_setup(self) -> list[list[str]]:
        """Trusted commands the job runs beside JupyterLab's start: put the user's courses in their home
        (a copy takes well under the server's start-up, so the lab opens on them)."""
        mine = self.my_courses()
        if not mine:
            return []
        share = Path(self.site.paths.runtime_prefix) / "share" / "courses"
        # The standard-library-only module, not the `aifw courses sync` CLI: 0.05 CPU-s instead of 0.8 per start.
        return [[str(self.site.paths.venv / "bin" / "python"), "-m", "aifw.courses.sync", "--share", str(share), *mine]]

    def my_courses(self) -> list[str]:
        """The courses the user takes or teaches: the site file's, and those whose hub group the user is in
        (members added at run time: an LTI launch, the REST API), in the site's order."""
        groups = {getattr(g, "name", "") for g in (getattr(self.user, "groups", None) or ())}
        from_site = set(self.site.courses_of(self.user.name))
        return [c for c in self.site.course_ids
                if c in from_site or any(course_group(c, role) in groups for role in COURSE_ROLES)]

    def _home(self) -> str:
        try:
            return pwd.getpwnam(self.user.name).pw_dir
        except KeyError:
            raise SpawnFailed(
                403, f"there is no unix account {self.user.name!r} on the hub host; ask an admin to create it"
            ) from None

    # -- state ----------------------------------------------------------------------------------
    def forget_refused_options(self) -> None:
        good = self.last_request.as_user_options() if self.last_request else {}
        self.user_options = good
        if self.orm_spawner is not None:
            self.orm_spawner.user_options = good
            session = object_session(self.orm_spawner)
            if session is not None:
                session.commit()

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.last_request:
            state["last_request"] = self.last_request.as_user_options()
        if self.last_end:
            state["last_end"] = self.last_end
        if self.job_id:
            if self.site.several_clusters:
                state["cluster"] = self.job_cluster or self.cluster_clients.default
            state["job_node"] = self.job_node
            state["job_address"] = self.job_address
            state["port"] = self.port
            if self.ready_at:
                state["ready_at"] = self.ready_at
            if self.request:
                state["request"] = self.request.as_user_options()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """The state comes back from the hub's database (a restart): the requests in it are checked again."""
        super().load_state(state)
        self.job_cluster = self._stored_cluster(state)
        self.job_node = _text(state.get("job_node"))
        self.job_address = _text(state.get("job_address"))
        self.last_end = _text(state.get("last_end"), 2000)
        if state.get("port"):
            self.port = int(state["port"])
        ready_at = state.get("ready_at")
        self.ready_at = float(ready_at) if isinstance(ready_at, (int, float)) and ready_at > 0 else 0.0
        self.last_request = self._stored_request(state, "last_request")
        self.request = self._stored_request(state, "request")

    def _stored_cluster(self, state: dict[str, Any]) -> str:
        """The cluster a stored session runs on: one of the site's; a state without one (from before the site
        had several clusters) runs on the default (first) cluster, and so does one that names a cluster the
        site no longer has (logged: keep a site's first cluster first when adding others)."""
        name = _text(state.get("cluster"), 64)
        if not name:
            return ""
        if name in self.cluster_clients.names:
            return name if self.site.several_clusters else ""
        self.log.warning("Stored session of %s names cluster %r, which the site no longer has; asking the "
                         "default cluster %s about job %s", self._log_name, name, self.cluster_clients.default,
                         state.get("job_id", "?"))
        return ""

    def _stored_request(self, state: dict[str, Any], key: str) -> SessionRequest | None:
        if not state.get(key):
            return None
        try:
            return request_from_state(state[key], self.site)
        except OptionsError as err:
            # The job (if any) keeps running; only the form's pre-filled values and the queue
            # explanation go without it.
            self.log.warning("Stored %s of %s no longer fits the site, dropped: %s", key, self._log_name, err)
            return None

    def clear_state(self) -> None:
        """Forget the job (JupyterHub calls this after a stop); the last request and how the last session
        ended are kept for the next form."""
        super().clear_state()
        self.job_cluster = ""
        self.job_node = ""
        self.job_address = ""
        self.port = 0
        self.ready_at = 0.0

    def _save_state(self) -> None:
        if self.orm_spawner is not None:
            self.orm_spawner.state = self.get_state()
            session = object_session(self.orm_spawner)
            if session is not None:
                session.commit()

    # -- the port callback ----------------------------------------------------------------------
    async def accept_port_report(self, data: Any, remote_ip: str) -> str | None:
        """Called by the hardened callback with the report and the address it came from. Returns why the
        report is refused, or None when the port is accepted. Only the job's node may report: the report
        can come before the start loop has seen the job running, so the node is asked from Slurm here."""
        if not isinstance(data, dict):
            return "the body must be a JSON object like {\"port\": 8888}"
        extra = sorted(str(k)[:40] for k in data if k != "port")
        if extra:
            return f"only 'port' may be reported; refused: {', '.join(extra)}"
        port = data.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            return "port must be an integer between 1024 and 65535"
        if not self.job_id or self.pending != "spawn":
            return "no server of yours is starting"
        if self.port:
            return "the port was already reported"
        job_id = self.job_id
        if not await self._learn_node():
            return self._refused_report(f"Slurm does not say yet which node job {job_id} runs on, so the hub "
                                        "cannot check where this report comes from; refused")
        allowed = await _addresses_of(self.job_address)
        if _plain_ip(remote_ip) not in allowed:
            return self._refused_report(
                f"this report comes from {remote_ip or 'an unknown address'}, but job {job_id} runs on "
                f"{self.job_node} ({self.job_address}): only the job's node may report its port")
        if self.port or self.job_id != job_id:  # changed while Slurm was asked
            return "the port was already reported" if self.port else "no server of yours is starting"
        self.port = port
        return None

    def _refused_report(self, why: str) -> str:
        """A refused report of a starting server is said on the spawn page too: the server runs, but the
        hub will not route to it (a site whose nodes reach the hub through another address shows here)."""
        self._event(f"The hub refused a port report: {why}", 70)
        return why

    async def _learn_node(self, info: JobInfo | None = None) -> bool:
        """Learn the running job's node and that node's address from Slurm (once per job); sets the address
        the hub routes to. False while Slurm does not say (the job is not running yet, or Slurm is silent)."""
        if self.job_address:
            return True
        if info is None:
            info = await self._job_now()  # a port report waits on this: not until the next round
            if info is None or not info.is_running:
                return False
        node = info.node.split(",")[0]
        if not node:
            return False
        try:
            address = await self.slurm.node_address(node)
        except (SlurmError, ValueError) as err:
            self.log.warning("Slurm did not say the address of node %r (job %s): %s", node, self.job_id, err)
            return False
        self.job_node, self.job_address = node, address
        self.ip = address
        return True

    # -- lifecycle ------------------------------------------------------------------------------
    def _event(self, message: str, progress: int | None = None) -> None:
        if not hasattr(self, "_events"):
            self._events = []
        ev: dict[str, Any] = {"message": message}
        if progress is not None:
            ev["progress"] = progress
        self._events.append(ev)
        self.log.info("%s: %s", self._log_name, message)

    async def _job(self, interval: float | None = None) -> JobInfo | None:
        """The job's state from the hub's shared watcher: the next round of the one query that serves
        every spawner, rounds `interval` (default `startup_poll_interval`) apart. None: Slurm did not
        answer (never "gone")."""
        watch = job_watch.shared(self.slurm)
        try:
            info = await watch.job(self.job_id, self.startup_poll_interval if interval is None else interval)
        except SlurmUnavailable as err:
            self.log.warning("Slurm did not answer about job %s: %s", self.job_id, err)
            return None
        self._last_info = info
        return info

    async def _job_now(self) -> JobInfo | None:
        """The job's state asked on its own, now: for the rare caller that cannot wait for a round (a port
        report in flight). None: Slurm did not answer."""
        try:
            info = await self.slurm.job(self.job_id)
        except SlurmUnavailable as err:
            self.log.warning("Slurm did not answer about job %s: %s", self.job_id, err)
            return None
        self._last_info = info
        return info

    def _log_tail(self, lines: int = 12) -> str:
        """The job log's last lines; "" when it cannot be read (also without a unix account here: a message
        about the job's end must not turn into one about the account)."""
        try:
            home = pwd.getpwnam(self.user.name).pw_dir
        except KeyError:
            return ""
        path = Path(log_path(home).replace("%j", self.job_id))
        try:
            text = path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def _where(self) -> str:
        """"node2 (198.18.0.140)", or the name alone when Slurm's address is the name."""
        if self.job_address and self.job_address != self.job_node:
            return f"{self.job_node} ({self.job_address})"
        return self.job_node

    def _ended_message(self, info: JobInfo, when: str) -> str:
        reason = f", reason: {info.reason}" if info.reason else ""
        code = f", exit code {info.exit_code}" if info.exit_code and info.exit_code != "0:0" else ""
        state = "is no longer known to Slurm" if info.state == "GONE" else f"ended ({info.state}{reason}{code})"
        node = f" on {self._where()}" if self.job_node else ""
        return self._with_log_tail(f"Slurm job {self.job_id}{node} {state} {when}.")

    def _with_log_tail(self, msg: str) -> str:
        """`msg` and, when the job's log can be read, its last lines."""
        tail = self._log_tail()
        if tail:
            msg += f"\nLast lines of its log ({log_path(self._home()).replace('%j', self.job_id)}):\n{tail}"
        return msg

    async def start(self):
        self._events = []
        site = self.site
        req = self.request
        if req is None:  # apply_user_options sets it before every start
            raise SpawnFailed(500, "The hub has no validated request for this session. Tell your administrator.")
        if self.name and not matches(SERVER_NAME, self.name):
            raise SpawnFailed(400, f"A session's name may have {SERVER_NAME_MEANING}; {self.name!r} has not. "
                              "Choose another name.")
        self.ip = site.hub.singleuser_ip  # where the server binds on its node (the route is the node's address)
        self.port = 0
        self.job_node = self.job_address = ""
        if self.server:
            self.server.port = 0
        env = site.environment(req.environment)
        assert env is not None  # validated
        self.job_cluster = req.cluster  # validated: one of the site's ("" on a site with one cluster)
        script = session_script(
            req, env, ScriptContext(self.user.name, self._home(), self.session_command(), beside=self.session_setup(),
                                    server_name=self.name),
            site.session,
        )
        try:
            self.job_id = await self.slurm.submit(script, user=self.user.name, env=self.get_env())
        except SlurmRejected as err:
            self.forget_refused_options()
            raise SpawnFailed(400, f"Slurm refused the session: {err}") from None
        except SlurmUnavailable as err:
            raise SpawnFailed(503, f"Slurm did not answer ({err}); nothing was submitted. Try again in a minute.") from None
        except SlurmError as err:
            raise SpawnFailed(500, f"The hub cannot submit jobs: {err}. Tell your administrator.") from None
        self.last_end = ""  # a new session: the notice about the last one is done
        self._save_state()
        gpu = f", {req.gpus} GPU(s)" if req.gpus else ""
        self._event(
            f"Submitted Slurm job {self.job_id} to partition {req.partition}{self._cluster_words(req.cluster)} "
            f"({req.cpus} CPU, {req.memory_gb} GB{gpu}, {req.runtime_minutes} min)",
            10,
        )
        try:
            served = await self._wait_until_serving(req)
        except asyncio.CancelledError:
            raise
        except SpawnFailed:
            await self._cancel_quietly()
            self.forget_refused_options()
            raise
        self.last_request = req  # remembered only once it worked
        self.ready_at = time.time()
        self._save_state()
        return served

    async def _queue_explanation(self, info: JobInfo, req: SessionRequest) -> str:
        """What Slurm says about a pending job: reason, position, estimated start, a faster option."""
        position, faster = None, ""
        # Slurm's estimated start of a pending job is squeue's %S, already in `info` (what `squeue
        # --start` prints); the order comes from one listing per partition that every spawner shares.
        start = info.start_time if info.is_pending else ""
        try:
            order = await job_watch.shared(self.slurm).queue_order(
                info.partition or req.partition, self.job_id, max_age=_EXPLAIN_EVERY_S,
                min_age=self.startup_poll_interval)
            position = order.index(self.job_id) + 1 if self.job_id in order else None
        except SlurmError as err:
            self.log.debug("No queue details for job %s: %s", self.job_id, err)
        live = await self.live_partitions(self.job_cluster)
        cluster = self.site.cluster(self.job_cluster) or self.site.default_cluster
        if live is not None:
            visible = {p.name: limits_for(p, live.get(p.name)) for p in cluster.visible_partitions}
            faster = faster_option(req.partition, req.cpus, req.gpus, req.runtime_minutes,
                                   {n: live[n] for n in visible if n in live}, visible)
        account = req.account or (self._projects.default if self._projects else "")
        text = describe_job(info, position, start, account=account)
        return f"{text}. Faster: {faster}" if faster else text

    async def _wait_until_serving(self, req: SessionRequest):
        last_seen, last_explained = "", 0.0
        while True:
            info = await self._job()
            if info is None:
                if last_seen != "silent":
                    self._event("Slurm is not answering right now; still waiting for the job", 20)
                    last_seen = "silent"
            elif info.is_pending:
                key = f"{info.state}/{info.reason}"
                if key != last_seen or time.monotonic() - last_explained > _EXPLAIN_EVERY_S:
                    self._event(await self._queue_explanation(info, req), 20)
                    last_seen, last_explained = key, time.monotonic()
            elif info.is_running:
                if await self._learn_node(info):
                    self._event(f"Job {self.job_id} is running on node {self._where()}; starting JupyterLab", 60)
                    break
                if last_seen != "no-address":
                    self._event(f"Job {self.job_id} is running; asking Slurm for its node's address", 50)
                    last_seen = "no-address"
            else:
                raise SpawnFailed(502, self._ended_message(info, "before its server started"))
            # No sleep here: the next _job() is the next round of the shared watcher, an interval on.
        self._save_state()
        # Wait for the port report, looking at it every 0.25 s.
        await self._while_the_job_runs(self._port_known, min(0.25, self.startup_poll_interval),
                                       "before its server reported a port")
        self._save_state()
        # batchspawner's wrapper reports the port before the server starts; JupyterHub's readiness check
        # would then find it only after its exponential back-off (on average most of a second after it
        # listens, up to 3 s). So return once the server accepts connections: the hub's first check finds it.
        self._event(f"JupyterLab starts on node {self._where()}, port {self.port}", 80)
        if not await self._while_the_job_runs(self._server_accepts, 0.05, "before its server accepted "
                                              "connections", limit=self.http_timeout):
            raise SpawnFailed(502, self._with_log_tail(
                f"JupyterLab of Slurm job {self.job_id} reported port {self.port} on node {self._where()} but "
                f"accepted no connection within {self.http_timeout:.0f} s."))
        self._event(f"JupyterLab listens on node {self._where()}, port {self.port}; connecting", 90)
        return (self.job_address, self.port)

    async def _while_the_job_runs(self, ready, every: float, when: str, limit: float | None = None) -> bool:
        """Await `ready()` every `every` seconds until it is true (True) or `limit` seconds passed (False).
        Meanwhile the shared watcher says once per round whether the job ended: then the spawn fails
        (502) with Slurm's reason and the job's log, `when` saying how far it got."""
        deadline = None if limit is None else time.monotonic() + limit
        check: asyncio.Future | None = None
        try:
            while not await ready():
                if check is None:
                    check = asyncio.ensure_future(self._job())
                elif check.done():
                    info, check = check.result(), None
                    if info is not None and info.is_finished:
                        raise SpawnFailed(502, self._ended_message(info, when))
                if deadline is not None and time.monotonic() > deadline:
                    return False
                await asyncio.sleep(every)
        finally:
            _drop(check)
        return True

    async def _port_known(self) -> bool:
        return bool(self.port)

    async def _server_accepts(self) -> bool:
        """Whether the session's server accepts a TCP connection at the job's node address and port."""
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(self.job_address, self.port), 1.0)
        except (OSError, asyncio.TimeoutError):
            return False
        writer.close()
        return True

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
        if self._stop_pending:
            # JupyterHub polls right before it stops a server; stop() cancels the job and waits for its end
            # anyway, so asking Slurm here would only add a watcher round (up to a second) to every stop.
            return None
        info = await self._job()
        if info is None:
            return None  # no answer is not "gone": keep the session
        if info.is_running and self._unused_too_long():
            # Started for the learner before they arrived (a class pre-start), and they never came: free
            # its place. The form tells them why on their next visit.
            self.log.info("Session of %s (job %s) was not used within %d s of being ready: stopping it",
                          self._log_name, self.job_id, self.request.stop_if_unused_s)
            message = prestart.unused_message(self.job_id, self.request.stop_if_unused_s)
            await self._cancel_quietly()
            self.last_end = message
            self.clear_state()
            return 1
        if info.is_running or (info.is_pending and not self.port):
            return None  # running, or still starting (the start loop watches it)
        if info.is_pending:
            # The server was up and the job waits again: Slurm requeued it (sessions ask for --no-requeue,
            # but an administrator may requeue). Its server is gone; a requeued copy would serve no one.
            self._remember_end(info, "it was requeued by Slurm, so its server stopped")
            await self._cancel_quietly()
        else:
            self._remember_end(info, explain_end(info))
        self.clear_state()
        return 1

    def _unused_too_long(self) -> bool:
        """A session that asked to stop when unused (`stop_if_unused_s`), ready that long, and not used: no
        request of the user to the hub and no traffic to the server since it became ready."""
        req = self.request
        if req is None or not req.stop_if_unused_s:
            return False
        activity = [prestart.epoch(getattr(self.user, "last_activity", None))]
        if self.orm_spawner is not None:
            activity.append(prestart.epoch(self.orm_spawner.last_activity))
        return prestart.stops_unused(time.time(), self.ready_at, req.stop_if_unused_s, activity)

    def _remember_end(self, info: JobInfo, why: str) -> None:
        """A session that ended without the hub stopping it: logged, and kept in the state for the form.
        A server that exited by itself (COMPLETED: shut down from JupyterLab) is only logged."""
        if not self.job_node and info.node:
            self.job_node = info.node.split(",")[0]
        where = f" on {self._where()}" if self.job_node else ""
        reason = f", reason {info.reason}" if info.reason else ""
        seen = time.strftime("%Y-%m-%d %H:%M")
        message = (f"Your last session (Slurm job {self.job_id}) ended: {info.state}{where}{reason}: {why} "
                   f"(noticed at {seen}). Files saved in your home are kept; start a new session below.")
        if info.state == "COMPLETED":
            self.log.info("Session of %s ended: %s", self._log_name, message)
            return
        self.log.warning("Session of %s ended by itself: %s", self._log_name, message)
        self.last_end = message

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
            info = await self._job(min(0.25, self.startup_poll_interval))  # rounds of the shared watcher
            if info is not None and info.is_finished:
                return
        self.log.warning("Job %s of %s is still in the queue after scancel", job_id, self._log_name)

    def session_card(self) -> SessionCard:
        """This server as the hub's home page shows it (hub_config/templates/home.html): from what the spawner
        already knows; nothing is asked of Slurm while the page renders."""
        return session_card(self.name, active=self.active, ready=self.ready, pending=self.pending,
                            request=self.request, last_request=self.last_request, info=self._last_info,
                            job_id=self.job_id or "", node=self._where() if self.job_node else "",
                            ready_at=self.ready_at, last_end=self.last_end)

    async def progress(self):
        sent = 0
        while True:
            events = getattr(self, "_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            await asyncio.sleep(0.5)


def _drop(task: asyncio.Future | None) -> None:
    """A look-up no longer needed (the port came first, or the spawn ended): cancelled if it still waits;
    an error it ended with is moot, and marked as seen."""
    if task is None:
        return
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit
    else:
        task.cancel()


def _text(value: Any, limit: int = 255) -> str:
    """A text field of the stored state (the hub's database is a boundary): text, at most `limit` long."""
    return value[:limit] if isinstance(value, str) else ""


def _plain_ip(address: str) -> str:
    """An address as it is compared: an IPv4 address mapped into IPv6 ('::ffff:198.18.0.12') as IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


async def _addresses_of(address: str, timeout_s: float = 5.0) -> set[str]:
    """The IP addresses a node address stands for: itself when it is an IP address (Slurm's NodeAddr
    usually is), else what it resolves to within `timeout_s` (a real site's names resolve). Empty when it
    does not resolve."""
    try:
        ipaddress.ip_address(address)
        return {_plain_ip(address)}
    except ValueError:
        pass  # a name
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(address, None), timeout_s)
    except (OSError, asyncio.TimeoutError):
        return set()
    return {_plain_ip(str(info[4][0])) for info in infos}
