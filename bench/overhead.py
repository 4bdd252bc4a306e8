"""A full unattended simulated run (examples/full.yaml on t4-bare): the wizard's own time over the
time its commands (the simulated tools, real subprocesses) run, measured in the same run.

overhead = (wall time - time covered by at least one running command) / wall time
Goal (issue 7): < 10 %. Run: .venv/bin/python bench/overhead.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from gpuwizard import host as H  # noqa: E402
from gpuwizard.cli import main as cli_main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def covered(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def main(repeat: int = 3) -> None:
    intervals: list[tuple[float, float]] = []
    lock = threading.Lock()
    original = H.Runner.run

    def timed(self, argv, **kw):
        start = time.perf_counter()
        try:
            return original(self, argv, **kw)
        finally:
            with lock:
                intervals.append((start, time.perf_counter()))

    H.Runner.run = timed
    runs = []
    try:
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                intervals.clear()
                start = time.perf_counter()
                code = cli_main(["--simulate", "t4-bare", "--root", str(Path(tmp) / "sb"), "--answers", str(ROOT / "examples/full.yaml")],
                                out=io.StringIO(), err=io.StringIO())
                wall = time.perf_counter() - start
                assert code == 0, code
                runs.append((wall, covered(intervals), len(intervals)))
    finally:
        H.Runner.run = original
    wall, cmd, n = sorted(runs)[len(runs) // 2]
    figures = {
        "commands": n,
        "wall_s": round(wall, 3),
        "commands_running_s": round(cmd, 3),
        "wizard_own_s": round(wall - cmd, 3),
        "overhead_pct": round(100 * (wall - cmd) / wall, 1),
        "goal": "overhead < 10 %",
        "met": (wall - cmd) / wall < 0.10,
    }
    print(f"examples/full.yaml on t4-bare, unattended (median of {repeat} runs)")
    report("overhead", figures)


if __name__ == "__main__":
    main()
