"""Parsers for the text output of the tools the wizard's detection runs.

Pure functions: standard library only, no subprocess, no I/O. Every parser takes the text a tool
printed and returns a small frozen dataclass (or a plain value). None of them raises on odd input:
unparsable text gives ``None`` or an empty result. The fixtures these are tested against are real
outputs copied from public sources (see ``tests/fixtures/tools/SOURCES.md``).

Versions returned by the ``parse_*_version`` helpers are the bare ``MAJOR.MINOR.PATCH`` core
("27.3.1", "0.24.0", "3.16.2"): build metadata, distro suffixes and pre-release tags are dropped.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HAMI_REGISTER",
    "parse_hami_registration",
    "SmiGpu",
    "SmiTable",
    "SmiQueryRow",
    "SmiListEntry",
    "NvccVersion",
    "PciDevice",
    "KubeVersion",
    "SMI_QUERY_FIELDS",
    "parse_smi_table",
    "parse_smi_query_csv",
    "parse_smi_list",
    "parse_smi_error",
    "parse_smi_invalid_field",
    "parse_proc_driver_version",
    "parse_nvcc_version",
    "parse_lspci_nn",
    "parse_lspci_plain",
    "nvidia_gpus",
    "pci_gpu_name",
    "gpu_from_sysfs",
    "parse_os_release",
    "parse_kube_version_json",
    "normalize_kube_version",
    "parse_mokutil_sb_state",
    "parse_proc_modules",
    "parse_docker_version",
    "DOCKER_BUILTIN_RUNTIMES",
    "DockerVersions",
    "DockerInfo",
    "parse_docker_version_json",
    "parse_docker_info_json",
    "docker_cli_error",
    "parse_containerd_version",
    "parse_nvidia_ctk_version",
    "parse_kind_version",
    "parse_helm_version",
]

NVIDIA_VENDOR_ID = "10de"
#: PCI class codes (base class + subclass) of NVIDIA GPUs: VGA compatible controller, 3D controller.
GPU_CLASS_CODES = frozenset({"0300", "0302"})
GPU_CLASS_NAMES = frozenset({"vga compatible controller", "3d controller"})

_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def _text(value: object) -> str:
    """Coerce whatever a runner handed us (str, bytes, None) into a str."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def _core_version(text: str, pattern: re.Pattern[str] | None = None) -> str | None:
    match = (pattern or _SEMVER).search(text)
    if not match:
        return None
    return ".".join(match.group(i) for i in (1, 2, 3))


# --------------------------------------------------------------------------------------------
# nvidia-smi (default table)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmiGpu:
    index: int
    name: str  # verbatim, may be truncated by nvidia-smi ("NVIDIA GeForce ...", "NVIDIA A100-SXM...")
    bus_id: str  # as printed, e.g. "00000000:00:07.0"
    memory_used_mib: int | None
    memory_total_mib: int | None
    mig_mode: str | None  # "Enabled" / "Disabled" / "Enabled*" (pending); None when N/A or not shown


@dataclass(frozen=True)
class SmiTable:
    driver_version: str | None
    cuda_version: str | None  # the highest CUDA the driver supports; None when "N/A" or absent
    gpus: list[SmiGpu] = field(default_factory=list)


_SMI_HEADER = re.compile(r"NVIDIA-SMI\s+(\d[\w.\-]*)")
# Branch 610 renamed the header's fields: "Driver Version:" became "KMD Version:" and "CUDA Version:"
# became "CUDA UMD Version:" (tests/fixtures/tools/nvidia-smi/*-610-*.txt); both spellings are read.
_SMI_DRIVER = re.compile(r"(?:Driver|KMD) Version:\s*(\d[\w.\-]*)")
_SMI_CUDA = re.compile(r"CUDA (?:UMD )?Version:\s*(\d[\d.]*|N/A)")
_SMI_ROW1 = re.compile(r"^\s*(\d+)\s+(.*?)\s+(\S+)\s*$")
_SMI_MEMORY = re.compile(r"(\d+)\s*MiB\s*/\s*(\d+)\s*MiB")
_SEPARATOR = re.compile(r"^\s*[|+][-=+|\s]+$")


def _cells(line: str) -> list[str]:
    inner = line.strip()
    if inner.startswith("|"):
        inner = inner[1:]
    if inner.endswith("|"):
        inner = inner[:-1]
    return inner.split("|")


def parse_smi_table(text: str) -> SmiTable | None:
    """Parse the default ``nvidia-smi`` table.

    Handles the old (< 530) and new column layouts, the 580+ ``+----+`` header separator, the 610+
    header (``KMD Version:`` and ``CUDA UMD Version:`` in place of ``Driver Version:`` and ``CUDA
    Version:``), the pre-450 layout without the ``MIG M.`` row and without ``CUDA Version``, multi-GPU tables,
    "Not Supported" memory and "N/A" fields. Rows of the ``MIG devices:`` and ``Processes:``
    tables are not GPUs and are ignored. Returns None when the text holds no nvidia-smi table.
    """
    text = _text(text)
    lines = text.splitlines()
    driver = cuda = None
    for line in lines:
        if _SMI_HEADER.search(line) or "Driver Version:" in line or "KMD Version:" in line:
            m = _SMI_DRIVER.search(line)
            driver = m.group(1) if m else driver
            m = _SMI_CUDA.search(line)
            if m:
                cuda = None if m.group(1) == "N/A" else m.group(1)
            break

    gpus: list[SmiGpu] = []
    has_mig_row = False
    in_gpus = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if "GPU  Name" in line:
            in_gpus = False
            has_mig_row = False
            # the header block runs until the "|====" line; it tells whether a MIG M. row exists
            j = i + 1
            while j < len(lines) and "===" not in lines[j]:
                if "MIG M." in lines[j]:
                    has_mig_row = True
                j += 1
            in_gpus = j < len(lines)
            i = j + 1
            continue
        if not in_gpus:
            i += 1
            continue
        if not stripped or "MIG devices:" in line or "Processes:" in line:
            in_gpus = False
            i += 1
            continue
        if _SEPARATOR.match(line):
            i += 1
            continue
        cells = _cells(line)
        m = _SMI_ROW1.match(cells[0]) if len(cells) >= 2 else None
        if not m:
            i += 1
            continue
        index, name = int(m.group(1)), m.group(2).strip()
        bus_tokens = cells[1].split()
        bus_id = bus_tokens[0] if bus_tokens else ""
        # continuation rows of this GPU block, up to the next separator
        block: list[list[str]] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() and not _SEPARATOR.match(lines[j]):
            if _SMI_ROW1.match(_cells(lines[j])[0]) and len(block) >= (2 if has_mig_row else 1):
                break
            block.append(_cells(lines[j]))
            j += 1
        used = total = None
        if block and len(block[0]) >= 2:
            mm = _SMI_MEMORY.search(block[0][1])
            if mm:
                used, total = int(mm.group(1)), int(mm.group(2))
        mig_mode = None
        if has_mig_row and len(block) >= 2 and len(block[1]) >= 3:
            value = block[1][2].strip()
            mig_mode = value if value and value != "N/A" else None
        gpus.append(SmiGpu(index, name, bus_id, used, total, mig_mode))
        i = j
    if driver is None and cuda is None and not gpus:
        return None
    return SmiTable(driver_version=driver, cuda_version=cuda, gpus=gpus)


# --------------------------------------------------------------------------------------------
# nvidia-smi --query-gpu=... --format=csv
# --------------------------------------------------------------------------------------------

#: the column order of the query the wizard runs, used when the output carries no header
SMI_QUERY_FIELDS = ("index", "name", "memory.total", "uuid", "pci.bus_id", "driver_version", "mig.mode.current")

_FIELD_ALIASES = {
    "gpu_name": "name",
    "gpu_uuid": "uuid",
    "gpu_bus_id": "pci.bus_id",
    "mig.mode.current": "mig.mode.current",
}
_KNOWN_FIELDS = set(SMI_QUERY_FIELDS) | set(_FIELD_ALIASES)


@dataclass(frozen=True)
class SmiQueryRow:
    index: int
    name: str
    memory_mib: int | None
    uuid: str | None
    pci_bus_id: str | None
    driver_version: str | None
    mig_mode: str | None


def _header_key(cell: str) -> str:
    key = re.sub(r"\s*\[[^\]]*\]\s*$", "", cell.strip()).strip().lower()
    return _FIELD_ALIASES.get(key, key)


def _na(value: str | None) -> str | None:
    """None for nvidia-smi's "no value" spellings: [N/A], N/A, [Not Supported], "" and friends."""
    if value is None:
        return None
    value = value.strip()
    if not value or value.upper() == "N/A" or (value.startswith("[") and value.endswith("]")):
        return None
    if value.lower() in {"not supported", "unknown error"}:
        return None
    return value


def _mib(value: str | None) -> int | None:
    value = _na(value)
    if value is None:
        return None
    m = re.match(r"^(\d{1,12})(?:\.\d+)?\s*(MiB)?$", value, re.IGNORECASE | re.ASCII)
    return int(m.group(1)) if m else None


def parse_smi_query_csv(text: str, fields: tuple[str, ...] = SMI_QUERY_FIELDS) -> list[SmiQueryRow]:
    """Parse ``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]``.

    Without a header the columns are taken to be ``fields`` in that order (by default
    :data:`SMI_QUERY_FIELDS`, the exact query the wizard runs). With a header (``index, name, memory.total [MiB], ...``) columns are
    matched by name, so any field order or subset parses; when the header has no ``index`` column
    the row position is used. Units (`` MiB``) and ``[N/A]``-style values are tolerated. Lines that
    are not data rows (warnings, "No devices were found") are skipped.
    """
    text = _text(text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    try:
        table = list(csv.reader(lines, skipinitialspace=True))
    except csv.Error:
        return []
    columns: list[str] = [_FIELD_ALIASES.get(f, f) for f in fields]
    start = 0
    for n, row in enumerate(table):
        if _looks_like_data(row):
            break
        keys = [_header_key(c) for c in row]
        if any(k in _KNOWN_FIELDS for k in keys):
            columns, start = keys, n + 1
            break
    out: list[SmiQueryRow] = []
    has_index = "index" in columns
    for row in table[start:]:
        values = {col: (row[k].strip() if k < len(row) else None) for k, col in enumerate(columns)}
        if has_index:
            raw = (values.get("index") or "").strip()
            if not raw.isdecimal():
                continue
            index = int(raw)
        else:
            if len(row) < len(columns):
                continue
            index = len(out)
        out.append(
            SmiQueryRow(
                index=index,
                name=_na(values.get("name")) or "",
                memory_mib=_mib(values.get("memory.total")),
                uuid=_na(values.get("uuid")),
                pci_bus_id=_na(values.get("pci.bus_id")),
                driver_version=_na(values.get("driver_version")),
                mig_mode=_na(values.get("mig.mode.current")),
            )
        )
    return out


def _looks_like_data(row: list[str]) -> bool:
    """A data row has a GPU UUID, a PCI bus id or a plain integer index in it; a header has none."""
    for cell in row:
        c = cell.strip()
        if c.startswith(("GPU-", "MIG-")) or re.match(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.", c):
            return True
    return bool(row) and row[0].strip().isdigit()


# --------------------------------------------------------------------------------------------
# nvidia-smi -L
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmiListEntry:
    index: int
    name: str
    uuid: str
    mig: list[tuple[str, str]] = field(default_factory=list)  # (MIG profile, MIG UUID)


_LIST_GPU = re.compile(r"^\s*GPU\s+(\d+):\s+(.*)\s+\(UUID:\s*([^)\s]+)\)?")
_LIST_MIG = re.compile(r"^\s*MIG\s+(\S+)\s+Device\s+\d+:\s+\(UUID:\s*([^)\s]+)\)?")


def parse_smi_list(text: str) -> list[SmiListEntry]:
    """Parse ``nvidia-smi -L``. MIG lines (``  MIG 1g.5gb Device 0: (UUID: MIG-...)``, also the
    old ``MIG-GPU-<uuid>/<gi>/<ci>`` form and compute-instance profiles like ``1c.2g.10gb``) are
    attached to the GPU above them, never listed as GPUs."""
    entries: list[SmiListEntry] = []
    for line in _text(text).splitlines():
        m = _LIST_GPU.match(line)
        if m:
            entries.append(SmiListEntry(int(m.group(1)), m.group(2).strip(), m.group(3), []))
            continue
        m = _LIST_MIG.match(line)
        if m and entries:
            entries[-1].mig.append((m.group(1), m.group(2)))
    return entries


# --------------------------------------------------------------------------------------------
# nvidia-smi failures
# --------------------------------------------------------------------------------------------


def parse_smi_error(text: str) -> str | None:
    """Classify the well-known nvidia-smi failure messages.

    "no-driver"   NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver
    "rm-mismatch" Failed to initialize NVML: Driver/library version mismatch
    "no-devices"  No devices were found
    """
    low = " ".join(_text(text).lower().split())
    if not low:
        return None
    if "driver/library version mismatch" in low:
        return "rm-mismatch"
    if "communicate with the nvidia driver" in low or "nvidia-smi has failed because" in low:
        return "no-driver"
    if "no devices were found" in low:
        return "no-devices"
    return None


_SMI_INVALID_FIELD = re.compile(r'Field\s+"([^"]+)"\s+is not a valid field to query')


def parse_smi_invalid_field(text: str) -> str | None:
    """The field ``nvidia-smi --query-gpu`` refused: 'Field "id" is not a valid field to query.'
    → "id". A refused field fails the whole query (no rows at all), so the caller can ask again
    without it. None when the text names no refused field."""
    m = _SMI_INVALID_FIELD.search(_text(text))
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------
# /proc/driver/nvidia/version
# --------------------------------------------------------------------------------------------

_NVRM = re.compile(r"^NVRM version:.*?\bKernel Module\b(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)\b", re.MULTILINE)


def parse_proc_driver_version(text: str) -> str | None:
    """The loaded kernel module's version from ``/proc/driver/nvidia/version``: the proprietary
    form ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.173.02  Tue Jun 23 ...") and the
    open one ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build
    ..."). None when there is no NVRM line."""
    m = _NVRM.search(_text(text))
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------
# nvcc
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NvccVersion:
    release: str  # "12.6"
    full: str  # "12.6.77"


def parse_nvcc_version(text: str) -> NvccVersion | None:
    """``nvcc --version`` / ``nvcc -V``: "Cuda compilation tools, release 12.6, V12.6.77"."""
    text = _text(text)
    m = re.search(r"release\s+(\d+\.\d+)\s*,\s*V(\d+\.\d+(?:\.\d+)?)", text)
    if m:
        return NvccVersion(m.group(1), m.group(2))
    m = re.search(r"Cuda compilation tools,\s*release\s+(\d+\.\d+)", text)
    return NvccVersion(m.group(1), m.group(1)) if m else None


# --------------------------------------------------------------------------------------------
# lspci
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PciDevice:
    slot: str  # "01:00.0" or, with -D, "0000:01:00.0"
    class_name: str  # "3D controller"
    class_code: str  # "0302"; "" for plain lspci
    vendor_id: str  # "10de"; "" when unknown
    device_id: str  # "26b9"; "" when unknown
    description: str  # "NVIDIA Corporation AD102GL [L40S]" (no ids, no "(rev ..)")


_LSPCI_LINE = re.compile(
    r"^(?P<slot>(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F])\s+"
    r"(?P<class_name>[^\[\]:]+?)\s*(?:\[(?P<class_code>[0-9a-fA-F]{4})\])?:\s+(?P<rest>.*)$"
)
_LSPCI_IDS = re.compile(r"\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]")


def parse_lspci_nn(text: str) -> list[PciDevice]:
    """Parse ``lspci -nn`` (also ``-Dnn``, ``-nnk``/``-vnn`` whose indented detail lines are
    skipped, and plain ``lspci`` lines, which get empty class code and ids)."""
    devices: list[PciDevice] = []
    for line in _text(text).splitlines():
        m = _LSPCI_LINE.match(line.strip())
        if not m:
            continue
        rest = m.group("rest")
        ids = list(_LSPCI_IDS.finditer(rest))
        if ids:
            last = ids[-1]
            vendor, device = last.group(1).lower(), last.group(2).lower()
            description = rest[: last.start()].strip()
        else:
            vendor = device = ""
            description = re.sub(r"\s*\((?:rev|prog-if)\b.*$", "", rest).strip()
        devices.append(
            PciDevice(
                slot=m.group("slot"),
                class_name=m.group("class_name").strip(),
                class_code=(m.group("class_code") or "").lower(),
                vendor_id=vendor,
                device_id=device,
                description=description,
            )
        )
    return devices


def parse_lspci_plain(text: str) -> list[PciDevice]:
    """Plain ``lspci`` (no ``-nn``), e.g. ``lspci | grep NVIDIA``. There are no numeric ids, so
    class_code is "" and vendor_id is "10de" when the vendor text is NVIDIA's, else ""."""
    out = []
    for d in parse_lspci_nn(text):
        if not d.vendor_id and re.match(r"nvidia\b", d.description, re.IGNORECASE):
            d = PciDevice(d.slot, d.class_name, d.class_code, NVIDIA_VENDOR_ID, d.device_id, d.description)
        out.append(d)
    return out


def nvidia_gpus(devices: list[PciDevice]) -> list[PciDevice]:
    """NVIDIA GPUs only: vendor 10de and display class 0300/0302. NVSwitch bridges (0680), the HDMI
    audio function of consumer cards (0403), USB-C controllers and nForce chipset parts are not.
    Entries without a class code (plain lspci) count when their class name is a GPU's."""
    out = []
    for d in devices:
        vendor_ok = d.vendor_id == NVIDIA_VENDOR_ID or (
            not d.vendor_id and re.match(r"nvidia\b", d.description, re.IGNORECASE) is not None
        )
        if d.class_code:
            class_ok = d.class_code in GPU_CLASS_CODES
        else:
            class_ok = d.class_name.lower() in GPU_CLASS_NAMES
        if vendor_ok and class_ok:
            out.append(d)
    return out


def pci_gpu_name(device: PciDevice) -> str:
    """The product name pci.ids gives a GPU: the last bracketed part of the description
    ("NVIDIA Corporation TU104GL [Tesla T4]" → "Tesla T4", "... GH100 [H100 SXM5 80GB]" →
    "H100 SXM5 80GB"); without one, the description minus the vendor ("Device 2684")."""
    brackets: list[str] = re.findall(r"\[([^\[\]]+)\]", device.description)
    if brackets:
        return brackets[-1].strip()
    return re.sub(r"^nvidia corporation\s+", "", device.description, flags=re.IGNORECASE).strip()


def gpu_from_sysfs(vendor: str, device: str, klass: str) -> bool:
    """True for an NVIDIA display-class device, from the contents of the sysfs files
    ``/sys/bus/pci/devices/*/{vendor,device,class}`` (e.g. "0x10de\\n", "0x2330\\n", "0x030200\\n")."""
    try:
        vendor_id = int(_text(vendor).strip(), 16)
        class_id = int(_text(klass).strip(), 16)
        int(_text(device).strip(), 16)
    except ValueError:
        return False
    return vendor_id == 0x10DE and (class_id >> 8) in (0x0300, 0x0302)


# --------------------------------------------------------------------------------------------
# /etc/os-release
# --------------------------------------------------------------------------------------------


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release``: KEY=value lines with shell quoting; comments and blank lines skipped."""
    out: dict[str, str] = {}
    for raw in _text(text).splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            continue
        try:
            parts = shlex.split(value, comments=True, posix=True)
            out[key] = " ".join(parts)
        except ValueError:
            out[key] = value.strip().strip("\"'")
    return out


# --------------------------------------------------------------------------------------------
# kubectl version
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeVersion:
    client: str | None  # gitVersion verbatim, e.g. "v1.30.4+k3s1"
    server: str | None  # None when kubectl could not reach a cluster


_TEXT_GITVERSION = re.compile(r'GitVersion:"([^"]+)"')


def parse_kube_version_json(text: str) -> KubeVersion | None:
    """``kubectl version -o json``. Tolerates text around the JSON object (kubectl prints "The
    connection to the server ... was refused" after it when there is no cluster). Falls back to the
    plain ``kubectl version`` text forms ("Server Version: v1.29.2" and the old
    ``version.Info{... GitVersion:"v1.23.5" ...}``). None when no version is found."""
    text = _text(text)
    client = server = None
    start = text.find("{")
    if start != -1:
        try:
            doc, _ = json.JSONDecoder().raw_decode(text[start:])
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            client = _git_version(doc.get("clientVersion"))
            server = _git_version(doc.get("serverVersion"))
    if client is None and server is None:
        for line in text.splitlines():
            m = re.match(r"^\s*(Client|Server) Version:\s*(.*)$", line)
            if not m:
                continue
            value = m.group(2).strip()
            gv = _TEXT_GITVERSION.search(value)
            version = gv.group(1) if gv else (value.split()[0] if value else None)
            if m.group(1) == "Client":
                client = version
            else:
                server = version
    if client is None and server is None:
        return None
    return KubeVersion(client=client, server=server)


def _git_version(section: object) -> str | None:
    if isinstance(section, dict):
        value = section.get("gitVersion")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def normalize_kube_version(v: str) -> str | None:
    """"v1.29.3-eks-adc7111" → "v1.29.3", "v1.30.4+k3s1" → "v1.30.4", "1.31.2" → "v1.31.2".
    Pre-release and build parts are dropped ("v1.33.0-rc.1" → "v1.33.0"). Garbage → None."""
    m = re.match(r"^\s*v?(\d+)\.(\d+)\.(\d+)(?:[-+.~][^\s]*)?\s*$", _text(v))
    if not m:
        return None
    return "v{}.{}.{}".format(*(int(m.group(i)) for i in (1, 2, 3)))


# --------------------------------------------------------------------------------------------
# misc host facts
# --------------------------------------------------------------------------------------------


def parse_mokutil_sb_state(text: str) -> bool | None:
    """``mokutil --sb-state``: True for "SecureBoot enabled", False for "SecureBoot disabled",
    None when unknown (e.g. "EFI variables are not supported on this system" on BIOS boots)."""
    text = _text(text)
    if re.search(r"SecureBoot\s+enabled", text, re.IGNORECASE):
        return True
    if re.search(r"SecureBoot\s+disabled", text, re.IGNORECASE):
        return False
    return None


def parse_proc_modules(text: str) -> set[str]:
    """Names of the loaded kernel modules from ``/proc/modules`` (also accepts ``lsmod`` output)."""
    names: set[str] = set()
    for line in _text(text).splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].isdigit() and re.match(r"^[\w\-]+$", fields[0]):
            names.add(fields[0])
    return names


def parse_docker_version(text: str) -> str | None:
    """``docker --version``: "Docker version 27.3.1, build ce12230" → "27.3.1";
    "Docker version unknown-version, build unknown-commit" → None."""
    m = re.search(r"Docker version\s+v?(\d+)\.(\d+)\.(\d+)", _text(text))
    return ".".join(m.groups()) if m else None


#: The runtimes dockerd registers itself (runc and containerd's shims), not daemon.json entries:
#: "io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc" in Debian 12's docker.io 20.10.24
#: (../shared/upstream/debian-12/captures/docker-info-runtimes.txt).
DOCKER_BUILTIN_RUNTIMES = frozenset({"runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux"})


@dataclass(frozen=True)
class DockerVersions:
    """``docker version --format '{{json .}}'``: the client's and the daemon's versions, kept apart
    (``server`` is None when the daemon did not answer: the CLI prints ``"Server":null``)."""

    client: str | None
    server: str | None


def _json_object(text: str) -> dict[str, object] | None:
    try:
        doc = json.loads(_text(text).strip() or "null")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def parse_docker_version_json(text: str) -> DockerVersions | None:
    """``docker version --format '{{json .}}'`` → the ``Client.Version`` and ``Server.Version``
    strings as printed ("28.2.2", "20.10.24+dfsg1"); None when the text is not that JSON object."""
    doc = _json_object(text)
    if doc is None or not isinstance(doc.get("Client"), (dict, type(None))):
        return None
    client = doc.get("Client")
    server = doc.get("Server")
    c = client if isinstance(client, dict) else {}
    s = server if isinstance(server, dict) else {}
    return DockerVersions(str(c.get("Version") or "") or None, str(s.get("Version") or "") or None)


@dataclass(frozen=True)
class DockerInfo:
    """``docker info --format '{{json .}}'``: what the running daemon loaded."""

    server_version: str
    runtimes: dict[str, str]  # name -> the binary the daemon runs for it (``path``)
    default_runtime: str | None
    cdi_spec_dirs: tuple[str, ...]


def parse_docker_info_json(text: str) -> DockerInfo | None:
    """``docker info --format '{{json .}}'`` → the daemon's runtimes, default runtime, version and
    CDI spec directories. None when the daemon did not answer: the CLI then still prints the object,
    with ``"ServerVersion":""`` and ``"Runtimes":null`` (a real docker 28.2.2 without a daemon)."""
    doc = _json_object(text)
    if doc is None or not doc.get("ServerVersion"):
        return None
    runtimes: dict[str, str] = {}
    listed = doc.get("Runtimes")
    for name, rt in (listed if isinstance(listed, dict) else {}).items():
        runtimes[str(name)] = str((rt or {}).get("path") or "") if isinstance(rt, dict) else ""
    dirs = doc.get("CDISpecDirs")
    dirs = dirs if isinstance(dirs, list) else []
    return DockerInfo(str(doc["ServerVersion"]), runtimes, str(doc.get("DefaultRuntime") or "") or None,
                      tuple(str(d) for d in dirs if isinstance(d, str)))


_DOCKER_BOILERPLATE = re.compile(r"^(See '.*--help'\.|Run '.*--help' for more information|ERRO\[\d+\].*)$")


def docker_cli_error(text: str) -> str | None:
    """The daemon's error in what a failed ``docker run`` printed: from the line starting with
    ``docker: `` ("docker: Error response from daemon: …") up to the CLI's own trailer (a blank line,
    "See 'docker run --help'.", "Run 'docker run --help' for more information", "ERRO[0000] …"),
    its lines joined; without such a line, the last line that is not trailer; None for no text."""
    lines = [line.rstrip() for line in _text(text).splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("docker: "):
            out = [line]
            for more in lines[i + 1:]:
                if not more.strip() or _DOCKER_BOILERPLATE.match(more.strip()):
                    break
                out.append(more.strip())
            return " ".join(out)
    rest = [line.strip() for line in lines if line.strip() and not _DOCKER_BOILERPLATE.match(line.strip())]
    return rest[-1] if rest else None


def parse_containerd_version(text: str) -> str | None:
    """``containerd --version``: "containerd github.com/containerd/containerd v1.7.20 <sha>" →
    "1.7.20"; distro builds ("1.6.24~ds1 1.6.24~ds1-1", "v1.6.38-vke.16") → the core version."""
    text = _text(text)
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or "containerd" not in tokens[0]:
            continue
        for token in tokens[1:]:
            m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", token)
            if m:
                return ".".join(m.groups())
    return None


def parse_nvidia_ctk_version(text: str) -> str | None:
    """``nvidia-ctk --version``: "NVIDIA Container Toolkit CLI version 1.17.0" → "1.17.0"."""
    m = re.search(r"Container Toolkit CLI version\s+v?(\d+)\.(\d+)\.(\d+)", _text(text))
    if not m:
        m = re.search(r"^\s*nvidia-ctk version\s+v?(\d+)\.(\d+)\.(\d+)", _text(text), re.MULTILINE)
    return ".".join(m.groups()) if m else None


def parse_kind_version(text: str) -> str | None:
    """``kind version``: "kind v0.24.0 go1.22.6 linux/amd64" → "0.24.0"."""
    m = re.search(r"^\s*kind\s+v?(\d+)\.(\d+)\.(\d+)", _text(text), re.MULTILINE)
    return ".".join(m.groups()) if m else None


def parse_helm_version(text: str) -> str | None:
    """``helm version --short``: "v3.16.2+g13654a5" → "3.16.2". For Helm 2's two-line form
    ("Client: v2.1.0+g..." / "Server: ...") the client version is returned."""
    text = _text(text)
    m = re.search(r"^\s*Client:\s*v?(\d+)\.(\d+)\.(\d+)", text, re.MULTILINE)
    if not m:
        m = re.search(r"^\s*v?(\d+)\.(\d+)\.(\d+)", text, re.MULTILINE)
    return ".".join(m.groups()) if m else None


# HAMi's node registration: what its device plugin patches onto its node (pkg/device-plugin/nvidiadevice/
# nvinternal/plugin/register.go, v2.4.0-v2.10.0). Before 2.8 ":"-terminated entries "uuid,count,devmem,
# devcore,type,numa,health[,index,mode]" (real one: HAMi#1422); from 2.8 a JSON list of {"id", "index",
# "count", "devmem", "devcore", "type", "numa", "mode", "health"}, health omitted when false (real one:
# HAMi#1520).
HAMI_REGISTER = "hami.io/node-nvidia-register"


def parse_hami_registration(text: object) -> list[dict[str, Any]] | None:
    """The GPUs of a HAMi registration annotation (id, count, devmem, devcore, type, health), either
    format; None when there is none or it cannot be read."""
    text = str(text or "").strip()
    if not text:
        return None
    out: list[dict[str, Any]] = []
    try:
        if text.startswith("["):
            for d in json.loads(text):
                out.append({"id": str(d["id"]), "count": int(d.get("count") or 0), "devmem": int(d.get("devmem") or 0),
                            "devcore": int(d.get("devcore") or 0), "type": str(d.get("type") or ""),
                            "health": bool(d.get("health", False))})
            return out
        for entry in filter(None, text.split(":")):
            f = entry.split(",")
            out.append({"id": f[0], "count": int(f[1]), "devmem": int(f[2]), "devcore": int(f[3]), "type": f[4],
                        "health": f[6].strip().lower() == "true"})
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return out
