"""What the widgets tell the app: messages, handled by the app with ``@on``.

Widgets never call the app's methods to make something happen; they post one of these and the app
(the controller over the wizard session) decides. What widgets read of the session (plans, facts,
answers) they read; what they change goes through here.
"""

from __future__ import annotations

from typing import Any, Literal

from textual.message import Message

# "next": the pane after the current one (the step list's order, skipping what is done)
Target = str

Request = Literal["run", "skip", "next", "cancel", "undo", "doctor", "export", "quit"]


class Navigate(Message):
    """Show a pane: ``welcome``, a step id, ``summary``, or ``next`` (the step the session would
    take after the current one)."""

    def __init__(self, target: Target, focus: bool = True) -> None:
        super().__init__()
        self.target = target
        self.focus = focus


class AnswersEdited(Message):
    """A step's answers, as its form (or its own widget) now has them: valid, and different from
    the session's; the app stores them and plans again."""

    def __init__(self, sid: str, answers: Any) -> None:
        super().__init__()
        self.sid = sid
        self.answers = answers


class Requested(Message):
    """A button or a key asks for something: run / skip / undo the step ``sid`` (the current one
    when None), go to the next step, cancel the run, open the doctor or the export dialog, quit."""

    def __init__(self, what: Request, sid: str | None = None) -> None:
        super().__init__()
        self.what: Request = what
        self.sid = sid


__all__ = ["Navigate", "AnswersEdited", "Requested", "Request"]
