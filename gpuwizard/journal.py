"""The journal: what it takes to reverse each change a run made (``gpuwizard undo``) and to tell when
what the wizard set has changed since (``doctor``'s drift).

An action says what it changes through :meth:`gpuwizard.actions.Action.journal`: a list of
:class:`Change` objects. Before the action is applied, the engine asks each for what is there now
(:meth:`Change.before`: the file's bytes, the installed packages, the release's revision, the
label's value) and saves it as a *pending* entry; after the action, :meth:`Change.after` says what
changed (None: nothing) and the entry is completed. Both are saved in the state file (its
``journal`` list), written atomically with the action's record. A pending entry — the process died
inside the action — is completed when undo reads it, against what the host shows then.

Entries are plain JSON: undo works from them alone (gpuwizard/undo.py builds the reversing actions),
whatever the plan of the step would be today. Never imports Textual or the steps at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from .engine import StepContext
    from .host import Host
    from .state import State

INLINE_MAX = 256 * 1024  # file contents kept in the journal up to this size (text); larger ones: a backup
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "<absent>"})()  # a key that is not there


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the entries in the state file ------------------------------------------------------------------
def entries(state: State) -> list[dict[str, Any]]:
    journal = state.data.setdefault("journal", [])
    assert isinstance(journal, list)
    return journal


def live(state: State, steps: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Entries not undone (of ``steps``), oldest first."""
    for entry in entries(state):
        if entry.get("undone"):
            continue
        if steps is not None and entry.get("step") not in steps:
            continue
        yield entry


def next_seq(state: State) -> int:
    journal = entries(state)
    return (max((int(e.get("seq", 0)) for e in journal), default=0) + 1) if journal else 1


class Change:
    """One kind of change an action makes. Subclasses set ``kind`` and say what is there before
    (:meth:`before`) and what changed after (:meth:`after`)."""

    kind: ClassVar[str] = ""

    def before(self, ctx: StepContext) -> dict[str, Any]:
        return {}

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        """The entry's data once the action ran; None when nothing changed (nothing to reverse)."""
        raise NotImplementedError

    def label(self) -> str:
        return self.kind


# -- files -----------------------------------------------------------------------------------------
def snapshot(host: Host, system_path: str) -> dict[str, Any]:
    """What is at a path now: kind (file, dir, link or None), mode, sha256, and the text when it is
    small UTF-8 text."""
    p = host.path(system_path)
    try:
        st = p.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return {"type": None}
    if stat.S_ISLNK(st.st_mode):
        return {"type": "link", "target": os.readlink(p)}
    if stat.S_ISDIR(st.st_mode):
        return {"type": "dir", "mode": stat.S_IMODE(st.st_mode)}
    snap: dict[str, Any] = {"type": "file", "mode": stat.S_IMODE(st.st_mode), "size": st.st_size}
    if st.st_size > INLINE_MAX:  # a toolkit runfile is gigabytes: hashed a block at a time, never held
        digest = hashlib.sha256()
        with p.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        snap["sha256"] = digest.hexdigest()
        return snap
    data = p.read_bytes()
    snap["sha256"] = sha256(data)
    if not (b"PRIVATE KEY" in data and b"-----BEGIN" in data):  # a key stays in its file
        try:
            snap["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return snap


def file_format(system_path: str, text: str | None) -> str:
    """json, toml or text: how undo and drift can read a file key by key."""
    if text is None:
        return "binary"
    name = PurePosixPath(system_path).name
    if name.endswith(".json"):
        return "json"
    if name.endswith(".toml"):
        return "toml"
    return "text"


def parse(fmt: str, text: str | None) -> dict[str, Any] | None:
    """A JSON or TOML file's object; None when it cannot be read so (or is absent)."""
    if text is None:
        return None
    try:
        doc = json.loads(text or "{}") if fmt == "json" else tomllib.loads(text) if fmt == "toml" else None
    except (ValueError, tomllib.TOMLDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def key_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The leaf keys that differ between two objects: [{"key": [path...], "had": bool, "before": v,
    "has": bool, "after": v}] (``had``/``has``: whether the key was / is there), descending into
    objects both sides have (or one side adds). Plain JSON, as the journal keeps it."""
    old, new = dict(old or {}), dict(new or {})
    out: list[dict[str, Any]] = []
    for key in list(old) + [k for k in new if k not in old]:
        path = (*prefix, key)
        a, b = old.get(key, ABSENT), new.get(key, ABSENT)
        if a == b:
            continue
        a_obj, b_obj = isinstance(a, dict), isinstance(b, dict)
        if (a_obj or a is ABSENT) and (b_obj or b is ABSENT) and (a_obj or b_obj):
            out += key_diff(a if a_obj else {}, b if b_obj else {}, path)
            continue
        out.append({"key": list(path), "had": a is not ABSENT, "before": None if a is ABSENT else a,
                    "has": b is not ABSENT, "after": None if b is ABSENT else b})
    return out


def get_key(doc: Mapping[str, Any] | None, path: list[str]) -> Any:
    node: Any = doc if doc is not None else {}
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node


def dotted(path: list[str]) -> str:
    return ".".join(path)


@dataclass
class FileChange(Change):
    """A file (or a directory tree) an action creates or changes. ``then``: commands that make a
    put-back file take effect (``systemctl restart docker`` after daemon.json); ``drift``: whether an
    edit made since is drift (not for a download cache)."""

    path: str
    then: tuple[tuple[str, ...], ...] = ()
    drift: bool = True
    block: tuple[str, str] | None = None  # the wizard owns only the lines between these markers (~/.bashrc)
    kind: ClassVar[str] = "file"

    def label(self) -> str:
        return self.path

    def before(self, ctx: StepContext) -> dict[str, Any]:
        host = ctx.host
        snap = snapshot(host, self.path)
        data: dict[str, Any] = {"path": self.path, "before": snap}
        if snap["type"] == "file" and "text" not in snap and self.drift:  # large or binary: its bytes kept in a
            data["backup"] = host.backup(self.path)  # backup (not a download cache's partial file: it resumes)
        missing: list[str] = []
        parent = PurePosixPath(self.path).parent
        while str(parent) != "/" and not host.path(str(parent)).exists():
            missing.append(str(parent))
            parent = parent.parent
        data["created_dirs"] = missing
        return data

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        old = before["before"]
        new = snapshot(ctx.host, self.path)
        if _same(old, new):
            return None
        data = dict(before)
        fmt = file_format(self.path, new.get("text") if new["type"] == "file" else old.get("text"))
        if "text" in new and fmt not in ("json", "toml") and not self.block:
            new = {k: v for k, v in new.items() if k != "text"}  # its sha256 tells whether it is as written
        data["after"] = new
        data["created_dirs"] = [d for d in before.get("created_dirs", []) if ctx.host.path(d).is_dir()]
        data["format"] = fmt
        if fmt in ("json", "toml") and old["type"] in ("file", None) and new["type"] == "file":
            data["keys"] = key_diff(parse(fmt, old.get("text")) or {}, parse(fmt, new.get("text")) or {})
        if self.then:
            data["then"] = [list(argv) for argv in self.then]
        if self.block:
            data["block"] = list(self.block)
        data["drift"] = self.drift
        return data


def block_of(text: str | None, marks: list[str] | tuple[str, ...]) -> str | None:
    """The marked block of a text (its BEGIN line to its END line, newline included), or None."""
    if not text:
        return None
    begin, end = marks
    start, stop = text.find(begin), text.find(end)
    if start == -1 or stop < start:
        return None
    stop += len(end)
    if text[stop:stop + 1] == "\n":
        stop += 1
    return text[start:stop]


def replace_block(text: str, marks: list[str] | tuple[str, ...], block: str | None) -> str:
    """``text`` with its marked block replaced by ``block`` (None: removed)."""
    current = block_of(text, marks)
    if current is None:
        return text if block is None else text + block
    return text.replace(current, block or "", 1)


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("type") != b.get("type"):
        return False
    if a.get("type") == "file":
        return bool(a.get("sha256") == b.get("sha256") and a.get("mode") == b.get("mode"))
    if a.get("type") == "link":
        return bool(a.get("target") == b.get("target"))
    return True  # both absent, or both directories (a tree's change is its files': TreeChange)


@dataclass
class TreeChange(Change):
    """A directory tree an action creates (a venv, a download directory, an unpacked toolkit): undo
    removes it, from the highest directory that was not there before; a tree that was there stays."""

    path: str
    drift: bool = True
    kind: ClassVar[str] = "tree"

    def label(self) -> str:
        return self.path

    def before(self, ctx: StepContext) -> dict[str, Any]:
        top: str | None = None
        p = PurePosixPath(self.path)
        while str(p) != "/" and not ctx.host.path(str(p)).exists():
            top = str(p)
            p = p.parent
        return {"path": self.path, "existed": top is None, "top": top}

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        top = before.get("top")
        if before["existed"] or not top or not ctx.host.path(top).exists():
            return None
        return {"path": self.path, "top": top, "created": True, "drift": self.drift}


@dataclass
class Sysctl(Change):
    """A kernel parameter ``sysctl -w`` sets (undo: its previous value)."""

    key: str
    kind: ClassVar[str] = "sysctl"

    def label(self) -> str:
        return self.key

    def before(self, ctx: StepContext) -> dict[str, Any]:
        return {"key": self.key, "value_before": sysctl_value(ctx.host, self.key)}

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        now = sysctl_value(ctx.host, self.key)
        if now == before["value_before"] or before["value_before"] is None:
            return None
        return {**before, "value_after": now}


def sysctl_value(host: Host, key: str) -> str | None:
    text = host.read_text("/proc/sys/" + key.replace(".", "/"))
    return " ".join(text.split()) if text is not None else None


@dataclass
class Module(Change):
    """A kernel module ``modprobe`` loads (undo: ``modprobe -r``, once nothing uses it)."""

    name: str
    unload: tuple[str, ...]  # the modules to remove, users first (nvidia_uvm before nvidia)
    kind: ClassVar[str] = "module"

    def label(self) -> str:
        return f"module {self.name}"

    def before(self, ctx: StepContext) -> dict[str, Any]:
        return {"name": self.name, "unload": list(self.unload), "loaded_before": module_loaded(ctx.host, self.name)}

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        if before["loaded_before"] or not module_loaded(ctx.host, self.name):
            return None
        return {**before, "loaded": True}


def module_loaded(host: Host, name: str) -> bool:
    return host.path(f"/sys/module/{name}").is_dir()


# -- packages --------------------------------------------------------------------------------------
# dpkg-query(1): -W lists the packages dpkg knows; ${db:Status-Status} is "installed" for an installed
# one ("config-files" once removed but not purged). rpm(8): -qa lists every installed package.
DPKG_LIST = ["dpkg-query", "-W", "-f=${Package}\\t${db:Status-Status}\\n"]
RPM_LIST = ["rpm", "-qa", "--qf", "%{NAME}\\n"]


def installed_packages(host: Host, manager: str) -> set[str] | None:
    """The names of the installed packages (apt: dpkg's, dnf: rpm's); None when they cannot be read."""
    result = host.runner.probe(DPKG_LIST if manager == "apt" else RPM_LIST, timeout=60)
    if result is None or not result.ok:
        return None
    names: set[str] = set()
    for line in result.stdout.splitlines():
        name, _, status = line.partition("\t")
        if name and (manager != "apt" or status.strip() == "installed"):
            names.add(name.strip().split(":")[0])
    return names


def package_manager(argv: list[str]) -> str | None:
    """The package manager a command installs packages with (apt: apt-get/apt install, dpkg -i,
    ubuntu-drivers install; dnf: dnf/yum install, dnf module install; options anywhere): its journal
    then records the packages it added."""
    head = argv[0] if argv else ""
    words = [a for a in argv[1:] if not a.startswith("-")]
    if (head in ("apt-get", "apt") and words[:1] == ["install"]) or (head == "dpkg" and ("-i" in argv or "--install" in argv)) \
            or (head == "ubuntu-drivers" and words[:1] == ["install"]):
        return "apt"
    if head in ("dnf", "yum") and (words[:1] == ["install"] or words[:2] == ["module", "install"]):
        return "dnf"
    return None


def command_changes(argv: list[str], declared: tuple[Change, ...]) -> list[Change]:
    """What a command changes: the packages it installs (seen from its argv), then what its step declared."""
    manager = package_manager(argv)
    return ([Packages(manager)] if manager else []) + list(declared)


@dataclass
class Packages(Change):
    """Packages an install adds (its dependencies too): the difference of the installed set."""

    manager: str  # apt | dnf
    kind: ClassVar[str] = "packages"

    def label(self) -> str:
        return f"{self.manager} packages"

    def before(self, ctx: StepContext) -> dict[str, Any]:
        names = installed_packages(ctx.host, self.manager)
        return {"manager": self.manager, "installed": sorted(names) if names is not None else None}

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        now = installed_packages(ctx.host, self.manager)
        if now is None or before.get("installed") is None:
            return None
        added = sorted(now - set(before["installed"]))
        return {"manager": self.manager, "added": added} if added else None


# -- the cluster -----------------------------------------------------------------------------------
def _context(data: Mapping[str, Any]) -> Any:
    from .steps.kube import Context

    return Context(str(data["context"]), data.get("kubeconfig"))


def _ctx_data(context: str) -> dict[str, Any]:
    return {"context": str(context), "kubeconfig": getattr(context, "kubeconfig", None)}


def helm_release(host_ctx: StepContext, data: Mapping[str, Any]) -> dict[str, Any] | None:
    from .steps import kube as K

    context = _context(data)
    rel = next((r for r in K.releases(host_ctx, context)
                if r.get("name") == data["release"] and r.get("namespace") == data["namespace"]), None)
    return rel


@dataclass
class HelmRelease(Change):
    """A Helm release an install or upgrade changes: created (undo: uninstall) or upgraded from a
    revision (undo: roll back to it)."""

    context: str
    release: str
    namespace: str
    kind: ClassVar[str] = "helm"

    def label(self) -> str:
        return f"Helm release {self.release} ({self.namespace})"

    def _base(self) -> dict[str, Any]:
        return {**_ctx_data(self.context), "release": self.release, "namespace": self.namespace}

    def before(self, ctx: StepContext) -> dict[str, Any]:
        from .steps import kube as K

        data = self._base()
        rel = helm_release(ctx, data)
        data["existed"] = rel is not None
        if rel is not None:
            data["revision_before"] = int(rel.get("revision") or 0)
            data["chart_before"] = rel.get("chart")
            data["values_before"] = K.release_values(ctx, self.context, self.release, self.namespace)
        return data

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        from .steps import kube as K

        rel = helm_release(ctx, before)
        if rel is None:
            return None
        revision = int(rel.get("revision") or 0)
        if before["existed"] and revision == before.get("revision_before"):
            return None
        return {**before, "revision_after": revision, "chart_after": rel.get("chart"),
                "values_after": K.release_values(ctx, self.context, self.release, self.namespace)}


def helm_repos(host: Host) -> dict[str, str] | None:
    result = host.runner.probe(["helm", "repo", "list", "-o", "json"])
    if result is None or not result.ok:
        return None
    try:
        doc = json.loads(result.stdout or "[]")
    except ValueError:
        return None
    return {str(r.get("name")): str(r.get("url")) for r in doc if isinstance(r, dict)} if isinstance(doc, list) else None


@dataclass
class HelmRepo(Change):
    """A Helm repository alias ``helm repo add`` adds (undo: ``helm repo remove``, or the URL it had)."""

    name: str
    kind: ClassVar[str] = "helm-repo"

    def label(self) -> str:
        return f"Helm repository {self.name}"

    def before(self, ctx: StepContext) -> dict[str, Any]:
        return {"name": self.name, "url_before": (helm_repos(ctx.host) or {}).get(self.name)}

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        now = (helm_repos(ctx.host) or {}).get(self.name)
        if now is None or now == before["url_before"]:
            return None
        return {**before, "url_after": now}


def kind_clusters(ctx: StepContext) -> list[str] | None:
    """The Kind clusters there are (the kind step's own probe: ``kind get clusters``)."""
    from .steps.kind import clusters

    return clusters(ctx)


@dataclass
class KindCluster(Change):
    """A Kind cluster ``kind create cluster`` makes (undo: ``kind delete cluster``); one that was
    there already is never deleted."""

    name: str
    kind: ClassVar[str] = "kind-cluster"

    def label(self) -> str:
        return f"Kind cluster {self.name}"

    def before(self, ctx: StepContext) -> dict[str, Any]:
        return {"name": self.name, "existed": self.name in (kind_clusters(ctx) or [])}

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        if before["existed"] or self.name not in (kind_clusters(ctx) or []):
            return None
        return {"name": self.name, "created": True}


def label_value(ctx: StepContext, data: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(the object exists, the label's value or None)."""
    from .steps import kube as K

    doc = K.probe_json(ctx, K.kubectl(_context(data), "get", data["object"], data["name"], "-o", "json"))
    if not isinstance(doc, dict):
        return False, None
    labels = (doc.get("metadata") or {}).get("labels") or {}
    value = labels.get(data["key"])
    return True, None if value is None else str(value)


@dataclass
class Label(Change):
    """A label ``kubectl label`` sets on a node or a namespace (undo: its previous value, or removed)."""

    context: str
    object: str  # node | namespace
    name: str
    key: str
    kind: ClassVar[str] = "label"

    def label(self) -> str:
        return f"label {self.key} of {self.object} {self.name}"

    def before(self, ctx: StepContext) -> dict[str, Any]:
        data = {**_ctx_data(self.context), "object": self.object, "name": self.name, "key": self.key}
        data["value_before"] = label_value(ctx, data)[1]
        return data

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        exists, value = label_value(ctx, before)
        if not exists or value == before["value_before"]:
            return None
        return {**before, "value_after": value}


def namespace_exists(ctx: StepContext, data: Mapping[str, Any]) -> bool:
    from .steps import kube as K

    result = ctx.host.runner.probe(K.kubectl(_context(data), "get", "namespace", data["name"], "-o", "json"))
    return bool(result and result.ok)


@dataclass
class Namespace(Change):
    """A namespace ``kubectl create namespace`` makes (undo: deleted; one that was there stays)."""

    context: str
    name: str
    kind: ClassVar[str] = "namespace"

    def label(self) -> str:
        return f"namespace {self.name}"

    def before(self, ctx: StepContext) -> dict[str, Any]:
        data = {**_ctx_data(self.context), "name": self.name}
        data["existed"] = namespace_exists(ctx, data)
        return data

    def after(self, ctx: StepContext, before: dict[str, Any]) -> dict[str, Any] | None:
        if before["existed"] or not namespace_exists(ctx, before):
            return None
        return {**before, "created": True}


# -- the engine's side --------------------------------------------------------------------------------
@dataclass
class Pending:
    change: Change
    entry: dict[str, Any]


def begin(ctx: StepContext, changes: list[Change]) -> list[Pending]:
    """Before an action is applied: a pending entry per change, with what is there now (the caller
    saves the state before applying)."""
    state = ctx.state
    pending: list[Pending] = []
    for change in changes:
        # the same action killed half-way and applied again (a resume): its first entry keeps what was
        # there before either attempt
        same = next((e for e in entries(state) if e.get("status") == "pending" and not e.get("undone")
                     and e.get("step") == ctx.step_id and e.get("action") == ctx.current_action
                     and e.get("kind") == change.kind and e.get("target") == change.label()), None)
        if same is not None:
            pending.append(Pending(change, same))
            continue
        entry = {"seq": next_seq(state), "step": ctx.step_id, "action": ctx.current_action, "run": ctx.call.run_id,
                 "kind": change.kind, "target": change.label(), "at": time.time(), "status": "pending",
                 "data": change.before(ctx)}
        entries(state).append(entry)
        pending.append(Pending(change, entry))
    return pending


def finish(ctx: StepContext, pending: list[Pending]) -> None:
    """After the action (applied or failed half-way): each entry completed with what changed, or
    dropped when nothing did."""
    journal = entries(ctx.state)
    for item in pending:
        try:
            data = item.change.after(ctx, item.entry["data"])
        except Exception:  # noqa: BLE001 — a probe that fails now: undo completes the entry later
            continue
        if data is None:
            if item.entry in journal:
                journal.remove(item.entry)
            continue
        item.entry["data"] = data
        item.entry["status"] = "done"


def complete_pending(ctx: StepContext, entry: dict[str, Any]) -> bool:
    """A pending entry (the process died inside its action): completed against the host now. False
    when nothing changed (the entry is then dropped by the caller)."""
    change = change_of(entry)
    if change is None:
        return False
    data = change.after(ctx, entry["data"])
    if data is None:
        return False
    entry["data"] = data
    entry["status"] = "done"
    return True


def change_of(entry: Mapping[str, Any]) -> Change | None:
    """The Change object an entry was made by (to complete a pending one)."""
    data = entry.get("data") or {}
    kind = entry.get("kind")
    if kind == "file":
        return FileChange(data["path"])
    if kind == "tree":
        return TreeChange(data["path"])
    if kind == "packages":
        return Packages(data["manager"])
    if kind == "helm":
        return HelmRelease(_context(data), data["release"], data["namespace"])
    if kind == "kind-cluster":
        return KindCluster(data["name"])
    if kind == "label":
        return Label(_context(data), data["object"], data["name"], data["key"])
    if kind == "namespace":
        return Namespace(_context(data), data["name"])
    if kind == "sysctl":
        return Sysctl(data["key"])
    if kind == "module":
        return Module(data["name"], tuple(data.get("unload") or [data["name"]]))
    if kind == "helm-repo":
        return HelmRepo(data["name"])
    return None
