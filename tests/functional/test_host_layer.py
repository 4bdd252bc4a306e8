"""driver + cuda + container end to end on simulated hosts (real runner, real subprocesses, sandbox roots):
the issue's done-when runs, idempotent re-runs, dry-run, runfiles served over HTTP on 127.0.0.1,
injected failures and --resume."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from gpuwizard.simulate import prepare

from ..unit.test_download import FileServer
from .cli import run

ROOT = Path(__file__).resolve().parents[2]
HOST_YAML = ROOT / "examples" / "host.yaml"
STATE = "var/lib/gpuwizard/state.json"
KERNEL = "5.15.0-125-generic"
# commands that change a host; a re-run must issue none of them
CHANGING = (["apt-get"], ["sh"], ["curl"], ["dpkg", "-i"], ["gpg", "--batch"], ["ubuntu-drivers", "install"],
            ["systemctl", "restart"], ["systemctl", "enable"], ["nvidia-ctk", "runtime"], ["modprobe"],
            ["update-initramfs"], ["reboot"], ["mokutil", "--import"], ["openssl"])


def sim(profile: str, root: Path, *argv: str) -> tuple[int, str, str]:
    return run("--simulate", profile, "--root", str(root), *argv)


def state(root: Path) -> dict:
    return json.loads((root / STATE).read_text())


def answers(tmp_path: Path, text: str, name: str = "answers.yaml") -> str:
    path = tmp_path / name
    path.write_text("version: 1\n" + text)
    return str(path)


def snapshot(root: Path) -> dict[str, bytes | str]:
    skip = (".gpuwizard-sim/calls.jsonl", ".gpuwizard-sim/pycache", ".gpuwizard-sim/lock", "var/lib/gpuwizard", "var/log/gpuwizard")
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel.startswith(skip):
                continue
            found[rel] = ("-> " + os.readlink(p)) if p.is_symlink() else p.read_bytes()
    return found


def head_probe(argv: list[str]) -> bool:
    """The plan's URL check: ``curl -fsSI ... -o /dev/null URL``, a HEAD request that writes nothing."""
    return argv[:2] == ["curl", "-fsSI"] and argv[-3:-1] == ["-o", "/dev/null"]


def changing_calls(calls: list[dict]) -> list[list[str]]:
    return [c["argv"] for c in calls if any(c["argv"][: len(p)] == p for p in CHANGING) and not head_probe(c["argv"])]


# ------------------------------------------------------------------------------------------------
def test_t4_bare_host_layer_then_a_second_run_changes_nothing(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("t4-bare", root, "--answers", str(HOST_YAML))
    assert code == 0, out + err
    steps = state(root)["steps"]
    assert [steps[s]["status"] for s in ("detect", "driver", "cuda", "container")] == ["done"] * 4
    assert "driver 565.57.01 (CUDA 12.7)" in out and "CUDA 12.6 (nvcc V12.6.77)" in out
    assert "nvidia-smi sees 1 GPU(s): Tesla T4" in out
    assert (root / "etc/profile.d/cuda.sh").read_text().count("export PATH=/usr/local/cuda-12.6/bin") == 1
    assert json.loads((root / "etc/docker/daemon.json").read_text())["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert "signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg" in (root / "etc/apt/sources.list.d/nvidia-container-toolkit.list").read_text()

    sb = prepare("t4-bare", root)
    before, n_calls = snapshot(root), len(sb.calls())
    code, out, err = sim("t4-bare", root, "--answers", str(HOST_YAML))
    assert code == 0, out + err
    assert "changed" not in out
    assert snapshot(root) == before
    assert changing_calls(sb.calls()[n_calls:]) == []

    # without the state file, every action still knows it is done
    (root / STATE).unlink()
    code, out, err = sim("t4-bare", root, "--answers", str(HOST_YAML))
    assert code == 0 and "changed" not in out and out.count(" ok ") >= 6, out
    assert snapshot(root) == before


def test_dry_run_shows_commands_and_diffs_and_executes_nothing(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("t4-bare", root)
    before = snapshot(root)
    code, out, err = sim("t4-bare", root, "--dry-run", "--answers", str(HOST_YAML))
    assert code == 0, err
    for text in ("$ ubuntu-drivers install", "$ apt-get install -y linux-headers-5.15.0-125-generic",
                 "$ apt-get install -y cuda-toolkit-12-6", "+export PATH=/usr/local/cuda-12.6/bin",
                 "$ nvidia-ctk runtime configure --runtime=docker", '+            "path": "nvidia-container-runtime"',
                 "$ systemctl restart docker", "nothing was executed"):
        assert text in out, text
    assert changing_calls(sb.calls()) == [] and snapshot(root) == before


def test_nouveau_blacklist_reboot_resume(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("nouveau", root, "--answers", str(HOST_YAML))
    assert code == 3, out + err
    assert (root / "etc/modprobe.d/blacklist-nouveau.conf").read_text().endswith("blacklist nouveau\noptions nouveau modeset=0\n")
    sb = prepare("nouveau", root)
    assert ["update-initramfs", "-u"] in [c["argv"] for c in sb.calls()]
    assert sb.world()["driver"] is None and state(root)["steps"]["driver"]["status"] == "reboot-required"
    # no reboot yet: --resume stops again and changes nothing
    code, out, _ = sim("nouveau", root, "--resume")
    assert code == 3 and "reboot first" in out
    assert sb.run(["reboot"]).returncode == 0
    code, out, err = sim("nouveau", root, "--resume")
    assert code == 0, out + err
    assert "nouveau" not in (root / "proc/modules").read_text()
    assert all(state(root)["steps"][s]["status"] == "done" for s in ("driver", "cuda", "container"))


def test_nouveau_with_reboot_auto_reboots_itself(tmp_path: Path):
    root = tmp_path / "s"
    code, out, _ = sim("nouveau", root, "--answers", answers(tmp_path, "driver: {reboot: auto}\n"))
    assert code == 3 and "rebooting now" in out
    assert "nouveau" not in (root / "proc/modules").read_text()
    assert state(root)["steps"]["driver"]["status"] == "reboot-required"


def test_secureboot_defaults_refuse_with_two_ways_out_and_install_nothing(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("secureboot", root, "--answers", str(HOST_YAML))
    assert code == 1
    assert "disable Secure Boot" in out and "secure_boot: sign" in out and "mokutil --import" in out
    sb = prepare("secureboot", root)
    assert sb.world()["driver"] is None and not sb.world().get("packages")
    assert changing_calls(sb.calls()) == []
    assert state(root)["steps"]["driver"]["failed_action"] == "secure-boot"


def test_secureboot_sign_enrols_a_key_and_resumes_after_the_reboot(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("secureboot", root, "--answers", answers(tmp_path, "driver: {secure_boot: sign}\n"))
    assert code == 3, out + err
    assert "enrolled at the console" in out
    sb = prepare("secureboot", root)
    w = sb.world()
    assert w["driver"]["signed"] and w["host"]["mok_pending"] == [w["driver"]["signing_key"]]
    assert sb.run(["reboot"]).returncode == 0  # the user enrols the key in MokManager during this boot
    code, out, err = sim("secureboot", root, "--resume")
    assert code == 0, out + err
    assert "driver 565.57.01" in out


def test_daemon_json_keys_survive_and_a_backup_exists(tmp_path: Path):
    root = tmp_path / "s"
    prepare("t4-bare", root)
    original = '{\n    "registry-mirrors": ["https://mirror.example.com"],\n    "log-driver": "json-file"\n}\n'
    (root / "etc/docker").mkdir(parents=True, exist_ok=True)
    (root / "etc/docker/daemon.json").write_text(original)
    code, out, err = sim("t4-bare", root, "--answers", answers(tmp_path, "driver: {}\ncontainer: {set_as_default: true}\n"))
    assert code == 0, out + err
    cfg = json.loads((root / "etc/docker/daemon.json").read_text())
    assert cfg["registry-mirrors"] == ["https://mirror.example.com"] and cfg["log-driver"] == "json-file"
    assert cfg["default-runtime"] == "nvidia" and "nvidia" in cfg["runtimes"]
    backups = list((root / "etc/docker").glob("daemon.json.gpuwizard-*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == original
    assert f"backup of /etc/docker/daemon.json: /etc/docker/{backups[0].name}" in out


def test_cdi_below_docker_25_is_refused_naming_the_server_version(tmp_path: Path):
    root = tmp_path / "s"
    prepare("ready", root)
    daemon = root / "etc/docker/daemon.json"
    before = daemon.read_text() if daemon.exists() else None
    code, out, err = sim("ready", root, "--answers", answers(tmp_path, "container: {cdi: true}\n"))
    assert code != 0 and "Docker 25.0 or later" in out + err and "server) is 24.0.7" in out + err
    assert (daemon.read_text() if daemon.exists() else None) == before  # nothing was changed


def test_cdi_keeps_other_features_nvidia_ctk_would_drop(tmp_path: Path):
    root = tmp_path / "s"
    # CDI needs Docker >= 25 (the ready profile's 24.0.7 is refused: test below)
    prepare("ready", root).mutate(lambda w: w["docker"].update(version="27.3.1"))
    (root / "etc/docker/daemon.json").write_text('{"features": {"buildkit": true}, "runtimes": {}}\n')
    code, out, err = sim("ready", root, "--answers", answers(tmp_path, "container: {cdi: true}\n"))
    assert code == 0, out + err
    cfg = json.loads((root / "etc/docker/daemon.json").read_text())
    assert cfg["features"] == {"buildkit": True, "cdi": True}
    assert "nvidia-ctk dropped features.buildkit" in out


def test_invalid_daemon_json_stops_before_any_change(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("ready", root)
    (root / "etc/docker/daemon.json").write_text('{\n    "registry-mirrors": ["https://m.example.com"],\n}\n')
    before = snapshot(root)
    code, out, err = sim("ready", root, "--answers", answers(tmp_path, "container: {}\n"))
    assert code == 1
    assert "/etc/docker/daemon.json is not valid JSON (line 3, column 1" in out and "changed nothing" in out
    assert snapshot(root) == before and changing_calls(sb.calls()) == []


def test_docker_absent_stops_with_guidance_or_installs_it(tmp_path: Path):
    def no_docker(w):
        w["docker"] = None
        w["services"].pop("docker", None)
    root = tmp_path / "s"
    prepare("ready", root).mutate(no_docker)
    code, out, _ = sim("ready", root, "--answers", answers(tmp_path, "container: {}\n"))
    assert code == 1 and "Docker is not installed" in out and "install_docker: true" in out
    code, out, err = sim("ready", root, "--answers", answers(tmp_path, "container: {install_docker: true}\n"))
    assert code == 0, out + err
    assert "install Docker (docker.io)" in out


def test_cuda_newer_than_the_driver_is_refused_before_any_change(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("multi-gpu", root)  # driver 550.127.05: CUDA 12.4 at most
    code, out, err = sim("multi-gpu", root, "--answers", answers(tmp_path, 'cuda: {version: "12.6"}\n'))
    # the whole plan is made before anything runs: what it can tell is impossible is invalid input
    assert code == 2, out + err
    assert "CUDA 12.6 needs driver ≥ 560.28.03" in err and "550.127.05 runs CUDA 12.4" in err
    assert "nothing was executed" in err
    assert changing_calls(sb.calls()) == [] and not sb.world()["cuda_toolkits"]


def test_injected_failures_leave_state_and_a_log_and_resume_retries(tmp_path: Path, monkeypatch):
    root = tmp_path / "s"
    rules = [{"match": ["apt-get", "install", "-y", "nvidia-container-toolkit"], "rc": 100, "times": 1,
              "stderr": "E: Failed to fetch https://nvidia.github.io/libnvidia-container/stable/deb/amd64/./nvidia-container-toolkit_1.17.3-1_amd64.deb  Connection failed [IP: 185.199.108.153 443]\n"},
             {"match": ["systemctl", "restart", "docker"], "rc": 1, "times": 1,
              "stderr": "Job for docker.service failed because the control process exited with error code.\n"}]
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps(rules))
    args = ("--answers", answers(tmp_path, "container: {}\n"))
    code, out, err = sim("multi-gpu", root, *args)
    assert code == 1 and "Connection failed" in out
    entry = state(root)["steps"]["container"]
    assert entry["status"] == "failed" and entry["failed_action"] == "install-toolkit"
    log = Path(err.split("full log: ")[1].split()[0])
    assert "<install-toolkit> failed" in log.read_text()
    code, out, err = sim("multi-gpu", root, "--resume")
    assert code == 1 and state(root)["steps"]["container"]["failed_action"] == "restart-runtime"
    assert "changed         install nvidia-container-toolkit" in out and "ok              add NVIDIA's container" in out
    code, out, err = sim("multi-gpu", root, "--resume")
    assert code == 0, out + err
    assert "nvidia-smi sees 4 GPU(s)" in out


# ------------------------------------------------------------------------------------------------
# runfiles over HTTP on 127.0.0.1

DRIVER_RUN = "NVIDIA-Linux-x86_64-565.57.01.run"
CUDA_RUN = "cuda_12.6.2_560.35.03_linux.run"
FAKE = b"#!/bin/sh\n# a stand-in .run file for gpuwizard's simulated hosts (the simulated sh installs from its name)\nexit 1\n" * 400


def _with_headers(root: Path) -> None:
    prepare("t4-bare", root)
    (root / f"lib/modules/{KERNEL}/build").mkdir(parents=True)


def test_runfiles_downloaded_resumed_verified_and_run(tmp_path: Path):
    root = tmp_path / "s"
    _with_headers(root)
    sha = hashlib.sha256(FAKE).hexdigest()
    with FileServer({DRIVER_RUN: FAKE, CUDA_RUN: FAKE}) as srv:
        srv.cut[DRIVER_RUN] = 5000
        text = (f"driver: {{method: runfile, runfile: '{srv.url(DRIVER_RUN)}', sha256: {sha}, module: open}}\n"
                f"cuda: {{method: runfile, runfile: '{srv.url(CUDA_RUN)}', sha256: {sha}, env_file: '~/.bashrc'}}\n")
        code, out, err = sim("t4-bare", root, "--answers", answers(tmp_path, text))
        assert code == 0, out + err
        # the plan's URL check (a HEAD), then the cut download and its resume
        assert [(r.get("method", "GET"), r["range"]) for r in srv.requests if r["path"] == DRIVER_RUN] == [
            ("HEAD", None), ("GET", None), ("GET", "bytes=5000-")]
    sb = prepare("t4-bare", root)
    shs = [c["argv"] for c in sb.calls() if c["argv"][0] == "sh"]
    assert shs[0][1:] == [str(root / "var/cache/gpuwizard" / DRIVER_RUN), "--silent", "--dkms", "--kernel-module-type=open"]
    assert shs[1][1:] == [str(root / "var/cache/gpuwizard" / CUDA_RUN), "--silent", "--toolkit"]
    assert sb.world()["driver"]["kind"] == "runfile"
    bashrc = (root / "root/.bashrc").read_text()
    assert bashrc.count("# >>> gpuwizard: CUDA toolkit >>>") == 1
    code, out, err = sim("t4-bare", root, "--answers", str(tmp_path / "answers.yaml"))
    assert code == 0 and (root / "root/.bashrc").read_text() == bashrc


def test_runfile_checksum_mismatch_is_never_executed(tmp_path: Path):
    root = tmp_path / "s"
    _with_headers(root)
    with FileServer({DRIVER_RUN: FAKE}) as srv:
        text = f"driver: {{runfile: '{srv.url(DRIVER_RUN)}', sha256: '{'0' * 64}'}}\n"
        code, out, err = sim("t4-bare", root, "--answers", answers(tmp_path, text))
    assert code == 1 and "checksum mismatch" in out and "NOT executed" in out
    assert state(root)["steps"]["driver"]["failed_action"] == "runfile"
    cache = root / "var/cache/gpuwizard"
    assert not (cache / DRIVER_RUN).exists() and (cache / (DRIVER_RUN + ".rejected")).exists()
    assert not [c for c in prepare("t4-bare", root).calls() if c["argv"][0] == "sh"]


def test_runfile_needs_headers_and_names_them(tmp_path: Path):
    root = tmp_path / "s"
    code, out, _ = sim("t4-bare", root, "--answers", answers(tmp_path, "driver: {method: runfile, version: 565.57.01}\n"))
    assert code == 1 and f"install the package linux-headers-{KERNEL}" in out
