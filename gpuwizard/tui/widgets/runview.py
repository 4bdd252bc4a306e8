"""The run view of a step: current action, progress, elapsed time and the live log.

Lines reach it in batches (the app buffers the engine's events and flushes them on a timer), and the
``Log`` keeps at most ``MAX_LINES``: the full output is in the log file on disk. Long lines wrap at
the log's width (:class:`WrapLog`: a ``Log`` that splits them before they are written, so it stays
as fast as a plain ``Log``; on a resize the kept lines are wrapped again).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len, chop_cells
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Log, ProgressBar, Static

MAX_LINES = 2000


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def wrap_line(line: str, width: int) -> list[str]:
    """``line`` cut into pieces of at most ``width`` cells (a terminal's wrap: no marks added)."""
    if width <= 0 or (len(line) <= width and line.isascii() and line.isprintable()):
        return [line]
    if line.isascii() and line.isprintable():
        return [line[i:i + width] for i in range(0, len(line), width)]
    if cell_len(line) <= width:
        return [line]
    return chop_cells(line, width)


class WrapLog(Log):
    """A ``Log`` whose long lines wrap at its width instead of running off to the right.

    New lines change only its virtual size, which in a ``Log`` lays the whole screen out again
    (``Widget.virtual_size`` is ``layout=True``) several times a second in a flood. The log's own
    size never depends on its lines, so here a new virtual size updates its scrollbars and repaints
    it; the screen is laid out again only when a scrollbar appears or goes (those are ``layout=True``
    themselves)."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), repaint=True)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._raw: collections.deque[str] = collections.deque(maxlen=self.max_lines)
        self._wrap_width = 0

    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> WrapLog:
        raw: list[str] = []
        for line in lines:
            raw.extend(line.splitlines())  # as Log does (an empty line adds nothing)
        self._raw.extend(raw)
        keep = self.max_lines
        width = self._wrap_width
        if width > 0:
            # wrapped from the end, only as many as the log keeps (a flood's batch has thousands)
            out: list[str] = []
            for line in reversed(raw):
                if len(line) <= width and line.isascii() and line.isprintable():  # the common case
                    out.append(line)
                else:
                    out.extend(reversed(wrap_line(self._process_line(line), width)))
                if keep is not None and len(out) >= keep:
                    break
            out.reverse()
            raw = out
        if keep is not None and len(raw) > keep:
            raw = raw[-keep:]
        return super().write_lines(raw, scroll_end)

    def watch_virtual_size(self, size: Size) -> None:
        if self.is_mounted:
            self._scroll_update(size)

    def clear(self) -> WrapLog:
        self._raw.clear()
        return super().clear()

    def on_resize(self, event: events.Resize) -> None:
        width = self._content_width()
        if width <= 0 or width == self._wrap_width:
            return
        self._wrap_width = width
        if not self._raw:
            return
        # the kept lines, wrapped again at the new width (at most MAX_LINES of them: quick)
        kept = list(self._raw)
        super().clear()
        self._raw.clear()
        self.write_lines(kept, scroll_end=True)


class RunView(Vertical):
    """Its parts are kept as attributes, not looked up: they are updated many times a second."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._action = Static("", id="run-action", classes="run-action")
        self._progress = ProgressBar(total=1, show_eta=False, id="run-progress")
        self._elapsed = Static("0:00", id="run-elapsed", classes="run-elapsed")
        self._log = WrapLog(max_lines=MAX_LINES, id="run-log", classes="run-log")

    def compose(self) -> ComposeResult:
        with Horizontal(classes="run-head"):
            yield self._action
            yield self._progress
            yield self._elapsed
        yield self._log

    @property
    def log_view(self) -> Log:
        return self._log

    def set_action(self, text: str | Text) -> None:
        self._action.update(text, layout=False)  # one line, its width fixed by the row: no layout

    def set_progress(self, done: float, total: float | None) -> None:
        self._progress.update(total=total, progress=done)

    def set_elapsed(self, seconds: float) -> None:
        self._elapsed.update(format_elapsed(seconds), layout=False)

    def write_lines(self, lines: list[str]) -> None:
        # not once the app is closing (its widgets are being removed; the log file has every line)
        if lines and self._log.is_attached:
            self._log.write_lines(lines)
