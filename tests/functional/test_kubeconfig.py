"""``kind.kubeconfig`` beside ``existing_context`` (../shared/design.md): every kubectl and helm command
for the cluster names that file (under the configurable root), and a kubeconfig that does not exist
ends the plan with exit 1 naming it, before any cluster command runs."""

from __future__ import annotations

from gpuwizard.simulate import prepare

from .test_cluster_layer import answers, wizard


def test_every_cluster_command_names_the_kubeconfig(tmp_path):
    root = tmp_path / "r"
    sb = prepare("ready", root)
    conf = sb.host_path("/etc/kubernetes/admin.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("apiVersion: v1\nkind: Config\n")  # the simulated kubectl reads the world, not this file
    doc = {"version": 1, "kind": {"existing_context": "kind-gpu-cluster", "kubeconfig": "/etc/kubernetes/admin.conf"},
           "operator": {}, "hami": {}}
    before = len(sb.calls())
    code, out, err = wizard("ready", root, answers(tmp_path, doc), "plan")
    assert code == 0, out + err
    cluster = [c["argv"] for c in sb.calls()[before:] if c["argv"][0] in ("kubectl", "helm")
               and ("--context" in c["argv"] or "--kube-context" in c["argv"])]
    assert cluster, "the plan probes the cluster"
    assert all(argv[1:3] == ["--kubeconfig", str(conf)] for argv in cluster), cluster


def test_a_kubeconfig_that_does_not_exist_is_a_clear_plan_error(tmp_path):
    root = tmp_path / "r"
    sb = prepare("ready", root)
    doc = {"version": 1, "kind": {"existing_context": "kind-gpu-cluster", "kubeconfig": "/etc/rancher/k3s/k3s.yaml"},
           "operator": {}}
    before = len(sb.calls())
    code, out, err = wizard("ready", root, answers(tmp_path, doc), "plan")
    assert code == 1, out + err
    assert "kind.kubeconfig: /etc/rancher/k3s/k3s.yaml does not exist on this host" in out
    assert "Traceback" not in out + err
    assert not [c for c in sb.calls()[before:] if "--kubeconfig" in c["argv"]]


def test_a_kubeconfig_needs_an_existing_context(tmp_path):
    doc = {"version": 1, "kind": {"kubeconfig": "/etc/kubernetes/admin.conf"}}
    code, out, err = wizard("ready", tmp_path / "r", answers(tmp_path, doc), "plan")
    assert code == 2 and "set kind.existing_context too" in out + err
