"""Runs steps: probe -> plan -> apply -> verify, records state, emits events.

The engine knows nothing about terminals. The unattended console, the log file and the TUI are
listeners of the same :class:`Event` stream, so they show the same facts from the same code.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from . import actions as A
from . import journal as J
from .errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REBOOT,
    CommandFailed,
    GpuwizardError,
    InvalidInput,
    RebootRequired,
    StepFailed,
)
from .host import Host
from .resume_service import UNIT, ResumeService, no_systemd_refusal, systemd_booted
from .state import State

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network

EventKind = Literal[
    "run-started", "step-started", "step-finished", "action-started", "action-finished", "output", "progress",
    "note", "decision", "reboot-required", "run-finished",
]


@dataclass(frozen=True)
class Event:
    """Something happened. ``kind`` is one of :data:`EventKind`:

    run-started, step-started, step-finished (status), action-started, action-finished
    (outcome: ok | changed | failed | reboot-required), output (stream; ``data["lines"]`` the lines of
    one read — one or thousands —, ``text`` the same joined by newlines), progress (``data["done"]``,
    ``data["total"]``: a download's bytes or an installer's own percentage), note (text), decision (a
    choice the plan made, emitted once when its step starts), reboot-required (text), run-finished
    (status).
    """

    kind: EventKind
    step: str | None = None
    action: str | None = None
    text: str = ""
    status: str | None = None
    stream: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def output_lines(self) -> list[str]:
        """An output event's lines (``data["lines"]``, else ``text`` split at newlines)."""
        lines = self.data.get("lines") if self.data else None
        return lines if lines is not None else self.text.split("\n")


Listener = Callable[[Event], None]
PERCENT_RE = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s?%")
AnswersT = TypeVar("AnswersT")


@dataclass(frozen=True)
class Promise:
    """A fact a step of this run will make true, which later steps plan against: ``key`` is a
    top-level facts key (``driver``, ``docker``, ``tools``, ``cluster``), ``value`` is merged into
    it, and ``says`` is what the plan of a later step that reads it shows as its assumption."""

    key: str
    value: Any
    says: str


class FactsView(dict[str, Any]):
    """The facts a step plans against: what detection saw, overlaid with what earlier steps of the
    same run promise. Records which promised keys were read, so the plan says what it assumes."""

    def __init__(self, base: dict[str, Any], promises: dict[str, list[Promise]]):
        merged = dict(base)
        for key, items in promises.items():
            for promise in items:
                old = merged.get(key)
                if isinstance(old, dict) and isinstance(promise.value, dict):
                    merged[key] = {**old, **promise.value}
                else:
                    merged[key] = promise.value
        super().__init__(merged)
        self.promises = promises
        self.read: list[str] = []

    def _mark(self, key: Any) -> None:
        # tools are promised one by one: StepContext.has_tool records the ones a plan relies on
        if key in self.promises and key not in self.read and key != "tools":
            self.read.append(key)

    def __getitem__(self, key: str) -> Any:
        self._mark(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._mark(key)
        return super().get(key, default)

    def assumptions(self) -> list[str]:
        return [p.says for key in self.read for p in self.promises[key]]


class Call:
    """What one ``Engine.plan`` or ``Engine.run`` call knows, kept off the Engine: whether it only
    plans, every answer of the session (steps read each other's through typed accessors), the
    promises of the steps planned so far, the step being worked on, and the run's id (actions whose
    "done" cannot be observed on the host count as done only when recorded in this run)."""

    def __init__(self, engine: Engine, *, planning: bool, answers: Mapping[str, Any], run_id: str):
        self.engine = engine
        self.planning = planning
        self.answers = dict(answers)
        self.run_id = run_id
        self.promises: dict[str, list[Promise]] = {}
        self.files: dict[str, str] = {}  # planning: the content earlier steps' file actions will leave
        self.gone: set[str] = set()  # planning: the paths earlier actions will have removed (an undo's plan)
        self.modes: dict[str, int] = {}  # planning: the modes of the files in ``files`` where known
        self.current: StepContext | None = None


def action_data(action: A.Action) -> dict[str, Any]:
    """What an action runs or writes, for the events: its argv, or the system path it writes."""
    argv = getattr(action, "argv", None)
    if isinstance(argv, list) and all(isinstance(x, str) for x in argv):
        return {"argv": list(argv)}
    path = getattr(action, "path", None)
    return {"path": path} if isinstance(path, str) else {}


class StepContext:
    """What a step sees: the host, the facts, the session's answers, its own saved record, a way to
    talk. One per step per call."""

    def __init__(self, engine: Engine, step_id: str, call: Call | None = None):
        self.engine = engine
        self.step_id = step_id
        self.call = call or Call(engine, planning=False, answers={}, run_id=engine.state.run_id)
        self.current_action: str | None = None
        self.decisions: list[str] = []
        self.plan_data: dict[str, Any] = {}  # what the plan resolved, for provides() and exports
        self._facts: FactsView | None = None
        self._assumed: list[str] = []
        # a dry run: actions of this step that would have changed the host (none did): what a later
        # check of the step reads is not what it would read in the real run
        self.dry_changes = 0

    @property
    def host(self) -> Host:
        return self.engine.host

    @property
    def net(self) -> Network:
        """The session's mirrors and proxy (gpuwizard/network.py)."""
        return self.engine.network

    @property
    def facts(self) -> dict[str, Any]:
        if not self.planning:
            return self.engine.facts()
        if self._facts is None:
            self._facts = FactsView(self.engine.facts(), self.call.promises)
        return self._facts

    def assumptions(self) -> list[str]:
        out = self._facts.assumptions() if self._facts is not None else []
        return out + [a for a in self._assumed if a not in out]

    def relies_on(self, key: str) -> None:
        """The plan relies on a fact an earlier step of this run promises (listed as assumed)."""
        if self.planning:
            self.facts.get(key)

    def assume(self, text: str) -> None:
        """An assumption the plan makes beyond the promised facts it read."""
        if text not in self._assumed:
            self._assumed.append(text)

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def unattended(self) -> bool:
        return self.engine.unattended

    @property
    def planning(self) -> bool:
        """True while only a plan is being made (``gpuwizard plan``, dry-run, the TUI's previews):
        nothing changes, so facts read at the start stay true, and earlier steps' promises hold."""
        return self.call.planning or self.host.dry_run

    def refresh_facts(self) -> dict[str, Any]:
        if self.planning:
            return self.facts
        return self.engine.facts(refresh=True)

    def answers(self, step: type[Step[AnswersT]]) -> AnswersT | None:
        """The answers of another step of this session (typed), or None when it is not part of it."""
        answers: AnswersT | None = self.call.answers.get(step.id)
        return answers

    def in_session(self, step_id: str) -> bool:
        return self.call.answers.get(step_id) is not None

    def has_tool(self, name: str) -> bool:
        """On PATH, or (while planning) promised by an earlier step of this run."""
        if self.host.runner.which(name) is not None:
            return True
        if self.planning:
            for promise in self.call.promises.get("tools", []):
                if isinstance(promise.value, dict) and promise.value.get(name):
                    self.assume(promise.says)
                    return True
        return False

    def read_text(self, system_path: str) -> str | None:
        """A file as the plan sees it: what an earlier step of this run will have written there
        (planning), else what is on the host."""
        if self.planning and system_path in self.call.files:
            return self.call.files[system_path]
        if self.planning and system_path in self.call.gone:
            return None
        return self.host.read_text(system_path)

    def exists(self, system_path: str) -> bool:
        if self.planning and system_path in self.call.gone:
            return False
        return (self.planning and system_path in self.call.files) or self.host.exists(system_path)

    def action_record(self, action_id: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = self.state.step(self.step_id).get("actions", {}).get(action_id)
        return record

    def done_this_run(self, action_id: str) -> bool:
        """The action was applied in this run (a resumed run is the same run). For commands whose
        effect cannot be observed, e.g. ``apt-get update``: a later run does them again."""
        record = self.action_record(action_id) or {}
        return record.get("outcome") == "changed" and record.get("run") == self.call.run_id

    def decide(self, text: str) -> None:
        """A choice the plan made ("adopting the installed release X"): part of the plan's data,
        shown once by `gpuwizard plan`, the TUI's plan preview, and the log when the step runs."""
        if text not in self.decisions:
            self.decisions.append(text)

    def note(self, text: str) -> None:
        """Something that happened while applying (a backup's path, a check's output). A plan
        changes nothing, so a note made while planning (a check's probe) is dropped: what a plan
        chose goes through :meth:`decide`."""
        if self.planning:
            return
        self.engine.emit(Event("note", self.step_id, self.current_action, text))


class Step(Generic[AnswersT]):
    """A step of the wizard: its whole contract in its module. Subclasses set ``id``, ``title`` and
    ``Answers`` (their section of the answer file; ``many``: a list of them), and may set
    ``tui_widget`` (a dotted ``module:Class`` the TUI imports; a step never imports Textual) and
    ``facts_shown`` (the doctor keys their pane shows). The answer file, its JSON Schema, the state
    file's step ids and the TUI's step list are assembled from the registry in ``steps/__init__``."""

    id: str = ""
    title: str = ""
    Answers: type[BaseModel]
    many: bool = False
    implemented: bool = True
    always_rerun: bool = False  # detect: facts are re-read on every run
    tui_widget: str | None = None
    facts_shown: tuple[str, ...] | None = ()  # doctor layers its pane shows (None: all of them)
    link: tuple[str, str] | None = None  # (label, step id): a button its pane shows once it is done
    pins: tuple[str, ...] = ()  # keys of its section an export takes from the plan when unset (chart_version)
    description: str = ""

    def plan(self, ctx: StepContext, answers: AnswersT) -> list[A.Action]:
        raise NotImplementedError

    def verify(self, ctx: StepContext, answers: AnswersT) -> str | None:
        """Check that the step's result holds; raise StepFailed if not. Returns a summary line."""
        return None

    def boots(self, ctx: StepContext, answers: AnswersT) -> dict[str, str]:
        """The boots the step's result lives through ({machine or node: boot id}), kept when it is done:
        where one has changed on a later run, :meth:`settle` runs before :meth:`verify`. Default: none."""
        return {}

    def settle(self, ctx: StepContext, answers: AnswersT) -> list[A.Action]:
        """What to wait for (and mend) after a reboot of a machine in :meth:`boots`, before the step's
        result is called healthy again: the operator's validations, HAMi's node registration."""
        return []

    def prefetch(self, ctx: StepContext, answers: AnswersT) -> list[list[str]]:
        """Read-only probes the step's plan will make that can be named before planning it (from the
        answers and the facts; a probe already made can be read with ``ctx.host.runner.peek``): the
        engine runs them side by side before the plans, so a plan waits on one round trip of them
        instead of one after another. Called in rounds until it names nothing new; a probe named
        that the plan then does not make costs one probe, never a different plan. Default: none."""
        return []

    def checks(self, ctx: StepContext, answers: AnswersT) -> list[str]:
        """What ``verify`` runs beyond read-only probes (``$ argv`` lines), for the plan."""
        return []

    def provides(self, ctx: StepContext, answers: AnswersT, plan: PlannedStep) -> list[Promise]:
        """What later steps of the same run may plan against once this one has run (called after
        planning it, when some of its actions are still to do). Default: nothing."""
        return []

    def export(self, answers: AnswersT, plan: PlannedStep | None) -> Any:
        """The step's section of an exported answer file, replaying what this session did: what the
        user set, plus what the plan decided that a replay must not decide differently (``pins``)."""
        if isinstance(answers, BaseModel):
            section = answers.model_dump(mode="json", exclude_unset=True)
            for key in self.pins:
                if key not in section and plan is not None and plan.data.get(key) is not None:
                    section[key] = plan.data[key]
            return section
        if isinstance(answers, list):
            return [a.model_dump(mode="json", exclude_unset=True) for a in answers if isinstance(a, BaseModel)]
        return None


@dataclass
class PlannedStep:
    step: Step[Any]
    actions: list[A.Action]
    done: list[bool]
    error: str | None = None
    decisions: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    refused: bool = False  # the answers ask for what cannot be (exit 2 before anything runs)
    data: dict[str, Any] = field(default_factory=dict)  # what a step's plan resolved (exports read it)
    described: list[dict[str, Any]] = field(default_factory=list)  # each action as data, with its preview
    checks: list[str] = field(default_factory=list)  # what the step's verify runs afterwards

    def previews(self) -> list[list[str]]:
        """Each action's preview lines (the argv, the diff) as the plan computed them."""
        return [list(d.get("preview") or []) for d in self.described]

    @property
    def ok(self) -> bool:
        return self.error is None and not any(isinstance(a, A.Fail) for a in self.actions)

    def problem(self) -> str | None:
        if self.error:
            return self.error
        for action in self.actions:
            if isinstance(action, A.Fail):
                return action.reason
        return None


class Engine:
    """Plans and runs steps. Holds the host, the state and the listeners; everything about one
    call (planning or running, the session's answers, promises, the step being worked on) lives in
    that call's :class:`Call`, so calls never see each other's flags."""

    def __init__(
        self,
        host: Host,
        state: State,
        steps: dict[str, Step[Any]],
        *,
        unattended: bool = True,
        reboot_policy: str = "never",
        detector: Callable[[Host], Mapping[str, Any]] | None = None,
        network: Network | None = None,
    ):
        self.host = host
        self.state = state
        self.steps = steps
        self.unattended = unattended
        self.reboot_policy = reboot_policy
        if network is None:
            from .network import Network as _Network  # pydantic: not before the TUI's first frame

            network = _Network()
        self.network = network
        # the proxy reaches every command this engine runs (probes included)
        host.runner.extra_env.update(self.network.env())
        # reboot: auto: the one-shot unit that resumes the run after the boot (gpuwizard-resume.service),
        # armed before the engine reboots; set by whoever knows how the run was started (the CLI)
        self.resume_service: ResumeService | None = None
        self.listeners: list[Listener] = []
        self._facts: dict[str, Any] | None = None
        self._facts_lock = threading.Lock()
        self._detector = detector
        self._emit_lock = threading.Lock()
        self._running: Call | None = None  # the run in progress: output events are its current step's
        host.runner.listeners.append(self._on_output)

    # -- events ---------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        with self._emit_lock:
            for listener in list(self.listeners):
                listener(event)

    def _on_output(self, stream: str, lines: list[str]) -> None:
        call = self._running
        ctx = call.current if call else None
        sid, aid = (ctx.step_id, ctx.current_action) if ctx else (None, None)
        self.emit(Event("output", sid, aid, "\n".join(lines), stream=stream, data={"lines": lines}))
        if lines:  # an installer's own "NN%" on its last line: progress
            match = PERCENT_RE.search(lines[-1][-200:])
            if match and float(match.group(1)) <= 100:
                self.emit(Event("progress", sid, aid, data={"done": float(match.group(1)), "total": 100}))

    # -- facts ----------------------------------------------------------------------------------
    def facts(self, refresh: bool = False) -> dict[str, Any]:
        with self._facts_lock:
            if self._facts is None or refresh:
                if self._detector is None:
                    from .detect import detect

                    self._detector = detect
                self._facts = dict(self._detector(self.host))
            return self._facts

    # -- planning -------------------------------------------------------------------------------
    def plan(self, selected: list[str], answers: Mapping[str, Any], *, session: Mapping[str, Any] | None = None) -> list[PlannedStep]:
        """Plan every selected step without changing anything. Later steps plan against what the
        earlier ones promise (``Step.provides``): the whole recipe's plan on a bare host. ``session``:
        every answer of the session (default: ``answers``), read by steps through typed accessors."""
        call = Call(self, planning=True, answers={**(session or {}), **answers}, run_id=self.state.run_id)
        planned: list[PlannedStep] = []
        with self.host.runner.cached_probes():  # nothing changes while planning: each probe runs once
            self.facts()  # detection, where it has not run yet, shares the plan's probes
            self._prefetch(call, selected, answers)
            for sid in selected:
                planned.append(self._plan_step(call, self.steps[sid], answers[sid]))
        if self.network.bundle:
            from .bundle import check_plan

            check_plan(self.network, self.facts().get("host") or {}, planned)
        return planned

    def _prefetch(self, call: Call, selected: list[str], answers: Mapping[str, Any], rounds: int = 3) -> None:
        """The steps' :meth:`Step.prefetch` probes, run side by side into the plan's probe cache, in
        rounds (a round may name what the one before found: the values of a release it listed)."""
        for _ in range(rounds):
            wanted: list[list[str]] = []
            for sid in selected:
                try:
                    wanted += self.steps[sid].prefetch(StepContext(self, sid, call), answers[sid])
                except Exception:  # noqa: BLE001 — a guess that fails is no plan's problem: the plan probes itself
                    continue
            if not self.host.runner.prefetch(wanted):
                return

    def _plan_step(self, call: Call, step: Step[Any], answers: Any) -> PlannedStep:
        ctx = StepContext(self, step.id, call)
        try:
            acts = step.plan(ctx, answers)
            done = [a.is_done(ctx) for a in acts]
            if self._reboots_without_systemd(acts, done):
                raise InvalidInput(no_systemd_refusal())
            described = [a.as_json(ctx) for a in acts]  # previews against this call's view of the host
            checks = step.checks(ctx, answers)
            result = PlannedStep(step, acts, done, decisions=list(ctx.decisions), assumptions=ctx.assumptions(),
                                 data=dict(ctx.plan_data), described=described, checks=checks)
        except InvalidInput as exc:
            return PlannedStep(step, [], [], str(exc), list(ctx.decisions), ctx.assumptions(), refused=True)
        except GpuwizardError as exc:
            return PlannedStep(step, [], [], str(exc), list(ctx.decisions), ctx.assumptions())
        if result.ok and not all(done):
            for promise in step.provides(ctx, answers, result):
                call.promises.setdefault(promise.key, []).append(promise)
            for action, was_done in zip(acts, done, strict=False):
                written = None if was_done else action.planned_file(ctx)
                if written is not None:
                    call.files[written[0]] = written[1]
        return result

    # -- running --------------------------------------------------------------------------------
    def run(self, selected: list[str], answers: Mapping[str, Any], *, session: Mapping[str, Any] | None = None,
            dry_after: Sequence[str] = ()) -> int:
        """Run the selected steps in order; returns the exit code of the contract. ``dry_after``: in
        a dry run, the steps of the session before these whose changes (none made) they build on:
        planned first in the same call, so that what they promise holds, as in the whole plan (the
        CUDA step after the driver step's dry run plans against the driver that step installs)."""
        call = Call(self, planning=False, answers={**(session or {}), **answers}, run_id=self.state.run_id)
        self._running = call
        if self.host.dry_run:
            for sid in dry_after:
                self._plan_step(call, self.steps[sid], call.answers.get(sid))
        try:
            self.state.data["boot_id"] = self.host.boot_id()
            self.emit(Event("run-started", data={"steps": list(selected), "run": call.run_id}))
            for sid in selected:
                code = self._run_step(call, self.steps[sid], answers[sid])
                if code != EXIT_OK:
                    self.emit(Event("run-finished", status="failed" if code == EXIT_FAILED else "reboot-required"))
                    return code
            self.emit(Event("run-finished", status="done"))
            return EXIT_OK
        finally:
            self._running = None

    def _save(self) -> None:
        self.state.save()

    def _run_step(self, call: Call, step: Step[Any], answers: Any) -> int:
        sid = step.id
        ctx = StepContext(self, sid, call)
        call.current = ctx
        try:
            return self._run_step_in(ctx, step, answers)
        finally:
            call.current = None

    def _run_step_in(self, ctx: StepContext, step: Step[Any], answers: Any) -> int:
        sid = step.id
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
            then = entry.get("boots") or {}
            try:
                settled = self._settle(ctx, step, answers, then)
            except Exception as exc:  # noqa: BLE001 — a settle wait that times out fails the step, with why
                # (running the whole step again would repeat the same waits, twice as long to the same end)
                return self._fail(ctx, exc)
            finally:
                ctx.current_action = None
            try:
                drifted = self._drifted(sid)
                if drifted:
                    raise StepFailed("what it set has changed since: " + "; ".join(drifted))
                summary = step.verify(ctx, answers)
                if settled or not then:  # the boots it now lives through (first kept by an older gpuwizard)
                    boots = self._boots(ctx, step, answers)
                    if boots:
                        self.state.set_status(sid, "done", message=summary or "", boots=boots)
                        self._save()
                self.emit(Event("step-finished", sid, status="done", text=summary or "already done"))
                return EXIT_OK
            except GpuwizardError as exc:
                self.emit(Event("note", sid, text=f"was done, but no longer holds ({exc}); running it again"))

        self.state.set_status(sid, "running", message="")
        self._save()
        self.emit(Event("step-started", sid, text=step.title))
        try:
            actions = step.plan(ctx, answers)
            for decision in ctx.decisions:
                self.emit(Event("decision", sid, text=decision))
            for action in actions:
                ctx.current_action = action.id
                self.emit(Event("action-started", sid, action.id, action.title, data=action_data(action)))
                if action.is_done(ctx):
                    self.state.record_action(sid, action.id, "ok", run=ctx.call.run_id)
                    self._save()
                    self.emit(Event("action-finished", sid, action.id, action.title, status="ok"))
                    continue
                if isinstance(action, A.Reboot):
                    return self._reboot(ctx, action)
                self._apply_dry(ctx, action) if self.host.dry_run else self._apply_journaled(ctx, action)
                self.state.record_action(sid, action.id, "changed", run=ctx.call.run_id)
                self._save()
                self.emit(Event("action-finished", sid, action.id, action.title, status="changed"))
            ctx.current_action = None
            summary = self._verify_dry(ctx, step, answers) if self.host.dry_run else step.verify(ctx, answers)
        except Exception as exc:  # noqa: BLE001 — every failure is recorded, then reported
            return self._fail(ctx, exc)
        finally:
            ctx.current_action = None
        boots = self._boots(ctx, step, answers) or entry.get("boots") or {}  # unread now: keep what was known
        self.state.set_status(sid, "done", message=summary or "", **({"boots": boots} if boots else {}))
        self._save()
        self.emit(Event("step-finished", sid, status="done", text=summary or ""))
        return EXIT_OK

    def _drifted(self, sid: str) -> list[str]:
        """What the step set that is no longer so (the journal's drift): a done step runs again."""
        from .undo import drift

        return [d["what"] for d in drift(self, [sid])]

    def _apply_journaled(self, ctx: StepContext, action: A.Action) -> None:
        """Apply an action with its journal entries: what is there before it runs is saved first (a
        pending entry), what changed after (``gpuwizard undo`` reverses it, ``doctor`` tells drift).
        A dry run keeps no journal."""
        changes = [] if ctx.planning else action.journal(ctx)
        if not changes:
            action.apply(ctx)
            return
        pending = J.begin(ctx, changes)
        self._save()
        try:
            action.apply(ctx)
        finally:  # a failure half-way still leaves what it changed reversible
            J.finish(ctx, pending)

    # A dry run records each command instead of running it. Once an action would have changed the
    # host, what a later read finds (a check of the key a download would have fetched, the runtime
    # nvidia-ctk would have configured, a step's verification) is not what the real run will find:
    # a failure from there on is said as a note, the check the real run makes at that point, and the
    # step goes on. Before that, the host is as the run will find it, and a failure fails.
    def _apply_dry(self, ctx: StepContext, action: A.Action) -> None:
        recorded = len(self.host.runner.recorded)
        try:
            action.apply(ctx)
        except StepFailed as exc:
            # a refusal of the plan (A.Fail) fails the real run whatever ran before it: so here
            if isinstance(action, A.Fail) or not (ctx.dry_changes or len(self.host.runner.recorded) > recorded):
                raise
            self._dry_note(ctx, str(exc))
        if len(self.host.runner.recorded) > recorded:
            ctx.dry_changes += 1

    def _verify_dry(self, ctx: StepContext, step: Step[Any], answers: Any) -> str:
        try:
            return step.verify(ctx, answers) or ""
        except GpuwizardError as exc:
            if not ctx.dry_changes:
                raise
            self._dry_note(ctx, str(exc))
            return "dry run: nothing was executed"

    def _dry_note(self, ctx: StepContext, what: str) -> None:
        # ctx.note keeps quiet in a dry run (a plan's probes note nothing); this is the run's own word
        self.emit(Event("note", ctx.step_id, ctx.current_action,
                        f"dry run: the real run checks here what the commands before would have changed; on this "
                        f"host as it is now: {what}"))

    def _boots(self, ctx: StepContext, step: Step[Any], answers: Any) -> dict[str, str]:
        try:
            return step.boots(ctx, answers)
        except GpuwizardError:
            return {}

    def _settle(self, ctx: StepContext, step: Step[Any], answers: Any, then: dict[str, str]) -> bool:
        """A done step whose machines rebooted since: run its settle actions (each shown as it runs).
        False when nothing rebooted. Raises what an action raises."""
        if not then:
            return False
        now = self._boots(ctx, step, answers)
        rebooted = sorted(k for k, boot in then.items() if now.get(k) and now[k] != boot)
        if not rebooted:
            return False
        sid = step.id
        self.emit(Event("note", sid, text=f"{', '.join(rebooted)} rebooted since this step was done: waiting for "
                        "it to come back before calling it healthy"))
        for action in step.settle(ctx, answers):
            ctx.current_action = action.id
            self.emit(Event("action-started", sid, action.id, action.title, data=action_data(action)))
            if action.is_done(ctx):
                self.emit(Event("action-finished", sid, action.id, action.title, status="ok"))
                continue
            action.apply(ctx)
            self.state.record_action(sid, action.id, "changed", run=ctx.call.run_id)
            self._save()
            self.emit(Event("action-finished", sid, action.id, action.title, status="changed"))
        ctx.current_action = None
        return True

    def _reboots_without_systemd(self, acts: list[A.Action], done: list[bool]) -> bool:
        """reboot: auto, a reboot still to come, and no systemd to resume the run after it."""
        return (self.reboot_policy == "auto"
                and any(isinstance(a, A.Reboot) and not d for a, d in zip(acts, done, strict=False))
                and not systemd_booted(self.host))

    def _reboot(self, ctx: StepContext, action: A.Reboot) -> int:
        sid = ctx.step_id
        boot = self.host.boot_id()
        self.state.record_action(sid, action.id, "reboot-required", boot_id=boot, run=ctx.call.run_id)
        self.state.set_status(sid, "reboot-required", message=action.reason, boot_id=boot)
        self._save()
        self.emit(Event("action-finished", sid, action.id, action.title, status="reboot-required"))
        auto = self.reboot_policy == "auto" and not self.host.dry_run
        # auto: the notes below say what happens (rebooting, resumed by the unit) or why it does not
        self.emit(Event("reboot-required", sid, text=action.reason, data={"auto": auto}))
        if auto:
            service = self.resume_service
            if service is not None:
                if not systemd_booted(self.host):  # the plan refuses this; a host can change under a run
                    self.emit(Event("note", sid, text=f"not rebooting: {no_systemd_refusal()}"))
                    return EXIT_REBOOT
                try:
                    service.arm(self.host)
                except GpuwizardError as exc:
                    self.emit(Event("note", sid, text=f"not rebooting: {UNIT} could not be enabled ({exc}), so nothing "
                                                      "would resume the run after the boot; reboot yourself, then run "
                                                      "gpuwizard --resume"))
                    return EXIT_REBOOT
                self.emit(Event("note", sid, text=f"{UNIT} resumes the run after the boot (`gpuwizard --resume`) "
                                                  "and removes itself when that run ends"))
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
        cause = exc if isinstance(exc, CommandFailed) else exc.__cause__
        tail = cause.tail if isinstance(cause, CommandFailed) else []
        if ctx.current_action:
            self.state.record_action(sid, ctx.current_action, "failed", message=message, run=ctx.call.run_id)
        self.state.set_status(sid, "failed", message=message, failed_action=ctx.current_action)
        self._save()
        if ctx.current_action:
            self.emit(Event("action-finished", sid, ctx.current_action, message, status="failed"))
        self.emit(Event("step-finished", sid, status="failed", text=message, data={"tail": tail, "traceback": detail}))
        return EXIT_FAILED
