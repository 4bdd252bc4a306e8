"""The compatibility table (``gpuwizard/assets/compat.yaml``) and the checks that read it.

Each row of the table carries an ``id`` (``operator-kubernetes/v26.3``), a ``source`` (a URL or a
repository path at a tag) and the date the source was ``seen``. The table is read on the first
call that needs it and kept (:func:`table`); nothing is read at import.

The checks are pure: versions in, :class:`Finding` objects out (an empty list: nothing to say).
A finding's ``level`` is ``"refuse"`` (the combination is documented as unsupported) or ``"warn"``
(it may work, but is outside what the table knows or at end of support); its ``text`` is a full
sentence naming the versions, what is supported, the row and its source, fit for an error.

- :func:`cuda_min_driver` / :func:`cuda_min_driver_table` / :func:`cuda_row`: CUDA X.Y -> minimum driver.
- :func:`operator_kubernetes`: a gpu-operator release on a Kubernetes version.
- :func:`operator_upgrade_path`: the chart releases to pass through, one major (YY.MM) at a time.
- :func:`operator_runtime`: a gpu-operator release with a node's container runtime (and the NRI plugin).
- :func:`operator_cdi_default`: whether a gpu-operator release enables CDI by default.
- :func:`hami_kubernetes`: a HAMi release on a Kubernetes version.
- :func:`webui_hami`: a HAMi-WebUI release with a HAMi release.

Versions are compared through :mod:`gpuwizard.versions`. Kubernetes versions may come as
``v1.31.2``, ``1.33`` or ``v1.30.4+k3s1``; runtime versions as ``1.7.30``, ``v2.1.0``,
``1.7.27-k3s1`` or a node's ``containerd://2.1.3`` (see :func:`split_runtime`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from . import versions as V

__all__ = [
    "TABLE_PATH",
    "Finding",
    "Table",
    "cuda_min_driver",
    "cuda_min_driver_table",
    "cuda_row",
    "hami_kubernetes",
    "operator_cdi_default",
    "operator_kubernetes",
    "operator_runtime",
    "operator_upgrade_path",
    "split_runtime",
    "table",
    "webui_hami",
]

TABLE_PATH = Path(__file__).resolve().parent / "assets" / "compat.yaml"

Level = Literal["refuse", "warn"]
_NO_ROW = "gpuwizard/assets/compat.yaml (no row)"


@dataclass(frozen=True)
class Finding:
    """One thing a check has to say: ``level`` "refuse" or "warn", the table ``row`` id it rests
    on, a full-sentence ``text`` (naming versions, what is supported, the row and the source) and
    the row's ``source``."""

    level: Level
    row: str
    text: str
    source: str

    def __str__(self) -> str:
        return self.text


# -- the table's shape ----------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class _Row(_Model):
    id: str
    source: str
    seen: date
    note: str | None = None


class MinorRange(_Model):
    """Kubernetes (or runtime) minors, both ends included; ``max`` None: no upper bound stated."""

    min: str
    max: str | None = None


class HalfOpen(_Model):
    """Releases from ``min`` (included) up to ``below`` (excluded); ``below`` None: open-ended."""

    min: str
    below: str | None = None

    def holds(self, version: str) -> bool:
        return V.at_least(version, self.min) and (self.below is None or not V.at_least(version, self.below))

    def describe(self) -> str:
        """ "2.9.0 or later", "1.7.30 or a later 1.7.x", "2.1.x–2.3.x", "2.4.0–2.8.x", or
        "1.0.0 up to, not including, 1.1.1" (a bound that is not the start of a minor)."""
        if self.below is None:
            return f"{self.min} or later"
        b = V.parse(self.below).release
        if len(b) >= 2 and b[1] > 0 and not any(b[2:]):
            last = f"{b[0]}.{b[1] - 1}"
            first = self.min + ".x" if len(V.parse(self.min).release) == 2 else self.min
            if V.major_minor(self.min) != last:
                return f"{first}–{last}.x"
            return first if first.endswith(".x") else f"{self.min} or a later {last}.x"
        return f"{self.min} up to, not including, {self.below}"


class CudaDriverRow(_Row):
    cuda: str
    min_driver: str


class OperatorKubeRow(_Row):
    line: str
    kubernetes: MinorRange
    since: dict[str, str] = {}
    status: Literal["supported", "deprecated", "end-of-support"]


class LifecycleRow(_Row):
    end_of_support_through: str
    upgrade: Literal["next-major-only"]


class OperatorRuntimeRow(_Row):
    line: str
    containerd: MinorRange
    cri_o: bool


class NriRow(_Row):
    runtime: Literal["containerd", "cri-o"]
    operator_since: str
    accept: list[HalfOpen]


class CdiRow(_Row):
    enabled_from: str
    checked: dict[str, bool]


class HamiKubeRow(_Row):
    line: str
    kubernetes: MinorRange


class WebuiHamiRow(_Row):
    webui: HalfOpen
    hami: HalfOpen


class Table(_Model):
    cuda_driver: list[CudaDriverRow]
    operator_kubernetes: list[OperatorKubeRow]
    operator_lifecycle: LifecycleRow
    operator_runtime: list[OperatorRuntimeRow]
    operator_nri: list[NriRow]
    operator_cdi: CdiRow
    hami_kubernetes: list[HamiKubeRow]
    webui_hami: list[WebuiHamiRow]

    def rows(self) -> list[_Row]:
        """Every row of the table, in file order."""
        return [*self.cuda_driver, *self.operator_kubernetes, self.operator_lifecycle, *self.operator_runtime,
                *self.operator_nri, self.operator_cdi, *self.hami_kubernetes, *self.webui_hami]


@cache
def table(path: Path = TABLE_PATH) -> Table:
    """The table, read and validated on the first call, then kept."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as f:
        return Table.model_validate(yaml.load(f, Loader=loader))


# -- version helpers ------------------------------------------------------------------------------
_RELEASE = re.compile(r"^\s*[vV]?(\d+(?:\.\d+)*)")


def _release(text: str) -> str:
    """The dotted-number release at the start of ``text`` ("v1.30.4+k3s1" -> "1.30.4", "1.7.27-k3s1"
    -> "1.7.27"), checked through versions.parse. ValueError for anything without one."""
    m = _RELEASE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"not a version: {text!r} (expected dotted numbers such as 1.33 or v1.31.2)")
    return str(V.parse(m.group(1)))


def _minor(text: str) -> str:
    """ "v1.31.2" / "1.33" / "v1.30.4+k3s1" -> "1.31" / "1.33" / "1.30"."""
    return V.major_minor(_release(text))


def _line(text: str) -> str:
    """A chart release's line (YY.MM for gpu-operator, X.Y for HAMi): "v26.3.3" -> "26.3"."""
    return V.major_minor(_release(text))


def _v(text: str) -> str:
    """A chart release as users see it, with its leading v: "26.3.3" -> "v26.3.3"."""
    return text if text[:1] in ("v", "V") else "v" + text


def _span(r: MinorRange) -> str:
    if r.max is None:
        return f"{r.min} or later"
    return r.min if r.min == r.max else f"{r.min}–{r.max}"


def _cite(row: _Row) -> str:
    return f"row {row.id}, source {row.source}"


def split_runtime(node_runtime: str) -> tuple[str, str]:
    """A node's ``status.nodeInfo.containerRuntimeVersion`` ("containerd://1.7.30", "cri-o://1.34.1")
    as (name, version); a bare version comes back with an empty name."""
    name, sep, version = node_runtime.partition("://")
    return (name, version) if sep else ("", node_runtime)


def _runtime_name(name: str) -> str:
    n = name.strip().lower()
    return {"crio": "cri-o", "cri_o": "cri-o"}.get(n, n)


# -- 1. CUDA x driver -----------------------------------------------------------------------------
def cuda_row(xy: str) -> CudaDriverRow | None:
    """The cuda-driver row of CUDA ``xy`` ("12.6", or a full "12.6.2"), None when the table has none."""
    want = V.major_minor(xy)
    return next((r for r in table().cuda_driver if r.cuda == want), None)


def cuda_min_driver(xy: str) -> str | None:
    """The minimum Linux driver of CUDA toolkit ``xy`` ("12.6" -> "560.28.03"); None if unknown."""
    row = cuda_row(xy)
    return row.min_driver if row else None


def cuda_min_driver_table() -> dict[str, str]:
    """CUDA X.Y -> minimum driver, every row (a new dict each call)."""
    return {r.cuda: r.min_driver for r in table().cuda_driver}


# -- 2. gpu-operator x Kubernetes -----------------------------------------------------------------
def _operator_row(operator_version: str) -> OperatorKubeRow | None:
    line = _line(operator_version)
    return next((r for r in table().operator_kubernetes if r.line == line), None)


def operator_kubernetes(operator_version: str, kube_version: str) -> list[Finding]:
    """Whether gpu-operator ``operator_version`` supports Kubernetes ``kube_version``: a minor outside
    the line's list (or one only a later patch release supports) is refused; a line at end of support
    is warned about; a line the table has no row for is warned about too."""
    op = _v(_release(operator_version))
    kube = _minor(kube_version)
    row = _operator_row(operator_version)
    if row is None:
        lines = ", ".join("v" + r.line for r in table().operator_kubernetes)
        return [Finding("warn", "operator-kubernetes", (
            f"gpu-operator {op} is not in gpuwizard's compatibility table (it has the release lines {lines}), "
            f"so whether it supports Kubernetes {kube} was not checked"), _NO_ROW)]
    out: list[Finding] = []
    r = row.kubernetes
    below = not V.at_least(kube, r.min)
    above = r.max is not None and V.compare(kube, r.max) > 0
    if below or above:
        out.append(Finding("refuse", row.id, (
            f"gpu-operator {op} does not support Kubernetes {kube} (supported: {_span(r)}; {_cite(row)})"), row.source))
    elif kube in row.since and not V.at_least(op, row.since[kube]):
        first = row.since[kube]
        out.append(Finding("refuse", row.id, (
            f"gpu-operator {op} does not support Kubernetes {kube}: support for it came with {first} "
            f"(the v{row.line} line supports {_span(r)} from {first} on; {_cite(row)})"), row.source))
    life = table().operator_lifecycle
    if not V.compare(row.line, life.end_of_support_through) > 0:
        out.append(Finding("warn", life.id, (
            f"gpu-operator {op} belongs to the v{row.line} line, which is at end of support: NVIDIA releases no "
            f"more fixes for it (v{life.end_of_support_through} and older; {_cite(life)})"), life.source))
    return out


def operator_upgrade_path(from_version: str, to_version: str, known: list[str]) -> list[str]:
    """The gpu-operator releases to upgrade through, in order, from ``from_version`` to ``to_version``:
    NVIDIA supports an upgrade within a major (YY.MM line) or to the next major only, so each line
    between the two is a hop, at the newest release of it in ``known`` (the chart releases gpuwizard
    has data for); the last hop is ``to_version`` itself. The same version: []. The lines are those
    of the table and of ``known``. ValueError for a downgrade or when ``known`` has no release of a
    line in between (row operator-lifecycle/policy)."""
    life = table().operator_lifecycle
    frm, to = _release(from_version), _release(to_version)
    if V.compare(frm, to) == 0:
        return []
    if V.compare(frm, to) > 0:
        raise ValueError(f"gpu-operator {_v(frm)} -> {_v(to)} is a downgrade, not an upgrade ({_cite(life)})")
    lf, lt = _line(frm), _line(to)
    first = min((r.line for r in table().operator_kubernetes), key=V.key)
    if V.compare(lf, first) < 0:
        raise ValueError(f"gpu-operator {_v(frm)} is older than the release lines gpuwizard knows (v{first} on), "
                         f"so the upgrade path to {_v(to)} is not known ({_cite(life)})")
    lines = {r.line for r in table().operator_kubernetes} | {_line(k) for k in known} | {lf, lt}
    between = sorted((ln for ln in lines if V.compare(lf, ln) < 0 and V.compare(ln, lt) < 0), key=V.key)
    hops: list[str] = []
    for ln in between:
        releases = [k for k in known if _line(k) == ln]
        if not releases:
            raise ValueError(
                f"gpu-operator {_v(frm)} -> {_v(to)} has to pass through the v{ln} line (one major at a time), "
                f"but no v{ln} release is known ({_cite(life)})")
        hops.append(_v(max(releases, key=lambda k: V.key(_release(k)))))
    return [*hops, _v(to)]


# -- 3. gpu-operator x container runtime ----------------------------------------------------------
def operator_cdi_default(operator_version: str) -> bool:
    """Whether gpu-operator ``operator_version``'s chart enables CDI (``cdi.enabled``) by default:
    true from v25.10.0 on (row operator-cdi/default)."""
    return V.at_least(_release(operator_version), table().operator_cdi.enabled_from)


def operator_runtime(operator_version: str, runtime_name: str, runtime_version: str, nri_enabled: bool,
                     *, cdi_enabled: bool | None = None) -> list[Finding]:
    """Whether gpu-operator ``operator_version`` works with a node's runtime (``containerd`` or
    ``cri-o``; ``crio`` also accepted; a name of "containerd://1.7.30" form is split) at
    ``runtime_version``. With ``nri_enabled`` (cdi.nriPluginEnabled): refused on an operator before
    v26.3.0, with CDI off (``cdi_enabled`` False; None: the chart's default), and on a runtime release
    the NRI plugin does not support. Without NRI: a runtime outside the line's validated range, or
    not listed at all, is warned about."""
    if "://" in runtime_name:
        runtime_name, runtime_version = split_runtime(runtime_name)
    name = _runtime_name(runtime_name)
    op = _v(_release(operator_version))
    rt = _release(runtime_version)
    out: list[Finding] = []
    if nri_enabled:
        out += _nri(op, name, rt, cdi_enabled)
    row = next((r for r in table().operator_runtime if r.line == _line(op)), None)
    if row is None:
        out.append(Finding("warn", "operator-runtime", (
            f"gpu-operator {op} is not in gpuwizard's compatibility table, so its support for {name or 'the runtime'} "
            f"{rt} was not checked"), _NO_ROW))
    elif name == "containerd":
        r = row.containerd
        mm = V.major_minor(rt)
        if not V.at_least(mm, r.min) or (r.max is not None and V.compare(mm, r.max) > 0):
            out.append(Finding("warn", row.id, (
                f"gpu-operator {op} was not validated with containerd {rt} (validated: containerd {_span(r)}; "
                f"{_cite(row)})"), row.source))
    elif name == "cri-o":
        if not row.cri_o:
            out.append(Finding("warn", row.id, f"gpu-operator {op} does not list cri-o as validated ({_cite(row)})", row.source))
    else:
        out.append(Finding("warn", row.id, (
            f"gpu-operator {op} lists containerd and cri-o as its validated runtimes, not {name or 'this runtime'} "
            f"{rt} ({_cite(row)})"), row.source))
    return out


def _nri(op: str, name: str, rt: str, cdi_enabled: bool | None) -> list[Finding]:
    rows = table().operator_nri
    first = min((r.operator_since for r in rows), key=V.key)
    if not V.at_least(op, first):
        row = next(r for r in rows if r.operator_since == first)
        return [Finding("refuse", row.id, (
            f"gpu-operator {op} has no NRI plugin (cdi.nriPluginEnabled): it came with {first} ({_cite(row)})"), row.source)]
    row_for = next((r for r in rows if r.runtime == name), None)
    if row_for is None:
        runtimes = " and ".join(r.runtime for r in rows)
        row0 = rows[0]
        return [Finding("refuse", row0.id, (
            f"the NRI plugin (cdi.nriPluginEnabled) of gpu-operator {op} works with {runtimes} only, not "
            f"{name or 'this runtime'} {rt} ({_cite(row0)})"), row0.source)]
    row = row_for
    out: list[Finding] = []
    cdi = operator_cdi_default(op) if cdi_enabled is None else cdi_enabled
    if not cdi:
        out.append(Finding("refuse", row.id, (
            f"the NRI plugin (cdi.nriPluginEnabled) needs CDI, but cdi.enabled is false for gpu-operator {op} "
            f"({_cite(row)})"), row.source))
    if not V.at_least(op, row.operator_since):
        out.append(Finding("refuse", row.id, (
            f"gpu-operator {op} does not support the NRI plugin with {name}: that came with {row.operator_since} "
            f"({_cite(row)})"), row.source))
        return out
    accepted = "; ".join(a.describe() for a in row.accept)
    if any(a.holds(rt) for a in row.accept):
        return out
    last = max(row.accept, key=lambda a: V.key(a.min))
    if last.below is not None and V.at_least(rt, last.below):
        out.append(Finding("warn", row.id, (
            f"{name} {rt} is newer than the releases NVIDIA lists for the NRI plugin of gpu-operator {op} "
            f"({name} {accepted}; {_cite(row)})"), row.source))
    else:
        out.append(Finding("refuse", row.id, (
            f"the NRI plugin (cdi.nriPluginEnabled) of gpu-operator {op} does not work with {name} {rt} "
            f"(supported: {name} {accepted}; {_cite(row)})"), row.source))
    return out


# -- 4. HAMi x Kubernetes -------------------------------------------------------------------------
def hami_kubernetes(hami_version: str, kube_version: str) -> list[Finding]:
    """Whether HAMi ``hami_version`` supports Kubernetes ``kube_version``: below the release's
    stated minimum is refused (HAMi states no maximum); a release line without a row is warned about."""
    hv = _v(_release(hami_version))
    kube = _minor(kube_version)
    row = next((r for r in table().hami_kubernetes if r.line == _line(hami_version)), None)
    if row is None:
        lines = ", ".join(r.line for r in table().hami_kubernetes)
        return [Finding("warn", "hami-kubernetes", (
            f"HAMi {hv} is not in gpuwizard's compatibility table (it has the release lines {lines}), so whether "
            f"it supports Kubernetes {kube} was not checked"), _NO_ROW)]
    r = row.kubernetes
    if not V.at_least(kube, r.min) or (r.max is not None and V.compare(kube, r.max) > 0):
        return [Finding("refuse", row.id, (
            f"HAMi {hv} does not support Kubernetes {kube} (supported: {_span(r)}; {_cite(row)})"), row.source)]
    return []


# -- 5. HAMi-WebUI x HAMi -------------------------------------------------------------------------
def webui_hami(webui_version: str, hami_version: str) -> list[Finding]:
    """Whether HAMi-WebUI ``webui_version`` (chart or app release) works with HAMi ``hami_version``:
    a pairing outside the WebUI release's documented HAMi range is refused (its dashboards would
    read metric names the HAMi release does not export); a WebUI release without a row is warned about."""
    wv, hv = _v(_release(webui_version)), _v(_release(hami_version))
    row = next((r for r in table().webui_hami if r.webui.holds(_release(webui_version))), None)
    if row is None:
        return [Finding("warn", "webui-hami", (
            f"HAMi-WebUI {wv} is not in gpuwizard's compatibility table, so whether it works with HAMi {hv} "
            f"was not checked"), _NO_ROW)]
    if row.hami.holds(_release(hami_version)):
        return []
    return [Finding("refuse", row.id, (
        f"HAMi-WebUI {wv} does not work with HAMi {hv} (HAMi-WebUI {row.webui.describe()} needs HAMi "
        f"{row.hami.describe()}; {_cite(row)})"), row.source)]
