"""The spawn form, rendered from the site file merged with the live cluster and the user's projects (pure).

Every value that reaches the page is escaped. Choices are pre-filled from (in order) a launch link's
query, the user's last choices, then the site's defaults; the project from those, else the user's default
project. Each project shows its GPU-hours used and left, or says they are unknown. A notice (how the
user's last session ended) comes first.
"""
from __future__ import annotations

from html import escape
from typing import Any, Mapping

from aifw.site import Site
from aifw.slurm import PartitionInfo, ProjectBudget, format_hours

from .request import DEFAULT_CPUS, DEFAULT_MEMORY_GB, UserProjects, limits_for, offered_accounts

# Launch-link aliases: /hub/spawn?partition=gpu&gpus=1&runtime=60
QUERY_ALIASES = {"runtime": "runtime_minutes", "memory": "memory_gb", "mem": "memory_gb", "env": "environment"}
PREFILL_KEYS = frozenset(QUERY_ALIASES) | {
    "partition", "cpus", "memory_gb", "gpus", "runtime_minutes", "account", "reservation", "environment"}


def _int(value: Any, fallback: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return fallback


def _partition_row(site: Site, name: str, live: Mapping[str, PartitionInfo] | None) -> str:
    part = site.partition(name)
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


def _projects_section(site: Site, projects: UserProjects | None, chosen: str) -> list[str]:
    projects = projects if projects is not None else UserProjects(tuple(offered_accounts(site)))
    accounts = list(projects.accounts)
    out = ['<fieldset class="form-group" id="aifw-projects"><legend>Project (Slurm account)</legend>']
    if not projects.known:
        out.append(
            '<div class="alert alert-info" role="status" id="aifw-budgets-unknown">Slurm\'s accounting is not '
            "answering right now: the projects below are the ones the site file lists, and their GPU-hours "
            "budgets are unknown. Slurm still checks both when the session is submitted.</div>"
        )
    elif not accounts:
        out.append('<p id="aifw-no-projects">You are in no project (Slurm account): sessions are billed to '
                   "Slurm's default. Ask an administrator to add you to a project.</p>")
    if chosen not in accounts:
        chosen = projects.default if projects.default in accounts else ""
    empty_allowed = not site.slurm.account_required and not projects.default
    if not chosen and not empty_allowed and accounts:
        chosen = accounts[0]
    out.append('<label for="aifw-account">Bill this session to</label>')
    out.append('<select class="form-control" id="aifw-account" name="account">')
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


def render_form(
    site: Site,
    live: Mapping[str, PartitionInfo] | None,
    previous: Mapping[str, Any] | None = None,
    prefill: Mapping[str, Any] | None = None,
    projects: UserProjects | None = None,
    notice: str = "",
) -> str:
    """The form's HTML. `projects`: the user's projects and budgets (None: the site file's accounts);
    `notice`: shown first (how the user's last session ended), "" for none."""
    chosen: dict[str, Any] = {}
    chosen.update(previous or {})
    for key, value in (prefill or {}).items():
        chosen[QUERY_ALIASES.get(key, key)] = value
    parts = site.visible_partitions
    names = [p.name for p in parts]
    if live is not None:
        names = [n for n in names if n in live] or names
    current = str(chosen.get("partition", site.default_partition.name))
    if current not in names:
        current = site.default_partition.name if site.default_partition.name in names else names[0]
    part = site.partition(current)
    assert part is not None
    lim = limits_for(part, live.get(current) if live else None)

    out = ['<div class="aifw-form">']
    if notice:
        out.append(f'<div class="alert alert-warning" role="alert" id="aifw-last-session">{escape(notice)}</div>')
    if live is None:
        out.append(
            '<div class="alert alert-warning" role="alert" id="aifw-slurm-silent">Slurm is not answering right now: '
            "the partitions below are the site's static description, without live availability.</div>"
        )
    out.append('<fieldset class="form-group"><legend>Partition</legend>')
    for name in names:
        checked = " checked" if name == current else ""
        p = site.partition(name)
        assert p is not None
        plim = limits_for(p, live.get(name) if live else None)
        out.append(
            f'<div class="form-check"><input class="form-check-input" type="radio" name="partition" '
            f'id="aifw-partition-{escape(name)}" value="{escape(name)}"{checked} '
            f'data-max-cpus="{plim.max_cpus}" data-max-memory="{plim.max_memory_gb}" '
            f'data-max-gpus="{plim.max_gpus}" data-max-runtime="{plim.max_runtime_minutes}" '
            f'data-default-runtime="{min(p.default_runtime_minutes, plim.max_runtime_minutes)}">'
            f'<label class="form-check-label" for="aifw-partition-{escape(name)}"><b>{escape(name)}</b> '
            f"{_partition_row(site, name, live)}</label></div>"
        )
    out.append("</fieldset>")

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
    out += _projects_section(site, projects, str(chosen.get("account", "")))

    env_choice = str(chosen.get("environment", site.environments[0].name))
    out.append('<div class="form-group"><label for="aifw-environment">Software environment</label>')
    out.append('<select class="form-control" id="aifw-environment" name="environment">')
    for env in site.environments:
        sel = " selected" if env.name == env_choice else ""
        desc = f" — {env.description}" if env.description else ""
        out.append(f'<option value="{escape(env.name)}"{sel}>{escape(env.name + desc)}</option>')
    out.append("</select></div>")

    if site.slurm.reservations:
        cur = str(chosen.get("reservation", ""))
        out.append('<details class="aifw-advanced"><summary>Advanced: reservation</summary>')
        out.append('<div class="form-group"><label for="aifw-reservation">Reservation (training event)</label>')
        out.append('<select class="form-control" id="aifw-reservation" name="reservation">')
        out.append('<option value="">(none)</option>')
        for opt in site.slurm.reservations:
            sel = " selected" if opt == cur else ""
            out.append(f'<option value="{escape(opt)}"{sel}>{escape(opt)}</option>')
        out.append("</select></div></details>")
    out.append("</div>")
    out.append(_SCRIPT)
    return "\n".join(out)


# Keeps the number fields' limits in line with the chosen partition and shows the GPU-hours.
_SCRIPT = """<script>
(function () {
  function q(id) { return document.getElementById(id); }
  function clamp(id, max) {
    var el = q(id);
    el.max = max;
    if (parseInt(el.value || '0') > parseInt(max)) { el.value = max; }
  }
  function partitionChanged() {
    var p = document.querySelector('input[name="partition"]:checked');
    if (!p) return;
    var rt = q('aifw-runtime_minutes');
    if (parseInt(rt.value || '0') > parseInt(p.dataset.maxRuntime)) { rt.value = p.dataset.defaultRuntime; }
    clamp('aifw-cpus', p.dataset.maxCpus);
    clamp('aifw-memory_gb', p.dataset.maxMemory);
    clamp('aifw-gpus', p.dataset.maxGpus);
    update();
  }
  function update() {
    var p = document.querySelector('input[name="partition"]:checked');
    if (!p) return;
    q('aifw-cpus').max = p.dataset.maxCpus;
    q('aifw-memory_gb').max = p.dataset.maxMemory;
    q('aifw-gpus').max = p.dataset.maxGpus;
    q('aifw-runtime_minutes').max = p.dataset.maxRuntime;
    var minutes = parseInt(q('aifw-gpus').value || '0') * parseInt(q('aifw-runtime_minutes').value || '0');
    q('aifw-gpu-hours').textContent = hours(minutes);
    var acct = q('aifw-account'), note = '';
    var opt = acct && acct.selectedIndex >= 0 ? acct.options[acct.selectedIndex] : null;
    if (opt && opt.dataset.leftMinutes) {
      var left = parseInt(opt.dataset.leftMinutes);
      note = '; ' + opt.value + ' has ' + hours(left) + ' left' + (minutes > left ? ': too much, ask for less' : '');
    }
    q('aifw-budget-note').textContent = note;
  }
  function hours(minutes) { return (Math.round(minutes / 60 * 100) / 100).toString(); }
  if (q('aifw-account')) { q('aifw-account').addEventListener('change', update); }
  document.querySelectorAll('.aifw-form input[name="partition"]').forEach(function (el) {
    el.addEventListener('change', partitionChanged);
  });
  document.querySelectorAll('.aifw-form input[type="number"]').forEach(function (el) {
    el.addEventListener('change', update); el.addEventListener('input', update);
  });
  partitionChanged();
})();
</script>"""
