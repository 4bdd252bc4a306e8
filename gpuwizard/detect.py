"""Detection: what is on this host, layer by layer.

All probes are read-only and run concurrently; a missing tool is a fact (the layer is ``None``), not
an error. Where a probe *failed* (as opposed to finding nothing) its reason lands in ``problems``.
The result is the ``doctor --json`` document; steps read it as their facts.

GPUs are found through NVML first (only on the real root: under ``--root``/``--simulate`` NVML
would describe the machine we run on, not the one we look at), then ``nvidia-smi``, then
``lspci -nn``, then sysfs, so a card with no driver is still found.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import parsers as P
from . import versions as V
from .documents import Facts, ReleaseFacts
from .errors import GpuwizardError
from .host import Host, load_json_object

SMI_QUERY = ",".join(P.SMI_QUERY_FIELDS)
KUBE_TIMEOUT = "--request-timeout=5s"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


# --------------------------------------------------------------------------------------------
# host
def probe_os(host: Host) -> dict[str, Any]:
    info = P.parse_os_release(host.read_text("/etc/os-release") or host.read_text("/usr/lib/os-release") or "")
    return {
        "os": info.get("ID"),
        "version": info.get("VERSION_ID"),
        "pretty_name": info.get("PRETTY_NAME"),
        "id_like": info.get("ID_LIKE", "").split() or None,
        "codename": info.get("VERSION_CODENAME") or None,
    }


def probe_kernel(host: Host) -> str | None:
    text = host.read_text("/proc/sys/kernel/osrelease")
    if text and text.strip():
        return text.strip()
    result = host.runner.probe(["uname", "-r"])
    if result is None or not result.ok:
        return None
    return result.stdout.strip() or None


def probe_arch(host: Host) -> str | None:
    result = host.runner.probe(["uname", "-m"])
    if result and result.ok and result.stdout.strip():
        return result.stdout.strip()
    if host.is_real_root:
        import platform

        return platform.machine() or None
    return None


#: the EFI global variable GUID; SecureBoot-<guid> holds 4 attribute bytes, then the value byte
#: (Documentation/filesystems/efivarfs.rst: "4_bytes_of_attributes + efivar_data")
EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
#: directories every mounted sysfs has; without any of them /sys was not mounted under this root
_SYSFS_MARKS = ("/sys/firmware", "/sys/devices", "/sys/bus", "/sys/kernel", "/sys/class", "/sys/module")


def probe_secure_boot(host: Host) -> dict[str, Any]:
    """Secure Boot: off on a legacy BIOS boot (sysfs mounted, no /sys/firmware/efi), else what
    ``mokutil --sb-state`` says, else the SecureBoot EFI variable; None when nothing tells."""
    if not host.exists("/sys/firmware/efi") and any(host.exists(mark) for mark in _SYSFS_MARKS):
        return {"secure_boot": False, "problem": None}
    result = host.runner.probe(["mokutil", "--sb-state"])
    state = P.parse_mokutil_sb_state(result.stdout + result.stderr) if result is not None else None
    if state is None:
        state = _efivar_secure_boot(host)
    return {"secure_boot": state, "problem": None}


def _efivar_secure_boot(host: Host) -> bool | None:
    for path in (f"/sys/firmware/efi/efivars/SecureBoot-{EFI_GLOBAL_GUID}", f"/sys/firmware/efi/vars/SecureBoot-{EFI_GLOBAL_GUID}/data"):
        try:
            data = host.path(path).read_bytes()
        except OSError:
            continue
        value = data[4:] if path.startswith("/sys/firmware/efi/efivars/") else data
        if len(value) == 1:
            return value[0] == 1
    return None


def probe_modules(host: Host) -> set[str] | None:
    """The loaded kernel modules; None when the running kernel has no loadable module support
    (procfs is there, /proc/modules is not). A root without a mounted /proc gives an empty set."""
    text = host.read_text("/proc/modules")
    if text is None and host.exists("/proc/version"):
        return None
    return P.parse_proc_modules(text or "")


NO_MODULES = (
    "the running kernel has no loadable module support (no /proc/modules): the NVIDIA driver is a kernel "
    "module and cannot be loaded; boot a kernel built with module support (CONFIG_MODULES=y)"
)


# --------------------------------------------------------------------------------------------
# GPUs and driver
def probe_nvml() -> dict[str, Any]:
    """Read GPUs through NVML. Returns {"status": ..., "gpus": [...], "driver": {...}}."""
    try:
        import pynvml
    except ImportError:  # pragma: no cover - a dependency
        return {"status": "unavailable", "reason": "nvidia-ml-py is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return {"status": "no-driver", "reason": "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver installed"}
    except pynvml.NVMLError_DriverNotLoaded:
        return {"status": "not-loaded", "reason": "the NVIDIA driver is installed but its kernel module is not loaded"}
    except pynvml.NVMLError_LibRmVersionMismatch:
        return {
            "status": "rm-mismatch",
            "reason": "driver/library version mismatch: the driver was upgraded and the host needs a reboot",
        }
    except pynvml.NVMLError as exc:
        return {"status": "error", "reason": f"NVML: {exc}"}
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            try:
                current, _pending = pynvml.nvmlDeviceGetMigMode(h)
                mig: str | None = "Enabled" if current else "Disabled"
            except pynvml.NVMLError:
                mig = None
            gpus.append(
                {
                    "index": i,
                    "name": _s(pynvml.nvmlDeviceGetName(h)),
                    "memory_mib": int(pynvml.nvmlDeviceGetMemoryInfo(h).total // (1024 * 1024)),
                    "uuid": _s(pynvml.nvmlDeviceGetUUID(h)),
                    "pci_bus_id": _s(pynvml.nvmlDeviceGetPciInfo(h).busId),
                    "mig": mig,
                }
            )
        return {
            "status": "ok",
            "gpus": gpus,
            "driver": {"version": _s(version), "cuda_version": f"{cuda // 1000}.{(cuda % 1000) // 10}"},
        }
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_smi(host: Host) -> dict[str, Any] | None:
    fields: tuple[str, ...] = P.SMI_QUERY_FIELDS
    query = host.runner.probe(["nvidia-smi", f"--query-gpu={SMI_QUERY}", "--format=csv,noheader,nounits"])
    if query is not None and not query.ok and P.parse_smi_invalid_field(query.stdout + query.stderr) == "driver_version":
        # driver_version is deprecated since branch 610 (KMD version replaces it); a driver that has
        # dropped it refuses the whole query, so ask again without it: the header and
        # /proc/driver/nvidia/version still give the version.
        fields = tuple(f for f in fields if f != "driver_version")
        query = host.runner.probe(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
    if query is None:
        return None
    if not query.ok:
        kind = P.parse_smi_error(query.stdout + query.stderr)
        reasons = {
            "no-driver": ("not-loaded", "nvidia-smi cannot talk to the NVIDIA driver (not loaded, or installed for another kernel)"),
            "rm-mismatch": ("rm-mismatch", "driver/library version mismatch: the driver was upgraded and the host needs a reboot"),
            "no-devices": ("no-devices", "the NVIDIA driver sees no GPU"),
        }
        status, reason = reasons.get(kind or "", ("error", f"nvidia-smi failed (exit {query.rc}): {_first_line(query.stderr or query.stdout)}"))
        return {"status": status, "reason": reason}
    rows = P.parse_smi_query_csv(query.stdout, fields)
    table = host.runner.probe(["nvidia-smi"])
    parsed = P.parse_smi_table(table.stdout) if table and table.ok else None
    driver_version = (
        (parsed.driver_version if parsed else None)
        or next((r.driver_version for r in rows if r.driver_version), None)
        or P.parse_proc_driver_version(host.read_text("/proc/driver/nvidia/version") or "")
    )
    return {
        "status": "ok",
        "gpus": [
            {
                "index": r.index,
                "name": r.name,
                "memory_mib": r.memory_mib,
                "uuid": r.uuid,
                "pci_bus_id": r.pci_bus_id,
                "mig": r.mig_mode,
            }
            for r in rows
        ],
        "driver": {"version": driver_version, "cuda_version": parsed.cuda_version if parsed else None},
    }


def probe_pci(host: Host) -> list[dict[str, Any]] | None:
    """NVIDIA display-class devices from lspci, else sysfs. None when neither can be read."""
    result = host.runner.probe(["lspci", "-nn"])
    if result is not None and result.ok:
        devices = P.nvidia_gpus(P.parse_lspci_nn(result.stdout))
        return [_pci_gpu(i, d.device_id, P.pci_gpu_name(d), d.slot) for i, d in enumerate(devices)]
    found: list[dict[str, Any]] = []
    for dev in host.glob("/sys/bus/pci/devices/*"):
        vendor = host.read_text(dev + "/vendor") or ""
        device = host.read_text(dev + "/device") or ""
        klass = host.read_text(dev + "/class") or ""
        if P.gpu_from_sysfs(vendor, device, klass):
            device_id = device.strip().lower().removeprefix("0x")
            found.append(_pci_gpu(len(found), device_id, f"NVIDIA device [10de:{device_id}]", dev.rsplit("/", 1)[-1]))
    if found or host.exists("/sys/bus/pci/devices"):
        return found
    return None


@functools.lru_cache(maxsize=1)
def known_gpus() -> dict[str, dict[str, Any]]:
    """PCI device id -> name and memory as nvidia-smi reports them (assets/known-gpus.json)."""
    data = json.loads((Path(__file__).parent / "assets" / "known-gpus.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _pci_gpu(index: int, device_id: str, name: str, slot: str) -> dict[str, Any]:
    """A GPU seen on the PCI bus only: name and memory from the table of known cards if listed."""
    known = known_gpus().get(device_id.lower())
    return {
        "index": index,
        "name": known["name"] if known else name,
        "memory_mib": known["memory_mib"] if known else None,
        "uuid": None,
        "pci_bus_id": _full_slot(slot),
        "mig": None,
        "pci_device_id": f"10de:{device_id.lower()}",
    }


def _full_slot(slot: str) -> str:
    """``00:07.0`` -> ``00000000:00:07.0`` (nvidia-smi's form), keeping a domain if present."""
    parts = slot.split(":")
    if len(parts) == 2:
        return "00000000:" + slot
    domain, rest = parts[0], ":".join(parts[1:])
    return domain.rjust(8, "0") + ":" + rest


def detect_gpus(host: Host) -> dict[str, Any]:
    """GPUs and driver: NVML -> nvidia-smi -> lspci -> sysfs."""
    problems = []
    if host.is_real_root:
        nvml = probe_nvml()
        if nvml["status"] == "ok":
            return {"source": "nvml", "gpus": nvml["gpus"], "driver": nvml["driver"], "driver_status": "ok", "problem": None}
        driver_status = nvml["status"]
        if nvml["status"] not in ("no-driver", "unavailable"):
            problems.append(nvml["reason"])
    else:
        driver_status = "no-driver"
    smi = probe_smi(host)
    if smi is not None and smi["status"] == "ok":
        return {"source": "nvidia-smi", "gpus": smi["gpus"], "driver": smi["driver"], "driver_status": "ok", "problem": None}
    if smi is not None:
        driver_status = smi["status"]
        if smi["reason"] not in problems:
            problems.append(smi["reason"])
    pci = probe_pci(host)
    return {
        "source": "lspci/sysfs" if pci is not None else None,
        "gpus": pci or [],
        "driver": None,
        "driver_status": driver_status,
        "problem": "; ".join(problems) or None,
    }


# --------------------------------------------------------------------------------------------
# CUDA toolkit
def _cuda_home_key(home: str) -> tuple[bool, V.Version, str]:
    """Orders /usr/local/cuda-X.Y by version (as strings, cuda-12.9 > cuda-12.10); a name without one sorts lowest."""
    try:
        return True, V.key(home.rsplit("cuda-", 1)[1]), home
    except ValueError:
        return False, V.key("0"), home


def probe_cuda_toolkit(host: Host) -> dict[str, Any] | None:
    result = host.runner.probe(["nvcc", "--version"])
    if result is not None and result.ok:
        parsed = P.parse_nvcc_version(result.stdout)
        if parsed:
            exe = host.runner.which("nvcc") or ""
            path = exe.rsplit("/bin/", 1)[0] if "/bin/" in exe else None
            return {"version": parsed.release, "full_version": parsed.full, "path": path, "on_path": True}
    # Installed but not on PATH (the runfile leaves PATH to the user): read version.json.
    for home in sorted(host.glob("/usr/local/cuda-*"), key=_cuda_home_key, reverse=True):
        text = host.read_text(home + "/version.json")
        if text:
            try:
                version = json.loads(text)["cuda"]["version"]
                release = V.major_minor(version)
            except (ValueError, KeyError, TypeError):
                continue
            return {"version": release, "full_version": version, "path": home, "on_path": False}
    return None


# --------------------------------------------------------------------------------------------
# container runtime
DOCKER_JSON = "{{json .}}"
DAEMON_JSON = "/etc/docker/daemon.json"


def runtime_binary_found(host: Host, path: str) -> bool:
    """Is a runtime's binary there, as dockerd looks for it: an absolute path under the host root,
    a bare name on PATH. dockerd itself starts and lists a runtime whose binary is missing
    (../shared/research/real-world.md: Debian 12's docker.io 20.10.24)."""
    if not path:
        return False
    if path.startswith("/"):
        return host.exists(path)
    return "/" not in path and host.runner.which(path) is not None


def docker_missing_runtime_problem(missing: dict[str, str]) -> str:
    names = ", ".join(f"{name} ({path or 'no path'})" for name, path in sorted(missing.items()))
    return (f"the Docker daemon lists the runtime {names} but that binary is not found; containers using it fail "
            "with `exec: … executable file not found`. Install nvidia-container-toolkit (it ships "
            f"nvidia-container-runtime) or correct the runtime's path in {DAEMON_JSON}, then `systemctl restart docker`")


def probe_docker(host: Host) -> tuple[dict[str, Any] | None, str | None]:
    """Docker as its daemon reports it: client and server versions from ``docker version``, the
    runtimes and the default runtime from ``docker info`` (the daemon's loaded configuration; a
    daemon.json edited since the last restart is not in effect). daemon.json is read only to tell
    that it is valid (an invalid one stops the daemon's next start)."""
    ver = host.runner.probe(["docker", "version", "--format", DOCKER_JSON])
    if ver is None:
        return None, None
    versions = P.parse_docker_version_json(ver.stdout)
    client = versions.client if versions else None
    if client is None:
        # a client that cannot print that template (or is not Docker's): its --version line
        plain = host.runner.probe(["docker", "--version"])
        if plain is None or not plain.ok:
            return None, None
        client_version = P.parse_docker_version(plain.stdout)
    else:
        client_version = P.parse_docker_version("Docker version " + client)
    server = versions.server if versions else None
    info: dict[str, Any] = {
        "version": client_version,
        "server_version": server,
        "running": server is not None,
        "daemon_json": DAEMON_JSON,
        "runtimes": [],
        "default_runtime": None,
    }
    problems: list[str] = []
    if server is not None:
        result = host.runner.probe(["docker", "info", "--format", DOCKER_JSON])
        daemon = P.parse_docker_info_json(result.stdout) if result is not None else None
        if daemon is None:
            lines = (result.stderr or result.stdout).strip().splitlines() if result is not None else []
            problems.append(f"`docker info` gave no daemon information: {lines[-1] if lines else 'no output'}")
        else:
            info["runtimes"] = sorted(daemon.runtimes)
            info["default_runtime"] = daemon.default_runtime
            info["cdi"] = bool(daemon.cdi_spec_dirs)
            missing = {name: path for name, path in daemon.runtimes.items()
                       if name not in P.DOCKER_BUILTIN_RUNTIMES and not runtime_binary_found(host, path)}
            if missing:
                info["missing_runtimes"] = sorted(missing)
                problems.append(docker_missing_runtime_problem(missing))
    try:
        load_json_object(DAEMON_JSON, host.read_text(DAEMON_JSON))
    except GpuwizardError as exc:
        info["daemon_json_error"] = str(exc)
        problems.append(str(exc))
    return info, "; ".join(problems) or None


def probe_version(host: Host, argv: list[str], parse: Callable[[str], str | None]) -> str | None:
    result = host.runner.probe(argv)
    if result is None or not result.ok:
        return None
    return parse(result.stdout)


# --------------------------------------------------------------------------------------------
# Kubernetes
def probe_kubernetes(host: Host) -> tuple[dict[str, Any] | None, str | None]:
    ctx = host.runner.probe(["kubectl", "config", "current-context"])
    if ctx is None or not ctx.ok or not ctx.stdout.strip():
        return None, None
    context = ctx.stdout.strip()
    with ThreadPoolExecutor(max_workers=4) as pool:
        fut_ver = pool.submit(host.runner.probe, ["kubectl", "version", "-o", "json", KUBE_TIMEOUT])
        fut_nodes = pool.submit(host.runner.probe, ["kubectl", "get", "nodes", "-o", "json", KUBE_TIMEOUT])
        fut_classes = pool.submit(host.runner.probe, ["kubectl", "get", "runtimeclasses", "-o", "json", KUBE_TIMEOUT])
        fut_pods = pool.submit(host.runner.probe, ["kubectl", "get", "pods", "--all-namespaces", "-o", "json", KUBE_TIMEOUT])
        ver, nodes = fut_ver.result(), fut_nodes.result()
        classes, pods = _json_items(fut_classes.result()), _json_items(fut_pods.result())
    parsed = P.parse_kube_version_json(ver.stdout) if ver is not None else None
    info: dict[str, Any] = {
        "context": context,
        "server_version": parsed.server if parsed else None,
        "runtime_classes": None if classes is None else
        [{"name": str(c.get("metadata", {}).get("name")), "handler": str(c.get("handler"))} for c in classes],
        "nodes": [],
    }
    if nodes is None or not nodes.ok:
        reason = _first_line((nodes.stderr or nodes.stdout) if nodes else "") or "no answer"
        return info, f"the cluster of context {context!r} did not answer: {reason}"
    try:
        items = json.loads(nodes.stdout).get("items", [])
    except ValueError:
        return info, "kubectl get nodes returned something that is not JSON"
    info["nodes"] = nodes_facts(host, items, pods)
    return info, None


def _json_items(result: Any) -> list[dict[str, Any]] | None:
    """The items of a ``kubectl get ... -o json`` probe; None when it failed or is not JSON."""
    if result is None or not result.ok:
        return None
    try:
        return list(json.loads(result.stdout).get("items") or [])
    except (ValueError, AttributeError):
        return None


# Pods that advertise nvidia.com/gpu to their node's kubelet, by their name: NVIDIA's device plugin
# (the gpu-operator's nvidia-device-plugin-daemonset-*, the static manifest's of the same name, the
# nvidia-device-plugin chart's <release>-nvidia-device-plugin-*), the gpu-operator's where its
# namespace runs the operator itself (gpu-operator-*); HAMi's (<release>-device-plugin-*, its charts
# name it so from 2.4 to 2.10)
def _gpu_plugin(name: str, namespace: str, operator_namespaces: set[str]) -> str | None:
    if "nvidia-device-plugin" in name:
        return "gpu-operator" if namespace in operator_namespaces else "nvidia-device-plugin"
    if "-device-plugin-" in name and "hami" in name:
        return "hami"
    return None


def pods_on_nodes(pods: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """node -> {"device_plugins": ["<kind> (<pod>)"], "validated": bool | None, "toolkit": str | None}:
    the device plugins that run there, whether the gpu-operator's validator (nvidia-operator-validator-*,
    Running once its driver, toolkit and CUDA checks pass) is ready there (None: it does not run there),
    and whether the operator's toolkit container (nvidia-container-toolkit-daemonset-*) runs there."""
    out: dict[str, dict[str, Any]] = {}
    operator_ns = {str(p.get("metadata", {}).get("namespace")) for p in pods or []
                   if str(p.get("metadata", {}).get("name") or "").startswith("gpu-operator-")}
    for p in pods or []:
        name = str(p.get("metadata", {}).get("name") or "")
        node = (p.get("spec") or {}).get("nodeName")
        if not node:
            continue
        status = p.get("status") or {}
        ready = status.get("phase") == "Running" and all(c.get("ready") for c in status.get("containerStatuses") or [])
        facts = out.setdefault(str(node), {"device_plugins": [], "validated": None, "toolkit": None})
        kind = _gpu_plugin(name, str(p.get("metadata", {}).get("namespace")), operator_ns)
        if kind:
            facts["device_plugins"].append(f"{kind} ({name}{'' if ready else ', not ready'})")
        elif name.startswith("nvidia-operator-validator-"):
            facts["validated"] = ready
        elif name.startswith("nvidia-container-toolkit-daemonset-"):
            facts["toolkit"] = "gpu-operator" + ("" if ready else " (not ready)")
    return out


def nodes_facts(host: Host, items: list[dict[str, Any]], pods: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``node_facts`` of each node, whether it is this host (its name is the /etc/hostname of the
    root gpuwizard acts on) and, from the cluster's pods where they were read, the device plugins
    running there and the gpu-operator's validation."""
    hostname = (host.read_text("/etc/hostname") or "").strip().split(".", 1)[0]
    on = pods_on_nodes(pods)
    out = []
    for item in items:
        node = node_facts(item)
        node["this_host"] = bool(hostname) and str(node.get("name") or "").split(".", 1)[0] == hostname
        if pods is not None:
            node.update(on.get(str(node.get("name")), {"device_plugins": [], "validated": None, "toolkit": None}))
        out.append(node)
    return out


# Node labels that tell GPUs and drivers: NFD's PCI vendor label (10de: NVIDIA), GPU Feature
# Discovery's product/count/driver labels and the gpu-operator's deploy labels
# (NVIDIA/k8s-device-plugin docs/gpu-feature-discovery; NVIDIA/gpu-operator internal/consts).
NFD_NVIDIA_PCI = "feature.node.kubernetes.io/pci-10de.present"
GFD_DRIVER = ("nvidia.com/cuda.driver-version.full", "nvidia.com/cuda.driver.major")


def node_facts(item: dict[str, Any]) -> dict[str, Any]:
    """One node as the cluster reports it (``kubectl get nodes -o json``): readiness, GPU capacity,
    its container runtime, OS, kernel and kubelet (``status.nodeInfo``), the distribution its kubelet
    version tells (``+k3s1``, ``+rke2r1``; Kind's provider ID), roles and NoSchedule taints, and the
    GPU labels NFD, GPU Feature Discovery and the gpu-operator set."""
    meta = item.get("metadata", {}) or {}
    status = item.get("status", {}) or {}
    spec = item.get("spec", {}) or {}
    labels = meta.get("labels", {}) or {}
    info = status.get("nodeInfo", {}) or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    kubelet = str(info.get("kubeletVersion") or "")
    runtime = str(info.get("containerRuntimeVersion") or "")
    if str(spec.get("providerID") or "").startswith("kind://") or labels.get("io.x-k8s.kind.cluster"):
        dist = "kind"
    elif "+k3s" in kubelet:
        dist = "k3s"
    elif "+rke2" in kubelet:
        dist = "rke2"
    else:
        dist = "kubernetes"
    taints = [f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints") or [] if t.get("effect") == "NoSchedule"]
    driver = next((labels[k] for k in GFD_DRIVER if labels.get(k)), None)
    gpu_present = labels.get("nvidia.com/gpu.present") == "true" or labels.get(NFD_NVIDIA_PCI) == "true"
    out: dict[str, Any] = {
        "name": meta.get("name"),
        "ready": ready,
        "gpu_capacity": _int_or_none(status.get("capacity", {}).get("nvidia.com/gpu")),
        "gpu_allocatable": _int_or_none(status.get("allocatable", {}).get("nvidia.com/gpu")),
        "labels": {k: v for k, v in labels.items() if k == "gpu" or k.startswith("nvidia.com/") or k == NFD_NVIDIA_PCI},
        "runtime": runtime or None,
        "os_image": info.get("osImage"),
        "kernel": info.get("kernelVersion"),
        "kubelet": kubelet or None,
        "distribution": dist,
        "roles": sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")),
        "taints": taints,
        "gpu_product": labels.get("nvidia.com/gpu.product"),
        "gpu_count": _int_or_none(labels.get("nvidia.com/gpu.count")),
        "gpu_present": True if gpu_present or (_int_or_none(status.get("capacity", {}).get("nvidia.com/gpu")) or 0) > 0 else None,
        # the operator marks a node whose driver it did not install; GFD's driver labels are there for
        # any driver, the operator's own driver container's too
        "driver": "pre-installed" if labels.get("nvidia.com/gpu.deploy.driver") == "pre-installed" else None,
        "driver_version": driver,
        "hami_registered": len(reg) if (reg := P.parse_hami_registration(
            (meta.get("annotations") or {}).get(P.HAMI_REGISTER))) is not None else None,
    }
    return out


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def probe_helm_releases(host: Host) -> list[dict[str, Any]] | None:
    result = host.runner.probe(["helm", "list", "--all-namespaces", "-o", "json"], timeout=10)
    if result is None or not result.ok:
        return None
    try:
        releases = json.loads(result.stdout or "[]")
    except ValueError:
        return None
    return releases if isinstance(releases, list) else None


def _release(releases: list[dict[str, Any]] | None, chart: str) -> ReleaseFacts | None:
    for rel in releases or []:
        name = str(rel.get("chart", ""))
        if name.rsplit("-", 1)[0] == chart:
            return ReleaseFacts(release=str(rel.get("name")), namespace=str(rel.get("namespace")),
                                chart_version=name.rsplit("-", 1)[-1], app_version=rel.get("app_version"),
                                status=rel.get("status"))
    return None


# --------------------------------------------------------------------------------------------
def detect(host: Host) -> Facts:
    """Run every probe (concurrently) and assemble the doctor document (typed: documents.Facts)."""
    jobs: dict[str, Callable[[], Any]] = {
        "os": lambda: probe_os(host),
        "kernel": lambda: probe_kernel(host),
        "arch": lambda: probe_arch(host),
        "secure_boot": lambda: probe_secure_boot(host),
        "modules": lambda: probe_modules(host),
        "gpus": lambda: detect_gpus(host),
        "cuda": lambda: probe_cuda_toolkit(host),
        "docker": lambda: probe_docker(host),
        "containerd": lambda: probe_version(host, ["containerd", "--version"], P.parse_containerd_version),
        "nvidia_ctk": lambda: probe_version(host, ["nvidia-ctk", "--version"], P.parse_nvidia_ctk_version),
        "kind": lambda: probe_version(host, ["kind", "version"], P.parse_kind_version),
        "kubectl": lambda: probe_version(host, ["kubectl", "version", "--client", "-o", "json"], _kubectl_client),
        "helm": lambda: probe_version(host, ["helm", "version", "--short"], P.parse_helm_version),
        "kubernetes": lambda: probe_kubernetes(host),
        "releases": lambda: probe_helm_releases(host),
    }
    cache = host.runner.probe_cache()  # a plan's (Engine.plan detects inside it): its probes see these
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(host.runner.in_cache, cache, fn) for name, fn in jobs.items()}
        results: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, fut in futures.items():
            try:
                results[name] = fut.result()
            except Exception as exc:  # noqa: BLE001 — a probe that breaks is a reported fact
                results[name] = None
                problems[name] = f"probe failed: {type(exc).__name__}: {exc}"

    os_info = results["os"] or {}
    sb = results["secure_boot"] or {"secure_boot": None}
    modules = results["modules"]
    if modules is None and "modules" not in problems:
        problems["modules"] = NO_MODULES
    gpus = results["gpus"] or {"gpus": [], "driver": None, "driver_status": None, "source": None, "problem": None}
    docker, docker_problem = results["docker"] or (None, None)
    kube, kube_problem = results["kubernetes"] or (None, None)
    releases = results["releases"]
    if gpus.get("problem"):
        problems["driver"] = gpus["problem"]
    if docker_problem:
        problems["docker"] = docker_problem
    if kube_problem:
        problems["kubernetes"] = kube_problem

    ctk_version = results["nvidia_ctk"]
    facts: Facts = {
        "host": {
            "os": os_info.get("os"),
            "version": os_info.get("version"),
            "pretty_name": os_info.get("pretty_name"),
            "id_like": os_info.get("id_like"),
            "codename": os_info.get("codename"),
            "kernel": results["kernel"],
            "arch": results["arch"],
            "secure_boot": sb.get("secure_boot"),
            # without module support nouveau can only be built in: /sys/module/<name> shows a built-in
            # module that has parameters (Documentation/ABI/stable/sysfs-module), as nouveau has
            "nouveau_loaded": "nouveau" in modules if modules is not None else host.exists("/sys/module/nouveau"),
            "nvidia_loaded": "nvidia" in modules if modules is not None else False,
        },
        "gpus": gpus["gpus"],
        "gpu_source": gpus["source"],
        "driver": gpus["driver"],
        "driver_status": gpus["driver_status"],
        "cuda_toolkit": results["cuda"],
        "container_toolkit": {"version": ctk_version} if ctk_version else None,
        "docker": docker,
        "kubernetes": kube,
        "gpu_operator": _release(releases, "gpu-operator"),
        "hami": _release(releases, "hami"),
        "tools": {
            "containerd": results["containerd"],
            "nvidia-ctk": ctk_version,
            "kind": results["kind"],
            "kubectl": results["kubectl"],
            "helm": results["helm"],
        },
        "problems": problems,
    }
    return facts


def _kubectl_client(text: str) -> str | None:
    parsed = P.parse_kube_version_json(text)
    return parsed.client if parsed else None
