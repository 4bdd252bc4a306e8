"""A corpus of malformed answer files: each one exits 2 naming file:line:col, the key and what was
expected, and runs zero commands (checked from the simulated tools' own call records)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gpuwizard.cli import main
from gpuwizard.simulate import prepare

CORPUS = Path(__file__).resolve().parents[1] / "fixtures/answers-bad"
FILES = sorted(CORPUS.glob("*.yaml"))


def expectation(path: Path) -> tuple[str, str]:
    """The file's first line: `# expect: <key path or :line:col:> | <words of the message>`."""
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    if not first.startswith("# expect: "):
        return ":1:1:", "empty"
    where, words = first[len("# expect: "):].split(" | ", 1)
    return where, words


def test_the_corpus_is_large_enough():
    assert len(FILES) >= 30


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return prepare("t4-bare", tmp_path_factory.mktemp("hostile") / "sb")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
@pytest.mark.parametrize("mode", [["plan"], [], ["--dry-run"]], ids=["plan", "run", "dry-run"])
def test_each_malformed_file_exits_2_and_runs_nothing(path: Path, mode: list[str], sandbox):
    before = len(sandbox.calls())
    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "t4-bare", "--root", str(sandbox.root), *mode, "--answers", str(path)], out=out, err=err)
    text = err.getvalue()
    assert code == 2, text
    where, words = expectation(path)
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(str(path))]
    assert lines, text
    if where.startswith(":"):
        hit = [line for line in lines if line.startswith(f"{path}{where}")]
    else:
        hit = [line for line in lines if f": {where}: " in line]
    assert hit, f"no error at {where!r} in:\n{text}"
    assert any(words in line for line in hit), f"{words!r} not in {hit}"
    assert "Traceback" not in text and out.getvalue() == ""
    assert len(sandbox.calls()) == before, "a command ran for an invalid answer file"
    assert not (sandbox.root / "var/lib/gpuwizard/state.json").exists()


def test_huge_and_binary_files(tmp_path: Path, sandbox):
    huge = tmp_path / "huge.yaml"
    huge.write_text("version: 1\npodspec:\n" + "  - {name: p, image: 'ubuntu:18.04'}\n" * 40000)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"version: 1\n\x00\xff\xfe garbage")
    for path, words in ((huge, "at most 1048576 bytes"), (binary, "not UTF-8")):
        err = io.StringIO()
        code = main(["--simulate", "t4-bare", "--root", str(sandbox.root), "--answers", str(path)], out=io.StringIO(), err=err)
        assert code == 2 and f"{path}:1:1: " in err.getvalue() and words in err.getvalue()
