"""The run view of a step: current action, progress, elapsed time and the live log.

Lines reach it in batches (the app buffers the engine's events and flushes them on a timer), and the
``Log`` keeps at most ``MAX_LINES``: the full output is in the log file on disk.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Log, ProgressBar, Static

MAX_LINES = 2000


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class RunView(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="run-head"):
            yield Static("", id="run-action", classes="run-action")
            yield ProgressBar(total=1, show_eta=False, id="run-progress")
            yield Static("0:00", id="run-elapsed", classes="run-elapsed")
        yield Log(max_lines=MAX_LINES, id="run-log", classes="run-log")

    @property
    def log_view(self) -> Log:
        return self.query_one("#run-log", Log)

    def set_action(self, text: str) -> None:
        self.query_one("#run-action", Static).update(text)

    def set_progress(self, done: float, total: float | None) -> None:
        bar = self.query_one("#run-progress", ProgressBar)
        bar.update(total=total, progress=done)

    def set_elapsed(self, seconds: float) -> None:
        self.query_one("#run-elapsed", Static).update(format_elapsed(seconds))

    def write_lines(self, lines: list[str]) -> None:
        if lines:
            self.log_view.write_lines(lines)
