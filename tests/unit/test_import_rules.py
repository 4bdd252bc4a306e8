"""Step logic never imports Textual: the TUI and unattended mode share every line of it.

Which package may import which is declared as import-linter contracts in pyproject.toml
([tool.importlinter]); this file runs them and keeps the checks a contract can't express."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "gpuwizard"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_import_contracts_are_kept():
    """lint-imports (pyproject.toml's contracts): only gpuwizard.tui imports textual; the steps import
    neither the TUI nor the simulator; the core modules never import the TUI, not even through others."""
    entry = Path(sys.executable).with_name("lint-imports")
    if entry.exists():
        argv = [str(entry)]
    else:  # an interpreter outside a venv: the same entry point, by hand
        argv = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]
    r = subprocess.run([*argv, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_loading_the_engine_and_steps_does_not_load_textual():
    code = (
        "import sys, gpuwizard.steps, gpuwizard.engine, gpuwizard.detect, gpuwizard.cli, gpuwizard.answers;"
        "gpuwizard.steps.registry();"
        "print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_only_the_runner_starts_processes_and_never_through_a_shell():
    """Every command goes through host.Runner as an argv list: no other module of the wizard
    imports subprocess or calls os.system/os.popen, and nothing passes shell=True.
    (The simulated tools are test doubles of the host, not the wizard, and are excluded.)"""
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = str(path.relative_to(PKG))
        if rel.startswith("simulate/"):
            continue
        tree = ast.parse(path.read_text(), rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                offenders.append(f"{rel}: shell= keyword")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in ("system", "popen", "execv", "execvp", "spawnv"):
                offenders.append(f"{rel}: os.{node.attr}")
        if rel == "host.py":
            continue
        if {"subprocess", "sh", "pty"} & _imports(path):
            offenders.append(f"{rel}: imports a process module")
    assert offenders == []
