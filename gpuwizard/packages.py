"""The distribution's packages in an offline bundle (APT hosts: Ubuntu, Debian).

Building (``gpuwizard bundle``, on a connected machine of the target's distribution and release): the
packages the plan installs (each install command of the platform, :meth:`Platform.packages_of`, and
what ``ubuntu-drivers`` would pick) are resolved and downloaded by the real ``apt-get`` in a private
state of its own: an empty dpkg status (so every dependency is fetched, whatever the build machine
has installed), the target's architecture, the build machine's distribution sources (its
``/etc/apt/sources.list`` and ``sources.list.d``, NVIDIA's left out) and NVIDIA's CUDA and container
toolkit repositories as the plan adds them (their keys from the bundle's own downloads: cuda-keyring's
keyring, the toolkit's armored key). ``apt-get install --download-only`` fetches the closure, each
file checked by apt against its signed index; ``dpkg-deb -f`` gives each archive's control fields
for the bundle's flat repository (``Packages``, ``Release``), as ``dpkg-scanpackages`` writes it::

    DIR/packages/apt/<name>_<version>_<arch>.deb
    DIR/packages/apt/Packages, Release

Installing (``--bundle DIR`` on the host): gpuwizard's own apt commands read that repository through
``APT_CONFIG`` (a configuration file in gpuwizard's state directory whose ``Dir::Etc::SourceList``
is the host's sources.list plus ``deb [trusted=yes] file:DIR/packages/apt ./``, its preferences the
host's plus a pin of 990 on the bundle's label, so the bundle's version is the candidate even where
the host's older lists name a newer one it cannot fetch): nothing is written
under /etc/apt, so the host's apt never names a bundle that may be gone the next day (an unreachable
``file:`` source makes ``apt-get update`` exit 100). ``trusted=yes``: the repository is not signed;
every file of it was checked against the bundle's manifest (sha256) before the run, and apt checks
each archive against ``Packages``.

dnf hosts: not bundled yet (said when bundling).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .download import sha256_of
from .errors import GpuwizardError

if TYPE_CHECKING:  # pragma: no cover
    from .engine import PlannedStep
    from .platform.base import Platform

APT_DIR = "packages/apt"  # in a bundle
# gpuwizard's own: where --bundle points apt at the bundle's repository (system paths, under --root)
CONF_DIR = "/var/lib/gpuwizard/bundle"
APT_CONF = CONF_DIR + "/apt.conf"
SOURCES = CONF_DIR + "/sources.list"
PREFERENCES = CONF_DIR + "/preferences"
LABEL = "gpuwizard bundle"  # the Release file's Origin and Label (the pin names it)
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64el"}


class PackagesError(GpuwizardError):
    """The packages of a bundle could not be resolved or fetched."""


def wanted(platform: Platform, planned: list[PlannedStep]) -> list[str]:
    """Every package the plan installs, done on this machine or not, in plan order."""
    names: list[str] = []
    for p in planned:
        for action in p.actions:
            argv = getattr(action, "argv", None)
            names += platform.packages_of(argv) if isinstance(argv, list) else []
        names += p.data.get("packages") or []
    return list(dict.fromkeys(names))


def lacking(network: Any, platform: Platform, planned: list[PlannedStep]) -> dict[str, list[str]]:
    """Step id -> the packages its install commands still to run name that the offline bundle's
    repository does not hold (apt must fetch them from the host's own archive); empty without one."""
    if not network.local_apt:
        return {}
    text = (Path(network.local_apt) / "Packages").read_text(encoding="utf-8", errors="replace")
    held = set(re.findall(r"^Package: (\S+)$", text, re.M))
    out: dict[str, list[str]] = {}
    for p in planned:
        for action, done in zip(p.actions, p.done, strict=False):
            argv = getattr(action, "argv", None)
            names = platform.packages_of(argv) if isinstance(argv, list) and not done else []
            names += [n for n in p.data.get("packages") or [] if isinstance(argv, list) and not done
                      and argv[:2] == ["ubuntu-drivers", "install"]]
            missing = [n for n in names if n not in held]
            if missing:
                out.setdefault(p.step.id, []).extend(n for n in missing if n not in out.get(p.step.id, []))
    return out


def apt_options(work: Path, arch: str) -> list[str]:
    """apt's options for the private state under ``work``: nothing of the build machine's own state
    (its lists, its cache, its installed packages) is read or changed."""
    return ["-o", f"Dir::State={work}/state", "-o", f"Dir::State::status={work}/status",
            "-o", f"Dir::Cache={work}/cache", "-o", f"Dir::Etc::SourceList={work}/sources.list",
            "-o", f"Dir::Etc::SourceParts={work}/sources.list.d", "-o", "Debug::NoLocking=true",
            "-o", f"APT::Architecture={DEB_ARCH.get(arch, arch)}"]


def nvidia_source(line: str) -> bool:
    return "libnvidia-container" in line or "compute/cuda/repos" in line


def fetch_apt(engine: Any, platform: Platform, names: list[str], stage: Path, staged: dict[str, Path],
              say: Any) -> dict[str, dict[str, Any]]:
    """Resolve and download ``names`` with their dependencies into ``stage/packages/apt``; returns the
    manifest entries (relative path -> meta). ``staged``: URL -> the bundle's staged copy (the keys)."""
    from .platform import apt as P

    host, runner, net = engine.host, engine.host.runner, engine.network
    work = stage / "apt-work"
    for d in ("state/lists/partial", "cache/archives/partial", "sources.list.d", "keys"):
        (work / d).mkdir(parents=True, exist_ok=True)
    for old in (work / "state" / "lists").glob("*_*"):  # the lists of this resolution only
        old.unlink()
    for old in (work / "cache" / "archives").glob("*.deb"):  # the archives of this resolution only
        old.unlink()
    (work / "status").write_text("")
    # the build machine's distribution sources (the same distribution and release as the target's)
    lines = [ln for ln in (host.read_text("/etc/apt/sources.list") or "").splitlines() if not nvidia_source(ln)]
    (work / "sources.list").write_text("\n".join(lines) + "\n")
    parts = host.path("/etc/apt/sources.list.d")
    for f in sorted(parts.glob("*")) if parts.is_dir() else []:
        if f.suffix in (".list", ".sources") and not nvidia_source(f.read_text(errors="replace")):
            shutil.copyfile(f, work / "sources.list.d" / f.name)
    # NVIDIA's repositories, as the plan adds them, signed by the keys the bundle holds
    key = staged.get(net.url(P.KEY_URL))
    if key is not None:
        shutil.copyfile(key, work / "keys" / "nvidia-container-toolkit.asc")  # apt reads armored .asc keys
        (work / "sources.list.d" / "nvidia-container-toolkit.list").write_text(
            P.APT_LIST_CONTENT.replace(P.KEYRING, str(work / "keys" / "nvidia-container-toolkit.asc"))
            .replace(P.CTK_UPSTREAM, net.url(P.CTK_UPSTREAM)))
    keyring_deb = staged.get(net.url(platform.cuda_repo_url(P.CUDA_KEYRING_DEB)))
    if keyring_deb is not None:
        _run(runner, ["dpkg-deb", "-x", str(keyring_deb), str(work / "cuda-keyring")], "unpack cuda-keyring")
        keyring = work / "cuda-keyring" / "usr/share/keyrings/cuda-archive-keyring.gpg"
        (work / "sources.list.d" / "cuda.list").write_text(
            f"deb [signed-by={keyring}] {net.url(platform.cuda_repo_url(''))} /\n")
    opts = apt_options(work, platform.arch)
    say("apt-get update (a private state: the target's sources, no installed package)")
    _run(runner, ["apt-get", *opts, "update"], "apt-get update", errors_fail=True)
    say(f"apt-get install --download-only {' '.join(names)}")
    _run(runner, ["apt-get", *opts, "install", "--download-only", "-y", *names], "apt-get install --download-only")
    out_dir = stage / APT_DIR
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    files: dict[str, dict[str, Any]] = {}
    stanzas = []
    for deb in sorted((work / "cache" / "archives").glob("*.deb")):
        shutil.copyfile(deb, out_dir / deb.name)
        control = _run(runner, ["dpkg-deb", "-f", str(deb)], f"read {deb.name}").rstrip("\n")
        fields = dict(re.findall(r"^(Package|Version): (.+)$", control, re.M))
        stanzas.append(f"{control}\nFilename: ./{deb.name}\nSize: {deb.stat().st_size}\nSHA256: {sha256_of(deb)}\n")
        files[f"{APT_DIR}/{deb.name}"] = {"package": fields.get("Package"), "version": fields.get("Version")}
    if not stanzas:
        raise PackagesError(f"apt-get downloaded nothing for {' '.join(names)}")
    index = out_dir / "Packages"
    index.write_text("\n".join(stanzas))
    (out_dir / "Release").write_text(
        f"Origin: {LABEL}\nLabel: {LABEL}\n"
        f"SHA256:\n {sha256_of(index)} {index.stat().st_size} Packages\n")
    files[f"{APT_DIR}/Packages"] = {"index": "apt", "requested": names}
    files[f"{APT_DIR}/Release"] = {"index": "apt"}
    return files


def _run(runner: Any, argv: list[str], what: str, errors_fail: bool = False) -> str:
    result = runner.run(argv, change=False, timeout=3600)
    text = (result.stderr or "").strip()
    # apt-get update exits 0 when a source could not be fetched (a temporary error: W: lines); for a
    # bundle that is a failure, the packages of that source would be missing
    failed = not result.ok or (errors_fail and re.search(r"^(W: Failed to fetch|E: )", text, re.M))
    if failed:
        raise PackagesError(f"{what} failed: {text or (result.stdout or '').strip()[-2000:] or f'exit {result.rc}'}")
    return str(result.stdout or "")


def use(host: Any, repo: Path) -> str:
    """Point gpuwizard's apt commands at the bundle's repository (``repo``): writes gpuwizard's
    APT_CONFIG file and the sources.list and preferences it names (the host's own, plus the bundle's
    line and pin); returns the value for APT_CONFIG (the file's path on this machine). A dry run
    writes them to a temporary directory instead of the host's."""
    own = host.read_text("/etc/apt/sources.list") or ""
    line = f"deb [trusted=yes] file:{repo.resolve()} ./"
    base = Path(tempfile.mkdtemp(prefix="gpuwizard-bundle-apt-")) if host.dry_run else host.path(CONF_DIR)
    base.mkdir(parents=True, exist_ok=True, mode=0o755)
    sources, preferences, conf = (base / PurePosixPath(p).name for p in (SOURCES, PREFERENCES, APT_CONF))
    sources.write_text(own.rstrip("\n") + ("\n" if own.strip() else "")
                       + "# gpuwizard --bundle: the bundle's packages, for gpuwizard's commands only\n" + line + "\n")
    # the bundle's versions first, even where the host's older lists name newer ones it cannot fetch
    prefs = host.read_text("/etc/apt/preferences") or ""
    preferences.write_text(prefs.rstrip("\n") + ("\n\n" if prefs.strip() else "")
                           + f"Package: *\nPin: release l={LABEL}\nPin-Priority: 990\n")
    conf.write_text(f'Dir::Etc::SourceList "{sources}";\nDir::Etc::Preferences "{preferences}";\n')
    return str(conf)
