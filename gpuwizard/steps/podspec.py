"""Step ``podspec``: build the HAMi pod specs of the answer file, check them against what was
detected, and write each one to its ``output`` (a system path, taken under --root)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import actions as A
from .. import podspec as PS
from ..engine import Step, StepContext
from ..errors import PlanRefused, StepFailed


def cluster_facts(facts: Mapping[str, Any], hami: Any = None) -> PS.ClusterGpuFacts | None:
    """GPU facts for the rules: the detected cards (when their memory is known) and the HAMi
    settings the run uses (answers' hami section, else the chart defaults)."""
    gpus = [g for g in facts.get("gpus") or [] if g.get("memory_mib")]
    if not gpus:
        return None
    if hami is not None and not isinstance(hami, dict):
        hami = hami.model_dump()
    hami = hami or {}
    nodes = (facts.get("kubernetes") or {}).get("nodes") or []
    gpu_nodes = [n["name"] for n in nodes if n.get("gpu_capacity")]
    node = gpu_nodes[0] if len(gpu_nodes) == 1 else None  # one box: the cards are that node's
    return PS.ClusterGpuFacts.from_gpu_dicts(
        gpus,
        node=node,
        split_count=int(hami.get("split_count", 10)),
        memory_scaling=float(hami.get("memory_scaling", 1.0)),
        core_scaling=float(hami.get("core_scaling", 1.0)),
    )


@dataclass(frozen=True)
class Built:
    """A pod spec that passed every rule: its answers, its YAML and what the rules had to say."""

    spec: PS.PodSpecAnswers
    yaml: str
    warnings: list[PS.Problem]
    notes: list[str]


def build_all(ctx: StepContext, specs: list[PS.PodSpecAnswers]) -> list[Built]:
    """Every spec built against the detected cards; refuses the plan when any has errors."""
    from .hami import HamiStep

    facts = cluster_facts(ctx.facts, ctx.answers(HamiStep))
    results = [PS.make(spec, facts) for spec in specs]
    errors = [f"podspec[{i}] ({r.spec.name if r.spec else '?'}): {e}" for i, r in enumerate(results) for e in r.errors]
    if errors:
        raise PlanRefused("pod specs refused:\n  " + "\n  ".join(errors))
    built: list[Built] = []
    for r in results:
        # make() leaves spec/yaml unset only with errors, and these have none
        assert r.spec is not None and r.yaml is not None, r
        built.append(Built(r.spec, r.yaml, r.warnings, r.notes))
    return built


class PodspecStep(Step[list[PS.PodSpecAnswers]]):
    id = "podspec"
    title = "HAMi pod specs"
    facts_shown = ("kubernetes", "hami")
    Answers = PS.PodSpecAnswers
    many = True  # the answer file holds a list of these
    # the wizard's editor (fields, GPU-type choices, live YAML preview, save / apply); a dotted
    # name, imported by the TUI only: this module never imports Textual
    tui_widget = "gpuwizard.tui.widgets.podspec:PodSpecEditor"

    def plan(self, ctx: StepContext, answers: list[PS.PodSpecAnswers]) -> list[A.Action]:
        results = build_all(ctx, answers)
        return [
            A.WriteFile(f"write-{r.spec.namespace}-{r.spec.name}", f"write {r.spec.kind} {r.spec.name} to {r.spec.output}", r.spec.output, r.yaml, backup=True)
            for r in results
            if r.spec.output
        ]

    def verify(self, ctx: StepContext, answers: list[PS.PodSpecAnswers]) -> str:
        results = build_all(ctx, answers)
        for r in results:
            for w in r.warnings:
                ctx.note(f"{r.spec.name}: {w}")
            for n in r.notes:
                ctx.note(f"{r.spec.name}: {n}")
            if r.spec.output:
                if ctx.host.read_text(r.spec.output) != r.yaml:
                    raise StepFailed(f"{r.spec.output} does not hold the pod spec {r.spec.name}")
            else:
                ctx.note(f"{r.spec.name} (no output: file given):\n{r.yaml}")
        written = [r.spec.output for r in results if r.spec.output]
        return f"{len(results)} pod spec(s) valid" + (f"; written: {', '.join(written)}" if written else "")
