"""State file (atomic, versioned, refused when it cannot be trusted) and the run lock."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gpuwizard.errors import LockHeld, StateError
from gpuwizard.state import RunLock, State

from ..conftest import lock_held


def test_round_trip_and_permissions(tmp_path: Path):
    path = tmp_path / "state.json"
    st = State(path)
    st.set_status("detect", "done", message="1× Tesla T4")
    st.record_action("detect", "probe", "ok")
    st.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = State.load(path)
    assert again.status("detect") == "done" and again.data["version"] == 1
    assert again.steps["detect"]["actions"]["probe"]["outcome"] == "ok"


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "corrupt"),
        ('{"version": 2, "steps": {}}', "newer gpuwizard"),
        ('["a list"]', "not a gpuwizard state file"),
        ('{"version": 1, "steps": {"bogus": {"status": "done"}}}', "unknown step"),
        ('{"version": 1, "steps": {"driver": {"status": "weird"}}}', "unknown step"),
    ],
)
def test_untrusted_state_is_refused_and_kept(tmp_path: Path, content: str, match: str):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError, match=match) as err:
        State.load(path)
    assert "mv " in str(err.value)  # says how to start over
    assert path.read_text() == content


def test_save_is_atomic(tmp_path: Path, monkeypatch):
    path = tmp_path / "state.json"
    st = State(path)
    st.set_status("detect", "done")
    st.save()
    before = path.read_text()
    st.set_status("driver", "running")

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        st.save()
    assert path.read_text() == before
    assert json.loads(before)["steps"]["detect"]["status"] == "done"
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_second_lock_names_the_holder(tmp_path: Path):
    state = tmp_path / "state.json"
    with lock_held(state) as pid:
        with pytest.raises(LockHeld) as err:
            RunLock(state).acquire()
        assert err.value.pid == pid and err.value.exit_code == 4
        assert f"PID {pid}" in str(err.value)
    # the kernel released it with the process
    RunLock(state).acquire().release()
