"""Fixes in the TUI's screens and widgets, each driven as a person would: a click and the keys.

Quit from the summary, checkbox glyphs, the "terminal too small" notice, long log lines, keys typed
quickly into a form field (Pilot, and a real process in tmux), the dry-run banner on every screen,
and the welcome pane's proposal (readable at 80x24, disruptive changes named).

Waits are on workers, events or what the screen shows, with a deadline; the only sleep is the
delay between keystrokes in the tmux test, which is that test's point."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from textual.widgets import Checkbox, Input, Log

from gpuwizard.engine import PlannedStep
from gpuwizard.errors import EXIT_REBOOT
from gpuwizard.tui.screens.modals import HelpScreen, TooSmallScreen
from gpuwizard.tui.screens.overview import WARN, WelcomePane, proposal
from gpuwizard.tui.widgets.banner import DRY_RUN_TEXT, DryRunBanner

from .conftest import SIZE, Flood, add_tool, make_app, make_app_with, open_pane, screen_text, settle, with_driver

REPO = Path(__file__).resolve().parents[2]


# -- 1. the summary's Quit button ------------------------------------------------------------------
def _pending_reboot(app) -> int:
    """A step waiting for a reboot: the app's exit code is then 3, not a default 0."""
    app.state.set_status("driver", "reboot-required", message="the nvidia module loads at the next boot")
    app.refresh_statuses()
    assert app.exit_code() == EXIT_REBOOT
    return EXIT_REBOOT


@pytest.mark.parametrize("how", ["click", "keys"])
async def test_summary_quit_button_exits_with_the_exit_code(tmp_path: Path, how: str):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        code = _pending_reboot(app)
        await open_pane(pilot, "summary")
        if how == "click":
            assert await pilot.click("#quit")
        else:
            assert app.focused.id == "export"
            await pilot.press("tab")  # Export answers -> Quit
            assert app.focused.id == "quit"
            await pilot.press("enter")
        await pilot.pause()
    assert app.return_value == code


# -- 2. checkboxes read from their glyph -----------------------------------------------------------
def _box_text(box: Checkbox) -> str:
    return box.render().plain


async def test_checkbox_shows_its_state_by_glyph_click_and_space(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(pilot, "kind")
        box = app.pane("kind").query_one("#f-recreate", Checkbox)
        assert not box.value
        assert _box_text(box).startswith("[ ]") and "[ ] false" in screen_text(app)
        assert await pilot.click("#f-recreate")
        await pilot.pause()
        assert box.value and app.focused is box
        assert _box_text(box).startswith("[x]") and "[x] true" in screen_text(app)
        await pilot.press("space")
        await pilot.pause()
        assert not box.value
        assert _box_text(box).startswith("[ ]") and "[ ] false" in screen_text(app)
        await pilot.press("space")
        await settle(pilot)
        assert box.value and "[x] true" in screen_text(app)
        assert app.answers["kind"].recreate is True


# -- 3. terminal too small -------------------------------------------------------------------------
async def test_terminal_too_small_shows_a_notice_until_resized(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=(70, 20)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, TooSmallScreen)
        text = screen_text(app)
        assert "Terminal too small" in text and "80x24" in text and "70x20" in text
        assert "Steps" not in text  # the clipped layout is not shown
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert not isinstance(app.screen, TooSmallScreen)
        text = screen_text(app)
        assert "Terminal too small" not in text and "Steps" in text
        await pilot.resize_terminal(100, 23)  # wide enough, too short
        await settle(pilot)
        assert isinstance(app.screen, TooSmallScreen) and "100x23" in screen_text(app)
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        assert not isinstance(app.screen, TooSmallScreen)


async def test_terminal_too_small_over_a_dialog_then_back_to_it(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.resize_terminal(60, 24)
        await settle(pilot)
        assert isinstance(app.screen, TooSmallScreen) and "60x24" in screen_text(app)
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        assert not any(isinstance(s, TooSmallScreen) for s in app.screen_stack)


# -- 4. long lines in the run log ------------------------------------------------------------------
LONG = "".join(f"{i:03d}" for i in range(100))  # 300 characters, each position readable


async def test_a_long_log_line_wraps_and_is_fully_visible(tmp_path: Path):
    app = make_app(tmp_path, steps=with_driver(Flood))
    add_tool(app, "flood", f"print('start'); print({LONG!r}); print('end')")
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(pilot, "driver")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.state.status("driver") == "done"
        log = app.pane("driver").query_one(Log)

        def check() -> None:
            width = log.scrollable_content_region.width
            lines = list(log.lines)
            assert 0 < width < len(LONG)
            assert max(len(x) for x in lines) <= width  # nothing runs off to the right
            start = lines.index("start")
            end = lines.index("end")
            assert "".join(lines[start + 1:end]) == LONG
            text = screen_text(app)  # and it is all on the screen, piece by piece
            for piece in lines[start + 1:end]:
                assert piece in text

        check()
        await pilot.resize_terminal(110, 30)  # wider: wrapped again at the new width
        await settle(pilot)
        check()


# -- 5. keys typed quickly into a form field -------------------------------------------------------
async def test_quick_typing_into_a_form_field_keeps_every_key(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(pilot, "kind")
        box = app.pane("kind").query_one("#f-cluster_name", Input)
        assert await pilot.click("#f-cluster_name")
        assert app.focused is box
        await pilot.press("end", *["backspace"] * len(box.value), *"prod-gpu")
        assert box.value == "prod-gpu"
        await settle(pilot)  # every re-plan the keys started has come back
        assert box.value == "prod-gpu" and app.focused is box
        assert app.answers["kind"].cluster_name == "prod-gpu"
        # and by keyboard only, as a terminal delivers keys: all at once, no waiting in between.
        # Shift+Tab from "Run step" back up to the field (it selects the field's text: the first
        # key replaces it), then the word; the keys right after the Shift+Tabs must reach the field
        app.pane("kind").query_one("#run").focus()
        await pilot.pause()
        burst(app, [*["shift+tab"] * 8, *"dev-gpu"])  # 8: set_docker_default_runtime, kubeconfig .. cluster_name
        await settle(pilot)
        assert app.focused is box
        assert box.value == "dev-gpu" and app.answers["kind"].cluster_name == "dev-gpu"


def burst(app, keys: list[str]) -> None:
    """Keys into the app's queue at once, as a terminal delivers typing (pilot.press waits after
    each key, which would hide a key that goes to the wrong widget)."""
    from textual import events

    names = {"-": "minus", " ": "space"}
    for key in keys:
        char = key if len(key) == 1 else None
        app.post_message(events.Key(names.get(key, key), char))


class Tmux:
    """A private tmux server (a socket of its own) with one 80x24 session."""

    def __init__(self) -> None:
        self.socket = f"gwtest-{os.getpid()}-{time.monotonic_ns()}"

    def __call__(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                             capture_output=True, text=True, check=check, timeout=10)
        return out.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "gw")

    def wait_for(self, pattern: str, deadline: float = 20.0) -> str:
        """Until the screen matches ``pattern`` (a regex), or fail after ``deadline`` seconds."""
        end = time.monotonic() + deadline
        while True:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            if time.monotonic() > end:
                raise AssertionError(f"{pattern!r} never showed:\n{screen}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_typing_at_60ms_per_key_in_a_real_terminal_keeps_every_key(tmp_path: Path):
    tmux = Tmux()
    argv = [sys.executable, "-m", "gpuwizard", "--simulate", "t4-bare", "--root", str(tmp_path / "host")]
    # a server of its own (its own socket): it inherits this environment, and the command runs
    # in the checkout, so `-m gpuwizard` is this code
    tmux("new-session", "-d", "-s", "gw", "-x", "80", "-y", "24", "-c", str(REPO), shlex.join(argv))
    try:
        tmux.wait_for(r"no blockers found")
        # to the kind step through the command palette, each key once its effect is on the screen
        tmux("send-keys", "-t", "gw", "C-p")
        tmux.wait_for(r"Search for commands")
        tmux("send-keys", "-t", "gw", "-l", "jump to step 5")
        tmux.wait_for(r"Jump to step 5: kind")
        tmux("send-keys", "-t", "gw", "Enter")
        tmux.wait_for(r"Step 5/\d+: Kubernetes")
        tmux.wait_for(r"cluster_name\s+gpu-cluster")
        tmux.wait_for(r"\[todo\]|cannot plan")  # open and planned: "Run step" has the focus
        # Shift+Tab from "Run step": set_docker_default_runtime, kubeconfig, existing_context, recreate, workers,
        # gpus, node_image, cluster_name
        tmux("send-keys", "-t", "gw", *["BTab"] * 8)
        for ch in "prod-gpu":
            tmux("send-keys", "-t", "gw", "-l", ch)
            time.sleep(0.06)  # the point of the test: a person's (quick) typing speed
        screen = tmux.wait_for(r"cluster_name\s+prod-gpu\b")
        assert re.search(r"cluster_name\s+prod-gpu\s*$", screen, re.M), screen
    finally:
        tmux("kill-server", check=False)


# -- 6. dry run marked on every screen -------------------------------------------------------------
async def test_dry_run_is_marked_on_the_main_screen_and_in_dialogs(tmp_path: Path):
    app = make_app_with(tmp_path, "--dry-run")
    assert app.host.dry_run
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query(DryRunBanner)
        assert DRY_RUN_TEXT in screen_text(app)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert app.screen.query(DryRunBanner) and DRY_RUN_TEXT in screen_text(app)
        await pilot.press("escape", "ctrl+d")  # the doctor, another dialog
        await pilot.pause()
        assert app.screen.query(DryRunBanner) and DRY_RUN_TEXT in screen_text(app)


async def test_a_dry_run_runs_a_step_through_the_checks_of_what_it_would_change(tmp_path: Path):
    """The container step in a dry run: its check of the key the download would have fetched, and of
    the runtime nvidia-ctk would have configured, are said in its log as the checks the real run
    makes, and the step ends done (it failed, "holds no key", before). CUDA's dry run plans against
    the driver the driver step of the session installs (it failed "no working NVIDIA driver"). With
    the driver step skipped, CUDA fails as a real run would; its dialog says the state file was not
    written."""
    from gpuwizard.tui.screens.modals import FailureScreen

    app = make_app_with(tmp_path, "--dry-run")
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(pilot, "container")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.state.status("container") == "done", app.state.steps.get("container")
        log = "\n".join(app.outputs["container"])
        assert "dry run: the real run checks here" in log and "holds no key" in log
        app.open("cuda")
        await settle(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.state.status("cuda") == "done", app.state.steps.get("cuda")
    app = make_app_with(tmp_path / "second", "--dry-run")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.skip_step("driver")
        app.open("cuda")
        await settle(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, FailureScreen)
        text = " ".join(screen_text(app).replace("█", " ").replace("│", " ").split())
        assert "(not written: a dry run changes nothing, the state file included)" in text
    assert not (tmp_path / "host/var/lib/gpuwizard/state.json").exists()
    assert not (tmp_path / "second/host/var/lib/gpuwizard/state.json").exists()


async def test_no_dry_run_banner_otherwise(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not app.screen.query(DryRunBanner) and DRY_RUN_TEXT not in screen_text(app)
        await pilot.press("f1")
        assert DRY_RUN_TEXT not in screen_text(app)


# -- 7. the welcome pane's proposal ----------------------------------------------------------------
def _render(renderable, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.export_text().splitlines()


async def test_proposal_fits_80x24_and_names_the_disruptive_changes(tmp_path: Path):
    app = make_app(tmp_path, propose=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # fakes with and without the attribute (and one already done: not a change any more)
        restart = SimpleNamespace(title="restart Docker", disruptive="restarts Docker: running containers stop")
        quiet = SimpleNamespace(title="write daemon.json")  # no attribute at all
        gone = SimpleNamespace(title="delete the old cluster", disruptive="deletes the Kind cluster old")
        create = SimpleNamespace(title="create the cluster", disruptive="creates the Kind cluster gpu-cluster")
        app.plans["container"] = PlannedStep(app.steps["container"], [quiet, restart], [False, False])
        app.plans["kind"] = PlannedStep(app.steps["kind"], [gone, create, SimpleNamespace(title="x", disruptive="")],
                                        [True, False, False])
        pane = app.main.query_one(WelcomePane)
        pane.refresh_view()
        await pilot.pause()
        width = app.main.query_one("#welcome-plan").content_region.width
        lines = _render(proposal(app), width)
        assert max(len(line.rstrip()) for line in lines) <= width
        starts = set()
        for n, sid in enumerate(app.step_ids, 1):  # every step has its row: number and id in full
            row = next((line for line in lines if line.startswith(f"{n} {sid} ")), None)
            assert row is not None, (sid, lines)
            starts.add(len(row) - len(row[len(f"{n} {sid}"):].lstrip()))
        # one column for what each step does, and a wide one (nothing squeezed into a tall strip)
        assert len(starts) == 1 and width - starts.pop() >= 30
        container = next(i for i, line in enumerate(lines) if line.startswith(f"{app.step_ids.index('container') + 1} container "))
        assert len(lines[container].strip()) > 30  # its changes on one line (cut with …)
        text = " ".join(" ".join(lines).split())
        assert f"{WARN} restarts Docker: running containers stop" in text
        assert f"{WARN} creates the Kind cluster gpu-cluster" in text
        assert "deletes the Kind cluster old" not in text  # done already
        assert text.count(WARN) == 2
        # and on the screen: the welcome pane scrolled down to the proposal
        pane.query_one(".pane-scroll").scroll_end(animate=False)
        await pilot.pause()
        screen = " ".join(screen_text(app).split())
        assert f"{WARN} restarts Docker: running" in screen and "What the wizard proposes" in screen
