"""The wizard session (the TUI's model, shared with the CLI): decisions come from the whole
session's answers, plans of a step see what the steps before it promise, a dry run never writes
the state file, an export pins what the session decided."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from gpuwizard import actions as A
from gpuwizard.answers import parse_answers, sections
from gpuwizard.cli import Session, build_parser
from gpuwizard.engine import Engine, Step
from gpuwizard.platform.apt import KEY_FINGERPRINT
from gpuwizard.platform.kinds import Check
from gpuwizard.session import WizardSession
from gpuwizard.simulate import prepare
from gpuwizard.state import State, UnsavedState
from gpuwizard.steps import registry
from gpuwizard.steps.cuda import CudaAnswers
from gpuwizard.steps.driver import DriverAnswers

from ..functional.test_host_layer import changing_calls


def make(root: Path, profile: str = "t4-bare", *extra: str) -> WizardSession:
    args = build_parser().parse_args(["--simulate", profile, "--root", str(root), *extra])
    cli = Session(args, unattended=True, err=io.StringIO())
    state = State(cli.state_path)
    if cli.host.dry_run:
        state = UnsavedState.copy_of(None, cli.state_path)
    engine = Engine(cli.host, state, registry(), unattended=False)
    model = WizardSession(engine)
    model.answers.update(sections(parse_answers("version: 1\n")))
    return model


def decision(model: WizardSession, sid: str, prefix: str) -> str:
    found = [d for d in model.plans[sid].decisions if d.startswith(prefix)]
    assert len(found) == 1, model.plans[sid].decisions
    return found[0]


def test_the_device_plugin_is_decided_from_the_whole_session_and_again_when_hami_leaves_it(tmp_path):
    model = make(tmp_path / "s")
    # the operator's pane is opened first, before HAMi's: HAMi is part of the session all the same
    model.plan(["operator"])
    assert decision(model, "operator", "device plugin").startswith("device plugin off (auto: off — HAMi brings its own")
    values = next(d for d in model.plans["operator"].described if d["id"] == "operator-values")
    assert "devicePlugin:" in "\n".join(values["preview"])
    # HAMi skipped: the operator's own device plugin advertises nvidia.com/gpu
    model.skip("hami")
    model.plan(["operator"])
    assert decision(model, "operator", "device plugin").startswith("device plugin on (auto: on — no HAMi")


def test_a_steps_plan_in_the_session_sees_what_the_steps_before_it_promise(tmp_path):
    model = make(tmp_path / "s")
    plans = model.plan(["kind"])
    kind = plans["kind"]
    assert kind.ok, kind.problem()
    assert any("the container step of this run" in a for a in kind.assumptions)
    assert {"driver", "cuda", "container"} <= set(plans)  # planned on the way, in order


class _Apply(A.Action):
    def __init__(self, action_id: str, title: str, fn):
        self.id, self.title, self.fn = action_id, title, fn

    def apply(self, ctx):
        self.fn(ctx)


SEEN: list[tuple[str, bool]] = []
RUNNING: list = []  # the running step's context, for the step planned meanwhile to look at


class _Running(Step):
    """A stand-in whose action plans another step while it runs, as the TUI plans the next pane
    while a step runs."""

    id = "driver"
    title = "stand-in"
    Answers = DriverAnswers

    def plan(self, ctx, answers):
        def overlap(c):
            RUNNING.append(c)
            c.engine.plan(["cuda"], {"cuda": CudaAnswers()})

        return [_Apply("overlap", "plan another step meanwhile", overlap)]


class _PlannedMeanwhile(Step):
    id = "cuda"
    title = "stand-in"
    Answers = CudaAnswers

    def plan(self, ctx, answers):
        SEEN.append(("this plan", ctx.planning))
        SEEN.append(("the run meanwhile", RUNNING[-1].planning))
        return []


def test_a_plan_made_while_a_step_runs_does_not_turn_the_run_into_a_plan(tmp_path):
    """Planning belongs to the call, not to the engine: while another step is planned, the running
    step still runs (its commands run, its facts are fresh)."""
    model = make(tmp_path / "s")
    model.engine.steps = {**model.engine.steps, "driver": _Running(), "cuda": _PlannedMeanwhile()}
    SEEN.clear()
    assert model.engine.run(["driver"], {"driver": DriverAnswers()}) == 0
    assert SEEN == [("this plan", True), ("the run meanwhile", False)]


def test_a_dry_run_shows_progress_but_never_writes_the_state_file(tmp_path):
    model = make(tmp_path / "s", "t4-bare", "--dry-run")
    code = model.run_step("driver")
    assert code in (0, 3)
    assert model.state.status("driver") in ("done", "reboot-required")  # shown in the wizard
    assert not Path(model.state.path).exists()  # the real state file is untouched


def test_a_dry_run_of_the_host_layer_runs_each_step_through_its_checks(tmp_path):
    """In a dry run nothing is downloaded or configured, so the container step's check of NVIDIA's key
    (the key the download before it would have fetched) and of daemon.json (which nvidia-ctk would
    have written) cannot hold: each is said as the check the real run makes there, and the step goes
    on (it failed, "holds no key", before). The state file is not written."""
    model = make(tmp_path / "s", "t4-bare", "--dry-run")
    events = []
    model.engine.listeners.append(events.append)
    for sid in ("driver", "container"):
        assert model.run_step(sid) in (0, 3), model.state.steps.get(sid)
        assert model.state.status(sid) in ("done", "reboot-required"), model.state.steps.get(sid)
    said = [e.text for e in events if e.kind == "note" and e.text.startswith("dry run: the real run checks here")]
    assert any(f"holds no key, not NVIDIA's {KEY_FINGERPRINT}" in text for text in said), said
    assert any("does not configure the nvidia runtime as asked" in text for text in said), said
    root = model.engine.host.root
    assert not (root / "usr/share/keyrings/nvidia-container-toolkit-keyring.gpg").exists()
    assert not (root / "var/cache/gpuwizard").exists()  # the download cache: a mkdir the run would make
    assert ["<mkdir>", "/var/cache/gpuwizard"] in model.engine.host.runner.recorded
    assert changing_calls(prepare("t4-bare", root).calls()) == []
    assert not Path(model.state.path).exists()


def test_a_dry_run_fails_on_a_refusal_of_the_plan_even_after_what_would_change(tmp_path):
    """An A.Fail fails the real run whatever ran before it: a dry run fails on it too. A wait in a
    dry run checks once, is recorded, and does not wait."""
    model = make(tmp_path / "s", "t4-bare", "--dry-run")
    model.engine.steps = {**model.engine.steps, "cuda": _FailAfterChange()}
    assert model.run_step("cuda") == 1
    assert model.state.steps["cuda"]["message"] == "the plan cannot go on"
    recorded = model.engine.host.runner.recorded
    assert ["<wait>", "600s", "something that never comes"] in recorded and ["touch", "/tmp/x"] in recorded


def test_a_failing_check_still_fails_a_dry_run_when_nothing_came_before_it(tmp_path):
    """A check before any action that would change the host reads the host as the run would: a dry
    run fails on it as the run does."""
    model = make(tmp_path / "s", "t4-bare", "--dry-run")
    model.engine.steps = {**model.engine.steps, "cuda": _CheckFirst()}
    assert model.run_step("cuda") == 1
    assert "the precondition is false" in model.state.steps["cuda"]["message"]


def test_an_export_pins_the_chart_versions_the_session_planned(tmp_path):
    model = make(tmp_path / "s")
    model.plan(["hami"])
    for sid in ("kind", "operator", "hami"):
        model.state.set_status(sid, "done")
    doc = yaml.safe_load(model.export_text())
    assert doc["operator"]["chart_version"] == "v26.3.3"  # the pin (gpuwizard/assets/charts/gpu-operator.yaml)
    assert doc["hami"]["chart_version"] == "2.10.0"
    replay = parse_answers(model.export_text())  # what is exported loads back
    assert replay.hami.chart_version == "2.10.0"


class _FailAfterChange(Step):
    id = "cuda"
    title = "stand-in"
    Answers = CudaAnswers

    def plan(self, ctx, answers):
        return [A.Run("change", "a change", ["touch", "/tmp/x"], idempotent=True),
                A.WaitFor("wait", "something that never comes", lambda c: False, timeout=600),
                A.Fail("refused", "refused", "the plan cannot go on")]


class _CheckFirst(Step):
    id = "cuda"
    title = "stand-in"
    Answers = CudaAnswers

    def plan(self, ctx, answers):
        return [Check("pre", "a precondition", lambda c: False, "the precondition is false"),
                A.Run("after", "a change", ["true"], idempotent=True)]


class _Notes(Step):
    id = "cuda"
    title = "stand-in"
    Answers = CudaAnswers

    def plan(self, ctx, answers):
        ctx.decide("chose this")
        ctx.note("a check's probe said so")  # happened nowhere: a plan changes nothing
        return []


def test_a_plan_holds_its_decisions_not_the_notes_of_its_probes(tmp_path):
    model = make(tmp_path / "s")
    model.engine.steps = {**model.engine.steps, "cuda": _Notes()}
    (planned,) = model.engine.plan(["cuda"], {"cuda": CudaAnswers()})
    assert planned.decisions == ["chose this"]


def test_a_failed_check_says_what_was_there_before_its_cleanup_removes_it(tmp_path):
    """The check's words are read off the host before its on_failure cleans up (the key check
    removes the keyring: its message names the key that keyring held, not "no key")."""
    import pytest

    from gpuwizard.errors import StepFailed

    path = tmp_path / "keyring"
    path.write_text("WRONGKEY")
    check = Check("key", "the keyring holds the key", lambda c: False,
                  lambda c: f"holds {path.read_text() if path.exists() else 'no key'}",
                  on_failure=lambda c: path.unlink())
    model = make(tmp_path / "s")
    from gpuwizard.engine import StepContext

    with pytest.raises(StepFailed, match="holds WRONGKEY"):
        check.apply(StepContext(model.engine, "container"))
    assert not path.exists()
