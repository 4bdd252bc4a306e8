"""Runs steps: probe -> plan -> apply -> verify, records state, emits events.

The engine knows nothing about terminals. The unattended console, the log file and the TUI are
listeners of the same :class:`Event` stream, so they show the same facts from the same code.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel

from . import actions as A
from .errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REBOOT,
    CommandFailed,
    GpuwizardError,
    RebootRequired,
)
from .host import Host
from .state import State


@dataclass(frozen=True)
class Event:
    """Something happened. ``kind`` is one of:

    run-started, step-started, step-finished (status), action-started, action-finished
    (outcome: ok | changed | failed | reboot-required), output (stream; ``data["lines"]`` the lines of
    one read — one or thousands —, ``text`` the same joined by newlines), note (text),
    reboot-required (text), run-finished (status).
    """

    kind: str
    step: str | None = None
    action: str | None = None
    text: str = ""
    status: str | None = None
    stream: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


Listener = Callable[[Event], None]


class StepContext:
    """What a step sees: the host, the detected facts, its own saved record, a way to talk."""

    def __init__(self, engine: "Engine", step_id: str):
        self.engine = engine
        self.step_id = step_id
        self.current_action: str | None = None

    @property
    def host(self) -> Host:
        return self.engine.host

    @property
    def facts(self) -> dict[str, Any]:
        return self.engine.facts()

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def unattended(self) -> bool:
        return self.engine.unattended

    @property
    def planning(self) -> bool:
        """True while only a plan is being made (``gpuwizard plan``, dry-run): nothing changes, so
        facts read at the start stay true."""
        return self.engine.planning or self.host.dry_run

    def refresh_facts(self) -> dict[str, Any]:
        return self.engine.facts(refresh=True)

    def action_record(self, action_id: str) -> dict[str, Any] | None:
        return self.state.step(self.step_id).get("actions", {}).get(action_id)

    def note(self, text: str) -> None:
        self.engine.emit(Event("note", self.step_id, self.current_action, text))


class Step:
    """A step of the wizard. Subclasses set ``id``, ``title`` and ``Answers``."""

    id: str = ""
    title: str = ""
    Answers: type[BaseModel]
    implemented: bool = True
    always_rerun: bool = False  # detect: facts are re-read on every run

    def plan(self, ctx: StepContext, answers: BaseModel) -> list[A.Action]:
        raise NotImplementedError

    def verify(self, ctx: StepContext, answers: BaseModel) -> str | None:
        """Check that the step's result holds; raise StepFailed if not. Returns a summary line."""
        return None


@dataclass
class PlannedStep:
    step: Step
    actions: list[A.Action]
    done: list[bool]
    error: str | None = None


class Engine:
    def __init__(
        self,
        host: Host,
        state: State,
        steps: dict[str, Step],
        *,
        unattended: bool = True,
        reboot_policy: str = "never",
        detector: Callable[[Host], dict[str, Any]] | None = None,
    ):
        self.host = host
        self.state = state
        self.steps = steps
        self.unattended = unattended
        self.reboot_policy = reboot_policy
        self.listeners: list[Listener] = []
        self.planning = False
        self._facts: dict[str, Any] | None = None
        self._detector = detector
        self._emit_lock = threading.Lock()
        self._ctx: StepContext | None = None
        host.runner.listeners.append(self._on_output)

    # -- events ---------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        with self._emit_lock:
            for listener in list(self.listeners):
                listener(event)

    def _on_output(self, stream: str, lines: list[str]) -> None:
        ctx = self._ctx
        self.emit(Event("output", ctx.step_id if ctx else None, ctx.current_action if ctx else None, "\n".join(lines), stream=stream, data={"lines": lines}))

    # -- facts ----------------------------------------------------------------------------------
    def facts(self, refresh: bool = False) -> dict[str, Any]:
        if self._facts is None or refresh:
            if self._detector is None:
                from .detect import detect

                self._detector = detect
            self._facts = self._detector(self.host)
        return self._facts

    # -- planning -------------------------------------------------------------------------------
    def plan(self, selected: list[str], answers: dict[str, BaseModel]) -> list[PlannedStep]:
        """Plan every selected step without changing anything."""
        self.planning = True
        try:
            return self._plan(selected, answers)
        finally:
            self.planning = False

    def _plan(self, selected: list[str], answers: dict[str, BaseModel]) -> list[PlannedStep]:
        planned: list[PlannedStep] = []
        for sid in selected:
            step = self.steps[sid]
            ctx = StepContext(self, sid)
            try:
                acts = step.plan(ctx, answers[sid])
                done = [a.is_done(ctx) for a in acts]
                planned.append(PlannedStep(step, acts, done))
            except GpuwizardError as exc:
                planned.append(PlannedStep(step, [], [], str(exc)))
        return planned

    # -- running --------------------------------------------------------------------------------
    def run(self, selected: list[str], answers: dict[str, BaseModel]) -> int:
        """Run the selected steps in order; returns the exit code of the contract."""
        self.state.data["boot_id"] = self.host.boot_id()
        self.emit(Event("run-started", data={"steps": list(selected)}))
        for sid in selected:
            code = self._run_step(self.steps[sid], answers[sid])
            if code != EXIT_OK:
                self.emit(Event("run-finished", status="failed" if code == EXIT_FAILED else "reboot-required"))
                return code
        self.emit(Event("run-finished", status="done"))
        return EXIT_OK

    def _save(self) -> None:
        self.state.save()

    def _run_step(self, step: Step, answers: BaseModel) -> int:
        sid = step.id
        ctx = StepContext(self, sid)
        self._ctx = ctx
        previous = self.state.status(sid)
        entry = self.state.step(sid)

        if previous == "reboot-required":
            requested = entry.get("boot_id")
            if requested and requested == self.host.boot_id():
                message = entry.get("message") or "a reboot is required"
                self.emit(Event("reboot-required", sid, text=f"{message}; reboot first, then run: gpuwizard --resume"))
                return EXIT_REBOOT

        if previous == "done" and not step.always_rerun:
            self.emit(Event("step-started", sid, text=step.title, data={"reverify": True}))
            try:
                summary = step.verify(ctx, answers)
                self.emit(Event("step-finished", sid, status="done", text=summary or "already done"))
                return EXIT_OK
            except GpuwizardError as exc:
                self.emit(Event("note", sid, text=f"was done, but no longer holds ({exc}); running it again"))

        self.state.set_status(sid, "running", message="")
        self._save()
        self.emit(Event("step-started", sid, text=step.title))
        try:
            actions = step.plan(ctx, answers)
            for action in actions:
                ctx.current_action = action.id
                self.emit(Event("action-started", sid, action.id, action.title))
                if action.is_done(ctx):
                    self.state.record_action(sid, action.id, "ok")
                    self._save()
                    self.emit(Event("action-finished", sid, action.id, action.title, status="ok"))
                    continue
                if isinstance(action, A.Reboot):
                    return self._reboot(ctx, action)
                action.apply(ctx)
                self.state.record_action(sid, action.id, "changed")
                self._save()
                self.emit(Event("action-finished", sid, action.id, action.title, status="changed"))
            ctx.current_action = None
            summary = step.verify(ctx, answers)
        except Exception as exc:  # noqa: BLE001 — every failure is recorded, then reported
            return self._fail(ctx, exc)
        finally:
            ctx.current_action = None
        self.state.set_status(sid, "done", message=summary or "")
        self._save()
        self.emit(Event("step-finished", sid, status="done", text=summary or ""))
        return EXIT_OK

    def _reboot(self, ctx: StepContext, action: A.Reboot) -> int:
        sid = ctx.step_id
        boot = self.host.boot_id()
        self.state.record_action(sid, action.id, "reboot-required", boot_id=boot)
        self.state.set_status(sid, "reboot-required", message=action.reason, boot_id=boot)
        self._save()
        self.emit(Event("action-finished", sid, action.id, action.title, status="reboot-required"))
        self.emit(Event("reboot-required", sid, text=action.reason))
        if self.reboot_policy == "auto" and not self.host.dry_run:
            self.emit(Event("note", sid, text="rebooting now (reboot: auto); state is saved"))
            self.host.runner.run(["reboot"], check=True)
        return EXIT_REBOOT

    def _fail(self, ctx: StepContext, exc: BaseException) -> int:
        sid = ctx.step_id
        if isinstance(exc, RebootRequired):
            return EXIT_REBOOT
        if isinstance(exc, GpuwizardError):
            message = str(exc)
            detail = None
        else:  # a bug: keep the traceback in the log, not on the user's screen
            message = f"internal error: {type(exc).__name__}: {exc}"
            detail = "".join(traceback.format_exception(exc))
        tail = exc.tail if isinstance(exc, CommandFailed) else []
        if ctx.current_action:
            self.state.record_action(sid, ctx.current_action, "failed", message=message)
        self.state.set_status(sid, "failed", message=message, failed_action=ctx.current_action)
        self._save()
        if ctx.current_action:
            self.emit(Event("action-finished", sid, ctx.current_action, message, status="failed"))
        self.emit(Event("step-finished", sid, status="failed", text=message, data={"tail": tail, "traceback": detail}))
        return EXIT_FAILED
