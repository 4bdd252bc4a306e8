"""A wizard session, apart from how it is shown: the answers of every step, the plans, each step's
status, the exit code, the reboot policy and the export of an answer file that replays it.

The TUI is a view over one of these (it never decides anything itself), and the CLI's unattended
run plans and runs through one too, so both make the same decisions from the same answers: the
operator's ``device_plugin: auto`` is decided from the whole session (HAMi in it or not), whichever
step is planned first. Never imports Textual.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel

from . import __version__
from .engine import Engine, PlannedStep, Step
from .errors import EXIT_FAILED, EXIT_OK, EXIT_REBOOT, InvalidInput
from .state import State

if TYPE_CHECKING:  # pragma: no cover
    from .undo import StepUndo

ANSWER_HEAD = ("# gpuwizard {version} answer file, exported from the wizard.\n"
               "# Replays this session unattended: sudo gpuwizard --answers THIS_FILE\n")


@dataclass
class UndoPlan:
    """The undo of one step as ``gpuwizard undo STEP --plan`` plans it: the undo model's StepUndo
    list and the same as the plan renderer's PlannedSteps (``console.render_plan``). When it refuses
    (and is not forced), ``forced`` is the plan with ``--force``: what "undo anyway" would do."""

    sid: str
    force: bool
    undos: list[StepUndo]
    planned: list[PlannedStep]
    forced: UndoPlan | None = field(default=None)

    @property
    def refusals(self) -> list[str]:
        """Why undo refuses (unsafe without --force), one reason a line; empty when it does not."""
        return [text for u in self.undos for text in u.refusals()]

    @property
    def refused(self) -> bool:
        return not self.force and bool(self.refusals)

    @property
    def actions(self) -> int:
        """How many actions it runs (already done ones included: each is checked, then skipped)."""
        return sum(len(p.actions) for p in self.planned)


class WizardSession:
    """The model of a wizard run. ``answers`` holds every step's answers (a model, a list of models
    for a ``many`` step, or None while a form is invalid); a step is part of the session unless it was
    skipped or is not implemented."""

    def __init__(self, engine: Engine, answers: dict[str, Any] | None = None):
        self.engine = engine
        self.steps: dict[str, Step[Any]] = engine.steps
        self.answers: dict[str, Any] = dict(answers or {})
        self.plans: dict[str, PlannedStep] = {}
        self._plan_lock = threading.Lock()  # one planning pass at a time (the TUI's workers share it)

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def dry_run(self) -> bool:
        return self.engine.host.dry_run

    # -- steps and statuses -------------------------------------------------------------------------
    def step_ids(self) -> list[str]:
        return list(self.steps)

    def implemented(self) -> list[str]:
        return [sid for sid in self.steps if self.steps[sid].implemented]

    def status(self, sid: str, running: str | None = None) -> str:
        if not self.steps[sid].implemented:
            return "n/a"
        if sid == running:
            return "running"
        return self.state.shown_status(sid)

    def before(self, sids: list[str], *, last: bool = False) -> list[str]:
        """The session's steps (with their answers) before the first of ``sids``, in order; ``last``:
        up to the last of them, ``sids`` included whatever their answers."""
        ids = self.step_ids()
        at = [ids.index(sid) for sid in sids if sid in ids]
        if not at:
            return []
        end = max(at) + 1 if last else min(at)
        return [sid for sid in ids[:end] if sid in sids or (self.in_session(sid) and self.answers.get(sid) is not None)]

    def in_session(self, sid: str) -> bool:
        return self.steps[sid].implemented and self.state.status(sid) != "skipped"

    def session_answers(self) -> dict[str, Any]:
        """The answers of the steps in the session: what each step's plan may read of the others."""
        return {sid: a for sid, a in self.answers.items() if sid in self.steps and self.in_session(sid) and a is not None}

    def exit_code(self) -> int:
        statuses = [self.state.status(sid) for sid in self.implemented()]
        if "failed" in statuses or "running" in statuses:
            return EXIT_FAILED
        if "reboot-required" in statuses:
            return EXIT_REBOOT
        return EXIT_OK

    def resume_target(self) -> str:
        for sid in self.implemented():
            if self.state.status(sid) in ("running", "failed", "reboot-required"):
                return sid
        return self.next_target("welcome")

    def next_target(self, after: str) -> str:
        ids = self.step_ids()
        start = ids.index(after) + 1 if after in ids else (len(ids) if after == "summary" else 0)
        for sid in ids[start:]:
            if self.steps[sid].implemented and self.state.status(sid) not in ("done", "skipped"):
                return sid
        return "summary"

    def reboot_policy(self, sid: str) -> str:
        """prompt | auto | never: the answers of the step that asks for the reboot (the driver's)."""
        return str(getattr(self.answers.get(sid), "reboot", "prompt"))

    # -- planning ------------------------------------------------------------------------------
    def plan(self, sids: Iterable[str]) -> dict[str, PlannedStep]:
        """Plan the given steps as part of the whole session: every step of the session before the
        last of them is planned too (in order), so each plans against what the earlier ones promise.
        Returns the plans made (the given steps' and those before them); one pass runs at a time."""
        wanted = [sid for sid in sids if sid in self.steps and self.steps[sid].implemented]
        if not wanted:
            return {}
        # the given steps, and the session's steps before them still to run (with their answers)
        order = [sid for sid in self.before(wanted, last=True) if sid in wanted or self.state.status(sid) != "done"]
        with self._plan_lock:
            answers = {sid: self.answers.get(sid) for sid in order}
            try:
                planned = self.engine.plan(order, answers, session=self.session_answers())
            except Exception as exc:  # noqa: BLE001 — a bug in a step's plan: shown, never fatal
                planned = [PlannedStep(self.steps[sid], [], [], f"internal error: {type(exc).__name__}: {exc}")
                           for sid in order]
            results = {p.step.id: p for p in planned}
            self.plans.update(results)
            return results

    # -- running -------------------------------------------------------------------------------
    def record_answers(self, sid: str) -> None:
        """The step's answers go into the state before it runs (a resume replays them)."""
        dumped = dump(self.answers.get(sid))
        if dumped is not None:
            self.state.answers.setdefault("version", 1)
            self.state.answers[sid] = dumped

    def run_step(self, sid: str) -> int:
        return self.run([sid])

    def unfetchable(self, sids: list[str]) -> str | None:
        """Why these steps cannot start, said before anything runs, as the unattended run refuses
        them: the URLs of their plan this host cannot fetch (gpuwizard/reach.py), with what to do;
        None when every one answers. Runs probes (curl): call it off the UI thread."""
        from . import reach

        missing = reach.check(self.engine, [p for sid, p in self.plan(sids).items() if sid in sids])
        return reach.message(missing) if missing else None

    def run(self, sids: list[str]) -> int:
        """Run steps in order (the unattended run: all of them; the TUI: one). In a dry run, the
        session's steps before them are planned first (their promises: nothing they would do was done)."""
        for sid in sids:
            self.record_answers(sid)
        return self.engine.run(sids, {sid: self.answers[sid] for sid in sids}, session=self.session_answers(),
                               dry_after=self.before(sids) if self.dry_run else [])

    def skip(self, sid: str, message: str = "skipped in the wizard") -> None:
        self.state.set_status(sid, "skipped", message=message)
        self.state.save()
        # what the other steps decided from this one being part of the session is decided again
        self.plans.clear()

    # -- undo ----------------------------------------------------------------------------------
    def can_undo(self, sid: str) -> bool:
        """Whether the step has something to undo: journal entries not undone yet (gpuwizard/journal.py);
        never in a dry run (nothing was changed, and nothing is)."""
        from . import journal

        if self.dry_run or sid not in self.steps or not self.steps[sid].implemented:
            return False
        return next(journal.live(self.state, [sid]), None) is not None

    def undo_plan(self, sid: str, force: bool = False) -> UndoPlan:
        """The undo of one step, planned as ``gpuwizard undo STEP --plan [--force]`` plans it (nothing
        changes, the state included: a pending journal entry is completed on a copy). Runs probes:
        call it off the UI thread."""
        from . import undo

        undos = undo.plan(self.engine, [sid], force=force)  # changes nothing, the state included
        result = UndoPlan(sid, force, undos, undo.planned_steps(self.engine, undos, force))
        if result.refused:
            result.forced = self.undo_plan(sid, force=True)
        return result

    def undo(self, sid: str, force: bool = False) -> int:
        """Undo one step (``gpuwizard undo STEP [--force]``): the engine's events as a run's, the state
        saved; 0 done, 1 refused or failed. What the other steps planned from it is planned again."""
        from . import undo

        if self.dry_run:
            raise InvalidInput("a dry run changes nothing: there is nothing to undo, and undo does nothing")
        try:
            return undo.run(self.engine, [sid], force=force)
        finally:
            self.plans.clear()

    # -- export --------------------------------------------------------------------------------
    def export_doc(self) -> dict[str, Any]:
        """An answer file that does what this session did: the sections of the steps that ran or are
        to run, with what their plans decided pinned (chart versions, output paths)."""
        doc: dict[str, Any] = {"version": 1}
        for sid, step in self.steps.items():
            if not step.implemented:
                continue
            if sid != "detect" and self.state.status(sid) in ("pending", "skipped"):
                continue
            section = step.export(self.answers.get(sid), self.plans.get(sid))
            if section is not None:
                doc[sid] = section
        net = self.engine.network  # the session's mirrors and proxy: the replay downloads from the same places
        for key, value in (("mirrors", net.mirrors), ("proxy", net.proxy)):
            dumped = dump(value)
            if dumped:
                doc[key] = dumped
        return doc

    def export_text(self) -> str:
        head = ANSWER_HEAD.format(version=__version__)
        return head + yaml.safe_dump(self.export_doc(), sort_keys=False, default_flow_style=False)


def dump(answers: Any) -> Any:
    """Answers as saved in the state file / an answer file (only what was set)."""
    if isinstance(answers, BaseModel):
        return answers.model_dump(mode="json", exclude_unset=True)
    if isinstance(answers, list):
        return [a.model_dump(mode="json", exclude_unset=True) for a in answers if isinstance(a, BaseModel)]
    return None
