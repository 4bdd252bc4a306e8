"""A form generated from a step's pydantic ``Answers`` model.

Literal choices become a Select (a blank entry when the field is optional: "auto"), bool a Checkbox,
numbers and strings an Input, anything else (lists, mappings) an Input holding YAML flow text. The
model itself validates: its error messages are shown under the field they belong to (or above the
form for model-wide rules). Only the fields that differ from the model's defaults, or were set in
the answers the form started from, end up in the answers (so an exported answer file stays short).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ValidationError
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.style import Style
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Select, Static

from ...answers import _message as answer_message
from .compact import compact_input

_NONE = type(None)


@dataclass
class FieldSpec:
    name: str
    kind: str  # bool | select | int | float | text | yaml
    choices: list[Any]
    optional: bool
    default: Any
    description: str
    required: bool = False


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            out += _members(arg)
        return out
    return [tp]


def field_specs(model: type[BaseModel]) -> list[FieldSpec]:
    specs = []
    for name, info in model.model_fields.items():
        members = _members(info.annotation)
        optional = _NONE in members
        members = [m for m in members if m is not _NONE]
        literals = [m for m in members if typing.get_origin(m) is Literal]
        others = [m for m in members if typing.get_origin(m) is not Literal]
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if literals and all(o is bool for o in others):
            choices = [v for lit in literals for v in typing.get_args(lit)] + ([True, False] if others else [])
            kind = "select"
        elif members == [bool]:
            kind, choices = "bool", []
        elif members == [int]:
            kind, choices = "int", []
        elif members == [float]:
            kind, choices = "float", []
        elif all(m is str or (literals and typing.get_origin(m) is Literal) for m in members) or (literals and others == [str]):
            kind, choices = "text", []
        else:
            kind, choices = "yaml", []
        specs.append(FieldSpec(name, kind, choices, optional, default, info.description or "", info.is_required()))
    return specs


def _choice_label(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class TickBox(Checkbox):
    """A Checkbox whose state reads from its glyph, not its colour alone: ``[x]`` on, ``[ ]`` off
    (the same under NO_COLOR or a monochrome terminal)."""

    BUTTON_LEFT = "["
    BUTTON_RIGHT = "]"
    ON, OFF = "x", " "

    @property
    def _button(self) -> Content:
        on = Style(foreground=self.get_visual_style("toggle--button").foreground, bold=True)
        return Content.assemble(self.BUTTON_LEFT, (self.ON, on) if self.value else self.OFF, self.BUTTON_RIGHT)


def _text(spec: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.kind == "yaml" and not isinstance(value, str):
        return json.dumps(value)
    return str(value)


class FieldRow(Widget):
    """One field of a form: its name, drawn by the row itself in its first 18 columns (as a Label
    18 wide showed it), its input beside it, and its error below once it has one: two widgets a
    row, where a row container, a Label and an error box made up front were four (a step pane
    appears sooner with half the widgets to mount, style and lay out)."""

    NAME_WIDTH = 18  # the input's left margin in the stylesheet (.field-row > .field-input)

    def __init__(self, field_name: str, *children: Widget, classes: str | None = None):
        super().__init__(*children, classes=classes)
        self.field_name = field_name

    def render(self) -> Content:
        return Content(self.field_name).truncate(self.NAME_WIDTH)


class AnswersForm(Vertical):
    """The form of one step. Posts :class:`AnswersForm.Changed` with the validated model (or None)."""

    class Changed(Message):
        def __init__(self, form: AnswersForm, answers: BaseModel | Sequence[BaseModel] | None):
            super().__init__()
            self.form = form
            self.answers = answers

    def __init__(self, model: type[BaseModel], current: BaseModel | None, *, blink: bool = True, id: str | None = None,
                 start: dict[str, Any] | None = None, first_rows: int | None = None):
        """``first_rows``: build only so many rows at first (those that can be on the screen), and
        the others, below the screen's bottom, in :meth:`build_rest` (a row with an error to show
        is always built at first)."""
        super().__init__(id=id, classes="answers-form")
        self.first_rows = first_rows
        self.model = model
        self.specs = field_specs(model)
        self.start = dict(start or {})  # suggested values when there are no answers yet
        self.current = current if current is not None else self._default_instance()
        self.initially_set = set(getattr(self.current, "model_fields_set", set())) | set(self.start)
        self.blink = blink
        self.valid: BaseModel | None = self.current
        # each field's value as last validated: an Input posts Changed once mounted, with the value
        # it was built with; that is no change (no validation, no re-plan of the step)
        self._seen: dict[str, Any] = {}
        self._fields: dict[str, Widget] = {}  # field name -> its input
        self._rows: dict[str, FieldRow] = {}
        self._errors: dict[str, Static] = {}  # field name -> its error box, once it had an error
        self._later: list[FieldRow] = []  # rows built by build_rest
        self._later_boxes: list[tuple[FieldRow, Static]] = []  # error boxes for those rows

    def _default_instance(self) -> BaseModel | None:
        try:
            return self.model(**self.start)
        except ValidationError:
            return None

    # -- building -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", classes="form-error", id="form-error")
        if not self.specs:
            yield Static("[dim]no answers to give for this step[/]")
            return
        for spec in self.specs:
            value = getattr(self.current, spec.name, spec.default) if self.current is not None else self.start.get(spec.name, spec.default)
            self._fields[spec.name] = self._widget(spec, value)
        # the errors of the values the form starts with come with its first frame (the boxes of
        # the others are made when a field first has one)
        _, errors, _ = self._check()
        first = len(self.specs) if self.first_rows is None else self.first_rows
        first = max([first, *(n + 1 for n, spec in enumerate(self.specs) if spec.name in errors)])
        for n, spec in enumerate(self.specs):
            error = [self._error_box(spec.name, errors[spec.name])] if spec.name in errors else []
            row = FieldRow(spec.name, self._fields[spec.name], *error, classes="field-row")
            self._rows[spec.name] = row
            if n < first:
                yield row
            else:
                self._later.append(row)
        yield Static("", classes="field-help", id="field-help")

    async def build_rest(self) -> None:
        """Mount the rows left out of the first frame (``first_rows``), with any error they have."""
        rows, self._later = self._later, []
        if rows:
            await self.mount_all(rows, before=self.query_one("#field-help"))
        boxes, self._later_boxes = self._later_boxes, []
        for row, box in boxes:
            await row.mount(box)

    def _error_box(self, name: str, message: str) -> Static:
        box = Static(f"↑ {message}", classes="field-error", id=f"err-{name}")
        self._errors[name] = box
        return box

    def show_error(self, name: str, message: str) -> None:
        """Show ``message`` under the field ``name`` (nothing: hide its error)."""
        box = self._errors.get(name)
        if box is None:
            if message:
                row, box = self._rows[name], self._error_box(name, message)
                if row in self._later:
                    self._later_boxes.append((row, box))  # mounted with its row
                else:
                    row.mount(box)
            return
        box.update(f"↑ {message}" if message else "")
        box.display = bool(message)

    def has_error(self, name: str) -> bool:
        """Whether the field ``name`` shows an error."""
        box = self._errors.get(name)
        return box is not None and box.display

    def field(self, name: str) -> Widget:
        """The input of the field ``name`` (a Checkbox, Select or Input, by its spec's kind)."""
        return self._fields[name]

    def _widget(self, spec: FieldSpec, value: Any) -> Widget:
        wid = f"f-{spec.name}"
        if spec.kind == "bool":
            box = TickBox(_choice_label(bool(value)), bool(value), id=wid, classes="field-input")
            return box
        if spec.kind == "select":
            options = [(_choice_label(c), c) for c in spec.choices]
            self._seen[wid] = value if value is not None else Select.NULL
            return Select(
                options,
                value=value if value is not None else Select.NULL,
                allow_blank=spec.optional,
                prompt="auto / not set" if spec.optional else "choose",
                compact=True,
                id=wid,
                classes="field-input",
            )
        if spec.required:
            placeholder = "required"
        elif spec.default is None:
            placeholder = "auto / not set" if spec.optional else "not set"
        else:
            placeholder = f"default: {_text(spec, spec.default)}"
        restrict = {"int": r"-?[0-9]*", "float": r"-?[0-9.]*"}.get(spec.kind)
        self._seen[wid] = _text(spec, value)
        inp = compact_input(_text(spec, value), placeholder=placeholder, restrict=restrict, id=wid, classes="field-input")
        inp.cursor_blink = self.blink
        return inp

    def on_mount(self) -> None:
        # once: the step pane learns whether the answers it starts from are valid (and which)
        self.validate_form(post=True)

    def focus_first(self, invalid_only: bool = False) -> bool:
        """Focus the first field (with an error, when ``invalid_only``); True when one was focused."""
        for spec in self.specs:
            if invalid_only and not self.has_error(spec.name):
                continue
            self.field(spec.name).focus()
            return True
        return False

    # -- reading --------------------------------------------------------------------------------
    def raw_values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(data for the model, parse errors by field)."""
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for spec in self.specs:
            widget: Any = self.field(spec.name)  # Checkbox, Select or Input, by spec.kind
            if spec.kind == "bool":
                value: Any = widget.value
            elif spec.kind == "select":
                # a Select takes its value when mounted; until then it is the one it is built with
                chosen = widget.value if widget.is_mounted else self._seen[f"f-{spec.name}"]
                value = None if chosen is Select.NULL else chosen
            else:
                text = widget.value.strip()
                if not text:
                    value = None
                    if not spec.optional:
                        continue  # empty: the model's default
                elif spec.kind == "int":
                    try:
                        value = int(text)
                    except ValueError:
                        errors[spec.name] = "expected a whole number"
                        continue
                elif spec.kind == "float":
                    try:
                        value = float(text)
                    except ValueError:
                        errors[spec.name] = "expected a number"
                        continue
                elif spec.kind == "yaml":
                    try:
                        value = yaml.safe_load(text)
                    except yaml.YAMLError:
                        errors[spec.name] = "expected YAML flow text, e.g. [0, 1] or {key: value}"
                        continue
                else:
                    value = text
            if spec.name in self.initially_set or value != spec.default:
                data[spec.name] = value
        return data, errors

    def _check(self) -> tuple[BaseModel | None, dict[str, str], list[str]]:
        """(the valid model or None, errors by field, model-wide errors) of the values now."""
        data, errors = self.raw_values()
        general: list[str] = []
        model = None
        if not errors:
            try:
                model = self.model.model_validate(data)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = err["loc"]
                    name = loc[0] if loc and loc[0] in self.model.model_fields else None
                    if name:
                        errors.setdefault(str(name), answer_message(err))
                    else:
                        general.append(answer_message(err))
        return model, errors, general

    def validate_form(self, post: bool = True) -> BaseModel | None:
        model, errors, general = self._check()
        for spec in self.specs:
            self.show_error(spec.name, errors.get(spec.name, ""))
        top = self.query_one("#form-error", Static)
        top.update("\n".join(f"✗ {g}" for g in general))
        top.display = bool(general)
        self.valid = model
        if post:
            self.post_message(self.Changed(self, model))
        return model

    # -- events ---------------------------------------------------------------------------------
    def _changed(self, wid: str | None, value: Any) -> bool:
        """Whether ``value`` is new for the field (and remember it)."""
        if wid is None:
            return True
        if wid in self._seen and self._seen[wid] == value:
            return False
        self._seen[wid] = value
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._changed(event.input.id, event.value):
            self.validate_form()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self._changed(event.select.id, event.value):
            self.validate_form()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = _choice_label(event.value)
        self.validate_form()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        widget = event.widget
        wid = widget.id or ""
        if not wid.startswith("f-"):
            return
        name = wid[2:]
        spec = next((s for s in self.specs if s.name == name), None)
        help_box = self.query_one("#field-help", Static)
        help_box.update(f"[dim]{name}: {spec.description}[/]" if spec and spec.description else "")
