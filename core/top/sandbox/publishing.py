"""The learners' copies of the site's courses, published world-readable under home/share/courses
(`aifw.courses.publish`: only when the sources changed)."""
from __future__ import annotations

from aifw.courses.catalogue import load_catalogue
from aifw.courses.publish import publish

from .layout import Stack
from .processes import SandboxError, say


def publish_courses(stack: Stack) -> None:
    if not stack.site.course_ids:
        return
    wanted = set(stack.site.course_ids)
    courses = [c for c in load_catalogue() if c.id in wanted]
    missing = wanted - {c.id for c in courses}
    if missing:
        raise SandboxError(f"the site file names course(s) that are not installed: {', '.join(sorted(missing))}")
    stack.share.mkdir(exist_ok=True)
    stack.share.chmod(0o755)
    publish(courses, stack.share / "courses", say=say)
