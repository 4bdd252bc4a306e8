"""What a person reads: doctor's table, the unattended console lines, the log file."""

from __future__ import annotations

import io
import json
from pathlib import Path

from gpuwizard import doctor
from gpuwizard.console import ConsoleReporter, LogFile
from gpuwizard.engine import Event

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def h200_facts() -> dict:
    return json.loads((FIX / "device/h200-doctor.json").read_text())


def test_doctor_text_matches_what_the_device_printed():
    out = io.StringIO()
    doctor.render_text(h200_facts(), out)
    assert out.getvalue() == (FIX / "device/h200-doctor.txt").read_text()


def test_doctor_rich_table_renders_every_layer():
    out = io.StringIO()
    doctor.render_rich(h200_facts(), out)
    text = out.getvalue()
    for layer in doctor.LAYERS:
        assert layer in text
    assert "NVIDIA H200" in text and "580.159.04" in text


def test_console_lines_without_color_and_failure_tail():
    out = io.StringIO()
    rep = ConsoleReporter(out, color=False)
    for ev in [
        Event("step-started", "container", text="Container runtime"),
        Event("output", "container", "restart", "a\nb", stream="stderr", data={"lines": ["a", "b"]}),
        Event("action-finished", "container", "daemon", "add the nvidia runtime", status="changed"),
        Event("step-finished", "container", status="failed", text="command failed (exit 1): systemctl restart docker"),
    ]:
        rep(ev)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[container] Container runtime"
    assert lines[1] == "  changed         add the nvidia runtime"
    assert lines[2] == "[container] failed: command failed (exit 1): systemctl restart docker"
    assert lines[3:] == ["  last lines of output:", "    | a", "    | b"]
    assert "\x1b" not in out.getvalue()


def test_console_colors_only_when_asked():
    out = io.StringIO()
    ConsoleReporter(out, color=True)(Event("action-finished", "driver", "x", "install", status="ok"))
    assert "\x1b[32m" in out.getvalue()


def test_log_file_keeps_every_line_with_stream_marks(tmp_path: Path):
    log = LogFile(tmp_path / "logs")
    log(Event("step-started", "driver", text="NVIDIA driver"))
    log(Event("output", "driver", "install", "one\ntwo", stream="stdout", data={"lines": ["one", "two"]}))
    log(Event("output", "driver", "install", "oops", stream="stderr", data={"lines": ["oops"]}))
    log.close()
    text = log.path.read_text()
    assert "step-started [driver] NVIDIA driver" in text
    # every line starts with a dated timestamp, then the stream mark
    assert [line.split(" ", 1)[1] for line in text.splitlines()[1:]] == ["  | one", "  | two", "  ! oops"]
    assert oct(log.path.stat().st_mode & 0o777) == "0o600"
