"""File operations under the root: mapping, atomic writes, diffs, JSON edits with backups."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpuwizard.errors import GpuwizardError
from gpuwizard.host import Host, Runner, unified_diff


def test_system_paths_are_taken_under_the_root(fake_root: Path):
    host = Host(fake_root)
    assert host.path("/etc/docker/daemon.json") == fake_root.resolve() / "etc/docker/daemon.json"
    assert host.boot_id() == "11111111-2222-3333-4444-555555555555"
    for bad in ("etc/passwd", "/etc/../../outside", "/etc/\0x"):
        with pytest.raises(ValueError):
            host.path(bad)


def test_write_file_is_atomic_and_reports_change(fake_root: Path):
    host = Host(fake_root)
    assert host.write_file("/etc/modprobe.d/x.conf", "blacklist nouveau\n")
    assert not host.write_file("/etc/modprobe.d/x.conf", "blacklist nouveau\n")
    files = os.listdir(fake_root / "etc/modprobe.d")
    assert files == ["x.conf"]  # no temp files left behind


def test_a_writer_killed_before_its_rename_leaves_nothing_for_the_next(fake_root: Path):
    """kill -9 between the temp file and the rename leaves .<name>.<pid>.<random>.tmp; the next write of
    that file removes it once its process is gone, and keeps a live writer's."""
    import subprocess
    import sys
    d = fake_root / "var/lib/gpuwizard"
    d.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (d / f".state.json.{dead.stdout.strip()}.abc123.tmp").write_text("half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (d / f".state.json.{live.pid}.def456.tmp").write_text("being written")
        (d / ".other.json.1.x.tmp").write_text("not this file's")
        Host(fake_root).write_file("/var/lib/gpuwizard/state.json", "{}\n")
        assert sorted(os.listdir(d)) == [".other.json.1.x.tmp", f".state.json.{live.pid}.def456.tmp", "state.json"]
    finally:
        live.kill()
        live.wait()


def test_failed_write_keeps_the_old_file(fake_root: Path, monkeypatch):
    host = Host(fake_root)
    host.write_file("/etc/a.conf", "old\n")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(GpuwizardError, match="cannot write /etc/a.conf: disk full"):
        host.write_file("/etc/a.conf", "new\n")
    assert (fake_root / "etc/a.conf").read_text() == "old\n"
    assert os.listdir(fake_root / "etc") == ["a.conf"]


def test_edit_json_keeps_other_keys_and_backs_up(fake_root: Path):
    host = Host(fake_root)
    (fake_root / "etc/docker").mkdir()
    original = {"registry-mirrors": ["https://mirror.example"], "log-driver": "json-file"}
    (fake_root / "etc/docker/daemon.json").write_text(json.dumps(original))

    def add_runtime(cfg):
        cfg.setdefault("runtimes", {})["nvidia"] = {"path": "nvidia-container-runtime", "args": []}
        return cfg

    changed, backup = host.edit_json("/etc/docker/daemon.json", add_runtime)
    assert changed and backup
    new = json.loads((fake_root / "etc/docker/daemon.json").read_text())
    assert new["registry-mirrors"] == ["https://mirror.example"] and "nvidia" in new["runtimes"]
    assert json.loads(host.path(backup).read_text()) == original
    assert host.edit_json("/etc/docker/daemon.json", add_runtime) == (False, None)


def test_invalid_json_is_refused_untouched(fake_root: Path):
    host = Host(fake_root)
    (fake_root / "etc/docker").mkdir()
    bad = '{"registry-mirrors": ["x"],}\n'
    (fake_root / "etc/docker/daemon.json").write_text(bad)
    with pytest.raises(GpuwizardError, match=r"daemon.json is not valid JSON \(line 1"):
        host.edit_json("/etc/docker/daemon.json", lambda c: c)
    assert (fake_root / "etc/docker/daemon.json").read_text() == bad
    assert os.listdir(fake_root / "etc/docker") == ["daemon.json"]


def test_dry_run_changes_no_file(fake_root: Path):
    host = Host(fake_root, Runner(dry_run=True))
    assert host.write_file("/etc/new.conf", "x\n")
    assert not (fake_root / "etc/new.conf").exists()
    assert host.runner.recorded == [["<write>", "/etc/new.conf"]]


def test_unified_diff_for_plans():
    assert unified_diff("/etc/a", None, "x\n").splitlines()[:2] == ["--- /dev/null", "+++ /etc/a"]
    assert "+y" in unified_diff("/etc/a", "x\n", "x\ny\n")


def test_an_unwritable_path_is_a_clear_error(fake_root: Path):
    host = Host(fake_root)
    (fake_root / "etc/readonly").mkdir()
    (fake_root / "etc/readonly/file").write_text("x")
    # a path whose parent is a file cannot be created: an OSError becomes a message, not a traceback
    with pytest.raises(GpuwizardError, match=r"cannot write /etc/readonly/file/child"):
        host.write_file("/etc/readonly/file/child", "y\n")
