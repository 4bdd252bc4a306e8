"""Shared fixtures. Nothing here touches this machine's /etc: every host is a temp root."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """An empty host root with the few files every host has."""
    root = tmp_path / "root"
    (root / "proc/sys/kernel/random").mkdir(parents=True)
    (root / "proc/sys/kernel/random/boot_id").write_text("11111111-2222-3333-4444-555555555555\n")
    (root / "etc").mkdir()
    return root


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH directory for test tools written as tiny scripts."""
    d = tmp_path / "bin"
    d.mkdir()
    return d


def write_tool(bin_dir: Path, name: str, body: str) -> Path:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def _no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("GPUWIZARD_SIM_FAIL", raising=False)


def pytest_addoption(parser):
    parser.addoption("--kill-trials", type=int, default=2, help="kill -9 trials per scenario of the reliability suite (CI: 2)")


@contextlib.contextmanager
def lock_held(state_path: Path):
    """Another process holding gpuwizard's run lock for ``state_path``; yields its PID."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from gpuwizard.state import RunLock; RunLock({str(state_path)!r}).acquire(); print('locked', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.communicate("\n")
