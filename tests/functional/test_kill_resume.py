"""Reliability: kill -9 a simulated unattended run at random points (between actions and inside
commands), then resume until it finishes. Every trial must finish; the state file always parses;
no file gains duplicated lines or entries; backups exist for edited config files.

`pytest --kill-trials N` runs more trials (default 2 per scenario in CI)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuwizard.simulate import prepare

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("gpuwizard"))
SCENARIOS = {
    # profile, answer file, commands made slow so that kills land inside them
    "host-layer": ("t4-bare", ROOT / "examples/host.yaml", [["apt-get", "install"], ["nvidia-ctk", "runtime"], ["systemctl", "restart"]]),
    "nouveau-reboot": ("nouveau", ROOT / "examples/host.yaml", [["update-initramfs"], ["apt-get", "install"]]),
    "full-recipe": ("t4-bare", ROOT / "examples/full.yaml", [["kind", "create"], ["helm", "upgrade"], ["kubectl", "label"]]),
}
WEIGHT = {"full-recipe": 0.5}  # the longest scenario gets half the trials (at least one)


def _run(argv: list[str], env: dict[str, str], timeout: float = 120) -> int:
    return subprocess.run(argv, env=env, capture_output=True, timeout=timeout).returncode


def _finish(sb, answers: Path, env: dict[str, str]) -> list[int]:
    """Resume (rebooting the sandbox when asked) until the run is done; the exit codes seen."""
    codes = []
    state = sb.root / "var/lib/gpuwizard/state.json"
    for _ in range(8):
        mode = ["--resume"] if state.exists() else ["--answers", str(answers)]
        code = _run([EXE, "--simulate", sb.profile, "--root", str(sb.root), *mode], env)
        codes.append(code)
        if code == 0:
            return codes
        if code == 3:
            sb.run(["reboot"])
            continue
        if code == 1 and "running" in state.read_text():
            continue
        if code != 1:
            pytest.fail(f"unexpected exit {code} while resuming; codes so far {codes}")
    return codes


def _no_duplicates(root: Path) -> list[str]:
    found = []
    for path in list((root / "etc").rglob("*")) + list((root / "root").glob(".bashrc")):
        if not path.is_file() or path.name.endswith(".bak"):
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".json":
            def hook(pairs, path=path):
                keys = [k for k, _ in pairs]
                if len(keys) != len(set(keys)):
                    found.append(f"{path}: duplicate JSON keys {keys}")
                return dict(pairs)

            json.loads(text, object_pairs_hook=hook)
            continue
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        dupes = {line for line in lines if lines.count(line) > 1}
        if dupes:
            found.append(f"{path}: duplicated lines {sorted(dupes)[:3]}")
    return found


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kill_minus_nine_then_resume(scenario: str, tmp_path: Path, request):
    profile, answers, slow = SCENARIOS[scenario]
    trials = max(1, int(request.config.getoption("--kill-trials") * WEIGHT.get(scenario, 1)))
    rng = random.Random(f"{scenario}-{trials}")
    env = {**os.environ, "NO_COLOR": "1"}
    # how long a clean run takes, to spread the kill points over it
    clean = prepare(profile, tmp_path / "clean")
    start = time.monotonic()
    codes = _finish(clean, answers, env)
    duration = time.monotonic() - start
    assert codes[-1] == 0, codes

    passed = 0
    for trial in range(trials):
        sb = prepare(profile, tmp_path / f"t{trial}")
        inside = trial % 2 == 1  # odd trials: slow commands, so the kill lands inside one
        trial_env = dict(env)
        if inside:
            trial_env["GPUWIZARD_SIM_FAIL"] = json.dumps([{"match": m, "sleep": 0.4, "passthrough": True} for m in slow])
        proc = subprocess.Popen([EXE, "--simulate", profile, "--root", str(sb.root), "--answers", str(answers)],
                                env=trial_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.05, duration * (2 if inside else 1)))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        state = sb.root / "var/lib/gpuwizard/state.json"
        if state.exists():
            json.loads(state.read_text())  # parses after a kill -9, always
        codes = _finish(sb, answers, env)
        assert codes[-1] == 0, f"trial {trial}: {codes}"
        final = json.loads(state.read_text())
        assert all(s["status"] == "done" for s in final["steps"].values()), final["steps"]
        assert _no_duplicates(sb.root) == []
        daemon = sb.root / "etc/docker/daemon.json"
        if daemon.exists():
            cfg = json.loads(daemon.read_text())
            assert list(cfg.get("runtimes", {})).count("nvidia") == 1
        passed += 1
    print(f"\n[kill -9] {scenario}: {passed}/{trials} trials finished after resume")
    assert passed == trials
