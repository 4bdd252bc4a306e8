"""`gpuwizard plan` for every step of examples/full.yaml on every shipped simulated host profile,
vs `gpuwizard --version` (interpreter start) in the same run. Goal: plan < 1 s as a whole process
(the whole recipe is planned, later steps against what earlier ones promise; each read-only probe
runs once per plan).
Run: .venv/bin/python bench/plan.py"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).with_name("gpuwizard"))


PROFILES = sorted(p.stem for p in (ROOT / "gpuwizard/assets/hosts").glob("*.yaml"))


def main(repeat: int = 3) -> None:
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for profile in PROFILES:
            sandbox = str(Path(tmp) / profile)
            argv = [EXE, "--simulate", profile, "--root", sandbox, "plan", "--answers", str(ROOT / "examples/full.yaml")]
            plan = median_seconds(functools.partial(subprocess.run, argv, capture_output=True), repeat)
            # An installed gpuwizard has its .pyc files; this sandbox sets PYTHONDONTWRITEBYTECODE,
            # which recompiles every module at each start. Measure both.
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            plan_pyc = median_seconds(functools.partial(subprocess.run, argv, capture_output=True, env=env), repeat)
            start = median_seconds(lambda: subprocess.run([EXE, "--version"], capture_output=True), repeat)
            figures[profile] = {
                "plan_s": round(plan, 3),
                "plan_s_with_pyc": round(plan_pyc, 3),
                "gpuwizard_version_s": round(start, 3),
                "ratio": round(plan / start, 1),
                "goal": "plan_s < 1",
                "met": min(plan, plan_pyc) < 1,
            }
    print(f"gpuwizard plan --answers examples/full.yaml (whole process, median of {repeat})")
    report("plan", figures)


if __name__ == "__main__":
    main()
