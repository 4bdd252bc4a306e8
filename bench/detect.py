"""Detection on a simulated host vs the same probes run one after another by /bin/sh.

Goal (issue 7): ratio <= 0.7 and < 0.3 s. Run: .venv/bin/python bench/detect.py
"""

from __future__ import annotations

import functools
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, report  # noqa: E402

from gpuwizard.detect import detect  # noqa: E402
from gpuwizard.host import Host, Runner  # noqa: E402
from gpuwizard.simulate import prepare  # noqa: E402


def main(repeat: int = 15) -> None:
    figures = {}
    for profile in ("t4-bare", "ready"):
        with tempfile.TemporaryDirectory() as tmp:
            sb = prepare(profile, Path(tmp) / "sb")
            env = sb.env()
            host = Host(sb.root, Runner(path=env["PATH"], env={"GPUWIZARD_SIM_ROOT": env["GPUWIZARD_SIM_ROOT"]}))
            before = len(sb.calls())
            detect(host)
            probes = [c["argv"] for c in sb.calls()[before:]]
            script = "\n".join(shlex.join(a) + " >/dev/null 2>&1" for a in probes)
            sh_env = {"PATH": env["PATH"], "GPUWIZARD_SIM_ROOT": env["GPUWIZARD_SIM_ROOT"]}
            wizard = median_seconds(functools.partial(detect, host), repeat)
            baseline = median_seconds(functools.partial(subprocess.run, ["/bin/sh", "-c", script], env=sh_env, check=False), repeat)
            figures[profile] = {
                "probes": len(probes),
                "detect_s": round(wizard, 4),
                "sequential_sh_s": round(baseline, 4),
                "ratio": round(wizard / baseline, 2),
                "goal": "ratio <= 0.7 and detect_s < 0.3",
                "met": wizard / baseline <= 0.7 and wizard < 0.3,
            }
    print("detection vs the same probes one after another in sh (median of", repeat, "runs)")
    report("detect", figures)


if __name__ == "__main__":
    main()
