"""The doctor document and the state file match their declared types (gpuwizard/documents.py),
extra keys forbidden: every simulated profile's `doctor --json`, and the state file after whole runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from gpuwizard.cli import main
from gpuwizard.documents import FACTS, STATE
from gpuwizard.steps import kube

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted(p.stem for p in (ROOT / "gpuwizard/assets/hosts").glob("*.yaml"))


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out, err=io.StringIO()), out.getvalue()


@pytest.mark.parametrize("profile", PROFILES)
def test_doctor_json_is_a_facts_document(tmp_path, profile):
    code, out = run("--simulate", profile, "--root", str(tmp_path / "s"), "doctor", "--json")
    assert code == 0
    FACTS.validate_python(json.loads(out), strict=True)


def test_a_key_the_types_do_not_know_is_refused(tmp_path):
    _, out = run("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "doctor", "--json")
    doc = json.loads(out)
    doc["host"]["surprise"] = 1
    with pytest.raises(ValidationError):
        FACTS.validate_python(doc, strict=True)


@pytest.mark.parametrize("profile,answers", [("t4-bare", "full.yaml"), ("nouveau", "host.yaml")])
def test_the_state_file_after_a_run_is_a_state_document(tmp_path, monkeypatch, profile, answers):
    monkeypatch.setattr(kube, "POLL", 0.01)
    root = tmp_path / "s"
    code, _ = run("--simulate", profile, "--root", str(root), "--answers", str(ROOT / "examples" / answers))
    assert code in (0, 3)
    data = json.loads((root / "var/lib/gpuwizard/state.json").read_text())
    STATE.validate_python(data, strict=True)
    assert data["run"]["id"] and all(
        rec["run"] == data["run"]["id"] for entry in data["steps"].values() for rec in entry.get("actions", {}).values())
