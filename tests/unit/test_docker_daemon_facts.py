"""Docker facts come from the daemon (`docker info`, `docker version` JSON), not from daemon.json;
the GPU check reports the daemon's error line; `cdi: true` is refused below Docker 25."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gpuwizard import detect as D
from gpuwizard import doctor
from gpuwizard import parsers as P
from gpuwizard.errors import StepFailed
from gpuwizard.host import Host, Runner
from gpuwizard.simulate import Sandbox, prepare
from gpuwizard.steps import container as K

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "tools" / "docker"
DEBIAN = Path(__file__).resolve().parents[2] / ".." / "shared" / "upstream" / "debian-12" / "captures"
NVIDIA = {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}, "default-runtime": "nvidia"}


def run(sb: Sandbox, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env={**os.environ, **sb.env()}, capture_output=True, text=True, timeout=30)


def sim_host(sb: Sandbox) -> Host:
    return Host(sb.root, Runner(path=sb.env()["PATH"], env=sb.env()))


@pytest.fixture
def t4(tmp_path: Path) -> Sandbox:
    return prepare("t4-bare", tmp_path / "sb")


# ------------------------------------------------------------------ parsers on real outputs
def test_docker_info_json_of_a_running_daemon():
    info = P.parse_docker_info_json((FIX / "info-json-20.10.12-tce.json").read_text())
    assert info is not None and info.server_version == "20.10.12" and info.default_runtime == "runc"
    assert info.runtimes == {"io.containerd.runc.v2": "runc", "io.containerd.runtime.v1.linux": "runc", "runc": "runc"}
    assert set(info.runtimes) == P.DOCKER_BUILTIN_RUNTIMES and info.cdi_spec_dirs == ()


def test_without_a_daemon_the_cli_still_prints_json_and_it_means_no_daemon():
    assert P.parse_docker_info_json((FIX / "info-json-no-daemon-28.2.2.json").read_text()) is None
    versions = P.parse_docker_version_json((FIX / "version-json-no-daemon-28.2.2.json").read_text())
    assert versions == P.DockerVersions(client="28.2.2", server=None)
    assert P.parse_docker_version_json("Cannot connect to the Docker daemon") is None


def test_debian_docker_lists_the_nvidia_runtime_without_its_binary():
    capture = DEBIAN / "docker-info-runtimes.txt"
    if not capture.exists():
        pytest.skip(f"{capture} is not here")
    runtimes = json.loads(capture.read_text().split("[stdout]\n", 1)[1].split("|", 1)[0])
    assert runtimes["nvidia"] == {"path": "nvidia-container-runtime"}  # listed, though not installed


@pytest.mark.parametrize(("name", "expected"), [
    ("run-gpu-no-toolkit-nvidia-docker1034.txt",
     'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].'),
    ("run-unknown-runtime-nvidia-docker501.txt", "docker: Error response from daemon: Unknown runtime specified nvidia."),
    ("run-no-daemon-28.2.2.txt",
     "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"),
])
def test_the_daemons_error_line_not_the_cli_trailer(name: str, expected: str):
    text = (FIX / name).read_text()
    assert "docker run --help" in text or "ERRO[" in text  # the trailer a last-line report would show
    assert P.docker_cli_error(text) == expected


# ------------------------------------------------------------------ the simulated docker answers as the real one
def test_simulated_docker_json_has_the_real_shape(t4: Sandbox):
    real_version = json.loads((FIX / "version-json-no-daemon-28.2.2.json").read_text())
    real_info = json.loads((FIX / "info-json-no-daemon-28.2.2.json").read_text())
    up = json.loads(run(t4, "docker", "version", "--format", "{{json .}}").stdout)
    assert set(up["Client"]) == set(real_version["Client"]) and up["Server"]["Version"] == "24.0.7"
    info = json.loads(run(t4, "docker", "info", "--format", "{{json .}}").stdout)
    assert info["ServerVersion"] == "24.0.7" and info["DefaultRuntime"] == "runc"
    running = json.loads((FIX / "info-json-20.10.12-tce.json").read_text())
    assert set(info) <= set(real_info) | set(running)  # no field the real daemon does not have
    assert run(t4, "systemctl", "stop", "docker").returncode == 0
    down = run(t4, "docker", "version", "--format", "{{json .}}")
    assert down.returncode == 1 and json.loads(down.stdout)["Server"] is None
    down = run(t4, "docker", "info", "--format", "{{json .}}")
    assert down.returncode == 1 and "Cannot connect to the Docker daemon" in down.stderr
    doc = json.loads(down.stdout)
    assert (doc["ServerVersion"], doc["Runtimes"], doc["ClientInfo"]["Version"]) == ("", None, "24.0.7")


def test_doctor_reads_the_daemon_not_daemon_json(t4: Sandbox):
    daemon = t4.root / "etc/docker/daemon.json"
    daemon.parent.mkdir(parents=True, exist_ok=True)
    daemon.write_text(json.dumps(NVIDIA))
    facts = D.detect(sim_host(t4))  # edited, not restarted: the daemon has no nvidia runtime yet
    assert facts["docker"]["runtimes"] == ["io.containerd.runc.v2", "runc"]
    assert facts["docker"]["default_runtime"] == "runc"
    assert (facts["docker"]["version"], facts["docker"]["server_version"]) == ("24.0.7", "24.0.7")
    assert {n: d for n, _s, d in doctor.rows(facts)}["docker"] == "24.0.7 (running); runtimes: none extra"
    assert run(t4, "systemctl", "restart", "docker").returncode == 0
    t4.mutate(lambda w: w.__setitem__("nvidia_ctk", {"version": "1.17.0"}))
    facts = D.detect(sim_host(t4))
    assert "nvidia" in facts["docker"]["runtimes"] and facts["docker"]["default_runtime"] == "nvidia"
    assert "docker" not in facts["problems"] and "missing_runtimes" not in facts["docker"]


def test_a_listed_runtime_whose_binary_is_gone_is_a_problem_and_fails_the_check(t4: Sandbox):
    daemon = t4.root / "etc/docker/daemon.json"
    daemon.parent.mkdir(parents=True, exist_ok=True)
    daemon.write_text(json.dumps(NVIDIA))
    t4.mutate(lambda w: w.__setitem__("nvidia_ctk", {"version": "1.17.0", "runtime_binary": False}))
    assert run(t4, "systemctl", "restart", "docker").returncode == 0  # dockerd starts all the same
    facts = D.detect(sim_host(t4))
    assert facts["docker"]["missing_runtimes"] == ["nvidia"] and "nvidia" in facts["docker"]["runtimes"]
    assert "nvidia-container-runtime" in facts["problems"]["docker"]
    assert "nvidia-container-toolkit" in facts["problems"]["docker"]
    r = run(t4, "docker", "run", "--rm", "--gpus", "all", "nvidia/cuda:12.2.2-base-ubuntu22.04", "nvidia-smi")
    assert r.returncode == 127 and r.stderr.rstrip().endswith("See 'docker run --help'.")
    assert 'exec: "nvidia-container-runtime": executable file not found in $PATH' in P.docker_cli_error(r.stderr)


# ------------------------------------------------------------------ cdi: true below Docker 25
def test_cdi_is_refused_below_docker_25_naming_the_server_version():
    with pytest.raises(StepFailed) as err:
        K.refuse_cdi_before_docker_25({"version": "20.10.24", "server_version": "20.10.24+dfsg1"})
    assert "20.10.24+dfsg1" in str(err.value) and "25" in str(err.value) and "nothing was changed" in str(err.value)
    with pytest.raises(StepFailed, match="client is 24.0.7"):
        K.refuse_cdi_before_docker_25({"version": "24.0.7", "server_version": None})
    K.refuse_cdi_before_docker_25({"version": "28.2.2", "server_version": "25.0.0"})  # accepted
