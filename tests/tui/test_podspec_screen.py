"""The HAMi pod spec editor (the ``podspec`` step's pane): typing, live YAML, inline rule
violations, GPU-type choices, save, apply, reachability; two snapshots at 80x24.

Every wait is on workers (the editor checks in a debounced thread worker), never a sleep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Button, Input, SelectionList, Static

from gpuwizard import podspec as PS
from gpuwizard.answers import parse_answers
from gpuwizard.steps.podspec import cluster_facts
from gpuwizard.tui.widgets.podspec import PodSpecEditor

from .conftest import SIZE, add_tool, make_app, open_pane, screen_text, settle


@pytest.fixture(autouse=True)
def _no_debounce(request, monkeypatch):
    """Check at once, except where typing is the point (there the real debounce runs)."""
    if "typing" not in request.node.name:
        monkeypatch.setattr(PodSpecEditor, "DEBOUNCE", 0)


SEED = {"name": "gpu-pod", "container": "ubuntu-container", "image": "ubuntu:18.04",
        "command": ["bash", "-c", "sleep 86400"], "gpus": 1, "gpumem": 3000, "gpucores": 30}


def seed_answers(**changes):
    spec = {**SEED, **changes}
    return parse_answers(json.dumps({"version": 1, "podspec": [spec]}), "seed.yaml")


async def open_editor(pilot, app) -> PodSpecEditor:
    await open_pane(pilot, "podspec")
    return app.pane("podspec").query_one(PodSpecEditor)


async def type_into(pilot, editor: PodSpecEditor, field: str, text: str, keys: bool = True) -> None:
    """Type ``text`` into a field, replacing what it holds (``keys=False``: set it at once, as a
    paste would: the same Input.Changed, fewer frames)."""
    box = editor.form.query_one(f"#f-{field}", Input)
    box.focus()
    if keys:
        await pilot.press("end", *["backspace"] * len(box.value), *text)
    else:
        box.value = text
    await settle(pilot)


def preview(editor: PodSpecEditor) -> str:
    return str(editor.query_one("#pe-preview", Static).content)


def error_under(editor: PodSpecEditor, field: str) -> str:
    box = editor.form.query_one(f"#err-{field}", Static)
    return str(box.content) if box.display else ""


async def test_typing_updates_the_preview_shows_rule_violations_inline_and_saves(tmp_path: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(pilot, app)
        pane = app.pane("podspec")
        assert app.focused.id == "f-name"  # the first field in error
        await pilot.press(*"gpu-pod")
        for field, text in (("image", "ubuntu:18.04"), ("gpumem", "3000"), ("gpucores", "30")):
            await type_into(pilot, editor, field, text)
        assert "nvidia.com/gpumem: 3000" in preview(editor)
        assert "nvidia.com/gpucores: 30" in preview(editor)
        assert not pane.query_one("#run", Button).disabled
        assert not editor.query_one("#pe-save", Button).disabled

        editor.form.query_one("#f-gpumem", Input).focus()
        await pilot.press("end", "0")  # 30000 MiB: more than a T4 has
        await settle(pilot)
        assert "15360 MiB" in error_under(editor, "gpumem")
        problems = str(editor.query_one("#pe-problems", Static).content)
        assert "gpumem: 30000 MiB exceeds the smallest card (Tesla T4, 15360 MiB" in problems
        assert pane.query_one("#run", Button).disabled
        assert editor.query_one("#pe-save", Button).disabled
        assert "nvidia.com/gpumem" not in preview(editor)
        assert "30000" in screen_text(app) and "15360 MiB" in screen_text(app)  # under the field, on screen

        await pilot.press("backspace")  # back to 3000
        await settle(pilot)
        assert error_under(editor, "gpumem") == ""
        assert "15360" not in str(editor.query_one("#pe-problems", Static).content)
        assert not pane.query_one("#run", Button).disabled
        assert app.answers["podspec"][0].gpumem == 3000

        # Save: the default file is ./<name>.yaml; the YAML written is the builder's
        path = editor.query_one("#pe-path", Input)
        assert path.value == "./gpu-pod.yaml"
        target = tmp_path / "out" / "gpu-pod.yaml"
        path.value = str(target)
        editor.query_one("#pe-save", Button).focus()
        await pilot.press("enter")
        await settle(pilot)
        typed = {"name": "gpu-pod", "image": "ubuntu:18.04", "gpumem": 3000, "gpucores": 30}
        assert target.read_text() == PS.make(typed, cluster_facts(app.facts)).yaml
        assert "saved" in str(editor.query_one("#pe-result", Static).content)


async def test_multi_gpu_offers_exactly_the_detected_model_names(tmp_path: Path):
    app = make_app(tmp_path, profile="multi-gpu", answers=seed_answers())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p", *"builder")  # the command palette: "Pod spec builder"
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert app.current == "podspec"
        editor = app.pane("podspec").query_one(PodSpecEditor)
        sl = editor.query_one("#pe-gpu-type", SelectionList)
        offered = [str(sl.get_option_at_index(i).prompt) for i in range(sl.option_count)]
        assert offered == ["NVIDIA A100-SXM4-80GB", "Tesla T4"]
        assert offered == PS.gpu_type_choices(cluster_facts(app.facts))
        sl.focus()
        await pilot.press("down", "down", "space")  # tick Tesla T4 (the second)
        await settle(pilot)
        assert app.answers["podspec"][0].gpu_type == ["Tesla T4"]
        assert "nvidia.com/use-gputype: Tesla T4" in preview(editor)


async def test_apply_keeps_other_specs_and_is_reachable_from_hami(tmp_path: Path):
    second = {"name": "other", "image": "ubuntu:22.04", "gpumem": 1000}
    answers = parse_answers(json.dumps({"version": 1, "podspec": [SEED, second]}), "two.yaml")
    app = make_app(tmp_path, answers=answers)
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(pilot, app)
        # the step's answers come from the editor; the answer file's other spec is kept
        assert "1 more from the answer file are kept" in screen_text(app)
        await type_into(pilot, editor, "name", "renamed", keys=False)
        specs = app.answers["podspec"]
        assert [s.name for s in specs] == ["renamed", "other"]
        assert specs[0].gpumem == 3000 and specs[1].gpumem == 1000
        await type_into(pilot, editor, "name", "gpu-pod", keys=False)

        apply = editor.query_one("#pe-apply", Button)
        assert apply.disabled  # t4-bare: no kubectl, no context
        assert "no Kubernetes context" in str(editor.query_one("#pe-apply-note", Static).content)
        log = tmp_path / "kubectl.log"
        add_tool(app, "kubectl", f"""import sys, json
args = sys.argv[1:]
if args[:2] == ['config', 'current-context']: print('kind-gpuwizard')
elif args[:1] == ['version']: print('{{}}')
elif args[:2] == ['get', 'nodes']: print(json.dumps({{'items': []}}))
elif args[:1] == ['apply']:
    open({str(log)!r}, 'a').write(json.dumps([args, sys.stdin.read()]) + '\\n')
    print('pod/gpu-pod created')
else: sys.exit(2)""")
        app.probe(plan=[])  # detect again: now there is a context
        await settle(pilot)
        assert not apply.disabled
        apply.focus()
        await pilot.press("enter")
        await settle(pilot)
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        assert calls == [[["apply", "-f", "-"], PS.make(SEED, cluster_facts(app.facts)).yaml]]
        assert "pod/gpu-pod created" in str(editor.query_one("#pe-result", Static).content)

        # the HAMi step's pane links here once HAMi is done
        app.open("hami")
        await settle(pilot)
        link = app.pane("hami").query_one("#link", Button)
        assert not link.display
        app.state.set_status("hami", "done", message="HAMi installed")
        app.refresh_statuses()
        await settle(pilot)
        assert link.display and "Pod spec builder" in str(link.label)
        link.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.current == "podspec"


# -- snapshots (80x24) ----------------------------------------------------------------------------
def snap(snap_compare, app, *actions):
    async def run_before(pilot):
        await settle(pilot)
        for action in actions:
            result = action(pilot)
            if result is not None:
                await result
            await settle(pilot)

    return snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_editor_with_the_seed_example(snap_compare, tmp_path: Path):
    app = make_app(tmp_path, answers=seed_answers())

    def show_preview(pilot):
        app.pane("podspec").query_one("#pe-save").focus()

    assert snap(snap_compare, app, lambda p: app.open("podspec"), show_preview)


def test_snapshot_editor_with_an_error(snap_compare, tmp_path: Path):
    app = make_app(tmp_path, answers=seed_answers())

    async def too_much_memory(pilot):
        app.pane("podspec").query_one("#f-gpumem", Input).focus()
        await pilot.press("end", "0")  # 30000 MiB

    assert snap(snap_compare, app, lambda p: app.open("podspec"), too_much_memory)
