"""Detection on hosts the first real runs showed wrong (issue 11): the 610 driver's renamed nvidia-smi
header and its deprecated ``driver_version`` query field, a legacy-BIOS boot (no EFI), and a kernel
without loadable module support."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuwizard import detect as D
from gpuwizard import doctor
from gpuwizard.host import Host, Runner
from gpuwizard.simulate import Sandbox, prepare

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "tools"
WIZARD_QUERY = "--query-gpu=" + ",".join(D.P.SMI_QUERY_FIELDS)
REFUSED = 'Field "driver_version" is not a valid field to query.\n'  # nvidia-smi's words for a field it lacks


def sim_host(sb: Sandbox) -> Host:
    return Host(sb.root, Runner(path=sb.env()["PATH"], env=sb.env()))


def smi_calls(sb: Sandbox) -> list[list[str]]:
    lines = (sb.root / ".gpuwizard-sim/calls.jsonl").read_text().splitlines()
    return [c["argv"][1:] for c in map(json.loads, lines) if Path(c["argv"][0]).name == "nvidia-smi"]


def inject(sb: Sandbox, *rules: dict) -> None:
    sb.mutate(lambda w: w.setdefault("failures", []).extend(rules))


@pytest.fixture
def r610(tmp_path: Path) -> Sandbox:
    return prepare("driver-610", tmp_path / "sb")


# ------------------------------------------------------------------ driver branch 610


def test_a_610_driver_reports_its_cuda_version(r610: Sandbox):
    """`cuda: {}` and the GPU check's image are chosen from the driver's CUDA version: on a 610
    host it must be read from "CUDA UMD Version: 13.3", not lost."""
    facts = D.detect(sim_host(r610))
    assert facts["driver"] == {"version": "610.43.02", "cuda_version": "13.3"}
    assert facts["driver_status"] == "ok" and facts["gpu_source"] == "nvidia-smi"
    assert [g["name"] for g in facts["gpus"]] == ["Tesla T4"]
    assert ("driver", "ok", "610.43.02 (supports CUDA ≤ 13.3)") in doctor.rows(facts)


def test_the_simulated_610_header_is_the_real_one(r610: Sandbox):
    """The simulated nvidia-smi of a 610 driver prints the header line a real 610.43.02 prints
    (mistral.rs#2287's capture), and keeps the old header for older branches."""
    real = (FIX / "nvidia-smi/rtx5070-610-kmd-umd-header.txt").read_text().splitlines()[1]
    table = sim_host(r610).runner.probe(["nvidia-smi"])
    assert table is not None and table.ok
    assert table.stdout.splitlines()[2] == real
    ready = prepare("host-ready", r610.root.parent / "565")
    old = sim_host(ready).runner.probe(["nvidia-smi"])
    assert old is not None and "Driver Version: 565.57.01" in old.stdout and "KMD" not in old.stdout


def test_a_610_driver_still_answers_the_deprecated_driver_version_field(r610: Sandbox):
    """Deprecated is not removed: a real 610.88 printed its version for --query-gpu=...,driver_version."""
    result = sim_host(r610).runner.probe(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    assert result is not None and (result.rc, result.stdout) == (0, "610.43.02\n")


def test_detection_survives_the_driver_version_field_being_removed(r610: Sandbox):
    """A driver without `driver_version` refuses the whole query; detection asks again without the
    field and still finds the GPUs, the driver version (from the header) and its CUDA version."""
    inject(r610, {"match": ["nvidia-smi", WIZARD_QUERY], "rc": 2, "stderr": REFUSED})
    facts = D.detect(sim_host(r610))
    assert facts["driver"] == {"version": "610.43.02", "cuda_version": "13.3"}
    assert facts["gpu_source"] == "nvidia-smi" and facts["problems"] == {}
    gpu = facts["gpus"][0]
    assert (gpu["name"], gpu["memory_mib"], gpu["pci_bus_id"], gpu["mig"]) == ("Tesla T4", 15360, "00000000:00:07.0", None)
    assert gpu["uuid"] == r610.world()["gpus"][0]["uuid"]
    queries = [c[0] for c in smi_calls(r610) if c and c[0].startswith("--query-gpu=")]
    assert queries == [WIZARD_QUERY, "--query-gpu=index,name,memory.total,uuid,pci.bus_id,mig.mode.current"]


def test_the_driver_version_comes_from_the_kernel_module_when_nvidia_smi_gives_none(r610: Sandbox):
    """No driver_version column and no table (the bare call fails: 255 is nvidia-smi's "other
    error"): /proc/driver/nvidia/version, read under the host root, still names the loaded module."""
    retried = "--query-gpu=index,name,memory.total,uuid,pci.bus_id,mig.mode.current"
    inject(
        r610,
        {"match": ["nvidia-smi", WIZARD_QUERY], "rc": 2, "stderr": REFUSED},
        {"match": ["nvidia-smi", retried], "passthrough": True},
        {"match": ["nvidia-smi"], "rc": 255},
    )
    facts = D.detect(sim_host(r610))
    assert facts["gpu_source"] == "nvidia-smi" and [g["name"] for g in facts["gpus"]] == ["Tesla T4"]
    assert facts["driver"] == {"version": "610.43.02", "cuda_version": None}
    assert "610.43.02" in (r610.root / "proc/driver/nvidia/version").read_text()


# ------------------------------------------------------------------ Secure Boot


def test_a_legacy_bios_boot_has_secure_boot_off(tmp_path: Path):
    """no-gpu boots without EFI (mokutil: "EFI variables are not supported on this system"): no
    /sys/firmware/efi means no Secure Boot, so it is off, not unknown."""
    sb = prepare("no-gpu", tmp_path / "sb")
    assert not (sb.root / "sys/firmware/efi").exists() and (sb.root / "sys/bus/pci/devices").is_dir()
    facts = D.detect(sim_host(sb))
    assert facts["host"]["secure_boot"] is False
    host_row = doctor.rows(facts)[0]
    assert host_row[0] == "host" and "Secure Boot off" in host_row[2]


@pytest.mark.parametrize("profile, expected", [("t4-bare", False), ("secureboot", True)])
def test_efi_hosts_still_ask_mokutil(tmp_path: Path, profile: str, expected: bool):
    sb = prepare(profile, tmp_path / "sb")
    assert D.probe_secure_boot(sim_host(sb))["secure_boot"] is expected
    assert any(c["argv"][1:] == ["--sb-state"] for c in map(json.loads, (sb.root / ".gpuwizard-sim/calls.jsonl").read_text().splitlines()))


@pytest.mark.parametrize("value, expected", [(1, True), (0, False)])
def test_without_mokutil_the_efi_variable_tells(fake_root: Path, bin_dir: Path, value: int, expected: bool):
    """A minimal install has no mokutil: the SecureBoot variable under efivarfs holds 4 attribute bytes
    (here BOOTSERVICE|RUNTIME access, 0x06) and then the value (Documentation/filesystems/efivarfs.rst)."""
    efivars = fake_root / "sys/firmware/efi/efivars"
    efivars.mkdir(parents=True)
    (efivars / f"SecureBoot-{D.EFI_GLOBAL_GUID}").write_bytes(bytes([6, 0, 0, 0, value]))
    assert D.probe_secure_boot(Host(fake_root, Runner(path=str(bin_dir))))["secure_boot"] is expected


def test_a_root_without_sysfs_says_nothing_about_secure_boot(fake_root: Path, bin_dir: Path):
    """A root with no /sys mounted (a debootstrap tree) is no evidence of a BIOS boot: unknown."""
    assert D.probe_secure_boot(Host(fake_root, Runner(path=str(bin_dir))))["secure_boot"] is None


# ------------------------------------------------------------------ kernel module support


def no_modules_root(fake_root: Path) -> Path:
    """procfs as a kernel built without CONFIG_MODULES has it: /proc/version, no /proc/modules."""
    (fake_root / "proc/version").write_text("Linux version 6.8.0-48-generic (buildd@lcy02-amd64-001) #1 SMP\n")
    (fake_root / "sys/devices").mkdir(parents=True)
    return fake_root


def test_a_kernel_without_module_support_is_a_problem_not_nouveau_not_loaded(fake_root: Path, bin_dir: Path):
    facts = D.detect(Host(no_modules_root(fake_root), Runner(path=str(bin_dir))))
    assert "no loadable module support" in facts["problems"]["modules"]
    assert "cannot be loaded" in facts["problems"]["modules"]
    assert facts["host"]["nouveau_loaded"] is False and facts["host"]["nvidia_loaded"] is False
    layer, status, detail = doctor.rows(facts)[0]
    assert (layer, status) == ("host", "problem")
    assert "no loadable module support" in detail and "nouveau not loaded" not in detail
    assert doctor.document(facts)["problems"]["modules"] == facts["problems"]["modules"]


def test_without_module_support_a_built_in_nouveau_still_counts(fake_root: Path, bin_dir: Path):
    """Built in, nouveau shows under /sys/module (it has parameters) and still binds the card."""
    root = no_modules_root(fake_root)
    (root / "sys/module/nouveau/parameters").mkdir(parents=True)
    facts = D.detect(Host(root, Runner(path=str(bin_dir))))
    assert facts["host"]["nouveau_loaded"] is True and "modules" in facts["problems"]
    assert "nouveau built in" in doctor.rows(facts)[0][2]


def test_a_root_without_a_mounted_procfs_is_not_a_kernel_without_modules(fake_root: Path, bin_dir: Path):
    facts = D.detect(Host(fake_root, Runner(path=str(bin_dir))))
    assert "modules" not in facts["problems"] and facts["host"]["nouveau_loaded"] is False


def test_simulated_hosts_have_module_support(r610: Sandbox):
    facts = D.detect(sim_host(r610))
    assert "modules" not in facts["problems"] and facts["host"]["nvidia_loaded"] is True
