"""gpuwizard inside a real Debian 12 minbase root: the real archive (contrib, non-free), the root's
own apt, dpkg and docker.io, a real private dockerd. No simulation.

What this machine cannot give is said where a scene adds it: the "card" scene binds a sysfs with
one NVIDIA card over /sys (there is no card here) and mounts no /proc (so a kernel without module
support does not refuse before the archive is asked); the "headers" fixture creates the running
kernel's /lib/modules/<release>/build in the root (the archive has no headers for a non-Debian
kernel). Everything else — os-release, the kernel release, apt-cache policy, apt-get -s install,
dpkg, dockerd — is real. Compared with ../shared/upstream/debian-12/ where the same facts were
captured on a real bookworm host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from .conftest import UPSTREAM, Root

KERNEL = os.uname().release
DEBIAN12 = "version: 1\ndriver: {method: package, reboot: prompt}\ncuda: {version: \"%s\", env_file: /etc/profile.d/cuda.sh}\ncontainer: {runtime: docker}\n"
CONTAINER_ONLY = "version: 1\ncontainer: {runtime: docker}\n"


# -- helpers ----------------------------------------------------------------------------------------
def capture(name: str) -> dict[str, str] | None:
    """A capture of ../shared/upstream/debian-12/captures: {"cmd", "stdout", "stderr", "rc"}."""
    p = UPSTREAM / "captures" / name
    if not p.exists():
        return None
    text = p.read_text()
    m = re.match(r"\$ (?P<cmd>.*)\n\[stdout\]\n(?P<stdout>.*?)\[stderr\]\n(?P<stderr>.*?)\[rc=(?P<rc>-?\d+)\]", text, re.S)
    return m.groupdict() if m else None


def upstream(version: str) -> str:
    """``20.10.24`` of ``20.10.24+dfsg1-1+deb12u1``; ``1.6.20`` of ``1.6.20~ds1-1+deb12u3``."""
    v = version.split(":", 1)[-1].rsplit("-", 1)[0]
    return re.split(r"[~+]", v)[0]


def nvidia_cards_here() -> int:
    n = 0
    for dev in Path("/sys/bus/pci/devices").glob("*"):
        try:
            vendor, klass = (dev / "vendor").read_text().strip(), (dev / "class").read_text().strip()
        except OSError:
            continue
        n += vendor == "0x10de" and klass[:4] in ("0x03", "0x0302", "0x0300")
    return n


def plan(root: Root, answers: str, scene: str = "card") -> tuple[int, dict, str]:
    r = root.gw("plan", "--json", scene=scene, answers=answers)
    assert r.out.strip(), str(r)
    return r.code, r.json(), r.err


def step(doc: dict, name: str) -> dict:
    return next(s for s in doc["steps"] if s["step"] == name)


def apt_installs(doc: dict) -> list[tuple[str, str, list[str]]]:
    """(step, action id, packages) of every `apt-get install` the plan runs."""
    out = []
    for s in doc["steps"]:
        for a in s["actions"]:
            argv = a.get("argv") or []
            if argv[:2] == ["apt-get", "install"]:
                out.append((s["step"], a["id"], [p for p in argv[2:] if not p.startswith("-")]))
    return out


def apply_preview_diff(original: str, preview: list[str]) -> str:
    """The file a plan's unified-diff preview leads to, applied to ORIGINAL."""
    old = original.splitlines(keepends=True)
    new: list[str] = []
    pos = 0
    lines = [line for line in preview if not line.startswith("$ ")]
    i = next((k for k, line in enumerate(lines) if line.startswith("@@")), len(lines))
    while i < len(lines):
        m = re.match(r"@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", lines[i])
        assert m, lines[i]
        start = int(m.group(1)) - (0 if m.group(2) == "0" else 1)
        new += old[pos:start]
        pos = start
        i += 1
        while i < len(lines) and not lines[i].startswith("@@"):
            line = lines[i]
            if line.startswith("\\"):  # "\ No newline at end of file": the line before has none
                if new and new[-1].endswith("\n"):
                    new[-1] = new[-1][:-1]
            elif line.startswith("+"):
                new.append(line[1:] + "\n")
            elif line.startswith("-"):
                pos += 1
            else:
                new.append(old[pos] if pos < len(old) else line[1:] + "\n")
                pos += 1
            i += 1
    new += old[pos:]
    return "".join(new)


def daemon_json_the_step_writes(root: Root, scene: str = "machine") -> str:
    code, doc, err = plan(root, CONTAINER_ONLY, scene=scene)
    assert code == 0, err
    action = next(a for a in step(doc, "container")["actions"] if a.get("path") == "/etc/docker/daemon.json")
    current = root.path / "etc/docker/daemon.json"
    return apply_preview_diff(current.read_text() if current.exists() else "", action["preview"])


@pytest.fixture
def headers(root: Root):
    """The running kernel's headers as if installed (/lib/modules/<release>/build), removed after."""
    build = root.path / "lib/modules" / KERNEL / "build"
    created = not build.exists()
    build.mkdir(parents=True, exist_ok=True)
    yield build
    if created:
        build.rmdir()
        for p in (build.parent, build.parent.parent):
            if not any(p.iterdir()):
                p.rmdir()


@pytest.fixture
def systemd_booted(root: Root):
    """/run/systemd/system in the root, as while systemd is PID 1 (sd_booted(3)): a minbase root
    has no systemd, and the container step refuses a restart it cannot do (see the test below)."""
    marker = root.path / "run/systemd/system"
    marker.mkdir(parents=True, exist_ok=True)
    yield marker
    marker.rmdir()
    marker.parent.rmdir()


# -- doctor -----------------------------------------------------------------------------------------
def test_doctor_json_is_right_for_the_root(root: Root):
    r = root.gw("doctor", "--json")
    assert r.code == 0, str(r)
    doc = r.json()
    os_release = dict(re.findall(r'(?m)^(\w+)="?([^"\n]*)"?$', (root.path / "etc/os-release").read_text()))
    host = doc["host"]
    assert (host["os"], host["version"], host["codename"], host["pretty_name"]) == (
        "debian", "12", "bookworm", os_release["PRETTY_NAME"]) == ("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
    assert (host["kernel"], host["arch"]) == (KERNEL, os.uname().machine)
    if not Path("/sys/firmware/efi").exists():  # captures/mokutil-sb-state.txt: no EFI is Secure Boot off
        assert host["secure_boot"] is False
    has_modules = Path("/proc/modules").exists()
    assert ("modules" in doc["problems"]) is (not has_modules)
    if has_modules:
        loaded = {line.split()[0] for line in Path("/proc/modules").read_text().splitlines()}
        assert host["nouveau_loaded"] is ("nouveau" in loaded) and host["nvidia_loaded"] is ("nvidia" in loaded)
    else:
        assert "no /proc/modules" in doc["problems"]["modules"] and host["nvidia_loaded"] is False
    # minbase: no pciutils, so the card list comes from sysfs; no driver, CUDA or toolkit
    assert len(doc["gpus"]) == nvidia_cards_here() and doc["gpu_source"] == "lspci/sysfs"
    assert doc["driver"] is None and doc["driver_status"] == "no-driver"
    assert doc["cuda_toolkit"] is None and doc["container_toolkit"] is None
    assert doc["kubernetes"] is None and doc["gpu_operator"] is None and doc["hami"] is None
    # docker.io and containerd as the root's dpkg has them; no daemon runs
    docker_pkg, containerd_pkg = root.dpkg_version("docker.io"), root.dpkg_version("containerd")
    assert docker_pkg and containerd_pkg
    dk = doc["docker"]
    assert dk["version"] == upstream(docker_pkg) and dk["running"] is False and dk["server_version"] is None
    assert dk["runtimes"] == [] and "docker" not in doc["problems"]
    assert doc["tools"]["containerd"] == upstream(containerd_pkg)
    assert {k: v for k, v in doc["tools"].items() if k != "containerd"} == dict.fromkeys(("nvidia-ctk", "kind", "kubectl", "helm"))
    assert set(doc["problems"]) <= {"modules"}
    # the real bookworm host's captures said the same (when the archive still has those versions)
    cap = capture("containerd--version.txt")
    if cap and containerd_pkg in cap["stdout"]:
        assert doc["tools"]["containerd"] == cap["stdout"].split()[2].split("~")[0]
    cap = capture("docker--version.txt")
    if cap and docker_pkg.startswith(cap["stdout"].split()[2].rstrip(",")):
        assert dk["version"] == upstream(cap["stdout"].split()[2].rstrip(","))


def test_doctor_reads_runtimes_from_the_private_daemon(root: Root, dockerd, systemd_booted):
    """captures/docker-info-runtimes.txt: docker.io 20.10.24 lists an nvidia runtime whose binary is
    missing; doctor takes the runtimes from the daemon and says the binary is not there."""
    dockerd(daemon_json_the_step_writes(root))
    real = root.run("docker", "info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}")
    assert real.code == 0, str(real)
    runtimes, default = real.out.strip().split("|")
    cap = capture("docker-info-runtimes.txt")
    if cap:
        assert set(json.loads(runtimes)) == set(json.loads(cap["stdout"].split("|")[0])) and default == "runc"
    doc = root.gw("doctor", "--json").json()
    dk = doc["docker"]
    server = root.run("docker", "version", "--format", "{{.Server.Version}}").out.strip()
    assert dk["running"] is True and dk["server_version"] == server and dk["version"] == upstream(server)
    assert dk["runtimes"] == sorted(json.loads(runtimes)) and "nvidia" in dk["runtimes"]
    assert dk["default_runtime"] == "runc" and dk["missing_runtimes"] == ["nvidia"]
    assert "nvidia (nvidia-container-runtime)" in doc["problems"]["docker"] and "binary is not found" in doc["problems"]["docker"]


# -- the container step's daemon.json, on a real dockerd ---------------------------------------------
@pytest.mark.parametrize("before", [None, '{\n  "log-driver": "json-file",\n  "log-opts": {"max-size": "10m"},\n  "default-runtime": "runc"\n}\n'],
                         ids=["no-daemon-json", "daemon-json-with-other-keys"])
def test_daemon_json_the_container_step_writes_is_accepted_by_dockerd(root: Root, dockerd, systemd_booted, before):
    cfg = root.path / "etc/docker/daemon.json"
    if before is None:
        cfg.unlink(missing_ok=True)
    else:
        root.write("/etc/docker/daemon.json", before)
    written = daemon_json_the_step_writes(root)
    data = json.loads(written)
    assert data["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    if before is not None:  # other keys kept
        assert {k: v for k, v in data.items() if k != "runtimes"} == json.loads(before)
    dockerd(written)
    info = root.run("docker", "info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}|{{.LoggingDriver}}")
    assert info.code == 0, str(info)
    runtimes, default, logging = info.out.strip().split("|")
    assert json.loads(runtimes)["nvidia"] == {"path": "nvidia-container-runtime"}
    assert default == "runc" and logging == "json-file"


# -- the driver step's plan-time facts, from the real archive ---------------------------------------
def test_container_step_refuses_a_restart_without_systemd(root: Root):
    """A minbase root has no systemd (captures: `systemctl` says "System has not been booted with
    systemd"): the restart docker needs is refused at plan time, before any change."""
    assert not (root.path / "run/systemd/system").exists()
    code, doc, err = plan(root, CONTAINER_ONLY, scene="machine")
    ct = step(doc, "container")
    assert code == 2 and ct["refused"] and ct["actions"] == [], json.dumps(ct, indent=1)
    assert "does not run systemd" in ct["error"] and "docker" in ct["error"]


def test_driver_plan_on_this_machine_as_it_is(root: Root):
    """The machine's own /proc and /sys: the driver step says what stops it here, and plans nothing."""
    code, doc, err = plan(root, "version: 1\ndriver: {method: package}\n", scene="machine")
    drv = step(doc, "driver")
    assert drv["actions"] == [] and drv["error"], json.dumps(drv, indent=1)
    if not nvidia_cards_here():
        assert "no NVIDIA GPU was detected" in drv["error"] and not drv["refused"] and code == 1
    elif not Path("/proc/modules").exists():
        assert "no loadable module support" in drv["error"] and drv["refused"] and code == 2


def test_headers_for_a_kernel_the_archive_lacks_are_refused_at_plan_time(root: Root):
    headers_pkg = f"linux-headers-{KERNEL}"
    if root.candidate(headers_pkg):
        pytest.skip(f"the archive has {headers_pkg}: this machine runs a Debian kernel the archive still has")
    code, doc, err = plan(root, DEBIAN12 % "12.2")
    drv = step(doc, "driver")
    assert code == 2 and drv["refused"] and drv["actions"] == [], json.dumps(drv, indent=1)
    assert f"no kernel headers for the running kernel {KERNEL}" in drv["error"]
    assert f"`apt-cache policy {headers_pkg}`: Unable to locate package" in drv["error"]
    assert "install the current kernel (`apt-get update && apt-get install -y linux-image-amd64`), reboot" in drv["error"]
    r = root.gw("plan", scene="card", answers=DEBIAN12 % "12.2")
    assert r.code == 2 and "refused: the configured archive has no kernel headers" in r.out, str(r)
    # the way out is real: the archive's current kernel has its headers
    sim = root.run("apt-get", "-s", "install", "linux-image-amd64", "linux-headers-amd64", mounts=("/dev:/dev",))
    assert sim.code == 0 and re.search(r"(?m)^Inst linux-headers-\d+\.\d+\.\d+-\d+-amd64 ", sim.out), str(sim)


def test_the_archives_one_driver_is_planned_and_cuda_beyond_it_refused(root: Root, headers, systemd_booted):
    candidate = root.candidate("nvidia-driver")
    assert candidate, f"nvidia-driver has no candidate: contrib/non-free not enabled? (apt-get update: {root.apt_update or 'ok'})"
    version = upstream(candidate)
    cap = (UPSTREAM / "apt-cache.txt").read_text() if (UPSTREAM / "apt-cache.txt").exists() else ""
    if "nvidia-driver:\n  Installed: (none)\n  Candidate: " in cap:  # the real host saw the same candidate
        assert candidate == cap.split("nvidia-driver:\n  Installed: (none)\n  Candidate: ", 1)[1].split("\n", 1)[0]
    code, doc, err = plan(root, DEBIAN12 % "12.2")
    assert code == 0, err
    drv = step(doc, "driver")
    assert f"archive has one NVIDIA driver: nvidia-driver {candidate} (branch {version.split('.')[0]}, which runs CUDA up to 12.2)" in drv["decisions"][0]
    assert ("driver", "install", ["nvidia-driver"]) in apt_installs(doc)
    # CUDA 12.6 with Debian's 535: refused before any change, exit 2, naming what the archive gives
    before = root.run("dpkg-query", "-W", "-f=${Package}\n", mounts=("/dev:/dev",)).out
    r = root.gw("plan", scene="card", answers=DEBIAN12 % "12.6")
    assert r.code == 2, str(r)
    assert f"CUDA 12.6 needs driver ≥ 560.28.03, but the driver this run installs {version} runs CUDA 12.2 at most" in r.out + r.err
    assert "or choose cuda.version ≤ 12.2" in r.out + r.err
    r = root.gw(scene="card", answers=DEBIAN12 % "12.6", timeout=120)  # the unattended run: refused, nothing run
    assert r.code == 2 and "nothing was executed" in r.err, str(r)
    assert root.run("dpkg-query", "-W", "-f=${Package}\n", mounts=("/dev:/dev",)).out == before


def _nvidia_repos_reachable() -> str | None:
    for host in ("developer.download.nvidia.com", "nvidia.github.io"):
        try:
            socket.getaddrinfo(host, 443)
        except OSError as exc:
            return f"{host}: {exc}"
    return None


def test_every_package_the_host_layer_plans_resolves_with_real_apt(root: Root, headers, systemd_booted):
    code, doc, err = plan(root, DEBIAN12 % "12.2")
    assert code == 0, err
    installs = apt_installs(doc)
    assert installs, json.dumps(doc, indent=1)
    debian, nvidia = [], []
    for stepname, action, pkgs in installs:
        for p in pkgs:
            (debian if root.candidate(p) else nvidia).append((stepname, action, p))
    assert "nvidia-driver" in {p for _, _, p in debian}
    sim = root.run("apt-get", "-s", "install", *[p for _, _, p in debian], mounts=("/dev:/dev",))
    assert sim.code == 0, str(sim)
    newly = re.search(r"(\d+) newly installed", sim.out)
    assert newly and int(newly.group(1)) > 250, sim.out[-500:]  # the real install pulled 312 (apt-get-install-nvidia-driver.log)
    # the rest come from NVIDIA's repositories, which the same step adds first
    for stepname, action, p in nvidia:
        acts = step(doc, stepname)["actions"]
        idx = [a["id"] for a in acts].index(action)
        earlier = json.dumps(acts[:idx])
        # each from its own repository: the CUDA one through cuda-keyring, the toolkit's list file
        repository = {"cuda-toolkit-12-2": "cuda-keyring", "nvidia-container-toolkit": "sources.list.d/nvidia-container-toolkit.list"}[p]
        assert repository in earlier, (p, earlier)
    assert {p for _, _, p in nvidia} == {"cuda-toolkit-12-2", "nvidia-container-toolkit"}
    why = _nvidia_repos_reachable()
    if why:
        pytest.skip(f"Debian's packages resolve ({len(debian)}: {', '.join(p for _, _, p in debian)}); NVIDIA's "
                    f"({', '.join(p for _, _, p in nvidia)}) were not resolved: NVIDIA's repositories are not reachable here ({why})")


# -- what a minbase Debian 12 root lacks ------------------------------------------------------------
TOOLS_FROM_PLANNED_PACKAGES = {"nvidia-ctk": "nvidia-container-toolkit", "modprobe": "kmod", "dkms": "dkms"}


def test_every_tool_the_plan_runs_is_there_or_installed_first(root: Root, headers, systemd_booted):
    code, doc, err = plan(root, DEBIAN12 % "12.2")
    assert code == 0, err
    planned_debian = root.run("apt-get", "-s", "install", "nvidia-driver", mounts=("/dev:/dev",)).out
    missing = []
    for s in doc["steps"]:
        for a in s["actions"]:
            tool = (a.get("argv") or [None])[0]
            if not tool or tool == "systemctl":  # systemd is planted (systemd_booted): its systemctl is not
                continue
            present = root.sh(f"command -v {tool}", mounts=("/dev:/dev",)).code == 0
            pkg = TOOLS_FROM_PLANNED_PACKAGES.get(tool)
            installed_first = pkg is not None and (f"Inst {pkg} " in planned_debian or pkg == "nvidia-container-toolkit")
            if not present and not installed_first:
                missing.append(f"[{s['step']}] {a['id']}: {tool}")
    assert not missing, "the plan runs tools this root does not have and nothing installs:\n  " + "\n  ".join(missing)


# -- undo against the real dpkg and apt --------------------------------------------------------------
UNDO_SCRIPT = r'''
import json
from pathlib import Path

from pydantic import BaseModel

from gpuwizard import actions as A
from gpuwizard import undo
from gpuwizard.engine import Engine, Step
from gpuwizard.host import Host, Runner
from gpuwizard.state import State


class NoAnswers(BaseModel):
    pass


class InstallJq(Step):
    id = "cuda"
    title = "install jq (its libraries come with it)"
    Answers = NoAnswers

    def plan(self, ctx, answers):
        return [A.Run("install", "install jq", ["apt-get", "install", "-y", "--no-install-recommends", "jq"],
                      done_when=["dpkg", "-s", "jq"], env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=600)]


state = State(Path("/tmp/undo-state.json"))
engine = Engine(Host("/", Runner()), state, {"cuda": InstallJq()}, detector=lambda host: {})
ran = engine.run(["cuda"], {"cuda": NoAnswers()})
journal = json.loads(json.dumps(state.data.get("journal", [])))
undone = undo.run(engine, ["cuda"])
print(json.dumps({"run": ran, "journal": journal, "undo": undone}))
'''


def test_undo_purges_exactly_the_packages_an_install_added_with_the_real_dpkg_and_apt(root: Root):
    """The journal reads the installed set with the root's real dpkg-query before and after `apt-get
    install jq` (jq brings libjq1 and libonig5), and undo purges exactly those with the real apt-get:
    what was installed before (apt, dpkg) stays."""
    if root.apt_update:
        pytest.skip(f"the Debian mirror's package lists could not be refreshed: {root.apt_update}")
    def installed() -> set[str]:
        rows = root.run("dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n").out.splitlines()
        return {row.split()[0] for row in rows if row.endswith(" installed")}

    before = installed()
    if "jq" in before:
        pytest.skip("jq is already in the cached root")
    (root.path / "tmp/undo.py").write_text(UNDO_SCRIPT)
    res = root.run("/opt/gw/venv/bin/python", "/tmp/undo.py", mounts=("/dev:/dev",), timeout=600)
    assert res.code == 0, str(res)
    doc = json.loads(res.out.strip().splitlines()[-1])
    if doc["run"] != 0:
        pytest.skip(f"apt-get install jq did not run here (no mirror?): {res.err[-300:]}")
    added = next(e["data"]["added"] for e in doc["journal"] if e["kind"] == "packages")
    assert "jq" in added and set(added) - {"jq"}, added  # its libraries too (libjq1, libonig5 on bookworm)
    assert not set(added) & before
    assert doc["undo"] == 0, str(res)
    assert installed() == before  # exactly what was there: jq and its libraries purged, nothing else touched


# -- a bundle's packages, resolved and installed by the real apt ------------------------------------
BUNDLE_PACKAGES_SCRIPT = r'''
import json
import shutil
from pathlib import Path

from gpuwizard import packages
from gpuwizard.host import Host, Runner
from gpuwizard.network import Network
from gpuwizard.platform import for_host


class Build:  # what packages.fetch_apt reads of an engine
    host = Host("/", Runner())
    network = Network()


platform = for_host({"os": "debian", "version": "12", "arch": "x86_64"})
files = packages.fetch_apt(Build, platform, {"driver": ["jq"]}, Path("/tmp/stage"), {}, lambda text: None)
shutil.copytree("/tmp/stage/packages", "/srv/USB DISK/packages")
Path("/tmp/apt-conf").mkdir()
print(json.dumps({"files": files, "apt_config": packages.use(Build.host, Path("/srv/USB DISK/packages/apt"),
                                                             Path("/tmp/apt-conf"))}))
'''


def test_a_bundles_packages_resolve_with_the_real_apt_and_install_with_no_network(root: Root):
    """The real apt resolves jq for bookworm on a private state with nothing installed (so libc6
    comes along, although the root has it), the bundle's flat repository is read by the real apt
    through APT_CONFIG with the network cut (unshare -n): jq installs from it, the bundle's pin
    its candidate; nothing under /etc/apt names the bundle, so once it is gone the root's apt-get
    update still succeeds. The bundle's path has a space, as a USB stick's mount point may."""
    if root.apt_update:
        pytest.skip(f"the Debian mirror's package lists could not be refreshed: {root.apt_update}")
    if root.dpkg_version("jq"):
        pytest.skip("jq is already in the root")
    (root.path / "tmp/bundle_packages.py").write_text(BUNDLE_PACKAGES_SCRIPT)
    res = root.run("/opt/gw/venv/bin/python", "/tmp/bundle_packages.py", mounts=("/dev:/dev",), timeout=600)
    assert res.code == 0, str(res)
    doc = json.loads(res.out.strip().splitlines()[-1])
    debs = {m["package"] for m in doc["files"].values() if m.get("package")}
    assert {"jq", "libjq1", "libonig5", "libc6"} <= debs, debs
    env = {"APT_CONFIG": doc["apt_config"], "DEBIAN_FRONTEND": "noninteractive"}
    root.run("apt-get", "clean", mounts=("/dev:/dev",))  # no archive of an earlier install may serve this one
    upd = root.run("unshare", "-n", "apt-get", "update", mounts=("/dev:/dev",), env=env, timeout=300)
    assert upd.code == 0, str(upd)  # the archive's sources fail (W:), the bundle's is read
    assert "file:/srv/USB DISK/packages/apt ./ Packages" in upd.out, str(upd)
    policy = root.run("apt-cache", "policy", "jq", mounts=("/dev:/dev",), env=env)
    assert "990 file:/srv/USB DISK/packages/apt ./ Packages" in policy.out, str(policy)
    inst = root.run("unshare", "-n", "apt-get", "install", "-y", "jq", mounts=("/dev:/dev",), env=env, timeout=600)
    assert inst.code == 0, str(inst)
    assert "file:/srv/USB DISK/packages/apt ./ jq " in inst.out, str(inst)
    assert root.dpkg_version("jq")
    etc = root.sh("grep -rl 'USB' /etc/apt || true", mounts=("/dev:/dev",))
    assert etc.out.strip() == "", etc.out
    shutil.rmtree(root.path / "srv/USB DISK")
    after = root.run("apt-get", "update", "-q", mounts=("/dev:/dev",), timeout=300)
    assert after.code == 0, str(after)
    root.run("apt-get", "purge", "-y", "--autoremove", "jq", mounts=("/dev:/dev",), env={"DEBIAN_FRONTEND": "noninteractive"})
