"""Hands-off reboot (reboot: auto): gpuwizard-resume.service, a one-shot systemd unit armed before the
reboot, runs `gpuwizard --resume` after the boot and removes itself when that run ends, success or
failure. Exercised through the simulated boot: gpuwizard's own `reboot` (the sandbox's), then the
boot reaching multi-user.target (`systemctl start multi-user.target`, the simulated systemctl),
which runs the unit's ExecStart — the real CLI, as a subprocess, in the unit's environment."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gpuwizard.cli import main
from gpuwizard.resume_service import ENV_VAR, UNIT, UNIT_PATH
from gpuwizard.simulate import prepare
from gpuwizard.simulate import world as W

from .test_host_layer import answers, changing_calls, sim, snapshot, state

AUTO = "driver: {reboot: auto}\n"
WANTS = "etc/systemd/system/multi-user.target.wants/" + UNIT


def unit_file(root: Path) -> Path:
    return root / UNIT_PATH.lstrip("/")


def logs(root: Path) -> list[str]:
    return [p.read_text() for p in sorted((root / "var/log/gpuwizard").glob("*.log"))]


def resumed_logs(root: Path) -> list[str]:
    return [text for text in logs(root) if f"started by {UNIT} after the boot" in text]


def last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


def boot_reaches_multi_user(sb) -> None:
    """The simulated boot goes on to multi-user.target: systemd starts the units enabled for it."""
    r = sb.run(["systemctl", "start", "multi-user.target"], timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_plan_shows_the_unit_and_its_commands(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("nouveau", root, "plan", "--answers", answers(tmp_path, AUTO))
    assert code == 0, out + err
    for text in (f"+++ {UNIT_PATH}", "+Type=oneshot", "+Wants=network-online.target", "+After=network-online.target",
                 f"+Environment={ENV_VAR}={UNIT}", "+WantedBy=multi-user.target", "$ systemctl daemon-reload",
                 f"$ systemctl enable {UNIT}", f"after the boot {UNIT} runs: $ ", f"systemctl disable {UNIT}"):
        assert text in out, text
    exec_line = next(line for line in out.splitlines() if "+ExecStart=" in line)
    assert "-m gpuwizard --resume" in exec_line and f"--state {root}/var/lib/gpuwizard/state.json" in exec_line
    assert f"--log-dir {root}/var/log/gpuwizard" in exec_line and "--answers" not in exec_line
    # the JSON plan carries the unit's content, as a file the reboot action writes
    code, out, _ = sim("nouveau", root, "plan", "--json", "--answers", answers(tmp_path, AUTO))
    reboot = next(a for s in json.loads(out)["steps"] for a in s["actions"] if a["id"] == "reboot-nouveau")
    assert reboot["unit"]["path"] == UNIT_PATH and "ExecStart=" in reboot["unit"]["content"]
    # without reboot: auto the plan says to resume by hand, no unit
    code, out, _ = sim("nouveau", root, "plan", "--answers", answers(tmp_path, "driver: {reboot: prompt}\n", "p.yaml"))
    assert code == 0 and UNIT not in out and "then run: gpuwizard --resume" in out


def test_dry_run_prints_the_unit_and_writes_nothing(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("nouveau", root)
    before = snapshot(root)
    code, out, err = sim("nouveau", root, "--dry-run", "--answers", answers(tmp_path, AUTO))
    assert code == 0, out + err
    assert "+ExecStart=" in out and f"$ systemctl enable {UNIT}" in out and "nothing was executed" in out
    assert not unit_file(root).exists() and snapshot(root) == before
    assert changing_calls(sb.calls()) == [] and not [c for c in sb.calls() if c["argv"][:1] == ["systemctl"]]


def test_hands_off_reboot_resumes_after_the_boot_and_removes_the_unit(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("nouveau", root, "--answers", answers(tmp_path, AUTO))
    assert code == 3, out + err
    assert "rebooting now" in out and f"after the boot {UNIT} runs gpuwizard --resume" in err
    sb = prepare("nouveau", root)
    argvs = [c["argv"] for c in sb.calls()]
    enable = argvs.index(["systemctl", "enable", UNIT])
    assert argvs.index(["systemctl", "daemon-reload"]) < enable < argvs.index(["reboot"])  # armed before the reboot
    assert "ExecStart=" in unit_file(root).read_text() and (root / WANTS).is_symlink()
    assert sb.run(["systemctl", "is-enabled", UNIT]).stdout == "enabled\n"
    assert state(root)["steps"]["driver"]["status"] == "reboot-required"

    boot_reaches_multi_user(sb)  # the boot runs the unit: gpuwizard --resume, to its end

    assert all(state(root)["steps"][s]["status"] == "done" for s in ("detect", "driver"))
    assert "nouveau" not in (root / "proc/modules").read_text() and sb.world()["driver"]["loaded_version"]
    assert not unit_file(root).exists() and not (root / WANTS).exists()
    r = sb.run(["systemctl", "is-enabled", UNIT])
    assert r.returncode == 1 and "No such file or directory" in r.stderr
    [resumed] = resumed_logs(root)
    assert resumed.splitlines()[0].endswith(" resume")  # the log's head: a resumed run of the same run id
    assert f"$ systemctl disable {UNIT}" in resumed and f"{UNIT} removed" in resumed
    assert last_line(resumed).endswith(" exit 0")
    journal = (root / ".gpuwizard-sim/journal" / (UNIT + ".log")).read_text()
    assert "all requested steps done" in journal and "Finished (status=0)" in journal
    assert sb.run(["systemctl", "is-failed", UNIT]).stdout == "inactive\n"
    # the boot reached its target once: starting it again runs nothing
    calls = len(sb.calls())
    boot_reaches_multi_user(sb)
    assert len(resumed_logs(root)) == 1 and len(sb.calls()) == calls + 1


def test_a_failing_resumed_run_removes_the_unit_too(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("nouveau", root, "--answers", answers(tmp_path, AUTO))
    assert code == 3, out + err
    sb = prepare("nouveau", root)
    sb.mutate(lambda w: w.setdefault("failures", []).append(
        {"match": ["ubuntu-drivers", "install"], "rc": 1, "stderr": "E: simulated mirror failure\n"}))

    boot_reaches_multi_user(sb)  # a wanted unit that fails does not fail the boot's target

    assert state(root)["steps"]["driver"]["status"] == "failed"
    assert not unit_file(root).exists() and not (root / WANTS).exists()
    r = sb.run(["systemctl", "is-enabled", UNIT])
    assert r.returncode == 1 and "No such file or directory" in r.stderr
    [resumed] = resumed_logs(root)
    assert "ubuntu-drivers install" in resumed and "E: simulated mirror failure" in resumed
    assert f"{UNIT} removed" in resumed and last_line(resumed).endswith(" exit 1")
    assert sb.run(["systemctl", "is-failed", UNIT]).stdout == "failed\n"
    status = sb.run(["systemctl", "status", UNIT]).stdout
    assert "Result: exit-code" in status and "status=1/FAILURE" in status


def test_a_resumed_run_that_needs_another_reboot_arms_the_unit_again(tmp_path: Path):
    """Two reboots: nouveau (phase 1), then the Secure Boot key's enrolment at the console (phase 2)."""
    root = tmp_path / "s"
    sb = prepare("secureboot", root)

    def with_nouveau(w):
        w["host"]["nouveau"] = True
        W.boot(str(root), w)  # the host as it boots today: nouveau bound to the T4
    sb.mutate(with_nouveau)
    code, out, err = sim("secureboot", root, "--answers", answers(tmp_path, "driver: {reboot: auto, secure_boot: sign}\n"))
    assert code == 3, out + err
    assert "nouveau" not in (root / "proc/modules").read_text() and unit_file(root).exists()
    boots = sb.world()["host"]["boots"]

    boot_reaches_multi_user(sb)  # resumed run 1: key, signed driver, stops for the enrolment: re-arms, reboots

    assert sb.world()["host"]["boots"] == boots + 1
    [first] = resumed_logs(root)
    assert f"{UNIT} stays enabled" in first and last_line(first).endswith(" exit 3")
    assert unit_file(root).exists() and (root / WANTS).is_symlink()
    assert state(root)["steps"]["driver"]["status"] == "reboot-required"

    boot_reaches_multi_user(sb)  # resumed run 2, after the second boot (key enrolled): done, the unit gone

    assert state(root)["steps"]["driver"]["status"] == "done"
    assert not unit_file(root).exists() and not (root / WANTS).exists()
    runs = resumed_logs(root)
    assert len(runs) == 2 and any(last_line(t).endswith(" exit 0") and f"{UNIT} removed" in t for t in runs)


def test_without_systemd_reboot_auto_is_refused_at_plan_time(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("nouveau", root)
    sb.mutate(lambda w: w["host"].update(init="none"))  # e.g. a container or a sysvinit host
    assert not (root / "run/systemd/system").exists()
    code, out, err = sim("nouveau", root, "plan", "--answers", answers(tmp_path, AUTO))
    assert code == 2 and "refused" in out and "not running systemd" in out and "gpuwizard --resume" in out
    before = snapshot(root)
    code, out, err = sim("nouveau", root, "--answers", answers(tmp_path, AUTO))
    assert code == 2, out + err
    assert "not running systemd (no /run/systemd/system)" in err and "driver.reboot: prompt" in err
    assert "reboot yourself, then run `gpuwizard --resume`" in err and "nothing was executed" in err
    assert changing_calls(sb.calls()) == [] and snapshot(root) == before and not unit_file(root).exists()
    # reboot: prompt needs no systemd to stop for the reboot
    code, out, err = sim("nouveau", root, "plan", "--answers", answers(tmp_path, "driver: {reboot: prompt}\n", "p.yaml"))
    assert code == 0, out + err
    r = sb.run(["systemctl", "is-enabled", UNIT])
    assert r.returncode == 1 and "has not been booted with systemd" in r.stderr


def test_a_unit_run_that_cannot_start_removes_the_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Started by the unit, but there is no state to resume (removed by hand): exit 2, said in the
    log, and the unit goes anyway (no unit left to run at every boot)."""
    root = tmp_path / "s"
    code, out, err = sim("nouveau", root, "--answers", answers(tmp_path, AUTO))
    assert code == 3, out + err
    (root / "var/lib/gpuwizard/state.json").unlink()
    monkeypatch.setenv(ENV_VAR, UNIT)
    out_s, err_s = io.StringIO(), io.StringIO()
    code = main(["--simulate", "nouveau", "--root", str(root), "--resume"], out=out_s, err=err_s)
    assert code == 2 and "nothing to resume" in err_s.getvalue() and f"{UNIT} removed" in err_s.getvalue()
    assert not unit_file(root).exists() and not (root / WANTS).exists()


def test_a_unit_that_cannot_be_enabled_means_no_reboot(tmp_path: Path):
    """Nothing would resume after the boot: the run stops for the reboot instead (exit 3), unit gone."""
    root = tmp_path / "s"
    sb = prepare("nouveau", root)
    sb.mutate(lambda w: w.setdefault("failures", []).append(
        {"match": ["systemctl", "enable", UNIT], "rc": 1, "stderr": "Failed to enable unit: Access denied\n"}))
    code, out, err = sim("nouveau", root, "--answers", answers(tmp_path, AUTO))
    assert code == 3, out + err
    assert f"not rebooting: {UNIT} could not be enabled" in out and "reboot yourself, then run gpuwizard --resume" in out
    assert ["reboot"] not in [c["argv"] for c in sb.calls()] and not unit_file(root).exists()
    assert "after the reboot run: gpuwizard --resume" in err
