"""The whole recipe's plan before anything runs: later steps plan against what earlier steps of the
same run promise; decisions and assumptions are part of the plan; the preview is what runs; what the
plan can already tell is impossible is refused with nothing executed; "done" is observed on the host
or scoped to the run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gpuwizard import host as H
from gpuwizard.steps import kube

from .test_host_layer import answers, run

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "examples" / "full.yaml"


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch):
    monkeypatch.setattr(kube, "POLL", 0.01)


@pytest.fixture
def changes(monkeypatch):
    """Every command the runner starts that is not a read-only probe (argv, as run)."""
    seen: list[list[str]] = []
    real = H.Runner.run

    def recording(self, argv, *args, **kwargs):
        if kwargs.get("change", True):
            seen.append(list(argv))
        return real(self, argv, *args, **kwargs)

    monkeypatch.setattr(H.Runner, "run", recording)
    return seen


def test_plan_on_a_bare_host_shows_every_step_of_the_recipe(tmp_path):
    code, out, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "plan", "--answers", str(FULL))
    assert code == 0, out + err
    assert "cannot" not in out.replace("cannot load", "").replace("cannot be loaded", "")
    kind = out.split("[kind]", 1)[1].split("[operator]", 1)[0]
    # the Kind config, the Docker change against what the container step leaves, kind create
    assert "+++ /var/lib/gpuwizard/kind/gpu-cluster.yaml" in kind and "containerPath: /var/run/nvidia-container-devices/all" in kind
    assert '"path": "nvidia-container-runtime"' in kind and '+    "default-runtime": "nvidia"' in kind
    assert re.search(r"\$ kind create cluster --name gpu-cluster --config \S+/var/lib/gpuwizard/kind/gpu-cluster.yaml", kind)
    assert "assumes: Docker runs with the nvidia runtime (the container step of this run" in kind
    # kind, kubectl and helm are installed once, by the kind step; the later steps assume them
    assert out.count("install kubectl v1.36.5 into /usr/local/bin") == 1
    assert "assumes: kind, kubectl and helm are installed (the kind step of this run installs them)" in out
    # the check pod the run will use: the driver the driver step installs (565) runs CUDA 12.6
    hami = out.split("[hami]", 1)[1]
    assert "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04" in hami
    assert "assumes: the driver step of this run installs NVIDIA driver 565" in hami
    # every command of the check is shown, the read-only log read included
    for line in ("$ kubectl --context kind-gpu-cluster apply -f", "$ kubectl --context kind-gpu-cluster logs gpuwizard-cuda-vectoradd",
                 "$ kubectl --context kind-gpu-cluster delete pod gpuwizard-cuda-vectoradd -n default --ignore-not-found --wait=false"):
        assert line in hami
    # decisions are data of the plan, printed once each
    assert out.count("decision: device plugin off (auto: off — HAMi brings its own device plugin") == 1
    assert "disruptive changes in this plan:" in out and "! [kind] creates the Kind cluster gpu-cluster" in out


def test_plan_json_carries_decisions_assumptions_and_the_exit_code(tmp_path):
    code, out, _ = run("--simulate", "ready", "--root", str(tmp_path / "s"), "plan", "--json", "--answers", str(FULL))
    doc = json.loads(out)
    assert code == 0 and doc["exit"] == 0
    operator = next(s for s in doc["steps"] if s["step"] == "operator")
    assert any(d.startswith("adopting the installed gpu-operator release gpu-operator-") for d in operator["decisions"])
    assert operator["assumptions"] == []  # the ready host's cluster exists: nothing is assumed
    assert all("preview" in a for a in operator["actions"])


def test_every_command_a_run_makes_was_in_the_plan_shown_before(tmp_path, changes):
    root = str(tmp_path / "s")
    code, plan_out, err = run("--simulate", "t4-bare", "--root", root, "plan", "--answers", str(FULL))
    assert code == 0, plan_out + err
    shown = {line.strip()[2:] for line in plan_out.splitlines() if line.strip().startswith("$ ")}
    changes.clear()
    code, out, err = run("--simulate", "t4-bare", "--root", root, "--answers", str(FULL))
    assert code == 0, out + err
    unseen = [H.join_argv(argv) for argv in changes if H.join_argv(argv) not in shown]
    assert unseen == []


def test_a_pod_spec_asking_more_gpus_than_the_host_has_exits_2_with_nothing_executed(tmp_path, changes):
    path = answers(tmp_path, "container: {}\npodspec:\n  - {name: two, image: 'ubuntu:22.04', gpus: 2, output: /root/two.yaml}\n")
    code, out, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "--answers", path)
    assert code == 2, out + err
    assert "podspec" in err and "nothing was executed" in err
    assert changes == []
    code, out, _ = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "plan", "--answers", path)
    assert code == 2 and "refused:" in out


def test_plan_exits_1_naming_a_step_that_cannot_be_planned(tmp_path):
    path = answers(tmp_path, "kind: {}\n")  # no container step, and the simulated Docker has no nvidia runtime
    code, out, _ = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "plan", "--answers", path)
    assert code == 1
    assert "not plannable: kind (cannot plan)" in out


def test_kind_recreate_recreates_on_every_run_and_a_resume_does_not_delete_twice(tmp_path, changes):
    root = tmp_path / "s"
    path = answers(tmp_path, "kind: {recreate: true}\n")
    deletes = lambda: [a for a in changes if a[:3] == ["kind", "delete", "cluster"]]  # noqa: E731
    creates = lambda: [a for a in changes if a[:3] == ["kind", "create", "cluster"]]  # noqa: E731
    code, out, err = run("--simulate", "ready", "--root", str(root), "--answers", path)
    assert code == 0, out + err
    assert len(deletes()) == 1 and len(creates()) == 1
    # the next run (a new invocation) with the same answers: recreated again, not "done" from memory
    state_file = root / "var/lib/gpuwizard/state.json"
    data = json.loads(state_file.read_text())
    data["steps"]["kind"]["status"] = "failed"  # a later run of the step (e.g. after a failure elsewhere)
    state_file.write_text(json.dumps(data))
    code, out, err = run("--simulate", "ready", "--root", str(root), "--answers", path)
    assert code == 0, out + err
    assert len(deletes()) == 2 and len(creates()) == 2
    # a resume of that run after its create: the delete counts as done in this run
    data = json.loads(state_file.read_text())
    data["steps"]["kind"]["status"] = "failed"
    state_file.write_text(json.dumps(data))
    code, out, err = run("--simulate", "ready", "--root", str(root), "--resume")
    assert code == 0, out + err
    assert len(deletes()) == 2 and len(creates()) == 2


def test_a_later_run_refreshes_the_package_lists_again_a_resume_does_not(tmp_path, monkeypatch, changes):
    root = str(tmp_path / "s")
    rules = [{"match": ["apt-get", "install", "-y", "nvidia-container-toolkit"], "rc": 100, "times": 1,
              "stderr": "E: Unable to locate package nvidia-container-toolkit\n"}]
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps(rules))
    path = answers(tmp_path, "container: {}\n")  # multi-gpu: driver 550 installed, no container toolkit
    updates = lambda: len([a for a in changes if a == ["apt-get", "update"]])  # noqa: E731
    code, _, _ = run("--simulate", "multi-gpu", "--root", root, "--answers", path)
    assert code == 1 and updates() == 1
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps([{"match": ["apt-get", "install", "-y", "nvidia-container-toolkit"], "rc": 100,
                                                          "times": 1, "stderr": "E: Unable to locate package\n"}]))
    code, _, _ = run("--simulate", "multi-gpu", "--root", root, "--resume")
    assert code == 1 and updates() == 1  # the same run: its apt-get update stands
    monkeypatch.delenv("GPUWIZARD_SIM_FAIL")
    code, out, err = run("--simulate", "multi-gpu", "--root", root, "--answers", path)
    assert code == 0, out + err
    assert updates() == 2  # a new run: the lists are refreshed again before installing


def test_a_plan_on_a_running_cluster_waits_on_its_probes_side_by_side_not_one_after_another(tmp_path, monkeypatch):
    """On `ready` (a Kind cluster with the operator and HAMi installed) the plan of full.yaml reads the
    cluster's nodes, releases, their values, the operator's and the check's pods: the steps name those
    probes ahead (Step.prefetch) and they run side by side. Each probe runs once; every probe run ahead
    is one the plans then read; few are left for the plans to make one after another."""
    import threading

    ran: list[tuple[str, tuple[str, ...]]] = []  # (thread, argv) of every probe started
    asked: list[tuple[str, tuple[str, ...]]] = []  # (thread, argv) of every probe asked for, cached or not
    real_run, real_probe = H.Runner.run, H.Runner.probe

    def recording_run(self, argv, *args, **kwargs):
        if not kwargs.get("change", True):
            ran.append((threading.current_thread().name, tuple(argv)))
        return real_run(self, argv, *args, **kwargs)

    def recording_probe(self, argv, **kwargs):
        asked.append((threading.current_thread().name, tuple(argv)))
        return real_probe(self, argv, **kwargs)

    monkeypatch.setattr(H.Runner, "run", recording_run)
    monkeypatch.setattr(H.Runner, "probe", recording_probe)
    root = tmp_path / "s"
    code, out, err = run("--simulate", "ready", "--root", str(root), "doctor")  # the sandbox, prepared
    ran.clear()
    asked.clear()
    code, out, err = run("--simulate", "ready", "--root", str(root), "plan", "--answers", str(FULL))
    assert code == 0, out + err
    argvs = [a for _, a in ran]
    assert len(argvs) == len(set(argvs)), [a for a in argvs if argvs.count(a) > 1]
    ahead = {a for t, a in ran if t.startswith("prefetch")}
    read = {a for t, a in asked if not t.startswith("prefetch")}
    assert len(ahead) >= 15, sorted(ahead)
    assert ahead <= read, sorted(ahead - read)  # no guess wasted
    serial = [a for t, a in ran if t == "MainThread"]  # the probes the plans waited on one by one
    assert serial == [], serial
