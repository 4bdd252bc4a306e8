"""The log on disk: the runner reports every command (argv, exit code, duration; probes too) and the
log file writes one line for each, with a dated timestamp on every line, from any thread."""

from __future__ import annotations

import json
import re
import shlex
import threading
from pathlib import Path

import yaml

from gpuwizard import doctor
from gpuwizard.answers import parse_answers
from gpuwizard.console import LogFile, log_block, plain, redact, stamp
from gpuwizard.engine import Event
from gpuwizard.host import CommandRecord, Runner

FIX = Path(__file__).resolve().parents[1] / "fixtures"
# ISO 8601: a date, a time to the millisecond and the UTC offset, e.g. 2026-12-02T13:40:01.123+00:00
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
LINE = re.compile(STAMP + r" ")


def records(runner: Runner) -> list[CommandRecord]:
    seen: list[CommandRecord] = []
    runner.command_listeners.append(seen.append)
    return seen


def body(text: str) -> list[str]:
    """The log's lines without their timestamps (each line must have one)."""
    lines = text.splitlines()
    for line in lines:
        assert LINE.match(line), line
    return [line.split(" ", 1)[1] for line in lines]


def test_stamp_is_dated_iso_8601_with_the_offset():
    assert re.fullmatch(STAMP, stamp())


def test_the_runner_reports_each_command_when_it_starts_and_ends():
    runner = Runner()
    seen = records(runner)
    assert runner.run(["true"]).rc == 0
    assert runner.run(["false"]).rc == 1
    assert runner.probe(["no-such-tool-gpuwizard"]) is None
    started, ok, started2, failed, missing = seen
    assert (started.phase, started.argv, started.probe, started.rc, started.seconds) == ("started", ("true",), False, None, None)
    assert (ok.phase, ok.argv, ok.rc, ok.outcome) == ("finished", ("true",), 0, "") and ok.seconds is not None and ok.seconds >= 0
    assert started2.phase == "started" and (failed.argv, failed.rc) == (("false",), 1)
    # a tool that is not installed never starts: one record, saying so
    assert (missing.phase, missing.probe, missing.rc, missing.outcome) == ("finished", True, None, "not found on PATH")


def test_timeouts_dry_runs_and_the_privilege_prefix_are_said(tmp_path: Path):
    runner = Runner()
    seen = records(runner)
    result = runner.run(["tail", "-f", "/dev/null"], timeout=0.01, cwd=str(tmp_path))
    assert result.rc == 124
    assert (seen[-1].rc, seen[-1].outcome, seen[-1].cwd) == (124, "timed out after 0.01s", str(tmp_path))

    dry = Runner(dry_run=True)
    seen = records(dry)
    dry.run(["apt-get", "install", "-y", "x"])
    assert dry.probe(["true"]) is not None  # probes still run in a dry run
    assert [(r.phase, r.argv, r.outcome) for r in seen] == [
        ("finished", ("apt-get", "install", "-y", "x"), "not run (dry-run)"),
        ("started", ("true",), ""), ("finished", ("true",), "")]

    privileged = Runner(privilege=["env"])  # any tool found on PATH stands in for sudo
    seen = records(privileged)
    privileged.run(["true"])
    privileged.probe(["true"])  # a probe runs without the prefix
    assert [r.argv for r in seen] == [("env", "true"), ("env", "true"), ("true",), ("true",)]


def test_a_listener_that_breaks_still_leaves_an_end_record():
    runner = Runner()
    seen = records(runner)

    def broken(stream: str, lines: list[str]) -> None:
        raise RuntimeError("disk full")

    runner.listeners.append(broken)
    try:
        runner.run(["echo", "hi"])
    except RuntimeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("the listener's error was swallowed")
    assert seen[-1].phase == "finished" and seen[-1].outcome == "interrupted (RuntimeError)"


def test_the_log_has_one_line_per_command_with_exit_code_and_duration(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GPUWIZARD_TEST_SECRET", "s3cr3t-in-the-environment")
    runner = Runner(env={"API_TOKEN": "s3cr3t-extra-env"})
    log = LogFile(tmp_path / "logs")
    log.attach(runner)
    argv = ["printf", "%s\\n", "a b", "it's"]
    runner.run(argv, cwd=str(tmp_path))
    runner.run(["false"])
    runner.probe(["true"])
    runner.probe(["no-such-tool-gpuwizard", "--version"])
    runner.probe(["no-such-tool-gpuwizard", "-x", "http://fleet:s3cr3t-in-a-url@proxy:3128"])
    log.close()
    text = log.path.read_text()
    lines = body(text)
    assert lines[0] == f"command $ {shlex.join(argv)}  (in {tmp_path})"  # a change: a line when it starts
    assert re.fullmatch(r"command exit 0 in \d+\.\d{3}s \$ " + re.escape(shlex.join(argv)) + r"  \(in .*\)", lines[1])
    assert shlex.split(lines[1].split(" $ ", 1)[1].split("  (in ")[0]) == argv
    assert lines[2] == "command $ false"
    assert re.fullmatch(r"command exit 1 in \d+\.\d{3}s \$ false", lines[3])
    assert re.fullmatch(r"probe exit 0 in \d+\.\d{3}s \$ true", lines[4])  # a probe: one line, at its end
    assert lines[5] == "probe not found on PATH $ no-such-tool-gpuwizard --version"
    assert lines[6] == "probe not found on PATH $ no-such-tool-gpuwizard -x http://fleet:***@proxy:3128"
    assert len(lines) == 7
    assert "s3cr3t" not in text  # argv only: never the environment


def test_close_detaches_and_late_writes_are_dropped(tmp_path: Path):
    runner = Runner()
    log = LogFile(tmp_path / "logs")
    detach = log.attach(runner)
    detach()
    assert runner.command_listeners == []
    log.attach(runner)
    log.close()
    assert runner.command_listeners == []
    log.command(CommandRecord(("true",), "finished", True, rc=0, seconds=0.001))  # a worker's last probe
    log(Event("note", "detect", text="late"))
    log.close()
    assert log.path.read_text() == ""


def test_writes_from_many_threads_never_interleave(tmp_path: Path):
    log = LogFile(tmp_path / "logs")
    n, threads = 300, 8

    def work(i: int) -> None:
        for j in range(n):
            log.command(CommandRecord(("probe", str(i), str(j)), "finished", True, rc=j % 3, seconds=0.0015))
            log(Event("output", "driver", "install", f"t{i} {j}\nsecond", stream="stdout", data={"lines": [f"t{i} {j}", "second"]}))
            log(Event("note", "driver", text=f"note {i} {j}"))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()
    lines = body(log.path.read_text())
    assert len(lines) == threads * n * 4
    assert sum(1 for line in lines if re.fullmatch(r"probe exit [012] in 0\.002s \$ probe \d \d+", line)) == threads * n
    assert sum(1 for line in lines if line == "  | second") == threads * n


def test_a_read_of_thousands_of_lines_is_written_whole_each_line_stamped(tmp_path: Path):
    """A read longer than the slices the log writes at a time (LOG_SLICE): every line, in order, each
    with its stamp and stream mark, none run together where two slices meet."""
    from gpuwizard.console import LOG_SLICE

    n = 3 * LOG_SLICE + 7
    log = LogFile(tmp_path / "logs")
    log(Event("output", "driver", "install", stream="stderr", data={"lines": [f"err {i}" for i in range(n)]}))
    log(Event("output", "driver", "install", stream="stdout", data={"lines": ["after"]}))
    log.close()
    raw = log.path.read_text().splitlines()
    assert len(raw) == n + 1 and all(re.match(r"^\S+ {3}! err \d+$", line) for line in raw[:n])
    assert body("\n".join(raw) + "\n") == [f"  ! err {i}" for i in range(n)] + ["  | after"]


def test_the_header_holds_the_effective_answers_and_the_facts(tmp_path: Path):
    answers = parse_answers("version: 1\ndriver: {reboot: never}\ncuda: {version: '12.6'}\n")
    doc = {"version": 1, "driver": answers.driver, "cuda": answers.cuda,
           "mirrors": {"apt": "http://fleet:hunter2@mirror.example/ubuntu", "password": "hunter2"}}
    facts = json.loads((FIX / "device/h200-doctor.json").read_text())
    log = LogFile(tmp_path / "logs")
    log.write("gpuwizard test")
    log.write_header(answers=doc, facts=facts)
    log.close()
    text = log.path.read_text()
    lines = body(text)
    assert lines[1].startswith("answers: ") and any(line.startswith("facts: ") for line in lines)
    got = yaml.safe_load(log_block(text, "answers"))
    # every default filled in, as the run uses it
    assert got["driver"] == plain(answers.driver) and got["driver"]["reboot"] == "never"
    assert got["driver"]["secure_boot"] == "refuse"  # not in the file: its default
    assert got["cuda"]["version"] == "12.6" and "env_file" in got["cuda"]
    assert got["mirrors"] == {"apt": "http://fleet:***@mirror.example/ubuntu", "password": "***"}
    assert "hunter2" not in text
    assert json.loads(log_block(text, "facts")) == json.loads(json.dumps(doctor.document(facts)))


def test_events_tracebacks_and_multi_line_text_are_stamped_line_by_line(tmp_path: Path):
    log = LogFile(tmp_path / "logs")
    log(Event("step-finished", "cuda", status="failed", text="internal error: boom\nsecond line",
              data={"traceback": "Traceback (most recent call last):\n  File x\nValueError: boom\n"}))
    log.close()
    text = log.path.read_text()
    lines = body(text)
    assert lines[0] == "step-finished [cuda] failed internal error: boom"
    assert lines[1] == "    second line"
    assert log_block(text, "traceback") == "Traceback (most recent call last):\n  File x\nValueError: boom\n"


def test_redact_masks_only_what_looks_secret():
    assert redact({"proxy": {"https": "http://u:p@proxy:3128", "no_proxy": "localhost"}, "token": "t", "image": "a:b@sha256:x",
                   "list": ["https://user:pw@h/x"], "password": None, "registry_password": "x", "passthrough": True}) == {
        "proxy": {"https": "http://u:***@proxy:3128", "no_proxy": "localhost"}, "token": "***", "image": "a:b@sha256:x",
        "list": ["https://user:***@h/x"], "password": None, "registry_password": "***", "passthrough": True}
