"""Detection: NVML and nvidia-smi agree on a real host; NVML errors mean something; fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pynvml
import pytest

from gpuwizard import detect as D
from gpuwizard.host import Host, Runner

from ..conftest import write_tool

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def test_nvml_and_nvidia_smi_paths_agree_on_the_real_h200(tmp_path: Path, bin_dir: Path):
    """The device machine's NVML answer (taken through probe_nvml) and the same machine's real
    nvidia-smi outputs, parsed through the nvidia-smi path, describe the same card."""
    nvml = json.loads((FIX / "device/h200-nvml.json").read_text())
    query = (FIX / "tools/nvidia-smi-query/h200-wizard-query-noheader-nounits.csv").read_text()
    table = (FIX / "tools/nvidia-smi/h200-580-device-machine.txt").read_text()
    write_tool(
        bin_dir,
        "nvidia-smi",
        f"import sys\nprint({query!r} if any(a.startswith('--query-gpu') for a in sys.argv) else {table!r}, end='')",
    )
    smi = D.probe_smi(Host(tmp_path, Runner(path=str(bin_dir))))
    assert smi["status"] == "ok" and nvml["status"] == "ok"
    assert smi["driver"] == nvml["driver"] == {"version": "580.159.04", "cuda_version": "13.0"}

    def strip(g):  # two captures, two machines
        return {k: v for k, v in g.items() if k != "uuid"}

    assert [strip(g) for g in smi["gpus"]] == [strip(g) for g in nvml["gpus"]]
    assert nvml["gpus"][0]["memory_mib"] == 143771


def test_real_h200_doctor_document_has_the_contract_shape():
    doc = json.loads((FIX / "device/h200-doctor.json").read_text())
    for key in ("host", "gpus", "driver", "cuda_toolkit", "container_toolkit", "docker", "kubernetes", "gpu_operator", "hami"):
        assert key in doc
    assert set(doc["host"]) >= {"os", "version", "kernel", "arch", "secure_boot", "nouveau_loaded"}
    assert set(doc["gpus"][0]) >= {"index", "name", "memory_mib", "uuid", "pci_bus_id", "mig"}
    assert doc["gpu_source"] == "nvml" and doc["cuda_toolkit"]["version"] == "13.0"


@pytest.mark.parametrize(
    "exc, status, words",
    [
        (pynvml.NVMLError_LibraryNotFound, "no-driver", "no NVIDIA driver installed"),
        (pynvml.NVMLError_DriverNotLoaded, "not-loaded", "not loaded"),
        (pynvml.NVMLError_LibRmVersionMismatch, "rm-mismatch", "needs a reboot"),
    ],
)
def test_nvml_errors_are_mapped_to_meaning(monkeypatch, exc, status, words):
    def fail():
        raise exc()

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    result = D.probe_nvml()
    assert result["status"] == status and words in result["reason"]


def test_nvml_is_never_asked_about_another_root(monkeypatch, tmp_path: Path, bin_dir: Path):
    """Under --root/--simulate NVML would describe the machine we run on, not the one we look at."""
    monkeypatch.setattr(D, "probe_nvml", lambda: pytest.fail("NVML consulted for a non-/ root"))
    result = D.detect_gpus(Host(tmp_path, Runner(path=str(bin_dir))))
    assert result["gpus"] == [] and result["source"] is None


def test_sysfs_fallback_finds_a_card_without_lspci(tmp_path: Path, bin_dir: Path):
    dev = tmp_path / "sys/bus/pci/devices/0000:00:06.0"
    dev.mkdir(parents=True)
    # the H200's real sysfs files (tests/fixtures/tools/sysfs/h200-0000-00-06.0-vendor-device-class.txt)
    vendor, device, klass = (FIX / "tools/sysfs/h200-0000-00-06.0-vendor-device-class.txt").read_text().split()[:3]
    (dev / "vendor").write_text(vendor + "\n")
    (dev / "device").write_text(device + "\n")
    (dev / "class").write_text(klass + "\n")
    result = D.detect_gpus(Host(tmp_path, Runner(path=str(bin_dir))))
    assert result["source"] == "lspci/sysfs"
    assert result["gpus"][0]["name"] == "NVIDIA H200" and result["gpus"][0]["memory_mib"] == 143771
    assert result["gpus"][0]["pci_bus_id"] == "00000000:00:06.0"


def test_missing_tools_are_facts_not_errors(tmp_path: Path, bin_dir: Path):
    facts = D.detect(Host(tmp_path, Runner(path=str(bin_dir))))
    assert facts["docker"] is None and facts["kubernetes"] is None and facts["driver"] is None
    assert facts["problems"] == {}


def test_cuda_toolkit_off_path_is_the_newest_by_version_not_by_name(tmp_path: Path, bin_dir: Path):
    """As strings cuda-12.9 sorts after cuda-12.10 (and cuda-9.2 after both): the newest is by version."""
    for name, version in (("cuda-9.2", "9.2.148"), ("cuda-12.9", "12.9.1"), ("cuda-12.10", "12.10.0"), ("cuda-old", "junk")):
        home = tmp_path / "usr/local" / name
        home.mkdir(parents=True)
        (home / "version.json").write_text(json.dumps({"cuda": {"name": "CUDA SDK", "version": version}}))
    found = D.probe_cuda_toolkit(Host(tmp_path, Runner(path=str(bin_dir))))
    assert found == {"version": "12.10", "full_version": "12.10.0", "path": "/usr/local/cuda-12.10", "on_path": False}


def test_cuda_toolkit_with_a_junk_version_json_is_skipped(tmp_path: Path, bin_dir: Path):
    for name, version in (("cuda-12.6", "12.6.2"), ("cuda-12.8", "not-a-version")):
        home = tmp_path / "usr/local" / name
        home.mkdir(parents=True)
        (home / "version.json").write_text(json.dumps({"cuda": {"version": version}}))
    found = D.probe_cuda_toolkit(Host(tmp_path, Runner(path=str(bin_dir))))
    assert found is not None and found["version"] == "12.6" and found["path"] == "/usr/local/cuda-12.6"
