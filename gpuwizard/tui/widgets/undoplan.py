"""A step's undo plan as text: the lines ``gpuwizard undo STEP --plan`` prints (the CLI's renderer,
``undo.render``, one renderer for both), styled for the dialog. The meaning stays in the words and
marks the renderer writes (``[todo]``, ``[done]``, ``!`` before a disruptive change, ``refused:``), so
it reads the same without colour (NO_COLOR)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

if TYPE_CHECKING:  # pragma: no cover
    from ...session import UndoPlan


def undo_plan_lines(plan: UndoPlan) -> list[str]:
    """The plan's lines exactly as ``gpuwizard undo STEP --plan`` prints them (``--force`` when forced)."""
    from ...undo import render as _render_undo

    out = io.StringIO()
    _render_undo(plan.planned, out)
    return out.getvalue().splitlines()


def undo_command(plan: UndoPlan, *, run: bool = False) -> str:
    return f"gpuwizard undo {plan.sid}" + ("" if run else " --plan") + (" --force" if plan.force else "")


def style_line(line: str) -> Text:
    """One line of the renderer's output, styled by what it says."""
    body = line.lstrip(" ")
    indent = line[: len(line) - len(body)]
    if line.startswith("[") and "] " in line:  # a step's header
        return Text(line, style="bold")
    if line.startswith(("disruptive changes", "not plannable")):
        return Text(line, style="bold red")
    if body.startswith("! "):  # a disruptive action: said in words after the mark
        return Text.assemble(indent, ("! ", "bold red"), (body[2:], "red"))
    if body.startswith(("refused:", "cannot plan:")) or body.startswith("decision: refused:"):
        return Text(line, style="bold red")
    if body.startswith("[todo] "):
        return Text.assemble(indent, ("[todo] ", "bold yellow"), body[7:])
    if body.startswith("[done] "):
        return Text.assemble(indent, ("[done] ", "green"), (body[7:], "dim"))
    if body.startswith("decision: "):
        return Text.assemble(indent, ("decision: ", "bold"), body[10:])
    if body.startswith("+") and not body.startswith("+++"):
        return Text(line, style="green")
    if body.startswith("-") and not body.startswith("---"):
        return Text(line, style="red")
    if body.startswith("@@"):
        return Text(line, style="cyan")
    return Text(line)


def hang_wrap(line: Text, width: int) -> list[Text]:
    """``line`` cut at spaces into pieces of at most ``width`` cells, each after the first indented
    under the line's text (a hanging indent: a long path or command stays readable as one item)."""
    plain = line.plain
    if width <= 0 or len(plain) <= width or not plain.isascii():
        return [line]  # short, or wide characters: the terminal's own wrap
    indent = len(plain) - len(plain.lstrip(" "))
    hang = min(indent + 2, width // 2)
    out: list[Text] = []
    rest, room, floor = line, width, indent
    while len(rest.plain) > room:
        cut = rest.plain.rfind(" ", 0, room + 1)
        if cut <= floor:  # no space to cut at: cut the word
            cut = room
        out.append(rest[:cut] if not out else Text(" " * hang) + rest[:cut])
        tail = rest[cut:]
        rest = tail[len(tail.plain) - len(tail.plain.lstrip(" ")):]
        room, floor = width - hang, 0
    if rest.plain:
        out.append(rest if not out else Text(" " * hang) + rest)
    return out


class HangingLines:
    """Lines of text wrapped, at the width they are given, with a hanging indent (``hang_wrap``)."""

    def __init__(self, lines: list[Text]):
        self.lines = lines

    @property
    def plain(self) -> str:
        return "\n".join(line.plain for line in self.lines)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            for piece in hang_wrap(line, options.max_width):
                piece.no_wrap = False  # only a line hang_wrap left whole wraps (wide characters)
                yield piece

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((line.cell_len for line in self.lines), default=0)
        return Measurement(min(widest, 8), widest)


def undo_plan_text(plan: UndoPlan) -> HangingLines:
    """What the undo dialog shows: the plan as ``undo --plan`` prints it; when it refuses, then what
    ``--force`` would do (``undo --plan --force``)."""
    out: list[Text] = []
    parts = [plan] + ([plan.forced] if plan.forced is not None else [])
    for n, part in enumerate(parts):
        if n:
            out += [Text(""), Text(f"── with --force ({undo_command(part)}) ──", style="bold")]
        out += [style_line(line) for line in undo_plan_lines(part) or ["nothing to undo"]]
    return HangingLines(out)


__all__ = ["undo_plan_lines", "undo_plan_text", "undo_command", "style_line", "hang_wrap", "HangingLines"]
