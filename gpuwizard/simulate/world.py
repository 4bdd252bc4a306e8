"""World state of a simulated host: load/save under a lock, and the host files derived from it.

Imported by every simulated tool at start-up, so it imports only built-in modules (os, sys, fcntl,
marshal); json is imported lazily, only to write world.json (importing json costs more than the rest of
a tool's start-up). No yaml, no pydantic, no uuid/hashlib.

world.json is the canonical state. Every save also writes world.marshal, a byte-code-fast snapshot
that tools read; it is ignored whenever world.json is newer (someone edited world.json by hand).

Sandbox layout (all under the sandbox root)::

    .gpuwizard-sim/world.json    mutable world state (written atomically, under LOCK)
    .gpuwizard-sim/calls.jsonl   one JSON line per simulated tool invocation
    .gpuwizard-sim/bin/          the simulated tools that are "installed" (PATH = this dir only)
    .gpuwizard-sim/profile       the profile name this sandbox was made from
    .gpuwizard-sim/lock          fcntl lock file guarding world.json

Derived host files (rewritten by :func:`sync_host_files` from the world after every mutation):
etc/os-release, etc/hostname, proc/modules, proc/version, proc/sys/kernel/osrelease,
proc/sys/kernel/random/boot_id, proc/driver/nvidia/version + sys/module/nvidia/version (while the
nvidia module is loaded, also after its package was removed: world["stale_module"]; removed, with the
directories, once it is unloaded), sys/bus/pci/devices/<dom:bus:dev.fn>/{vendor,device,class,revision,
subsystem_vendor,subsystem_device}, sys/firmware/efi/efivars/SecureBoot-<guid> (EFI hosts),
usr/local/cuda-X.Y/{bin/nvcc,version.json} + usr/local/cuda symlink (removed again when the toolkit leaves
the world: its package was removed), var/run/reboot-required,
<venv>/bin/{python,python3,pip,pip3} for each ``python_venvs`` entry whose directory exists.

Seed files (written once when the sandbox is created, never rewritten, because the wizard edits
them): etc/docker/daemon.json (profile ``docker.daemon_json``) and the profile's ``files``.
"""
import fcntl
import marshal
import os
import sys
import time

SIM_DIR = ".gpuwizard-sim"
WORLD_FILE = "world.json"
WORLD_SNAPSHOT = "world.marshal"
CALLS_FILE = "calls.jsonl"
PROFILE_FILE = "profile"
LOCK_FILE = "lock"
BIN_DIR = "bin"

SCHEMA_VERSION = 1

NVIDIA_VENDOR = "10de"
SECUREBOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

# Shebangs longer than this are not portable (Linux < 5.1 truncates at 127 bytes); longer
# interpreter paths get a /bin/sh trampoline instead.
_MAX_SHEBANG = 120

# ---------------------------------------------------------------------------------------------
# paths and locking


def sim_dir(root) -> str:
    return os.path.join(str(root), SIM_DIR)


def bin_dir(root) -> str:
    return os.path.join(str(root), SIM_DIR, BIN_DIR)


def host_path(root, path: str) -> str:
    """Map an absolute host path ("/etc/os-release") into the sandbox root."""
    return os.path.join(str(root), path.lstrip("/"))


class _Lock:
    """fcntl.flock on <sim>/lock; exclusive by default."""

    def __init__(self, root, shared: bool = False):
        self.path = os.path.join(sim_dir(root), LOCK_FILE)
        self.mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self.fd = -1

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, self.mode)
        return self

    def __exit__(self, *exc):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
        return False


def lock(root, shared: bool = False) -> _Lock:
    return _Lock(root, shared)


def load_world(root) -> dict:
    """Read the world. Writers replace files atomically, so a plain read is consistent."""
    d = sim_dir(root)
    jpath = os.path.join(d, WORLD_FILE)
    mpath = os.path.join(d, WORLD_SNAPSHOT)
    try:
        if os.stat(mpath).st_mtime_ns >= os.stat(jpath).st_mtime_ns:
            with open(mpath, "rb") as f:
                return marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        pass
    import json
    with open(jpath, encoding="utf-8") as f:
        return json.load(f)


def save_world(root, world: dict) -> None:
    """Atomically replace world.json, then its marshal snapshot. Call with the lock held."""
    import json
    d = sim_dir(root)
    pid = os.getpid()
    path = os.path.join(d, WORLD_FILE)
    tmp = "%s.tmp.%d" % (path, pid)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(world, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    mpath = os.path.join(d, WORLD_SNAPSHOT)
    mtmp = "%s.tmp.%d" % (mpath, pid)
    with open(mtmp, "wb") as f:
        marshal.dump(world, f)
    os.replace(mtmp, mpath)


def mutate_world(root, fn) -> dict:
    """Under the exclusive lock: load the world, apply fn(world), save it, resync host files.

    Returns the new world. fn may return False to signal "nothing changed" (no save, no sync).
    """
    with lock(root):
        world = load_world(root)
        if fn(world) is False:
            return world
        save_world(root, world)
        sync_host_files(root, world)
    return world


_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _jstr(s: str) -> str:
    out = []
    for ch in s:
        e = _JSON_ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ch < " " or "\ud800" <= ch <= "\udfff":
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def json_dumps_min(obj) -> str:
    """Compact JSON for plain data (dict/list/str/int/float/bool/None), without importing json."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, str):
        return _jstr(obj)
    if isinstance(obj, (int, float)):
        return repr(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(_jstr(str(k)) + ":" + json_dumps_min(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(json_dumps_min(v) for v in obj) + "]"
    return _jstr(str(obj))


def append_call(root, record: dict) -> None:
    line = json_dumps_min(record) + "\n"
    fd = os.open(os.path.join(sim_dir(root), CALLS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)  # closing releases the flock


# ---------------------------------------------------------------------------------------------
# small helpers shared with the tools


def new_uuid() -> str:
    """A random version-4 UUID string without importing uuid (slow-ish at tool start)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def pci_sysfs_name(slot: str) -> str:
    """"00:07.0" -> "0000:00:07.0" (lowercase, with domain)."""
    slot = slot.lower()
    return slot if slot.count(":") == 2 else "0000:" + slot


def nvidia_bus_id(slot: str) -> str:
    """"00:07.0" -> "00000000:00:07.0" as nvidia-smi prints it (8-digit domain, uppercase)."""
    full = pci_sysfs_name(slot)
    dom, rest = full.split(":", 1)
    return ("%08x:%s" % (int(dom, 16), rest)).upper()


def nvidia_gpu_present(world: dict) -> bool:
    return any(d.get("vendor") == NVIDIA_VENDOR and str(d.get("class", "")).startswith("03")
               for d in world.get("pci", []))


def driver_loaded(world: dict) -> bool:
    return "nvidia" in world.get("modules", [])


def service(world: dict, name: str) -> dict | None:
    name = name[:-8] if name.endswith(".service") else name
    return world.get("services", {}).get(name)


def service_active(world: dict, name: str) -> bool:
    s = service(world, name)
    return bool(s and s.get("active"))


def read_daemon_json(root):
    """(config dict or None, error string or None) for <root>/etc/docker/daemon.json."""
    import json
    path = host_path(root, "/etc/docker/daemon.json")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, None
    except OSError as e:
        return None, str(e)
    if not text.strip():
        return {}, None
    try:
        cfg = json.loads(text)
    except ValueError as e:
        return None, "invalid character in %s: %s" % (path, e)
    if not isinstance(cfg, dict):
        return None, "%s: json: cannot unmarshal into Go value of type map[string]interface {}" % path
    return cfg, None


def modprobe_blacklisted(root, module: str) -> bool:
    """True when a modprobe.d *.conf under the sandbox root says `blacklist <module>`."""
    for d in ("/etc/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d", "/run/modprobe.d"):
        p = host_path(root, d)
        try:
            names = sorted(os.listdir(p))
        except OSError:
            continue
        for n in names:
            if not n.endswith(".conf"):
                continue
            try:
                with open(os.path.join(p, n), encoding="utf-8", errors="replace") as f:
                    for line in f:
                        words = line.split("#", 1)[0].split()
                        if len(words) >= 2 and words[0] == "blacklist" and words[1] == module:
                            return True
            except OSError:
                continue
    return False


# ---------------------------------------------------------------------------------------------
# boot: what a (re)boot does to the world

BASE_MODULES = ["overlay", "br_netfilter", "bridge", "stp", "llc", "ip_tables", "x_tables", "autofs4"]
NOUVEAU_MODULES = ["nouveau", "mxm_wmi", "drm_ttm_helper", "ttm", "video", "wmi"]
NVIDIA_MODULES = ["nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia"]

# name -> (size, users) for /proc/modules
MODULE_INFO = {
    "nvidia": (56717312, ["nvidia_uvm", "nvidia_modeset"]),
    "nvidia_modeset": (1355776, ["nvidia_drm"]),
    "nvidia_drm": (122880, []),
    "nvidia_uvm": (1527808, []),
    "nouveau": (2433024, []),
    "mxm_wmi": (16384, ["nouveau"]),
    "drm_ttm_helper": (16384, ["nouveau"]),
    "ttm": (98304, ["nouveau", "drm_ttm_helper"]),
    "video": (65536, ["nouveau"]),
    "wmi": (32768, ["nouveau", "mxm_wmi", "video"]),
    "overlay": (151552, []),
    "br_netfilter": (32768, []),
    "bridge": (311296, ["br_netfilter"]),
    "stp": (16384, ["bridge"]),
    "llc": (16384, ["bridge", "stp"]),
    "ip_tables": (32768, []),
    "x_tables": (53248, ["ip_tables"]),
    "autofs4": (49152, []),
}


def gpu_held(world: dict) -> bool:
    """A process has /dev/nvidia* open, so the nvidia module's refcount is not 0: the GPU pods (device plugin,
    GPU feature discovery, DCGM exporter of gpu-operator or HAMi) of a running cluster with a node on this
    host that has this host's GPUs (a Kind node is a container here; a k3s/RKE2/kubeadm node without
    ``node_gpus`` is this machine)."""
    for c in world.get("clusters", []):
        kind = c.get("provider", "kind") == "kind"
        if not c.get("running", True) or (kind and not service_active(world, "docker")):
            continue
        charts = [str(r.get("chart", "")) for r in c.get("releases", [])]
        if not any(ch.startswith(("gpu-operator-", "hami-")) for ch in charts):
            continue
        if any(n.get("gpus") and "node_gpus" not in n for n in c.get("nodes", [])):
            return True
    return False


def module_users(world: dict, name: str, loaded=None) -> list:
    """What keeps module ``name`` in the kernel: the loaded modules that use it (its holders in
    /sys/module/<name>/holders) and, for nvidia, "process" while a process holds the GPU (:func:`gpu_held`)."""
    loaded = world.get("modules", []) if loaded is None else loaded
    users = [u for u in MODULE_INFO.get(name, (0, []))[1] if u in loaded]
    if name == "nvidia" and gpu_held(world):
        users.append("process")
    return users


def boot(root, world: dict) -> None:
    """Apply what a boot applies: new boot_id, modules re-computed, services started per their
    enabled flag, docker re-reads daemon.json, pending-reboot flag cleared."""
    host = world["host"]
    host["boot_id"] = new_uuid()
    host["boots"] = int(host.get("boots", 0)) + 1
    host["reboot_required"] = False

    gpu = nvidia_gpu_present(world)
    nouveau = bool(host.get("nouveau")) and gpu and not modprobe_blacklisted(root, "nouveau")
    drv: dict = world.get("driver") or {}  # the world's own dict when a driver is installed (changed in place below)
    nvidia = bool(drv) and gpu and not nouveau and not modprobe_blacklisted(root, "nvidia")
    # keys queued with `mokutil --import` are enrolled at the console (MokManager) during this boot
    if host.get("mok_pending"):
        host["mok_enrolled"] = list(host.get("mok_enrolled", [])) + host.pop("mok_pending")
    if nvidia and host.get("secure_boot") and not drv.get("signed"):
        nvidia = False  # the kernel rejects the unsigned module ("Key was rejected by service")
    if nvidia and host.get("secure_boot") and drv.get("signing_key") and \
            drv["signing_key"] not in host.get("mok_enrolled", []):
        nvidia = False  # signed, but with a key the firmware does not trust
    world.pop("stale_module", None)  # a module whose files were removed is not loaded again
    mods = list(BASE_MODULES)
    if nouveau:
        mods += NOUVEAU_MODULES
    if nvidia:
        mods += NVIDIA_MODULES
    world["modules"] = mods
    if drv:
        drv["loaded_version"] = drv["version"] if nvidia else None

    for svc in world.get("services", {}).values():
        svc["active"] = bool(svc.get("enabled"))
        svc.pop("failed", None)
    if world.get("docker") is not None:
        docker_reload(root, world)
    # a cluster with a node on this host (k3s, RKE2, kubeadm: not Kind, whose nodes are containers)
    # comes back after the boot: its pods start again, read as creating for a few polls
    for c in world.get("clusters", []) if host["boots"] > 1 else []:
        if c.get("provider", "kind") != "kind" and any("node_gpus" not in n for n in c.get("nodes", [])):
            c["settle"] = max(2, int((world.get("cluster_faults") or {}).get("settle_polls", 0)))
            # the kubelet of a node on this host posts Ready anew: its condition's lastTransitionTime
            c["booted_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # unit files enabled for multi-user.target (gpuwizard-resume.service) start when the boot
    # reaches it: `systemctl start multi-user.target` (gpuwizard/simulate/units.py)
    world["systemd"] = {"units": {}, "pending": enabled_units(root, "multi-user.target")}


def enabled_units(root, target: str) -> list:
    """Unit files in /etc/systemd/system linked from <target>.wants (what `systemctl enable` made)."""
    d = host_path(root, "/etc/systemd/system/%s.wants" % target)
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    return [n for n in names if os.path.isfile(host_path(root, "/etc/systemd/system/" + n))]


def docker_reload(root, world: dict) -> str | None:
    """dockerd (re)start: read daemon.json into docker.loaded_config. Returns an error message
    (and marks docker inactive) when the file is unusable, as the real daemon refuses to start."""
    cfg, err = read_daemon_json(root)
    svc = world.setdefault("services", {}).setdefault("docker", {"enabled": True, "active": False})
    if err:
        svc["active"] = False
        svc["failed"] = True
        return err
    svc.pop("failed", None)
    world["docker"]["loaded_config"] = cfg
    return None


# ---------------------------------------------------------------------------------------------
# tool presence: which simulated tools exist in bin/ for a given world.
# Later work registers more tools here (apt-get, dpkg, ...) with a predicate on the world.

ALWAYS_PRESENT = ("lspci", "uname", "mokutil", "reboot", "shutdown", "systemctl", "sudo",
                  "sh", "openssl", "modprobe", "rmmod")


def _os_ids(w) -> set:
    ids = set()
    for line in w.get("host", {}).get("os_release", "").splitlines():
        if line.startswith(("ID=", "ID_LIKE=")):
            ids.update(line.split("=", 1)[1].strip('"').split())
    return ids


def _debianish(w) -> bool:
    return bool(_os_ids(w) & {"debian", "ubuntu"})


def _rhelish(w) -> bool:
    return bool(_os_ids(w) & {"rhel", "fedora", "centos", "rocky", "almalinux"})

TOOL_PRESENCE = {
    "nvidia-smi": lambda w: bool(w.get("driver")),
    "nvcc": lambda w: any(t.get("on_path", True) for t in w.get("cuda_toolkits", [])),
    "docker": lambda w: w.get("docker") is not None,
    "containerd": lambda w: w.get("containerd") is not None,
    "nvidia-ctk": lambda w: w.get("nvidia_ctk") is not None,
    # shipped by the same package; ``nvidia_ctk.runtime_binary: false`` models a host where it is gone
    # (dockerd still lists a daemon.json runtime whose binary is missing)
    "nvidia-container-runtime": lambda w: w.get("nvidia_ctk") is not None
    and w["nvidia_ctk"].get("runtime_binary", True) is not False,
    "kind": lambda w: w.get("kind") is not None,
    "kubectl": lambda w: w.get("kubectl") is not None,
    "helm": lambda w: w.get("helm") is not None,
    # DKMS comes with a packaged driver (nvidia-kernel-dkms, EPEL's dkms): world["dkms"] is its status
    "dkms": lambda w: w.get("dkms") is not None,
    # present unless the world lists them in absent_tools (a minbase Debian has neither curl nor gnupg)
    "curl": lambda w: "curl" not in w.get("absent_tools", []),
    "gpg": lambda w: "gpg" not in w.get("absent_tools", []),
    "sysctl": lambda w: True,
    "install": lambda w: True,
    "tar": lambda w: True,
    "apt-get": _debianish,
    "apt-cache": _debianish,
    "dpkg": _debianish,
    "dpkg-query": _debianish,
    "dpkg-deb": _debianish,
    "update-initramfs": _debianish,
    "ubuntu-drivers": lambda w: "ubuntu" in _os_ids(w),
    "dnf": _rhelish,
    "rpm": _rhelish,
    "dracut": _rhelish,
    # the distributions' python3 (no plain `python`, no pip): gpuwizard/simulate/tools_python.py
    "python3": lambda w: _debianish(w) or _rhelish(w),
}

# the scripts `python3 -m venv DIR` leaves in DIR/bin (world["python_venvs"], tools_python.py)
VENV_TOOLS = ("python", "python3", "pip", "pip3")


def installed_tools(world: dict, root=None) -> list[str]:
    """The tools in bin/. With ``root``: a tool that `install` put at a path (world[tool]["path"], the
    kind/kubectl/helm release binaries in /usr/local/bin) is there only while that file is, so removing the
    file (what undoing the install does) removes the tool."""
    names = list(ALWAYS_PRESENT)
    names += [n for n, pred in TOOL_PRESENCE.items() if pred(world)]
    names += [n for n in world.get("extra_tools", []) if n not in names]
    if root is not None:
        names = [n for n in names if not (isinstance(world.get(n), dict) and world[n].get("path"))
                 or os.path.isfile(host_path(root, world[n]["path"]))]
    return sorted(names)


def pycache_dir(root) -> str:
    return os.path.join(sim_dir(root), "pycache")


def package_parent() -> str:
    """The directory that contains the gpuwizard package (goes on the tools' sys.path)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _packaging_parent() -> str | None:
    """The directory that holds the ``packaging`` distribution (a dependency of gpuwizard.versions):
    the tools run under ``python -S``, without site-packages, so it goes at the end of their sys.path."""
    try:
        import packaging
    except ImportError:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(packaging.__file__)))


def tool_script(root, name: str, python: str | None = None, pkg_parent: str | None = None) -> str:
    python = python or sys.executable
    pkg_parent = pkg_parent or package_parent()
    extra = _packaging_parent()
    # Byte-code goes to a per-sandbox cache (PYTHONDONTWRITEBYTECODE may be set, and the package
    # dir may be read-only): without .pyc files every tool start would recompile tools.py.
    body = ("import sys\nsys.dont_write_bytecode = False\nsys.pycache_prefix = %r\nsys.path.insert(0, %r)\n%s"
            "from gpuwizard.simulate.tools import main\nmain(%r)\n"
            % (pycache_dir(root), pkg_parent, "sys.path.append(%r)\n" % extra if extra and extra != pkg_parent else "",
               str(root)))
    if len(python) + 4 <= _MAX_SHEBANG and " " not in python:
        return "#!%s -S\n# gpuwizard simulated tool: %s\n%s" % (python, name, body)
    # Long or spaced interpreter path: a sh trampoline that keeps the tool name in the env.
    q = python.replace("'", "'\\''")
    code = body.replace("'", "'\\''")
    return "#!/bin/sh\nGPUWIZARD_SIM_TOOL=%s exec '%s' -S -c '%s' \"$0\" \"$@\"\n" % (name, q, code)


def _write_if_changed(path: str, data, mode: int | None = None, atomic: bool = False) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                if mode is not None and (os.stat(path).st_mode & 0o777) != mode:
                    os.chmod(path, mode)
                return
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except IsADirectoryError:
        raise
    if atomic:
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    else:
        with open(path, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(path, mode)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def write_bin(root, world: dict, python: str | None = None, pkg_parent: str | None = None) -> None:
    bdir = bin_dir(root)
    os.makedirs(bdir, exist_ok=True)
    want = installed_tools(world, root)
    for name in want:
        _write_if_changed(os.path.join(bdir, name), tool_script(root, name, python, pkg_parent), 0o755, atomic=True)
    for name in os.listdir(bdir):
        if name not in want and ".tmp." not in name:
            _remove(os.path.join(bdir, name))


def proc_modules(world: dict) -> str:
    loaded = world.get("modules", [])
    lines = []
    for name in loaded:
        size, users = MODULE_INFO.get(name, (16384, []))
        users = [u for u in users if u in loaded]
        deps = "".join(u + "," for u in users) or "-"
        count = len(users) + (1 if name == "nvidia" and gpu_held(world) else 0)  # a process's open /dev/nvidia*
        lines.append("%s %d %d %s Live 0x0000000000000000" % (name, size, count, deps))
    return "".join(line + "\n" for line in lines)


def _cuda_version_json(tk: dict) -> str:
    import json
    full = tk.get("full_version") or tk["version"] + ".0"
    doc = {
        "cuda": {"name": "CUDA SDK", "version": tk.get("sdk_version") or tk["version"] + ".0"},
        "cuda_nvcc": {"name": "CUDA NVCC", "version": full},
    }
    return json.dumps(doc, indent=3) + "\n"


def sync_host_files(root, world: dict, python: str | None = None, pkg_parent: str | None = None) -> None:
    """Rewrite the derived host files and the bin dir from the world."""
    root = str(root)
    host = world["host"]
    P = lambda p: host_path(root, p)  # noqa: E731

    _write_if_changed(P("/etc/os-release"), host["os_release"])
    _write_if_changed(P("/etc/hostname"), host["hostname"] + "\n")
    _write_if_changed(P("/proc/modules"), proc_modules(world))
    _write_if_changed(P("/proc/sys/kernel/random/boot_id"), host["boot_id"] + "\n")
    _write_if_changed(P("/proc/sys/kernel/osrelease"), host["kernel"] + "\n")
    _write_if_changed(P("/proc/version"), "Linux version %s (%s) %s\n"
                      % (host["kernel"], host.get("kernel_compiler", "buildd@lcy02-amd64-001"),
                         host.get("kernel_build", "#1 SMP")))

    drv = world.get("driver")
    # a module whose driver package was removed stays loaded until it is unloaded or the host boots
    # (world["stale_module"]: its version, as the kernel still reports it)
    stale = world.get("stale_module") or {}
    v = (drv or {}).get("loaded_version") or stale.get("version")
    if driver_loaded(world) and v:
        built = (drv if drv and drv.get("loaded_version") else stale).get("build_date") or "Thu Oct 10 12:29:05 UTC 2024"
        _write_if_changed(P("/proc/driver/nvidia/version"),
                          "NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  %s\nGCC version:  %s\n"
                          % (v, built, host.get("gcc", "gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)")))
        _write_if_changed(P("/sys/module/nvidia/version"), v + "\n")
    else:
        # an unloaded module's /proc and /sys entries go (the kernel removes them); the directories the
        # sandbox needed for them go too when nothing else is there
        for f in ("/proc/driver/nvidia/version", "/sys/module/nvidia/version"):
            _remove(P(f))
        for d in ("/proc/driver/nvidia", "/proc/driver", "/sys/module/nvidia", "/sys/module"):
            _rmdir(P(d))

    for dev in world.get("pci", []):
        d = P("/sys/bus/pci/devices/" + pci_sysfs_name(dev["slot"]))
        _write_if_changed(os.path.join(d, "vendor"), "0x%s\n" % dev["vendor"])
        _write_if_changed(os.path.join(d, "device"), "0x%s\n" % dev["device"])
        _write_if_changed(os.path.join(d, "class"), "0x%s%s\n" % (dev["class"], dev.get("prog_if", "00")))
        _write_if_changed(os.path.join(d, "revision"), "0x%s\n" % dev.get("rev", "00"))
        if dev.get("subsystem"):
            sv, sd = dev["subsystem"].split(":")
            _write_if_changed(os.path.join(d, "subsystem_vendor"), "0x%s\n" % sv)
            _write_if_changed(os.path.join(d, "subsystem_device"), "0x%s\n" % sd)

    if host.get("efi"):
        _write_if_changed(P("/sys/firmware/efi/efivars/" + SECUREBOOT_VAR),
                          bytes([6, 0, 0, 0, 1 if host.get("secure_boot") else 0]))
    else:
        _remove(P("/sys/firmware/efi/efivars/" + SECUREBOOT_VAR))

    tks = world.get("cuda_toolkits", [])
    for tk in tks:
        base = P("/usr/local/cuda-%s" % tk["version"])
        _write_if_changed(os.path.join(base, "bin", "nvcc"), tool_script(root, "nvcc", python, pkg_parent),
                          0o755, atomic=True)
        _write_if_changed(os.path.join(base, "version.json"), _cuda_version_json(tk))
        os.makedirs(os.path.join(base, "lib64"), exist_ok=True)
    if tks:
        link = P("/usr/local/cuda")
        target = "cuda-%s" % _latest_toolkit(tks)["version"]
        if os.path.islink(link):
            if os.readlink(link) != target:
                os.remove(link)
        if not os.path.lexists(link):
            os.symlink(target, link)
    _remove_gone_toolkits(root, tks)

    for venv in sorted(world.get("python_venvs") or {}):
        vdir = P(venv)
        if os.path.isdir(vdir):  # a venv removed by hand stays removed
            for name in VENV_TOOLS:
                _write_if_changed(os.path.join(vdir, "bin", name), tool_script(root, name, python, pkg_parent),
                                  0o755, atomic=True)

    # systemd as PID 1 makes /run/systemd/system (what sd_booted(3) checks); host.init: "none" has none
    if host.get("init", "systemd") == "systemd":
        os.makedirs(P("/run/systemd/system"), exist_ok=True)
    elif os.path.isdir(P("/run/systemd/system")):
        os.rmdir(P("/run/systemd/system"))

    if host.get("reboot_required"):
        _write_if_changed(P("/var/run/reboot-required"), "*** System restart required ***\n")
    else:
        _remove(P("/var/run/reboot-required"))

    write_bin(root, world, python, pkg_parent)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _remove_gone_toolkits(root, tks: list) -> None:
    """The files this sync wrote for a toolkit the world no longer has (its package was removed): bin/nvcc,
    version.json, lib64/ and the directories, and the /usr/local/cuda link when it names no toolkit left.
    Only what the simulator wrote is touched (an nvcc that is not its script stays)."""
    local = host_path(root, "/usr/local")
    try:
        names = os.listdir(local)
    except OSError:
        return
    keep = {"cuda-%s" % t["version"] for t in tks}
    for n in names:
        base = os.path.join(local, n)
        if not n.startswith("cuda-") or n in keep or os.path.islink(base) or not os.path.isdir(base):
            continue
        nvcc = os.path.join(base, "bin", "nvcc")
        try:
            with open(nvcc, encoding="utf-8", errors="replace") as fh:
                head = fh.read(400)
            ours = "gpuwizard simulated tool: nvcc" in head or "GPUWIZARD_SIM_TOOL=nvcc" in head
        except OSError:
            ours = False
        if not ours:
            continue
        for f in (nvcc, os.path.join(base, "version.json")):
            _remove(f)
        for d in (os.path.join(base, "bin"), os.path.join(base, "lib64"), base):
            _rmdir(d)
    link = os.path.join(local, "cuda")
    if os.path.islink(link) and os.readlink(link).startswith("cuda-") and os.readlink(link) not in keep:
        os.remove(link)


def _latest_toolkit(tks: list) -> dict:
    if len(tks) == 1:  # the usual case, on every world sync: no need to load packaging (~9 ms)
        return tks[0]
    from gpuwizard.versions import key  # lazy: packaging brings re and typing, and most tools never compare
    return max(tks, key=lambda t: key(t["version"]))
