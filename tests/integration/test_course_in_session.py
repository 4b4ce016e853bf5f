"""A learner's session has the course: released copies in ~/courses, never overwriting their work."""
from __future__ import annotations

import json
import pwd
from pathlib import Path


def test_a_new_session_has_the_course_and_keeps_the_learners_edits(stack, hub):
    name = stack.learners()[0]
    home = Path(pwd.getpwnam(name).pw_dir)
    module1 = home / "courses" / "aif-foundations" / "m1-first-steps"
    token = hub.user_token(hub.login(name), name)
    assert hub.start(name, {"partition": "cpu"}, token=token).status_code in (201, 202)
    hub.wait_ready(name)
    notebooks = sorted(module1.glob("*.ipynb"))
    assert notebooks, f"no course notebooks in {module1}"
    assert (home / "courses" / "aif-foundations" / "README.md").is_file()
    first = notebooks[0]
    assert first.stat().st_uid == pwd.getpwnam(name).pw_uid  # the learner's own copy
    text = first.read_text()
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    # The learner's work survives the next session.
    nb = json.loads(text)
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "my notes"})
    hub.run_code(name, token, f"import json; p={str(first)!r}; nb=json.load(open(p)); "
                              "nb['cells'].append({'cell_type':'markdown','metadata':{},'source':'my notes'}); "
                              "json.dump(nb, open(p,'w'))")
    hub.stop(name)
    assert hub.start(name, {"partition": "cpu"}).status_code in (201, 202)
    hub.wait_ready(name)
    assert "my notes" in first.read_text()


def test_courses_in_the_site_file_are_hub_groups(stack, hub):
    learners = hub.api("GET", "/groups/course-aif-foundations-learners").json()
    trainers = hub.api("GET", "/groups/course-aif-foundations-trainers").json()
    assert sorted(learners["users"]) == ["test-learner1", "test-learner2"]
    assert trainers["users"] == ["test-trainer1"]
    assert learners["properties"] == {"course": "aif-foundations", "role": "learner"}
