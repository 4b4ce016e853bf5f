"""``aifw lti publish COURSE ASSIGNMENT``: every learner's score for the assignment, from nbgrader's gradebook,
back to the LMS through the hub's grades service (aifw-lti-grades; LTI Assignment and Grade Services).

    sudo AIFW_ADMIN_TOKEN=... aifw lti publish aif-foundations m1-first-steps

The gradebook is read here (aifw.gradebook, as the course directory's owner or root); the service maps hub users
to platform users from their launches, finds or creates the line item, posts the scores, and queues what the
platform did not take (sent on the next publish, or by its own retry). `aifw grade ... --publish` calls the same
`publish`. Exit status 0 when every score is on the platform (sent or unchanged), 1 when some are not.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aifw.hub_config.lti_grades import SERVICE_NAME, PublishReply, PublishRequest, summary_line

#: How long the service may take for one publish (it bounds its own requests to the platform: 120 s).
TIMEOUT_S = 180
TOKEN_ENV = ("AIFW_ADMIN_TOKEN", "JUPYTERHUB_API_TOKEN")
STYLE = {"sent": "green", "unchanged": "green", "queued": "yellow", "not-launched": "red", "no-passback": "red"}


class PublishError(Exception):
    """Nothing was published; the message says what to fix."""


@dataclass(frozen=True)
class Target:
    """Where the scores come from and where they go."""

    course: str
    assignment: str
    course_dir: Path
    service_url: str  # .../services/aifw-lti-grades
    token: str


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lti", help="LTI 1.3: grades back to the LMS", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="lti_command", metavar="COMMAND", required=True)
    pub = sub.add_parser("publish", help="send an assignment's scores to the LMS (Assignment and Grade Services)",
                         description=__doc__.split("\n\n")[0])
    pub.add_argument("course", help="course id (from the site file)")
    pub.add_argument("assignment", help="assignment (module) id, as in nbgrader")
    add_publish_options(pub)
    pub.set_defaults(func=cmd_publish)


def add_publish_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--site", default=None, help="site file (default: $AIFW_SITE, else the sandbox's)")
    p.add_argument("--course-dir", type=Path, default=None, help="nbgrader course directory (default: from the site file)")


def target(course: str, assignment: str, site_file: str | None, course_dir: Path | None) -> Target:
    from aifw.site import SiteError, load_site

    try:
        site = load_site(site_file)
    except SiteError as err:
        raise PublishError(str(err)) from None
    if site.hub.authenticator != "lti" or site.lti is None:
        raise PublishError("the site's hub.authenticator is not lti: learners do not come from an LMS, so there is "
                           "nowhere to publish to (docs/lti.md)")
    if site.lti.token_url is None:
        raise PublishError("the site's lti section has no token_url, so grades cannot go to the platform; add the "
                           "platform's access token URL (docs/lti.md, Grades back to the LMS)")
    if course_dir is None and site.course(course) is None:
        raise PublishError(f"course {course!r} is not in the site file (courses: {', '.join(site.course_ids) or 'none'})"
                           "; add it there or pass --course-dir")
    token = next((os.environ[name] for name in TOKEN_ENV if os.environ.get(name)), None)
    if token is None:
        raise PublishError("publishing needs a hub token with access to the grades service: set AIFW_ADMIN_TOKEN "
                           "(the scripts' admin token; the sandbox's is api_token in sandbox.json) or "
                           "JUPYTERHUB_API_TOKEN (a hub admin's token, from the hub's Token page)")
    hub = site.hub.bind_url.rstrip("/")
    return Target(course=course, assignment=assignment,
                  course_dir=(course_dir or site.paths.course_dir(course)).resolve(),
                  service_url=f"{hub}/services/{SERVICE_NAME}", token=token)


def scores(t: Target) -> dict[str, tuple[float, float]]:
    """student -> (score, max score) of every graded submission, from the course's gradebook."""
    from aifw.gradebook import GradebookError, assignment_notebooks, submission_scores

    try:
        assignment_notebooks(t.course_dir, t.assignment)  # says which assignments exist when it is unknown
        return submission_scores(t.course_dir, t.assignment)
    except GradebookError as err:
        raise PublishError(str(err)) from None


def publish(t: Target) -> PublishReply:
    """Hand the scores to the grades service (through the hub's proxy) and return what it did."""
    from aifw.hubapi import HubApi, HubApiError

    body = PublishRequest(course=t.course, assignment=t.assignment, scores=scores(t))
    try:
        answer = HubApi(t.service_url, t.token, timeout_s=TIMEOUT_S).call("POST", "/api/publish",
                                                                          body.model_dump(mode="json"))
    except HubApiError as err:
        hint = {0: " Is the hub running, with hub.authenticator: lti?",
                403: " The token must be a hub admin's or the scripts' admin token."}.get(err.status, "")
        raise PublishError(f"the grades service did not publish: {err}.{hint}") from None
    try:
        return PublishReply.model_validate(answer)
    except ValueError as err:
        raise PublishError(f"the grades service's answer is not a publish reply ({err})") from None


def _score(score: float | None, maximum: float | None) -> str:
    return "" if score is None or maximum is None else f"{score:g} / {maximum:g}"


def result_table(t: Target, reply: PublishReply) -> Table:
    table = Table(title=f"aifw lti publish {t.course} {t.assignment}")
    for col in ("learner", "score", "outcome", "what happened"):
        table.add_column(col)
    for r in reply.results:
        table.add_row(r.user, _score(r.score, r.maximum), f"[{STYLE[r.outcome]}]{r.outcome}[/]", escape(r.detail))
    return table


def report(t: Target, reply: PublishReply, console: Console) -> int:
    """Print the table and the summary line; the exit status (0: every score is on the platform)."""
    if reply.results:
        console.print(result_table(t, reply))
    line = summary_line(reply.results)
    if reply.queued_elsewhere:
        line += f"; {reply.queued_elsewhere} score(s) of other assignments still queued"
    console.print(f"{t.course}/{t.assignment}: {line}", highlight=False)
    return 0 if all(r.outcome in ("sent", "unchanged") for r in reply.results) else 1


def run_publish(course: str, assignment: str, site_file: str | None, course_dir: Path | None,
                console: Console, err: Console) -> int:
    try:
        t = target(course, assignment, site_file, course_dir)
        reply = publish(t)
    except PublishError as e:
        err.print(f"[red]aifw lti publish:[/] {escape(str(e))}", highlight=False)
        return 2
    return report(t, reply, console)


def cmd_publish(args: argparse.Namespace) -> int:
    return run_publish(args.course, args.assignment, args.site, args.course_dir, Console(), Console(stderr=True))
