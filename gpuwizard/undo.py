"""``gpuwizard undo``: reverse what the journal (gpuwizard/journal.py) says the wizard changed, newest
first, and ``doctor``'s drift: what the wizard set that has changed since.

Undo restores only what the wizard owns: a file it created is removed only while it is as the wizard
left it; a JSON file someone edited since gets only the wizard's keys put back (theirs stay); a
package that was there before stays; a Helm release it upgraded (not created) is rolled back; a
cluster, namespace or label value that was there before stays. Where reversing is unsafe — a step
under another that is still installed, the driver while processes use the GPU, a file edited since
that cannot be merged — it refuses and says why, unless ``--force``.

Each reversal is plain actions (gpuwizard/actions.py), previewed by the same renderer as ``plan`` and
each able to tell it is already done, so an undo killed half-way finishes when run again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from . import actions as A
from . import journal as J
from .errors import EXIT_FAILED, EXIT_OK, InvalidInput, StepFailed
from .state import STEP_IDS

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine, PlannedStep, StepContext

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
INDEPENDENT = ("podspec",)  # files only: nothing of it depends on the steps under it staying installed
REAPPLY = "gpuwizard --resume"
BOOT_TOOLS = ("update-initramfs", "dracut")  # a file put back takes effect at the next boot  # re-runs a done step whose result no longer holds (drift included)


@dataclass
class Reversal:
    """How one journal entry is reversed: its actions, or why it is not (``refusal``: unsafe, unless
    --force; ``kept``: left as is on purpose, e.g. a key someone changed since)."""

    entry: dict[str, Any]
    title: str
    actions: list[A.Action] = field(default_factory=list)
    refusal: str | None = None
    kept: str | None = None
    then: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a user must know (takes effect at the next boot)
    leaves: tuple[str, str | None, int] | None = None  # a file reversal: (path, content after it or None: removed, mode)
    done: list[bool] = field(default_factory=list)  # planning: each action already done
    described: list[dict[str, Any]] = field(default_factory=list)  # planning: each action as data, its preview


# -- reversing actions ---------------------------------------------------------------------------------
@dataclass
class RemovePath(A.Action):
    """Remove a file (or, ``tree``, a directory tree) the wizard created."""

    id: str
    title: str
    path: str
    tree: bool = False
    backup: bool = False  # a file edited since: kept as <path>.gpuwizard-<time>.bak first

    def preview(self, ctx: StepContext) -> list[str]:
        return ([f"back up {self.path} -> {self.path}.gpuwizard-<time>.bak"] if self.backup else []) + \
            [f"rm {'-r ' if self.tree else ''}{self.path}"]

    def is_done(self, ctx: StepContext) -> bool:
        return not ctx.host.path(self.path).is_symlink() and not ctx.host.path(self.path).exists()

    def apply(self, ctx: StepContext) -> None:
        p = ctx.host.path(self.path)
        if ctx.host.dry_run:
            ctx.host.runner.recorded.append(["<remove>", self.path])
            return
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            return
        if self.backup:
            saved = ctx.host.backup(self.path)
            if saved:
                ctx.note(f"backup of {self.path}: {saved}")
        p.unlink(missing_ok=True)

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["path"] = self.path
        return data


@dataclass
class RemoveDirs(A.Action):
    """Remove the directories the wizard created for a file, deepest first, where they are empty."""

    id: str
    title: str
    paths: list[str]

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"rmdir {p} (when empty)" for p in self.paths]

    def is_done(self, ctx: StepContext) -> bool:
        return not any(ctx.host.path(p).is_dir() for p in self.paths)

    def apply(self, ctx: StepContext) -> None:
        for p in sorted(self.paths, key=lambda s: -s.count("/")):
            d = ctx.host.path(p)
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


@dataclass
class RestoreBytes(A.Action):
    """Put back a file the journal kept in a backup (too large or binary to keep inline)."""

    id: str
    title: str
    path: str
    backup: str
    sha256: str
    mode: int = 0o644

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"cp {self.backup} {self.path}"]

    def is_done(self, ctx: StepContext) -> bool:
        snap = J.snapshot(ctx.host, self.path)
        return snap.get("sha256") == self.sha256

    def apply(self, ctx: StepContext) -> None:
        src = ctx.host.path(self.backup)
        if not src.exists():
            raise StepFailed(f"the backup {self.backup} of {self.path} is gone: cannot put it back")
        from .host import atomic_write

        atomic_write(ctx.host.path(self.path), src.read_bytes(), self.mode)


def _cmd(action_id: str, title: str, argv: list[str], done: Callable[[StepContext], bool],
         disruptive: str | None = None, env: dict[str, str] | None = None) -> A.Action:
    from .platform.kinds import RunIf

    return RunIf(action_id, title, argv, env=env, disruptive=disruptive, done=done)


# -- one entry -----------------------------------------------------------------------------------------
def reverse(ctx: StepContext, entry: dict[str, Any]) -> Reversal:
    kind = entry.get("kind")
    data = entry.get("data") or {}
    handler = _REVERSERS.get(str(kind))
    if handler is None:
        return Reversal(entry, f"{kind}", kept=f"gpuwizard does not know how to reverse a {kind!r} change")
    return handler(ctx, entry, data)


def _file(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    path = data["path"]
    seq = entry["seq"]
    old, new = data["before"], data.get("after") or {"type": None}
    now = _now(ctx, path)
    old_mode = int(old.get("mode") or 0o644)
    rev = Reversal(entry, f"{path} as it was before" if old["type"] else f"remove {path} (gpuwizard created it)")
    if J._same(now, old):
        return rev  # already as it was
    fmt = data.get("format", "text")
    restore: A.Action | None = None  # what puts back what was there before gpuwizard
    if old["type"] is None:
        restore = RemovePath(f"undo-{seq}-rm", f"remove {path}", path, tree=now["type"] == "dir",
                             backup=not J._same(now, new) and now["type"] == "file")
        rev.leaves = (path, None, 0)
    elif old["type"] == "file" and "text" in old:
        restore = A.WriteFile(f"undo-{seq}-restore", f"put back {path} as it was", path, old["text"], mode=old_mode,
                              backup=not J._same(now, new))
        rev.leaves = (path, old["text"], old_mode)
    elif old["type"] == "file" and data.get("backup"):
        restore = RestoreBytes(f"undo-{seq}-restore", f"put back {path} from {data['backup']}", path, data["backup"],
                               old["sha256"], old_mode)
    if J._same(now, new):  # as gpuwizard left it: put back exactly what was there
        if restore is None:
            rev.kept = (f"{path} was there before (a download cache's file): left as it is" if old["type"] == "file"
                        else f"{path} was a {old['type']} before: gpuwizard does not put that back")
            return rev
        rev.actions.append(restore)
    elif data.get("block") and now["type"] == "file" and "text" in now and "text" in new:
        marks = data["block"]
        mine, theirs = J.block_of(new["text"], marks), J.block_of(now["text"], marks)
        if mine is None or theirs != mine:
            rev.refusal = (f"gpuwizard's block in {path} was changed since: undo leaves it as it is "
                           "(--force puts back the file as it was before gpuwizard, keeping a backup)")
            if restore is not None:
                rev.actions.append(restore)
            return rev
        text = J.replace_block(now["text"], marks, J.block_of(old.get("text"), marks))
        if old["type"] is None and not text:
            rev.actions.append(restore or RemovePath(f"undo-{seq}-rm", f"remove {path}", path))
        else:
            rev.title = f"gpuwizard's block in {path} taken out; the rest of the file, edited since, stays"
            mode = int(now.get("mode") or old_mode)
            rev.actions.append(A.WriteFile(f"undo-{seq}-block", rev.title, path, text, mode=mode, backup=True))
            rev.leaves = (path, text, mode)
    elif fmt == "json" and data.get("keys") and now["type"] == "file":
        doc = J.parse("json", now.get("text"))
        if doc is None:
            rev.refusal = f"{path} is no longer a JSON object: put it back by hand (from the backup or the journal)"
            return rev
        edit = _revert_keys(data["keys"], J.parse("json", old.get("text")) or {})
        result = edit(json.loads(json.dumps(doc)))
        if result == doc:
            rev.kept = f"{path} was changed since and none of gpuwizard's keys are as it set them: left as is"
            return rev
        keys = ", ".join(J.dotted(k["key"]) for k in data["keys"])
        if old["type"] is None and not result:  # it made the file, and nothing of anyone else's is left in it
            rev.actions.append(restore or RemovePath(f"undo-{seq}-rm", f"remove {path}", path))
        else:
            rev.title = f"gpuwizard's keys in {path} put back ({keys}); keys changed by others since stay"
            rev.actions.append(A.EditJson(f"undo-{seq}-keys", rev.title, path, edit, mode=int(now.get("mode") or old_mode)))
            rev.leaves = (path, json.dumps(result, indent=4) + "\n", int(now.get("mode") or old_mode))
    else:
        what = "removed" if now["type"] is None else "edited"
        rev.refusal = (f"{path} was {what} since gpuwizard wrote it; undo leaves it as it is now "
                       "(--force puts back what was there before gpuwizard, keeping a backup of the file as it is)")
        if restore is not None and not (old["type"] is None and now["type"] is None):
            rev.actions.append(restore)
    dirs = data.get("created_dirs") or []
    if dirs and old["type"] is None:
        rev.actions.append(RemoveDirs(f"undo-{seq}-dirs", f"remove the directories gpuwizard made for {path}", dirs))
    rev.then = [list(argv) for argv in data.get("then") or []]
    if rev.actions and any(argv and argv[0] in BOOT_TOOLS for argv in rev.then):
        rev.notes.append(f"{path} takes effect at the next boot (the initramfs is rebuilt without it): reboot when "
                         "convenient" + (" to load nouveau again" if "nouveau" in path else ""))
    return rev


def _revert_keys(keys: list[dict[str, Any]], before_doc: Mapping[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An edit putting back each key the journal says the wizard set, where it is still as it set it;
    objects the wizard created that end up empty go too."""

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        for k in keys:
            path = list(k["key"])
            current = J.get_key(doc, path)
            expected = k["after"] if k["has"] else J.ABSENT
            if current != expected and not (current is J.ABSENT and expected is J.ABSENT):
                continue
            parent: Any = doc
            for part in path[:-1]:
                parent = parent.setdefault(part, {}) if k["had"] else parent.get(part, {})
            if k["had"]:
                parent[path[-1]] = k["before"]
            elif isinstance(parent, dict):
                parent.pop(path[-1], None)
            for depth in range(len(path) - 1, 0, -1):  # prune objects it created, now empty
                node = J.get_key(doc, path[:depth])
                if node == {} and J.get_key(before_doc, path[:depth]) is J.ABSENT:
                    holder = J.get_key(doc, path[:depth - 1]) if depth > 1 else doc
                    if isinstance(holder, dict):
                        holder.pop(path[depth - 1], None)
        return doc

    return edit


def _tree(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    top = data.get("top") or data["path"]
    rev = Reversal(entry, f"remove {top} (gpuwizard created it)")
    if ctx.host.path(top).exists():
        rev.actions.append(RemovePath(f"undo-{entry['seq']}-rm", f"remove {top}", top, tree=True))
    return rev


def _sysctl(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    key, before = data["key"], data["value_before"]
    rev = Reversal(entry, f"{key} back to {before}")
    now = J.sysctl_value(ctx.host, key)
    if now == before:
        return rev
    if now != data.get("value_after"):
        rev.kept = f"{key} was changed since (now {now}): left as is"
        return rev
    rev.actions.append(_cmd(f"undo-{entry['seq']}-sysctl", rev.title, ["sysctl", "-w", f"{key}={before}"],
                            lambda c: J.sysctl_value(c.host, key) == before))
    return rev


def _module(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    name = data["name"]
    rev = Reversal(entry, f"unload the {name} module (gpuwizard loaded it)")
    if J.module_loaded(ctx.host, name):
        rev.actions.append(_cmd(f"undo-{entry['seq']}-unload", f"unload {' '.join(data.get('unload') or [name])}",
                                ["modprobe", "-r", *(data.get("unload") or [name])],
                                lambda c: not J.module_loaded(c.host, name)))
    return rev


def _helm_repo(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    name, before = data["name"], data.get("url_before")
    now = (J.helm_repos(ctx.host) or {}).get(name)
    rev = Reversal(entry, f"the Helm repository {name} " + ("removed" if before is None else f"back to {before}"))
    if now is None and before is None or now == before:
        return rev
    if now != data.get("url_after"):
        rev.kept = f"the Helm repository {name} was changed since (now {now}): left as is"
        return rev
    argv = ["helm", "repo", "remove", name] if before is None else ["helm", "repo", "add", name, before, "--force-update"]
    rev.actions.append(_cmd(f"undo-{entry['seq']}-repo", rev.title, argv,
                            lambda c: (J.helm_repos(c.host) or {}).get(name) == before))
    return rev


def gpu_processes(ctx: StepContext) -> list[str]:
    """Processes using a GPU now (nvidia-smi's compute apps); empty when none or it cannot tell."""
    result = ctx.host.runner.probe(["nvidia-smi", "--query-compute-apps=pid,process_name", "--format=csv,noheader"])
    if result is None or not result.ok:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip() and "No running" not in line]


def _packages(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    manager = data["manager"]
    now = J.installed_packages(ctx.host, manager) or set()
    added = [p for p in data.get("added") or [] if p in now]
    rev = Reversal(entry, f"remove the packages gpuwizard installed ({', '.join(data.get('added') or [])})")
    if not added:
        return rev
    # apt-get purge, not remove: remove keeps a package's conffiles, and those of cuda-keyring are the APT
    # source list of NVIDIA's repository, which would outlive its keyring (apt-get(8), dpkg(1) on conffiles);
    # these packages were not there before the run, so their configuration was not either
    argv = ["apt-get", "purge", "-y", *added] if manager == "apt" else ["dnf", "remove", "-y", *added]

    def removed(c: StepContext) -> bool:
        left = J.installed_packages(c.host, manager)
        return left is not None and not any(p in left for p in added)

    how = "purge (their configuration files too)" if manager == "apt" else "remove"
    rev.actions.append(_cmd(f"undo-{entry['seq']}-remove", f"{how} {', '.join(added)} ({manager}; installed by gpuwizard)",
                            argv, removed, env=APT_ENV if manager == "apt" else None))
    if entry.get("step") == "driver":
        busy = gpu_processes(ctx)
        if busy:
            rev.refusal = (f"the GPU is in use ({'; '.join(busy[:5])}): removing the driver under them is unsafe; stop "
                           "them first, or --force")
    return rev


def _helm(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    from .steps import kube as K

    context = J._context(data)
    rel, ns = data["release"], data["namespace"]
    current = J.helm_release(ctx, data)
    seq = entry["seq"]
    if not data.get("existed"):
        rev = Reversal(entry, f"uninstall the Helm release {rel} ({ns}; gpuwizard installed it)")
        if current is not None:
            rev.actions.append(_cmd(f"undo-{seq}-uninstall", f"uninstall {rel} from {ns}",
                                    K.helm(context, "uninstall", rel, "-n", ns, "--wait"),
                                    lambda c: J.helm_release(c, data) is None,
                                    disruptive=f"uninstalls {rel}: its pods stop"))
        return rev
    rev = Reversal(entry, f"roll the Helm release {rel} ({ns}) back to revision {data.get('revision_before')} "
                          "(gpuwizard upgraded it; it was there before)")
    if current is None:
        rev.kept = f"the release {rel} is gone: nothing to roll back"
        return rev

    def as_before(c: StepContext) -> bool:
        r = J.helm_release(c, data)
        return bool(r and r.get("chart") == data.get("chart_before")
                    and K.release_values(c, context, rel, ns) == data.get("values_before"))

    if as_before(ctx):
        return rev
    ours = current.get("chart") == data.get("chart_after") and K.release_values(ctx, context, rel, ns) == data.get("values_after")
    if not ours:
        rev.refusal = (f"the release {rel} was changed since gpuwizard upgraded it (now revision {current.get('revision')}, "
                       f"{current.get('chart')}): rolling back would drop that change; helm rollback {rel} "
                       f"{data.get('revision_before')} -n {ns} yourself, or --force")
    rev.actions.append(_cmd(f"undo-{seq}-rollback", f"roll {rel} back to revision {data.get('revision_before')}",
                            K.helm(context, "rollback", rel, str(data.get("revision_before")), "-n", ns, "--wait"),
                            as_before, disruptive=f"rolls {rel} back: its pods restart"))
    return rev


def _kind_cluster(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    name = data["name"]
    rev = Reversal(entry, f"delete the Kind cluster {name} (gpuwizard created it)")
    if name in (J.kind_clusters(ctx) or []):
        rev.actions.append(_cmd(f"undo-{entry['seq']}-kind-delete", f"delete the Kind cluster {name}",
                                ["kind", "delete", "cluster", "--name", name],
                                lambda c: name not in (J.kind_clusters(c) or []),
                                disruptive=f"deletes the Kind cluster {name} and every pod on it"))
    return rev


def _label(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    from .steps import kube as K

    key, before, after = data["key"], data.get("value_before"), data.get("value_after")
    what = f"{data['object']} {data['name']}"
    rev = Reversal(entry, f"label {key} of {what} " + (f"back to {before}" if before is not None else "removed"))
    exists, now = J.label_value(ctx, data)
    if not exists or now == before:
        return rev
    if now != after:
        rev.kept = f"the label {key} of {what} was changed since (now {now!r}): left as is"
        return rev
    change = f"{key}-" if before is None else f"{key}={before}"
    argv = K.kubectl(J._context(data), "label", data["object"], data["name"], change, *(["--overwrite"] if before else []))
    rev.actions.append(_cmd(f"undo-{entry['seq']}-label", rev.title, argv, lambda c: J.label_value(c, data)[1] == before))
    return rev


def _namespace(ctx: StepContext, entry: dict[str, Any], data: dict[str, Any]) -> Reversal:
    from .steps import kube as K

    name = data["name"]
    rev = Reversal(entry, f"delete the namespace {name} (gpuwizard created it)")
    if J.namespace_exists(ctx, data):
        rev.actions.append(_cmd(f"undo-{entry['seq']}-namespace", f"delete the namespace {name}",
                                K.kubectl(J._context(data), "delete", "namespace", name),
                                lambda c: not J.namespace_exists(c, data), disruptive=f"deletes everything left in {name}"))
    return rev


_REVERSERS: dict[str, Callable[[StepContext, dict[str, Any], dict[str, Any]], Reversal]] = {
    "file": _file, "tree": _tree, "packages": _packages, "helm": _helm, "kind-cluster": _kind_cluster,
    "label": _label, "namespace": _namespace, "sysctl": _sysctl, "module": _module, "helm-repo": _helm_repo,
}


# -- the plan -----------------------------------------------------------------------------------------
@dataclass
class StepUndo:
    """The undo of one step: its reversals newest first, then the commands that make put-back files
    take effect (each once)."""

    step_id: str
    title: str
    reversals: list[Reversal]
    then: list[A.Action]
    refusal: str | None = None  # the whole step's (a step above it still installed)
    unrecorded: list[str] = field(default_factory=list)  # actions it did that left no journal entry
    then_described: list[dict[str, Any]] = field(default_factory=list)

    def refusals(self) -> list[str]:
        return ([self.refusal] if self.refusal else []) + [r.refusal for r in self.reversals if r.refusal]


def _context_for(engine: Engine, sid: str, planning: bool, call: Any = None) -> StepContext:
    from .engine import Call, StepContext

    return StepContext(engine, sid, call or Call(engine, planning=planning, answers={}, run_id=engine.state.run_id))


def _now(ctx: StepContext, path: str) -> dict[str, Any]:
    """A path as the undo sees it: planning, what the reversals before it will have left there."""
    if ctx.planning and path in ctx.call.gone:
        return {"type": None}
    if ctx.planning and path in ctx.call.files:
        text = ctx.call.files[path]
        return {"type": "file", "text": text, "sha256": J.sha256(text.encode()), "mode": ctx.call.modes.get(path, 0o644)}
    return J.snapshot(ctx.host, path)


def _leave(ctx: StepContext, rev: Reversal) -> None:
    """Planning: what a file reversal leaves, for the reversals after it (their previews, their choices)."""
    if rev.leaves is None:
        return
    path, text, mode = rev.leaves
    call = ctx.call
    if text is None:
        call.gone.add(path)
        call.files.pop(path, None)
    else:
        call.gone.discard(path)
        call.files[path] = text
        call.modes[path] = mode


def selected(engine: Engine, names: list[str]) -> list[str]:
    """The steps to undo, newest first: those named (all with a journal when none is), validated."""
    unknown = [n for n in names if n not in STEP_IDS]
    if unknown:
        raise InvalidInput(f"unknown step {', '.join(unknown)}: the steps are {', '.join(STEP_IDS)}")
    with_entries = {e.get("step") for e in J.live(engine.state)}
    chosen = [sid for sid in STEP_IDS if sid in (names or with_entries)]
    return list(reversed(chosen))


def complete(engine: Engine, names: list[str]) -> None:
    """The pending entries of the steps (their action was killed half-way) completed against the host
    now, those whose action changed nothing dropped; the caller saves the state."""
    for sid in selected(engine, names):
        real = _context_for(engine, sid, False)
        for entry in [e for e in J.live(engine.state, [sid]) if e.get("status") == "pending"]:
            if not J.complete_pending(real, entry):
                entry["undone"] = "nothing changed"


def _entries(engine: Engine, sid: str) -> list[dict[str, Any]]:
    """The step's live entries, newest first; a pending one completed on a copy (planning saves nothing)."""
    out = []
    real = _context_for(engine, sid, False)
    for entry in reversed(list(J.live(engine.state, [sid]))):
        if entry.get("status") == "pending":
            entry = json.loads(json.dumps(entry))
            if not J.complete_pending(real, entry):
                continue
        out.append(entry)
    return out


def plan(engine: Engine, names: list[str], *, force: bool = False) -> list[StepUndo]:
    """The undo of the named steps (all with journal entries when none is named), newest first. One
    planning call for all: each reversal is previewed against what the reversals before it leave.
    Changes nothing, the state included."""
    from .engine import Call

    state = engine.state
    order = selected(engine, names)
    out: list[StepUndo] = []
    live_steps = {e.get("step") for e in J.live(state)}
    call = Call(engine, planning=True, answers={}, run_id=state.run_id)
    for sid in order:
        ctx = _context_for(engine, sid, True, call)
        reversals = []
        for entry in _entries(engine, sid):
            rev = reverse(ctx, entry)
            rev.done = [a.is_done(ctx) for a in rev.actions]
            rev.described = [a.as_json(ctx) for a in rev.actions]
            if rev.actions and (force or not rev.refusal):
                _leave(ctx, rev)
            reversals.append(rev)
        pending_then = (state.steps.get(sid) or {}).get("undo_then") or []
        then = _then_actions([c for r in reversals if r.actions and (force or not r.refusal) for c in r.then] + pending_then)
        above = [s for s in STEP_IDS[STEP_IDS.index(sid) + 1:] if s in live_steps and s not in order and s not in INDEPENDENT]
        refusal = None
        if above and sid not in INDEPENDENT:
            refusal = (f"{', '.join(above)} {'is' if len(above) == 1 else 'are'} still installed on top of {sid}: undo "
                       f"{' '.join(reversed(above))} first (gpuwizard undo {' '.join(reversed(above))} {sid}), or --force")
        recorded = {e.get("action") for e in J.entries(state) if e.get("step") == sid}
        entry = state.steps.get(sid) or {}
        unrecorded = [aid for aid, rec in (entry.get("actions") or {}).items()
                      if rec.get("outcome") == "changed" and aid not in recorded]
        title = engine.steps[sid].title if sid in engine.steps else sid
        u = StepUndo(sid, title, reversals, then, refusal, unrecorded)
        u.then_described = [a.as_json(ctx) for a in then]
        out.append(u)
    return out


def _then_actions(commands: list[list[str]]) -> list[A.Action]:
    then: list[A.Action] = []
    seen: set[tuple[str, ...]] = set()
    for argv in commands:
        if tuple(argv) not in seen:
            seen.add(tuple(argv))
            then.append(A.Run(f"undo-then-{len(then) + 1}", f"make it take effect: {' '.join(argv)}", list(argv), idempotent=True))
    return then


def planned_steps(engine: Engine, undos: list[StepUndo], force: bool) -> list[PlannedStep]:
    """The undo plan as the plan renderer's PlannedStep list (one renderer for plan and undo)."""
    from .engine import PlannedStep

    out = []
    for u in undos:
        notes = [r.kept for r in u.reversals if r.kept] + [n for r in u.reversals for n in r.notes]
        if force:
            notes += [f"forced past a refusal: {r.refusal}" for r in u.reversals if r.refusal]
        if u.unrecorded:
            notes.append("nothing to reverse for (no lasting change recorded): " + ", ".join(u.unrecorded))
        error = None if force or not u.refusals() else "; ".join(u.refusals())
        chosen = [r for r in u.reversals if force or not r.refusal]
        acts = [a for r in chosen for a in r.actions] + u.then
        done = [d for r in chosen for d in r.done] + [False] * len(u.then)
        described = [d for r in chosen for d in r.described] + u.then_described
        step = engine.steps[u.step_id]
        if error is not None:
            acts, done, described = [], [], []
        out.append(PlannedStep(step, acts, done, error=error, decisions=notes, refused=error is not None, described=described))
    return out


def render(planned: list[PlannedStep], out: IO[str]) -> None:
    """The undo plan through the plan's renderer (console.render_plan), each step marked as an undo."""
    import io

    from .console import render_plan

    buf = io.StringIO()
    render_plan(planned, buf)
    for line in buf.getvalue().splitlines():
        if line.startswith("[") and "] " in line and not line.startswith("[todo]"):
            sid, _, title = line.partition("] ")
            line = f"{sid}] undo: {title}"
        out.write(line.replace("disruptive changes in this plan:", "disruptive changes in this undo:") + "\n")


def exit_code(undos: list[StepUndo], force: bool) -> int:
    return EXIT_OK if force or not any(u.refusals() for u in undos) else EXIT_FAILED


# -- running ------------------------------------------------------------------------------------------
def run(engine: Engine, names: list[str], *, force: bool = False) -> int:
    """Undo the steps, newest first, emitting the engine's events; the state is saved after every
    action, so an undo killed half-way finishes when run again. Exit 0 done, 1 refused or failed."""
    from .engine import Call, Event

    state = engine.state
    complete(engine, names)
    state.save()
    undos = plan(engine, names, force=force)
    call = Call(engine, planning=False, answers={}, run_id=state.run_id)
    engine._running = call  # the commands' output events are the current step's, as in a run
    try:
        engine.emit(Event("run-started", data={"steps": [u.step_id for u in undos], "undo": True, "run": state.run_id}))
        code = EXIT_OK
        for u in undos:
            step_code = _run_step(engine, u, force, call)
            if step_code != EXIT_OK:
                code = step_code
                break
        engine.emit(Event("run-finished", status="done" if code == EXIT_OK else "failed", data={"undo": True}))
        return code
    finally:
        engine._running = None


def _run_step(engine: Engine, u: StepUndo, force: bool, call: Any) -> int:
    from .engine import Event, action_data

    state = engine.state
    sid = u.step_id
    engine.emit(Event("step-started", sid, text=f"undo: {u.title}", data={"undo": True}))
    refusals = u.refusals()
    if refusals and not force:
        text = "; ".join(refusals)
        engine.emit(Event("step-finished", sid, status="refused", text=text, data={"undo": True}))
        return EXIT_FAILED
    ctx = _context_for(engine, sid, False, call)
    call.current = ctx
    entry_state = state.step(sid)
    previous = entry_state.get("status", "pending")
    state.set_status(sid, "running", message="undo in progress (gpuwizard undo)")
    state.save()
    for text in [r.kept for r in u.reversals if r.kept] + [n for r in u.reversals for n in r.notes]:
        engine.emit(Event("note", sid, text=text))
    ran_then: list[list[str]] = []
    kept = 0
    try:
        for planned_rev in u.reversals:
            rev = reverse(ctx, planned_rev.entry)  # against the host as the reversals before it left it
            if rev.refusal and not force:
                continue
            if rev.actions:
                ran_then += rev.then
            for action in rev.actions:
                ctx.current_action = action.id
                engine.emit(Event("action-started", sid, action.id, action.title, data=action_data(action)))
                if action.is_done(ctx):
                    engine.emit(Event("action-finished", sid, action.id, action.title, status="ok"))
                    continue
                if rev.then:  # kept until they ran: a kill after the file is back still restarts the service
                    pending = entry_state.setdefault("undo_then", [])
                    pending += [argv for argv in rev.then if argv not in pending]
                action.apply(ctx)
                state.save()
                engine.emit(Event("action-finished", sid, action.id, action.title, status="changed"))
            rev.entry["undone"] = state.run_id
            rev.entry["undone_at"] = time.time()
            if rev.kept:
                rev.entry["kept"] = rev.kept  # left as it is now, on purpose (changed by others since)
                kept += 1
            state.save()
        pending_then = entry_state.get("undo_then") or []
        for action in _then_actions(ran_then + pending_then):
            ctx.current_action = action.id
            engine.emit(Event("action-started", sid, action.id, action.title, data=action_data(action)))
            action.apply(ctx)
            engine.emit(Event("action-finished", sid, action.id, action.title, status="changed"))
        entry_state.pop("undo_then", None)
    except Exception as exc:  # noqa: BLE001 — recorded and reported like a step's failure
        from .errors import GpuwizardError

        message = str(exc) if isinstance(exc, GpuwizardError) else f"internal error: {type(exc).__name__}: {exc}"
        state.set_status(sid, "failed", message=f"undo failed: {message}", failed_action=ctx.current_action)
        state.save()
        if ctx.current_action:
            engine.emit(Event("action-finished", sid, ctx.current_action, message, status="failed"))
        tail = getattr(exc.__cause__, "tail", None) or getattr(exc, "tail", None) or []
        engine.emit(Event("step-finished", sid, status="failed", text=f"undo failed: {message}",
                          data={"tail": tail, "undo": True}))
        return EXIT_FAILED
    finally:
        ctx.current_action = None
    left = list(J.live(state, [sid]))
    done = not left
    status = "pending" if done or previous == "pending" else previous
    state.set_status(sid, status, message="undone (gpuwizard undo)" if done else "partly undone (gpuwizard undo)")
    for key in ("actions", "boots", "failed_action"):
        if done:
            state.step(sid).pop(key, None)
    state.save()
    if not done:
        text = f"{len(left)} change(s) not undone yet"
    elif kept:
        text = f"put back as it was before gpuwizard, but for {kept} change(s) others made since (left as they are)"
    else:
        text = "put back as it was before gpuwizard"
    engine.emit(Event("step-finished", sid, status="undone" if done else "partly undone", text=text, data={"undo": True}))
    return EXIT_OK


# -- drift ---------------------------------------------------------------------------------------------
def drift(engine: Engine, steps: list[str] | None = None) -> list[dict[str, Any]]:
    """What the wizard set that is no longer so: [{step, kind, what, reapply}] for the live journal
    entries (of ``steps``). Of several entries on one file or release, the newest says what it
    should be (a later step may change what an earlier one set)."""
    state = engine.state
    found: list[dict[str, Any]] = []
    newest: dict[tuple[str, ...], dict[str, Any]] = {}
    for entry in J.live(state):
        if entry.get("status") != "done":
            continue
        data = entry.get("data") or {}
        key: tuple[str, ...]
        if entry.get("kind") in ("file", "tree"):
            key = ("file", data.get("path", ""))
        elif entry.get("kind") == "helm":
            key = ("helm", str(data.get("context")), str(data.get("release")), str(data.get("namespace")))
        else:
            key = ("seq", str(entry.get("seq")))
        newest[key] = entry
    file_keys: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # path -> (the step that set it, the key)
    for entry in J.live(state):
        if entry.get("kind") == "file" and entry.get("status") == "done":
            file_keys.setdefault(entry["data"]["path"], []).extend(
                (str(entry.get("step")), k) for k in entry["data"].get("keys") or [])
    for entry in newest.values():
        owners = {entry.get("step")} | {sid for sid, _ in file_keys.get((entry.get("data") or {}).get("path", ""), [])
                                         if entry.get("kind") == "file"}
        if steps is not None and not owners & set(steps):
            continue
        sid = str(entry.get("step"))
        ctx = _context_for(engine, sid, True)
        try:
            problems = _drift_of(ctx, entry, file_keys)
        except Exception as exc:  # noqa: BLE001 — a probe that fails: said, not fatal
            problems = [(sid, f"could not be checked ({type(exc).__name__}: {exc})")]
        for owner, text in problems:
            if steps is None or owner in steps:
                found.append({"step": owner, "kind": entry.get("kind"), "what": text, "reapply": REAPPLY})
    return found


def _drift_of(ctx: StepContext, entry: dict[str, Any],
              file_keys: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[tuple[str, str]]:
    """(the step that set it, what is no longer so) for one entry; a file's keys are each the step's
    that set them last."""
    sid = str(entry.get("step"))
    return [(owner or sid, text) for owner, text in _drift_items(ctx, entry, file_keys)]


def _drift_items(ctx: StepContext, entry: dict[str, Any],
                 file_keys: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[tuple[str | None, str]]:
    kind, data = entry.get("kind"), entry.get("data") or {}
    if kind == "file":
        if not data.get("drift", True):
            return []
        path, after = data["path"], data.get("after") or {}
        now = J.snapshot(ctx.host, path)
        if J._same(now, after):
            return []
        if now["type"] is None and after.get("type") is not None:
            return [(None, f"{path} was removed")]
        if data.get("block") and now["type"] == "file":
            if J.block_of(now.get("text"), data["block"]) == J.block_of(after.get("text"), data["block"]):
                return []  # edits outside gpuwizard's block are the user's
            return [(None, f"gpuwizard's block in {path} was changed or removed")]
        fmt = data.get("format")
        keys = file_keys.get(path) or []
        if fmt in ("json", "toml") and keys and now["type"] == "file":
            doc, want_doc = J.parse(fmt, now.get("text")), J.parse(fmt, after.get("text"))
            if doc is None:
                return [(None, f"{path} no longer parses as {fmt.upper()}")]
            out: list[tuple[str | None, str]] = []
            for owner, k in keys:
                if not k.get("has"):
                    continue
                want, have = J.get_key(want_doc, k["key"]), J.get_key(doc, k["key"])
                if want is J.ABSENT or have == want:
                    continue
                name = J.dotted(k["key"])
                line = f"{name} gone from {path}" if have is J.ABSENT else f"{name} in {path} is now {json.dumps(have)} (gpuwizard set {json.dumps(want)})"
                if (owner, line) not in out:
                    out.append((owner, line))
            return out
        return [(None, f"{path} was edited since gpuwizard wrote it")]
    if kind == "tree":
        return [] if ctx.host.path(data["path"]).exists() or not data.get("drift", True) else [(None, f"{data['path']} was removed")]
    if kind == "sysctl":
        value, want = J.sysctl_value(ctx.host, data["key"]), str(data.get("value_after"))
        if value is None or value == want:
            return []
        if value.isdigit() and want.isdigit() and int(value) >= int(want):
            return []  # raised further since: still enough
        return [(None, f"{data['key']} is now {value} (gpuwizard set {want})")]
    if kind == "packages":
        installed = J.installed_packages(ctx.host, data["manager"])
        gone = [p for p in data.get("added") or [] if installed is not None and p not in installed]
        return [(None, f"no longer installed: {', '.join(gone)}")] if gone else []
    if kind == "helm":
        from .steps import kube as K

        rel = J.helm_release(ctx, data)
        if rel is None:
            return [(None, f"the Helm release {data['release']} ({data['namespace']}) is gone")]
        values = K.release_values(ctx, J._context(data), data["release"], data["namespace"])
        if values is not None and values != data.get("values_after"):
            changed = [J.dotted(k["key"]) for k in J.key_diff(data.get("values_after") or {}, values)]
            return [(None, f"the values of the Helm release {data['release']} changed since gpuwizard set them: {', '.join(changed)}")]
        return []
    if kind == "kind-cluster":
        clusters = J.kind_clusters(ctx)
        return [(None, f"the Kind cluster {data['name']} is gone")] if clusters is not None and data["name"] not in clusters else []
    if kind == "label":
        exists, value = J.label_value(ctx, data)
        if exists and value != data.get("value_after"):
            what = f"{data['object']} {data['name']}"
            return [(None, f"the label {data['key']} was removed from {what}") if value is None
                    else (None, f"the label {data['key']} of {what} is now {value} (gpuwizard set {data.get('value_after')})")]
        return []
    if kind == "namespace":
        return [] if J.namespace_exists(ctx, data) else [(None, f"the namespace {data['name']} is gone")]
    return []
