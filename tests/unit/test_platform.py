"""The platform layer (gpuwizard/platform): one class per package manager, chosen from the target
host's facts, whose methods return plan actions; the OS-family specifics the steps used to branch on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from gpuwizard import actions as A
from gpuwizard import platform
from gpuwizard.errors import PlanRefused, StepFailed
from gpuwizard.network import Network
from gpuwizard.platform.kinds import parse_dkms_status
from gpuwizard.steps import cuda as U
from gpuwizard.steps.cuda import CudaAnswers

from .test_steps_host import ctx_for, facts

ROCKY9 = {"os": "rocky", "id_like": ["rhel", "centos", "fedora"], "version": "9.5", "arch": "x86_64"}
ROCKY10 = {**ROCKY9, "version": "10.0"}


@pytest.mark.parametrize("host,cls,fam", [
    ({"os": "ubuntu", "id_like": ["debian"], "version": "24.04"}, platform.Apt, "ubuntu"),
    ({"os": "debian", "version": "12"}, platform.Apt, "debian"),
    ({"os": "linuxmint", "id_like": ["ubuntu", "debian"], "version": "22"}, platform.Apt, "ubuntu"),
    (ROCKY9, platform.Dnf, "rhel"),
    ({"os": "almalinux", "id_like": ["rhel", "centos", "fedora"], "version": "8.10"}, platform.Dnf, "rhel"),
    ({"os": "rhel", "id_like": ["fedora"], "version": "10.0"}, platform.Dnf, "rhel"),
    ({"os": "arch", "version": ""}, platform.Platform, "other"),
])
def test_the_platform_is_chosen_from_the_hosts_os_release(host, cls, fam):
    plat = platform.for_host(host)
    assert type(plat) is cls and plat.family == fam and platform.family(host) == fam


def test_each_distribution_signs_where_its_dkms_does_and_rebuilds_its_initramfs_its_way():
    ubuntu, debian = platform.for_host({"os": "ubuntu", "version": "22.04"}), platform.for_host({"os": "debian", "version": "12"})
    rocky = platform.for_host(ROCKY9)
    assert (ubuntu.key, ubuntu.cert, ubuntu.initramfs) == ("/var/lib/shim-signed/mok/MOK.priv", "/var/lib/shim-signed/mok/MOK.der",
                                                           ("update-initramfs", "-u"))
    assert (debian.key, debian.cert) == ("/var/lib/dkms/mok.key", "/var/lib/dkms/mok.pub")
    assert (rocky.key, rocky.cert, rocky.initramfs) == ("/var/lib/dkms/mok.key", "/var/lib/dkms/mok.pub", ("dracut", "-f"))
    assert rocky.headers_packages("5.14.0-503.35.1.el9_5.x86_64") == ["kernel-devel-5.14.0-503.35.1.el9_5.x86_64",
                                                                      "kernel-headers-5.14.0-503.35.1.el9_5.x86_64"]
    assert ubuntu.headers_packages("6.8.0-45-generic") == ["linux-headers-6.8.0-45-generic"]


def test_install_refresh_and_installed_query_per_package_manager():
    apt, dnf = platform.for_host({"os": "debian", "version": "12"}), platform.for_host(ROCKY9)
    assert apt.install_argv(["nvidia-driver=535.309.01-0+deb12u1"]) == ["apt-get", "install", "-y", "nvidia-driver=535.309.01-0+deb12u1"]
    assert dnf.install_argv(["cuda-toolkit-12-6"]) == ["dnf", "install", "-y", "cuda-toolkit-12-6"]
    assert apt.installed_argv("nvidia-driver") == ["dpkg-query", "-W", "-f", "${Version}", "nvidia-driver"]
    assert dnf.installed_argv("epel-release") == ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "epel-release"]
    plain = SimpleNamespace(net=Network())  # a session without mirrors or an offline bundle
    [refresh] = apt.refresh(plain, lambda c: False)
    assert isinstance(refresh, A.Run) and refresh.argv == ["apt-get", "update"] and refresh.env == {"DEBIAN_FRONTEND": "noninteractive"}
    assert dnf.refresh(plain, lambda c: False) == []  # dnf refreshes its metadata itself
    with pytest.raises(StepFailed, match="no package manager"):
        platform.for_host({"os": "arch"}).install_argv(["x"])


# NVIDIA's driver installation guide: RHEL 8/9 streams latest-dkms / <br>-dkms / open-dkms / <br>-open;
# there is no latest-open stream (issue 11)
@pytest.mark.parametrize("module,wanted,stream", [
    (None, "recommended", "latest-dkms"), ("proprietary", "565", "565-dkms"), ("open", "recommended", "open-dkms"),
    ("open", "565.57.01", "565-open"), (None, "570.86.15", "570-dkms"),
])
def test_rhel_module_streams_are_the_real_ones(module, wanted, stream):
    assert platform.Dnf(ROCKY9).driver_stream(module, wanted) == stream


def test_dnf4_and_dnf5_add_a_repository_each_their_way():
    url = "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo"
    assert platform.Dnf(ROCKY9).add_repo_argv(url) == ["dnf", "config-manager", "--add-repo", url]
    assert platform.Dnf(ROCKY10).add_repo_argv(url) == ["dnf", "config-manager", "addrepo", f"--from-repofile={url}"]
    assert platform.Dnf(ROCKY10).cuda_repo_url("cuda-rhel10.repo") == \
        "https://developer.download.nvidia.com/compute/cuda/repos/rhel10/x86_64/cuda-rhel10.repo"
    assert platform.Dnf({**ROCKY9, "arch": "aarch64"}).repo_arch == "sbsa"


def test_rhel10_has_no_module_streams(tmp_path: Path):
    f = facts("rocky", "10.0", ("rhel", "centos", "fedora"), kernel="6.12.0-55.9.1.el10_0.x86_64")
    ctx = ctx_for(tmp_path, f)
    plat = platform.for_host(f["host"])
    proprietary = plat.driver_install(ctx, None, "recommended", "6.12.0-55.9.1.el10_0.x86_64", "/lib/modules/x/build", None)
    argvs = [a.argv for a in proprietary.actions if isinstance(a, A.Run)]
    assert ["dnf", "install", "-y", "cuda-drivers"] in argvs and not any("module" in a for a in argvs)
    assert argvs[0][:3] == ["dnf", "config-manager", "addrepo"]
    held = plat.driver_install(ctx, "open", "565", "6.12.0-55.9.1.el10_0.x86_64", "/lib/modules/x/build", None)
    argvs = [a.argv for a in held.actions if isinstance(a, A.Run)]
    assert ["dnf", "versionlock", "add", "*nvidia*565*"] in argvs and argvs[-1] == ["dnf", "install", "-y", "nvidia-open"]
    assert (held.package, held.promised) == ("nvidia-open", "565")


def test_a_restart_without_systemd_is_refused_at_plan_time(tmp_path: Path):
    ctx = ctx_for(tmp_path, facts())
    plat = platform.for_host(ctx.facts["host"])
    with pytest.raises(PlanRefused, match="System has not been booted with systemd"):
        plat.restart(ctx, "restart-runtime", "restart docker", "docker", done=lambda c: False)
    # already done (the daemon runs with the configuration): nothing to refuse
    assert isinstance(plat.restart(ctx, "restart-runtime", "restart docker", "docker", done=lambda c: True), A.Run)
    (tmp_path / "root/run/systemd/system").mkdir(parents=True)
    action = plat.restart(ctx, "restart-runtime", "restart docker", "docker", done=lambda c: False)
    assert isinstance(action, A.Run) and action.argv == ["systemctl", "restart", "docker"]


@pytest.mark.parametrize("text,expected", [
    ("nvidia/535.309.01, 6.1.0-57-amd64, amd64: installed\n",  # DKMS 3.x (Debian 12)
     [{"module": "nvidia", "version": "535.309.01", "kernel": "6.1.0-57-amd64", "arch": "amd64", "state": "installed"}]),
    ("nvidia, 565.57.01, 5.15.0-125-generic, x86_64: installed\n",  # DKMS 2.x (Ubuntu 22.04)
     [{"module": "nvidia", "version": "565.57.01", "kernel": "5.15.0-125-generic", "arch": "x86_64", "state": "installed"}]),
    ("nvidia/565.57.01: added\n", [{"module": "nvidia", "version": "565.57.01", "kernel": "", "arch": "", "state": "added"}]),
    ("", []),
])
def test_dkms_status_is_read_per_kernel(text, expected):
    assert parse_dkms_status(text) == expected


@pytest.mark.parametrize("arch,name", [
    ("x86_64", "cuda_12.6.2_560.35.03_linux.run"), ("aarch64", "cuda_12.6.2_560.35.03_linux_sbsa.run"),
])
def test_the_cuda_runfile_name_carries_sbsa_on_aarch64(arch, name):
    url, got = U.CudaStep()._runfile(CudaAnswers(version="12.6"), "12.6", {"arch": arch})
    assert got == name and url == f"https://developer.download.nvidia.com/compute/cuda/12.6.2/local_installers/{name}"
    assert U.CUDA_RUNFILE.match(name)
