"""Listeners for unattended runs: the console (one line per action) and the log file (everything).

The console is clean without a TTY and under NO_COLOR; the log file keeps every line of every
command's output with timestamps, so a failure can be understood after the fact.
"""

from __future__ import annotations

import collections
import datetime as _dt
import os
import sys
from pathlib import Path
from typing import IO, Any

from .engine import Event

STATUS_STYLE = {
    "ok": "green",
    "changed": "yellow",
    "skipped": "dim",
    "failed": "bold red",
    "done": "bold green",
    "reboot-required": "bold magenta",
}
ANSI = {"green": "32", "yellow": "33", "dim": "2", "bold red": "1;31", "bold green": "1;32", "bold magenta": "1;35", "bold": "1"}


def use_color(stream: IO[str]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class ConsoleReporter:
    """One line per action with its outcome; the tail of the output when something fails."""

    def __init__(self, stream: IO[str] | None = None, color: bool | None = None, tail_lines: int = 15):
        self.stream = stream or sys.stdout
        self.color = use_color(self.stream) if color is None else color
        self.tail_lines = tail_lines
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self.log_path: Path | None = None
        self.failed = False

    def _style(self, text: str, style: str | None) -> str:
        if not self.color or not style:
            return text
        return f"\x1b[{ANSI[style]}m{text}\x1b[0m"

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, ev: Event) -> None:
        if ev.kind == "progress":
            return  # the output lines beside it say the same
        if ev.kind == "output":
            self.tail.extend(ev.data["lines"][-self.tail_lines :])
        elif ev.kind == "step-started":
            self.tail.clear()
            suffix = " (re-checking)" if ev.data.get("reverify") else ""
            self._print(self._style(f"[{ev.step}] {ev.text}{suffix}", "bold"))
        elif ev.kind == "action-finished":
            status = ev.status or ""
            self._print(f"  {self._style(f'{status:<15}', STATUS_STYLE.get(status))} {ev.text}")
        elif ev.kind == "note":
            self._print(f"  note: {ev.text}")
        elif ev.kind == "decision":
            self._print(f"  decision: {ev.text}")
        elif ev.kind == "step-finished":
            status = ev.status or ""
            line = f"[{ev.step}] {self._style(status, STATUS_STYLE.get(status))}"
            self._print(line + (f": {ev.text}" if ev.text else ""))
            if status == "failed":
                self.failed = True
                tail = ev.data.get("tail") or list(self.tail)
                if tail:
                    self._print("  last lines of output:")
                    for t in tail[-self.tail_lines :]:
                        self._print(f"    | {t}")
        elif ev.kind == "reboot-required":
            self._print(self._style(f"[{ev.step}] reboot required: {ev.text}", STATUS_STYLE["reboot-required"]))
            self._print("  reboot the host, then run: gpuwizard --resume")


class LogFile:
    """Writes every event to a per-run log file (mode 0600)."""

    def __init__(self, log_dir: Path, now: _dt.datetime | None = None):
        now = now or _dt.datetime.now()
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"gpuwizard-{now.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        self.path = log_dir / name
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 16)

    def write(self, text: str) -> None:
        stamp = _dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        self._fh.write(f"{stamp} {text}\n")

    def __call__(self, ev: Event) -> None:
        if ev.kind == "output":
            mark = "  ! " if ev.stream == "stderr" else "  | "
            self._fh.write(mark + ev.text.replace("\n", "\n" + mark) + "\n")
            return
        parts: list[Any] = [ev.kind]
        if ev.step:
            parts.append(f"[{ev.step}]")
        if ev.action:
            parts.append(f"<{ev.action}>")
        if ev.status:
            parts.append(ev.status)
        if ev.text:
            parts.append(ev.text)
        self.write(" ".join(str(p) for p in parts))
        tb = ev.data.get("traceback") if ev.data else None
        if tb:
            self._fh.write(tb)
        if ev.kind in ("action-finished", "step-finished", "run-finished", "reboot-required"):
            self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
