"""Step ``operator``: NVIDIA gpu-operator through Helm, with the values the cluster and the plan call for.

``auto`` answers are derived from the target's facts, and the values file says why for each value:
* driver container: always off on Kind (a node container cannot load kernel modules); on an existing
  cluster, from its GPU nodes (``kubectl get nodes``: GPU Feature Discovery's driver labels, the
  operator's pre-installed mark, or — for a node that is this host — the host's driver); on where no
  node fact shows one (the operator skips nodes where it finds a driver);
* toolkit container: on for Kind (it installs the NVIDIA runtime into the node's containerd, as in
  the seed recipe); on an existing cluster, off only where the GPU nodes are this host and its
  distribution's containerd already has the nvidia runtime; for k3s and RKE2 its ``toolkit.env``
  says where their containerd lives;
* device plugin: off when HAMi is installed too (both advertise ``nvidia.com/gpu``); CDI off beside HAMi.
The release is checked against the cluster's Kubernetes (gpuwizard/assets/compat.yaml); an installed
release is adopted with its own values kept, and upgraded one release line at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from .. import actions as A
from .. import compat as C
from .. import helm_values as HV
from .. import images
from .. import versions as V
from ..detect import nodes_facts
from ..engine import Step, StepContext
from ..errors import PlanRefused, StepFailed
from ..journal import HelmRelease, Label, Namespace
from ..parsers import normalize_kube_version, parse_kube_version_json
from ..validate import Auto, K8sName, Section, Version
from . import kube as K
from .kind import DEFAULT_NODE_IMAGE, kind_cluster_plan, prefetch_context, target_context

CHART = "gpu-operator"
PSA = "pod-security.kubernetes.io/enforce"


def server_version(ctx: StepContext, context: str) -> tuple[str | None, str]:
    """(version, where it came from)."""
    result = ctx.host.runner.probe(K.kubectl(context, "version", "-o", "json"))
    parsed = parse_kube_version_json(result.stdout) if result is not None else None
    if parsed and parsed.server:
        return parsed.server, f"kubectl version -o json on {context}"
    kind = kind_cluster_plan(ctx)
    if kind is not None:
        image = kind.node_image or DEFAULT_NODE_IMAGE
        tag = image.split("@", 1)[0].rsplit(":", 1)[-1]
        return tag, f"the Kind node image {image.split('@', 1)[0]} (the cluster does not exist yet)"
    return None, ""




def _v(version: str) -> str:
    return version if version.startswith("v") else "v" + version


def choose_version(ctx: StepContext, a: OperatorAnswers, existing: dict[str, Any] | None, kube: str | None,
                   kube_source: str) -> tuple[str, list[str], list[str]]:
    """(the chart release to end on, the hops before it, notes). The pin for a new install; an
    installed release older than the pin is upgraded to it one major (YY.MM line) at a time; the
    target is checked against the cluster's Kubernetes (gpuwizard/assets/compat.yaml). Where the pin
    does not support that Kubernetes and no chart_version was asked for, the newest known release
    that does is taken instead."""
    pin = K.pinned(CHART)
    known = K.known_versions(CHART)
    notes: list[str] = []
    installed = _v(existing["chart_version"]) if existing else None
    if a.chart_version:
        target = _v(a.chart_version)
    elif installed and V.compare(installed, pin) >= 0:
        target = installed
    else:
        target = pin
    if kube:
        refused = [f for f in C.operator_kubernetes(target, kube) if f.level == "refuse"]
        if refused and a.chart_version:
            raise PlanRefused(f"operator.chart_version: {refused[0].text}")
        if refused:
            floor = installed or known[0]
            fits = [v for v in known if V.compare(v, floor) >= 0
                    and not any(f.level == "refuse" for f in C.operator_kubernetes(v, kube))]
            what = "gpuwizard's pin" if target == pin else "the installed release"
            if fits:
                best = max(fits, key=V.key)
                notes.append(f"gpu-operator {target} ({what}) does not support Kubernetes {kube} ({refused[0].row}); "
                             f"taking {best}, the newest release gpuwizard knows that does")
                target = best
            elif installed:
                notes.append(f"the installed gpu-operator {installed} is kept: {refused[0].text}; no release gpuwizard "
                             "knows supports this Kubernetes and is not older than it")
                target = installed
            else:
                raise StepFailed(f"no gpu-operator release gpuwizard knows supports the cluster's Kubernetes {kube} "
                                 f"({kube_source}): {refused[0].text}")
        for f in C.operator_kubernetes(target, kube):
            if f.level == "warn":
                notes.append(f.text)
    hops: list[str] = []
    if installed and V.compare(installed, target) < 0:
        try:
            path = C.operator_upgrade_path(installed, target, known)
        except ValueError as exc:
            raise StepFailed(f"cannot upgrade the installed gpu-operator {installed} to {target}: {exc}") from None
        hops = path[:-1]
        helm_version = ((ctx.facts.get("tools") or {}).get("helm") or "")
        if hops and helm_version and not V.at_least(helm_version, "3.14"):
            raise StepFailed(f"upgrading gpu-operator {installed} one release line at a time needs helm 3.14 or later "
                             f"(helm upgrade --reset-then-reuse-values); this host has helm {helm_version}")
        notes.append(f"upgrading the installed gpu-operator {installed} to {target}"
                     + (f" one major at a time: {' → '.join([installed, *path])}" if hops else "")
                     + (f" (set operator.chart_version: {installed} to keep it)" if not a.chart_version else ""))
        for hop in hops if kube else []:
            notes += [f"upgrade hop {hop}: {f.text} — the hop is still taken (NVIDIA's upgrade rule: one major at "
                      "a time), and runs only until the next one" for f in C.operator_kubernetes(hop, kube or "")
                      if f.level == "refuse"]
    elif installed and V.compare(installed, target) > 0:
        raise PlanRefused(f"operator.chart_version: {target} is older than the installed gpu-operator {installed}; "
                          "gpuwizard does not downgrade a release")
    return target, hops, notes


def hami_planned(ctx: StepContext, context: str | None) -> bool:
    """HAMi is part of this session (decided from every answer of it, whichever step is planned
    first), or already installed in the cluster."""
    if ctx.in_session("hami"):
        return True
    return bool(context and K.find_release(K.releases(ctx, context), "hami"))


def resolve(ctx: StepContext, a: OperatorAnswers) -> dict[str, Any]:
    """Everything the plan needs: context, release, chart version, values with reasons."""
    context, on_kind = target_context(ctx)
    if context is None:
        raise StepFailed("no Kubernetes cluster to install into: add a kind: section (a Kind cluster, or "
                         "kind: {existing_context: NAME} for your own cluster)")
    existing = K.find_release(K.releases(ctx, context), CHART)
    release, namespace = a.release, a.namespace
    notes: list[str] = []
    if existing and "release" not in a.model_fields_set:
        release, namespace = existing["release"], existing["namespace"]
        notes.append(f"adopting the installed gpu-operator release {release} in {namespace}")
    adopted = existing if existing and (existing["release"], existing["namespace"]) == (release, namespace) else None
    server, kube_source = server_version(ctx, context)
    kube = normalize_kube_version(server) if server else None
    version, hops, version_notes = choose_version(ctx, a, adopted, kube, kube_source)
    notes += version_notes
    cv = K.chart_version(CHART, version, unchecked=a.chart_keys_unchecked)
    if not cv.checked:
        notes.append(f"operator.chart_keys_unchecked: gpu-operator {version} is not a release gpuwizard has data for; "
                     f"its values are checked against {cv.documented}'s keys only as warnings")
    facts = ctx.facts
    host_driver = facts.get("driver")
    ex = K.Explained()
    live = K.release_values(ctx, context, release, namespace) or {} if adopted is not None else None
    live_flat = K.flatten(live or {})

    nodes = [] if on_kind else cluster_nodes(ctx, context)
    gpu_nodes = [n for n in nodes if n.get("gpu_present")] or [n for n in nodes if not n.get("taints")]
    local = bool(gpu_nodes) and all(n.get("this_host") for n in gpu_nodes)
    names = ", ".join(str(n.get("name")) for n in gpu_nodes) or "none"
    if a.driver_enabled == "auto":
        if on_kind:
            driver = False
            why = "auto: off — a Kind node is a container and cannot load the NVIDIA kernel module" + (
                f"; the host's driver {host_driver['version']} serves it" if host_driver else "")
        elif live is not None and live_flat.get("driver.enabled", True) is not False:
            driver, why = True, (f"auto: on — the installed release {release} manages the nodes' drivers "
                                 "(turning it off would remove the driver from the GPU nodes)")
        elif gpu_nodes and all(n.get("driver") == "pre-installed" for n in gpu_nodes):
            driver, why = False, ("auto: off — the gpu-operator found a driver it did not install on every GPU node "
                                  f"(nvidia.com/gpu.deploy.driver=pre-installed: {names})")
        elif local and host_driver:
            driver, why = False, (f"auto: off — the GPU node {names} is this host, which runs NVIDIA driver "
                                  f"{host_driver['version']}")
        elif local:
            driver, why = True, f"auto: on — the GPU node {names} is this host, which has no NVIDIA driver"
        else:
            driver, why = True, (f"auto: on — no node fact shows a driver on the GPU nodes ({names}: no GPU Feature "
                                 "Discovery labels, not this host): the operator manages their drivers (it skips "
                                 "nodes where it finds one pre-installed)")
    else:
        driver, why = a.driver_enabled, f"set in the answer file (driver_enabled: {str(a.driver_enabled).lower()})"
        if driver and on_kind:
            raise StepFailed("operator.driver_enabled: true cannot work on Kind: a node container cannot load kernel "
                             "modules; use the host driver (driver_enabled: auto)")
    whys = {"driver container": (driver, why)}
    if driver != cv.defaults.get("driver.enabled", True):
        ex.set("driver.enabled", driver, why)

    dist = distribution(gpu_nodes or nodes)
    if a.toolkit_enabled == "auto":
        if on_kind:
            toolkit, why = True, "auto: on — the toolkit container installs the NVIDIA runtime into the Kind node's containerd"
        elif local and (have := node_runtime_config(ctx, dist)) is not None:
            toolkit, why = False, (f"auto: off — the GPU node {names} is this host, whose {dist} containerd already has "
                                   f"the nvidia runtime ({have})")
        else:
            runtimes = ", ".join(f"{n.get('runtime') or '?'} on {n['name']}" for n in gpu_nodes) or "the nodes' runtime"
            toolkit, why = True, (f"auto: on — the operator's toolkit installs the NVIDIA runtime into the nodes' "
                                  f"containerd ({runtimes})")
    else:
        toolkit, why = a.toolkit_enabled, f"set in the answer file (toolkit_enabled: {str(a.toolkit_enabled).lower()})"
    whys["toolkit container"] = (toolkit, why)
    if toolkit != cv.defaults.get("toolkit.enabled", True):
        ex.set("toolkit.enabled", toolkit, why)

    with_hami = hami_planned(ctx, context)
    others = other_plugins(gpu_nodes)
    if a.device_plugin == "auto":
        if with_hami:
            plugin, why = False, "auto: off — HAMi brings its own device plugin; both advertise nvidia.com/gpu"
        elif others and len(others) == len(gpu_nodes):
            plugin, why = False, ("auto: off — NVIDIA's device plugin already advertises nvidia.com/gpu on every GPU "
                                  "node (" + "; ".join(f"{n}: {', '.join(p)}" for n, p in others.items()) + ")")
        else:
            plugin, why = True, "auto: on — no HAMi: the operator's device plugin advertises nvidia.com/gpu"
    else:
        plugin, why = a.device_plugin, f"set in the answer file (device_plugin: {str(a.device_plugin).lower()})"
        if plugin and with_hami:
            raise StepFailed("operator.device_plugin: true together with HAMi: both device plugins advertise "
                             "nvidia.com/gpu and would fight over the nodes; use device_plugin: auto (off)")
    whys["device plugin"] = (plugin, why)
    if plugin != cv.defaults.get("devicePlugin.enabled", True):
        ex.set("devicePlugin.enabled", plugin, why)

    user_cdi = K.flatten(a.values).get("cdi.enabled")
    if with_hami and user_cdi is None and live_flat.get("cdi.enabled") is True:
        ex.set("cdi.enabled", True, "kept from the installed release (helm get values): CDI on; HAMi's device plugin "
               "then runs with runtimeClassName nvidia")
    elif with_hami and user_cdi is None and cv.defaults.get("cdi.enabled", False):
        ex.set("cdi.enabled", False, "HAMi: its docs install gpu-operator with cdi.enabled=false (HAMi's device plugin "
               f"finds the GPUs through the nvidia runtime, which CDI mode stops making the default); gpu-operator "
               f"{version}'s chart enables CDI by default")
    K.mirror_chart_images(ctx, ex, cv)  # before the answer file's values, which win
    if a.values:
        # checked against this chart version's real keys: a key it lacks is refused with the nearest
        # real one, a dead or deprecated key is warned about (steps/kube.py check_values)
        if cv.checked:
            notes += K.refuse_values(cv, a.values, "operator.values")
        else:
            notes += [f.message for f in K.check_values(cv, a.values, "operator.values")]
        for key in K.flatten(a.values):
            ex.notes[key] = "from the answer file (operator.values)"
    # CDI and NRI as the release will run them: the answers, over the installed release's values
    flat = {**live_flat, **K.flatten(K.merge(ex.values, a.values))}
    cdi = bool(flat.get("cdi.enabled", cv.defaults.get("cdi.enabled", False)))
    nri = bool(flat.get("cdi.nriPluginEnabled", cv.defaults.get("cdi.nriPluginEnabled", False)))
    said: set[str] = set()
    for node, runtime in node_runtimes(ctx, context).items():  # each node's own runtime (compat.yaml)
        found = C.operator_runtime(version, runtime, "", nri, cdi_enabled=cdi)
        refused = [f for f in found if f.level == "refuse"]
        if refused:
            raise PlanRefused(f"operator.values cdi.nriPluginEnabled: node {node} runs {runtime}: {refused[0].text}")
        for f in found:
            if f.text not in said:
                said.add(f.text)
                notes.append(f"node {node} ({runtime}): {f.text}")
    env = TOOLKIT_ENV.get(dist)
    if toolkit and env and not nri and "toolkit" not in a.values and "toolkit.env" not in live_flat:
        ex.set("toolkit.env", [{"name": k, "value": v} for k, v in env["env"].items()],
               f"{dist}: its containerd lives in {dist}'s own paths, so the toolkit is told where ({env['source']})")
    if dist == "rke2" and toolkit and not nri:
        notes.append("RKE2 runs containerd as its own child: when the toolkit restarts containerd to load the nvidia "
                     "runtime, RKE2 restarts with it (the node's kubelet and pods come back within a minute)")
    values, value_notes, kept_keys = K.merge(ex.values, a.values), ex.notes, []
    if adopted is not None and live is not None:
        managed = ["driver.enabled", "toolkit.enabled", "devicePlugin.enabled"] + (["cdi.enabled"] if with_hami else [])
        wanted = K.Explained(values, value_notes)
        kept = K.adopt_values(live, wanted, managed, cv, V.compare(_v(adopted["chart_version"]), version) == 0)
        values, value_notes, kept_keys = kept.values, kept.notes, kept.kept
        notes += kept.given_up(cv)
    return {"context": context, "on_kind": on_kind, "release": release, "namespace": namespace, "version": version,
            "chart": cv, "values": values, "notes": value_notes, "plan_notes": notes, "driver": driver,
            "toolkit": toolkit, "plugin": plugin, "cdi": cdi, "nri": nri, "with_hami": with_hami, "whys": whys,
            "hops": hops, "live": live, "kept": kept_keys, "from_version": _v(adopted["chart_version"]) if adopted else None}


# Where k3s and RKE2 keep containerd, as the operator's toolkit must be told (toolkit.env: CONTAINERD_CONFIG,
# CONTAINERD_SOCKET; NVIDIA/cloud-native-docs gpu-operator/getting-started.rst "Specifying Configuration
# Options for containerd" @ gpu-operator-v26.3-32 defines them; RKE2's own values from its "Deploy NVIDIA
# Operator" page, which that file links; with the operator's NRI plugin none is needed: cdi.rst there).
TOOLKIT_ENV: dict[str, dict[str, Any]] = {
    "k3s": {"env": {"CONTAINERD_CONFIG": "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
                    "CONTAINERD_SOCKET": "/run/k3s/containerd/containerd.sock"},
            "source": "k3s's generated containerd config and its socket (docs.k3s.io advanced, NVIDIA runtime support)"},
    "rke2": {"env": {"CONTAINERD_CONFIG": "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
                     "CONTAINERD_SOCKET": "/run/k3s/containerd/containerd.sock"},
             "source": "RKE2's containerd config and socket (docs.rke2.io reference/cli_tools, add-ons/gpu_operators)"},
}
# The containerd config the distribution runs with, on this host (what the node's runtime has).
CONTAINERD_CONFIGS = {"k3s": "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
                      "rke2": "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
                      "kubernetes": "/etc/containerd/config.toml"}


def cluster_nodes(ctx: StepContext, context: str) -> list[dict[str, Any]]:
    """The cluster's nodes as it reports them (gpuwizard/detect.py ``node_facts``): the facts the
    operator's and HAMi's ``auto`` decisions rest on, not the machine gpuwizard runs on."""
    pods = K.probe_json(ctx, K.kubectl(context, "get", "pods", "--all-namespaces", "-o", "json"))
    return nodes_facts(ctx.host, K.nodes(ctx, context) or [], None if pods is None else list(pods.get("items") or []))


def other_plugins(nodes: list[dict[str, Any]]) -> dict[str, list[str]]:
    """node -> the device plugins advertising nvidia.com/gpu there that are neither the gpu-operator's
    nor HAMi's (NVIDIA's own k8s-device-plugin chart: nvidia-device-plugin-*)."""
    return {str(n["name"]): found for n in nodes
            if (found := [p for p in n.get("device_plugins") or [] if p.startswith("nvidia-device-plugin ")])}


def distribution(nodes: list[dict[str, Any]]) -> str:
    """k3s, rke2, kind or kubernetes: what the nodes' kubelets say (the first GPU node's, else any)."""
    kinds = [str(n.get("distribution")) for n in nodes if n.get("distribution")]
    return kinds[0] if kinds else "kubernetes"


def local_containerd_configs(ctx: StepContext, dist: str) -> list[tuple[str, str]]:
    """(path, text) of this host's containerd config for ``dist`` and its conf.d drop-ins, in the order
    containerd merges them (a later one wins)."""
    main = CONTAINERD_CONFIGS.get(dist, CONTAINERD_CONFIGS["kubernetes"])
    d = ctx.host.path(str(Path(main).parent / "conf.d"))
    paths = [main] + (sorted(f"{Path(main).parent}/conf.d/{p.name}" for p in d.glob("*.toml")) if d.is_dir() else [])
    return [(p, text) for p in paths if (text := ctx.host.read_text(p))]


def node_runtime_config(ctx: StepContext, dist: str) -> str | None:
    """Where this host's containerd for ``dist`` already has an nvidia runtime (k3s and RKE2 add one
    themselves when they find nvidia-container-runtime; nvidia-ctk writes a conf.d drop-in), else None.
    TOML spells the table runtimes.nvidia, runtimes."nvidia" or runtimes.'nvidia'."""
    for path, text in local_containerd_configs(ctx, dist):
        if re.search(r"""runtimes\.['"]?nvidia['"]?\]""", text):
            return path
    return None


def node_runtimes(ctx: StepContext, context: str) -> dict[str, str]:
    """node -> its container runtime as the node reports it (status.nodeInfo.containerRuntimeVersion,
    e.g. containerd://1.7.18): the target's own fact, not the machine the wizard runs on."""
    out: dict[str, str] = {}
    for n in K.nodes(ctx, context) or []:
        rt = ((n.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion")
        if rt:
            out[str(n["metadata"]["name"])] = str(rt)
    return out


def hop_actions(ctx: StepContext, r: dict[str, Any], hop: str) -> list[A.Action]:
    """One hop of an upgrade through the release lines: ``helm upgrade --reset-then-reuse-values`` (the
    hop's chart defaults, the release's own values kept: Helm 3.14+), then the operator's pods and its
    ClusterPolicy waited for, before the next hop."""
    context, ns, release = r["context"], r["namespace"], r["release"]

    def reached(c: StepContext) -> bool:
        rel = next((x for x in K.releases(c, context) if x.get("name") == release and x.get("namespace") == ns), None)
        found = K.split_chart(str((rel or {}).get("chart") or ""))[1]
        try:
            return bool(found) and V.compare(found, hop) >= 0
        except ValueError:
            return False

    return [
        K.Cmd(f"helm-upgrade-{hop}", f"gpu-operator {release} upgraded to {hop} (one major at a time)",
              K.helm(context, "upgrade", release, K.chart_ref(ctx, CHART, hop), "--namespace", ns, "--version", hop,
                     "--reset-then-reuse-values"), reached, timeout=900,
              disruptive=f"the gpu-operator's daemonsets in {ns} restart with {hop}'s images").with_changes(
                  HelmRelease(context, release, ns)),
        *ready_waits(context, ns, hop),
    ]


def ready_waits(context: str, ns: str, hop: str | None = None) -> list[A.Action]:
    """Wait for the operator's pods, then its ClusterPolicy (after an install, or after each upgrade hop)."""
    suffix, on = (f"-{hop}", f" on {hop}") if hop else ("", "")
    return [
        K.Poll(f"operator-pods{suffix}", f"the gpu-operator pods in {ns} are Running or Completed{on}",
               lambda c: pods_ok(c, context, ns), timeout=900, interval=K.POLL,
               describe=lambda c: describe_pods(c, context, ns)),
        K.Poll(f"clusterpolicy{suffix}", f"the ClusterPolicy is ready{on}", lambda c: policy_state(c, context) == "ready",
               timeout=600, interval=K.POLL, describe=lambda c: f"ClusterPolicy state: {policy_state(c, context) or 'absent'}; "
               + describe_pods(c, context, ns)),
    ]


def values_path(release: str) -> str:
    return f"{K.WORKDIR}/helm/{release}-values.yaml"


def pods_ok(ctx: StepContext, context: str, namespace: str) -> bool:
    items = K.pods(ctx, context, namespace)
    if not items:
        return False
    problems = {p["metadata"]["name"]: K.pod_problem(p) for p in items}
    bad = {n: why for n, why in problems.items() if why}
    fatal = {n: why for n, why in bad.items() if K.definitive(why)}
    if fatal:
        pod = {p["metadata"]["name"]: p for p in items}
        raise StepFailed(f"gpu-operator pods in {namespace} are failing:\n    " +
                         "\n    ".join(K.explain_pod(ctx, context, namespace, pod[n], why) for n, why in fatal.items())
                         + "\n  " + hints(fatal))
    return not bad


def hints(bad: dict[str, str]) -> str:
    text = " ".join(bad) + " " + " ".join(bad.values())
    out = []
    if "ImagePull" in text or "manifest unknown" in text:
        out.append("an image cannot be pulled: check the node's access to nvcr.io and the chart version")
    if "ldconfig.real" in text:
        out.append("the Kind node lacks /sbin/ldconfig.real: run the kind step again (it makes the link)")
    if "nvidia-driver" in text:
        out.append("the driver container fails: use the host driver (operator.driver_enabled: false)")
    if "validator" in text and not out:
        out.append("the validator fails: `kubectl logs -n <ns> <validator pod> -c driver-validation` says why")
    return "likely cause: " + "; ".join(out) if out else "see `kubectl describe pod` for the events"


def describe_pods(ctx: StepContext, context: str, namespace: str) -> str:
    items = K.pods(ctx, context, namespace)
    if items is None:
        return f"the API server of context {context} does not answer"
    bad = {p["metadata"]["name"]: problem for p in items if (problem := K.pod_problem(p))}
    if not bad:
        return "no pods yet" if not items else "every pod is ready now"
    pod = {p["metadata"]["name"]: p for p in items}
    return ("not ready:\n    " + "\n    ".join(K.explain_pod(ctx, context, namespace, pod[n], w) for n, w in bad.items())
            + "\n  " + hints(bad))


def policy_state(ctx: StepContext, context: str) -> str | None:
    doc = K.probe_json(ctx, K.kubectl(context, "get", "clusterpolicies.nvidia.com", "-o", "json"))
    items = (doc or {}).get("items") or []
    return ((items[0].get("status") or {}).get("state")) if items else None


# -- the step's section of the answer file --------------------------------------------------------
class OperatorAnswers(Section):
    namespace: K8sName = "gpu-operator"
    release: K8sName = "gpu-operator"
    chart_version: Version | None = None
    driver_enabled: Auto = "auto"
    toolkit_enabled: Auto = "auto"
    device_plugin: Auto = "auto"
    values: dict[str, Any] = Field(default_factory=dict, description="Extra Helm values (written to a values file, shown in the plan).")
    verify: bool = True
    chart_keys_unchecked: bool = Field(
        False, description="Go ahead with a chart_version gpuwizard has no key data for: operator.values are checked "
        "against the nearest known release's keys as warnings only.")


class OperatorStep(Step[OperatorAnswers]):
    id = "operator"
    title = "NVIDIA gpu-operator"
    pins = ("chart_version",)  # a replay installs the release this session installed or adopted
    facts_shown = ("kubernetes", "gpu_operator")
    Answers = OperatorAnswers

    def plan(self, ctx: StepContext, a: OperatorAnswers) -> list[A.Action]:
        acts: list[A.Action] = K.tool_actions(ctx, ["kubectl", "helm"])
        try:
            r = resolve(ctx, a)
        except StepFailed as exc:
            return acts + [A.Fail("operator-plan", "plan the gpu-operator install", str(exc))]
        for note in r["plan_notes"]:
            ctx.decide(note)
        for what, (on, why) in r["whys"].items():
            ctx.decide(f"{what} {'on' if on else 'off'} ({why})")
        context, ns, release, version = r["context"], r["namespace"], r["release"], r["version"]
        ctx.plan_data.update(chart_version=version, release=release, namespace=ns)
        repo_name, _ = K.repo(CHART)
        acts += K.helm_repo_actions(ctx, CHART)

        def ns_exists(c: StepContext) -> bool:
            return K.probe_json(c, K.kubectl(context, "get", "namespace", ns, "-o", "json")) is not None

        def psa_ok(c: StepContext) -> bool:
            doc = K.probe_json(c, K.kubectl(context, "get", "namespace", ns, "-o", "json"))
            return ((doc or {}).get("metadata", {}).get("labels") or {}).get(PSA) == "privileged"

        acts.append(K.Cmd(f"namespace-{ns}", f"namespace {ns} exists", K.kubectl(context, "create", "namespace", ns),
                          ns_exists).with_changes(Namespace(context, ns)))
        acts.append(K.Cmd(f"psa-{ns}", f"namespace {ns} allows privileged pods (Pod Security Admission: the operator's "
                          "daemonsets run privileged)", K.kubectl(context, "label", "namespace", ns, f"{PSA}=privileged",
                                                                  "--overwrite"), psa_ok).with_changes(
                                                                      Label(context, "namespace", ns, PSA)))
        for hop in r["hops"]:
            acts += hop_actions(ctx, r, hop)
        path = values_path(release)
        cv = r["chart"]
        header = [f"gpu-operator {version} values written by gpuwizard for release {release} in {ns} ({context}).",
                  f"Only values that differ from the chart's defaults are set; keys of gpu-operator {cv.documented}'s own "
                  f"values.yaml (gpuwizard/assets/charts/keys/gpu-operator-{cv.documented}.json)."]
        if r["kept"]:
            header.append(f"Release {release} is installed (chart {r['from_version']}): its own values are kept below, "
                          "since `helm upgrade --values` resets every value the file does not hold.")
        if not r["values"]:
            header.append("Nothing differs from the chart's defaults.")
        content = K.render_values(r["values"], r["notes"], header)
        acts.append(K.write(path, content, f"Helm values {path}", "operator-values"))
        install = K.helm(context, "upgrade", "--install", release, K.chart_ref(ctx, CHART, version), "--namespace", ns,
                         "--version", version, "--values", K.hp(ctx, path))
        values = r["values"]
        pulled, unknown = images.operator_images(version, HV.coalesce(values, cv.tree))
        acts += K.cluster_images(ctx, context, pulled, on_kind=r["on_kind"], unknown=unknown)
        if not K.from_bundle(ctx, CHART):
            acts.append(K.Cmd("helm-update", f"refresh the {repo_name} chart index", ["helm", "repo", "update", repo_name],
                              lambda c: K.release_matches(c, context, release, ns, CHART, version, values)))
        details: Callable[[StepContext], list[str]] | None = None
        if r["live"] is not None:
            def live_details(c: StepContext) -> list[str]:
                return K.live_change(c, context, release, ns, r["from_version"], cv, values)
            details = live_details
        acts.append(K.Cmd("helm-install", f"gpu-operator {version} installed as {release} in {ns}", install,
                          lambda c: K.release_matches(c, context, release, ns, CHART, version, values), timeout=900,
                          details=details).with_changes(HelmRelease(context, release, ns)))
        acts += ready_waits(context, ns)
        if a.verify:
            if r["plugin"]:
                acts += K.vectoradd_actions(ctx, context, self.id, on_kind=r["on_kind"])
            else:
                ctx.decide("the cuda-vectoradd check runs in the hami step: with the operator's device plugin off, "
                         "nvidia.com/gpu appears once HAMi is installed")
        return acts

    def prefetch(self, ctx: StepContext, a: OperatorAnswers) -> list[list[str]]:
        context = prefetch_context(ctx)
        if context is None:
            return []
        return [*K.release_prefetch(ctx, context, CHART, a.namespace),
                K.kubectl(context, "get", "namespace", a.namespace, "-o", "json"),
                K.kubectl(context, "get", "clusterpolicies.nvidia.com", "-o", "json"), K.vectoradd_pod_argv(context)]

    def boots(self, ctx: StepContext, a: OperatorAnswers) -> dict[str, str]:
        context, _ = target_context(ctx)
        return K.node_boots(ctx, context) if context else {}

    def settle(self, ctx: StepContext, a: OperatorAnswers) -> list[A.Action]:
        # after a node's reboot the driver container (where it runs) rebuilds the module and the
        # validator checks driver, toolkit and CUDA again (gpu-operator's node status files under
        # /run/nvidia/validations are on a tmpfs): the operator is healthy once they all pass again
        r = resolve(ctx, a)
        return ready_waits(r["context"], r["namespace"])

    def verify(self, ctx: StepContext, a: OperatorAnswers) -> str:
        r = resolve(ctx, a)
        context, ns = r["context"], r["namespace"]
        if not K.release_matches(ctx, context, r["release"], ns, CHART, r["version"], r["values"]):
            rel = K.find_release(K.releases(ctx, context), CHART)
            raise StepFailed(f"gpu-operator release {r['release']} in {ns} is not deployed with the planned chart "
                             f"{r['version']} and values (found: {rel})")
        state = policy_state(ctx, context)
        if state != "ready":
            raise StepFailed(f"the ClusterPolicy is {state or 'absent'}; " + describe_pods(ctx, context, ns))
        def onoff(v: Any) -> str:
            return "on" if v else "off"

        return (f"gpu-operator {r['version']} (release {r['release']} in {ns}): ClusterPolicy ready; driver "
                f"{onoff(r['driver'])}, toolkit {onoff(r['toolkit'])}, device plugin "
                f"{onoff(r['plugin'])}{' (HAMi provides it)' if r['with_hami'] and not r['plugin'] else ''}, CDI {onoff(r['cdi'])}")
