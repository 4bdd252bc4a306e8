"""The CLI end to end on simulated hosts: real runner, real subprocesses, sandbox roots."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from gpuwizard.simulate import prepare

from ..conftest import lock_held
from .cli import run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def doctor(profile: str, tmp_path: Path) -> dict:
    code, out, err = run("--simulate", profile, "--root", str(tmp_path / profile), "doctor", "--json")
    assert code == 0, err
    return json.loads(out)


def test_t4_bare_reports_the_seed_card(tmp_path: Path):
    doc = doctor("t4-bare", tmp_path)
    assert len(doc["gpus"]) == 1
    gpu = doc["gpus"][0]
    assert gpu["name"] == "Tesla T4" and gpu["memory_mib"] == 15360
    assert gpu["pci_bus_id"] == "00000000:00:07.0"
    assert doc["driver"] is None and doc["cuda_toolkit"] is None
    assert doc["host"]["os"] == "ubuntu" and doc["host"]["version"] == "22.04"
    assert doc["docker"]["running"] is True
    assert doc["kubernetes"] is None and doc["hami"] is None


def test_no_gpu_reports_none(tmp_path: Path):
    doc = doctor("no-gpu", tmp_path)
    assert doc["gpus"] == [] and doc["driver"] is None


def test_multi_gpu(tmp_path: Path):
    doc = doctor("multi-gpu", tmp_path)
    names = sorted({g["name"] for g in doc["gpus"]})
    assert len(doc["gpus"]) == 4 and len(names) == 2
    assert doc["driver"]["version"] and doc["gpu_source"] == "nvidia-smi"
    assert all(g["uuid"].startswith("GPU-") for g in doc["gpus"])


def test_nouveau_and_secureboot(tmp_path: Path):
    assert doctor("nouveau", tmp_path)["host"]["nouveau_loaded"] is True
    assert doctor("secureboot", tmp_path)["host"]["secure_boot"] is True
    assert doctor("t4-bare", tmp_path)["host"]["secure_boot"] is False


def test_ready_host_has_every_layer(tmp_path: Path):
    doc = doctor("ready", tmp_path)
    assert doc["driver"]["version"] == "565.57.01" and doc["driver"]["cuda_version"] == "12.7"
    assert doc["cuda_toolkit"]["version"] == "12.6"
    assert doc["container_toolkit"]["version"]
    assert "nvidia" in doc["docker"]["runtimes"]
    nodes = doc["kubernetes"]["nodes"]
    assert nodes and nodes[0]["gpu_capacity"] == 10
    assert doc["gpu_operator"]["status"] == "deployed" and doc["hami"]["status"] == "deployed"


def test_global_options_after_the_subcommand(tmp_path: Path):
    code, out, _ = run("doctor", "--json", "--simulate", "no-gpu", "--root", str(tmp_path / "s"))
    assert code == 0 and json.loads(out)["gpus"] == []


def test_doctor_text_without_a_tty(tmp_path: Path):
    code, out, _ = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "doctor")
    assert code == 0
    assert "Tesla T4" in out and "\x1b[" not in out
    assert out.splitlines()[0].startswith("host ")


def test_unknown_profile_is_invalid_input(tmp_path: Path):
    code, _, err = run("--simulate", "nope", "--root", str(tmp_path / "s"), "doctor")
    assert code == 2 and "t4-bare" in err


def test_plan_prints_every_step_and_executes_nothing(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "plan", "--answers", str(EXAMPLES / "full.yaml"))
    for sid in ("detect", "driver", "cuda", "container", "kind", "operator", "hami", "podspec"):
        assert f"[{sid}]" in out
    assert "nothing was executed" in out
    assert not (root / "var/lib/gpuwizard/state.json").exists()
    calls = prepare("t4-bare", root).calls()
    # the URL check: a HEAD of each URL the plan fetches, written nowhere
    heads = [c["argv"] for c in calls if c["argv"][0] == "curl"]
    assert heads and all(a[:2] == ["curl", "-fsSI"] and a[-3:-1] == ["-o", "/dev/null"] for a in heads)
    calls = [c for c in calls if c["argv"][0] != "curl"]
    # only read-only probes ran: no installer, no reboot, no restart
    assert all(c["argv"][0] in {"nvidia-smi", "lspci", "uname", "mokutil", "nvcc", "docker", "containerd", "nvidia-ctk", "kind", "kubectl", "helm", "ubuntu-drivers", "dpkg", "apt-cache", "gpg"} for c in calls)
    # the host-layer steps' probes are read-only forms
    assert all(c["argv"][1:2] in (["devices"], ["-s"], ["--show-keys"], ["--sb-state"], ["--test-key"])
               for c in calls if c["argv"][0] in {"ubuntu-drivers", "dpkg", "gpg", "mokutil"})
    assert not [c for c in calls if c["argv"][0] == "docker" and c["argv"][1:2] == ["run"]]


def test_broken_answer_file_exits_2_names_the_line_and_runs_nothing(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndriver:\n  method: pkg\n")
    root = tmp_path / "s"
    for argv in (["plan", "--answers", str(bad)], ["--answers", str(bad)], ["--dry-run", "--answers", str(bad)]):
        code, out, err = run("--simulate", "t4-bare", "--root", str(root), *argv)
        assert code == 2
        assert f"{bad}:3:11: driver.method: expected 'package' or 'runfile' (got 'pkg')" in err
    assert prepare("t4-bare", root).calls() == []
    assert not (root / "var/lib/gpuwizard/state.json").exists()


def test_unattended_detect_run_saves_state_and_log(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(EXAMPLES / "detect.yaml"))
    assert code == 0, err
    assert "[detect] done: 1× Tesla T4" in out
    state_path = root / "var/lib/gpuwizard/state.json"
    state = json.loads(state_path.read_text())
    assert state["version"] == 1 and state["steps"]["detect"]["status"] == "done"
    assert state["steps"]["detect"]["facts"]["gpus"][0]["memory_mib"] == 15360
    assert state["boot_id"] == (root / "proc/sys/kernel/random/boot_id").read_text().strip()
    logs = list((root / "var/log/gpuwizard").glob("gpuwizard-*.log"))
    assert len(logs) == 1
    for path in (state_path, logs[0]):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, oct(mode)


def test_no_gpu_detect_fails_with_a_clear_message(tmp_path: Path):
    code, out, err = run("--simulate", "no-gpu", "--root", str(tmp_path / "s"), "--answers", str(EXAMPLES / "detect.yaml"))
    assert code == 1
    assert "no NVIDIA GPU found" in out and "full log:" in err and "Traceback" not in out + err


def test_unimplemented_step_fails_loudly_and_resume_retries(tmp_path: Path, monkeypatch):
    from gpuwizard import steps
    from gpuwizard.steps.stubs import stub

    # every step is implemented now: put a stub in the registry for this run
    monkeypatch.setattr(steps, "STEP_CLASSES", [stub("kind", "Kubernetes cluster") if c.id == "kind" else c for c in steps.STEP_CLASSES])
    root = tmp_path / "s"
    answers = tmp_path / "kind.yaml"
    answers.write_text("version: 1\nkind: {}\n")
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(answers))
    assert code == 1
    assert "not implemented yet" in out
    state = json.loads((root / "var/lib/gpuwizard/state.json").read_text())
    assert state["steps"]["detect"]["status"] == "done" and state["steps"]["kind"]["status"] == "failed"
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--resume")
    assert code == 1 and "[kind] failed" in out


def test_resume_without_state_is_invalid(tmp_path: Path):
    code, _, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "--resume")
    assert code == 2 and "nothing to resume" in err


def test_corrupt_state_is_refused_never_overwritten(tmp_path: Path):
    root = tmp_path / "s"
    prepare("t4-bare", root)
    state_path = root / "var/lib/gpuwizard/state.json"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text('{"version": 7}')
    code, _, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(EXAMPLES / "detect.yaml"))
    assert code == 2 and "newer gpuwizard" in err and "mv " in err
    assert state_path.read_text() == '{"version": 7}'


def test_second_concurrent_run_exits_4(tmp_path: Path):
    root = tmp_path / "s"
    prepare("t4-bare", root)
    with lock_held(root / "var/lib/gpuwizard/state.json") as pid:
        code, _, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(EXAMPLES / "detect.yaml"))
        assert code == 4 and f"PID {pid}" in err


def test_help_documents_exit_codes():
    code, out, _ = run("--help")
    assert code == 0
    for line in ("0  every requested step", "1  a step failed", "2  invalid input", "3  stopped for a reboot", "4  another gpuwizard holds the lock"):
        assert line in out


def test_console_script_runs_without_a_tty(tmp_path: Path):
    exe = Path(sys.executable).with_name("gpuwizard")
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run([str(exe), "--simulate", "t4-bare", "doctor", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["gpus"][0]["name"] == "Tesla T4"
    assert "simulated host 't4-bare' in " in proc.stderr
