"""The container images a chart release makes the cluster pull, read off its effective values (the
chart's defaults with the user's values over them, helm_values.coalesce).

gpu-operator: the operator's Deployment and the operands its ClusterPolicy deploys, each
``<repository>/<image>:<version>`` (an empty version: the chart's, as the operator and validator
images have it); a component with ``enabled: false`` deploys nothing, the sandbox components only
with ``sandboxWorkloads.enabled``; NFD's image is its subchart's
(``registry.k8s.io/nfd/node-feature-discovery:v<its chart version>``, the dependency of Chart.yaml).
The driver container's tag names the node's operating system (``580.126.20-ubuntu22.04``), and so do
GDS's and GDRCopy's: with them enabled, their images are not known here (:func:`operator_images`
says so).

HAMi: one image for the scheduler extender, the device plugin and its monitor
(``projecthami/hami`` at ``global.imageTag``, or ``version`` before 2.7), the kube-scheduler image
the plan sets (the wizard's step knows it), and the admission patch job's ``imageNew``.

Checked against the real ``helm template`` renders of ../shared/upstream/renders
(tests/unit/test_images.py): every image a render's workloads name is here, and every image here is
a render's workload's or its ClusterPolicy's.
"""

from __future__ import annotations

from typing import Any

# gpu-operator release -> the node-feature-discovery chart it depends on (Chart.yaml "dependencies")
NFD = {"v24.9.2": "0.16.6", "v25.3.4": "0.17.3", "v25.10.0": "0.18.2", "v25.10.1": "0.18.2",
       "v26.3.3": "0.18.3", "v26.7.0": "0.19.0"}
NFD_IMAGE = "registry.k8s.io/nfd/node-feature-discovery"
# ClusterPolicy components that deploy only with sandboxWorkloads.enabled (GPU passthrough, vGPU, Kata)
SANDBOX = ("vfioManager", "sandboxDevicePlugin", "kataSandboxDevicePlugin", "vgpuDeviceManager", "ccManager",
           "kataManager", "vgpuManager")
# the components whose images are <repository>/<image>:<version>, besides the operator itself
COMPONENTS = ("validator", "toolkit", "devicePlugin", "dcgm", "dcgmExporter", "gfd", "migManager",
              "nodeStatusExporter", *SANDBOX)
# components whose image tag names the node's operating system, as the driver's does (nvidia-fs:
# 2.27.3-ubuntu22.04): not known from the values alone
OS_TAGGED = ("gds", "gdrcopy")


def _ref(node: Any, default_version: str) -> str | None:
    if not isinstance(node, dict) or not node.get("image"):
        return None
    image = str(node["image"])
    repo = str(node.get("repository") or "")
    version = str(node.get("version") or default_version)
    name = f"{repo}/{image}" if repo else image
    return f"{name}@{version}" if version.startswith("sha256:") else f"{name}:{version}"  # a digest, or a tag


def operator_images(version: str, values: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(images, what is not known) for gpu-operator ``version`` with effective ``values``."""
    out: list[str] = []
    unknown: list[str] = []
    if ref := _ref(values.get("operator"), version):
        out.append(ref)
    sandbox = bool((values.get("sandboxWorkloads") or {}).get("enabled"))
    for name in COMPONENTS:
        node = values.get(name)
        if not isinstance(node, dict) or node.get("enabled") is False or (name in SANDBOX and not sandbox):
            continue
        if ref := _ref(node, version):
            out.append(ref)
        if name in ("vgpuManager",) and (ref := _ref(node.get("driverManager"), version)):
            out.append(ref)
    for name in OS_TAGGED:
        node = values.get(name)
        if isinstance(node, dict) and node.get("enabled") is True:
            unknown.append(f"{name}'s image (its tag names the node's operating system: "
                           f"{node.get('repository')}/{node.get('image')}:{node.get('version')}-<os><release>)")
    driver = values.get("driver") or {}
    if driver.get("enabled") is not False:
        unknown.append("the driver container (its tag names the node's operating system: "
                       f"{driver.get('repository')}/{driver.get('image')}:{driver.get('version')}-<os><release>)")
        if ref := _ref(driver.get("manager"), version):
            out.append(ref)
    if (values.get("nfd") or {}).get("enabled", True) is not False:
        nfd = NFD.get(version)
        if nfd is None:
            unknown.append(f"node-feature-discovery's image (gpuwizard does not know gpu-operator {version}'s NFD chart)")
        else:
            out.append(f"{NFD_IMAGE}:v{nfd}")
    return list(dict.fromkeys(out)), unknown


def hami_images(version: str, values: dict[str, Any], scheduler: str) -> list[str]:
    """The images of HAMi ``version`` with effective ``values``; ``scheduler``: the kube-scheduler
    image with its tag, as the plan sets it."""
    g = values.get("global") or {}
    dp = values.get("devicePlugin") or {}
    patch = (values.get("scheduler") or {}).get("patch") or {}
    out = []
    image = dp.get("image")
    if isinstance(image, dict):  # 2.7 and later: registry, repository, tag (empty: global.imageTag)
        registry = g.get("imageRegistry") or image.get("registry")
        tag = image.get("tag") or g.get("imageTag") or f"v{version}"
        out.append(f"{registry}/{image.get('repository')}:{tag}" if registry else f"{image.get('repository')}:{tag}")
    elif image:
        out.append(f"{image}:{values.get('version') or 'v' + version}")
    out.append(scheduler)
    new = patch.get("imageNew")
    if isinstance(new, dict):
        registry = g.get("imageRegistry") or new.get("registry")
        out.append(f"{registry}/{new.get('repository')}:{new.get('tag')}" if registry else
                   f"{new.get('repository')}:{new.get('tag')}")
    elif new:
        out.append(str(new))
    return list(dict.fromkeys(out))
