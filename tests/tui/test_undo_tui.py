"""Undo a step in the wizard, as a person would (Pilot, 80x24, waits on workers, no sleeps): after a
run the step's pane offers Undo (a button, and U); it shows the step's undo plan as
``gpuwizard undo STEP --plan`` prints it; Cancel changes nothing; Undo puts back what the step changed
and the step is pending again; a plan that refuses says why and offers "Undo anyway (--force)"; no
Undo on a fresh step nor in a dry run.

The container step on its own: on ``multi-gpu`` (a driver is there) it runs to done; on ``t4-bare``
(no driver) its final ``docker run --gpus`` check fails, after it changed the host."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
from textual.widgets import Button, Log, Static

from gpuwizard import journal as J
from gpuwizard.engine import Engine
from gpuwizard.errors import EXIT_OK, InvalidInput
from gpuwizard.session import WizardSession
from gpuwizard.state import State
from gpuwizard.steps import registry
from gpuwizard.steps.container import ContainerAnswers
from gpuwizard.tui.screens.modals import FailureScreen, UndoScreen
from gpuwizard.tui.widgets.banner import DryRunBanner

from .conftest import SIZE, make_app, make_app_with, make_session, open_pane, screen_text, settle

DAEMON = "/etc/docker/daemon.json"
SOURCES = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
PACKAGE = "nvidia-container-toolkit"


def shown(app, selector: str) -> bool:
    """The widget is on the screen: displayed, and every container above it too."""
    found = app.screen.query(selector)
    return bool(found) and found.first().visible and all(node.display for node in found.first().ancestors_with_self
                                                       if hasattr(node, "display"))


def before_run(app) -> dict[str, str | None]:
    """What the container step changes, as it is before the run (None: absent)."""
    out: dict[str, str | None] = {}
    for path in (DAEMON, SOURCES):
        p = app.host.path(path)
        out[path] = p.read_text() if p.exists() else None
    return out


def installed(app) -> set[str]:
    packages = J.installed_packages(app.host, "apt")
    assert packages is not None, "dpkg-query is not simulated on this host"
    return packages


async def run_container(pilot, app) -> None:
    await open_pane(pilot, "container")
    await pilot.press("ctrl+r")
    await settle(pilot)


async def undo_dialog(pilot, app) -> UndoScreen:
    """Once U or an Undo button was pressed: the dialog, its plan in."""
    await settle(pilot)
    assert isinstance(app.screen, UndoScreen)
    assert app.screen.plan is not None
    return app.screen


def dialog_text(screen: UndoScreen) -> str:
    return screen.text


def assert_fits(app, screen: UndoScreen) -> None:
    """The dialog is within 80x24, its buttons in view; the plan scrolls inside it."""
    width, height = app.size
    dialog = screen.query_one("#undo-dialog").region
    assert dialog.x >= 0 and dialog.y >= 0 and dialog.right <= width and dialog.bottom <= height, dialog
    for button in screen.query(Button):
        if button.display:
            assert dialog.contains_region(button.region), (button.id, button.region, dialog)
    scroll = screen.query_one("#undo-scroll").region
    assert dialog.contains_region(scroll)


async def test_undo_by_click_cancel_changes_nothing_then_undo_puts_back(tmp_path: Path):
    app = make_app(tmp_path, profile="multi-gpu")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = before_run(app)
        assert PACKAGE not in installed(app)
        await run_container(pilot, app)
        assert app.state.status("container") == "done"
        assert app.host.path(DAEMON).exists() and PACKAGE in installed(app)
        # the run view, finished: Undo beside Next and Back; U in the key bar
        assert shown(app, "#step-container #undo-after")
        assert "u Undo" in screen_text(app)

        await pilot.click("#step-container #undo-after")
        screen = await undo_dialog(pilot, app)
        text = dialog_text(screen)
        assert "[container] undo: Container runtime" in text
        assert f"remove {DAEMON}" in text and f"rm {DAEMON}" in text
        assert "apt-get purge -y" in text and PACKAGE in text
        assert "gpuwizard undo container --plan" in screen_text(app)
        assert shown(app, "#undo") and not shown(app, "#force") and not shown(app, "#undo-refusal")
        assert app.focused is screen.query_one("#undo", Button)
        assert_fits(app, screen)

        journal = copy.deepcopy(app.state.data.get("journal"))
        daemon = app.host.path(DAEMON).read_text()
        await pilot.click("#cancel")
        await settle(pilot)
        assert not isinstance(app.screen, UndoScreen)
        assert app.state.data.get("journal") == journal  # planning the undo changed nothing, not even in memory
        assert app.host.path(DAEMON).read_text() == daemon and PACKAGE in installed(app)
        assert app.state.status("container") == "done"
        assert shown(app, "#step-container #undo-after")

        await pilot.click("#step-container #undo-after")
        await undo_dialog(pilot, app)
        await pilot.click("#undo")
        await settle(pilot)
        assert not isinstance(app.screen, UndoScreen)
        # what the step added is gone; what was there stays as it was
        assert before_run(app) == before
        assert PACKAGE not in installed(app)
        assert app.state.status("container") == "pending"
        assert app.status("container") == "pending" and app.main.statuses["container"] == "pending"
        assert not list(J.live(app.state, ["container"]))
        # the undo's events in the run log, as a run's
        log = "\n".join(app.pane("container").query_one("#run-log", Log).lines)
        assert "── undo ──" in log
        assert f"▶ remove {DAEMON}" in log and f"  changed: remove {DAEMON}" in log
        assert "[undone] put back as it was before gpuwizard" in log
        text = screen_text(app)
        assert "↶ undone" in text and "u Undo" not in text
        assert not shown(app, "#step-container #undo-after")
        assert app.focused is app.pane("container").query_one("#back", Button)
        # the step list says pending; back in the setup view there is no Undo and the plan is fresh
        await pilot.press("enter")  # Back to answers
        await settle(pilot)
        assert not shown(app, "#step-container #undo")
        assert "Undone:" in screen_text(app)
        assert "[todo]" in str(app.pane("container").query_one("#step-plan", Static).render())


async def test_undo_by_key_from_the_setup_view(tmp_path: Path):
    app = make_app(tmp_path, profile="multi-gpu")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = before_run(app)
        await run_container(pilot, app)
        await pilot.click("#step-container #back")  # Back to answers: the setup view offers Undo too
        await settle(pilot)
        assert shown(app, "#step-container #undo")
        assert "Undo" in screen_text(app)
        await pilot.press("u")
        screen = await undo_dialog(pilot, app)
        assert DAEMON in dialog_text(screen)
        await pilot.press("escape")  # Cancel
        await settle(pilot)
        assert not isinstance(app.screen, UndoScreen) and app.host.path(DAEMON).exists()
        await pilot.press("u")
        await undo_dialog(pilot, app)
        await pilot.press("enter")  # Undo: focused once the plan is in
        await settle(pilot)
        assert before_run(app) == before
        assert app.state.status("container") == "pending"
        assert not shown(app, "#step-container #undo-after")


async def test_a_refused_undo_says_why_and_offers_force(tmp_path: Path):
    app = make_app(tmp_path, profile="multi-gpu")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await run_container(pilot, app)
        sources = app.host.path(SOURCES)
        sources.write_text(sources.read_text() + "# added by hand\n")  # edited since gpuwizard wrote it
        await pilot.press("u")
        screen = await undo_dialog(pilot, app)
        assert screen.plan is not None and screen.plan.refused
        assert not shown(app, "#undo") and shown(app, "#force") and shown(app, "#undo-refusal")
        assert app.focused is screen.query_one("#cancel", Button)  # forcing is never the default
        refusal = str(screen.query_one("#undo-refusal", Static).render())
        assert "Refused" in refusal and f"{SOURCES} was edited since gpuwizard wrote it" in refusal
        text = dialog_text(screen)
        assert f"  refused: {SOURCES} was edited since gpuwizard wrote it" in text.split("with --force")[0]
        assert "── with --force (gpuwizard undo container --plan --force) ──" in text
        assert f"rm {SOURCES}" in text.split("with --force")[1]
        assert_fits(app, screen)
        await pilot.click("#force")
        await settle(pilot)
        assert not sources.exists() and not app.host.path(DAEMON).exists()
        assert app.state.status("container") == "pending"


async def test_a_step_under_another_still_installed_is_refused(tmp_path: Path):
    """t4-bare: container, then kind (both fail their checks after changing the host); undoing
    container while kind's changes stay is refused, with the order that works."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for sid in ("container", "kind"):
            await open_pane(pilot, sid)
            await pilot.press("ctrl+r")
            await settle(pilot)
            if isinstance(app.screen, FailureScreen):
                await pilot.press("escape")
                await settle(pilot)
            assert app.can_undo(sid)
        await open_pane(pilot, "container")
        daemon = app.host.path(DAEMON).read_text()
        await pilot.press("u")
        screen = await undo_dialog(pilot, app)
        refusal = str(screen.query_one("#undo-refusal", Static).render())
        assert "kind is still installed on top of container" in refusal
        assert "gpuwizard undo kind container" in refusal
        assert "refused: kind is still installed on top of container" in dialog_text(screen)
        assert not shown(app, "#undo") and shown(app, "#force")
        assert_fits(app, screen)
        await pilot.press("enter")  # Cancel (focused)
        await settle(pilot)
        assert not isinstance(app.screen, UndoScreen)
        assert app.host.path(DAEMON).read_text() == daemon and app.can_undo("container")


async def test_undo_after_a_failed_run_on_t4_bare(tmp_path: Path):
    """No driver: the step's check fails after it changed the host; Undo puts that back."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = before_run(app)
        await run_container(pilot, app)
        assert isinstance(app.screen, FailureScreen)
        await pilot.press("escape")  # stay on the step
        await settle(pilot)
        assert app.state.status("container") == "failed"
        assert app.host.path(DAEMON).exists()
        assert shown(app, "#step-container #undo-after")
        await pilot.press("u")
        screen = await undo_dialog(pilot, app)
        assert f"rm {DAEMON}" in dialog_text(screen)
        await pilot.press("enter")
        await settle(pilot)
        assert before_run(app) == before
        assert app.state.status("container") == "pending"


async def test_no_undo_on_a_fresh_step(tmp_path: Path):
    app = make_app(tmp_path, profile="multi-gpu")
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(pilot, "container")
        assert app.pane("container").query("#undo") and not shown(app, "#step-container #undo")
        assert not app.can_undo("container")
        assert "u Undo" not in screen_text(app)
        await pilot.press("u")
        await settle(pilot)
        assert not isinstance(app.screen, UndoScreen)


async def test_no_undo_in_a_dry_run(tmp_path: Path):
    """The journal of a real run is there, yet a dry run offers no Undo (it would change the host)."""
    app = make_app(tmp_path, profile="multi-gpu")
    async with app.run_test(size=SIZE) as pilot:
        await run_container(pilot, app)
        assert app.can_undo("container")
        await pilot.press("ctrl+q")
    dry = make_app_with(tmp_path, "--dry-run", profile="multi-gpu")
    async with dry.run_test(size=SIZE) as pilot:
        await open_pane(pilot, "container")
        assert list(J.live(dry.state, ["container"]))  # the real run's changes, in the dry run's copy of the state
        assert not dry.can_undo("container") and not dry.ready.can_undo("container")
        assert dry.pane("container").query("#undo") and not shown(dry, "#step-container #undo")
        text = screen_text(dry)
        assert "u Undo" not in text and "DRY RUN" in text
        await pilot.press("u")
        await settle(pilot)
        assert not isinstance(dry.screen, UndoScreen)
        assert dry.main.query(DryRunBanner)
        with pytest.raises(InvalidInput):
            dry.ready.undo("container")
        assert dry.host.path(DAEMON).exists()


def test_session_undo_plan_leaves_the_state_alone(tmp_path: Path):
    """The model under the dialog: a plan of one step, on a copy of the state; the undo itself."""
    session = make_session(tmp_path / "host", "multi-gpu")
    state = State(session.state_path)
    model = WizardSession(Engine(session.host, state, registry(), unattended=False), {"container": ContainerAnswers()})
    assert not model.can_undo("container")
    assert model.run_step("container") == EXIT_OK
    assert model.can_undo("container") and not model.can_undo("kind")
    data = copy.deepcopy(state.data)
    listeners = list(session.host.runner.listeners)
    plan = model.undo_plan("container")
    assert state.data == data and session.host.runner.listeners == listeners
    assert [u.step_id for u in plan.undos] == ["container"] and not plan.refused and plan.forced is None
    assert plan.actions == len(plan.planned[0].actions) > 0
    out = io.StringIO()
    from gpuwizard.undo import render as _render_undo

    _render_undo(plan.planned, out)
    assert f"rm {DAEMON}" in out.getvalue()
    assert model.undo("container") == EXIT_OK
    assert state.status("container") == "pending" and not model.can_undo("container")


def test_the_plan_text_marks_disruptive_lines_and_wraps_under_its_item():
    """What the dialog does with the renderer's lines: the words stay; a disruptive change and a
    refusal are marked (red, after the renderer's ``!`` / ``refused:``); long lines hang under their item."""
    from rich.text import Text

    from gpuwizard.tui.widgets.undoplan import hang_wrap, style_line

    disruptive = style_line("      ! uninstalls hami: its pods stop")
    assert disruptive.plain == "      ! uninstalls hami: its pods stop"
    assert any("red" in str(span.style) for span in disruptive.spans)
    assert "red" in str(style_line("disruptive changes in this undo:").style)
    assert "red" in str(style_line("  refused: operator is still installed on top of kind").style)
    todo = style_line("  [todo] remove /etc/docker/daemon.json")
    assert todo.plain == "  [todo] remove /etc/docker/daemon.json"
    line = "      $ apt-get remove -y libnvidia-container-tools libnvidia-container1 nvidia-container-toolkit"
    pieces = [p.plain for p in hang_wrap(Text(line), 50)]
    assert len(pieces) > 1 and all(len(p) <= 50 for p in pieces)
    assert all(p.startswith(" " * 8) for p in pieces[1:])
    assert " ".join(p.strip() for p in pieces) == line.strip()


async def test_u_typed_into_a_form_field_is_a_letter_not_undo(tmp_path: Path):
    """With Undo on offer, a "u" typed into a form field goes into the field."""
    from textual.widgets import Input

    app = make_app(tmp_path, profile="multi-gpu")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await run_container(pilot, app)
        await open_pane(pilot, "kind")
        box = app.pane("kind").query_one("#f-cluster_name", Input)
        assert await pilot.click("#f-cluster_name")
        await pilot.press("end", *["backspace"] * len(box.value), *"gpu-uu")
        await settle(pilot)
        assert box.value == "gpu-uu"
        assert not isinstance(app.screen, UndoScreen)
