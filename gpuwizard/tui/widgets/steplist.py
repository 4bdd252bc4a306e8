"""The step list: always visible, one line per step with its live status; Enter jumps to it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ..messages import Navigate

# a glyph and a word per status, so the list reads the same without colour (NO_COLOR)
STATUS_MARK = {
    "pending": ("·", "pending", ""),
    "stopped": ("■", "stopped", "bold yellow"),
    "running": ("▶", "running", "bold yellow"),
    "done": ("✓", "done", "bold green"),
    "skipped": ("-", "skipped", "dim"),
    "failed": ("✗", "failed", "bold red"),
    "reboot-required": ("↻", "reboot", "bold magenta"),
    "n/a": (" ", "n/a", "dim"),
}


def status_text(status: str) -> Text:
    mark, word, style = STATUS_MARK.get(status, ("?", status, ""))
    return Text.assemble((mark, style), " ", (word, style))


class StepList(OptionList):
    """Entries: ``welcome``, each step id, ``summary``; a line per step shows its status. Enter (or
    a click) posts Navigate. ``statuses`` and ``current`` are reactive: bound to the main screen's."""

    statuses: reactive[dict[str, str]] = reactive(dict, init=False)
    current: reactive[str] = reactive("welcome", init=False)

    def __init__(self, step_ids: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.step_ids = step_ids
        self.border_title = "Steps"

    def on_mount(self) -> None:
        self.refresh_statuses(self.statuses, self.current)

    def watch_statuses(self, statuses: dict[str, str]) -> None:
        self.refresh_statuses(statuses, self.current)

    def watch_current(self, current: str) -> None:
        self.refresh_statuses(self.statuses, current)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(Navigate(event.option.id))

    def refresh_statuses(self, statuses: dict[str, str], current: str | None = None) -> None:
        highlighted = self.highlighted
        options = [Option(Text("  Welcome / host"), id="welcome")]
        for n, sid in enumerate(self.step_ids, 1):
            status = statuses.get(sid, "pending")
            mark, word, style = STATUS_MARK.get(status, ("?", status, ""))
            label = Text.assemble((f"{mark} ", style), f"{n} {sid:<10}", (word, style))
            options.append(Option(label, id=sid))
        options.append(Option(Text("  Summary"), id="summary"))
        self.set_options(options)
        if current is not None:
            try:
                self.highlighted = self.get_option_index(current)
            except Exception:  # noqa: BLE001 — an unknown id: keep the old highlight
                self.highlighted = highlighted
        elif highlighted is not None:
            self.highlighted = highlighted
