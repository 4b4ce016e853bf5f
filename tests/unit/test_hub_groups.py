"""The courses' hub groups follow the site file; a group the hub does not let us read or change is an
error after every group was tried, never a silent "nothing changed". The hub is a stand-in here."""
from __future__ import annotations

import pytest

from aifw.hubapi import HubApiError
from aifw.sandbox import hub_groups
from aifw.sandbox.layout import Stack
from aifw.sandbox.processes import SandboxError
from aifw.site import example_site_path, load_site, site_from_dict


@pytest.fixture
def stack(tmp_path):
    data = load_site(example_site_path("sandbox")).model_dump(mode="json")
    data["courses"] = [{"id": "c1", "trainers": ["t1"], "learners": ["l1", "l2"]},
                       {"id": "c2", "trainers": ["t1"], "learners": ["l3"]}]
    return Stack(home=tmp_path, site=site_from_dict(data, source="test"))


def fake_hub(monkeypatch, groups, broken=()):
    calls = []

    def api(stack, method, path, body=None):
        calls.append((method, path, body))
        group = path.split("/")[2]
        if group in broken:
            raise HubApiError(500, f"the hub refused {method} {path} (HTTP 500): Internal Server Error")
        if method == "GET":
            return {"users": sorted(groups[group])}
        (groups[group].difference_update if method == "DELETE" else groups[group].update)(body["users"])
        return {}

    monkeypatch.setattr(hub_groups, "hub_api", api)
    return calls


def test_members_are_added_and_removed_to_match_the_site(stack, monkeypatch):
    groups = {"course-c1-trainers": {"t1"}, "course-c1-learners": {"l1", "gone"},
              "course-c2-trainers": {"t1"}, "course-c2-learners": {"l3"}}
    fake_hub(monkeypatch, groups)
    assert hub_groups.sync_hub_groups(stack) is True
    assert groups["course-c1-learners"] == {"l1", "l2"}
    assert hub_groups.sync_hub_groups(stack) is False


def test_a_group_the_hub_refuses_is_an_error_after_the_others_are_synced(stack, monkeypatch):
    groups = {"course-c1-trainers": {"t1"}, "course-c1-learners": set(),
              "course-c2-trainers": set(), "course-c2-learners": {"l3"}}
    fake_hub(monkeypatch, groups, broken={"course-c1-learners"})
    with pytest.raises(SandboxError, match=r"course-c1-learners \(the hub refused .*HTTP 500.*run `aifw sandbox up` again"):
        hub_groups.sync_hub_groups(stack)
    assert groups["course-c2-trainers"] == {"t1"}  # the groups after the broken one were still synced
