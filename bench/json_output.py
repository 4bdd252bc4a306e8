"""What ``--output json`` costs an unattended run (issue 14: < 5 % of its wall time): the same full
simulated run (examples/full.yaml on t4-bare) with the plain-text console and with JSON lines,
interleaved, median of each, in the same process.

Run: .venv/bin/python bench/json_output.py [runs]
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from gpuwizard.cli import main as cli_main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def one(output: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = io.StringIO()
        start = time.perf_counter()
        code = cli_main(["--simulate", "t4-bare", "--root", str(Path(tmp) / "sb"), "--answers",
                         str(ROOT / "examples/full.yaml"), "--output", output], out=out, err=io.StringIO())
        wall = time.perf_counter() - start
        assert code == 0, code
        return wall, len(out.getvalue().splitlines())


def main(runs: int = 5) -> None:
    text, as_json = [], []
    lines = {}
    for _ in range(runs):
        for output, bucket in (("text", text), ("json", as_json)):
            wall, n = one(output)
            bucket.append(wall)
            lines[output] = n
    t, j = statistics.median(text), statistics.median(as_json)
    print(f"examples/full.yaml on t4-bare, unattended, median of {runs} runs each (interleaved)")
    report("json_output", {"text_s": round(t, 3), "json_s": round(j, 3), "ratio": round(j / t, 3),
                           "text_lines": lines["text"], "json_lines": lines["json"],
                           "goal": "json adds < 5 %", "met": j / t < 1.05})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
