"""Step ``hami``: HAMi GPU sharing through Helm, checked by what the nodes advertise.

* The kube-scheduler image tag comes from the cluster's version (``kubectl version -o json``, with
  suffixes such as ``-eks-…`` or ``+k3s1`` stripped) and goes under the key the chart version reads:
  ``scheduler.kubeScheduler.imageTag`` before 2.7.0, ``scheduler.kubeScheduler.image.tag`` from
  2.7.0 (the old key is silently ignored there).
* GPU nodes are labelled (``node_label``, the chart's ``devicePlugin.nvidiaNodeSelector``) after the
  operator is up (labelling first blocks the operator's driver pod: HAMi#1027).
* With gpu-operator: its device plugin must be off (both advertise ``nvidia.com/gpu``), and HAMi's
  device plugin gets ``runtimeClassName: nvidia`` where the operator uses CDI, or its toolkit is off
  and nvidia is not the default runtime of the GPU nodes' containerd (never with its NRI plugin).
* Verified: every labelled node's ``nvidia.com/gpu`` capacity = its physical GPUs × split_count.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from .. import actions as A
from .. import compat as C
from .. import helm_values as HV
from .. import images
from .. import versions as V
from ..engine import Step, StepContext
from ..errors import PlanRefused, StepFailed
from ..host import join_argv
from ..journal import HelmRelease, Label
from ..parsers import HAMI_REGISTER as REGISTER_ANNOTATION
from ..parsers import normalize_kube_version, parse_hami_registration
from ..validate import K8sName, NodeLabel, Section, Version
from . import kube as K
from . import operator as O
from . import sharing as SH
from .kind import gpu_layout, kind_cluster_plan, prefetch_context, target_context
from .operator import OperatorStep

CHART = "hami"
NEW_KEY_FROM = "2.7.0"  # the first chart version that reads scheduler.kubeScheduler.image.tag
# What older releases cannot do, from their real values.yaml and renders (../shared/upstream/charts/hami,
# ../shared/upstream/renders/hami-v2.4.1-*): 2.4.x hard-codes 10 vGPUs per GPU and the kube-scheduler tag
# (the cluster's version); the device plugin's node selector is devicePlugin.nvidianodeSelector before
# 2.8.0; devicePlugin.gpuOperatorToolkitReady exists from 2.8.0.
SPLIT_FROM = "2.5.0"
SELECTOR_KEY_FROM = "2.8.0"
TOOLKIT_READY_FROM = "2.8.0"
# The chart's kube-scheduler image, every version 2.4.1-2.10.0 (../shared/upstream/charts/hami/*/values.yaml):
# registry.cn-hangzhou.aliyuncs.com/google_containers/kube-scheduler, as one string
# (scheduler.kubeScheduler.image) before 2.7.0, as image.registry + image.repository from 2.7.0.
ALIYUN_REGISTRY = "registry.cn-hangzhou.aliyuncs.com"
ALIYUN_REPOSITORY = "google_containers/kube-scheduler"
SCHEDULER_REPOSITORY = "kube-scheduler"  # registry.k8s.io/kube-scheduler:<version> (and mirrors of registry.k8s.io)
REGISTRY_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")


def operator_facts(ctx: StepContext, context: str, rels: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The gpu-operator this run installs, else the one installed in the cluster, else None."""
    answers = ctx.answers(OperatorStep)
    if answers is not None:
        r = O.resolve(ctx, answers)
        return {"planned": True, "release": r["release"], "namespace": r["namespace"], "version": r["version"],
                "cdi": r["cdi"], "nri": r["nri"], "toolkit": r["toolkit"], "plugin": r["plugin"]}
    found = K.find_release(rels, "gpu-operator")
    if found is None:
        return None
    vals = K.release_values(ctx, context, found["release"], found["namespace"]) or {}
    flat = K.flatten(vals)
    version = found["chart_version"]
    cv = K.chart_version("gpu-operator", version, unchecked=True)  # an installed release is what it is
    return {"planned": False, "release": found["release"], "namespace": found["namespace"], "version": version,
            "cdi": bool(flat.get("cdi.enabled", cv.defaults.get("cdi.enabled", False))),
            "nri": bool(flat.get("cdi.nriPluginEnabled", cv.defaults.get("cdi.nriPluginEnabled", False))),
            "toolkit": flat.get("toolkit.enabled", True) is not False,
            "plugin": flat.get("devicePlugin.enabled", True) is not False, "values": vals}


DEFERRED = "the nodes the gpu-operator labels nvidia.com/gpu.present=true"


def gpu_nodes(ctx: StepContext, a: HamiAnswers, context: str) -> tuple[dict[str, int | None], str]:
    """node -> physical GPU count (None: unknown), and how the nodes were chosen."""
    kind = kind_cluster_plan(ctx)
    layout = None
    if kind is not None:
        total = len(ctx.facts.get("gpus") or [])
        layout = {n: (total if d == ["all"] else len(d)) for n, d in gpu_layout(kind, total).items() if d}
    found: dict[str, int | None] = {}
    items = K.nodes(ctx, context) or []
    for n in items:
        labels = n.get("metadata", {}).get("labels", {})
        cap = n.get("status", {}).get("capacity", {}).get("nvidia.com/gpu")
        count = labels.get("nvidia.com/gpu.count")
        if labels.get("nvidia.com/gpu.present") == "true" or (cap and cap != "0"):
            found[n["metadata"]["name"]] = int(count) if count and count.isdigit() else None
    if layout is not None:
        found.update(layout)
    if a.nodes:
        missing = [n for n in a.nodes if items and n not in {i["metadata"]["name"] for i in items} and n not in (layout or {})]
        if missing:
            raise StepFailed(f"hami.nodes names node(s) not in {context}: {', '.join(missing)}")
        return {n: found.get(n) for n in a.nodes}, "hami.nodes"
    if not found and ctx.planning and ctx.in_session("operator") and items:
        # the gpu-operator of this run has not labelled the nodes yet (its NFD finds their NVIDIA PCI device,
        # GFD then sets nvidia.com/gpu.present): the nodes are named when this step runs, after it
        ctx.assume(f"the gpu-operator of this run labels the GPU nodes of {context} nvidia.com/gpu.present=true")
        ctx.decide(f"HAMi's GPU nodes: those the gpu-operator of this run labels nvidia.com/gpu.present=true "
                   f"(none of the {len(items)} nodes is labelled yet); each is labelled {a.node_label} and checked "
                   "when this step runs")
        return {}, DEFERRED
    if not found:
        raise StepFailed(f"no GPU node found in {context} (no node has nvidia.com/gpu.present=true or nvidia.com/gpu "
                         f"capacity); name them in hami.nodes")
    return found, "every GPU node" + (" (the Kind nodes with GPU mounts)" if layout is not None else "")


def resolve(ctx: StepContext, a: HamiAnswers) -> dict[str, Any]:
    context, on_kind = target_context(ctx)
    if context is None:
        raise StepFailed("no Kubernetes cluster to install into: add a kind: section (a Kind cluster, or "
                         "kind: {existing_context: NAME} for your own cluster)")
    rels = K.releases(ctx, context)
    existing = K.find_release(rels, CHART)
    release, namespace = a.release, a.namespace
    notes: list[str] = []
    if existing and "release" not in a.model_fields_set:
        release, namespace = existing["release"], existing["namespace"]
        if release != a.release or namespace != a.namespace:
            notes.append(f"adopting the installed HAMi release {release} in {namespace}")
    version = a.chart_version or (existing["chart_version"] if existing else K.pinned(CHART))
    version = version.lstrip("v")
    pin = K.pinned(CHART)
    if existing and a.chart_version and V.compare(version, existing["chart_version"]) < 0:
        raise PlanRefused(f"hami.chart_version: {version} is older than the installed HAMi {existing['chart_version']}; "
                          "gpuwizard does not downgrade a release")
    if existing and not a.chart_version and V.compare(version, pin) < 0:
        notes.append(f"keeping the installed HAMi {version}; HAMi {pin} is available: set hami.chart_version: {pin} "
                     f"to upgrade (HAMi's docs: stop the GPU workloads first). What {version} cannot do: "
                     + "; ".join(cannot(version)))
    cv = K.chart_version(CHART, version, unchecked=a.chart_keys_unchecked)
    if not cv.checked:
        notes.append(f"hami.chart_keys_unchecked: HAMi {version} is not a release gpuwizard has data for; its values "
                     f"are written with the keys of {cv.documented}, unchecked")
    if a.split_count != 10 and not V.at_least(version, SPLIT_FROM):
        raise StepFailed(f"hami.split_count: {a.split_count} cannot take effect on HAMi {version}: before {SPLIT_FROM} "
                         f"the chart hard-codes 10 vGPUs per GPU (devicePlugin.deviceSplitCount is ignored). Set "
                         f"hami.chart_version: {pin} to upgrade the release (stop the GPU workloads first), or "
                         f"split_count: 10")
    ex = K.Explained()

    server, source = O.server_version(ctx, context)
    tag = normalize_kube_version(server) if server else None
    if tag is None:
        raise StepFailed(f"cannot read the Kubernetes server version of context {context} (kubectl version -o json); "
                         f"HAMi's scheduler image must match it")
    for f in C.hami_kubernetes(version, tag):  # gpuwizard/assets/compat.yaml
        if f.level == "refuse" and not existing:
            if a.chart_version:
                raise PlanRefused(f"hami.chart_version: {f.text}")
            raise StepFailed(f"{f.text} ({source})")
        notes.append(f.text)
    webui = K.find_release(rels, "hami-webui")
    if webui is not None:
        notes += [f"the installed HAMi-WebUI {webui['chart_version']} (release {webui['release']}): {f.text}"
                  for f in C.webui_hami(webui["chart_version"], version)]
    new_key = V.at_least(version, NEW_KEY_FROM)
    key = "scheduler.kubeScheduler.image.tag" if new_key else "scheduler.kubeScheduler.imageTag"
    stripped = f" ({server} with its suffix stripped)" if server != tag else ""
    if V.at_least(version, SPLIT_FROM):
        ex.set(key, tag, f"kube-scheduler image tag = the cluster's Kubernetes {tag}{stripped}, from {source}.\n"
               + (f"HAMi {version} reads it from {key} (since 2.7.0; the older scheduler.kubeScheduler.imageTag is "
                  "ignored)." if new_key else f"HAMi {version} (before 2.7.0) reads it from {key}; from 2.7.0 it is "
                  "image.tag."))
    else:
        key = "(none: the chart uses the cluster's version)"
    # the default registry.k8s.io through its mirror where the session has one; a registry named is kept
    registry = a.scheduler_registry if "scheduler_registry" in a.model_fields_set else ctx.net.registry(a.scheduler_registry)
    if existing and "scheduler_registry" not in a.model_fields_set:
        # the installed release's kube-scheduler image stays as it is (registry and repository: a mirror's
        # path is the user's); only its tag follows the cluster
        live_values = K.release_values(ctx, context, existing["release"], existing["namespace"]) or {}
        registry = adopted_registry(live_values)
        image = adopted_image(live_values, cv)
        if image == f"{a.scheduler_registry}/{SCHEDULER_REPOSITORY}":  # what gpuwizard set: set it again, same words
            image = scheduler_image(ex, registry, version, new_key)
        else:
            notes.append(f"keeping the kube-scheduler image of the installed release, {image} (set "
                         f"hami.scheduler_registry to change it; new installs use {a.scheduler_registry})")
    else:
        image = scheduler_image(ex, registry, version, new_key)
    d = cv.defaults
    if a.split_count != d.get("devicePlugin.deviceSplitCount", 10):
        ex.set("devicePlugin.deviceSplitCount", a.split_count,
               f"hami.split_count: each physical GPU is advertised as {a.split_count} nvidia.com/gpu (chart default 10)")
    if a.memory_scaling != d.get("devicePlugin.deviceMemoryScaling", 1):
        ex.set("devicePlugin.deviceMemoryScaling", a.memory_scaling,
               f"hami.memory_scaling: vGPUs share {a.memory_scaling}× the card's memory (above 1: oversubscribed)")
    if a.core_scaling != d.get("devicePlugin.deviceCoreScaling", 1):
        ex.set("devicePlugin.deviceCoreScaling", a.core_scaling, f"hami.core_scaling: {a.core_scaling}× the card's cores")
    lkey, lval = a.node_label.split("=", 1)
    skey = selector_key(version)
    default_sel = d.get(skey) or {}
    if {lkey: lval} != default_sel:
        # Helm merges this map with the chart's {gpu: "on"}: the plugin would need both labels
        # (../shared/upstream/renders/hami-v2.10.0-hami-custom-label.yaml); null deletes the default's keys
        sel: dict[str, Any] = {k: None for k in default_sel if k != lkey}
        sel[lkey] = lval
        gone = [k for k in default_sel if k != lkey]
        ex.set(skey, sel, f"hami.node_label: the device plugin runs on nodes labelled {a.node_label} (chart default "
               + ", ".join(f"{k}={v}" for k, v in default_sel.items()) + ")"
               + (f"; null removes the chart's {', '.join(gone)} (Helm merges this map with the default, and the "
                  "plugin would need both labels)" if gone else "")
               + ("" if skey.endswith("nvidiaNodeSelector") else
                  f"; HAMi {version} spells the key nvidianodeSelector (nvidiaNodeSelector from {SELECTOR_KEY_FROM})"))

    op = operator_facts(ctx, context, rels)
    runtime_class = False
    if op is not None and op["toolkit"] and V.at_least(version, TOOLKIT_READY_FROM):
        ex.set("devicePlugin.gpuOperatorToolkitReady.enabled", True,
               f"the gpu-operator manages the NVIDIA toolkit (release {op['release']}): HAMi's device plugin waits for "
               "the operator's toolkit validation (/run/nvidia/validations) before it starts (chart default off)")
    if op is not None and op.get("nri"):
        plan_nri = (f"gpu-operator {op['version']} runs its NRI plugin (cdi.nriPluginEnabled): it creates no nvidia "
                    "RuntimeClass, so HAMi's device plugin gets no runtimeClassName")
        notes.append(plan_nri)
    elif op is not None:
        why = []
        if op["cdi"]:
            why.append(f"gpu-operator {op['version']} uses CDI, so nvidia is no longer the default runtime")
        elif on_kind and not op["toolkit"]:
            why.append("the operator's toolkit is off, so nvidia is not the Kind node's default runtime")
        elif not on_kind and not op["toolkit"] and (default := nodes_default_runtime(ctx, context)) != "nvidia":
            why.append(f"the operator's toolkit is off and nvidia is not the default runtime of the GPU nodes' "
                       f"containerd ({default})")
        if why:
            runtime_class = True
            ex.set("devicePlugin.runtimeClassName", "nvidia",
                   f"{why[0]}: HAMi's device plugin must run with runtimeClassName nvidia (else \"Incompatible "
                   f"strategy detected auto\" and no libcuda.so.1)")
    elif on_kind:
        raise StepFailed("HAMi on Kind needs the NVIDIA runtime inside the node, which the gpu-operator's toolkit "
                         "container installs: add an operator: section (operator: {})")
    nodes, chosen = gpu_nodes(ctx, a, context)
    if not on_kind:
        others = O.other_plugins([n for n in O.cluster_nodes(ctx, context) if not nodes or n.get("name") in nodes])
        for node, found in others.items():
            notes.append(f"node {node} runs NVIDIA's device plugin too ({', '.join(found)}): it and HAMi's both "
                         "advertise nvidia.com/gpu, and the node shows the physical GPU count whenever it registers "
                         "last (HAMi#829); uninstall it (helm uninstall <its release>) for HAMi's vGPUs to hold")
    K.mirror_chart_images(ctx, ex, cv)  # the kube-scheduler's registry is set above (scheduler_registry)
    values, value_notes = ex.values, ex.notes
    live, kept_keys = None, []
    if existing and existing["release"] == release and existing["namespace"] == namespace:
        live = K.release_values(ctx, context, release, namespace) or {}
        managed = [f"devicePlugin.{k}" for k in ("deviceSplitCount", "deviceMemoryScaling", "deviceCoreScaling",
                                                  "runtimeClassName", "nvidiaNodeSelector", "nvidianodeSelector",
                                                  "gpuOperatorToolkitReady.enabled")]
        if "scheduler_registry" in a.model_fields_set:
            managed += ["scheduler.kubeScheduler.image"]
        if V.at_least(version, SPLIT_FROM):
            managed += ["scheduler.kubeScheduler.imageTag", "scheduler.kubeScheduler.image.tag"]
        adopted = K.adopt_values(live, ex, managed, cv, existing["chart_version"].lstrip("v") == version)
        values, value_notes, kept_keys = adopted.values, adopted.notes, adopted.kept
        notes += adopted.given_up(cv)
    return {"context": context, "on_kind": on_kind, "release": release, "namespace": namespace, "version": version,
            "chart": cv, "values": values, "notes": value_notes, "plan_notes": notes, "operator": op, "live": live,
            "kept": kept_keys,
            "from_version": existing["chart_version"].lstrip("v") if live is not None and existing else None,
            "nodes": nodes, "chosen": chosen, "label": (lkey, lval), "runtime_class": runtime_class, "key": key,
            "tag": tag, "image": f"{image}:{tag}", "registry": registry}


def nodes_default_runtime(ctx: StepContext, context: str) -> str:
    """The default runtime of the GPU nodes' containerd, where the nodes tell it: known only for
    nodes that are this host (their distribution's containerd config and its drop-ins); else
    "unknown" (a remote node's config cannot be read from here)."""
    nodes = O.cluster_nodes(ctx, context)
    gpu = [n for n in nodes if n.get("gpu_present")] or nodes
    if not gpu or not all(n.get("this_host") for n in gpu):
        return "unknown: not this host"
    found = "runc"
    for _, text in O.local_containerd_configs(ctx, O.distribution(gpu)):
        m = re.search(r"""default_runtime_name\s*=\s*['"]([^'"]+)['"]""", text)
        if m:
            found = m.group(1)  # a later drop-in wins, as containerd merges them
    return found


def selector_key(version: str) -> str:
    """The values key of the device plugin's node selector in HAMi ``version``."""
    return "devicePlugin.nvidiaNodeSelector" if V.at_least(version, SELECTOR_KEY_FROM) else "devicePlugin.nvidianodeSelector"


def cannot(version: str) -> list[str]:
    """What HAMi ``version`` cannot do that the pinned release can (from the real charts)."""
    out = []
    if not V.at_least(version, SPLIT_FROM):
        out.append("a split count other than 10 (hard-coded)")
        out.append("a kube-scheduler tag of your choice (it uses the cluster's version)")
    if not V.at_least(version, TOOLKIT_READY_FROM):
        out.append("wait for the gpu-operator's toolkit before its device plugin starts (gpuOperatorToolkitReady)")
    return out or ["nothing gpuwizard sets"]


def adopted_registry(values: dict[str, Any]) -> str:
    """The kube-scheduler registry an installed release's user values give (the chart's Aliyun default
    when they set none), under either version's keys."""
    flat = K.flatten(values)
    if isinstance(flat.get("scheduler.kubeScheduler.image.registry"), str):
        return str(flat["scheduler.kubeScheduler.image.registry"])
    whole = flat.get("scheduler.kubeScheduler.image")
    if isinstance(whole, str) and "/" in whole:
        return whole.rsplit("/", 2 if whole.endswith(ALIYUN_REPOSITORY) else 1)[0]
    return ALIYUN_REGISTRY


def adopted_image(values: dict[str, Any], cv: K.ChartVersion) -> str:
    """The kube-scheduler image (without its tag) an installed release's values give on chart ``cv``:
    its own registry and repository (or whole image string before 2.7), else the chart's default."""
    effective: dict[str, Any] = HV.coalesce(values, cv.tree)
    image = ((effective.get("scheduler") or {}).get("kubeScheduler") or {}).get("image")
    if isinstance(image, dict):
        return "/".join(str(p) for p in (image.get("registry"), image.get("repository")) if p)
    return str(image or f"{ALIYUN_REGISTRY}/{ALIYUN_REPOSITORY}")  # before 2.7: the whole name, its tag apart


def scheduler_image(ex: K.Explained, registry: str, version: str, new_key: bool) -> str:
    """Set the kube-scheduler image's registry (hami.scheduler_registry) under the keys the chart
    version reads; the image without its tag. The chart's own Aliyun image sets nothing."""
    if registry == ALIYUN_REGISTRY:
        return f"{ALIYUN_REGISTRY}/{ALIYUN_REPOSITORY}"
    image = f"{registry}/{SCHEDULER_REPOSITORY}"
    why = (f"hami.scheduler_registry: the kube-scheduler image comes from {registry} ({image}); the chart's default "
           f"{ALIYUN_REGISTRY}/{ALIYUN_REPOSITORY} is slow or unreachable outside China")
    if new_key:
        ex.set("scheduler.kubeScheduler.image.registry", registry, why)
        ex.set("scheduler.kubeScheduler.image.repository", SCHEDULER_REPOSITORY,
               f"{registry} serves the image as {SCHEDULER_REPOSITORY} (the chart's {ALIYUN_REPOSITORY} is the Aliyun "
               f"mirror's path)")
    else:
        ex.set("scheduler.kubeScheduler.image", image, why + f"; HAMi {version} (before 2.7.0) reads the whole image "
               "name from scheduler.kubeScheduler.image")
    return image


def node_items(ctx: StepContext, context: str) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in K.nodes(ctx, context) or []}


def capacity(node: dict[str, Any]) -> int | None:
    v = node.get("status", {}).get("capacity", {}).get("nvidia.com/gpu")
    return int(v) if v is not None and str(v).isdigit() else None


def expected(r: dict[str, Any], a: HamiAnswers, node: str, item: dict[str, Any] | None) -> int | None:
    count = physical_gpus(r, node, item)
    return None if count is None else count * a.split_count


def plugin_pods(ctx: StepContext, r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """node -> HAMi device-plugin pod: the newest one not being deleted (a rolling DaemonSet has the
    old pod terminating beside the new one)."""
    out: dict[str, dict[str, Any]] = {}
    for p in K.pods(ctx, r["context"], r["namespace"]) or []:
        meta = p["metadata"]
        if "device-plugin" in meta["name"] and meta["name"].startswith(r["release"]) and not meta.get("deletionTimestamp"):
            node = p.get("spec", {}).get("nodeName")
            seen = out.get(node)
            if seen is None or str(meta.get("creationTimestamp") or "") >= str(seen["metadata"].get("creationTimestamp") or ""):
                out[node] = p
    return out


# HAMi's device plugin patches its node's GPUs onto this annotation every 30 s (register.go, v2.4.0-v2.10.0),
# and HAMi's scheduler places pods from it (parsers.parse_hami_registration reads both formats)
NO_DEVICES = "No devices found. Waiting indefinitely."  # cmd/device-plugin/nvidia/main.go: it never looks again
STALE_AFTER = 90.0  # seconds a Running device plugin gets to register (three of its 30 s rounds)
STALE_FIX = "a new pod is the fix"  # in a failure's text: waiting will not mend it (verify waits no longer)


def registration(item: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The GPUs HAMi's device plugin registered on a node (its annotation, either format); None: none."""
    return parse_hami_registration((item.get("metadata", {}).get("annotations") or {}).get(REGISTER_ANNOTATION))


def registration_problem(item: dict[str, Any], gpus: int | None, split: int) -> str | None:
    """What is wrong with a node's HAMi registration for ``gpus`` GPUs split ``split`` ways; None: fine."""
    reg = registration(item)
    if reg is None:
        return f"HAMi has no registration of its GPUs (no readable {REGISTER_ANNOTATION} annotation)"
    if gpus is not None and len(reg) != gpus:
        return f"HAMi's registration lists {len(reg)} GPU(s), the node has {gpus}"
    wrong = [d for d in reg if d["count"] != split]
    if wrong:
        return f"HAMi's registration gives {wrong[0]['id']} {wrong[0]['count']} vGPUs, expected {split}"
    sick = [d["id"] for d in reg if not d["health"]]
    if sick:
        return f"HAMi's registration marks {', '.join(sick)} unhealthy"
    return None


def physical_gpus(r: dict[str, Any], node: str, item: dict[str, Any] | None) -> int | None:
    count = r["nodes"].get(node)
    if count is None and item is not None:
        label = item.get("metadata", {}).get("labels", {}).get("nvidia.com/gpu.count")
        count = int(label) if label and label.isdigit() else None
    return None if count is None else int(count)


def running_for(pod: dict[str, Any]) -> float | None:
    """Seconds since the pod's containers last started (the latest ``state.running.startedAt``)."""
    starts = [((cs.get("state") or {}).get("running") or {}).get("startedAt")
              for cs in pod.get("status", {}).get("containerStatuses") or []]
    try:
        latest = max(datetime.fromisoformat(str(t).replace("Z", "+00:00")).timestamp() for t in starts if t)
    except ValueError:
        return None
    return max(0.0, time.time() - latest)


def stale_plugins(ctx: StepContext, r: dict[str, Any], a: HamiAnswers) -> list[tuple[str, str, str]]:
    """(node, pod, why) of each HAMi device plugin that runs and is ready, yet has not registered its
    node's vGPUs and will not by waiting: it found no GPU when it started (after a reboot, before the
    driver was loaded: HAMi#136, #713), or its node still advertises the physical GPU count (HAMi#736).
    Restarting the pod is the upstream fix. Not while the operator's device plugin runs too (then both
    advertise nvidia.com/gpu: a setting to change, not a pod to restart)."""
    op = r["operator"]
    if op and op.get("plugin") and not op.get("planned"):
        return []
    items = node_items(ctx, r["context"])
    plugins = plugin_pods(ctx, r)
    others: dict[str, list[str]] | None = None
    out = []
    for node in r["nodes"]:
        item, pod = items.get(node), plugins.get(node)
        if item is None or pod is None or K.pod_problem(pod):
            continue
        if others is None:
            others = {} if r["on_kind"] else O.other_plugins(O.cluster_nodes(ctx, r["context"]))
        if node in others:
            continue  # NVIDIA's own device plugin advertises there too: a new HAMi pod would not change that
        gpus = physical_gpus(r, node, item)
        have = capacity(item)
        want = None if gpus is None else gpus * a.split_count
        problem = registration_problem(item, gpus, a.split_count)
        if problem is None and have is not None and have > 0 and (want is None or have == want):
            continue
        name = pod["metadata"]["name"]
        log = plugin_log(ctx, r, name)
        age = running_for(pod)
        if any(NO_DEVICES in line for line in log):
            out.append((node, name, f'it found no GPU when it started ("{NO_DEVICES}": the driver was not loaded yet) '
                                    "and never looks again"))
        elif age is not None and age >= STALE_AFTER:
            if have is not None and gpus and a.split_count > 1 and have == gpus:
                why = (f"the node advertises nvidia.com/gpu = {have}, its physical GPU count, instead of the {want} "
                       "vGPUs HAMi registers")
            else:
                why = f"Running for {age:.0f}s without registering: {problem or f'nvidia.com/gpu = {have}'}"
            out.append((node, name, why))
    return out


def restart_stale(ctx: StepContext, r: dict[str, Any], a: HamiAnswers) -> None:
    """Delete each stale device-plugin pod once per node and boot (its DaemonSet starts a new one);
    what was done is noted and kept in the state file (``restarts`` of the step)."""
    boots = K.node_boots(ctx, r["context"])
    done = ctx.state.step(ctx.step_id).setdefault("restarts", [])
    for node, pod, why in stale_plugins(ctx, r, a):
        boot = boots.get(f"node {node}")
        if not boot or any(x.get("node") == node and x.get("boot") == boot for x in done):
            continue  # once per node and boot (a boot that cannot be read: not at all)
        ctx.note(f"restarting HAMi's device plugin on node {node}: {pod} runs, but {why}")
        done.append({"node": node, "pod": pod, "why": why, "boot": boot, "at": time.time()})
        ctx.state.save()  # before the delete: an interrupted run does not restart it again
        ctx.host.runner.run(K.kubectl(r["context"], "delete", "pod", "-n", r["namespace"], pod, "--ignore-not-found"),
                            timeout=120, check=True)


def restarts_this_boot(ctx: StepContext, r: dict[str, Any]) -> list[dict[str, Any]]:
    boots = K.node_boots(ctx, r["context"])
    return [x for x in ctx.state.step(ctx.step_id).get("restarts") or []
            if x.get("boot") and boots.get(f"node {x.get('node')}") == x["boot"]]


def waits(r: dict[str, Any], a: HamiAnswers) -> list[A.Action]:
    """HAMi's scheduler up, then every GPU node registered (a stale device plugin restarted once)."""
    return [
        K.Poll("scheduler-pods", f"HAMi's scheduler ({r['release']}-scheduler, image {r['image']}) is Running",
               lambda c: scheduler_report(c, r, False)[0], timeout=300, interval=K.POLL,
               describe=lambda c: scheduler_report(c, r, True)[1]),
        K.Poll("capacity", f"each labelled node registers its GPUs with HAMi ({REGISTER_ANNOTATION}) and advertises "
               f"GPUs × {a.split_count} as nvidia.com/gpu",
               lambda c: capacity_report(c, r, a, False)[0], timeout=600, interval=K.POLL,
               describe=lambda c: capacity_report(c, r, a, True)[1],
               remedy=lambda c: restart_stale(c, r, a),
               remedy_preview=[f"a device-plugin pod that stays Running without registering (\"{NO_DEVICES}\" after a "
                               "reboot, HAMi#713; the physical GPU count, HAMi#736) is restarted, once per node and boot:",
                               "$ " + join_argv(K.kubectl(r["context"], "delete", "pod", "-n", r["namespace"],
                                                            f"<{r['release']}-device-plugin pod of that node>"))]),
    ]


def plugin_log(ctx: StepContext, r: dict[str, Any], pod: str) -> list[str]:
    res = ctx.host.runner.probe(K.kubectl(r["context"], "logs", "-n", r["namespace"], pod, "--tail", "8"))
    return (res.stdout + res.stderr).strip().splitlines()[-8:] if res is not None else []


def capacity_report(ctx: StepContext, r: dict[str, Any], a: HamiAnswers, final: bool) -> tuple[bool, str]:
    """(all nodes advertise what they should, the explanation when not). Raises for a plugin that
    crash-loops (waiting will not fix it)."""
    items = node_items(ctx, r["context"])
    if not r["nodes"]:
        return False, f"no GPU node to check in {r['context']} ({r['chosen']}: none yet)"
    plugins = None
    wrong = []
    for node in r["nodes"]:
        item = items.get(node)
        want = expected(r, a, node, item)
        have = capacity(item) if item else None
        unregistered = registration_problem(item, physical_gpus(r, node, item), a.split_count) if item else None
        if item is not None and have is not None and have > 0 and not unregistered and \
                (have == want or (want is None and have % a.split_count == 0)):
            continue
        plugins = plugins if plugins is not None else plugin_pods(ctx, r)
        pod = plugins.get(node)
        problem = K.pod_problem(pod) if pod else None
        lkey, lval = r["label"]
        labels = (item or {}).get("metadata", {}).get("labels", {})
        causes = []
        if unregistered and pod is not None and not problem:
            causes.append(f"registration: {unregistered}")
        if labels.get(lkey) != lval:
            causes.append(f"label: the node lacks {lkey}={lval}, so HAMi's device plugin does not run there")
        explain = final or bool(problem and K.definitive(problem))
        if pod is None:
            unscheduled = plugin_selector_problem(ctx, r, list(items.values())) if final else None
            causes.append(f"plugin pods: {unscheduled}" if unscheduled else
                          f"plugin pods: no {r['release']}-device-plugin pod on {node} "
                          f"(check the daemonset's nodeSelector and taints)")
        elif problem:
            causes.append("plugin pods: " + (K.explain_pod(ctx, r["context"], r["namespace"], pod, problem) if explain
                                             else f"{pod['metadata']['name']} is {problem}"))
        op = r["operator"]
        if op and not r["runtime_class"]:
            causes.append("runtime class: HAMi's device plugin runs without runtimeClassName nvidia; needed when the "
                          "operator uses CDI (>= 25.10) or nvidia is not the default runtime")
        if op and op.get("plugin"):
            causes.append(f"the operator's device plugin is on too (release {op['release']}): both advertise nvidia.com/gpu")
        if not r["on_kind"]:
            other = O.other_plugins([n for n in O.cluster_nodes(ctx, r["context"]) if n.get("name") == node]).get(node)
            if other:
                causes.append(f"NVIDIA's device plugin runs there too ({', '.join(other)}): both advertise "
                              "nvidia.com/gpu, and the node shows whichever registered last (HAMi#829); uninstall it")
        msg = (f"node {node}: nvidia.com/gpu = {have if have is not None else 'absent'}, expected "
               f"{want if want is not None else f'a multiple of {a.split_count}'}")
        if causes:
            msg += "; likely causes: " + "; ".join(causes)
        if pod is not None:
            log = plugin_log(ctx, r, pod["metadata"]["name"])
            if log:
                msg += f"\n  last lines of {pod['metadata']['name']}:\n    " + "\n    ".join(log)
            stale = [why for n, _, why in stale_plugins(ctx, r, a) if n == node] if final or any(NO_DEVICES in x for x in log) else []
            if stale:
                msg += (f"\n  {pod['metadata']['name']} runs, but {stale[0]}: {STALE_FIX} (the hami step restarts it "
                        f"once per boot; by hand: kubectl delete pod -n {r['namespace']} {pod['metadata']['name']})")
        wrong.append(msg)
        if problem and K.definitive(problem):
            raise StepFailed("HAMi's device plugin is failing, so the node never gets its vGPUs:\n  " + msg)
    return (not wrong), "\n  ".join(wrong)


def plugin_selector_problem(ctx: StepContext, r: dict[str, Any], items: list[dict[str, Any]]) -> str | None:
    """Why HAMi's device-plugin DaemonSet runs nowhere, from the cluster's own view: its nodeSelector
    against the nodes' labels (``kubectl get daemonsets -o json``, ``kubectl get nodes -o json``)."""
    for ds in K.daemonsets(ctx, r["context"], r["namespace"]) or []:
        name = str(ds.get("metadata", {}).get("name", ""))
        if name.startswith(r["release"]) and "device-plugin" in name:
            return K.selector_problem(ds, items)
    return None


def scheduler_report(ctx: StepContext, r: dict[str, Any], final: bool) -> tuple[bool, str]:
    """(HAMi's scheduler pods are Running and ready, what is wrong when not); raises for a state that
    waiting will not fix (an invalid or missing image)."""
    items = K.pods(ctx, r["context"], r["namespace"])
    if items is None:
        return False, f"the API server of context {r['context']} does not answer"
    mine = [p for p in items if p["metadata"]["name"].startswith(f"{r['release']}-scheduler")]
    if not mine:
        return False, f"no {r['release']}-scheduler pod in {r['namespace']} yet"
    bad = [(p, why) for p in mine if (why := K.pod_problem(p))]
    fatal = [(p, why) for p, why in bad if K.definitive(why)]
    if fatal or (bad and final):
        text = "\n    ".join(K.explain_pod(ctx, r["context"], r["namespace"], p, why) for p, why in (fatal or bad))
        pulls = "ImagePull" in text or "ErrImagePull" in text or "InvalidImageName" in text
        hint = (f"\n  its image is {r['image']}: check that the nodes reach {r['registry']}, or set "
                f"hami.scheduler_registry to a registry they reach" if pulls else "")
        if fatal:
            raise StepFailed(f"HAMi's scheduler is failing:\n    {text}{hint}")
        return False, f"HAMi's scheduler is not ready:\n    {text}{hint}"
    return not bad, ""


def capacity_block(item: dict[str, Any]) -> str:
    """The node's capacity the way the seed shows it (kubectl get node -oyaml | grep capacity -A 7)."""
    cap = item.get("status", {}).get("capacity", {})
    lines = ["  capacity:"]
    for k in sorted(cap):
        v = str(cap[k])
        lines.append(f"    {k}: " + (f'"{v}"' if v.isdigit() else v))
    return "\n".join(lines)


# -- the step's section of the answer file --------------------------------------------------------
class HamiAnswers(Section):
    namespace: K8sName = "kube-system"
    release: K8sName = "hami"
    chart_version: Version | None = None
    split_count: int = Field(10, ge=1, le=100)
    memory_scaling: float = Field(1.0, gt=0, le=100)
    core_scaling: float = Field(1.0, gt=0, le=100)
    node_label: NodeLabel = "gpu=on"
    nodes: list[K8sName] | None = None
    chart_keys_unchecked: bool = Field(
        False, description="Go ahead with a chart_version gpuwizard has no key data for: its values are written with the "
        "nearest known release's keys, unchecked.")
    scheduler_registry: str = Field(
        "registry.k8s.io", description="Registry of HAMi's kube-scheduler image (registry.k8s.io/kube-scheduler); "
        f"{ALIYUN_REGISTRY} is the chart's default ({ALIYUN_REGISTRY}/{ALIYUN_REPOSITORY}, slow or unreachable outside "
        "China); a mirror serves it as <registry>/kube-scheduler.")
    verify_sharing: bool = Field(
        True, description="Prove that sharing works: two pods of 1 vGPU, 3000 MiB and 30% of the cores each must "
        "run on one physical GPU and each see 3000 MiB in nvidia-smi; then they are deleted (skipped, with the "
        "reason, where the cluster cannot host them).")

    @field_validator("scheduler_registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value.startswith(("http://", "https://")) or not REGISTRY_RE.match(value):
            raise ValueError("expected a registry host, optionally with :port and a path (registry.k8s.io, "
                             "harbor.example.com:5000/k8s), without a scheme")
        return value


class HamiStep(Step[HamiAnswers]):
    id = "hami"
    title = "HAMi GPU sharing"
    pins = ("chart_version",)  # a replay installs the release this session installed or adopted
    facts_shown = ("kubernetes", "gpu_operator", "hami")
    link = ("Pod spec builder ▸", "podspec")
    Answers = HamiAnswers

    def plan(self, ctx: StepContext, a: HamiAnswers) -> list[A.Action]:
        acts: list[A.Action] = K.tool_actions(ctx, ["kubectl", "helm"])
        try:
            r = resolve(ctx, a)
        except StepFailed as exc:
            return acts + [A.Fail("hami-plan", "plan the HAMi install", str(exc))]
        for note in r["plan_notes"]:
            ctx.decide(note)
        context, ns, release, version = r["context"], r["namespace"], r["release"], r["version"]
        ctx.plan_data.update(chart_version=version, release=release, namespace=ns)
        if V.at_least(version, SPLIT_FROM):
            ctx.decide(f"HAMi {version}: the kube-scheduler tag {r['tag']} goes under {r['key']} "
                       f"({'2.7.0 and later' if r['key'].endswith('image.tag') else 'before 2.7.0'})")
        else:
            ctx.decide(f"HAMi {version}: the chart sets the kube-scheduler tag to the cluster's version itself "
                       f"({r['tag']}); nothing is set for it")
        ctx.decide(f"HAMi's kube-scheduler image: {r['image']} (registry {r['registry']}"
                   + (", the chart's default" if r["registry"] == ALIYUN_REGISTRY else
                      f"; the chart's default registry {ALIYUN_REGISTRY} is available by setting it") + ")")
        op = r["operator"]
        if op is not None and not op["planned"] and op["plugin"]:
            opv = op.get("values") or {}
            target = K.merge(opv, {"devicePlugin": {"enabled": False}})
            acts += K.helm_repo_actions(ctx, "gpu-operator")
            acts.append(K.Cmd("operator-plugin-off", f"the gpu-operator's device plugin is off (release {op['release']}): "
                              "HAMi's plugin advertises nvidia.com/gpu instead",
                              K.helm(context, "upgrade", op["release"], K.chart_ref(ctx, "gpu-operator", op["version"]), "--namespace",
                                     op["namespace"], "--version", op["version"], "--reuse-values", "--set",
                                     "devicePlugin.enabled=false"),
                              lambda c: K.release_matches(c, context, op["release"], op["namespace"], "gpu-operator",
                                                          op["version"], target)).with_changes(
                                  HelmRelease(context, op["release"], op["namespace"])))
        acts += K.helm_repo_actions(ctx, CHART)
        lkey, lval = r["label"]
        for node in r["nodes"]:
            def labelled(c: StepContext, node: str = node) -> bool:
                item = node_items(c, context).get(node)
                if not item:
                    return False
                return bool(item["metadata"].get("labels", {}).get(lkey) == lval)

            acts.append(K.Cmd(f"label-{node}", f"node {node} is labelled {a.node_label} ({r['chosen']})",
                              K.kubectl(context, "label", "node", node, f"{lkey}={lval}", "--overwrite"),
                              labelled).with_changes(Label(context, "node", node, lkey)))
        path = f"{K.WORKDIR}/helm/{release}-values.yaml"
        cv = r["chart"]
        header = [f"HAMi {version} values written by gpuwizard for release {release} in {ns} ({context}).",
                  f"Only values that differ from the chart's defaults are set, plus the scheduler image tag; keys "
                  f"of hami {cv.documented}'s own values.yaml (gpuwizard/assets/charts/keys/hami-{cv.documented}.json)."]
        if r["kept"]:
            header.append(f"Release {release} is installed (chart {r['from_version']}): its own values are kept below, "
                          "since `helm upgrade --values` resets every value the file does not hold.")
        content = K.render_values(r["values"], r["notes"], header)
        acts.append(K.write(path, content, f"Helm values {path}", "hami-values"))
        repo_name, _ = K.repo(CHART)
        values = r["values"]
        acts += K.cluster_images(ctx, context, images.hami_images(version, HV.coalesce(values, cv.tree), r["image"]),
                                 on_kind=r["on_kind"])
        done = lambda c: K.release_matches(c, context, release, ns, CHART, version, values)  # noqa: E731
        if not K.from_bundle(ctx, CHART):
            acts.append(K.Cmd("helm-update", f"refresh the {repo_name} chart index", ["helm", "repo", "update", repo_name], done))
        details: Callable[[StepContext], list[str]] | None = None
        if r["live"] is not None:
            def live_details(c: StepContext) -> list[str]:
                return K.live_change(c, context, release, ns, r["from_version"], cv, values)
            details = live_details
        acts.append(K.Cmd("helm-install", f"HAMi {version} installed as {release} in {ns}",
                          K.helm(context, "upgrade", "--install", release, K.chart_ref(ctx, CHART, version), "--namespace", ns,
                                 "--version", version, "--values", K.hp(ctx, path)), done, timeout=900,
                          details=details).with_changes(HelmRelease(context, release, ns)))
        acts += waits(r, a)
        op_answers = ctx.answers(OperatorStep)
        if op is not None and op["planned"] and not op["plugin"] and (op_answers is None or op_answers.verify):
            acts += K.vectoradd_actions(ctx, context, self.id, on_kind=r["on_kind"])
        acts += SH.actions(ctx, a, r, self.id)  # hami.verify_sharing: two pods on one GPU (steps/sharing.py)
        return acts

    def prefetch(self, ctx: StepContext, a: HamiAnswers) -> list[list[str]]:
        context = prefetch_context(ctx)
        if context is None:
            return []
        out = [*K.release_prefetch(ctx, context, CHART, a.namespace), K.vectoradd_pod_argv(context)]
        if ctx.answers(OperatorStep) is None:  # the installed operator's values decide its device plugin
            out += K.release_prefetch(ctx, context, "gpu-operator", a.namespace)[5:]
        if a.verify_sharing:
            out.append(SH.get_argv(context))
            shared = K.peek_json(ctx, SH.get_argv(context))
            out += [SH.exec_argv(context, p["metadata"]["name"]) for p in (shared or {}).get("items") or []
                    if isinstance(shared, dict) and (p.get("status") or {}).get("phase") == "Running"]
        return out

    def boots(self, ctx: StepContext, a: HamiAnswers) -> dict[str, str]:
        context, _ = target_context(ctx)
        return K.node_boots(ctx, context) if context else {}

    def settle(self, ctx: StepContext, a: HamiAnswers) -> list[A.Action]:
        return waits(resolve(ctx, a), a)

    def verify(self, ctx: StepContext, a: HamiAnswers) -> str:
        r = resolve(ctx, a)
        if not K.release_matches(ctx, r["context"], r["release"], r["namespace"], CHART, r["version"], r["values"]):
            raise StepFailed(f"HAMi release {r['release']} in {r['namespace']} is not deployed with the planned chart "
                             f"{r['version']} and values")
        ok, why = capacity_report(ctx, r, a, True)
        if not ok:
            raise StepFailed(why)
        items = node_items(ctx, r["context"])
        parts = []
        for node in r["nodes"]:
            item = items[node]
            have = capacity(item)
            ctx.note(f"{node}\n{capacity_block(item)}")
            gpus = have // a.split_count if have else 0
            reg = registration(item) or []
            parts.append(f'{node}: nvidia.com/gpu: "{have}" ({gpus} GPU × {a.split_count}, {len(reg)} registered with HAMi)')
        for x in restarts_this_boot(ctx, r):
            parts.append(f"restarted {x['pod']} on {x['node']} ({x['why']})")
        seen = SH.seen_text(ctx, a, r)
        return f"HAMi {r['version']} (release {r['release']} in {r['namespace']}): " + "; ".join(parts) \
            + (f"; {seen}" if seen else "")
