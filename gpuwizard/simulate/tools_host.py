"""Simulated host-layer tools: apt-get, dpkg, ubuntu-drivers, dnf, curl, gpg, openssl, sh (the NVIDIA
driver and CUDA .run installers), update-initramfs, dracut, modprobe, nvidia-ctk runtime configure,
mokutil --import/--test-key and docker run --gpus.

Imported lazily (``TOOLS["apt-get"] = "gpuwizard.simulate.tools_host:apt_get"``) so tools that do not
need it keep their fast start. Built-in modules only.

Outputs are modelled on real ones (sources):
* apt-get install: the transcript in elementary/settings-system#333 (``Reading package lists... Done``,
  ``The following NEW packages will be installed:``, ``Setting up … (…) ...``); ``E: Unable to locate
  package`` and ``NO_PUBKEY`` from apt itself.
* ubuntu-drivers devices: canonical/ubuntu-drivers-common#48 (``== /sys/devices/... ==``,
  ``modalias :``, ``driver   : nvidia-driver-450-server - distro non-free recommended``).
* nvidia-installer: the log in NVIDIA/gpu-operator#129 and canonical/microk8s-core-addons#44
  (``Welcome to the NVIDIA Software Installer for Unix/Linux``, ``Building kernel modules``,
  ``Kernel module compilation complete.``) and nix-community/nixGL#148 (``Verifying archive
  integrity... OK``, ``Uncompressing NVIDIA Accelerated Graphics Driver for Linux-x86_64 …``).
* CUDA runfile summary: the seed recipe (seed/000_670c8c4a27872b86.txt).
* nvidia-ctk runtime configure: daemon.json as in the seed and NVIDIA/nvidia-container-toolkit#378
  (4-space indent, ``"args": []``, ``"path": "nvidia-container-runtime"``); log lines
  ``time="…" level=info msg="Wrote updated config to …"`` as v1.19.1 prints them to a pipe (logrus text
  format; ../shared/upstream/nvidia-ctk/v1.19.1-configure-session.txt).
* docker --gpus without the toolkit: ``could not select device driver "" with capabilities: [[gpu]]``;
  image newer than the driver: ``unsatisfied condition: cuda>=X`` (NVIDIA/nvidia-docker#1442).

Reversal (what undoing an install runs), each modelled on the real tool (the functions name their sources):
apt-get remove|purge|autoremove [--purge] [--autoremove] (apt 2.x apt-private sources, checked against a real
apt 2.6.1), dpkg -r|-P, dpkg-query -W -f (a real dpkg-query 1.21), dnf remove (dnf 4 and dnf5 sources),
rpm -qa [--qf], modprobe -r and rmmod (kmod tools/modprobe.c, rmmod.c). What an install changed is kept in
world["pkgdb"] (see "the package database" below) and undone by the removal, so install-then-remove leaves
the sandbox's files as they were; a loaded nvidia module outlives its package (world["stale_module"]) until
it is unloaded or the host boots.
"""
import os
import sys
from typing import Any

from gpuwizard.simulate import world as W

# ---------------------------------------------------------------------------------------------
# the simulated world's catalogue (what the archives and NVIDIA's download sites hold)

# driver branch -> (full version, the CUDA version its nvidia-smi reports)
DRIVER_BRANCHES = {
    "535": ("535.216.01", "12.2"),
    "550": ("550.127.05", "12.4"),
    "560": ("560.35.03", "12.6"),
    "565": ("565.57.01", "12.7"),
    "570": ("570.86.15", "12.8"),
}
RECOMMENDED_BRANCH = "565"
# CUDA X.Y -> (nvcc full version, SDK version)
CUDA_RELEASES = {
    "12.2": ("12.2.140", "12.2.2"),
    "12.4": ("12.4.131", "12.4.1"),
    "12.6": ("12.6.77", "12.6.2"),
    "12.8": ("12.8.93", "12.8.1"),
}
# nvidia-container-toolkit's current release (../shared/upstream/nvidia-ctk/v1.19.1-configure-session.txt);
# a test that needs an older toolkit sets nvidia_ctk.version (or the package) itself
CTK_VERSION = "1.19.1"
CTK_FPR = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
CUDA_FPR = "EB693B3035CD5710E231E123A4B469963BF863CC"
KEY_MARK = "gpuwizard-sim-key "
KEYRING_MARK = b"\x99\x02\x0dgpuwizard-sim-keyring "
DEB_MARK = "gpuwizard-sim-deb\n"


def _p(ctx, path):
    return W.host_path(ctx.root, path)


def _unmap(ctx, real):
    """A real path under the sandbox root -> the host path it stands for (else unchanged)."""
    root = str(ctx.root).rstrip("/")
    real = os.path.abspath(real)
    if real == root or real.startswith(root + "/"):
        return "/" + real[len(root):].lstrip("/")
    return real


def _read(path, binary=False):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _write(path, data, mode=0o644):
    # A simulated tool must never change the real machine: everything it writes is inside the
    # sandbox (the wizard hands commands root-mapped paths, so this holds for every real call).
    root = os.path.realpath(os.environ.get("GPUWIZARD_SIM_ROOT") or "/nonexistent-sandbox")
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        sys.stderr.write("gpuwizard-sim: refusing to write %s: outside the sandbox %s\n" % (path, root))
        raise SystemExit(2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def _os_ids(world):
    ids = set()
    for line in world["host"].get("os_release", "").splitlines():
        if line.startswith(("ID=", "ID_LIKE=")):
            ids.update(line.split("=", 1)[1].strip('"').split())
    return ids


def debianish(world):
    return bool(_os_ids(world) & {"debian", "ubuntu"})


def rhelish(world):
    return bool(_os_ids(world) & {"rhel", "fedora", "centos", "rocky", "almalinux"})


def ubuntu(world):
    return "ubuntu" in _os_ids(world)


def _distro_tag(world):
    """ubuntu2204 / debian12 / rhel9, as NVIDIA's repository paths spell it."""
    vid = ""
    osid = ""
    for line in world["host"].get("os_release", "").splitlines():
        if line.startswith("VERSION_ID="):
            vid = line.split("=", 1)[1].strip('"')
        if line.startswith("ID="):
            osid = line.split("=", 1)[1].strip('"')
    if osid in ("ubuntu",):
        return "ubuntu" + vid.replace(".", "")
    if osid == "debian":
        return "debian" + vid.split(".")[0]
    return "rhel" + vid.split(".")[0]


def _kernel(world):
    return world["host"]["kernel"]


def headers_present(ctx):
    return os.path.exists(_p(ctx, "/lib/modules/%s/build" % _kernel(ctx.world)))


# ---------------------------------------------------------------------------------------------
# world effects shared by apt-get, dnf and the installers

def _load_nvidia(world, root):
    """What loading the freshly installed module does; returns an error string or None."""
    drv = world.get("driver")
    host = world["host"]
    if drv is None:
        return "FATAL: Module nvidia not found in directory /lib/modules/%s" % host["kernel"]
    if W.driver_loaded(world):
        return None  # an older module stays loaded: nvidia-smi reports a version mismatch
    built = world.get("dkms")
    if built is not None and host["kernel"] not in [e["kernel"] for e in built]:
        # ../shared/upstream/debian-12/captures/modprobe-nvidia.txt (DKMS built for another kernel)
        name = built[0]["module"] if built else "nvidia"
        return ("FATAL: Module %s not found in directory /lib/modules/%s\nmodprobe: ERROR: could not insert 'nvidia': "
                "Invalid argument" % (name, host["kernel"]))
    if "nouveau" in world.get("modules", []):
        return "ERROR: could not insert 'nvidia': No such device"
    if host.get("secure_boot") and (not drv.get("signed") or
                                    (drv.get("signing_key") and
                                     drv["signing_key"] not in host.get("mok_enrolled", []))):
        return "ERROR: could not insert 'nvidia': Key was rejected by service"
    world["modules"] = list(world.get("modules", [])) + list(W.NVIDIA_MODULES)
    drv["loaded_version"] = drv["version"]
    return None


def _dkms_build(ctx, world, version):
    """DKMS builds the module of a packaged driver for every kernel with headers (/lib/modules/<k>/build
    in the root), except those in host.dkms_unbuildable (kernels the module source does not build for:
    Debian 12's nvidia-driver says "Building the kernel module has been tested up to Linux 6.16").
    world["dkms"] is what `dkms status` lists (../shared/upstream/debian-12/apt-get-install-nvidia-driver.log:
    "Building for 6.1.0-57-amd64", then captures/dkms-status.txt)."""
    skip = set(world["host"].get("dkms_unbuildable") or [])
    modules = os.path.join(ctx.root, "lib", "modules")
    kernels = sorted(k for k in (os.listdir(modules) if os.path.isdir(modules) else [])
                     if os.path.exists(os.path.join(modules, k, "build")) and k not in skip)
    name = "nvidia-current" if debianish(world) and not ubuntu(world) else "nvidia"
    world["dkms"] = [{"module": name, "version": version, "kernel": k,
                      "arch": world["host"].get("arch", "x86_64")} for k in kernels]


def dkms(ctx) -> int:
    """`dkms status` only, in DKMS 3.x's format: ``nvidia-current/535.309.01, 6.1.0-57-amd64, x86_64:
    installed`` (../shared/upstream/debian-12/captures/dkms-status.txt)."""
    if ctx.args != ["status"]:
        return ctx.unsupported("only `dkms status` is")
    for e in ctx.world.get("dkms") or []:
        ctx.out("%s/%s, %s, %s: installed" % (e["module"], e["version"], e["kernel"], e["arch"]))
    return 0


def _install_driver(world, version, cuda, kind, signing_key=None, module=None):
    old = world.get("driver") or {}
    # the module loaded now stays (an older one, or one whose package was removed: world["stale_module"])
    stale = world.pop("stale_module", None) or {}
    loaded = (old.get("loaded_version") or stale.get("version")) if W.driver_loaded(world) else None
    world["driver"] = {
        "version": version, "cuda_version": cuda, "kind": kind,
        "signed": bool(signing_key), "loaded_version": loaded,
    }
    if signing_key:
        world["driver"]["signing_key"] = signing_key
    if module:
        world["driver"]["module"] = module


def _add_toolkit(world, xy):
    full, sdk = CUDA_RELEASES[xy]
    tks = [t for t in world.setdefault("cuda_toolkits", []) if t["version"] != xy]
    tks.append({"version": xy, "full_version": full, "sdk_version": sdk, "on_path": False,
                "built_on": "Thu_Sep_12_02:18:05_PDT_2024", "copyright_year": 2024,
                "build": "cuda_%s.r%s/compiler.34841621_0" % (xy, xy)})
    world["cuda_toolkits"] = tks


def _mok_key(ctx, der_path):
    data = _read(der_path, binary=True) or b""
    if data.startswith(b"gpuwizard-sim-cert:"):
        return data.split(b":", 1)[1].strip().decode()
    return None


# ---------------------------------------------------------------------------------------------
# packages

# Debian 12's archive as apt-cache showed it on a real bookworm root with main contrib non-free
# non-free-firmware (../shared/upstream/debian-12/apt-cache.txt): name -> (candidate, the policy's
# source line of that candidate). One NVIDIA driver; the open kernel module only at an older version;
# headers only for the archive's current kernel ABI (linux-headers-amd64 6.1.192-3 depends on it).
DEBIAN12_SECURITY = "http://deb.debian.org/debian-security bookworm-security/%s amd64 Packages"
DEBIAN12_MAIN = "http://deb.debian.org/debian bookworm/%s amd64 Packages"
DEBIAN12_KERNEL = "6.1.0-57-amd64"
DEBIAN12_ARCHIVE = {
    "nvidia-driver": ("535.309.01-0+deb12u1", DEBIAN12_SECURITY % "non-free"),
    "nvidia-kernel-dkms": ("535.309.01-0+deb12u1", DEBIAN12_SECURITY % "non-free"),
    "nvidia-open-kernel-dkms": ("535.261.03-1", DEBIAN12_MAIN % "contrib"),
    "nvidia-smi": ("535.309.01-0+deb12u1", DEBIAN12_SECURITY % "non-free"),
    "nvidia-cuda-toolkit": ("11.8.89~11.8.0-5~deb12u1", DEBIAN12_MAIN % "non-free"),
    "docker.io": ("20.10.24+dfsg1-1+deb12u1+b6", DEBIAN12_MAIN % "main"),
    "containerd": ("1.6.20~ds1-1+deb12u3", DEBIAN12_MAIN % "main"),
    "runc": ("1.1.5+ds1-1+deb12u1", DEBIAN12_MAIN % "main"),
    "dkms": ("3.0.10-8+deb12u1", DEBIAN12_MAIN % "main"),
    "linux-headers-amd64": ("6.1.192-3", DEBIAN12_SECURITY % "main"),
    "linux-headers-%s" % DEBIAN12_KERNEL: ("6.1.192-3", DEBIAN12_SECURITY % "main"),
    "mokutil": ("0.6.0-2", DEBIAN12_MAIN % "main"),
    "curl": ("7.88.1-10+deb12u15", DEBIAN12_MAIN % "main"),
    "gnupg": ("2.2.40-1.1+deb12u2", DEBIAN12_MAIN % "main"),
    "pciutils": ("1:3.9.0-4", DEBIAN12_MAIN % "main"),
    "kmod": ("30+20221128-1", DEBIAN12_MAIN % "main"),
    "python3-venv": ("3.11.2-1+b1", DEBIAN12_MAIN % "main"),
}
UBUNTU_SOURCE = "http://archive.ubuntu.com/ubuntu jammy-updates/restricted amd64 Packages"
REPO_SOURCE = {"cuda": "https://developer.download.nvidia.com/compute/cuda/repos/%s/x86_64  Packages",
               "nvidia-container-toolkit": "https://nvidia.github.io/libnvidia-container/stable/deb/amd64  Packages"}


def debian(world):
    return debianish(world) and not ubuntu(world)


def _catalogue(ctx):
    """name -> (version, repository or None for the distribution's archive)."""
    w = ctx.world
    cat = {}
    k = _kernel(w)
    if debian(w):
        cat.update((name, (ver, None)) for name, (ver, _src) in DEBIAN12_ARCHIVE.items())
        for xy in CUDA_RELEASES:
            cat["cuda-toolkit-%s" % xy.replace(".", "-")] = ("%s-1" % CUDA_RELEASES[xy][1], "cuda")
        cat["nvidia-container-toolkit"] = ("%s-1" % CTK_VERSION, "nvidia-container-toolkit")
    elif debianish(w):
        cat["linux-headers-%s" % k] = (k.split("-generic")[0] + ".1", None)
        release = _os_value(w, "VERSION_ID") or "22.04"  # Ubuntu's SRU revision: 565.57.01-0ubuntu0.24.04.1 on noble
        for br, (full, _cuda) in DRIVER_BRANCHES.items():
            cat["nvidia-driver-%s" % br] = ("%s-0ubuntu0.%s.1" % (full, release), None)
        cat["docker.io"] = ("24.0.7-0ubuntu2~22.04.1", None)
        cat["dkms"] = ("2.8.7-2ubuntu2.2", None)
        for xy in CUDA_RELEASES:
            cat["cuda-toolkit-%s" % xy.replace(".", "-")] = ("%s-1" % CUDA_RELEASES[xy][1], "cuda")
        cat["nvidia-container-toolkit"] = ("%s-1" % CTK_VERSION, "nvidia-container-toolkit")
        cat["python3-venv"] = ("3.10.6-1~22.04.1", None)
    else:
        # NVIDIA's CUDA repository for rhel8/rhel9 (cuda-rhel9.repo) carries the nvidia-driver module with the
        # streams latest, latest-dkms, open-dkms and per branch <br>, <br>-dkms, <br>-open (NVIDIA's driver
        # installation guide; NVIDIA/yum-packaging-dkms-nvidia); rhel10's has no module streams, only the
        # packages nvidia-open and cuda-drivers. The distribution's BaseOS/AppStream has the running kernel's
        # kernel-devel and kernel-headers, Rocky/Alma's extras has epel-release (EPEL: dkms).
        cat["kernel-devel-%s" % k] = (k, None)
        cat["kernel-headers-%s" % k] = (k, None)
        cat["epel-release"] = ("%s-7.el%s" % (_rhel_major(w), _rhel_major(w)), None)
        newest = max(DRIVER_BRANCHES, key=int)
        if _rhel_major(w) < 10:
            for stream in ("latest", "latest-dkms", "open-dkms"):
                cat["nvidia-driver:%s" % stream] = (DRIVER_BRANCHES[newest][0], "cuda")
            for br, (full, _cuda) in DRIVER_BRANCHES.items():
                for suffix in ("", "-dkms", "-open"):
                    cat["nvidia-driver:%s%s" % (br, suffix)] = (full, "cuda")
        for name in ("nvidia-open", "cuda-drivers"):
            cat[name] = (DRIVER_BRANCHES[_locked_branch(w) or newest][0], "cuda")
        for xy in CUDA_RELEASES:
            cat["cuda-toolkit-%s" % xy.replace(".", "-")] = (CUDA_RELEASES[xy][1], "cuda")
        cat["nvidia-container-toolkit"] = (CTK_VERSION, "nvidia-container-toolkit")
    return cat


def _os_value(world, key):
    for line in world["host"].get("os_release", "").splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1].strip('"')
    return None


def _rhel_major(world):
    for line in world["host"].get("os_release", "").splitlines():
        if line.startswith("VERSION_ID="):
            head = line.split("=", 1)[1].strip('"').split(".")[0]
            return int(head) if head.isdigit() else 0
    return 0


def _locked_branch(world):
    """The branch a `dnf versionlock add '*nvidia*<br>*'` holds the driver at (None: no lock)."""
    for pattern in world.get("dnf_versionlock", []):
        for br in DRIVER_BRANCHES:
            if br in pattern:
                return br
    return None


def _new_dirs(ctx, path):
    """The directories above host path ``path`` that do not exist yet (deepest first): what writing it creates."""
    out = []
    d = os.path.dirname(path)
    while d not in ("", "/") and not os.path.isdir(_p(ctx, d)):
        out.append(d)
        d = os.path.dirname(d)
    return out


def _apply_package(ctx, world, name, undo=None):
    """Effects of installing a package. Returns an error text (dpkg failed) or None. ``undo`` (a list)
    gets the records of what changed, for :func:`_reverse` (a record with an ``owner`` belongs to that
    dependency: containerd, which docker.io brings, owns the containerd it sets up)."""
    root = ctx.root
    k = _kernel(world)
    undo = [] if undo is None else undo
    if name.startswith(("linux-headers-", "kernel-devel-")):
        src = "/usr/src/linux-headers-%s" % k
        link = "/lib/modules/%s/build" % k
        dirs = _new_dirs(ctx, src + "/Makefile") + _new_dirs(ctx, link)
        made = {"kind": "files", "files": [], "links": [], "dirs": dirs}
        if not os.path.exists(_p(ctx, src + "/Makefile")):
            made["files"].append(src + "/Makefile")
        _write(_p(ctx, src + "/Makefile"), "# simulated kernel headers for %s\n" % k)
        os.makedirs(os.path.dirname(_p(ctx, link)), exist_ok=True)
        if not os.path.lexists(_p(ctx, link)):
            os.symlink(_p(ctx, src), _p(ctx, link))
            made["links"].append(link)
        undo.append(made)
        return None
    if name == "nvidia-open-kernel-dkms":
        if world.get("driver"):
            undo.append({"kind": "module_type", "prior": world["driver"].get("module")})
            world["driver"]["module"] = "open"
        return None
    if name.startswith("nvidia-driver"):
        module = None
        if name == "nvidia-driver":  # Debian's one driver (nvidia-smi of a 535 driver reports CUDA 12.2)
            full, cuda = DEBIAN12_ARCHIVE[name][0].split("-")[0], "12.2"
        elif name.startswith("nvidia-driver:"):  # a module stream of NVIDIA's rhel8/rhel9 repository
            stream = name.split(":", 1)[1]
            br = stream.split("-")[0]
            br = max(DRIVER_BRANCHES, key=int) if br in ("latest", "open") else br
            full, cuda = DRIVER_BRANCHES[br]
            module = "open" if stream == "open-dkms" or stream.endswith("-open") else None
        else:
            br = name.split("-")[2].split(":")[-1] if name.startswith("nvidia-driver-") else name.split(":")[1].split("-")[0]
            full, cuda = DRIVER_BRANCHES[br]
        if not os.path.exists(_p(ctx, "/lib/modules/%s/build" % k)):
            return ("Error! Your kernel headers for kernel %s cannot be found at /lib/modules/%s/build or "
                    "/lib/modules/%s/source.\nPlease install the linux-headers-%s package or use the --kernelsourcedir "
                    "option to tell DKMS where it's located." % (k, k, k, k))
        key = None
        if world["host"].get("secure_boot"):
            key = _mok_key(ctx, _p(ctx, _dkms_certificate(world)))
        if world.get("dkms") is None:
            undo.append({"kind": "dkms_tool", "owner": "dkms"})
        _install_driver(world, full, cuda, "apt" if debianish(world) else "dnf", signing_key=key, module=module)
        _dkms_build(ctx, world, full)
        undo.append({"kind": "driver", "version": full})
        return None
    if name in ("nvidia-open", "cuda-drivers"):  # NVIDIA's rhel10 packages (any rhel after a module enable)
        if not os.path.exists(_p(ctx, "/lib/modules/%s/build" % k)):
            return ("Error! Your kernel headers for kernel %s cannot be found at /lib/modules/%s/build or "
                    "/lib/modules/%s/source." % (k, k, k))
        full, cuda = DRIVER_BRANCHES[_locked_branch(world) or max(DRIVER_BRANCHES, key=int)]
        key = _mok_key(ctx, _p(ctx, _dkms_certificate(world))) if world["host"].get("secure_boot") else None
        if world.get("dkms") is None:
            undo.append({"kind": "dkms_tool", "owner": "dkms"})
        _install_driver(world, full, cuda, "dnf", signing_key=key, module="open" if name == "nvidia-open" else None)
        _dkms_build(ctx, world, full)
        undo.append({"kind": "driver", "version": full})
        return None
    if name == "nvidia-container-toolkit":
        undo.append({"kind": "key", "key": "nvidia_ctk", "prior": world.get("nvidia_ctk")})
        world["nvidia_ctk"] = {"version": CTK_VERSION, "commit": "a470818ba7d9166be282cd0039dd2fc9b0a34d73"}
        return None
    if name == "docker.io":
        undo.append({"kind": "key", "key": "docker", "prior": world.get("docker")})
        world["docker"] = {"version": "24.0.7", "build": "24.0.7-0ubuntu2~22.04.1", "api_version": "1.43",
                           "go_version": "go1.21.1", "runc_version": "1.1.12-0ubuntu2~22.04.1",
                           "built": "Wed Apr 17 20:08:25 2024", "daemon_json": None}
        svcs = world.setdefault("services", {})
        # containerd comes with docker.io as its dependency (Depends: containerd, runc: `apt-cache show docker.io`);
        # a containerd the host already had stays when docker.io goes
        if world.get("containerd") is None:
            undo.append({"kind": "key", "key": "containerd", "prior": None, "owner": "containerd"})
            world["containerd"] = {"version": "1.7.12", "package": "github.com/containerd/containerd", "revision": ""}
        if "containerd" not in svcs:
            undo.append({"kind": "service", "name": "containerd", "prior": None, "owner": "containerd"})
        undo.append({"kind": "service", "name": "docker", "prior": svcs.get("docker")})
        svcs["docker"] = {"enabled": True, "active": True, "description": "Docker Application Container Engine"}
        svcs.setdefault("containerd", {"enabled": True, "active": True, "description": "containerd container runtime"})
        W.docker_reload(root, world)
        return None
    if name.startswith("cuda-toolkit-"):
        xy = name[len("cuda-toolkit-"):].replace("-", ".")
        prior = next((t for t in world.get("cuda_toolkits", []) if t["version"] == xy), None)
        # the host sync writes /usr/local/cuda-X.Y (and the /usr/local/cuda link): the directories above it
        # that it creates go again with the toolkit
        undo.append({"kind": "toolkit", "version": xy, "prior": prior,
                     "dirs": [d for d in _new_dirs(ctx, "/usr/local/cuda-%s/x" % xy) if d != "/usr/local/cuda-%s" % xy]})
        _add_toolkit(world, xy)
        return None
    return None


def _dkms_certificate(world):
    """The certificate of the key this distribution's DKMS signs modules with: Ubuntu's dkms is patched
    for shim-signed's MOK; Debian's (upstream's) uses /var/lib/dkms/mok.pub (real-world.md, Debian 12)."""
    return "/var/lib/shim-signed/mok/MOK.der" if ubuntu(world) else "/var/lib/dkms/mok.pub"


# ---------------------------------------------------------------------------------------------
# the package database: what an install brought with it, and what removing it takes away
#
# world["pkgdb"] (beside world["packages"], name -> version of every installed package):
#   auto:         names installed as dependencies (`apt-mark showauto`; dnf's "dependency" reason)
#   deps:         name -> the dependencies it declares (those the simulator models)
#   undo:         name -> records of what installing it changed in the world and the sandbox
#   conffiles:    name -> {"files": [...], "dirs": [...]}: its configuration files (dpkg keeps them on
#                 `remove` and deletes them on `purge`: dpkg(1) --remove / --purge)
#   config_files: name -> version of a package removed but not purged (dpkg's "rc" state, "deinstall ok
#                 config-files": dpkg-query(1) db:Status-Status)
#
# Dependencies are a subset of what the real packages declare, the ones that carry something the world
# models: docker.io Depends containerd, runc (`apt-cache show docker.io` on Debian 12; Ubuntu's is the same);
# Debian's nvidia-driver is a metapackage that Depends nvidia-driver-libs, nvidia-driver-bin, nvidia-alternative,
# nvidia-kernel-dkms, nvidia-support (../shared/upstream/debian-12/apt-cache.txt), nvidia-kernel-dkms Depends
# dkms; Ubuntu's nvidia-driver-<br> is a metapackage too (nvidia-dkms-<br>, nvidia-kernel-common-<br>,
# nvidia-utils-<br>, libnvidia-compute-<br>: the package names of NVIDIA's driver installation guide);
# nvidia-container-toolkit Depends nvidia-container-toolkit-base, libnvidia-container-tools (NVIDIA/
# nvidia-container-toolkit packaging/debian/control; nvidia-ctk and nvidia-container-runtime are in -base:
# nvidia-container-toolkit-base.install); cuda-toolkit-X-Y is NVIDIA's metapackage over cuda-compiler-X-Y,
# cuda-nvcc-X-Y, cuda-libraries-X-Y and the cuda-toolkit-*-config-common packages.
# What a metapackage's install changes belongs to the dependency that ships it (the "carrier": nvidia-dkms-<br>
# for the driver, cuda-nvcc-X-Y for the toolkit, nvidia-container-toolkit-base for nvidia-ctk), so that, as on a
# real host, `apt-get remove <metapackage>` leaves the driver, toolkit or nvidia-ctk in place and lists the
# dependencies as "automatically installed and no longer required" until `apt-get autoremove` (or
# `remove --autoremove`) takes them. dnf removes unused dependencies with the package (dnf.conf(5)
# clean_requirements_on_remove, default True) and dependent packages with a dependency, so there the
# package itself carries its changes.

def _pkg_deps(world, name, mgr):
    """The dependencies of package ``name`` that the simulator models (see above)."""
    if mgr == "apt":
        if name == "docker.io":
            return ["containerd", "runc"]
        if name.startswith("nvidia-driver-") and name[14:].isdigit():
            br = name[14:]
            return ["nvidia-dkms-%s" % br, "nvidia-kernel-common-%s" % br, "nvidia-utils-%s" % br,
                    "libnvidia-compute-%s" % br, "dkms"]
        if name == "nvidia-driver":
            return ["nvidia-kernel-dkms", "nvidia-driver-bin", "nvidia-driver-libs", "nvidia-alternative",
                    "nvidia-support", "dkms"]
        if name in ("nvidia-kernel-dkms", "nvidia-open-kernel-dkms"):
            return ["dkms"]
    else:
        # NVIDIA's rhel repositories: a driver stream or package brings the kmod (DKMS) package, the userspace
        # (nvidia-driver-cuda has nvidia-smi) and EPEL's dkms
        opened = name in ("nvidia-open",) or name.endswith(("-open", ":open-dkms"))
        kmod = "kmod-nvidia-open-dkms" if opened else "kmod-nvidia-latest-dkms"
        if name.startswith("nvidia-driver:"):
            return [kmod, "nvidia-driver-cuda", "nvidia-driver-libs", "nvidia-kmod-common", "dkms"]
        if name in ("nvidia-open", "cuda-drivers"):
            return [kmod, "nvidia-driver", "nvidia-driver-cuda", "nvidia-driver-libs", "nvidia-kmod-common", "dkms"]
    if name.startswith("cuda-toolkit-") and name[13:].replace("-", "").isdigit():
        xy = name[13:]
        return ["cuda-compiler-%s" % xy, "cuda-nvcc-%s" % xy, "cuda-libraries-%s" % xy,
                "cuda-toolkit-%s-config-common" % xy, "cuda-toolkit-%s-config-common" % xy.split("-")[0],
                "cuda-toolkit-config-common"]
    if name == "nvidia-container-toolkit":
        return ["nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"]
    return []


def _carrier(name, mgr):
    """The dependency that ships what an apt metapackage's install changes (None: the package itself)."""
    if mgr != "apt":
        return None
    if name.startswith("nvidia-driver-") and name[14:].isdigit():
        return "nvidia-dkms-" + name[14:]
    if name == "nvidia-driver":
        return "nvidia-kernel-dkms"
    if name.startswith("cuda-toolkit-") and name[13:].replace("-", "").isdigit():
        return "cuda-nvcc-" + name[13:]
    if name == "nvidia-container-toolkit":
        return "nvidia-container-toolkit-base"
    return None


def _provided(world, dep):
    """A dependency the host has although no package of the simulator's records it (the profile's own)."""
    if dep == "containerd":
        return world.get("containerd") is not None
    if dep == "runc":
        return world.get("containerd") is not None or world.get("docker") is not None
    if dep == "dkms":
        return world.get("dkms") is not None
    return False


def _dep_version(world, dep, top_version, mgr):
    if mgr == "apt" and debian(world) and dep in DEBIAN12_ARCHIVE:
        return DEBIAN12_ARCHIVE[dep][0]
    ubuntu_versions = {"containerd": "1.7.12-0ubuntu2~22.04.1", "runc": "1.1.12-0ubuntu2~22.04.1",
                       "dkms": "2.8.7-2ubuntu2.2"}
    if mgr == "apt" and dep in ubuntu_versions:
        return ubuntu_versions[dep]
    if mgr != "apt" and dep == "dkms":  # EPEL's
        return "3.1.4-1.el%d" % _rhel_major(world)
    return top_version


def _pkgdb(world):
    db = world.setdefault("pkgdb", {})
    for k, empty in (("auto", list), ("deps", dict), ("undo", dict), ("conffiles", dict), ("config_files", dict)):
        if not isinstance(db.get(k), empty):
            db[k] = empty()
    return db


def _record_install(world, name, version, deps, new_deps, undo, mgr, dep_versions):
    """Put package ``name`` (and the dependencies it brought) into the database, with its undo records."""
    db = _pkgdb(world)
    pk = world.setdefault("packages", {})
    pk[name] = version
    db["config_files"].pop(name, None)
    if deps:
        db["deps"][name] = list(deps)
    for d in new_deps:
        if d not in pk:
            pk[d] = dep_versions[d]
            db["config_files"].pop(d, None)
            if d not in db["auto"]:
                db["auto"].append(d)
    carrier = _carrier(name, mgr)
    owner_of_rest = carrier if carrier in new_deps else name
    for rec in undo:
        owner = rec.pop("owner", None)
        db["undo"].setdefault(owner if owner in new_deps else owner_of_rest, []).append(rec)


def _reverse(ctx, world, rec, later):
    """Undo one record of an install (``later`` gets directories to remove once the world is synced)."""
    kind = rec.get("kind")
    if kind == "files":
        for f in list(rec.get("files", [])) + list(rec.get("links", [])):
            real = _p(ctx, f)
            if os.path.islink(real) or os.path.isfile(real):
                os.remove(real)
        later.extend(rec.get("dirs", []))
    elif kind == "key":
        world[rec["key"]] = rec.get("prior")
    elif kind == "service":
        svcs = world.setdefault("services", {})
        if rec.get("prior") is None:
            svcs.pop(rec["name"], None)
        else:
            svcs[rec["name"]] = rec["prior"]
    elif kind == "driver":
        drv = world.get("driver")
        if drv and drv.get("version") == rec["version"] and drv.get("kind") in ("apt", "dnf"):
            # the package's prerm runs `dkms remove`: the module files go, but a loaded module stays in the
            # kernel until it is unloaded (modprobe -r / rmmod) or the host reboots: /proc/driver/nvidia/version
            # still answers, nvidia-smi (userspace) is gone
            if W.driver_loaded(world) and drv.get("loaded_version"):
                world["stale_module"] = {"version": drv["loaded_version"],
                                         "build_date": drv.get("build_date", "Thu Oct 10 12:29:05 UTC 2024")}
            world["driver"] = None
        if world.get("dkms"):
            world["dkms"] = [e for e in world["dkms"] if e.get("version") != rec["version"]]
    elif kind == "dkms_tool":
        world["dkms"] = None  # the dkms package (and `dkms status` with it) is gone
    elif kind == "toolkit":
        tks = [t for t in world.get("cuda_toolkits", []) if t["version"] != rec["version"]]
        if rec.get("prior"):
            tks.append(rec["prior"])
        world["cuda_toolkits"] = tks
        later.extend(rec.get("dirs", []))
    elif kind == "module_type":
        drv = world.get("driver")
        if drv:
            if rec.get("prior") is None:
                drv.pop("module", None)
            else:
                drv["module"] = rec["prior"]


def _rmdirs(ctx, dirs):
    """Remove the directories an install made, deepest first, where they are empty again."""
    for d in sorted(set(dirs), key=lambda x: -x.count("/")):
        try:
            os.rmdir(_p(ctx, d))
        except OSError:
            pass


def _drop_package(ctx, world, name, purge, later):
    """dpkg --remove / --purge of one package: its install undone, its conffiles kept (remove) or deleted
    (purge)."""
    db = _pkgdb(world)
    pk = world.setdefault("packages", {})
    version = pk.pop(name, None)
    if version is None:
        version = db["config_files"].get(name)
    for rec in reversed(db["undo"].pop(name, [])):
        _reverse(ctx, world, rec, later)
    db["deps"].pop(name, None)
    if name in db["auto"]:
        db["auto"].remove(name)
    conf = db["conffiles"].get(name)
    if conf and not purge:
        db["config_files"][name] = version
        return
    if conf:
        for f in conf.get("files", []):
            real = _p(ctx, f)
            if os.path.islink(real) or os.path.isfile(real):
                os.remove(real)
        later.extend(conf.get("dirs", []))
        db["conffiles"].pop(name, None)
    db["config_files"].pop(name, None)


def _dependents(world, names):
    """Installed packages that depend on one of ``names`` (transitively): they go too (apt and dnf both
    remove the packages that depend on what is removed)."""
    db = _pkgdb(world)
    out = []
    gone = set(names)
    changed = True
    while changed:
        changed = False
        for p, deps in db["deps"].items():
            if p in world.get("packages", {}) and p not in gone and gone & set(deps):
                gone.add(p)
                out.append(p)
                changed = True
    return out


def _orphans(world, removing):
    """Automatically installed packages no remaining package depends on, once ``removing`` are gone."""
    db = _pkgdb(world)
    pk = world.get("packages", {})
    gone = set(removing)
    out = []
    changed = True
    while changed:
        changed = False
        needed = set()
        for p, deps in db["deps"].items():
            if p in pk and p not in gone:
                needed.update(deps)
        for a in db["auto"]:
            if a in pk and a not in gone and a not in needed:
                gone.add(a)
                out.append(a)
                changed = True
    return out


def _removal_order(world, names):
    """Dependents before their dependencies, as dpkg removes them."""
    deps = _pkgdb(world)["deps"]
    return sorted(names, key=lambda n: (0 if n in deps else 1, n))


def _apt_list(ctx, title, names):
    """apt's ShowList: the title, then the names two spaces in, wrapped before the 80th column."""
    ctx.out(title)
    line = " "
    for n in names:
        if len(line) + 1 + len(n) >= 80 and line.strip():
            ctx.out(line)
            line = " "
        line += " " + n
    if line.strip():
        ctx.out(line)


def _confirm(ctx, question) -> bool:
    """A yes/no prompt read from stdin, as apt's YnPrompt and dnf's userconfirm read it: an empty line
    takes the default, end of input is no (apt: "Abort.", dnf: "Operation aborted."). The simulator never
    waits for a person: a terminal, or a pipe with nothing to read within 2 s, counts as end of input."""
    import select
    ctx.out(question, end="")
    try:
        if os.isatty(0) or not select.select([0], [], [], 2.0)[0]:
            return False
        line = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    if not line:
        return False
    answer = line.strip().lower()
    return answer in ("y", "yes") or (answer == "" and question.endswith("[Y/n] "))


def _apt_remove(ctx, verb, names, yes, quiet, purge, autoremove) -> int:
    """``apt-get remove|purge|autoremove [--purge] [--autoremove] [-y] [-q|-qq] PKG...`` as apt 2.x prints it:
    the REMOVED list (``name*`` when purged), the summary line, the prompt ``Do you want to continue? [Y/n]``
    unless -y or -qq (then ``Abort.``, exit 1: apt-private/private-install.cc InstallPackages), dpkg's
    ``Removing NAME (VERSION) ...`` / ``Purging configuration files for NAME (VERSION) ...``; a known name that
    is not installed: ``Package 'NAME' is not installed, so not removed`` (private-cacheset.cc), exit 0; an
    unknown one: ``E: Unable to locate package NAME``, exit 100. Checked against a real apt 2.6.1
    (`apt-get -s remove|purge`, Debian 12)."""
    w = ctx.world
    db = _pkgdb(dict(w))
    pk = w.get("packages", {})
    cat = _catalogue(ctx)
    say = ctx.out if quiet < 2 else (lambda *a, **k: None)
    say("Reading package lists...\nBuilding dependency tree...\nReading state information...")
    known = set(cat) | set(pk) | set(db["config_files"])
    for p in list(cat):
        known.update(_pkg_deps(w, p, "apt"))
    for n in names:
        if n not in known:
            ctx.err("E: Unable to locate package %s" % n)
            return 100
    targets = []
    purge_only = []  # removed before, its configuration files left: purge takes them
    for n in names:
        if n in pk:
            if n not in targets:
                targets.append(n)
        elif purge and n in db["config_files"]:
            purge_only.append(n)
        else:
            say("Package '%s' is not installed, so not removed" % n)
    targets += [d for d in _dependents(w, targets) if d not in targets]
    orphans = _orphans(w, targets)
    if verb == "autoremove" or autoremove:
        targets += [o for o in orphans if o not in targets]
        orphans = []
    if orphans and quiet < 2:
        one = len(orphans) == 1
        _apt_list(ctx, "The following package was automatically installed and is no longer required:" if one else
                  "The following packages were automatically installed and are no longer required:", sorted(orphans))
        ctx.out("Use 'apt autoremove' to remove %s." % ("it" if one else "them"))
    every = targets + purge_only
    if not every:
        say("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    if quiet < 2:
        _apt_list(ctx, "The following packages will be REMOVED:", [n + ("*" if purge else "") for n in sorted(every)])
    say("0 upgraded, 0 newly installed, %d to remove and 0 not upgraded." % len(every))
    if not yes and quiet < 2 and not _confirm(ctx, "Do you want to continue? [Y/n] "):
        ctx.out("Abort.")
        return 1
    order = _removal_order(w, targets)
    versions = {n: pk.get(n) or db["config_files"].get(n) for n in every}
    later: list = []

    def fn(world):
        for n in order:
            _drop_package(ctx, world, n, purge, later)
        for n in purge_only:
            _drop_package(ctx, world, n, True, later)
    ctx.out("(Reading database ... 74213 files and directories currently installed.)")
    for n in order:
        ctx.out("Removing %s (%s) ..." % (n, versions[n]))
    ctx.mutate(fn)
    _rmdirs(ctx, later)
    if purge:
        for n in order + purge_only:
            if n in db["conffiles"]:
                ctx.out("Purging configuration files for %s (%s) ..." % (n, versions[n]))
    return 0


def apt_cache(ctx) -> int:
    """``apt-cache policy NAME...`` as apt 2.x prints it (../shared/upstream/debian-12/apt-cache.txt):
    a block per known name, the installed version marked ``***`` with ``100 /var/lib/dpkg/status``; a
    name it cannot locate prints ``N: Unable to locate package NAME`` on stderr and nothing on stdout,
    exit 0 (forum transcripts in the search corpus, e.g. ``apt-cache policy llvmpipe``; the capture's
    ``apt-cache policy nvidia-container-toolkit`` has no stdout). ``show`` prints ``N: Unable to locate
    package`` + ``E: No packages found`` (exit 100) for an unknown name."""
    args = [a for a in ctx.args if a not in ("-q", "-qq", "--quiet")]
    if not args or args[0] not in ("policy", "show"):
        return ctx.unsupported()
    w = ctx.world
    cat = _catalogue(ctx)
    avail = set(w.get("apt_repos", []))
    installed = w.get("packages", {})
    tag = _distro_tag(w)

    def source(name, repo):
        if repo is not None:
            return REPO_SOURCE[repo] % tag if "%s" in REPO_SOURCE[repo] else REPO_SOURCE[repo]
        return DEBIAN12_ARCHIVE[name][1] if debian(w) and name in DEBIAN12_ARCHIVE else UBUNTU_SOURCE

    found = []
    for name in args[1:]:
        entry = cat.get(name)
        if entry is None or (entry[1] is not None and entry[1] not in avail):
            ctx.err("N: Unable to locate package %s" % name)
            continue
        found.append((name, entry))
    if args[0] == "show":
        for name, (ver, _repo) in found:
            ctx.out("Package: %s\nVersion: %s\nPriority: optional\n" % (name, ver))
        if not found:
            ctx.err("E: No packages found")
            return 100
        return 0
    for name, (ver, repo) in found:
        have = installed.get(name)
        ctx.out("%s:\n  Installed: %s\n  Candidate: %s\n  Version table:" % (name, have or "(none)", ver))
        ctx.out("%s %s 500\n        500 %s" % (" ***" if have == ver else "    ", ver, source(name, repo)))
        if have == ver:
            ctx.out("        100 /var/lib/dpkg/status")
        elif have:
            ctx.out(" *** %s 100\n        100 /var/lib/dpkg/status" % have)
    return 0


def _repos_configured(ctx):
    """Repositories whose source entry and key are in place: {name: (url, error or None)}."""
    found = {}
    d = _p(ctx, "/etc/apt/sources.list.d")
    try:
        names = sorted(os.listdir(d))
    except OSError:
        names = []
    for n in names:
        if not n.endswith((".list", ".sources")):
            continue
        for line in (_read(os.path.join(d, n)) or "").splitlines():
            line = line.strip()
            if not line.startswith("deb "):
                continue
            signed_by = None
            rest = line[4:]
            if rest.startswith("["):
                opts, _, rest = rest[1:].partition("]")
                for o in opts.split():
                    if o.startswith("signed-by="):
                        signed_by = o.split("=", 1)[1]
            url = rest.split()[0]
            if "libnvidia-container" in url:
                repo, fpr = "nvidia-container-toolkit", CTK_FPR
            elif "compute/cuda/repos" in url:
                repo, fpr = "cuda", CUDA_FPR
            else:
                continue
            key = _read(_p(ctx, signed_by), binary=True) if signed_by else None
            err = None
            if not key or not key.startswith(KEYRING_MARK) or fpr.encode() not in key:
                err = ("W: GPG error: %s  InRelease: The following signatures couldn't be verified because the "
                       "public key is not available: NO_PUBKEY %s\nE: The repository '%s  InRelease' is not signed."
                       % (url, fpr[-16:], url))
            found[repo] = (url, err)
    for n in ("/etc/yum.repos.d/nvidia-container-toolkit.repo", "/etc/yum.repos.d/cuda-%s.repo" % _distro_tag(ctx.world)):
        if os.path.exists(_p(ctx, n)):
            found["nvidia-container-toolkit" if "toolkit" in n else "cuda"] = (n, None)
    return found


def _apt_opts(args):
    """(words, bad option or None, options): -y/--yes/--assume-yes and ``-o APT::Get::Assume-Yes=true``, -q
    (counted; -qq), --purge, --autoremove/--auto-remove; -o pairs are otherwise ignored."""
    words = []
    opts = {"yes": False, "quiet": 0, "purge": False, "autoremove": False, "download_only": False, "simulate": False,
            "o": {}}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-o" and i + 1 < len(args):
            key, _, value = args[i + 1].partition("=")
            if key.lower() == "apt::get::assume-yes" and value.lower() in ("1", "true", "yes"):
                opts["yes"] = True
            opts["o"][key.lower()] = value
            i += 2
            continue
        if a.startswith("-"):
            if a in ("-y", "--yes", "--assume-yes"):
                opts["yes"] = True
            elif a in ("-q", "--quiet"):
                opts["quiet"] += 1
            elif a == "-qq":
                opts["quiet"] += 2
            elif a == "--purge":
                opts["purge"] = True
            elif a in ("--autoremove", "--auto-remove"):
                opts["autoremove"] = True
            elif a in ("-d", "--download-only"):
                opts["download_only"] = True
            elif a in ("-s", "--simulate", "--just-print", "--dry-run", "--recon", "--no-act"):
                opts["simulate"] = True
            elif a != "--no-install-recommends":
                return None, a, opts
            i += 1
            continue
        words.append(a)
        i += 1
    return words, None, opts


def apt_get(ctx) -> int:
    words, bad, opts = _apt_opts(ctx.args)
    if words is None:
        return ctx.usage("E: Command line option '%s' is not understood in combination with the other options." % bad, 100)
    if not words:
        return ctx.usage("apt 2.4.13 (amd64)\nUsage: apt-get [options] command", 1)
    verb, pkgs = words[0], words[1:]
    if "dir::state::status" in opts["o"]:  # a private state (gpuwizard bundle, gpuwizard/packages.py)
        return _apt_private(ctx, verb, pkgs, opts)
    if opts["download_only"]:
        return ctx.unsupported("--download-only outside a private state (-o Dir::State::status=...) is")
    if verb == "update":
        rc = _apt_update_flat(ctx)
        if rc:
            return rc
    if verb == "update" and offline(ctx.world):
        return _apt_update_offline(ctx)
    if verb == "update":
        repos = _repos_configured(ctx)
        ctx.out("Hit:1 http://archive.ubuntu.com/ubuntu jammy InRelease")
        ctx.out("Get:2 http://archive.ubuntu.com/ubuntu jammy-updates InRelease [128 kB]")
        errors = []
        n = 3
        ok = []
        for name, (url, err) in sorted(repos.items()):
            if err:
                errors.append(err)
                ctx.out("Get:%d %s  InRelease [1477 B]" % (n, url))
            else:
                ok.append(name)
                ctx.out("Get:%d %s  InRelease [1477 B]" % (n, url))
                ctx.out("Get:%d %s  Packages [%d kB]" % (n + 1, url, 17 if "container" in url else 1034))
            n += 2
        ctx.out("Fetched 1,210 kB in 2s (605 kB/s)")
        ctx.out("Reading package lists...")

        def fn(w):
            w["apt_repos"] = ok
        ctx.mutate(fn)
        if errors:
            for e in errors:
                ctx.err(e)
            ctx.err("N: Updating from such a repository can't be done securely, and is therefore disabled by default.")
            return 100
        return 0
    if verb == "install":
        if not pkgs:
            ctx.out("Reading package lists...\nBuilding dependency tree...\nReading state information...")
            ctx.out("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
            return 0
        return _install_pkgs(ctx, pkgs, "apt")
    if verb in ("remove", "purge", "autoremove", "autopurge"):
        return _apt_remove(ctx, "autoremove" if verb == "autopurge" else verb, pkgs, opts["yes"], opts["quiet"],
                           opts["purge"] or verb in ("purge", "autopurge"), opts["autoremove"])
    if verb in ("upgrade", "dist-upgrade"):
        return ctx.unsupported()
    return ctx.usage("E: Invalid operation %s" % verb, 100)


ARCHIVE_HOST = "archive.ubuntu.com"


# -- a private state and a flat repository (gpuwizard/packages.py) ------------------------------------
# Modelled on the real apt 2.6.1 of a Debian 12 machine (2026-12-04): `apt-get -o Dir::State=W/state -o
# Dir::State::status=W/status (empty) -o Dir::Cache=W/cache -o Dir::Etc::SourceList=... -o
# Dir::Etc::SourceParts=... update`, then `install --download-only -y pciutils` fetched the whole
# closure down to libc6 into W/cache/archives (name_version_arch.deb, ':' of an epoch as %3a) and ended
# "Download complete and in download only mode"; a `deb [trusted=yes] file:DIR ./` source with a
# Release beside Packages printed Get/Ign lines for InRelease, Release, Release.gpg, Packages, and
# with DIR gone "Err:3 file:DIR ./ Packages / File not found - DIR/./Packages ..." then "E: Failed to
# fetch file:DIR/./Packages" and exit 100. APT_CONFIG names a configuration file read before the
# others (apt.conf(5)).

def _deb_name(name, version, arch):
    return "%s_%s_%s.deb" % (name, version.replace(":", "%3a"), arch)


def _source_lines(text):
    """(options, URI) of each one-line `deb` entry."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("deb "):
            continue
        rest, options = line[4:].strip(), ""
        if rest.startswith("["):
            options, _, rest = rest[1:].partition("]")
        if rest.split():
            out.append((options, rest.split()[0]))
    return out


def _apt_config_sources(ctx):
    """The sources.list that APT_CONFIG's Dir::Etc::SourceList names (gpuwizard --bundle), or None."""
    import re

    conf = os.environ.get("APT_CONFIG")
    if not conf:
        return None
    m = re.search(r'Dir::Etc::SourceList\s+"([^"]+)"', _read(conf) or "")
    return _read(m.group(1)) if m else None


def _flat_dirs(ctx):
    """The directories of the file: sources (their URIs percent-decoded, as apt reads them)."""
    import urllib.parse

    return [urllib.parse.unquote(uri[5:]) for _opts, uri in _source_lines(_apt_config_sources(ctx))
            if uri.startswith("file:")]


def _flat_packages(path):
    """{name: version} of a flat repository's Packages, None where it is not there."""
    text = _read(os.path.join(path, "Packages"))
    if text is None:
        return None
    out, name = {}, None
    for line in text.splitlines():
        if line.startswith("Package: "):
            name = line[9:].strip()
        elif line.startswith("Version: ") and name:
            out[name] = line[9:].strip()
    return out


def _apt_update_flat(ctx):
    """The flat repositories of APT_CONFIG's sources: their Packages read into the lists
    (world["apt_local"]), or apt's error where one is gone (exit 100)."""
    dirs = _flat_dirs(ctx)
    if not dirs:
        return 0
    found = {}
    for n, path in enumerate(dirs, 1):
        ctx.out("Get:%d file:%s ./ InRelease\nIgn:%d file:%s ./ InRelease" % (n, path, n, path))
        pkgs = _flat_packages(path)
        if pkgs is None:
            ctx.out("Get:%d file:%s ./ Packages\nErr:%d file:%s ./ Packages\n  File not found - %s/./Packages "
                    "(2: No such file or directory)" % (n, path, n, path, path))
            ctx.err("E: Failed to fetch file:%s/./Packages  File not found - %s/./Packages (2: No such file or "
                    "directory)\nE: Some index files failed to download. They have been ignored, or old ones used "
                    "instead." % (path, path))
            return 100
        ctx.out("Get:%d file:%s ./ Release\nGet:%d file:%s ./ Packages" % (n, path, n, path))
        found[path] = pkgs

    def fn(world):
        world.setdefault("apt_local", {}).update(found)
    ctx.mutate(fn)
    return 0


def _local_available(ctx):
    """{name: version} that the flat repositories of this command's sources hold (as last read)."""
    out = {}
    for path in _flat_dirs(ctx):
        out.update((ctx.world.get("apt_local") or {}).get(path) or {})
    return out


def _private_sources(opts):
    text = _read(opts["o"].get("dir::etc::sourcelist", "")) or ""
    parts = opts["o"].get("dir::etc::sourceparts", "")
    for n in sorted(os.listdir(parts)) if parts and os.path.isdir(parts) else []:
        if n.endswith(".list"):
            text += "\n" + (_read(os.path.join(parts, n)) or "")
    return _source_lines(text)


def _apt_private(ctx, verb, pkgs, opts) -> int:
    """apt-get on a private state: ``update`` reads the sources named by the -o options (the
    distribution's archive is the simulated host's, always configured), ``install --download-only``
    fetches the closure into Dir::Cache/archives as if nothing were installed (the status is empty)."""
    import json

    state = opts["o"].get("dir::state", "")
    marker = os.path.join(state, "lists", "gpuwizard-sim-repos")
    arch = opts["o"].get("apt::architecture", "amd64")
    if verb == "update":
        repos: list[str] = ["archive"]
        errors: list[str] = []
        lines: list[tuple[str, Any, Any]] = [("http://%s/ubuntu" % ARCHIVE_HOST, None, None)]
        for options, uri in _private_sources(opts):
            signed = next((o.split("=", 1)[1] for o in options.split() if o.startswith("signed-by=")), None)
            if "libnvidia-container" in uri:
                lines.append((uri, "nvidia-container-toolkit", (signed, CTK_FPR)))
            elif "compute/cuda/repos" in uri:
                lines.append((uri, "cuda", (signed, CUDA_FPR)))
        if offline(ctx.world):
            for n, (uri, _repo, _key) in enumerate(lines, 1):
                host = uri.split("/")[2]
                ctx.out("Err:%d %s InRelease\n  Temporary failure resolving '%s'" % (n, uri, host))
                ctx.err("W: Failed to fetch %s/InRelease  Temporary failure resolving '%s'" % (uri.rstrip("/"), host))
            ctx.err("W: Some index files failed to download. They have been ignored, or old ones used instead.")
            return 0
        for n, (uri, repo, key) in enumerate(lines, 1):
            ctx.out("Get:%d %s InRelease [1477 B]" % (n, uri))
            _fetched(ctx, uri.rstrip("/") + "/InRelease")
            if repo is None:
                continue
            data = _read(key[0], binary=True) if key[0] else None
            armored = KEY_MARK.encode() + key[1].encode()
            if not data or (armored not in data and not (data.startswith(KEYRING_MARK) and key[1].encode() in data)):
                errors.append("W: GPG error: %s  InRelease: The following signatures couldn't be verified because "
                              "the public key is not available: NO_PUBKEY %s\nE: The repository '%s  InRelease' is "
                              "not signed." % (uri, key[1][-16:], uri))
            else:
                repos.append(repo)
        ctx.out("Reading package lists...")
        if errors:
            ctx.err("\n".join(errors))
            return 100
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        _write(marker, json.dumps(repos))
        return 0
    if verb != "install" or not (opts["download_only"] or opts["simulate"]):
        return ctx.unsupported("apt-get %s on a private state (only update, install -s and install --download-only) is"
                               % verb)
    repos = json.loads(_read(marker) or "[]")
    cat = _catalogue(ctx)
    ctx.out("Reading package lists...\nBuilding dependency tree...")
    closure = []
    for p in pkgs:
        entry = cat.get(p)
        if entry is None or (entry[1] or "archive") not in repos:
            ctx.err("E: Unable to locate package %s" % p)
            return 100
        for d in [p] + _pkg_deps(ctx.world, p, "apt"):  # nothing is installed: every dependency comes along
            if d not in closure:
                closure.append(d)
    versions = {p: cat[p][0] for p in pkgs}
    for p in pkgs:
        for d in _pkg_deps(ctx.world, p, "apt"):
            versions.setdefault(d, _dep_version(ctx.world, d, cat[p][0], "apt"))
    if opts["simulate"]:  # what would be installed, from the lists alone ("Inst NAME (VERSION ORIGIN [ARCH])")
        for p in closure:
            ctx.out("Inst %s (%s Ubuntu:22.04/jammy-updates [%s])" % (p, versions[p], arch))
        return 0
    if offline(ctx.world):
        ctx.err("E: Failed to fetch http://%s/ubuntu/pool/main/%s  Temporary failure resolving '%s'"
                % (ARCHIVE_HOST, closure[0], ARCHIVE_HOST))
        return 100
    archives = os.path.join(opts["o"].get("dir::cache", ""), "archives")
    os.makedirs(archives, exist_ok=True)
    _apt_list(ctx, "The following NEW packages will be installed:", sorted(closure))
    ctx.out("0 upgraded, %d newly installed, 0 to remove and 0 not upgraded." % len(closure))
    for n, p in enumerate(closure, 1):
        if os.path.exists(os.path.join(archives, _deb_name(p, versions[p], arch))):
            continue  # in the cache already: apt fetches only what it lacks
        repo = (cat.get(p) or (None, None))[1]
        ctx.out("Get:%d %s %s %s %s" % (n, "http://%s/ubuntu jammy/main" % ARCHIVE_HOST if not repo else repo, arch, p, versions[p]))
        _fetched(ctx, "http://%s/ubuntu/pool/%s" % (ARCHIVE_HOST, _deb_name(p, versions[p], arch)))
        deps = _pkg_deps(ctx.world, p, "apt")
        _write(os.path.join(archives, _deb_name(p, versions[p], arch)),
               DEB_MARK + "Package: %s\nVersion: %s\nArchitecture: %s\n%s" % (
                   p, versions[p], arch, ("Depends: %s\n" % ", ".join(deps)) if deps else ""))
    ctx.out("Download complete and in download only mode")
    return 0


def dpkg_deb(ctx) -> int:
    """``dpkg-deb -f DEB`` (the control fields) and ``dpkg-deb -x DEB DIR`` (its files) of the
    simulator's archives (DEB_MARK, then the control fields)."""
    args = ctx.args
    if len(args) in (2, 3) and args[0] in ("-x", "--extract", "-f", "--field"):
        text = _read(args[1])
        if text is None:
            ctx.err("dpkg-deb: error: failed to read archive '%s': No such file or directory" % args[1])
            return 2
        if not text.startswith(DEB_MARK):
            ctx.err("dpkg-deb: error: '%s' is not a Debian format archive" % args[1])
            return 2
        control = text[len(DEB_MARK):]
        if args[0] in ("-f", "--field"):
            if len(args) == 3:
                return ctx.unsupported("dpkg-deb -f with field names is")
            ctx.out(control.rstrip("\n"))
            return 0
        if len(args) != 3:
            return ctx.usage("dpkg-deb: error: --extract needs a target directory.", 2)
        if "Package: cuda-keyring\n" in control:  # what cuda-keyring ships (see dpkg -i above)
            tag, arch = _distro_tag(ctx.world), ctx.world["host"].get("arch", "x86_64")
            _write(os.path.join(args[2], "usr/share/keyrings/cuda-archive-keyring.gpg"),
                   KEYRING_MARK + CUDA_FPR.encode() + b"\n")
            _write(os.path.join(args[2], "etc/apt/sources.list.d/cuda-%s-%s.list" % (tag, arch)),
                   "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
                   "https://developer.download.nvidia.com/compute/cuda/repos/%s/%s/ /\n" % (tag, arch))
        else:
            os.makedirs(args[2], exist_ok=True)
        return 0
    return ctx.unsupported()


def _apt_update_offline(ctx) -> int:
    """apt-get update where no name resolves: each source's InRelease fails with "Temporary failure
    resolving", then W: lines and exit 0, the lists already there kept, a repository never fetched
    staying unknown. The output as real hosts print it (microsoft/vscode#191340, microsoft/WSL#4792);
    exit 0 on a temporary error is apt's design (Debian/apt#124, its maintainer: "If they fail with a
    temporary error, they don't fail")."""
    import urllib.parse

    sources = [("http://%s/ubuntu" % ARCHIVE_HOST, "jammy"), ("http://%s/ubuntu" % ARCHIVE_HOST, "jammy-updates")]
    sources += [(url, "") for _, (url, _err) in sorted(_repos_configured(ctx).items()) if url.startswith("http")]
    for n, (url, suite) in enumerate(sources, 1):
        host = urllib.parse.urlsplit(url).hostname
        if is_local_url(url):
            ctx.out("Hit:%d %s %s InRelease" % (n, url, suite))
            continue
        ctx.out("Err:%d %s %s InRelease\n  Temporary failure resolving '%s'" % (n, url, suite, host))
    ctx.out("Reading package lists...")
    for url, suite in sources:
        if not is_local_url(url):
            ctx.err("W: Failed to fetch %s/%sInRelease  Temporary failure resolving '%s'"
                    % (url.rstrip("/"), ("dists/%s/" % suite) if suite else "", urllib.parse.urlsplit(url).hostname))
    ctx.err("W: Some index files failed to download. They have been ignored, or old ones used instead.")
    return 0


def _install_pkgs(ctx, pkgs, mgr) -> int:
    cat = _catalogue(ctx)
    w = ctx.world
    installed = w.get("packages", {})
    auto = _pkgdb(dict(w))["auto"]
    avail = set(w.get("apt_repos" if mgr == "apt" else "dnf_repos", []))
    if mgr == "dnf":
        avail = {n for n, (u, e) in _repos_configured(ctx).items() if not e}
    if mgr == "apt":
        ctx.out("Reading package lists...\nBuilding dependency tree...\nReading state information...")
    else:
        ctx.out("Updating and loading repositories:\nRepositories loaded.")
    local = _local_available(ctx) if mgr == "apt" else {}  # a bundle's repository (APT_CONFIG)
    new = []
    manual = []
    for p in pkgs:
        entry = cat.get(p)
        if p in local:
            entry = (local[p], None)
        if entry is None or (entry[1] is not None and entry[1] not in avail):
            if mgr == "apt":
                ctx.err("E: Unable to locate package %s" % p)
                return 100
            ctx.err("No match for argument: %s\nError: Unable to find a match: %s" % (p, p))
            return 1
        if p in installed:
            ctx.out("%s is already the newest version (%s)." % (p, installed[p]))
            if p in auto:  # asked for by name: apt marks it manual (apt-mark(8))
                ctx.out("%s set to manually installed." % p)
                manual.append(p)
        elif p not in new:
            new.append(p)
    if not new:
        if manual:
            def mark(world):
                db = _pkgdb(world)
                db["auto"] = [a for a in db["auto"] if a not in manual]
            ctx.mutate(mark)
        ctx.out("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    deps_of = {p: _pkg_deps(w, p, mgr) for p in new}
    extra: list = []  # the dependencies this install brings in
    for p in new:
        for d in deps_of[p]:
            if d not in installed and d not in new and d not in extra and not _provided(w, d):
                extra.append(d)
    versions = {p: cat[p][0] for p in new}
    versions.update({d: _dep_version(w, d, cat[p][0], mgr) for p in new for d in deps_of[p] if d in extra})
    if extra:
        _apt_list(ctx, "The following additional packages will be installed:", sorted(extra))
    _apt_list(ctx, "The following NEW packages will be installed:", sorted(new + extra))
    ctx.out("0 upgraded, %d newly installed, 0 to remove and 0 not upgraded." % (len(new) + len(extra)))
    ctx.out("Need to get 312 MB of archives.")
    if offline(w) and mgr == "apt" and any(p not in local for p in new + extra):
        # the lists are there, the archive is not reachable: every .deb fails to download, Err: lines then
        # "E: Failed to fetch" and "E: Unable to fetch some archives" (ddavness/power-mailinabox#138,
        # rickysarraf/apt-offline#212); the pool path is made from the binary package's name here, the real
        # one from its source package's
        missing = sorted(p for p in new + extra if p not in local)
        for p in missing:
            ctx.out("Err:1 http://%s/ubuntu jammy-updates/restricted amd64 %s %s\n  Temporary failure resolving '%s'"
                    % (ARCHIVE_HOST, p, versions[p], ARCHIVE_HOST))
        first = missing[0]
        ctx.err("E: Failed to fetch http://%s/ubuntu/pool/main/%s/%s/%s_%s_amd64.deb  Temporary failure resolving '%s'"
                % (ARCHIVE_HOST, first[0], first, first, versions[first], ARCHIVE_HOST))
        ctx.err("E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?")
        return 100
    errors = []

    def fn(world):
        db = _pkgdb(world)
        db["auto"] = [a for a in db["auto"] if a not in manual]
        for p in new:
            undo: list = []
            err = _apply_package(ctx, world, p, undo)
            if err:
                errors.append((p, err))
                return None
            mine = [d for d in deps_of[p] if d in extra and d not in world.get("packages", {})]
            _record_install(world, p, versions[p], deps_of[p], mine, undo, mgr, versions)
    for p in sorted(new + extra):
        where = "file:%s ./" % next(d for d in _flat_dirs(ctx) if p in (w.get("apt_local") or {}).get(d, {})) \
            if p in local else "http://archive.ubuntu.com/ubuntu jammy-updates/restricted amd64"
        ctx.out("Get:1 %s %s [%s]" % (where, p, versions[p]))
    ctx.mutate(fn)
    for d in extra:  # dpkg configures the dependencies first
        if d not in ctx.world.get("packages", {}):
            continue  # the install stopped before it
        ctx.out("Setting up %s (%s) ..." % (d, versions[d]))
    for p in new:
        if errors and errors[0][0] == p:
            ctx.out("Setting up %s (%s) ..." % (p, cat[p][0]))
            ctx.err(errors[0][1])
            ctx.err("dpkg: error processing package %s (--configure):\n installed %s package post-installation "
                    "script subprocess returned error exit status 10" % (p, p))
            ctx.err("Errors were encountered while processing:\n %s" % p)
            ctx.err("E: Sub-process /usr/bin/dpkg returned an error code (1)")
            return 100
        ctx.out("Setting up %s (%s) ..." % (p, cat[p][0]))
        if p.startswith("nvidia-driver"):
            ctx.out("Loading new nvidia-%s DKMS files..." % cat[p][0].split("-")[0])
            ctx.out("Building for %s" % _kernel(ctx.world))
            ctx.out("Building initial module for %s" % _kernel(ctx.world))
            ctx.out("Done.")
    return 0


def _dpkg_status(ctx, name) -> int:
    """``dpkg -s NAME`` / ``dpkg-query -s NAME``: installed ("install ok installed") or removed with its
    configuration files left ("deinstall ok config-files", still exit 0, as dpkg-query(1) --status shows any
    package it has a record of)."""
    w = ctx.world
    ver = w.get("packages", {}).get(name)
    status = "install ok installed"
    if ver is None:
        ver = _pkgdb(dict(w))["config_files"].get(name)
        status = "deinstall ok config-files"
    if ver is None:
        ctx.err("dpkg-query: package '%s' is not installed and no information is available" % name)
        ctx.err("Use dpkg --info (= dpkg-deb --info) to examine archive files.")
        return 1
    ctx.out("Package: %s\nStatus: %s\nPriority: optional\nVersion: %s" % (name, status, ver))
    return 0


def _dpkg_remove(ctx, names, purge) -> int:
    """``dpkg -r|--remove|-P|--purge NAME...`` (dpkg(1)): ``Removing NAME (VERSION) ...`` (and ``Purging
    configuration files for NAME (VERSION) ...``); a package another installed package depends on is refused
    (``dpkg: dependency problems prevent removal of NAME:``, exit 1); one that is not installed:
    ``dpkg: warning: ignoring request to remove NAME which isn't installed``, exit 0."""
    w = ctx.world
    db = _pkgdb(dict(w))
    pk = w.get("packages", {})
    todo = []
    for n in names:
        if n in pk or (purge and n in db["config_files"]):
            todo.append(n)
        elif n in db["config_files"]:
            ctx.err("dpkg: warning: ignoring request to remove %s, only the config\n files of which are on the system; "
                    "use --purge to remove them too" % n)
        else:
            ctx.err("dpkg: warning: ignoring request to remove %s which isn't installed" % n)
    for n in todo:
        users = [p for p in _dependents(w, [n]) if p not in todo]
        if users:
            ctx.err("dpkg: dependency problems prevent removal of %s:\n %s depends on %s.\n\ndpkg: error processing "
                    "package %s (--%s):\n dependency problems - not removing\nErrors were encountered while processing:\n %s"
                    % (n, users[0], n, n, "purge" if purge else "remove", n))
            return 1
    if not todo:
        return 0
    versions = {n: pk.get(n) or db["config_files"].get(n) for n in todo}
    later: list = []

    def fn(world):
        for n in todo:
            _drop_package(ctx, world, n, purge, later)
    ctx.out("(Reading database ... 74213 files and directories currently installed.)")
    for n in todo:
        if n in pk:
            ctx.out("Removing %s (%s) ..." % (n, versions[n]))
    ctx.mutate(fn)
    _rmdirs(ctx, later)
    if purge:
        for n in todo:
            if n in db["conffiles"]:
                ctx.out("Purging configuration files for %s (%s) ..." % (n, versions[n]))
    return 0


def dpkg(ctx) -> int:
    args = ctx.args
    w = ctx.world
    if len(args) == 2 and args[0] in ("-s", "--status"):
        return _dpkg_status(ctx, args[1])
    if len(args) >= 2 and args[0] in ("-r", "--remove", "-P", "--purge"):
        return _dpkg_remove(ctx, args[1:], args[0] in ("-P", "--purge"))
    if len(args) == 2 and args[0] in ("-i", "--install"):
        text = _read(args[1])
        if text is None:
            ctx.err("dpkg: error: cannot access archive '%s': No such file or directory" % args[1])
            return 2
        if not text.startswith(DEB_MARK):
            ctx.err("dpkg-deb: error: '%s' is not a Debian format archive" % args[1])
            return 2
        meta = dict(line.split(": ", 1) for line in text.splitlines()[1:] if ": " in line)
        name, ver = meta.get("Package", "?"), meta.get("Version", "?")
        ctx.out("Selecting previously unselected package %s." % name)
        ctx.out("(Reading database ... 74213 files and directories currently installed.)")
        ctx.out("Preparing to unpack .../%s ..." % os.path.basename(args[1]))
        ctx.out("Unpacking %s (%s) ..." % (name, ver))
        ctx.out("Setting up %s (%s) ..." % (name, ver))
        undo: list = []
        conffiles = None
        if name == "cuda-keyring":
            # cuda-keyring ships the repository's key and its sources.list.d entry; a file under /etc is a
            # conffile (dpkg keeps it on --remove, deletes it on --purge; debhelper's dh_installdeb marks every
            # /etc file so)
            tag = _distro_tag(w)
            arch = w["host"].get("arch", "x86_64")
            key = "/usr/share/keyrings/cuda-archive-keyring.gpg"
            listing = "/etc/apt/sources.list.d/cuda-%s-%s.list" % (tag, arch)
            undo.append({"kind": "files", "files": [] if os.path.exists(_p(ctx, key)) else [key], "links": [],
                         "dirs": _new_dirs(ctx, key)})
            conffiles = {"files": [listing], "dirs": _new_dirs(ctx, listing)}
            _write(_p(ctx, key), KEYRING_MARK + CUDA_FPR.encode() + b"\n")
            _write(_p(ctx, listing),
                   "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
                   "https://developer.download.nvidia.com/compute/cuda/repos/%s/%s/ /\n" % (tag, arch))

        def fn(world):
            db = _pkgdb(world)
            if name not in world.get("packages", {}):
                _record_install(world, name, ver, [], [], undo, "apt", {})
            else:
                world["packages"][name] = ver
            if conffiles is not None and name not in db["conffiles"]:
                db["conffiles"][name] = conffiles
        ctx.mutate(fn)
        return 0
    if args[:1] in (["-l"], ["--list"], ["-L"]):
        return ctx.unsupported()
    return ctx.usage("dpkg: error: need an action option\n\nType dpkg --help for help about installing and "
                     "deinstalling packages [*];", 2)


# dpkg-query -W (dpkg-query(1)): one line per package, sorted by name, in the show format (default
# "${binary:Package}\t${Version}\n"); ${field;width} pads (negative: left-aligned); \n \t \r \\ \" are
# expanded, another backslash drops itself. Fields: Package, binary:Package (no ":arch": the simulator's
# packages are not Multi-Arch: same), Version, Architecture, Status ("install ok installed" / "deinstall ok
# config-files"), db:Status-Want, db:Status-Eflag, db:Status-Status, db:Status-Abbrev ("ii " / "rc "); any
# other field is empty. Checked against a real dpkg-query 1.21 (Debian 12).
DPKG_DEFAULT_FORMAT = "${binary:Package}\t${Version}\n"


def _dpkg_format_escapes(fmt):
    out = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "\\" and i + 1 < len(fmt):
            nxt = fmt[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _dpkg_format(fmt, fields):
    out = []
    i = 0
    text = _dpkg_format_escapes(fmt)
    while i < len(text):
        if text.startswith("${", i):
            end = text.find("}", i)
            if end < 0:
                out.append(text[i:])
                break
            spec = text[i + 2:end]
            name, _, width = spec.partition(";")
            value = fields.get(name, "")
            if width.lstrip("-").isdigit():
                n = int(width)
                value = value.ljust(-n) if n < 0 else value.rjust(n)
            out.append(value)
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def dpkg_query(ctx) -> int:
    args = list(ctx.args)
    fmt = None
    action = None
    names = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-W", "--show"):
            action = "show"
        elif a in ("-s", "--status"):
            action = "status"
        elif a in ("-f", "--showformat"):
            if i + 1 >= len(args):
                return ctx.usage("dpkg-query: error: %s option takes a value\n\nUse --help for help about querying "
                                 "packages." % ("-f" if a == "-f" else "--showformat"), 2)
            fmt = args[i + 1]
            i += 1
        elif a.startswith("--showformat="):
            fmt = a.split("=", 1)[1]
        elif a.startswith("-f") and len(a) > 2:
            fmt = a[2:][1:] if a[2] == "=" else a[2:]
        elif a in ("-l", "--list", "-L", "--listfiles", "-S", "--search", "-p", "--print-avail"):
            return ctx.unsupported()
        elif a.startswith("-") and a != "-":
            return ctx.usage("dpkg-query: error: unknown option %s\n\nUse --help for help about querying packages." % a, 2)
        else:
            names.append(a)
        i += 1
    if action is None:
        return ctx.usage("dpkg-query: error: need an action option\n\nUse --help for help about querying packages.", 2)
    if action == "status":
        rc = 0
        for n in names:
            rc = _dpkg_status(ctx, n) or rc
        return rc
    if fmt == "":
        ctx.err("dpkg-query: error in show format: may not be empty string")
        return 1
    import fnmatch
    w = ctx.world
    db = _pkgdb(dict(w))
    rows = {n: (v, "installed") for n, v in w.get("packages", {}).items()}
    rows.update({n: (v, "config-files") for n, v in db["config_files"].items() if n not in rows})
    picked = sorted(rows)
    rc = 0
    if names:
        chosen = set()
        for pat in names:
            hit = [n for n in rows if fnmatch.fnmatchcase(n, pat)]
            if not hit:
                ctx.err("dpkg-query: no packages found matching %s" % pat)
                rc = 1
            chosen.update(hit)
        picked = sorted(chosen)
    arch = _deb_arch(w)
    for n in picked:
        ver, state = rows[n]
        want = "install" if state == "installed" else "deinstall"
        fields = {"Package": n, "binary:Package": n, "Version": str(ver), "Architecture": arch,
                  "Status": "%s ok %s" % (want, state), "db:Status-Want": want, "db:Status-Eflag": "ok",
                  "db:Status-Status": state, "db:Status-Abbrev": "ii " if state == "installed" else "rc "}
        sys.stdout.write(_dpkg_format(DPKG_DEFAULT_FORMAT if fmt is None else fmt, fields))
    sys.stdout.flush()
    return rc


def _deb_arch(world):
    a = world["host"].get("arch", "x86_64")
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(a, a)


# The real repo files behind NVIDIA's URLs:
# https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo and
# https://nvidia.github.io/libnvidia-container/stable/rpm/nvidia-container-toolkit.repo
CUDA_REPO_FILE = """[cuda-%(tag)s-%(arch)s]
name=cuda-%(tag)s-%(arch)s
baseurl=https://developer.download.nvidia.com/compute/cuda/repos/%(tag)s/%(arch)s
enabled=1
gpgcheck=1
gpgkey=https://developer.download.nvidia.com/compute/cuda/repos/%(tag)s/%(arch)s/D42D0685.pub
"""


def _add_repo_file(ctx, url) -> int:
    """What `dnf config-manager --add-repo URL` (dnf4) / `addrepo --from-repofile=URL` (dnf5) leave:
    the .repo file the URL serves, in /etc/yum.repos.d under its own name."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    parts = url.split("/compute/cuda/repos/", 1)
    if len(parts) != 2 or not name.endswith(".repo") or len(parts[1].split("/")) != 3:
        ctx.err("Curl error (22): HTTP response code said error for %s [The requested URL returned error: 404]" % url)
        return 1
    tag, arch, _ = parts[1].split("/")
    _write(_p(ctx, "/etc/yum.repos.d/" + name), CUDA_REPO_FILE % {"tag": tag, "arch": arch})
    return 0


def _rpm_fields(key, ver):
    """(name, version, release, arch) of a package of the world as rpm reports it: a module stream install
    (``nvidia-driver:565-dkms``) is the stream's package, nvidia-driver; the running kernel's
    ``kernel-devel-<uname -r>`` is kernel-devel at that kernel's version-release.arch."""
    ver = str(ver)
    for head in ("kernel-devel-", "kernel-headers-"):
        if key.startswith(head) and key[len(head):] == ver:
            base, _, arch = ver.rpartition(".") if ver.endswith((".x86_64", ".aarch64")) else (ver, "", "x86_64")
            version, _, release = base.partition("-")
            return head[:-1], version, release or "1", arch
    version, _, release = ver.partition("-")
    return key.split(":", 1)[0], version, release or "1", "x86_64"


def _rpm_name(key, ver=""):
    return _rpm_fields(key, ver)[0]


def _nevra(key, ver):
    return "%s-%s-%s.%s" % _rpm_fields(key, ver)


def _rpm_matches(key, ver, spec):
    """A dnf/rpm package spec (name, name-version-release[.arch], or the catalogue's own name) names it."""
    name, version, release, arch = _rpm_fields(key, ver)
    return spec in (key, name, "%s-%s-%s" % (name, version, release), "%s-%s-%s.%s" % (name, version, release, arch))


def _dnf_remove(ctx, specs, yes) -> int:
    """``dnf remove|erase [-y] NAME...``. dnf 4 (dnf/cli/commands/remove.py, cli/main.py): a name that is not
    installed prints ``No match for argument: NAME``; with nothing to remove ``No packages marked for
    removal.``, ``Dependencies resolved.``, ``Nothing to do.``, ``Complete!``, exit 0. dnf5 (libdnf5
    log_event.cpp: remove skips what is unavailable): ``No packages to remove for argument: NAME``, ``Nothing to
    do.``, exit 0. Otherwise the transaction table (abbreviated: name, arch, version, repository), ``Removing
    dependent packages:`` (what depends on a removed package) and ``Removing unused dependencies:``
    (clean_requirements_on_remove), the ``Is this ok [y/N]:`` prompt without -y (end of input:
    ``Operation aborted.`` / dnf5 ``Operation aborted by the user.``, exit 1), then the erasures and
    ``Complete!``."""
    w = ctx.world
    dnf5 = _rhel_major(w) >= 10
    pk = w.get("packages", {})
    targets = []
    for spec in specs:
        keys = [k for k in pk if k == spec] or [k for k in pk if _rpm_matches(k, pk[k], spec)]
        if not keys:
            if dnf5:
                ctx.err("No packages to remove for argument: %s" % spec)
            else:
                ctx.out("No match for argument: %s" % spec)
        targets += [k for k in keys if k not in targets]
    if not targets:
        if dnf5:
            ctx.out("Nothing to do.")
            return 0
        ctx.err("No packages marked for removal.")
        ctx.out("Dependencies resolved.\nNothing to do.\nComplete!")
        return 0
    dependents = [d for d in _dependents(w, targets + [_rpm_name(t, pk[t]) for t in targets]) if d not in targets]
    unused = _orphans(w, targets + dependents)
    every = targets + dependents + unused
    groups = [("Removing:", targets), ("Removing dependent packages:", dependents),
              ("Removing unused dependencies:", unused)]
    if not dnf5:
        ctx.out("Dependencies resolved.")
        ctx.out("=" * 80)
        ctx.out(" %-34s %-12s %-22s %s" % ("Package", "Architecture", "Version", "Repository"))
        ctx.out("=" * 80)
    else:
        ctx.out("%-34s %-7s %-22s %s" % ("Package", "Arch", "Version", "Repository"))
    for title, names in groups:
        if not names:
            continue
        ctx.out(title)
        for n in names:
            name, version, release, arch = _rpm_fields(n, pk[n])
            ctx.out(" %-34s %-12s %-22s %s" % (name, arch, "%s-%s" % (version, release), "@System"))
    ctx.out("")
    if not dnf5:
        ctx.out("Transaction Summary")
        ctx.out("=" * 80)
        ctx.out("Remove  %d Package%s" % (len(every), "" if len(every) == 1 else "s"))
        ctx.out("")
    else:
        ctx.out("Transaction Summary:")
        ctx.out(" Removing:         %3d package%s" % (len(every), "" if len(every) == 1 else "s"))
        ctx.out("")
    if not yes:
        ok = _confirm(ctx, "Is this ok [y/N]: ")
        if not ok:
            ctx.err("Operation aborted by the user." if dnf5 else "Operation aborted.")
            return 1
    versions = {n: pk[n] for n in every}
    later: list = []

    def fn(world):
        for n in _removal_order(world, every):
            _drop_package(ctx, world, n, True, later)
    if not dnf5:
        ctx.out("Running transaction check\nTransaction check succeeded.\nRunning transaction test\n"
                "Transaction test succeeded.\nRunning transaction")
        for k, n in enumerate(every, 1):
            ctx.out("  Erasing          : %-50s %d/%d" % (_nevra(n, versions[n]), k, len(every)))
    else:
        ctx.out("Running transaction")
        for k, n in enumerate(every, 1):
            ctx.out("[%d/%d] Removing %s" % (k, len(every), _nevra(n, versions[n])))
    ctx.mutate(fn)
    _rmdirs(ctx, later)
    if not dnf5:
        ctx.out("")
        ctx.out("Removed:")
        for n in every:
            ctx.out("  %s" % _nevra(n, versions[n]))
        ctx.out("")
    ctx.out("Complete!")
    return 0


def dnf(ctx) -> int:
    """dnf 4 (RHEL 8/9) and dnf5 (RHEL 10), as far as gpuwizard drives them: install, module install
    (dnf 4 only: dnf5 has no module streams to install from NVIDIA's rhel10 repository), config-manager
    (dnf 4 ``--add-repo URL``; dnf5 ``addrepo --from-repofile=URL``, dnf5-config-manager(8): dnf5
    removed ``--add-repo``), versionlock add."""
    yes = any(a in ("-y", "--assumeyes") for a in ctx.args)
    args = [a for a in ctx.args if a not in ("-y", "--assumeyes", "-q", "--quiet")]
    dnf5 = _rhel_major(ctx.world) >= 10
    if args[:1] in (["remove"], ["erase"], ["rm"]) and len(args) > 1:
        return _dnf_remove(ctx, args[1:], yes)
    if args[:1] == ["install"] and len(args) > 1:
        return _install_pkgs(ctx, args[1:], "dnf")
    if args[:1] in (["makecache"], ["check-update"]):
        return 0
    if args[:1] == ["config-manager"]:
        rest = args[1:]
        if dnf5:
            if rest[:1] == ["addrepo"] and len(rest) == 2 and rest[1].startswith("--from-repofile="):
                return _add_repo_file(ctx, rest[1].split("=", 1)[1])
            bad = next((a for a in rest if a.startswith("-")), rest[0] if rest else "")
            ctx.err('Unknown argument "%s" for command "config-manager". Add "--help" for more information about the '
                    "arguments." % bad)
            return 2
        if rest[:1] == ["--add-repo"] and len(rest) == 2:
            ctx.out("Adding repo from: %s" % rest[1])
            return _add_repo_file(ctx, rest[1])
        if rest and not rest[0].startswith("-"):
            ctx.err("Error: No matching repo to modify: %s." % rest[0])
            return 1
        return ctx.unsupported()
    if args[:2] == ["module", "install"] and len(args) > 2:
        cat = _catalogue(ctx)
        avail = {n for n, (u, e) in _repos_configured(ctx).items() if not e}
        for spec in args[2:]:
            entry = cat.get(spec)
            if entry is None or entry[1] not in avail:
                ctx.err("Error: Problems in request:\nmissing groups or modules: %s" % spec)
                return 1
        return _install_pkgs(ctx, args[2:], "dnf")
    if args[:2] == ["versionlock", "add"] and len(args) > 2:
        def fn(w):
            locks = w.setdefault("dnf_versionlock", [])
            locks += [a for a in args[2:] if a not in locks]
        ctx.mutate(fn)
        for a in args[2:]:
            ctx.out("Adding versionlock on: %s" % a)
        return 0
    return ctx.unsupported()


def _rpm_format(ctx, fmt, key, ver):
    """A --queryformat for one package: %{TAG} and %-20{TAG} (rpm(8) QUERY FORMAT: NAME, VERSION, RELEASE,
    ARCH, EPOCH, NEVRA, NVRA, SUMMARY-less subset), backslash escapes \\n \\t \\r \\\\ expanded. An unknown tag:
    None (rpm: ``error: incorrect format: unknown tag: "TAG"``)."""
    import re
    name, version, release, arch = _rpm_fields(key, ver)
    nvr = "%s-%s-%s" % (name, version, release)
    tags = {"NAME": name, "VERSION": version, "RELEASE": release, "ARCH": arch, "EPOCH": "(none)",
            "NEVRA": nvr + "." + arch, "NVRA": nvr + "." + arch, "NEVR": nvr, "NVR": nvr}
    bad = []

    def tag(m):
        name = m.group(2).upper()
        if name not in tags:
            bad.append(m.group(2))
            return ""
        width = m.group(1)
        value = tags[name]
        if width:
            n = int(width)
            value = value.ljust(-n) if n < 0 else value.rjust(n)
        return value
    text = re.sub(r"%(-?\d+)?\{([A-Za-z_]+)\}", tag, fmt)
    if bad:
        ctx.err('error: incorrect format: unknown tag: "%s"' % bad[0])
        return None
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def rpm(ctx) -> int:
    """``rpm -q [--qf FORMAT] NAME...`` and ``rpm -qa [--qf FORMAT]``: installed packages (world["packages"],
    in the order they were installed: rpm lists its database in that order), by rpm name (a module stream's
    packages under theirs: nvidia-driver); NAME-VERSION-RELEASE.ARCH without a format; ``package NAME is not
    installed`` and exit 1 for a name that is not, as rpm prints it."""
    args = list(ctx.args)
    query = all_ = False
    fmt = None
    names = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--qf", "--queryformat") and i + 1 < len(args):
            fmt, i = args[i + 1], i + 2
            continue
        if a.startswith(("--qf=", "--queryformat=")):
            fmt = a.split("=", 1)[1]
        elif a in ("-q", "--query"):
            query = True
        elif a in ("-a", "--all"):
            all_ = True
        elif a in ("-qa", "-aq"):
            query = all_ = True
        elif a.startswith("-"):
            return ctx.unsupported()
        else:
            names.append(a)
        i += 1
    if not query:
        return ctx.unsupported()
    installed = ctx.world.get("packages", {})
    rc = 0
    if all_:
        picked = [(k, v) for k, v in installed.items() if not names or any(_rpm_matches(k, v, n) for n in names)]
        for k, v in picked:
            if fmt is None:
                ctx.out(_nevra(k, v))
                continue
            text = _rpm_format(ctx, fmt, k, v)
            if text is None:
                return 1
            ctx.out(text, end="")
        return 0
    for name in names:
        key = name if name in installed else next((k for k in installed if _rpm_matches(k, installed[k], name)), None)
        if key is None:
            ctx.out("package %s is not installed" % name)
            rc = 1
            continue
        if fmt:
            text = _rpm_format(ctx, fmt, key, installed[key])
            if text is None:
                return 1
            ctx.out(text, end="")
        else:
            ctx.out(_nevra(key, installed[key]))
    return rc


def ubuntu_drivers(ctx) -> int:
    w = ctx.world
    args = [a for a in ctx.args if a != "--gpgpu"]
    gpus = [d for d in w.get("pci", []) if d.get("vendor") == W.NVIDIA_VENDOR and str(d.get("class", "")).startswith("03")]
    if args == ["devices"]:
        for d in gpus:
            ctx.out("== /sys/devices/pci0000:00/%s ==" % W.pci_sysfs_name(d["slot"]))
            sv, sd = (d.get("subsystem") or "10de:0000").split(":")
            ctx.out("modalias : pci:v000010DEd0000%ssv0000%ssd0000%sbc%ssc%si00"
                    % (d["device"].upper(), sv.upper(), sd.upper(), d["class"][:2], d["class"][2:]))
            ctx.out("vendor   : NVIDIA Corporation")
            ctx.out("model    : %s" % (d.get("device_name") or "Device"))
            for br in sorted(DRIVER_BRANCHES, reverse=True):
                ctx.out("driver   : nvidia-driver-%s - distro non-free%s" % (br, " recommended" if br == RECOMMENDED_BRANCH else ""))
            ctx.out("driver   : xserver-xorg-video-nouveau - distro free builtin")
            ctx.out("")
        return 0
    if args in (["list"], ["list", "--recommended"]):
        for br in sorted(DRIVER_BRANCHES, reverse=True):
            if args == ["list"] or br == RECOMMENDED_BRANCH:
                ctx.out("nvidia-driver-%s" % br)
        return 0
    if args[:1] == ["install"] and len(args) <= 2:
        if not gpus:
            ctx.out("No drivers found for installation.")
            return 0
        br = RECOMMENDED_BRANCH
        if len(args) == 2:
            if not args[1].startswith("nvidia:") or args[1][7:] not in DRIVER_BRANCHES:
                ctx.err("ERROR: the %s driver is not available" % args[1])
                return 1
            br = args[1][7:]
        return _install_pkgs(ctx, ["nvidia-driver-%s" % br], "apt")
    return ctx.unsupported()


# ---------------------------------------------------------------------------------------------
# curl (the simulated internet), gpg, openssl

def _sim_urls(world):
    arch = world["host"].get("arch", "x86_64")
    tag = _distro_tag(world)
    return {
        "https://nvidia.github.io/libnvidia-container/gpgkey":
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n%s%s\n-----END PGP PUBLIC KEY BLOCK-----\n" % (KEY_MARK, CTK_FPR),
        "https://developer.download.nvidia.com/compute/cuda/repos/%s/%s/cuda-keyring_1.1-1_all.deb" % (tag, arch):
            DEB_MARK + "Package: cuda-keyring\nVersion: 1.1-1\n",
        # what `dnf config-manager --add-repo` fetches on the RHEL family (_add_repo_file)
        "https://developer.download.nvidia.com/compute/cuda/repos/%s/%s/cuda-%s.repo" % (tag, arch, tag):
            CUDA_REPO_FILE % {"tag": tag, "arch": arch},
    }


def is_local_url(url: str) -> bool:
    """http(s) on this machine (127.0.0.1, localhost): reached for real, not simulated."""
    import urllib.parse

    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def _fetched(ctx, url: str) -> None:
    """What the simulated host downloaded, in order (world["fetched"]): tests check from it where
    every download of a run went."""
    ctx.mutate(lambda world: world.setdefault("fetched", []).append(url))


def offline(world) -> bool:
    """The profile's network is down (network: {offline: true}): only this machine is reached."""
    return bool((world.get("network") or {}).get("offline"))


def fetch_local(ctx, url: str, head: bool = False) -> tuple[int, bytes, str]:
    """(curl's exit code, the body, curl's error message) of a real GET (``head``: HEAD) of a local
    URL: `-f` turns an HTTP error into exit 22 (curl(1) EXIT CODES), a refused connection is exit 7.
    A GET is recorded in world["fetched"]."""
    import urllib.error
    import urllib.request

    if not head:
        _fetched(ctx, url)
    try:
        req = urllib.request.Request(url, method="HEAD" if head else "GET")
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 — a local URL (is_local_url)
            return 0, resp.read(), ""
    except urllib.error.HTTPError as exc:
        return 22, b"", "The requested URL returned error: %d" % exc.code
    except (urllib.error.URLError, OSError):
        import urllib.parse

        parts = urllib.parse.urlsplit(url)
        return 7, b"", ("Failed to connect to %s port %s after 0 ms: Couldn't connect to server"
                        % (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))


def curl(ctx) -> int:
    """curl(1) as gpuwizard runs it: ``-fsSL -o FILE URL`` (a download) and ``-fsSI ... -o /dev/null
    URL ...`` (HEAD checks, several URLs at once: each ``-o`` is the next URL's, as curl pairs them),
    with ``-w/--write-out`` (after each transfer: %{exitcode}, %{http_code}, %{url_effective},
    %{errormsg}, \\n, \\t), ``--parallel`` and ``--parallel-max N`` (the transfers' order of output
    is theirs here). Without -w, a failed transfer prints ``curl: (N) MESSAGE`` to stderr. The exit
    code is the last failed transfer's."""
    args = list(ctx.args)
    outs: list = []
    urls: list = []
    head = False  # -I: the headers only (nothing written with -o /dev/null)
    fmt = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-o", "--output", "-w", "--write-out", "--parallel-max", "--max-time", "-m", "--connect-timeout"):
            if i + 1 >= len(args):
                return ctx.usage("curl: option %s: requires parameter" % a)
            if a in ("-o", "--output"):
                outs.append(args[i + 1])
            elif a in ("-w", "--write-out"):
                fmt = args[i + 1]
            i += 2
            continue
        if a.startswith("-") and not a.startswith("--") and set(a[1:]) <= set("fsSLIZ"):
            head = head or "I" in a
            i += 1
            continue
        if a in ("--fail", "--silent", "--show-error", "--location", "--head", "--parallel"):
            head = head or a == "--head"
            i += 1
            continue
        if a.startswith("-"):
            return ctx.unsupported()
        urls.append(a)
        i += 1
    if not urls:
        return ctx.usage("curl: no URL specified!\ncurl: try 'curl --help' or 'curl --manual' for more information")
    last = 0
    for n, url in enumerate(urls):
        out = outs[n] if n < len(outs) else None
        rc, code, message = _curl_transfer(ctx, url, out, head)
        if rc:
            last = rc
        if fmt is not None:
            text = (fmt.replace("%{exitcode}", str(rc)).replace("%{http_code}", "%03d" % code)
                    .replace("%{url_effective}", url).replace("%{errormsg}", message)
                    .replace("\\n", "\n").replace("\\t", "\t"))
            sys.stdout.write(text)
        elif rc:
            ctx.err("curl: (%d) %s" % (rc, message))
    return last


_INTERNET: dict = {}


def _internet(ctx) -> dict:
    """The simulated internet's files, built once per process (a curl of several URLs looks each up):
    NVIDIA's keys and repository files, the kind/kubectl/helm releases, the chart repositories."""
    if not _INTERNET:
        from gpuwizard.simulate import tools_cluster

        _INTERNET.update(tools_cluster.repo_indexes())
        _INTERNET.update(tools_cluster.release_urls(ctx.world))
        _INTERNET.update(_sim_urls(ctx.world))
    return _INTERNET


def _curl_transfer(ctx, url: str, out, head: bool):
    """One transfer: (exit code, HTTP status or 0, curl's error message or "")."""
    if is_local_url(url):
        # the simulated host's local network is the real one: a mirror served on 127.0.0.1 by a test
        rc, data, message = fetch_local(ctx, url, head=head)
        if rc:
            return rc, (404 if rc == 22 else 0), message
        if out == "/dev/null":
            return 0, 200, ""
        if out is None:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
        else:
            _write(out, data)
        return 0, 200, ""
    if offline(ctx.world):
        import urllib.parse

        return 6, 0, "Could not resolve host: %s" % urllib.parse.urlsplit(url).hostname
    body = _internet(ctx).get(url)
    if body is None:
        return 22, 404, "The requested URL returned error: 404"
    if head or out == "/dev/null":
        return 0, 200, ""
    _fetched(ctx, url)
    if out is None:
        sys.stdout.write(body if isinstance(body, str) else body.decode("utf-8", "replace"))
    else:
        _write(out, body)
    return 0, 200, ""


def gpg(ctx) -> int:
    args = [a for a in ctx.args if a not in ("--batch", "--yes", "--no-tty", "--quiet", "-q")]
    if args[:1] == ["--dearmor"] or "--dearmor" in args:
        args = [a for a in args if a != "--dearmor"]
        out = None
        if args[:1] in (["-o"], ["--output"]) and len(args) >= 2:
            out = args[1]
            args = args[2:]
        if len(args) != 1 or out is None:
            return ctx.unsupported("only `gpg --dearmor -o OUT IN` is")
        text = _read(args[0])
        if text is None:
            ctx.err("gpg: can't open '%s': No such file or directory" % args[0])
            return 2
        if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in text or KEY_MARK not in text:
            ctx.err("gpg: no valid OpenPGP data found.")
            return 2
        fpr = text.split(KEY_MARK, 1)[1].split()[0]
        _write(out, KEYRING_MARK + fpr.encode() + b"\n")
        return 0
    if args[:2] == ["--show-keys", "--with-colons"] and len(args) == 3:
        data = _read(args[2], binary=True)
        if not data or not data.startswith(KEYRING_MARK):
            ctx.err("gpg: no valid OpenPGP data found.")
            return 2
        fpr = data[len(KEYRING_MARK):].split()[0].decode()
        ctx.out("pub:-:4096:1:%s:1618424325:::-:::scESC::::::23::0:" % fpr[-16:])
        ctx.out("fpr:::::::::%s:" % fpr)
        ctx.out("uid:-::::1618424325::0F6E2D4F8D4B0A2B1A1F3C6E1C7B2A9D8E5F4C3B::NVIDIA CORPORATION (Open Source "
                "Projects) <cudatools@nvidia.com>::::::::::0:")
        return 0
    return ctx.unsupported()


def openssl(ctx) -> int:
    args = ctx.args
    if args[:1] != ["req"]:
        return ctx.unsupported()
    opts = {}
    i = 1
    while i < len(args):
        a = args[i]
        if a in ("-new", "-x509", "-nodes", "-noenc"):
            i += 1
            continue
        if a in ("-newkey", "-keyout", "-outform", "-out", "-days", "-subj", "-addext") and i + 1 < len(args):
            opts[a] = args[i + 1]
            i += 2
            continue
        return ctx.unsupported()
    if "-keyout" not in opts or "-out" not in opts:
        return ctx.usage("req: Use -help for summary.", 1)
    kid = os.urandom(8).hex()
    _write(opts["-keyout"], "-----BEGIN PRIVATE KEY-----\ngpuwizard-sim-private:%s\n-----END PRIVATE KEY-----\n" % kid, 0o600)
    _write(opts["-out"], ("gpuwizard-sim-cert:%s\n" % kid).encode())
    ctx.err(".+......+++++++++++++++++++++++++++++++++++++++*....+...+++++++++++++++++++++++++++++++++++++++*")
    ctx.err("-----")
    return 0


def mokutil_more(ctx) -> int:
    args = ctx.args
    host = ctx.world["host"]
    if args[:1] == ["--import"] and len(args) >= 2 and all(a in ("--root-pw", "--hash-file") or a == args[1] for a in args[1:]):
        key = _mok_key(ctx, args[1])
        if key is None:
            ctx.err("Abort!!! %s is not a valid x509 certificate in DER format" % args[1])
            return 255
        if key in host.get("mok_enrolled", []):
            ctx.out("SKIP: %s is already enrolled" % args[1])
            return 0

        def fn(world):
            pend = world["host"].setdefault("mok_pending", [])
            if key not in pend:
                pend.append(key)
        ctx.mutate(fn)
        return 0
    if args[:1] == ["--test-key"] and len(args) == 2:
        key = _mok_key(ctx, args[1])
        if key is None:
            ctx.err("Abort!!! %s is not a valid x509 certificate in DER format" % args[1])
            return 255
        if key in host.get("mok_enrolled", []):
            ctx.out("%s is already enrolled" % args[1])
            return 0
        if key in host.get("mok_pending", []):
            ctx.out("%s is already in the enrollment request" % args[1])
            return 0
        ctx.out("%s is not enrolled" % args[1])
        return 0
    if args == ["--list-new"]:
        for k in host.get("mok_pending", []):
            ctx.out("[key 1]\nSubject: CN=gpuwizard module signing key %s" % k)
        return 0
    return ctx.unsupported()


# ---------------------------------------------------------------------------------------------
# initramfs, modprobe

def update_initramfs(ctx) -> int:
    if ctx.args not in (["-u"], ["-u", "-k", "all"], ["-u", "-k", _kernel(ctx.world)]):
        return ctx.unsupported()
    ctx.out("update-initramfs: Generating /boot/initrd.img-%s" % _kernel(ctx.world))

    def fn(world):
        world["host"]["initramfs_builds"] = int(world["host"].get("initramfs_builds", 0)) + 1
    ctx.mutate(fn)
    return 0


def dracut(ctx) -> int:
    if ctx.args not in (["-f"], ["--force"], ["-f", "--regenerate-all"]):
        return ctx.unsupported()

    def fn(world):
        world["host"]["initramfs_builds"] = int(world["host"].get("initramfs_builds", 0)) + 1
    ctx.mutate(fn)
    return 0


def _module_exists(world, name):
    """A module modprobe can find in /lib/modules/<kernel> (modules.dep): the NVIDIA ones while a driver is
    installed (DKMS or the installer put them there), nouveau where the kernel ships it, the base ones."""
    if name in W.NVIDIA_MODULES:
        return bool(world.get("driver"))
    if name in W.NOUVEAU_MODULES:
        return bool(world["host"].get("nouveau")) or name in world.get("modules", [])
    return name in W.MODULE_INFO


def _module_deps(name):
    """The modules ``name`` depends on, nearest first (modules.dep order): those listing it among their users
    in MODULE_INFO, then theirs."""
    out = []
    todo = [name]
    while todo:
        cur = todo.pop(0)
        for mod, (_size, users) in W.MODULE_INFO.items():
            if cur in users and mod not in out and mod != name:
                out.append(mod)
                todo.append(mod)
    return out


def _unload(ctx, names, rmmod=False) -> int:
    """Unload modules from the world (shared by ``modprobe -r`` and ``rmmod``)."""
    errors = []
    w = ctx.world
    loaded = list(w.get("modules", []))
    removed = []
    rc = 0
    for raw in names:
        name = raw.replace("-", "_")
        if rmmod:
            if name not in loaded:
                errors.append("rmmod: ERROR: Module %s is not currently loaded" % name)
                rc = 1
                continue
            users = W.module_users(w, name, loaded)
            if users:
                # rmmod's message (kmod tools/rmmod.c check_module_inuse): the holders, or "in use" alone
                holders = [u for u in users if u in loaded]
                errors.append("rmmod: ERROR: Module %s is in use%s" % (name, " by: " + " ".join(holders) if holders else ""))
                rc = 1
                continue
            loaded.remove(name)
            removed.append(name)
            continue
        if not _module_exists(w, name) and name not in loaded:
            errors.append("modprobe: FATAL: Module %s not found." % name)
            rc = 1
            continue  # the next name is still tried (rmmod_all)
        if not _module_exists(w, name):
            # loaded, but its file is gone (the driver package's `dkms remove` took it): modprobe looks modules
            # up in modules.dep, not among the loaded ones (libkmod kmod_module_new_from_lookup), so it cannot
            # find it; rmmod can remove it
            errors.append("modprobe: FATAL: Module %s not found." % name)
            rc = 1
            continue
        if name not in loaded:
            continue  # nothing to do, and no message without --first-time (kmod tools/modprobe.c rmmod_do_module)
        if W.module_users(w, name, loaded):
            errors.append("modprobe: FATAL: Module %s is in use." % name)
            rc = 1
            continue
        loaded.remove(name)
        removed.append(name)
        for dep in _module_deps(name):  # then the modules it used that nothing uses now (step 4)
            if dep in loaded and not W.module_users(w, dep, loaded):
                loaded.remove(dep)
                removed.append(dep)
    if removed:
        def fn(world):
            world["modules"] = [m for m in world.get("modules", []) if m not in removed]
            if "nvidia" in removed:
                world.pop("stale_module", None)
                if world.get("driver"):
                    world["driver"]["loaded_version"] = None
        ctx.mutate(fn)
    for e in errors:
        ctx.err(e)
    return rc


def rmmod(ctx) -> int:
    """``rmmod MODULE...`` (kmod): each one as named, no dependencies; ``rmmod: ERROR: Module X is not
    currently loaded``; one in use: ``rmmod: ERROR: Module X is in use by: HOLDERS`` (exit 1)."""
    names = [a for a in ctx.args if not a.startswith("-")]
    if len(names) != len(ctx.args) or not names:
        return ctx.unsupported("only `rmmod MODULE...` is")
    return _unload(ctx, names, rmmod=True)


def modprobe(ctx) -> int:
    """``modprobe nvidia`` loads the driver's module (see _load_nvidia). ``modprobe -r MODULE...`` unloads,
    in kmod's order (tools/modprobe.c rmmod_do_module): a module still used (by a loaded module, or by a
    process: a container with the GPU open) is refused, ``modprobe: FATAL: Module nvidia is in use.``, exit 1;
    after a module goes, the modules it used that are now unused go too; a named module that is not loaded
    is skipped silently; one modprobe cannot find: ``modprobe: FATAL: Module X not found.``. The files the
    world renders for a loaded nvidia module (/proc/driver/nvidia/version, /sys/module/nvidia/version, its
    /proc/modules lines) go with it."""
    args = ctx.args
    if args[:1] in (["-r"], ["--remove"]) and len(args) > 1 and not any(a.startswith("-") for a in args[1:]):
        return _unload(ctx, args[1:])
    if args != ["nvidia"]:
        return ctx.unsupported()
    errors = []

    def fn(world):
        err = _load_nvidia(world, ctx.root)
        if err:
            errors.append(err)
            return False
    ctx.mutate(fn)
    if errors:
        ctx.err("modprobe: " + errors[0])
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# sh: only the NVIDIA driver and CUDA .run installers

def sh(ctx) -> int:
    args = ctx.args
    if not args or not args[0].endswith(".run") or args[0].startswith("-"):
        return ctx.unsupported("only `sh <NVIDIA or CUDA .run file> <flags>` is")
    path, flags = args[0], args[1:]
    name = os.path.basename(path)
    if not os.path.isfile(path):
        ctx.err("sh: 0: cannot open %s: No such file" % path)
        return 2
    if name.startswith("NVIDIA-Linux-") and name.endswith(".run"):
        return _driver_installer(ctx, path, name[len("NVIDIA-Linux-"):-4].split("-", 1), flags)
    if name.startswith("cuda_") and name.endswith("_linux.run"):
        return _cuda_installer(ctx, name[5:-10].split("_"), flags)
    return ctx.unsupported("only the NVIDIA driver and CUDA .run installers are")


def _driver_installer(ctx, path, arch_ver, flags) -> int:
    if len(arch_ver) != 2:
        return ctx.unsupported()
    arch, version = arch_ver
    w = ctx.world
    opts = {}
    for f in flags:
        if f in ("--silent", "-s", "--dkms", "--no-nouveau-check", "--no-questions", "--ui=none", "--disable-nouveau",
                 "--no-x-check", "--rebuild-initramfs"):
            opts[f] = True
        elif f.startswith(("--kernel-module-type=", "--module-signing-secret-key=", "--module-signing-public-key=")):
            k, v = f.split("=", 1)
            opts[k] = v
        else:
            ctx.err("ERROR: Unrecognized option: '%s'; please run `%s --help` for usage information." % (f, os.path.basename(path)))
            return 1
    if "--silent" not in opts and "-s" not in opts:
        return ctx.unsupported("the interactive installer is not; pass --silent")
    br = version.split(".")[0]
    if br not in DRIVER_BRANCHES or DRIVER_BRANCHES[br][0] != version:
        ctx.err("Verifying archive integrity... Error in check sums 1473729911 2849384432")
        return 1
    ctx.out("Verifying archive integrity... OK")
    ctx.out("Uncompressing NVIDIA Accelerated Graphics Driver for Linux-%s %s%s" % (arch, version, "." * 60))
    ctx.out("")
    ctx.out("Welcome to the NVIDIA Software Installer for Unix/Linux")
    ctx.out("")
    ctx.out("Detected %d CPUs online; setting concurrency level to %d." % (w["host"].get("cpus", 4), w["host"].get("cpus", 4)))
    ctx.out("Installing NVIDIA driver version %s." % version)
    k = _kernel(w)
    if "nouveau" in w.get("modules", []) and "--no-nouveau-check" not in opts:
        _write(_p(ctx, "/etc/modprobe.d/nvidia-installer-disable-nouveau.conf"),
               "# generated by nvidia-installer\nblacklist nouveau\noptions nouveau modeset=0\n")
        ctx.err("ERROR: The Nouveau kernel driver is currently in use by your system.  This driver is incompatible "
                "with the NVIDIA driver, and must be disabled before proceeding.  Please consult the NVIDIA driver "
                "README and your Linux distribution's documentation for details on how to correctly disable the "
                "Nouveau kernel driver.")
        ctx.err("ERROR: Installation has failed.  Please see the file '/var/log/nvidia-installer.log' for details.")
        return 1
    if not headers_present(ctx):
        ctx.err("ERROR: Unable to find the kernel source tree for the currently running kernel.  Please make sure "
                "you have installed the kernel source files for your kernel and that they are properly configured; "
                "on Red Hat Linux systems, for example, be sure you have the 'kernel-source' or 'kernel-devel' RPM "
                "installed.  If you know the correct kernel source files are installed, you may specify the kernel "
                "source path with the '--kernel-source-path' command line option.")
        ctx.err("ERROR: Installation has failed.  Please see the file '/var/log/nvidia-installer.log' for details.")
        return 1
    ctx.out("Kernel source path: '/lib/modules/%s/build'" % k)
    ctx.out("Performing Compiler check.")
    ctx.out("Performing Dom0 check.")
    ctx.out("Performing Xen check.")
    ctx.out("Performing PREEMPT_RT check.")
    ctx.out("Performing vgpu_kvm check.")
    ctx.out("Cleaning kernel module build directory.")
    ctx.out("Building kernel modules")
    ctx.out("  : [##############################] 100%")
    ctx.out("Kernel module compilation complete.")
    key = None
    if opts.get("--module-signing-secret-key") and opts.get("--module-signing-public-key"):
        key = _mok_key(ctx, opts["--module-signing-public-key"])
        if key is None or not os.path.isfile(opts["--module-signing-secret-key"]):
            ctx.err("ERROR: Unable to sign the kernel module: the module signing key pair is not usable.")
            return 1
        ctx.out("Signing kernel module with the provided key pair.")
    elif w["host"].get("secure_boot"):
        # the silent default: "Install without signing" (install-from-cwd.c)
        ctx.out("WARNING: The kernel module will not be signed; with Secure Boot enabled it cannot be loaded.")
    errors = []

    def fn(world):
        _install_driver(world, version, DRIVER_BRANCHES[br][1], "runfile", signing_key=key,
                        module=opts.get("--kernel-module-type"))
        err = _load_nvidia(world, ctx.root)
        if err and "Key was rejected" in err and not key:
            errors.append(err)
    ctx.mutate(fn)
    _write(_p(ctx, "/var/log/nvidia-installer.log"), "nvidia-installer log file\ninstalled %s\n" % version)
    if errors:
        ctx.err("ERROR: Unable to load the kernel module 'nvidia.ko'.  This happens most frequently when this kernel "
                "module was built against the wrong or improperly configured kernel sources ... (%s)" % errors[0])
        ctx.err("ERROR: Installation has failed.  Please see the file '/var/log/nvidia-installer.log' for details.")
        return 1
    ctx.out("Installation of the kernel module for the NVIDIA Accelerated Graphics Driver for Linux-%s (version %s) "
            "is now complete." % (arch, version))
    return 0


def _cuda_installer(ctx, parts, flags) -> int:
    if len(parts) != 2:
        return ctx.unsupported()
    sdk, drv = parts
    xy = ".".join(sdk.split(".")[:2])
    if xy not in CUDA_RELEASES or CUDA_RELEASES[xy][1] != sdk:
        ctx.err("Extraction failed.")
        return 1
    if "--silent" not in flags:
        return ctx.unsupported("the interactive installer is not; pass --silent")
    for f in flags:
        if f not in ("--silent", "--toolkit", "--driver", "--override", "--no-opengl-libs", "--no-drm") and \
                not f.startswith(("--toolkitpath=", "--tmpdir=")):
            ctx.err("Unknown option: %s" % f)
            return 1
    if "--driver" in flags:
        return ctx.unsupported("installing the bundled driver is not")
    if "--toolkit" not in flags:
        ctx.err("No components selected: pass --toolkit (and/or --driver).")
        return 1

    def fn(world):
        _add_toolkit(world, xy)
    ctx.mutate(fn)
    home = "/usr/local/cuda-%s" % xy
    ctx.out("")
    ctx.out("===========\n= Summary =\n===========")
    ctx.out("")
    ctx.out("Driver:   Not Selected")
    ctx.out("Toolkit:  Installed in %s/" % home)
    ctx.out("")
    ctx.out("Please make sure that")
    ctx.out(" -   PATH includes %s/bin" % home)
    ctx.out(" -   LD_LIBRARY_PATH includes %s/lib64, or, add %s/lib64 to /etc/ld.so.conf and run ldconfig as root"
            % (home, home))
    ctx.out("")
    ctx.out("To uninstall the CUDA Toolkit, run cuda-uninstaller in %s/bin" % home)
    ctx.out("***WARNING: Incomplete installation! This installation did not install the CUDA Driver. A driver of "
            "version at least %s.00 is required for CUDA %s functionality to work." % (drv.split(".")[0], xy))
    ctx.out("")
    ctx.out("Logfile is /var/log/cuda-installer.log")
    return 0


# ---------------------------------------------------------------------------------------------
# nvidia-ctk runtime configure

def nvidia_ctk_runtime(ctx) -> int:
    args = ctx.args[2:]
    runtime = "docker"
    default = False
    cdi = False
    dry = False
    for a in args:
        if a.startswith("--runtime="):
            runtime = a.split("=", 1)[1]
        elif a in ("--set-as-default", "--set-as-default=true"):
            default = True
        elif a in ("--cdi.enabled", "--enable-cdi", "--cdi.enabled=true"):
            cdi = True
        elif a == "--dry-run":
            dry = True
        else:
            ctx.err("Incorrect Usage: flag provided but not defined: -%s" % a.lstrip("-"))
            return 1
    json = __import__("json")
    if runtime == "docker":
        path = "/etc/docker/daemon.json"
        text = _read(_p(ctx, path))
        if text is None or not text.strip():
            _ctk_log("info", "Config file does not exist; using empty config")
            cfg = {}
        else:
            _ctk_log("info", "Loading config from %s" % path)
            try:
                cfg = json.loads(text)
            except ValueError as e:
                ctx.err("ERROR[0000] unable to load config for runtime docker: unable to load config: %s" % e)
                return 1
        cfg.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
        if default:
            cfg["default-runtime"] = "nvidia"
        if cdi:
            # like nvidia-ctk up to v1.20.0: --cdi.enabled replaces the whole "features" object
            cfg["features"] = {"cdi": True}
        # sorted keys, 4-space indent and no newline at the end, as v1.19.1 leaves the file
        # (../shared/upstream/nvidia-ctk/v1.19.1-configure-session.txt: the trace follows the "}")
        out = json.dumps(cfg, indent=4, sort_keys=True)
        if dry:
            sys.stdout.write(out)
            return 0
        _write(_p(ctx, path), out)
        _ctk_log("info", "Wrote updated config to %s" % path)
        _ctk_log("info", "It is recommended that docker daemon be restarted.")
        return 0
    if runtime == "containerd":
        return _ctk_containerd(ctx, (ctx.world.get("nvidia_ctk") or {}).get("version") or CTK_VERSION, default, cdi, dry)
    ctx.err("ERROR[0000] unrecognized runtime '%s'" % runtime)
    return 1


# nvidia-ctk runtime configure --runtime=containerd, per toolkit release. Facts (no code) from
# NVIDIA/nvidia-container-toolkit at the tags named: cmd/nvidia-ctk/runtime/configure/configure.go,
# pkg/config/engine/containerd/{containerd,config,config_v1,config_v2,config_drop_in}.go, and the real
# v1.19.1 run in ../shared/upstream/nvidia-ctk/v1.19.1-configure-session.txt (log lines, file layout).
# * the source is config.toml alone (--config-source=file). Its version: an empty or missing file
#   takes 2, a file without `version` is 1 (parseVersion). The CRI plugin: 1 "cri", 2
#   "io.containerd.grpc.v1.cri", 3+ "io.containerd.cri.v1.runtime"; before v1.17.4 only 1 and 2
#   ("unsupported config version: 3") and no "Using config version" log lines.
# * the nvidia runtime's table: a copy of the default (non-nvidia) runtime's, else runc's, else crun's;
#   else defaults (runtime_type io.containerd.runc.v2, runtime_root "", runtime_engine "",
#   privileged_without_host_devices false) with a warning; then options.BinaryName (v1: also
#   options.Runtime) = /usr/bin/nvidia-container-runtime. Up to 1.17.x an existing nvidia table is
#   kept when no low-level runtime is there to copy.
# * --set-as-default: default_runtime_name = "nvidia" (v1 before 1.17.4: the deprecated
#   default_runtime table). From 1.18 without it, a default_runtime_name "nvidia" is removed.
# * --cdi.enabled: plugins.<cri>.enable_cdi = true (v1: plugins.cri.containerd.enable_cdi); before
#   v1.17.5 a top-level enable_cdi = true.
# * up to 1.17.x config.toml is rewritten in place. From 1.18 (version 2+) the runtime goes to a
#   drop-in that starts from config.toml's whole CRI plugin section; config.toml, rewritten, gets the
#   drop-in's directory + "/*.toml" in `imports` (and `version` if it was empty). The drop-in is
#   /etc/containerd/config.d/99-nvidia.toml in v1.18.0, which also replaces config.toml's imports
#   with its own; /etc/containerd/conf.d/99-nvidia.toml from v1.18.1, which keeps them. A version-1
#   config is edited whole and saved to the drop-in path, config.toml untouched.
# * files are written by go-toml v1: keys sorted, values before tables, two spaces per level.

CTK_CRI = {1: "cri", 2: "io.containerd.grpc.v1.cri"}
CTK_CRI_V3 = "io.containerd.cri.v1.runtime"


def _ctk_log(level, msg):
    """A log line as nvidia-ctk prints it to a pipe (logrus text format, as in the v1.19.1 capture)."""
    import json
    import time
    sys.stderr.write('time="%s" level=%s msg=%s\n' % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), level,
                                                      json.dumps(msg)))


def _tkey(k):
    import json
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else json.dumps(k, ensure_ascii=False)


def _tval(v):
    import json
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_tval(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s = %s" % (_tkey(k), _tval(x)) for k, x in v.items()) + "}"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return v.isoformat() if hasattr(v, "isoformat") else json.dumps(str(v))


def _toml_dump(doc):
    """go-toml v1's layout (the v1.19.1 capture)."""
    out = []

    def is_tables(v):
        return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)

    def emit(node, prefix, depth):
        pad = "  " * depth
        keys = sorted(node)
        for k in keys:
            if not isinstance(node[k], dict) and not is_tables(node[k]):
                out.append("%s%s = %s" % (pad, _tkey(k), _tval(node[k])))
        for k in keys:
            name = prefix + [_tkey(k)]
            if isinstance(node[k], dict):
                out.append("")
                out.append("%s[%s]" % (pad, ".".join(name)))
                emit(node[k], name, depth + 1)
            elif is_tables(node[k]):
                for item in node[k]:
                    out.append("")
                    out.append("%s[[%s]]" % (pad, ".".join(name)))
                    emit(item, name, depth + 1)

    emit(doc, [], 0)
    while out and out[0] == "":
        out.pop(0)
    return "\n".join(out) + "\n" if out else ""


def _subtable(doc, *keys):
    """doc[k1][k2]..., made on the way (a non-table in the way is replaced, as go-toml's SetPath does)."""
    for k in keys:
        if not isinstance(doc.get(k), dict):
            doc[k] = {}
        doc = doc[k]
    return doc


def _ctk_containerd(ctx, version, default, cdi, dry) -> int:
    import copy
    import tomllib  # lazy: only this branch reads TOML

    from gpuwizard import versions as V
    path = "/etc/containerd/config.toml"
    real = _p(ctx, path)
    if os.path.isdir(real):
        _ctk_log("error", "unable to load config for runtime containerd: failed to load config: config file %s is a "
                 "directory" % path)
        return 1
    try:
        source = tomllib.loads(_read(real) or "")
    except tomllib.TOMLDecodeError as e:
        _ctk_log("error", "unable to load config for runtime containerd: failed to load config: %s" % e)
        return 1
    since_1174 = V.compare(version, "1.17.4") >= 0
    if not source:
        cfg_version = 2
    elif "version" not in source:
        cfg_version = 1
    elif isinstance(source["version"], int) and not isinstance(source["version"], bool):
        cfg_version = source["version"]
    else:
        _ctk_log("error", "unable to load config for runtime containerd: failed to parse config version: unsupported "
                 "type for version field: %s" % source["version"])
        return 1
    if not since_1174 and cfg_version not in (1, 2):
        _ctk_log("error", "unable to load config for runtime containerd: unsupported config version: %d" % cfg_version)
        return 1
    plugin = CTK_CRI.get(cfg_version, CTK_CRI_V3)
    if since_1174:
        _ctk_log("info", "Using config version %d" % cfg_version)
        _ctk_log("info", 'Using CRI runtime plugin name "%s"' % plugin)
    if V.compare(version, "1.18.0") < 0:
        drop_in = None
    elif V.compare(version, "1.18.1") < 0:
        drop_in = "/etc/containerd/config.d/99-nvidia.toml"
    else:
        drop_in = "/etc/containerd/conf.d/99-nvidia.toml"
    src_cri = (source.get("plugins") or {}).get(plugin) if isinstance(source.get("plugins"), dict) else None
    src_cri = src_cri if isinstance(src_cri, dict) else {}
    in_place = drop_in is None or cfg_version == 1
    if in_place:
        dest = copy.deepcopy(source)
    else:
        dest = {"plugins": {plugin: copy.deepcopy(src_cri)}} if src_cri else {}
    dest["version"] = cfg_version
    cri = _subtable(dest, "plugins", plugin)
    node = _subtable(cri, "containerd")
    runtimes = _subtable(node, "runtimes")
    src_node = src_cri.get("containerd")
    src_node = src_node if isinstance(src_node, dict) else {}
    src_runtimes = src_node.get("runtimes")
    src_runtimes = src_runtimes if isinstance(src_runtimes, dict) else {}
    low = src_node.get("default_runtime_name")
    low_level = ([low] if isinstance(low, str) and low and not low.startswith("nvidia") else []) + ["runc", "crun"]
    found = next((r for r in low_level if isinstance(src_runtimes.get(r), dict)), None)
    if found is not None:
        runtimes["nvidia"] = copy.deepcopy(src_runtimes[found])
    elif drop_in is not None or not isinstance(runtimes.get("nvidia"), dict):
        if drop_in is None:
            _ctk_log("warning", "could not infer options from runtimes [%s]; using defaults" % " ".join(low_level))
        else:
            _ctk_log("warning", "Could not infer options from runtimes [%s]" % " ".join(low_level))
        runtimes["nvidia"] = {"runtime_type": "io.containerd.runc.v2", "runtime_root": "", "runtime_engine": "",
                              "privileged_without_host_devices": False}
    binary = "/usr/bin/nvidia-container-runtime"
    options = _subtable(runtimes["nvidia"], "options")
    options["BinaryName"] = binary
    if cfg_version == 1:
        options["Runtime"] = binary
    if default:
        if cfg_version == 1 and not since_1174:
            legacy = node.get("default_runtime")
            if not isinstance(legacy, dict):
                legacy = node["default_runtime"] = {"runtime_type": "io.containerd.runc.v2", "runtime_root": "",
                                                    "runtime_engine": "", "privileged_without_host_devices": False}
            _subtable(legacy, "options").update({"BinaryName": binary, "Runtime": binary})
        else:
            node["default_runtime_name"] = "nvidia"
    elif drop_in is not None and node.get("default_runtime_name") == "nvidia":
        del node["default_runtime_name"]
    if cdi:
        if V.compare(version, "1.17.5") < 0:
            dest["enable_cdi"] = True
        elif cfg_version == 1:
            node["enable_cdi"] = True
        else:
            cri["enable_cdi"] = True
    writes = []  # (path, text), in the order nvidia-ctk saves them
    if drop_in is None:
        writes.append((path, _toml_dump(dest)))
    elif in_place:
        writes.append((drop_in, _toml_dump(dest)))  # the version-1 config, whole, where config.toml does not look
    else:
        top = copy.deepcopy(source)
        pattern = os.path.dirname(drop_in) + "/*.toml"
        imports = top.get("imports")
        kept = [i for i in imports if isinstance(i, str)] if isinstance(imports, list) and drop_in.endswith("/conf.d/99-nvidia.toml") else []
        if pattern not in kept:
            if not top:
                top["version"] = cfg_version
            top["imports"] = kept + [pattern]
        writes += [(drop_in, _toml_dump(dest)), (path, _toml_dump(top))]
    if dry:
        for i, (_target, text) in enumerate(writes):
            if drop_in is not None and not in_place:
                _ctk_log("info", "Drop-in config:" if i == 0 else "Top-level config:")
            sys.stdout.write(text + "\n")
        return 0
    for p, text in writes:
        _write(_p(ctx, p), text)
    _ctk_log("info", "Wrote updated config to %s" % writes[0][0])
    _ctk_log("info", "It is recommended that containerd daemon be restarted.")
    return 0


# ---------------------------------------------------------------------------------------------
# docker run --rm --gpus all IMAGE nvidia-smi

CUDA_BANNER = """
==========
== CUDA ==
==========

CUDA Version %s

Container image Copyright (c) 2016-2023, NVIDIA CORPORATION & AFFILIATES. All rights reserved.

This container image and its contents are governed by the NVIDIA Deep Learning Container License.
By pulling and using the container, you accept the terms and conditions of this license:
https://developer.nvidia.com/ngc/nvidia-deep-learning-container-license

A copy of this license is made available in this container at /NGC-DL-CONTAINER-LICENSE for your convenience.
"""


def _docker_runtime_binary(ctx, name) -> str | None:
    """The binary of the loaded runtime ``name`` when it is missing (None: present, or runc's own)."""
    from gpuwizard.simulate import tools as T
    if not name or name in ("runc", "io.containerd.runc.v2"):
        return None
    path = (T._docker_runtimes(ctx.world).get(name) or {}).get("path") or name
    if path.startswith("/"):
        return None if os.path.exists(os.path.join(str(ctx.root), path.lstrip("/"))) else path
    return None if path in W.installed_tools(ctx.world) else path


def _docker_cli_trailer(ctx, cmd: str) -> None:
    """The docker CLI's last lines after a daemon error: "See 'docker run --help'." up to 27.x
    (Debian's 20.10.24: ../shared/research/real-world.md; 17.09: NVIDIA/nvidia-docker#501), a blank
    line and "Run 'docker run --help' for more information" from 28 (a real 28.2.2 client)."""
    from gpuwizard import versions as V
    if V.at_least(ctx.world["docker"]["version"], "28"):
        ctx.err("")
        ctx.err("Run 'docker %s --help' for more information" % cmd)
    else:
        ctx.err("See 'docker %s --help'." % cmd)


def docker_run(ctx, args) -> int:
    from gpuwizard.simulate import tools as T
    w = ctx.world
    gpus = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        if a == "--rm":  # accepted and moot: the simulated container leaves nothing behind
            i += 1
        elif a == "--gpus" and i + 1 < len(args):
            gpus = args[i + 1]
            i += 2
        elif a.startswith("--gpus="):
            gpus = a.split("=", 1)[1]
            i += 1
        else:
            return ctx.unsupported()
    rest = args[i:]
    if not rest or rest[1:] != ["nvidia-smi"] or gpus is None:
        return ctx.unsupported("only `docker run --rm --gpus … IMAGE nvidia-smi` is")
    image = rest[0]
    name, _, tag = image.rpartition(":")
    # nvidia/cuda from Docker Hub, or from a registry mirroring it (<registry>[/path]/nvidia/cuda)
    if not (name == "nvidia/cuda" or (name.endswith("/nvidia/cuda") and "." in name.split("/")[0] + ":"
                                      and ("." in name.split("/")[0] or ":" in name.split("/")[0]))):
        return ctx.unsupported("only nvidia/cuda images are")
    repo_path = name if name == "nvidia/cuda" else name.split("/", 1)[1]
    cuda = tag.split("-")[0]
    pulled = w.get("docker_images", [])
    if image not in pulled and offline(w):
        registry = "registry-1.docker.io" if name == "nvidia/cuda" else name.split("/")[0].split(":")[0]
        ctx.err("Unable to find image '%s' locally" % image)
        ctx.err('docker: Error response from daemon: Get "https://%s/v2/": dial tcp: lookup %s on 127.0.0.53:53: '
                'server misbehaving.' % (registry, registry))
        ctx.err("Run 'docker run --help' for more information")
        return 125
    if image not in pulled:
        ctx.err("Unable to find image '%s' locally" % image)
        ctx.err("%s: Pulling from %s" % (tag, repo_path))
        ctx.err("Digest: sha256:%s" % ("8f9dd0d09d3ad3900357a1cf7f887888b5b74056636cd6ef03c160c3cd4b1d95"))
        ctx.err("Status: Downloaded newer image for %s" % image)

        def fn(world):
            world.setdefault("docker_images", []).append(image)
        ctx.mutate(fn)
        w = ctx.world
    default = ((w.get("docker") or {}).get("loaded_config") or {}).get("default-runtime")
    binary = _docker_runtime_binary(ctx, default)
    if binary is not None:
        # the default runtime's binary is gone: dockerd started with it listed, the container cannot
        # (NVIDIA/nvidia-container-runtime#98; exit 127: ../shared/research/real-world.md)
        ctx.err('docker: Error response from daemon: OCI runtime create failed: unable to retrieve OCI runtime error '
                '(open /run/containerd/io.containerd.runtime.v1.linux/moby/%s/log.json: no such file or directory): '
                'exec: "%s": executable file not found in $PATH: unknown.' % ("0" * 64, binary))
        _docker_cli_trailer(ctx, "run")
        return 127
    if w.get("nvidia_ctk") is None:
        ctx.err('docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].')
        _docker_cli_trailer(ctx, "run")
        return 125
    if not W.driver_loaded(w) or not w.get("driver") or w["driver"].get("loaded_version") != w["driver"].get("version"):
        ctx.err("docker: Error response from daemon: failed to create task for container: failed to create shim task: "
                "OCI runtime create failed: runc create failed: unable to start container process: error during "
                "container init: error running hook #0: error running hook: exit status 1, stdout: , stderr: "
                "Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization error: nvml error: driver not "
                "loaded: unknown.")
        _docker_cli_trailer(ctx, "run")
        return 125
    from gpuwizard import versions as V  # lazy: packaging brings re and typing, and most tools never compare
    drv_cuda = w["driver"].get("cuda_version") or "0"
    try:
        need = V.major_minor(cuda)  # the image's CUDA X.Y; the container's requirement is cuda>=X.Y
    except ValueError:
        need = None  # a tag without a CUDA version in front: no requirement to check
    if need is not None and V.compare(need, drv_cuda) > 0:
        ctx.err("docker: Error response from daemon: failed to create task for container: failed to create shim task: "
                "OCI runtime create failed: runc create failed: unable to start container process: error during "
                "container init: error running hook #0: error running hook: exit status 1, stdout: , stderr: "
                "Auto-detected mode as 'legacy'\nnvidia-container-cli: requirement error: unsatisfied condition: "
                "cuda>=%s, please update your driver to a newer version, or use an earlier cuda container: unknown."
                % need)
        _docker_cli_trailer(ctx, "run")
        return 125
    ctx.out(CUDA_BANNER % cuda)
    sys.stdout.write(T.render_smi_table(w))
    return 0
