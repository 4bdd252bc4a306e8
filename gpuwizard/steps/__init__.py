"""The step registry: one module per step id of the contract, in run order.

Steps never import Textual: the TUI and unattended mode share every line of step logic
(tests/unit/test_import_rules.py guards this).
"""

from __future__ import annotations

from ..engine import Step
from .detect import DetectStep
from .podspec import PodspecStep
from .stubs import stub

STEP_CLASSES: list[type[Step]] = [
    DetectStep,
    stub("driver", "NVIDIA driver"),
    stub("cuda", "CUDA toolkit"),
    stub("container", "Container runtime (nvidia-container-toolkit)"),
    stub("kind", "Kubernetes cluster (Kind or existing)"),
    stub("operator", "NVIDIA gpu-operator"),
    stub("hami", "HAMi GPU sharing"),
    PodspecStep,
]


def registry() -> dict[str, Step]:
    return {cls.id: cls() for cls in STEP_CLASSES}
