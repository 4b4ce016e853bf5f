"""The courses' hub groups kept equal to the site file, through the hub's REST API (with the admin token of
sandbox.json). JupyterHub's load_groups adds members at start but never removes them; this removes them."""
from __future__ import annotations

from aifw.hubapi import HubApi, HubApiError
from aifw.names import course_group

from .layout import Stack
from .processes import SandboxError, say
from .sandbox_json import load_sandbox_json


def hub_api(stack: Stack, method: str, path: str, body: dict | None = None) -> dict:
    """One call of the hub's REST API as the sandbox's admin; raises HubApiError."""
    token = load_sandbox_json(stack).get("api_token", "")
    return HubApi(f"{stack.hub_url}/hub/api", token).call(method, path, body) or {}


def course_groups(stack: Stack) -> list[tuple[str, list[str]]]:
    """(hub group, the members the site file wants) of every course."""
    out = []
    for course in stack.site.courses:
        out += [(course_group(course.id, "trainer"), list(course.trainers)),
                (course_group(course.id, "learner"), list(course.learners))]
    return out


def sync_hub_groups(stack: Stack) -> bool:
    """Make each course's hub groups hold exactly the site's trainers and learners. Returns True when a
    group changed. Every group is tried; those the hub did not let us read or change are then an error."""
    changed, failed = False, []
    for group, wanted in course_groups(stack):
        try:
            have = set(hub_api(stack, "GET", f"/groups/{group}").get("users", []))
            extra, missing = sorted(have - set(wanted)), sorted(set(wanted) - have)
            if extra:
                hub_api(stack, "DELETE", f"/groups/{group}/users", {"users": extra})
            if missing:
                hub_api(stack, "POST", f"/groups/{group}/users", {"users": missing})
        except HubApiError as err:
            failed.append(f"{group} ({err})")
            continue
        if extra or missing:
            say(f"hub group {group}: " + ", ".join([f"+{u}" for u in missing] + [f"-{u}" for u in extra]))
            changed = True
    if failed:
        raise SandboxError(f"the hub's course groups could not be brought in line with the site file: {'; '.join(failed)}. "
                           f"Their members may be out of date. See {stack.hub_log}, then run `aifw sandbox up` again.")
    return changed
