"""How a step pane is built for its first frame to come quickly (issue 10, item 7), without changing
what a person sees or can do: compact buttons and inputs with Textual's own classes, form rows of
two widgets (error boxes made when first needed), rows and editor parts below the screen built
once the pane is on it, and garbage collection held only while a pane is built."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from textual.app import App, ComposeResult
from textual.widgets import Button, Input, Select, SelectionList, Static

from gpuwizard.tui.widgets.compact import compact_button, compact_input
from gpuwizard.tui.widgets.form import AnswersForm, FieldRow
from gpuwizard.tui.widgets.podspec import PodSpecEditor

from .conftest import SIZE, make_app, open_pane, settle


# -- compact buttons and inputs --------------------------------------------------------------------
class Pairs(App[None]):
    """Each widget as Textual builds it, beside the same from the compact helpers."""

    def compose(self) -> ComposeResult:
        for variant in ("default", "primary", "error"):
            yield Button("x", variant, compact=True, classes="k", id=f"b-{variant}")
            yield compact_button("x", variant, classes="k", id=f"cb-{variant}")
        for n, value in enumerate(("", "abc")):
            yield Input(value, compact=True, classes="k", restrict=r"[a-z]*", id=f"i-{n}")
            yield compact_input(value, classes="k", restrict=r"[a-z]*", id=f"ci-{n}")


async def test_compact_helpers_give_the_classes_and_state_textual_gives():
    app = Pairs()
    async with app.run_test() as pilot:
        await pilot.pause()
        for a, b in (("b-default", "cb-default"), ("b-primary", "cb-primary"), ("b-error", "cb-error"),
                     ("i-0", "ci-0"), ("i-1", "ci-1")):
            ours, theirs = app.query_one(f"#{b}"), app.query_one(f"#{a}")
            assert ours.classes == theirs.classes, (a, sorted(theirs.classes), sorted(ours.classes))
            assert ours.compact and theirs.compact  # type: ignore[attr-defined]
        for n in (0, 1):  # typing: the same classes after Input checks its new value
            for wid in (f"i-{n}", f"ci-{n}"):
                app.query_one(f"#{wid}", Input).value = "xyz"
            await pilot.pause()
            assert app.query_one(f"#i-{n}").classes == app.query_one(f"#ci-{n}").classes


# -- form rows ---------------------------------------------------------------------------------------
class Five(BaseModel):
    kind: Literal["a", "b"] = "a"
    name: str = "x"
    count: int = 1
    label: str = "y"
    late: str = Field("", max_length=3)


class FormApp(App[None]):
    def __init__(self, model: type[BaseModel], first_rows: int | None, start: dict | None = None):
        super().__init__()
        self.form = AnswersForm(model, None, first_rows=first_rows, id="form", start=start)

    def compose(self) -> ComposeResult:
        yield self.form


def names(form: AnswersForm) -> list[str]:
    return [row.field_name for row in form.query(FieldRow)]


async def test_rows_left_out_of_the_first_frame_are_built_after_it_in_their_place():
    app = FormApp(Five, first_rows=2)
    async with app.run_test(size=SIZE) as pilot:
        form = app.form
        assert names(form) == ["kind", "name"]
        # the values of the rows not built yet count: the form starts valid, with their defaults
        assert form.valid == Five()
        assert form.raw_values() == ({}, {})
        # an error for a row not built yet waits for its row
        form.show_error("late", "too long")
        assert form.has_error("late")
        await form.build_rest()
        await pilot.pause()
        assert names(form) == ["kind", "name", "count", "label", "late"]
        children = list(form.children)
        assert children[-1].id == "field-help"  # the rows came before the help line
        box = form.query_one("#err-late", Static)
        assert box.parent is form.query(FieldRow).last() and box.display
        assert "too long" in str(box.content)
        assert isinstance(form.field("kind"), Select)


async def test_a_row_with_an_error_is_in_the_first_frame_and_error_boxes_come_when_needed():
    app = FormApp(Five, first_rows=1, start={"late": "toolong"})
    async with app.run_test(size=SIZE) as pilot:
        form = app.form
        assert names(form) == ["kind", "name", "count", "label", "late"]  # up to the row in error
        assert form.has_error("late") and not form.has_error("name")
        assert len(form.query(".field-error")) == 1  # no box for a field without an error
        form.field("name").focus()
        await pilot.press("end", *["backspace"] * 3)  # name: empty is the default: still valid
        form.field("count").focus()
        await pilot.press("end", "backspace", "backspace")
        await pilot.press(*"-")  # "-": not a whole number
        await pilot.pause()
        assert form.has_error("count")
        assert len(form.query(".field-error")) == 2
        await pilot.press("backspace", "7")
        await pilot.pause()
        assert not form.has_error("count")
        assert form.query_one("#err-count", Static).display is False  # kept, hidden


# -- the pod spec builder --------------------------------------------------------------------------
async def test_the_pod_spec_builder_is_whole_once_shown_and_collection_resumes(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert gc.isenabled()
        await open_pane(pilot, "podspec")
        editor = app.pane("podspec").query_one(PodSpecEditor)
        form = editor.form
        assert app.pane_shown.is_set()
        assert gc.isenabled()
        assert names(form) == [s.name for s in form.specs]  # every row, in order
        for wid in ("#pe-gpu-type", "#pe-problems", "#pe-path", "#pe-save", "#pe-apply", "#pe-preview"):
            assert editor.query(wid), wid
        assert editor.query_one("#pe-gpu-type", SelectionList).parent.field_name == "gpu_type"
        assert "kind: Pod" not in str(editor.query_one("#pe-preview", Static).content)  # name missing
        assert form.has_error("name")
        # the plan and the check ran once the pane was shown
        assert "checking" not in str(editor.query_one("#pe-problems", Static).content)
