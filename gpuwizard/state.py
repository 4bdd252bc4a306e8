"""The state file and the run lock.

The state file is what lets ``gpuwizard --resume`` continue after a crash, a closed terminal or the
reboot a driver needs. It is JSON, schema-versioned, written atomically (temp file, fsync, rename)
after every action, readable only by its owner. A state file that is corrupt or comes from a newer
gpuwizard is refused and never overwritten: the user decides what to do with it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import LockHeld, StateError
from .host import atomic_write

STATE_VERSION = 1
# The step ids in run order; the registry (gpuwizard/steps/__init__.py) is the one list, this mirror
# keeps the state module free of step imports (tests/tui/test_startup.py checks that the two agree).
STEP_IDS = ("detect", "driver", "cuda", "container", "kind", "operator", "hami", "podspec")
STATUSES = ("pending", "running", "done", "skipped", "failed", "reboot-required")


def default_state_path(root: Path, *, euid: int, rooted: bool) -> Path:
    """``<root>/var/lib/gpuwizard/state.json`` for root or a --root/--simulate run, else XDG."""
    if euid == 0 or rooted:
        return Path(root) / "var/lib/gpuwizard/state.json"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local/state")
    return Path(base) / "gpuwizard/state.json"


def default_log_dir(root: Path, *, euid: int, rooted: bool) -> Path:
    if euid == 0 or rooted:
        return Path(root) / "var/log/gpuwizard"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local/state")
    return Path(base) / "gpuwizard/logs"


def _start_over(path: Path) -> str:
    return f"move it aside to start over (mv {path} {path}.old), or pass --state with another path"


class State:
    """The state of a run, as saved on disk."""

    def __init__(self, path: Path, data: dict[str, Any] | None = None):
        self.path = Path(path)
        self.data: dict[str, Any] = data or {"version": STATE_VERSION, "answers": {}, "steps": {}, "boot_id": None}

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> State | None:
        """The saved state, or None when there is none. Raises StateError when it cannot be trusted."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read the state file {path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"the state file {path} is corrupt ({exc}); {_start_over(path)}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("version"), int):
            raise StateError(f"the state file {path} is not a gpuwizard state file; {_start_over(path)}")
        if data["version"] > STATE_VERSION:
            raise StateError(
                f"the state file {path} was written by a newer gpuwizard (state version "
                f"{data['version']}, this one understands {STATE_VERSION}); upgrade gpuwizard, or {_start_over(path)}"
            )
        if not isinstance(data.get("steps", {}), dict) or not isinstance(data.get("answers", {}), dict):
            raise StateError(f"the state file {path} is malformed; {_start_over(path)}")
        for sid, entry in data.get("steps", {}).items():
            if sid not in STEP_IDS or not isinstance(entry, dict) or entry.get("status") not in STATUSES:
                raise StateError(f"the state file {path} has an unknown step entry {sid!r}; {_start_over(path)}")
        data.setdefault("answers", {})
        data.setdefault("steps", {})
        data.setdefault("boot_id", None)
        return cls(path, data)

    # -- access ---------------------------------------------------------------------------------
    @property
    def answers(self) -> dict[str, Any]:
        answers: dict[str, Any] = self.data["answers"]
        return answers

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        steps: dict[str, dict[str, Any]] = self.data["steps"]
        return steps

    @property
    def run_id(self) -> str:
        """The id of the run this state belongs to: a fresh invocation starts a new run
        (:meth:`new_run`), ``--resume`` continues the saved one."""
        run = self.data.get("run")
        if not isinstance(run, dict) or not run.get("id"):
            run = self.new_run()
        return str(run["id"])

    def new_run(self) -> dict[str, Any]:
        run = {"id": uuid.uuid4().hex[:12], "started": time.time()}
        self.data["run"] = run
        return run

    def step(self, step_id: str) -> dict[str, Any]:
        return self.steps.setdefault(step_id, {"status": "pending"})

    def status(self, step_id: str) -> str:
        return str(self.steps.get(step_id, {}).get("status", "pending"))

    def shown_status(self, step_id: str) -> str:
        """The status as a view shows it when the step is not running in this process: a recorded
        "running" was interrupted (a crash, a kill): "stopped"."""
        status = self.status(step_id)
        return "stopped" if status == "running" else status

    def set_status(self, step_id: str, status: str, message: str | None = None, **extra: Any) -> None:
        assert status in STATUSES, status
        entry = self.step(step_id)
        entry["status"] = status
        now = time.time()
        if status == "running":
            entry["started"] = now
            entry.pop("finished", None)
        elif status != "pending":
            entry["finished"] = now
        if message is not None:
            entry["message"] = message
        entry.update(extra)

    def record_action(self, step_id: str, action_id: str, outcome: str, **extra: Any) -> None:
        actions = self.step(step_id).setdefault("actions", {})
        actions[action_id] = {"outcome": outcome, "at": time.time(), **extra}

    # -- saving ---------------------------------------------------------------------------------
    def save(self) -> None:
        data = json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n"
        atomic_write(self.path, data, 0o600)


class RunLock:
    """An exclusive fcntl lock next to the state file, naming its holder's PID.

    The lock is released by the kernel when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, state_path: Path):
        self.path = Path(str(state_path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            try:
                holder = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            except ValueError:
                holder = None
            os.close(fd)
            raise LockHeld(str(self.path), holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class UnsavedState(State):
    """A state that is never written: a dry run's (the TUI shows its progress, the real state file
    keeps what really happened)."""

    def save(self) -> None:
        return None

    @classmethod
    def copy_of(cls, state: State | None, path: Path) -> UnsavedState:
        import copy

        return cls(path, copy.deepcopy(state.data) if state is not None else None)
