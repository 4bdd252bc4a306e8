#!/usr/bin/env python3
"""A real Debian 12 (bookworm) root for tests: debootstrap'd once, cached as a tarball, copied fresh.

    sudo python3 tools/realroot.py build      build (or find) the cached root; prints the tarball's path
    sudo python3 tools/realroot.py key        the cache key and where the tarball goes
    sudo python3 tools/realroot.py shell DIR  a shell in an extracted root (/proc, /sys, /dev bound, privately)

The root: `debootstrap --variant=minbase bookworm` from this machine's configured Debian mirror
(/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list), its apt sources with contrib,
non-free and non-free-firmware enabled, this machine's CA certificates and Acquire settings, and
python3, python3-venv and docker.io installed with apt inside it. Cached under
~/.cache/gpuwizard-realroot/bookworm-minbase-<key>.tar; the key changes with the mirror, the
sources, the package list and BUILD_VERSION.

Everything runs as root. Every command inside the root runs through `unshare --mount
--propagation private`: its bind mounts (/proc, /sys, /dev) live in a mount namespace of its own
and vanish with its last process, whatever happens to the caller; nothing is mounted in this
machine's namespace. (../shared/research/real-world.md, "Debian 12 (bookworm), real archive and host".)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
COMPONENTS = ("main", "contrib", "non-free", "non-free-firmware")
ROOT_PACKAGES = ("python3", "python3-venv", "docker.io")
BUILD_VERSION = 1  # bump to rebuild every cached root
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gpuwizard-realroot"
SOURCES_FILES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: the machine's own mounts for a command in the root: SRC:DST (DST inside the root)
MACHINE_MOUNTS = ("/proc:/proc", "/sys:/sys", "/dev:/dev")

# Runs inside the private mount namespace: bind what is asked, then chroot with a clean
# environment (this machine's PIP_*, proxies and so on are not the root's).
_IN_ROOT = r"""
set -e
R=$1; M=$2; E=$3; shift 3
for spec in $M; do
    mount --rbind "${spec%%:*}" "$R/${spec#*:}"
done
exec chroot "$R" /usr/bin/env -i $E "$@"
"""


class Unavailable(Exception):
    """The tier cannot run on this machine (the reason is the message)."""


# -- this machine's archive ----------------------------------------------------------------------
def host_sources() -> tuple[Path, str]:
    for path in SOURCES_FILES:
        if path.is_file() and path.read_text().strip():
            return path, path.read_text()
    raise Unavailable("no Debian apt sources on this machine (" + ", ".join(map(str, SOURCES_FILES)) + ")")


def _stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
        if fields:
            out.append(fields)
    return out


def mirror(path: Path, text: str) -> str:
    """The URI of the stanza (or line) whose suites include bookworm."""
    if path.suffix == ".sources":
        for st in _stanzas(text):
            if SUITE in st.get("Suites", "").split() and "deb" in st.get("Types", "deb").split():
                return st["URIs"].split()[0]
    else:
        for line in text.splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    raise Unavailable(f"{path} names no {SUITE} mirror")


def root_sources(path: Path, text: str) -> str:
    """The machine's sources for the root, every Debian stanza with contrib and non-free enabled."""
    comps = " ".join(COMPONENTS)
    if path.suffix == ".sources":
        return re.sub(r"(?m)^Components:.*$", f"Components: {comps}", text)
    return re.sub(r"(?m)^(deb(?:-src)?\s+(?:\[[^]]*\]\s+)?\S+\s+\S+)\s.*$", rf"\1 {comps}", text)


def acquire_conf() -> dict[str, str]:
    """The machine's apt settings that make its mirror reachable (proxies, a snapshot's
    Check-Valid-Until): the apt.conf.d files that set Acquire:: options."""
    out = {}
    d = Path("/etc/apt/apt.conf.d")
    for f in sorted(d.glob("*")) if d.is_dir() else []:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if re.search(r"(?m)^\s*Acquire::(?!IndexTargets)", text):
            out[f.name] = text
    return out


def mirror_reachable(uri: str, timeout: float = 10) -> str | None:
    """None when the mirror answers for bookworm's Release file, else why not."""
    url = uri.rstrip("/") + f"/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as r:
            return None if r.status == 200 else f"{url}: HTTP {r.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def cache_key() -> str:
    path, text = host_sources()
    blob = json.dumps([BUILD_VERSION, SUITE, VARIANT, COMPONENTS, ROOT_PACKAGES, mirror(path, text),
                       root_sources(path, text), acquire_conf()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def tarball(cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / f"{SUITE}-{VARIANT}-{cache_key()}.tar"


def missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "not root: debootstrap, chroot and bind mounts need root"
    for tool in ("unshare", "chroot", "mount", "tar"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if shutil.which("debootstrap") is None and not tarball().exists():
        return "debootstrap is not installed and no root is cached (.ci/run installs it: apt-get install -y debootstrap)"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a private mount namespace here (unshare --mount: {probe.stderr.strip()})"
    return None


# -- commands in a root ----------------------------------------------------------------------------
def root_env(extra: dict[str, str] | None = None) -> list[str]:
    env = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", **(extra or {})}
    return [f"{k}={v}" for k, v in env.items()]


def in_root_argv(root: Path, argv: Sequence[str], mounts: Sequence[str] = MACHINE_MOUNTS,
                 env: dict[str, str] | None = None) -> list[str]:
    """argv that runs ARGV chrooted in ROOT, MOUNTS bound in a private mount namespace. Without
    --fork, unshare, sh, chroot and env each exec the next: the process started is ARGV itself."""
    for spec in mounts:
        (root / spec.split(":", 1)[1].lstrip("/")).mkdir(parents=True, exist_ok=True)
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _IN_ROOT, "sh",
            str(root), " ".join(mounts), " ".join(root_env(env)), *argv]


def run_in_root(root: Path, argv: Sequence[str], *, mounts: Sequence[str] = MACHINE_MOUNTS,
                env: dict[str, str] | None = None, timeout: float = 600, check: bool = False,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(in_root_argv(root, argv, mounts, env), capture_output=True, text=True,
                            timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"in {root}: {' '.join(argv)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def processes_in(root: Path) -> list[int]:
    """PIDs of processes whose root directory is ROOT (or under it)."""
    real = os.path.realpath(root)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            r = os.readlink(entry / "root")
        except OSError:
            continue
        if r == real or r.startswith(real + "/"):
            found.append(int(entry.name))
    return found


def mounts_under(path: Path) -> list[str]:
    """Mount points in this namespace at or under PATH (from /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == real or point.startswith(real + "/"):
            out.append(point)
    return out


def remove_root(root: Path) -> None:
    """rm -rf ROOT, refusing while anything is mounted under it (never delete through a bind of /dev)."""
    left = mounts_under(root)
    if left:
        raise RuntimeError(f"not removing {root}: still mounted there: {left}")
    shutil.rmtree(root, ignore_errors=True)


# -- build -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _lock(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _log_run(argv: Sequence[str], log, **kw) -> None:
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    r = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {r.returncode} (log: {log.name})")


def build(cache_dir: Path = CACHE_DIR, out=sys.stderr) -> Path:
    """The cached root's tarball, built first if this cache key has none."""
    why = missing_prerequisites()
    if why:
        raise Unavailable(why)
    target = tarball(cache_dir)
    if target.exists():
        return target
    path, text = host_sources()
    uri = mirror(path, text)
    unreachable = mirror_reachable(uri)
    if unreachable:
        raise Unavailable(f"the configured Debian mirror does not answer: {unreachable}")
    with _lock(cache_dir):
        if target.exists():  # another run built it meanwhile
            return target
        work = Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir))
        root = work / "root"
        log_path = cache_dir / f"{target.stem}.build.log"
        try:
            with open(log_path, "w") as log:
                out.write(f"realroot: building {target.name} from {uri} (log: {log_path})\n")
                # debootstrap mounts /proc and /sys in the target itself: in a namespace of its own,
                # a failed run leaves nothing mounted here
                _log_run(["unshare", "--mount", "--propagation", "private", "debootstrap", f"--variant={VARIANT}",
                          "--components=" + ",".join(COMPONENTS), SUITE, str(root), uri], log)
                (root / "etc/apt/sources.list").unlink(missing_ok=True)
                (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
                name = "debian.sources" if path.suffix == ".sources" else "debian.list"
                (root / "etc/apt/sources.list.d" / name).write_text(root_sources(path, text))
                for fname, conf in acquire_conf().items():
                    (root / "etc/apt/apt.conf.d" / fname).write_text(conf)
                (root / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
                shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
                shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
                script = ("apt-get update -q && apt-get install -y -q --no-install-recommends " + " ".join(ROOT_PACKAGES)
                          + " && apt-get clean")
                _log_run(in_root_argv(root, ["/bin/sh", "-ec", script]), log)
                _log_run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(target) + ".part", "."], log)
            os.replace(str(target) + ".part", target)
            out.write(f"realroot: {target} ({target.stat().st_size // 2**20} MiB)\n")
        finally:
            Path(str(target) + ".part").unlink(missing_ok=True)
            remove_root(work)
    return target


def extract(tar: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "-C", str(dest), "-xf", str(tar)], check=True)
    return dest


def build_wheels(project: Path, wheelhouse: Path, pip: Sequence[str]) -> None:
    """The project's wheel and its dependencies' wheels, from this machine's pip index and cache,
    built from a copy of the tree (the checkout gets no build/ or egg-info changes)."""
    with tempfile.TemporaryDirectory(prefix="gw-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(project, src, ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache",
            ".pytest_cache", "tests", "bench", "docs"))
        subprocess.run([*pip, "wheel", "-q", "-w", str(wheelhouse), str(src)], check=True,
                       capture_output=True, text=True)


def install_project(root: Path, wheelhouse: Path, venv: str = "/opt/gw/venv") -> str:
    """A venv in the root with the project from WHEELHOUSE, no index. Returns the gpuwizard path in the root."""
    inside = root / "opt/gw/wheels"
    if inside.exists():
        shutil.rmtree(inside)
    shutil.copytree(wheelhouse, inside)
    run_in_root(root, ["/bin/sh", "-ec", f"rm -rf {venv} && python3 -m venv {venv} && "
                       f"{venv}/bin/pip install -q --no-index --find-links /opt/gw/wheels gpuwizard"],
                env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"}, timeout=300, check=True)
    return f"{venv}/bin/gpuwizard"


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    try:
        if cmd == "key":
            print(cache_key(), tarball())
        elif cmd == "build":
            print(build())
        elif cmd == "shell" and len(argv) == 2:
            return subprocess.call(in_root_argv(Path(argv[1]), ["/bin/bash"], env={"TERM": os.environ.get("TERM", "xterm")}))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Unavailable as exc:
        print(f"realroot: cannot build here: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
