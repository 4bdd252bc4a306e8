"""`gpuwizard undo` and `doctor`'s drift on simulated hosts: after a whole run, undo returns the
sandbox to its files before the run (compared file by file: paths, kinds, contents, links) and the
simulated host's packages, services and cluster to what they were; what others changed since stays;
a release that was there is rolled back, a cluster that was there stays; kill -9 during an undo,
then undo again: it finishes, and the same holds."""

from __future__ import annotations

import hashlib
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

from .cli import run
from .test_kill_resume import _no_duplicates

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "examples/full.yaml"
EXE = str(Path(sys.executable).with_name("gpuwizard"))
# what is not the host's: the simulator's own bookkeeping, gpuwizard's state, logs and backups
SIM_OWN = (".gpuwizard-sim/pycache/", ".gpuwizard-sim/calls.jsonl", ".gpuwizard-sim/world.json", ".gpuwizard-sim/world.marshal")
WIZARD_OWN = ("var/log/gpuwizard/", "var/lib/gpuwizard/state.json")


def _own(rel: str, name: str) -> bool:
    return rel.startswith(SIM_OWN) or rel.startswith(WIZARD_OWN) or (".gpuwizard-" in name and name.endswith(".bak"))


def tree(root: Path) -> dict[str, str]:
    """Every path under the root: a file (its sha256 and mode), a link (its target), a directory;
    what is not the host's left out, and a directory that holds only that (a backup, the state) too."""
    out: dict[str, str] = {}
    holds: dict[str, bool] = {}  # directory -> holds something of the host's (or nothing at all)
    for d, dirs, files in os.walk(root, topdown=False):
        rel_d = str(Path(d).relative_to(root))
        mine = False
        for name in files:
            p = Path(d, name)
            rel = str(p.relative_to(root))
            if _own(rel, name):
                continue
            mine = True
            out[rel] = ("link " + os.readlink(p)) if p.is_symlink() else \
                hashlib.sha256(p.read_bytes()).hexdigest()[:16] + f" {p.stat().st_mode & 0o777:o}"
        for name in dirs:
            p = Path(d, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link " + os.readlink(p)
                mine = True
            elif holds.get(rel, False) and not _own(rel + "/", name):
                out[rel + "/"] = "dir"
                mine = True
        holds[rel_d] = mine or not (files or dirs)
    return out


def host_model(sb) -> dict:
    """What the simulated host holds beyond files: packages, services, Kind clusters and their releases,
    namespaces and node labels, Docker's runtimes."""
    w = sb.world()
    clusters = {c["name"]: {"releases": sorted((r["name"], r.get("namespace"), r.get("revision"), json.dumps(r.get("values"), sort_keys=True))
                                               for r in c.get("releases", [])),
                            "labels": {n["name"]: n.get("labels") for n in c.get("nodes", [])},
                            "namespaces": sorted(c.get("namespaces") or {})}
                for c in w.get("clusters", [])}
    return {"packages": w.get("packages") or {}, "services": w.get("services") or {}, "clusters": clusters,
            "helm_repos": w.get("helm_repos") or {}, "driver": w.get("driver"), "nvidia_ctk": w.get("nvidia_ctk")}


def diff(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def gw(sb, *argv: str) -> tuple[int, str, str]:
    return run(*argv, "--simulate", sb.profile, "--root", str(sb.root))


def state_of(sb) -> dict:
    return json.loads((sb.root / "var/lib/gpuwizard/state.json").read_text())


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A t4-bare host before the whole recipe (its tree and model) and after it."""
    sb = prepare("t4-bare", tmp_path_factory.mktemp("undo") / "r")
    gw(sb, "doctor")  # the sandbox as gpuwizard first sees it
    before = tree(sb.root), host_model(sb)
    code, out, err = gw(sb, "--answers", str(FULL))
    assert code == 0, out + err
    return sb, before


def test_after_a_whole_run_doctor_reports_no_drift_and_undo_plans_every_step(installed):
    sb, _ = installed
    code, out, _ = gw(sb, "doctor", "--json")
    assert code == 0
    assert json.loads(out)["drift"] == []
    code, out, err = gw(sb, "undo", "--plan")
    assert code == 0, out + err
    heads = [line.split("]")[0].lstrip("[") for line in out.splitlines() if line.startswith("[")]
    assert heads == ["podspec", "hami", "operator", "kind", "container", "cuda", "driver"]  # newest first
    assert "$ kind delete cluster --name gpu-cluster" in out
    assert "$ helm --kube-context kind-gpu-cluster uninstall hami -n kube-system --wait" in out
    assert "apt-get purge -y" in out and "nvidia-container-toolkit" in out
    assert "(undo plan only: nothing was changed)" in out
    assert state_of(sb)["steps"]["hami"]["status"] == "done"  # the plan changed nothing


def test_undo_puts_the_sandbox_back_file_by_file(installed):
    sb, (files_before, model_before) = installed
    code, out, err = gw(sb, "undo")
    assert code == 0, out + err
    assert diff(files_before, tree(sb.root)) == []
    assert diff(model_before, host_model(sb)) == []
    state = state_of(sb)
    assert {sid: s["status"] for sid, s in state["steps"].items() if sid != "detect"} == \
        dict.fromkeys(["driver", "cuda", "container", "kind", "operator", "hami", "podspec"], "pending")
    assert all(e.get("undone") for e in state["journal"])
    code, out, _ = gw(sb, "undo")  # nothing left: says so, changes nothing
    assert code == 0 and "nothing to undo" in out


def test_a_foreign_edit_made_after_the_install_survives_undo(tmp_path):
    sb = prepare("t4-bare", tmp_path / "r")
    answers = ROOT / "examples/host.yaml"
    code, out, err = gw(sb, "--answers", str(answers))
    assert code == 0, out + err
    daemon = sb.root / "etc/docker/daemon.json"
    cfg = json.loads(daemon.read_text())
    cfg["log-level"] = "warn"  # another tool's key, added after gpuwizard's
    daemon.write_text(json.dumps(cfg, indent=2))
    code, out, _ = gw(sb, "doctor", "--json")
    assert json.loads(out)["drift"] == []  # gpuwizard's keys are still as it set them
    code, out, err = gw(sb, "undo", "container")
    assert code == 0, out + err
    assert json.loads(daemon.read_text()) == {"log-level": "warn"}  # theirs stays, gpuwizard's went


def test_an_edited_text_file_is_refused_then_forced(tmp_path):
    sb = prepare("t4-bare", tmp_path / "r")
    code, out, err = gw(sb, "--answers", str(ROOT / "examples/host.yaml"))
    assert code == 0, out + err
    env = sb.root / "etc/profile.d/cuda.sh"
    env.write_text(env.read_text() + "export MY_OWN=1\n")
    code, out, _ = gw(sb, "doctor")
    assert "/etc/profile.d/cuda.sh was edited since gpuwizard wrote it; re-apply: gpuwizard --resume" in out
    code, out, err = gw(sb, "undo", "container", "cuda")
    assert code == 1
    assert "/etc/profile.d/cuda.sh was edited since gpuwizard wrote it" in out
    assert env.exists() and "MY_OWN" in env.read_text()  # refused: left as it is
    assert state_of(sb)["steps"]["cuda"]["status"] == "done"
    code, out, err = gw(sb, "undo", "cuda", "--force")
    assert code == 0, out + err
    assert not env.exists()


def test_undo_refuses_a_step_under_one_still_installed(tmp_path):
    sb = prepare("t4-bare", tmp_path / "r")
    code, out, err = gw(sb, "--answers", str(ROOT / "examples/host.yaml"))
    assert code == 0, out + err
    code, out, _ = gw(sb, "undo", "driver")
    assert code == 1
    assert "cuda, container are still installed on top of driver: undo container cuda first" in out
    assert state_of(sb)["steps"]["driver"]["status"] == "done"


def test_a_release_that_was_there_is_rolled_back_and_the_cluster_stays(tmp_path):
    sb = prepare("ready", tmp_path / "r")
    answers = tmp_path / "hami.yaml"
    answers.write_text("version: 1\nkind:\n  cluster_name: gpu-cluster\nhami:\n  chart_version: 2.10.0\n")
    before = host_model(sb)
    code, out, err = gw(sb, "--answers", str(answers))
    assert code == 0, out + err
    after = host_model(sb)
    assert after["clusters"]["gpu-cluster"]["releases"] != before["clusters"]["gpu-cluster"]["releases"]
    code, out, err = gw(sb, "undo", "--plan")
    assert "roll hami back to revision" in out and "kind delete cluster" not in out
    code, out, err = gw(sb, "undo")
    assert code == 0, out + err
    now = host_model(sb)
    assert "gpu-cluster" in now["clusters"]  # not created by gpuwizard: not deleted
    values = {r[0]: r[3] for r in now["clusters"]["gpu-cluster"]["releases"]}
    assert values == {r[0]: r[3] for r in before["clusters"]["gpu-cluster"]["releases"]}  # hami's values as before


def test_drift_names_what_changed_and_a_resume_reapplies_it(tmp_path):
    sb = prepare("t4-bare", tmp_path / "r")
    code, out, err = gw(sb, "--answers", str(FULL))
    assert code == 0, out + err
    daemon = sb.root / "etc/docker/daemon.json"
    cfg = json.loads(daemon.read_text())
    del cfg["runtimes"]  # an upgrade rewrote daemon.json without the nvidia runtime
    daemon.write_text(json.dumps(cfg))
    sb.run(["kubectl", "--context", "kind-gpu-cluster", "label", "node", "gpu-cluster-control-plane", "gpu-"])
    sb.run(["helm", "--kube-context", "kind-gpu-cluster", "upgrade", "hami", "hami-charts/hami", "--namespace", "kube-system",
            "--version", "2.10.0", "--reuse-values", "--set", "devicePlugin.deviceSplitCount=5"])
    code, out, _ = gw(sb, "doctor", "--json")
    drift = json.loads(out)["drift"]
    whats = [d["what"] for d in drift]
    assert "the values of the Helm release hami changed since gpuwizard set them: devicePlugin.deviceSplitCount" in whats, whats
    assert "runtimes.nvidia.path gone from /etc/docker/daemon.json" in whats
    assert "the label gpu was removed from node gpu-cluster-control-plane" in whats
    assert {d["reapply"] for d in drift} == {"gpuwizard --resume"}
    code, out, err = gw(sb, "--resume")
    assert code == 0, out + err
    assert "what it set has changed since" in out
    code, out, _ = gw(sb, "doctor", "--json")
    assert json.loads(out)["drift"] == []


def test_undo_output_json(tmp_path):
    sb = prepare("t4-bare", tmp_path / "r")
    code, out, err = gw(sb, "--answers", str(ROOT / "examples/host.yaml"))
    assert code == 0, out + err
    code, out, err = gw(sb, "undo", "--output", "json")
    assert code == 0, out + err
    lines = [json.loads(line) for line in out.splitlines()]
    assert all(line["v"] == 1 for line in lines)
    assert lines[-1]["event"] == "summary" and lines[-1]["exit"] == 0
    assert {"step-started", "action-started", "action-finished", "step-finished"} <= {line["event"] for line in lines}
    finished = [line for line in lines if line["event"] == "step-finished"]
    assert [line["step"] for line in finished] == ["container", "cuda", "driver"]
    assert {line["status"] for line in finished} == {"undone"}


def test_kill_minus_nine_during_undo_then_undo_again(tmp_path):
    """kill -9 at random points of an undo, then undo again: it finishes, the state parses, no file has
    duplicated lines or keys, and the sandbox is as before the run."""
    rng = random.Random("undo-kill")
    env = {**os.environ, "NO_COLOR": "1"}
    clean = prepare("t4-bare", tmp_path / "clean")
    assert gw(clean, "--answers", str(FULL))[0] == 0
    start = time.monotonic()
    assert gw(clean, "undo")[0] == 0
    duration = time.monotonic() - start
    for trial in range(2):
        sb = prepare("t4-bare", tmp_path / f"t{trial}")
        base = [EXE, "--simulate", "t4-bare", "--root", str(sb.root)]
        # one interpreter for every call: the simulated tools' wrappers name the one that made them
        subprocess.run([*base, "doctor"], env=env, capture_output=True, check=True)
        files_before, model_before = tree(sb.root), host_model(sb)
        assert subprocess.run([*base, "--answers", str(FULL)], env=env, capture_output=True).returncode == 0
        argv = [EXE, "undo", "--simulate", "t4-bare", "--root", str(sb.root)]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.1, duration))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        json.loads((sb.root / "var/lib/gpuwizard/state.json").read_text())  # parses after a kill -9
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert diff(files_before, tree(sb.root)) == [], f"trial {trial}"
        assert diff(model_before, host_model(sb)) == [], f"trial {trial}"
        assert _no_duplicates(sb.root) == []
        assert not (sb.root / "etc/docker/daemon.json").exists()


def test_containerd_imports_wiped_is_drift_and_undo_puts_config_toml_back(tmp_path):
    """nvidia-ctk 1.19 adds an `imports` entry to config.toml and writes its drop-in; another tool
    rewriting config.toml without the import is drift; undo of a config.toml as gpuwizard left it
    puts back the file byte for byte (its comment too) and removes the drop-in."""
    from .test_containerd import CONFIG, CONTAINERD_DEFAULT, DROP_IN, TOML, host
    from .test_host_layer import answers

    root, sb = host(tmp_path, "1.19.1")
    args = ("--answers", answers(tmp_path, CONTAINERD_DEFAULT))
    code, out, err = gw(sb, *args)
    assert code == 0, out + err
    written = (root / TOML).read_text()
    assert "imports" in written
    (root / TOML).write_text(CONFIG)  # an upgrade put back its own config.toml, without the import
    code, out, _ = gw(sb, "doctor", "--json")
    whats = [d["what"] for d in json.loads(out)["drift"]]
    assert any(w.startswith("imports gone from /etc/containerd/config.toml") for w in whats), whats
    (root / TOML).write_text(written)  # as gpuwizard left it again
    code, out, _ = gw(sb, "doctor", "--json")
    assert json.loads(out)["drift"] == []
    code, out, err = gw(sb, "undo", "container")
    assert code == 0, out + err
    assert (root / TOML).read_text() == CONFIG  # "# managed by hand" and all
    assert not (root / DROP_IN).exists()
    assert ["systemctl", "restart", "containerd"] in [c["argv"] for c in sb.calls()[-30:]]


def test_nouveau_host_through_its_reboot_then_undo_says_the_next_boot_brings_nouveau_back(tmp_path):
    sb = prepare("nouveau", tmp_path / "r")
    gw(sb, "doctor")
    files_before, model_before = tree(sb.root), host_model(sb)
    code, out, err = gw(sb, "--answers", str(ROOT / "examples/host.yaml"))
    assert code == 3, out + err
    sb.run(["reboot"])
    code, out, err = gw(sb, "--resume")
    assert code == 0, out + err
    code, out, err = gw(sb, "undo")
    assert code == 0, out + err
    assert "/etc/modprobe.d/blacklist-nouveau.conf takes effect at the next boot" in out
    assert "$ update-initramfs -u" in out or "update-initramfs -u" in out
    # what a reboot changes (the boot id; nouveau loaded again, the module list) aside, the files are as before
    changed = diff(files_before, tree(sb.root))
    assert [line.split(":")[0] for line in changed] == ["proc/modules", "proc/sys/kernel/random/boot_id"], changed
    assert diff(model_before, host_model(sb)) == []
