"""The platform layer's base: what every OS family answers, and the defaults of a distribution
gpuwizard has no package manager for (NVIDIA's .run files only, upstream DKMS's key paths).

A platform is chosen from the target host's facts (``facts["host"]``: ``os``, ``id_like``,
``version``, ``arch``), never from the machine gpuwizard runs on. Its methods return plan actions
(gpuwizard.actions and .kinds) or read facts through the host's runner; a step asks it instead of
branching on the OS family.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import actions as A
from .. import versions as V
from ..errors import PlanRefused, StepFailed
from ..host import SYSTEMD_RUNTIME_DIR as SYSTEMD_DIR
from .kinds import RunIf, parse_dkms_status

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import StepContext

# Debian's DKMS (and upstream DKMS 3.x, which EPEL ships) signs with /var/lib/dkms/mok.key and its
# DER certificate mok.pub ("Signing key: /var/lib/dkms/mok.key", "Public certificate (MOK):
# /var/lib/dkms/mok.pub" in a DKMS build log; ../shared/research/real-world.md, Debian 12).
DKMS_MOK_DIR = "/var/lib/dkms"
KERNEL_FLAVOUR = re.compile(r"^\d+\.\d+\.\d+-\d+-(?P<flavour>[a-z][a-z0-9-]*)$")  # 6.1.0-57-amd64, 5.15.0-125-generic
CUDA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos"

Done = Callable[["StepContext"], bool]


def kernel_key(release: str) -> tuple[tuple[int, int | str], ...]:
    """Version order of kernel releases: ``6.1.0-57-amd64`` after ``6.1.0-9-amd64`` (numbers compare
    as numbers, the rest as text)."""
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", release) if t)


def nvidia_builds(status: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """The NVIDIA kernel modules ``dkms status`` lists as built and installed for a kernel (Debian
    names its module ``nvidia-current``, NVIDIA's packages ``nvidia``)."""
    return [e for e in status or [] if e["module"].startswith("nvidia") and e["kernel"] and e["state"] == "installed"]


def driver_branch(wanted: str) -> str:
    """The driver branch of a wanted version: ``565`` of ``565.57.01`` (or of ``565``)."""
    return str(V.parse(wanted).release[0])


@dataclass
class DriverInstall:
    """What a platform's driver install is: its actions, the package named in the plan, the version
    (or branch) the plan can promise (None: it cannot know), and whether the archive has only it."""

    actions: list[A.Action] = field(default_factory=list)
    package: str = ""
    promised: str | None = None
    archive_only: bool = False


@dataclass(frozen=True)
class ArchiveDriver:
    """The driver a one-driver archive (Debian's) installs, as `apt-cache policy` showed it."""

    package: str             # nvidia-driver
    candidate: str           # 535.309.01-0+deb12u1
    version: str             # 535.309.01
    open_module: str | None  # nvidia-open-kernel-dkms when module: open and the archive has it at that version


class Platform:
    """A distribution without a package manager gpuwizard knows: the .run installers only."""

    family = "other"
    manager: str | None = None                       # "apt" / "dnf": the package manager's name
    env: dict[str, str] | None = None                # the package manager's environment
    headers: tuple[str, ...] = ("kernel-devel-{kernel}",)  # a kernel's headers, "{kernel}" filled in
    initramfs: tuple[str, ...] = ("dracut", "-f")   # rebuilds the initramfs
    key_dir = DKMS_MOK_DIR                           # where this distribution's DKMS keeps its signing key
    key = DKMS_MOK_DIR + "/mok.key"                  # the private key DKMS signs with
    cert = DKMS_MOK_DIR + "/mok.pub"                 # its certificate (DER): the one mokutil enrols
    key_dir_mode = 0o755
    kernel_package = ""                              # the metapackage of the archive's current kernel, "{flavour}"
    archive_driver: str | None = None                # a one-driver archive's package (Debian: nvidia-driver)
    archive_open: str | None = None                  # that archive's open kernel module flavour
    archive_sources = ""                             # where its components are enabled, for the refusal text
    packages = False                                 # the driver and CUDA come as packages (method: package)

    def __init__(self, host: dict[str, Any]):
        self.host = host

    # -- who it is ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.host.get("pretty_name") or self.host.get("os") or "this distribution")

    @property
    def major(self) -> int:
        """The distribution's major version (9 of "9.5"; 0 when unknown)."""
        m = re.match(r"\d+", str(self.host.get("version") or ""))
        return int(m.group(0)) if m else 0

    @property
    def arch(self) -> str:
        return str(self.host.get("arch") or "x86_64")

    @property
    def repo_distro(self) -> str:
        """``ubuntu2204`` / ``debian12`` / ``rhel9`` as NVIDIA's CUDA repository paths spell it."""
        return f"rhel{self.major or ''}"

    @property
    def repo_arch(self) -> str:
        return {"aarch64": "sbsa", "arm64": "sbsa"}.get(self.arch, self.arch)

    def cuda_repo_url(self, name: str) -> str:
        return f"{CUDA_REPOS}/{self.repo_distro}/{self.repo_arch}/{name}"

    # -- packages -------------------------------------------------------------------------------
    def headers_packages(self, kernel: str) -> list[str]:
        return [h.format(kernel=kernel) for h in self.headers]

    def install_argv(self, packages: list[str]) -> list[str]:
        raise StepFailed(f"gpuwizard has no package manager for {self.name}")

    def install(self, id: str, title: str, packages: list[str], *, creates: str | None = None,
                done_when: list[str] | None = None, done: Done | None = None, timeout: float | None = None) -> A.Run:
        """One install command of the package manager (versions as ``name=version`` / ``name-version``)."""
        return RunIf(id, title, self.install_argv(packages), creates=creates, done_when=done_when, env=self.env,
                     timeout=timeout, done=done)

    def refresh(self, ctx: StepContext, done: Done) -> list[A.Action]:
        """Refresh the package lists (APT); dnf refreshes its metadata itself."""
        return []

    def packages_of(self, argv: list[str]) -> list[str]:
        """The packages an install command of this platform (:meth:`install_argv`) installs; empty for
        any other command (an offline bundle collects them, gpuwizard/packages.py)."""
        try:
            prefix = self.install_argv([])
        except StepFailed:
            return []
        return [str(a) for a in argv[len(prefix):]] if argv[:len(prefix)] == prefix else []

    def installed_argv(self, package: str) -> list[str]:
        """A read-only query that exits 0 when the package is installed and prints its version."""
        raise StepFailed(f"gpuwizard has no package manager for {self.name}")

    def installed_version(self, ctx: StepContext, package: str) -> str | None:
        """The installed version of a package (None: not installed, or no package manager)."""
        if not self.manager:
            return None
        result = ctx.host.runner.probe(self.installed_argv(package))
        return result.stdout.strip() or None if result and result.ok else None

    def dkms_status(self, ctx: StepContext) -> list[dict[str, str]] | None:
        """``dkms status``: which modules DKMS built for which kernels (None: no dkms)."""
        result = ctx.host.runner.probe(["dkms", "status"])
        return parse_dkms_status(result.stdout) if result and result.ok else None

    def boot_kernel(self, ctx: StepContext) -> str | None:
        """The kernel the next boot runs, read under the host root: the newest installed kernel image,
        ``/boot/vmlinuz-<release>`` by version order (Debian's and Ubuntu's update-grub list kernels
        newest first and GRUB_DEFAULT=0 boots the first; RHEL's kernel-install makes a newly installed
        kernel the default). None when /boot holds no kernel image (a container or a chroot): then
        the running kernel (``uname -r``) is the only one known."""
        releases = [PurePosixPath(p).name[len("vmlinuz-"):] for p in ctx.host.glob("/boot/vmlinuz-*")]
        releases = [r for r in releases if r and not r.endswith((".old", ".bak"))]
        return max(releases, key=kernel_key) if releases else None

    def rebuild_initramfs(self, id: str, title: str, done: Done) -> A.Action:
        return RunIf(id, title, list(self.initramfs), done=done)

    # -- services -------------------------------------------------------------------------------
    def has_systemd(self, ctx: StepContext) -> bool:
        return ctx.host.systemd_booted()

    def no_systemd(self, unit: str, why: str) -> str:
        return (f"{why}, but this host does not run systemd ({SYSTEMD_DIR} is absent; `systemctl` says "
                "\"System has not been booted with systemd\" there); gpuwizard changed nothing. Boot the host with "
                f"systemd, or start {unit} by hand with the configuration gpuwizard would write, then run gpuwizard again")

    def restart(self, ctx: StepContext, id: str, title: str, unit: str, *, done: Done,
                disruptive: str | None = None) -> A.Action:
        """``systemctl restart UNIT``; without systemd a refusal at plan time (PlanRefused), unless
        the restart is already done."""
        if not self.has_systemd(ctx) and not done(ctx):
            raise PlanRefused(self.no_systemd(unit, f"{unit} must restart to load its new configuration"))
        return RunIf(id, title, ["systemctl", "restart", unit], done=done, disruptive=disruptive)

    def enable_now(self, ctx: StepContext, id: str, title: str, unit: str) -> A.Action:
        """``systemctl enable --now UNIT`` (done once it is active); without systemd a refusal."""
        if not self.has_systemd(ctx):
            raise PlanRefused(self.no_systemd(unit, f"{unit} must be enabled and started"))
        return A.Run(id, title, ["systemctl", "enable", "--now", unit], done_when=["systemctl", "is-active", "--quiet", unit])

    # -- the NVIDIA stack as packages --------------------------------------------------------------
    def driver_archive(self, ctx: StepContext, module: str | None, wanted: str, kernel: str,
                       headers: str) -> ArchiveDriver | None:
        """What the configured archive holds for the driver, read before any change (refusing what it
        cannot give); None where the platform has nothing to read."""
        return None

    def driver_install(self, ctx: StepContext, module: str | None, wanted: str, kernel: str, headers: str,
                       archive: ArchiveDriver | None) -> DriverInstall:
        raise StepFailed(f"there is no package method for {self.name}")

    def cuda_toolkit(self, ctx: StepContext, xy: str, nvcc: str) -> list[A.Action]:
        raise StepFailed(f"there is no package method for the CUDA toolkit on {self.name}; use cuda.method: runfile")

    def python_venv(self) -> list[A.Action]:
        """What `python3 -m venv` needs beyond python3 itself."""
        return []

    def container_toolkit(self, ctx: StepContext) -> list[A.Action]:
        raise StepFailed(f"no package source for nvidia-container-toolkit on {self.name}; "
                         "install it by hand (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/) and run again")

    def install_docker(self, ctx: StepContext) -> list[A.Action]:
        raise StepFailed("install_docker is supported on Ubuntu/Debian (docker.io); on this host install "
                         "Docker CE from https://docs.docker.com/engine/install/ and run again")
