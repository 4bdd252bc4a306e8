"""The typed documents of the contract: the facts (``gpuwizard doctor --json``), the state file and the
verify verdict (``gpuwizard verify --json``).

These are what detection returns and what the state file holds, key by key; tests validate real
documents (every simulated profile's doctor output, state files after whole runs) against them with
extra keys forbidden, so a key added in code without its type here fails a test.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic validates these on Python < 3.12 only from here

_STRICT = ConfigDict(extra="forbid", defer_build=True)


@with_config(_STRICT)
class HostFacts(TypedDict):
    os: str | None
    version: str | None
    pretty_name: str | None
    id_like: list[str] | None
    codename: str | None
    kernel: str | None
    arch: str | None
    secure_boot: bool | None
    nouveau_loaded: bool
    nvidia_loaded: bool


@with_config(_STRICT)
class GpuFacts(TypedDict, total=False):
    index: int
    name: str
    memory_mib: int | None
    uuid: str | None
    pci_bus_id: str | None
    mig: str | None
    pci_device_id: str | None


@with_config(_STRICT)
class DriverFacts(TypedDict):
    version: str | None
    cuda_version: str | None


@with_config(_STRICT)
class CudaToolkitFacts(TypedDict, total=False):
    version: str | None
    full_version: str | None
    path: str | None
    on_path: bool


@with_config(_STRICT)
class ContainerToolkitFacts(TypedDict):
    version: str


@with_config(_STRICT)
class DockerFacts(TypedDict, total=False):
    """``version``: the client's (``docker version`` Client.Version); ``server_version``: the
    daemon's. ``runtimes``/``default_runtime``/``cdi``: what the running daemon reports
    (``docker info``), empty while it does not run; ``missing_runtimes``: those whose binary is absent."""

    version: str | None
    server_version: str | None
    running: bool
    daemon_json: str
    runtimes: list[str]
    default_runtime: str | None
    cdi: bool
    missing_runtimes: list[str]
    daemon_json_error: str


@with_config(_STRICT)
class NodeFacts(TypedDict, total=False):
    name: str
    ready: bool
    gpu_capacity: int | None
    gpu_allocatable: int | None
    labels: dict[str, str]
    runtime: str | None  # status.nodeInfo.containerRuntimeVersion, e.g. containerd://1.7.18
    os_image: str | None
    kernel: str | None
    kubelet: str | None
    distribution: str  # kind, k3s, rke2 or kubernetes (what the kubelet version and provider ID tell)
    roles: list[str]
    taints: list[str]  # NoSchedule taints, key:effect
    gpu_product: str | None  # GPU Feature Discovery's nvidia.com/gpu.product
    gpu_count: int | None
    gpu_present: bool | None  # NFD / GFD labels or nvidia.com/gpu capacity say so; None: nothing tells
    driver: str | None  # "pre-installed": the operator found a driver it did not install; None: not known
    driver_version: str | None  # GPU Feature Discovery's label (any driver, the operator's own too)
    this_host: bool  # the node is the machine gpuwizard runs on (its name is this host's /etc/hostname)
    hami_registered: int | None  # GPUs in HAMi's registration (hami.io/node-nvidia-register); None: none
    device_plugins: list[str]  # pods advertising nvidia.com/gpu there: "gpu-operator (pod)", "hami (pod)"
    validated: bool | None  # the gpu-operator's validator is Running there; None: it does not run there
    toolkit: str | None  # "gpu-operator": its toolkit container runs there ("… (not ready)"); None: not seen


@with_config(_STRICT)
class KubernetesFacts(TypedDict, total=False):
    context: str | None
    server_version: str | None
    runtime_classes: list[dict[str, str]] | None  # {name, handler}; None: not readable
    nodes: list[NodeFacts]


@with_config(_STRICT)
class ReleaseFacts(TypedDict, total=False):
    release: str
    namespace: str
    chart_version: str
    app_version: str | None
    status: str | None


# the functional form: "nvidia-ctk" is no identifier
ToolFacts = TypedDict("ToolFacts", {"containerd": str | None, "nvidia-ctk": str | None, "kind": str | None,
                                    "kubectl": str | None, "helm": str | None})
setattr(ToolFacts, "__pydantic_config__", _STRICT)  # noqa: B010 — what with_config does, for the functional form


@with_config(_STRICT)
class DriftItem(TypedDict):
    """One thing the wizard set that is no longer so (``doctor``, from the state file's journal)."""

    step: str
    kind: str
    what: str
    reapply: str


@with_config(_STRICT)
class Facts(TypedDict):
    """The doctor document: a layer is None when absent; ``problems`` says where a probe failed."""

    host: HostFacts
    gpus: list[GpuFacts]
    gpu_source: str | None
    driver: DriverFacts | None
    driver_status: str | None
    cuda_toolkit: CudaToolkitFacts | None
    container_toolkit: ContainerToolkitFacts | None
    docker: DockerFacts | None
    kubernetes: KubernetesFacts | None
    gpu_operator: ReleaseFacts | None
    hami: ReleaseFacts | None
    tools: ToolFacts
    problems: dict[str, str]
    drift: NotRequired[list[DriftItem]]  # with a state file that has a journal


# -- the state file ---------------------------------------------------------------------------------
StepStatus = Literal["pending", "running", "done", "skipped", "failed", "reboot-required"]
Outcome = Literal["ok", "changed", "failed", "reboot-required"]


@with_config(_STRICT)
class ActionRecord(TypedDict, total=False):
    outcome: Outcome
    at: float
    run: str
    boot_id: str | None
    message: str


@with_config(_STRICT)
class StepEntry(TypedDict, total=False):
    status: StepStatus
    started: float
    finished: float
    message: str
    actions: dict[str, ActionRecord]
    boot_id: str | None
    failed_action: str | None
    facts: Facts
    boots: dict[str, str]  # {"node NAME": status.nodeInfo.bootID} when done: a later change means a reboot
    restarts: list[PodRestart]  # hami: the stale device-plugin pods it deleted
    undo_then: list[list[str]]  # an undo in progress: commands still to run once its files are back


@with_config(_STRICT)
class PodRestart(TypedDict):
    node: str
    pod: str
    why: str
    boot: str  # the node's boot id then: once per node and boot
    at: float


@with_config(_STRICT)
class RunRecord(TypedDict):
    id: str
    started: float


JournalKind = Literal["file", "tree", "packages", "helm", "helm-repo", "kind-cluster", "label", "namespace", "sysctl", "module"]


@with_config(_STRICT)
class JournalEntry(TypedDict):
    """One change a run made (gpuwizard/journal.py): what was there before and what changed, enough
    for ``gpuwizard undo`` to reverse it and ``doctor`` to tell drift. ``pending``: saved before its
    action ran, not yet completed (the process died inside it)."""

    seq: int
    step: str
    action: str | None
    run: str
    kind: JournalKind
    target: str  # what it changed, in words (a path, "apt packages", "Helm release hami (kube-system)")
    at: float
    status: Literal["pending", "done"]
    data: dict[str, Any]
    undone: NotRequired[str]  # the run id of the undo that reversed it ("nothing changed": dropped)
    undone_at: NotRequired[float]
    kept: NotRequired[str]  # undo left it as it is now, and why (others changed it since)


@with_config(_STRICT)
class StateData(TypedDict, total=False):
    """The state file: schema ``version``, the run's answers (replayable as an answer file), each
    step's entry, the boot id seen at the last start, and the run it belongs to."""

    version: int
    answers: dict[str, Any]
    steps: dict[str, StepEntry]
    boot_id: str | None
    run: RunRecord
    journal: list[JournalEntry]  # every change, in order (undo, drift)


# -- gpuwizard verify --json ----------------------------------------------------------------------
VerifyLayerName = Literal["driver", "cuda", "container", "cluster", "operator", "hami", "sharing"]
VerifyStatus = Literal["ok", "fail", "skip"]
VerifySource = Literal["answers", "state", "facts"]


@with_config(_STRICT)
class VerifyLayer(TypedDict):
    """One layer's check: ``step`` is the step whose answers ask for it, ``asked`` whether they do."""

    layer: VerifyLayerName
    step: str
    status: VerifyStatus
    detail: str
    asked: bool


@with_config(_STRICT)
class VerifyDocument(TypedDict):
    """The verify verdict: ``healthy`` (exit 0) when no layer failed and at least one is ok;
    ``source``: which layers apply (the answer file's, the state file's answers', or what the facts
    show installed); ``answers``: that answer or state file's path."""

    v: Literal[1]
    healthy: bool
    exit: int
    summary: str
    source: VerifySource
    answers: str | None
    layers: list[VerifyLayer]


_ADAPTED: dict[str, Any] = {"FACTS": Facts, "STATE": StateData, "VERIFY": VerifyDocument}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def __getattr__(name: str) -> TypeAdapter[Any]:
    """``FACTS``, ``STATE``, ``VERIFY``: validators of the three documents, each built at its first
    use (building one takes milliseconds that a wizard starting up does not need to spend)."""
    if name not in _ADAPTED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _ADAPTERS:
        _ADAPTERS[name] = TypeAdapter(_ADAPTED[name])
    return _ADAPTERS[name]
