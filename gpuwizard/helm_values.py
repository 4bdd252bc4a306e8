"""Helm's rules for values, as the real helm applies them (read from helm/helm at v4.2.4:
``pkg/chart/common/util/coalesce.go`` and ``pkg/action/upgrade.go``; Helm 3 (v3.16.2,
``pkg/chartutil/coalesce.go``) differs in one point, ``helm3=True``: it keeps the chart's own null
defaults in the computed values, and a user null deletes a key even where the chart's is null too).

One home for them: the operator and HAMi steps use them to say what a release will run with, and
the simulated helm (gpuwizard/simulate/tools_cluster.py) uses them to decide what the simulated
cluster runs. Tests check both against the real renders in ``../shared/upstream/renders``.

Plain Python, standard library only: the simulated tools import it in their own processes.

* **coalesce** (user values over the chart's defaults, ``CoalesceValues``): the user's value wins;
  maps merge key by key; a user ``null`` deletes the chart's key; a map against a scalar keeps the
  user's side with Helm's warning.
* **coalesce_tables** (``CoalesceTables(dst, src)``): ``src`` fills what ``dst`` lacks, ``dst`` wins;
  used by ``--reuse-values`` and ``--reset-then-reuse-values`` to lay new values over the release's.
* **upgrade_values**: which user values and which chart defaults a ``helm upgrade`` ends with, by
  its flags (``--reset-values``, ``--reuse-values``, ``--reset-then-reuse-values``, none).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Warn = Callable[[str], None] | None


def escape_key(key: Any) -> str:
    """One key as a part of a dotted key: a dot (or backslash) in it escaped as ``helm --set``
    spells it (``nvidia\\.com/gpu``); ``split_key`` reads it back."""
    return str(key).replace("\\", "\\\\").replace(".", "\\.")


def split_key(flat_key: str) -> list[str]:
    """A dotted key (``a.b\\.c``: a dot inside a key escaped as in ``helm --set``) as its parts."""
    parts, cur, i = [], "", 0
    while i < len(flat_key):
        ch = flat_key[i]
        if ch == "\\" and i + 1 < len(flat_key):
            cur += flat_key[i + 1]
            i += 2
            continue
        if ch == ".":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    return parts + [cur]


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a.c\\.d": 2}`` -> ``{"a": {"b": 1, "c.d": 2}}``."""
    tree: dict[str, Any] = {}
    for k, v in flat.items():
        node = tree
        parts = split_key(k)
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return tree


def flatten(tree: dict[str, Any], prefix: str = "", key_text: Callable[[Any], str] = str) -> dict[str, Any]:
    """Leaves (and empty maps) by dotted key; ``key_text`` spells each key (``escape_key`` to keep
    dots inside keys readable back)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{key_text(k)}" if prefix else key_text(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key, key_text))
        else:
            out[key] = v
    return out


def _clean_nils(tree: dict[str, Any]) -> None:
    for k in [k for k, v in tree.items() if v is None]:
        del tree[k]
    for v in tree.values():
        if isinstance(v, dict):
            _clean_nils(v)


def _tables(dst: dict[str, Any], src: dict[str, Any], prefix: str, warn: Warn, helm3: bool = False) -> dict[str, Any]:
    """coalesceTablesFullKey with merge=false: ``dst`` wins, ``src`` fills; a ``dst`` null over a
    ``src`` value deletes the key (a user nullifying a default)."""
    src_non_nil = {k for k, v in src.items() if v is not None}
    if not helm3:
        for k, v in list(dst.items()):
            if v is None:
                src[k] = None
    for k, sv in src.items():
        full = f"{prefix}.{k}" if prefix else k
        if k in dst and dst[k] is None and (helm3 or k in src_non_nil):
            del dst[k]
        elif k not in dst:
            dst[k] = sv
        elif isinstance(sv, dict):
            if isinstance(dst[k], dict):
                _tables(dst[k], sv, full, warn, helm3)
            elif warn:
                warn(f"warning: cannot overwrite table with non table for {full} ({_go(sv)})")
        elif isinstance(dst[k], dict) and sv is not None and warn:
            warn(f"warning: destination for {full} is a table. Ignoring non-table value ({_go(sv)})")
    return dst


def coalesce(user: dict[str, Any] | None, defaults: dict[str, Any] | None, warn: Warn = None,
             chart: str = "", helm3: bool = False) -> dict[str, Any]:
    """What the chart's templates see: ``user`` values over the chart's ``defaults`` (neither is
    changed). ``warn`` receives Helm's warnings, worded as the real helm prints them (keys under the
    chart's name: ``hami.scheduler.kubeScheduler.image``)."""
    out = copy.deepcopy(user or {})
    for k, dv in copy.deepcopy(defaults or {}).items():
        full = f"{chart}.{k}" if chart else k
        if k in out:
            uv = out[k]
            if uv is None:
                del out[k]
            elif isinstance(uv, dict):
                if isinstance(dv, dict):
                    if not helm3:
                        _clean_nils(dv)
                    _tables(uv, dv, full, warn, helm3)
                elif dv is not None and warn:
                    warn(f"warning: skipped value for {full}: Not a table.")
        elif helm3:
            out[k] = dv  # Helm 3 copies the chart's nulls too
        elif dv is not None:
            if isinstance(dv, dict):
                _clean_nils(dv)
            out[k] = dv
    return out  # a user null for a key the chart lacks stays null, as in Helm


def coalesce_tables(dst: dict[str, Any] | None, src: dict[str, Any] | None, warn: Warn = None) -> dict[str, Any]:
    """Helm's ``CoalesceTables(dst, src)`` on copies: ``dst`` wins, ``src`` fills what it lacks."""
    if not src:
        return copy.deepcopy(dst or {})
    if not dst:
        return copy.deepcopy(src)
    return _tables(copy.deepcopy(dst), copy.deepcopy(src), "", warn)


def upgrade_values(new: dict[str, Any], current_config: dict[str, Any], old_defaults: dict[str, Any],
                   new_defaults: dict[str, Any], reset: bool = False, reuse: bool = False,
                   reset_then_reuse: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the release's user values after ``helm upgrade``, the chart defaults its templates use).

    ``new``: the values of the command line (``--values`` files and ``--set``, merged); the flags as
    ``helm upgrade`` reads them (``--reset-values`` wins over ``--reuse-values``, which wins over
    ``--reset-then-reuse-values``):
    * ``--reset-values``: ``new`` over the new chart's defaults; the release's values are dropped;
    * ``--reuse-values``: ``new`` laid over the release's values, over the *old* chart's computed
      values (the new chart's defaults are not used: a key the new chart adds has no default);
    * ``--reset-then-reuse-values``: ``new`` laid over the release's values, over the new chart's
      defaults;
    * none: ``new`` over the new chart's defaults, except that an upgrade given no values at all
      keeps the release's values. So ``--values F`` alone drops every other value the release had.
    """
    if reset:
        return copy.deepcopy(new), new_defaults
    if reuse:
        return coalesce_tables(new, current_config), coalesce(current_config, old_defaults)
    if reset_then_reuse:
        return coalesce_tables(new, current_config), new_defaults
    if not new and current_config:
        return copy.deepcopy(current_config), new_defaults
    return copy.deepcopy(new), new_defaults


def _go(value: Any) -> str:
    """A value as Go's ``%v`` prints it in Helm's warnings (``map[a:1 b:x]``, ``true``)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, before, after) for each leaf that differs; a missing side is ``...`` (Ellipsis).
    A null leaf counts as missing: the templates see the same, and Helm 3 lists the chart's nulls
    where Helm 4 drops them."""
    b = {k: v for k, v in flatten(before, key_text=escape_key).items() if v is not None}
    a = {k: v for k, v in flatten(after, key_text=escape_key).items() if v is not None}
    out = []
    for k in sorted(set(b) | set(a)):
        bv, av = b.get(k, ...), a.get(k, ...)
        if bv != av:
            out.append((k, bv, av))
    return out
