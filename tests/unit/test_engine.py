"""The engine: plans are data, re-runs change nothing, failures and reboots are recorded and resumed."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from gpuwizard import actions as A
from gpuwizard.engine import Engine, Step
from gpuwizard.errors import EXIT_FAILED, EXIT_OK, EXIT_REBOOT
from gpuwizard.host import Host, Runner
from gpuwizard.state import State

from ..conftest import write_tool


class NoAnswers(BaseModel):
    pass


class BlacklistThenInstall(Step):
    """A two-phase step like the driver's: blacklist, reboot, install."""

    id = "driver"
    title = "two-phase"
    Answers = NoAnswers

    def plan(self, ctx, answers):
        return [
            A.WriteFile("blacklist", "blacklist nouveau", "/etc/modprobe.d/bl.conf", "blacklist nouveau\noptions nouveau modeset=0\n"),
            A.Reboot("reboot", "reboot to unload nouveau", "nouveau is loaded"),
            A.Run("install", "install the thing", ["installer", "--silent"], creates="/usr/lib/thing.so"),
        ]

    def verify(self, ctx, answers):
        return "installed" if ctx.host.exists("/usr/lib/thing.so") else None


class ConfigureDocker(Step):
    id = "container"
    title = "configure"
    Answers = NoAnswers

    def plan(self, ctx, answers):
        def add(cfg):
            cfg.setdefault("runtimes", {})["nvidia"] = {"path": "nvidia-container-runtime", "args": []}
            return cfg

        return [
            A.EditJson("daemon-json", "add the nvidia runtime", "/etc/docker/daemon.json", add),
            A.Run("restart", "restart docker", ["flaky"], idempotent=True),
        ]


def make_engine(root: Path, bin_dir: Path, steps: list[Step], dry_run: bool = False) -> tuple[Engine, list]:
    host = Host(root, Runner(path=str(bin_dir), dry_run=dry_run))
    state = State.load(root / "state.json") or State(root / "state.json")
    engine = Engine(host, state, {s.id: s for s in steps}, detector=lambda h: {})
    events: list = []
    engine.listeners.append(events.append)
    return engine, events


def installer(bin_dir: Path, root: Path) -> None:
    write_tool(bin_dir, "installer", f"import pathlib; print('installing'); p = pathlib.Path({str(root)!r}) / 'usr/lib'; p.mkdir(parents=True, exist_ok=True); (p / 'thing.so').write_text('x')")


def test_reboot_two_phases_and_resume(fake_root: Path, bin_dir: Path):
    installer(bin_dir, fake_root)
    step = BlacklistThenInstall()
    engine, events = make_engine(fake_root, bin_dir, [step])
    assert engine.run(["driver"], {"driver": NoAnswers()}) == EXIT_REBOOT
    saved = json.loads((fake_root / "state.json").read_text())
    assert saved["steps"]["driver"]["status"] == "reboot-required"
    assert saved["steps"]["driver"]["boot_id"] == "11111111-2222-3333-4444-555555555555"
    assert not (fake_root / "usr/lib/thing.so").exists()
    assert [e.kind for e in events if e.kind == "reboot-required"] == ["reboot-required"]

    # --resume on the same boot: "reboot first", nothing runs
    engine, events = make_engine(fake_root, bin_dir, [step])
    assert engine.run(["driver"], {"driver": NoAnswers()}) == EXIT_REBOOT
    assert "reboot first" in [e for e in events if e.kind == "reboot-required"][0].text
    assert not (fake_root / "usr/lib/thing.so").exists()

    # after the reboot (a new boot id) it goes on, without writing the blacklist again
    (fake_root / "proc/sys/kernel/random/boot_id").write_text("99999999-2222-3333-4444-555555555555\n")
    mtime = (fake_root / "etc/modprobe.d/bl.conf").stat().st_mtime_ns
    engine, events = make_engine(fake_root, bin_dir, [step])
    assert engine.run(["driver"], {"driver": NoAnswers()}) == EXIT_OK
    outcomes = {e.action: e.status for e in events if e.kind == "action-finished"}
    assert outcomes == {"blacklist": "ok", "reboot": "ok", "install": "changed"}
    assert (fake_root / "etc/modprobe.d/bl.conf").stat().st_mtime_ns == mtime
    assert State.load(fake_root / "state.json").status("driver") == "done"
    assert "installing" in [e.text for e in events if e.kind == "output"]


def test_failure_is_recorded_and_resume_retries_it(fake_root: Path, bin_dir: Path):
    write_tool(bin_dir, "flaky", "import sys; print('Job for docker.service failed', file=sys.stderr); sys.exit(1)")
    (fake_root / "etc/docker").mkdir()
    (fake_root / "etc/docker/daemon.json").write_text('{"registry-mirrors": ["https://m.example"]}')
    engine, events = make_engine(fake_root, bin_dir, [ConfigureDocker()])
    assert engine.run(["container"], {"container": NoAnswers()}) == EXIT_FAILED
    st = State.load(fake_root / "state.json")
    entry = st.steps["container"]
    assert entry["status"] == "failed" and entry["failed_action"] == "restart"
    assert entry["actions"]["daemon-json"]["outcome"] == "changed"
    finished = [e for e in events if e.kind == "step-finished"][0]
    assert finished.data["tail"] == ["Job for docker.service failed"]

    write_tool(bin_dir, "flaky", "print('restarted')")
    engine, events = make_engine(fake_root, bin_dir, [ConfigureDocker()])
    assert engine.run(["container"], {"container": NoAnswers()}) == EXIT_OK
    outcomes = {e.action: e.status for e in events if e.kind == "action-finished"}
    assert outcomes == {"daemon-json": "ok", "restart": "changed"}
    backups = list((fake_root / "etc/docker").glob("daemon.json.gpuwizard-*.bak"))
    assert len(backups) == 1
    cfg = json.loads((fake_root / "etc/docker/daemon.json").read_text())
    assert cfg["registry-mirrors"] == ["https://m.example"] and "nvidia" in cfg["runtimes"]


def test_second_run_changes_nothing(fake_root: Path, bin_dir: Path):
    installer(bin_dir, fake_root)
    (fake_root / "proc/modules").write_text("")

    class Once(Step):
        id = "cuda"
        title = "once"
        Answers = NoAnswers

        def plan(self, ctx, answers):
            return [
                A.WriteFile("env", "env file", "/etc/profile.d/cuda.sh", "export PATH=/usr/local/cuda-12.6/bin:$PATH\n"),
                A.Run("install", "install", ["installer"], creates="/usr/lib/thing.so"),
            ]

        def verify(self, ctx, answers):
            from gpuwizard.errors import StepFailed

            if not ctx.host.exists("/usr/lib/thing.so"):
                raise StepFailed("gone")
            return "ok"

    engine, _ = make_engine(fake_root, bin_dir, [Once()])
    assert engine.run(["cuda"], {"cuda": NoAnswers()}) == EXIT_OK
    snapshot = {p: p.stat().st_mtime_ns for p in fake_root.rglob("*") if p.is_file() and p.name != "state.json"}
    engine, events = make_engine(fake_root, bin_dir, [Once()])
    assert engine.run(["cuda"], {"cuda": NoAnswers()}) == EXIT_OK
    assert [e for e in events if e.kind == "step-started"][0].data == {"reverify": True}
    assert {p: p.stat().st_mtime_ns for p in fake_root.rglob("*") if p.is_file() and p.name != "state.json"} == snapshot
    # a done step whose result vanished is run again
    (fake_root / "usr/lib/thing.so").unlink()
    engine, events = make_engine(fake_root, bin_dir, [Once()])
    assert engine.run(["cuda"], {"cuda": NoAnswers()}) == EXIT_OK
    assert (fake_root / "usr/lib/thing.so").exists()


def test_plan_executes_nothing(fake_root: Path, bin_dir: Path):
    installer(bin_dir, fake_root)
    engine, _ = make_engine(fake_root, bin_dir, [BlacklistThenInstall()], dry_run=True)
    planned = engine.plan(["driver"], {"driver": NoAnswers()})
    assert [a.id for a in planned[0].actions] == ["blacklist", "reboot", "install"]
    assert planned[0].done == [False, False, False]
    assert not (fake_root / "etc/modprobe.d").exists() and not (fake_root / "state.json").exists()


def test_a_bug_in_a_step_is_a_failure_not_a_crash(fake_root: Path, bin_dir: Path):
    class Buggy(Step):
        id = "kind"
        title = "buggy"
        Answers = NoAnswers

        def plan(self, ctx, answers):
            return [A.WaitFor("w", "never", check=lambda c: 1 / 0)]

    engine, events = make_engine(fake_root, bin_dir, [Buggy()])
    assert engine.run(["kind"], {"kind": NoAnswers()}) == EXIT_FAILED
    finished = [e for e in events if e.kind == "step-finished"][0]
    assert finished.text.startswith("internal error: ZeroDivisionError")
    assert "Traceback" in finished.data["traceback"]
