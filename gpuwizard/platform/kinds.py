"""Action kinds and read-only APT probes the platform classes and the steps share (re-exported by
``gpuwizard.steps.common``, where the steps have always found them). Never imports Textual, the
steps or the simulator."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import actions as A
from ..errors import StepFailed
from ..host import Host, join_argv

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import StepContext

CACHE_DIR = "/var/cache/gpuwizard"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def hp(ctx: StepContext, system_path: str) -> str:
    """A system path as a command line argument: mapped under the root (identity on a real host)."""
    return str(ctx.host.path(system_path))


@dataclass
class Check(A.Action):
    """A read-only precondition. Done when it holds; applying it re-checks and fails the step with
    ``failure`` (before anything else changes) when it still does not."""

    id: str
    title: str
    check: Callable[[StepContext], bool]
    failure: str | Callable[[StepContext], str] = ""
    on_failure: Callable[[StepContext], None] | None = None
    reads: list[str] | None = None  # the read-only command it looks through, shown in the plan

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"check: {self.title}"] + ([f"  (reads: $ {join_argv(self.reads)})"] if self.reads else [])

    def is_done(self, ctx: StepContext) -> bool:
        return bool(self.check(ctx))

    def apply(self, ctx: StepContext) -> None:
        if self.check(ctx):
            return
        if self.on_failure is not None:
            self.on_failure(ctx)
        reason = self.failure(ctx) if callable(self.failure) else self.failure
        raise StepFailed(reason or f"check failed: {self.title}")


@dataclass
class RunIf(A.Run):
    """A command whose done-ness needs more than a path or a probe's exit code."""

    done: Callable[[StepContext], bool] | None = None

    def __post_init__(self) -> None:
        if self.done is None:
            super().__post_init__()

    def is_done(self, ctx: StepContext) -> bool:
        if self.done is not None and self.done(ctx):
            return True
        return A.Run.is_done(self, ctx) if (self.creates or self.done_when) else False


@dataclass
class MakeDir(A.Action):
    """A directory (mode 0700 by default) that a command writes into (curl -o, openssl -keyout)."""

    id: str
    title: str
    path: str
    mode: int = 0o700

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"mkdir -m {self.mode:o} -p {self.path}"]

    def is_done(self, ctx: StepContext) -> bool:
        return ctx.host.path(self.path).is_dir()

    def apply(self, ctx: StepContext) -> None:
        ctx.host.path(self.path).mkdir(parents=True, exist_ok=True, mode=self.mode)


# -- APT (Ubuntu, Debian): what the configured archive holds, read at plan time -----------------------
# A package every Debian and Ubuntu archive has (main): when `apt-cache policy` cannot locate it either,
# the package lists are empty (never refreshed) and say nothing about the other names.
APT_SENTINEL = "dkms"
APT_VERSION_ROW = re.compile(r"^ (?:\*\*\*|   ) (\S+) -?\d+$")


def parse_apt_policy(text: str) -> dict[str, dict[str, Any]]:
    """``apt-cache policy NAME...`` (LC_ALL=C) -> {name: {installed, candidate, versions}}; a name
    APT cannot locate has no block (apt prints ``N: Unable to locate package NAME`` to stderr and
    exits 0). ``(none)`` reads as None: a virtual or pinned-away package has no candidate."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = found[line[:-1]] = {"installed": None, "candidate": None, "versions": []}
            continue
        if current is None:
            continue
        field, _, value = line.strip().partition(": ")
        if field in ("Installed", "Candidate"):
            current[field.lower()] = None if value.strip() in ("", "(none)") else value.strip()
        elif (m := APT_VERSION_ROW.match(line)) is not None:
            current["versions"].append(m.group(1))
    return found


def apt_policy(host: Host, names: list[str]) -> dict[str, dict[str, Any]] | None:
    """What the configured archive holds for some packages (one read-only ``apt-cache policy``);
    None when it cannot be told: no apt-cache, the probe failed, or the package lists are empty
    (``APT_SENTINEL`` unknown too), so that ``apt-get update`` has yet to fetch them."""
    result = host.runner.probe(["apt-cache", "policy", *dict.fromkeys([*names, APT_SENTINEL])], timeout=60)
    if result is None or not result.ok:
        return None
    found = parse_apt_policy(result.stdout)
    return found if APT_SENTINEL in found else None


def apt_candidate(policy: dict[str, dict[str, Any]], name: str) -> str | None:
    """The version ``apt-get install NAME`` installs (None: not in the archive, or no candidate)."""
    entry = policy.get(name)
    return entry["candidate"] if entry else None


def deb_upstream(version: str) -> str:
    """The upstream part of a Debian version: ``535.309.01`` of ``535.309.01-0+deb12u1``, ``3.9.0`` of
    ``1:3.9.0-4`` (epoch and Debian revision dropped)."""
    v = version.split(":", 1)[1] if ":" in version else version
    return v.rsplit("-", 1)[0] if "-" in v else v


def parse_dkms_status(text: str) -> list[dict[str, str]]:
    """``dkms status`` -> [{module, version, kernel, arch, state}]. DKMS 3.x prints
    ``nvidia/535.309.01, 6.1.0-57-amd64, amd64: installed``; DKMS 2.x ``nvidia, 565.57.01,
    5.15.0-125-generic, x86_64: installed``; a module only added has no kernel (``nvidia/565.57.01: added``)."""
    found: list[dict[str, str]] = []
    for line in text.splitlines():
        head, sep, state = line.strip().rpartition(": ")
        if not sep:
            continue
        parts = [p.strip() for p in head.split(",")]
        if "/" in parts[0]:
            module, _, version = parts[0].partition("/")
            rest = parts[1:]
        elif len(parts) >= 2:
            module, version, rest = parts[0], parts[1], parts[2:]
        else:
            continue
        found.append({"module": module, "version": version, "kernel": rest[0] if rest else "",
                      "arch": rest[1] if len(rest) > 1 else "", "state": state.split()[0] if state.split() else state})
    return found
