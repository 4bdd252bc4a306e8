"""Step ``detect``: look at the host (read-only) and keep the facts in the state file."""

from __future__ import annotations

from pydantic import Field

from .. import actions as A
from ..engine import Step, StepContext
from ..errors import StepFailed
from ..validate import Section


# -- the step's section of the answer file --------------------------------------------------------
class DetectAnswers(Section):
    require_gpu: bool = Field(True, description="Fail the run when no NVIDIA GPU is found.")


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
            if answers.require_gpu:
                raise StepFailed(
                    "no NVIDIA GPU found (NVML, nvidia-smi, lspci and sysfs show none); check that the card "
                    "is seated and passed through to this VM, or set detect: {require_gpu: false}"
                )
            return "no NVIDIA GPU found"
        names: dict[str, int] = {}
        for gpu in gpus:
            names[gpu["name"]] = names.get(gpu["name"], 0) + 1
        cards = ", ".join(f"{n}× {name}" for name, n in names.items())
        driver = facts.get("driver")
        tail = f"driver {driver['version']}" if driver else f"no working driver ({facts.get('driver_status')})"
        return f"{cards}; {tail}"
