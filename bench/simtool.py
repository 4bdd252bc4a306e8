"""Start-up of one simulated tool (`uname -m` in a t4-bare sandbox) vs a bare `python -S -c pass`,
in the same run. (Moved here from the unit tests: timings belong in benchmarks, not tests; the test
suite keeps the property behind the speed — the tools module imports nothing heavy.)
Run: .venv/bin/python bench/simtool.py"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, report  # noqa: E402

from gpuwizard.simulate import prepare  # noqa: E402


def main(repeat: int = 20) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sb = prepare("t4-bare", Path(tmp) / "sb")
        env = {**os.environ, **sb.env()}
        exe = shutil.which("uname", path=env["PATH"])
        tool = median_seconds(lambda: subprocess.run([exe, "-m"], env=env, capture_output=True, check=True), repeat)
    bare = median_seconds(lambda: subprocess.run([sys.executable, "-S", "-c", "pass"], capture_output=True), repeat)
    print(f"one simulated tool start (median of {repeat})")
    report("simtool", {"uname_ms": round(1000 * tool, 1), "bare_python_S_ms": round(1000 * bare, 1), "ratio": round(tool / bare, 2)})


if __name__ == "__main__":
    main()
