"""Step ``detect``: look at the host (read-only) and keep the facts in the state file."""

from __future__ import annotations

from pydantic import Field

from .. import actions as A
from ..engine import Step, StepContext
from ..errors import StepFailed
from ..validate import Auto, Section
from .kind import KindStep

HOST_LAYERS = ("driver", "cuda", "container")


# -- the step's section of the answer file --------------------------------------------------------
class DetectAnswers(Section):
    require_gpu: Auto = Field("auto", description=(
        "Fail the run when this host has no NVIDIA GPU. auto: required unless the GPUs are an existing "
        "cluster's nodes (kind.existing_context) and this run sets up nothing on this host "
        "(no driver, cuda or container section) — gpuwizard on a kubeadm control plane."))


def gpu_required(ctx: StepContext, answers: DetectAnswers) -> tuple[bool, str]:
    """(whether this host must have a GPU, why)."""
    if answers.require_gpu != "auto":
        return bool(answers.require_gpu), f"detect.require_gpu: {str(answers.require_gpu).lower()}"
    kind = ctx.answers(KindStep)
    existing = kind.existing_context if kind is not None else None
    host = [layer for layer in HOST_LAYERS if ctx.in_session(layer)]
    if existing and not host:
        return False, (f"the GPUs are the nodes of the existing cluster {existing} and this run sets up nothing "
                       "on this host")
    return True, ("this run sets up " + ", ".join(host) + " on this host") if host else "the Kind cluster runs on this host"


class DetectStep(Step[DetectAnswers]):
    id = "detect"
    title = "Detect GPUs and installed layers"
    facts_shown = None
    Answers = DetectAnswers
    always_rerun = True

    def plan(self, ctx: StepContext, answers: DetectAnswers) -> list[A.Action]:
        return []  # nothing to change: detection is the step's whole work, done in verify

    def verify(self, ctx: StepContext, answers: DetectAnswers) -> str:
        facts = ctx.refresh_facts()
        ctx.state.step(self.id)["facts"] = facts
        gpus = facts["gpus"]
        if not gpus:
            required, why = gpu_required(ctx, answers)
            if required:
                raise StepFailed(
                    "no NVIDIA GPU found (NVML, nvidia-smi, lspci and sysfs show none); check that the card "
                    f"is seated and passed through to this VM, or set detect: {{require_gpu: false}} ({why})"
                )
            return f"no NVIDIA GPU on this host; none needed: {why}"
        names: dict[str, int] = {}
        for gpu in gpus:
            names[gpu["name"]] = names.get(gpu["name"], 0) + 1
        cards = ", ".join(f"{n}× {name}" for name, n in names.items())
        driver = facts.get("driver")
        tail = f"driver {driver['version']}" if driver else f"no working driver ({facts.get('driver_status')})"
        return f"{cards}; {tail}"
