"""dnf: RHEL and its rebuilds (Rocky, Alma, CentOS Stream, Oracle) 8, 9 and 10.

From NVIDIA's driver installation guide (https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/,
"Kernel Modules" and "Advanced Options", and NVIDIA/yum-packaging-dkms-nvidia's README):

* RHEL 8/9 take the driver from module streams of NVIDIA's CUDA repository: ``latest-dkms`` and
  ``<branch>-dkms`` (proprietary module), ``open-dkms`` and ``<branch>-open`` (open module, 515 and
  newer); ``latest`` / ``<branch>`` are precompiled kmods. There is no ``latest-open`` stream.
  ``dnf module install nvidia-driver:<stream>`` enables a stream and installs its default profile.
* RHEL 10 has no module streams: ``dnf install nvidia-open`` (open) or ``cuda-drivers``
  (proprietary), a branch held with ``dnf versionlock``.
* RHEL 8/9 run dnf 4: ``dnf config-manager --add-repo URL``; RHEL 10 runs dnf5, whose config-manager
  spells it ``dnf config-manager addrepo --from-repofile=URL`` (dnf5-config-manager(8); dnf5 removed
  ``--add-repo``).
* DKMS comes from EPEL (``epel-release`` on Rocky and Alma); EPEL's DKMS signs with
  /var/lib/dkms/mok.key (upstream DKMS 3.x).
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from .. import actions as A
from ..journal import FileChange
from .base import ArchiveDriver, DriverInstall, Platform, driver_branch

# where `dnf versionlock add` keeps its locks (python3-dnf-plugin-versionlock, dnf 4; dnf5: /etc/dnf/versionlock.toml)
VERSIONLOCK_LIST = "/etc/dnf/plugins/versionlock.list"

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import StepContext

# https://nvidia.github.io/libnvidia-container/stable/rpm/nvidia-container-toolkit.repo (stable section)
DNF_REPO = "/etc/yum.repos.d/nvidia-container-toolkit.repo"
DNF_REPO_CONTENT = """\
[nvidia-container-toolkit]
name=nvidia-container-toolkit
baseurl=https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch
repo_gpgcheck=1
gpgcheck=0
enabled=1
gpgkey=https://nvidia.github.io/libnvidia-container/gpgkey
sslverify=1
sslcacert=/etc/pki/tls/certs/ca-bundle.crt
"""
CTK_UPSTREAM = "https://nvidia.github.io/libnvidia-container"
# what https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo holds, its
# base a mirror's (written only where the CUDA repository is mirrored)
CUDA_REPO_CONTENT = """\
[{id}]
name={id}
baseurl={base}
enabled=1
gpgcheck=1
gpgkey={base}/D42D0685.pub
"""
EPEL_FROM_EXTRAS = ("rocky", "almalinux", "centos")  # their extras repository ships epel-release


class Dnf(Platform):
    family = "rhel"
    manager = "dnf"
    headers = ("kernel-devel-{kernel}", "kernel-headers-{kernel}")
    initramfs = ("dracut", "-f")
    packages = True

    def __init__(self, host: dict[str, Any]):
        super().__init__(host)

    @property
    def dnf5(self) -> bool:
        """RHEL 10 (and its rebuilds) ship dnf5."""
        return self.major >= 10

    @property
    def module_streams(self) -> bool:
        return 0 < self.major < 10

    def install_argv(self, packages: list[str]) -> list[str]:
        return ["dnf", "install", "-y", *packages]

    def installed_argv(self, package: str) -> list[str]:
        return ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", package]

    def add_repo_argv(self, url: str) -> list[str]:
        if self.dnf5:
            return ["dnf", "config-manager", "addrepo", f"--from-repofile={url}"]
        return ["dnf", "config-manager", "--add-repo", url]

    def cuda_repo(self, ctx: StepContext) -> A.Action:
        """NVIDIA's CUDA repository (drivers and toolkits), /etc/yum.repos.d/cuda-rhel<N>.repo. With a
        mirror of it, the file is written here pointing at the mirror: the .repo file a mirror serves
        is upstream's copy, whose baseurl and gpgkey name NVIDIA's site."""
        name = f"cuda-{self.repo_distro}.repo"
        repo = posixpath.join("/etc/yum.repos.d", name)
        url, upstream = ctx.net.lasting(self.cuda_repo_url(name))  # the .repo file outlives the run
        if upstream is not None:
            base = url.rsplit("/", 1)[0]
            content = CUDA_REPO_CONTENT.format(id=f"cuda-{self.repo_distro}-{self.repo_arch}", base=base)
            return A.WriteFile("cuda-repo", f"add NVIDIA's CUDA repository ({repo}) from {base} (mirror of {upstream})",
                               repo, content)
        return A.Run("cuda-repo", f"add NVIDIA's CUDA repository ({repo})", self.add_repo_argv(url),
                     creates=repo).with_changes(FileChange(repo))

    def driver_stream(self, module: str | None, wanted: str) -> str:
        """The nvidia-driver module stream (RHEL 8/9) for a module flavour and a wanted version."""
        if module == "open":
            return "open-dkms" if wanted == "recommended" else f"{driver_branch(wanted)}-open"
        return ("latest" if wanted == "recommended" else driver_branch(wanted)) + "-dkms"

    def driver_install(self, ctx: StepContext, module: str | None, wanted: str, kernel: str, headers: str,
                       archive: ArchiveDriver | None) -> DriverInstall:
        acts: list[A.Action] = [self.cuda_repo(ctx)]
        if str(self.host.get("os") or "") in EPEL_FROM_EXTRAS:
            acts.append(A.Run("epel", "enable EPEL (DKMS, which builds the NVIDIA module, comes from it)",
                              self.install_argv(["epel-release"]), done_when=["rpm", "-q", "epel-release"]))
        if not ctx.host.exists(headers):
            hdr = self.headers_packages(kernel)
            acts.append(A.Run("kernel-headers", f"install the kernel headers for {kernel} ({' '.join(hdr)})",
                              self.install_argv(hdr), creates=headers))
        promised = None if wanted == "recommended" else driver_branch(wanted)
        if self.module_streams:
            pkg = "nvidia-driver:" + self.driver_stream(module, wanted)
            argv = ["dnf", "-y", "module", "install", pkg]
        else:  # RHEL 10: no module streams; a branch is held with a version lock
            pkg = "nvidia-open" if module == "open" else "cuda-drivers"
            if promised:
                acts.append(A.Run("driver-lock", f"hold the driver at branch {promised} (dnf versionlock)",
                                  ["dnf", "versionlock", "add", f"*nvidia*{promised}*"], idempotent=True).with_changes(
                                      FileChange("/etc/dnf/versionlock.toml" if self.dnf5 else VERSIONLOCK_LIST)))
            argv = self.install_argv([pkg])
        acts.append(A.Run("install", f"install the driver package {pkg}", argv, done_when=["nvidia-smi", "-L"], timeout=3600))
        return DriverInstall(acts, pkg, promised)

    def cuda_toolkit(self, ctx: StepContext, xy: str, nvcc: str) -> list[A.Action]:
        pkg = "cuda-toolkit-" + xy.replace(".", "-")
        return [self.cuda_repo(ctx), A.Run("install", f"install {pkg}", self.install_argv([pkg]), creates=nvcc, timeout=3600)]

    def container_toolkit(self, ctx: StepContext) -> list[A.Action]:
        base, upstream = ctx.net.lasting(CTK_UPSTREAM)  # the .repo file outlives the run
        content = DNF_REPO_CONTENT.replace(CTK_UPSTREAM, base)
        mirror = f" from {base} (mirror of {upstream})" if upstream else ""
        return [
            A.WriteFile("repo-file", f"add NVIDIA's container toolkit repository ({DNF_REPO}){mirror}", DNF_REPO, content),
            A.Run("install-toolkit", "install nvidia-container-toolkit", self.install_argv(["nvidia-container-toolkit"]),
                  done_when=["nvidia-ctk", "--version"], timeout=1800),
        ]
