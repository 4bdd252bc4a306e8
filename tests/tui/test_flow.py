"""The wizard driven with the keyboard, as a person would, on simulated hosts (Pilot, 80x24).

Every wait is on workers or engine events, never a sleep."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Log

from gpuwizard.answers import load_answers
from gpuwizard.engine import Event
from gpuwizard.errors import EXIT_FAILED, EXIT_OK, EXIT_REBOOT
from gpuwizard.tui.app import FLOOD_LINES
from gpuwizard.tui.screens.modals import ConfirmScreen, DoctorScreen, ExportScreen, FailureScreen, RebootScreen
from gpuwizard.tui.widgets.runview import MAX_LINES

from .conftest import (
    SIZE,
    EventWaiter,
    Flood,
    Hang,
    ListPci,
    NeedsReboot,
    add_tool,
    make_app,
    open_pane,
    screen_text,
    settle,
    with_driver,
)

# what a person types into required fields that have no default (the pod spec's name and image)
TYPED = {"name": "gpu-pod", "image": "ubuntu:22.04"}


async def fill_required(pilot, app, sid) -> None:
    pane = app.pane(sid)
    for _ in range(10):
        run = pane.query("#run")
        if not run or not run.first().disabled:
            return
        await pilot.press("ctrl+r")  # with invalid answers: focuses the first field in error
        field = app.focused.id.removeprefix("f-")
        await pilot.press(*TYPED[field])
        await settle(pilot)  # the field's checks (the pod spec builder's is debounced) have answered
    raise AssertionError("the form did not become valid")


async def test_keyboard_only_flow_reaches_summary_on_t4_bare(tmp_path: Path):
    """Welcome -> each implemented step (form, plan, Run, live log) -> summary -> export -> quit.
    A reboot on the way (a driver step) is taken with 'Reboot now' and `--resume`."""
    resume, seen_output, done_flow = False, {}, False
    for _session in range(4):
        app = make_app(tmp_path, resume=resume, propose=True)
        app.export_default = str(tmp_path / "exported.yaml")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            if not resume:
                assert app.current == "welcome"
                text = screen_text(app)
                assert "Tesla T4" in text and "no blockers found" in text
                await pilot.press("enter")  # Start
                await settle(pilot)
            rebooted = False
            for _ in range(20):
                if app.current == "summary":
                    break
                sid = app.current
                assert app.steps[sid].implemented
                await fill_required(pilot, app, sid)
                # Enter on the focused "Run step" button, or Ctrl+R from the field just typed in
                await pilot.press("enter" if app.focused.id == "run" else "ctrl+r")
                await settle(pilot)
                seen_output[sid] = list(app.outputs.get(sid, []))
                if isinstance(app.screen, RebootScreen):
                    await pilot.press("shift+tab", "enter")  # "Reboot now"
                    await settle(pilot)
                    rebooted = True
                    break
                assert app.state.status(sid) == "done", (sid, app.state.steps.get(sid))
                assert app.focused.id == "next-after"
                await pilot.press("enter")  # Next
                await settle(pilot)
            if rebooted:
                assert app.return_value == EXIT_REBOOT
                resume = True
                continue
            assert app.current == "summary"
            text = screen_text(app)
            assert "not available in this version yet" in text or all(app.steps[s].implemented for s in app.step_ids)
            assert "next commands" in text.lower()
            for sid in app.implemented():
                assert app.state.status(sid) == "done"
                assert seen_output[sid], f"no live output shown for {sid}"
            await pilot.press("enter")  # Export answers (focused)
            assert isinstance(app.screen, ExportScreen)
            await pilot.press("enter")  # Save
            await pilot.pause()
            await pilot.press("ctrl+q")
            done_flow = True
        break
    assert done_flow
    assert app.return_value == EXIT_OK
    exported = load_answers(tmp_path / "exported.yaml")
    assert exported.detect is not None
    if app.steps["podspec"].implemented:
        assert exported.podspec[0].name == "gpu-pod"
    assert list((tmp_path / "logs").glob("gpuwizard-*.log"))


async def run_to_failure(pilot, app, sid: str) -> str:
    """Open the step, press Run, wait for the failure dialog; its text."""
    await open_pane(pilot, sid)
    await pilot.press("ctrl+r")
    await settle(pilot)
    assert isinstance(app.screen, FailureScreen)
    return screen_text(app)


async def test_failure_shows_tail_and_log_then_retry_succeeds(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps(
        [{"match": ["systemctl", "restart"], "rc": 1, "stderr": "Job for docker.service failed.", "times": 1}]))
    app = make_app(tmp_path, steps=with_driver(ListPci))
    async with app.run_test(size=SIZE) as pilot:
        text = await run_to_failure(pilot, app, "driver")
        assert "Job for docker.service failed." in text
        assert "gpuwizard-<run>.log" in text and "Retry" in text and "Skip" in text
        assert app.state.status("driver") == "failed"
        assert "Tesla T4" in "\n".join(app.outputs["driver"])  # lspci's output streamed first
        await pilot.press("r")  # Retry
        await settle(pilot)
        assert app.state.status("driver") == "done"
        assert not isinstance(app.screen, FailureScreen)
        await pilot.press("ctrl+q")
    assert app.return_value == EXIT_OK


async def test_failure_skip_and_quit(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GPUWIZARD_SIM_FAIL", json.dumps([{"match": ["systemctl", "restart"], "rc": 1}]))
    app = make_app(tmp_path, steps=with_driver(ListPci))
    async with app.run_test(size=SIZE) as pilot:
        await run_driver(app, pilot)
        await pilot.press("s")  # Skip
        await settle(pilot)
        assert app.state.status("driver") == "skipped" and app.current != "driver"
        app.open("driver")
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("q")  # Quit
        await pilot.pause()
    assert app.return_value == EXIT_FAILED
    assert "--resume" in app.exit_message


async def test_reboot_then_resume_reopens_and_finishes_the_step(tmp_path: Path):
    app = make_app(tmp_path, steps=with_driver(NeedsReboot))
    async with app.run_test(size=SIZE) as pilot:
        await run_driver(app, pilot)
        assert isinstance(app.screen, RebootScreen)
        text = screen_text(app)
        assert "nvidia kernel module loads at the next boot" in text and "--resume" in text
        assert app.state.status("driver") == "reboot-required"
        await pilot.press("enter")  # "Later (quit)" is focused
        await pilot.pause()
    assert app.return_value == EXIT_REBOOT
    boot = (tmp_path / "host/proc/sys/kernel/random/boot_id").read_text()

    # still the same boot: resuming reopens at the step, and running it says "reboot first"
    app = make_app(tmp_path, steps=with_driver(NeedsReboot), resume=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.current == "driver" and "reboot" in screen_text(app)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, RebootScreen)
        await pilot.press("shift+tab", "enter")  # Reboot now (the simulated host's reboot)
        await settle(pilot)
    assert app.return_value == EXIT_REBOOT
    assert (tmp_path / "host/proc/sys/kernel/random/boot_id").read_text() != boot

    app = make_app(tmp_path, steps=with_driver(NeedsReboot), resume=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.current == "driver"
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.state.status("driver") == "done"



def hanging_app(tmp_path: Path):
    """The wizard with a driver step whose command prints a line, then hangs for a minute."""
    app = make_app(tmp_path, steps=with_driver(Hang))
    add_tool(app, "hang", "import time\nprint('working…', flush=True)\ntime.sleep(60)")
    return app


async def start_hanging_run(app, pilot) -> None:
    """Run the hanging driver step and return once its first line of output has arrived."""
    await settle(pilot)
    app.open("driver")
    started = EventWaiter(app, "output")
    await pilot.press("ctrl+r")
    await started.wait()


async def test_resume_after_a_kill_mid_step_reopens_at_that_step(tmp_path: Path):
    app = hanging_app(tmp_path)
    state_file = app.state.path
    async with app.run_test(size=SIZE) as pilot:
        await start_hanging_run(app, pilot)
        killed = state_file.read_bytes()  # what a kill -9 now would leave on disk
        assert json.loads(killed)["steps"]["driver"]["status"] == "running"
        app.host.runner.cancel.set()
        await settle(pilot)
    state_file.write_bytes(killed)

    app = make_app(tmp_path, steps=with_driver(Hang), resume=True)
    add_tool(app, "hang", "print('fine now')")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.current == "driver"
        text = screen_text(app)
        assert "interrupted" in text and "stopped" in text
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.state.status("driver") == "done"


async def test_cancel_asks_then_stops_the_command_and_records_failure(tmp_path: Path):
    app = hanging_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await start_hanging_run(app, pilot)
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # No: keep running
        assert app.running == "driver"
        await pilot.press("escape", "y")
        await settle(pilot)
        assert isinstance(app.screen, FailureScreen)
        assert app.state.status("driver") == "failed"
        assert app.state.steps["driver"]["actions"]["hang"]["outcome"] == "failed"
        assert "lspci" not in app.state.steps["driver"]["actions"]  # nothing after the cancel ran


async def test_quit_mid_run_asks_first(tmp_path: Path):
    app = hanging_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await start_hanging_run(app, pilot)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen) and "Quit while a step runs" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
    assert app.return_value == EXIT_FAILED
    assert app.state.status("driver") == "failed"


async def run_driver(app, pilot) -> None:
    """The app settled, the driver step's pane opened and its run started (Ctrl+R), then settled."""
    await settle(pilot)
    app.open("driver")
    await pilot.press("ctrl+r")
    await settle(pilot)


async def test_a_flood_of_output_is_batched_and_bounded(tmp_path: Path):
    app = make_app(tmp_path, steps=with_driver(Flood))
    add_tool(app, "flood", "import sys\nsys.stdout.write(''.join(f'line {i}\\n' for i in range(30000)))")
    async with app.run_test(size=SIZE) as pilot:
        await run_driver(app, pilot)
        log = app.pane("driver").query_one(Log)
        assert app.state.status("driver") == "done"
        assert log.line_count <= MAX_LINES == FLOOD_LINES  # a drain of more than the view keeps is a flood
        assert any("line 29999" == x for x in log.lines[-5:])
    app.log_file.close()
    text = next((tmp_path / "logs").glob("*.log")).read_text()
    assert "line 0\n" in text and "line 29999\n" in text


async def test_a_flood_queued_between_drains_keeps_only_what_the_view_can_show(tmp_path: Path):
    """Reads queued between two drains: the queue holds no more output than the view can still show
    (older reads are freed as newer ones arrive), and the drain shows exactly the lines it showed
    when it was handed every read: the last OUTPUT_KEEP of them, the event lines among them, in order."""
    from gpuwizard.tui.app import OUTPUT_KEEP, event_lines

    app = make_app(tmp_path, steps=with_driver(Flood))
    add_tool(app, "flood", "print('line 0')")
    async with app.run_test(size=SIZE) as pilot:
        await run_driver(app, pilot)
        app._drain_events()
        before = list(app.outputs["driver"])
        events = [Event("action-started", "driver", "flood", "second read")]
        n = 0
        for read in range(12):  # 12 reads of 3,000 lines, a note after the sixth
            lines = [f"read {read} line {i}" for i in range(3000)]
            n += len(lines)
            events.append(Event("output", "driver", "flood", "\n".join(lines), data={"lines": lines}))
            if read == 5:
                events.append(Event("note", "driver", "flood", "halfway"))
        events.append(Event("action-finished", "driver", "flood", "second read", status="ok"))
        most = 0
        for ev in events:
            app._on_engine_event(ev)
            most = max(most, sum(len(e.data["lines"]) for e in app._queue if e.kind == "output"))
        # what the view shows: the last OUTPUT_KEEP lines of all the events' lines
        every = [line for ev in events for line in event_lines(ev)]
        assert most <= 2 * OUTPUT_KEEP + 3000
        assert [e.text for e in app._queue if e.kind != "output"] == ["second read", "halfway", "second read"]
        assert app._drain_events() == n  # the reads' lines are counted, not only those kept
        assert list(app.outputs["driver"]) == (before + every)[-OUTPUT_KEEP:]
        assert app.pane("driver").runview.log_view.lines[-1] == every[-1]


async def test_output_drained_while_the_app_closes_its_widgets_is_dropped_not_a_crash(tmp_path: Path):
    """When the app closes, its widgets are removed while the output timer may still fire with a
    run's last lines queued (seen in the flood benchmark: NoMatches, and the app ended with a
    traceback). The lines are in the log file; the view, going away, is skipped."""
    app = make_app(tmp_path, steps=with_driver(Flood))
    add_tool(app, "flood", "print('line 0')")
    async with app.run_test(size=SIZE) as pilot:
        await run_driver(app, pilot)
        pane = app.pane("driver")
        await pane.runview.remove()  # as at shutdown: the pane's children go first
        app._on_engine_event(Event("output", "driver", "flood", "line 1", data={"lines": ["line 1"]}))
        app._drain_events()  # raised NoMatches
        assert list(app.outputs["driver"])[-1] == "line 1"
    assert app._exception is None


async def test_form_is_generated_from_the_model_and_shows_its_errors(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(pilot, "podspec")
        pane = app.pane("podspec")
        assert pane.query_one("#run").disabled
        assert "required key is missing" in screen_text(app)
        await pilot.press(*"Bad_Name")
        await pilot.pause()
        assert "Bad_Name" not in app.answers.get("podspec", [])
        err = pane.query_one("#err-name").render()
        assert str(err).strip() and "required" not in str(err)


async def test_palette_doctor_and_help(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert "Ctrl+R" in screen_text(app)
        await pilot.press("escape", "ctrl+p")
        await pilot.press(*"doctor")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DoctorScreen)
        await pilot.press("escape", "ctrl+p")
        await pilot.press(*"jump to step 8")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert app.current == "podspec"


def test_without_a_terminal_the_wizard_refuses_with_exit_2(tmp_path: Path):
    import io

    from gpuwizard.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(["--simulate", "t4-bare", "--root", str(tmp_path / "s")], out=out, err=err)
    assert code == 2 and "needs a terminal" in err.getvalue() and "--answers" in err.getvalue()


def test_the_wizard_takes_the_lock(tmp_path: Path, monkeypatch):
    import io

    from gpuwizard import cli

    root = tmp_path / "s"
    monkeypatch.setattr(cli, "_interactive", lambda out: True)
    code = cli.main(["--simulate", "t4-bare", "--root", str(root), "doctor"], out=io.StringIO(), err=io.StringIO())
    from ..conftest import lock_held

    with lock_held(root / "var/lib/gpuwizard/state.json") as pid:  # the lock unattended runs take
        err = io.StringIO()
        code = cli.main(["--simulate", "t4-bare", "--root", str(root)], out=io.StringIO(), err=err)
        assert code == 4 and f"PID {pid}" in err.getvalue()


async def test_a_step_whose_downloads_the_host_cannot_reach_stops_before_it_changes_anything(tmp_path: Path):
    """No name resolves (airgapped): the CUDA step's Run checks its URLs first, as the unattended run
    does, and shows what cannot be fetched and what to do; nothing of the step ran."""
    app = make_app(tmp_path, profile="airgapped")
    async with app.run_test(size=SIZE) as pilot:
        text = await run_to_failure(pilot, app, "cuda")
        assert "1 URL(s) of the plan cannot be fetched from this host; nothing was" in text
        assert "curl: (6) Could not resolve host:" in text
        assert "needed by [cuda] download NVIDIA's cuda-keyring package" in text  # brackets shown, not markup
        assert "offline bundle on a connected machine (gpuwizard bundle --answers FILE" in text
        assert app.state.status("cuda") != "done"
        from gpuwizard.simulate import prepare

        calls = [c["argv"] for c in prepare("airgapped", tmp_path / "host").calls()]
        assert not [a for a in calls if a[:1] == ["apt-get"] or a[:2] == ["dpkg", "-i"] or a[:2] == ["curl", "-fsSL"]]
        await pilot.press("q")
        await settle(pilot)
        await pilot.press("ctrl+q")
