"""The options of a class's sessions (pure): what a trainer asks for when they start a whole course's class
before a workshop (a module's preset, a partition, a reservation, a time after which an unused session stops)
as JupyterHub `user_options`, checked by the spawner's own boundary (`aifw.spawners.request.validate_options`)
before anything is started, so that a wrong partition or reservation is one clear error and not one refusal
per learner. Used by `aifw class start` (aifw.classroom) and the trainer's "Start the class" button
(aifw.hub_config.class_page).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aifw.site import Site

from .request import UNUSED_STOP_RANGE_S, OptionsError, validate_options

_DURATION = re.compile(r"^\s*(\d{1,7})\s*(s|sec|m|min|h|hours?)?\s*$")
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600}
DURATION_FORMS = "a number with s, m or h (90s, 30m, 2h; a bare number is minutes)"


class ClassError(ValueError):
    """What the trainer asked for cannot be done as it is; the message says what to change."""


def parse_duration(text: str, what: str = "duration") -> int:
    """'90s', '30m', '2h' or '45' (minutes) as seconds."""
    m = _DURATION.match(text or "")
    if not m:
        raise ClassError(f"{what} {text!r} is not a duration; write {DURATION_FORMS}")
    return int(m.group(1)) * _UNIT_S[m.group(2) or "m"]


@dataclass(frozen=True)
class Preset:
    """What the trainer asked for; None: the module's preset, else the site's default."""

    partition: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    memory_gb: int | None = None
    runtime_minutes: int | None = None
    reservation: str | None = None
    account: str | None = None
    stop_if_unused_s: int = 0


def class_options(site: Site, preset: Preset, module: Any | None = None) -> dict[str, Any]:
    """The `user_options` of every learner's session: the trainer's choices over the module's preset
    (`module`: anything with `partition`, `gpus`, `session_minutes` and `minutes`: an
    `aifw.courses.catalogue.Module`, the hub's `aifw.hub_config.course_cards.ModuleCard`, or None), checked against the site. Raises ClassError."""
    low, high = UNUSED_STOP_RANGE_S
    if preset.stop_if_unused_s and not low <= preset.stop_if_unused_s <= high:
        raise ClassError(f"the time after which an unused session stops must lie between {low} s and "
                         f"{high // 86400} days; you asked for {preset.stop_if_unused_s} s")
    options: dict[str, Any] = {}
    if module is not None:
        options.update(partition=module.partition, gpus=module.gpus,
                       runtime_minutes=module.session_minutes or module.minutes)
    for key in ("partition", "gpus", "cpus", "memory_gb", "runtime_minutes", "reservation", "account"):
        value = getattr(preset, key)
        if value is not None:
            options[key] = value
    if preset.stop_if_unused_s:
        options["stop_if_unused_s"] = preset.stop_if_unused_s
    try:
        request = validate_options(options, site)
    except OptionsError as err:
        raise ClassError("the class's sessions would be refused: " + "; ".join(err.problems)) from None
    return request.as_user_options()
