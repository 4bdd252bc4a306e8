"""What the kind, operator and hami steps share: kubectl/helm command lines for one kube context,
read-only cluster probes, the kind/kubectl/helm release installs, Helm values files the wizard
writes (with a comment on every non-default value), the documented chart keys per chart version,
and actions whose "already done" test is a probe of the cluster.

Every command is an argv list through ``ctx.host.runner``; every file is a system path through the
host seam; rendered files live under ``/var/lib/gpuwizard/``.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .. import actions as A
from .. import helm_values as HV
from .. import versions as V
from ..download import sha256_of
from ..engine import StepContext
from ..errors import CommandFailed, PlanRefused, StepFailed
from ..helm_values import escape_key as escape_key
from ..helm_values import flatten as flatten
from ..helm_values import split_key as split_key
from ..helm_values import unflatten as unflatten
from ..host import join_argv
from ..journal import Change, FileChange, HelmRepo, command_changes
from .common import Check, MakeDir

WORKDIR = "/var/lib/gpuwizard"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
POLL = 1.0  # seconds between cluster polls (a simulated cluster answers at once)

# Pinned tool releases, installed from their official release downloads when missing. Sources:
# kind v0.33.0 is the newest release (github.com/kubernetes-sigs/kind/releases/tag/v0.33.0, as quoted in
# polarsquad/krops PR #112, 2026-08-31; kubernetes-sigs/kind PR #4248). kubectl v1.36.5 is the newest 1.36
# patch (dl.k8s.io/release/stable-1.36.txt on 2026-09-28), the line of the Kind node image (steps/kind.py):
# kubectl supports one minor either side of the server. Helm v4.3.0 (github.com/helm/helm/releases/tag/v4.3.0,
# released 2026-09-09, as recorded in devth/helm-docker issue #294).
TOOL_VERSIONS = {"kind": "v0.33.0", "kubectl": "v1.36.5", "helm": "v4.3.0"}
TOOL_URLS = {
    "kind": "https://github.com/kubernetes-sigs/kind/releases/download/{v}/kind-linux-{arch}",
    "kubectl": "https://dl.k8s.io/release/{v}/bin/linux/{arch}/kubectl",
    "helm": "https://get.helm.sh/helm-{v}-linux-{arch}.tar.gz",
}
# The checksum each project publishes next to the file (kind: <file>.sha256sum, kubectl:
# <file>.sha256 (bare hash), helm: <file>.sha256sum); the install docs of all three verify it.
TOOL_SUMS = {"kind": ".sha256sum", "kubectl": ".sha256", "helm": ".sha256sum"}
OFFLINE_RC = {5, 6, 7, 28, 35}  # curl: proxy / host not resolved / connect refused / timeout / TLS


# ------------------------------------------------------------------------------------------------
# templates and charts


def template(template_name: str, **values: Any) -> str:
    return string.Template((ASSETS / "templates" / template_name).read_text(encoding="utf-8")).substitute(values)


@cache
def chart_catalogue(chart: str) -> dict[str, Any]:
    """The chart's repository and pinned version (gpuwizard/assets/charts/<chart>.yaml); its keys per
    release are the generated files under gpuwizard/assets/charts/keys/ (see ``chart_keys``)."""
    catalogue: dict[str, Any] = yaml.safe_load((ASSETS / "charts" / f"{chart}.yaml").read_text(encoding="utf-8"))
    return catalogue


KEYS_DIR = ASSETS / "charts" / "keys"
# Maps whose entries are the user's own (node selectors, labels, ...): any key below them is valid.
FREE_FORM = ("selector", "labels", "annotations", "resources", "affinity", "securitycontext", "env")


@cache
def chart_keys(chart: str) -> dict[str, dict[str, Any]]:
    """version -> the generated key data of that release (tools/chart_keys.py, from the real values.yaml)."""
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(KEYS_DIR.glob(f"{chart}-*.json")):
        doc = json.loads(f.read_text(encoding="utf-8"))
        if doc.get("chart") == chart:
            out[str(doc["version"])] = doc
    return out


def known_versions(chart: str) -> list[str]:
    """The chart releases gpuwizard has key data for, oldest first."""
    return sorted(chart_keys(chart), key=V.key)


def mirror_chart_images(ctx: StepContext, ex: Explained, cv: Any) -> None:
    """The chart's own images from the session's registry mirrors (``mirrors.registries``), read off the
    release's real defaults: a ``….repository`` whose default starts with a mirrored registry
    (gpu-operator: ``operator.repository: nvcr.io/nvidia``) and a ``….registry`` that is one (HAMi:
    ``devicePlugin.image.registry: docker.io``) get the mirror's. Keys already set are left alone."""
    registries = ctx.net.mirrors.registries
    if not registries:
        return
    for key, default in sorted(dict.items(cv.defaults)):
        if not isinstance(default, str) or not default or key in ex.notes:
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "registry" and default in registries:
            ex.set(key, registries[default], f"mirrors.registries: {default} is mirrored at {registries[default]}")
        elif leaf == "repository":
            first, _, rest = default.partition("/")
            if rest and first in registries:
                ex.set(key, f"{registries[first]}/{rest}",
                       f"mirrors.registries: {first} is mirrored at {registries[first]} (chart default {default})")


class Defaults(dict[str, Any]):
    """A chart release's defaults by dotted key: ``d.get("devicePlugin.nvidiaNodeSelector")`` is the
    map ``{"gpu": "on"}``, ``d["cdi.enabled"]`` a leaf. Built from the flat keys; maps are resolved
    on lookup."""

    def __init__(self, flat: dict[str, Any]) -> None:
        super().__init__({".".join(split_key(k)): v for k, v in flat.items()})
        self.tree = unflatten(flat)

    def _resolve(self, dotted: str) -> tuple[bool, Any]:
        if dict.__contains__(self, dotted):
            return True, dict.__getitem__(self, dotted)
        node: Any = self.tree
        parts = dotted.split(".")
        i = 0
        while i < len(parts):
            if not isinstance(node, dict):
                return False, None
            for j in range(len(parts), i, -1):  # the longest run of parts that is one key (keys with dots)
                name = ".".join(parts[i:j])
                if name in node:
                    node, i = node[name], j
                    break
            else:
                return False, None
        return True, node

    def __getitem__(self, key: str) -> Any:
        found, value = self._resolve(key)
        if not found:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        found, value = self._resolve(key)
        return value if found else default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._resolve(key)[0]


@dataclass(frozen=True)
class ChartVersion:
    chart: str
    version: str
    documented: str  # the release whose key data is used (the version itself, or its minor's nearest patch)
    keys: frozenset[str]  # dotted leaf keys of that release's values.yaml
    defaults: dict[str, Any]  # a ``Defaults``: dotted key -> default (leaves and maps)
    deprecated: dict[str, str] = field(default_factory=dict)  # dotted key -> what the CRD says
    checked: bool = True  # False: no key data for this version, going ahead with the nearest release's

    @property
    def exact(self) -> bool:
        return self.documented == self.version

    @property
    def tree(self) -> dict[str, Any]:
        tree = getattr(self.defaults, "tree", None)
        return tree if isinstance(tree, dict) else unflatten(self.defaults)

    def resolve(self, dotted: str) -> tuple[bool, int]:
        """Whether ``dotted`` (a user key, dots joining its parts) is a key of this release, or lies in
        one of its free-form maps; and how many parts of it were found."""
        return _resolve_key(self.tree, dotted.split("."))

    def documents(self, dotted: str) -> bool:
        return self.resolve(dotted)[0]


def _resolve_key(tree: dict[str, Any], parts: list[str]) -> tuple[bool, int]:
    node: Any = tree
    name = ""
    i = 0
    while i < len(parts):
        if not isinstance(node, dict):
            return node is None, i  # below a null default a map may go; below a scalar or list it is ignored
        for j in range(len(parts), i, -1):  # the longest run of parts that is one key (keys with dots)
            cand = ".".join(parts[i:j])
            if cand in node:
                name, node, i = cand, node[cand], j
                break
        else:
            return node == {} or name.lower().endswith(FREE_FORM), i
    return True, i


def _paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.append(key)
        if isinstance(v, dict):
            out += _paths(v, key)
    return out


def _version_data(chart: str, pick: str, version: str, checked: bool) -> ChartVersion:
    doc = chart_keys(chart)[pick]
    flat = doc.get("keys") or {}
    return ChartVersion(chart, version, pick, frozenset(".".join(split_key(k)) for k in flat), Defaults(flat),
                        dict(doc.get("deprecated") or {}), checked)


def chart_version(chart: str, version: str, unchecked: bool = False) -> ChartVersion:
    """The key data of ``chart`` at ``version``: that release's own, else (a patch release gpuwizard
    has no data for) the nearest release of the same minor. Any other version is refused, naming the
    releases known, unless ``unchecked``: then the nearest older release's keys, marked unchecked."""
    known = known_versions(chart)
    try:
        want = V.parse(version)
    except ValueError as exc:
        raise StepFailed(f"{chart} chart version: {exc}") from None
    by_key = {V.key(v): v for v in known}
    if V.key(version) in by_key:
        return _version_data(chart, by_key[V.key(version)], version, True)
    minor = V.major_minor(version)
    same = [v for v in known if V.major_minor(v) == minor]
    if same:
        older = [v for v in same if V.key(v) <= want]
        return _version_data(chart, max(older, key=V.key) if older else min(same, key=V.key), version, True)
    if not unchecked:
        raise StepFailed(f"{chart} chart {version}: gpuwizard has no key data for this release, so it cannot check "
                         f"the values it sends (it knows {', '.join(known)}); choose one of those")
    older = [v for v in known if V.key(v) <= want]
    return _version_data(chart, max(older, key=V.key) if older else known[0], version, False)


@dataclass(frozen=True)
class KeyFinding:
    key: str
    refuse: bool  # True: the plan must refuse this value (it does nothing on this release)
    message: str
    nearest: str | None = None


def dead_keys(chart: str, version: str) -> dict[str, str]:
    """Keys users still set that do nothing on this release: keys of other known releases that this
    one lacks, and fields its CRD marks deprecated; dotted key -> why."""
    cv = chart_version(chart, version, unchecked=True)
    out: dict[str, str] = {}
    for other in known_versions(chart):
        if other == cv.documented:
            continue
        for key in chart_version(chart, other).keys:
            if key not in out and not cv.documents(key):
                out[key] = _where_else(chart, key, cv.documented)
    for key, text in cv.deprecated.items():
        out[".".join(split_key(key))] = f"deprecated in {chart} {cv.documented}: {text}"
    return out


def _where_else(chart: str, dotted: str, version: str) -> str:
    have = [v for v in known_versions(chart) if chart_version(chart, v).documents(dotted)]
    if not have:
        return ""
    older = [v for v in have if V.key(v) < V.key(version)]
    if older and len(older) == len(have):
        return f"a key of {chart} up to {max(older, key=V.key)}, gone in {version}"
    if not older:
        return f"a key of {chart} from {min(have, key=V.key)} on, not yet in {version}"
    return f"a key of {chart} {', '.join(have)}, not of {version}"


def check_values(cv: ChartVersion, values: dict[str, Any], section: str = "values") -> list[KeyFinding]:
    """Each user value checked against the release's real keys (``cv``): a key that other releases of
    the chart have and this one lacks, or a near miss of a real key, is refused (Helm would accept it
    silently and the chart ignore it); a deprecated key, or an unknown one nothing resembles, is a
    warning. Nothing is said about keys the release has."""
    out: list[KeyFinding] = []
    deprecated = {".".join(split_key(k)): t for k, t in cv.deprecated.items()}
    names = _paths(cv.tree)
    for key in flatten(values):
        ok, found = cv.resolve(key)
        parts = key.split(".")
        dep = next((d for d in deprecated if key == d or key.startswith(d + ".")), None)
        where = f"{section}.{key}"
        release = f"{cv.chart} {cv.documented}" + ("" if cv.checked else f" (nearest known to {cv.version})")
        if dep is not None:
            out.append(KeyFinding(key, False, f"{where}: {dep} is deprecated in {release} and does nothing "
                                              f"({deprecated[dep]})"))
            continue
        if ok:
            continue
        missing = ".".join(parts[:found + 1])
        close = difflib.get_close_matches(missing, names, n=1, cutoff=0.6)
        nearest = close[0] if close else None
        elsewhere = _where_else(cv.chart, missing, cv.documented)
        hint = f"; did you mean {nearest}?" if nearest else ""
        if elsewhere:
            out.append(KeyFinding(key, cv.checked, f"{where}: {missing} is not a key of {release} ({elsewhere}); "
                                                   f"the chart would ignore it{hint}", nearest))
        elif nearest and difflib.SequenceMatcher(None, missing.lower(), nearest.lower()).ratio() >= 0.8:
            out.append(KeyFinding(key, cv.checked, f"{where}: {missing} is not a key of {release}{hint}", nearest))
        else:
            out.append(KeyFinding(key, False, f"{where}: {missing} is not a key of {release}'s values.yaml "
                                              f"(Helm accepts it; only a template that reads it gives it effect)"
                                              + hint, nearest))
    return out


def refuse_values(cv: ChartVersion, values: dict[str, Any], section: str = "values") -> list[str]:
    """Warnings for ``values`` (see ``check_values``); raises PlanRefused (exit 2, nothing run) naming
    every refused key: answers that ask the chart for what it would ignore are bad input."""
    findings = check_values(cv, values, section)
    refused = [f.message for f in findings if f.refuse]
    if refused:
        raise PlanRefused("values the chart would ignore:\n    " + "\n    ".join(refused))
    return [f.message for f in findings]


def pinned(chart: str) -> str:
    return str(chart_catalogue(chart)["pinned"])


def repo(chart: str) -> tuple[str, str]:
    r = chart_catalogue(chart)["repo"]
    return r["name"], r["url"]


# ------------------------------------------------------------------------------------------------
# values files


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def render_values(tree: dict[str, Any], notes: dict[str, str], header: list[str]) -> str:
    """YAML (block maps, JSON-syntax scalars and flow collections) with ``# why`` before each key."""
    lines = [f"# {h}" if h else "#" for h in header]

    def key_text(k: str) -> str:
        return k if all(c.isalnum() or c in "-_./" for c in k) else json.dumps(k)

    def walk(node: dict[str, Any], prefix: str, indent: int) -> None:
        for k, v in node.items():
            dotted = f"{prefix}.{k}" if prefix else k
            pad = " " * indent
            for note in (notes.get(dotted) or "").splitlines():
                lines.append(f"{pad}# {note}")
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{key_text(k)}:")
                walk(v, dotted, indent + 2)
            else:
                lines.append(f"{pad}{key_text(k)}: {json.dumps(v)}")

    walk(tree, "", 0)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# command lines and probes


def hp(ctx: StepContext, system_path: str) -> str:
    """A system path as a command argument: taken under --root, like every path the wizard touches."""
    return str(ctx.host.path(system_path))


class Context(str):
    """A kube context's name, and the kubeconfig file that holds it (``kind.kubeconfig``; None: the
    tools' default, ``$KUBECONFIG`` or ``~/.kube/config``). Every kubectl and helm command line for
    the context names the file."""

    kubeconfig: str | None

    def __new__(cls, name: str, kubeconfig: str | None = None) -> Context:
        obj = super().__new__(cls, name)
        obj.kubeconfig = kubeconfig
        return obj


def _kubeconfig(context: str) -> list[str]:
    path = getattr(context, "kubeconfig", None)
    return ["--kubeconfig", path] if path else []


def kubectl(context: str, *args: str) -> list[str]:
    return ["kubectl", *_kubeconfig(context), "--context", context, *args]


def helm(context: str, *args: str) -> list[str]:
    return ["helm", *_kubeconfig(context), "--kube-context", context, *args]


def probe_json(ctx: StepContext, argv: list[str], timeout: float = 20.0) -> Any:
    """Parsed JSON of a read-only probe; None when the tool is missing, fails, or prints no JSON."""
    result = ctx.host.runner.probe(argv, timeout=timeout)
    if result is None or not result.ok:
        return None
    try:
        return json.loads(result.stdout or "null")
    except ValueError:
        return None


def nodes(ctx: StepContext, context: str) -> list[dict[str, Any]] | None:
    doc = probe_json(ctx, kubectl(context, "get", "nodes", "-o", "json"))
    return None if doc is None else list(doc.get("items") or [])


def node_boots(ctx: StepContext, context: str, names: list[str] | None = None) -> dict[str, str]:
    """{"node NAME": its boot id} (status.nodeInfo.bootID, which the kubelet reports anew after each
    boot) of the nodes named, else of every node; empty when the cluster does not answer."""
    out = {}
    for n in nodes(ctx, context) or []:
        name = str(n.get("metadata", {}).get("name", ""))
        boot = n.get("status", {}).get("nodeInfo", {}).get("bootID")
        if boot and (names is None or name in names):
            out[f"node {name}"] = str(boot)
    return out


def node_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", []))


def pods(ctx: StepContext, context: str, namespace: str) -> list[dict[str, Any]] | None:
    doc = probe_json(ctx, kubectl(context, "get", "pods", "-n", namespace, "-o", "json"))
    return None if doc is None else list(doc.get("items") or [])


def pod_problem(pod: dict[str, Any]) -> str | None:
    """None when a pod is fine (Running and ready, or Succeeded); else a one-line reason."""
    status = pod.get("status", {})
    phase = status.get("phase")
    if phase == "Succeeded":
        return None
    waiting = []
    restarts = 0
    for cs in status.get("containerStatuses") or []:
        restarts = max(restarts, int(cs.get("restartCount") or 0))
        w = (cs.get("state") or {}).get("waiting")
        if w:
            waiting.append(f"{w.get('reason')}" + (f": {w.get('message')}" if w.get("message") else ""))
    if phase == "Running" and all(cs.get("ready") for cs in status.get("containerStatuses") or []):
        return None
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("message"):
            waiting.append(cond["message"])
    why = "; ".join(waiting) or phase or "not ready"
    return f"{why} (restarts: {restarts})" if restarts else why


def definitive(problem: str) -> bool:
    """A pod state that waiting will not fix: a crash loop that keeps restarting, an image that
    does not exist, an invalid image name."""
    p = problem.lower()
    return ("crashloopbackoff" in p and "restarts: " in p and int(p.rsplit("restarts: ", 1)[1].rstrip(")") or 0) >= 5) \
        or "manifest unknown" in p or "not found" in p and "image" in p or "invalidimagename" in p \
        or "unauthorized" in p or "no such host" in p  # a registry whose name does not resolve (offline)


def pod_events(ctx: StepContext, context: str, namespace: str, pod: str) -> list[dict[str, Any]] | None:
    """The events of one pod (``kubectl get events --field-selector involvedObject.name=POD -o json``),
    oldest first; None when the cluster does not answer."""
    doc = probe_json(ctx, kubectl(context, "get", "events", "-n", namespace, "--field-selector",
                                  f"involvedObject.name={pod}", "-o", "json"))
    if doc is None:
        return None
    items = [e for e in doc.get("items") or [] if isinstance(e, dict)]
    return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def event_lines(items: list[dict[str, Any]], limit: int = 3) -> list[str]:
    """What the events say is wrong: the Warning events ("Failed: Failed to pull image ...: i/o
    timeout"), newest last, each once; the generic "Error: ErrImagePull" repeats of a detailed
    message are left out."""
    seen: dict[str, int] = {}
    for e in items:
        if e.get("type") != "Warning":
            continue
        message = " ".join(str(e.get("message") or "").split())
        if not message or (message.startswith("Error: ") and len(message.split()) == 2 and len(seen)):
            continue
        line = f"{e.get('reason') or 'Warning'}: {message}"
        seen[line] = seen.pop(line, 0) + int(e.get("count") or 1)
    lines = [f"{line} (×{n})" if n > 1 else line for line, n in seen.items()]
    return lines[-limit:]


def explain_pod(ctx: StepContext, context: str, namespace: str, pod: dict[str, Any], problem: str) -> str:
    """A failing pod in the cluster's words: its state, then what its events say (image pull errors
    with the registry's answer, scheduling failures, back-offs)."""
    name = pod.get("metadata", {}).get("name", "?")
    lines = event_lines(pod_events(ctx, context, namespace, name) or [])
    return f"{name}: {problem}" + ("".join(f"\n      event {line}" for line in lines))


def daemonsets(ctx: StepContext, context: str, namespace: str) -> list[dict[str, Any]] | None:
    doc = probe_json(ctx, kubectl(context, "get", "daemonsets", "-n", namespace, "-o", "json"))
    return None if doc is None else [d for d in doc.get("items") or [] if isinstance(d, dict)]


def selector_problem(ds: dict[str, Any], node_items: list[dict[str, Any]]) -> str | None:
    """Why a DaemonSet schedules no pod, from its nodeSelector and the nodes' labels: None when it
    wants pods somewhere (desiredNumberScheduled > 0) or selects no label."""
    if int((ds.get("status") or {}).get("desiredNumberScheduled") or 0) > 0:
        return None
    selector = ((((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector")) or {}
    if not selector:
        return None
    wanted = ", ".join(f"{k}={v}" for k, v in selector.items())
    name = ds.get("metadata", {}).get("name", "?")
    misses = []
    for n in node_items:
        labels = n.get("metadata", {}).get("labels") or {}
        lacks = [f"{k}={v}" + (f" (has {labels[k]})" if k in labels else "") for k, v in selector.items() if labels.get(k) != v]
        if lacks:
            misses.append(f"{n.get('metadata', {}).get('name', '?')} lacks {', '.join(lacks)}")
    return (f"the DaemonSet {name} schedules 0 pods: no node has labels {wanted}"
            + (f" ({'; '.join(misses)})" if misses else ""))


def releases(ctx: StepContext, context: str) -> list[dict[str, Any]]:
    doc = probe_json(ctx, helm(context, "list", "--all-namespaces", "-o", "json"))
    return doc if isinstance(doc, list) else []


CHART_REF = re.compile(r"^(?P<name>.+?)-(?P<version>v?\d+(?:\.\d+)*(?:[-+.][0-9A-Za-z.-]+)?)$")


def split_chart(ref: str) -> tuple[str, str]:
    """``helm list``'s chart column: "gpu-operator-v25.10.0-rc.1" -> ("gpu-operator", "v25.10.0-rc.1"),
    "hami-2.7.0-rc1" -> ("hami", "2.7.0-rc1") (the version starts at the first "-<digit>"); ("", "")
    when it has no version."""
    m = CHART_REF.match(ref)
    return (m.group("name"), m.group("version")) if m else ("", "")


def find_release(rels: list[dict[str, Any]], chart: str) -> dict[str, Any] | None:
    for r in rels:
        name, version = split_chart(str(r.get("chart", "")))
        if name == chart:
            return {"release": r.get("name"), "namespace": r.get("namespace"), "chart_version": version,
                    "status": r.get("status")}
    return None


def release_values(ctx: StepContext, context: str, release: str, namespace: str) -> dict[str, Any] | None:
    doc = probe_json(ctx, helm(context, "get", "values", release, "-n", namespace, "-o", "json"))
    if doc is None:
        result = ctx.host.runner.probe(helm(context, "get", "values", release, "-n", namespace, "-o", "json"))
        return {} if result is not None and result.ok else None
    return doc if isinstance(doc, dict) else {}


def answering(ctx: StepContext, context: str | None) -> bool:
    """``context`` is the one detection found answering (its nodes listed, the default kubeconfig):
    the cluster's probes may be run ahead of a plan (Step.prefetch) without waiting on a dead server."""
    kube = ctx.facts.get("kubernetes") or {}
    return bool(context) and not getattr(context, "kubeconfig", None) and kube.get("context") == context \
        and bool(kube.get("nodes"))


def peek_json(ctx: StepContext, argv: list[str]) -> Any:
    """:func:`probe_json` of a probe this plan already made; None when it made none (nothing runs)."""
    seen, result = ctx.host.runner.peek(argv)
    if not seen or result is None or not result.ok:
        return None
    try:
        return json.loads(result.stdout or "null")
    except ValueError:
        return None


def release_prefetch(ctx: StepContext, context: str, chart: str, namespace: str) -> list[list[str]]:
    """What a cluster step's plan reads of ``context`` for ``chart`` in ``namespace``: the nodes, the
    server's version, the releases, the chart repositories, the namespace's pods, and, once the
    releases are listed, the installed release's values (Step.prefetch)."""
    out = [kubectl(context, "get", "nodes", "-o", "json"), helm(context, "list", "--all-namespaces", "-o", "json"),
           kubectl(context, "version", "-o", "json"), ["helm", "repo", "list", "-o", "json"],
           kubectl(context, "get", "pods", "-n", namespace, "-o", "json")]
    listed = peek_json(ctx, out[1])
    rel = find_release(listed, chart) if isinstance(listed, list) else None
    if rel and rel.get("release") and rel.get("namespace"):
        r, ns = str(rel["release"]), str(rel["namespace"])
        out += [helm(context, "get", "values", r, "-n", ns, "-o", "json"),
                helm(context, "get", "values", r, "-n", ns, "--all", "-o", "json")]
    return out


def release_computed(ctx: StepContext, context: str, release: str, namespace: str) -> dict[str, Any] | None:
    """What the installed release's templates see (``helm get values --all``): its user values over the
    chart values it was installed with."""
    doc = probe_json(ctx, helm(context, "get", "values", release, "-n", namespace, "--all", "-o", "json"))
    return doc if isinstance(doc, dict) else None


@dataclass
class Adopted:
    """The values file for an upgrade of an installed release: its own user values kept, the wizard's
    over them. Helm's ``upgrade --values F`` resets a release to the chart's defaults + F, so F holds
    both; the keys the wizard manages are replaced whole (a map is not merged with the old one), and
    one it leaves at the chart's default is dropped from the kept values."""

    values: dict[str, Any]
    notes: dict[str, str]
    kept: list[str]  # dotted keys kept from the release
    dropped: dict[str, Any]  # dotted key -> the release's value given up (for the chart's default or the wizard's)

    def given_up(self, cv: ChartVersion) -> list[str]:
        """The plan's words for each value of the installed release that the upgrade gives up."""
        return [f"the installed release's {k}: {v!r} is given up ("
                + (f"not a key of {cv.chart} {cv.documented}" if not cv.documents(k) else "the wizard decides it") + ")"
                for k, v in self.dropped.items()]


def adopt_values(live: dict[str, Any], wanted: Explained, managed: list[str], cv: ChartVersion,
                 same_chart: bool) -> Adopted:
    """``live``: the release's user values (``helm get values``); ``wanted``: the wizard's; ``managed``:
    dotted keys the wizard decides (set in ``wanted``, or left at the chart's default). On a move to
    another chart release, a kept key that release lacks, or whose kind (map or value) differs from
    its default, is dropped too (Helm would ignore it, or warn and keep the wrong kind)."""
    kept = json.loads(json.dumps(live))
    dropped: dict[str, Any] = {}
    for dotted in managed:
        node: Any = kept
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node:
            value = node.pop(parts[-1])
            if not _has(wanted.values, parts):
                dropped[dotted] = value
    if not same_chart:
        for key, value in flatten(kept).items():
            found, _ = cv.resolve(key)
            default = cv.defaults.get(key)
            if not found or (isinstance(default, dict) and default and not isinstance(value, dict)):
                _delete(kept, key.split("."))
                dropped[key] = value
    _prune(kept)
    notes = dict(wanted.notes)
    kept_keys = [k for k in flatten(kept, key_text=escape_key) if not _has(wanted.values, split_key(k))]
    for key in kept_keys:  # notes go by the plain dotted path, as render_values walks the tree
        notes.setdefault(".".join(split_key(key)), "kept from the installed release (helm get values)")
    return Adopted(_fill(json.loads(json.dumps(wanted.values)), kept), notes, kept_keys, dropped)


def _fill(tree: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``tree`` with what ``more`` has and it lacks (its own keys first, and winning: the file reads the
    same on every run)."""
    for k, v in more.items():
        if k not in tree:
            tree[k] = v
        elif isinstance(tree[k], dict) and isinstance(v, dict):
            _fill(tree[k], v)
    return tree


def _delete(tree: dict[str, Any], parts: list[str]) -> None:
    node: Any = tree
    for p in parts[:-1]:
        node = node.get(p) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def _has(tree: dict[str, Any], parts: list[str]) -> bool:
    node: Any = tree
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return False
        node = node[p]
    return True


def _prune(tree: dict[str, Any]) -> None:
    for k in list(tree):
        if isinstance(tree[k], dict):
            _prune(tree[k])
            if not tree[k]:
                del tree[k]


def live_change(ctx: StepContext, context: str, release: str, namespace: str, from_version: str, cv: ChartVersion,
                config: dict[str, Any], limit: int = 12) -> list[str]:
    """The plan's view of an upgrade of a live release: what its templates see now (``helm get values
    --all``) against what they will see (``config`` over ``cv``'s chart defaults, Helm's rules), key by
    key; the keys anyone set first, then the chart's own defaults that change, ``limit`` lines at most."""
    before = release_computed(ctx, context, release, namespace)
    if before is None:
        return [f"  change to the live release {release} in {namespace} (its computed values cannot be read now)"]
    after = HV.coalesce(config, cv.tree)
    changes = HV.diff(before, after)
    head = (f"  change to the live release {release} in {namespace} (chart {from_version} → {cv.version}): "
            + (f"{len(changes)} effective value(s) differ" if changes else "its effective values stay the same"))
    if not changes:
        return [head]
    user = set(flatten(config, key_text=escape_key))
    first = [c for c in changes if any(c[0] == k or c[0].startswith(k + ".") for k in user)]
    rest = [c for c in changes if c not in first]
    lines = [head]
    for key, old, new in (first + rest)[:limit]:
        lines.append(f"    {key}: {_shown(old)} → {_shown(new)}")
    if len(changes) > limit:
        lines.append(f"    … and {len(changes) - limit} more"
                     + (f" (defaults of the chart {cv.version})" if not any(c in first for c in changes[limit:]) else ""))
    return lines


def _shown(v: Any, width: int = 60) -> str:
    text = "(unset)" if v is ... else json.dumps(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def release_matches(ctx: StepContext, context: str, release: str, namespace: str, chart: str, version: str,
                    values: dict[str, Any]) -> bool:
    rel = next((r for r in releases(ctx, context) if r.get("name") == release and r.get("namespace") == namespace), None)
    if rel is None or rel.get("status") != "deployed" or rel.get("chart") != f"{chart}-{version}":
        return False
    return release_values(ctx, context, release, namespace) == values


# ------------------------------------------------------------------------------------------------
# actions


@dataclass
class Cmd(A.Action):
    """Run one command; it is done when ``done(ctx)`` (a read-only look at the host/cluster) says so."""

    id: str
    title: str
    argv: list[str]
    done: Callable[[StepContext], bool]
    timeout: float | None = None
    hint: str | Callable[[CommandFailed], str] = ""  # added to a failure, or (callable) the failure's message
    disruptive: str | None = None
    details: Callable[[StepContext], list[str]] | None = None  # shown under the command (a live release's change)

    def preview(self, ctx: StepContext) -> list[str]:
        return ["$ " + join_argv(self.argv)] + (self.details(ctx) if self.details else [])

    def is_done(self, ctx: StepContext) -> bool:
        return bool(self.done(ctx))

    def journal(self, ctx: StepContext) -> list[Change]:
        return command_changes(self.argv, self.changes)

    def apply(self, ctx: StepContext) -> None:
        try:
            ctx.host.runner.run(self.argv, timeout=self.timeout, check=True)
        except CommandFailed as exc:
            if callable(self.hint):
                raise StepFailed(self.hint(exc)) from exc
            if self.hint:
                raise StepFailed(f"{exc}; {self.hint}") from exc
            raise

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["argv"] = list(self.argv)
        if self.details:
            data["details"] = self.details(ctx)
        return data


Poll = A.WaitFor  # a cluster condition: WaitFor with ``describe`` saying what is still wrong on timeout


def write(path: str, content: str, title: str, action_id: str) -> A.WriteFile:
    return A.WriteFile(action_id, title, path, content, mode=0o644, backup=True)


def chart_ref(ctx: StepContext, chart: str, version: str) -> str:
    """What ``helm upgrade`` installs: ``ALIAS/CHART`` from the repository, or, from an offline bundle
    (``--bundle``), the chart's archive there. The release is recorded in the step's plan data
    (``charts``: what ``gpuwizard bundle`` fetches)."""
    alias, url = repo(chart)
    need = {"chart": chart, "version": version, "alias": alias, "repository": ctx.net.chart_repo(alias, url)[0]}
    kept = ctx.plan_data.setdefault("charts", [])
    if need not in kept:
        kept.append(need)
    return ctx.net.archive(chart, version) or f"{alias}/{chart}"


def from_bundle(ctx: StepContext, chart: str) -> bool:
    """The offline bundle holds the chart (its releases install from the .tgz: no repository to add
    or refresh)."""
    return any(name == chart for name, _ in ctx.net.local_archives)


def helm_repo_actions(ctx: StepContext, chart: str) -> list[A.Action]:
    """``helm repo add NAME URL``; where the alias NAME already points at another URL (the real helm
    then fails: "repository name (NAME) already exists, please specify a different name"), with
    ``--force-update``, which replaces it, and the plan says so. None with an offline bundle of the
    chart."""
    if from_bundle(ctx, chart):
        return []
    name, url = repo(chart)
    url, upstream = ctx.net.chart_repo(name, url)  # a mirror of the repository, where one is set
    shown = f"{url}, mirror of {upstream}" if upstream else url

    def listed(c: StepContext) -> list[dict[str, Any]]:
        doc = probe_json(c, ["helm", "repo", "list", "-o", "json"])
        return [r for r in doc or [] if isinstance(r, dict)] if isinstance(doc, list) else []

    def added(c: StepContext) -> bool:
        return any(r.get("name") == name and r.get("url") == url for r in listed(c))

    argv = ["helm", "repo", "add", name, url]
    other = next((r.get("url") for r in listed(ctx) if r.get("name") == name and r.get("url") != url), None) \
        if ctx.has_tool("helm") else None
    if other:
        argv.append("--force-update")
        ctx.decide(f"the Helm repository alias {name} points at {other}; it is replaced with {url} "
                   "(helm repo add --force-update): charts from the old URL are no longer found under that name")
    return [Cmd(f"helm-repo-{name}", f"Helm repository {name} ({shown})", argv, added).with_changes(HelmRepo(name))]


# ------------------------------------------------------------------------------------------------
# tool installs


def tool_arch(ctx: StepContext) -> str:
    arch = (ctx.facts.get("host") or {}).get("arch") or "x86_64"
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)


def tool_actions(ctx: StepContext, names: list[str]) -> list[A.Action]:
    """Install the missing ones of kind/kubectl/helm into /usr/local/bin from their official release
    downloads, each checked against the checksum its project publishes."""
    out: list[A.Action] = []
    for name in names:
        if ctx.has_tool(name):
            continue
        out += _tool_install(ctx, name)
    return out


def _tool_install(ctx: StepContext, name: str) -> list[A.Action]:
    """Basic actions, each shown in the plan as it runs: the published checksum, the file, the check
    of one against the other, (helm) the unpack, the install. Each is done once the tool is on PATH."""
    version = TOOL_VERSIONS[name]
    arch = tool_arch(ctx)
    upstream = TOOL_URLS[name].format(v=version, arch=arch)
    url, sums = ctx.net.url(upstream), ctx.net.url(upstream + TOOL_SUMS[name])  # a mirror's, where one is set
    fname = upstream.rsplit("/", 1)[1]
    d = f"{WORKDIR}/downloads/{name}-{version}"
    dest, dest_sum = f"{d}/{fname}", f"{d}/{fname}{TOOL_SUMS[name]}"
    binary = f"{d}/linux-{arch}/helm" if name == "helm" else dest
    def offline(exc: CommandFailed) -> str:
        why = "no network connection" if exc.rc in OFFLINE_RC else f"curl exit {exc.rc}"
        return (f"cannot download {name} {version} ({why}): {exc.argv[-1]}. Offline? Fetch {url} and {sums} on a "
                f"connected machine, check `sha256sum {fname}` against the .sha256 file, copy the binary to "
                f"/usr/local/bin/{name} (mode 0755) on this host, then run: gpuwizard --resume")

    def installed(c: StepContext) -> bool:
        return c.host.runner.which(name) is not None

    def published(c: StepContext) -> str:
        words = (c.host.read_text(dest_sum) or "").split()
        return words[0].lower() if words else ""

    def matches(c: StepContext) -> bool:
        return installed(c) or (c.host.exists(dest) and len(published(c)) == 64 and sha256_of(c.host.path(dest)) == published(c))

    def mismatch(c: StepContext) -> str:
        expected = published(c)
        actual = sha256_of(c.host.path(dest)) if c.host.exists(dest) else "(no file)"
        return (f"checksum mismatch for {url}: the published sha256 is {expected or '(unreadable)'}, the download has "
                f"{actual}; moved aside to {dest}.rejected and NOT installed")

    def reject(c: StepContext) -> None:
        """The download that does not match is moved aside (never in a dry run: Check skips it)."""
        if c.host.exists(dest):
            c.host.path(dest).rename(c.host.path(dest + ".rejected"))

    acts: list[A.Action] = [
        MakeDir(f"download-dir-{name}", f"the download directory for {name} ({d})", d, mode=0o755),
        Cmd(f"download-{name}-sum", f"download the published checksum of {name} {version} ({fname}{TOOL_SUMS[name]})",
            ["curl", "-fsSL", "-o", hp(ctx, dest_sum), sums], lambda c: installed(c) or c.host.exists(dest_sum),
            timeout=600, hint=offline).with_changes(FileChange(dest_sum, drift=False)),
        Cmd(f"download-{name}", f"download {name} {version} ({ctx.net.show(upstream)})", ["curl", "-fsSL", "-o", hp(ctx, dest), url],
            matches, timeout=600, hint=offline).with_changes(FileChange(dest, drift=False)),
        Check(f"verify-{name}", f"sha256({fname}) = the published {fname}{TOOL_SUMS[name]}", matches, mismatch,
              on_failure=reject),
    ]
    if name == "helm":
        acts.append(Cmd(f"unpack-{name}", f"unpack {fname}",
                        ["tar", "-xzf", hp(ctx, dest), "-C", hp(ctx, d), f"linux-{arch}/helm"],
                        lambda c: installed(c) or c.host.exists(binary)).with_changes(FileChange(binary, drift=False)))
    acts.append(Cmd(f"install-{name}", f"install {name} {version} into /usr/local/bin",
                    ["install", "-o", "root", "-g", "root", "-m", "0755", hp(ctx, binary), hp(ctx, f"/usr/local/bin/{name}")],
                    installed).with_changes(FileChange(f"/usr/local/bin/{name}")))
    return acts


def require_tools(ctx: StepContext, names: list[str]) -> None:
    missing = [n for n in names if ctx.host.runner.which(n) is None]
    if missing:
        raise StepFailed(f"{', '.join(missing)} not found on PATH")


# ------------------------------------------------------------------------------------------------
# the cuda-vectoradd check

VECTORADD_TAGS = [  # (CUDA version the image needs, tag) — nvcr.io/nvidia/k8s/cuda-sample
    ("12.5", "vectoradd-cuda12.5.0-ubuntu22.04"),  # gpu-operator docs
    ("11.7", "vectoradd-cuda11.7.1-ubuntu20.04"),  # the seed recipe
]


def vectoradd_image(ctx: StepContext) -> str | None:
    """The newest cuda-sample vectoradd image the host driver can run (None: no driver facts), from
    the mirror of nvcr.io where one is set."""
    cuda = ((ctx.facts.get("driver") or {}).get("cuda_version")) or None
    if cuda is None:
        return ctx.net.image(f"nvcr.io/nvidia/k8s/cuda-sample:{VECTORADD_TAGS[-1][1]}")
    for need, tag in VECTORADD_TAGS:
        if V.at_least(cuda, need):
            return ctx.net.image(f"nvcr.io/nvidia/k8s/cuda-sample:{tag}")
    return None


def kind_cluster_name(ctx: StepContext, context: str) -> str | None:
    """The Kind cluster behind a context: ``kind-NAME`` as kind names its contexts, else read off the
    nodes (Kind names them ``NAME-control-plane``, ``NAME-worker``...); None when neither tells."""
    if context.startswith("kind-"):
        return context.removeprefix("kind-")
    names = [n["metadata"]["name"] for n in nodes(ctx, context) or []]
    return next((n.removesuffix("-control-plane") for n in names if n.endswith("-control-plane")), None)


def cluster_images(ctx: StepContext, context: str, refs: list[str], *, on_kind: bool,
                   unknown: list[str] | None = None) -> list[A.Action]:
    """The images the cluster pulls for what follows: recorded for an offline bundle (plan data
    ``cluster_images``: ``gpuwizard bundle`` saves them); from a bundle that holds them, loaded into
    the nodes of a Kind cluster before use (``docker load``, then ``kind load docker-image``, which
    skips an image every node has: kubernetes-sigs/kind pkg/cmd/kind/load/docker-image). The charts
    pull with ``IfNotPresent`` (their values' defaults), so a loaded image is used. Another cluster's
    nodes must have them or reach a mirror (``mirrors.registries``): said in the plan."""
    from . import common as C

    kept = ctx.plan_data.setdefault("cluster_images", [])
    kept += [r for r in refs if r not in kept]
    if unknown:
        ctx.plan_data.setdefault("cluster_images_unknown", []).extend(unknown)
    local = [r for r in refs if r in ctx.net.local_images]
    lacking = [r for r in refs if r not in ctx.net.local_images]
    if ctx.net.bundle and lacking:  # a bundle is used and lacks some: name them before anything runs
        ctx.decide(f"the offline bundle lacks {len(lacking)} image(s) the cluster pulls here: {', '.join(lacking)}; the "
                   "nodes must pull them from their registries (or mirrors.registries), else rebuild the bundle from "
                   "this answer file")
    if not local:
        return []
    cluster = kind_cluster_name(ctx, context) if on_kind else None  # whether it is Kind: the caller's (its nodes)
    if cluster is None:
        ctx.decide(f"the offline bundle's images ({', '.join(local)}) load into Kind clusters only: the nodes of "
                   f"{context} must have them already or pull them through mirrors.registries")
        return []
    acts = C.load_images(ctx, local)
    for ref in local:
        loaded = ctx.net.loaded(ref)

        def on_nodes(c: StepContext, loaded: str = loaded) -> bool:
            """Every node of the cluster has the image (``crictl inspecti`` in each node container)."""
            listed = c.host.runner.probe(["kind", "get", "nodes", "--name", cluster])
            names = listed.stdout.split() if listed and listed.ok else []
            return bool(names) and all(bool((r := c.host.runner.probe(["docker", "exec", n, "crictl", "inspecti", "-q",
                                                                       loaded])) and r.ok) for n in names)

        acts.append(C.RunIf(f"kind-load-{C.image_slug(loaded)}", f"load {loaded} into the nodes of Kind cluster {cluster}",
                            ["kind", "load", "docker-image", loaded, "--name", cluster], timeout=900, done=on_nodes))
    return acts


VECTORADD_POD = ("gpuwizard-cuda-vectoradd", "default")  # (name, namespace) of the check's pod


def vectoradd_pod_argv(context: str) -> list[str]:
    """The probe of the check's pod (its done-tests; Step.prefetch names it too)."""
    name, ns = VECTORADD_POD
    return kubectl(context, "get", "pod", name, "-n", ns, "-o", "json")


def vectoradd_actions(ctx: StepContext, context: str, step: str, *, on_kind: bool,
                      timeout: float = 300.0) -> list[A.Action]:
    """The seed's cuda-vectoradd check as basic actions: write the pod, remove an old one, apply,
    wait for it to finish, read its log ("Test PASSED"), remove it. A check is run again in every
    run: its actions count as done only once the last of them ran in this run."""
    image = vectoradd_image(ctx)
    if image is None:
        cuda = (ctx.facts.get("driver") or {}).get("cuda_version")
        return [A.Fail(f"{step}-vectoradd", "cuda-vectoradd check",
                       f"the driver supports CUDA {cuda}, older than every cuda-sample vectoradd image "
                       f"(11.7 or newer); upgrade the driver, or set operator.verify: false")]
    name, ns = VECTORADD_POD
    loads = cluster_images(ctx, context, [image], on_kind=on_kind)
    path = f"{WORKDIR}/manifests/cuda-vectoradd.yaml"
    manifest = template("cuda-vectoradd.yaml", name=name, namespace=ns, image=image)
    marker = f"{step}-vectoradd"

    def checked(c: StepContext) -> bool:
        return c.done_this_run(marker)

    def pod(c: StepContext) -> dict[str, Any] | None:
        doc = probe_json(c, vectoradd_pod_argv(context))
        return doc if isinstance(doc, dict) else None

    def finished(c: StepContext) -> bool:
        doc = pod(c)
        if doc is None:
            return False
        problem = pod_problem(doc)
        return doc.get("status", {}).get("phase") in ("Succeeded", "Failed") or bool(problem and definitive(problem))

    def log_text(c: StepContext) -> str:
        r = c.host.runner.probe(kubectl(context, "logs", name, "-n", ns), timeout=30)
        return (r.stdout + r.stderr) if r is not None else ""

    def passed(c: StepContext) -> bool:
        doc = pod(c)
        if doc is None or doc.get("status", {}).get("phase") != "Succeeded":
            return False
        text = log_text(c)
        if "Test PASSED" not in text:
            return False
        c.note("cuda-vectoradd: " + " | ".join(line for line in text.splitlines() if line.strip()))
        return True

    def why_not(c: StepContext) -> str:
        doc = pod(c)
        phase = (doc or {}).get("status", {}).get("phase")
        problem = pod_problem(doc) if doc else "pod not found"
        tail = "\n    ".join(log_text(c).strip().splitlines()[-6:])
        events = event_lines(pod_events(c, context, ns, name) or []) if doc else []
        return (f"the cuda-vectoradd check did not pass (pod phase {phase or 'unknown'}: {problem or 'no detail'}); "
                f"image {image}" + "".join(f"\n    event {line}" for line in events) +
                f"; its log:\n    {tail or '(empty)'}")

    delete = kubectl(context, "delete", "pod", name, "-n", ns, "--ignore-not-found")
    return [
        *loads,
        write(path, manifest, f"write the cuda-vectoradd check pod ({image}, nvidia.com/gpu: 1)", f"{step}-vectoradd-manifest"),
        Cmd(f"{step}-vectoradd-clean", "remove a cuda-vectoradd pod left by an earlier check", delete,
            lambda c: checked(c) or pod(c) is None),
        Cmd(f"{step}-vectoradd-apply", f"start the cuda-vectoradd pod on {context}", kubectl(context, "apply", "-f", hp(ctx, path)),
            checked),
        A.WaitFor(f"{step}-vectoradd-finished", "the cuda-vectoradd pod has finished",
                  lambda c: checked(c) or finished(c), timeout=timeout, interval=POLL, describe=why_not),
        Check(f"{step}-vectoradd-passed", "the cuda-vectoradd pod's log says \"Test PASSED\"",
              lambda c: checked(c) or passed(c), why_not, reads=kubectl(context, "logs", name, "-n", ns)),
        Cmd(marker, "remove the cuda-vectoradd pod", [*delete, "--wait=false"], checked),
    ]


@dataclass
class Explained:
    """A values tree and the reason for each non-default value."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def set(self, dotted: str, value: Any, why: str) -> None:
        set_dotted(self.values, dotted, value)
        self.notes[dotted] = why
