"""Simulated hosts: sandbox roots + simulated tools on PATH (gpuwizard.simulate)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from gpuwizard.simulate import Sandbox, SandboxError, UnknownProfile, list_profiles, prepare
from gpuwizard.simulate import profile as P
from gpuwizard.simulate import world as W

REQUIRED_PROFILES = {"t4-bare", "no-gpu", "multi-gpu", "nouveau", "secureboot", "ready"}

# The seed's nvidia-smi output (seed/000_670c8c4a27872b86.txt), minus the date line.
SEED_SMI = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 565.57.01              Driver Version: 565.57.01      CUDA Version: 12.7     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  Tesla T4                       Off |   00000000:00:07.0 Off |                    0 |
| N/A   57C    P0             28W /   70W |       1MiB /  15360MiB |      8%      Default |
|                                         |                        |                  N/A |
+-----------------------------------------+------------------------+----------------------+
                                                                                         
+-----------------------------------------------------------------------------------------+
| Processes:                                                                              |
|  GPU   GI   CI        PID   Type   Process name                              GPU Memory |
|        ID   ID                                                               Usage      |
|=========================================================================================|
|  No running processes found                                                             |
+-----------------------------------------------------------------------------------------+
"""  # noqa: W293 (nvidia-smi pads its blank line with spaces)

SEED_NVCC = """\
nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Thu_Sep_12_02:18:05_PDT_2024
Cuda compilation tools, release 12.6, V12.6.77
Build cuda_12.6.r12.6/compiler.34841621_0
"""

QUERY = "index,name,memory.total,uuid,pci.bus_id,driver_version,mig.mode.current"


def run(sb: Sandbox, *argv: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env={**os.environ, **sb.env(), **(env or {})},
                          capture_output=True, text=True, timeout=30, **kw)


def which(sb: Sandbox, name: str):
    return shutil.which(name, path=sb.env()["PATH"])


def install_driver(sb: Sandbox, version="565.57.01", cuda="12.7", reboot=True):
    def fn(w):
        w["driver"] = {"version": version, "cuda_version": cuda, "loaded_version": None}
    sb.mutate(fn)
    if reboot:
        assert run(sb, "reboot").returncode == 0


@pytest.fixture
def t4(tmp_path) -> Sandbox:
    return prepare("t4-bare", tmp_path / "sb")


# ---------------------------------------------------------------------------------------------
# profiles and prepare


def test_required_profiles_exist_with_one_line_descriptions():
    names = set(list_profiles())
    assert REQUIRED_PROFILES <= names
    for n in names:
        data = P.load_profile(n)
        assert isinstance(data["description"], str) and data["description"].strip()
        assert "\n" not in data["description"].strip()


@pytest.mark.parametrize("name", sorted(list_profiles()))
def test_prepare_every_profile(tmp_path, name):
    sb = prepare(name, tmp_path / name)
    assert sb.created and sb.profile == name
    root = sb.root
    assert sb.bin_dir == root / ".gpuwizard-sim" / "bin"
    assert (root / ".gpuwizard-sim" / "profile").read_text().strip() == name
    assert json.loads((root / ".gpuwizard-sim" / "world.json").read_text())["profile"] == name
    assert sb.world()["profile"] == name
    env = sb.env()
    assert env == {"PATH": str(sb.bin_dir), "GPUWIZARD_SIM_ROOT": str(root)}
    assert "ID=" in (root / "etc/os-release").read_text()
    boot_id = (root / "proc/sys/kernel/random/boot_id").read_text()
    assert len(boot_id.strip()) == 36 and boot_id.endswith("\n")
    assert (root / "proc/sys/kernel/osrelease").read_text().strip() == sb.world()["host"]["kernel"]
    for line in (root / "proc/modules").read_text().splitlines():
        parts = line.split()
        assert len(parts) == 6 and parts[4] == "Live" and parts[5].startswith("0x")
    for always in ("lspci", "uname", "mokutil", "reboot", "systemctl"):
        assert which(sb, always), always
    r = run(sb, "uname", "-m")
    assert r.returncode == 0 and r.stdout == "x86_64\n"
    r = run(sb, "lspci")
    assert r.returncode == 0 and r.stdout
    # every listed PCI device is in sysfs
    for dev in sb.world()["pci"]:
        d = root / "sys/bus/pci/devices" / W.pci_sysfs_name(dev["slot"])
        assert (d / "vendor").read_text() == "0x%s\n" % dev["vendor"]
        assert (d / "device").read_text() == "0x%s\n" % dev["device"]
        assert len((d / "class").read_text().strip()) == 8


def test_prepare_without_root_makes_temp_dir():
    sb = prepare("no-gpu")
    try:
        assert sb.root.name.startswith("gpuwizard-sim-") and sb.created
    finally:
        shutil.rmtree(sb.root)


def test_unknown_profile_lists_known(tmp_path):
    with pytest.raises(UnknownProfile) as ei:
        prepare("t5-nope", tmp_path / "x")
    assert isinstance(ei.value, SandboxError)
    assert "t4-bare" in str(ei.value) and "ready" in str(ei.value)
    assert not (tmp_path / "x").exists()


def test_foreign_non_empty_dir_is_refused(tmp_path):
    (tmp_path / "precious.txt").write_text("do not touch")
    with pytest.raises(SandboxError, match="not a gpuwizard sandbox"):
        prepare("t4-bare", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_sandbox_of_other_profile_is_refused(tmp_path):
    prepare("t4-bare", tmp_path / "sb")
    with pytest.raises(SandboxError, match="'t4-bare', not 'ready'"):
        prepare("ready", tmp_path / "sb")


def test_empty_existing_dir_is_populated(tmp_path):
    sb = prepare("t4-bare", tmp_path)
    assert sb.created and (tmp_path / ".gpuwizard-sim" / "world.json").is_file()


def test_reuse_keeps_world_and_regenerates_bin(t4):
    install_driver(t4)
    boot_id = t4.world()["host"]["boot_id"]
    (t4.bin_dir / "uname").unlink()
    (t4.bin_dir / "uname-stale").write_text("junk")
    sb2 = prepare("t4-bare", t4.root)
    assert not sb2.created and sb2.root == t4.root
    w = sb2.world()
    assert w["driver"]["version"] == "565.57.01" and w["host"]["boot_id"] == boot_id
    assert which(sb2, "uname") and which(sb2, "nvidia-smi")
    assert not (sb2.bin_dir / "uname-stale").exists()
    assert run(sb2, "nvidia-smi", "-L").returncode == 0


def test_tool_scripts_shape(t4):
    text = (t4.bin_dir / "uname").read_text()
    first = text.splitlines()[0]
    assert first == "#!%s -S" % sys.executable
    assert "from gpuwizard.simulate.tools import main" in text
    assert "main(%r)" % str(t4.root) in text


def test_long_interpreter_path_uses_sh_trampoline(tmp_path, t4):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    py = deep / "python3"
    py.symlink_to(os.path.realpath(sys.executable))
    script = W.tool_script(t4.root, "uname", python=str(py))
    assert script.startswith("#!/bin/sh\n")
    tool = tmp_path / "uname"
    tool.write_text(script)
    tool.chmod(0o755)
    r = subprocess.run([str(tool), "-r"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "5.15.0-125-generic\n"
    assert t4.calls()[-1] == {"argv": ["uname", "-r"], "rc": 0}


def test_profile_validation_reports_all_errors():
    bad = {
        "description": "x",
        "host": {"os_release": "ID=ubuntu\n", "kernel": 5, "colour": "red"},
        "pci": [{"slot": "00:07.0", "class": "0302", "class_name": "3D controller", "vendor": "10DE",
                 "vendor_name": "NVIDIA Corporation", "device": "1eb8"}],
        "gpus": [{"slot": "00:08.0", "name": "Tesla T4", "memory_mib": 15360}],
        "current_context": "kind-nope",
    }
    with pytest.raises(P.ProfileError) as ei:
        P.validate("bad", bad)
    msg = str(ei.value)
    assert "host.kernel: expected a string, got 5" in msg
    assert "unknown key 'colour'" in msg
    # the type errors stop the cross checks; fix them and the cross checks report
    bad["host"] = {"os_release": "ID=ubuntu\n", "kernel": "5.15.0-125-generic"}
    with pytest.raises(P.ProfileError) as ei:
        P.validate("bad", bad)
    msg = str(ei.value)
    assert "vendor must be 4 lowercase hex digits" in msg
    assert "slot 00:08.0 has no NVIDIA entry in pci" in msg
    assert "current_context 'kind-nope'" in msg


def test_profiles_extend(tmp_path):
    data = P.load_profile("nouveau")
    assert data["host"]["nouveau"] is True
    assert data["host"]["kernel"] == P.load_profile("t4-bare")["host"]["kernel"]
    assert "extends" not in data


# ---------------------------------------------------------------------------------------------
# t4-bare and the seed


def test_t4_bare_lspci_matches_seed(t4):
    r = run(t4, "lspci")
    assert "00:07.0 3D controller: NVIDIA Corporation TU104GL [Tesla T4] (rev a1)\n" in r.stdout
    nvidia = [line for line in r.stdout.splitlines() if "NVIDIA" in line]
    assert nvidia == ["00:07.0 3D controller: NVIDIA Corporation TU104GL [Tesla T4] (rev a1)"]
    r = run(t4, "lspci", "-nn")
    assert "00:07.0 3D controller [0302]: NVIDIA Corporation TU104GL [Tesla T4] [10de:1eb8] (rev a1)\n" in r.stdout
    assert "00:02.0 VGA compatible controller [0300]: Cirrus Logic GD 5446 [1013:00b8]\n" in r.stdout
    r = run(t4, "lspci", "-d", "10de:", "-nn")
    assert r.stdout.count("\n") == 1
    r = run(t4, "lspci", "-s", "00:07.0", "-n")
    assert r.stdout == "00:07.0 0302: 10de:1eb8 (rev a1)\n"
    r = run(t4, "lspci", "-D", "-d", "10de::0302")
    assert r.stdout.startswith("0000:00:07.0 3D controller:")
    dev = t4.root / "sys/bus/pci/devices/0000:00:07.0"
    assert (dev / "vendor").read_text() == "0x10de\n"
    assert (dev / "device").read_text() == "0x1eb8\n"
    assert (dev / "class").read_text() == "0x030200\n"


def test_t4_bare_nothing_nvidia_installed(t4):
    for tool in ("nvidia-smi", "nvcc", "nvidia-ctk", "kind", "kubectl", "helm"):
        assert which(t4, tool) is None, tool
    assert which(t4, "docker") and which(t4, "containerd")
    assert "nvidia" not in (t4.root / "proc/modules").read_text()
    assert "nouveau" not in (t4.root / "proc/modules").read_text()
    assert run(t4, "mokutil", "--sb-state").stdout == "SecureBoot disabled\n"
    assert not (t4.root / "usr/local/cuda").exists()
    assert not (t4.root / "etc/docker/daemon.json").exists()


def test_absent_tool_is_absent_even_if_this_machine_has_it(t4):
    # PATH is only the sandbox bin dir: /usr/bin/kubectl (or whatever this machine has) is not found
    assert which(t4, "kubectl") is None and which(t4, "ls") is None
    with pytest.raises(FileNotFoundError):
        run(t4, "kubectl", "version")


def test_t4_driver_installed_then_reboot_prints_seed_table(t4):
    install_driver(t4, reboot=False)
    assert which(t4, "nvidia-smi")
    r = run(t4, "nvidia-smi")  # installed, module not loaded yet
    assert r.returncode == 9
    assert r.stdout.startswith("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                               "Make sure that the latest NVIDIA driver is installed and running.")
    assert run(t4, "reboot").returncode == 0
    r = run(t4, "nvidia-smi")
    assert r.returncode == 0, r.stderr
    assert "00000000:00:07.0" in r.stdout and "15360MiB" in r.stdout
    first, rest = r.stdout.split("\n", 1)
    assert rest == SEED_SMI
    time.strptime(first.strip(), "%a %b %d %H:%M:%S %Y")
    assert first.endswith("       ")
    mods = (t4.root / "proc/modules").read_text()
    assert "nvidia 56717312 2 nvidia_uvm,nvidia_modeset, Live 0x0000000000000000\n" in mods
    assert (t4.root / "sys/module/nvidia/version").read_text() == "565.57.01\n"
    assert "565.57.01" in (t4.root / "proc/driver/nvidia/version").read_text()


def test_nvidia_smi_list_and_query(t4):
    install_driver(t4)
    uuid = t4.world()["gpus"][0]["uuid"]
    r = run(t4, "nvidia-smi", "-L")
    assert r.stdout == "GPU 0: Tesla T4 (UUID: %s)\n" % uuid
    r = run(t4, "nvidia-smi", "--query-gpu=" + QUERY, "--format=csv,noheader,nounits")
    assert r.returncode == 0
    assert r.stdout == "0, Tesla T4, 15360, %s, 00000000:00:07.0, 565.57.01, [N/A]\n" % uuid
    r = run(t4, "nvidia-smi", "--query-gpu=" + QUERY, "--format=csv")
    assert r.stdout.splitlines() == [
        "index, name, memory.total [MiB], uuid, pci.bus_id, driver_version, mig.mode.current",
        "0, Tesla T4, 15360 MiB, %s, 00000000:00:07.0, 565.57.01, [N/A]" % uuid]
    r = run(t4, "nvidia-smi", "--query-gpu=memory.total,name", "--format=csv,nounits")
    assert r.stdout == "memory.total [MiB], name\n15360, Tesla T4\n"
    r = run(t4, "nvidia-smi", "--query-gpu", "uuid", "--format", "csv,noheader")
    assert r.stdout == uuid + "\n"
    r = run(t4, "nvidia-smi", "--query-gpu=index,bogus", "--format=csv")
    assert r.returncode == 2 and 'Field "bogus" is not a valid field to query.' in r.stderr
    r = run(t4, "nvidia-smi", "--query-gpu=index")
    assert r.returncode == 2


def test_nvidia_smi_version_mismatch_after_upgrade(t4):
    install_driver(t4, version="550.127.05", cuda="12.4")

    def upgrade(w):
        w["driver"]["version"] = "565.57.01"
        w["driver"]["cuda_version"] = "12.7"
        w["host"]["reboot_required"] = True
    t4.mutate(upgrade)
    assert (t4.root / "var/run/reboot-required").is_file()
    r = run(t4, "nvidia-smi")
    assert r.returncode == 18
    assert r.stdout.startswith("Failed to initialize NVML: Driver/library version mismatch\n")
    assert run(t4, "reboot").returncode == 0
    assert not (t4.root / "var/run/reboot-required").exists()
    r = run(t4, "nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
    assert (r.returncode, r.stdout) == (0, "565.57.01\n")


def test_reboot_pending_profile(tmp_path):
    sb = prepare("reboot-pending", tmp_path / "sb")
    assert run(sb, "nvidia-smi").returncode == 18
    assert (sb.root / "var/run/reboot-required").is_file()
    assert (sb.root / "sys/module/nvidia/version").read_text() == "550.127.05\n"
    run(sb, "reboot")
    assert run(sb, "nvidia-smi").returncode == 0


# ---------------------------------------------------------------------------------------------
# other profiles


def test_no_gpu(tmp_path):
    sb = prepare("no-gpu", tmp_path / "sb")
    r = run(sb, "lspci", "-nn")
    assert r.returncode == 0 and r.stdout
    assert "NVIDIA" not in r.stdout and "10de" not in r.stdout
    vendors = [p.read_text() for p in (sb.root / "sys/bus/pci/devices").glob("*/vendor")]
    assert vendors and "0x10de\n" not in vendors
    assert which(sb, "nvidia-smi") is None and which(sb, "docker") is None
    # not EFI: mokutil says so
    r = run(sb, "mokutil", "--sb-state")
    assert r.returncode != 0 and "EFI variables are not supported on this system" in r.stderr
    # the kernel has nouveau but there is no card for it to bind
    assert "nouveau" not in (sb.root / "proc/modules").read_text()


def test_multi_gpu(tmp_path):
    sb = prepare("multi-gpu", tmp_path / "sb")
    r = run(sb, "lspci", "-nn")
    lines = r.stdout.splitlines()
    gpus = [line for line in lines if "3D controller [0302]: NVIDIA" in line]
    assert len(gpus) == 4
    assert sum("A100 SXM4 80GB" in line for line in gpus) == 2 and sum("Tesla T4" in line for line in gpus) == 2
    bridges = [line for line in lines if line.split(" ", 1)[1].startswith("Bridge [0680]: NVIDIA")]
    assert bridges and all("NVSwitch" in b for b in bridges)
    assert any("VGA compatible controller [0300]: ASPEED" in line for line in lines)
    r = run(sb, "nvidia-smi", "--query-gpu=" + QUERY, "--format=csv,noheader,nounits")
    rows = [row.split(", ") for row in r.stdout.splitlines()]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    assert [row[1] for row in rows] == ["NVIDIA A100-SXM4-80GB"] * 2 + ["Tesla T4"] * 2
    assert [row[2] for row in rows] == ["81920", "81920", "15360", "15360"]
    assert [row[4] for row in rows] == ["00000000:07:00.0", "00000000:0F:00.0", "00000000:41:00.0",
                                        "00000000:42:00.0"]
    assert [row[6] for row in rows] == ["Disabled", "Disabled", "[N/A]", "[N/A]"]
    table = run(sb, "nvidia-smi").stdout
    widths = {len(line) for line in table.splitlines()[1:]}
    assert widths == {91} or widths == {89, 91}
    assert table.count("|   ") >= 4 and "|   3  Tesla T4" in table
    assert table.count("Disabled |") == 2
    r = run(sb, "nvidia-smi", "-L", "-i", "1")
    assert r.stdout.startswith("GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-")


def test_nouveau_blacklist_and_reboot(tmp_path):
    sb = prepare("nouveau", tmp_path / "sb")
    mods = (sb.root / "proc/modules").read_text()
    assert "\nnouveau " in "\n" + mods
    boot1 = (sb.root / "proc/sys/kernel/random/boot_id").read_text()
    # the driver cannot load while nouveau holds the card
    install_driver(sb)
    assert run(sb, "nvidia-smi").returncode == 9
    conf = sb.root / "etc/modprobe.d/blacklist-nouveau.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("blacklist nouveau\noptions nouveau modeset=0\n")
    r = run(sb, "reboot")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    boot2 = (sb.root / "proc/sys/kernel/random/boot_id").read_text()
    assert boot2 != boot1 and sb.world()["host"]["boot_id"] == boot2.strip()
    mods = (sb.root / "proc/modules").read_text()
    assert "nouveau" not in mods and "\nnvidia " in "\n" + mods
    assert run(sb, "nvidia-smi").returncode == 0


def test_secureboot_rejects_unsigned_module(tmp_path):
    sb = prepare("secureboot", tmp_path / "sb")
    assert run(sb, "mokutil", "--sb-state").stdout == "SecureBoot enabled\n"
    efivar = sb.root / "sys/firmware/efi/efivars" / W.SECUREBOOT_VAR
    assert efivar.read_bytes()[-1] == 1
    install_driver(sb)
    assert run(sb, "nvidia-smi").returncode == 9

    def sign(w):
        w["driver"]["signed"] = True
    sb.mutate(sign)
    run(sb, "reboot")
    assert run(sb, "nvidia-smi").returncode == 0


def test_ready(tmp_path):
    sb = prepare("ready", tmp_path / "sb")
    r = run(sb, "nvidia-smi")
    assert r.returncode == 0 and r.stdout.split("\n", 1)[1] == SEED_SMI
    assert run(sb, "nvcc", "--version").stdout == SEED_NVCC
    assert run(sb, "nvcc", "-V").stdout == SEED_NVCC
    nvcc = sb.root / "usr/local/cuda-12.6/bin/nvcc"
    assert os.access(nvcc, os.X_OK)
    assert subprocess.run([str(nvcc), "-V"], capture_output=True, text=True).stdout == SEED_NVCC
    assert os.readlink(sb.root / "usr/local/cuda") == "cuda-12.6"
    daemon = json.loads((sb.root / "etc/docker/daemon.json").read_text())
    assert daemon == {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    r = run(sb, "docker", "info", "--format", "{{json .Runtimes}}")
    assert json.loads(r.stdout)["nvidia"] == {"path": "nvidia-container-runtime"}
    assert run(sb, "docker", "version", "--format", "{{.Server.Version}}").stdout == "24.0.7\n"
    assert run(sb, "nvidia-ctk", "--version").stdout.startswith("NVIDIA Container Toolkit CLI version 1.17.0\ncommit: ")
    assert run(sb, "kind", "version").stdout == "kind v0.24.0 go1.22.6 linux/amd64\n"
    assert run(sb, "kind", "get", "clusters").stdout == "gpu-cluster\n"
    assert run(sb, "helm", "version", "--short").stdout == "v3.16.2+g13654a5\n"
    rels = json.loads(run(sb, "helm", "list", "-A", "-o", "json").stdout)
    assert {r["name"]: r["namespace"] for r in rels} == {"gpu-operator-1731231396": "gpu-operator",
                                                           "hami": "kube-system"}
    assert json.loads(run(sb, "helm", "list", "-o", "json").stdout) == []  # default namespace only
    assert run(sb, "kubectl", "config", "current-context").stdout == "kind-gpu-cluster\n"
    v = json.loads(run(sb, "kubectl", "version", "-o", "json").stdout)
    assert v["clientVersion"]["gitVersion"] == "v1.31.2" and v["serverVersion"]["minor"] == "31"
    nodes = json.loads(run(sb, "kubectl", "get", "nodes", "-o", "json").stdout)
    assert nodes["kind"] == "List" and len(nodes["items"]) == 1
    node = nodes["items"][0]
    assert node["metadata"]["name"] == "gpu-cluster-control-plane"
    assert node["metadata"]["labels"]["gpu"] == "on"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "10"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "10"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2"
    table = run(sb, "kubectl", "get", "nodes").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert table[1].split()[:3] == ["gpu-cluster-control-plane", "Ready", "control-plane"]
    assert "accept-nvidia-visible-devices-as-volume-mounts = true" in \
        (sb.root / "etc/nvidia-container-runtime/config.toml").read_text()


def test_kube_tools_without_cluster(t4):
    def add(w):
        w["kubectl"] = {"version": "v1.31.2"}
        w["helm"] = {"version": "v3.16.2"}
        w["kind"] = {"version": "v0.24.0"}
    t4.mutate(add)
    r = run(t4, "kubectl", "version", "-o", "json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert "clientVersion" in doc and "serverVersion" not in doc
    assert r.stderr.strip().endswith(
        "The connection to the server localhost:8080 was refused - did you specify the right host or port?")
    r = run(t4, "kubectl", "config", "current-context")
    assert (r.returncode, r.stderr) == (1, "error: current-context is not set\n")
    assert run(t4, "kubectl", "get", "nodes").returncode == 1
    r = run(t4, "helm", "list", "-A", "-o", "json")
    assert r.returncode == 1 and "Kubernetes cluster unreachable" in r.stderr
    r = run(t4, "kind", "get", "clusters")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "No kind clusters found.\n")


def _install_release(sb: Sandbox, tool: str, url: str) -> None:
    """What the wizard's install actions do, against the simulated downloads."""
    d = sb.root / "var/tmp/dl"
    d.mkdir(parents=True, exist_ok=True)
    f = d / url.rsplit("/", 1)[1]
    assert run(sb, "curl", "-fsSL", "-o", str(f), url).returncode == 0
    binary = f
    if url.endswith(".tar.gz"):
        assert run(sb, "tar", "-xzf", str(f), "-C", str(d), "linux-amd64/" + tool).returncode == 0
        binary = d / "linux-amd64" / tool
    r = run(sb, "install", "-o", "root", "-g", "root", "-m", "0755", str(binary), str(sb.root / "usr/local/bin" / tool))
    assert r.returncode == 0, r.stderr


def test_freshly_installed_pinned_tools_answer_as_those_releases(tmp_path):
    """Helm v4.3.0 prints its build as real v4.3.0 does (commit bec5b06, go1.27.1, and Helm 4's
    KubeClientVersion); kind v0.33.0 creates a v1.37.0 cluster when no image is named."""
    sb = prepare("host-ready", tmp_path / "sb")
    _install_release(sb, "helm", "https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz")
    _install_release(sb, "kind", "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64")
    _install_release(sb, "kubectl", "https://dl.k8s.io/release/v1.36.5/bin/linux/amd64/kubectl")
    assert run(sb, "helm", "version", "--short").stdout == "v4.3.0+gbec5b06\n"
    assert run(sb, "helm", "version").stdout == (
        'version.BuildInfo{Version:"v4.3.0", GitCommit:"bec5b06ed841fe5269972d864d5177944fd5970f", '
        'GitTreeState:"clean", GoVersion:"go1.27.1", KubeClientVersion:"v1.37"}\n')
    assert run(sb, "helm", "version", "--template", "{{.KubeClientVersion}}").stdout == "v1.37"
    assert run(sb, "kind", "version").stdout == "kind v0.33.0 go1.26.7 linux/amd64\n"
    v = json.loads(run(sb, "kubectl", "version", "--client", "-o", "json").stdout)
    assert v["clientVersion"]["gitVersion"] == "v1.36.5"
    r = run(sb, "kind", "create", "cluster", "--name", "plain")
    assert r.returncode == 0, r.stderr
    assert "Ensuring node image (kindest/node:v1.37.0)" in r.stderr
    v = json.loads(run(sb, "kubectl", "version", "--context", "kind-plain", "-o", "json").stdout)
    assert v["serverVersion"]["gitVersion"] == "v1.37.0"


def test_kind_cluster_needs_docker(tmp_path):
    sb = prepare("ready", tmp_path / "sb")
    run(sb, "systemctl", "stop", "docker")
    r = run(sb, "kubectl", "get", "nodes", "-o", "json")
    assert r.returncode == 1 and "127.0.0.1:39127 was refused" in r.stderr
    run(sb, "reboot")  # docker is enabled: it comes back, and so does the cluster
    assert run(sb, "kubectl", "get", "nodes", "-o", "name").stdout == "node/gpu-cluster-control-plane\n"


# ---------------------------------------------------------------------------------------------
# docker / systemctl


def test_docker_daemon_and_systemctl(t4):
    assert run(t4, "docker", "--version").stdout == "Docker version 24.0.7, build 24.0.7-0ubuntu2~22.04.1\n"
    r = run(t4, "systemctl", "is-active", "docker")
    assert (r.returncode, r.stdout) == (0, "active\n")
    assert run(t4, "systemctl", "stop", "docker").returncode == 0
    r = run(t4, "systemctl", "is-active", "docker")
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    r = run(t4, "docker", "version", "--format", "{{.Server.Version}}")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                        "Is the docker daemon running?\n")
    assert run(t4, "systemctl", "start", "docker").returncode == 0
    assert run(t4, "docker", "version", "--format", "{{.Server.Version}}").stdout == "24.0.7\n"
    assert json.loads(run(t4, "docker", "info", "--format", "{{json .Runtimes}}").stdout) == {
        "io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
    # the daemon reads daemon.json only when it (re)starts
    daemon = t4.root / "etc/docker/daemon.json"
    daemon.parent.mkdir(parents=True, exist_ok=True)
    daemon.write_text(json.dumps({"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
                                  "default-runtime": "nvidia"}))
    assert "nvidia" not in run(t4, "docker", "info", "--format", "{{json .Runtimes}}").stdout
    assert run(t4, "systemctl", "restart", "docker").returncode == 0
    assert "nvidia" in json.loads(run(t4, "docker", "info", "--format", "{{json .Runtimes}}").stdout)
    assert run(t4, "docker", "info", "--format", "{{.DefaultRuntime}}").stdout == "nvidia\n"
    # a broken daemon.json: docker fails to start, as for real
    daemon.write_text("{ not json")
    r = run(t4, "systemctl", "restart", "docker")
    assert r.returncode == 1 and "Job for docker.service failed" in r.stderr
    assert run(t4, "systemctl", "is-active", "docker").returncode == 3
    assert run(t4, "containerd", "--version").stdout.startswith("containerd github.com/containerd/containerd 1.7.12")
    r = run(t4, "systemctl", "restart", "nosuch")
    assert r.returncode == 5 and "Unit nosuch.service not found." in r.stderr
    assert [c["argv"][:2] for c in t4.calls()].count(["systemctl", "restart"]) == 3


def test_uname_variants(t4):
    assert run(t4, "uname", "-r").stdout == "5.15.0-125-generic\n"
    assert run(t4, "uname").stdout == "Linux\n"
    assert run(t4, "uname", "-a").stdout == (
        "Linux gpu-demo 5.15.0-125-generic #135-Ubuntu SMP Fri Sep 27 13:53:58 UTC 2024 "
        "x86_64 x86_64 x86_64 GNU/Linux\n")
    assert run(t4, "uname", "-sr").stdout == "Linux 5.15.0-125-generic\n"


@pytest.mark.parametrize("argv", [
    ["uname", "-z"], ["lspci", "-q"], ["mokutil", "--frobnicate"], ["systemctl", "frobnicate", "docker"],
    ["docker", "version", "--bogus"], ["reboot", "--bogus"], ["containerd", "--bogus"],
])
def test_unknown_flags_are_usage_errors(t4, argv):
    r = run(t4, *argv)
    assert r.returncode == 2 and r.stderr and not r.stdout


def test_unknown_flags_of_installed_tools(tmp_path):
    sb = prepare("ready", tmp_path / "sb")
    for argv in (["nvidia-smi", "--bogus"], ["nvcc", "--bogus"], ["kubectl", "frobnicate"],
                 ["helm", "frobnicate"], ["kind", "frobnicate"], ["nvidia-ctk", "--bogus"],
                 ["kubectl", "get", "nodes", "-o", "yaml"]):
        r = run(sb, *argv)
        assert r.returncode == 2 and r.stderr, argv
    # real but not-yet-simulated commands never silently succeed, and are flagged in calls.jsonl
    r = run(sb, "helm", "install", "x", "y")
    assert r.returncode == 2 and r.stderr == "gpuwizard-sim: `helm install x y` is not simulated\n"
    assert sb.calls()[-1] == {"argv": ["helm", "install", "x", "y"], "rc": 2, "unsupported": True}
    r = run(sb, "lspci", "-k")
    assert r.returncode == 2 and "not simulated" in r.stderr


def test_sudo_runs_the_simulated_tool(t4):
    r = run(t4, "sudo", "-n", "uname", "-r")
    assert (r.returncode, r.stdout) == (0, "5.15.0-125-generic\n")
    assert t4.calls()[-1] == {"argv": ["uname", "-r"], "rc": 0}
    r = run(t4, "sudo", "nvidia-smi")
    assert r.returncode == 1 and "sudo: nvidia-smi: command not found" in r.stderr


# ---------------------------------------------------------------------------------------------
# failure injection, call log, concurrency, speed


def test_failure_injection_env_with_times(t4):
    rules = [{"match": ["docker", "version"], "rc": 1, "stderr": "injected boom\n", "times": 2}]
    env = {"GPUWIZARD_SIM_FAIL": json.dumps(rules)}
    outs = [run(t4, "docker", "version", "--format", "{{.Server.Version}}", env=env) for _ in range(3)]
    assert [o.returncode for o in outs] == [1, 1, 0]
    assert outs[0].stderr == "injected boom\n" and outs[2].stdout == "24.0.7\n"
    assert list(t4.world()["failure_uses"].values()) == [2]
    # prefix match: other argv are untouched
    assert run(t4, "docker", "--version", env=env).returncode == 0
    calls = t4.calls()
    assert [c["rc"] for c in calls[-4:]] == [1, 1, 0, 0]
    assert "injected" in calls[-4] and "injected" not in calls[-2]


def test_failure_injection_from_world_wildcard_and_passthrough(t4):
    def add(w):
        w["failures"] = [
            {"match": ["lspci", "*"], "rc": 3, "stdout": "partial\n", "times": 1},
            {"match": ["uname"], "sleep": 0.2, "passthrough": True},
        ]
    t4.mutate(add)
    r = run(t4, "lspci", "-nn")
    assert (r.returncode, r.stdout) == (3, "partial\n")
    assert run(t4, "lspci", "-nn").returncode == 0
    assert run(t4, "lspci").stdout.startswith("00:00.0 Host bridge")  # "*" needs a word
    t = time.perf_counter()
    r = run(t4, "uname", "-m")
    assert time.perf_counter() - t >= 0.2 and (r.returncode, r.stdout) == (0, "x86_64\n")
    uses = t4.world()["failure_uses"]
    assert uses == {"profile:0": 1, "profile:1": 1}


def test_env_rules_take_precedence(t4):
    def add(w):
        w["failures"] = [{"match": ["uname"], "rc": 4}]
    t4.mutate(add)
    env = {"GPUWIZARD_SIM_FAIL": json.dumps([{"match": ["uname", "-m"], "rc": 7, "stdout": "env\n"}])}
    assert run(t4, "uname", "-m", env=env).returncode == 7
    assert run(t4, "uname", "-r", env=env).returncode == 4


def test_bad_fail_env_is_loud(t4):
    r = run(t4, "uname", env={"GPUWIZARD_SIM_FAIL": "[not json"})
    assert r.returncode == 70 and "GPUWIZARD_SIM_FAIL" in r.stderr


def test_calls_jsonl_records_invocations(t4):
    run(t4, "uname", "-m")
    run(t4, "lspci", "-nn")
    run(t4, "systemctl", "is-active", "nosuch")
    assert t4.calls() == [{"argv": ["uname", "-m"], "rc": 0}, {"argv": ["lspci", "-nn"], "rc": 0},
                          {"argv": ["systemctl", "is-active", "nosuch"], "rc": 3}]
    raw = (t4.root / ".gpuwizard-sim/calls.jsonl").read_text().splitlines()
    assert [json.loads(line)["argv"][0] for line in raw] == ["uname", "lspci", "systemctl"]


def test_call_log_escapes_odd_arguments(t4):
    odd = 'a "quoted"\\ arg\twith\nnewline \u00e9\x01'
    run(t4, "uname", odd)
    assert t4.calls()[-1]["argv"] == ["uname", odd]


def test_hand_edited_world_json_is_honoured(t4):
    path = t4.root / ".gpuwizard-sim/world.json"
    w = json.loads(path.read_text())
    w["host"]["kernel"] = "6.8.0-99-generic"
    path.write_text(json.dumps(w))
    snapshot = (t4.root / ".gpuwizard-sim/world.marshal").stat()
    os.utime(path, ns=(snapshot.st_atime_ns, snapshot.st_mtime_ns + 10_000_000))  # the edit is newer, whatever the clock's grain
    assert run(t4, "uname", "-r").stdout == "6.8.0-99-generic\n"


def test_concurrent_tools_keep_world_consistent(t4):
    errors = []

    def worker(i):
        try:
            argv = ["systemctl", "restart", "docker"] if i % 2 else ["docker", "version", "--format",
                                                                      "{{.Client.Version}}"]
            r = run(t4, *argv)
            if r.returncode != 0:
                errors.append((argv, r.returncode, r.stderr))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads((t4.root / ".gpuwizard-sim/world.json").read_text())["services"]["docker"]["active"]
    assert len(t4.calls()) == 16
    assert not list((t4.root / ".gpuwizard-sim").glob("*.tmp.*"))


def test_tools_module_imports_nothing_heavy():
    code = ("import sys; sys.path.insert(0, %r); import gpuwizard.simulate.tools; "
            "bad = [m for m in ('yaml', 'pydantic', 'json', 're', 'uuid', 'hashlib', 'subprocess') "
            "if m in sys.modules]; print(bad)" % W.package_parent())
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_simulated_tools_never_write_outside_their_sandbox(tmp_path):
    """curl -o with a path outside the sandbox is refused (a simulated tool must not change the
    real machine, whatever path a buggy step hands it)."""
    import subprocess as _sp

    sb = prepare("t4-bare", tmp_path / "sb")
    outside = tmp_path / "outside.txt"
    curl = sb.bin_dir / "curl"
    if not curl.exists():
        pytest.skip("no simulated curl in this profile")
    proc = _sp.run([str(curl), "-fsSL", "-o", str(outside), "https://nvidia.github.io/libnvidia-container/gpgkey"],
                   capture_output=True, text=True, env={"PATH": str(sb.bin_dir)})
    assert proc.returncode == 2 and "outside the sandbox" in proc.stderr
    assert not outside.exists()


def test_kubectl_get_nodes_by_name_shows_that_nodes_age(tmp_path):
    sb = prepare("ready", tmp_path / "sb")

    def add_worker(w):
        c = w["clusters"][0]
        worker = json.loads(json.dumps(c["nodes"][0]))
        worker.update(name="gpu-cluster-worker", role="worker", age="3d")
        c["nodes"].append(worker)
    sb.mutate(add_worker)
    rows = run(sb, "kubectl", "get", "nodes", "gpu-cluster-worker").stdout.splitlines()
    assert len(rows) == 2 and rows[1].split()[0] == "gpu-cluster-worker" and rows[1].split()[3] == "3d"
    rows = run(sb, "kubectl", "get", "nodes").stdout.splitlines()
    assert [r.split()[3] for r in rows[1:]] == ["71m", "3d"]


@pytest.mark.parametrize("image_cuda, status", [("12.7.0", "Completed"), ("12.6.2", "Completed"), ("12.8.0", "Error"),
                                                ("junk", "Completed")])
def test_vectoradd_pod_needs_a_driver_cuda_at_least_its_own(tmp_path, image_cuda, status):
    """The driver's CUDA 12.7 runs a cuda12.7.0 image (12.7.0 == 12.7), not a cuda12.8.0 one."""
    sb = prepare("ready", tmp_path / "sb")
    manifest = sb.root / "root/pod.yaml"  # the simulated kubectl reads system paths inside the sandbox
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: va\n  namespace: default\nspec:\n  containers:\n"
                        "  - name: va\n    image: nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda%s-ubuntu22.04\n"
                        "    resources:\n      limits:\n        nvidia.com/gpu: 1\n" % image_cuda)
    assert run(sb, "kubectl", "apply", "-f", "/root/pod.yaml").returncode == 0
    table = run(sb, "kubectl", "get", "pod", "va", "-n", "default").stdout.splitlines()
    assert table[1].split()[2] == status, table


def test_nvidia_ctk_containerd_configure_reads_the_toml_it_extends(tmp_path):
    sb = prepare("ready", tmp_path / "sb")
    conf = sb.root / "etc/containerd/config.toml"
    argv = ("nvidia-ctk", "runtime", "configure", "--runtime=containerd", "--set-as-default")
    assert run(sb, *argv).returncode == 0
    first = conf.read_text()
    assert first.count("runtimes.nvidia]") == 1 and first.count('default_runtime_name = "nvidia"') == 1
    assert run(sb, *argv).returncode == 0 and conf.read_text() == first  # already there: unchanged
    # written by hand with other spacing and quoting: read as TOML, rewritten in go-toml's layout (as the
    # real tool saves it) with the runtime's binary added, each table once
    conf.write_text("version = 2\n[plugins.'io.containerd.grpc.v1.cri'.containerd]\ndefault_runtime_name='nvidia'\n"
                    "[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.nvidia]\nruntime_type='io.containerd.runc.v2'\n")
    assert run(sb, *argv).returncode == 0
    hand = conf.read_text()
    assert hand.count("runtimes.nvidia]") == 1 and hand.count('default_runtime_name = "nvidia"') == 1
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in hand and "runtime_type = \"io.containerd.runc.v2\"" in hand
    assert run(sb, *argv).returncode == 0 and conf.read_text() == hand
    conf.write_text("[plugins\n")
    r = run(sb, *argv)
    assert r.returncode == 1 and "unable to load config" in r.stderr and conf.read_text() == "[plugins\n"
