"""The one seam between gpuwizard and the machine it changes.

Every command the wizard runs and every file it reads or writes goes through a :class:`Host`:

* commands are argv lists (never a shell string), found on the host's PATH, with stdout and stderr
  delivered line by line to listeners *while the command runs*, a timeout, extra environment, and a
  privilege prefix (``sudo`` / ``sudo -n``) when the wizard is not root on a real host;
* system paths (``/etc/...``, ``/proc/...``) are taken under the configurable root, so the same code
  runs against ``/``, a mounted image, or a simulated host's sandbox;
* in dry-run mode, anything that would change the machine is recorded instead of done; read-only
  probes still run, because a plan needs facts.

The simulated hosts are not a second code path: they are a sandbox root plus simulated tools first on
PATH, so tests exercise this very runner with real subprocesses.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import datetime as _dt
import difflib
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, TypeVar

from .errors import CommandFailed, GpuwizardError, ToolMissing

T = TypeVar("T")

LineListener = Callable[[str, str], None]
"""Called as ``on_line(stream, line)`` with stream ``"stdout"`` or ``"stderr"``, line without newline."""
BlockListener = Callable[[str, list[str]], None]
"""Called as ``listener(stream, lines)`` with the complete lines of one read (one or thousands):
per-block delivery is what keeps a flood of output cheap for the log file and the TUI."""

TAIL_LINES = 40


@dataclass(frozen=True)
class CommandRecord:
    """One command the runner ran or tried to run, for whoever keeps a record (the log file).

    Reported twice for a command that starts: ``phase="started"`` (``rc`` and ``seconds`` None) and
    ``phase="finished"``; once, ``"finished"``, for one that never started (``outcome`` says why).
    ``argv`` is the command as it was run, privilege prefix included, tool names as given (not their
    resolved paths). Only the argv: never the environment or stdin, where secrets travel.
    """

    argv: tuple[str, ...]
    phase: Literal["started", "finished"]
    probe: bool  # a read-only probe (``change=False``): a fact, not an action
    cwd: str | None = None
    rc: int | None = None  # None: still running, or never started
    seconds: float | None = None
    outcome: str = ""  # "" (it ran to its end), or: timed out / cancelled / not found on PATH / ...


CommandListener = Callable[[CommandRecord], None]
"""Called with a :class:`CommandRecord` when a command starts and when it ends, on the thread that
runs it (never per line of output)."""


@dataclass
class CommandResult:
    argv: list[str]
    rc: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    recorded: bool = False  # dry-run: not executed
    timed_out: bool = False
    tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def check(self) -> CommandResult:
        if self.rc != 0:
            raise CommandFailed(self.argv, self.rc, self.tail)
        return self


class Runner:
    """Runs argv lists with line streaming; records instead of acting in dry-run."""

    def __init__(
        self,
        *,
        path: str | None = None,
        env: dict[str, str] | None = None,
        privilege: list[str] | None = None,
        dry_run: bool = False,
        default_timeout: float | None = 3600.0,
    ):
        self.path = path if path is not None else os.environ.get("PATH", os.defpath)
        self.extra_env = dict(env or {})
        self.privilege = list(privilege or [])
        self.dry_run = dry_run
        self.default_timeout = default_timeout
        self._local = threading.local()  # a per-thread probe cache while planning (cached_probes)
        self.listeners: list[BlockListener] = []
        self.command_listeners: list[CommandListener] = []  # every command's start and end (the log file)
        self.recorded: list[list[str]] = []
        self.cancel = threading.Event()  # set by a UI to stop the command in flight
        self._lock = threading.Lock()

    # -- lookup ---------------------------------------------------------------------------------
    def which(self, tool: str) -> str | None:
        """Absolute path of ``tool`` on the host's PATH (never an absolute path given by a caller)."""
        if "/" in tool:
            raise ValueError(f"tools are found on PATH, not by path: {tool!r}")
        return shutil.which(tool, path=self.path)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        env["PATH"] = self.path
        env.setdefault("LC_ALL", "C.UTF-8")
        if extra:
            env.update(extra)
        return env

    # -- running --------------------------------------------------------------------------------
    def run(
        self,
        argv: list[str],
        *,
        change: bool = True,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        on_line: LineListener | None = None,
        capture: bool = True,
        cwd: str | None = None,
        stdin: str | None = None,
        check: bool = False,
    ) -> CommandResult:
        """Run ``argv``.

        ``change=False`` marks a read-only probe: it runs even in dry-run mode, without sudo and
        without its output going to ``listeners`` (probes are facts, not actions). Every command,
        probes included, is reported to ``command_listeners`` when it starts and when it ends.
        """
        if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError(f"a command is a non-empty list of strings, got {argv!r}")
        argv = list(argv)
        reporters = list(self.command_listeners)
        shown = tuple([*self.privilege, *argv] if change and self.privilege and not self.dry_run else argv)

        def report(phase: Literal["started", "finished"], rc: int | None = None, seconds: float | None = None,
                   outcome: str = "") -> None:
            record = CommandRecord(shown, phase, not change, cwd, rc, seconds, outcome)
            for reporter in reporters:
                reporter(record)

        if change and self.dry_run:
            with self._lock:
                self.recorded.append(argv)
            if reporters:
                report("finished", outcome="not run (dry-run)")
            return CommandResult(argv, 0, recorded=True)

        exe = self.which(argv[0])
        if exe is None:
            if reporters:
                report("finished", outcome="not found on PATH")
            raise ToolMissing(argv[0])
        full = [exe, *argv[1:]]
        if change and self.privilege:
            # sudo's env_reset drops the session's variables (the proxy, APT_CONFIG) and the command's own
            # (DEBIAN_FRONTEND): env(1), run by sudo, sets them again
            keep = {**self.extra_env, **(env or {})}
            full = [*self.privilege, *(["env", *(f"{k}={v}" for k, v in sorted(keep.items()))] if keep else []), *full]
            sudo = self.which(self.privilege[0])
            if sudo is None:
                if reporters:
                    report("finished", outcome=f"{self.privilege[0]} not found on PATH")
                raise ToolMissing(self.privilege[0], "run gpuwizard as root")
            full[0] = sudo

        out_lines: list[str] = []
        err_lines: list[str] = []
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        listeners = list(self.listeners) if change else []

        def deliver(stream: str, lines: list[str]) -> None:
            if capture:
                (out_lines if stream == "stdout" else err_lines).extend(lines)
            tail.extend(lines[-TAIL_LINES:])
            for listener in listeners:
                listener(stream, lines)
            if on_line is not None:
                for line in lines:
                    on_line(stream, line)

        timeout = self.default_timeout if timeout is None else timeout
        if reporters:
            report("started")
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment(env),
                cwd=cwd,
                start_new_session=True,  # a timeout or cancel stops the whole process group
            )
        except OSError as exc:
            if reporters:
                report("finished", seconds=time.monotonic() - start, outcome=f"could not start: {exc.strerror or exc}")
            raise GpuwizardError(f"could not start {argv[0]}: {exc}") from exc
        try:
            if stdin is not None:
                threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
            stopped = _pump(proc, deliver, None if timeout is None else start + timeout, self.cancel)
            rc = proc.wait()
        except BaseException as exc:  # a listener's error, Ctrl-C: the record still says it ended
            if reporters:
                report("finished", seconds=time.monotonic() - start, outcome=f"interrupted ({type(exc).__name__})")
            raise
        duration = time.monotonic() - start
        timed_out = stopped == "timeout"
        if stopped:
            rc = 124 if timed_out else 130
            tail.append(
                f"[gpuwizard] timed out after {timeout:g}s and was stopped"
                if timed_out
                else "[gpuwizard] cancelled"
            )
        if rc is not None and rc < 0:  # killed by a signal: the shell convention
            rc = 128 - rc
        result = CommandResult(
            argv=argv,
            rc=rc if rc is not None else 1,
            stdout="\n".join(out_lines) + ("\n" if out_lines else ""),
            stderr="\n".join(err_lines) + ("\n" if err_lines else ""),
            duration=duration,
            timed_out=timed_out,
            tail=list(tail),
        )
        if reporters:
            report("finished", result.rc, duration,
                   "" if not stopped else f"timed out after {timeout:g}s" if timed_out else "cancelled")
        if check:
            result.check()
        return result

    @contextlib.contextmanager
    def cached_probes(self) -> Iterator[None]:
        """Within this block, on this thread, the same read-only probe runs once: for a plan, which
        changes nothing, so what a probe saw stays true. A run on another thread is not affected."""
        outer = getattr(self._local, "cache", None)
        self._local.cache = {} if outer is None else outer
        try:
            yield
        finally:
            self._local.cache = outer

    def probe_cache(self) -> dict[tuple[str, ...], CommandResult | None] | None:
        """This thread's probe cache (inside :meth:`cached_probes`), else None."""
        return getattr(self._local, "cache", None)

    def in_cache(self, cache: dict[tuple[str, ...], CommandResult | None] | None, fn: Callable[[], T]) -> T:
        """``fn()`` on this thread with ``cache`` as its probe cache: the workers of a block that
        caches (detection's concurrent probes inside a plan) share its results."""
        outer = getattr(self._local, "cache", None)
        self._local.cache = cache
        try:
            return fn()
        finally:
            self._local.cache = outer

    def peek(self, argv: list[str]) -> tuple[bool, CommandResult | None]:
        """(whether this thread's probe cache holds ``argv``, its result): what a plan already saw,
        without running anything."""
        cache = getattr(self._local, "cache", None)
        key = tuple(argv)
        if cache is None or key not in cache:
            return False, None
        return True, cache[key]

    def prefetch(self, probes: Iterable[list[str]], *, timeout: float = 20.0, workers: int = 8) -> int:
        """Run read-only probes side by side into this thread's probe cache (inside :meth:`cached_probes`),
        each once, so that the plan asking for them next finds them there; returns how many ran."""
        cache = getattr(self._local, "cache", None)
        if cache is None:
            return 0
        todo = list({tuple(p): list(p) for p in probes if tuple(p) not in cache}.values())
        if not todo:
            return 0
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="prefetch") as pool:
            for _ in pool.map(lambda argv: self.in_cache(cache, lambda: self.probe(argv, timeout=timeout)), todo):
                pass
        return len(todo)

    def probe(self, argv: list[str], *, timeout: float = 15.0) -> CommandResult | None:
        """Run a read-only probe; ``None`` when the tool is not installed (a fact, not an error)."""
        cache: dict[tuple[str, ...], CommandResult | None] | None = getattr(self._local, "cache", None)
        key = tuple(argv)
        if cache is not None and key in cache:
            return cache[key]
        try:
            result: CommandResult | None = self.run(argv, change=False, timeout=timeout)
        except ToolMissing:
            result = None
        if cache is not None:
            cache[key] = result
        return result


def _feed(pipe: IO[bytes], text: str) -> None:
    try:
        pipe.write(text.encode())
        pipe.close()
    except OSError:
        pass


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the command's process group, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _pump(
    proc: subprocess.Popen[bytes],
    deliver: Callable[[str, list[str]], None],
    deadline: float | None,
    cancel: threading.Event,
) -> str | None:
    """Read both pipes until EOF, delivering the whole lines of each read as they arrive.

    Returns ``"timeout"`` or ``"cancel"`` when the command had to be stopped, else None.
    """
    assert proc.stdout is not None and proc.stderr is not None  # Popen(stdout=PIPE, stderr=PIPE)
    pipes = (proc.stdout, proc.stderr)
    sel = selectors.DefaultSelector()
    decoders: dict[str, codecs.IncrementalDecoder] = {}
    partial: dict[str, str] = {}
    for stream, pipe in zip(("stdout", "stderr"), pipes, strict=True):
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ, stream)
        decoders[stream] = codecs.getincrementaldecoder("utf-8")(errors="replace")
        partial[stream] = ""
    stopped: str | None = None
    try:
        while sel.get_map():
            wait = 0.25
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            for key, _ in sel.select(wait):
                stream = key.data
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    text = partial[stream] + decoders[stream].decode(b"", final=True)
                    if text:
                        deliver(stream, [text])
                    continue
                text = partial[stream] + decoders[stream].decode(chunk)
                *lines, partial[stream] = text.split("\n")
                if lines:
                    deliver(stream, lines)
            if stopped is None:
                if cancel.is_set():
                    stopped = "cancel"
                elif deadline is not None and time.monotonic() >= deadline:
                    stopped = "timeout"
                if stopped:
                    _stop(proc)
    finally:
        sel.close()
        for pipe in pipes:
            pipe.close()
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _sweep_temps(target: Path) -> None:
    """Remove what a writer of ``target`` killed between its temp file and the rename left behind:
    ``.<name>.<pid>.<random>.tmp`` whose process is gone (a live writer's, this process's included, is kept)."""
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)


def _atomic_write(target: Path, data: bytes, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write(target: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write ``target`` so that a reader sees the old or the new content, never a mix."""
    _atomic_write(Path(target), data.encode() if isinstance(data, str) else data, mode)


def unified_diff(path: str, old: str | None, new: str) -> str:
    old_lines = (old or "").splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    diff = difflib.unified_diff(
        old_lines,
        new_lines,
        fromfile=path if old is not None else "/dev/null",
        tofile=path,
    )
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff)
    return text


SYSTEMD_RUNTIME_DIR = "/run/systemd/system"  # exists only while systemd is PID 1 (sd_booted(3))


class Host:
    """A machine seen through a root directory and a runner."""

    def __init__(self, root: str | os.PathLike[str] = "/", runner: Runner | None = None):
        self.root = Path(root).resolve()
        self.runner = runner or Runner()

    @property
    def dry_run(self) -> bool:
        return self.runner.dry_run

    @property
    def is_real_root(self) -> bool:
        return str(self.root) == "/"

    # -- paths ----------------------------------------------------------------------------------
    def path(self, system_path: str) -> Path:
        """``/etc/docker/daemon.json`` -> ``<root>/etc/docker/daemon.json``; refuses escapes."""
        p = PurePosixPath(system_path)
        if not p.is_absolute():
            raise ValueError(f"system paths are absolute: {system_path!r}")
        if ".." in p.parts or "\0" in system_path:
            raise ValueError(f"refusing a path that leaves the root: {system_path!r}")
        return self.root.joinpath(*p.parts[1:])

    def exists(self, system_path: str) -> bool:
        return self.path(system_path).exists()

    def read_text(self, system_path: str) -> str | None:
        try:
            return self.path(system_path).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except PermissionError:
            return None

    def glob(self, system_pattern: str) -> list[str]:
        """System paths (not root-mapped) matching a glob under the root, sorted."""
        rel = system_pattern.lstrip("/")
        found = sorted(self.root.glob(rel))
        return ["/" + str(p.relative_to(self.root)) for p in found]

    def boot_id(self) -> str | None:
        text = self.read_text("/proc/sys/kernel/random/boot_id")
        return text.strip() if text else None

    def systemd_booted(self) -> bool:
        """Whether the host (under its root) runs systemd: what sd_booted(3) checks."""
        return self.path(SYSTEMD_RUNTIME_DIR).is_dir()

    # -- changes --------------------------------------------------------------------------------
    def make_dir(self, system_path: str, mode: int = 0o700) -> None:
        """``mkdir -p`` (mode for what it creates). Dry-run: records only."""
        if self.dry_run:
            self.runner.recorded.append(["<mkdir>", system_path])
            return
        self.path(system_path).mkdir(parents=True, exist_ok=True, mode=mode)

    def write_file(self, system_path: str, content: str, mode: int = 0o644) -> bool:
        """Atomically replace a file; returns True when it changed. Dry-run: records only."""
        current = self.read_text(system_path)
        if current == content:
            return False
        if self.dry_run:
            self.runner.recorded.append(["<write>", system_path])
            return True
        self._guarded_write(system_path, content, mode)
        return True

    def _guarded_write(self, system_path: str, data: str | bytes, mode: int) -> None:
        try:
            atomic_write(self.path(system_path), data, mode)
        except PermissionError:
            raise GpuwizardError(
                f"cannot write {system_path}: permission denied; run gpuwizard as root (sudo gpuwizard …)"
            ) from None
        except OSError as exc:
            raise GpuwizardError(f"cannot write {system_path}: {exc.strerror or exc}") from None

    def backup(self, system_path: str, now: _dt.datetime | None = None) -> str | None:
        """Copy a file to ``<path>.gpuwizard-<timestamp>.bak`` before it is changed."""
        src = self.path(system_path)
        if not src.exists():
            return None
        stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
        dest = f"{system_path}.gpuwizard-{stamp}.bak"
        n = 1
        while self.path(dest).exists():
            n += 1
            dest = f"{system_path}.gpuwizard-{stamp}-{n}.bak"
        if self.dry_run:
            self.runner.recorded.append(["<backup>", system_path, dest])
            return dest
        data = src.read_bytes()
        self._guarded_write(dest, data, src.stat().st_mode & 0o777)
        return dest

    def edit_json(
        self, system_path: str, edit: Callable[[dict[str, Any]], dict[str, Any]], mode: int = 0o644
    ) -> tuple[bool, str | None]:
        """Apply ``edit`` to a JSON object file, backing it up first. Returns (changed, backup)."""
        current_text = self.read_text(system_path)
        current = load_json_object(system_path, current_text)
        new = edit(json.loads(json.dumps(current)))
        if new == current:
            return False, None
        backup = self.backup(system_path)
        self.write_file(system_path, json.dumps(new, indent=4) + "\n", mode)
        return True, backup


def load_json_object(system_path: str, text: str | None) -> dict[str, Any]:
    """Parse a JSON config file that must hold an object; absent or empty -> {}."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GpuwizardError(
            f"{system_path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            f"fix or move it, then run again — gpuwizard changed nothing"
        ) from exc
    if not isinstance(value, dict):
        raise GpuwizardError(f"{system_path} must hold a JSON object, found {type(value).__name__}")
    return value


def privilege_prefix(*, euid: int, real_root: bool, unattended: bool) -> list[str]:
    """``sudo`` when a real host is changed by a non-root user; ``sudo -n`` when nobody can type."""
    if euid == 0 or not real_root:
        return []
    return ["sudo", "-n"] if unattended else ["sudo"]


def join_argv(argv: Iterable[str]) -> str:
    """A copy-pasteable rendering of an argv list (display only; never executed)."""
    import shlex

    return " ".join(shlex.quote(a) for a in argv)
