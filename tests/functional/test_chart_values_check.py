"""operator.values checked against the chart version's real keys (generated from the real
values.yaml by tools/chart_keys.py): a key the chart lacks is refused at plan time with the nearest
real key, exit 2, nothing executed."""

from __future__ import annotations

import io
from pathlib import Path

from gpuwizard.cli import main
from gpuwizard.simulate import prepare


def plan(tmp_path: Path, answers: str) -> tuple[int, str]:
    root = tmp_path / "host"
    prepare("t4-bare", root)
    f = tmp_path / "answers.yaml"
    f.write_text(answers)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "t4-bare", "--root", str(root), "plan", "--answers", str(f)], out=out, err=err)
    return code, out.getvalue() + err.getvalue()


BASE = "version: 1\ncontainer: {}\nkind: {}\n"


def test_a_misspelt_operator_value_is_refused_naming_the_real_key(tmp_path: Path):
    code, text = plan(tmp_path, BASE + "operator:\n  values: {devicePlugin: {enabeld: false}}\n")
    assert code == 2, text
    assert "devicePlugin.enabeld" in text and "devicePlugin.enabled" in text
    assert "would ignore" in text


def test_a_real_operator_value_plans_without_a_warning(tmp_path: Path):
    code, text = plan(tmp_path, BASE + "operator:\n  values: {dcgmExporter: {enabled: false}}\n")
    assert code == 0, text
    assert "would ignore" not in text and "not a documented key" not in text


def test_a_helm_alias_taken_by_another_url_is_replaced_and_said(tmp_path: Path):
    """`helm repo add nvidia URL` fails in the real helm when the alias `nvidia` already points at
    another URL; the plan adds --force-update and says what it replaces, and the run gets through."""
    root = tmp_path / "host"
    prepare("ready", root).mutate(lambda w: w.setdefault("helm_repos", {}).update(nvidia="https://example.com/old-charts"))
    f = tmp_path / "answers.yaml"
    f.write_text("version: 1\noperator: {}\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "ready", "--root", str(root), "plan", "--answers", str(f)], out=out, err=err)
    text = out.getvalue() + err.getvalue()
    assert "$ helm repo add nvidia https://helm.ngc.nvidia.com/nvidia --force-update" in text, text
    assert "the Helm repository alias nvidia points at https://example.com/old-charts" in text
    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "ready", "--root", str(root), "--answers", str(f)], out=out, err=err)
    assert code == 0, out.getvalue() + err.getvalue()
    assert prepare("ready", root).world()["helm_repos"]["nvidia"] == "https://helm.ngc.nvidia.com/nvidia"
