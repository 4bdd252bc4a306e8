"""gpuwizard.parsers against real tool outputs (tests/fixtures/tools, provenance in SOURCES.md)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from gpuwizard import parsers as P

TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "tools"


def fx(rel: str) -> str:
    return (TOOLS / rel).read_text(encoding="utf-8")


def files(folder: str) -> list[str]:
    return sorted(f"{folder}/{p.name}" for p in (TOOLS / folder).iterdir() if p.is_file())


# ------------------------------------------------------------------ fixtures are documented


def test_every_fixture_is_listed_in_sources():
    sources = fx("SOURCES.md")
    missing = [
        p.relative_to(TOOLS).as_posix()
        for p in TOOLS.rglob("*")
        if p.is_file() and p.name != "SOURCES.md" and f"`{p.name}`" not in sources
    ]
    assert missing == []


# ------------------------------------------------------------------ nvidia-smi table

# file: (driver, cuda, [(name, bus_id, used, total, mig), ...])
SMI_TABLES = {
    "nvidia-smi/t4-565-seed.txt": ("565.57.01", "12.7", [("Tesla T4", "00000000:00:07.0", 1, 15360, None)]),
    "nvidia-smi/t4-565-hami-pod-seed.txt": ("565.57.01", "12.7", [("Tesla T4", "00000000:00:07.0", 0, 3000, None)]),
    "nvidia-smi/titan-xp-450.txt": ("450.57", "11.0", [("TITAN Xp", "00000000:17:00.0", 7, 12196, None)]),
    "nvidia-smi/geforce-truncated-470.txt": (
        "470.57.02",
        "11.4",
        [("NVIDIA GeForce ...", "00000000:41:00.0", 15, 7979, None)],
    ),
    "nvidia-smi/titan-xp-384-no-cuda-field.txt": ("384.66", None, [("TITAN Xp", "00000000:41:00.0", 2789, 12174, None)]),
    "nvidia-smi/a100-80gb-pcie-550-cuda-na-mig.txt": (
        "550.54.14",
        None,
        [("NVIDIA A100 80GB PCIe", "00000000:17:00.0", 0, 81920, "Enabled")],
    ),
    "nvidia-smi/h100-590-mig.txt": ("590.48.01", "13.1", [("NVIDIA H100 80GB HBM3", "00000000:00:09.0", 59, 81559, "Enabled")]),
    "nvidia-smi/a800x2-580-plus-separator.txt": (
        "580.119.02",
        "13.0",
        [
            ("NVIDIA A800 80GB PCIe", "00000000:01:00.0", 0, 81920, "Disabled"),
            ("NVIDIA A800 80GB PCIe", "00000000:81:00.0", 0, 81920, "Disabled"),
        ],
    ),
    "nvidia-smi/gb10-580-memory-not-supported.txt": ("580.95.05", "13.0", [("NVIDIA GB10", "0000000F:01:00.0", None, None, None)]),
    "nvidia-smi/h200-580-device-machine.txt": ("580.159.04", "13.0", [("NVIDIA H200", "00000000:00:06.0", 0, 143771, "Disabled")]),
    # branch 610: "KMD Version:" / "CUDA UMD Version:" in the header
    "nvidia-smi/b200x2-610-kmd-umd-header.txt": (
        "610.43.02",
        "13.3",
        [
            ("NVIDIA B200", "00000000:63:00.0", 0, 183359, "Disabled"),
            ("NVIDIA B200", "00000000:68:00.0", 0, 183359, "Disabled"),
        ],
    ),
    "nvidia-smi/rtx3080-610-kmd-umd-header.txt": ("610.43.03", "13.3", [("NVIDIA GeForce RTX 3080 ...", "00000000:01:00.0", 14, 16384, None)]),
    "nvidia-smi/rtx5070-610-kmd-umd-header.txt": ("610.43.02", "13.3", [("NVIDIA GeForce RTX 5070 ...", "00000000:02:00.0", 273, 12227, None)]),
}


@pytest.mark.parametrize("rel", sorted(SMI_TABLES))
def test_smi_table(rel):
    driver, cuda, gpus = SMI_TABLES[rel]
    table = P.parse_smi_table(fx(rel))
    assert table is not None
    assert (table.driver_version, table.cuda_version) == (driver, cuda)
    assert [(g.name, g.bus_id, g.memory_used_mib, g.memory_total_mib, g.mig_mode) for g in table.gpus] == gpus
    assert [g.index for g in table.gpus] == list(range(len(gpus)))


def test_smi_table_every_fixture_parses():
    for rel in files("nvidia-smi"):
        table = P.parse_smi_table(fx(rel))
        assert table is not None and table.driver_version and table.gpus, rel


def test_smi_table_eight_a100_old_header_mig_rows_are_not_gpus():
    table = P.parse_smi_table(fx("nvidia-smi/a100x8-450-mig-mixed.txt"))
    assert (table.driver_version, table.cuda_version) == ("450.80.02", "11.0")
    assert len(table.gpus) == 8  # the MIG devices table lists one more row; it is not a GPU
    assert {g.name for g in table.gpus} == {"A100-SXM4-40GB"}
    assert {g.memory_total_mib for g in table.gpus} == {40537}
    assert [g.mig_mode for g in table.gpus] == ["Disabled"] + ["Enabled"] * 7
    assert table.gpus[7].bus_id == "00000000:DA:00.0" and table.gpus[7].memory_used_mib == 3


def test_smi_table_h100_four_mig_devices_leave_one_gpu():
    table = P.parse_smi_table(fx("nvidia-smi/h100-590-mig.txt"))
    assert len(table.gpus) == 1  # 4 MIG devices below it


def test_smi_table_610_header_is_read_as_the_old_one_was():
    """The same facts from both header generations: 580's "Driver Version: ... CUDA Version: 13.0"
    and 610's "KMD Version: ... CUDA UMD Version: 13.3" each give the driver and its CUDA."""
    old = P.parse_smi_table(fx("nvidia-smi/h200-580-device-machine.txt"))
    new = P.parse_smi_table(fx("nvidia-smi/b200x2-610-kmd-umd-header.txt"))
    assert old is not None and new is not None
    assert (old.driver_version, old.cuda_version) == ("580.159.04", "13.0")
    assert (new.driver_version, new.cuda_version) == ("610.43.02", "13.3")
    # a 610 header alone, without the GPU table, still names the driver
    header = fx("nvidia-smi/rtx5070-610-kmd-umd-header.txt").splitlines()[1]
    alone = P.parse_smi_table(header)
    assert alone is not None and (alone.driver_version, alone.cuda_version, alone.gpus) == ("610.43.02", "13.3", [])


def test_smi_table_without_a_table():
    for text in ("", "   \n", fx("nvidia-smi-errors/no-driver-shine-cluster50.txt"), fx("nvcc/12.6-seed.txt")):
        assert P.parse_smi_table(text) is None


# ------------------------------------------------------------------ nvidia-smi --query-gpu CSV


def test_query_csv_full_header_with_units_h100_mig():
    rows = P.parse_smi_query_csv(fx("nvidia-smi-query/h100-mig-590-full-header-units.csv"))
    assert rows == [
        P.SmiQueryRow(
            index=0,
            name="NVIDIA H100 80GB HBM3",
            memory_mib=81559,
            uuid="GPU-00000000-0000-0000-0000-000000000000",
            pci_bus_id="00000000:00:09.0",
            driver_version="590.48.01",
            mig_mode="Enabled",
        )
    ]


def test_query_csv_l40s_header_units_no_index_column():
    rows = P.parse_smi_query_csv(fx("nvidia-smi-query/l40s-x2-header-units.csv"))
    assert [(r.index, r.name, r.memory_mib, r.pci_bus_id, r.driver_version) for r in rows] == [
        (0, "NVIDIA L40S", 46068, "00000000:01:00.0", "595.71.05"),
        (1, "NVIDIA L40S", 46068, "00000000:91:00.0", "595.71.05"),
    ]
    assert all(r.uuid is None and r.mig_mode is None for r in rows)


def test_query_csv_columns_in_another_order():
    rows = P.parse_smi_query_csv(fx("nvidia-smi-query/nuxhash-5gpu-header.csv"))
    assert [r.index for r in rows] == [0, 1, 2, 3, 4]
    assert rows[1].name == "GeForce GTX 1080 Ti"
    assert rows[1].uuid == "GPU-15ea7bf9-1a0e-2d7f-9c62-c28e5ca1aaf1"
    assert rows[1].pci_bus_id is None  # pci.bus is not pci.bus_id


def test_query_csv_mig_mode_values():
    rows = P.parse_smi_query_csv(fx("nvidia-smi-query/dra-uuid-mig-mode-4gpu-header.csv"))
    assert [r.mig_mode for r in rows] == ["Enabled", "Disabled", "Disabled", "Disabled"]
    assert [r.mig_mode for r in P.parse_smi_query_csv(fx("nvidia-smi-query/mig-mode-na-rtx-header.csv"))] == [None]


H200_ROW = P.SmiQueryRow(
    index=0,
    name="NVIDIA H200",
    memory_mib=143771,
    uuid="GPU-9719aea7-bc84-0333-750c-874a10aef6a3",
    pci_bus_id="00000000:00:06.0",
    driver_version="580.159.04",
    mig_mode="Disabled",
)


@pytest.mark.parametrize(
    "rel",
    [
        "nvidia-smi-query/h200-wizard-query-noheader-nounits.csv",  # what the wizard runs
        "nvidia-smi-query/h200-wizard-query-header.csv",
        "nvidia-smi-query/h200-wizard-query-header-nounits.csv",
    ],
)
def test_query_csv_the_wizard_query_in_every_format(rel):
    assert P.parse_smi_query_csv(fx(rel)) == [H200_ROW]


def test_query_csv_not_a_table():
    for text in ("", fx("nvidia-smi-errors/no-devices-singuconda6.txt"), fx("nvidia-smi-errors/rm-mismatch-tinygrad47.txt")):
        assert P.parse_smi_query_csv(text) == []


# ------------------------------------------------------------------ nvidia-smi -L


@pytest.mark.parametrize(
    "rel, gpus, migs",
    [
        ("nvidia-smi-L/a100-80gb-pcie-mig-2g.txt", 1, [["2g.20gb"]]),
        ("nvidia-smi-L/a100-sxm4-80gb-x4-mig-1g.txt", 4, [["1g.20gb"] * 4, [], [], []]),
        ("nvidia-smi-L/a100-sxm4-80gb-mig-7x1g.txt", 1, [["1g.10gb"] * 7]),
        ("nvidia-smi-L/a100-pcie-40gb-mig-mixed-profiles.txt", 1, [["3g.20gb", "2g.10gb", "1g.5gb"]]),
        ("nvidia-smi-L/quadro-rtx4000-x2.txt", 2, [[], []]),
        ("nvidia-smi-L/h100x8-rhel-ai-vm.txt", 8, [[]] * 8),
        ("nvidia-smi-L/h200-device-machine.txt", 1, [[]]),
    ],
)
def test_smi_list(rel, gpus, migs):
    entries = P.parse_smi_list(fx(rel))
    assert len(entries) == gpus
    assert [e.index for e in entries] == list(range(gpus))
    assert [[profile for profile, _ in e.mig] for e in entries] == migs
    assert all(e.uuid.startswith("GPU-") for e in entries)
    assert all(uuid.startswith("MIG-") for e in entries for _, uuid in e.mig)


def test_smi_list_names_and_uuids():
    entries = P.parse_smi_list(fx("nvidia-smi-L/a100-pcie-40gb-mig-mixed-profiles.txt"))
    assert entries[0].name == "NVIDIA A100-PCIE-40GB"
    assert entries[0].uuid == "GPU-3b722aa5-db24-5b93-84c8-e4e0efcef078"
    assert entries[0].mig[2] == ("1g.5gb", "MIG-5f16849a-8ae9-571a-bc2c-486916c4a324")
    assert P.parse_smi_list(fx("nvidia-smi-L/quadro-rtx4000-x2.txt"))[1].name == "Quadro RTX 4000"


# ------------------------------------------------------------------ nvidia-smi errors

ERRORS = {
    "nvidia-smi-errors/no-driver-shine-cluster50.txt": "no-driver",
    "nvidia-smi-errors/no-driver-curly-quote-qixuema4.txt": "no-driver",
    "nvidia-smi-errors/rm-mismatch-shine-cluster30.txt": "rm-mismatch",
    "nvidia-smi-errors/rm-mismatch-tinygrad47.txt": "rm-mismatch",
    "nvidia-smi-errors/no-devices-singuconda6.txt": "no-devices",
}


@pytest.mark.parametrize("rel", sorted(ERRORS))
def test_smi_error(rel):
    assert P.parse_smi_error(fx(rel)) == ERRORS[rel]


def test_smi_invalid_field_names_the_refused_field():
    assert P.parse_smi_invalid_field(fx("nvidia-smi-errors/invalid-field-id-llamacpp22519.txt")) == "id"
    # it is not one of the driver failures: the driver works, the question was wrong
    assert P.parse_smi_error(fx("nvidia-smi-errors/invalid-field-id-llamacpp22519.txt")) is None
    for rel in [*ERRORS, "nvidia-smi/b200x2-610-kmd-umd-header.txt", "nvidia-smi-query/h200-wizard-query-header.csv"]:
        assert P.parse_smi_invalid_field(fx(rel)) is None, rel


def test_query_csv_header_wins_over_the_given_fields():
    rows = P.parse_smi_query_csv(fx("nvidia-smi-query/h200-wizard-query-header.csv"), ("index", "name"))
    assert rows == [H200_ROW]


def test_smi_error_is_none_for_a_working_smi():
    assert P.parse_smi_error(fx("nvidia-smi/t4-565-seed.txt")) is None
    assert P.parse_smi_error("") is None


# ------------------------------------------------------------------ nvcc

NVCC = {
    "nvcc/12.6-seed.txt": ("12.6", "12.6.77"),
    "nvcc/13.0-device-machine.txt": ("13.0", "13.0.88"),
    "nvcc/11.5-ubuntu-apt.txt": ("11.5", "11.5.119"),
    "nvcc/11.1.txt": ("11.1", "11.1.105"),
    "nvcc/11.0.txt": ("11.0", "11.0.194"),
    "nvcc/10.1-no-build-line.txt": ("10.1", "10.1.243"),
    "nvcc/10.0-no-build-line-qixuema4.txt": ("10.0", "10.0.130"),
}


@pytest.mark.parametrize("rel", sorted(NVCC))
def test_nvcc(rel):
    assert P.parse_nvcc_version(fx(rel)) == P.NvccVersion(*NVCC[rel])


def test_nvcc_none():
    assert P.parse_nvcc_version("") is None
    assert P.parse_nvcc_version("bash: nvcc: command not found") is None


# ------------------------------------------------------------------ lspci / sysfs


def test_lspci_h100_nvswitch_bridges_are_not_gpus():
    devices = P.parse_lspci_nn(fx("lspci/Dnn-h100x8-nvswitch-rhel94-grep.txt"))
    assert len(devices) == 13
    switches = [d for d in devices if d.class_code == "0680"]
    assert len(switches) == 4 and {d.device_id for d in switches} == {"22a3"}
    assert switches[0].vendor_id == "10de" and switches[0].class_name == "Bridge"
    gpus = P.nvidia_gpus(devices)
    assert len(gpus) == 8
    assert {(g.class_code, g.vendor_id, g.device_id) for g in gpus} == {("0302", "10de", "2330")}
    assert gpus[0].slot == "0000:1b:00.0"
    assert gpus[0].description == "NVIDIA Corporation GH100 [H100 SXM5 80GB]"


def test_lspci_consumer_cards_audio_functions_are_not_gpus():
    vga = P.parse_lspci_nn(fx("lspci/nn-rtx3080x8-pve-grep-vga.txt"))
    audio = P.parse_lspci_nn(fx("lspci/nn-rtx3080x8-pve-grep-audio.txt"))
    gpus = P.nvidia_gpus(vga + audio)
    assert len(gpus) == 8  # not the ASPEED BMC, not the NVMe drives, not the 8 HDMI audio functions
    assert {g.description for g in gpus} == {"NVIDIA Corporation GA102 [GeForce RTX 3080]"}
    assert {g.class_code for g in gpus} == {"0300"}
    assert {(d.class_code, d.vendor_id, d.device_id) for d in audio} == {("0403", "10de", "1aef")}


def test_lspci_l40s_and_optimus():
    assert [g.slot for g in P.nvidia_gpus(P.parse_lspci_nn(fx("lspci/nn-l40s-x2-grep.txt")))] == ["01:00.0", "91:00.0"]
    optimus = P.parse_lspci_nn(fx("lspci/nn-optimus-intel-mx130-gtx970-grep.txt"))
    assert [(g.class_code, g.device_id) for g in P.nvidia_gpus(optimus)] == [("0302", "174d"), ("0300", "13c2")]


def test_lspci_nforce_chipset_is_vendor_10de_but_no_gpu():
    devices = P.parse_lspci_nn(fx("lspci/nn-nforce-mcp61-ati-no-nvidia-gpu.txt"))
    assert len(devices) == 25
    assert sum(d.vendor_id == "10de" for d in devices) == 15  # USB, audio, bridges, IDE...
    assert P.nvidia_gpus(devices) == []


def test_lspci_plain_seed():
    devices = P.parse_lspci_plain(fx("lspci/plain-t4-seed.txt"))
    assert devices == [P.PciDevice("00:07.0", "3D controller", "", "10de", "", "NVIDIA Corporation TU104GL [Tesla T4]")]
    assert P.nvidia_gpus(devices) == devices
    assert P.nvidia_gpus(P.parse_lspci_nn(fx("lspci/plain-t4-seed.txt"))) == P.parse_lspci_nn(fx("lspci/plain-t4-seed.txt"))


def test_pci_gpu_name():
    names = lambda rel: [P.pci_gpu_name(d) for d in P.nvidia_gpus(P.parse_lspci_nn(fx(rel)))]  # noqa: E731
    assert names("lspci/plain-t4-seed.txt") == ["Tesla T4"]
    assert set(names("lspci/Dnn-h100x8-nvswitch-rhel94-grep.txt")) == {"H100 SXM5 80GB"}
    assert names("lspci/nn-l40s-x2-grep.txt") == ["L40S", "L40S"]
    assert names("lspci/nn-optimus-intel-mx130-gtx970-grep.txt") == ["GeForce MX130", "GeForce GTX 970"]
    unknown = P.parse_lspci_plain(fx("lspci/plain-vvvv-rtx4090-unknown-id-excerpt.txt"))
    assert unknown == [P.PciDevice("01:00.0", "VGA compatible controller", "", "10de", "", "NVIDIA Corporation Device 2684")]
    assert [P.pci_gpu_name(d) for d in P.nvidia_gpus(unknown)] == ["Device 2684"]


def _sysfs_entries(text: str) -> list[tuple[str, str, str]]:
    return re.findall(r'class="(0x[0-9a-f]+)" vendor="(0x[0-9a-f]+)" device="(0x[0-9a-f]+)"', text)


def test_gpu_from_sysfs_dgx_a100_values():
    entries = _sysfs_entries(fx("sysfs/nccl1505-dgx-a100-topo-excerpt.xml"))
    verdicts = {(klass, vendor): P.gpu_from_sysfs(vendor + "\n", device + "\n", klass + "\n") for klass, vendor, device in entries}
    assert verdicts == {("0x030200", "0x10de"): True, ("0x060400", "0x1000"): False, ("0x020700", "0x15b3"): False}
    nvswitch_class = re.search(r'tclass="(0x[0-9a-f]+)"', fx("sysfs/nccl1505-dgx-a100-topo-excerpt.xml")).group(1)
    assert P.gpu_from_sysfs("0x10de\n", "0x1af1\n", nvswitch_class + "\n") is False
    assert P.gpu_from_sysfs(*fx("sysfs/h200-0000-00-06.0-vendor-device-class.txt").splitlines(keepends=True)) is True
    assert P.gpu_from_sysfs("0x10de\n", "0x2684\n", "0x030000\n") is True  # VGA-class card
    assert P.gpu_from_sysfs("", "", "") is False
    assert P.gpu_from_sysfs("garbage", "0x1", "0x030200") is False


# ------------------------------------------------------------------ os-release

OS_RELEASE = {
    "os-release/ubuntu-22.04.4.txt": ("ubuntu", "22.04", "Ubuntu 22.04.4 LTS", "jammy"),
    "os-release/ubuntu-24.04.3.txt": ("ubuntu", "24.04", "Ubuntu 24.04.3 LTS", "noble"),
    "os-release/debian-12.txt": ("debian", "12", "Debian GNU/Linux 12 (bookworm)", "bookworm"),
    "os-release/rhel-9.3.txt": ("rhel", "9.3", "Red Hat Enterprise Linux 9.3 (Plow)", None),
    "os-release/rocky-9.5.txt": ("rocky", "9.5", "Rocky Linux 9.5 (Blue Onyx)", None),
}


@pytest.mark.parametrize("rel", sorted(OS_RELEASE))
def test_os_release(rel):
    info = P.parse_os_release(fx(rel))
    assert (info["ID"], info["VERSION_ID"], info["PRETTY_NAME"], info.get("VERSION_CODENAME")) == OS_RELEASE[rel]


def test_os_release_quoting_and_blank_lines():
    rocky = P.parse_os_release(fx("os-release/rocky-9.5.txt"))
    assert rocky["ID_LIKE"] == "rhel centos fedora"
    rhel = P.parse_os_release(fx("os-release/rhel-9.3.txt"))  # has a blank line and an unquoted value
    assert rhel["REDHAT_BUGZILLA_PRODUCT_VERSION"] == "9.3"
    assert rhel["REDHAT_SUPPORT_PRODUCT_VERSION"] == "9.3"
    assert P.parse_os_release('# comment\n\nNAME="A \\"quoted\\" name"\nBROKEN="unterminated\n') == {
        "NAME": 'A "quoted" name',
        "BROKEN": "unterminated",
    }


# ------------------------------------------------------------------ kubectl version

KUBE = {
    "kubectl-version/eks-1.16-qovery.json": ("v1.21.0", "v1.16.15-eks-ad4801", "v1.16.15"),
    "kubectl-version/k3s-1.17-edgectl.json": ("v1.18.2", "v1.17.3+k3s1", "v1.17.3"),
    "kubectl-version/k8s-alpha-build-issue53259.json": (
        "v1.9.0-alpha.1.487+550c3cab4fe267",
        "v1.9.0-alpha.1.487+550c3cab4fe267",
        "v1.9.0",
    ),
    "kubectl-version/kubeadm-1.25.7-kustomize.json": ("v1.25.7", "v1.25.7", "v1.25.7"),
    "kubectl-version/plain-1.15-client-1.14-server-kudo549.json": ("v1.15.0", "v1.14.3", "v1.14.3"),
    "kubectl-version/text-kamaji-rc.txt": ("v1.30.3", "v1.33.0-rc.1", "v1.33.0"),
    "kubectl-version/text-legacy-versioninfo-hkube1954.txt": ("v1.26.2", "v1.23.5", "v1.23.5"),
}


@pytest.mark.parametrize("rel", sorted(KUBE))
def test_kube_version(rel):
    client, server, normalized = KUBE[rel]
    parsed = P.parse_kube_version_json(fx(rel))
    assert parsed == P.KubeVersion(client=client, server=server)
    assert P.normalize_kube_version(parsed.server) == normalized


def test_kube_version_without_a_cluster():
    parsed = P.parse_kube_version_json(fx("kubectl-version/client-only-connection-refused.txt"))
    assert parsed == P.KubeVersion(client="v1.25.2", server=None)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"clientVersion": 3}', "error: unknown flag: --output"])
def test_kube_version_garbage(text):
    assert P.parse_kube_version_json(text) is None


@pytest.mark.parametrize(
    "raw, expected",
    [
        # from the task brief
        ("v1.29.3-eks-adc7111", "v1.29.3"),
        ("v1.30.4+k3s1", "v1.30.4"),
        ("v1.28.9-gke.1000000", "v1.28.9"),
        ("1.31.2", "v1.31.2"),
        # quoted in public threads (see SOURCES.md, "Strings used inline")
        ("v1.16.13-eks-ec92d4", "v1.16.13"),
        ("1.27.11-gke.1018000", "v1.27.11"),
        ("1.26.5-gke.2700", "v1.26.5"),
        ("v1.28.5-gke.1200", "v1.28.5"),
        ("v1.20.0+k3s2", "v1.20.0"),
        ("v1.29.0-1+d15af86e9e661f", "v1.29.0"),
        # garbage
        ("", None),
        ("latest", None),
        ("v1.29", None),
        ("vX.Y.Z", None),
    ],
)
def test_normalize_kube_version(raw, expected):
    assert P.normalize_kube_version(raw) == expected


# ------------------------------------------------------------------ mokutil / modules


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("mokutil/enabled-sosreport1574.txt", True),
        ("mokutil/disabled-setup-mode-system76.txt", False),
        ("mokutil/no-efi-darling1025.txt", None),
    ],
)
def test_mokutil(rel, expected):
    assert P.parse_mokutil_sb_state(fx(rel)) is expected


def test_proc_modules():
    talos = P.parse_proc_modules(fx("proc-modules/talos-nvidia-proprietary.txt"))
    assert talos == {"nvidia", "nvidia_uvm", "nvidia_drm", "nvidia_modeset"}
    nouveau = P.parse_proc_modules(fx("proc-modules/nouveau-loaded-excerpt.txt"))
    assert "nouveau" in nouveau and "nvidia" not in nouveau and len(nouveau) == 25
    plain = P.parse_proc_modules(fx("proc-modules/cloudlinux9-no-gpu.txt"))
    assert "nouveau" not in plain and "nvidia" not in plain and "btrfs" in plain
    assert P.parse_proc_modules(fx("proc-modules/h200-device-machine-nvidia-lines.txt")) == {"nvidia", "nvidia_uvm"}
    assert P.parse_proc_modules("") == set()


# ------------------------------------------------------------------ /proc/driver/nvidia/version


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("proc-driver-nvidia-version/proprietary-580.173.02-truenas19.txt", "580.173.02"),
        ("proc-driver-nvidia-version/open-565.57.01-ubuntu2404-nixgl186.txt", "565.57.01"),
        ("proc-driver-nvidia-version/open-525.60.11-arch-nixgl121.txt", "525.60.11"),
        ("proc-driver-nvidia-version/open-aarch64-jetson-35.3.1-nixgl139.txt", "35.3.1"),
    ],
)
def test_proc_driver_version(rel, expected):
    assert P.parse_proc_driver_version(fx(rel)) == expected


def test_proc_driver_version_is_not_read_from_other_files():
    for rel in ("nvidia-smi/t4-565-seed.txt", "nvcc/12.6-seed.txt", "proc-modules/talos-nvidia-proprietary.txt"):
        assert P.parse_proc_driver_version(fx(rel)) is None, rel


# ------------------------------------------------------------------ tool versions

VERSIONS = {
    "versions/docker-27.3.1-aosc8467.txt": (P.parse_docker_version, "27.3.1"),
    "versions/docker-1.13.0-nvidia-docker297.txt": (P.parse_docker_version, "1.13.0"),
    "versions/docker-unknown-version-aosc8467.txt": (P.parse_docker_version, None),
    "versions/nvidia-ctk-1.12.0-ctk50.txt": (P.parse_nvidia_ctk_version, "1.12.0"),
    "versions/kind-v0.26.0-kind3830.txt": (P.parse_kind_version, "0.26.0"),
    "versions/kind-v0.20.0-windows.txt": (P.parse_kind_version, "0.20.0"),
    "versions/kind-v0.22.0-cilium-lab.txt": (P.parse_kind_version, "0.22.0"),
    "versions/helm-v3.15.3-short.txt": (P.parse_helm_version, "3.15.3"),
    "versions/helm-v3.2.1-short.txt": (P.parse_helm_version, "3.2.1"),
    "versions/helm-v2-short-helm1705.txt": (P.parse_helm_version, "2.1.0"),
    "versions/containerd-v2.2.1-upstream.txt": (P.parse_containerd_version, "2.2.1"),
    "versions/containerd-2.2.1-ubuntu-apt.txt": (P.parse_containerd_version, "2.2.1"),
    "versions/containerd-1.6.24-debian-pkg.txt": (P.parse_containerd_version, "1.6.24"),
    "versions/containerd-v1.6.38-vke.txt": (P.parse_containerd_version, "1.6.38"),
    "versions/containerd-v2.0.0-rc.3-source-build.txt": (P.parse_containerd_version, "2.0.0"),
}


@pytest.mark.parametrize("rel", sorted(VERSIONS))
def test_tool_versions(rel):
    parse, expected = VERSIONS[rel]
    assert parse(fx(rel)) == expected


def test_tool_versions_do_not_cross_parse():
    docker = fx("versions/docker-27.3.1-aosc8467.txt")
    assert P.parse_kind_version(docker) is None
    assert P.parse_nvidia_ctk_version(docker) is None
    assert P.parse_containerd_version(docker) is None
    assert P.parse_docker_version(fx("versions/kind-v0.26.0-kind3830.txt")) is None


# ------------------------------------------------------------------ robustness

PARSERS = [
    P.parse_smi_table,
    P.parse_smi_query_csv,
    P.parse_smi_list,
    P.parse_smi_error,
    P.parse_smi_invalid_field,
    P.parse_proc_driver_version,
    P.parse_nvcc_version,
    P.parse_lspci_nn,
    P.parse_lspci_plain,
    P.parse_os_release,
    P.parse_kube_version_json,
    P.normalize_kube_version,
    P.parse_mokutil_sb_state,
    P.parse_proc_modules,
    P.parse_docker_version,
    P.parse_containerd_version,
    P.parse_nvidia_ctk_version,
    P.parse_kind_version,
    P.parse_helm_version,
]
EMPTY = (None, [], set(), {}, False)


GARBAGE = ["", "\n\n", "garbage", "|", "{", "\x00\xff", "+---+\n| GPU  Name |\n|===|\n|  x |"]


@pytest.mark.parametrize("parse", PARSERS, ids=lambda f: f.__name__)
def test_garbage_never_raises(parse):
    for text in GARBAGE:
        assert parse(text) in EMPTY, repr(text)


@pytest.mark.parametrize("parse", PARSERS, ids=lambda f: f.__name__)
def test_every_fixture_through_every_parser_never_raises(parse):
    for path in TOOLS.rglob("*"):
        if path.is_file():
            parse(path.read_text(encoding="utf-8"))


def test_random_text_never_raises():
    rng = random.Random(20241110)
    alphabet = "|+-=: 0123456789abcdefMiBGPU[]{}\",\nNVIDIA-SMIvx."
    pieces = [line for rel in ("nvidia-smi/a100x8-450-mig-mixed.txt", "lspci/nn-l40s-x2-grep.txt") for line in fx(rel).splitlines()]
    for _ in range(150):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))
        text += "\n".join(rng.sample(pieces, rng.randrange(4)))  # shuffled real lines too
        for parse in PARSERS:
            parse(text)
        P.nvidia_gpus(P.parse_lspci_nn(text))
        P.gpu_from_sysfs(text, text, text)
