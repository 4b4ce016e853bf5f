"""The person's courses on the hub's home page: each course they take or teach, with its modules and a launch
button that carries the module's preset (partition, GPUs, session length); for a course the person teaches,
the "Start the class" form (aifw.hub_config.class_page).

The hub reads each course's public catalogue entry that `aifw courses publish` writes beside the learners'
copies (`<runtime prefix>/share/courses/<id>/.catalogue.json`: titles, goals, minutes, presets; no answers).
It is read as input: typed and checked here, a file that is missing or wrong leaves that course out and is
said once in the hub's log, never an error page.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from aifw.courses.sync import CATALOGUE  # the catalogue entry aifw courses publish writes (stdlib-only module)
from aifw.names import COURSE_ROLES, SLUG, SLURM_NAME, course_group, matches
from aifw.site import Site

log = logging.getLogger("aifw.hub_config.course_cards")


@dataclass(frozen=True)
class ModuleCard:
    id: str
    title: str
    minutes: int
    partition: str
    gpus: int
    launch_link: str  # the spawn page with the module's preset, relative to the hub's root
    session_minutes: int = 0  # the session's walltime (the module's session length, else its minutes)


@dataclass(frozen=True)
class CourseCard:
    id: str
    title: str
    modules: tuple[ModuleCard, ...]
    teaching: bool = False  # the person is a trainer of it (hub group course-<id>-trainers): "Start the class"


def _text(value: Any, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected text, got {value!r:.60}")
    return value.strip()[:limit]


def _count(value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"expected a whole number {low}-{high}, got {value!r:.60}")
    return value


def course_card(data: Any, course_id: str) -> CourseCard:
    """A catalogue entry as typed values; ValueError says what is wrong with it."""
    if not isinstance(data, dict) or data.get("id") != course_id or not isinstance(data.get("modules"), list):
        raise ValueError(f"not the catalogue entry of course {course_id}")
    modules = []
    for m in data["modules"][:50]:
        if not isinstance(m, dict) or not matches(SLUG, str(m.get("id", ""))):
            raise ValueError(f"a module without a plain id: {m!r:.80}")
        partition = _text(m.get("partition"), 64)
        if not matches(SLURM_NAME, partition):
            raise ValueError(f"module {m['id']}: partition {partition!r} is not a Slurm name")
        gpus = _count(m.get("gpus"), 0, 64)
        minutes = _count(m.get("session_minutes", m.get("minutes")), 1, 1440)
        # Built here from the checked values (not taken from the file), so that the link cannot point elsewhere.
        link = "hub/spawn?" + urlencode({"partition": partition, "gpus": gpus, "runtime": minutes})
        modules.append(ModuleCard(m["id"], _text(m.get("title")), _count(m.get("minutes"), 1, 1440), partition,
                                  gpus, link, minutes))
    return CourseCard(course_id, _text(data.get("title")), tuple(modules))


def read_course_card(share: Path, course_id: str) -> CourseCard | None:
    path = share / course_id / CATALOGUE
    try:
        return course_card(json.loads(path.read_text()), course_id)
    except FileNotFoundError:
        log.info("Course %s has no catalogue entry at %s yet (aifw courses publish writes it)", course_id, path)
    except (OSError, ValueError) as err:
        log.warning("Course %s left off the home page: %s: %s", course_id, path, err)
    return None


def courses_for(site: Site, share: Path) -> Callable[[Any], list[CourseCard]]:
    """The template variable: a function of the logged-in user (JupyterHub passes it) giving their courses,
    those of the site file and those whose hub group they are in (an LTI launch, the REST API)."""
    def cards(user: Any) -> list[CourseCard]:
        if user is None:
            return []
        name = getattr(user, "name", "")
        groups = {getattr(g, "name", "") for g in (getattr(user, "groups", None) or ())}
        mine = set(site.courses_of(name)) | {c for c in site.course_ids
                                             if any(course_group(c, r) in groups for r in COURSE_ROLES)}
        return [replace(card, teaching=course_group(c, "trainer") in groups)
                for c in site.course_ids if c in mine and (card := read_course_card(share, c)) is not None]

    return cards
