"""`aifw grade`'s side of the progress service: after a run, every graded score of the assignment (= the course
module) from nbgrader's gradebook goes to `aifw-progress` (api/scores), through the hub's proxy, with the scripts'
admin token ($AIFW_ADMIN_TOKEN) or a hub admin's ($JUPYTERHUB_API_TOKEN). Best effort: grading never fails because
of it; what happened is one line for the trainer."""
from __future__ import annotations

import os
from pathlib import Path

from aifw.names import UNIX_USER, matches

from .progress import SERVICE_NAME, Score, ScoresPosted

TOKEN_ENV = ("AIFW_ADMIN_TOKEN", "JUPYTERHUB_API_TOKEN")
TIMEOUT_S = 10.0


def scores_body(course: str, assignment: str, scores: dict[str, tuple[float, float]]) -> tuple[ScoresPosted, list[str]]:
    """The message, and the students left out (an id that is no hub user name, or an assignment worth 0 points)."""
    kept, left_out = {}, []
    for student, (score, maximum) in sorted(scores.items()):
        if matches(UNIX_USER, student) and maximum > 0:
            kept[student] = Score(score=min(max(score, 0.0), maximum), maximum=maximum)
        else:
            left_out.append(student)
    return ScoresPosted(course=course, assignment=assignment, scores=kept), left_out


def post_scores(course: str, assignment: str, course_dir: Path, hub_url: str, env: dict[str, str] | None = None) -> str:
    """Send the assignment's graded scores to the progress service; returns what happened, in words."""
    from aifw.gradebook import GradebookError, submission_scores
    from aifw.hubapi import HubApi, HubApiError

    env = dict(os.environ) if env is None else env
    token = next((env[name] for name in TOKEN_ENV if env.get(name)), None)
    if token is None:
        return ("learners' progress not updated: set AIFW_ADMIN_TOKEN (the scripts' admin token) or "
                "JUPYTERHUB_API_TOKEN (a hub admin's) so that aifw grade can post the scores")
    try:
        body, left_out = scores_body(course, assignment, submission_scores(course_dir, assignment))
    except GradebookError as err:
        return f"learners' progress not updated: {err}"
    try:
        HubApi(f"{hub_url.rstrip('/')}/services/{SERVICE_NAME}", token, timeout_s=TIMEOUT_S).call(
            "POST", "/api/scores", body.model_dump(mode="json"))
    except HubApiError as err:
        return f"learners' progress not updated: {err}. Is the hub running?"
    line = f"learners' progress: {len(body.scores)} score(s) of {assignment} sent to {SERVICE_NAME}"
    return line + (f"; left out (not a hub user name, or no points): {', '.join(left_out)}" if left_out else "")
