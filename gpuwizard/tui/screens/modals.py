"""Modal screens: confirm, failure (Retry / Skip / Quit), reboot, undo a step (its plan first), help,
doctor, export answers, and "terminal too small". Every dialog shows the dry-run banner when nothing is executed."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ..widgets.banner import DryRunBanner, is_dry_run
from ..widgets.compact import compact_button, compact_input
from ..widgets.doctor import doctor_table
from ..widgets.undoplan import undo_plan_text

if TYPE_CHECKING:  # pragma: no cover
    from ...session import UndoPlan

ResultT = TypeVar("ResultT")


class FailureChoice(enum.StrEnum):
    """What the user chose after a step failed."""

    RETRY = "retry"
    SKIP = "skip"
    QUIT = "quit"
    CLOSE = "close"  # stay on the step (Escape)


class UndoChoice(enum.StrEnum):
    """What the user chose in the undo dialog."""

    UNDO = "undo"
    FORCE = "force"  # undo anyway: what it refuses as unsafe too (gpuwizard undo --force)
    CANCEL = "cancel"


class RebootChoice(enum.StrEnum):
    NOW = "now"
    LATER = "later"  # quit with exit 3; `--resume` after the reboot


MIN_WIDTH, MIN_HEIGHT = 80, 24  # what the layout is made for; below it: TooSmallScreen


def too_small(size: Size) -> bool:
    return size.width < MIN_WIDTH or size.height < MIN_HEIGHT


# Tab / Shift+Tab move the focus as soon as the key arrives (priority), not once the key has bubbled
# up from the focused widget: otherwise keys typed right after a Tab still go to the widget the focus
# is leaving (a button, a checkbox: the keys are lost), more of them the busier the app is
FOCUS_BINDINGS: list[BindingType] = [
    Binding("tab", "app.focus_next", "Focus Next", show=False, priority=True),
    Binding("shift+tab", "app.focus_previous", "Focus Previous", show=False, priority=True),
]


class SizeGuard:
    """For a screen: while the terminal is below 80x24 and this screen is on top, a full-screen
    "terminal too small" notice covers it (instead of a clipped layout); it goes once resized."""

    def guard_size(self) -> None:
        screen: Any = self
        app = screen.app
        if not screen.is_current or not too_small(app.size):
            return
        if not isinstance(app.screen, TooSmallScreen):
            app.push_screen(TooSmallScreen())

    def on_resize(self, event: events.Resize) -> None:
        self.guard_size()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        self.guard_size()


class _Modal(SizeGuard, ModalScreen[ResultT], Generic[ResultT]):
    """A dialog dismissed with a result of type ``ResultT`` (Escape: ``DEFAULT_RESULT``)."""

    BINDINGS = [*FOCUS_BINDINGS, Binding("escape", "dismiss_default", "Close")]
    DEFAULT_RESULT: Any = None

    def compose(self) -> ComposeResult:
        if is_dry_run(self.app):
            yield DryRunBanner()
        yield from self.body()

    def body(self) -> ComposeResult:
        yield from ()

    def action_dismiss_default(self) -> None:
        self.dismiss(self.DEFAULT_RESULT)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.pressed(event.button)

    def pressed(self, button: Button) -> None:
        self.dismiss(self.DEFAULT_RESULT)


class ConfirmScreen(_Modal[bool]):
    """Yes/No. Dismisses with True or False (Escape: False)."""

    BINDINGS = [Binding("escape", "dismiss_default", "No"), Binding("y", "yes", "Yes"), Binding("n", "dismiss_default", "No")]
    DEFAULT_RESULT = False

    def __init__(self, title: str, text: str, yes: str = "Yes", no: str = "No"):
        super().__init__()
        self.title_text, self.text, self.yes, self.no = title, text, yes, no

    def body(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(self.text, classes="dialog-text")
            with Horizontal(classes="buttons"):
                yield compact_button(self.yes, variant="error", name="yes", id="yes")
                yield compact_button(self.no, variant="primary", name="no", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_yes(self) -> None:
        self.dismiss(True)

    def pressed(self, button: Button) -> None:
        self.dismiss(button.name == "yes")


class FailureScreen(_Modal[FailureChoice]):
    """A step failed: its message, the last lines, the log path. Dismisses with a FailureChoice
    (Escape: CLOSE, stay on the step)."""

    BINDINGS = [Binding("escape", "dismiss_default", "Close"), Binding("r", "pick('retry')", "Retry"),
                Binding("s", "pick('skip')", "Skip"), Binding("q", "pick('quit')", "Quit")]
    DEFAULT_RESULT = FailureChoice.CLOSE

    def __init__(self, step_title: str, message: str, tail: list[str], log_path: str, state_path: str):
        super().__init__()
        self.step_title, self.message, self.tail, self.log_path, self.state_path = step_title, message, tail, log_path, state_path

    def body(self) -> ComposeResult:
        with Vertical(classes="dialog failure"):
            yield Static(Text(f"✗ {self.step_title} failed", style="bold red"), classes="dialog-title")
            yield Static(Text(self.message), classes="dialog-text")  # words of tools: brackets are not markup
            if self.tail:
                yield Static("Last lines of output", classes="section")
                with VerticalScroll(classes="tail"):
                    yield Static(Text("\n".join(f"| {t}" for t in self.tail)))
            saved = (" (not written: a dry run changes nothing, the state file included)" if is_dry_run(self.app)
                     else " (saved; `gpuwizard --resume` continues)")
            yield Static(Text.assemble(("full log: ", "bold"), self.log_path, "\n", ("state: ", "bold"), self.state_path,
                                       saved), classes="dialog-text")
            with Horizontal(classes="buttons"):
                yield compact_button("Retry", variant="primary", name="retry", id="retry")
                yield compact_button("Skip step", name="skip", id="skip")
                yield compact_button("Quit", variant="error", name="quit", id="quit")

    def on_mount(self) -> None:
        self.query_one("#retry", Button).focus()

    def action_pick(self, choice: str) -> None:
        self.dismiss(FailureChoice(choice))

    def pressed(self, button: Button) -> None:
        self.dismiss(FailureChoice(button.name or "close"))


class RebootScreen(_Modal[RebootChoice]):
    """A reboot is needed. Dismisses with RebootChoice.NOW (when allowed) or LATER."""

    BINDINGS = [Binding("escape", "dismiss_default", "Later")]
    DEFAULT_RESULT = RebootChoice.LATER

    def __init__(self, step_title: str, reason: str, next_text: str, allowed: bool, why_not: str = ""):
        super().__init__()
        self.step_title, self.reason, self.next_text, self.allowed, self.why_not = step_title, reason, next_text, allowed, why_not

    def body(self) -> ComposeResult:
        with Vertical(classes="dialog reboot"):
            yield Static(Text(f"↻ {self.step_title}: the host must reboot", style="bold magenta"), classes="dialog-title")
            yield Static(Text.assemble(("Why: ", "bold"), self.reason), classes="dialog-text")
            yield Static(Text.assemble(("Next: ", "bold"), self.next_text), classes="dialog-text")
            yield Static("The state is saved either way.", classes="dialog-text")
            if not self.allowed and self.why_not:
                yield Static(Text(self.why_not, style="dim"), classes="dialog-text")
            with Horizontal(classes="buttons"):
                yield compact_button("Reboot now", variant="error", name="now", id="now", disabled=not self.allowed)
                yield compact_button("Later (quit)", variant="primary", name="later", id="later")

    def on_mount(self) -> None:
        self.query_one("#later", Button).focus()

    def pressed(self, button: Button) -> None:
        self.dismiss(RebootChoice.NOW if button.name == "now" and self.allowed else RebootChoice.LATER)


class UndoScreen(_Modal[UndoChoice]):
    """Undo a step: its undo plan as ``gpuwizard undo STEP --plan`` prints it (scrollable), then Undo or
    Cancel. When the plan refuses (unsafe), why, what ``--force`` would do, and "Undo anyway (--force)"
    in place of Undo. Opens with "planning…": the app plans on a worker and calls ``show_plan`` (or
    ``show_error``). Dismisses with an UndoChoice (Escape: CANCEL)."""

    BINDINGS = [Binding("escape", "dismiss_default", "Cancel")]
    DEFAULT_RESULT = UndoChoice.CANCEL

    def __init__(self, sid: str, step_title: str):
        super().__init__()
        self.sid, self.step_title = sid, step_title
        self.plan: UndoPlan | None = None
        self.error: str | None = None
        self.text = ""  # the plan's text as shown (plain)

    def body(self) -> ComposeResult:
        with Vertical(classes="dialog undo", id="undo-dialog"):
            yield Static(Text(f"↶ Undo: {self.step_title}", style="bold"), classes="dialog-title")
            yield Static(Text(f"What undo will do, as `gpuwizard undo {self.sid} --plan` shows it:", style="dim"),
                         id="undo-intro")
            with VerticalScroll(classes="undo-plan", id="undo-scroll"):
                yield Static(Text("planning the undo…", style="dim"), id="undo-plan")
            refusal = Static("", id="undo-refusal", classes="undo-refusal")
            refusal.display = False
            yield refusal
            with Horizontal(classes="buttons"):
                yield compact_button("Undo", variant="primary", name="undo", id="undo", disabled=True)
                force = compact_button("Undo anyway (--force)", variant="error", name="force", id="force")
                force.display = False
                yield force
                yield compact_button("Cancel", name="cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        if self.plan is not None:  # planned before the dialog was mounted
            self._show_plan(self.plan)
        elif self.error is not None:
            self._show_error(self.error)

    def show_plan(self, plan: UndoPlan) -> None:
        """The plan is ready: shown (once the dialog is mounted), and the buttons that fit it."""
        self.plan = plan
        if self.is_mounted:
            self._show_plan(plan)

    def show_error(self, message: str) -> None:
        """Planning failed (a bug, or the host cannot be read): said; only Cancel."""
        self.error = message
        if self.is_mounted:
            self._show_error(message)

    def _show_plan(self, plan: UndoPlan) -> None:
        shown = undo_plan_text(plan)
        self.text = shown.plain
        self.query_one("#undo-plan", Static).update(shown)
        undo, force = self.query_one("#undo", Button), self.query_one("#force", Button)
        if plan.refused:
            reasons = "\n".join(f"• {r}" for r in plan.refusals)
            box = self.query_one("#undo-refusal", Static)
            box.update(Text.assemble(("Refused: ", "bold red"), "undo leaves this step as it is, because:\n", reasons,
                                     "\n", (f"Undo anyway runs `gpuwizard undo {plan.sid} --force` (shown below).", "dim")))
            box.display = True
            self.add_class("refused")
            undo.display = False
            force.display = True
            self.query_one("#cancel", Button).focus()  # forcing is never the default
        else:
            undo.disabled = False
            undo.focus()

    def _show_error(self, message: str) -> None:
        self.query_one("#undo-plan", Static).update(Text(f"cannot plan the undo: {message}", style="bold red"))
        self.query_one("#undo", Button).display = False

    def pressed(self, button: Button) -> None:
        if button.name == "undo" and self.plan is not None and not self.plan.refused:
            self.dismiss(UndoChoice.UNDO)
        elif button.name == "force" and self.plan is not None:
            self.dismiss(UndoChoice.FORCE)
        else:
            self.dismiss(UndoChoice.CANCEL)


HELP = """\
gpuwizard walks this host through one step at a time. Each step shows what detection found, a \
form for its answers (defaults from detection) and its plan: the exact commands and file diffs. \
Nothing changes until you choose Run; the output streams into the log view and the full log is \
kept on disk. The state is saved after every action: after a crash or a reboot, \
`sudo gpuwizard --resume` reopens where it stopped.

Keys
  Tab / Shift+Tab   move between fields, buttons and the step list
  Enter             press the focused button; in the step list: jump
  Ctrl+R            run the current step     Ctrl+N   next step
  U                 undo the current step's changes (plan first)
  Escape            cancel the running step (asks first)
  F2                focus the step list      Ctrl+D   doctor
  Ctrl+E            export answers           Ctrl+P   command palette
  F1                this help                Ctrl+Q   quit (asks mid-run)

Statuses: · pending  ▶ running  ✓ done  - skipped  ✗ failed
          ↻ reboot  ■ stopped (interrupted)  n/a: not in this version"""


class HelpScreen(_Modal[None]):
    BINDINGS = [Binding("escape", "dismiss_default", "Close"), Binding("f1", "dismiss_default", "Close")]

    def body(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static("Help", classes="dialog-title")
            with VerticalScroll(classes="help-body"):
                yield Static(Text(HELP))
            with Horizontal(classes="buttons"):
                yield compact_button("Close", variant="primary", name="close", id="close")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()


class DoctorScreen(_Modal[None]):
    def __init__(self, facts: dict[str, Any] | None):
        super().__init__()
        self.facts = facts

    def body(self) -> ComposeResult:
        with Vertical(classes="dialog doctor"):
            yield Static("Doctor: what is installed and healthy", classes="dialog-title")
            with VerticalScroll(classes="help-body"):
                yield Static(doctor_table(self.facts) if self.facts else Text("detecting…", style="dim"))
            with Horizontal(classes="buttons"):
                yield compact_button("Close", variant="primary", name="close", id="close")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()


class ExportScreen(_Modal[Path | None]):
    """Export the session's answers: a path (editable) and the YAML. Dismisses with the path the
    user chose (``~`` expanded) or None (cancelled, or no path)."""

    def __init__(self, text: str, default_path: str, blink: bool = True):
        super().__init__()
        self.text, self.default_path, self.blink = text, default_path, blink

    def body(self) -> ComposeResult:
        with Vertical(classes="dialog export"):
            yield Static("Export answers", classes="dialog-title")
            yield Static(Text("Replays this session unattended: sudo gpuwizard --answers FILE", style="dim"))
            inp = compact_input(self.default_path, id="path")
            inp.cursor_blink = self.blink
            yield inp
            with VerticalScroll(classes="tail"):
                yield Static(Text(self.text))
            with Horizontal(classes="buttons"):
                yield compact_button("Save", variant="primary", name="save", id="save")
                yield compact_button("Cancel", name="cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#save", Button).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self.chosen(event.value))

    def pressed(self, button: Button) -> None:
        self.dismiss(self.chosen(self.query_one("#path", Input).value) if button.name == "save" else None)

    @staticmethod
    def chosen(value: str) -> Path | None:
        value = value.strip()
        return Path(value).expanduser() if value else None


class TooSmallScreen(_Modal[None], inherit_bindings=False):
    """Covers everything while the terminal is below 80x24: what is needed, what it is now. Closes
    itself once the terminal is large enough (Ctrl+Q still quits)."""

    def body(self) -> ComposeResult:
        with Vertical(id="too-small-box"):
            yield Static("", id="too-small")

    def on_mount(self) -> None:
        self.show_size()

    def guard_size(self) -> None:  # this screen is the notice: it only updates or closes itself
        self.show_size()
        if self.is_current and not too_small(self.app.size):
            self.dismiss(None)

    def show_size(self) -> None:
        width, height = self.app.size
        self.query_one("#too-small", Static).update(Text.assemble(
            ("Terminal too small\n\n", "bold"),
            f"gpuwizard needs at least {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is {width}x{height}.\n\n",
            "Enlarge the window (or make the font smaller) to continue. Ctrl+Q quits.",
        ))

    def action_dismiss_default(self) -> None:
        pass


__all__ = ["FailureChoice", "RebootChoice", "UndoChoice", "UndoScreen", "TooSmallScreen", "too_small", "SizeGuard", "ConfirmScreen", "FailureScreen", "RebootScreen", "HelpScreen", "DoctorScreen", "ExportScreen"]
