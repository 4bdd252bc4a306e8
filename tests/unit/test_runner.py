"""The one runner: argv lists, lines streamed while the command runs, timeouts, dry-run, sudo."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from gpuwizard.errors import CommandFailed, ToolMissing
from gpuwizard.host import Runner, privilege_prefix

from ..conftest import write_tool


def test_lines_arrive_before_the_command_exits(tmp_path: Path):
    gate = tmp_path / "gate"
    # The command prints a line, then cannot exit until the listener has seen that line and
    # opened the gate: so the line was delivered while the command was still running.
    script = f"while [ ! -e {gate} ]; do sleep 0.01; done"
    runner = Runner()
    seen = []

    def listener(stream, line):
        seen.append((stream, line, gate.exists()))
        if line == "first":
            gate.touch()

    result = runner.run(["bash", "-c", f"echo first; {script}; echo second >&2; echo third"], on_line=listener, timeout=30)
    assert result.rc == 0
    assert seen[0] == ("stdout", "first", False)
    assert ("stderr", "second", True) in seen and ("stdout", "third", True) in seen
    assert result.stdout == "first\nthird\n" and result.stderr == "second\n"


def test_partial_last_line_and_invalid_utf8_are_delivered():
    result = Runner().run(["printf", "a\\nb\\377c"])
    assert result.stdout.splitlines() == ["a", "b\ufffdc"]


def test_exit_code_and_check():
    runner = Runner()
    result = runner.run(["bash", "-c", "echo oops >&2; exit 7"])
    assert result.rc == 7 and result.tail == ["oops"]
    with pytest.raises(CommandFailed) as err:
        runner.run(["bash", "-c", "exit 3"], check=True)
    assert err.value.rc == 3


def test_timeout_stops_the_whole_process_group(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    runner = Runner()
    result = runner.run(["bash", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert result.timed_out and result.rc == 124
    child = int(pidfile.read_text())
    # the background grandchild was killed with its group
    with pytest.raises(ProcessLookupError):
        for _ in range(200):
            os.kill(child, 0)
            threading.Event().wait(0.01)


def test_cancel_stops_a_running_command():
    runner = Runner()
    started = threading.Event()

    def listener(stream, line):
        started.set()
        runner.cancel.set()

    result = runner.run(["bash", "-c", "echo go; sleep 60"], on_line=listener, timeout=30)
    assert started.is_set() and result.rc == 130 and not result.timed_out
    assert result.tail[-1] == "[gpuwizard] cancelled"


def test_tools_are_found_on_path_only(bin_dir: Path):
    write_tool(bin_dir, "mytool", "print('from PATH')")
    runner = Runner(path=str(bin_dir))
    assert runner.run(["mytool"], change=False).stdout == "from PATH\n"
    with pytest.raises(ValueError):
        runner.which("/usr/bin/env")
    with pytest.raises(ToolMissing):
        runner.run(["bash", "-c", "true"])  # bash is not on this PATH
    assert runner.probe(["nvidia-smi"]) is None  # a missing tool is a fact for probes


def test_dry_run_records_changes_but_runs_probes(bin_dir: Path, tmp_path: Path):
    marker = tmp_path / "ran"
    write_tool(bin_dir, "touchit", f"open({str(marker)!r}, 'w').close()")
    runner = Runner(path=str(bin_dir), dry_run=True)
    result = runner.run(["touchit", "--flag"])
    assert result.recorded and not marker.exists()
    assert runner.recorded == [["touchit", "--flag"]]
    runner.run(["touchit"], change=False)
    assert marker.exists()


def test_arguments_are_never_interpreted_by_a_shell(bin_dir: Path):
    write_tool(bin_dir, "echoargs", "import sys, json; print(json.dumps(sys.argv[1:]))")
    hostile = ["$(touch /tmp/pwned)", "; rm -rf /", "`id`", "a b", "--x=$HOME"]
    out = Runner(path=str(bin_dir)).run(["echoargs", *hostile]).stdout
    import json

    assert json.loads(out) == hostile


def test_listeners_see_change_commands_not_probes(bin_dir: Path):
    write_tool(bin_dir, "say", "print('hello')")
    runner = Runner(path=str(bin_dir))
    heard = []
    runner.listeners.append(lambda s, lines: heard.extend(lines))
    runner.run(["say"], change=False)
    assert heard == []
    runner.run(["say"])
    assert heard == ["hello"]


def test_privilege_prefix():
    assert privilege_prefix(euid=0, real_root=True, unattended=False) == []
    assert privilege_prefix(euid=1000, real_root=True, unattended=False) == ["sudo"]
    assert privilege_prefix(euid=1000, real_root=True, unattended=True) == ["sudo", "-n"]
    assert privilege_prefix(euid=1000, real_root=False, unattended=True) == []


def test_sudo_prefixes_changes_only(bin_dir: Path):
    write_tool(bin_dir, "sudo", "import sys, json; print(json.dumps(sys.argv[1:]))")
    write_tool(bin_dir, "apt-get", "print('apt')")
    runner = Runner(path=str(bin_dir), privilege=["sudo", "-n"])
    import json

    argv = json.loads(runner.run(["apt-get", "install", "-y", "x"]).stdout)
    assert argv[0] == "-n" and argv[1].endswith("/apt-get") and argv[2:] == ["install", "-y", "x"]
    assert runner.run(["apt-get"], change=False).stdout == "apt\n"


def test_sudo_keeps_the_sessions_and_the_commands_variables(bin_dir: Path):
    """sudo's env_reset would drop them: the proxy and an offline bundle's APT_CONFIG (the session's),
    DEBIAN_FRONTEND (the command's) are set again by env(1) after sudo; a probe runs without sudo."""
    write_tool(bin_dir, "sudo", "import sys, json; print(json.dumps(sys.argv[1:]))")
    write_tool(bin_dir, "apt-get", "print('apt')")
    runner = Runner(path=str(bin_dir), privilege=["sudo", "-n"],
                    env={"https_proxy": "http://proxy:3128", "APT_CONFIG": "/var/lib/x/apt.conf"})
    import json

    argv = json.loads(runner.run(["apt-get", "install", "-y", "x"], env={"DEBIAN_FRONTEND": "noninteractive"}).stdout)
    assert argv[:5] == ["-n", "env", "APT_CONFIG=/var/lib/x/apt.conf", "DEBIAN_FRONTEND=noninteractive",
                        "https_proxy=http://proxy:3128"]
    assert argv[5].endswith("/apt-get") and argv[6:] == ["install", "-y", "x"]


def test_prefetched_probes_run_side_by_side_once_into_the_plan_cache(tmp_path: Path):
    """Runner.prefetch: each probe of a plan's cache runs once, all at the same time (each of these
    two waits for the other to have started, so one after another would end in their timeouts), and
    the plan then reads them without running anything; outside a plan's cache nothing runs."""
    a, b = tmp_path / "a", tmp_path / "b"

    def waits(mine: Path, other: Path) -> list[str]:
        return ["bash", "-c", f"touch {mine}; n=0; while [ ! -e {other} ] && [ $n -lt 300 ]; do sleep 0.01; n=$((n+1)); done; "
                f"[ -e {other} ] && echo met"]

    runner = Runner()
    assert runner.prefetch([waits(a, b)]) == 0 and not a.exists()  # no plan: nothing to keep it for
    with runner.cached_probes():
        assert runner.peek(waits(a, b)) == (False, None)
        assert runner.prefetch([waits(a, b), waits(b, a), waits(a, b)], timeout=10) == 2
        seen, first = runner.peek(waits(a, b))
        assert seen and first is not None and first.stdout == "met\n"
        a.unlink()
        assert runner.probe(waits(a, b)) is first and not a.exists()  # read from the cache: not run again
        assert runner.prefetch([waits(a, b), waits(b, a)]) == 0
