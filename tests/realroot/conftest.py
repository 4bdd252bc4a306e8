"""The real Debian 12 root tier: fixtures.

A minbase bookworm root (tools/realroot.py: debootstrap from this machine's Debian mirror, contrib
and non-free enabled, cached as a tarball under ~/.cache/gpuwizard-realroot), copied fresh for the
session, its package lists refreshed, and this checkout installed into /opt/gw/venv from wheels
built here (no index inside the root). gpuwizard runs *inside* the root (chroot), so every tool it
runs — apt-cache, dpkg, docker — is the root's own, against the real archive. No simulation.

Every command in the root runs in a private mount namespace (its mounts vanish with it); dockerd
is stopped by its PID; at the end no process may still have its root in the copy and nothing may be
mounted under it (checked, then the copy is removed).

Skips, with the reason, where the tier cannot run: not root, no debootstrap/unshare, the mirror
does not answer. GPUWIZARD_REALROOT=0 skips it on purpose.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tools"))
import realroot  # noqa: E402

UPSTREAM = PROJECT.parent / "shared" / "upstream" / "debian-12"
GW = "/opt/gw/venv/bin/gpuwizard"
#: a Tesla T4 on the PCI bus, as sysfs shows one (vendor, device, class files)
T4 = {"vendor": "0x10de\n", "device": "0x1eb8\n", "class": "0x030200\n"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realroot)


@dataclass
class Result:
    argv: Sequence[str]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"$ {' '.join(self.argv)}\n[exit {self.code}]\n[stdout]\n{self.out[-4000:]}\n[stderr]\n{self.err[-4000:]}"

    def json(self) -> dict:
        return json.loads(self.out)


@dataclass
class Root:
    """A fresh copy of the cached bookworm root with gpuwizard in /opt/gw/venv."""

    path: Path
    sysfs_card: Path  # a sysfs tree with one NVIDIA card on its PCI bus (bound over /sys for a scene)
    apt_update: str | None = None  # why the package lists could not be refreshed (None: refreshed)
    started: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *argv: str, mounts: Sequence[str] = realroot.MACHINE_MOUNTS, timeout: float = 300,
            env: dict[str, str] | None = None) -> Result:
        r = realroot.run_in_root(self.path, argv, mounts=mounts, env=env, timeout=timeout)
        return Result(argv, r.returncode, r.stdout, r.stderr)

    def sh(self, script: str, **kw) -> Result:
        return self.run("/bin/sh", "-c", script, **kw)

    def gw(self, *args: str, scene: str = "machine", answers: str | None = None, timeout: float = 120) -> Result:
        """gpuwizard in the root. Scenes: "machine" — /proc, /sys, /dev are this machine's; "card" —
        /dev only, and /sys holds one NVIDIA card (this machine has none) with nothing else on the
        bus; no /proc is mounted, so the kernel's module support is not read (this machine's kernel
        has none, which would refuse before any archive check)."""
        argv = [GW, *args]
        if answers is not None:
            (self.path / "tmp/answers.yaml").write_text(answers)
            argv += ["--answers", "/tmp/answers.yaml"]
        mounts = {"machine": realroot.MACHINE_MOUNTS, "card": (f"{self.sysfs_card}:/sys", "/dev:/dev")}[scene]
        return self.run(*argv, mounts=mounts, timeout=timeout)

    def write(self, path: str, text: str) -> None:
        p = self.path / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def dpkg_version(self, package: str) -> str | None:
        r = self.run("dpkg-query", "-W", "-f=${Version}", package, mounts=("/dev:/dev",))
        return r.out.strip() if r.code == 0 and r.out.strip() else None

    def candidate(self, package: str) -> str | None:
        r = self.run("apt-cache", "policy", package, mounts=("/dev:/dev",))
        for line in r.out.splitlines():
            if line.strip().startswith("Candidate:"):
                value = line.split(":", 1)[1].strip()
                return None if value == "(none)" else value
        return None

    def spawn(self, *argv: str, log: Path) -> subprocess.Popen:
        """A long-running process in the root (private namespace); stopped by PID at teardown."""
        fh = open(log, "w")  # noqa: SIM115 — handed to the child, closed with it
        proc = subprocess.Popen(realroot.in_root_argv(self.path, argv), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
        fh.close()
        self.started.append(proc)
        return proc


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when pytest dies, even by SIGKILL (prctl PR_SET_PDEATHSIG;
    kept across the execs of unshare, sh, chroot and env)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM by PID, wait with a deadline, then SIGKILL by PID."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_for(what: str, ready: Callable[[], bool], deadline_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if ready():
            return
        if not alive():
            raise RuntimeError(f"{what}: the process exited before it was ready")
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not ready within {deadline_s:.0f} s")


@pytest.fixture(scope="session")
def root_tar() -> Path:
    if os.environ.get("GPUWIZARD_REALROOT") == "0":
        pytest.skip("real-root tier switched off (GPUWIZARD_REALROOT=0)")
    why = realroot.missing_prerequisites()
    if why:
        pytest.skip(f"real-root tier: {why}")
    try:
        cached = realroot.tarball()
        if not cached.exists():
            path, text = realroot.host_sources()
            unreachable = realroot.mirror_reachable(realroot.mirror(path, text))
            if unreachable:
                pytest.skip(f"real-root tier: no network to the Debian mirror ({unreachable})")
        return realroot.build()
    except realroot.Unavailable as exc:
        pytest.skip(f"real-root tier: {exc}")


@pytest.fixture(scope="session")
def root(root_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Root]:
    base = tmp_path_factory.mktemp("realroot")
    path = realroot.extract(root_tar, base / "root")
    card = base / "sysfs-card"
    dev = card / "bus/pci/devices/0000:00:1e.0"
    dev.mkdir(parents=True)
    for name, value in T4.items():
        (dev / name).write_text(value)
    for mark in ("devices", "firmware", "kernel", "class", "module"):  # a mounted sysfs has these; no EFI
        (card / mark).mkdir(exist_ok=True)
    r = Root(path, card)
    try:
        # the package lists as the mirror has them now (the cached ones, if it cannot be reached)
        upd = r.run("apt-get", "update", "-q", mounts=("/dev:/dev",), timeout=300)
        if upd.code != 0:
            r.apt_update = f"apt-get update exited {upd.code}: {upd.err.strip().splitlines()[-1:] or upd.out[-200:]}"
        wheels = base / "wheels"
        realroot.build_wheels(PROJECT, wheels, [sys.executable, "-m", "pip"])
        realroot.install_project(path, wheels)
        yield r
    finally:
        for proc in r.started:
            stop(proc)
        leftovers = realroot.processes_in(path)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounted = realroot.mounts_under(path)
        if not mounted:
            realroot.remove_root(base)
        assert not mounted, f"mounts left under the real root: {mounted}"
        assert not leftovers, f"processes were still running in the real root (killed): {leftovers}"


@pytest.fixture
def dockerd(root: Root, tmp_path: Path) -> Iterator[Callable[[str | None], subprocess.Popen]]:
    """start(daemon_json): the root's own dockerd (docker.io), private: its data and exec roots,
    pidfile and socket (/run/docker.sock) are the root's, no iptables, no bridge. It reads
    /etc/docker/daemon.json of the root. Skips when dockerd cannot run on this machine."""
    procs: list[subprocess.Popen] = []

    def plain_dockerd_runs() -> bool:
        """Does dockerd come up here at all, with no daemon.json? (Tells the machine from the config.)"""
        try:
            stop(start(None))
        except pytest.skip.Exception:
            return False
        return True

    def start(daemon_json: str | None) -> subprocess.Popen:
        cfg = root.path / "etc/docker/daemon.json"
        if daemon_json is None:
            cfg.unlink(missing_ok=True)
        else:
            root.write("/etc/docker/daemon.json", daemon_json)
        sock = root.path / "run/docker.sock"
        sock.unlink(missing_ok=True)
        log = tmp_path / f"dockerd-{len(procs)}.log"
        proc = root.spawn("dockerd", "--config-file", "/etc/docker/daemon.json", "-H", "unix:///run/docker.sock",
                          "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none", log=log)
        procs.append(proc)

        def answers() -> bool:
            return sock.exists() and root.run("docker", "version", "--format", "{{.Server.Version}}", timeout=30).code == 0

        try:
            wait_for("dockerd", answers, 60, alive=lambda: proc.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            tail = log.read_text()[-2500:]
            stop(proc)
            if daemon_json is not None and not plain_dockerd_runs():
                daemon_json = None
            if daemon_json is None:
                pytest.skip(f"a private dockerd cannot run on this machine: {exc}\n{tail}")
            raise AssertionError(f"dockerd with this daemon.json did not come up: {exc}\n--- daemon.json\n{daemon_json}\n--- log\n{tail}") from None
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            stop(proc)
            if proc in root.started:
                root.started.remove(proc)
        for pid in realroot.processes_in(root.path):  # containerd and shims, had dockerd left any
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
