"""`gpuwizard podspec` and the `podspec` step, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from gpuwizard.detect import detect
from gpuwizard.host import Host, Runner
from gpuwizard.podspec import gpu_type_choices
from gpuwizard.simulate import prepare
from gpuwizard.steps.podspec import cluster_facts

from ..conftest import write_tool
from .cli import run

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SEED_ARGS = ["podspec", "--name", "gpu-pod", "--image", "ubuntu:18.04", "--container", "ubuntu-container",
             "--gpus", "1", "--gpumem", "3000", "--gpucores", "30", "--", "bash", "-c", "sleep 86400"]


def seed_pod() -> dict:
    return yaml.safe_load((FIX / "podspec/seed-gpu-pod.yaml").read_text())


def test_cli_reproduces_the_seed_pod(tmp_path: Path):
    code, out, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), *SEED_ARGS)
    assert code == 0, err
    built = yaml.safe_load(out)
    seed = seed_pod()
    assert built["metadata"].pop("namespace") == "default"  # the one addition: explicit namespace
    assert built == seed


def test_refused_spec_lists_every_problem_and_writes_nothing(tmp_path: Path):
    target = tmp_path / "pod.yaml"
    code, out, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "podspec", "--name", "Bad_Name",
                         "--image", "ubuntu:18.04", "--gpumem", "30000", "--gpucores", "130", "-o", str(target))
    assert code == 2 and out == ""
    assert "3 problems" in err and "name:" in err and "gpucores:" in err
    assert "gpumem: 30000 MiB exceeds the smallest card (Tesla T4, 15360 MiB" in err
    assert not target.exists()


def test_output_file_and_warnings(tmp_path: Path):
    target = tmp_path / "pod.yaml"
    code, out, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "podspec", "--name", "whole",
                         "--image", "ubuntu:18.04", "-o", str(target))
    assert code == 0 and out == ""
    assert "warning:" in err and "exclusive" in err  # a bare nvidia.com/gpu takes a whole card since HAMi 2.7
    assert yaml.safe_load(target.read_text())["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}


def test_apply_and_check_report_the_memory_the_pod_sees(tmp_path: Path, bin_dir: Path, monkeypatch):
    # kubectl stand-in: apply/wait answer like kubectl; exec prints the seed's real nvidia-smi
    # output from inside the HAMi pod (3000MiB limit on a 15360MiB T4).
    seen = (FIX / "tools/nvidia-smi/t4-565-hami-pod-seed.txt").read_text()
    log = tmp_path / "kubectl.log"
    write_tool(bin_dir, "kubectl", f"""import sys, json
args = sys.argv[1:]
open({str(log)!r}, 'a').write(json.dumps([args, sys.stdin.read() if 'apply' in args else '']) + '\\n')
if args[0] == 'apply': print('pod/gpu-pod created')
elif args[0] == 'wait': print('pod/gpu-pod condition met')
elif args[0] == 'exec': print({seen!r}, end='')
else: sys.exit(2)""")
    monkeypatch.setenv("PATH", str(bin_dir))
    root = tmp_path / "root"
    root.mkdir()
    code, out, err = run("--root", str(root), *SEED_ARGS[:-4], "--no-detect", "--apply", "--check", "--", "bash", "-c", "sleep 86400")
    assert code == 0, err
    assert "pod/gpu-pod sees GPU 0 Tesla T4: 3000 MiB" in out
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0][0] == ["apply", "-f", "-"] and yaml.safe_load(calls[0][1])["metadata"]["name"] == "gpu-pod"
    assert calls[2][0] == ["exec", "-n", "default", "pod/gpu-pod", "--", "nvidia-smi"]


def test_gpu_type_choices_are_the_detected_models(tmp_path: Path):
    sb = prepare("multi-gpu", tmp_path / "s")
    env = sb.env()
    facts = detect(Host(sb.root, Runner(path=env.pop("PATH"), env=env)))
    names = sorted({g["name"] for g in facts["gpus"]})
    assert gpu_type_choices(cluster_facts(facts)) == names and len(names) == 2


def test_podspec_step_writes_outputs_under_the_root_once(tmp_path: Path):
    answers = tmp_path / "pods.yaml"
    answers.write_text(
        "version: 1\n"
        "podspec:\n"
        "  - {name: gpu-pod, image: 'ubuntu:18.04', container: ubuntu-container, command: [bash, -c, sleep 86400],\n"
        "     gpus: 1, gpumem: 3000, gpucores: 30, output: /root/gpu-pod.yaml}\n"
    )
    root = tmp_path / "s"
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(answers))
    assert code == 0, out + err
    written = root / "root/gpu-pod.yaml"
    built = yaml.safe_load(written.read_text())
    built["metadata"].pop("namespace")
    assert built == seed_pod()
    mtime = written.stat().st_mtime_ns
    code, out, _ = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(answers))
    assert code == 0 and written.stat().st_mtime_ns == mtime
    assert "[podspec] done" in out


def test_podspec_step_refuses_a_spec_the_card_cannot_hold(tmp_path: Path):
    answers = tmp_path / "pods.yaml"
    answers.write_text("version: 1\npodspec:\n  - {name: big, image: 'ubuntu:18.04', gpumem: 20000, gpucores: 50, output: /root/big.yaml}\n")
    root = tmp_path / "s"
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(answers))
    # refused by the whole-recipe plan before anything runs, as `gpuwizard podspec` refuses it
    assert code == 2 and "gpumem: 20000 MiB exceeds" in err and "nothing was executed" in err
    assert not (root / "root/big.yaml").exists()
    assert not (root / "var/lib/gpuwizard/state.json").exists()  # not even the state file was written
