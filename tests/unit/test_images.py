"""What a chart release makes the cluster pull (gpuwizard/images.py), against the real `helm template`
renders of ../shared/upstream/renders: every image the render's workloads name is found, and every
image found is a render's workload's or one its ClusterPolicy deploys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gpuwizard import helm_values as HV
from gpuwizard import images
from gpuwizard.steps import kube as K

UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared" / "upstream"
RENDERS = UPSTREAM / "renders"
SETS = {  # the values each render was made with (../shared/upstream/README.md)
    "defaults": {},
    "driver-off-deviceplugin-off": {"driver": {"enabled": False}, "devicePlugin": {"enabled": False}},
    "hami-wizard": {"scheduler": {"kubeScheduler": {"image": {"tag": "v1.31.2"}}},
                    "devicePlugin": {"runtimeClassName": "nvidia"}},
}
pytestmark = pytest.mark.skipif(not RENDERS.is_dir(), reason=f"{RENDERS} (the shared upstream renders) is not here")


def renders(chart: str) -> list[tuple[str, str, Path]]:
    out = []
    for path in sorted(RENDERS.glob(f"{chart}-v*.yaml")):
        m = re.match(rf"{chart}-(v[\d.]+)-(.+)\.yaml$", path.name)
        if m and m.group(2) in SETS:
            out.append((m.group(1), m.group(2), path))
    return out


def workload_images(docs: list[dict]) -> set[str]:
    found = set()
    for doc in docs:
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            found.add(c["image"])
    return found


def cluster_policy_images(docs: list[dict]) -> set[str]:
    spec = next((d["spec"] for d in docs if d.get("kind") == "ClusterPolicy"), {})
    found = set()
    for node in spec.values():
        for part in (node, *(v for v in node.values() if isinstance(v, dict))) if isinstance(node, dict) else ():
            if part.get("image") and part.get("repository") and part.get("version"):
                found.add(f"{part['repository']}/{part['image']}:{part['version']}")
    return found


def enabled_operands(docs: list[dict]) -> dict[str, str]:
    """The ClusterPolicy's components that deploy on a container-workload node: not disabled, not the
    sandbox ones (sandboxWorkloads off), not those whose tag names the node's OS (driver, gds, gdrcopy)."""
    spec = next((d["spec"] for d in docs if d.get("kind") == "ClusterPolicy"), {})
    sandbox = (spec.get("sandboxWorkloads") or {}).get("enabled")
    out = {}
    for name, node in spec.items():
        if not isinstance(node, dict) or not node.get("image") or node.get("enabled") is False:
            continue
        if (name in images.SANDBOX and not sandbox) or name in ("driver", *images.OS_TAGGED):
            continue
        out[name] = f"{node['repository']}/{node['image']}:{node['version']}"
    return out


def effective(chart: str, version: str, values_set: str) -> dict:
    cv = K.chart_version(chart, version if chart == "gpu-operator" else version.removeprefix("v"))
    return HV.coalesce(SETS[values_set], cv.tree)


@pytest.mark.parametrize(("version", "values_set", "path"), renders("gpu-operator"),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_operator_images_are_the_renders(version: str, values_set: str, path: Path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    found, unknown = images.operator_images(version, effective("gpu-operator", version, values_set))
    assert workload_images(docs) <= set(found)
    assert set(found) <= workload_images(docs) | cluster_policy_images(docs)
    operands = enabled_operands(docs)
    assert {"toolkit", "gfd", "dcgmExporter", "migManager", "validator"} <= set(operands)
    for name, ref in operands.items():  # every operand the ClusterPolicy deploys here
        assert ref in found, name
    assert (values_set == "defaults") == any("driver container" in u for u in unknown)
    # what deploys on a container-workload node: the toolkit, GFD, DCGM's exporter and the validator
    assert {i.split(":")[0].rsplit("/", 1)[1] for i in found} >= {"gpu-operator", "container-toolkit", "dcgm-exporter",
                                                                 "k8s-device-plugin", "node-feature-discovery"}
    assert not any("kubevirt" in i or "vgpu" in i or "cc-manager" in i for i in found)  # sandboxWorkloads off


@pytest.mark.parametrize(("version", "values_set", "path"), renders("hami"), ids=lambda v: v if isinstance(v, str) else "")
def test_hami_images_are_the_renders(version: str, values_set: str, path: Path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    rendered = workload_images(docs)
    # the kube-scheduler container's image is what the plan sets (steps/hami.py); on 2.4.1 and 2.6.1 the
    # wizard's value set breaks it ("map[tag:v1.31.2]:v1.31.2": the plan sets imageTag there instead)
    scheduler = next(c["image"] for d in docs for c in (((d.get("spec") or {}).get("template") or {}).get("spec") or {})
                     .get("containers", []) if c["name"] == "kube-scheduler")
    found = images.hami_images(version.removeprefix("v"), effective("hami", version, values_set), scheduler)
    assert set(found) == rendered


def test_the_nfd_versions_are_the_charts_dependencies():
    for version, nfd in images.NFD.items():
        meta = yaml.safe_load((UPSTREAM / "charts/gpu-operator" / version / "Chart.yaml").read_text())
        dep = next(d for d in meta["dependencies"] if d["name"] == "node-feature-discovery")
        assert str(dep["version"]).removeprefix("v") == nfd
