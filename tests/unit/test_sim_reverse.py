"""The simulated tools' reversal commands (what `gpuwizard undo` runs), checked as a user would check them
on a real host: install then remove puts the sandbox's files back as they were; apt's metapackages keep
their dependencies until autoremove; dpkg keeps a removed package's conffiles until purge; a loaded module
stays loaded until it is unloaded or the host boots; Helm keeps revisions and rolls back to one as a new
revision; namespace deletion takes what is in it; kind delete takes the cluster's contexts and nodes.
The real outputs these follow are cited in gpuwizard/simulate/tools_host.py and tools_cluster.py."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from gpuwizard.simulate import Sandbox, prepare
from gpuwizard.simulate import world as W

T4_KERNEL = "5.15.0-125-generic"
HEADERS = f"linux-headers-{T4_KERNEL}"
CTX = ("--kube-context", "kind-gpu-cluster")


def run(sb: Sandbox, *argv: str, stdin: str | None = "") -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env={**os.environ, **sb.env()}, capture_output=True, text=True, timeout=60,
                          input=stdin)


def ok(sb: Sandbox, *argv: str, stdin: str | None = "") -> subprocess.CompletedProcess:
    r = run(sb, *argv, stdin=stdin)
    assert r.returncode == 0, (argv, r.stdout, r.stderr)
    return r


def tree(sb: Sandbox) -> dict:
    """Every path under the sandbox root but the simulator's own (.gpuwizard-sim: world, calls, bin/):
    directories, symlinks (their targets) and files (their bytes and mode)."""
    out = {}
    root = Path(sb.root)
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel.split(os.sep)[0] == W.SIM_DIR:
            dirs[:] = []
            continue
        out[rel + "/"] = "dir"
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, name)
            key = os.path.normpath(os.path.join(rel, name))
            if os.path.islink(p):
                out[key] = ("link", os.readlink(p))
            else:
                out[key] = ("file", Path(p).read_bytes(), os.stat(p).st_mode & 0o777)
    return out


def tools(sb: Sandbox) -> set:
    return set(os.listdir(sb.bin_dir))


def assert_same_tree(before: dict, after: dict) -> None:
    assert sorted(set(before) ^ set(after)) == []
    assert [k for k in before if before[k] != after[k]] == []


@pytest.fixture
def t4(tmp_path) -> Sandbox:
    return prepare("t4-bare", tmp_path / "sb")


@pytest.fixture
def ready(tmp_path) -> Sandbox:
    return prepare("ready", tmp_path / "sb")


# ---------------------------------------------------------------------------------------------
# apt-get remove / purge / autoremove, dpkg, modprobe -r


def test_driver_and_headers_install_then_remove_put_the_tree_back(t4):
    before, bins = tree(t4), tools(t4)
    r = ok(t4, "apt-get", "install", "-y", HEADERS, "nvidia-driver-565")
    assert "The following additional packages will be installed:" in r.stdout and "nvidia-dkms-565" in r.stdout
    assert (t4.root / f"lib/modules/{T4_KERNEL}/build").is_symlink()
    ok(t4, "modprobe", "nvidia")
    assert "565.57.01" in (t4.root / "proc/driver/nvidia/version").read_text()
    assert {"nvidia-smi", "dkms"} <= tools(t4)

    # unload first (nothing holds the GPU): kmod's order, the holders before the module they use
    r = run(t4, "modprobe", "-r", "nvidia")
    assert (r.returncode, r.stderr) == (1, "modprobe: FATAL: Module nvidia is in use.\n")
    ok(t4, "modprobe", "-r", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia")
    assert not (t4.root / "proc/driver/nvidia/version").exists() and not (t4.root / "sys/module/nvidia").exists()
    assert "nvidia" not in (t4.root / "proc/modules").read_text()

    r = ok(t4, "apt-get", "purge", "-y", "--autoremove", "nvidia-driver-565", HEADERS)
    assert "The following packages will be REMOVED:" in r.stdout and "nvidia-driver-565*" in r.stdout
    assert "Removing nvidia-dkms-565 (565.57.01-0ubuntu0.22.04.1) ..." in r.stdout
    assert f"Removing {HEADERS} (" in r.stdout
    assert t4.world()["driver"] is None and not t4.world()["packages"]
    assert tools(t4) == bins
    assert_same_tree(before, tree(t4))


def test_a_loaded_module_outlives_its_package_until_rmmod_or_a_reboot(t4):
    before = tree(t4)
    ok(t4, "apt-get", "install", "-y", HEADERS, "nvidia-driver-565")
    ok(t4, "modprobe", "nvidia")
    ok(t4, "apt-get", "remove", "-y", "--autoremove", "nvidia-driver-565")
    # userspace gone, the kernel still has the module (the DKMS files went with the package's prerm)
    assert "nvidia-smi" not in tools(t4)
    assert "565.57.01" in (t4.root / "proc/driver/nvidia/version").read_text()
    assert "nvidia " in (t4.root / "proc/modules").read_text()
    # modprobe looks modules up in modules.dep, where it is no more: it cannot remove it, rmmod can
    r = run(t4, "modprobe", "-r", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia")
    assert r.returncode == 1 and "modprobe: FATAL: Module nvidia not found." in r.stderr
    r = run(t4, "rmmod", "nvidia")
    assert (r.returncode, r.stderr) == (1, "rmmod: ERROR: Module nvidia is in use by: nvidia_uvm nvidia_modeset\n")
    ok(t4, "rmmod", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia")
    assert not (t4.root / "proc/driver").exists()
    r = run(t4, "rmmod", "nvidia")
    assert (r.returncode, r.stderr) == (1, "rmmod: ERROR: Module nvidia is not currently loaded\n")
    ok(t4, "apt-get", "purge", "-y", HEADERS)
    assert_same_tree(before, tree(t4))


def test_a_reboot_drops_the_module_of_a_removed_driver(t4):
    ok(t4, "apt-get", "install", "-y", HEADERS, "nvidia-driver-565")
    ok(t4, "modprobe", "nvidia")
    ok(t4, "apt-get", "remove", "-y", "--autoremove", "nvidia-driver-565")
    assert (t4.root / "proc/driver/nvidia/version").exists()
    ok(t4, "reboot")
    assert not (t4.root / "proc/driver/nvidia/version").exists()
    assert "nvidia" not in t4.world()["modules"] and "stale_module" not in t4.world()


def test_a_metapackage_s_removal_leaves_its_dependencies_until_autoremove(t4):
    ok(t4, "apt-get", "install", "-y", HEADERS, "nvidia-driver-565")
    r = ok(t4, "apt-get", "remove", "-y", "nvidia-driver-565")
    assert ("The following packages were automatically installed and are no longer required:\n"
            "  dkms libnvidia-compute-565 nvidia-dkms-565 nvidia-kernel-common-565\n  nvidia-utils-565\n"
            "Use 'apt autoremove' to remove them.\n"
            "The following packages will be REMOVED:\n  nvidia-driver-565\n"
            "0 upgraded, 0 newly installed, 1 to remove and 0 not upgraded.\n") in r.stdout
    assert "nvidia-smi" in tools(t4) and t4.world()["driver"]["version"] == "565.57.01"
    listed = ok(t4, "dpkg-query", "-W", "-f=${Package}\\t${db:Status-Status}\\n").stdout
    assert "nvidia-dkms-565\tinstalled\n" in listed and "nvidia-driver-565" not in listed
    r = ok(t4, "apt-get", "autoremove", "-y")
    assert "Removing nvidia-dkms-565 (565.57.01-0ubuntu0.22.04.1) ..." in r.stdout
    assert "nvidia-smi" not in tools(t4) and "dkms" not in tools(t4) and t4.world()["driver"] is None
    # a dependency removed by name takes the packages that depend on it (apt's reverse dependencies)
    ok(t4, "apt-get", "install", "-y", "nvidia-driver-565")
    r = ok(t4, "apt-get", "remove", "-y", "nvidia-dkms-565")
    assert "  nvidia-dkms-565 nvidia-driver-565\n" in r.stdout and t4.world()["driver"] is None


def test_apt_get_remove_says_what_apt_says_for_names_it_cannot_or_need_not_remove(t4):
    r = run(t4, "apt-get", "remove", "-y", "nvidia-driver-565")
    assert r.returncode == 0
    assert r.stdout == ("Reading package lists...\nBuilding dependency tree...\nReading state information...\n"
                        "Package 'nvidia-driver-565' is not installed, so not removed\n"
                        "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
    r = run(t4, "apt-get", "remove", "-y", "no-such-package")
    assert (r.returncode, r.stderr) == (100, "E: Unable to locate package no-such-package\n")
    ok(t4, "apt-get", "install", "-y", "python3-venv")
    # without -y, apt asks; no answer (end of input) aborts, nothing removed
    r = run(t4, "apt-get", "remove", "python3-venv")
    assert r.returncode == 1 and r.stdout.endswith("Do you want to continue? [Y/n] Abort.\n")
    assert "python3-venv" in t4.world()["packages"]
    r = run(t4, "apt-get", "-qq", "remove", "python3-venv")  # -qq: no prompt, only dpkg's lines
    assert r.returncode == 0 and r.stdout.startswith("(Reading database ...") and "REMOVED" not in r.stdout
    ok(t4, "apt-get", "install", "-y", "python3-venv")
    r = ok(t4, "apt-get", "remove", "python3-venv", stdin="y\n")
    assert "Removing python3-venv (3.10.6-1~22.04.1) ..." in r.stdout and not t4.world()["packages"]


def test_docker_io_takes_the_containerd_it_brought_and_leaves_one_the_host_had(tmp_path):
    k3s = prepare("k3s", tmp_path / "k3s")  # no docker, no containerd of its own (k3s runs its own)
    before, bins = tree(k3s), tools(k3s)
    r = ok(k3s, "apt-get", "install", "-y", "docker.io")
    assert "The following NEW packages will be installed:\n  containerd docker.io runc\n" in r.stdout
    assert {"docker", "containerd"} <= tools(k3s)
    r = ok(k3s, "apt-get", "remove", "-y", "docker.io")
    assert "  containerd runc\nUse 'apt autoremove' to remove them." in r.stdout
    assert "docker" not in tools(k3s) and "containerd" in tools(k3s)
    ok(k3s, "apt-get", "autoremove", "-y")
    w = k3s.world()
    assert w["docker"] is None and w["containerd"] is None and set(w["services"]) == {"k3s"}
    assert tools(k3s) == bins
    assert_same_tree(before, tree(k3s))

    kubeadm = prepare("kubeadm-3node", tmp_path / "kubeadm")  # containerd (kubeadm's runtime), no docker
    had = kubeadm.world()["containerd"]
    r = ok(kubeadm, "apt-get", "install", "-y", "docker.io")
    assert "additional packages" not in r.stdout
    ok(kubeadm, "apt-get", "remove", "-y", "--autoremove", "docker.io")
    w = kubeadm.world()
    assert w["docker"] is None and w["containerd"] == had and "containerd" in w["services"]
    assert "docker" not in w["services"] and "containerd" in tools(kubeadm) and "docker" not in tools(kubeadm)


def _cuda_repo(sb: Sandbox) -> Path:
    deb = sb.host_path("/tmp/cuda-keyring_1.1-1_all.deb")
    ok(sb, "curl", "-fsSL", "-o", str(deb),
       "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/cuda-keyring_1.1-1_all.deb")
    ok(sb, "dpkg", "-i", str(deb))
    ok(sb, "apt-get", "update")
    return deb


def test_cuda_keyring_conffile_stays_on_remove_and_goes_on_purge_and_the_toolkit_goes(t4):
    before = tree(t4)
    deb = _cuda_repo(t4)
    listing = t4.root / "etc/apt/sources.list.d/cuda-ubuntu2204-x86_64.list"
    key = t4.root / "usr/share/keyrings/cuda-archive-keyring.gpg"
    assert listing.is_file() and key.is_file()
    ok(t4, "apt-get", "install", "-y", "cuda-toolkit-12-6")
    assert (t4.root / "usr/local/cuda-12.6/bin/nvcc").is_file() and os.readlink(t4.root / "usr/local/cuda") == "cuda-12.6"
    ok(t4, "apt-get", "remove", "-y", "cuda-toolkit-12-6")  # the metapackage: nvcc is cuda-nvcc-12-6's
    assert (t4.root / "usr/local/cuda-12.6/bin/nvcc").is_file()
    ok(t4, "apt-get", "autoremove", "-y")
    assert not (t4.root / "usr/local").exists() and not t4.world()["cuda_toolkits"]

    r = ok(t4, "apt-get", "remove", "-y", "cuda-keyring")
    assert "Removing cuda-keyring (1.1-1) ..." in r.stdout
    assert not key.exists() and listing.is_file()  # the sources.list.d entry is a conffile
    assert ok(t4, "dpkg", "-s", "cuda-keyring").stdout.splitlines()[1] == "Status: deinstall ok config-files"
    r = ok(t4, "dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}|${db:Status-Status}\\n", "cuda-keyring")
    assert r.stdout == "cuda-keyring rc |config-files\n"
    r = ok(t4, "apt-get", "purge", "-y", "cuda-keyring")
    assert "  cuda-keyring*\n" in r.stdout and "Purging configuration files for cuda-keyring (1.1-1) ..." in r.stdout
    r = run(t4, "dpkg", "-s", "cuda-keyring")
    assert r.returncode == 1 and "is not installed and no information is available" in r.stderr
    deb.unlink()  # the download is the downloader's file, not the package's
    (t4.root / "tmp").rmdir()
    assert_same_tree(before, tree(t4))


def test_dpkg_remove_and_purge(t4):
    before = tree(t4)
    _cuda_repo(t4)
    r = ok(t4, "dpkg", "-r", "cuda-keyring")
    assert r.stdout == ("(Reading database ... 74213 files and directories currently installed.)\n"
                        "Removing cuda-keyring (1.1-1) ...\n")
    r = ok(t4, "dpkg", "-P", "cuda-keyring")
    assert "Purging configuration files for cuda-keyring (1.1-1) ..." in r.stdout
    r = ok(t4, "dpkg", "-r", "cuda-keyring")
    assert r.stderr == "dpkg: warning: ignoring request to remove cuda-keyring which isn't installed\n"
    ok(t4, "apt-get", "install", "-y", HEADERS, "nvidia-driver-565")
    r = run(t4, "dpkg", "-r", "nvidia-dkms-565")
    assert r.returncode == 1 and "dpkg: dependency problems prevent removal of nvidia-dkms-565:\n" \
        " nvidia-driver-565 depends on nvidia-dkms-565." in r.stderr
    ok(t4, "apt-get", "purge", "-y", "--autoremove", "nvidia-driver-565", HEADERS)
    for p in ("tmp/cuda-keyring_1.1-1_all.deb", "tmp"):
        (t4.root / p).unlink() if p.endswith(".deb") else (t4.root / p).rmdir()
    assert_same_tree(before, tree(t4))


def test_the_container_toolkit_goes_with_its_base_package(t4):
    bins = tools(t4)
    t4.mutate(lambda w: w.__setitem__("apt_repos", ["nvidia-container-toolkit"]))
    ok(t4, "apt-get", "install", "-y", "nvidia-container-toolkit")
    assert {"nvidia-ctk", "nvidia-container-runtime"} <= tools(t4)
    ok(t4, "apt-get", "remove", "-y", "nvidia-container-toolkit")
    assert "nvidia-ctk" in tools(t4)  # nvidia-container-toolkit-base ships it
    ok(t4, "apt-get", "autoremove", "-y")
    assert tools(t4) == bins and t4.world()["nvidia_ctk"] is None


# ---------------------------------------------------------------------------------------------
# dpkg-query -W, rpm -qa, dnf remove


def test_dpkg_query_show_formats(t4):
    ok(t4, "apt-get", "install", "-y", "docker.io", "python3-venv")
    assert ok(t4, "dpkg-query", "-W").stdout == "docker.io\t24.0.7-0ubuntu2~22.04.1\npython3-venv\t3.10.6-1~22.04.1\n"
    fmt = "${Package}|${binary:Package}|${Version}|${db:Status-Status}|${db:Status-Abbrev}|${Status}|${Nope}\\n"
    assert ok(t4, "dpkg-query", "-W", "-f", fmt, "python3-venv").stdout == \
        "python3-venv|python3-venv|3.10.6-1~22.04.1|installed|ii |install ok installed|\n"
    assert ok(t4, "dpkg-query", "--showformat=${Package;-14}|${Version;25}\\t\\\\\\n", "-W", "docker.io").stdout == \
        "docker.io     |  24.0.7-0ubuntu2~22.04.1\t\\\n"
    assert ok(t4, "dpkg-query", "-W", "-f=${Package}\\n", "python3-*").stdout == "python3-venv\n"
    r = run(t4, "dpkg-query", "-W", "-f=${Package}\\n", "docker.io", "nothere")
    assert (r.returncode, r.stdout, r.stderr) == (1, "docker.io\n", "dpkg-query: no packages found matching nothere\n")
    r = run(t4, "dpkg-query", "-W", "-f")
    assert r.returncode == 2 and r.stderr.startswith("dpkg-query: error: -f option takes a value")
    r = run(t4, "dpkg-query", "-W", "--showformat=")
    assert (r.returncode, r.stderr) == (1, "dpkg-query: error in show format: may not be empty string\n")


@pytest.fixture
def rocky(tmp_path) -> Sandbox:
    sb = prepare("rocky9", tmp_path / "sb")
    ok(sb, "dnf", "config-manager", "--add-repo",
       "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo")
    return sb


def test_rpm_qa_lists_every_installed_package(rocky):
    kernel = rocky.world()["host"]["kernel"]
    ok(rocky, "dnf", "install", "-y", "kernel-devel-" + kernel, "epel-release")
    ok(rocky, "dnf", "-y", "module", "install", "nvidia-driver:565-dkms")
    names = ok(rocky, "rpm", "-qa", "--qf", "%{NAME}\\n").stdout.splitlines()
    assert names[:3] == ["kernel-devel", "epel-release", "nvidia-driver"]
    assert {"kmod-nvidia-latest-dkms", "nvidia-driver-cuda", "dkms"} <= set(names)
    default = ok(rocky, "rpm", "-qa").stdout.splitlines()
    assert "nvidia-driver-565.57.01-1.x86_64" in default and "kernel-devel-5.14.0-503.35.1.el9_5.x86_64" in default
    assert ok(rocky, "rpm", "-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE}.%{ARCH}\\n", "kernel-devel").stdout == \
        "kernel-devel 5.14.0-503.35.1.el9_5.x86_64\n"
    r = run(rocky, "rpm", "-qa", "--qf", "%{NOPE}")
    assert (r.returncode, r.stderr) == (1, 'error: incorrect format: unknown tag: "NOPE"\n')
    r = run(rocky, "rpm", "-q", "cuda-drivers")
    assert (r.returncode, r.stdout) == (1, "package cuda-drivers is not installed\n")


def test_dnf_remove_takes_the_unused_dependencies(rocky):
    before = tree(rocky)
    kernel = rocky.world()["host"]["kernel"]
    ok(rocky, "dnf", "install", "-y", "kernel-devel-" + kernel)
    ok(rocky, "dnf", "-y", "module", "install", "nvidia-driver:565-dkms")
    r = run(rocky, "dnf", "remove", "nvidia-driver")  # no -y: dnf asks, end of input answers no
    assert r.returncode == 1 and "Is this ok [y/N]: " in r.stdout and r.stderr == "Operation aborted.\n"
    assert rocky.world()["driver"]
    r = ok(rocky, "dnf", "remove", "-y", "nvidia-driver")
    assert "Removing:\n nvidia-driver " in r.stdout and "Removing unused dependencies:\n kmod-nvidia-latest-dkms" in r.stdout
    assert "Remove  6 Packages" in r.stdout and r.stdout.endswith("Complete!\n")
    assert rocky.world()["driver"] is None and "dkms" not in tools(rocky) and "nvidia-smi" not in tools(rocky)
    r = ok(rocky, "dnf", "remove", "-y", "nvidia-driver")
    assert r.stdout == "No match for argument: nvidia-driver\nDependencies resolved.\nNothing to do.\nComplete!\n"
    assert r.stderr == "No packages marked for removal.\n"
    ok(rocky, "dnf", "remove", "-y", "kernel-devel")
    assert ok(rocky, "rpm", "-qa").stdout == ""
    assert_same_tree(before, tree(rocky))


# ---------------------------------------------------------------------------------------------
# modprobe -r with a cluster holding the GPU


def test_a_cluster_s_gpu_pods_hold_the_module_until_the_cluster_goes(ready):
    assert "nvidia 56717312 3 nvidia_uvm,nvidia_modeset," in (ready.root / "proc/modules").read_text()
    r = run(ready, "modprobe", "-r", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia")
    assert (r.returncode, r.stderr) == (1, "modprobe: FATAL: Module nvidia is in use.\n")
    assert ready.world()["modules"][-1:] == ["nvidia"]  # the others went
    ok(ready, "kind", "delete", "cluster", "--name", "gpu-cluster")
    ok(ready, "modprobe", "-r", "nvidia")
    assert not (ready.root / "proc/driver/nvidia/version").exists()
    r = run(ready, "modprobe", "-r", "no_such_module")
    assert (r.returncode, r.stderr) == (1, "modprobe: FATAL: Module no_such_module not found.\n")


# ---------------------------------------------------------------------------------------------
# helm


def helm(sb: Sandbox, *args: str) -> subprocess.CompletedProcess:
    return run(sb, "helm", *args, *CTX)


def kubectl_json(sb: Sandbox, *args: str) -> dict:
    return json.loads(ok(sb, "kubectl", *args, "-o", "json").stdout)


def test_install_upgrade_rollback_gives_a_third_revision_with_the_first_values(ready, tmp_path):
    assert helm(ready, "uninstall", "hami", "-n", "kube-system").stdout == 'release "hami" uninstalled\n'
    first = {"devicePlugin": {"deviceSplitCount": 3}}
    vf = ready.host_path("/tmp/v1.yaml")
    vf.parent.mkdir(parents=True, exist_ok=True)
    vf.write_text(yaml.safe_dump(first))
    base = ("hami", "hami-charts/hami", "-n", "kube-system", "--version", "2.7.0")
    assert helm(ready, "upgrade", "--install", *base, "-f", str(vf)).returncode == 0
    assert helm(ready, "upgrade", *base, "--set", "devicePlugin.deviceSplitCount=5").returncode == 0
    r = helm(ready, "rollback", "hami", "1", "-n", "kube-system", "--wait")
    assert (r.returncode, r.stdout) == (0, "Rollback was a success! Happy Helming!\n")
    assert json.loads(helm(ready, "get", "values", "hami", "-n", "kube-system", "-o", "json").stdout) == first
    hist = json.loads(helm(ready, "history", "hami", "-n", "kube-system", "-o", "json").stdout)
    assert [(h["revision"], h["status"], h["chart"], h["app_version"], h["description"]) for h in hist] == [
        (1, "superseded", "hami-2.7.0", "2.7.0", "Install complete"),
        (2, "superseded", "hami-2.7.0", "2.7.0", "Upgrade complete"),
        (3, "deployed", "hami-2.7.0", "2.7.0", "Rollback to 1")]
    assert all(list(h) == ["revision", "updated", "status", "chart", "app_version", "description"] for h in hist)
    assert all(h["updated"].endswith("Z") and "T" in h["updated"] for h in hist)
    table = helm(ready, "history", "hami", "-n", "kube-system").stdout.splitlines()
    assert table[0].split() == ["REVISION", "UPDATED", "STATUS", "CHART", "APP", "VERSION", "DESCRIPTION"]
    assert table[3].split()[0] == "3" and table[3].endswith("Rollback to 1")
    listed = json.loads(helm(ready, "list", "-n", "kube-system", "-o", "json").stdout)
    assert [(x["name"], x["revision"]) for x in listed] == [("hami", "3")]
    # rollback with no revision: the one before the current; the split count of revision 2 is back
    assert helm(ready, "rollback", "hami", "-n", "kube-system").returncode == 0
    assert json.loads(helm(ready, "get", "values", "hami", "-n", "kube-system", "-o", "json").stdout) == \
        {"devicePlugin": {"deviceSplitCount": 5}}
    r = helm(ready, "rollback", "hami", "9", "-n", "kube-system")
    assert (r.returncode, r.stderr) == (1, "Error: release has no 9 version\n")
    r = helm(ready, "history", "nope", "-n", "kube-system")
    assert (r.returncode, r.stderr) == (1, "Error: release: not found\n")


def test_uninstall_takes_the_pods_derived_from_the_release(ready):
    pods = lambda ns: [p["metadata"]["name"] for p in kubectl_json(ready, "get", "pods", "-n", ns)["items"]]  # noqa: E731
    assert any(p.startswith("hami-device-plugin-") for p in pods("kube-system"))
    assert kubectl_json(ready, "get", "daemonsets", "-n", "kube-system")["items"]
    r = helm(ready, "uninstall", "hami", "-n", "kube-system", "--wait")
    assert (r.returncode, r.stdout) == (0, 'release "hami" uninstalled\n')
    assert pods("kube-system") == [] and kubectl_json(ready, "get", "daemonsets", "-n", "kube-system")["items"] == []
    r = helm(ready, "uninstall", "hami", "-n", "kube-system")
    assert (r.returncode, r.stderr) == (1, "Error: uninstall: Release not loaded: hami: release: not found\n")
    assert helm(ready, "uninstall", "hami", "-n", "kube-system", "--ignore-not-found").stdout == 'release "hami" uninstalled\n'

    assert pods("gpu-operator")
    assert helm(ready, "uninstall", "gpu-operator-1731231396", "-n", "gpu-operator").returncode == 0
    assert pods("gpu-operator") == []
    r = run(ready, "kubectl", "get", "clusterpolicies")  # the CRD stays: Helm does not delete CRDs
    assert (r.returncode, r.stderr) == (0, "No resources found\n")
    node = kubectl_json(ready, "get", "nodes")["items"][0]
    assert "nvidia.com/gpu" not in node["status"]["capacity"]
    assert [n["name"] for n in json.loads(helm(ready, "list", "-A", "-o", "json").stdout)] == []


def test_helm_repo_remove(ready):
    r = run(ready, "helm", "repo", "remove", "hami-charts")
    assert (r.returncode, r.stdout) == (0, '"hami-charts" has been removed from your repositories\n')
    r = run(ready, "helm", "repo", "remove", "hami-charts")
    assert (r.returncode, r.stderr) == (1, 'Error: no repo named "hami-charts" found\n')
    assert run(ready, "helm", "repo", "remove", "nvidia").returncode == 0
    r = run(ready, "helm", "repo", "remove", "nvidia")
    assert (r.returncode, r.stderr) == (1, "Error: no repositories configured\n")


# ---------------------------------------------------------------------------------------------
# kubectl delete namespace, label KEY-


def test_namespace_delete_takes_what_is_in_it(ready):
    r = ok(ready, "kubectl", "delete", "namespace", "gpu-operator", "--wait=true")
    assert r.stdout == 'namespace "gpu-operator" deleted\n'
    names = [n["metadata"]["name"] for n in kubectl_json(ready, "get", "namespaces")["items"]]
    assert "gpu-operator" not in names and "kube-system" in names
    assert kubectl_json(ready, "get", "pods", "-n", "gpu-operator")["items"] == []
    # Helm's release records are Secrets in the namespace: the release is gone with it
    assert [x["name"] for x in json.loads(helm(ready, "list", "-A", "-o", "json").stdout)] == ["hami"]
    r = run(ready, "kubectl", "delete", "namespace", "gpu-operator")
    assert (r.returncode, r.stderr) == (1, 'Error from server (NotFound): namespaces "gpu-operator" not found\n')
    r = run(ready, "kubectl", "delete", "ns", "default")
    assert (r.returncode, r.stderr) == (1, 'Error from server (Forbidden): namespaces "default" is forbidden: this '
                                           'namespace may not be deleted\n')
    assert ok(ready, "kubectl", "create", "namespace", "scratch").returncode == 0
    r = ok(ready, "kubectl", "delete", "namespace/scratch", "--wait=false")
    assert r.stdout == 'namespace "scratch" deleted\n'
    assert run(ready, "kubectl", "delete", "namespace", "nope", "--ignore-not-found").returncode == 0


def test_label_removal_prints_unlabeled(ready):
    node = "gpu-cluster-control-plane"
    assert ok(ready, "kubectl", "label", "node", node, "gpu-").stdout == f"node/{node} unlabeled\n"
    assert "gpu" not in kubectl_json(ready, "get", "nodes", node)["metadata"]["labels"]
    assert ok(ready, "kubectl", "label", "node", node, "gpu-").stdout == \
        f'label "gpu" not found.\nnode/{node} not labeled\n'
    assert ok(ready, "kubectl", "label", "namespace", "kube-system", "team=gpu").stdout == "namespace/kube-system labeled\n"
    assert ok(ready, "kubectl", "label", "namespace", "kube-system", "team-").stdout == "namespace/kube-system unlabeled\n"
    ok(ready, "kubectl", "label", "node", node, "a=1")
    # kubectl 1.36 names a change that adds and removes "modified" (pkg/cmd/label updateDataChangeMsg)
    ready.mutate(lambda w: w["kubectl"].__setitem__("version", "v1.36.5"))
    assert ok(ready, "kubectl", "label", "node", node, "a-", "b=2").stdout == f"node/{node} modified\n"
    assert ok(ready, "kubectl", "label", "node", node, "b-").stdout == f"node/{node} unlabeled\n"


# ---------------------------------------------------------------------------------------------
# kind delete cluster


def test_kind_delete_takes_the_contexts_and_the_node_containers(ready):
    r = ok(ready, "kind", "delete", "cluster", "--name", "gpu-cluster")
    assert r.stderr == 'Deleting cluster "gpu-cluster" ...\nDeleted nodes: ["gpu-cluster-control-plane"]\n'
    r = ok(ready, "kind", "get", "clusters")
    assert (r.stdout, r.stderr) == ("", "No kind clusters found.\n")
    assert ok(ready, "kubectl", "config", "get-contexts", "-o", "name").stdout == ""
    r = run(ready, "kubectl", "config", "current-context")
    assert (r.returncode, r.stderr) == (1, "error: current-context is not set\n")
    assert "gpu-cluster-control-plane" not in ok(ready, "docker", "ps", "-a").stdout
    # idempotent, as kind documents it
    assert ok(ready, "kind", "delete", "cluster", "--name", "gpu-cluster").stderr == 'Deleting cluster "gpu-cluster" ...\n'


def test_kind_delete_lists_every_node_as_go_quotes_them(ready):
    cfg = ready.host_path("/tmp/kind.yaml")
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n")
    ok(ready, "kind", "create", "cluster", "--name", "two", "--config", str(cfg))
    r = ok(ready, "kind", "delete", "cluster", "-n", "two")
    assert r.stderr.endswith('Deleted nodes: ["two-control-plane" "two-worker"]\n')
    assert ok(ready, "kind", "get", "clusters").stdout == "gpu-cluster\n"
    # create made kind-two the current context; delete unset it (kind's kubeconfig remove.go)
    assert run(ready, "kubectl", "config", "current-context").returncode == 1
    assert ok(ready, "kubectl", "config", "get-contexts", "-o", "name").stdout == "kind-gpu-cluster\n"
