"""`gpuwizard bundle` for examples/full.yaml on a simulated host (t4-bare: 44 files: the downloads, the
charts, 12 images, the 18 packages apt resolves; the simulated internet's copies, so the artifacts'
own transfer time is next to nothing), as a whole process, vs `gpuwizard plan` for the same answers
in the same run (a bundle plans first). Goal: < 10 s plus the artifacts' transfer time.
Run: .venv/bin/python bench/bundle.py"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).with_name("gpuwizard"))
FULL = str(ROOT / "examples/full.yaml")


def main(repeat: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        count = itertools.count()

        def bundle() -> None:
            n = next(count)  # a fresh build host and bundle each time: nothing cached
            r = subprocess.run([EXE, "--simulate", "t4-bare", "--root", f"{tmp}/build{n}", "bundle", "--answers", FULL,
                                "--out", f"{tmp}/bundle{n}"], capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr

        def plan() -> None:
            n = next(count)
            subprocess.run([EXE, "--simulate", "t4-bare", "--root", f"{tmp}/plan{n}", "plan", "--answers", FULL],
                           capture_output=True)

        took = median_seconds(bundle, repeat)
        base = median_seconds(plan, repeat)
    figures = {"bundle_full_yaml_t4_bare": {"bundle_s": round(took, 3), "plan_s": round(base, 3),
                                            "ratio": round(took / base, 2), "goal": "bundle_s < 10", "met": took < 10}}
    print(f"gpuwizard bundle --answers examples/full.yaml on t4-bare (whole process, median of {repeat})")
    report("bundle", figures)


if __name__ == "__main__":
    main()
