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
from gpuwizard.session import WizardSession
from gpuwizard.state import State, UnsavedState
from gpuwizard.steps import registry
from gpuwizard.steps.cuda import CudaAnswers
from gpuwizard.steps.driver import DriverAnswers


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
