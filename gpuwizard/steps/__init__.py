"""The step registry: one module per step id of the contract, in run order.

Steps never import Textual: the TUI and unattended mode share every line of step logic
(tests/unit/test_import_rules.py guards this).
"""

from __future__ import annotations

from typing import Any

from ..engine import Step
from .container import ContainerStep
from .cuda import CudaStep
from .detect import DetectStep
from .driver import DriverStep
from .hami import HamiStep
from .kind import KindStep
from .operator import OperatorStep
from .podspec import PodspecStep

STEP_CLASSES: list[type[Step[Any]]] = [
    DetectStep,
    DriverStep,
    CudaStep,
    ContainerStep,
    KindStep,
    OperatorStep,
    HamiStep,
    PodspecStep,
]


def registry() -> dict[str, Step[Any]]:
    return {cls.id: cls() for cls in STEP_CLASSES}
