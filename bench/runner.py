"""Per-command overhead of gpuwizard's runner vs the `sh` library (with line callbacks and a
timeout, which the runner needs) and vs bare subprocess.run, for `true`.

Why this exists: the project's first runner was built on `sh`; its background threads poll every
0.1 s, so each command with a line callback or a timeout cost ~100 ms. Run:
.venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/runner.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, report  # noqa: E402

from gpuwizard.host import Runner  # noqa: E402


def main(repeat: int = 30) -> None:
    runner = Runner()
    figures = {
        "subprocess_run_ms": round(1000 * median_seconds(lambda: subprocess.run(["true"]), repeat), 2),
        "gpuwizard_runner_ms": round(1000 * median_seconds(lambda: runner.run(["true"], timeout=60, on_line=lambda _stream, _line: None), repeat), 2),
    }
    try:
        import sh
    except ImportError:
        figures["sh_library_ms"] = "not installed (pip install -e '.[bench]')"
    else:
        true = sh.Command("true")
        figures["sh_library_ms"] = round(1000 * median_seconds(lambda: true(_out=lambda _line: None, _timeout=60, _tty_out=False), repeat), 2)
        figures["sh_over_runner"] = round(figures["sh_library_ms"] / figures["gpuwizard_runner_ms"], 1)
    figures["runner_over_subprocess"] = round(figures["gpuwizard_runner_ms"] / figures["subprocess_run_ms"], 2)
    print(f"per-command overhead, `true`, median of {repeat}")
    report("runner", figures)


if __name__ == "__main__":
    main()
