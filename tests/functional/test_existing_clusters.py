"""Existing clusters that are not Kind (issue 13, item 3): the simulated profiles k3s, kubeadm-3node
and rke2 — doctor lists their nodes as the cluster reports them, the plan of an answer set that
targets their context ends with 0 or a named step, a context that does not exist ends the plan at
once naming it, and the simulated gpu-operator labels and configures the GPU nodes only."""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from gpuwizard.cli import Session, build_parser
from gpuwizard.engine import Engine, StepContext
from gpuwizard.simulate import prepare
from gpuwizard.state import State
from gpuwizard.steps import hami as H
from gpuwizard.steps import registry

from .cli import run

CLUSTERS = {"k3s": "default", "kubeadm-3node": "kubernetes-admin@kubernetes", "rke2": "default"}


def answers(tmp_path: Path, context: str, extra: str = "") -> Path:
    f = tmp_path / "answers.yaml"
    f.write_text(f'version: 1\n{extra}kind: {{existing_context: "{context}"}}\noperator: {{}}\nhami: {{}}\n')
    return f


def sim(sb, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env={**sb.env()}, capture_output=True, text=True, timeout=30)


def nodes_of(sb, context: str) -> dict:
    r = sim(sb, "kubectl", "--context", context, "get", "nodes", "-o", "json")
    assert r.returncode == 0, r.stderr
    return {n["metadata"]["name"]: n for n in json.loads(r.stdout)["items"]}


# ---------------------------------------------------------------------------------------------
# doctor


@pytest.mark.parametrize("profile", sorted(CLUSTERS))
def test_doctor_lists_the_nodes_as_the_cluster_reports_them(tmp_path, profile):
    code, out, _ = run("--simulate", profile, "--root", str(tmp_path / "s"), "doctor", "--json")
    assert code == 0
    kube = json.loads(out)["kubernetes"]
    assert kube["context"] == CLUSTERS[profile]
    nodes = {n["name"]: n for n in kube["nodes"]}
    assert all(n["ready"] for n in nodes.values())
    if profile == "kubeadm-3node":
        assert sorted(nodes) == ["gpu-worker-1", "gpu-worker-2", "k8s-cp-1"]
        cp = nodes["k8s-cp-1"]
        assert cp["this_host"] and cp["roles"] == ["control-plane"]
        assert cp["taints"] == ["node-role.kubernetes.io/control-plane:NoSchedule"]
        for n in nodes.values():
            assert n["runtime"] == "containerd://2.1.5" and n["kubelet"] == "v1.33.3"
            assert n["distribution"] == "kubernetes"
            # no operator, so no NFD/GFD: no GPU labels and no GPU capacity anywhere yet
            assert n["labels"] == {} and n["gpu_capacity"] is None and n["gpu_present"] is None
        assert not nodes["gpu-worker-1"]["this_host"]
    else:
        (n,) = nodes.values()
        assert n["this_host"] and n["distribution"] == profile
        assert n["runtime"] == {"k3s": "containerd://2.1.5-k3s1", "rke2": "containerd://2.3.3-k3s1"}[profile]
        assert n["kubelet"] == {"k3s": "v1.35.1+k3s1", "rke2": "v1.36.3+rke2r1"}[profile]
        assert n["os_image"] == "Ubuntu 22.04.5 LTS" and n["kernel"] == "5.15.0-125-generic"


def test_node_json_is_real_shaped(tmp_path):
    sb = prepare("kubeadm-3node", tmp_path / "s")
    nodes = nodes_of(sb, "kubernetes-admin@kubernetes")
    cp, w1 = nodes["k8s-cp-1"], nodes["gpu-worker-1"]
    assert cp["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert cp["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
    assert "node-role.kubernetes.io/control-plane" not in w1["metadata"]["labels"]
    assert w1["metadata"]["annotations"]["kubeadm.alpha.kubernetes.io/cri-socket"] == \
        "unix:///var/run/containerd/containerd.sock"
    info = w1["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"] == "containerd://2.1.5" and info["architecture"] == "amd64"
    assert info["bootID"] != cp["status"]["nodeInfo"]["bootID"]  # another machine
    assert "nvidia.com/gpu" not in w1["status"]["capacity"]
    assert w1["status"]["addresses"][0] == {"address": "192.168.10.11", "type": "InternalIP"}
    k3s = prepare("k3s", tmp_path / "k")
    (node,) = nodes_of(k3s, "default").values()
    assert node["spec"]["providerID"] == "k3s://gpu-demo" and node["spec"]["podCIDR"] == "10.42.0.0/24"
    assert node["metadata"]["labels"]["node-role.kubernetes.io/master"] == "true"
    assert "kubeadm.alpha.kubernetes.io/cri-socket" not in node["metadata"]["annotations"]


def test_runtimeclasses(tmp_path):
    k3s = prepare("k3s", tmp_path / "k")
    r = sim(k3s, "kubectl", "get", "runtimeclasses", "-o", "json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)["items"]
    assert {(i["metadata"]["name"], i["handler"]) for i in items} >= {("nvidia", "nvidia")}
    assert all(i["apiVersion"] == "node.k8s.io/v1" and i["kind"] == "RuntimeClass" for i in items)
    r = sim(k3s, "kubectl", "get", "runtimeclass", "nvidia", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["handler"] == "nvidia"
    rke2 = prepare("rke2", tmp_path / "r")
    r = sim(rke2, "kubectl", "get", "runtimeclasses", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["items"] == []
    r = sim(rke2, "kubectl", "get", "runtimeclasses")
    assert r.returncode == 0 and "No resources found" in r.stderr


# ---------------------------------------------------------------------------------------------
# plan


@pytest.mark.parametrize("profile", sorted(CLUSTERS))
def test_plan_of_the_whole_chain_ends_with_a_verdict(tmp_path, profile):
    code, out, err = run("--simulate", profile, "--root", str(tmp_path / "s"), "plan", "--answers",
                         str(answers(tmp_path, CLUSTERS[profile])))
    assert code in (0, 1), out + err
    assert "Traceback" not in out + err
    assert f"using the existing cluster of context {CLUSTERS[profile]}" in out
    if code == 1:
        assert "not plannable:" in out


def test_a_context_that_does_not_exist_ends_the_plan_naming_it(tmp_path):
    start = time.monotonic()
    code, out, err = run("--simulate", "kubeadm-3node", "--root", str(tmp_path / "s"), "plan", "--answers",
                         str(answers(tmp_path, "nope")))
    assert time.monotonic() - start < 30
    assert code == 1 and "Traceback" not in out + err
    assert "no context nope in" in out and "kubernetes-admin@kubernetes" in out
    assert "not plannable: kind" in out


def test_an_unattended_run_on_a_missing_context_fails_fast(tmp_path):
    start = time.monotonic()
    code, out, err = run("--simulate", "kubeadm-3node", "--root", str(tmp_path / "s"), "--answers",
                         str(answers(tmp_path, "nope", "detect: {require_gpu: false}\n")))
    assert time.monotonic() - start < 60
    assert code != 0 and "Traceback" not in out + err
    assert "nope" in out + err


@pytest.mark.parametrize("profile", sorted(CLUSTERS))
def test_unattended_run_ends_with_two_pods_sharing_a_gpu(tmp_path, profile):
    """The whole chain on an existing cluster, unattended: the run succeeds, every GPU node advertises
    HAMi's split GPUs, the sharing check saw 3000 MiB in each pod, and a node without GPU is left
    alone. On kubeadm-3node gpuwizard runs on the GPU-less control plane (detect does not refuse it)
    and the gpu-operator's driver container serves the workers (GFD labels its version)."""
    root = tmp_path / "s"
    code, out, err = run("--simulate", profile, "--root", str(root), "--answers",
                         str(answers(tmp_path, CLUSTERS[profile])))
    assert code == 0, out + err
    assert "(Tesla T4) each see 3000MiB at once" in out  # the card's name: HAMi's registration of a remote node
    sb = prepare(profile, root)
    nodes = nodes_of(sb, CLUSTERS[profile])
    gpu_nodes = {n: v for n, v in nodes.items() if v["metadata"]["labels"].get("nvidia.com/gpu.present") == "true"}
    assert gpu_nodes and all(v["status"]["capacity"]["nvidia.com/gpu"] == "10" for v in gpu_nodes.values())
    if profile == "kubeadm-3node":
        assert "no NVIDIA GPU on this host; none needed" in out
        assert sorted(gpu_nodes) == ["gpu-worker-1", "gpu-worker-2"]
        assert "nvidia.com/gpu" not in nodes["k8s-cp-1"]["status"]["capacity"]
        for v in gpu_nodes.values():  # gpu-operator v26.3.3's driver.version, loaded by its driver container
            assert v["metadata"]["labels"]["nvidia.com/cuda.driver-version.full"] == "580.126.20"
            assert v["metadata"]["labels"]["nvidia.com/cuda.runtime-version.full"] == "13.0"
        code, out, err = run("--simulate", profile, "--root", str(root), "doctor", "--json")
        doc = json.loads(out)
        worker = next(n for n in doc["kubernetes"]["nodes"] if n["name"] == "gpu-worker-1")
        assert worker["driver_version"] == "580.126.20" and worker["driver"] is None  # the operator's own
        # what runs there: the operator's validator passed, HAMi's plugin advertises and registered the GPU
        assert worker["validated"] is True and worker["hami_registered"] == 1
        assert worker["toolkit"] == "gpu-operator"  # the operator's toolkit container runs there
        cp = next(n for n in doc["kubernetes"]["nodes"] if n["name"] == "k8s-cp-1")
        assert cp["toolkit"] is None and cp["validated"] is None and cp["device_plugins"] == []
        assert [p.split(" ")[0] for p in worker["device_plugins"]] == ["hami"]
        assert {"name": "nvidia", "handler": "nvidia"} in doc["kubernetes"]["runtime_classes"]


def test_a_host_layer_on_a_gpu_less_host_still_needs_a_gpu(tmp_path):
    """auto: a run that installs a driver on this host fails at detect when this host has no GPU."""
    f = tmp_path / "a.yaml"
    f.write_text('version: 1\nkind: {existing_context: "kubernetes-admin@kubernetes"}\ndriver: {}\n')
    code, out, err = run("--simulate", "kubeadm-3node", "--root", str(tmp_path / "s"), "--answers", str(f))
    assert code != 0 and "no NVIDIA GPU found" in out + err
    assert "this run sets up driver on this host" in out + err


# ---------------------------------------------------------------------------------------------
# the simulated gpu-operator on a cluster that is not Kind


def _install_operator(sb, context: str, values: str) -> None:
    (sb.root / "values.yaml").write_text(values)
    for argv in (["helm", "repo", "add", "nvidia", "https://helm.ngc.nvidia.com/nvidia"],
                 ["helm", "--kube-context", context, "upgrade", "--install", "gpu-operator", "nvidia/gpu-operator",
                  "--namespace", "gpu-operator", "--create-namespace", "--version", "v25.10.1",
                  "--values", str(sb.root / "values.yaml")]):
        r = sim(sb, *argv)
        assert r.returncode == 0, r.stdout + r.stderr


def _pods(sb, context: str) -> list:
    r = sim(sb, "kubectl", "--context", context, "get", "pods", "-n", "gpu-operator", "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["items"]


def _with_helm(sb) -> None:
    def fn(w):
        w["helm"] = {"version": "v3.16.2"}
    sb.mutate(fn)


def test_operator_labels_the_gpu_workers_only(tmp_path):
    sb = prepare("kubeadm-3node", tmp_path / "s")
    _with_helm(sb)
    ctx = "kubernetes-admin@kubernetes"
    _install_operator(sb, ctx, "cdi:\n  enabled: false\n")
    nodes = nodes_of(sb, ctx)
    cp = nodes["k8s-cp-1"]
    assert not [k for k in cp["metadata"]["labels"] if k.startswith(("nvidia.com/", "feature.node.kubernetes.io/"))]
    assert "nvidia.com/gpu" not in cp["status"]["capacity"]
    for name in ("gpu-worker-1", "gpu-worker-2"):
        labels = nodes[name]["metadata"]["labels"]
        assert labels["feature.node.kubernetes.io/pci-10de.present"] == "true"
        assert labels["nvidia.com/gpu.present"] == "true" and labels["nvidia.com/gpu.product"] == "Tesla-T4"
        assert nodes[name]["status"]["capacity"]["nvidia.com/gpu"] == "1"  # the operator's device plugin
    pods = {p["metadata"]["name"]: p for p in _pods(sb, ctx)}
    on_cp = [n for n, p in pods.items() if p["spec"]["nodeName"] == "k8s-cp-1"]
    assert not [n for n in on_cp if n.startswith(("nvidia-driver", "nvidia-container-toolkit", "nvidia-device-plugin"))]
    drivers = [p for n, p in pods.items() if n.startswith("nvidia-driver-daemonset-")]
    assert len(drivers) == 2 and all(p["status"]["phase"] == "Running" for p in drivers)
    r = sim(sb, "kubectl", "--context", ctx, "get", "runtimeclasses", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(r.stdout)["items"]] == ["nvidia"]


def test_no_capacity_without_a_device_plugin(tmp_path):
    sb = prepare("kubeadm-3node", tmp_path / "s")
    _with_helm(sb)
    ctx = "kubernetes-admin@kubernetes"
    _install_operator(sb, ctx, "devicePlugin:\n  enabled: false\ncdi:\n  enabled: false\n")
    for n in nodes_of(sb, ctx).values():
        assert "nvidia.com/gpu" not in n["status"]["capacity"]


@pytest.mark.parametrize("env,ok", [("", False),
                                    ('toolkit:\n  env: [{"name": "CONTAINERD_SOCKET", '
                                     '"value": "/run/k3s/containerd/containerd.sock"}]\n', True)])
def test_rke2_toolkit_needs_the_distributions_containerd_socket(tmp_path, env, ok):
    sb = prepare("rke2", tmp_path / "s")
    _with_helm(sb)
    _install_operator(sb, "default", "driver:\n  enabled: false\ncdi:\n  enabled: false\n" + env)
    pods = {p["metadata"]["name"]: p for p in _pods(sb, "default")}
    (tk,) = [p for n, p in pods.items() if n.startswith("nvidia-container-toolkit-daemonset-")]
    running = tk["status"]["phase"] == "Running" and all(c["ready"] for c in tk["status"]["containerStatuses"])
    assert running == ok
    if not ok:
        msg = tk["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        assert "/runtime/sock-dir/containerd.sock" in msg
    (node,) = nodes_of(sb, "default").values()
    assert ("nvidia.com/gpu" in node["status"]["capacity"]) == ok


# ---------------------------------------------------------------------------------------------
# after a reboot (issue 13, item 5): the operator's validations, HAMi's registration, a stale plugin


def _plugin_deletes(sb) -> list[list[str]]:
    return [c["argv"] for c in sb.calls() if c["argv"][:1] == ["kubectl"] and "delete" in c["argv"]
            and any("device-plugin" in a for a in c["argv"])]


def test_a_plugin_that_found_no_gpu_is_restarted_once_during_the_install(tmp_path):
    """k3s whose HAMi device plugin comes up Running but with "No devices found. Waiting indefinitely."
    (it never looks again): the install deletes that pod once, says so, and ends with the node's vGPUs
    registered with HAMi (its node annotation) and advertised."""
    root = tmp_path / "s"
    sb = prepare("k3s", root)
    sb.mutate(lambda w: w.update(cluster_faults={"hami_plugin_stale": "no-devices"}))
    code, out, err = run("--simulate", "k3s", "--root", str(root), "--answers", str(answers(tmp_path, "default")))
    assert code == 0, out + err
    assert "restarting HAMi's device plugin on node" in out and "No devices found. Waiting indefinitely." in out
    deletes = _plugin_deletes(sb)
    assert len(deletes) == 1 and deletes[0][:6] == ["kubectl", "--context", "default", "delete", "pod", "-n"]
    node = next(iter(nodes_of(sb, "default").values()))
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "10"
    reg = json.loads(node["metadata"]["annotations"]["hami.io/node-nvidia-register"])  # HAMi 2.8+: JSON
    assert [(d["count"], d["type"], d["health"]) for d in reg] == [(10, "NVIDIA-Tesla T4", True)]
    saved = json.loads((root / "var/lib/gpuwizard/state.json").read_text())
    assert [x["node"] for x in saved["steps"]["hami"]["restarts"]] == [node["metadata"]["name"]]
    pod = next(x for x in deletes[0] if "device-plugin" in x)
    assert "restarted " + pod in saved["steps"]["hami"]["message"]


def test_after_a_reboot_the_run_waits_for_the_operator_and_restarts_a_stale_plugin_once(tmp_path):
    """The chain is done on k3s; the host reboots and HAMi comes back advertising the physical GPU count
    (HAMi#736). The next run does not call the cluster, the operator and HAMi healthy at once: it says
    the node rebooted, waits for it to be Ready, for the operator's pods and ClusterPolicy, restarts the
    stale plugin once, and ends with the vGPUs back. The run after that changes nothing."""
    root = tmp_path / "s"
    f = answers(tmp_path, "default")
    code, out, err = run("--simulate", "k3s", "--root", str(root), "--answers", str(f))
    assert code == 0, out + err
    sb = prepare("k3s", root)
    assert _plugin_deletes(sb) == []
    boot = sb.world()["host"]["boot_id"]
    # after the boot the cluster's reads see nodes NotReady and pods being created for 20 reads
    sb.mutate(lambda w: w.update(cluster_faults={"hami_plugin_stale": "physical", "settle_polls": 20}))
    r = sim(sb, "reboot")
    assert r.returncode == 0 and sb.world()["host"]["boot_id"] != boot
    node = next(iter(nodes_of(sb, "default").values()))
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"  # what HAMi#736 reports after the reboot

    code, out, err = run("--simulate", "k3s", "--root", str(root), "--answers", str(f))
    assert code == 0, out + err
    assert out.count("rebooted since this step was done") == 3  # the cluster, the operator and hami
    # the node had to be waited for (changed: the wait ran), then the operator's pods and ClusterPolicy
    assert re.search(r"changed +context default answers and its nodes are Ready", out), out
    assert "was done, but no longer holds" not in out  # waited for, not run again
    assert "the gpu-operator pods in gpu-operator are Running or Completed" in out
    assert "the ClusterPolicy is ready" in out
    assert "its physical GPU count" in out
    assert len(_plugin_deletes(sb)) == 1
    node = next(iter(nodes_of(sb, "default").values()))
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "10"

    code, out, err = run("--simulate", "k3s", "--root", str(root), "--answers", str(f))
    assert code == 0, out + err
    assert "rebooted since" not in out and len(_plugin_deletes(sb)) == 1


def test_verify_names_an_unregistered_node_after_a_reboot(tmp_path):
    """`gpuwizard verify` (read-only) after a reboot whose HAMi plugin found no GPU: the sharing layer
    fails naming the node, the missing registration and the plugin's last log line; nothing is deleted."""
    root = tmp_path / "s"
    f = answers(tmp_path, "default")
    code, out, err = run("--simulate", "k3s", "--root", str(root), "--answers", str(f))
    assert code == 0, out + err
    sb = prepare("k3s", root)
    sb.mutate(lambda w: w.update(cluster_faults={"hami_plugin_stale": "no-devices"}))
    assert sim(sb, "reboot").returncode == 0
    code, out, err = run("--simulate", "k3s", "--root", str(root), "verify", "--json")
    assert code != 0, out + err
    layers = {x["layer"]: x for x in json.loads(out)["layers"]}
    # the node comes back NotReady for a moment: verify checks again instead of failing, and says so
    assert layers["cluster"]["status"] == "ok" and layers["operator"]["status"] == "ok", layers
    assert "(after waiting " in layers["cluster"]["detail"] and "node gpu-demo " in layers["cluster"]["detail"]
    hami = layers["hami"]["detail"]
    # the last boot's registration is still on the node (nothing clears it), but nvidia.com/gpu is gone
    assert layers["hami"]["status"] == "fail" and "node gpu-demo: nvidia.com/gpu = absent, expected 10" in hami
    assert "No devices found. Waiting indefinitely." in hami and "a new pod is the fix" in hami
    assert "kubectl delete pod -n kube-system hami-device-plugin-" in hami  # what to do, by hand
    assert "after waiting" not in hami  # a stale plugin is not waited for
    assert _plugin_deletes(sb) == []


def with_nvdp(w: dict) -> None:
    """NVIDIA's own device plugin (the simulator's ``nvidia_device_plugin``) on every GPU worker."""
    for n in w["clusters"][0]["nodes"]:
        if n.get("node_gpus"):
            n["nvidia_device_plugin"] = True


def test_nvidia_s_own_device_plugin_is_a_node_fact_the_plans_act_on(tmp_path):
    """kubeadm-3node whose GPU workers already run NVIDIA's k8s-device-plugin (release nvdp): doctor names
    it per node; without HAMi the operator's device plugin stays off because of it; with HAMi the plan
    says that both advertise nvidia.com/gpu and that it must go (HAMi#829)."""
    root = tmp_path / "s"
    sb = prepare("kubeadm-3node", root)
    sb.mutate(with_nvdp)
    code, out, _ = run("--simulate", "kubeadm-3node", "--root", str(root), "doctor", "--json")
    nodes = {n["name"]: n for n in json.loads(out)["kubernetes"]["nodes"]}
    assert nodes["gpu-worker-1"]["device_plugins"][0].startswith("nvidia-device-plugin (nvdp-nvidia-device-plugin-")
    assert nodes["k8s-cp-1"]["device_plugins"] == []
    context = CLUSTERS["kubeadm-3node"]
    f = tmp_path / "op.yaml"
    f.write_text(f'version: 1\nkind: {{existing_context: "{context}"}}\noperator: {{}}\n')
    code, out, err = run("--simulate", "kubeadm-3node", "--root", str(root), "plan", "--answers", str(f))
    assert code == 0, out + err
    assert "auto: off — NVIDIA's device plugin already advertises nvidia.com/gpu on every GPU node" in out
    code, out, err = run("--simulate", "kubeadm-3node", "--root", str(root), "plan", "--answers",
                         str(answers(tmp_path, context)))
    assert "node gpu-worker-1 runs NVIDIA's device plugin too" in out and "HAMi#829" in out


def test_hami_beside_nvidia_s_own_device_plugin_is_named_not_restarted(tmp_path):
    """The chain is done on kubeadm-3node; then NVIDIA's device plugin is installed on the GPU workers
    and the nodes show their physical GPU count (HAMi#829). verify names it as the cause; a re-run of
    the hami step does not restart HAMi's plugin for it (a new pod would not change that)."""
    root = tmp_path / "s"
    context = CLUSTERS["kubeadm-3node"]
    f = answers(tmp_path, context)
    code, out, err = run("--simulate", "kubeadm-3node", "--root", str(root), "--answers", str(f))
    assert code == 0, out + err
    sb = prepare("kubeadm-3node", root)
    sb.mutate(with_nvdp)
    code, out, err = run("--simulate", "kubeadm-3node", "--root", str(root), "verify", "--json")
    assert code == 1
    hami = {x["layer"]: x for x in json.loads(out)["layers"]}["hami"]["detail"]
    assert "node gpu-worker-1: nvidia.com/gpu = 1, expected 10" in hami
    assert "NVIDIA's device plugin runs there too (nvidia-device-plugin (nvdp-nvidia-device-plugin-" in hami
    assert "a new pod is the fix" not in hami
    session = Session(build_parser().parse_args(["--simulate", "kubeadm-3node", "--root", str(root)]),
                      unattended=True, err=io.StringIO())
    engine = Engine(session.host, State(tmp_path / "st.json"), registry(), unattended=True)
    ctx = StepContext(engine, "hami")
    a = H.HamiAnswers()
    ctx.call.answers.update(kind=engine.steps["kind"].Answers.model_validate({"existing_context": context}),
                            hami=a)
    assert H.stale_plugins(ctx, H.resolve(ctx, a), a) == []
