"""hami.verify_sharing: two of the seed's gpu-pods (1 vGPU, 3000 MiB, 30% cores) on one GPU, each
seeing 3000 MiB in nvidia-smi, on the simulated host-ready cluster; and `gpuwizard podspec --apply
--check` against the same simulated cluster."""

from __future__ import annotations

import json

import pytest

from gpuwizard.simulate import prepare
from gpuwizard.steps import kube as K
from gpuwizard.steps import sharing as SH

from .test_cluster_layer import CLUSTER, answers, run, wizard


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch):
    monkeypatch.setattr(K, "POLL", 0.05)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """host-ready taken through kind/operator/hami with the sharing check (the default)."""
    tmp = tmp_path_factory.mktemp("share")
    root = tmp / "s"
    path = answers(tmp, CLUSTER)
    code, plan_out, err = run("--simulate", "host-ready", "--root", str(root), "plan", "--answers", path)
    assert code == 0, plan_out + err
    first = wizard("host-ready", root, path)
    return root, plan_out, first


def test_plan_lists_every_command_of_the_check(shared):
    _, plan_out, _ = shared
    assert "write the sharing check's two pods" in plan_out
    for argv in (SH.delete_argv("kind-gpu-cluster"), SH.get_argv("kind-gpu-cluster"),
                 SH.exec_argv("kind-gpu-cluster", "gpuwizard-share-a"), SH.exec_argv("kind-gpu-cluster", "gpuwizard-share-b")):
        assert " ".join(argv) in plan_out, argv
    assert "kubectl --context kind-gpu-cluster apply -f" in plan_out and "hami-sharing.yaml" in plan_out
    assert "nvidia.com/gpumem: 3000" in plan_out and "schedulerName: hami-scheduler" in plan_out  # the manifest's diff


def test_check_passes_leaves_no_pods_and_says_what_it_saw(shared):
    root, _, (code, out, err) = shared
    assert code == 0, out + err
    assert "both pods sit on the same physical GPU" in out
    assert "nvidia-smi in gpuwizard-share-a reports 3000 MiB" in out
    line = next(x for x in out.splitlines() if x.startswith("[hami] done:"))
    assert "sharing: 2 pods on GPU-" in line and "(Tesla T4) each see 3000MiB of 15360MiB" in line
    sb = prepare("host-ready", root)
    pods = sb.run(["kubectl", "get", "pods", "-A"]).stdout
    assert "gpuwizard-share" not in pods and "cuda-vectoradd" not in pods
    calls = sb.calls()
    assert not [c for c in calls if c.get("unsupported") or c.get("internal_error")]
    assert any(c["argv"][:5] == ["kubectl", "--context", "kind-gpu-cluster", "exec", "-n"] for c in calls)


def test_simulated_hami_pods_carry_the_real_annotations(shared):
    root, _, _ = shared
    sb = prepare("host-ready", root)
    path = sb.host_path("/root/share.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SH.manifest("nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04", "hami-scheduler"))
    assert sb.run(["kubectl", "apply", "-f", "/root/share.yaml"]).returncode == 0
    try:
        doc = json.loads(sb.run(SH.get_argv("kind-gpu-cluster")).stdout)
        items = doc["items"]
        assert [p["status"]["phase"] for p in items] == ["Running", "Running"]
        for p in items:
            ann = p["metadata"]["annotations"]
            assert ann["hami.io/bind-phase"] == "success" and ann["hami.io/vgpu-node"] == "gpu-cluster-control-plane"
            assert ann["hami.io/vgpu-devices-allocated"].endswith(",NVIDIA,3000,30:;")
            assert p["spec"]["schedulerName"] == "hami-scheduler"
        assert len({SH.allocation(p)[0][0] for p in items}) == 1
        plain = sb.run(["kubectl", "exec", "-it", "gpuwizard-share-a", "--", "nvidia-smi"])
        assert plain.returncode == 0 and "0MiB /   3000MiB" in plain.stdout and "Tesla T4" in plain.stdout
        assert "[HAMI-core Msg(" in plain.stderr
    finally:
        assert sb.run(SH.delete_argv("kind-gpu-cluster")).returncode == 0
    assert "gpuwizard-share" not in sb.run(["kubectl", "get", "pods", "-A"]).stdout


def test_a_full_gpu_leaves_the_pods_pending(shared, tmp_path):
    """Two pods of 8000 MiB do not fit one 15360 MiB T4: the second stays Pending (HAMi's NodeUnfitPod)."""
    root, _, _ = shared
    sb = prepare("host-ready", root)
    text = SH.manifest("nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04", "hami-scheduler")
    assert sb.run(["kubectl", "apply", "-f", "-"], input=text.replace("gpumem: 3000", "gpumem: 8000")).returncode == 0
    try:
        doc = json.loads(sb.run(SH.get_argv("kind-gpu-cluster")).stdout)
        assert [p["status"]["phase"] for p in doc["items"]] == ["Running", "Pending"]
        assert "NodeUnfitPod" in json.dumps(doc["items"][1]["status"])
    finally:
        sb.run(SH.delete_argv("kind-gpu-cluster"))


def test_verify_sharing_false_runs_none_of_it(tmp_path):
    root = tmp_path / "s"
    code, out, err = wizard("host-ready", root, answers(tmp_path, {**CLUSTER, "hami": {"verify_sharing": False}}))
    assert code == 0, out + err
    assert "sharing check" not in out and "sharing pods" not in out and "; sharing:" not in out
    assert not [c for c in prepare("host-ready", root).calls() if "gpuwizard-share-a" in c["argv"]]


def test_split_count_one_skips_it_with_the_reason(tmp_path):
    root = tmp_path / "s"
    code, out, err = wizard("host-ready", root, answers(tmp_path, {**CLUSTER, "hami": {"split_count": 1}}))
    assert code == 0, out + err
    assert "decision: hami.split_count: 1: each GPU is advertised as one vGPU" in out
    assert "the sharing check is skipped" in out
    line = next(x for x in out.splitlines() if x.startswith("[hami] done:"))
    assert "sharing: not checked (hami.split_count: 1" in line
    assert not [c for c in prepare("host-ready", root).calls() if "gpuwizard-share-a" in c["argv"]]


def test_podspec_apply_check_on_a_simulated_host(shared):
    root, _, _ = shared
    code, out, err = run("--simulate", "host-ready", "--root", str(root), "podspec", "--name", "gpu-pod",
                         "--image", "ubuntu:18.04", "--container", "ubuntu-container", "--gpus", "1", "--gpumem", "3000",
                         "--gpucores", "30", "--apply", "--check", "--", "bash", "-c", "sleep 86400")
    assert code == 0, out + err
    assert "pod/gpu-pod created" in err
    assert "pod/gpu-pod sees GPU 0 Tesla T4: 3000 MiB" in out
    sb = prepare("host-ready", root)
    assert not [c for c in sb.calls() if c.get("unsupported") or c.get("internal_error")]
    assert sb.run(["kubectl", "delete", "pod", "gpu-pod"]).returncode == 0
