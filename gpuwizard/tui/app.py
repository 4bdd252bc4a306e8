"""The Textual app: a view over the engine.

Threads: detection and planning run in thread workers (they spawn probes); a step runs in a thread
worker through ``Engine.run([step], answers)``, one step at a time. The engine's events arrive on that
worker's thread; the app only appends them to a queue there, and a timer on the UI thread drains it
every 50 ms, writing output lines to the step's ``Log`` in batches (a flood of output cannot freeze
the UI; the full output goes to the log file on disk, another listener of the same engine).

An undo of a step (its Undo button, or U) shows the step's undo plan first (planned on a worker, as
``gpuwizard undo STEP --plan``); confirmed, it runs in the same kind of thread worker as a run, its
events shown in the step's run view as a run's are.

Cancelling a step sets ``host.runner.cancel``: the command in flight is stopped, the step is recorded
as failed, what was done stays done. Quitting mid-run asks first, then does the same and exits once
the worker has finished, so the state file is always consistent.
"""

from __future__ import annotations

import collections
import gc
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import ContentSwitcher

from .. import __version__
from ..errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_REBOOT, GpuwizardError
from ..state import STEP_IDS, RunLock, State, UnsavedState
from .messages import AnswersEdited, Navigate, Requested
from .screens.main import MainScreen
from .screens.modals import (
    ConfirmScreen,
    DoctorScreen,
    ExportScreen,
    FailureChoice,
    FailureScreen,
    HelpScreen,
    RebootChoice,
    RebootScreen,
    UndoChoice,
    UndoScreen,
)
from .screens.overview import SummaryPane, WelcomePane

if TYPE_CHECKING:  # pragma: no cover — loaded after the first frame (see WizardApp.start)
    from ..answers import AnswerFile
    from ..engine import Engine, Event, PlannedStep, Step
    from ..session import UndoPlan, WizardSession
    from .screens.step import StepPane

FLUSH_INTERVAL = 0.05
# while a step floods its output (a drain found more lines than the log view keeps), the queue is
# drained at this pace instead: each drain then rewrites the whole view, and what the UI thread
# spends on it, it takes from the thread reading the command's output (they share the GIL)
FLOOD_INTERVAL = 0.2
FLOOD_LINES = 2000  # as many lines as the log view keeps (widgets.runview.MAX_LINES; not imported here:
# the run view's module is loaded with the first step pane, after the first frame)
PANE_SHOWN_WAIT = 1.0  # seconds a worker waits at most for a pane being opened to be on the screen
OUTPUT_KEEP = 5000  # lines of output kept per step in memory (the Log shows at most its max_lines)
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def clean_line(text: str) -> str:
    """A terminal line as it would end up on screen: the last carriage-return segment, no escapes."""
    if text.isprintable():  # the common case, checked in C: nothing to clean
        return text
    text = text.rstrip("\r").rsplit("\r", 1)[-1]
    text = ANSI_RE.sub("", text)
    return "".join(ch if ch.isprintable() or ch == "\t" else "�" for ch in text).expandtabs(4)


def event_lines(ev: Event, limit: int | None = None) -> list[str]:
    """The log view's lines for an event (an output event carries one read: one line or thousands).
    ``limit``: only the last lines are cleaned and kept; the log file on disk has every line."""
    if ev.kind == "output":
        lines = ev.output_lines()
        if limit is not None:
            lines = lines[-limit:]
        return [clean_line(t) for t in lines]
    line = event_line(ev)
    return [] if line is None else [line]


def event_line(ev: Event) -> str | None:
    if ev.kind == "action-started":
        return f"▶ {ev.text}"
    if ev.kind == "action-finished":
        return f"  {ev.status}: {ev.text}"
    if ev.kind == "note":
        return f"note: {ev.text}"
    if ev.kind == "step-finished":
        return f"[{ev.status}] {ev.text}".rstrip()
    if ev.kind == "reboot-required":
        return f"reboot required: {ev.text}"
    return None


class WizardApp(App[int]):
    CSS_PATH = "gpuwizard.tcss"
    TITLE = "gpuwizard"
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("ctrl+r", "run_step", "Run"),
        Binding("ctrl+n", "next", "Next"),
        Binding("u", "undo", "Undo"),
        Binding("escape", "cancel_run", "Cancel"),
        Binding("f2", "focus_steps", "Steps", priority=True),
        Binding("ctrl+d", "doctor", "Doctor", show=False),
        Binding("ctrl+e", "export", "Export"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        session: Any,
        answers: AnswerFile | None = None,
        resume: bool = False,
        *,
        state: State | None = None,
        steps: dict[str, Step[Any]] | None = None,
        log: Any = None,
        path_text: Callable[[Path | str], str] = str,
        clock: Callable[[], float] = time.monotonic,
        blink: bool = True,
        export_default: str = "gpuwizard-answers.yaml",
        propose: bool = True,
    ):
        """Cheap on purpose: the first frame (header, step list, welcome pane) needs only this;
        the steps, the engine and the session model are loaded once that frame is on the screen
        (``start``), and until then the step list and the keys wait for them."""
        super().__init__()
        self.session = session
        self._bundle_server: Any = None  # --bundle DIR: its server on 127.0.0.1 (gpuwizard/bundle.py)
        self.host = session.host
        loaded = state or State.load(session.state_path)
        if self.host.dry_run:  # a dry run's progress is shown, never written into the real state file
            self.state: State = UnsavedState.copy_of(loaded, session.state_path)
        else:
            self.state = loaded or State(session.state_path)
        if not resume:
            self.state.new_run()  # a fresh wizard session is a new run; --resume continues the saved one
        self.steps: dict[str, Step[Any]] = {}
        self.step_ids = list(steps) if steps else list(STEP_IDS)  # the registry's order
        self.engine: Engine | None = None
        self.model: WizardSession | None = None
        self._to_load = (answers, steps)
        self._opening: tuple[str, bool] | None = None  # asked for before the steps were loaded
        self.log_file = log
        self.log_path: Path | None = getattr(log, "path", None)
        self.path_text = path_text
        self.clock = clock
        self.blink = blink
        self.export_default = export_default
        self.resume = resume
        self.propose = propose  # plan every step at start for the welcome pane's proposal
        self.real_host = self.host.is_real_root if hasattr(self.host, "is_real_root") else False
        self.facts: dict[str, Any] | None = None
        self.outputs: dict[str, collections.deque[str]] = {}
        self.failures: dict[str, tuple[str, list[str]]] = {}
        self.reboot_reasons: dict[str, str] = {}
        self.current = "welcome"
        self.running: str | None = None
        self.undoing = False  # what runs (``running``) is an undo of the step
        self.run_started = 0.0
        self.exit_message = ""
        self.exported: Path | None = None
        self._queue: collections.deque[Event] = collections.deque()
        self._queue_lock = threading.Lock()
        self._received = 0  # output lines the engine emitted since the last drain
        self._queued = 0  # of them, those the queue holds (the last OUTPUT_KEEP of each read at most)
        self._flooding = False  # the last drain found more lines than the log view keeps
        self._drained_at = 0.0  # time.monotonic() of the last drain
        # set once the step pane mounted last is on the screen: the workers its opening starts (its
        # plan, a custom widget's check) wait for it, so that they do not share the GIL with the
        # pane's first layout and paint; an already mounted pane is shown without one
        self.pane_shown = threading.Event()
        self.pane_shown.set()
        self._quit_pending = False
        self.collect_after_load = False  # set by run_tui: garbage collection resumes once loaded
        self._pane_holds_gc = False  # a pane being opened holds garbage collection (_open)

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def ready(self) -> WizardSession:
        """The session model, for what runs only once the steps are loaded (runs, plans, export:
        their keys and buttons are off until then)."""
        if self.model is None:
            raise RuntimeError("the wizard's steps are not loaded yet")
        return self.model

    def _load(self) -> tuple[dict[str, Step[Any]], Engine, WizardSession]:
        """The steps, the engine over them and the session model with its first answers (from the
        answer file, else from the state file, else each step's defaults). Runs on a worker thread:
        it touches nothing on the screen."""
        from ..answers import from_state
        from ..engine import Engine
        from ..network import Network
        from ..session import WizardSession
        from ..steps import registry

        answer_file, given = self._to_load
        steps = given or registry()
        # the mirrors and proxy of the answer file (else of the saved run) hold for the whole session
        src = answer_file if answer_file is not None else (
            from_state(self.state.answers, str(self.state.path)) if self.state.answers else None)
        network = Network.of(src)
        if getattr(self.session.args, "bundle", None):  # checked before the wizard opened (cmd_tui)
            from .. import bundle

            self._bundle_server = bundle.attach(network, self.session.args.bundle, self.host)
        engine = Engine(self.host, self.state, steps, unattended=False, reboot_policy="never", network=network)
        model = WizardSession(engine)
        model.answers.update(self._initial_answers(steps, answer_file))
        return steps, engine, model

    def _initial_answers(self, steps: dict[str, Step[Any]], answer_file: AnswerFile | None) -> dict[str, Any]:
        from ..answers import AnswerFile, from_state, section

        src = answer_file
        if src is None and self.state.answers:
            src = from_state(self.state.answers, str(self.state.path))
        out: dict[str, Any] = {}
        for sid, step in steps.items():
            if src is not None and sid in AnswerFile.model_fields:
                value = section(src, sid)
            else:
                value = None
            if value is None and getattr(step, "many", False):
                value = []
            elif value is None:
                model = getattr(step, "Answers", None)
                try:
                    value = model() if model is not None else None
                except Exception:  # noqa: BLE001 — required fields: the form shows what is missing
                    value = None
            out[sid] = value
        return out

    @property
    def answers(self) -> dict[str, Any]:
        return self.model.answers if self.model is not None else {}

    @property
    def plans(self) -> dict[str, PlannedStep]:
        return self.model.plans if self.model is not None else {}

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    def start(self) -> None:
        """Called once the main screen is mounted: the frame is drawn first, then the steps load."""
        if self.session.args.simulate:
            self.sub_title = f"simulated host: {self.session.args.simulate}"
        elif self.host.dry_run:
            self.sub_title = "dry run"
        self.set_interval(FLUSH_INTERVAL, self._drain_tick)
        self.set_interval(1.0, self._tick)
        self.main.statuses = {sid: self.status(sid) for sid in self.step_ids}  # the keys change once loaded
        self.call_after_refresh(self.load_worker)

    @work(thread=True, group="load", exit_on_error=False)
    def load_worker(self) -> None:
        try:
            loaded = self._load()
        except Exception as exc:  # noqa: BLE001 — a bug, said in words on exit, with the log path
            self.call_from_thread(self._load_failed, exc)
            return
        self.call_from_thread(self._loaded, *loaded)

    def _load_failed(self, exc: Exception) -> None:
        self.exit_message = f"internal error while loading the steps: {type(exc).__name__}: {exc}"
        if self.log_file is not None:
            self.log_file.write(self.exit_message)
        self.exit(EXIT_FAILED)

    def _loaded(self, steps: dict[str, Step[Any]], engine: Engine, model: WizardSession) -> None:
        self.steps, self.engine = steps, engine
        self.step_ids = list(steps)
        engine.listeners.append(self._on_engine_event)
        if self.log_file is not None:
            engine.listeners.append(self.log_file)
        self.model = model
        self.refresh_statuses()
        start = self.resume_target() if self.resume else "welcome"
        target, focus = self._opening or (start, True)
        self._opening = None
        self.open(target, focus)
        self.probe(plan=None if self.propose and target == "welcome" else [])
        if self.collect_after_load:  # run_tui held garbage collection for the start
            self.collect_after_load = False
            gc.freeze()
            gc.enable()

    # -- status ---------------------------------------------------------------------------------
    def status(self, sid: str) -> str:
        if self.model is None:  # the first frame: what the state file says
            return self.state.shown_status(sid)
        return self.model.status(sid, self.running)

    def implemented(self) -> list[str]:
        return self.model.implemented() if self.model is not None else []

    def resume_target(self) -> str:
        return self.model.resume_target() if self.model is not None else "welcome"

    def next_target(self, after: str) -> str:
        return self.model.next_target(after) if self.model is not None else after

    def exit_code(self) -> int:
        if self.model is None:  # quit before the steps were loaded: nothing ran in this session
            return EXIT_OK
        return self.model.exit_code()

    def refresh_statuses(self) -> None:
        """The statuses are the main screen's reactive state: the step list and every step pane
        show them (and redraw) when they change."""
        try:
            main = self.main
        except StopIteration:  # the app is closing: nothing left to refresh
            return
        main.statuses = {sid: self.status(sid) for sid in self.step_ids}
        main.current = self.current
        for pane in self.panes():  # Undo: shown while there is something to undo and nothing runs
            pane.sync_undo()
        self.refresh_bindings()

    @property
    def main(self) -> MainScreen:
        """The main screen (below any dialog)."""
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    def pane(self, sid: str) -> StepPane:
        from .screens.step import StepPane

        pane = self._content().get_child_by_id(f"step-{sid}")
        if not isinstance(pane, StepPane):
            raise NoMatches(f"no pane for step {sid}")
        return pane

    def panes(self) -> list[StepPane]:
        """The step panes mounted so far (a pane is mounted when its step is first opened): the
        content switcher's children, looked up without walking every widget below them."""
        from .screens.step import StepPane

        return [pane for pane in self._content().children if isinstance(pane, StepPane) and pane.is_mounted]

    def _content(self) -> ContentSwitcher:
        return self.main.content

    # -- navigation -----------------------------------------------------------------------------
    @on(Navigate)
    def _navigate(self, message: Navigate) -> None:
        message.stop()
        if message.target == "next":
            self.action_next()
        else:
            self.open(message.target, focus=message.focus)

    def open(self, target: str, focus: bool = True) -> None:
        """Show the welcome pane, a step's pane or the summary (scheduled: a pane may need mounting).
        Asked before the steps are loaded, it is done once they are."""
        if not self.loaded:
            self._opening = (target, focus)
            return
        self.current = target
        self.call_later(self._open, target, focus)

    async def _open(self, target: str, focus: bool = True) -> None:
        from .screens.step import StepPane

        switcher = self.main.query_one("#content", ContentSwitcher)
        if target != self.current:
            return  # another open came after this one
        if target in self.steps and not switcher.query(f"#step-{target}"):
            self.pane_shown = shown = threading.Event()
            # Building a pane allocates tens of thousands of objects: enough to set off a full
            # garbage collection, itself as long as the rest of the pane's first frame. It waits
            # until that frame is painted (_pane_shown).
            if gc.isenabled():
                gc.disable()
                self._pane_holds_gc = True
                self.set_timer(PANE_SHOWN_WAIT, self._resume_gc)  # at the latest
            pane = StepPane(target)
            try:
                # no repaint while its widgets mount: the screen's refreshes would lay out and paint
                # a half-built pane, hidden under the one shown, again and again; it appears, whole,
                # with the one refresh after it becomes current below
                with self.batch_update():
                    await switcher.mount(pane)
            finally:
                # after its first paint (or now, when that cannot be scheduled)
                if not self.call_after_refresh(self._pane_shown, pane, shown):
                    shown.set()
                    self._resume_gc()
        elif target == "summary" and not switcher.query("#summary"):
            await switcher.mount(SummaryPane(id="summary", classes="pane"))  # built when first shown
        if target in self.steps:
            switcher.current = f"step-{target}"
            pane = self.pane(target)
            pane.refresh_header()
            pane.show_plan(self.plans.get(target))
            if focus:
                pane.focus_default()
            if self.running != target and self.steps[target].implemented:
                self.replan([target])
        else:
            switcher.current = target
            if target == "welcome":
                self.main.query_one(WelcomePane).refresh_view()
                if self.facts is not None and not self.running and self.propose:
                    self.plan_worker(self.implemented())
                if focus:
                    self.main.query_one("#start").focus()
            else:
                self.main.query_one(SummaryPane).refresh_view()
                if focus:
                    self.main.query_one("#export").focus()
        self.refresh_statuses()

    async def _pane_shown(self, pane: StepPane, shown: threading.Event) -> None:
        """The pane just mounted is on the screen: what it builds after its first frame, then the
        workers its opening started go ahead, and garbage is collected again."""
        try:
            if pane.is_mounted:
                await pane.shown()
        finally:
            shown.set()
            self._resume_gc()

    def _resume_gc(self) -> None:
        """Garbage collection again, after a pane's opening held it (_open)."""
        if self._pane_holds_gc:
            self._pane_holds_gc = False
            gc.enable()

    def on_unmount(self) -> None:
        self._resume_gc()  # closed while a pane was being opened
        if self._bundle_server is not None:  # --bundle: served for the session only
            self._bundle_server.close()

    def action_start(self) -> None:
        self.open(self.next_target("welcome"))

    def action_next(self) -> None:
        if self.running:
            return
        self.open(self.next_target(self.current))

    def action_focus_steps(self) -> None:
        self.main.query_one("#steps").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action in ("run_step", "next", "cancel_run", "focus_steps", "doctor",
                                                               "export", "undo"):
            return False
        if not self.loaded and action in ("run_step", "next", "cancel_run", "export", "undo"):
            return False
        if action == "undo":  # listed only while the current step has something to undo
            return self.can_undo(self.current)
        if action == "run_step":
            return self.current in self.steps and self.steps[self.current].implemented and not self.running
        if action == "cancel_run":
            return bool(self.running)
        if action == "next":
            return not self.running and self.current != "summary"
        return True

    # -- detection and planning -----------------------------------------------------------------
    @work(thread=True, group="probe", exit_on_error=False)
    def probe(self, plan: list[str] | None = None) -> None:
        """Detect (read-only), then plan the given steps (default: every implemented step, for the
        welcome pane's proposal)."""
        facts = self.ready.engine.facts(refresh=True)
        self.call_from_thread(self._facts_ready, facts)
        self._plan(self.implemented() if plan is None else plan)

    def _facts_ready(self, facts: dict[str, Any]) -> None:
        if self.facts is None and self.model is not None and hasattr(self.log_file, "write_header"):
            # the log's head, once: the answers the session starts from and what detection found
            self.log_file.write_header(answers={"version": 1, **self.model.session_answers()}, facts=facts)
        self.facts = facts
        gpus = facts.get("gpus") or []
        host = facts.get("host") or {}
        what = ", ".join(sorted({g["name"] for g in gpus})) or "no NVIDIA GPU"
        parts = [what, host.get("pretty_name") or host.get("os") or ""]
        if self.session.args.simulate:
            parts.append(f"simulated: {self.session.args.simulate}")
        self.sub_title = " · ".join(p for p in parts if p)
        self.main.query_one(WelcomePane).refresh_view()
        for pane in self.panes():
            pane.refresh_facts()

    def replan(self, sids: list[str]) -> None:
        if not self.running:
            self.plan_worker(sids, self.pane_shown)

    @work(thread=True, group="plan", exclusive=True, exit_on_error=False)
    def plan_worker(self, sids: list[str], shown: threading.Event | None = None) -> None:
        if shown is not None:
            shown.wait(PANE_SHOWN_WAIT)
        self._plan(sids)

    def _plan(self, sids: Iterable[str]) -> None:
        """Plan as part of the whole session (the model plans the steps before too, one pass at a
        time): a step's plan sees what the earlier ones promise and every answer of the session."""
        results = self.ready.plan(list(sids))
        self.call_from_thread(self._plans_ready, results)

    def _plans_ready(self, results: dict[str, PlannedStep]) -> None:
        for pane in self.panes():
            if pane.sid in results:
                pane.show_plan(results[pane.sid])
        self.main.query_one(WelcomePane).refresh_view()

    @on(AnswersEdited)
    def _answers_edited(self, message: AnswersEdited) -> None:
        message.stop()
        self.set_answers(message.sid, message.answers)

    def set_answers(self, sid: str, answers: Any) -> None:
        if answers is not None and self.loaded:
            self.answers[sid] = answers
            if self.current == sid:
                self.replan([sid])
            elif self.current == "welcome":
                self.replan(self.implemented())

    @on(Requested)
    async def _requested(self, message: Requested) -> None:
        message.stop()
        what = message.what
        if what == "run":
            await self.action_run_step()
        elif what == "skip":
            self.skip_step(message.sid or self.current)
        elif what == "next":
            self.action_next()
        elif what == "cancel":
            self.action_cancel_run()
        elif what == "undo":
            self.action_undo(message.sid)
        elif what == "doctor":
            self.action_doctor()
        elif what == "export":
            self.action_export()
        elif what == "quit":
            await self.action_quit()  # a coroutine: it may ask first, mid-run

    # -- running a step -------------------------------------------------------------------------
    async def action_run_step(self) -> None:
        sid = self.current
        if sid not in self.steps or not self.steps[sid].implemented or self.running:
            return
        try:
            pane = self.pane(sid)
        except NoMatches:
            return
        from .screens.step import current_answers

        answers = current_answers(pane)
        if answers is None:
            self.notify("fix the answers marked in red first", severity="error")
            form = pane.form
            if form is not None:
                form.focus_first(invalid_only=True)
            return
        self.answers[sid] = answers
        await self._start_run(sid)

    async def _start_run(self, sid: str) -> None:
        answers = self.answers[sid]
        self.running = sid  # first: a second Ctrl+R while the run view is built starts nothing
        self.run_started = self.clock()
        self.host.runner.cancel.clear()
        pane = self.pane(sid)
        await pane.ensure_run_view()
        pane.start_run()
        self.refresh_statuses()
        self.run_worker_thread(sid, answers)

    @work(thread=True, group="run", exit_on_error=False)
    def run_worker_thread(self, sid: str, answers: Any) -> None:
        try:
            why = self.ready.unfetchable([sid])  # a closed network stops the step before it changes anything
            if why is not None:
                self.failures[sid] = (why, [])
                self.call_from_thread(self._run_done, sid, EXIT_FAILED)
                return
            code = self.ready.run_step(sid)
        except Exception as exc:  # noqa: BLE001 — the engine records step failures; this is a bug
            self.failures[sid] = (f"internal error: {type(exc).__name__}: {exc}", [])
            code = EXIT_FAILED
        self.call_from_thread(self._run_done, sid, code)

    def _on_engine_event(self, ev: Event) -> None:
        """Called on the engine's thread: queue only; the UI thread drains the queue.

        Of output, the queue holds only what the view can still show: the last ``OUTPUT_KEEP`` lines
        of each read, and none of the reads that newer ones push out of those lines. What is left
        out is freed on this thread at once, while its memory is still in use (the log file has
        every line): a flood's lines kept until the next drain and freed then would have the
        allocator hand their memory back and map it anew for the next reads, a page fault every
        few lines, which doubled the time a flood takes to reach the log file."""
        if ev.kind == "output":
            lines = ev.output_lines()
            received = len(lines)
            ev = replace(ev, text="", data={**ev.data, "lines": lines[-OUTPUT_KEEP:]})
        with self._queue_lock:
            self._queue.append(ev)
            if ev.kind == "output":
                self._received += received
                self._queued += len(ev.data["lines"])
                if self._queued > 2 * OUTPUT_KEEP:
                    self._prune_queue()

    def _prune_queue(self) -> None:
        """Drop the queued reads whose lines newer reads push out of the last ``OUTPUT_KEEP`` (under
        the queue's lock); every other event stays, in its order."""
        kept: list[Event] = []
        newer = 0
        for ev in reversed(self._queue):
            if ev.kind == "output":
                if newer >= OUTPUT_KEEP:
                    continue
                newer += len(ev.data["lines"])
            kept.append(ev)
        kept.reverse()
        self._queue = collections.deque(kept)
        self._queued = newer

    def _drain_tick(self) -> None:
        now = time.monotonic()
        if self._flooding and now - self._drained_at < FLOOD_INTERVAL:
            return
        self._drained_at = now
        self._flooding = self._drain_events() >= FLOOD_LINES

    def _drain_events(self) -> int:
        """Hand the queued events to their panes; returns how many output lines they carried."""
        with self._queue_lock:
            if not self._queue:
                return 0
            events = list(self._queue)
            self._queue.clear()
            count, self._received, self._queued = self._received, 0, 0
        batches: dict[str, tuple[list[Event], list[str]]] = {}
        status_changed = False
        for ev in events:
            sid = ev.step or self.running
            if sid is None or sid not in self.steps:
                continue
            evs, lines = batches.setdefault(sid, ([], []))
            evs.append(ev)
            # raw lines here; only the last OUTPUT_KEEP of the whole batch are cleaned below (a flood's
            # older lines would scroll out of view unseen; the log file on disk has every line)
            if ev.kind == "output":
                new = ev.output_lines()
            else:
                new = event_lines(ev)
            lines.extend(new[-OUTPUT_KEEP:])
            if len(lines) > 4 * OUTPUT_KEEP:
                del lines[:-OUTPUT_KEEP]
            if ev.kind == "step-finished" and ev.status == "failed":
                tail = ev.data.get("tail") or list(self.outputs.get(sid, []))[-15:]
                self.failures[sid] = (ev.text, [clean_line(t) for t in tail][-15:])
            if ev.kind == "reboot-required":
                self.reboot_reasons[sid] = ev.text
            if ev.kind in ("step-started", "step-finished", "reboot-required"):
                status_changed = True
        mounted = {pane.sid: pane for pane in self.panes()}
        for sid, (evs, raw) in batches.items():
            lines = [clean_line(t) for t in raw[-OUTPUT_KEEP:]]
            keep = self.outputs.setdefault(sid, collections.deque(maxlen=OUTPUT_KEEP))
            keep.extend(lines)
            if sid in mounted:
                mounted[sid].on_events(evs, lines)
        if status_changed:
            self.refresh_statuses()
        return count

    def _tick(self) -> None:
        if self.running:
            self.pane(self.running).tick(self.clock() - self.run_started)

    def _run_done(self, sid: str, code: int) -> None:
        self._drain_events()
        self.running = None
        self.host.runner.cancel.clear()
        entry = self.state.steps.get(sid) or {}
        status = self.state.status(sid)
        pane = self.pane(sid)
        pane.tick(self.clock() - self.run_started)
        pane.finish_run(status, entry.get("message", "") or "")
        self.refresh_statuses()
        if self._quit_pending:
            self._exit_with(self.exit_code())
            return
        if code == EXIT_OK:
            self.probe(plan=[])  # facts changed: refresh them (the next step is planned when opened)
        elif code == EXIT_REBOOT:
            self._ask_reboot(sid)
        else:
            message, tail = self.failures.get(sid, (entry.get("message", ""), []))
            screen = FailureScreen(self.steps[sid].title, message or entry.get("message", ""), tail,
                                   self.path_text(self.log_path) if self.log_path else "(no log file)",
                                   self.path_text(self.state.path))
            self.push_screen(screen, partial(self._after_failure, sid))

    def _after_failure(self, sid: str, choice: FailureChoice | None) -> None:
        if choice is FailureChoice.RETRY:
            self.call_later(self._start_run, sid)
        elif choice is FailureChoice.SKIP:
            self.skip_step(sid)
        elif choice is FailureChoice.QUIT:
            self._exit_with(EXIT_FAILED)

    def skip_step(self, sid: str) -> None:
        if self.running:
            return
        self.ready.skip(sid)
        self.refresh_statuses()
        self.open(self.next_target(sid))

    # -- undoing a step ------------------------------------------------------------------------
    def can_undo(self, sid: str) -> bool:
        """Whether the step has changes to undo now: the session says so (never in a dry run) and
        nothing runs."""
        return self.model is not None and not self.running and sid in self.steps and self.model.can_undo(sid)

    def action_undo(self, sid: str | None = None) -> None:
        """The undo dialog of the step (the current one): its plan, then Undo or Cancel."""
        sid = sid or self.current
        if not self.can_undo(sid) or isinstance(self.screen, UndoScreen):
            return
        screen = UndoScreen(sid, self.steps[sid].title)
        self.push_screen(screen, partial(self._after_undo_dialog, sid, screen))
        self.undo_plan_worker(sid, screen)

    @work(thread=True, group="undo-plan", exclusive=True, exit_on_error=False)
    def undo_plan_worker(self, sid: str, screen: UndoScreen) -> None:
        try:
            plan = self.ready.undo_plan(sid)
        except Exception as exc:  # noqa: BLE001 — a bug, or a host that cannot be read: said in the dialog
            self.call_from_thread(screen.show_error, f"{type(exc).__name__}: {exc}")
            return
        self.call_from_thread(screen.show_plan, plan)

    def _after_undo_dialog(self, sid: str, screen: UndoScreen, choice: UndoChoice | None) -> None:
        if choice in (UndoChoice.UNDO, UndoChoice.FORCE) and screen.plan is not None:
            force = choice is UndoChoice.FORCE
            plan: UndoPlan = (screen.plan.forced or screen.plan) if force else screen.plan
            self.call_later(self._start_undo, sid, force, plan.actions)

    async def _start_undo(self, sid: str, force: bool, total: int | None = None) -> None:
        if not self.can_undo(sid):
            return
        self.running, self.undoing = sid, True  # first: nothing else starts while the run view is built
        self.run_started = self.clock()
        self.host.runner.cancel.clear()
        pane = self.pane(sid)
        await pane.ensure_run_view()
        pane.start_run(undo=True, total=total)
        self.refresh_statuses()
        self.undo_worker_thread(sid, force)

    @work(thread=True, group="run", exit_on_error=False)
    def undo_worker_thread(self, sid: str, force: bool) -> None:
        try:
            code = self.ready.undo(sid, force=force)
        except Exception as exc:  # noqa: BLE001 — undo records its failures; this is a bug
            self.failures[sid] = (f"internal error: {type(exc).__name__}: {exc}", [])
            code = EXIT_FAILED
        self.call_from_thread(self._undo_done, sid, code)

    def _undo_done(self, sid: str, code: int) -> None:
        self._drain_events()
        self.running, self.undoing = None, False
        self.host.runner.cancel.clear()
        pane = self.pane(sid)
        pane.tick(self.clock() - self.run_started)
        if pane.last_finished is not None:
            status, text = pane.last_finished
        else:  # no verdict from the undo (a bug): what the state says
            status, text = "failed", self.failures.get(sid, ((self.state.steps.get(sid) or {}).get("message", ""), []))[0]
        pane.finish_undo(status, text)
        self.refresh_statuses()
        if self._quit_pending:
            self._exit_with(self.exit_code())
            return
        self.probe(plan=[sid])  # the host changed: detect again, and plan the step anew (Run does it again)
        if code != EXIT_OK:
            where = f"; full log: {self.path_text(self.log_path)}" if self.log_path else ""
            self.notify(f"undo of {sid} stopped: {text}{where}", severity="error", timeout=10)

    # -- reboot ---------------------------------------------------------------------------------
    def _ask_reboot(self, sid: str) -> None:
        reason = self.reboot_reasons.get(sid) or (self.state.steps.get(sid) or {}).get("message") or "a reboot is required"
        policy = self.ready.reboot_policy(sid)
        allowed, why_not = True, ""
        if self.host.dry_run:
            allowed, why_not = False, "dry run: nothing is rebooted"
        elif policy == "never":
            allowed, why_not = False, "the answers say reboot: never; reboot yourself when it suits you"
        elif self.real_host and os.geteuid() != 0:
            allowed, why_not = False, "not root: reboot yourself (sudo reboot)"
        nxt = (f"after the reboot run `sudo gpuwizard --resume`: it reopens at this step "
               f"({self.steps[sid].title}) and continues where it stopped.")
        self.push_screen(RebootScreen(self.steps[sid].title, reason, nxt, allowed, why_not), partial(self._after_reboot, sid))

    def _after_reboot(self, sid: str, choice: RebootChoice | None) -> None:
        if choice is RebootChoice.NOW:
            self.reboot_worker()
        else:
            self._exit_with(EXIT_REBOOT)

    @work(thread=True, group="reboot", exit_on_error=False)
    def reboot_worker(self) -> None:
        try:
            self.host.runner.run(["reboot"], check=True)
            self.exit_message = "rebooting; after the reboot run: sudo gpuwizard --resume"
        except GpuwizardError as exc:
            self.exit_message = f"could not reboot ({exc}); reboot yourself, then run: sudo gpuwizard --resume"
        self.call_from_thread(self.exit, EXIT_REBOOT)

    # -- quitting -------------------------------------------------------------------------------
    def _exit_with(self, code: int) -> None:
        if code == EXIT_REBOOT and not self.exit_message:
            self.exit_message = (f"stopped for a reboot; state saved in {self.state.path}; "
                                 "after the reboot run: sudo gpuwizard --resume")
        elif code == EXIT_FAILED and not self.exit_message:
            self.exit_message = (f"stopped with a step not done; state saved in {self.state.path}"
                                 + (f"; full log: {self.log_path}" if self.log_path else "")
                                 + "; continue with: sudo gpuwizard --resume")
        self.exit(code)

    async def action_quit(self) -> None:
        if not self.running:
            self._exit_with(self.exit_code())
            return

        def answer(yes: bool | None) -> None:
            if yes and self.running:
                self._quit_pending = True
                self.host.runner.cancel.set()
                self.notify("stopping the running step…")

        self.push_screen(
            ConfirmScreen("Quit while a step runs?",
                          "The command in flight is stopped and the step is marked failed; what is already "
                          "done stays done. `sudo gpuwizard --resume` continues from this step.",
                          yes="Stop and quit", no="Keep running"),
            answer,
        )

    def action_cancel_run(self) -> None:
        if not self.running:
            return

        def answer(yes: bool | None) -> None:
            if yes and self.running:
                self.host.runner.cancel.set()

        if self.undoing:
            screen = ConfirmScreen("Cancel the running undo?",
                                   "The command in flight is stopped and the step is marked failed; what is already "
                                   "put back stays put back. Undo it again to finish.",
                                   yes="Stop it", no="Keep running")
        else:
            screen = ConfirmScreen("Cancel the running step?",
                                   "The command in flight is stopped and the step is marked failed; what is already "
                                   "done stays done. You can then Retry or Skip it.",
                                   yes="Stop it", no="Keep running")
        self.push_screen(screen, answer)

    # -- help, doctor, export -------------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_doctor(self) -> None:
        self.push_screen(DoctorScreen(self.facts))

    def export_text(self) -> str:
        return self.ready.export_text()

    def action_export(self) -> None:
        text = self.export_text()
        self.push_screen(ExportScreen(text, self.export_default, blink=self.blink), partial(self._do_export, text))

    def _do_export(self, text: str, target: Path | None) -> None:
        from ..answers import parse_answers

        if target is None:
            return
        try:
            parse_answers(text, str(target))  # what is written must load back
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except (OSError, GpuwizardError) as exc:
            self.notify(f"could not write {target}: {exc}", severity="error", timeout=10)
            return
        self.exported = target
        self.notify(f"answers written to {self.path_text(target)}; replay with: sudo gpuwizard --answers {target.name}", timeout=10)

    # -- command palette ------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        if not self.loaded:
            yield SystemCommand("Help", "Keys and how the wizard works", self.action_help)
            yield from super().get_system_commands(screen)
            return
        yield SystemCommand("Welcome / host", "What detection found and what the wizard proposes", partial(self.open, "welcome"))
        for n, sid in enumerate(self.step_ids, 1):
            step = self.steps[sid]
            note = "" if step.implemented else " (not available yet)"
            yield SystemCommand(f"Jump to step {n}: {sid}", f"{step.title}{note}", partial(self.open, sid))
        if "podspec" in self.steps and self.steps["podspec"].implemented:
            yield SystemCommand("Pod spec builder", "Build a HAMi pod spec: fields, live YAML, save / apply",
                                partial(self.open, "podspec"))
        if self.can_undo(self.current):
            yield SystemCommand(f"Undo step: {self.current}", "Reverse what this step changed (its undo plan first)",
                                self.action_undo)
        yield SystemCommand("Summary", "What was done, next commands, export", partial(self.open, "summary"))
        yield SystemCommand("Doctor", "What is installed and healthy, layer by layer", self.action_doctor)
        yield SystemCommand("Export answers", "Write an answer file that replays this session unattended", self.action_export)
        yield SystemCommand("Help", "Keys and how the wizard works", self.action_help)
        yield from super().get_system_commands(screen)


def run_tui(session: Any, answers: AnswerFile | None, resume: bool, *, err: Any = None) -> int:
    """Run the wizard; returns the exit code of the contract (0 done, 1 failed, 3 reboot, 4 locked)."""
    import sys

    from ..console import LogFile
    from ..errors import StateError

    err = err or sys.stderr
    state = State.load(session.state_path)
    if resume and state is None:
        raise StateError(f"nothing to resume: no state file at {session.state_path}")
    lock = RunLock(session.state_path).acquire()  # raises LockHeld (exit 4)
    log = None
    collect = gc.isenabled()
    try:
        # No garbage collection until the steps are loaded (WizardApp._loaded): on the way to the
        # first frame the heap grows by tens of thousands of objects (Textual's, then the screen's)
        # and a full collection of it came right before that frame, a third of the time from
        # app.run() to the frame. Then what the start made is left out of later collections
        # (gc.freeze), so that a pane's collection looks only at what came after.
        gc.disable()
        log = LogFile(session.log_dir)
        log.write(f"gpuwizard {__version__} pid {os.getpid()} root {session.host.root} tui{' resume' if resume else ''}")
        log.attach(session.host)  # every command's argv, exit code and duration, probes included
        app = WizardApp(session, answers, resume, state=state, log=log)
        app.collect_after_load = collect
        code = app.run()
        if code is None:  # closed without a verdict (e.g. the terminal went away)
            code = app.exit_code()
        if app.exit_message:
            err.write(f"gpuwizard: {app.exit_message}\n")
        elif log is not None:
            err.write(f"gpuwizard: log: {log.path}\n")
        return int(code)
    finally:
        if collect:
            gc.enable()
        if log is not None:
            log.close()
        lock.release()


__all__ = ["WizardApp", "run_tui", "EXIT_LOCKED"]
