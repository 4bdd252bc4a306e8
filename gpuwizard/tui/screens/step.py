"""The pane of one step, generic over the engine's steps.

Setup view: the detected facts that matter for the step, the form generated from its ``Answers``
model, the plan preview (each action, done or to do, with its commands and file diffs). Run view:
the live log of the step's events. A step added later gets this pane for free; a step that needs
its own widget sets ``tui_widget`` on its class: a factory ``(app, sid) -> Widget``, or its dotted
name ``"package.module:Factory"`` (imported here, so that a step module never imports Textual). Such a
widget may define ``current_answers()`` (the step's answers, None while invalid; else the stored
answers are used), ``refresh_facts()`` (called when detection ran again) and ``pane_shown()`` (a
coroutine, awaited once the pane's first frame is on the screen: what that frame does without, e.g.
what lies below the screen's bottom, is built then).
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button, ContentSwitcher, Static

from ...engine import Engine, Event, PlannedStep, StepContext
from ..messages import AnswersEdited, Navigate, Requested
from ..widgets.compact import compact_button
from ..widgets.doctor import doctor_table
from ..widgets.form import AnswersForm
from ..widgets.runview import RunView
from ..widgets.steplist import status_text

if TYPE_CHECKING:  # pragma: no cover
    from ..app import WizardApp



def widget_factory(step: Any) -> Any:
    """The step's ``tui_widget``: a callable, or ``"module:attr"`` imported now."""
    custom = getattr(step, "tui_widget", None)
    if isinstance(custom, str):
        module, _, attr = custom.partition(":")
        custom = getattr(importlib.import_module(module), attr)
    return custom


def plan_text(engine: Engine, planned: PlannedStep | None) -> Text:
    if planned is None:
        return Text("planning…", style="dim")
    if planned.error:
        return Text(f"cannot plan: {planned.error}", style="red")
    if not planned.actions:
        return Text("nothing to change on the host (read-only)", style="dim")
    ctx = StepContext(engine, planned.step.id)
    out = Text()
    for action, done in zip(planned.actions, planned.done, strict=False):
        out.append("[done] " if done else "[todo] ", style="green" if done else "bold yellow")
        out.append(action.title + "\n")
        if done:
            continue
        try:
            preview = action.preview(ctx)
        except Exception as exc:  # noqa: BLE001 — a preview must never take the UI down
            preview = [f"(no preview: {exc})"]
        for line in preview:
            style = ""
            if line.startswith("+") and not line.startswith("+++"):
                style = "green"
            elif line.startswith("-") and not line.startswith("---"):
                style = "red"
            elif line.startswith("@@"):
                style = "cyan"
            out.append(f"    {line}\n", style=style)
    out.rstrip()
    return out


RUN_VIEW_DELAY = 0.3  # seconds after the pane is mounted


class StepPane(Vertical):
    """``status`` is reactive: set from the main screen's statuses, it redraws the header."""

    status: reactive[str] = reactive("pending", init=False)

    def __init__(self, sid: str, **kw: Any) -> None:
        super().__init__(id=f"step-{sid}", classes="step-pane", **kw)
        self.sid = sid
        self.actions_total: int | None = None
        self.actions_done = 0
        self.run_count = 0
        self._custom: Widget | None = None
        self._run_view_started = False  # ensure_run_view was called
        self._run_view_built = asyncio.Event()  # set once the run view and its children are mounted
        self.last_finished: tuple[str, str] | None = None  # the last step-finished event: (status, text)
        self._found: dict[str, Widget | None] = {}  # widget id -> the widget (or None: not in this pane)

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        app = self.wizard
        step = app.steps[self.sid]
        yield Static("", id="step-title", classes="pane-title")
        with ContentSwitcher(initial="setup", id="step-switcher"):
            with Vertical(id="setup"):
                with VerticalScroll(id="setup-scroll", classes="setup"):
                    yield Static("", id="step-note", classes="step-note")
                    yield Static("Detected", classes="section")
                    yield Static("detecting…", id="step-facts", classes="facts")
                    if step.implemented:
                        yield Static("Answers", classes="section")
                        custom = widget_factory(step)
                        if custom is not None:
                            self._custom = custom(app, self.sid)
                            self._custom.add_class("step-custom")
                            yield self._custom
                        elif isinstance(step.Answers, type) and issubclass(step.Answers, BaseModel):
                            current = app.answers.get(self.sid)
                            if getattr(step, "many", False):
                                items = list(current or [])
                                current = items[0] if items else None
                                more = f" ({len(items) - 1} more from the answer file are kept)" if len(items) > 1 else ""
                                yield Static(Text(f"This step takes a list; the form edits the first entry{more}.", style="dim"))
                            yield AnswersForm(step.Answers, current, blink=app.blink, id="form",
                                              start=getattr(step, "tui_defaults", None))
                        yield Static("Plan", classes="section")
                        yield Static(Text("planning…", style="dim"), id="step-plan", classes="plan")
                    else:
                        yield Static(
                            "This step is not available in this version of gpuwizard yet: it is skipped, "
                            "and the summary says so.",
                            classes="unavailable",
                        )
                with Horizontal(classes="buttons"):
                    if step.implemented:
                        yield compact_button("Run step", variant="primary", id="run")
                        yield compact_button("Skip step", id="skip")
                        if step.link:
                            yield compact_button(step.link[0], id="link")
                        # shown while the step has changes to undo and nothing runs (sync_undo)
                        undo = compact_button("Undo", id="undo")
                        undo.display = False
                        yield undo
                    else:
                        yield compact_button("Next ▸", variant="primary", id="next")
            # the run view is built at the step's first run (ensure_run_view): a pane opened to
            # read its plan does not pay for a log, a progress bar and four buttons it never shows
            yield Vertical(id="run-pane")

    def on_mount(self) -> None:
        self.set_reactive(StepPane.status, self.screen_statuses().get(self.sid, self.wizard.status(self.sid)))
        self.refresh_header()
        self.refresh_facts()
        if self.wizard.outputs.get(self.sid):  # output from before this pane was mounted
            self.call_later(self.ensure_run_view)
        elif self.wizard.steps[self.sid].implemented:
            # built while the plan is read (once it is shown, show_plan; at the latest after
            # RUN_VIEW_DELAY), once the pane is on the screen: a Run pressed at once builds it then
            # (ensure_run_view), and a key pressed during the run's first moments does not wait
            # behind it
            self.set_timer(RUN_VIEW_DELAY, self.ensure_run_view)
        if self.wizard.steps[self.sid].implemented:
            self.sync_run(current_answers(self))  # before the pane's first focus: Run may be off

    # -- pieces ---------------------------------------------------------------------------------
    def _one(self, wid: str) -> Any:
        """The pane's widget with id ``wid``, or None. Found once and kept: a query walks every widget
        of the pane (the pod spec builder has 140), and statuses refresh every pane during a run. The
        pane's widgets are fixed once composed; the run view's are added once (ensure_run_view)."""
        if wid not in self._found:
            found = self.query(f"#{wid}")
            self._found[wid] = found.first() if found else None
        widget = self._found[wid]
        if widget is not None and not widget.is_attached:  # removed since (a form rebuilt, say)
            del self._found[wid]
            return self._one(wid)
        return widget

    @property
    def form(self) -> AnswersForm | None:
        """The answers form generated from the step's model (None for a step with its own widget)."""
        form = self._one("form")
        return form if isinstance(form, AnswersForm) else None

    @property
    def runview(self) -> RunView:
        runview = self._one("runview")
        if not isinstance(runview, RunView):
            raise NoMatches(f"{self.sid}: no run view yet")
        return runview

    @property
    def has_run_view(self) -> bool:
        """Whether the run view is built (mounted, its children too)."""
        return self._run_view_built.is_set()

    async def ensure_run_view(self) -> None:
        """Build the run view (log, progress, Cancel / Next / Back) the first time it is needed."""
        if self._run_view_started:
            await self._run_view_built.wait()  # another caller is building it: wait for that
            return
        self._run_view_started = True
        step = self.wizard.steps[self.sid]
        buttons = [compact_button("Cancel", variant="error", id="cancel"),
                   compact_button("Next ▸", variant="primary", id="next-after"),
                   compact_button("Back to answers", id="back")]
        if step.link:
            buttons.append(compact_button(step.link[0], id="link-after"))
        buttons.append(compact_button("Undo", id="undo-after"))
        for button in buttons[1:]:
            button.display = False
        run_pane = self._one("run-pane")
        await run_pane.mount(RunView(id="runview"), Horizontal(*buttons, classes="buttons"))
        self._found.clear()  # what was not there before is now
        self._run_view_built.set()
        self.sync_undo()
        earlier = list(self.wizard.outputs.get(self.sid, []))
        if earlier:
            self.runview.write_lines(earlier)

    def screen_statuses(self) -> dict[str, str]:
        statuses = getattr(self.screen, "statuses", None)
        return statuses if isinstance(statuses, dict) else {}

    def watch_status(self, status: str) -> None:
        self.refresh_header()

    def refresh_header(self) -> None:
        app = self.wizard
        step = app.steps[self.sid]
        n = app.step_ids.index(self.sid) + 1
        title = Text.assemble((f"Step {n}/{len(app.step_ids)}: {step.title}  ", "bold"), status_text(self.status))
        self._one("step-title").update(title)
        entry = app.state.steps.get(self.sid) or {}
        note = ""
        status = entry.get("status")
        if status == "running":
            note = "This step was interrupted while running; run it again: what is already done is not repeated."
        elif status == "failed":
            note = f"Last run failed: {entry.get('message', '')}"
        elif status == "reboot-required":
            note = f"Waiting for a reboot: {entry.get('message', '')}. After the reboot, run the step again to continue."
        elif status == "done" and entry.get("message"):
            note = f"Done: {entry['message']}"
        message = str(entry.get("message") or "")
        if status == "pending" and message.startswith("undone"):
            note = "Undone: what this step changed was put back as it was before gpuwizard. Run step does it again."
        elif message.startswith("partly undone"):
            note = "Partly undone: some of what this step changed was left as is; Undo shows what is left."
        if (link := self._one("link")) is not None:
            link.display = status == "done"
        box = self._one("step-note")
        box.update(note)
        box.display = bool(note)
        self.sync_undo()

    def sync_undo(self) -> None:
        """The Undo buttons: shown while the step has changes to undo and nothing runs; in the run
        view, once its run (or undo) has finished."""
        app = self.wizard
        shown = app.can_undo(self.sid)
        if (undo := self._one("undo")) is not None:
            undo.display = shown
        if (after := self._one("undo-after")) is not None:
            cancel = self._one("cancel")
            after.display = shown and not (cancel is not None and cancel.display)

    def refresh_facts(self) -> None:
        app = self.wizard
        if app.facts is None:
            return
        step = app.steps[self.sid]
        layers = step.facts_shown  # declared by the step's own module
        self._one("step-facts").update(doctor_table(app.facts, layers))
        custom = self.custom_widget
        if custom is not None and hasattr(custom, "refresh_facts"):
            custom.refresh_facts()

    async def shown(self) -> None:
        """Called once the pane's first frame is on the screen (by the app, which opened it): the
        step's own widget builds what that frame did without (``pane_shown``)."""
        custom = self.custom_widget
        if custom is not None and hasattr(custom, "pane_shown"):
            await custom.pane_shown()

    @property
    def custom_widget(self) -> Widget | None:
        """The step's own widget (``tui_widget``), when it has one."""
        return self._custom

    def show_plan(self, planned: PlannedStep | None) -> None:
        if not self.wizard.steps[self.sid].implemented:
            return
        if (self.form is not None or self.custom_widget is not None) and current_answers(self) is None:
            self._one("step-plan").update(Text("the plan appears once the answers are valid", style="dim"))
            return
        self._one("step-plan").update(plan_text(self.wizard.ready.engine, planned))
        if planned is not None and not planned.error:
            self.actions_total = len(planned.actions) or None
        if not self._run_view_started:  # the plan is being read: the run view is built now, after
            self.call_after_refresh(self.ensure_run_view)  # the frame that shows the plan

    def focus_default(self) -> None:
        switcher = self._one("step-switcher")
        if switcher.current == "run-pane":
            for bid in ("cancel", "next-after"):
                button = self._one(bid)
                if button is not None and button.display:
                    button.focus()
                    return
        run = self._one("run")
        if run is not None and run.disabled:
            form = self.form
            field = first_invalid_field(form) if form is not None else None
            if field is not None:
                # scrolled into view once laid out: a just-mounted pane's regions are not final
                # yet, and scrolling then would leave it at a position that depends on timing
                field.focus(scroll_visible=False)
                self.call_after_refresh(self._reveal, field)
                return
        for bid in ("run", "next"):
            found = self._one(bid)
            if found is not None:
                found.focus(scroll_visible=False)
                return

    def _reveal(self, widget: Widget) -> None:
        if widget.is_mounted and self.app.focused is widget:
            widget.scroll_visible(animate=False)

    def show_setup(self) -> None:
        self._one("step-switcher").current = "setup"
        self.focus_default()

    # -- running --------------------------------------------------------------------------------
    def start_run(self, undo: bool = False, total: int | None = None) -> None:
        """The run view, for a run of the step (or, ``undo``, an undo of it: ``total`` actions)."""
        if not undo:
            self.run_count += 1
        self.actions_done = 0
        self.last_finished = None
        self._one("step-switcher").current = "run-pane"
        self._one("cancel").display = True
        for bid in ("next-after", "back", "link-after", "undo-after"):
            if (button := self._one(bid)) is not None:
                button.display = False
        rv = self.runview
        if undo:
            rv.write_lines(["── undo ──"])
        elif self.run_count > 1 or rv.log_view.line_count:
            rv.write_lines([f"── run {self.run_count} ──"])
        rv.set_action("starting…")
        rv.set_progress(0, (total or None) if undo else self.actions_total)
        rv.set_elapsed(0)
        self.refresh_header()
        self._one("cancel").focus()

    def on_events(self, events: list[Event], lines: list[str]) -> None:
        rv = self._one("runview")
        if not isinstance(rv, RunView):  # the app is closing: its widgets are being removed
            return
        for ev in events:
            if ev.kind == "action-started":
                rv.set_action(f"▶ {ev.text}")
            elif ev.kind == "action-finished":
                self.actions_done += 1
                rv.set_progress(self.actions_done, max(self.actions_total or 0, self.actions_done) or None)
            elif ev.kind == "progress":
                rv.set_progress(float(ev.data.get("done", 0)), ev.data.get("total"))
            elif ev.kind == "step-finished":
                self.last_finished = (ev.status or "", ev.text)
        rv.write_lines(lines)

    def finish_run(self, status: str, message: str) -> None:
        self._one("cancel").display = False
        rv = self.runview
        if status == "done":
            rv.set_action(Text.assemble(("✓ done", "bold green"), f"  {message}" if message else ""))
            rv.set_progress(1, 1)
            self._one("next-after").display = True
            self._one("back").display = True
            if (link := self._one("link-after")) is not None:
                link.display = True
            self._one("next-after").focus()
        else:
            mark = "✗ failed" if status == "failed" else ("↻ reboot required" if status == "reboot-required" else status)
            rv.set_action(Text.assemble((mark, "bold red" if status == "failed" else "bold magenta"), f"  {message}"))
            self._one("back").display = True
            self._one("back").focus()
        self.refresh_header()

    def finish_undo(self, status: str, message: str) -> None:
        """An undo ended: ``status`` as its step-finished event says (undone, partly undone, refused,
        failed)."""
        self._one("cancel").display = False
        rv = self.runview
        if status == "undone":
            rv.set_action(Text.assemble(("↶ undone", "bold green"), f"  {message}" if message else ""))
            rv.set_progress(1, 1)
        elif status == "partly undone":
            rv.set_action(Text.assemble(("↶ partly undone", "bold magenta"), f"  {message}" if message else ""))
        else:
            rv.set_action(Text.assemble((f"✗ undo {status or 'failed'}", "bold red"), f"  {message}" if message else ""))
        self._one("back").display = True
        self._one("back").focus()
        self.refresh_header()

    def tick(self, elapsed: float) -> None:
        if self.has_run_view:
            self.runview.set_elapsed(elapsed)

    # -- buttons --------------------------------------------------------------------------------
    def on_answers_form_changed(self, event: AnswersForm.Changed) -> None:
        answers = current_answers(self)  # a custom widget may refuse what the form accepts
        if answers is None:
            self.show_plan(None)
        elif same_answers(answers, self.wizard.answers.get(self.sid)):
            # nothing new to plan (the form's first check, a re-check): show the plan there is
            self.show_plan(self.wizard.plans.get(self.sid))
        else:
            self.post_message(AnswersEdited(self.sid, answers))
        self.sync_run(answers)

    def sync_run(self, answers: Any) -> None:
        """Run is enabled only with valid answers."""
        run = self._one("run")
        if run is not None:
            run.disabled = answers is None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        bid = event.button.id
        if bid == "run":
            self.post_message(Requested("run", self.sid))
        elif bid == "skip":
            self.post_message(Requested("skip", self.sid))
        elif bid in ("next", "next-after"):
            self.post_message(Requested("next", self.sid))
        elif bid == "cancel":
            self.post_message(Requested("cancel", self.sid))
        elif bid in ("undo", "undo-after"):
            self.post_message(Requested("undo", self.sid))
        elif bid == "back":
            self.show_setup()
        elif bid in ("link", "link-after") and (link := self.wizard.steps[self.sid].link):
            self.post_message(Navigate(link[1]))


def first_invalid_field(form: AnswersForm) -> Widget | None:
    """The input of the form's first field that shows an error."""
    for spec in form.specs:
        if form.has_error(spec.name):
            return form.field(spec.name)
    return None


def same_answers(a: Any, b: Any) -> bool:
    """The same answers: equal values, and the same fields given (what an export writes)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_answers(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, BaseModel) and isinstance(b, BaseModel):
        return type(a) is type(b) and a == b and a.model_fields_set == b.model_fields_set
    return False


def current_answers(pane: StepPane) -> Any:
    """The step's answers as the form has them (None when invalid); a list for ``many`` steps."""
    custom = pane.custom_widget
    if custom is not None and hasattr(custom, "current_answers"):
        return custom.current_answers()
    form = pane.form
    stored = pane.wizard.answers.get(pane.sid)
    if form is None:
        return stored
    valid = form.valid
    if getattr(pane.wizard.steps[pane.sid], "many", False):
        return None if valid is None else [valid, *list(stored or [])[1:]]
    return valid
