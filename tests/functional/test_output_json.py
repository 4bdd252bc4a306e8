"""``--output json`` (issue 14, item 1; ../shared/design.md): unattended runs, plan, doctor and verify
print one JSON object a line, each with "v": 1 and "event", the last a summary with the exit code —
what an Ansible role reads. Checked as that reader would: every line parses, the summary's exit is
the process's, a second run changes nothing, a failure names the step with its output's tail, and
nothing secret is printed."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

from gpuwizard.cli import main
from gpuwizard.simulate import prepare


def run_json(*argv: str) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--output", "json"], out=out, err=err)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is one JSON object
    assert lines and all(x["v"] == 1 and isinstance(x["event"], str) for x in lines), out.getvalue()
    assert lines[-1]["event"] == "summary" and lines[-1]["exit"] == code
    assert [x["event"] for x in lines].count("summary") == 1
    return code, lines, err.getvalue()


def k3s_answers(tmp_path: Path) -> Path:
    f = tmp_path / "a.yaml"
    f.write_text('version: 1\nkind: {existing_context: "default"}\noperator: {}\nhami: {}\n')
    return f


def test_an_unattended_run_as_json_lines_then_a_second_run_changes_nothing(tmp_path):
    root = str(tmp_path / "s")
    code, lines, err = run_json("--simulate", "k3s", "--root", root, "--answers", str(k3s_answers(tmp_path)))
    assert code == 0, err
    summary = lines[-1]
    assert summary["steps"] == {"detect": "done", "kind": "done", "operator": "done", "hami": "done"}
    assert summary["changed"] > 0 and Path(summary["log"]).is_file() and Path(summary["state"]).is_file()
    installs = [x for x in lines if x["event"] == "action-started" and x.get("action") == "helm-install"]
    assert [x["step"] for x in installs] == ["operator", "hami"]
    assert all(x["argv"][:1] == ["helm"] and "upgrade" in x["argv"] for x in installs)
    finished = {(x["step"], x["action"]): x["status"] for x in lines if x["event"] == "action-finished"}
    assert finished[("hami", "helm-install")] == "changed"
    assert any(x["event"] == "decision" for x in lines)

    code, lines, err = run_json("--simulate", "k3s", "--root", root, "--answers", str(k3s_answers(tmp_path)))
    assert code == 0, err
    assert lines[-1]["changed"] == 0
    assert all(x.get("status") != "changed" for x in lines)


def test_a_failed_run_names_the_step_and_its_output(tmp_path):
    root = tmp_path / "s"
    sb = prepare("k3s", root)
    sb.mutate(lambda w: w.update(cluster_faults={"hami_plugin_crash": True}))
    code, lines, _ = run_json("--simulate", "k3s", "--root", str(root), "--answers", str(k3s_answers(tmp_path)))
    assert code == 1
    assert lines[-1]["steps"]["hami"] == "failed" and lines[-1]["steps"]["operator"] == "done"
    failed = [x for x in lines if x["event"] == "step-finished" and x["status"] == "failed"]
    assert [x["step"] for x in failed] == ["hami"]
    assert "ERROR_LIBRARY_NOT_FOUND" in failed[0]["text"] and isinstance(failed[0]["tail"], list)


def test_plan_doctor_and_verify_as_json_lines(tmp_path):
    root = str(tmp_path / "s")
    f = str(k3s_answers(tmp_path))
    code, lines, _ = run_json("--simulate", "k3s", "--root", root, "plan", "--answers", f)
    assert code == 0 and [x["step"] for x in lines if x["event"] == "plan-step"] == ["detect", "kind", "operator", "hami"]
    assert lines[-1]["executed"] is False and set(lines[-1]["steps"].values()) == {"planned"}
    code, lines, _ = run_json("--simulate", "k3s", "--root", root, "doctor")
    assert code == 0 and lines[0]["event"] == "doctor" and lines[0]["facts"]["kubernetes"]["context"] == "default"
    code, lines, _ = run_json("--simulate", "k3s", "--root", root, "verify", "--answers", f)
    assert code == 1 and lines[-1]["healthy"] is False  # nothing installed yet
    layers = {x["layer"]: x["status"] for x in lines if x["event"] == "verify-layer"}
    assert layers["operator"] == "fail" and layers["driver"] == "skip"


def test_bad_input_is_a_summary_with_exit_2(tmp_path):
    code, lines, err = run_json("--simulate", "k3s", "--root", str(tmp_path / "s"), "--answers", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml:1:1: file not found" in lines[-1]["error"] and "nope.yaml" in err


def test_no_secret_in_the_json_lines(tmp_path):
    """The Secure Boot signing key of a run that generates one is in no JSON line."""
    answers = tmp_path / "sign.yaml"
    answers.write_text("version: 1\ndriver: {secure_boot: sign}\n")
    root = tmp_path / "sb"
    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "secureboot", "--root", str(root), "--answers", str(answers), "--output", "json"],
                out=out, err=err)
    assert code == 3, out.getvalue() + err.getvalue()
    key = next(root.rglob("*.priv"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip() not in out.getvalue() and "PRIVATE KEY" not in out.getvalue()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines[-1]["exit"] == 3 and any(x["event"] == "reboot-required" for x in lines)


def test_what_the_host_cannot_fetch_ends_in_a_summary_naming_each_url(tmp_path):
    """The airgapped profile: the run stops before anything runs (the URL check), and the JSON
    reader gets the summary line with exit 1 and each URL, curl's words and the steps that need it."""
    root = str(tmp_path / "s")
    code, lines, err = run_json("--simulate", "airgapped", "--root", root, "--answers",
                                str(Path(__file__).resolve().parents[2] / "examples/full.yaml"))
    assert code == 1
    summary = lines[-1]
    assert summary["executed"] is False and len(summary["unreachable"]) == 10
    first = {u["url"]: u for u in summary["unreachable"]}["https://nvidia.github.io/libnvidia-container/gpgkey"]
    assert first == {"url": "https://nvidia.github.io/libnvidia-container/gpgkey",
                     "error": "curl: (6) Could not resolve host: nvidia.github.io", "steps": ["container"]}



def test_answers_the_plan_refuses_end_in_a_summary_too(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("version: 1\npodspec: [{name: two, image: 'ubuntu:22.04', gpus: 2}]\n")
    code, lines, err = run_json("--simulate", "t4-bare", "--root", str(tmp_path / "s"), "--answers", str(f))
    assert code == 2
    assert lines[-1]["executed"] is False and list(lines[-1]["refused"]) == ["podspec"]
