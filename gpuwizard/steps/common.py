"""What the host-layer steps (driver, cuda, container) share: a few more action kinds, fresh probes,
OS families and the version tables of the NVIDIA stack. Never imports Textual."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import actions as A
from .. import compat
from .. import download as D
from .. import platform as P
from .. import versions as V
from ..engine import Event
from ..host import Host, Runner, join_argv
from ..journal import Change, FileChange
from ..platform.kinds import APT_ENV as APT_ENV
from ..platform.kinds import APT_SENTINEL as APT_SENTINEL
from ..platform.kinds import APT_VERSION_ROW as APT_VERSION_ROW
from ..platform.kinds import CACHE_DIR as CACHE_DIR
from ..platform.kinds import Check as Check
from ..platform.kinds import MakeDir as MakeDir
from ..platform.kinds import RunIf as RunIf
from ..platform.kinds import apt_candidate as apt_candidate
from ..platform.kinds import apt_policy as apt_policy
from ..platform.kinds import deb_upstream as deb_upstream
from ..platform.kinds import hp as hp
from ..platform.kinds import parse_apt_policy as parse_apt_policy

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import StepContext


# CUDA toolkit X.Y -> minimum Linux driver (toolkit GA), from the "CUDA Toolkit and Corresponding
# Driver Versions" table, https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/ (Table 3): the
# cuda-driver/<X.Y> rows of the compatibility table, gpuwizard/assets/compat.yaml (gpuwizard.compat),
# read at the first use (not at import: a starting wizard does not wait on the table).
def cuda_min_driver() -> dict[str, str]:
    """CUDA toolkit X.Y -> minimum Linux driver, every row of the table (a new dict each call)."""
    return compat.cuda_min_driver_table()

# CUDA X.Y -> (the latest update's full version, the driver bundled in its runfile name), as in
# https://developer.download.nvidia.com/compute/cuda/<full>/local_installers/cuda_<full>_<drv>_linux.run
# (the seed recipe: cuda_12.6.2_560.35.03_linux.run).
CUDA_RUNFILES: dict[str, tuple[str, str]] = {
    "11.8": ("11.8.0", "520.61.05"),
    "12.0": ("12.0.1", "525.85.12"),
    "12.1": ("12.1.1", "530.30.02"),
    "12.2": ("12.2.2", "535.104.05"),
    "12.3": ("12.3.2", "545.23.08"),
    "12.4": ("12.4.1", "550.54.15"),
    "12.5": ("12.5.1", "555.42.06"),
    "12.6": ("12.6.2", "560.35.03"),
    "12.8": ("12.8.1", "570.124.06"),
    "12.9": ("12.9.1", "575.57.08"),
}


def meets_minimum(driver_version: str, minimum: str) -> bool:
    """Whether a driver meets a minimum driver version, compared on as many parts as the driver
    gives: a bare branch (``565``) stands for every release of it, so ``570`` meets ``570.26`` and
    ``560`` meets ``560.28.03``; a full version compares in full (``570.26`` meets ``570.26``,
    ``565.57.01`` does not meet ``570.26``)."""
    have = V.parse(driver_version).release
    return have >= V.parse(minimum).release[: len(have)]


def cuda_for_driver(driver_version: str) -> str | None:
    """The newest CUDA X.Y of NVIDIA's table whose minimum driver the given driver (a version or a
    bare branch such as 565) meets."""
    fits = [xy for xy, need in cuda_min_driver().items() if meets_minimum(driver_version, need)]
    return max(fits, key=V.key) if fits else None


def newest_cuda_for(driver_cuda: str | None) -> str | None:
    """The newest toolkit X.Y we know that a driver reporting ``driver_cuda`` can run."""
    if not driver_cuda:
        return None
    fits = [v for v in CUDA_RUNFILES if V.key(v) <= V.key(driver_cuda)]
    return max(fits, key=V.key) if fits else None


# -- OS families: the platform layer (gpuwizard/platform) -------------------------------------------
def os_family(host_facts: dict[str, Any]) -> str:
    """``ubuntu``, ``debian``, ``rhel`` or ``other``."""
    return P.family(host_facts)


def platform(host_facts: dict[str, Any]) -> P.Platform:
    """The platform (package manager) of the target host: gpuwizard/platform."""
    return P.for_host(host_facts)


def nvidia_repo_distro(host_facts: dict[str, Any]) -> str:
    """``ubuntu2204`` / ``debian12`` / ``rhel9`` as NVIDIA's CUDA repository paths spell it."""
    return P.for_host(host_facts).repo_distro


def repo_arch(host_facts: dict[str, Any]) -> str:
    return P.for_host(host_facts).repo_arch


# -- probes ---------------------------------------------------------------------------------------
def driver_now(host: Host) -> dict[str, Any]:
    """A fresh look at the driver through nvidia-smi: {status, version, cuda_version, gpus}."""
    from ..detect import probe_smi

    smi = probe_smi(host)
    if smi is None:
        return {"status": "no-driver", "version": None, "cuda_version": None, "gpus": []}
    if smi["status"] != "ok":
        return {"status": smi["status"], "reason": smi.get("reason"), "version": None, "cuda_version": None, "gpus": []}
    drv = smi.get("driver") or {}
    return {"status": "ok", "version": drv.get("version"), "cuda_version": drv.get("cuda_version"), "gpus": smi["gpus"]}


def driver_seen(ctx: StepContext) -> dict[str, Any]:
    """The driver as a plan sees it (the facts, with what an earlier step of this run promises), or,
    while running, a fresh look through nvidia-smi."""
    if not ctx.planning:
        return driver_now(ctx.host)
    facts = ctx.facts
    drv = facts.get("driver") or {}
    status = facts.get("driver_status") or ("ok" if drv else "no-driver")
    return {"status": status, "version": drv.get("version"), "cuda_version": drv.get("cuda_version"),
            "gpus": facts.get("gpus") or [], "promised": bool(drv.get("promised")),
            "archive_only": bool(drv.get("archive_only"))}


def runner_with_path(host: Host, *dirs: str) -> Runner:
    """A runner whose PATH starts with some system dirs (e.g. /usr/local/cuda-12.6/bin): tools are
    still found on a PATH, the one a user gets from the env file."""
    base = host.runner
    path = ":".join([*(str(host.path(d)) for d in dirs), base.path])
    runner = Runner(path=path, env=base.extra_env, privilege=base.privilege, dry_run=base.dry_run,
                    default_timeout=base.default_timeout)
    runner.listeners = base.listeners
    runner.command_listeners = base.command_listeners  # the log records its commands too
    runner.cancel = base.cancel
    return runner


# -- more action kinds ------------------------------------------------------------------------------
@dataclass
class RebootUnless(A.Reboot):
    """A reboot that is only needed when ``unless`` does not hold by the time the engine gets here
    (e.g. the new driver loaded without one)."""

    unless: Callable[[StepContext], bool] | None = None

    def preview(self, ctx: StepContext) -> list[str]:
        # the base lines after the first (what follows the reboot; reboot: auto's unit in as_json) stay as they are
        return [f"reboot only if needed: {self.reason}", *super().preview(ctx)[1:]]

    def is_done(self, ctx: StepContext) -> bool:
        return super().is_done(ctx) or bool(self.unless and self.unless(ctx))


@dataclass
class Download(A.Action):
    """Fetch an installer into the cache (resumable, checksum-verified) or copy a local one there.
    The cached file exists only once verified, so running it never runs an unverified file."""

    id: str
    title: str
    source: str  # http(s) URL, or an absolute path on this machine
    dest: str  # system path in the cache
    sha256: str | None = None
    upstream: str | None = None  # where ``source`` comes from, when a mirror's or a bundle's (mirrored())

    def mirrored(self, ctx: StepContext) -> Download:
        """Fetched from the mirror of its source (or an offline bundle's copy) where the session has
        one (gpuwizard/network.py)."""
        self.upstream = ctx.net.origin(self.source)
        self.source = ctx.net.url(self.source)
        return self

    def preview(self, ctx: StepContext) -> list[str]:
        how = "download" if self.source.startswith(("http://", "https://")) else "copy"
        lines = [f"{how} {self.source}" + (f" ({self.upstream})" if self.upstream else ""), f"  -> {self.dest}"]
        lines.append(f"  verify sha256 {self.sha256}" if self.sha256 else "  (no sha256 given: the file is not verified)")
        return lines

    def is_done(self, ctx: StepContext) -> bool:
        return D.verified(ctx.host.path(self.dest), self.sha256)

    def journal(self, ctx: StepContext) -> list[Change]:
        return [FileChange(self.dest, drift=False), *self.changes]

    def apply(self, ctx: StepContext) -> None:
        if ctx.host.dry_run:
            ctx.host.runner.recorded.append(["<download>", self.source, self.dest])
            return
        target = ctx.host.path(self.dest)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.source.startswith(("http://", "https://")):
            D.copy_local(self.source, target, sha256=self.sha256)
            return
        reporter = _ProgressReporter(ctx, self.source)
        D.download(self.source, target, sha256=self.sha256, progress=reporter)
        if not self.sha256:
            ctx.note(f"{PurePosixPath(self.dest).name}: no sha256 in the answer file, so it was not verified")


class _ProgressReporter:
    """Download progress as output events: every 10 % (or every 8 MiB when the size is unknown)."""

    def __init__(self, ctx: StepContext, url: str):
        self.ctx, self.url = ctx, url
        self.last = -1
        self.started = time.monotonic()

    def __call__(self, done: int, total: int | None) -> None:
        mark = (done * 10 // total) if total else done // (8 << 20)
        if mark == self.last and not (total and done >= total):
            return
        self.last = mark
        mib = done / (1 << 20)
        text = f"downloaded {mib:.1f} MiB" + (f" of {total / (1 << 20):.1f} MiB ({done * 100 // total}%)" if total else "")
        engine = self.ctx.engine
        engine.emit(Event("output", self.ctx.step_id, self.ctx.current_action, text, stream="stdout", data={"lines": [text]}))
        engine.emit(Event("progress", self.ctx.step_id, self.ctx.current_action, data={"done": done, "total": total}))


def cmd(argv: list[str]) -> str:
    return join_argv(argv)


def image_slug(ref: str) -> str:
    """An image reference as part of an action id: readable, and unique (two long references that
    share their first 50 characters, a mirror's path say, differ by the hash)."""
    import hashlib

    return re.sub(r"[^a-z0-9]+", "-", ref.lower()).strip("-")[:50] + "-" + hashlib.sha256(ref.encode()).hexdigest()[:8]


def load_images(ctx: StepContext, refs: list[str]) -> list[A.Action]:
    """From an offline bundle (``--bundle``): ``docker load -i ARCHIVE`` for each of ``refs`` it holds,
    done once Docker has the image; nothing without a bundle (Docker pulls them)."""
    out: list[A.Action] = []
    for ref in refs:
        local = ctx.net.local_images.get(ref)
        if local is None:
            continue
        archive, loaded = local

        def present(c: StepContext, loaded: str = loaded) -> bool:
            result = c.host.runner.probe(["docker", "image", "inspect", loaded])
            return bool(result and result.ok)

        out.append(RunIf(f"load-image-{image_slug(loaded)}", f"load {loaded} into Docker from the offline bundle ({archive})",
                         ["docker", "load", "-i", archive], done=present))
    return out

