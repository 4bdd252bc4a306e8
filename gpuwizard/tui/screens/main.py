"""The main screen: the step list (always visible) beside the current pane (welcome, a step, summary);
the dry-run banner under the header when nothing is executed; "terminal too small" below 80x24."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Header

from ..widgets.banner import DryRunBanner, is_dry_run
from ..widgets.footer import KeyBar
from ..widgets.steplist import StepList
from .modals import FOCUS_BINDINGS, SizeGuard
from .overview import WelcomePane

if TYPE_CHECKING:  # pragma: no cover
    from ..app import WizardApp


class MainScreen(SizeGuard, Screen[None]):
    """Holds the statuses the app last computed (step id -> status) and the pane shown: reactive
    state that the step list is bound to and every mounted step pane follows."""

    BINDINGS = FOCUS_BINDINGS
    statuses: reactive[dict[str, str]] = reactive(dict, init=False)
    current: reactive[str] = reactive("welcome", init=False)

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        # the panes' switcher: the app finds the panes among its children, without a query
        self.content = ContentSwitcher(initial="welcome", id="content")

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        if is_dry_run(self.wizard):
            yield DryRunBanner(id="dry-run-banner")
        with Horizontal(id="body"):
            yield StepList(self.wizard.step_ids, id="steps").data_bind(MainScreen.statuses, MainScreen.current)
            with self.content:
                # the step panes and the summary are mounted when first shown (the first frame
                # needs only this one)
                yield WelcomePane(id="welcome", classes="pane")
        yield KeyBar()

    def on_mount(self) -> None:
        self.wizard.start()

    def watch_statuses(self, statuses: dict[str, str]) -> None:
        # mounted panes only (a pane reads the statuses when it mounts); by the type's name: the
        # step pane's module brings pydantic, which the first frame does without
        for pane in self.content.children:
            if type(pane).__name__ != "StepPane" or not pane.is_mounted:
                continue
            pane.status = statuses.get(getattr(pane, "sid", ""), "pending")  # type: ignore[attr-defined]
