"""The distribution's packages in an offline bundle (APT hosts: Ubuntu, Debian).

Building (``gpuwizard bundle``, on a connected machine of the target's distribution and release: the
plan is made there, so its architecture and sources stand for the target's): the packages each step
installs (each install command of the platform, :meth:`Platform.packages_of`, and what
``ubuntu-drivers`` would pick) are resolved by the real ``apt-get`` in a private state of its own: an
empty dpkg status (every dependency is fetched, whatever the build machine has installed), the
plan's architecture, Recommends on (as the target's ``apt-get install`` takes them), every source of
the build machine but NVIDIA's (its ``/etc/apt/sources.list`` and ``sources.list.d``), and, for the
steps after the driver's, NVIDIA's CUDA and container toolkit repositories as the plan adds them
(their keys from the bundle's own downloads: cuda-keyring's keyring, the toolkit's armored key). The
driver step's packages are resolved without NVIDIA's repositories, as the host installs them before
those are added. ``apt-get -s install`` names the archives of each resolution; ``apt-get install
--download-only`` fetches what gpuwizard's cache lacks, each checked by apt against its signed
index; ``dpkg-deb -f`` gives each archive's control fields for the bundle's flat repository
(``Packages`` with Filename, Size and SHA256; a ``Release``)::

    DIR/packages/apt/<name>_<version>_<arch>.deb
    DIR/packages/apt/Packages, Release

Installing (``--bundle DIR`` on the host): gpuwizard's own apt commands read that repository through
``APT_CONFIG`` (a configuration file in a temporary directory of the session, whose
``Dir::Etc::SourceList`` is the host's sources.list plus ``deb [trusted=yes] file:DIR/packages/apt
./``, its path percent-encoded, and its preferences the host's plus a pin of 990 on the bundle's
label, so the bundle's version is the candidate even where the host's older lists name a newer one
it cannot fetch). The plan reads the bundle's index as apt will (``platform.apt.bundle_policy``), and
with ``driver.version: recommended`` on Ubuntu installs the bundle's driver package by apt. Nothing is
written under /etc/apt, so the host's apt never names a bundle that may be gone the next day (an
unreachable ``file:`` source makes ``apt-get update`` exit 100). ``trusted=yes``: the repository is not
signed; every file of it was checked against the bundle's manifest (sha256) before the run, and apt
checks each archive against ``Packages``.

Not handled: packages of the build machine's own ``file:`` sources (apt leaves them where they are:
the build stops, naming them); dnf hosts (said when bundling).
"""

from __future__ import annotations

import email.utils
import functools
import re
import shutil
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .download import sha256_of
from .errors import GpuwizardError, ToolMissing

if TYPE_CHECKING:  # pragma: no cover
    from .engine import PlannedStep
    from .platform.base import Platform

APT_DIR = "packages/apt"  # in a bundle
LABEL = "gpuwizard bundle"  # the Release file's Origin and Label (the pin names it)
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64el"}


class PackagesError(GpuwizardError):
    """The packages of a bundle could not be resolved or fetched."""


def installs(platform: Platform, p: PlannedStep, *, pending_only: bool = False) -> list[str]:
    """The packages the step's install commands name (its ``ubuntu-drivers install``: the package the
    plan found it would pick, ``plan_data["packages"]``), in plan order; ``pending_only``: of the
    actions still to do."""
    names: list[str] = []
    for action, done in zip(p.actions, p.done, strict=False):
        argv = getattr(action, "argv", None)
        if not isinstance(argv, list) or (pending_only and done):
            continue
        names += platform.packages_of(argv)
        if argv[:2] == ["ubuntu-drivers", "install"]:
            names += p.data.get("packages") or []
    return list(dict.fromkeys(names))


def wanted(platform: Platform, planned: list[PlannedStep]) -> dict[str, list[str]]:
    """Step id -> every package the step installs, done on this machine or not, in plan order."""
    return {p.step.id: names for p in planned if (names := installs(platform, p))}


@functools.cache
def _index(path: str) -> dict[str, str]:
    text = (Path(path) / "Packages").read_text(encoding="utf-8", errors="replace")
    return dict(re.findall(r"^Package: (\S+)\n(?:.*\n)*?Version: (\S+)$", text, re.M))


def held(network: Any) -> dict[str, str]:
    """Package -> version in the offline bundle's repository ({} without one): with its 990 pin, what
    apt installs once the run's ``apt-get update`` has read it."""
    return _index(network.local_apt) if network.local_apt else {}


def lacking(network: Any, platform: Platform, planned: list[PlannedStep]) -> dict[str, list[str]]:
    """Step id -> the packages its install commands still to run name that the offline bundle's
    repository does not hold (apt must fetch them from the host's own archive); empty without one."""
    if not network.local_apt:
        return {}
    bundled = held(network)
    short = {p.step.id: [n for n in installs(platform, p, pending_only=True) if n not in bundled] for p in planned}
    return {sid: names for sid, names in short.items() if names}


def apt_options(pw: Path, cache: Path, arch: str) -> list[str]:
    """apt's options for a private state under ``pw``: nothing of the build machine's own state (its
    lists, its installed packages) is read or changed; Recommends are resolved whatever the build
    machine's apt.conf says (the target's apt-get install takes them, its default)."""
    return ["-o", f"Dir::State={pw}/state", "-o", f"Dir::State::status={pw}/status",
            "-o", f"Dir::Cache={cache}", "-o", f"Dir::Etc::SourceList={pw}/sources.list",
            "-o", f"Dir::Etc::SourceParts={pw}/sources.list.d", "-o", "Debug::NoLocking=true",
            "-o", f"APT::Architecture={DEB_ARCH.get(arch, arch)}", "-o", "APT::Install-Recommends=true",
            "-o", "APT::Install-Suggests=false"]


def nvidia_source(line: str) -> bool:
    return "libnvidia-container" in line or "compute/cuda/repos" in line


def fetch_apt(engine: Any, platform: Platform, by_step: dict[str, list[str]], stage: Path, staged: dict[str, Path],
              say: Any) -> dict[str, dict[str, Any]]:
    """Resolve and download each step's packages with their dependencies into ``stage/packages/apt``;
    returns the manifest entries (relative path -> meta). ``staged``: URL -> the bundle's staged copy
    (the keys). The driver step's packages are resolved against the distribution's sources alone, as
    the host installs them before NVIDIA's repositories are added (the CUDA repository has its own
    builds of the driver packages); the others with NVIDIA's repositories too. Downloads are kept in
    gpuwizard's cache between builds (apt fetches only what it lacks); the bundle takes exactly the
    archives the resolutions name (``apt-get -s``)."""

    host, runner, net = engine.host, engine.host.runner, engine.network
    work = stage / "apt-work"
    cache = work / "cache"
    (cache / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    own = [ln for ln in (host.read_text("/etc/apt/sources.list") or "").splitlines() if not nvidia_source(ln)]
    parts = host.path("/etc/apt/sources.list.d")
    copied = [f for f in sorted(parts.glob("*")) if f.suffix in (".list", ".sources")
              and not nvidia_source(f.read_text(errors="replace"))] if parts.is_dir() else []
    first = {sid: names for sid, names in by_step.items() if sid == "driver"}
    rest = {sid: names for sid, names in by_step.items() if sid != "driver"}
    chosen: dict[str, tuple[str, str, str]] = {}  # file name -> (package, version, arch)
    for label, group, nvidia in (("distribution", first, False), ("distribution and NVIDIA", rest, True)):
        names = list(dict.fromkeys(n for ns in group.values() for n in ns))
        if not names:
            continue
        pw = work / ("nvidia" if nvidia else "distribution")
        if pw.exists():  # sources, keys and lists of this build only
            shutil.rmtree(pw)
        for d in ("state/lists/partial", "sources.list.d", "keys"):
            (pw / d).mkdir(parents=True)
        (pw / "status").write_text("")
        (pw / "sources.list").write_text("\n".join(own) + "\n")
        for f in copied:
            shutil.copyfile(f, pw / "sources.list.d" / f.name)
        if nvidia:
            _nvidia_sources(runner, net, platform, pw, staged)
        opts = apt_options(pw, cache, platform.arch)
        say(f"apt-get update (a private state: the {label} sources, nothing installed)")
        _run(runner, ["apt-get", *opts, "update"], "apt-get update", errors_fail=True)
        resolved = _run(runner, ["apt-get", *opts, "-s", "install", "-y", *names], "apt-get -s install")
        for m in INST.finditer(resolved):
            name, version, arch = m.groups()
            chosen[deb_name(name, version, arch)] = (name, version, arch)
        say(f"apt-get install --download-only {' '.join(names)}")
        _run(runner, ["apt-get", *opts, "install", "--download-only", "-y", *names], "apt-get install --download-only")
    out_dir = stage / APT_DIR
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    files: dict[str, dict[str, Any]] = {}
    stanzas = []
    missing = [f for f in chosen if not (cache / "archives" / f).is_file()]
    if missing or not chosen:
        raise PackagesError("apt-get did not download " + (", ".join(missing) or "anything")
                            + " (a file: source of the build machine? apt leaves those where they are)")
    for name in sorted(chosen):
        deb = cache / "archives" / name
        shutil.copyfile(deb, out_dir / name)
        control = _run(runner, ["dpkg-deb", "-f", str(deb)], f"read {name}").rstrip("\n")
        stanzas.append(f"{control}\nFilename: ./{name}\nSize: {deb.stat().st_size}\nSHA256: {sha256_of(deb)}\n")
        files[f"{APT_DIR}/{name}"] = {"package": chosen[name][0], "version": chosen[name][1]}
    index = out_dir / "Packages"
    index.write_text("\n".join(stanzas))
    # a Release beside Packages: apt reads the index without probing compressed variants; its Date
    # keeps apt from warning on every update
    (out_dir / "Release").write_text(
        f"Origin: {LABEL}\nLabel: {LABEL}\nDate: {email.utils.formatdate(usegmt=True)}\n"
        f"SHA256:\n {sha256_of(index)} {index.stat().st_size} Packages\n")
    files[f"{APT_DIR}/Packages"] = {"index": "apt", "requested": by_step}
    files[f"{APT_DIR}/Release"] = {"index": "apt"}
    return files


# `apt-get -s install` (a real apt 2.6: "Inst libpci3 (1:3.9.0-4 Debian:12.15/oldstable [amd64])")
INST = re.compile(r"^Inst (\S+)(?: \[[^\]]*\])? \((\S+) [^\n]*?\[([^\]]+)\]\)", re.M)


def deb_name(name: str, version: str, arch: str) -> str:
    """The archive's file name as apt saves it (an epoch's ':' as %3a)."""
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


def _nvidia_sources(runner: Any, net: Any, platform: Platform, pw: Path, staged: dict[str, Path]) -> None:
    """NVIDIA's repositories, as the plan adds them, signed by the keys the bundle holds."""
    from .platform import apt as P

    key = staged.get(net.url(P.KEY_URL))
    if key is not None:
        shutil.copyfile(key, pw / "keys" / "nvidia-container-toolkit.asc")  # apt reads armored .asc keys
        (pw / "sources.list.d" / "nvidia-container-toolkit.list").write_text(
            P.APT_LIST_CONTENT.replace(P.KEYRING, str(pw / "keys" / "nvidia-container-toolkit.asc"))
            .replace(P.CTK_UPSTREAM, net.url(P.CTK_UPSTREAM)))
    keyring_deb = staged.get(net.url(platform.cuda_repo_url(P.CUDA_KEYRING_DEB)))
    if keyring_deb is not None:
        _run(runner, ["dpkg-deb", "-x", str(keyring_deb), str(pw / "cuda-keyring")], "unpack cuda-keyring")
        keyring = pw / "cuda-keyring" / "usr/share/keyrings/cuda-archive-keyring.gpg"
        (pw / "sources.list.d" / "cuda.list").write_text(
            f"deb [signed-by={keyring}] {net.url(platform.cuda_repo_url(''))} /\n")


def _run(runner: Any, argv: list[str], what: str, errors_fail: bool = False) -> str:
    try:
        result = runner.run(argv, change=False, timeout=3600)
    except ToolMissing:
        raise PackagesError(f"the packages are resolved with {argv[0]}, which this machine lacks: build the bundle on "
                            "a machine of the target's distribution (Debian or Ubuntu, its release and "
                            "architecture)") from None
    text = (result.stderr or "").strip()
    # apt-get update exits 0 when a source could not be fetched (a temporary error: W: lines); for a
    # bundle that is a failure, the packages of that source would be missing
    failed = not result.ok or (errors_fail and re.search(r"^(W: Failed to fetch|E: )", text, re.M))
    if failed:
        raise PackagesError(f"{what} failed: {text or (result.stdout or '').strip()[-2000:] or f'exit {result.rc}'}")
    return str(result.stdout or "")


def use(host: Any, repo: Path, base: Path) -> str:
    """Point gpuwizard's apt commands at the bundle's repository (``repo``): writes, in ``base`` (a
    directory of the session's own, removed when it ends), the APT_CONFIG file and the sources.list
    and preferences it names (the host's own, plus the bundle's line and pin); returns the value for
    APT_CONFIG. Nothing of the host's is written (a plan, a dry run or a user's own changes nothing)."""
    own = host.read_text("/etc/apt/sources.list") or ""
    # a path with a space would split apt's line (the rest read as the suite): percent-encoded
    line = f"deb [trusted=yes] file:{urllib.parse.quote(str(repo.resolve()))} ./"
    sources, preferences, conf = base / "sources.list", base / "preferences", base / "apt.conf"
    sources.write_text(own.rstrip("\n") + ("\n" if own.strip() else "")
                       + "# gpuwizard --bundle: the bundle's packages, for gpuwizard's commands only\n" + line + "\n")
    # the bundle's versions first, even where the host's older lists name newer ones it cannot fetch
    prefs = host.read_text("/etc/apt/preferences") or ""
    preferences.write_text(prefs.rstrip("\n") + ("\n\n" if prefs.strip() else "")
                           + f"Package: *\nPin: release l={LABEL}\nPin-Priority: 990\n")
    conf.write_text(f'Dir::Etc::SourceList "{sources}";\nDir::Etc::Preferences "{preferences}";\n')
    return str(conf)
