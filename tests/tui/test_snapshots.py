"""`snap_compare` snapshots of every screen at 80x24 (textual==8.2.8, pytest-textual-snapshot==1.1.0
pinned; cursor blink off; fixed clock; paths masked). Update with: pytest tests/tui --snapshot-update"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import SIZE, ListPci, NeedsReboot, make_app, settle, with_driver


def snap(snap_compare, app, *actions, press=()):
    async def run_before(pilot):
        await settle(pilot)
        for action in actions:
            result = action(pilot)
            if result is not None:
                await result
            await settle(pilot)

    return snap_compare(app, terminal_size=SIZE, press=press, run_before=run_before)


def test_welcome(snap_compare, tmp_path: Path):
    assert snap(snap_compare, make_app(tmp_path, propose=True))


def test_step_setup_facts_form_plan(snap_compare, tmp_path: Path):
    app = make_app(tmp_path)
    assert snap(snap_compare, app, lambda p: app.open("driver"))


def test_step_run_with_live_log(snap_compare, tmp_path: Path):
    app = make_app(tmp_path, steps=with_driver(ListPci))
    assert snap(snap_compare, app, lambda p: app.open("driver"), lambda p: p.press("ctrl+r"))


def test_form_errors_inline(snap_compare, tmp_path: Path):
    app = make_app(tmp_path)
    assert snap(snap_compare, app, lambda p: app.open("podspec"), lambda p: p.press(*"Bad_Name"))


def test_failure_dialog(snap_compare, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps(
        [{"match": ["systemctl", "restart"], "rc": 1, "stderr": "Job for docker.service failed."}]))
    app = make_app(tmp_path, steps=with_driver(ListPci))
    assert snap(snap_compare, app, lambda p: app.open("driver"), lambda p: p.press("ctrl+r"))


def test_reboot_dialog(snap_compare, tmp_path: Path):
    app = make_app(tmp_path, steps=with_driver(NeedsReboot))
    assert snap(snap_compare, app, lambda p: app.open("driver"), lambda p: p.press("ctrl+r"))


def test_summary(snap_compare, tmp_path: Path):
    app = make_app(tmp_path)
    assert snap(snap_compare, app, lambda p: app.open("detect"), lambda p: p.press("ctrl+r"),
                lambda p: app.open("summary"))


def test_help(snap_compare, tmp_path: Path):
    assert snap(snap_compare, make_app(tmp_path), press=["f1"])


def test_doctor(snap_compare, tmp_path: Path):
    assert snap(snap_compare, make_app(tmp_path), press=["ctrl+d"])


def test_export_dialog(snap_compare, tmp_path: Path):
    assert snap(snap_compare, make_app(tmp_path), press=["ctrl+e"])
