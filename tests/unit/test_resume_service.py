"""gpuwizard-resume.service: the unit's text, its command line as systemd reads it, who counts as
started by it, and arming/disarming through the host seam (a recording runner)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gpuwizard.errors import CommandFailed
from gpuwizard.host import CommandResult, Host, Runner
from gpuwizard.resume_service import ENV_VAR, UNIT, UNIT_PATH, ResumeService, disarm, started_by_unit, systemd_booted
from gpuwizard.simulate import units as U


class FakeRunner(Runner):
    def __init__(self, fail: tuple[str, ...] = ()):
        super().__init__()
        self.ran: list[list[str]] = []
        self.fail = fail

    def run(self, argv, **kw):  # type: ignore[no-untyped-def, override]
        self.ran.append(list(argv))
        rc = 1 if any(word in argv for word in self.fail) else 0
        if rc and kw.get("check"):
            raise CommandFailed(list(argv), rc)
        return CommandResult(list(argv), rc)


def service(tmp_path: Path, **kw) -> ResumeService:  # type: ignore[no-untyped-def]
    return ResumeService.for_session(root=kw.get("root"), simulate=kw.get("simulate"),
                                     state_path=tmp_path / "my state/state.json", log_dir=tmp_path / "logs",
                                     python=kw.get("python", "/opt/gw/bin/python3"))


def test_the_unit_is_a_oneshot_after_the_network_wanted_by_multi_user(tmp_path: Path):
    unit = U.parse(service(tmp_path).unit_text())
    assert unit["Unit"]["Wants"] == ["network-online.target"] and unit["Unit"]["After"] == ["network-online.target"]
    assert unit["Service"]["Type"] == ["oneshot"] and unit["Service"]["TimeoutStartSec"] == ["infinity"]
    assert U.wanted_by(unit) == ["multi-user.target"]
    assert U.environment(unit)[ENV_VAR] == UNIT
    assert "ConditionPathExists" not in unit["Unit"] and "ExecStopPost" not in unit["Service"]


def test_exec_start_reads_back_as_the_same_argv_through_systemd_quoting(tmp_path: Path):
    odd = tmp_path / "100% $HOME \"quoted\" dir"
    svc = ResumeService.for_session(root=odd, simulate="nouveau", state_path=odd / "state.json", log_dir=odd / "log",
                                    python="/opt/my venv/bin/python3")
    [line] = U.parse(svc.unit_text())["Service"]["ExecStart"]
    assert U.split_command(line) == svc.exec_start
    assert svc.exec_start[:4] == ["/opt/my venv/bin/python3", "-m", "gpuwizard", "--resume"]
    assert svc.exec_start[4:8] == ["--simulate", "nouveau", "--root", str(odd.resolve())]
    assert "%%" in line and "$$HOME" in line  # specifiers and variables are escaped, not expanded


def test_paths_are_absolute_and_no_answer_file_is_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    svc = ResumeService.for_session(root=None, simulate=None, state_path=Path("rel/state.json"), log_dir=Path("logs"))
    argv = svc.exec_start
    assert argv[argv.index("--state") + 1] == str(tmp_path / "rel/state.json")
    assert argv[argv.index("--log-dir") + 1] == str(tmp_path / "logs")
    assert "--root" not in argv and "--answers" not in argv and Path(argv[0]).is_absolute()


def test_a_run_from_an_offline_bundle_resumes_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """After the driver's reboot the resumed run installs CUDA and the rest from the same bundle (its
    apt repository, its images, its served files): the unit names it, as an absolute path."""
    monkeypatch.chdir(tmp_path)
    svc = ResumeService.for_session(root=None, simulate=None, state_path=Path("s.json"), log_dir=Path("logs"),
                                    bundle="usb/gpu-bundle")
    argv = svc.exec_start
    assert argv[argv.index("--bundle") + 1] == str(tmp_path / "usb/gpu-bundle")
    assert "--bundle" not in ResumeService.for_session(root=None, simulate=None, state_path=Path("s.json"),
                                                       log_dir=Path("logs")).exec_start


def test_started_by_the_unit_needs_both_resume_and_the_units_variable():
    args = argparse.Namespace(resume=True)
    assert started_by_unit(args, {ENV_VAR: UNIT})
    assert not started_by_unit(args, {})
    assert not started_by_unit(argparse.Namespace(resume=False), {ENV_VAR: UNIT})
    assert not started_by_unit(args, {ENV_VAR: "other.service"})


def test_arm_writes_reloads_then_enables_and_disarm_undoes_it(tmp_path: Path):
    runner = FakeRunner()
    host = Host(tmp_path, runner)
    svc = service(tmp_path)
    svc.arm(host)
    assert svc.armed and host.read_text(UNIT_PATH) == svc.unit_text()
    assert runner.ran == [["systemctl", "daemon-reload"], ["systemctl", "enable", UNIT]]
    runner.ran.clear()
    assert disarm(host) == []
    assert not host.exists(UNIT_PATH)
    assert runner.ran == [["systemctl", "disable", UNIT], ["systemctl", "daemon-reload"]]


def test_a_unit_that_cannot_be_enabled_is_removed_and_the_error_raised(tmp_path: Path):
    host = Host(tmp_path, FakeRunner(fail=("enable",)))
    svc = service(tmp_path)
    with pytest.raises(CommandFailed):
        svc.arm(host)
    assert not svc.armed and not host.exists(UNIT_PATH)


def test_disarm_reports_what_it_could_not_do(tmp_path: Path):
    host = Host(tmp_path, FakeRunner(fail=("daemon-reload",)))
    host.write_file(UNIT_PATH, "x")
    problems = disarm(host)
    assert not host.exists(UNIT_PATH) and problems == ["`systemctl daemon-reload` exited 1"]


def test_systemd_booted_is_the_run_systemd_system_directory(tmp_path: Path):
    host = Host(tmp_path, FakeRunner())
    assert not systemd_booted(host)
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    assert systemd_booted(host)
