"""The profiles rocky9 and ubuntu2404 through the real CLI (the platform layer: dnf on RHEL 8/9/10,
APT on Ubuntu 24.04), and the simulated dnf answering what the real one does."""

from __future__ import annotations

from pathlib import Path

from gpuwizard.simulate import prepare

from .test_host_layer import answers, changing_calls, sim

ROOT = Path(__file__).resolve().parents[2]
HOST_YAML = ROOT / "examples" / "host.yaml"
ROCKY9_YAML = ROOT / "examples" / "rocky9.yaml"
CUDA_REPO = "https://developer.download.nvidia.com/compute/cuda/repos/{0}/x86_64/cuda-{0}.repo"
# modelled on Rocky Linux 10.0's /etc/os-release (Red Quartz; RHEL 10 family, dnf5, no module streams)
ROCKY10_OS_RELEASE = ('NAME="Rocky Linux"\nVERSION="10.0 (Red Quartz)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
                      'VERSION_ID="10.0"\nPLATFORM_ID="platform:el10"\nPRETTY_NAME="Rocky Linux 10.0 (Red Quartz)"\n')


def rocky10(root: Path):
    sb = prepare("rocky9", root)

    def fn(w: dict) -> None:
        w["host"]["os_release"] = ROCKY10_OS_RELEASE
        w["host"]["kernel"] = "6.12.0-55.9.1.el10_0.x86_64"
    sb.mutate(fn)
    return sb


def test_rocky9_plan_is_nvidias_rhel9_repository_and_module_stream(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("rocky9", root, "plan", "--answers", str(HOST_YAML))
    assert code == 0, out + err
    assert f"$ dnf config-manager --add-repo {CUDA_REPO.format('rhel9')}" in out
    assert "$ dnf install -y epel-release" in out
    assert "$ dnf install -y kernel-devel-5.14.0-503.35.1.el9_5.x86_64 kernel-headers-5.14.0-503.35.1.el9_5.x86_64" in out
    assert "$ dnf -y module install nvidia-driver:latest-dkms" in out
    assert "$ dnf install -y cuda-toolkit-12-6" in out and "$ dnf install -y nvidia-container-toolkit" in out
    assert "apt-get" not in out and "dpkg" not in out
    assert changing_calls(prepare("rocky9", root).calls()) == []


def test_rocky9_runs_end_to_end_with_the_open_module(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("rocky9", root, "plan", "--answers", str(ROCKY9_YAML))
    assert code == 0 and "$ dnf -y module install nvidia-driver:open-dkms" in out, out + err
    code, out, err = sim("rocky9", root, "--answers", str(ROCKY9_YAML))
    assert code == 0, out + err
    w = prepare("rocky9", root).world()
    assert w["driver"]["version"] == "570.86.15" and w["driver"]["module"] == "open"
    assert {"epel-release", "nvidia-driver:open-dkms", "cuda-toolkit-12-6", "nvidia-container-toolkit"} <= set(w["packages"])
    assert w["nvidia_ctk"]["version"] == "1.19.1"
    assert (root / "etc/yum.repos.d/cuda-rhel9.repo").read_text().startswith("[cuda-rhel9-x86_64]\n")
    assert "CUDA 12.6 (nvcc V12.6.77)" in out and "nvidia-smi sees 1 GPU(s): Tesla T4" in out


def test_rocky9_a_branch_is_its_stream(tmp_path: Path):
    code, out, err = sim("rocky9", tmp_path / "s", "plan", "--answers",
                         answers(tmp_path, 'driver: {version: "565", module: open}\n'))
    assert code == 0 and "$ dnf -y module install nvidia-driver:565-open" in out, out + err


def test_rhel10_runs_without_module_streams_through_dnf5(tmp_path: Path):
    root = tmp_path / "s"
    rocky10(root)
    text = answers(tmp_path, 'driver: {version: "565"}\ncuda: {version: "12.6"}\n')
    code, out, err = sim("rocky9", root, "plan", "--answers", text)
    assert code == 0, out + err
    assert f"$ dnf config-manager addrepo --from-repofile={CUDA_REPO.format('rhel10')}" in out
    assert "$ dnf versionlock add '*nvidia*565*'" in out and "$ dnf install -y cuda-drivers" in out
    assert "module install" not in out
    code, out, err = sim("rocky9", root, "--answers", text)
    assert code == 0, out + err
    w = prepare("rocky9", root).world()
    assert w["driver"]["version"] == "565.57.01" and "cuda-drivers" in w["packages"]
    assert (root / "etc/yum.repos.d/cuda-rhel10.repo").exists()


def test_simulated_dnf_speaks_dnf4_on_rhel9_and_dnf5_on_rhel10(tmp_path: Path):
    url = CUDA_REPO.format("rhel9")
    sb9 = prepare("rocky9", tmp_path / "r9")
    r = sb9.run(["dnf", "config-manager", "addrepo", f"--from-repofile={url}"])
    assert r.returncode == 1 and "No matching repo to modify: addrepo." in r.stderr
    r = sb9.run(["dnf", "-y", "module", "install", "nvidia-driver:latest-open"])  # not a real stream
    assert r.returncode == 1 and "missing groups or modules: nvidia-driver:latest-open" in r.stderr
    assert sb9.run(["dnf", "config-manager", "--add-repo", url]).returncode == 0
    r = sb9.run(["dnf", "-y", "module", "install", "nvidia-driver:latest-open"])
    assert r.returncode == 1 and "missing groups or modules" in r.stderr
    r = sb9.run(["rpm", "-q", "epel-release"])
    assert r.returncode == 1 and r.stdout.strip() == "package epel-release is not installed"
    assert sb9.run(["dnf", "install", "-y", "epel-release"]).returncode == 0
    r = sb9.run(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "epel-release"])
    assert (r.returncode, r.stdout) == (0, "9-7.el9")
    sb10 = rocky10(tmp_path / "r10")
    r = sb10.run(["dnf", "config-manager", "--add-repo", url])
    assert r.returncode == 2 and 'Unknown argument "--add-repo" for command "config-manager"' in r.stderr
    assert sb10.run(["dnf", "config-manager", "addrepo", f"--from-repofile={CUDA_REPO.format('rhel10')}"]).returncode == 0
    r = sb10.run(["dnf", "-y", "module", "install", "nvidia-driver:latest-dkms"])  # rhel10: no streams
    assert r.returncode == 1 and "missing groups or modules" in r.stderr


def test_ubuntu2404_runs_end_to_end_with_noble_packages(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("ubuntu2404", root, "--answers", str(HOST_YAML))
    assert code == 0, out + err
    w = prepare("ubuntu2404", root).world()
    assert w["packages"]["nvidia-driver-565"] == "565.57.01-0ubuntu0.24.04.1"
    assert "linux-headers-6.8.0-45-generic" in w["packages"]
    assert (root / "etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list").exists()
    assert "nvidia/cuda:12.6.2-base-ubuntu24.04 nvidia-smi sees 1 GPU(s): Tesla T4" in out


def test_without_systemd_the_restart_is_refused_before_any_change(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("t4-bare", root)
    sb.mutate(lambda w: w["host"].update(init="none"))  # a container or chroot: no /run/systemd/system
    assert not (root / "run/systemd/system").exists()
    code, out, err = sim("t4-bare", root, "--answers", answers(tmp_path, "container: {}\n"))
    assert code != 0 and "System has not been booted with systemd" in out + err, out + err
    assert changing_calls(prepare("t4-bare", root).calls()) == []
