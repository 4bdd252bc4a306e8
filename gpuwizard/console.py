"""Listeners for unattended runs: the console (one line per action) and the log file (everything).

The console is clean without a TTY and under NO_COLOR; the log file keeps every line of every
command's output, every command's argv, exit code and duration, and at its top the effective answers
and the detected facts, each line with a dated timestamp, so a run can be understood after the fact.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import json
import os
import re
import shlex
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .host import CommandRecord, Host, Runner

if TYPE_CHECKING:  # pragma: no cover — the TUI opens its log before its first frame: no pydantic yet
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
            if not (ev.data or {}).get("auto"):  # reboot: auto says in notes what it does instead
                self._print("  reboot the host, then run: gpuwizard --resume")


JSON_VERSION = 1
# the events of a run that --output json prints (output and progress lines go to the log file only)
JSON_EVENTS = ("step-started", "step-finished", "action-started", "action-finished", "note", "decision", "reboot-required")


def json_line(stream: IO[str], event: str, **fields: Any) -> None:
    """One line of ``--output json``: ``{"v": 1, "event": ..., ...}``, secrets masked."""
    stream.write(json.dumps({"v": JSON_VERSION, "event": event, **redact(fields)}, default=str) + "\n")
    stream.flush()


class JsonReporter:
    """``--output json`` of an unattended run: a line per step and action event (its command or
    file), notes, decisions and reboots; the caller writes the summary line."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.tail: collections.deque[str] = collections.deque(maxlen=15)

    def __call__(self, ev: Event) -> None:
        if ev.kind == "output":
            self.tail.extend(ev.data["lines"][-15:])
            return
        if ev.kind not in JSON_EVENTS:
            return
        fields: dict[str, Any] = {"step": ev.step}
        if ev.action:
            fields["action"] = ev.action
        if ev.status:
            fields["status"] = ev.status
        if ev.text:
            fields["text"] = ev.text
        if ev.kind == "action-started":
            fields.update(ev.data)
        if ev.kind == "step-started":
            self.tail.clear()
            fields["reverify"] = bool(ev.data.get("reverify"))
        if ev.kind == "step-finished" and ev.status == "failed":
            fields["tail"] = list(ev.data.get("tail") or self.tail)
        json_line(self.stream, ev.kind, **fields)


def stamp(now: _dt.datetime | None = None) -> str:
    """A dated ISO 8601 timestamp with the UTC offset, to the millisecond: ``2026-12-02T13:40:01.123+01:00``."""
    return (now or _dt.datetime.now()).astimezone().isoformat(timespec="milliseconds")


SECRET_KEYS = re.compile(r"(?:^|_)(?:password|passwd|secret|token|credentials?)(?:$|_)", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


def command_line(argv: Iterable[str], cwd: str | None = None) -> str:
    """``$ argv`` as a shell would take it (display only; never executed), the password of any
    ``scheme://user:password@host`` in it masked."""
    return "$ " + URL_PASSWORD.sub(r"\1:***@", shlex.join(argv)) + (f"  (in {cwd})" if cwd else "")


def redact(value: Any) -> Any:
    """A copy with what looks like a secret masked: values of password/secret/token keys, and the
    password of ``scheme://user:password@host`` URLs (a proxy's, a mirror's)."""
    if isinstance(value, Mapping):
        return {k: "***" if isinstance(k, str) and SECRET_KEYS.search(k) and v not in (None, "") else redact(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return URL_PASSWORD.sub(r"\1:***@", value)
    return value


def plain(value: Any) -> Any:
    """Answers as data: a model (or a list of them, or a mapping of them) dumped as JSON types,
    defaults included."""
    dump = getattr(value, "model_dump", None)  # a pydantic model (imported lazily: see above)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def log_block(text: str, name: str) -> str:
    """The text of a block (``facts``, ``answers``, ``traceback``) read back from a log."""
    mark = f"{name} | "
    rests = (line.partition(" ")[2] for line in text.splitlines())
    return "".join(rest[len(mark):] + "\n" for rest in rests if rest.startswith(mark))


LOG_SLICE = 512  # output lines written to the log file at a time


class LogFile:
    """The per-run log file (mode 0600): every event, every line of every command's output, and
    every command the runner ran — probes too — with its exit code and duration.

    Every line starts with a dated timestamp (:func:`stamp`), then one of:

    * ``kind [step] <action> status text`` — an engine event;
    * ``  | line`` / ``  ! line`` — a line of a command's stdout / stderr;
    * ``command $ argv`` — a command that changes the host starts (its output follows);
    * ``command exit 0 in 1.234s $ argv`` / ``probe exit 1 in 0.012s $ argv`` — a command ended
      (``probe``: a read-only one); or ``probe not found on PATH $ argv``, ``… (timed out after 60s)``;
    * ``NAME: title`` then ``NAME | line`` for each line of a block: ``answers`` (the effective
      answers, YAML), ``facts`` (the detected facts, the ``doctor --json`` document), ``traceback``.
      ``sed -n 's/^[^ ]* facts | //p' LOG`` prints a block back (or :func:`log_block`).

    Commands reach it through :meth:`attach` (the runner's ``command_listeners``), events by adding
    it to the engine's listeners. Writes from any thread are serialised; only the argv of a command is
    written, never its environment or stdin.
    """

    def __init__(self, log_dir: Path, now: _dt.datetime | None = None):
        now = now or _dt.datetime.now()
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"gpuwizard-{now.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        self.path = log_dir / name
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 16)
        self._lock = threading.Lock()
        self._closed = False
        self._runners: list[Runner] = []

    # -- writing ----------------------------------------------------------------------------------
    def _put(self, data: str | Iterable[str], flush: bool = False) -> None:
        """Write ``data`` (a string, or strings written one after another as one entry)."""
        with self._lock:
            if self._closed:  # a worker's last probe after the run ended: nowhere to go
                return
            for part in (data,) if isinstance(data, str) else data:
                self._fh.write(part)
            if flush:
                self._fh.flush()

    def write(self, text: str, *, flush: bool = False) -> None:
        """A line (or several: the later ones indented) with the current timestamp."""
        now = stamp()
        first, *more = text.split("\n")
        self._put(f"{now} {first}\n" + "".join(f"{now}     {line}\n" for line in more), flush)

    def write_block(self, name: str, title: str, text: str) -> None:
        """``NAME: title``, then ``NAME | line`` for each line of ``text``."""
        now = stamp()
        prefix = f"{now} {name} | "
        body = text.rstrip("\n").split("\n") if text.strip() else []
        self._put(f"{now} {name}: {title}\n" + "".join(prefix + line + "\n" for line in body), flush=True)

    def write_header(self, *, facts: Mapping[str, Any] | None = None, answers: Any = None) -> None:
        """The top of the log: the effective answers (the answer file as the run uses it, defaults
        filled in, as YAML; models are dumped, secrets masked) and the detected facts (the
        ``doctor --json`` document, as JSON). Either may be given alone."""
        if answers is not None:
            import yaml

            doc = redact(plain(answers))
            self.write_block("answers", "effective answers (the answer file after defaults, as this run uses it)",
                             yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True))
        if facts is not None:
            from .doctor import document

            self.write_block("facts", "detected facts (doctor --json)", json.dumps(document(facts), indent=2, default=str))

    # -- the runner's commands --------------------------------------------------------------------
    def attach(self, host: Host | Runner) -> Callable[[], None]:
        """Record every command ``host``'s runner runs from now on (argv, exit code, duration;
        probes too), until :meth:`close` or the returned function detaches it. The one wiring both
        the unattended run and the TUI use."""
        runner = host.runner if isinstance(host, Host) else host
        runner.command_listeners.append(self.command)
        self._runners.append(runner)

        def detach() -> None:
            with contextlib.suppress(ValueError):
                runner.command_listeners.remove(self.command)
            with contextlib.suppress(ValueError):
                self._runners.remove(runner)

        return detach

    def command(self, rec: CommandRecord) -> None:
        """A runner's command started or ended (its :data:`~gpuwizard.host.CommandListener`)."""
        kind = "probe" if rec.probe else "command"
        if rec.phase == "started":
            if not rec.probe:  # a probe's output is not logged: its one line at the end says it all
                self.write(f"{kind} {command_line(rec.argv, rec.cwd)}", flush=True)
            return
        if rec.rc is None:
            verdict = rec.outcome or "ended"
            if rec.seconds is not None:
                verdict += f" after {rec.seconds:.3f}s"
        else:
            verdict = f"exit {rec.rc} in {rec.seconds or 0.0:.3f}s" + (f" ({rec.outcome})" if rec.outcome else "")
        self.write(f"{kind} {verdict} {command_line(rec.argv, rec.cwd)}", flush=not rec.probe)

    # -- engine events ----------------------------------------------------------------------------
    def __call__(self, ev: Event) -> None:
        if ev.kind == "output":
            prefix = f"{stamp()} {'  ! ' if ev.stream == 'stderr' else '  | '}"
            lines, sep = ev.output_lines(), "\n" + prefix
            # in slices: one string of a whole read (thousands of lines) is large enough for malloc
            # to map fresh pages for it, and for its encoding, at every read (tens of thousands of
            # page faults in a flood, most of the time spent on it); slices reuse the same memory
            self._put(prefix + sep.join(lines[at:at + LOG_SLICE]) + "\n" for at in range(0, len(lines), LOG_SLICE))
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
        flush = ev.kind in ("action-finished", "step-finished", "run-finished", "reboot-required")
        self.write(" ".join(str(p) for p in parts), flush=flush)
        tb = ev.data.get("traceback") if ev.data else None
        if tb:
            self.write_block("traceback", "the internal error's traceback", tb)

    def close(self) -> None:
        for runner in list(self._runners):
            with contextlib.suppress(ValueError):
                runner.command_listeners.remove(self.command)
        self._runners.clear()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def render_plan(planned: list[Any], out: IO[str]) -> None:
    disruptive: list[str] = []
    for p in planned:
        out.write(f"[{p.step.id}] {p.step.title}\n")
        for text in p.assumptions:
            out.write(f"  assumes: {text}\n")
        for text in p.decisions:
            out.write(f"  decision: {text}\n".replace("\n", "\n            ").rstrip() + "\n")
        if p.error:
            out.write(f"  {'refused' if p.refused else 'cannot plan'}: {p.error}\n")
            continue
        if not p.actions:
            out.write("  nothing to change\n" if p.step.id != "detect" else "  read-only probes (GPUs, driver, CUDA, Docker, Kubernetes)\n")
        for action, done, preview in zip(p.actions, p.done, p.previews(), strict=False):
            out.write(f"  {'[done] ' if done else '[todo] '}{action.title}\n")
            if not done:
                if action.disruptive:
                    out.write(f"      ! {action.disruptive}\n")
                    disruptive.append(f"[{p.step.id}] {action.disruptive}")
                for line in preview:
                    out.write(f"      {line}\n")
        if p.checks:
            out.write("  then checks:\n" + "".join(f"      {line}\n" for line in p.checks))
    if disruptive:
        out.write("disruptive changes in this plan:\n" + "".join(f"  ! {d}\n" for d in disruptive))
    bad = [p for p in planned if not p.ok]
    if bad:
        out.write("not plannable: " + ", ".join(f"{p.step.id} ({'refused' if p.refused else 'cannot plan'})" for p in bad) + "\n")
