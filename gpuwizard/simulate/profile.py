"""Host profiles: gpuwizard/assets/hosts/<name>.yaml -> initial world state.

Profile schema (every key optional unless marked required; unknown keys are errors)::

    description: str                 # required, one line
    extends: str                     # another profile name; dicts deep-merge, lists/scalars replace
    host:
      hostname: str                  # default "gpu-demo"
      os_release: str                # required: verbatim /etc/os-release text
      kernel: str                    # required: uname -r, e.g. 5.15.0-125-generic
      kernel_build: str              # uname -v, e.g. "#135-Ubuntu SMP Fri Sep 27 13:53:58 UTC 2024"
      arch: str                      # uname -m, default x86_64
      efi: bool                      # default true; false -> mokutil says EFI variables unsupported
      secure_boot: bool              # default false
      nouveau: bool                  # kernel ships nouveau, which binds the NVIDIA card at boot unless
                                     # blacklisted in <root>/etc/modprobe.d/*.conf; default false
      cpus: int                      # default 4
      memory_kib: int                # default 16265676
      now: str                       # fixed date for nvidia-smi's first line ("Sun Nov 10 11:30:16 2024")
      reboot_required: bool          # state after boot: a reboot is pending (default false)
    pci:                             # every PCI function lspci lists
      - slot: "00:07.0"              # required; "dddd:bb:dd.f" or "bb:dd.f"
        class: "0302"                # required; 4 hex digits
        class_name: "3D controller"  # required
        prog_if: "00"                # default "00"; sysfs class = 0x<class><prog_if>
        prog_if_name: str            # shown as " (prog-if 00 [VGA controller])" when set
        vendor: "10de"               # required; 4 hex digits
        vendor_name: "NVIDIA Corporation"   # required
        device: "1eb8"               # required; 4 hex digits
        device_name: "TU104GL [Tesla T4]"   # null -> "Device 1eb8" as lspci prints unknown ids
        rev: "a1"                    # optional
        subsystem: "10de:12a2"       # optional, for sysfs subsystem_vendor/subsystem_device
    gpus:                            # what the NVIDIA driver reports, one per NVIDIA GPU
      - slot: "00:07.0"              # required; must be an NVIDIA entry of pci
        name: "Tesla T4"             # required
        memory_mib: 15360            # required
        uuid: "GPU-..."              # default derived from profile name + slot
        persistence: bool            # default false
        display_active: bool         # default false
        ecc: "0"                     # Volatile Uncorr. ECC column, default "0" ("N/A" for GeForce)
        fan: int | null              # percent; null -> "N/A" (passive cards), default null
        temp_c: int, perf: "P0", power_w: int, power_cap_w: int,
        memory_used_mib: int, util_pct: int, compute_mode: "Default",
        mig: null | "Disabled" | "Enabled"   # MIG M. column / mig.mode.current ([N/A] when null)
        compute_cap: "7.5"
    driver:                          # null/absent: no NVIDIA driver installed (no nvidia-smi)
      version: "565.57.01"           # required
      cuda_version: "12.7"           # CUDA Version in nvidia-smi's header
      signed: bool                   # module signed for Secure Boot (default false)
      loaded_version: str | null     # override: module version loaded after boot (mismatch/unloaded)
      kind: str                      # how it was installed (runfile/apt/dnf), informational
    modules: [str]                   # override the modules loaded after boot (default: computed)
    cuda_toolkits:                   # installed toolkits under /usr/local/cuda-X.Y
      - version: "12.6"              # required
        full_version: "12.6.77"      # nvcc "V12.6.77"
        built_on: "Thu_Sep_12_02:18:05_PDT_2024"
        build: "cuda_12.6.r12.6/compiler.34841621_0"
        copyright_year: 2024
        on_path: true                # nvcc in bin/ (default true)
    docker:                          # null/absent: docker not installed
      version: "24.0.7"              # required
      build: "24.0.7-0ubuntu2~22.04.1"
      api_version: "1.43", go_version: "go1.21.1", runc_version: str
      daemon_json: {...} | null      # written once to <root>/etc/docker/daemon.json
    containerd: {version: "1.7.12", package: "github.com/containerd/containerd", revision: ""}
                                     # defaults to a containerd when docker is present
    nvidia_ctk: {version: "1.17.0", commit: str}
    kind: {version: "v0.24.0", go: "go1.22.6"}
    kubectl: {version: "v1.31.2", commit: str, build_date: str, go: str, kustomize: "v5.4.2"}
    helm: {version: "v3.16.2", commit: str, go: str}
    services:                        # systemd units; default docker+containerd enabled when docker
      <name>: {enabled: bool, active: bool, description: str}
    clusters:
      - name: gpu-cluster            # required
        provider: kind               # "kind" (default; reachable only while docker runs) or "external"
        context: str                 # kube context; default kind-<name>
        version: "v1.31.2"           # server version
        api_server: "https://127.0.0.1:39127"
        running: bool                # default true
        nodes:                       # default: one control-plane node
          - name: str, role: control-plane|worker, labels: {}, annotations: {},
            capacity: {"nvidia.com/gpu": "10", ...}, allocatable: {}, ready: bool, age: "12m"
            gpus: all | [int] | null, mounts: [containerPath], ldconfig_real: bool,   # Kind nodes (tools_cluster)
            nvidia_runtime: bool, nvidia_default_runtime: bool,
            # a node of an existing (provider: external) cluster, per node (default: the cluster's / this host's):
            container_runtime: "containerd://2.1.5", os_image: str, kernel: str, kubelet_version: str, arch: amd64,
            provider_id: str, pod_cidr: "10.42.0.0/24", ip: str, taints: [{key, effect}],
            containerd_socket: /run/containerd/containerd.sock (default), containerd_config: str,
            node_gpus: [{name, memory_mib}]     # GPUs of a node that is another machine (gpus: all = this host's)
            nvidia_device_plugin: bool          # NVIDIA's k8s-device-plugin chart runs there (release nvdp)
            driver: {version, cuda_version} | null   # that machine's NVIDIA driver (default: this host's)
        kubeconfig: str              # the file that holds the context (informational; seed it under files:)
        runtime_classes: [{name, handler}]   # RuntimeClasses the cluster has before any install (k3s ships nvidia)
        releases:                    # helm releases in this cluster
          - {name, namespace, chart, app_version, revision, status, updated, values: {}}
        namespaces: {name: {labels: {}}}   # default: kube's own plus the releases' namespaces
    cluster_faults: {image_pull: "<pod prefix>", validator: bool, hami_plugin_crash: bool, settle_polls: int}
    helm_repos: {name: url}          # `helm repo add` state
    network: {offline: bool}         # offline: no name resolves but this machine's (127.0.0.1, a test's
                                     # mirror): curl, helm's repositories and image pulls fail as they do
    current_context: str | null      # default: the first cluster's context
    files: {"/abs/path": "content"}  # seed files written once under the sandbox root
    failures:                        # failure injection (see gpuwizard.simulate.tools)
      - {match: [argv words], rc: int, stdout: str, stderr: str, times: int, sleep: float, passthrough: bool}
    extra_tools: [str]               # names of extra tools to expose in bin/ (registered handlers)
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import yaml

from gpuwizard.simulate import world as W

HOSTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "hosts"


class SandboxError(Exception):
    """A sandbox cannot be prepared (bad root, bad profile, ...)."""


class UnknownProfile(SandboxError):
    pass


class ProfileError(SandboxError):
    pass


def list_profiles() -> list[str]:
    return sorted(p.stem for p in HOSTS_DIR.glob("*.yaml"))


def _deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _deep_merge(base[k], v) if k in base else v
        return out
    return copy.deepcopy(over)


def load_raw(name: str, _seen=()) -> dict:
    path = HOSTS_DIR / ("%s.yaml" % name)
    if not path.is_file():
        raise UnknownProfile("unknown host profile %r; known profiles: %s" % (name, ", ".join(list_profiles())))
    if name in _seen:
        raise ProfileError("profile %s: 'extends' cycle: %s" % (name, " -> ".join(_seen + (name,))))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ProfileError("profile %s (%s): invalid YAML: %s" % (name, path, e)) from None
    if not isinstance(data, dict):
        raise ProfileError("profile %s (%s): expected a mapping at the top level" % (name, path))
    parent = data.pop("extends", None)
    if parent is not None:
        base = load_raw(parent, _seen + (name,))
        base.pop("description", None)
        data = _deep_merge(base, data)
    return data


# ---------------------------------------------------------------------------------------------
# validation: a small declarative schema, errors collected and reported together

_STR, _INT, _BOOL, _NUM = "str", "int", "bool", "num"

_PCI = {"slot": _STR, "class": _STR, "class_name": _STR, "prog_if": _STR, "prog_if_name": _STR, "vendor": _STR,
        "vendor_name": _STR, "device": _STR, "device_name": (_STR, None), "rev": _STR, "subsystem": _STR}
_GPU = {"slot": _STR, "name": _STR, "memory_mib": _INT, "uuid": _STR, "persistence": _BOOL,
        "display_active": _BOOL, "ecc": _STR, "fan": (_INT, None), "temp_c": _INT, "perf": _STR, "power_w": _INT,
        "power_cap_w": _INT, "memory_used_mib": _INT, "util_pct": _INT, "compute_mode": _STR,
        "mig": (_STR, None), "compute_cap": _STR, "serial": _STR, "vbios": _STR}
_NODE = {"name": _STR, "role": _STR, "labels": "map", "annotations": "map", "capacity": "map",
         "allocatable": "map", "ready": _BOOL, "age": _STR, "ip": _STR, "taints": "list",
         "gpus": (_STR, ("list", _INT), None), "mounts": ("list", _STR), "ldconfig_real": _BOOL,
         "nvidia_runtime": _BOOL, "nvidia_default_runtime": _BOOL,
         "container_runtime": _STR, "os_image": _STR, "kernel": _STR, "kubelet_version": _STR, "arch": _STR,
         "provider_id": _STR, "pod_cidr": _STR, "containerd_socket": _STR, "containerd_config": _STR,
         "node_gpus": [{"name": _STR, "memory_mib": _INT, "slot": _STR, "uuid": _STR}],
         "driver": ({"version": _STR, "cuda_version": _STR}, None), "nvidia_device_plugin": _BOOL}
_RELEASE = {"name": _STR, "namespace": _STR, "chart": _STR, "app_version": _STR, "revision": _INT,
            "status": _STR, "updated": _STR, "values": "map"}
_FAILURE = {"match": ("list", _STR), "rc": _INT, "stdout": _STR, "stderr": _STR, "times": _INT,
            "sleep": _NUM, "passthrough": _BOOL}

SCHEMA = {
    "description": _STR,
    "host": {"hostname": _STR, "os_release": _STR, "kernel": _STR, "kernel_build": _STR, "arch": _STR,
             "efi": _BOOL, "secure_boot": _BOOL, "nouveau": _BOOL, "cpus": _INT, "memory_kib": _INT,
             "now": _STR, "reboot_required": _BOOL, "processor": _STR, "hardware_platform": _STR,
             "kernel_compiler": _STR, "gcc": _STR},
    "pci": [_PCI],
    "gpus": [_GPU],
    "driver": ({"version": _STR, "cuda_version": _STR, "signed": _BOOL, "loaded_version": (_STR, None),
                "kind": _STR, "build_date": _STR}, None),
    "modules": ("list", _STR),
    "cuda_toolkits": [{"version": _STR, "full_version": _STR, "sdk_version": _STR, "built_on": _STR,
                       "build": _STR, "copyright_year": _INT, "on_path": _BOOL}],
    "docker": ({"version": _STR, "build": _STR, "api_version": _STR, "go_version": _STR, "runc_version": _STR,
                "built": _STR, "daemon_json": ("map", None)}, None),
    "containerd": ({"version": _STR, "package": _STR, "revision": _STR}, None),
    "nvidia_ctk": ({"version": _STR, "commit": _STR}, None),
    "kind": ({"version": _STR, "go": _STR}, None),
    "kubectl": ({"version": _STR, "commit": _STR, "build_date": _STR, "go": _STR, "kustomize": _STR}, None),
    "helm": ({"version": _STR, "commit": _STR, "go": _STR}, None),
    "services": "map",
    "clusters": [{"name": _STR, "provider": _STR, "context": _STR, "version": _STR, "api_server": _STR,
                  "running": _BOOL, "created": _STR, "commit": _STR, "build_date": _STR, "go": _STR,
                  "container_runtime": _STR, "os_image": _STR, "nodes": [_NODE], "releases": [_RELEASE],
                  "namespaces": "map", "image": _STR, "kubeconfig": _STR,
                  "runtime_classes": [{"name": _STR, "handler": _STR}]}],
    "cluster_faults": "map",
    "helm_repos": "map",
    "network": {"offline": _BOOL},
    "current_context": (_STR, None),
    "files": "map",
    "failures": [_FAILURE],
    "extra_tools": ("list", _STR),
}

REQUIRED = {
    "": ["description", "host"],
    "host": ["os_release", "kernel"],
    "pci[]": ["slot", "class", "class_name", "vendor", "vendor_name", "device"],
    "gpus[]": ["slot", "name", "memory_mib"],
    "driver": ["version"],
    "cuda_toolkits[]": ["version"],
    "docker": ["version"],
    "containerd": ["version"],
    "nvidia_ctk": ["version"],
    "kind": ["version"],
    "kubectl": ["version"],
    "helm": ["version"],
    "clusters[]": ["name"],
    "clusters[].releases[]": ["name", "chart"],
    "failures[]": ["match"],
}


def _type_ok(t, v) -> bool:
    if t == _STR:
        return isinstance(v, str)
    if t == _INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if t == _NUM:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == _BOOL:
        return isinstance(v, bool)
    if t == "map":
        return isinstance(v, dict)
    if t == "list":
        return isinstance(v, list)
    return False


def _describe(t) -> str:
    if isinstance(t, tuple):
        if len(t) == 2 and t[0] == "list":
            return "a list of %s" % _describe(t[1])
        return " or ".join("null" if x is None else _describe(x) for x in t)
    if isinstance(t, dict):
        return "a mapping"
    if isinstance(t, list):
        return "a list of mappings"
    return {"str": "a string", "int": "an integer", "bool": "true/false", "num": "a number",
            "map": "a mapping", "list": "a list"}.get(t, str(t))


def _check(schema, value, path: str, rpath: str, errors: list) -> None:
    where = path or "<top>"
    if isinstance(schema, tuple) and not (len(schema) == 2 and schema[0] == "list"):
        if value is None and None in schema:
            return
        for alt in schema:
            if alt is not None and (isinstance(alt, (dict, list)) or _type_ok(alt, value)
                                    or (isinstance(alt, tuple) and isinstance(value, list))):
                return _check(alt, value, path, rpath, errors)
        errors.append("%s: expected %s, got %r" % (where, _describe(schema), value))
        return
    if isinstance(schema, tuple):  # ("list", itemtype)
        if not isinstance(value, list):
            errors.append("%s: expected %s, got %r" % (where, _describe(schema), value))
            return
        for i, item in enumerate(value):
            if not _type_ok(schema[1], item):
                errors.append("%s[%d]: expected %s, got %r" % (where, i, _describe(schema[1]), item))
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            errors.append("%s: expected a list, got %r" % (where, value))
            return
        for i, item in enumerate(value):
            _check(schema[0], item, "%s[%d]" % (path, i), rpath + "[]", errors)
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            errors.append("%s: expected a mapping, got %r" % (where, value))
            return
        for k in value:
            if k not in schema:
                errors.append("%s: unknown key %r (known: %s)" % (where, k, ", ".join(sorted(schema))))
        for k in REQUIRED.get(rpath, []):
            if k not in value:
                errors.append("%s: missing required key %r" % (where, k))
        for k, v in value.items():
            if k in schema:
                sub = "%s.%s" % (path, k) if path else k
                _check(schema[k], v, sub, ("%s.%s" % (rpath, k)) if rpath else k, errors)
        return
    if not _type_ok(schema, value):
        errors.append("%s: expected %s, got %r" % (where, _describe(schema), value))


def validate(name: str, data: dict) -> None:
    errors: list[str] = []
    _check(SCHEMA, data, "", "", errors)
    if not errors:
        slots = {}
        for d in data.get("pci", []):
            for key, n in (("class", 4), ("vendor", 4), ("device", 4)):
                v = d.get(key, "")
                if len(v) != n or any(c not in "0123456789abcdef" for c in v):
                    errors.append("pci %s: %s must be %d lowercase hex digits, got %r" % (d["slot"], key, n, v))
            slots[W.pci_sysfs_name(d["slot"])] = d
        for g in data.get("gpus", []):
            d = slots.get(W.pci_sysfs_name(g["slot"]))
            if d is None or d.get("vendor") != W.NVIDIA_VENDOR:
                errors.append("gpus: slot %s has no NVIDIA entry in pci" % g["slot"])
            if g.get("mig") not in (None, "Disabled", "Enabled"):
                errors.append("gpus %s: mig must be null, Disabled or Enabled" % g["slot"])
        for s, v in (data.get("services") or {}).items():
            if not isinstance(v, dict) or set(v) - {"enabled", "active", "description"}:
                errors.append("services.%s: expected {enabled: bool, active: bool, description: str}" % s)
        for p in (data.get("files") or {}):
            if not str(p).startswith("/") or ".." in str(p).split("/"):
                errors.append("files: %r must be an absolute path without '..'" % p)
        ctxs = [c.get("context") or "kind-%s" % c["name"] for c in data.get("clusters", [])]
        cur = data.get("current_context")
        if cur and cur not in ctxs:
            errors.append("current_context %r is not the context of any cluster (%s)" % (cur, ", ".join(ctxs)))
    if errors:
        raise ProfileError("profile %s is invalid:\n  " % name + "\n  ".join(errors))


# ---------------------------------------------------------------------------------------------
# profile -> world


def _default_uuid(profile: str, slot: str) -> str:
    h = hashlib.sha1(("%s/%s" % (profile, slot)).encode()).hexdigest()
    return "GPU-%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


def build_world(name: str, data: dict) -> dict:
    """Normalise a validated profile into the world's initial state (before boot)."""
    d = copy.deepcopy(data)
    host = d["host"]
    host.setdefault("hostname", "gpu-demo")
    host.setdefault("arch", "x86_64")
    host.setdefault("efi", True)
    host.setdefault("secure_boot", False)
    host.setdefault("nouveau", False)
    host.setdefault("cpus", 4)
    host.setdefault("memory_kib", 16265676)
    host.setdefault("kernel_build", "#1 SMP")
    if not host["os_release"].endswith("\n"):
        host["os_release"] += "\n"
    for dev in d.setdefault("pci", []):
        dev.setdefault("prog_if", "00")
    for g in d.setdefault("gpus", []):
        g.setdefault("uuid", _default_uuid(name, g["slot"]))
    d.setdefault("cuda_toolkits", [])
    for key in ("driver", "docker", "containerd", "nvidia_ctk", "kind", "kubectl", "helm"):
        d.setdefault(key, None)
    if d["docker"] is not None and d["containerd"] is None and "containerd" not in data:
        d["containerd"] = {"version": "1.7.12", "package": "github.com/containerd/containerd", "revision": ""}
    services = d.setdefault("services", {})
    if d["docker"] is not None:
        services.setdefault("docker", {"enabled": True, "active": True})
        services["docker"].setdefault("description", "Docker Application Container Engine")
    if d["containerd"] is not None:
        services.setdefault("containerd", {"enabled": True, "active": True})
        services["containerd"].setdefault("description", "containerd container runtime")
    for s in services.values():
        s.setdefault("enabled", True)
        s.setdefault("active", s["enabled"])
    clusters = d.setdefault("clusters", [])
    for c in clusters:
        c.setdefault("provider", "kind")
        c.setdefault("version", "v1.31.2")
        c.setdefault("api_server", "https://127.0.0.1:39127")
        c.setdefault("running", True)
        c.setdefault("nodes", [{"name": "%s-control-plane" % c["name"], "role": "control-plane"}])
        c.setdefault("releases", [])
    if "current_context" not in d:
        d["current_context"] = (clusters[0].get("context") or "kind-%s" % clusters[0]["name"]) if clusters else None
    d.setdefault("failures", [])
    d.setdefault("extra_tools", [])
    d.pop("files", None)
    d.pop("description", None)
    world = {"schema": W.SCHEMA_VERSION, "profile": name, "failure_uses": {}}
    world.update(d)
    return world


def load_profile(name: str) -> dict:
    """The validated, merged profile (description, files, ... included)."""
    data = load_raw(name)
    validate(name, data)
    return data
