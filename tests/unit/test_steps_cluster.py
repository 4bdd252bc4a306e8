"""Plan builders of the kind/operator/hami steps: GPU layout, Kind config, values files, chart keys
per pinned chart version, the HAMi scheduler key by chart version, vectoradd image choice."""

from __future__ import annotations

import pytest
import yaml

from gpuwizard import versions as V
from gpuwizard.errors import StepFailed
from gpuwizard.simulate.tools_cluster import parse_values
from gpuwizard.steps import kube as K
from gpuwizard.steps.hami import NEW_KEY_FROM
from gpuwizard.steps.kind import DEFAULT_NODE_IMAGE, KindAnswers, gpu_layout, render_config, toml_true

# Every key the steps can write, by chart (operator.py / hami.py); each must be documented for the
# chart version it is sent to.
OPERATOR_KEYS = ["driver.enabled", "toolkit.enabled", "devicePlugin.enabled"]
HAMI_KEYS = ["devicePlugin.deviceSplitCount", "devicePlugin.deviceMemoryScaling", "devicePlugin.deviceCoreScaling",
             "devicePlugin.nvidiaNodeSelector", "devicePlugin.runtimeClassName"]


# The key data is the released charts' own values.yaml (tools/chart_keys.py): exact for the releases
# gpuwizard has data for, the same minor's nearest patch otherwise, refused for any other line.
@pytest.mark.parametrize("version", ["v24.9.2", "v25.3.4", "v25.10.0"])
def test_operator_keys_are_documented_for_each_version(version):
    cv = K.chart_version("gpu-operator", version)
    assert cv.exact
    for key in OPERATOR_KEYS + ["cdi.enabled", "operator.runtimeClass"]:
        assert cv.documents(key), key
    assert cv.defaults["cdi.enabled"] is V.at_least(version, "25.10")


@pytest.mark.parametrize("version", ["2.4.1", "2.6.1", "2.10.0"])
def test_hami_keys_and_scheduler_key_by_version(version):
    cv = K.chart_version("hami", version)
    assert cv.exact
    assert cv.documents("devicePlugin.runtimeClassName")
    for key in HAMI_KEYS[:3]:  # 2.4.1's values.yaml has none of them: its templates hard-code them
        assert cv.documents(key) is V.at_least(version, "2.5"), key
    # the node selector's key is nvidianodeSelector up to 2.7, nvidiaNodeSelector from 2.8 (the real values.yaml)
    assert cv.documents("devicePlugin.nvidiaNodeSelector") is V.at_least(version, "2.8")
    assert cv.documents("devicePlugin.nvidianodeSelector") is not V.at_least(version, "2.8")
    new = V.at_least(version, NEW_KEY_FROM)
    assert cv.documents("scheduler.kubeScheduler.image.tag") is new
    # 2.4.1's values.yaml has no imageTag (the chart hard-codes the cluster's version); 2.5-2.6 read it
    assert cv.documents("scheduler.kubeScheduler.imageTag") is (V.at_least(version, "2.5") and not new)


def test_pinned_versions_are_documented_exactly():
    assert K.chart_version("gpu-operator", K.pinned("gpu-operator")).exact
    assert K.chart_version("hami", K.pinned("hami")).exact
    # a patch release without data: its minor's nearest release
    assert K.chart_version("hami", "2.8.0").documented == "2.8.3"
    assert K.chart_version("hami", "2.8.0").documents("scheduler.kubeScheduler.image.tag")


def test_chart_version_picks_the_same_minor_or_refuses():
    assert K.chart_version("gpu-operator", "v24.9.0").documented == "v24.9.2"  # a patch release: its minor's keys
    assert K.chart_version("gpu-operator", "25.3.4").documented == "v25.3.4"  # with or without the "v"
    assert K.chart_version("gpu-operator", "v25.10.0").exact
    assert K.chart_version("hami", "2.10.0").documented == "2.10.0"  # 2.10 > 2.6: numbers, not text
    with pytest.raises(StepFailed, match="no key data.*it knows 2.4.1, 2.5.3"):
        K.chart_version("hami", "2.0.0")
    cv = K.chart_version("hami", "2.11.0", unchecked=True)
    assert cv.documented == "2.10.0" and not cv.checked
    with pytest.raises(StepFailed, match="hami chart version"):
        K.chart_version("hami", "2.7-custom")


def test_undocumented_keys_are_caught():
    cv = K.chart_version("gpu-operator", "v25.10.0")
    assert not cv.documents("devicePlugin.enable")  # a typo
    assert cv.documents("toolkit.env")  # a documented list value
    assert cv.documents("devicePlugin.config.name")


def test_values_render_and_parse_back_with_comments():
    ex = K.Explained()
    ex.set("driver.enabled", False, "auto: off — the host runs driver 565.57.01")
    ex.set("devicePlugin.nvidiaNodeSelector", {"gpu": "yes"}, "hami.node_label\nsecond line")
    ex.set("toolkit.env", [{"name": "A", "value": "1"}], "from the answer file")
    text = K.render_values(ex.values, ex.notes, ["header"])
    assert yaml.safe_load(text) == ex.values
    assert parse_values(text) == ex.values  # what the simulated helm reads
    assert "  # auto: off — the host runs driver 565.57.01\n  enabled: false\n" in text
    assert "  # second line\n  nvidiaNodeSelector:\n    gpu: \"yes\"\n" in text


def test_gpu_layout_and_kind_config():
    a = KindAnswers()
    assert gpu_layout(a, 4) == {"gpu-cluster-control-plane": ["all"]}
    a = KindAnswers(gpus=[0, 2])
    assert gpu_layout(a, 4) == {"gpu-cluster-control-plane": ["0", "2"]}
    a = KindAnswers(workers=2)
    assert gpu_layout(a, 4) == {"gpu-cluster-control-plane": [], "gpu-cluster-worker": ["0", "2"],
                                "gpu-cluster-worker2": ["1", "3"]}
    a = KindAnswers(workers=1)
    assert gpu_layout(a, 4) == {"gpu-cluster-control-plane": [], "gpu-cluster-worker": ["all"]}
    cfg = yaml.safe_load(render_config(KindAnswers(workers=2), gpu_layout(KindAnswers(workers=2), 2)))
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    assert all(n["image"] == DEFAULT_NODE_IMAGE for n in cfg["nodes"])
    assert "extraMounts" not in cfg["nodes"][0]
    assert cfg["nodes"][1]["extraMounts"] == [{"hostPath": "/dev/null", "containerPath": "/var/run/nvidia-container-devices/0"}]


def test_ctk_toml_key():
    assert toml_true("accept-nvidia-visible-devices-as-volume-mounts = true\n", "accept-nvidia-visible-devices-as-volume-mounts")
    assert not toml_true("#accept-nvidia-visible-devices-as-volume-mounts = true\n", "accept-nvidia-visible-devices-as-volume-mounts")
    assert not toml_true(None, "x")


# /etc/nvidia-container-runtime/config.toml as nvidia-container-toolkit 1.17 installs it, the key set
# by `nvidia-ctk config --set accept-nvidia-visible-devices-as-volume-mounts=true --in-place`
CTK_CONFIG_TOML = """\
accept-nvidia-visible-devices-as-volume-mounts = {accept}
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
#swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
#debug = "/var/log/nvidia-container-toolkit.log"
environment = []
ldconfig = "@/sbin/ldconfig.real"
load-kmods = true
#no-cgroups = false
#path = "/usr/bin/nvidia-container-cli"
#root = "/run/nvidia/driver"
#user = "root:video"

[nvidia-container-runtime]
#debug = "/var/log/nvidia-container-runtime.log"
log-level = "info"
mode = "auto"
runtimes = ["docker-runc", "runc", "crun"]

[nvidia-container-runtime.modes]

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/"]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]

[nvidia-container-runtime-hook]
path = "nvidia-container-runtime-hook"
skip-mode-detection = false
"""


def test_ctk_toml_key_in_a_real_config():
    key = "accept-nvidia-visible-devices-as-volume-mounts"
    assert toml_true(CTK_CONFIG_TOML.format(accept="true"), key)
    assert not toml_true(CTK_CONFIG_TOML.format(accept="false"), key)
    # a trailing comment is still `true`
    assert toml_true(CTK_CONFIG_TOML.format(accept="true  # GPUs for Kind nodes"), key)
    # the same key name inside a table is not the top-level setting the runtime reads
    nested = CTK_CONFIG_TOML.format(accept="false") + f"\n[nvidia-container-cli.extra]\n{key} = true\n"
    assert not toml_true(nested, key)
    # a string "true" is not the boolean, and a file that is no TOML sets nothing
    assert not toml_true(f'{key} = "true"\n', key)
    assert not toml_true(f"{key} = true\n[nvidia-container-cli\n", key)
    assert toml_true(f"{key}=true", key)


class _Ctx:
    def __init__(self, cuda):
        from gpuwizard.network import Network

        self.facts = {"driver": {"version": "x", "cuda_version": cuda} if cuda else None}
        self.net = Network()  # no mirrors: the images as NVIDIA publishes them


@pytest.mark.parametrize("cuda,tag", [("12.7", "vectoradd-cuda12.5.0-ubuntu22.04"), ("12.4", "vectoradd-cuda11.7.1-ubuntu20.04"),
                                      ("11.4", None), ("12.5", "vectoradd-cuda12.5.0-ubuntu22.04"),
                                      ("12.10", "vectoradd-cuda12.5.0-ubuntu22.04"), ("11.7", "vectoradd-cuda11.7.1-ubuntu20.04"),
                                      ("13.0", "vectoradd-cuda12.5.0-ubuntu22.04")])
def test_vectoradd_image_the_driver_can_run(cuda, tag):
    image = K.vectoradd_image(_Ctx(cuda))
    assert (image.rsplit(":", 1)[1] if image else None) == tag


def test_pod_problems_and_definitive_failures():
    crash = {"status": {"phase": "Running", "containerStatuses": [
        {"ready": False, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "boom"}}}]}}
    assert K.pod_problem(crash) == "CrashLoopBackOff: boom (restarts: 5)" and K.definitive(K.pod_problem(crash))
    creating = {"status": {"phase": "Pending", "containerStatuses": [
        {"ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert K.pod_problem(creating) == "ContainerCreating" and not K.definitive("ContainerCreating")
    assert K.pod_problem({"status": {"phase": "Succeeded"}}) is None
    assert K.definitive("ImagePullBackOff: Back-off pulling image \"x\": manifest unknown")
