"""The wizard's start: the frame (header, step list with the state file's statuses, welcome pane) is
drawn before the steps, the engine and the session model are loaded, and what a person does in that
moment is not lost or misapplied; a load that fails ends with words, not a traceback.

The load is held back on a threading.Event so "before it is loaded" is a state the test controls,
not a race it hopes to win."""

from __future__ import annotations

import threading
from pathlib import Path

from gpuwizard.errors import EXIT_FAILED
from gpuwizard.tui.app import WizardApp
from gpuwizard.tui.messages import Navigate, Requested

from .conftest import SIZE, make_app, screen_text, settle


def held(app: WizardApp) -> threading.Event:
    """Hold the app's loading until the returned event is set."""
    gate = threading.Event()
    load = app._load

    def slow_load():
        assert gate.wait(20), "the test never released the load"
        return load()

    app._load = slow_load  # type: ignore[method-assign]
    return gate


async def wait_until(pilot, cond, what: str) -> None:
    for _ in range(400):
        if cond():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"never: {what}")


async def test_frame_before_the_steps_are_loaded_shows_the_state_files_statuses(tmp_path: Path):
    app = make_app(tmp_path)
    app.state.set_status("driver", "done", message="driver 565 installed")
    app.state.set_status("cuda", "running")  # a run that was interrupted: shown as stopped
    gate = held(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not app.loaded
        text = screen_text(app)
        assert "1 detect" in text and "8 podspec" in text
        assert "2 driver    done" in text
        assert "3 cuda      stopped" in text
        assert "detecting…" in text  # the welcome pane says what it waits for
        gate.set()
        await settle(pilot)
        assert app.loaded and app.facts is not None
        assert "Tesla T4" in screen_text(app)


async def test_keys_and_clicks_before_the_load_wait_for_it(tmp_path: Path):
    app = make_app(tmp_path)
    gate = held(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        # running, exporting and "next" need the steps: refused until they are loaded, not crashing
        await pilot.press("ctrl+r", "ctrl+e", "ctrl+n")
        app.post_message(Requested("run", "driver"))
        await pilot.pause()
        assert app.running is None and not app.loaded
        assert app.state.status("driver") == "pending"
        # a step picked in the list before the load is opened once the steps are there
        app.main.query_one("#steps").post_message(Navigate("cuda"))
        await pilot.pause()
        gate.set()
        await settle(pilot)
        await wait_until(pilot, lambda: app.current == "cuda" and bool(app.main.query("#step-cuda")), "the cuda pane")
        assert "Step 3/8" in screen_text(app)
        assert app.running is None  # the early Run did not run anything later either


async def test_a_load_that_fails_ends_with_a_message_and_exit_1(tmp_path: Path):
    app = make_app(tmp_path)

    def broken():
        raise RuntimeError("a step module is broken")

    app._load = broken  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.return_value is not None, "the app exits")
    assert app.return_value == EXIT_FAILED
    assert "internal error while loading the steps: RuntimeError: a step module is broken" in app.exit_message


def test_the_first_frame_needs_neither_pydantic_nor_the_steps():
    """What the TUI module imports before its first frame (a fresh interpreter): no pydantic, no
    YAML, no step module and no engine; those load after the frame."""
    import subprocess
    import sys

    code = ("import sys, gpuwizard.cli, gpuwizard.console, gpuwizard.tui.app; "
            "print(sorted(m for m in sys.modules if m in ('pydantic', 'yaml', 'gpuwizard.engine', 'gpuwizard.steps', "
            "'gpuwizard.answers', 'gpuwizard.session')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_state_modules_step_order_is_the_registrys():
    """The first frame lists the steps from ``state.STEP_IDS`` (no step imports): the registry's
    order, step for step."""
    from gpuwizard.state import STEP_IDS
    from gpuwizard.steps import STEP_CLASSES

    assert list(STEP_IDS) == [cls.id for cls in STEP_CLASSES]


async def test_the_wizards_log_has_its_head_and_every_command(tmp_path: Path):
    """The log on disk of a wizard session: the answers and the facts at the top, then a dated line
    per command the wizard ran (detection's probes included) with its exit code and duration."""
    import re

    app = make_app(tmp_path)
    from gpuwizard.console import log_block

    app.log_file.attach(app.host)  # as run_tui does
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.facts is not None
    app.log_file.close()
    text = app.log_path.read_text()
    assert log_block(text, "answers") and '"gpus"' in log_block(text, "facts")
    ended = re.findall(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d probe exit (\d+) in \d+\.\d{3}s \$ (.+)$", text, re.M)
    assert ("0", "lspci -nn") in ended  # detection's PCI probe, as it ran
    assert re.search(r"^\S+ probe not found on PATH \$ nvidia-smi --query-gpu=", text, re.M)  # t4-bare has no driver


def test_the_wizard_command_reaches_its_first_frame_without_pydantic(tmp_path: Path):
    """`gpuwizard --root R` as a person starts it, up to the moment the app starts drawing: what is
    imported by then (a fresh interpreter; the app's run is replaced by a probe of sys.modules)."""
    import subprocess
    import sys

    from gpuwizard.simulate import prepare

    sb = prepare("t4-bare", tmp_path / "host")
    code = (
        "import sys, gpuwizard.cli as cli, gpuwizard.tui.app as t\n"
        "def run(self, *a, **k):\n"
        "    print(sorted(m for m in ('pydantic', 'yaml', 'gpuwizard.engine', 'gpuwizard.steps', 'gpuwizard.answers') if m in sys.modules))\n"
        "    return 0\n"
        "t.WizardApp.run = run\n"
        "cli._interactive = lambda out: True\n"
        f"sys.exit(cli.main(['--root', {str(sb.root)!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**sb.env(), "PATH": sb.env()["PATH"]})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_the_first_frame_itself_is_drawn_without_pydantic(tmp_path: Path):
    """The app started headless in a fresh interpreter, its load held back: once the first frame
    is drawn (step list and welcome pane mounted and shown), still no pydantic and no steps."""
    import subprocess
    import sys

    from gpuwizard.simulate import prepare

    sb = prepare("t4-bare", tmp_path / "host")
    code = (
        "import asyncio, io, sys\n"
        "from gpuwizard.cli import Session, build_parser\n"
        "from gpuwizard.tui.app import WizardApp\n"
        f"s = Session(build_parser().parse_args(['--root', {str(sb.root)!r}]), unattended=True, err=io.StringIO())\n"
        "WizardApp.load_worker = lambda self: None\n"
        "app = WizardApp(s, None, False)\n"
        "async def main():\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause()\n"
        "        assert '1 detect' in str(app.main.query_one('#steps').get_option_at_index(1).prompt)\n"
        "        print(sorted(m for m in ('pydantic', 'gpuwizard.engine', 'gpuwizard.steps', 'gpuwizard.answers') if m in sys.modules))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**sb.env()})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


async def test_the_key_bar_shows_the_keys_and_a_click_presses_one(tmp_path: Path):
    """The bottom line lists the active keys (disabled ones dimmed, the palette on the right); a
    click on "f1 Help" opens the help as the key does."""
    from gpuwizard.tui.screens.modals import HelpScreen
    from gpuwizard.tui.widgets.footer import KeyBar

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bottom = screen_text(app).splitlines()[-1]
        assert "^q Quit" in bottom and "f1 Help" in bottom and "^p palette" in bottom
        bar = app.main.query_one(KeyBar)
        start = bottom.index("f1 Help")
        assert await pilot.click(bar, offset=(start + 1, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
