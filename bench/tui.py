"""The TUI where speed is felt (issue 7), each against a baseline measured in the same run:

1. first paint of the wizard on the simulated t4-bare host vs a bare Textual app (goal <= 1.3x),
   both as real processes in an 80x24 tmux pane, timed until their text is on the screen;
2. 1,000,000 lines of step output through runner -> engine -> log file + the TUI's log view vs
   `seq 1000000 > file` (goal <= 3x), peak RSS (< 150 MB), and how long a key press (F1, help)
   takes to be handled during the flood (< 100 ms).

The flood runs headless (App.run_test), 80x24. Run: .venv/bin/python bench/tui.py [lines]
"""

from __future__ import annotations

import asyncio
import io
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from textual import events  # noqa: E402

from gpuwizard import actions as A  # noqa: E402
from gpuwizard.cli import Session, build_parser  # noqa: E402
from gpuwizard.console import LogFile  # noqa: E402
from gpuwizard.engine import Step  # noqa: E402
from gpuwizard.steps import registry  # noqa: E402
from gpuwizard.steps.driver import DriverAnswers  # noqa: E402
from gpuwizard.tui.app import WizardApp  # noqa: E402
from gpuwizard.tui.screens.modals import HelpScreen  # noqa: E402

SIZE = (80, 24)


def session(root: Path) -> Session:
    return Session(build_parser().parse_args(["--simulate", "t4-bare", "--root", str(root)]), unattended=True, err=io.StringIO())


BARE_APP = "from textual.app import App\nfrom textual.widgets import Static\nclass Bare(App):\n    def compose(self):\n        yield Static('hello from a bare app')\nBare().run()\n"


def first_paint(argv: list[str], marker: str) -> float:
    """Seconds from starting the process in an 80x24 tmux pane until `marker` is on the screen:
    what a person sees, imports and all."""
    name = f"gwbench{time.monotonic_ns()}"
    start = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", *argv], check=True)
    try:
        while True:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
            if marker in screen:
                return time.perf_counter() - start
            if time.perf_counter() - start > 30:
                raise RuntimeError(f"{marker!r} never appeared:\n{screen}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def flood_steps(lines: int) -> dict[str, Step]:
    class Flood(Step):
        id = "driver"
        title = "flood"
        Answers = DriverAnswers

        def plan(self, ctx, answers):
            # seq is not among the simulated tools: the runner finds it through this PATH entry
            return [A.Run("flood", f"seq {lines}", ["seq", str(lines)], idempotent=True)]

    steps = registry()
    steps["driver"] = Flood()
    return steps


async def flood(tmp: Path, lines: int) -> dict:
    sess = session(tmp / "flood")
    sess.host.runner.path = sess.host.runner.path + ":/usr/bin:/bin"
    log = LogFile(tmp / "logs")
    app = WizardApp(sess, None, False, steps=flood_steps(lines), log=log, blink=False)
    latencies = []
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.open("driver")
        await pilot.pause()
        start = time.perf_counter()
        app.post_message(events.Key("ctrl+r", None))  # not pilot.press: it would wait for the run
        while app.running is None and app.state.status("driver") == "pending":
            await asyncio.sleep(0.001)
        # during the flood: press F1, wait for the help screen, close it; a few times
        while app.state.status("driver") in ("pending", "running") and len(latencies) < 5:
            t0 = time.perf_counter()
            app.post_message(events.Key("f1", None))
            while not isinstance(app.screen, HelpScreen):
                await asyncio.sleep(0.001)
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)
            app.post_message(events.Key("escape", None))  # closed as a person closes it
            while isinstance(app.screen, HelpScreen):
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.05)
        while app.state.status("driver") in ("pending", "running"):
            await asyncio.sleep(0.005)
        took = time.perf_counter() - start
    log.close()
    return {"seconds": took, "status": app.state.status("driver"), "key_latencies_s": latencies}


def main(lines: int = 1_000_000, repeat: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bare.py").write_text(BARE_APP)
        # one idle session keeps the tmux server up between measurements
        subprocess.run(["tmux", "new-session", "-d", "-s", "gwbench-keep", "cat"], check=True)
        exe = str(Path(sys.executable).with_name("gpuwizard"))
        bare = statistics.median(first_paint([sys.executable, str(tmp / "bare.py")], "hello from a bare app") for _ in range(repeat))
        # the frame (title and step list) is the first paint; detection fills the welcome pane after
        wiz_frame = statistics.median(first_paint([exe, "--simulate", "t4-bare", "--root", str(tmp / "paint")], "Steps") for _ in range(repeat))
        wiz = statistics.median(first_paint([exe, "--simulate", "t4-bare", "--root", str(tmp / "paint")], "Tesla T4, 15360 MiB") for _ in range(repeat))

        subprocess.run(["tmux", "kill-session", "-t", "gwbench-keep"], capture_output=True)
        start = time.perf_counter()
        with open(tmp / "seq.out", "w") as fh:
            subprocess.run(["seq", str(lines)], stdout=fh, check=True)
        seq = time.perf_counter() - start
        result = asyncio.run(flood(tmp, lines))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worst_key = max(result["key_latencies_s"]) if result["key_latencies_s"] else None
    figures = {
        "first_paint": {
            "bare_textual_s": round(bare, 3),
            "wizard_frame_s": round(wiz_frame, 3),
            "wizard_with_detection_s": round(wiz, 3),
            "ratio_frame": round(wiz_frame / bare, 2),
            "ratio_with_detection": round(wiz / bare, 2),
            "goal": "ratio <= 1.3",
            "met": wiz_frame / bare <= 1.3,
        },
        "flood": {
            "lines": lines,
            "step_status": result["status"],
            "seq_to_file_s": round(seq, 3),
            "tui_s": round(result["seconds"], 3),
            "ratio": round(result["seconds"] / seq, 1),
            "peak_rss_mb": round(rss, 1),
            "key_press_ms": [round(1000 * x, 1) for x in result["key_latencies_s"]],
            "goal": "ratio <= 3, peak RSS < 150 MB, key press < 100 ms",
            "met": result["seconds"] / seq <= 3 and rss < 150 and worst_key is not None and worst_key < 0.1,
        },
    }
    print(f"TUI at 80x24, headless (median of {repeat} first paints; one flood of {lines} lines)")
    report("tui", figures)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
