"""Plans are data: a step's plan is a list of actions.

Each action can (1) describe itself for a plan — the exact argv, or the unified diff of a file —,
(2) tell, without changing anything, whether it is already done, so a re-run or a resume repeats
nothing, and (3) apply itself through the host seam. Dry-run and ``gpuwizard plan`` use (1) and (2)
only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from .errors import StepFailed
from .host import join_argv, load_json_object, unified_diff
from .journal import Change, FileChange, command_changes
from .resume_service import UNIT_PATH as RESUME_UNIT_PATH

if TYPE_CHECKING:  # pragma: no cover
    from .engine import StepContext


class Action:
    """Base class. ``id`` is stable across runs (the state file records outcomes by it)."""

    id: str
    title: str
    # what a user must know before it runs, when it stops or deletes something ("restarts Docker:
    # every running container stops"); the TUI's proposal and `gpuwizard plan` list these
    disruptive: str | None = None
    # what it changes, for the journal (undo, drift): see journal(); steps add to it with with_changes()
    changes: tuple[Change, ...] = ()

    def preview(self, ctx: StepContext) -> list[str]:
        return []

    def journal(self, ctx: StepContext) -> list[Change]:
        """What applying it changes, so that ``gpuwizard undo`` can reverse it and ``doctor`` tell
        drift: the files it writes (by default none, or its ``path``) and what a step declared."""
        return list(self.changes)

    def with_changes(self, *changes: Change) -> Self:
        """Declare what a command changes (packages, a release, a label, files it writes)."""
        self.changes = (*self.changes, *changes)
        return self

    def is_done(self, ctx: StepContext) -> bool:
        return False

    def apply(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def planned_file(self, ctx: StepContext) -> tuple[str, str] | None:
        """(system path, content) this action leaves, for the plans of later steps of the same run
        (their diffs start from it); None when it writes no file the plan can know."""
        return None

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = {"id": self.id, "type": type(self).__name__.lower(), "title": self.title, "preview": self.preview(ctx)}
        if self.disruptive:
            data["disruptive"] = self.disruptive
        return data


@dataclass
class Run(Action):
    """Run a command. It must say how to tell it is done: ``creates`` (a system path that exists
    afterwards), ``done_when`` (a read-only probe argv that exits 0 once done) or
    ``idempotent=True`` (running it again changes nothing, e.g. ``systemctl restart``)."""

    id: str
    title: str
    argv: list[str]
    creates: str | None = None
    done_when: list[str] | None = None
    idempotent: bool = False
    timeout: float | None = None
    env: dict[str, str] | None = None
    disruptive: str | None = None

    def __post_init__(self) -> None:
        if not (self.creates or self.done_when or self.idempotent):
            raise ValueError(f"action {self.id}: say how to tell it is done (creates/done_when/idempotent)")

    def preview(self, ctx: StepContext) -> list[str]:
        return ["$ " + join_argv(self.argv)]

    def is_done(self, ctx: StepContext) -> bool:
        if self.creates and ctx.host.exists(self.creates):
            return True
        if self.done_when:
            result = ctx.host.runner.probe(self.done_when)
            return bool(result and result.ok)
        return False

    def apply(self, ctx: StepContext) -> None:
        ctx.host.runner.run(self.argv, timeout=self.timeout, env=self.env, check=True, capture=False)

    def journal(self, ctx: StepContext) -> list[Change]:
        return command_changes(self.argv, self.changes)

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["argv"] = list(self.argv)
        return data


@dataclass
class WriteFile(Action):
    id: str
    title: str
    path: str
    content: str
    mode: int = 0o644
    backup: bool = True
    then: tuple[tuple[str, ...], ...] = ()  # what makes a put-back file take effect (journal.FileChange)
    block: tuple[str, str] | None = None  # it writes only a marked block of the file (journal.FileChange)

    def preview(self, ctx: StepContext) -> list[str]:
        diff = unified_diff(self.path, ctx.read_text(self.path), self.content)
        return diff.splitlines() or [f"(no change to {self.path})"]

    def is_done(self, ctx: StepContext) -> bool:
        return ctx.read_text(self.path) == self.content

    def journal(self, ctx: StepContext) -> list[Change]:
        return [FileChange(self.path, then=self.then, block=self.block), *self.changes]

    def planned_file(self, ctx: StepContext) -> tuple[str, str] | None:
        return self.path, self.content

    def apply(self, ctx: StepContext) -> None:
        if self.backup:
            saved = ctx.host.backup(self.path)
            if saved:
                ctx.note(f"backup of {self.path}: {saved}")
        ctx.host.write_file(self.path, self.content, self.mode)

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["path"] = self.path
        return data


@dataclass
class EditJson(Action):
    """Change some keys of a JSON object file, keeping all others; always backed up first."""

    id: str
    title: str
    path: str
    edit: Callable[[dict[str, Any]], dict[str, Any]]
    mode: int = 0o644
    then: tuple[tuple[str, ...], ...] = ()  # what makes a put-back file take effect (journal.FileChange)

    def _current(self, ctx: StepContext) -> dict[str, Any]:
        return load_json_object(self.path, ctx.read_text(self.path))

    def planned_file(self, ctx: StepContext) -> tuple[str, str] | None:
        new = self.edit(json.loads(json.dumps(self._current(ctx))))
        return self.path, json.dumps(new, indent=4) + "\n"

    def preview(self, ctx: StepContext) -> list[str]:
        old_text = ctx.read_text(self.path)
        current = load_json_object(self.path, old_text)
        new = self.edit(json.loads(json.dumps(current)))
        diff = unified_diff(self.path, old_text, json.dumps(new, indent=4) + "\n")
        return diff.splitlines() or [f"(no change to {self.path})"]

    def is_done(self, ctx: StepContext) -> bool:
        current = self._current(ctx)
        return self.edit(json.loads(json.dumps(current))) == current

    def journal(self, ctx: StepContext) -> list[Change]:
        return [FileChange(self.path, then=self.then), *self.changes]

    def apply(self, ctx: StepContext) -> None:
        changed, backup = ctx.host.edit_json(self.path, self.edit, self.mode)
        if backup:
            ctx.note(f"backup of {self.path}: {backup}")

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["path"] = self.path
        return data


@dataclass
class WaitFor(Action):
    """Wait until a read-only condition holds (polling with an event wait, not a sleep loop).
    ``check`` may raise StepFailed for a state that waiting will not fix. A dry run checks once and
    records the wait (what it waits for was not started)."""

    id: str
    title: str
    check: Callable[[StepContext], bool]
    timeout: float = 300.0
    interval: float = 2.0
    failure_hint: str = ""
    describe: Callable[[StepContext], str] | None = None  # on timeout: what is still wrong
    # what may be done while waiting (restarting a stale pod), called after each failed check; its
    # lines go under the wait in the plan, and it notes what it did
    remedy: Callable[[StepContext], None] | None = None
    remedy_preview: list[str] = field(default_factory=list)

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"wait up to {self.timeout:g}s: {self.title}"] + self.remedy_preview

    def is_done(self, ctx: StepContext) -> bool:
        return bool(self.check(ctx))

    def apply(self, ctx: StepContext) -> None:
        if ctx.host.dry_run:
            # nothing was started that the wait would see come up: shown as the run would wait
            if not self.check(ctx):
                ctx.host.runner.recorded.append(["<wait>", f"{self.timeout:g}s", self.title])
            return
        deadline = time.monotonic() + self.timeout
        waiter = ctx.host.runner.cancel
        while True:
            if self.check(ctx):
                return
            if self.remedy is not None and not ctx.planning and deadline - time.monotonic() > self.interval:
                self.remedy(ctx)  # not in a dry run, nor when no check would follow
            left = deadline - time.monotonic()
            if left <= 0:
                detail = self.describe(ctx) if self.describe else self.failure_hint
                raise StepFailed(f"timed out after {self.timeout:g}s waiting: {self.title}" + (f"; {detail}" if detail else ""))
            if waiter.wait(min(self.interval, left)):
                raise StepFailed(f"cancelled while waiting: {self.title}")


@dataclass
class Reboot(Action):
    """The host must reboot before the step can go on. The engine records the boot id; the action
    counts as done once the host runs on another boot id."""

    id: str
    title: str
    reason: str

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"reboot: {self.reason}", "then run: gpuwizard --resume"]

    def is_done(self, ctx: StepContext) -> bool:
        record = ctx.action_record(self.id)
        requested_on = record.get("boot_id") if record else None
        return bool(requested_on) and requested_on != ctx.host.boot_id()

    def apply(self, ctx: StepContext) -> None:  # handled by the engine
        raise AssertionError("Reboot is applied by the engine")

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        """With ``reboot: auto`` the plan shows what the engine does before it reboots: the unit file
        of gpuwizard-resume.service (a diff: it is a file written), the systemctl commands, and
        what runs after the boot, in place of "then run: gpuwizard --resume"."""
        data = super().as_json(ctx)
        service = ctx.engine.resume_service
        if ctx.engine.reboot_policy == "auto" and service is not None:
            kept = [line for line in data["preview"] if line != "then run: gpuwizard --resume"]
            data["preview"] = kept + service.preview(ctx.host)
            data["unit"] = {"path": RESUME_UNIT_PATH, "content": service.unit_text()}
        return data


@dataclass
class Fail(Action):
    """A plan that cannot go on: shows why in the plan, fails the step when applied."""

    id: str
    title: str
    reason: str

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"cannot continue: {self.reason}"]

    def apply(self, ctx: StepContext) -> None:
        raise StepFailed(self.reason)
