"""Issue 12, items 3 (kind), 6 and 7 on simulated hosts: the kind step and Docker's default runtime
(``kind.set_docker_default_runtime``), HAMi's kube-scheduler registry (``hami.scheduler_registry``),
and waits that say on a timeout what is still wrong from the cluster's own view (pod events, image
pull errors, a DaemonSet whose node selector no node satisfies).

Timeouts without waiting: the cluster is polled with no interval (``K.POLL = 0``) and the waits'
clock (``gpuwizard.actions.time``) jumps 100 s at each reading, so a 600 s wait gives up after a few
polls of the simulated cluster."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from gpuwizard import actions as A
from gpuwizard.simulate import prepare
from gpuwizard.steps import kube as K

from .cli import run

ALIYUN = "registry.cn-hangzhou.aliyuncs.com"
CLUSTER = {"version": 1, "kind": {"cluster_name": "gpu-cluster"}, "operator": {}, "hami": {"split_count": 10}}


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr(K, "POLL", 0.0)


@pytest.fixture
def fast_clock(monkeypatch):
    """The waits' clock: every reading is 100 s later than the one before."""
    now = [0.0]

    def monotonic() -> float:
        now[0] += 100.0
        return now[0]

    monkeypatch.setattr(A, "time", SimpleNamespace(monotonic=monotonic))


def answers(tmp_path: Path, doc: dict, name: str = "a.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def wizard(profile: str, root: Path, answer_file: str, *extra: str) -> tuple[int, str, str]:
    return run("--simulate", profile, "--root", str(root), "--answers", answer_file, *extra)


def plan(profile: str, root: Path, answer_file: str) -> tuple[int, str, str]:
    return run("--simulate", profile, "--root", str(root), "plan", "--answers", answer_file)


def argvs(profile: str, root: Path) -> list[list[str]]:
    return [c["argv"] for c in prepare(profile, root).calls()]


# ------------------------------------------------------------------------------------------------
# A. the kind step and Docker's default runtime


def test_ready_cluster_leaves_dockers_default_runtime_and_running_containers_alone(tmp_path):
    """The `ready` profile's cluster works (runc is Docker's default; the node was created with
    nvidia): auto changes nothing, restarts nothing, and says why."""
    root = tmp_path / "r"
    doc = {"version": 1, "container": {}, "kind": {"cluster_name": "gpu-cluster"}}
    code, out, err = plan("ready", root, answers(tmp_path, doc))
    assert code == 0, out + err
    assert "Docker's default runtime is left as it is (runc; kind.set_docker_default_runtime: auto)" in out
    assert "docker-default-runtime" not in out and "restart Docker so that it loads" not in out
    code, out, err = wizard("ready", root, answers(tmp_path, doc))
    assert code == 0, out + err
    assert ["systemctl", "restart", "docker"] not in argvs("ready", root)
    daemon = json.loads((root / "etc/docker/daemon.json").read_text())
    assert "default-runtime" not in daemon


def test_new_cluster_with_set_as_default_false_is_a_decision_naming_the_restart(tmp_path):
    root = tmp_path / "h"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w["docker"].update(containers=[{"name": "postgres", "image": "postgres:16"},
                                                       {"name": "old-job", "running": False}]))
    assert sb.run(["docker", "ps", "--format", "{{.Names}}"]).stdout == "postgres\n"  # one name a line
    code, out, err = plan("host-ready", root, answers(tmp_path, {"version": 1, "container": {},
                                                                 "kind": {"cluster_name": "gpu-cluster"}}))
    assert code == 0, out + err
    assert ("kind.set_docker_default_runtime: auto makes nvidia Docker's default runtime although "
            "container.set_as_default is false") in out
    assert "set kind.set_docker_default_runtime: false to keep runc" in out
    assert "restarts Docker: the 1 running container(s) stop — postgres" in out
    assert "old-job" not in out  # stopped already
    assert '+    "default-runtime": "nvidia"' in out


def test_explicit_true_against_set_as_default_false_is_refused_naming_both_keys(tmp_path):
    doc = {"version": 1, "container": {"set_as_default": False},
           "kind": {"cluster_name": "gpu-cluster", "set_docker_default_runtime": True}}
    code, out, _ = plan("host-ready", tmp_path / "t", answers(tmp_path, doc))
    assert code == 1
    assert "kind.set_docker_default_runtime: true contradicts container.set_as_default: false" in out
    assert "not plannable: kind" in out


def test_explicit_false_keeps_runc_and_says_the_nodes_get_no_gpu(tmp_path):
    doc = {"version": 1, "kind": {"cluster_name": "gpu-cluster", "set_docker_default_runtime": False}}
    code, out, err = plan("host-ready", tmp_path / "f", answers(tmp_path, doc))
    assert code == 0, out + err
    assert "Docker's default runtime is left as it is (runc; kind.set_docker_default_runtime: false)" in out
    assert "their GPU mounts give them no GPU" in out
    assert "restart Docker so that it loads" not in out


def test_explicit_true_on_a_reused_cluster_restarts_docker_naming_the_kind_node(tmp_path):
    doc = {"version": 1, "kind": {"cluster_name": "gpu-cluster", "set_docker_default_runtime": True}}
    code, out, err = plan("ready", tmp_path / "t2", answers(tmp_path, doc))
    assert code == 0, out + err
    assert "restarts Docker: the 1 running container(s) stop — gpu-cluster-control-plane" in out


def test_simulated_docker_ps_prints_what_the_real_one_does(tmp_path):
    sb = prepare("ready", tmp_path / "p")
    table = sb.run(["docker", "ps"]).stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert table[1].endswith("gpu-cluster-control-plane") and '"/usr/local/bin/entr…"' in table[1]
    assert len(sb.run(["docker", "ps", "-q"]).stdout.strip()) == 12
    bad = sb.run(["docker", "ps", "-x"])
    assert bad.returncode != 0 and "unknown shorthand flag: 'x' in -x" in bad.stderr
    assert sb.run(["systemctl", "stop", "docker"]).returncode == 0
    down = sb.run(["docker", "ps", "--format", "{{.Names}}"])
    assert down.returncode == 1 and "Cannot connect to the Docker daemon" in down.stderr


# ------------------------------------------------------------------------------------------------
# B. HAMi's kube-scheduler registry


def test_scheduler_registry_default_is_registry_k8s_io_in_values_and_plan(tmp_path):
    root = tmp_path / "g"
    path = answers(tmp_path, CLUSTER)
    code, out, err = plan("host-ready", root, path)
    assert code == 0, out + err
    assert "HAMi's kube-scheduler image: registry.k8s.io/kube-scheduler:v1.36.4 (registry registry.k8s.io; the " \
           f"chart's default registry {ALIYUN} is available by setting it)" in out
    code, out, err = wizard("host-ready", root, path)
    assert code == 0, out + err
    values = yaml.safe_load((root / "var/lib/gpuwizard/helm/hami-values.yaml").read_text())
    assert values["scheduler"]["kubeScheduler"]["image"] == {"registry": "registry.k8s.io",
                                                             "repository": "kube-scheduler", "tag": "v1.36.4"}


def test_aliyun_registry_is_the_charts_own_default_and_sets_nothing(tmp_path):
    doc = {**CLUSTER, "hami": {"scheduler_registry": ALIYUN}}
    root = tmp_path / "al"
    code, out, err = plan("host-ready", root, answers(tmp_path, doc))
    assert code == 0, out + err
    assert f"HAMi's kube-scheduler image: {ALIYUN}/google_containers/kube-scheduler:v1.36.4 (registry {ALIYUN}, " \
           "the chart's default)" in out
    assert "+      registry:" not in out


def test_adopted_release_keeps_its_registry_unless_told(tmp_path):
    """ready's HAMi 2.4.1 pulls from the chart's Aliyun default: kept (no upgrade for it) unless
    hami.scheduler_registry is set; set, 2.4.1 gets the whole image name under its own key."""
    code, out, err = plan("ready", tmp_path / "k", answers(tmp_path, CLUSTER))
    assert code == 0, out + err
    assert f"keeping the kube-scheduler image of the installed release, {ALIYUN}/google_containers/kube-scheduler" in out
    doc = {**CLUSTER, "hami": {"scheduler_registry": "registry.k8s.io"}}
    code, out, err = plan("ready", tmp_path / "k2", answers(tmp_path, doc, "b.yaml"))
    assert code == 0, out + err
    assert '+    image: "registry.k8s.io/kube-scheduler"' in out


@pytest.mark.parametrize("bad", ["https://registry.k8s.io", "Registry.K8s.io", "a b", ""])
def test_scheduler_registry_that_is_no_registry_is_refused(tmp_path, bad):
    doc = {**CLUSTER, "hami": {"scheduler_registry": bad}}
    code, out, err = plan("host-ready", tmp_path / "b", answers(tmp_path, doc))
    assert code == 2 and "scheduler_registry" in out + err


# ------------------------------------------------------------------------------------------------
# C. waits that explain themselves


def test_unreachable_scheduler_registry_times_out_naming_the_pull_error(tmp_path, fast_clock):
    root = tmp_path / "u"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w.update(cluster_faults={"unreachable_registries": [ALIYUN]}))
    doc = {**CLUSTER, "operator": {"verify": False}, "hami": {"scheduler_registry": ALIYUN}}
    code, out, err = wizard("host-ready", root, answers(tmp_path, doc))
    assert code == 1, out + err
    assert "timed out after 300s waiting: HAMi's scheduler (hami-scheduler" in out
    assert "ImagePullBackOff" in out
    assert (f'event Failed: Failed to pull image "{ALIYUN}/google_containers/kube-scheduler:v1.36.4": rpc error: '
            "code = Unknown desc = failed to pull and unpack image") in out
    assert "dial tcp 47.97.242.13:443: i/o timeout" in out
    assert f"check that the nodes reach {ALIYUN}, or set hami.scheduler_registry" in out
    events = [a for a in argvs("host-ready", root) if a[3:5] == ["get", "events"]]
    assert events and events[0][-4:-2] == ["--field-selector", events[0][-3]]
    assert events[0][-3].startswith("involvedObject.name=hami-scheduler-")


def test_the_default_registry_is_not_the_unreachable_one(tmp_path, fast_clock):
    root = tmp_path / "d"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w.update(cluster_faults={"unreachable_registries": [ALIYUN]}))
    code, out, err = wizard("host-ready", root, answers(tmp_path, {**CLUSTER, "operator": {"verify": False}}))
    assert code == 0, out + err


def test_device_plugin_selector_no_node_satisfies_is_named_on_timeout(tmp_path, fast_clock, monkeypatch):
    """The node label does not take (`kubectl label` answers as if it did, changes nothing): the
    device-plugin DaemonSet wants 0 pods, the capacity wait times out and says which labels no node has."""
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps([{
        "match": ["kubectl", "--context", "kind-gpu-cluster", "label", "node"], "rc": 0,
        "stdout": "node/gpu-cluster-control-plane labeled\n"}]))
    root = tmp_path / "s"
    code, out, err = wizard("host-ready", root, answers(tmp_path, {**CLUSTER, "operator": {"verify": False}}))
    assert code == 1, out + err
    assert ("timed out after 600s waiting: each labelled node registers its GPUs with HAMi (hami.io/node-nvidia-register) "
            "and advertises GPUs × 10 as nvidia.com/gpu") in out
    assert "the DaemonSet hami-device-plugin schedules 0 pods: no node has labels gpu=on " \
           "(gpu-cluster-control-plane lacks gpu=on)" in out


def test_daemonset_selector_lists_every_missing_label():
    ds = {"metadata": {"name": "hami-device-plugin"}, "status": {"desiredNumberScheduled": 0},
          "spec": {"template": {"spec": {"nodeSelector": {"gpu": "on", "nvidia.com/gpu.workload": "hami"}}}}}
    nodes = [{"metadata": {"name": "n1", "labels": {"nvidia.com/gpu.workload": "hami"}}},
             {"metadata": {"name": "n2", "labels": {"gpu": "off"}}}]
    assert K.selector_problem(ds, nodes) == (
        "the DaemonSet hami-device-plugin schedules 0 pods: no node has labels gpu=on, nvidia.com/gpu.workload=hami "
        "(n1 lacks gpu=on; n2 lacks gpu=on (has off), nvidia.com/gpu.workload=hami)")
    assert K.selector_problem({**ds, "status": {"desiredNumberScheduled": 1}}, nodes) is None


def test_operator_image_pull_failure_names_the_registrys_answer(tmp_path):
    root = tmp_path / "i"
    sb = prepare("host-ready", root)
    sb.mutate(lambda w: w.update(cluster_faults={"image_pull": "nvidia-dcgm-exporter"}))
    code, out, _ = wizard("host-ready", root, answers(tmp_path, CLUSTER))
    assert code == 1
    assert 'event Failed: Failed to pull image "nvcr.io/nvidia/nvidia-dcgm-exporter": manifest unknown' in out


def test_event_lines_keep_warnings_once_with_counts():
    items = [{"type": "Normal", "reason": "Pulling", "message": "Pulling image \"x\"", "count": 3},
             {"type": "Warning", "reason": "Failed", "message": "Failed to pull image \"x\": i/o timeout", "count": 2},
             {"type": "Warning", "reason": "Failed", "message": "Error: ErrImagePull", "count": 2},
             {"type": "Warning", "reason": "Failed", "message": "Failed to pull image \"x\": i/o timeout"}]
    assert K.event_lines(items) == ['Failed: Failed to pull image "x": i/o timeout (×3)']
