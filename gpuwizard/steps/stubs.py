"""Steps whose implementation has not landed yet: they plan and validate their answers, but fail
loudly ("not implemented") instead of pretending when asked to run."""

from __future__ import annotations

from pydantic import BaseModel

from .. import actions as A
from ..engine import Step, StepContext
from ..errors import NotImplementedStep


def stub(step_id: str, title: str, answers: type[BaseModel] = BaseModel) -> type[Step[BaseModel]]:
    class _Stub(Step[BaseModel]):
        id = step_id
        implemented = False
        Answers = answers

        def plan(self, ctx: StepContext, answers: BaseModel) -> list[A.Action]:
            raise NotImplementedStep(step_id)

    _Stub.title = title
    _Stub.__name__ = _Stub.__qualname__ = f"{step_id.capitalize()}Stub"
    return _Stub
