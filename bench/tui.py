"""The TUI where speed is felt (issue 10, item 7), each figure against a baseline measured in the same run:

1. first frame of the wizard vs a bare Textual app (goal <= 1.3x), both as real processes in an
   80x24 tmux pane, timed until their text is on the screen. The wizard runs as on a host: on a
   prepared root with its tools on PATH (``--root``, no ``--simulate``: preparing a simulated host
   is not what a user waits for); the ``--simulate`` start is reported beside it. Two moments:
   the frame (title and step list with statuses), then detection shown.
2. a step screen (operator, pod spec builder): from the request to the first frame written that
   shows the pane, and to its plan shown (goal < 150 ms to appear), headless 80x24, beside the
   welcome pane switched back to in the same app.
3. 1,000,000 lines of step output through runner -> engine -> log file + the TUI's log view vs the
   same lines through the headless engine path to the log file (goal <= 2x; the run alone: the
   median of five against the median of five, each run in a fresh process, the two kinds taking
   turns: in one process, whatever ran before slows the next run's allocations, by up to 2x), peak
   RSS of the TUI's process (< 150 MB), and, in one more flood, how long a key press (F1, help,
   opened and closed five times) takes to be handled (< 50 ms) and what those presses cost the run
   (reported beside: the help dialog is drawn on the thread the run shares the GIL with).

Run: .venv/bin/python bench/tui.py [lines]
"""

from __future__ import annotations

import asyncio
import io
import json
import os
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
from gpuwizard.engine import Engine, Step  # noqa: E402
from gpuwizard.simulate import prepare  # noqa: E402
from gpuwizard.state import State  # noqa: E402
from gpuwizard.steps import registry  # noqa: E402
from gpuwizard.steps.driver import DriverAnswers  # noqa: E402
from gpuwizard.tui.app import WizardApp  # noqa: E402
from gpuwizard.tui.screens.modals import HelpScreen  # noqa: E402

SIZE = (80, 24)


def session(root: Path) -> Session:
    return Session(build_parser().parse_args(["--simulate", "t4-bare", "--root", str(root)]), unattended=True, err=io.StringIO())


BARE_APP = "from textual.app import App\nfrom textual.widgets import Static\nclass Bare(App):\n    def compose(self):\n        yield Static('hello from a bare app')\nBare().run()\n"


def first_paint(argv: list[str], markers: list[str], env: dict[str, str] | None = None) -> list[float]:
    """Seconds from starting the process in an 80x24 tmux pane until each marker is on the screen:
    what a person sees, imports and all."""
    name = f"gwbench{time.monotonic_ns()}"
    # through env(1): a running tmux server does not pass PATH from `new-session -e` through
    envargs = ["/usr/bin/env", "-u", "PYTHONDONTWRITEBYTECODE", *(f"{k}={v}" for k, v in (env or {}).items())]
    start = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", *envargs, *argv], check=True)
    seen: dict[str, float] = {}
    try:
        while len(seen) < len(markers):
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
            now = time.perf_counter() - start
            for marker in markers:
                if marker not in seen and marker in screen:
                    seen[marker] = now
            if now > 30:
                raise RuntimeError(f"{[m for m in markers if m not in seen]} never appeared:\n{screen}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    return [seen[m] for m in markers]


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


def flood_headless(tmp: Path, lines: int) -> float:
    """The baseline: the same step through the unattended path (engine -> log file, no TUI)."""
    sess = session(tmp / "headless")
    sess.host.runner.path = sess.host.runner.path + ":/usr/bin:/bin"
    log = LogFile(tmp / "logs-headless")
    state = State(sess.state_path)
    engine = Engine(sess.host, state, flood_steps(lines), unattended=True, reboot_policy="never")
    engine.listeners.append(log)
    start = time.perf_counter()
    code = engine.run(["driver"], {"driver": DriverAnswers()})
    took = time.perf_counter() - start
    log.close()
    assert code == 0, code
    return took


async def flood(tmp: Path, lines: int, presses: int = 5) -> dict:
    """The flood through the TUI; ``presses``: F1 presses during it (0: the run alone)."""
    sess = session(tmp / "flood")
    sess.host.runner.path = sess.host.runner.path + ":/usr/bin:/bin"
    log = LogFile(tmp / "logs")
    app = WizardApp(sess, None, False, steps=flood_steps(lines), log=log, blink=False)
    latencies = []
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.open("driver")
        # the app settled, as a person finds it who has read the pane: detection shown (it is still
        # running when the steps have loaded) and the step's plan with it
        waited = time.perf_counter()
        while app.facts is None:
            if time.perf_counter() - waited > 60:
                raise RuntimeError("detection never showed its facts")
            await asyncio.sleep(0.005)
        await app.workers.wait_for_complete()
        await pilot.pause()
        start = time.perf_counter()
        app.post_message(events.Key("ctrl+r", None))  # not pilot.press: it would wait for the run
        while app.running is None and app.state.status("driver") == "pending":
            await asyncio.sleep(0.001)
        # during the flood: press F1, wait for the help screen, close it; a few times
        while app.state.status("driver") in ("pending", "running") and len(latencies) < presses:
            t0 = time.perf_counter()
            app.post_message(events.Key("f1", None))
            while not isinstance(app.screen, HelpScreen):
                await asyncio.sleep(0.001)
            latencies.append(time.perf_counter() - t0)
            while not app.screen.is_mounted:  # an Escape sent before would go to the screen below
                await asyncio.sleep(0.001)
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


async def step_screens(tmp: Path, repeat: int) -> dict:
    """Per pane: seconds from the request to the first frame written to the terminal that shows it
    (App._display, headless), and to its plan shown; the baseline is the welcome pane, already
    mounted, switched back to in the same app."""
    from gpuwizard.tui.screens.step import StepPane

    sess = session(tmp / "screens")
    app = WizardApp(sess, None, False, blink=False, propose=False)
    frames: list[tuple[float, str]] = []
    display = app._display

    def recorded(screen, renderable):
        display(screen, renderable)
        if renderable is not None:
            try:
                frames.append((time.perf_counter(), str(app.main.query_one("#content").current)))
            except Exception:  # noqa: BLE001 — closing
                pass

    app._display = recorded  # type: ignore[method-assign]
    out: dict[str, dict[str, list[float]]] = {}
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        for _ in range(repeat):
            for sid in ("welcome", "operator", "podspec"):
                # a fresh pane each time: the first open of a step is what a person waits for
                for pane in list(app.main.query(StepPane)):
                    await pane.remove()
                app.open("welcome")
                await app.workers.wait_for_complete()
                await pilot.pause()
                want = "welcome" if sid == "welcome" else f"step-{sid}"
                frames.clear()
                t0 = time.perf_counter()
                app.open(sid)
                while not any(cur == want for _, cur in frames):
                    await asyncio.sleep(0.001)
                shown = next(t for t, cur in frames if cur == want) - t0
                await app.workers.wait_for_complete()
                await pilot.pause()
                planned = time.perf_counter() - t0
                rec = out.setdefault(sid, {"shown_s": [], "planned_s": []})
                rec["shown_s"].append(shown)
                rec["planned_s"].append(planned)
    return {sid: {k: round(statistics.median(v), 4) for k, v in rec.items()} for sid, rec in out.items()}


def flood_process(kind: str, lines: int) -> dict:
    """One flood in a fresh process (``kind``: headless, tui, presses): its figures, and its peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--flood", kind, str(lines)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def flood_one(kind: str, lines: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "headless":
            result = {"seconds": flood_headless(Path(tmp), lines)}
        else:
            result = asyncio.run(flood(Path(tmp), lines, presses=5 if kind == "presses" else 0))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main(lines: int = 1_000_000, repeat: int = 5) -> None:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the wizard as installed: its modules byte-compiled
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bare.py").write_text(BARE_APP)
        exe = str(Path(sys.executable).with_name("gpuwizard"))
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parent.parent / "gpuwizard")],
                       check=True, env=env)
        # one idle session keeps the tmux server up between measurements
        subprocess.run(["tmux", "new-session", "-d", "-s", "gwbench-keep", "cat"], check=True)
        sim = prepare("t4-bare", tmp / "host")
        host_env = sim.env()
        markers = ["1 detect", "Tesla T4, 15360 MiB"]
        bare = statistics.median(first_paint([sys.executable, str(tmp / "bare.py")], ["hello from a bare app"])[0] for _ in range(repeat))
        runs = [first_paint([exe, "--root", str(tmp / "host")], markers, host_env)
                for _ in range(repeat)]
        frame, detected = (statistics.median(r[i] for r in runs) for i in range(2))
        sim_runs = [first_paint([exe, "--simulate", "t4-bare", "--root", str(tmp / "paint")],
                                markers[:1]) for _ in range(repeat)]
        sim_frame = statistics.median(r[0] for r in sim_runs)
        subprocess.run(["tmux", "kill-session", "-t", "gwbench-keep"], capture_output=True)

        screens = asyncio.run(step_screens(tmp, repeat))
        # the run alone, for the ratio: each flood in a fresh process, headless and TUI in turn;
        # then one with F1 pressed during it, for the key presses and what they cost the run
        runs: dict[str, list[dict]] = {"headless": [], "tui": []}
        for _ in range(repeat):
            for kind in runs:
                runs[kind].append(flood_process(kind, lines))
        headless = statistics.median(r["seconds"] for r in runs["headless"])
        alone_s = statistics.median(r["seconds"] for r in runs["tui"])
        result = flood_process("presses", lines)
    rss = max(r["peak_rss_mb"] for r in [*runs["tui"], result])
    worst_key = max(result["key_latencies_s"]) if result["key_latencies_s"] else None
    slowest_screen = max(v["shown_s"] for k, v in screens.items() if k != "welcome")
    figures = {
        "first_frame": {
            "bare_textual_s": round(bare, 3),
            "wizard_frame_s": round(frame, 3),
            "wizard_detection_shown_s": round(detected, 3),
            "simulate_frame_s": round(sim_frame, 3),
            "ratio_frame": round(frame / bare, 2),
            "ratio_detection": round(detected / bare, 2),
            "goal": "ratio_frame <= 1.3",
            "met": frame / bare <= 1.3,
        },
        "step_screen": {
            **screens,
            "goal": "a step pane shown < 150 ms",
            "met": slowest_screen < 0.15,
        },
        "flood": {
            "lines": lines,
            "step_status": result["status"],
            "headless_engine_to_log_s": round(headless, 3),
            "tui_s": round(alone_s, 3),
            "runs_s": {kind: [round(r["seconds"], 3) for r in rs] for kind, rs in runs.items()},
            "ratio": round(alone_s / headless, 2),
            "tui_with_key_presses_s": round(result["seconds"], 3),
            "ratio_with_key_presses": round(result["seconds"] / headless, 2),
            "peak_rss_mb": round(rss, 1),
            "key_press_ms": [round(1000 * x, 1) for x in result["key_latencies_s"]],
            "goal": "ratio (the run alone) <= 2, peak RSS < 150 MB, key press < 50 ms",
            "met": alone_s / headless <= 2 and rss < 150 and worst_key is not None and worst_key < 0.05,
        },
    }
    print(f"TUI at 80x24 (median of {repeat} starts, pane opens and floods of {lines} lines)")
    report("tui", figures)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        flood_one(sys.argv[2], int(sys.argv[3]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
