"""Run every benchmark; each prints its figures and a ratio against a baseline measured in the
same run, and writes bench/results/<name>.json. Run: .venv/bin/python bench/all.py"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["detect", "simtool", "runner", "flood", "plan", "overhead", "json_output", "bundle", "tui"]

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    for name in BENCHES:
        path = HERE / f"{name}.py"
        if not path.exists():
            print(f"[{name}] not present yet")
            continue
        print(f"[{name}]")
        runpy.run_path(str(path), run_name="__main__")
