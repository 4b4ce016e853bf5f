"""The spawn form, rendered from the site file merged with the live cluster and the user's projects (pure).

Every value that reaches the page is escaped. Choices are pre-filled from (in order) a launch link's
query, the user's last choices, then the site's defaults; the project from those, else the user's default
project. Each project shows its GPU-hours used and left, or says they are unknown. A notice (how the
user's last session ended) comes first.

On a site with several clusters the cluster comes first, then that cluster's partitions, projects and
reservations from its own live state (`ClusterState`); the other clusters' fields are there, hidden and
disabled (a disabled field is not submitted), until their cluster is chosen. A cluster that does not answer
is shown as unavailable and cannot be chosen while another one answers; when none answers, the form is the
site's static description, as on a site with one cluster whose Slurm is silent.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Mapping

from aifw.site import Cluster, Site
from aifw.slurm import PartitionInfo, ProjectBudget, format_hours

from .request import DEFAULT_CPUS, DEFAULT_MEMORY_GB, UserProjects, limits_for, offered_accounts

# Launch-link aliases: /hub/spawn?partition=gpu&gpus=1&runtime=60
QUERY_ALIASES = {"runtime": "runtime_minutes", "memory": "memory_gb", "mem": "memory_gb", "env": "environment"}
PREFILL_KEYS = frozenset(QUERY_ALIASES) | {
    "cluster", "partition", "cpus", "memory_gb", "gpus", "runtime_minutes", "account", "reservation", "environment"}


def _int(value: Any, fallback: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return fallback


@dataclass(frozen=True)
class ClusterState:
    """What the form shows of one cluster: its partitions as its Slurm reports them now (None: it does not
    answer) and the user's projects there (None: the site file's accounts)."""

    live: Mapping[str, PartitionInfo] | None = None
    projects: UserProjects | None = None


def _partition_row(cluster: Cluster, name: str, live: Mapping[str, PartitionInfo] | None) -> str:
    part = cluster.partition(name)
    assert part is not None
    info = live.get(name) if live else None
    lim = limits_for(part, info)
    bits = [f"up to {lim.max_cpus} CPUs", f"{lim.max_memory_gb} GB"]
    if lim.max_gpus:
        bits.append(f"{lim.max_gpus} GPUs")
    bits.append(f"max {lim.max_runtime_minutes} min")
    now = ""
    if info is not None:
        now = f"now: {info.cpus_idle} CPUs idle" + (f", {info.gpus_idle} GPUs free" if lim.max_gpus else "")
        if not info.available:
            now = "DOWN in Slurm"
    return (
        f'<span class="aifw-part-desc">{escape(part.description)}</span> '
        f'<small class="text-muted">{escape(", ".join(bits))}'
        + (f' &middot; <span class="aifw-live" data-partition="{escape(name)}">{escape(now)}</span>' if now else "")
        + "</small>"
    )


def budget_words(budget: ProjectBudget | None) -> str:
    """A project's GPU budget for people: "0.5 of 2 GPU-hours used, 1.5 left"."""
    if budget is None:
        return "GPU-hours unknown"
    if not budget.limited:
        return f"no GPU-hours limit ({format_hours(budget.used_minutes)} used)"
    assert budget.limit_minutes is not None and budget.left_minutes is not None
    text = (f"{format_hours(budget.used_minutes)} of {format_hours(budget.limit_minutes)} GPU-hours used, "
            f"{format_hours(budget.left_minutes)} left")
    if budget.running_minutes:
        text += f" ({format_hours(budget.running_minutes)} held by running jobs)"
    return text


def _id(base: str, tag: str) -> str:
    """An element's id: `base` on a site with one cluster, `base-<cluster>` on a site with several."""
    return f"{base}-{tag}" if tag else base


def _for_cluster(tag: str, shown: bool) -> str:
    """The attributes of a block that belongs to one cluster (none on a site with one cluster)."""
    if not tag:
        return ""
    return f' class="aifw-for-cluster" data-cluster="{escape(tag)}"' + ("" if shown else " hidden")


def _off(disabled: bool) -> str:
    return " disabled" if disabled else ""


def _projects_section(site: Site, cluster: Cluster, projects: UserProjects | None, chosen: str, *, tag: str = "",
                      disabled: bool = False) -> list[str]:
    projects = projects if projects is not None else UserProjects(tuple(offered_accounts(site, cluster=cluster.name)))
    accounts = list(projects.accounts)
    out = [f'<fieldset class="form-group" id="{_id("aifw-projects", tag)}"><legend>Project (Slurm account)</legend>']
    if not projects.known:
        out.append(
            f'<div class="alert alert-info" role="status" id="{_id("aifw-budgets-unknown", tag)}">Slurm\'s accounting is not '
            "answering right now: the projects below are the ones the site file lists, and their GPU-hours "
            "budgets are unknown. Slurm still checks both when the session is submitted.</div>"
        )
    elif not accounts:
        out.append(f'<p id="{_id("aifw-no-projects", tag)}">You are in no project (Slurm account): sessions are billed to '
                   "Slurm's default. Ask an administrator to add you to a project.</p>")
    if chosen not in accounts:
        chosen = projects.default if projects.default in accounts else ""
    empty_allowed = not cluster.slurm.account_required and not projects.default
    if not chosen and not empty_allowed and accounts:
        chosen = accounts[0]
    out.append(f'<label for="{_id("aifw-account", tag)}">Bill this session to</label>')
    out.append(f'<select class="form-control" id="{_id("aifw-account", tag)}" name="account"{_off(disabled)}>')
    if empty_allowed or not accounts:
        out.append(f'<option value=""{" selected" if not chosen else ""}>(your default project)</option>')
    for name in accounts:
        budget = projects.budget(name) if projects.budgets is not None else None
        left = "" if budget is None or budget.left_minutes is None else str(budget.left_minutes)
        label = name + (" (your default)" if name == projects.default else "")
        if projects.known or projects.budgets is not None:
            label += f" \u2014 {budget_words(budget)}"
        sel = " selected" if name == chosen else ""
        out.append(f'<option value="{escape(name)}" data-left-minutes="{left}"{sel}>{escape(label)}</option>')
    out.append("</select></fieldset>")
    return out


def _partition_names(cluster: Cluster, live: Mapping[str, PartitionInfo] | None) -> list[str]:
    """The partitions the form offers on a cluster: the visible ones, those Slurm lists when it answers."""
    names = [p.name for p in cluster.visible_partitions]
    if live is not None:
        names = [n for n in names if n in live] or names
    return names


def _current_partition(cluster: Cluster, names: list[str], wanted: str) -> str:
    if wanted in names:
        return wanted
    default = cluster.default_partition.name
    return default if default in names else names[0]


def _partitions_fieldset(cluster: Cluster, live: Mapping[str, PartitionInfo] | None, current: str, *,
                         tag: str = "", disabled: bool = False) -> list[str]:
    """The partitions' radio buttons. All clusters' share one radio group (`partition`), which holds one
    checked button: only the chosen cluster's current partition is checked; another cluster's is marked
    `data-preferred`, for the script to check when that cluster is chosen."""
    legend = f"Partition on {escape(cluster.name)}" if tag else "Partition"
    out = [f'<fieldset class="form-group"><legend>{legend}</legend>']
    for name in _partition_names(cluster, live):
        checked = (" data-preferred" if disabled else " checked") if name == current else ""
        p = cluster.partition(name)
        assert p is not None
        plim = limits_for(p, live.get(name) if live else None)
        ident = f"aifw-partition-{escape(tag)}-{escape(name)}" if tag else f"aifw-partition-{escape(name)}"
        out.append(
            f'<div class="form-check"><input class="form-check-input" type="radio" name="partition" '
            f'id="{ident}" value="{escape(name)}"{checked}{_off(disabled)} '
            f'data-max-cpus="{plim.max_cpus}" data-max-memory="{plim.max_memory_gb}" '
            f'data-max-gpus="{plim.max_gpus}" data-max-runtime="{plim.max_runtime_minutes}" '
            f'data-default-runtime="{min(p.default_runtime_minutes, plim.max_runtime_minutes)}">'
            f'<label class="form-check-label" for="{ident}"><b>{escape(name)}</b> '
            f"{_partition_row(cluster, name, live)}</label></div>"
        )
    out.append("</fieldset>")
    return out


def _reservation_section(cluster: Cluster, chosen: str, *, tag: str = "", disabled: bool = False) -> list[str]:
    if not cluster.slurm.reservations:
        return []
    ident = _id("aifw-reservation", tag)
    out = ['<details class="aifw-advanced"><summary>Advanced: reservation</summary>',
           f'<div class="form-group"><label for="{ident}">Reservation (training event)</label>',
           f'<select class="form-control" id="{ident}" name="reservation"{_off(disabled)}>',
           '<option value="">(none)</option>']
    for opt in cluster.slurm.reservations:
        sel = " selected" if opt == chosen else ""
        out.append(f'<option value="{escape(opt)}"{sel}>{escape(opt)}</option>')
    out.append("</select></div></details>")
    return out


def _states(site: Site, live: Mapping[str, PartitionInfo] | None, projects: UserProjects | None,
            clusters: Mapping[str, ClusterState] | None) -> dict[str, ClusterState]:
    if clusters is None:
        return {site.default_cluster.name: ClusterState(live, projects)}
    if live is not None or projects is not None:
        raise ValueError("render_form: give each cluster's live state and projects in `clusters`, not in `live` "
                         "and `projects` as well")
    return dict(clusters)


def _clusters_fieldset(site: Site, states: Mapping[str, ClusterState], current: str,
                       unavailable: set[str]) -> list[str]:
    out = ['<fieldset class="form-group" id="aifw-clusters"><legend>Cluster</legend>']
    for c in site.all_clusters:
        state = states.get(c.name, ClusterState())
        if c.name in unavailable:
            now = "not answering right now: unavailable"
        elif state.live is None:
            now = "not answering right now"
        else:
            up = [p for p in _partition_names(c, state.live) if state.live.get(p) and state.live[p].available]
            now = f"{len(up)} partition(s) up"
        checked = " checked" if c.name == current else ""
        desc = f' <span class="aifw-cluster-desc">{escape(c.description)}</span>' if c.description else ""
        out.append(
            f'<div class="form-check"><input class="form-check-input" type="radio" name="cluster" '
            f'id="aifw-cluster-{escape(c.name)}" value="{escape(c.name)}"{checked}{_off(c.name in unavailable)}>'
            f'<label class="form-check-label" for="aifw-cluster-{escape(c.name)}"><b>{escape(c.name)}</b>{desc} '
            f'<small class="text-muted aifw-cluster-state" data-cluster-state="{escape(c.name)}">'
            f"{escape(now)}</small></label></div>"
        )
    out.append("</fieldset>")
    return out


def render_form(
    site: Site,
    live: Mapping[str, PartitionInfo] | None,
    previous: Mapping[str, Any] | None = None,
    prefill: Mapping[str, Any] | None = None,
    projects: UserProjects | None = None,
    notice: str = "",
    *,
    clusters: Mapping[str, ClusterState] | None = None,
) -> str:
    """The form's HTML. `live`: the partitions Slurm reports now (None: Slurm did not answer); `projects`: the
    user's projects and budgets (None: the site file's accounts); `notice`: shown first (how the user's last
    session ended), "" for none. `clusters`: instead of `live` and `projects`, each cluster's by name (a
    cluster left out does not answer); on a site with several clusters, `live` and `projects` alone are the
    default cluster's."""
    chosen: dict[str, Any] = {}
    chosen.update(previous or {})
    for key, value in (prefill or {}).items():
        chosen[QUERY_ALIASES.get(key, key)] = value
    states = _states(site, live, projects, clusters)
    several = site.several_clusters
    answering = {c.name for c in site.all_clusters if states.get(c.name, ClusterState()).live is not None}
    unavailable = {c.name for c in site.all_clusters if c.name not in answering} if answering and several else set()
    wanted = site.cluster(str(chosen.get("cluster", "")))
    if wanted is None or wanted.name in unavailable:
        wanted = next((c for c in site.all_clusters if c.name not in unavailable), site.default_cluster)
    cluster, state = wanted, states.get(wanted.name, ClusterState())
    names = _partition_names(cluster, state.live)
    current = _current_partition(cluster, names, str(chosen.get("partition", cluster.default_partition.name)))
    part = cluster.partition(current)
    assert part is not None
    lim = limits_for(part, state.live.get(current) if state.live else None)

    out = ['<div class="aifw-form">']
    if notice:
        out.append(f'<div class="alert alert-warning" role="alert" id="aifw-last-session">{escape(notice)}</div>')
    if not answering:
        out.append(
            '<div class="alert alert-warning" role="alert" id="aifw-slurm-silent">Slurm is not answering right now: '
            "the partitions below are the site's static description, without live availability.</div>"
        )
    # The cluster first, then per cluster its partitions (only the chosen cluster's are shown and enabled).
    blocks = [(c, states.get(c.name, ClusterState())) for c in site.all_clusters] if several else [(cluster, state)]
    if several:
        out += _clusters_fieldset(site, states, cluster.name, unavailable)
    for c, st in blocks:
        tag, mine = (c.name if several else ""), c.name == cluster.name
        c_names = _partition_names(c, st.live)
        c_current = current if mine else _current_partition(c, c_names, "")
        out.append(f"<div{_for_cluster(tag, mine)}>" if tag else "")
        if tag and st.live is None and answering:
            out.append(f'<p class="text-muted" id="aifw-cluster-{escape(tag)}-silent">Cluster {escape(c.name)} is not '
                       "answering right now; choose another cluster or try again in a minute.</p>")
        out += _partitions_fieldset(c, st.live, c_current, tag=tag, disabled=not mine)
        out.append("</div>" if tag else "")

    def number(key: str, label: str, value: int, low: int, high: int, unit: str = "") -> str:
        return (
            f'<div class="form-group col-sm-3"><label for="aifw-{key}">{label}</label>'
            f'<input class="form-control" type="number" id="aifw-{key}" name="{key}" value="{value}" '
            f'min="{low}" max="{high}">{f"<small>{unit}</small>" if unit else ""}</div>'
        )

    out.append('<div class="row">')
    out.append(number("cpus", "CPUs", _int(chosen.get("cpus"), DEFAULT_CPUS), 1, lim.max_cpus))
    out.append(number("memory_gb", "Memory (GB)", _int(chosen.get("memory_gb"), DEFAULT_MEMORY_GB), 1, lim.max_memory_gb))
    out.append(number("gpus", "GPUs", _int(chosen.get("gpus"), 0), 0, max(lim.max_gpus, 0)))
    out.append(
        number(
            "runtime_minutes",
            "Walltime (minutes)",
            _int(chosen.get("runtime_minutes"), part.default_runtime_minutes),
            1,
            lim.max_runtime_minutes,
        )
    )
    out.append("</div>")
    out.append('<p id="aifw-cost" class="text-muted">This request costs <span id="aifw-gpu-hours">0</span> GPU-hours'
               '<span id="aifw-budget-note"></span>.</p>')
    for c, st in blocks:
        tag, mine = (c.name if several else ""), c.name == cluster.name
        account = str(chosen.get("account", "")) if mine else ""
        if tag:
            out.append(f"<div{_for_cluster(tag, mine)}>")
        out += _projects_section(site, c, st.projects, account, tag=tag, disabled=not mine)
        if tag:
            out.append("</div>")

    env_choice = str(chosen.get("environment", site.environments[0].name))
    out.append('<div class="form-group"><label for="aifw-environment">Software environment</label>')
    out.append('<select class="form-control" id="aifw-environment" name="environment">')
    for env in site.environments:
        sel = " selected" if env.name == env_choice else ""
        desc = f" — {env.description}" if env.description else ""
        out.append(f'<option value="{escape(env.name)}"{sel}>{escape(env.name + desc)}</option>')
    out.append("</select></div>")

    for c, _st in blocks:
        tag, mine = (c.name if several else ""), c.name == cluster.name
        section = _reservation_section(c, str(chosen.get("reservation", "")) if mine else "", tag=tag,
                                       disabled=not mine)
        if tag and section:
            section = [f"<div{_for_cluster(tag, mine)}>", *section, "</div>"]
        out += section
    out.append("</div>")
    out.append(_SCRIPT)
    return "\n".join(line for line in out if line)


# Shows the chosen cluster's fields (and disables the others', so they are not submitted), keeps the number
# fields' limits in line with the chosen partition and shows the GPU-hours.
_SCRIPT = """<script>
(function () {
  function q(id) { return document.getElementById(id); }
  function clamp(id, max) {
    var el = q(id);
    el.max = max;
    if (parseInt(el.value || '0') > parseInt(max)) { el.value = max; }
  }
  function chosenPartition() {
    return document.querySelector('.aifw-form input[name="partition"]:checked:not(:disabled)');
  }
  function chosenAccount() {
    return document.querySelector('.aifw-form select[name="account"]:not(:disabled)');
  }
  function clusterChanged() {
    var c = document.querySelector('.aifw-form input[name="cluster"]:checked');
    if (!c) return;
    var blocks = Array.from(document.querySelectorAll('.aifw-form .aifw-for-cluster'));
    blocks.forEach(function (block) {  // first the others' fields off (a checked partition there is remembered)
      if (block.dataset.cluster === c.value) return;
      block.hidden = true;
      block.querySelectorAll('input, select').forEach(function (el) { el.disabled = true; });
      var checked = block.querySelector('input[name="partition"]:checked');
      if (checked) {
        block.querySelectorAll('input[name="partition"]').forEach(function (el) { delete el.dataset.preferred; });
        checked.dataset.preferred = '';
      }
    });
    blocks.forEach(function (block) {  // then the chosen cluster's on, with its partition checked
      if (block.dataset.cluster !== c.value) return;
      block.hidden = false;
      block.querySelectorAll('input, select').forEach(function (el) { el.disabled = false; });
      var preferred = block.querySelector('input[name="partition"][data-preferred]');
      if (!block.querySelector('input[name="partition"]:checked') && preferred) { preferred.checked = true; }
    });
    partitionChanged();
  }
  function partitionChanged() {
    var p = chosenPartition();
    if (!p) return;
    var rt = q('aifw-runtime_minutes');
    if (parseInt(rt.value || '0') > parseInt(p.dataset.maxRuntime)) { rt.value = p.dataset.defaultRuntime; }
    clamp('aifw-cpus', p.dataset.maxCpus);
    clamp('aifw-memory_gb', p.dataset.maxMemory);
    clamp('aifw-gpus', p.dataset.maxGpus);
    update();
  }
  function update() {
    var p = chosenPartition();
    if (!p) return;
    q('aifw-cpus').max = p.dataset.maxCpus;
    q('aifw-memory_gb').max = p.dataset.maxMemory;
    q('aifw-gpus').max = p.dataset.maxGpus;
    q('aifw-runtime_minutes').max = p.dataset.maxRuntime;
    var minutes = parseInt(q('aifw-gpus').value || '0') * parseInt(q('aifw-runtime_minutes').value || '0');
    q('aifw-gpu-hours').textContent = hours(minutes);
    var acct = chosenAccount(), note = '';
    var opt = acct && acct.selectedIndex >= 0 ? acct.options[acct.selectedIndex] : null;
    if (opt && opt.dataset.leftMinutes) {
      var left = parseInt(opt.dataset.leftMinutes);
      note = '; ' + opt.value + ' has ' + hours(left) + ' left' + (minutes > left ? ': too much, ask for less' : '');
    }
    q('aifw-budget-note').textContent = note;
  }
  function hours(minutes) { return (Math.round(minutes / 60 * 100) / 100).toString(); }
  document.querySelectorAll('.aifw-form select[name="account"]').forEach(function (el) {
    el.addEventListener('change', update);
  });
  document.querySelectorAll('.aifw-form input[name="cluster"]').forEach(function (el) {
    el.addEventListener('change', clusterChanged);
  });
  document.querySelectorAll('.aifw-form input[name="partition"]').forEach(function (el) {
    el.addEventListener('change', partitionChanged);
  });
  document.querySelectorAll('.aifw-form input[type="number"]').forEach(function (el) {
    el.addEventListener('change', update); el.addEventListener('input', update);
  });
  partitionChanged();
})();
</script>"""
