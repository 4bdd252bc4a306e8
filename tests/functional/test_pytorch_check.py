"""The CUDA step's ``pytorch_check: true`` on simulated hosts: venv + ``pip install torch`` + the seed
recipe's check, shown as notes; idempotent re-runs; an injected pip failure and ``--resume``; and the
simulated python3/venv/pip tools themselves (gpuwizard/simulate/tools_python.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from gpuwizard.cli import main
from gpuwizard.simulate import prepare
from gpuwizard.steps.cuda import TORCH_CHECK, VENV

STATE = "var/lib/gpuwizard/state.json"
ANSWERS = 'version: 1\ndriver: {}\ncuda: {version: "12.6", pytorch_check: true}\n'
PIP_DOWN = ("ERROR: Could not find a version that satisfies the requirement torch (from versions: none)\n"
            "ERROR: No matching distribution found for torch\n")


def sim(root: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "t4-bare", "--root", str(root), *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def answers(tmp_path: Path) -> str:
    path = tmp_path / "answers.yaml"
    path.write_text(ANSWERS)
    return str(path)


def state(root: Path) -> dict:
    return json.loads((root / STATE).read_text())


def venv_calls(calls: list[dict]) -> list[list[str]]:
    """The calls that change the venv: creating it, installing into it."""
    return [c["argv"] for c in calls if c["argv"][:3] == ["python3", "-m", "venv"] or c["argv"][:2] == ["pip", "install"]]


def test_pytorch_check_on_t4_bare_then_a_second_run_changes_nothing(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim(root, "--answers", answers(tmp_path))
    assert code == 0, out + err
    assert "note: pytorch: PyTorch 2.5.1+cu124 CUDA 12.4" in out
    assert "note: pytorch: 1 CUDA device(s)" in out
    assert "note: pytorch: device 0: Tesla T4, 15.00 GiB, allocated 0.00 GiB, reserved 0.00 GiB" in out
    assert "PyTorch sees 1 CUDA device(s)" in out
    assert state(root)["steps"]["cuda"]["status"] == "done"
    venv = root / VENV.lstrip("/")
    assert (venv / "bin/python").is_file() and (venv / "pyvenv.cfg").read_text().startswith("home = /usr/bin\n")
    sb = prepare("t4-bare", root)
    assert venv_calls(sb.calls()) == [["python3", "-m", "venv", str(venv)], ["pip", "install", "torch"]]
    assert sb.world()["python_venvs"][VENV]["packages"]["torch"] == "2.5.1"
    log = next((root / "var/log/gpuwizard").glob("*.log")).read_text()
    assert "Successfully installed" in log and "torch-2.5.1" in log

    n = len(sb.calls())
    code, out, err = sim(root, "--answers", answers(tmp_path))
    assert code == 0, out + err
    assert "changed" not in out and "PyTorch sees 1 CUDA device(s)" in out
    assert venv_calls(sb.calls()[n:]) == []


def test_pip_failure_names_the_action_and_resume_finishes(tmp_path: Path, monkeypatch):
    root = tmp_path / "s"
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps([{"match": ["pip", "install", "torch"], "rc": 1, "stderr": PIP_DOWN}]))
    code, out, err = sim(root, "--answers", answers(tmp_path))
    assert code == 1, out + err
    assert "failed          command failed (exit 1): pip install torch" in out
    assert "No matching distribution found for torch" in out
    entry = state(root)["steps"]["cuda"]
    assert entry["status"] == "failed" and entry["failed_action"] == "torch-install"
    sb = prepare("t4-bare", root)
    assert "torch" not in sb.world()["python_venvs"][VENV]["packages"]

    monkeypatch.delenv("GPUWIZARD_SIM_FAIL")
    code, out, err = sim(root, "--resume")
    assert code == 0, out + err
    assert "device 0: Tesla T4" in out and "PyTorch sees 1 CUDA device(s)" in out
    assert state(root)["steps"]["cuda"]["status"] == "done"
    calls = venv_calls(sb.calls())
    assert calls.count(["pip", "install", "torch"]) == 2 and len(calls) == 3  # one venv, a failed and a good install


def test_simulated_python_venv_and_pip(tmp_path: Path):
    sb = prepare("multi-gpu", tmp_path / "s")
    assert (sb.bin_dir / "python3").is_file() and not (sb.bin_dir / "python").exists()
    assert sb.run(["python3", "--version"]).stdout == "Python 3.10.12\n"
    # outside the sandbox: refused, nothing written
    r = sb.run(["python3", "-m", "venv", str(tmp_path / "outside")])
    assert r.returncode == 2 and "outside the sandbox" in r.stderr and not (tmp_path / "outside").exists()
    venv = sb.host_path("/opt/v")
    assert sb.run(["python3", "-m", "venv", str(venv)]).returncode == 0
    py, pip = str(venv / "bin/python"), str(venv / "bin/pip")
    r = sb.run([py, "-c", "import torch"])
    assert r.returncode == 1 and r.stderr.endswith("ModuleNotFoundError: No module named 'torch'\n")
    r = sb.run([pip, "install", "torch"])
    assert r.returncode == 0 and r.stdout.startswith("Collecting torch\n  Downloading torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl (906.4 MB)\n")
    assert "Successfully installed " in r.stdout and " torch-2.5.1 triton-3.1.0 " in r.stdout
    assert sb.run([py, "-c", "import torch"]).returncode == 0
    r = sb.run([py, "-c", TORCH_CHECK])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "4 CUDA device(s)" and len(lines) == 6 and lines[2].startswith("device 0: ")
    # no loaded driver: the script's SystemExit
    sb.mutate(lambda w: w.update(modules=[m for m in w["modules"] if not m.startswith("nvidia")]))
    r = sb.run([py, "-c", TORCH_CHECK])
    assert (r.returncode, r.stdout, r.stderr) == (1, "PyTorch 2.5.1+cu124 CUDA 12.4\n", "CUDA is not available to PyTorch\n")
    # anything else is not simulated, never a silent success
    for argv in ([py, "-c", "print(1)"], [pip, "install", "numpy"], [py, "-m", "venv", "--clear", str(venv)]):
        r = sb.run(argv)
        assert r.returncode == 2 and "not simulated" in r.stderr, argv
    assert sb.calls()[-1]["unsupported"] is True
