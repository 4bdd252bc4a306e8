"""Helpers for the TUI tests: a simulated t4-bare host under tmp_path, an app with a fixed clock,
no cursor blink and masked paths (so snapshots are stable), and waits on workers instead of sleeps."""

from __future__ import annotations

import asyncio
import io
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from gpuwizard import actions as A
from gpuwizard.cli import Session, build_parser
from gpuwizard.console import LogFile
from gpuwizard.engine import Step
from gpuwizard.steps import registry
from gpuwizard.steps.driver import DriverAnswers
from gpuwizard.tui.app import WizardApp

SIZE = (80, 24)


def make_session(root: Path, profile: str = "t4-bare") -> Session:
    args = build_parser().parse_args(["--simulate", profile, "--root", str(root)])
    return Session(args, unattended=True, err=io.StringIO())


def masker(tmp_path: Path):
    def path_text(p: Any) -> str:
        text = str(p).replace(str(tmp_path), "/tmp/gw")
        return re.sub(r"gpuwizard-\d{8}-\d{6}-\d+\.log", "gpuwizard-<run>.log", text)

    return path_text


def make_app(tmp_path: Path, *, profile: str = "t4-bare", steps: dict[str, Step] | None = None, resume: bool = False,
             answers=None, propose: bool = False) -> WizardApp:
    """``propose``: plan every step at start for the welcome pane (costly; only where it is shown)."""
    session = make_session(tmp_path / "host", profile)
    log = LogFile(tmp_path / "logs")
    return WizardApp(session, answers, resume, steps=steps, log=log, path_text=masker(tmp_path),
                     clock=lambda: 0.0, blink=False, propose=propose)


async def settle(pilot) -> None:
    """Wait until every worker is done and every callback they queued has run (no sleeps)."""
    from textual.worker import WorkerCancelled

    app = pilot.app
    for _ in range(100):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:  # the app is closing: its workers are cancelled
            return
        if app.return_value is not None:
            return
        await pilot.pause()
        app._drain_events()
        if not any(w.is_running for w in app.workers):
            await pilot.pause()
            return
    raise AssertionError("workers did not settle")


async def open_pane(pilot, target: str) -> None:
    """Once the app has settled: open the welcome pane, a step's pane or the summary, and wait
    until it has planned."""
    await settle(pilot)
    pilot.app.open(target)
    await settle(pilot)


def screen_text(app) -> str:
    """The visible text of the screen (what a person reads)."""
    return _svg_text(app.export_screenshot())


def _svg_text(svg: str) -> str:
    import html

    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text[^>]*?x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    return "\n".join("".join(t for _, t in sorted(r)).replace("\xa0", " ") for _, r in sorted(rows.items()))


# -- steps for failure / reboot / flood tests (real runner, real simulated tools) -------------------
class ListPci(Step):
    """A driver stand-in that runs `lspci` (output streams) then `systemctl restart docker`."""

    id = "driver"
    title = "NVIDIA driver (test stand-in)"
    Answers = DriverAnswers

    def plan(self, ctx, answers):
        return [
            A.Run("lspci", "list PCI devices", ["lspci"], idempotent=True),
            A.Run("restart-docker", "restart Docker", ["systemctl", "restart", "docker"], idempotent=True),
        ]


class NeedsReboot(ListPci):
    def plan(self, ctx, answers):
        return [
            A.Run("lspci", "list PCI devices", ["lspci"], idempotent=True),
            A.Reboot("reboot", "reboot to load the nvidia module", "the nvidia kernel module loads at the next boot"),
        ]


class Flood(ListPci):
    def plan(self, ctx, answers):
        return [A.Run("flood", "print a flood of output", ["flood"], idempotent=True)]


class Hang(ListPci):
    def plan(self, ctx, answers):
        return [A.Run("hang", "a command that hangs", ["hang"], idempotent=True),
                A.Run("lspci", "list PCI devices", ["lspci"], idempotent=True)]


def with_driver(step_cls: type[Step]) -> dict[str, Step]:
    steps = registry()
    steps["driver"] = step_cls()
    return steps


def add_tool(app: WizardApp, name: str, body: str) -> None:
    """A tool on the simulated host's PATH (a python script)."""
    import sys

    bin_dir = Path(app.host.runner.path.split(":")[0])
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)


class EventWaiter:
    """Blocks (in a thread, not a sleep loop) until the engine emits an event of ``kind``.
    Create it before the action that causes the event."""

    def __init__(self, app: WizardApp, kind: str):
        self.seen = threading.Event()
        app.engine.listeners.append(lambda ev: self.seen.set() if ev.kind == kind else None)
        self.kind = kind

    async def wait(self, timeout: float = 20.0) -> None:
        assert await asyncio.to_thread(self.seen.wait, timeout), f"no {self.kind} event"


@pytest.fixture(autouse=True)
def _tui_env(monkeypatch):
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run ``async def`` tests in a fresh event loop (no asyncio plugin needed)."""
    if asyncio.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None


# -- added for tests/tui/test_widgets_fixes.py ----------------------------------------------------
def make_app_with(tmp_path: Path, *global_args: str, profile: str = "t4-bare", steps: dict[str, Step] | None = None,
                  propose: bool = False) -> WizardApp:
    """``make_app`` with more global options on the command line (e.g. ``"--dry-run"``)."""
    args = build_parser().parse_args([*global_args, "--simulate", profile, "--root", str(tmp_path / "host")])
    session = Session(args, unattended=True, err=io.StringIO())
    log = LogFile(tmp_path / "logs")
    return WizardApp(session, None, False, steps=steps, log=log, path_text=masker(tmp_path),
                     clock=lambda: 0.0, blink=False, propose=propose)
