"""The HAMi step's proof that sharing works (``hami.verify_sharing``): the seed recipe's gpu-pod
(``nvidia.com/gpu: 1``, ``nvidia.com/gpumem: 3000``, ``nvidia.com/gpucores: 30``), twice, at once.

Both pods must be Running on the same physical GPU (HAMi's allocation annotation names it) and
``nvidia-smi`` in each must report 3000 MiB as the card's memory (HAMi-core's limit; the card has
more). Then both are deleted. Every command is an action of the plan (the manifest is a file diff,
the apply, the reads, the delete); a cluster that cannot host two such pods on one GPU (split_count
1, a card smaller than 2 × 3000 MiB) gets no check, and the plan says why.

HAMi's pod annotations, from its source at tag v2.10.0 (github.com/Project-HAMi/HAMi):

* ``hami.io/vgpu-devices-allocated``: ``pkg/device/nvidia/device.go`` (``device.SupportDevices[NVIDIA]``,
  written by ``PatchAnnotations`` when the scheduler binds the pod), encoded by
  ``pkg/device/devices.go`` ``EncodePodSingleDevice``: per container ``UUID,TYPE,MEM,CORES`` entries
  each ended by ``:`` (``OneContainerMultiDeviceSplitSymbol``), containers ended by ``;``
  (``OnePodMultiContainerSplitSymbol``): ``GPU-8f…,NVIDIA,3000,30:;``.
* ``hami.io/vgpu-node`` (``AssignedNodeAnnotations``), ``hami.io/bind-phase`` (``DeviceBindPhase``:
  ``allocating`` / ``success`` / ``failed``): ``pkg/util/types.go``.
* ``hami.io/gpu-scheduler-policy`` / ``hami.io/node-scheduler-policy`` (``pkg/util/types.go``): the
  pods ask for ``binpack`` so that HAMi puts them on one card of one node (its default GPU policy
  is ``spread``).
* The scheduler's name is the chart's ``schedulerName`` (``hami-scheduler``; its
  templates/scheduler/deployment.yaml passes ``--scheduler-name``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import actions as A
from ..engine import StepContext
from ..errors import StepFailed
from ..parsers import HAMI_REGISTER, parse_hami_registration
from . import kube as K
from .common import Check

NAMES = ("gpuwizard-share-a", "gpuwizard-share-b")
NAMESPACE = "default"
GPUMEM = 3000  # MiB, the seed's nvidia.com/gpumem
GPUCORES = 30  # %, the seed's nvidia.com/gpucores
MANIFEST = f"{K.WORKDIR}/manifests/hami-sharing.yaml"
ALLOCATED = "hami.io/vgpu-devices-allocated"
ASSIGNED_NODE = "hami.io/vgpu-node"
BIND_PHASE = "hami.io/bind-phase"
SEEN = "sharing-seen"  # the action record that keeps what the check saw, for the step's summary
SMI = ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"]


def scheduler_name(r: dict[str, Any]) -> str:
    """HAMi's scheduler name: the release's ``schedulerName`` value, else the chart's default."""
    flat = K.flatten(r.get("values") or {})
    name = flat.get("schedulerName") or r["chart"].defaults.get("schedulerName") or "hami-scheduler"
    return str(name)


def card_memory(ctx: StepContext, r: dict[str, Any]) -> dict[str, int]:
    """GPU UUID (or "node:<name>" where only a node's label tells) -> the card's memory in MiB, as
    far as this host knows: the detected GPUs (a Kind node's GPUs are this host's), the nodes'
    ``nvidia.com/gpu.memory`` label (gpu-feature-discovery)."""
    out: dict[str, int] = {}
    if r.get("on_kind"):
        for g in ctx.facts.get("gpus") or []:
            if g.get("uuid") and g.get("memory_mib"):
                out[str(g["uuid"])] = int(g["memory_mib"])
    for n in K.nodes(ctx, r["context"]) or []:
        label = (n.get("metadata", {}).get("labels") or {}).get("nvidia.com/gpu.memory")
        if label and str(label).isdigit() and n["metadata"]["name"] in r["nodes"]:
            out[f"node:{n['metadata']['name']}"] = int(label)
    return out


def skip_reason(ctx: StepContext, a: Any, r: dict[str, Any]) -> str | None:
    """Why this cluster cannot host two of the check's pods on one GPU (None: it can, as far as is known)."""
    if a.split_count < 2:
        return (f"hami.split_count: {a.split_count}: each GPU is advertised as one vGPU, so no two pods can share "
                "one; the sharing check is skipped")
    if a.core_scaling * 100 < 2 * GPUCORES:
        return (f"hami.core_scaling: {a.core_scaling:g}: a card has {a.core_scaling * 100:g}% of cores to give, less "
                f"than 2 × {GPUCORES}%; the sharing check is skipped")
    cards = card_memory(ctx, r)
    if cards and all(mib * a.memory_scaling < 2 * GPUMEM for mib in cards.values()):
        biggest = max(cards.values())
        return (f"the largest card has {biggest} MiB (× memory_scaling {a.memory_scaling:g}), less than 2 × {GPUMEM} "
                "MiB for two pods; the sharing check is skipped")
    if K.vectoradd_image(ctx) is None:
        cuda = (ctx.facts.get("driver") or {}).get("cuda_version")
        return f"the driver supports CUDA {cuda}, older than every CUDA image gpuwizard knows; the sharing check is skipped"
    return None


def manifest(image: str, scheduler: str) -> str:
    return "---\n".join(K.template("hami-sharing-pod.yaml", name=name, namespace=NAMESPACE, image=image,
                                   scheduler=scheduler, gpumem=GPUMEM, gpucores=GPUCORES) for name in NAMES)


def allocation(pod: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """The devices HAMi allocated to a pod's containers: (uuid, type, MiB, cores) from
    ``hami.io/vgpu-devices-allocated`` (``UUID,TYPE,MEM,CORES:`` per device, ``;`` per container)."""
    text = str((pod.get("metadata", {}).get("annotations") or {}).get(ALLOCATED) or "")
    out = []
    for container in text.split(";"):
        for dev in container.split(":"):
            parts = dev.split(",")
            if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
                out.append((parts[0], parts[1], int(parts[2]), int(parts[3])))
    return out


def smi_memory(text: str) -> list[int]:
    """memory.total lines of ``nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits``
    (HAMi-core's "[HAMI-core Msg …]" lines, which it writes to the same terminal, are skipped)."""
    out = []
    for line in text.splitlines():
        word = line.strip().removesuffix("MiB").strip()
        if word.isdigit():
            out.append(int(word))
    return out


def pods(ctx: StepContext, context: str) -> dict[str, dict[str, Any]]:
    """The check's pods in the cluster, by name."""
    doc = K.probe_json(ctx, get_argv(context))
    items = (doc.get("items") if isinstance(doc, dict) and "items" in doc else [doc]) if doc else []
    return {p["metadata"]["name"]: p for p in items or [] if isinstance(p, dict) and p.get("metadata")}


def get_argv(context: str) -> list[str]:
    return K.kubectl(context, "get", "pods", *NAMES, "-n", NAMESPACE, "--ignore-not-found", "-o", "json")


def exec_argv(context: str, name: str) -> list[str]:
    return K.kubectl(context, "exec", "-n", NAMESPACE, name, "--", *SMI)


def delete_argv(context: str) -> list[str]:
    return K.kubectl(context, "delete", "pod", *NAMES, "-n", NAMESPACE, "--ignore-not-found", "--timeout=120s")


def running(ctx: StepContext, context: str) -> bool:
    """Both pods are Running and ready; raises for a state waiting will not fix."""
    found = pods(ctx, context)
    if len(found) < len(NAMES):
        return False
    for p in found.values():
        problem = K.pod_problem(p)
        if problem and K.definitive(problem):
            raise StepFailed(f"the sharing check's pod {p['metadata']['name']} is failing: {problem}")
        if p.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            raise StepFailed(f"the sharing check's pod {p['metadata']['name']} ended "
                             f"({p['status']['phase']}) instead of running")
    return all(p.get("status", {}).get("phase") == "Running" and K.pod_problem(p) is None for p in found.values())


def not_running(ctx: StepContext, context: str) -> str:
    found = pods(ctx, context)
    lines = []
    for name in NAMES:
        p = found.get(name)
        if p is None:
            lines.append(f"{name}: not found")
            continue
        problem = K.pod_problem(p) or p.get("status", {}).get("phase") or "not ready"
        lines.append(K.explain_pod(ctx, context, NAMESPACE, p, problem))
    return ("the two sharing pods (1 vGPU, 3000 MiB, 30% each) are not both Running: "
            + "; ".join(lines) + ". A GPU already used by other pods may have no room left for them")


def same_gpu(ctx: StepContext, context: str) -> tuple[str | None, str]:
    """(the GPU UUID both pods got, what is wrong when they did not get one and the same)."""
    found = pods(ctx, context)
    seen = {}
    for name in NAMES:
        p = found.get(name) or {}
        devs = allocation(p)
        if not devs:
            ann = (p.get("metadata", {}).get("annotations") or {})
            return None, (f"{name} has no {ALLOCATED} annotation (annotations: "
                          f"{', '.join(sorted(ann)) or 'none'}): was it scheduled by HAMi's scheduler?")
        node = (p.get("metadata", {}).get("annotations") or {}).get(ASSIGNED_NODE) or p.get("spec", {}).get("nodeName")
        seen[name] = (devs[0][0], node)
    uuids = {u for u, _ in seen.values()}
    if len(uuids) != 1:
        return None, ("the two pods got different GPUs, so this did not show two pods sharing one: "
                      + "; ".join(f"{n} on {u} (node {nd})" for n, (u, nd) in seen.items()))
    return uuids.pop(), ""


def memory_seen(ctx: StepContext, context: str, name: str) -> tuple[list[int], str]:
    res = ctx.host.runner.probe(exec_argv(context, name), timeout=60)
    text = (res.stdout if res is not None else "") or ""
    return smi_memory(text), ((res.stdout + res.stderr).strip() if res is not None else "kubectl not found")


def summary(ctx: StepContext, context: str, r: dict[str, Any], uuid: str, mem: dict[str, list[int]]) -> str:
    cards = card_memory(ctx, r)
    total = cards.get(uuid)
    name = next((g.get("name") for g in ctx.facts.get("gpus") or [] if g.get("uuid") == uuid), None)
    if name is None:  # a GPU of another machine: its name as HAMi registered it ("NVIDIA-Tesla T4")
        for item in K.nodes(ctx, context) or []:
            reg = parse_hami_registration((item.get("metadata", {}).get("annotations") or {}).get(HAMI_REGISTER))
            name = next((str(d["type"]).removeprefix("NVIDIA-") for d in reg or [] if d["id"] == uuid), None)
            if name:
                break
    each = sorted({m for v in mem.values() for m in v})
    shown = "/".join(f"{m}MiB" for m in each)
    return (f"sharing: {len(NAMES)} pods on {uuid}" + (f" ({name})" if name else "")
            + f" each see {shown}" + (f" of {total}MiB" if total else "") + " at once")


def actions(ctx: StepContext, a: Any, r: dict[str, Any], step: str) -> list[A.Action]:
    """The check as basic actions (empty when the cluster cannot host it: the plan says why)."""
    if not a.verify_sharing:
        return []
    why = skip_reason(ctx, a, r)
    if why is not None:
        ctx.decide(why)
        return []
    context = r["context"]
    image = K.vectoradd_image(ctx)
    assert image is not None  # skip_reason said why otherwise
    scheduler = scheduler_name(r)
    marker = f"{step}-sharing"

    def checked(c: StepContext) -> bool:
        return c.done_this_run(marker)

    def absent(c: StepContext) -> bool:
        return not pods(c, context)

    delete = delete_argv(context)

    def clean(c: StepContext) -> None:
        c.host.runner.run(delete, timeout=150)

    state: dict[str, Any] = {}

    def on_one_gpu(c: StepContext) -> bool:
        uuid, why = same_gpu(c, context)
        state["uuid"], state["why"] = uuid, why
        return uuid is not None

    def sees(name: str) -> tuple[Callable[[StepContext], bool], Callable[[StepContext], str]]:
        def check(c: StepContext) -> bool:
            if c.planning and name not in pods(c, context):  # a plan sees no pod to exec into: not yet seen
                return False
            mem, text = memory_seen(c, context, name)
            state.setdefault("mem", {})[name] = mem
            state[f"text-{name}"] = text
            if not mem or any(m != GPUMEM for m in mem):
                return False
            c.note(f"{name}: nvidia-smi memory.total = {', '.join(f'{m} MiB' for m in mem)}")
            if all(n in state.get("mem", {}) for n in NAMES) and state.get("uuid"):
                seen = summary(c, context, r, state["uuid"], state["mem"])
                c.note(seen)
                c.state.record_action(c.step_id, SEEN, "ok", run=c.call.run_id, message=seen)
            return True

        def failure(c: StepContext) -> str:
            text = state.get(f"text-{name}") or "(no output)"
            return (f"nvidia-smi in {name} does not report the {GPUMEM} MiB HAMi should limit it to: "
                    + "\n    ".join(text.splitlines()[-8:] or ["(no output)"])
                    + "\n  is HAMi's device plugin (and HAMi-core in the pod) serving this node?")
        return check, failure

    acts: list[A.Action] = [
        *K.cluster_images(ctx, context, [image], on_kind=bool(r.get("on_kind"))),
        K.write(MANIFEST, manifest(image, scheduler),
                f"write the sharing check's two pods ({', '.join(NAMES)}: nvidia.com/gpu 1, gpumem {GPUMEM}, "
                f"gpucores {GPUCORES} each; schedulerName {scheduler}; {image})", f"{step}-sharing-manifest"),
        K.Cmd(f"{step}-sharing-clean", "remove sharing-check pods left by an earlier check", delete,
              lambda c: checked(c) or absent(c), timeout=150),
        K.Cmd(f"{step}-sharing-apply", f"start the two sharing-check pods on {context}",
              K.kubectl(context, "apply", "-f", K.hp(ctx, MANIFEST)), checked),
        CleanOnFail(f"{step}-sharing-running", f"both sharing pods are Running ({', '.join(NAMES)})",
                    lambda c: checked(c) or running(c, context), timeout=300, interval=K.POLL,
                    describe=lambda c: not_running(c, context), cleanup=delete),
        Check(f"{step}-sharing-same-gpu", "both pods sit on the same physical GPU (HAMi's "
              f"{ALLOCATED} annotation names it)", lambda c: checked(c) or on_one_gpu(c),
              lambda c: str(state.get("why") or "no allocation seen"), on_failure=clean, reads=get_argv(context)),
    ]
    for name in NAMES:
        check, failure = sees(name)

        def holds(c: StepContext, check: Callable[[StepContext], bool] = check) -> bool:
            return checked(c) or check(c)
        acts.append(Check(f"{step}-sharing-memory-{name.rsplit('-', 1)[1]}",
                          f"nvidia-smi in {name} reports {GPUMEM} MiB (HAMi's limit, not the card's memory)",
                          holds, failure, on_failure=clean, reads=exec_argv(context, name)))
    acts.append(K.Cmd(marker, "remove the two sharing-check pods", delete, checked, timeout=150))
    return acts


@dataclass
class CleanOnFail(A.WaitFor):
    """A wait that deletes the check's pods when it fails (the command is shown in the plan)."""

    cleanup: list[str] | None = None

    def preview(self, ctx: StepContext) -> list[str]:
        from ..host import join_argv

        return super().preview(ctx) + ([f"  on failure: $ {join_argv(self.cleanup)}"] if self.cleanup else [])

    def apply(self, ctx: StepContext) -> None:
        try:
            super().apply(ctx)
        except StepFailed:
            if self.cleanup:
                ctx.host.runner.run(self.cleanup, timeout=150)
            raise


def seen_text(ctx: StepContext, a: Any, r: dict[str, Any]) -> str | None:
    """What the step's summary says about sharing: what the last check saw, or why none ran."""
    if not a.verify_sharing:
        return None
    why = skip_reason(ctx, a, r)
    if why is not None:
        return "sharing: not checked (" + why.removesuffix("; the sharing check is skipped") + ")"
    record = ctx.action_record(SEEN) or {}
    message = record.get("message")
    if not message:
        return None
    return str(message) + ("" if record.get("run") == ctx.call.run_id else
                           f" (checked {time.strftime('%Y-%m-%d %H:%M', time.localtime(float(record.get('at') or 0)))})")


def verify_sharing(ctx: StepContext, a: Any) -> str:
    """The same check outside a run (``gpuwizard verify``): the pods from stdin (no file written),
    wait, read, delete. Raises StepFailed with what was seen."""
    from .hami import resolve

    r = resolve(ctx, a)
    why = skip_reason(ctx, a, r)
    if why is not None:
        return "not checked: " + why.removesuffix("; the sharing check is skipped")
    context = r["context"]
    image = K.vectoradd_image(ctx)
    assert image is not None
    runner = ctx.host.runner
    delete = delete_argv(context)
    runner.run(delete, timeout=150, check=True)
    try:
        runner.run(K.kubectl(context, "apply", "-f", "-"), stdin=manifest(image, scheduler_name(r)), timeout=60,
                   check=True)
        deadline = time.monotonic() + 300
        while not running(ctx, context):
            if time.monotonic() > deadline:
                raise StepFailed(not_running(ctx, context))
            if runner.cancel.wait(K.POLL):
                raise StepFailed("cancelled while waiting for the sharing pods")
        uuid, wrong = same_gpu(ctx, context)
        if uuid is None:
            raise StepFailed(wrong)
        mem = {}
        for name in NAMES:
            mem[name], text = memory_seen(ctx, context, name)
            if not mem[name] or any(m != GPUMEM for m in mem[name]):
                tail = "\n    ".join(line for line in text.splitlines()[-6:] if line.strip()) or "(no output)"
                raise StepFailed(f"nvidia-smi in {name} does not report {GPUMEM} MiB:\n    {tail}")
        return summary(ctx, context, r, uuid, mem)
    finally:
        runner.run(delete, timeout=150)

