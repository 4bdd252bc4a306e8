"""Issue 12, items 3-5 on simulated hosts, checked as a user would: what the cluster runs after the
wizard's helm commands, and what the plan says before them.

* a custom ``hami.node_label`` gives vGPUs (the chart's ``gpu: "on"`` removed with null; HAMi before
  2.8 spells the key ``nvidianodeSelector``);
* an adopted older HAMi is told apart (what it cannot do, the upgrade offered), and an upgrade of an
  adopted release keeps its other values, shown as a change to the live release;
* the operator: the pin checked against the cluster's Kubernetes, upgrades one release line at a
  time, CDI off beside HAMi, the NRI mode checked against the nodes' runtime.

The simulated helm applies Helm's own value rules (gpuwizard/helm_values.py); the simulated cluster
derives the device plugin's node selector from the effective values as the real charts' templates do
(tests/unit/test_chart_keys.py checks that against ../shared/upstream/renders)."""

from __future__ import annotations

import json

import pytest
import yaml

from gpuwizard.simulate import prepare
from gpuwizard.steps import kube as K

from .test_cluster_layer import CLUSTER, add_host_layer, answers, doctor, wizard


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch):
    monkeypatch.setattr(K, "POLL", 0.05)


def helm_values(root, release: str, ns: str, profile: str, *extra: str) -> dict:
    r = prepare(profile, root).run(["helm", "get", "values", release, "-n", ns, "-o", "json", *extra])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) or {}


@pytest.mark.parametrize("version, key", [("2.10.0", "nvidiaNodeSelector"), ("2.6.1", "nvidianodeSelector")])
def test_custom_node_label_gives_vgpus(tmp_path, version, key):
    root = tmp_path / "h"
    add_host_layer(prepare("host-ready", root))
    doc = {**CLUSTER, "hami": {"split_count": 10, "node_label": "nvidia.com/gpu.workload=hami", "chart_version": version}}
    code, out, err = wizard("host-ready", root, answers(tmp_path, doc))
    assert code == 0, out + err
    vals = yaml.safe_load((root / "var/lib/gpuwizard/helm/hami-values.yaml").read_text())
    assert vals["devicePlugin"][key] == {"gpu": None, "nvidia.com/gpu.workload": "hami"}
    node = doctor("host-ready", root)["kubernetes"]["nodes"][0]
    assert node["gpu_capacity"] == 10
    labels = json.loads(prepare("host-ready", root).run(
        ["kubectl", "get", "node", "gpu-cluster-control-plane", "-o", "json"]).stdout)["metadata"]["labels"]
    assert labels.get("nvidia.com/gpu.workload") == "hami" and "gpu" not in labels


def test_ready_hami_2_4_1_cannot_split_by_4_and_says_how_to_upgrade(tmp_path):
    path = answers(tmp_path, {"version": 1, "kind": {"existing_context": "kind-gpu-cluster"}, "operator": {},
                              "hami": {"split_count": 4}})
    code, out, err = wizard("ready", tmp_path / "r", path, "plan")
    assert code == 1, out + err
    assert "hami.split_count: 4 cannot take effect on HAMi 2.4.1" in out
    assert "Set hami.chart_version: 2.10.0 to upgrade the release" in out


def test_upgrading_an_adopted_hami_keeps_its_other_values_and_shows_the_live_change(tmp_path):
    root = tmp_path / "r"
    sb = prepare("ready", root)

    def user_value(w):  # a value the wizard does not manage, set by whoever installed HAMi
        rel = next(r for r in w["clusters"][0]["releases"] if r["name"] == "hami")
        rel["values"]["scheduler"]["defaultSchedulerPolicy"] = {"gpuSchedulerPolicy": "spread"}
    sb.mutate(user_value)
    path = answers(tmp_path, {"version": 1, "kind": {"existing_context": "kind-gpu-cluster"}, "operator": {},
                              "hami": {"chart_version": "2.10.0"}})
    code, out, err = wizard("ready", root, path, "plan")
    assert code == 0, out + err
    assert "change to the live release hami in kube-system (chart 2.4.1 → 2.10.0)" in out
    assert "the installed release's scheduler.kubeScheduler.imageTag: 'v1.31.2' is given up (not a key of hami 2.10.0)" in out
    code, out, err = wizard("ready", root, path)
    assert code == 0, out + err
    vals = helm_values(root, "hami", "kube-system", "ready")
    assert vals["scheduler"]["defaultSchedulerPolicy"] == {"gpuSchedulerPolicy": "spread"}  # kept
    assert "imageTag" not in vals["scheduler"]["kubeScheduler"]
    assert vals["scheduler"]["kubeScheduler"]["image"]["tag"] == "v1.31.2"
    computed = helm_values(root, "hami", "kube-system", "ready", "--all")
    assert computed["devicePlugin"]["nvidiaNodeSelector"] == {"gpu": "on"}  # 2.10.0's own defaults now


def test_operator_version_the_cluster_cannot_run_is_refused_naming_the_row(tmp_path):
    path = answers(tmp_path, {"version": 1, "kind": {"existing_context": "kind-gpu-cluster"},
                              "operator": {"chart_version": "v26.3.3"}})
    code, out, err = wizard("ready", tmp_path / "r", path, "plan")
    assert code == 2, out + err
    assert "gpu-operator v26.3.3 does not support Kubernetes 1.31" in out + err
    assert "operator-kubernetes/v26.3" in out + err


@pytest.mark.parametrize("runtime, ok", [("containerd://2.1.3", True), ("containerd://1.7.30", True),
                                         ("containerd://2.0.5", False), ("containerd://1.7.29", False)])
def test_nri_mode_is_checked_against_the_nodes_runtime_and_hami_gets_no_runtime_class(tmp_path, runtime, ok):
    sb = prepare("ready", tmp_path / "r")

    def node_facts(w):  # the nodes' own facts decide: their runtime (kubectl get nodes), their Kubernetes
        w["clusters"][0]["container_runtime"] = runtime
        w["clusters"][0]["version"] = "v1.34.1"
    sb.mutate(node_facts)
    path = answers(tmp_path, {"version": 1, "kind": {"existing_context": "kind-gpu-cluster"}, "hami": {},
                              "operator": {"values": {"cdi": {"enabled": True, "nriPluginEnabled": True}}}})
    code, out, err = wizard("ready", tmp_path / "r", path, "plan")
    if ok:
        assert code == 0, out + err
        assert "runs its NRI plugin (cdi.nriPluginEnabled): it creates no nvidia RuntimeClass" in out
        assert "runtimeClassName:" not in out.split("[hami]", 1)[1]  # not in the values file
    else:
        assert code == 2, out + err
        assert f"node gpu-cluster-control-plane runs {runtime}" in out + err
        assert "operator-nri/containerd" in out + err


def test_chart_release_without_data_is_refused_unless_unchecked(tmp_path):
    doc = {**CLUSTER, "hami": {"chart_version": "2.11.0"}}
    code, out, err = wizard("host-ready", tmp_path / "h", answers(tmp_path, doc), "plan")
    assert code != 0 and "gpuwizard has no key data for this release" in out + err
    doc = {**CLUSTER, "hami": {"chart_version": "2.11.0", "chart_keys_unchecked": True}}
    code, out, err = wizard("host-ready", tmp_path / "h", answers(tmp_path, doc, "b.yaml"), "plan")
    assert code == 0, out + err
    assert "hami.chart_keys_unchecked: HAMi 2.11.0 is not a release gpuwizard has data for" in out


def test_hami_on_a_kubernetes_it_does_not_support_is_refused_naming_the_row(tmp_path):
    # kind v0.20.0's image for Kubernetes 1.22 (its release notes' image list)
    image = "kindest/node:v1.22.17@sha256:f5b2e5698c6c9d6d0adc419c0deae21a425c07d81bbf3b6a6834042f25d4fba2"
    doc = {**CLUSTER, "kind": {"cluster_name": "gpu-cluster", "node_image": image}}
    code, out, err = wizard("host-ready", tmp_path / "h", answers(tmp_path, doc), "plan")
    assert code == 1, out + err
    assert "HAMi v2.10.0 does not support Kubernetes 1.22" in out and "hami-kubernetes/2.10" in out
    assert "no gpu-operator release gpuwizard knows supports the cluster's Kubernetes v1.22.17" in out


def test_a_node_runtime_outside_the_operator_s_validated_range_is_warned_about(tmp_path):
    sb = prepare("ready", tmp_path / "r")

    def node_facts(w):
        w["clusters"][0]["container_runtime"] = "containerd://1.6.28"
        w["clusters"][0]["version"] = "v1.34.1"
    sb.mutate(node_facts)
    path = answers(tmp_path, {"version": 1, "kind": {"existing_context": "kind-gpu-cluster"}, "operator": {}})
    code, out, err = wizard("ready", tmp_path / "r", path, "plan")
    assert code == 0, out + err
    assert ("decision: node gpu-cluster-control-plane (containerd://1.6.28): gpu-operator v26.3.3 was not validated "
            "with containerd 1.6.28") in out


def test_doctor_shows_each_node_as_the_cluster_reports_it(tmp_path):
    root = tmp_path / "r"
    prepare("ready", root)
    node = doctor("ready", root)["kubernetes"]["nodes"][0]
    assert node["runtime"] == "containerd://1.7.18" and node["distribution"] == "kind"
    assert node["roles"] == ["control-plane"] and node["gpu_product"] == "Tesla-T4" and node["gpu_count"] == 1
    assert node["this_host"] is False  # a Kind node is a container, not this host
    from .test_cluster_layer import run
    code, out, _ = run("--simulate", "ready", "--root", str(root), "doctor")
    assert code == 0
    assert "gpu-cluster-control-plane (control-plane, kind): containerd://1.7.18, Debian GNU/Linux 12 (bookworm)" in out


def test_an_adopted_mirror_image_is_kept_whole(tmp_path):
    """A HAMi release pulling kube-scheduler from a mirror's own path keeps that path (only the tag
    follows the cluster): gpuwizard does not rewrite it to registry.k8s.io's layout."""
    root = tmp_path / "r"
    sb = prepare("ready", root)

    def mirror(w):
        rel = next(r for r in w["clusters"][0]["releases"] if r["name"] == "hami")
        rel["chart"], rel["app_version"] = "hami-2.10.0", "2.10.0"
        rel["values"] = {"scheduler": {"kubeScheduler": {"image": {
            "registry": "harbor.example.com", "repository": "google_containers/kube-scheduler"}}}}
    sb.mutate(mirror)
    path = answers(tmp_path, {"version": 1, "kind": {"existing_context": "kind-gpu-cluster"}, "hami": {}})
    code, out, err = wizard("ready", root, path, "plan")
    assert code == 0, out + err
    assert "keeping the kube-scheduler image of the installed release, harbor.example.com/google_containers/" in out
    assert "harbor.example.com/google_containers/kube-scheduler:v1.31.2" in out
    assert 'repository: "kube-scheduler"' not in out
