"""Errors a user can act on.

Every error the CLI reports to a person is a ``GpuwizardError``: it carries the exit code of the
public contract and a message that says what happened and what to do next, so the CLI never has to
show a traceback for a foreseeable failure.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_REBOOT = 3
EXIT_LOCKED = 4


class GpuwizardError(Exception):
    """Base class: ``str(err)`` is the message shown to the user."""

    exit_code = EXIT_FAILED


class InvalidInput(GpuwizardError):
    """Bad CLI arguments, answer file, profile name... Nothing was executed."""

    exit_code = EXIT_INVALID


class StateError(GpuwizardError):
    """The state file is corrupt, from a newer gpuwizard, or missing when --resume needs it."""

    exit_code = EXIT_INVALID


class LockHeld(GpuwizardError):
    exit_code = EXIT_LOCKED

    def __init__(self, path: str, pid: int | None):
        self.pid = pid
        who = f"PID {pid}" if pid else "another process"
        super().__init__(
            f"another gpuwizard ({who}) holds the lock {path}; wait for it to finish "
            f"(or stop it) and run again"
        )


class ToolMissing(GpuwizardError):
    def __init__(self, tool: str, hint: str = ""):
        self.tool = tool
        msg = f"required tool '{tool}' was not found on PATH"
        super().__init__(msg + (f"; {hint}" if hint else ""))


class CommandFailed(GpuwizardError):
    def __init__(self, argv: list[str], rc: int, tail: list[str] | None = None):
        self.argv = list(argv)
        self.rc = rc
        self.tail = list(tail or [])
        super().__init__(f"command failed (exit {rc}): {' '.join(argv)}")


class StepFailed(GpuwizardError):
    """A step cannot go on; the message says why and what the user can do."""


class PlanRefused(InvalidInput):
    """The plan can already tell that the answers ask for what cannot be (a pod spec asking 2 GPUs of a
    1-GPU host): refused at plan time, exit 2, nothing executed."""


class NotImplementedStep(StepFailed):
    def __init__(self, step_id: str):
        super().__init__(
            f"step '{step_id}' is not implemented yet in this version of gpuwizard; "
            f"remove the '{step_id}:' section from the answer file to run the other steps"
        )


class RebootRequired(GpuwizardError):
    exit_code = EXIT_REBOOT
