"""The log on disk after an unattended run on a simulated host: the effective answers and the detected
facts at the top, a line for every command (probes too) with its exit code and duration, successes
and failures alike, and a dated timestamp on every line."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from gpuwizard import doctor
from gpuwizard.console import log_block
from gpuwizard.simulate import prepare

from .cli import run

ROOT = Path(__file__).resolve().parents[2]
HOST_YAML = ROOT / "examples" / "host.yaml"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")
ENDED = re.compile(r"(probe|command) exit (\d+) in (\d+\.\d{3})s \$ (.*)")


def the_log(root: Path) -> str:
    logs = list((root / "var/log/gpuwizard").glob("gpuwizard-*.log"))
    assert len(logs) == 1, logs
    return logs[0].read_text()


def body(text: str) -> list[str]:
    lines = text.splitlines()
    undated = [line for line in lines if not STAMP.match(line)]
    assert undated == []
    return [line.split(" ", 1)[1] for line in lines]


def test_the_log_of_a_failed_run_has_the_header_and_every_command(tmp_path: Path, monkeypatch):
    root = tmp_path / "s"
    rules = [{"match": ["systemctl", "restart", "docker"], "rc": 1, "times": 1,
              "stderr": "Job for docker.service failed because the control process exited with error code.\n"}]
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps(rules))
    monkeypatch.setenv("GPUWIZARD_TEST_SECRET", "s3cr3t-in-the-environment")
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(HOST_YAML))
    assert code == 1, out + err
    text = the_log(root)
    lines = body(text)

    # the top: who and what, the effective answers, then (after the probes that found them) the facts
    assert re.fullmatch(r"gpuwizard \S+ pid \d+ root \S+ steps detect,driver,cuda,container run \w+", lines[0])
    assert lines[1].startswith("answers: ")
    facts_at = next(i for i, line in enumerate(lines) if line.startswith("facts: "))
    run_at = lines.index("run-started")
    assert 1 < facts_at < run_at
    assert all(line.startswith(("answers", "probe ")) for line in lines[1:facts_at]), lines[1:facts_at]
    answers = yaml.safe_load(log_block(text, "answers"))
    assert list(answers) == ["version", "detect", "driver", "cuda", "container"]  # skipped steps left out
    assert answers["detect"] == {"require_gpu": "auto"}  # not in the file: its defaults
    assert answers["driver"]["method"] == "package" and answers["driver"]["secure_boot"] == "refuse"
    assert answers["cuda"]["version"] == "12.6" and answers["container"]["runtime"] == "docker"
    facts = json.loads(log_block(text, "facts"))
    assert list(facts)[: len(doctor.LAYERS)] == list(doctor.LAYERS)
    assert facts["gpus"][0]["name"] == "Tesla T4" and facts["driver"] is None

    # every command the simulated host saw is in the log, with its exit code and duration
    ended = [ENDED.fullmatch(line) for line in lines]
    logged = [(m[1], int(m[2]), float(m[3]), tuple(shlex.split(m[4]))) for m in ended if m]
    calls = prepare("t4-bare", root).calls()
    assert sorted((tuple(c["argv"]), c["rc"]) for c in calls) == sorted((argv, rc) for _, rc, _, argv in logged)
    assert all(seconds >= 0 for _, _, seconds, _ in logged)
    # a success and a failure, each a change (a line when it starts, one when it ends) ...
    assert "command $ apt-get update" in lines
    assert any(re.fullmatch(r"command exit 0 in \d+\.\d{3}s \$ apt-get update", line) for line in lines)
    start = lines.index("command $ systemctl restart docker")
    assert lines[start + 1] == "  ! Job for docker.service failed because the control process exited with error code."
    assert re.fullmatch(r"command exit 1 in \d+\.\d{3}s \$ systemctl restart docker", lines[start + 2])
    # ... probes too: a failing one, and one whose tool is not installed
    assert any(re.fullmatch(r"probe exit 1 in \d+\.\d{3}s \$ dpkg -s nvidia-driver-565", line) for line in lines)
    assert any(line.startswith("probe not found on PATH $ nvidia-smi ") for line in lines)
    assert lines[-2:] == ["run-finished failed", "exit 1"]
    assert "s3cr3t" not in text  # argv only: never the environment


def test_a_refused_plan_is_in_the_log_and_nothing_ran(tmp_path: Path):
    root = tmp_path / "s"
    answers = tmp_path / "a.yaml"
    answers.write_text("version: 1\ncontainer: {}\npodspec:\n  - {name: two, image: 'ubuntu:22.04', gpus: 2, output: /root/two.yaml}\n")
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(answers))
    assert code == 2 and "nothing was executed" in err
    lines = body(the_log(root))
    assert any(line.startswith("refused [podspec] ") for line in lines)
    assert lines[-1].startswith("exit 2: the plan refuses these answers")
    assert not [line for line in lines if line.startswith("command")]  # probes only
