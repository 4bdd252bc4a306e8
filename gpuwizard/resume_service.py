"""Hands-off reboot: ``gpuwizard-resume.service``, a one-shot systemd unit that resumes the run after
the reboot it asked for, and removes itself when that resumed run ends.

With ``driver.reboot: auto``, before the engine runs ``reboot`` it *arms* the unit:

* writes ``/etc/systemd/system/gpuwizard-resume.service`` (through the host root): ``Type=oneshot``
  (systemd waits for the run to end; the start timeout is off for oneshot units, and said so
  explicitly), ``Wants=`` + ``After=network-online.target`` (the resumed run downloads: the network
  must be up, not merely configured), ``WantedBy=multi-user.target``; ``ExecStart=`` runs the same
  interpreter and package that run now (``sys.executable -m gpuwizard``, an absolute path on this
  host) with ``--resume`` and the run's own ``--state`` and ``--log-dir`` as absolute paths (and its
  ``--root``/``--simulate``, which a simulated host needs). ``--answers`` is not passed: the state
  file holds the run's answers (``--resume`` replays them), and an answer file in /tmp may be gone
  after the boot;
* ``systemctl daemon-reload``, then ``systemctl enable gpuwizard-resume.service``.

How the resumed run knows the unit started it: the unit sets ``GPUWIZARD_RESUME_UNIT=gpuwizard-
resume.service`` in its environment (``Environment=``), and the run is a ``--resume``. Such a run
*disarms* the unit when it ends, success or failure (also when it cannot start: the lock is held,
the state is gone): ``systemctl disable``, the unit file removed, ``systemctl daemon-reload``. A
resumed run that stops for another reboot (a second phase) arms it again instead, and leaves it.
No ``ExecStopPost=`` removal: the shutdown of that very reboot would run it and remove the unit
just armed again. No ``ConditionPathExists=`` on the state: a skipped unit would stay enabled for
ever; a run without a state says so in its log and removes the unit.

A host not booted with systemd (no ``/run/systemd/system``: sd_booted(3)) cannot do this:
``reboot: auto`` is refused at plan time there (the engine), saying to reboot by hand and run
``gpuwizard --resume``.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GpuwizardError
from .host import SYSTEMD_RUNTIME_DIR, join_argv, unified_diff

if TYPE_CHECKING:  # pragma: no cover
    from .host import Host

UNIT = "gpuwizard-resume.service"
UNIT_PATH = "/etc/systemd/system/" + UNIT
ENV_VAR = "GPUWIZARD_RESUME_UNIT"

ARM_COMMANDS = (["systemctl", "daemon-reload"], ["systemctl", "enable", UNIT])
DISABLE = ["systemctl", "disable", UNIT]
RELOAD = ["systemctl", "daemon-reload"]
BY_HAND = f"systemctl disable {UNIT}; rm -f {UNIT_PATH}; systemctl daemon-reload"


def systemd_booted(host: Host) -> bool:
    return host.systemd_booted()


def no_systemd_refusal() -> str:
    return ("driver.reboot: auto resumes the run after the boot with a one-shot systemd unit "
            f"({UNIT}), but this host is not running systemd (no {SYSTEMD_RUNTIME_DIR}); gpuwizard "
            "changed nothing. Set driver.reboot: prompt: the run then stops for the reboot (exit 3); "
            "reboot yourself, then run `gpuwizard --resume`")


def started_by_unit(args: Any, environ: Mapping[str, str] | None = None) -> bool:
    """This run is the one the unit started after the boot: ``--resume`` with the unit's variable."""
    env = os.environ if environ is None else environ
    return bool(getattr(args, "resume", False)) and env.get(ENV_VAR) == UNIT


def _exec_quote(arg: str, *, command: bool = True) -> str:
    """One word of a systemd command line (systemd.service(5), "Command lines"): ``%`` is a
    specifier and, on a command line, ``$`` a variable, so both are doubled; anything beyond plain
    path characters is double-quoted with C-style escapes. ``command=False``: an Environment= word
    (specifiers, no variables)."""
    arg = arg.replace("%", "%%")
    if command:
        arg = arg.replace("$", "$$")
    if arg and all(c.isalnum() or c in "/._-+=:,@" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _package_path() -> str | None:
    """The directory to put on PYTHONPATH so that ``python -m gpuwizard`` finds this very package
    from systemd's working directory (/), or None when the interpreter finds it by itself
    (installed in its site-packages)."""
    spec = importlib.util.find_spec("gpuwizard")
    if spec is None or not spec.origin:
        return None
    parent = Path(spec.origin).resolve().parent.parent
    sites = [*site.getsitepackages(), site.getusersitepackages()]
    if any(Path(p).resolve() == parent for p in sites if p):
        return None
    return str(parent)


@dataclass
class ResumeService:
    """The unit for one session: what it runs, and whether this process armed it."""

    exec_start: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    armed: bool = False  # set once this process enabled it (a resumed run then leaves it in place)

    @classmethod
    def for_session(cls, *, root: Path | None, simulate: str | None, state_path: Path, log_dir: Path,
                    python: str | None = None, bundle: str | None = None) -> ResumeService:
        argv = [python or sys.executable, "-m", "gpuwizard", "--resume"]
        if simulate:
            argv += ["--simulate", simulate]
        if bundle:  # the run installs from an offline bundle: so does its resumption
            argv += ["--bundle", str(Path(bundle).resolve())]
        if root is not None and str(root) != "/":
            argv += ["--root", str(Path(root).resolve())]
        argv += ["--state", str(Path(state_path).absolute()), "--log-dir", str(Path(log_dir).absolute())]
        env = {ENV_VAR: UNIT}
        pkg = _package_path()
        if pkg:
            env["PYTHONPATH"] = pkg
        return cls(argv, env)

    def unit_text(self) -> str:
        env = "".join(f"Environment={_exec_quote(f'{k}={v}', command=False)}\n" for k, v in self.environment.items())
        return (
            "# Written by gpuwizard before the reboot its run asked for (driver.reboot: auto).\n"
            "# After the boot it runs `gpuwizard --resume` once; that run disables and removes this unit\n"
            "# when it ends, success or failure (a run that needs another reboot writes it again).\n"
            f"# To drop it by hand: {BY_HAND}\n"
            "[Unit]\n"
            "Description=gpuwizard: resume the run after the reboot it asked for\n"
            "Wants=network-online.target\n"
            "After=network-online.target\n"
            "\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"{env}"
            f"ExecStart={' '.join(_exec_quote(a) for a in self.exec_start)}\n"
            "TimeoutStartSec=infinity\n"
            "StandardOutput=journal+console\n"
            "StandardError=journal+console\n"
            "\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n"
        )

    def preview(self, host: Host) -> list[str]:
        """What arming shows in a plan: the unit file as a diff, the systemctl commands, what runs
        after the boot and how it goes away."""
        diff = unified_diff(UNIT_PATH, host.read_text(UNIT_PATH), self.unit_text()).splitlines()
        lines = ["before the reboot: a one-shot unit resumes the run after the boot (reboot: auto)"]
        lines += diff or [f"(no change to {UNIT_PATH})"]
        lines += ["$ " + join_argv(argv) for argv in ARM_COMMANDS]
        lines += ["$ reboot",
                  f"after the boot {UNIT} runs: $ " + join_argv(self.exec_start),
                  f"when that run ends (success or failure) it removes the unit: {BY_HAND}"]
        return lines

    def arm(self, host: Host) -> None:
        """Write the unit and enable it (through the host root and the runner). Raises
        GpuwizardError when systemd would not run it; a half-written unit is removed first."""
        try:
            host.write_file(UNIT_PATH, self.unit_text(), 0o644)
            for argv in ARM_COMMANDS:
                host.runner.run(list(argv), check=True)
        except GpuwizardError:
            disarm(host)
            raise
        self.armed = True


def _try(host: Host, argv: list[str]) -> str | None:
    """Run one removal command; what went wrong, or None."""
    try:
        result = host.runner.run(list(argv), check=False)
    except GpuwizardError as exc:  # systemctl missing, cannot start
        return f"`{join_argv(argv)}`: {exc}"
    return None if result.ok else f"`{join_argv(argv)}` exited {result.rc}"


def disarm(host: Host) -> list[str]:
    """Disable the unit, remove its file, reload systemd. Returns what went wrong (empty: it is gone);
    every step is tried."""
    problems: list[str] = []
    failed = _try(host, DISABLE)
    if failed and host.exists(UNIT_PATH):  # a unit file already gone cannot be disabled: fine
        problems.append(failed)
    if host.dry_run:
        host.runner.recorded.append(["<remove>", UNIT_PATH])
    else:
        try:
            host.path(UNIT_PATH).unlink(missing_ok=True)
        except OSError as exc:
            problems.append(f"cannot remove {UNIT_PATH}: {exc.strerror or exc}")
    failed = _try(host, RELOAD)
    if failed:
        problems.append(failed)
    return problems


__all__ = ["UNIT", "UNIT_PATH", "ENV_VAR", "ResumeService", "disarm", "started_by_unit", "systemd_booted",
           "no_systemd_refusal"]
