"""Nothing secret is logged: the Secure Boot signing key stays in its 0600 file, out of the log,
the state file and the console; files the wizard writes for itself are not world-readable."""

from __future__ import annotations

import io
import stat
from pathlib import Path

from gpuwizard.cli import main


def test_signing_key_never_reaches_log_state_or_console(tmp_path: Path):
    answers = tmp_path / "sign.yaml"
    answers.write_text("version: 1\ndriver: {secure_boot: sign}\n")
    root = tmp_path / "sb"
    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "secureboot", "--root", str(root), "--answers", str(answers)], out=out, err=err)
    assert code == 3, out.getvalue() + err.getvalue()  # key queued for enrolment: reboot
    keys = [p for p in root.rglob("*.priv")]
    assert keys, "a signing key was generated"
    secret = keys[0].read_text().strip()
    assert stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    written = [*root.joinpath("var/log/gpuwizard").glob("*.log"), root / "var/lib/gpuwizard/state.json"]
    for path in written:
        text = path.read_text()
        assert "PRIVATE KEY" not in text and secret not in text, path
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert "PRIVATE KEY" not in out.getvalue() + err.getvalue()
