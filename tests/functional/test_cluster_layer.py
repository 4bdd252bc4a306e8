"""kind -> operator -> hami end to end on simulated hosts: real runner, real subprocesses, the
simulated cluster model (tools_cluster) that verification reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gpuwizard.simulate import prepare
from gpuwizard.steps import kube as K

from .cli import run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

CLUSTER = {"version": 1, "kind": {"cluster_name": "gpu-cluster"}, "operator": {}, "hami": {"split_count": 10}}


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch):
    """The simulated cluster answers at once (or after N polls): poll it every 50 ms, not every second."""
    monkeypatch.setattr(K, "POLL", 0.05)


def answers(tmp_path: Path, doc: dict, name: str = "a.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def wizard(profile: str, root: Path, answer_file: str, *extra: str) -> tuple[int, str, str]:
    return run("--simulate", profile, "--root", str(root), "--answers", answer_file, *extra)


def doctor(profile: str, root: Path) -> dict:
    code, out, err = run("--simulate", profile, "--root", str(root), "doctor", "--json")
    assert code == 0, err
    return json.loads(out)


def calls(profile: str, root: Path) -> list[dict]:
    return prepare(profile, root).calls()


@pytest.fixture(scope="module")
def host_ready(tmp_path_factory):
    """One host-ready sandbox taken through kind/operator/hami, then run a second time."""
    tmp = tmp_path_factory.mktemp("hr")
    root = tmp / "s"
    path = answers(tmp, CLUSTER)
    first = wizard("host-ready", root, path)
    second = wizard("host-ready", root, path)
    return root, first, second


def test_host_ready_kind_operator_hami_end_to_end(host_ready):
    root, (code, out, err), _ = host_ready
    assert code == 0, out + err
    for line in ("install kind v0.33.0", "create the Kind cluster gpu-cluster", "/sbin/ldconfig.real exists in",
                 "gpu-operator v26.3.3 installed", "HAMi 2.10.0 installed", 'the cuda-vectoradd pod\'s log says "Test PASSED"'):
        assert line in out
    assert ('[hami] done: HAMi 2.10.0 (release hami in kube-system): gpu-cluster-control-plane: nvidia.com/gpu: "10" '
            '(1 GPU × 10, 1 registered with HAMi)') in out
    assert '    nvidia.com/gpu: "10"' in out  # the capacity block as the seed shows it
    sb = prepare("host-ready", root)
    assert not [c for c in sb.calls() if c.get("unsupported") or c.get("internal_error")]
    node = json.loads(sb.run(["kubectl", "get", "node", "gpu-cluster-control-plane", "-o", "json"]).stdout)
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "10" and node["metadata"]["labels"]["gpu"] == "on"
    table = sb.run(["kubectl", "get", "pod", "-n", "gpu-operator"]).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any("nvidia-cuda-validator-" in r and "Completed" in r for r in table)
    assert not any("nvidia-device-plugin-daemonset" in r for r in table)  # HAMi's plugin instead
    daemon = json.loads((root / "etc/docker/daemon.json").read_text())
    assert daemon["default-runtime"] == "nvidia"
    assert list(root.glob("etc/docker/daemon.json.gpuwizard-*.bak"))
    doc = doctor("host-ready", root)
    assert doc["kubernetes"]["nodes"][0]["gpu_capacity"] == 10
    assert doc["gpu_operator"]["chart_version"] == "v26.3.3" and doc["hami"]["chart_version"] == "2.10.0"


def test_second_run_changes_nothing(host_ready):
    root, _, (code, out, err) = host_ready
    assert code == 0, out + err
    assert "changed" not in out and "(re-checking)" in out


def test_fresh_state_rerun_finds_everything_done(host_ready, tmp_path):
    root, _, _ = host_ready
    before = len(calls("host-ready", root))
    code, out, err = wizard("host-ready", root, answers(tmp_path, {**CLUSTER, "operator": {"verify": False},
                                                                    "hami": {**CLUSTER["hami"], "verify_sharing": False}}),
                            "--state", str(tmp_path / "fresh.json"))
    assert code == 0, out + err
    assert "changed" not in out, out
    new = calls("host-ready", root)[before:]
    assert not [c for c in new if c["argv"][:2] in (["kind", "create"], ["helm", "upgrade"], ["kubectl", "label"])]


def test_values_files_use_documented_keys_and_explain_them(host_ready):
    root, _, _ = host_ready
    for chart, path in (("gpu-operator", "var/lib/gpuwizard/helm/gpu-operator-values.yaml"),
                        ("hami", "var/lib/gpuwizard/helm/hami-values.yaml")):
        text = (root / path).read_text()
        values = yaml.safe_load(text)
        version = K.pinned(chart)
        cv = K.chart_version(chart, version)
        assert cv.exact
        for key in K.flatten(values):
            assert cv.documents(key), (chart, version, key)
        # every value has its reason on the line(s) above it
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
                assert lines[i - 1].lstrip().startswith("#"), line
    hami = yaml.safe_load((root / "var/lib/gpuwizard/helm/hami-values.yaml").read_text())
    assert hami["scheduler"]["kubeScheduler"]["image"]["tag"] == "v1.36.4"  # the Kind node image's
    # with HAMi, the operator runs without CDI as HAMi's docs install it (v26.3.3, cdi.enabled=false), so nvidia
    # stays the node's default runtime and HAMi's plugin needs no runtimeClassName; it waits for the toolkit
    assert "runtimeClassName" not in hami["devicePlugin"]
    assert hami["devicePlugin"]["gpuOperatorToolkitReady"] == {"enabled": True}
    op = yaml.safe_load((root / "var/lib/gpuwizard/helm/gpu-operator-values.yaml").read_text())
    assert op == {"driver": {"enabled": False}, "devicePlugin": {"enabled": False}, "cdi": {"enabled": False}}


def add_host_layer(sb) -> None:
    """What the container step leaves behind: nvidia-ctk and the nvidia runtime in daemon.json."""
    daemon = sb.host_path("/etc/docker/daemon.json")
    daemon.parent.mkdir(parents=True, exist_ok=True)
    daemon.write_text(json.dumps({"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}, indent=4))

    def fn(w):
        w["nvidia_ctk"] = {"version": "1.17.3"}
    sb.mutate(fn)
    assert sb.run(["systemctl", "restart", "docker"]).returncode == 0


def test_multi_gpu_capacity_is_gpus_times_split_count(tmp_path):
    root = tmp_path / "m"
    add_host_layer(prepare("multi-gpu", root))
    doc = {**CLUSTER, "hami": {"split_count": 5}, "operator": {"verify": True}}
    code, out, err = wizard("multi-gpu", root, answers(tmp_path, doc))
    assert code == 0, out + err
    # driver 550 (CUDA 12.4): the check pod uses an image that driver can run
    assert "vectoradd-cuda11.7.1-ubuntu20.04" in out
    nodes = doctor("multi-gpu", root)["kubernetes"]["nodes"]
    assert [(n["name"], n["gpu_capacity"]) for n in nodes] == [("gpu-cluster-control-plane", 4 * 5)]
    hami = yaml.safe_load((root / "var/lib/gpuwizard/helm/hami-values.yaml").read_text())
    assert hami["devicePlugin"]["deviceSplitCount"] == 5


def test_existing_context_on_ready_runs_no_kind_command(tmp_path):
    root = tmp_path / "r"
    path = answers(tmp_path, {"version": 1, "kind": {"existing_context": "kind-gpu-cluster"}, "operator": {}, "hami": {}})
    code, out, err = wizard("ready", root, path)
    assert code == 0, out + err
    assert "no Kind command runs" in out
    assert "adopting the installed gpu-operator release gpu-operator-1731231396" in out
    # the pin v26.3.3 needs Kubernetes >= 1.32; the cluster runs 1.31: the newest release that supports it, one
    # release line at a time (gpuwizard/assets/compat.yaml), each hop waited for
    assert "does not support Kubernetes v1.31.2 (operator-kubernetes/v26.3); taking v25.10.1" in out
    assert "gpu-operator gpu-operator-1731231396 upgraded to v25.3.4 (one major at a time)" in out
    assert "the ClusterPolicy is ready on v25.3.4" in out
    assert "gpu-operator v25.10.1 installed as gpu-operator-1731231396" in out  # its device plugin off for HAMi
    assert "HAMi 2.4.1: the chart sets the kube-scheduler tag to the cluster's version itself (v1.31.2)" in out
    assert "HAMi 2.10.0 is available: set hami.chart_version: 2.10.0 to upgrade" in out
    kinds = [c["argv"] for c in calls("ready", root) if c["argv"][0] == "kind"]
    assert all(argv[:2] == ["kind", "version"] for argv in kinds), kinds
    sb = prepare("ready", root)
    vals = json.loads(sb.run(["helm", "get", "values", "gpu-operator-1731231396", "-n", "gpu-operator", "-o", "json"]).stdout)
    assert vals == {"driver": {"enabled": False}, "devicePlugin": {"enabled": False}, "cdi": {"enabled": False}}
    code, out, err = wizard("ready", root, path)
    assert code == 0 and "changed" not in out


def test_plan_and_dry_run_execute_nothing(tmp_path):
    root = tmp_path / "p"
    path = answers(tmp_path, CLUSTER)
    for argv in (["plan"], ["--dry-run"]):
        code, out, err = run("--simulate", "host-ready", "--root", str(root), *argv, "--answers", path)
        assert code == 0, err
        assert "+      containerPath: /var/run/nvidia-container-devices/all" in out  # the Kind config as a diff
        assert "# auto: off — HAMi brings its own device plugin; both advertise nvidia.com/gpu" in out
        assert "scheduler.kubeScheduler.image.tag (since 2.7.0" in out
    sb = prepare("host-ready", root)
    assert sb.world()["clusters"] == [] and sb.world()["kind"] is None
    assert not (root / "var/lib/gpuwizard/kind").exists()


# ------------------------------------------------------------------------------------------------
# failures: clear messages, then --resume finishes


def test_hami_plugin_crash_names_causes_and_logs_then_resume(tmp_path):
    root = tmp_path / "f"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w.update(cluster_faults={"hami_plugin_crash": True}))
    code, out, err = wizard("host-ready", root, answers(tmp_path, CLUSTER))
    assert code == 1
    assert "HAMi's device plugin is failing, so the node never gets its vGPUs" in out
    assert "nvidia.com/gpu = absent, expected 10" in out
    assert "plugin pods: hami-device-plugin-" in out and "CrashLoopBackOff" in out
    assert "nvml init failed: ERROR_LIBRARY_NOT_FOUND" in out  # the plugin's last log lines
    assert "--resume" in err
    sb.mutate(lambda w: w.update(cluster_faults={}))
    code, out, err = run("--simulate", "host-ready", "--root", str(root), "--resume")
    assert code == 0, out + err
    assert "[kind] Kubernetes cluster (Kind or existing) (re-checking)" in out


def test_operator_image_pull_backoff_fails_fast_with_the_pod(tmp_path):
    root = tmp_path / "i"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w.update(cluster_faults={"image_pull": "nvidia-dcgm-exporter"}))
    code, out, err = wizard("host-ready", root, answers(tmp_path, CLUSTER))
    assert code == 1
    assert "gpu-operator pods in gpu-operator are failing" in out
    assert "nvidia-dcgm-exporter-" in out and "ImagePullBackOff" in out and "likely cause: an image cannot be pulled" in out


def test_validator_failure_and_unreachable_api(tmp_path):
    root = tmp_path / "v"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w.update(cluster_faults={"validator": True}))
    code, out, _ = wizard("host-ready", root, answers(tmp_path, CLUSTER))
    assert code == 1 and "nvidia-operator-validator-" in out and "CrashLoopBackOff: driver validation failed" in out
    sb.mutate(lambda w: w.update(cluster_faults={}))
    assert sb.run(["systemctl", "stop", "docker"]).returncode == 0  # the Kind API server goes with it
    code, out, _ = run("--simulate", "host-ready", "--root", str(root), "--resume")
    assert code == 1 and "Kind cluster gpu-cluster" not in out
    assert "connect: connection refused" in out or "was refused" in out


def test_settling_cluster_is_waited_for_not_failed(tmp_path):
    root = tmp_path / "w"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w.update(cluster_faults={"settle_polls": 2}))
    code, out, err = wizard("host-ready", root, answers(tmp_path, {**CLUSTER, "operator": {"verify": False}}))
    assert code == 0, out + err


def test_existing_cluster_with_other_mounts_stops_unless_recreate(tmp_path):
    root = tmp_path / "e"
    path = answers(tmp_path, CLUSTER)
    assert wizard("host-ready", root, path)[0] == 0
    other = {**CLUSTER, "kind": {"cluster_name": "gpu-cluster", "gpus": [0]}}
    code, out, _ = wizard("host-ready", root, answers(tmp_path, other, "b.yaml"), "--state", str(tmp_path / "b.json"))
    assert code == 1 and "its GPU mounts are" in out and "kind.recreate: true" in out
    assert not [c for c in calls("host-ready", root) if c["argv"][:2] == ["kind", "delete"]]
    again = {**CLUSTER, "kind": {"cluster_name": "gpu-cluster", "gpus": [0], "recreate": True}}
    code, out, err = wizard("host-ready", root, answers(tmp_path, again, "c.yaml"), "--state", str(tmp_path / "c.json"))
    assert code == 0, out + err
    assert [c["argv"][:2] for c in calls("host-ready", root)].count(["kind", "delete"]) == 1
    cfg = (root / "var/lib/gpuwizard/kind/gpu-cluster.yaml").read_text()
    assert "containerPath: /var/run/nvidia-container-devices/0" in cfg


def test_offline_tool_download_stops_with_guidance(tmp_path, monkeypatch):
    root = tmp_path / "o"
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps([{"match": ["curl"], "rc": 6,
                                                          "stderr": "curl: (6) Could not resolve host: github.com\n"}]))
    code, out, err = wizard("host-ready", root, answers(tmp_path, CLUSTER))
    assert code == 1
    # stopped before anything ran, by the plan's URL check: each URL named with curl's words, and the ways on
    url = "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64"
    assert f"  {url}: curl: (6) Could not resolve host: github.com" in err
    assert "nothing was executed" in err and "gpuwizard bundle --answers FILE --out DIR" in err
    assert not [c for c in calls("host-ready", root) if c["argv"][:1] == ["curl"] and "-fsSI" not in c["argv"]]


def test_a_tool_download_cut_at_run_time_stops_with_guidance(tmp_path, monkeypatch):
    """The URL answered the plan's check, then the download itself fails: the step stops saying how
    to fetch the tool by hand."""
    root = tmp_path / "o"
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps([{"match": ["curl", "-fsSL"], "rc": 6,
                                                          "stderr": "curl: (6) Could not resolve host: github.com\n"}]))
    code, out, _ = wizard("host-ready", root, answers(tmp_path, CLUSTER))
    assert code == 1
    assert "cannot download kind v0.33.0 (no network connection)" in out and "/usr/local/bin/kind" in out


def test_full_example_on_t4_bare(tmp_path):
    """The done-criterion: detect -> driver -> cuda -> container -> kind -> operator -> hami -> podspec."""
    root = tmp_path / "t4"
    code, out, err = wizard("t4-bare", root, str(EXAMPLES / "full.yaml"))
    for _ in range(3):  # the driver step stops for a reboot (exit 3): reboot the sandbox and resume
        if code != 3:
            break
        prepare("t4-bare", root).run(["reboot"])
        code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--resume")
    if code != 0:
        pytest.xfail("the host layer (driver/cuda/container, issue 3) did not finish on t4-bare: " + out[-400:])
    assert '[hami] done: HAMi 2.10.0 (release hami in kube-system): gpu-cluster-control-plane: nvidia.com/gpu: "10"' in out
    code, out, err = wizard("t4-bare", root, str(EXAMPLES / "full.yaml"))
    assert code == 0 and "changed" not in out
