"""The chart key data gpuwizard ships is the released charts' own values.yaml (tools/chart_keys.py
regenerates it unchanged); user values are checked against it; the simulated helm coalesces user
values over those defaults as Helm does, and what the simulated cluster derives matches the real
renders in ../shared/upstream/renders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from gpuwizard.simulate import tools_cluster as TC
from gpuwizard.steps import kube as K

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT.parent / "shared" / "upstream"
needs_upstream = pytest.mark.skipif(not (UPSTREAM / "charts").is_dir(), reason="../shared/upstream is absent")


def _generator():
    spec = importlib.util.spec_from_file_location("chart_keys", ROOT / "tools" / "chart_keys.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@needs_upstream
def test_regenerating_the_key_data_changes_nothing(tmp_path):
    gen = _generator()
    gen.write(tmp_path, gen.generate(UPSTREAM / "charts"))
    made = {f.name: f.read_text(encoding="utf-8") for f in tmp_path.glob("*.json")}
    shipped = {f.name: f.read_text(encoding="utf-8") for f in K.KEYS_DIR.glob("*.json")}
    assert made and made == shipped


@needs_upstream
def test_every_real_key_is_documented_and_defaults_match_values_yaml():
    for chart in ("gpu-operator", "hami"):
        for version in K.known_versions(chart):
            cv = K.chart_version(chart, version)
            tag = version if version.startswith("v") else "v" + version
            real = yaml.safe_load((UPSTREAM / "charts" / chart / tag / "values.yaml").read_text(encoding="utf-8"))
            assert cv.tree == real, (chart, version)
            assert all(cv.documents(k) for k in cv.keys), (chart, version)
            # no "not a key" about any real key (deprecated ones the CRD names are still said to do nothing)
            assert all("deprecated" in f.message and not f.refuse for f in K.check_values(cv, real)), (chart, version)
    assert len(K.chart_version("gpu-operator", "v25.10.0").keys) == 256


def test_dead_and_misspelt_keys_are_refused_with_the_nearest_real_key():
    op = K.chart_version("gpu-operator", "v25.10.0")
    found = {f.key: f for f in K.check_values(op, {"operator": {"defaultRuntime": "containerd"}, "cdi": {"default": True},
                                                   "driver": {"enabeld": False}, "daemonsets": {"labels": {"a.b/c": "x"}}})}
    assert found["operator.defaultRuntime"].refuse and "up to v24.9.2" in found["operator.defaultRuntime"].message
    assert not found["cdi.default"].refuse and "deprecated" in found["cdi.default"].message
    assert found["driver.enabeld"].refuse and found["driver.enabeld"].nearest == "driver.enabled"
    assert "daemonsets.labels.a.b/c" not in found  # a free-form map takes any key
    hami = K.chart_version("hami", "2.10.0")
    (f,) = K.check_values(hami, {"devicePlugin": {"nvidianodeSelector": {"nvidia.com/gpu.workload": "hami"}}})
    assert f.refuse and f.nearest == "devicePlugin.nvidiaNodeSelector"
    with pytest.raises(K.PlanRefused, match="ignore"):
        K.refuse_values(K.chart_version("hami", "2.6.1"), {"scheduler": {"kubeScheduler": {"image": {"tag": "v1"}}}})
    assert "operator.defaultRuntime" in K.dead_keys("gpu-operator", "v25.3.4")


# -- Helm's coalescing ----------------------------------------------------------------------------

def test_coalesce_merges_maps_null_deletes_and_tables_win():
    # the wording of Helm's warnings: pkg/chart/common/util/coalesce.go at v4.2.4 (keys under the chart's
    # name; the nested one is what ../shared/upstream/README.md reports for image.tag on HAMi 2.4.1/2.6.1)
    defaults = {"a": {"gpu": "on"}, "img": "repo/x", "t": {"k": 1},
                "scheduler": {"kubeScheduler": {"image": "registry/kube-scheduler"}}}
    warnings: list[str] = []
    out = TC.coalesce({"a": {"w": "hami"}, "img": {"tag": "v1"}, "t": None,
                       "scheduler": {"kubeScheduler": {"image": {"tag": "v1"}}}}, defaults, warnings.append, "hami")
    assert out == {"a": {"gpu": "on", "w": "hami"}, "img": {"tag": "v1"},
                   "scheduler": {"kubeScheduler": {"image": {"tag": "v1"}}}}
    assert warnings == ["warning: skipped value for hami.img: Not a table.",
                        "warning: destination for hami.scheduler.kubeScheduler.image is a table. Ignoring non-table "
                        "value (registry/kube-scheduler)"]
    assert TC.coalesce({"a": {"gpu": None, "w": "hami"}}, defaults)["a"] == {"w": "hami"}


SETS = {
    "defaults": {},
    "hami-wizard": {"scheduler": {"kubeScheduler": {"image": {"tag": "v1.31.2"}}}, "devicePlugin": {"runtimeClassName": "nvidia"}},
    "hami-custom-label": {"devicePlugin": {"nvidiaNodeSelector": {"nvidia.com/gpu.workload": "hami"}}},
    "hami-custom-label-null": {"devicePlugin": {"nvidiaNodeSelector": {"nvidia.com/gpu.workload": "hami", "gpu": None}}},
    "hami-split4": {"devicePlugin": {"deviceSplitCount": 4}},
    "driver-off-deviceplugin-off": {"driver": {"enabled": False}, "devicePlugin": {"enabled": False}},
}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _hami_render_facts(docs: list[dict]) -> dict:
    ds = next(d for d in docs if d["kind"] == "DaemonSet" and "device-plugin" in d["metadata"]["name"])
    dep = next(d for d in docs if d["kind"] == "Deployment" and "scheduler" in d["metadata"]["name"])
    image = next(c["image"] for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "kube-scheduler")
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-device"))
    split = yaml.safe_load(next(iter(cm["data"].values())))["nvidia"]["deviceSplitCount"]
    return {"node_selector": ds["spec"]["template"]["spec"].get("nodeSelector") or {}, "split_count": split,
            "scheduler_image": image, "runtime_class": ds["spec"]["template"]["spec"].get("runtimeClassName") or ""}


def _renders(prefix: str) -> list[Path]:
    return sorted((UPSTREAM / "renders").glob(prefix + "*.yaml")) if (UPSTREAM / "renders").is_dir() else []


@needs_upstream
@pytest.mark.parametrize("render", _renders("hami-"), ids=lambda p: p.stem)
def test_simulated_hami_derives_what_the_real_render_has(render):
    _, tag, name = render.stem.split("-", 2)
    version = tag.removeprefix("v")
    release = {"name": "hami", "chart": f"hami-{version}", "values": SETS[name]}
    derived = TC.hami_derived(version, TC.effective_values(release), "v1.31.2")
    assert derived == _hami_render_facts(_docs(render))


@needs_upstream
@pytest.mark.parametrize("render", _renders("gpu-operator-"), ids=lambda p: p.stem)
def test_simulated_operator_derives_what_the_real_render_has(render):
    stem = render.stem.removeprefix("gpu-operator-")
    version, name = stem.split("-", 1)
    release = {"name": "gpu-operator", "chart": f"gpu-operator-{version}", "values": SETS[name]}
    derived = TC.operator_derived(TC.effective_values(release))
    spec = next(d for d in _docs(render) if d["kind"] == "ClusterPolicy")["spec"]
    assert derived == {"driver": spec["driver"]["enabled"], "toolkit": spec["toolkit"]["enabled"],
                       "device_plugin": spec["devicePlugin"]["enabled"], "cdi": spec["cdi"]["enabled"],
                       "runtime_class": spec["operator"]["runtimeClass"]}
