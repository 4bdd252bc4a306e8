"""Resume across a simulated reboot: the sandbox's own `reboot` changes the boot id and unloads
blacklisted modules; the engine refuses to go on before it and continues after it."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from gpuwizard import actions as A
from gpuwizard.detect import detect
from gpuwizard.engine import Engine, Step
from gpuwizard.errors import EXIT_OK, EXIT_REBOOT
from gpuwizard.host import Host, Runner
from gpuwizard.simulate import prepare
from gpuwizard.state import State


class NoAnswers(BaseModel):
    pass


class UnloadNouveau(Step):
    id = "driver"
    title = "blacklist nouveau, reboot"
    Answers = NoAnswers

    def plan(self, ctx, answers):
        return [
            A.WriteFile("blacklist", "blacklist nouveau", "/etc/modprobe.d/blacklist-nouveau.conf", "blacklist nouveau\noptions nouveau modeset=0\n"),
            A.Reboot("reboot", "reboot so nouveau is not loaded", "nouveau is loaded"),
        ]

    def verify(self, ctx, answers):
        return "nouveau unloaded" if not ctx.refresh_facts()["host"]["nouveau_loaded"] else None


def engine_for(sb) -> Engine:
    env = sb.env()
    host = Host(sb.root, Runner(path=env.pop("PATH"), env=env))
    state_path = sb.root / "var/lib/gpuwizard/state.json"
    return Engine(host, State.load(state_path) or State(state_path), {"driver": UnloadNouveau()}, detector=detect)


def test_resume_across_the_sandbox_reboot(tmp_path: Path):
    sb = prepare("nouveau", tmp_path / "sb")
    eng = engine_for(sb)
    assert eng.facts()["host"]["nouveau_loaded"] is True
    assert eng.run(["driver"], {"driver": NoAnswers()}) == EXIT_REBOOT
    boot_before = (sb.root / "proc/sys/kernel/random/boot_id").read_text().strip()
    saved = json.loads((sb.root / "var/lib/gpuwizard/state.json").read_text())
    assert saved["steps"]["driver"]["status"] == "reboot-required" and saved["steps"]["driver"]["boot_id"] == boot_before

    # resume before rebooting: refused, nothing changes
    assert engine_for(sb).run(["driver"], {"driver": NoAnswers()}) == EXIT_REBOOT

    # the sandbox's reboot tool, through the real runner
    eng = engine_for(sb)
    eng.host.runner.run(["reboot"], check=True)
    assert (sb.root / "proc/sys/kernel/random/boot_id").read_text().strip() != boot_before
    assert "nouveau" not in (sb.root / "proc/modules").read_text().split()

    eng = engine_for(sb)
    events = []
    eng.listeners.append(events.append)
    assert eng.run(["driver"], {"driver": NoAnswers()}) == EXIT_OK
    assert {e.action: e.status for e in events if e.kind == "action-finished"} == {"blacklist": "ok", "reboot": "ok"}
    assert State.load(sb.root / "var/lib/gpuwizard/state.json").status("driver") == "done"
    assert [c["argv"] for c in sb.calls() if c["argv"][0] == "reboot"] == [["reboot"]]
