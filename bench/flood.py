"""1,000,000 lines of step output through runner -> engine events -> log file (+ the console
reporter's tail), vs `seq 1000000 > file` in the same run.

Goal (issue 7): ratio <= 3x and peak RSS < 150 MB. (The TUI's log view is measured separately
once the TUI exists.) Run: .venv/bin/python bench/flood.py [lines]
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from gpuwizard import actions as A  # noqa: E402
from gpuwizard.console import ConsoleReporter, LogFile  # noqa: E402
from gpuwizard.engine import Engine, Step  # noqa: E402
from gpuwizard.host import Host, Runner  # noqa: E402
from gpuwizard.state import State  # noqa: E402


class NoAnswers(BaseModel):
    pass


def flood_step(lines: int) -> Step:
    class Flood(Step):
        id = "cuda"
        title = "flood"
        Answers = NoAnswers

        def plan(self, ctx, answers):
            return [A.Run("seq", f"seq {lines}", ["seq", str(lines)], idempotent=True)]

    return Flood()


def main(lines: int = 1_000_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        with open(tmp / "seq.out", "w") as fh:
            subprocess.run(["seq", str(lines)], stdout=fh, check=True)
        baseline = time.perf_counter() - start

        root = tmp / "root"
        (root / "proc/sys/kernel/random").mkdir(parents=True)
        (root / "proc/sys/kernel/random/boot_id").write_text("x\n")
        engine = Engine(Host(root, Runner()), State(root / "state.json"), {"cuda": flood_step(lines)}, detector=lambda h: {})
        log = LogFile(tmp / "logs")
        engine.listeners += [log, ConsoleReporter(io.StringIO())]
        start = time.perf_counter()
        code = engine.run(["cuda"], {"cuda": NoAnswers()})
        log.close()
        wizard = time.perf_counter() - start
        logged = sum(1 for _ in open(log.path))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "lines": lines,
        "exit_code": code,
        "lines_in_log": logged,
        "seq_to_file_s": round(baseline, 3),
        "runner_engine_log_s": round(wizard, 3),
        "ratio": round(wizard / baseline, 1),
        "peak_rss_mb": round(rss_mb, 1),
        "goal": "ratio <= 3 and peak RSS < 150 MB",
        "met": wizard / baseline <= 3 and rss_mb < 150,
    }
    print(f"{lines} lines of step output: runner -> engine events -> log file, vs seq > file")
    report("flood", figures)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
