"""The main screen: the step list (always visible) beside the current pane (welcome, a step, summary);
the dry-run banner under the header when nothing is executed; "terminal too small" below 80x24."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, OptionList

from ..widgets.banner import DryRunBanner, is_dry_run
from ..widgets.steplist import StepList
from .modals import FOCUS_BINDINGS, SizeGuard
from .overview import SummaryPane, WelcomePane

if TYPE_CHECKING:  # pragma: no cover
    from ..app import WizardApp


class MainScreen(SizeGuard, Screen[None]):
    BINDINGS = FOCUS_BINDINGS

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        if is_dry_run(self.wizard):
            yield DryRunBanner(id="dry-run-banner")
        with Horizontal(id="body"):
            yield StepList(self.wizard.step_ids, id="steps")
            with ContentSwitcher(initial="welcome", id="content"):
                yield WelcomePane(id="welcome", classes="pane")
                yield SummaryPane(id="summary", classes="pane")
        yield Footer()

    def on_mount(self) -> None:
        self.wizard.start()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.wizard.open(event.option.id, focus=True)
