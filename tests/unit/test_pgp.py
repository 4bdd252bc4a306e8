"""gpg --dearmor and gpg's fingerprints, in Python (a host without gnupg): gpuwizard/platform/kinds.py,
against real gpg outputs (tests/fixtures/pgp/README.md says how they were made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuwizard.platform.kinds import dearmor, pgp_fingerprints

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "pgp"


def test_dearmor_is_gpgs_output():
    assert dearmor((FIX / "test-key.asc").read_text()) == (FIX / "test-key.gpg").read_bytes()


def test_fingerprints_are_gpgs():
    want = (FIX / "test-key.fpr").read_text().split()
    assert pgp_fingerprints((FIX / "test-key.gpg").read_bytes()) == want


def test_a_corrupt_armor_is_refused():
    text = (FIX / "test-key.asc").read_text()
    lines = text.splitlines()
    body = next(i for i, line in enumerate(lines) if line and not line.startswith(("-----", "=")) and ":" not in line)
    lines[body] = ("B" if lines[body][0] != "B" else "C") + lines[body][1:]
    with pytest.raises(ValueError, match="CRC-24"):
        dearmor("\n".join(lines))
    with pytest.raises(ValueError, match="no PGP PUBLIC KEY BLOCK"):
        dearmor("gpuwizard-sim-key C95B321B61E88C1809C4F759DDCAE044F796ECB0")
