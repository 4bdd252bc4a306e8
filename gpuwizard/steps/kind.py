"""Step ``kind``: a Kind cluster whose nodes see the host's GPUs — or, with ``existing_context``,
the user's own cluster, checked and left alone.

The seed recipe's way, done so a re-run changes nothing: the NVIDIA runtime reads volume mounts as
device lists (``accept-nvidia-visible-devices-as-volume-mounts``) and is Docker's default runtime, so
an extraMount ``/dev/null -> /var/run/nvidia-container-devices/<all|index>`` hands GPUs to a node; the
Kind config is rendered from ``assets/templates/kind-config.yaml`` and shown in the plan; the
``/sbin/ldconfig.real`` link the operator's toolkit container needs in a Debian node is made only
where it is missing; a cluster of that name is reused when its GPU mounts are right and deleted only
with ``recreate: true``.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .. import actions as A
from ..detect import node_facts
from ..engine import PlannedStep, Promise, Step, StepContext
from ..errors import StepFailed
from ..journal import FileChange, KindCluster, Sysctl
from ..network import Network
from ..validate import Auto, ImageRef, K8sName, KubeContext, Section
from . import common as C
from . import kube as K
from .container import ContainerStep

# One of the images kind v0.33.0's release notes list as built for that release (its own default is
# v1.37.0, newer than the Kubernetes 1.32–1.36 that gpu-operator 26.x supports); the digest is the one
# those notes give (github.com/kubernetes-sigs/kind/releases/tag/v0.33.0, quoted in polarsquad/krops PR #112).
DEFAULT_NODE_IMAGE = "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed"
CTK_CONFIG = "/etc/nvidia-container-runtime/config.toml"
CTK_KEY = "accept-nvidia-visible-devices-as-volume-mounts"
DEVICES_DIR = "/var/run/nvidia-container-devices/"
INOTIFY = {"fs.inotify.max_user_watches": 524288, "fs.inotify.max_user_instances": 8192}  # nvkind CI
SYSCTL_FILE = "/etc/sysctl.d/99-gpuwizard-kind.conf"


def toml_true(text: str | None, key: str) -> bool:
    """Whether a TOML document (nvidia-container-runtime's config.toml) sets the top-level ``key``
    to ``true``; a key of that name inside a table does not count, and a file that is not valid
    TOML sets nothing (the runtime would not read it either)."""
    try:
        return tomllib.loads(text or "").get(key) is True
    except tomllib.TOMLDecodeError:
        return False


def node_names(name: str, workers: int) -> list[str]:
    return [f"{name}-control-plane"] + [f"{name}-worker{'' if i == 1 else i}" for i in range(1, workers + 1)]


def gpu_layout(a: KindAnswers, gpu_count: int) -> dict[str, list[str]]:
    """node name -> the device mounts it gets ("all" or GPU indexes as strings)."""
    names = node_names(a.cluster_name, a.workers)
    if a.workers == 0:
        return {names[0]: ["all"] if a.gpus == "all" else [str(i) for i in a.gpus]}
    layout: dict[str, list[str]] = {n: [] for n in names}
    if a.gpus == "all" and a.workers == 1:
        layout[names[1]] = ["all"]
        return layout
    indexes = list(range(gpu_count)) if a.gpus == "all" else list(a.gpus)
    for k, worker in enumerate(names[1:]):
        layout[worker] = [str(i) for i in indexes[k :: a.workers]]
    return layout


def node_image(a: KindAnswers, net: Network | None = None) -> str:
    """The node image the cluster is created from, as pulled (the default through Docker Hub's mirror)."""
    return a.node_image or (net.image(DEFAULT_NODE_IMAGE) if net is not None else DEFAULT_NODE_IMAGE)


def render_config(a: KindAnswers, layout: dict[str, list[str]], net: Network | None = None) -> str:
    """``net``: the session's mirrors (the default node image comes from Docker Hub's mirror) and
    offline bundle (the node image as it loads from there: its tag)."""
    image = node_image(a, net)
    if net is not None:
        image = net.loaded(image)
    blocks = []
    for name, devices in layout.items():
        role = "control-plane" if name.endswith("-control-plane") else "worker"
        block = K.template("kind-node.yaml", role=role, image=image)
        if devices:
            what = "all of them" if devices == ["all"] else "GPU " + ", ".join(devices)
            block += K.template("kind-gpu-mounts.yaml", what=what)
            block += "".join(K.template("kind-gpu-mount.yaml", device=d) for d in devices)
        blocks.append(block.rstrip("\n"))
    return K.template("kind-config.yaml", name=a.cluster_name, nodes="\n".join(blocks))


CLUSTERS = ["kind", "get", "clusters"]


def mounts_argv(node: str) -> list[str]:
    return ["docker", "inspect", node, "--format", "{{json .Mounts}}"]


def ldconfig_argv(node: str) -> list[str]:
    return ["docker", "exec", node, "test", "-e", "/sbin/ldconfig.real"]


def clusters(ctx: StepContext) -> list[str] | None:
    result = ctx.host.runner.probe(CLUSTERS)
    if result is None or not result.ok:
        return None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def node_devices(ctx: StepContext, node: str) -> list[str] | None:
    """The nvidia-container-devices mounts of a Kind node container (None: no such container)."""
    doc = K.probe_json(ctx, mounts_argv(node))
    if doc is None:
        return None
    return sorted(m["Destination"][len(DEVICES_DIR):] for m in doc if str(m.get("Destination", "")).startswith(DEVICES_DIR))


def nodes_ready(ctx: StepContext, context: str) -> bool:
    items = K.nodes(ctx, context)
    if not items:  # no answer, or no nodes
        return False
    return all(K.node_ready(n) for n in items)


def describe_nodes(ctx: StepContext, context: str) -> str:
    items = K.nodes(ctx, context)
    if items is None:
        r = ctx.host.runner.probe(K.kubectl(context, "get", "nodes"))
        why = (r.stderr or r.stdout).strip().splitlines()[-1:] if r else ["kubectl not found"]
        return f"the API server of context {context} does not answer ({' '.join(why)})"
    bad = [n["metadata"]["name"] for n in items if not K.node_ready(n)]
    return f"not Ready: {', '.join(bad)}" if bad else "no nodes"


def running_containers(ctx: StepContext) -> list[str] | None:
    """The names of the host's running Docker containers (``docker ps --format '{{.Names}}'``: one
    name a line); None when Docker does not answer."""
    result = ctx.host.runner.probe(["docker", "ps", "--format", "{{.Names}}"])
    if result is None or not result.ok:
        return None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def restart_warning(ctx: StepContext) -> str:
    names = running_containers(ctx)
    if names is None:
        return "restarts Docker: every running container stops (restart policies bring some back)"
    if not names:
        return "restarts Docker (no container is running now)"
    return (f"restarts Docker: the {len(names)} running container(s) stop — {', '.join(names)} "
            f"(restart policies bring some back)")


def default_runtime_plan(ctx: StepContext, a: KindAnswers, docker: dict[str, Any], creating: bool,
                         acts: list[A.Action]) -> A.Action | None:
    """Docker's default runtime per ``kind.set_docker_default_runtime``: with ``auto`` nvidia becomes
    the default only when this run creates (or recreates) the cluster — Kind starts its node
    containers with Docker's default runtime, and only the NVIDIA runtime turns the
    ``/var/run/nvidia-container-devices`` mounts into GPUs; an existing node container keeps the
    runtime it was created with, so a reused cluster needs no change (and no Docker restart).
    Appends the actions to ``acts``; returns a refusal (Fail) when the answers contradict each other."""
    want = a.set_docker_default_runtime
    container = ctx.answers(ContainerStep)
    keep_runc = container is not None and not container.set_as_default
    current = docker.get("default_runtime") or "runc"
    if want is True and keep_runc:
        return A.Fail("docker-default-runtime", "nvidia is Docker's default runtime",
                      "kind.set_docker_default_runtime: true contradicts container.set_as_default: false (one makes "
                      "nvidia Docker's default runtime, the other keeps it off); change one of the two keys")
    if want is False:
        ctx.decide(f"Docker's default runtime is left as it is ({current}; kind.set_docker_default_runtime: false)"
                   + ("" if current == "nvidia" or not creating else
                      f": the Kind nodes this run creates start with {current}, and their GPU mounts give them no GPU"))
        return None
    if want == "auto" and not creating:
        if current != "nvidia":
            ctx.decide(f"Docker's default runtime is left as it is ({current}; kind.set_docker_default_runtime: auto): "
                       f"the Kind cluster {a.cluster_name} exists and its node containers keep the runtime they were "
                       f"created with, so Docker is not restarted")
        return None
    if want == "auto" and keep_runc and current != "nvidia":
        ctx.decide("kind.set_docker_default_runtime: auto makes nvidia Docker's default runtime although "
                   "container.set_as_default is false: this run creates the Kind cluster "
                   f"{a.cluster_name}, whose nodes Docker starts with its default runtime, and only the NVIDIA "
                   "runtime hands them the GPUs; set kind.set_docker_default_runtime: false to keep "
                   f"{current} (the nodes then see no GPU)")

    def set_default(cfg: dict[str, Any]) -> dict[str, Any]:
        cfg["default-runtime"] = "nvidia"
        return cfg

    why = "this run creates the Kind cluster, and " if want == "auto" else "kind.set_docker_default_runtime: true; "
    acts.append(A.EditJson("docker-default-runtime", f"nvidia is Docker's default runtime ({why}Kind starts its nodes "
                           "with the default runtime, so only then do the GPU mounts take effect)",
                           "/etc/docker/daemon.json", set_default, then=(("systemctl", "restart", "docker"),)))

    def runtime_loaded(c: StepContext) -> bool:
        r = c.host.runner.probe(["docker", "info", "--format", "{{.DefaultRuntime}}"])
        return bool(r and r.ok and r.stdout.strip() == "nvidia")

    acts.append(K.Cmd("docker-restart", "restart Docker so that it loads the default runtime",
                      ["systemctl", "restart", "docker"], runtime_loaded,
                      disruptive=restart_warning(ctx) if current != "nvidia" else None))
    return None


# -- the step's section of the answer file --------------------------------------------------------
class KindAnswers(Section):
    cluster_name: K8sName = "gpu-cluster"
    node_image: ImageRef | None = Field(None, description="kindest/node image, pinned with @sha256 digest.")
    gpus: Literal["all"] | list[int] = Field("all", description="'all' or a list of GPU indexes to mount into the node.")
    workers: int = Field(0, ge=0, le=16)
    recreate: bool = Field(False, description="Delete and recreate an existing cluster of that name.")
    existing_context: KubeContext | None = Field(None, description="Use this kube context instead of creating a Kind cluster.")
    kubeconfig: str | None = Field(
        None, description="The kubeconfig file that holds existing_context (e.g. /etc/rancher/k3s/k3s.yaml, "
        "/etc/kubernetes/admin.conf); default: kubectl's own ($KUBECONFIG or ~/.kube/config).")
    set_docker_default_runtime: Auto = Field(
        "auto", description="Make nvidia Docker's default runtime (and restart Docker: its running containers stop). "
        "auto: only when this run creates or recreates the Kind cluster, whose nodes get their GPUs through it.")

    @model_validator(mode="after")
    def _kubeconfig_needs_a_context(self) -> KindAnswers:
        if self.kubeconfig and not self.existing_context:
            raise ValueError("kind.kubeconfig names the file of an existing cluster's context: set "
                             "kind.existing_context too")
        return self

    @field_validator("kubeconfig")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path (/etc/kubernetes/admin.conf)")
        return value

    @field_validator("node_image")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value and "@sha256:" not in value:
            raise ValueError("expected an image pinned with a digest (…@sha256:<64 hex>)")
        return value

    @field_validator("gpus")
    @classmethod
    def _indexes(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or any(i < 0 for i in value) or len(set(value)) != len(value)):
            raise ValueError("expected 'all' or a non-empty list of distinct GPU indexes (0, 1, …)")
        return value


def kind_cluster_plan(ctx: StepContext) -> KindAnswers | None:
    """The Kind cluster this session creates (its kind answers), else None."""
    kind = ctx.answers(KindStep)
    if kind is None or kind.existing_context:
        return None
    return kind


def target_context(ctx: StepContext) -> tuple[str | None, bool]:
    """(kube context the cluster steps act on, whether it is a Kind cluster): the session's kind
    answers, else the current context of kubectl."""
    kind = ctx.answers(KindStep)
    if kind is not None:
        if kind.existing_context:
            if kind.kubeconfig and not ctx.host.exists(kind.kubeconfig):
                raise StepFailed(f"kind.kubeconfig: {kind.kubeconfig} does not exist on this host (the file that holds "
                                 f"context {kind.existing_context})")
            config = K.hp(ctx, kind.kubeconfig) if kind.kubeconfig else None
            context = K.Context(kind.existing_context, config)
            return context, kind.existing_context.startswith("kind-") or nodes_are_kind(ctx, context)
        ctx.relies_on("cluster")  # planning: the cluster the kind step of this run promises
        return f"kind-{kind.cluster_name}", True
    current = (ctx.facts.get("kubernetes") or {}).get("context")
    if not current:
        result = ctx.host.runner.probe(["kubectl", "config", "current-context"])
        current = result.stdout.strip() if result is not None and result.ok else None
    return current, bool(current and current.startswith("kind-"))


def prefetch_context(ctx: StepContext) -> str | None:
    """The context the cluster steps will act on, where it is told without a probe and detection found
    it answering: its probes may run ahead of the plans (Step.prefetch); else None."""
    kind = ctx.answers(KindStep)
    context: str | None
    if kind is not None:
        if kind.kubeconfig:
            return None
        context = kind.existing_context or f"kind-{kind.cluster_name}"
    else:
        context = (ctx.facts.get("kubernetes") or {}).get("context")
    return context if K.answering(ctx, context) else None


def nodes_are_kind(ctx: StepContext, context: str) -> bool:
    """The cluster's nodes are all Kind node containers (Kind's provider ID), whatever the context is called."""
    items = K.nodes(ctx, context) if ctx.has_tool("kubectl") else None
    return bool(items) and all(node_facts(item)["distribution"] == "kind" for item in items or [])


def kube_contexts(ctx: StepContext) -> list[str] | None:
    """The context names of the kubeconfig the kind answers name (``kubectl config get-contexts -o name``);
    None when kubectl is missing (this run installs it) or does not answer."""
    kind = ctx.answers(KindStep)
    config = ["--kubeconfig", K.hp(ctx, kind.kubeconfig)] if kind is not None and kind.kubeconfig else []
    if not ctx.has_tool("kubectl") or (kind is not None and kind.kubeconfig and not ctx.host.exists(kind.kubeconfig)):
        return None
    result = ctx.host.runner.probe(["kubectl", *config, "config", "get-contexts", "-o", "name"])
    if result is None or not result.ok:
        return None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def ready_wait(context: str) -> A.Action:
    """The cluster of ``context`` answers and every node is Ready (after a reboot: until its kubelet
    posts Ready again)."""
    return K.Poll("context-ready", f"context {context} answers and its nodes are Ready",
                  lambda c: nodes_ready(c, context), timeout=120, interval=K.POLL,
                  describe=lambda c: describe_nodes(c, context))


class KindStep(Step[KindAnswers]):
    id = "kind"
    title = "Kubernetes cluster (Kind or existing)"
    facts_shown = ("docker", "kubernetes")
    Answers = KindAnswers

    def plan(self, ctx: StepContext, a: KindAnswers) -> list[A.Action]:
        if a.existing_context:
            try:
                context, _ = target_context(ctx)
            except StepFailed as exc:
                return [A.Fail("kubeconfig", f"the kubeconfig {a.kubeconfig}", str(exc))]
            return self._existing(ctx, context or a.existing_context)
        acts: list[A.Action] = K.tool_actions(ctx, ["kind", "kubectl", "helm"])
        # the host steps of this run (driver, container) may have changed what detect saw at the start
        facts = ctx.facts if ctx.planning else ctx.refresh_facts()
        docker = facts.get("docker") or {}
        context = f"kind-{a.cluster_name}"
        if not docker.get("running"):
            acts.append(A.Fail("docker", "Docker is running", "Kind runs its nodes as Docker containers, and Docker is "
                               "not installed or not running; run the container step first (container: {install_docker: true})"))
            return acts
        if not ctx.has_tool("nvidia-ctk") or "nvidia" not in (docker.get("runtimes") or []):
            acts.append(A.Fail("nvidia-runtime", "the NVIDIA runtime is configured in Docker",
                               "Kind nodes get GPUs through the NVIDIA container runtime, which is not installed or not "
                               "configured in /etc/docker/daemon.json; run the container step first (container: {})"))
            return acts
        if not facts.get("gpus"):
            acts.append(A.Fail("gpus", "this host has NVIDIA GPUs", "no NVIDIA GPU was detected on this host"))
            return acts
        gpu_count = len(facts["gpus"])
        if a.gpus != "all" and max(a.gpus) >= gpu_count:
            acts.append(A.Fail("gpus", "the GPUs to mount exist",
                               f"kind.gpus asks for GPU {max(a.gpus)}, but this host has GPUs 0..{gpu_count - 1}"))
            return acts

        # 1. the NVIDIA runtime hands GPUs to containers through volume mounts, and (when the cluster is
        # created) is Docker's default
        acts.append(K.Cmd(
            "ctk-volume-mounts", f"{CTK_KEY} = true in {CTK_CONFIG} (GPUs reach Kind nodes as volume mounts)",
            ["nvidia-ctk", "config", "--set", f"{CTK_KEY}=true", "--in-place"],
            lambda c: toml_true(c.host.read_text(CTK_CONFIG), CTK_KEY)).with_changes(FileChange(CTK_CONFIG)))
        layout = gpu_layout(a, gpu_count)
        existing = clusters(ctx) or []
        creating = a.recreate or a.cluster_name not in existing
        refusal = default_runtime_plan(ctx, a, docker, creating, acts)
        if refusal is not None:
            acts.append(refusal)
            return acts

        # 2. multi-node clusters need more inotify instances (kind's known issue; nvkind CI sets these)
        if a.workers:
            conf = "# gpuwizard: a multi-node Kind cluster needs more inotify watches and instances\n" + \
                "".join(f"{k} = {v}\n" for k, v in INOTIFY.items())
            acts.append(K.write(SYSCTL_FILE, conf, f"persist the inotify limits in {SYSCTL_FILE}", "sysctl-file"))
            for key, value in INOTIFY.items():
                path = "/proc/sys/" + key.replace(".", "/")

                def raised(c: StepContext, path: str = path, value: int = value) -> bool:
                    text = (c.host.read_text(path) or "0").strip()
                    return text.isdigit() and int(text) >= value

                acts.append(K.Cmd(f"sysctl-{key.rsplit('.', 1)[1]}", f"{key} >= {value}", ["sysctl", "-w", f"{key}={value}"],
                                  raised).with_changes(Sysctl(key)))

        # 3. the Kind config (a file the plan shows as a diff)
        config_path = f"{K.WORKDIR}/kind/{a.cluster_name}.yaml"
        config = render_config(a, layout, ctx.net)
        acts.append(K.write(config_path, config, f"Kind config {config_path}", "kind-config"))

        # 4. an existing cluster of that name: reuse when its GPU mounts are right, else stop or recreate
        if a.cluster_name in existing:
            have = {n: node_devices(ctx, n) for n in layout}
            want = {n: sorted(d) for n, d in layout.items()}
            if a.recreate:
                # done once deleted in this run: a resume after `kind create` must not delete it again
                acts.append(K.Cmd("kind-delete", f"delete the existing Kind cluster {a.cluster_name} (recreate: true; "
                                  "everything in it is lost)", ["kind", "delete", "cluster", "--name", a.cluster_name],
                                  lambda c: c.done_this_run("kind-delete") or a.cluster_name not in (clusters(c) or []),
                                  timeout=300, disruptive=f"deletes the Kind cluster {a.cluster_name} and everything in it"))
            elif have != want:
                acts.append(A.Fail("kind-existing", f"reuse the Kind cluster {a.cluster_name}",
                                   f"a Kind cluster named {a.cluster_name} exists, but its GPU mounts are "
                                   f"{json.dumps(have)} where this run wants {json.dumps(want)}; set kind.recreate: true "
                                   f"to delete and recreate it (everything in it is lost), or choose another cluster_name"))
                return acts
            else:
                ctx.decide(f"reusing the Kind cluster {a.cluster_name}: its GPU mounts are right")

        def created(c: StepContext) -> bool:
            return a.cluster_name in (clusters(c) or [])

        ctx.plan_data["images"] = [node_image(a, ctx.net)]  # what kind create pulls (gpuwizard bundle saves it)
        acts += C.load_images(ctx, ctx.plan_data["images"])
        acts.append(K.Cmd("kind-create", f"create the Kind cluster {a.cluster_name}",
                          ["kind", "create", "cluster", "--name", a.cluster_name, "--config", K.hp(ctx, config_path)], created,
                          timeout=900, disruptive=f"creates the Kind cluster {a.cluster_name} (Docker containers "
                          f"{', '.join(layout)})").with_changes(KindCluster(a.cluster_name)))

        # 5. ldconfig.real in the GPU nodes (the operator's toolkit container calls it; Debian nodes lack it)
        for node, devices in layout.items():
            if not devices:
                continue

            def linked(c: StepContext, node: str = node) -> bool:
                r = c.host.runner.probe(ldconfig_argv(node))
                return bool(r and r.ok)

            acts.append(K.Cmd(f"ldconfig-{node}", f"/sbin/ldconfig.real exists in {node}",
                              ["docker", "exec", node, "ln", "-s", "/sbin/ldconfig", "/sbin/ldconfig.real"], linked))

        # 6. Ready
        acts.append(K.Poll("nodes-ready", f"the nodes of {context} are Ready", lambda c: nodes_ready(c, context),
                           timeout=300, interval=K.POLL, describe=lambda c: describe_nodes(c, context)))
        return acts

    def _existing(self, ctx: StepContext, context: str) -> list[A.Action]:
        acts: list[A.Action] = K.tool_actions(ctx, ["kubectl", "helm"])
        known = kube_contexts(ctx)
        if known is not None and context not in known:
            kind = ctx.answers(KindStep)
            where = kind.kubeconfig if kind is not None and kind.kubeconfig else "kubectl's kubeconfig"
            acts.append(A.Fail("context", f"context {context} exists",
                               f"kind.existing_context: no context {context} in {where} (its contexts: "
                               f"{', '.join(known) or 'none'}); name one of them, or set kind.kubeconfig to the file "
                               f"that holds it"))
            return acts
        ctx.decide(f"using the existing cluster of context {context}: no Kind command runs")
        acts.append(ready_wait(context))
        return acts

    def provides(self, ctx: StepContext, a: KindAnswers, plan: PlannedStep) -> list[Promise]:
        wanted = ("kubectl", "helm") if a.existing_context else ("kind", "kubectl", "helm")
        tools = {name: "(installed by the kind step)" for name in wanted if not ctx.has_tool(name)}
        names = list(tools)
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""
        are = "is" if len(names) == 1 else "are"
        out = [Promise("tools", tools, f"{listed} {are} installed (the kind step of this run installs "
                                       f"{'it' if len(names) == 1 else 'them'})")] if tools else []
        creating = any(act.id == "kind-create" and not done for act, done in zip(plan.actions, plan.done, strict=False))
        if creating:
            out.append(Promise("cluster", {"context": f"kind-{a.cluster_name}", "kind": True},
                               f"the Kind cluster {a.cluster_name} exists (the kind step of this run creates it)"))
        return out

    def prefetch(self, ctx: StepContext, a: KindAnswers) -> list[list[str]]:
        if a.existing_context or not (ctx.facts.get("docker") or {}).get("running"):
            return []
        seen, listed = ctx.host.runner.peek(CLUSTERS)
        if not (seen and listed is not None and listed.ok and a.cluster_name in listed.stdout.split()):
            return [CLUSTERS]
        layout = gpu_layout(a, len(ctx.facts.get("gpus") or []))  # the cluster exists: its nodes' mounts
        return [CLUSTERS, *(mounts_argv(n) for n in layout), *(ldconfig_argv(n) for n, d in layout.items() if d)]

    def boots(self, ctx: StepContext, a: KindAnswers) -> dict[str, str]:
        context, _ = target_context(ctx)
        return K.node_boots(ctx, context) if context else {}

    def settle(self, ctx: StepContext, a: KindAnswers) -> list[A.Action]:
        context, _ = target_context(ctx)
        return [ready_wait(context)] if context else []

    def verify(self, ctx: StepContext, a: KindAnswers) -> str:
        context = a.existing_context or f"kind-{a.cluster_name}"
        items = K.nodes(ctx, context)
        if items is None:
            raise StepFailed(describe_nodes(ctx, context))
        bad = [n["metadata"]["name"] for n in items if not K.node_ready(n)]
        if bad:
            raise StepFailed(f"nodes not Ready in {context}: {', '.join(bad)}")
        version = ((items[0].get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "?")
        if a.existing_context:
            return f"context {context}: {len(items)} node(s) Ready, Kubernetes {version}"
        seen = []
        for node, devices in gpu_layout(a, len(ctx.facts.get("gpus") or [])).items():
            if not devices:
                continue
            r = ctx.host.runner.probe(["docker", "exec", node, "nvidia-smi", "-L"])
            count = len([line for line in (r.stdout if r and r.ok else "").splitlines() if line.startswith("GPU ")])
            if not count:
                raise StepFailed(
                    f"the Kind node {node} sees no GPU (`docker exec {node} nvidia-smi -L` failed): check that nvidia is "
                    f"Docker's default runtime and {CTK_KEY} = true in {CTK_CONFIG}, then recreate the cluster "
                    f"(kind.recreate: true)")
            seen.append(f"{node}: {count} GPU(s)")
        return f"Kind cluster {a.cluster_name} ({context}): {len(items)} node(s) Ready, Kubernetes {version}; " + "; ".join(seen)
