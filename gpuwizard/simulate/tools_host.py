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
"""
import os
import sys

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
    world["driver"] = {
        "version": version, "cuda_version": cuda, "kind": kind,
        "signed": bool(signing_key), "loaded_version": old.get("loaded_version") if W.driver_loaded(world) else None,
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


def _apply_package(ctx, world, name):
    """Effects of installing a package. Returns an error text (dpkg failed) or None."""
    root = ctx.root
    k = _kernel(world)
    if name.startswith(("linux-headers-", "kernel-devel-")):
        src = "/usr/src/linux-headers-%s" % k
        _write(_p(ctx, src + "/Makefile"), "# simulated kernel headers for %s\n" % k)
        link = _p(ctx, "/lib/modules/%s/build" % k)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(_p(ctx, src), link)
        return None
    if name == "nvidia-open-kernel-dkms":
        if world.get("driver"):
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
        _install_driver(world, full, cuda, "apt" if debianish(world) else "dnf", signing_key=key, module=module)
        _dkms_build(ctx, world, full)
        return None
    if name in ("nvidia-open", "cuda-drivers"):  # NVIDIA's rhel10 packages (any rhel after a module enable)
        if not os.path.exists(_p(ctx, "/lib/modules/%s/build" % k)):
            return ("Error! Your kernel headers for kernel %s cannot be found at /lib/modules/%s/build or "
                    "/lib/modules/%s/source." % (k, k, k))
        full, cuda = DRIVER_BRANCHES[_locked_branch(world) or max(DRIVER_BRANCHES, key=int)]
        key = _mok_key(ctx, _p(ctx, _dkms_certificate(world))) if world["host"].get("secure_boot") else None
        _install_driver(world, full, cuda, "dnf", signing_key=key, module="open" if name == "nvidia-open" else None)
        _dkms_build(ctx, world, full)
        return None
    if name == "nvidia-container-toolkit":
        world["nvidia_ctk"] = {"version": CTK_VERSION, "commit": "a470818ba7d9166be282cd0039dd2fc9b0a34d73"}
        return None
    if name == "docker.io":
        world["docker"] = {"version": "24.0.7", "build": "24.0.7-0ubuntu2~22.04.1", "api_version": "1.43",
                           "go_version": "go1.21.1", "runc_version": "1.1.12-0ubuntu2~22.04.1",
                           "built": "Wed Apr 17 20:08:25 2024", "daemon_json": None}
        if world.get("containerd") is None:
            world["containerd"] = {"version": "1.7.12", "package": "github.com/containerd/containerd", "revision": ""}
        svcs = world.setdefault("services", {})
        svcs["docker"] = {"enabled": True, "active": True, "description": "Docker Application Container Engine"}
        svcs.setdefault("containerd", {"enabled": True, "active": True, "description": "containerd container runtime"})
        W.docker_reload(root, world)
        return None
    if name.startswith("cuda-toolkit-"):
        _add_toolkit(world, name[len("cuda-toolkit-"):].replace("-", "."))
        return None
    return None


def _dkms_certificate(world):
    """The certificate of the key this distribution's DKMS signs modules with: Ubuntu's dkms is patched
    for shim-signed's MOK; Debian's (upstream's) uses /var/lib/dkms/mok.pub (real-world.md, Debian 12)."""
    return "/var/lib/shim-signed/mok/MOK.der" if ubuntu(world) else "/var/lib/dkms/mok.pub"


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
    words = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-o" and i + 1 < len(args):
            i += 2
            continue
        if a.startswith("-"):
            if a not in ("-y", "--yes", "-q", "-qq", "--quiet", "--no-install-recommends", "--assume-yes"):
                return None, a
            i += 1
            continue
        words.append(a)
        i += 1
    return words, None


def apt_get(ctx) -> int:
    words, bad = _apt_opts(ctx.args)
    if words is None:
        return ctx.usage("E: Command line option '%s' is not understood in combination with the other options." % bad, 100)
    if not words:
        return ctx.usage("apt 2.4.13 (amd64)\nUsage: apt-get [options] command", 1)
    verb, pkgs = words[0], words[1:]
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
    if verb in ("remove", "purge", "upgrade", "dist-upgrade", "autoremove"):
        return ctx.unsupported()
    return ctx.usage("E: Invalid operation %s" % verb, 100)


def _install_pkgs(ctx, pkgs, mgr) -> int:
    cat = _catalogue(ctx)
    w = ctx.world
    installed = w.get("packages", {})
    avail = set(w.get("apt_repos" if mgr == "apt" else "dnf_repos", []))
    if mgr == "dnf":
        avail = {n for n, (u, e) in _repos_configured(ctx).items() if not e}
    if mgr == "apt":
        ctx.out("Reading package lists...\nBuilding dependency tree...\nReading state information...")
    else:
        ctx.out("Updating and loading repositories:\nRepositories loaded.")
    new = []
    for p in pkgs:
        entry = cat.get(p)
        if entry is None or (entry[1] is not None and entry[1] not in avail):
            if mgr == "apt":
                ctx.err("E: Unable to locate package %s" % p)
                return 100
            ctx.err("No match for argument: %s\nError: Unable to find a match: %s" % (p, p))
            return 1
        if p in installed:
            ctx.out("%s is already the newest version (%s)." % (p, installed[p]))
        else:
            new.append(p)
    if not new:
        ctx.out("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    ctx.out("The following NEW packages will be installed:")
    ctx.out("  " + " ".join(new))
    ctx.out("0 upgraded, %d newly installed, 0 to remove and 0 not upgraded." % len(new))
    ctx.out("Need to get 312 MB of archives.")
    errors = []

    def fn(world):
        pk = world.setdefault("packages", {})
        for p in new:
            err = _apply_package(ctx, world, p)
            if err:
                errors.append((p, err))
                return None
            pk[p] = cat[p][0]
    for p in new:
        ctx.out("Get:1 %s %s [%s]" % ("http://archive.ubuntu.com/ubuntu jammy-updates/restricted amd64", p, cat[p][0]))
    ctx.mutate(fn)
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


def dpkg(ctx) -> int:
    args = ctx.args
    w = ctx.world
    if len(args) == 2 and args[0] in ("-s", "--status"):
        name = args[1]
        ver = w.get("packages", {}).get(name)
        if ver is None:
            ctx.err("dpkg-query: package '%s' is not installed and no information is available" % name)
            ctx.err("Use dpkg --info (= dpkg-deb --info) to examine archive files.")
            return 1
        ctx.out("Package: %s\nStatus: install ok installed\nPriority: optional\nVersion: %s" % (name, ver))
        return 0
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
        if name == "cuda-keyring":
            tag = _distro_tag(w)
            arch = w["host"].get("arch", "x86_64")
            _write(_p(ctx, "/usr/share/keyrings/cuda-archive-keyring.gpg"), KEYRING_MARK + CUDA_FPR.encode() + b"\n")
            _write(_p(ctx, "/etc/apt/sources.list.d/cuda-%s-%s.list" % (tag, arch)),
                   "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
                   "https://developer.download.nvidia.com/compute/cuda/repos/%s/%s/ /\n" % (tag, arch))

        def fn(world):
            world.setdefault("packages", {})[name] = ver
        ctx.mutate(fn)
        return 0
    if args[:1] in (["-l"], ["--list"], ["-L"]):
        return ctx.unsupported()
    return ctx.usage("dpkg: error: need an action option\n\nType dpkg --help for help about installing and "
                     "deinstalling packages [*];", 2)


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


def dnf(ctx) -> int:
    """dnf 4 (RHEL 8/9) and dnf5 (RHEL 10), as far as gpuwizard drives them: install, module install
    (dnf 4 only: dnf5 has no module streams to install from NVIDIA's rhel10 repository), config-manager
    (dnf 4 ``--add-repo URL``; dnf5 ``addrepo --from-repofile=URL``, dnf5-config-manager(8): dnf5
    removed ``--add-repo``), versionlock add."""
    args = [a for a in ctx.args if a not in ("-y", "--assumeyes", "-q", "--quiet")]
    dnf5 = _rhel_major(ctx.world) >= 10
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


def rpm(ctx) -> int:
    """``rpm -q [--qf FORMAT] NAME...``: installed packages (world["packages"]); ``package NAME is not
    installed`` and exit 1 otherwise, as rpm prints it."""
    args = list(ctx.args)
    if args[:1] not in (["-q"], ["--query"]):
        return ctx.unsupported()
    fmt = None
    names = []
    i = 1
    while i < len(args):
        if args[i] in ("--qf", "--queryformat") and i + 1 < len(args):
            fmt, i = args[i + 1], i + 2
            continue
        names.append(args[i])
        i += 1
    installed = ctx.world.get("packages", {})
    rc = 0
    for name in names:
        ver = installed.get(name)
        if ver is None:
            ctx.out("package %s is not installed" % name)
            rc = 1
            continue
        version, _, release = str(ver).partition("-")
        if fmt:
            ctx.out(fmt.replace("%{NAME}", name).replace("%{VERSION}", version).replace("%{RELEASE}", release or "1"), end="")
        else:
            ctx.out("%s-%s-%s.x86_64" % (name, version, release or "1"))
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
    }


def curl(ctx) -> int:
    args = list(ctx.args)
    out = None
    url = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-o", "--output"):
            if i + 1 >= len(args):
                return ctx.usage("curl: option %s: requires parameter" % a)
            out = args[i + 1]
            i += 2
            continue
        if a.startswith("-") and not a.startswith("--") and set(a[1:]) <= set("fsSL"):
            i += 1
            continue
        if a in ("--fail", "--silent", "--show-error", "--location"):
            i += 1
            continue
        if a.startswith("-"):
            return ctx.unsupported()
        url = a
        i += 1
    if url is None:
        return ctx.usage("curl: no URL specified!\ncurl: try 'curl --help' or 'curl --manual' for more information")
    body = _sim_urls(ctx.world).get(url)
    if body is None:  # the kind/kubectl/helm release downloads (gpuwizard/simulate/tools_cluster.py)
        from gpuwizard.simulate import tools_cluster
        body = tools_cluster.release_urls(ctx.world).get(url)
    if body is None:
        ctx.err("curl: (22) The requested URL returned error: 404")
        return 22
    if out is None:
        sys.stdout.write(body)
        return 0
    _write(out, body)
    return 0


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


def modprobe(ctx) -> int:
    if ctx.args != ["nvidia"]:
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
    if not image.startswith("nvidia/cuda:"):
        return ctx.unsupported("only nvidia/cuda images are")
    tag = image.split(":", 1)[1]
    cuda = tag.split("-")[0]
    pulled = w.get("docker_images", [])
    if image not in pulled:
        ctx.err("Unable to find image '%s' locally" % image)
        ctx.err("%s: Pulling from nvidia/cuda" % tag)
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
    if not W.driver_loaded(w) or (w.get("driver") or {}).get("loaded_version") != (w.get("driver") or {}).get("version"):
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
