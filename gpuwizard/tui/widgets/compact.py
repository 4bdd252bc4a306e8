"""Compact Buttons and Inputs built with the CSS classes Textual would give them, from the start.

``Button(..., compact=True)`` and ``Input(..., compact=True)`` get their state classes one at a
time (``-textual-compact`` from the ``compact`` reactive, a Button's ``-primary`` and
``-style-default`` from its watchers, an Input's ``-valid`` once its value is checked), and at each
one Textual re-applies the whole stylesheet to the widget (for an Input, to its four component
classes too), all before the widget is even mounted, where its styles are applied once more.
Here the state classes are given up front (those adds then find them there and do nothing) and
``compact`` is set without its class toggle: the same widget with the same classes
(``tests/tui/test_pane_building.py`` compares them with Textual's own), and a form of inputs
costs a third less stylesheet work before its first frame.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Button, Input
from textual.widgets.button import ButtonVariant

COMPACT = "-textual-compact"


def _classes(given: str | None, *state: str) -> str:
    return " ".join(c for c in (given, *state) if c)


def compact_button(label: str, variant: ButtonVariant = "default", *, classes: str | None = None, **kw: Any) -> Button:
    """``Button(label, variant, compact=True, ...)`` (not flat)."""
    state = ["-style-default"]  # watch_flat(False) adds it
    if variant != "default":  # watch_variant adds it; the default variant never runs the watcher
        state.append(f"-{variant}")
    button = Button(label, variant, classes=_classes(classes, *state), **kw)
    button.set_reactive(Button.compact, True)
    button.add_class(COMPACT, update=False)  # not mounted: its styles are applied at mount
    return button


def compact_input(value: str = "", *, classes: str | None = None, **kw: Any) -> Input:
    """``Input(value, compact=True, ...)``, without validators (as every Input of the wizard)."""
    state = ["-valid"] if value else []  # a value given is checked in __init__: no validators, valid
    box = Input(value, classes=_classes(classes, *state), **kw)
    box.set_reactive(Input.compact, True)
    box.add_class(COMPACT, update=False)
    return box
