"""The end of a session's walltime, without a cluster: the site's `session` section and its checks, the
``--signal`` directive and its checks, the batch script's exports, and the warning schedule."""
from __future__ import annotations

import pytest

from aifw.site import SessionSettings, Site, SiteError, load_site
from aifw.slurm import BatchJob, BatchScript, UnsafeValue, build_batch_script


def site_with(tmp_path, session_yaml: str) -> Site:
    f = tmp_path / "site.yaml"
    f.write_text("name: t\npartitions:\n  - name: cpu\n" + session_yaml)
    return load_site(f)


def test_the_defaults_warn_at_ten_and_two_minutes_and_signal_a_minute_before(tmp_path):
    site = site_with(tmp_path, "")
    assert site.session.walltime_warnings_minutes == [10, 2]
    assert site.session.end_signal_seconds == 60
    custom = site_with(tmp_path, "session:\n  walltime_warnings_minutes: [30, 5, 1]\n  end_signal_seconds: 120\n")
    assert (custom.session.walltime_warnings_minutes, custom.session.end_signal_seconds) == ([30, 5, 1], 120)
    assert site_with(tmp_path, "session:\n  walltime_warnings_minutes: []\n").session.walltime_warnings_minutes == []


@pytest.mark.parametrize("yaml_text, said", [
    ("walltime_warnings_minutes: [2, 10]", "largest first, e.g. [10, 2]"),
    ("walltime_warnings_minutes: [10, 10, 2]", "repeated: 10"),
    ("walltime_warnings_minutes: [0]", "1 to 1440 minutes"),
    ("walltime_warnings_minutes: [2000, 5]", "got 2000"),
    ("walltime_warnings_minutes: [6, 5, 4, 3, 2, 1, 0]", "at most 6"),
    ("walltime_warnings_minutes: ten", "list"),
    ("end_signal_seconds: 10", "expected a number >= 30"),
    ("end_signal_seconds: 5000", "expected a number <= 900"),
    ("warnings: [10]", "session.warnings"),
])
def test_a_wrong_session_section_is_refused_naming_the_key(tmp_path, yaml_text, said):
    with pytest.raises(SiteError) as err:
        site_with(tmp_path, f"session:\n  {yaml_text}\n")
    assert said in str(err.value)


def test_the_packaged_sandbox_site_shows_the_section():
    assert load_site(None).session == SessionSettings(walltime_warnings_minutes=[10, 2], end_signal_seconds=60)
