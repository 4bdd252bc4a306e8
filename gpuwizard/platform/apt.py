"""APT: Ubuntu and Debian (and their derivatives, by ``ID_LIKE``)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from .. import actions as A
from .. import versions as V
from ..errors import PlanRefused
from ..journal import FileChange
from .base import KERNEL_FLAVOUR, ArchiveDriver, Done, DriverInstall, Platform, driver_branch
from .kinds import (
    APT_ENV,
    CACHE_DIR,
    Check,
    Dearmor,
    Fetch,
    MakeDir,
    RunIf,
    apt_candidate,
    apt_policy,
    deb_upstream,
    hp,
    pgp_fingerprints,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import StepContext

# Where Ubuntu's DKMS looks for the Machine Owner Key it signs modules with (shim-signed); the
# runfile installer is given the same pair through --module-signing-*-key.
MOK_DIR = "/var/lib/shim-signed/mok"
MOK_PRIV = MOK_DIR + "/MOK.priv"
MOK_DER = MOK_DIR + "/MOK.der"

# NVIDIA's container toolkit repository, APT flavour.
KEY_URL = "https://nvidia.github.io/libnvidia-container/gpgkey"
KEY_CACHE = CACHE_DIR + "/nvidia-container-toolkit.gpgkey"
KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
# NVIDIA's libnvidia-container signing key, as seen in NVIDIA/nvidia-container-toolkit issues #650/#1460.
KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
APT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
CTK_UPSTREAM = "https://nvidia.github.io/libnvidia-container"  # a mirror of it replaces this base
# https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list, with the
# signed-by the install guide's sed adds.
APT_LIST_CONTENT = (
    f"deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
)
CUDA_KEYRING_DEB = "cuda-keyring_1.1-1_all.deb"  # NVIDIA's CUDA repository + key, one per distribution


def cuda_for_driver(version: str) -> str | None:
    from ..steps.common import cuda_for_driver as table  # the CUDA/driver table lives with the steps

    return table(version)


class Apt(Platform):
    """Ubuntu and Debian. Ubuntu: ``ubuntu-drivers`` or ``nvidia-driver-<branch>[-open]``, its DKMS
    signs with shim-signed's MOK. Debian: the archive's one driver (``nvidia-driver``, non-free), its
    DKMS signs with /var/lib/dkms/mok.key."""

    manager = "apt"
    env = APT_ENV
    headers = ("linux-headers-{kernel}",)
    initramfs = ("update-initramfs", "-u")
    packages = True

    def __init__(self, host: dict[str, Any], distro: str):
        super().__init__(host)
        self.family = distro  # "ubuntu" or "debian"
        if distro == "ubuntu":
            self.key_dir, self.key, self.cert, self.key_dir_mode = MOK_DIR, MOK_PRIV, MOK_DER, 0o700
            self.kernel_package = "linux-{flavour}"
        else:
            # Debian 12 (../shared/upstream/debian-12/apt-cache.txt): nvidia-driver 535.309.01-0+deb12u1
            # (non-free) with nvidia-kernel-dkms of the same version; nvidia-open-kernel-dkms only at
            # 535.261.03-1 (contrib)
            self.kernel_package = "linux-image-{flavour}"
            self.archive_driver = "nvidia-driver"
            self.archive_open = "nvidia-open-kernel-dkms"
            self.archive_sources = ("the contrib and non-free components in /etc/apt/sources.list.d/debian.sources "
                                    "(Components: main contrib non-free non-free-firmware)")

    @property
    def repo_distro(self) -> str:
        version = str(self.host.get("version") or "")
        if self.family == "ubuntu":
            return "ubuntu" + version.replace(".", "")
        return "debian" + version.split(".")[0]

    def install_argv(self, packages: list[str]) -> list[str]:
        return ["apt-get", "install", "-y", *packages]

    def installed_argv(self, package: str) -> list[str]:
        return ["dpkg-query", "-W", "-f", "${Version}", package]

    def refresh(self, ctx: StepContext, done: Done) -> list[A.Action]:
        return [update(ctx, done=done)]

    def headers_refusal(self, kernel: str, missing: list[str]) -> str:
        """Why a plan stops when the archive has no headers for the running kernel, and the way out."""
        m = KERNEL_FLAVOUR.match(kernel)
        flavour = m.group("flavour") if m else {"x86_64": "amd64", "aarch64": "arm64"}.get(self.arch, self.arch)
        kpkg = self.kernel_package.format(flavour=flavour) if self.kernel_package else "the distribution's kernel package"
        return (f"the configured archive has no kernel headers for the running kernel {kernel} (`apt-cache policy "
                f"{' '.join(missing)}`: Unable to locate package), so the NVIDIA module cannot be built for it; gpuwizard "
                "changed nothing. An archive has headers only for its current kernel: install the current kernel "
                f"(`apt-get update && apt-get install -y {kpkg}`), reboot into it, then run `gpuwizard --resume` "
                "(or the same command again when no run was saved)")

    # -- the driver --------------------------------------------------------------------------------
    def driver_archive(self, ctx: StepContext, module: str | None, wanted: str, kernel: str,
                       headers: str) -> ArchiveDriver | None:
        """What the configured APT archive holds for this plan, read with one `apt-cache policy` before
        any change; refuses (PlanRefused) what it cannot give. None: the archive cannot be read now
        (empty package lists, no apt-cache), so the plan checks again after `apt-get update`."""
        need_headers = [] if ctx.host.exists(headers) else self.headers_packages(kernel)
        names = need_headers + [n for n in (self.archive_driver, self.archive_open) if n]
        if not names:
            return None
        policy = bundle_policy(ctx, names)
        if policy is None:
            if need_headers:
                ctx.decide("the package lists cannot be read yet (`apt-cache policy` found nothing): the kernel headers "
                           "are checked after `apt-get update`, before anything is installed")
            if self.archive_driver:
                ctx.decide(f"the package lists cannot be read yet: the driver is the archive's {self.archive_driver}, "
                           "whichever version it has (not checked against driver.version or module)")
            return None
        missing = [n for n in need_headers if not apt_candidate(policy, n)]
        if missing:
            raise PlanRefused(self.headers_refusal(kernel, missing))
        if not self.archive_driver:
            return None
        name = self.archive_driver
        candidate = apt_candidate(policy, name)
        where = self.name
        if not candidate:
            raise PlanRefused(f"{name} is not in the configured archive of {where} (`apt-cache policy {name}` finds no "
                              f"candidate); gpuwizard changed nothing. Enable {self.archive_sources}, run `apt-get update`, "
                              "then run gpuwizard again")
        version = deb_upstream(candidate)
        cuda = cuda_for_driver(version)
        offers = (f"{where}'s archive has one NVIDIA driver: {name} {candidate} (branch {driver_branch(version)}"
                  + (f", which runs CUDA up to {cuda}" if cuda else "") + ")")
        if wanted != "recommended" and V.parse(version).release[: len(V.parse(wanted).release)] != V.parse(wanted).release:
            raise PlanRefused(f"driver.version {wanted}: {offers}, and apt installs only that candidate; gpuwizard "
                              f"changed nothing. Set driver.version to \"{driver_branch(version)}\" (or leave it out), or install "
                              f"NVIDIA's .run file: driver: {{method: runfile, version: <a full {driver_branch(wanted)} release>}}")
        open_pkg = None
        if module == "open" and self.archive_open:
            open_candidate = apt_candidate(policy, self.archive_open)
            if not open_candidate or deb_upstream(open_candidate) != version:
                has = (f"only at {deb_upstream(open_candidate)} ({self.archive_open} {open_candidate})" if open_candidate
                       else "not at all")
                raise PlanRefused(f"driver.module open: {offers}, and its open kernel module is in the archive {has}, "
                                  f"while {name} {version} needs the module of its own version; gpuwizard changed nothing. "
                                  "Leave driver.module out (the archive's proprietary module, nvidia-kernel-dkms), or "
                                  "install NVIDIA's .run file: driver: {method: runfile, module: open, version: <a full release>}")
            open_pkg = self.archive_open
        ctx.decide(f"{offers}: the plan installs it" + (f" with {open_pkg}" if open_pkg else ""))
        return ArchiveDriver(name, candidate, version, open_pkg)

    def driver_install(self, ctx: StepContext, module: str | None, wanted: str, kernel: str, headers: str,
                       archive: ArchiveDriver | None) -> DriverInstall:
        promised: str | None
        bundled = _bundle_driver(ctx, module) if self.family == "ubuntu" and wanted == "recommended" else None
        if bundled:  # what the bundle holds, by apt: ubuntu-drivers could pick what it lacks (a modules package)
            pkg, argv = bundled, self.install_argv([bundled])
            promised = bundled.split("-")[2]
            ctx.decide(f"the offline bundle's driver package {pkg}, installed by apt (ubuntu-drivers would choose "
                       "from the host's own lists, which may name packages the bundle lacks)")
        elif self.family == "ubuntu":
            if wanted == "recommended":
                pkg = _recommended_package(ctx) or "nvidia-driver (recommended)"
                argv = ["ubuntu-drivers", "install"]
                m = re.match(r"nvidia-driver-(\d+)", pkg)
                promised = m.group(1) if m else None
                if m:  # what ubuntu-drivers installs (packages.installs reads it: an offline bundle holds it)
                    ctx.plan_data["packages"] = [pkg]
            else:
                pkg = f"nvidia-driver-{driver_branch(wanted)}" + ("-open" if module == "open" else "")
                argv = self.install_argv([pkg])
                promised = driver_branch(wanted)  # apt installs the branch's package, whatever release the archive has
        else:
            pkg = "nvidia-driver"
            argv = self.install_argv([pkg])
            promised = None if wanted == "recommended" else wanted
            if archive is not None:  # the archive's one driver: what apt installs, whatever was asked
                argv = self.install_argv([archive.package, *([archive.open_module] if archive.open_module else [])])
                promised = archive.version
        done_pkg = ["dpkg", "-s", pkg]

        def installed(c: StepContext) -> bool:
            r = c.host.runner.probe(done_pkg)
            return bool(r and r.ok)

        acts: list[A.Action] = self.refresh(ctx, lambda c: installed(c) or c.done_this_run("apt-update"))
        if not ctx.host.exists(headers):
            hdr = self.headers_packages(kernel)
            if archive is None:  # the archive could not be read at plan time
                acts.append(Check("headers-in-archive", f"the archive has the kernel headers for {kernel} ({' '.join(hdr)})",
                                  lambda c: _archive_has(c, hdr), self.headers_refusal(kernel, hdr),
                                  reads=["apt-cache", "policy", *hdr]))
            acts.append(A.Run("kernel-headers", f"install the kernel headers for {kernel} ({' '.join(hdr)})",
                              self.install_argv(hdr), creates=headers, env=APT_ENV))
        note = " (Debian: needs the contrib and non-free components in the APT sources)" if self.family == "debian" else ""
        acts.append(RunIf("install", f"install the driver package {pkg}{note}", argv, env=APT_ENV, done=installed, timeout=3600))
        return DriverInstall(acts, pkg, promised, archive is not None)

    # -- CUDA, Python, containers --------------------------------------------------------------------
    def cuda_toolkit(self, ctx: StepContext, xy: str, nvcc: str) -> list[A.Action]:
        distro, arch = self.repo_distro, self.repo_arch
        deb = f"{CACHE_DIR}/{CUDA_KEYRING_DEB}"
        url = self.cuda_repo_url(CUDA_KEYRING_DEB)
        pkg = "cuda-toolkit-" + xy.replace(".", "-")
        def keyring_ok(c: StepContext) -> bool:
            r = c.host.runner.probe(["dpkg", "-s", "cuda-keyring"])
            return bool(r and r.ok)

        return [
            MakeDir("cache-dir", f"the download cache ({CACHE_DIR})", CACHE_DIR),
            download(ctx, "keyring-download", f"download NVIDIA's cuda-keyring package ({distro}/{arch})", url, deb,
                     done=lambda c: keyring_ok(c) or c.host.exists(deb)),
            RunIf("keyring", "install cuda-keyring (NVIDIA's repository and its signing key)",
                  ["dpkg", "-i", hp(ctx, deb)], done=keyring_ok),
            *self._cuda_list_mirror(ctx),
            update(ctx, done=lambda c: c.host.exists(nvcc) or (c.action_record("apt-update") or {}).get("outcome") == "changed"),
            A.Run("install", f"install {pkg}", self.install_argv([pkg]), creates=nvcc, env=APT_ENV, timeout=3600),
        ]

    def _ctk_list(self, ctx: StepContext) -> A.WriteFile:
        """The toolkit's sources.list.d entry, naming the answer file's mirror of the repository where
        there is one (a line that outlives the run: never an offline bundle's address)."""
        base, upstream = ctx.net.lasting(CTK_UPSTREAM)
        shown = f" from {base} (mirror of {upstream})" if upstream else ""
        return A.WriteFile("repo-list", f"add NVIDIA's container toolkit repository ({APT_LIST}){shown}", APT_LIST,
                           APT_LIST_CONTENT.replace(CTK_UPSTREAM, base))

    def _cuda_list_mirror(self, ctx: StepContext) -> list[A.Action]:
        """cuda-keyring's sources.list.d entry names NVIDIA's site; with a mirror of the CUDA repository
        it is rewritten to name the mirror (the same line otherwise: the package's key still signs it)."""
        line_url = self.cuda_repo_url("")
        url, upstream = ctx.net.lasting(line_url)
        if upstream is None:
            return []
        listing = f"/etc/apt/sources.list.d/cuda-{self.repo_distro}-{self.repo_arch}.list"
        content = f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {url} /\n"
        return [A.WriteFile("cuda-list-mirror", f"point cuda-keyring's {listing} at {url} (mirror of {upstream})",
                            listing, content, mode=0o644, backup=True)]

    def python_venv(self) -> list[A.Action]:
        # Ubuntu/Debian ship python3 without venv support ("ensurepip is not available")
        return [A.Run("python3-venv", "install python3-venv (python3 -m venv needs it on Ubuntu/Debian)",
                      self.install_argv(["python3-venv"]), done_when=["dpkg", "-s", "python3-venv"],
                      env=APT_ENV, timeout=1800)]

    def container_toolkit(self, ctx: StepContext) -> list[A.Action]:
        installed = ["nvidia-ctk", "--version"]
        return [
            MakeDir("cache-dir", f"the download cache ({CACHE_DIR})", CACHE_DIR),
            download(ctx, "repo-key-download", f"download NVIDIA's repository key ({KEY_URL})", KEY_URL, KEY_CACHE,
                     done=lambda c: c.host.exists(KEYRING)),
            (A.Run("repo-key", f"install the key as an APT keyring ({KEYRING})",
                   ["gpg", "--batch", "--yes", "--dearmor", "-o", hp(ctx, KEYRING), hp(ctx, KEY_CACHE)],
                   creates=KEYRING).with_changes(FileChange(KEYRING))
             if ctx.has_tool("gpg") else
             Dearmor("repo-key", f"install the key as an APT keyring ({KEYRING})", KEY_CACHE, KEYRING)),
            Check("repo-key-fingerprint", f"the keyring holds NVIDIA's key {KEY_FINGERPRINT}",
                  lambda c: KEY_FINGERPRINT in fingerprints(c),
                  lambda c: f"{KEYRING} holds {', '.join(fingerprints(c)) or 'no key'}, not NVIDIA's {KEY_FINGERPRINT}; "
                            "it was removed and the repository was not added",
                  on_failure=lambda c: os.unlink(c.host.path(KEYRING)) if c.host.exists(KEYRING) else None),
            self._ctk_list(ctx),
            update(ctx, done_when=installed, done=lambda c: c.done_this_run("apt-update")),
            A.Run("install-toolkit", "install nvidia-container-toolkit", self.install_argv(["nvidia-container-toolkit"]),
                  done_when=installed, env=APT_ENV, timeout=1800),
        ]

    def install_docker(self, ctx: StepContext) -> list[A.Action]:
        return [
            A.Run("install-docker", "install Docker (docker.io)", self.install_argv(["docker.io"]),
                  done_when=["docker", "--version"], env=APT_ENV, timeout=1800),
            self.enable_now(ctx, "start-docker", "enable and start Docker", "docker"),
        ]


def update(ctx: StepContext, *, done: Done, done_when: list[str] | None = None) -> A.Action:
    """``apt-get update``; with an offline bundle's packages the title names its repository, which
    apt reads through APT_CONFIG for gpuwizard's commands only (gpuwizard/packages.py)."""
    title = "refresh the package lists"
    local = ctx.net.local_apt
    if local:
        title += f" (with the offline bundle's packages: file:{local}, for gpuwizard's apt commands only)"
    return RunIf("apt-update", title, ["apt-get", "update"], env=APT_ENV, done_when=done_when, done=done)


def download(ctx: StepContext, id: str, title: str, url: str, dest: str, *, done: Done) -> A.Action:
    """``curl -fsSL -o DEST URL`` where the host has curl, else gpuwizard's built-in downloader (a
    minbase Debian has no curl): decided at plan time from the target's PATH."""
    if ctx.net.origin(url):  # a mirror's (or an offline bundle's), where the session has one
        title += f" from {ctx.net.show(url)}"
    url = ctx.net.url(url)
    if ctx.has_tool("curl"):
        return RunIf(id, title, ["curl", "-fsSL", "-o", hp(ctx, dest), url], done=done)
    return Fetch(id, title, url, dest, done=done)


def fingerprints(ctx: StepContext) -> list[str]:
    if ctx.host.runner.which("gpg") is None:  # no gnupg: the keyring's packets read in Python
        try:
            return pgp_fingerprints(ctx.host.path(KEYRING).read_bytes())
        except (OSError, ValueError, IndexError):
            return []
    result = ctx.host.runner.probe(["gpg", "--show-keys", "--with-colons", hp(ctx, KEYRING)])
    if not result or not result.ok:
        return []
    return [line.split(":")[9] for line in result.stdout.splitlines() if line.startswith("fpr:") and len(line.split(":")) > 9]


def bundle_policy(ctx: StepContext, names: list[str]) -> dict[str, dict[str, Any]] | None:
    """`apt-cache policy` as apt answers it once the run's `apt-get update` has read an offline
    bundle's repository too: the bundle's version is the candidate of each package it holds (its pin
    is 990), before the update has even run; None where it cannot be told (see ``apt_policy``)."""
    from ..packages import held

    bundled = held(ctx.net)
    found = apt_policy(ctx.host, names)
    if not bundled:
        return found
    if found is None:
        if not all(n in bundled for n in names):
            return None
        found = {}
    return {**found, **{n: {**(found.get(n) or {}), "candidate": bundled[n]} for n in names if n in bundled}}


def _bundle_driver(ctx: StepContext, module: str | None) -> str | None:
    """The one driver package an offline bundle holds (nvidia-driver-N, -open with module: open)."""
    from ..packages import held

    pattern = r"nvidia-driver-\d+-open" if module == "open" else r"nvidia-driver-\d+"
    found = [n for n in held(ctx.net) if re.fullmatch(pattern, n)]
    return found[0] if len(found) == 1 else None


def _archive_has(ctx: StepContext, names: list[str]) -> bool:
    """Whether the archive has every package (after `apt-get update`); unknown is shown as a check to
    make while planning and left to apt-get while running."""
    policy = bundle_policy(ctx, names)
    if policy is None:
        return not ctx.planning
    return all(apt_candidate(policy, n) for n in names)


def _recommended_package(ctx: StepContext) -> str | None:
    """The package `ubuntu-drivers devices` marks recommended (read-only probe)."""
    result = ctx.host.runner.probe(["ubuntu-drivers", "devices"], timeout=60)
    if not result or not result.ok:
        return None
    for line in result.stdout.splitlines():
        m = re.match(r"^driver\s*:\s*(\S+)\s+-\s+.*\brecommended\b", line)
        if m and m.group(1).startswith("nvidia-"):
            return m.group(1)
    return None
