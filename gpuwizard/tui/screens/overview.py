"""The welcome pane (what detection found, blockers, what the wizard proposes) and the summary pane
(what was done, what to try next, export of a replayable answer file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static

from ..messages import Navigate, Requested
from ..widgets.compact import compact_button
from ..widgets.doctor import blockers, doctor_table
from ..widgets.steplist import status_text

if TYPE_CHECKING:  # pragma: no cover
    from ...engine import PlannedStep
    from ..app import WizardApp


WARN = "⚠"  # marks a disruptive change (the glyph carries it: NO_COLOR reads the same)


def disruptive_changes(planned: PlannedStep | None) -> list[str]:
    """What the planned actions not yet done will disrupt (``action.disruptive``: "restarts Docker:
    running containers stop"), in plan order, each once."""
    if planned is None or planned.error:
        return []
    out: list[str] = []
    for action, done in zip(planned.actions, planned.done, strict=False):
        what = getattr(action, "disruptive", None)
        if not done and isinstance(what, str) and what.strip() and what.strip() not in out:
            out.append(what.strip())
    return out


def _changes(todo: list[str]) -> Text:
    """One line: how many changes, then as many of their titles as fit (the step's pane lists all)."""
    head = f"{len(todo)} change{'s' if len(todo) != 1 else ''}: "
    return Text(head + "; ".join(todo), no_wrap=True, overflow="ellipsis")


def proposal(app: WizardApp) -> Table:
    """A row per step: its id (as in the step list), what it would do, and every disruptive change
    it would make (marked with a warning glyph). Narrow enough for 80x24: long texts wrap within
    the last column, the list of changes is cut to one line."""
    table = Table(box=None, show_header=False, expand=True, padding=(0, 1, 0, 0))
    table.add_column("n", no_wrap=True)
    table.add_column("step", no_wrap=True, min_width=min(10, max((len(s) for s in app.step_ids), default=1)))
    table.add_column("what", ratio=1, overflow="fold")
    for n, sid in enumerate(app.step_ids, 1):
        step = app.steps[sid]
        status = app.status(sid)
        planned = app.plans.get(sid)
        warnings: list[str] = []
        if not step.implemented:
            what: Any = Text("not available in this version yet (skipped)", style="dim")
        elif status in ("done", "skipped"):
            what = Text.assemble(status_text(status), " ", app.state.steps.get(sid, {}).get("message", "") or "")
        elif planned is None:
            what = Text("…", style="dim")
        elif planned.error:
            what = Text(f"cannot plan: {planned.error}", style="red")
        elif not planned.actions:
            what = Text("read-only checks", style="dim")
        else:
            todo = [a.title for a, d in zip(planned.actions, planned.done, strict=False) if not d]
            what = _changes(todo) if todo else Text("already in place", style="green")
            warnings = disruptive_changes(planned)
        if warnings:
            what = Group(what, *[Text.assemble((f"{WARN} ", "bold yellow"), (w, "yellow")) for w in warnings])
        table.add_row(str(n), Text(sid, style="bold"), what)
    return table


class WelcomePane(Vertical):
    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="pane-scroll"):
            yield from self.body()
        with Horizontal(classes="buttons"):
            yield compact_button("Start ▸", variant="primary", id="start")
            yield compact_button("Doctor", id="doctor")

    def body(self) -> ComposeResult:
        yield Static("", id="welcome-intro", classes="pane-title")
        yield Static("What detection found", classes="section")
        yield Static(Text("detecting… (read-only probes)", style="dim"), id="welcome-facts", classes="facts")
        yield Static("", id="welcome-blockers", classes="blockers")
        yield Static("What the wizard proposes", classes="section")
        yield Static("", id="welcome-plan", classes="plan")
        yield Static(
            Text("Enter starts; Tab moves; F1 help; Ctrl+P commands. Every step shows its plan before it runs.", style="dim"),
            classes="hint",
        )

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        app = self.wizard
        self.query_one("#welcome-intro", Static).update(
            Text.assemble(("gpuwizard", "bold"), " takes this host through driver → CUDA → Docker GPU runtime → Kind → gpu-operator → HAMi.")
        )
        if app.facts is None or not app.loaded:
            return
        self.query_one("#welcome-facts", Static).update(doctor_table(app.facts))
        found = blockers(app.facts, real_host=app.real_host)
        box = self.query_one("#welcome-blockers", Static)
        if found:
            box.update(Group(Text("Blockers", style="bold red"), *[Text(f"✗ {b}") for b in found]))
        else:
            box.update(Text("✓ no blockers found", style="green"))
        self.query_one("#welcome-plan", Static).update(proposal(app))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            self.post_message(Navigate("next"))
        elif event.button.id == "doctor":
            self.post_message(Requested("doctor"))


NEXT_COMMANDS = [
    ("detect", "gpuwizard doctor", "what is installed, layer by layer"),
    ("driver", "nvidia-smi", "the card and the driver"),
    ("cuda", "nvcc --version", "the CUDA compiler (open a new shell for PATH)"),
    ("container", "docker run --rm --gpus all ubuntu nvidia-smi", "a container sees the GPU"),
    ("kind", "kubectl get nodes -o wide", "the cluster"),
    ("operator", "kubectl get pods -n gpu-operator", "the operator's pods"),
    ("hami", "kubectl describe node | grep nvidia.com/gpu", "vGPUs offered by HAMi"),
    ("podspec", "kubectl apply -f <pod spec>", "a pod that takes a share of a card"),
]


class SummaryPane(Vertical):
    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="pane-scroll"):
            yield Static("Summary", classes="pane-title")
            yield Static("", id="summary-steps")
            yield Static("Next commands to try", classes="section")
            yield Static("", id="summary-next")
            yield Static("", id="summary-files", classes="files")
        with Horizontal(classes="buttons"):
            yield compact_button("Export answers", variant="primary", id="export")
            yield compact_button("Quit", id="quit")

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        app = self.wizard
        if not app.loaded:
            return
        table = Table(box=None, show_header=False, expand=True, padding=(0, 1, 0, 0))
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("message", ratio=1, no_wrap=True, overflow="ellipsis")
        for sid in app.step_ids:
            step = app.steps[sid]
            if not step.implemented:
                table.add_row(sid, Text("n/a", style="dim"), Text("not available in this version yet", style="dim"))
                continue
            entry = app.state.steps.get(sid) or {}
            table.add_row(sid, status_text(app.status(sid)), entry.get("message", "") or "")
        self.query_one("#summary-steps", Static).update(table)
        nxt = Text()
        for sid, cmd, why in NEXT_COMMANDS:
            if sid == "detect" or app.status(sid) == "done":
                nxt.append(f"$ {cmd}", style="bold")
                nxt.append(f"  # {why}\n", style="dim")
        nxt.rstrip()
        self.query_one("#summary-next", Static).update(nxt)
        files = Text()
        files.append("log: ", style="bold")
        files.append(app.path_text(app.log_path) + "\n" if app.log_path else "(none)\n")
        files.append("state: ", style="bold")
        files.append(app.path_text(app.state.path) + "\n")
        files.append("Export answers writes an answer file that replays this session unattended on another host: "
                     "sudo gpuwizard --answers FILE", style="dim")
        self.query_one("#summary-files", Static).update(files)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export":
            self.post_message(Requested("export"))
        elif event.button.id == "quit":
            self.post_message(Requested("quit"))
