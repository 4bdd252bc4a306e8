"""`gpuwizard verify` on simulated hosts: the whole chain's health checks, layer by layer (exit 0
healthy, 1 not, 2 invalid input), its JSON verdict validated against gpuwizard/documents.py, and
that it never writes the state file or any host file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from gpuwizard.documents import VERIFY
from gpuwizard.simulate import prepare
from gpuwizard.steps import kube as K

from .cli import run

ROOT = Path(__file__).resolve().parents[2]
FULL = str(ROOT / "examples" / "full.yaml")
HOST = str(ROOT / "examples" / "host.yaml")
PROFILES = sorted(p.stem for p in (ROOT / "gpuwizard/assets/hosts").glob("*.yaml"))
LAYERS = ["driver", "cuda", "container", "cluster", "operator", "hami", "sharing"]
SIM_DIR = ".gpuwizard-sim"  # the simulator's own world, call log and tools: not host files


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch):
    monkeypatch.setattr(K, "POLL", 0.05)


def verify(profile: str, root: Path, *extra: str) -> tuple[int, dict, str]:
    code, out, err = run("--simulate", profile, "--root", str(root), "verify", "--json", *extra)
    doc = json.loads(out)
    VERIFY.validate_python(doc, strict=True)
    assert doc["exit"] == code and doc["healthy"] == (code == 0)
    assert [layer["layer"] for layer in doc["layers"]] == LAYERS
    return code, doc, err


def by_layer(doc: dict) -> dict[str, dict]:
    return {layer["layer"]: layer for layer in doc["layers"]}


def host_files(root: Path) -> dict[str, str]:
    """Every file under the sandbox root but the simulator's own directory, by content hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == SIM_DIR or not path.is_file() or path.is_symlink():
            continue
        out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def writes(calls: list[dict]) -> list[list[str]]:
    """The commands among ``calls`` that change the host or the cluster's configuration. (A pod a
    sharing check starts and deletes is allowed: verify --help says it may start one.)"""
    bad = []
    for call in calls:
        argv = [str(a) for a in call.get("argv") or []]
        words = [a for a in argv[1:] if not a.startswith("-")]
        tool, verb = (argv[0] if argv else ""), (words[0] if words else "")
        if tool == "kubectl" and "--context" in argv:
            i = argv.index("--context")
            rest = [a for a in argv[1:i] + argv[i + 2:] if not a.startswith("-")]
            verb = rest[0] if rest else ""
            words = rest
        if tool == "helm" and "--kube-context" in argv:
            i = argv.index("--kube-context")
            words = [a for a in argv[1:i] + argv[i + 2:] if not a.startswith("-")]
            verb = words[0] if words else ""
        if (tool in ("apt-get", "apt", "dpkg", "dnf", "yum", "modprobe", "rmmod", "reboot", "ln", "update-initramfs",
                     "dracut", "nvidia-installer", "pip")
                or (tool == "mokutil" and "--sb-state" not in argv)
                or (tool.startswith("python") and "venv" in argv)
                or (tool == "systemctl" and verb in ("start", "stop", "restart", "reload", "enable", "disable", "daemon-reload"))
                or (tool == "nvidia-ctk" and (verb == "runtime" or "--set" in argv))
                or (tool == "kind" and verb in ("create", "delete"))
                or (tool == "helm" and (verb in ("install", "upgrade", "uninstall", "rollback")
                                        or words[:2] in (["repo", "add"], ["repo", "update"])))
                or (tool == "kubectl" and (verb in ("label", "annotate", "patch", "taint", "cordon", "drain", "scale", "replace")
                                           or (verb in ("create", "delete", "apply") and "namespace" in words)))
                or (tool == "docker" and verb in ("run", "create", "start", "stop", "rm")
                    or tool == "docker" and verb == "exec" and "ln" in argv)
                or (tool == "sysctl" and "-w" in argv)):
            bad.append(argv)
    return bad


# -- nothing installed ---------------------------------------------------------------------------------
def test_bare_host_every_layer_skipped_and_not_healthy(tmp_path):
    code, doc, _ = verify("t4-bare", tmp_path / "s")
    assert code == 1 and doc["source"] == "facts" and doc["answers"] is None
    assert {layer["status"] for layer in doc["layers"]} == {"skip"}
    assert all(layer["detail"] and not layer["asked"] for layer in doc["layers"])
    assert "nothing to verify" in doc["summary"]
    assert "nvidia-smi" in by_layer(doc)["driver"]["detail"]


def test_bare_host_with_the_full_answers_every_asked_layer_fails_with_its_reason(tmp_path):
    code, doc, _ = verify("t4-bare", tmp_path / "s", "--answers", FULL)
    assert code == 1 and doc["source"] == "answers" and doc["answers"] == FULL
    layers = by_layer(doc)
    assert all(layers[name]["status"] == "fail" and layers[name]["asked"] for name in LAYERS), doc
    assert "no NVIDIA driver" in layers["driver"]["detail"] and "asked for" in layers["driver"]["detail"]
    assert "nvcc" in layers["cuda"]["detail"]
    assert "nvidia-ctk" in layers["container"]["detail"]
    assert "kind-gpu-cluster" in layers["cluster"]["detail"]
    assert layers["operator"]["detail"] == "not checked: the cluster layer failed"
    assert layers["hami"]["detail"] == "not checked: the cluster layer failed"
    assert doc["summary"].startswith("not healthy:") and "cluster" in doc["summary"]


def test_layers_the_answers_do_not_ask_for_are_skipped(tmp_path):
    code, doc, _ = verify("t4-bare", tmp_path / "s", "--answers", HOST)
    assert code == 1
    layers = by_layer(doc)
    assert [layers[n]["status"] for n in ("driver", "cuda", "container")] == ["fail"] * 3
    for name in ("cluster", "operator", "hami", "sharing"):
        assert layers[name]["status"] == "skip" and not layers[name]["asked"]
        assert "not asked for" in layers[name]["detail"]


# -- a healthy host ------------------------------------------------------------------------------------
def test_ready_host_is_healthy(tmp_path):
    code, doc, _ = verify("ready", tmp_path / "s")
    assert code == 0, doc
    layers = by_layer(doc)
    for name in ("driver", "cuda", "container", "cluster", "operator", "hami"):
        assert layers[name]["status"] == "ok", layers[name]
    assert layers["sharing"]["status"] in ("ok", "skip")
    assert "565.57.01" in layers["driver"]["detail"]
    assert "ClusterPolicy ready" in layers["operator"]["detail"]
    assert "nvidia.com/gpu = 10 (1 GPU × 10, registered with HAMi)" in layers["hami"]["detail"]
    assert doc["summary"].startswith("healthy:")


def test_text_verdict_has_a_line_per_layer_and_the_verdict(tmp_path):
    code, out, _ = run("--simulate", "ready", "--root", str(tmp_path / "s"), "verify")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("checking the layers installed on this host")
    starts = [line.split()[0] for line in lines if line and not line.startswith((" ", "checking", "verdict"))]
    assert starts == LAYERS
    assert any(line.startswith("operator") and " ok " in line for line in lines)
    assert lines[-1].startswith("verdict: healthy")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_gives_a_valid_verdict(tmp_path, profile):
    code, doc, _ = verify(profile, tmp_path / "s")
    assert code in (0, 1)
    assert not [layer for layer in doc["layers"] if "internal error" in layer["detail"]], doc


# -- after a whole unattended run ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("full") / "s"
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", FULL)
    assert code == 0, out + err
    return root


def test_after_a_full_run_verify_with_its_answers_is_healthy(full_run):
    code, doc, _ = verify("t4-bare", full_run, "--answers", FULL)
    assert code == 0, doc
    layers = by_layer(doc)
    assert all(layers[n]["status"] == "ok" and layers[n]["asked"] for n in LAYERS[:-1]), doc
    assert layers["sharing"]["status"] in ("ok", "skip")
    assert "1 GPU × 10" in layers["hami"]["detail"] and "ClusterPolicy ready" in layers["operator"]["detail"]


def test_after_a_full_run_verify_takes_the_answers_the_state_file_recorded(full_run):
    code, doc, _ = verify("t4-bare", full_run)
    assert code == 0, doc
    assert doc["source"] == "state" and doc["answers"].endswith("state.json")
    assert all(layer["asked"] for layer in doc["layers"])


def test_verify_writes_no_state_log_or_host_file_and_changes_nothing(full_run):
    sb = prepare("t4-bare", full_run)
    before, seen = host_files(full_run), len(sb.calls())
    for extra in ((), ("--answers", FULL)):
        code, _, _ = verify("t4-bare", full_run, *extra)
        assert code == 0
        code, _, _ = run("--simulate", "t4-bare", "--root", str(full_run), "verify", *extra)
        assert code == 0
    assert host_files(full_run) == before  # the state file and the logs included
    made = sb.calls()[seen:]
    assert made, "verify asked the host nothing?"
    assert writes(made) == []


def test_the_write_filter_sees_writes():
    calls = [{"argv": ["helm", "--kube-context", "kind-x", "upgrade", "--install", "hami", "hami-charts/hami"]},
             {"argv": ["kubectl", "--context", "kind-x", "label", "node", "n", "gpu=on"]},
             {"argv": ["docker", "run", "--rm", "--gpus", "all", "img", "nvidia-smi"]},
             {"argv": ["systemctl", "restart", "docker"]},
             {"argv": ["kubectl", "--context", "kind-x", "get", "nodes", "-o", "json"]},
             {"argv": ["helm", "--kube-context", "kind-x", "list", "--all-namespaces", "-o", "json"]}]
    assert len(writes(calls)) == 4


# -- a broken layer ------------------------------------------------------------------------------------
def test_a_clusterpolicy_not_ready_fails_the_operator_layer(tmp_path):
    sb = prepare("ready", tmp_path / "s")
    sb.mutate(lambda w: w.update(cluster_faults={"validator": True}))
    code, doc, _ = verify("ready", tmp_path / "s")
    assert code == 1
    layers = by_layer(doc)
    assert layers["operator"]["status"] == "fail"
    assert "ClusterPolicy is notReady" in layers["operator"]["detail"]
    assert "nvidia-operator-validator" in layers["operator"]["detail"]
    assert layers["driver"]["status"] == layers["cluster"]["status"] == "ok"
    assert doc["summary"] == "not healthy: operator failed"
    code, out, _ = run("--simulate", "ready", "--root", str(tmp_path / "s"), "verify")
    assert code == 1 and any(line.startswith("operator") and "FAIL" in line for line in out.splitlines())


def test_a_driver_gone_fails_the_driver_layer(tmp_path):
    sb = prepare("ready", tmp_path / "s")

    def unload(w):
        w["modules"] = [m for m in w.get("modules", []) if not m.startswith("nvidia")]
    sb.mutate(unload)
    code, doc, _ = verify("ready", tmp_path / "s")
    assert code == 1
    driver = by_layer(doc)["driver"]
    assert driver["status"] == "fail" and "driver" in driver["detail"]
    # the sharing check's pods cannot run nvidia-smi without the driver either (hami.verify_sharing)
    assert doc["summary"] == "not healthy: driver, sharing failed"


def test_after_a_full_run_a_hami_plugin_crash_fails_the_hami_layer(full_run, tmp_path):
    sb = prepare("t4-bare", full_run)
    sb.mutate(lambda w: w.update(cluster_faults={"hami_plugin_crash": True}))
    try:
        code, doc, _ = verify("t4-bare", full_run, "--answers", FULL)
    finally:
        sb.mutate(lambda w: w.update(cluster_faults={}))
    assert code == 1
    layers = by_layer(doc)
    assert layers["hami"]["status"] == "fail" and "device plugin" in layers["hami"]["detail"]
    assert layers["sharing"]["status"] == "fail" and layers["sharing"]["detail"] == "not checked: the hami layer failed"
    assert layers["operator"]["status"] == "ok"


# -- invalid input, help, the document's type --------------------------------------------------------------
def test_an_invalid_answer_file_is_exit_2_and_checks_nothing(tmp_path):
    bad = ROOT / "tests/fixtures/answers-bad/05-version-2.yaml"
    code, out, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "verify", "--answers", str(bad))
    assert code == 2 and out == "" and "05-version-2.yaml" in err
    code, _, err = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "verify", "--answers", str(tmp_path / "none.yaml"))
    assert code == 2 and "file not found" in err


def test_help_says_what_verify_runs_and_its_exit_codes():
    code, out, _ = run("verify", "--help")
    assert code == 0
    for text in ("driver, cuda, container", "may start a pod", "writes no state or host", "0  healthy", "1  not healthy",
                 "2  invalid input", "--json"):
        assert text in " ".join(out.split()) or text in out, text
    code, out, _ = run("--help")
    assert "verify" in out


def test_a_key_the_verify_type_does_not_know_is_refused(tmp_path):
    _, doc, _ = verify("t4-bare", tmp_path / "s")
    doc["layers"][0]["surprise"] = 1
    with pytest.raises(ValidationError):
        VERIFY.validate_python(doc, strict=True)
    doc["layers"][0].pop("surprise")
    doc["layers"][0]["status"] = "warn"
    with pytest.raises(ValidationError):
        VERIFY.validate_python(doc, strict=True)
