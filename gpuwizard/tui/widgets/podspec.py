"""The HAMi pod spec editor: the ``podspec`` step's own widget (``PodspecStep.tui_widget``).

The fields of :class:`gpuwizard.podspec.PodSpecAnswers` (the generic :class:`AnswersForm`, less
``gpu_type``), a GPU-type selector offering exactly the detected card names, the problems of the
spec (errors, warnings, notes: each names its field; field errors also show under the field), Save
(atomic write to a path you give) and Apply (``kubectl apply -f -`` through the host's runner), and
a live YAML preview. Every check is :func:`gpuwizard.podspec.make` in a thread worker, debounced:
typing never waits for it. The step's answers come from here (``current_answers``): a list, the
edited spec first, any further specs of the answer file kept.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.highlight import highlight
from textual.widget import Widget
from textual.widgets import Button, Input, SelectionList, Static
from textual.widgets.selection_list import Selection

from ... import podspec as PS
from ...errors import GpuwizardError
from ...host import atomic_write
from ...steps.podspec import cluster_facts
from .compact import compact_button, compact_input
from .form import AnswersForm, FieldRow

if TYPE_CHECKING:  # pragma: no cover
    from ..app import WizardApp

PANE_SHOWN_WAIT = 1.0  # seconds (as the app's): the first check waits at most this for the pane

SKIP = ("gpu_type",)  # fields the editor shows itself instead of the generic form


class PodSpecForm(AnswersForm):
    """The generic form without ``gpu_type``; also shows the builder's field errors (``extra``)
    under their field when the model itself has nothing to say about that field."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.specs = [s for s in self.specs if s.name not in SKIP]
        self.extra: dict[str, str] = {}
        self._model_errors: set[str] = set()

    def validate_form(self, post: bool = True) -> BaseModel | None:
        model = super().validate_form(post=False)  # every box now shows the model's error or nothing
        self._model_errors = {s.name for s in self.specs if self.has_error(s.name)}
        self._paint_extra(set())
        if post:
            self.post_message(self.Changed(self, model))
        return model

    def set_extra(self, extra: dict[str, str]) -> None:
        old, self.extra = set(self.extra), extra
        self._paint_extra(old)

    def _paint_extra(self, clear: set[str]) -> None:
        """Show ``extra`` under its fields (those without a model error); clear ``clear``'s boxes."""
        names = {s.name for s in self.specs}
        for name in (set(self.extra) | clear) & names - self._model_errors:
            self.show_error(name, self.extra.get(name) or "")


def _hami_settings(app: WizardApp) -> dict[str, Any]:
    hami = app.answers.get("hami")
    if isinstance(hami, BaseModel):
        return hami.model_dump()
    return dict(hami) if isinstance(hami, dict) else {}


class PodSpecEditor(Vertical):
    """Edits the first pod spec of the ``podspec`` step. Posts ``AnswersForm.Changed`` (with
    ``checked = True``) after each check so the step pane updates Run and the plan."""

    DEBOUNCE = 0.15  # seconds of quiet typing before the spec is checked again

    DEFAULT_CSS = """
    PodSpecEditor { height: auto; }
    PodSpecEditor .pe-row { width: 1fr; height: auto; margin: 0 0 0 1; overflow: hidden hidden; }
    PodSpecEditor .pe-row > SelectionList { margin: 0 0 0 18; }
    PodSpecEditor #pe-gpu-type { width: 1fr; height: auto; max-height: 6; border: none; padding: 0; }
    PodSpecEditor #pe-gpu-type-note { margin: 0 0 0 19; color: $text-muted; height: auto; }
    PodSpecEditor #pe-problems { margin: 0 0 0 1; height: auto; }
    PodSpecEditor .pe-actions { height: 1; margin: 1 0 0 1; }
    PodSpecEditor .pe-actions Input { width: 1fr; }
    PodSpecEditor .pe-actions Button { margin: 0 0 0 1; }
    PodSpecEditor #pe-result, PodSpecEditor #pe-apply-note { margin: 0 0 0 1; height: auto; }
    PodSpecEditor #pe-preview { margin: 0 0 0 1; height: auto; }
    """

    def __init__(self, app: WizardApp, sid: str = "podspec"):
        super().__init__(id="podspec-editor")
        self.wizard = app
        self.sid = sid
        stored = list(app.answers.get(sid) or [])
        first = stored[0] if stored and isinstance(stored[0], PS.PodSpecAnswers) else None
        self.first = first
        self.rest = stored[1:]
        self.types: list[str] = list(first.gpu_type) if first is not None else []
        self.types_given = first is not None and "gpu_type" in first.model_fields_set
        self.choices: list[str] = []
        self.result: PS.Result | None = None
        self.result_data: dict[str, Any] | None = None
        self.saved_output: str | None = None
        self.applying = False
        self._seq = 0
        self._lock = threading.Lock()
        self._auto_path = ""
        self._path_edited = False
        self._built = False  # the parts below the form (pane_shown)

    # -- building -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        if self.rest:
            yield Static(Text(f"This step takes a list; the editor edits the first pod spec "
                              f"({len(self.rest)} more from the answer file are kept).", style="dim"))
        # the rows that can be on the screen at first: at most its height less the nine lines above
        # and below the form (header, title, facts, sections, buttons, key bar); the others, and
        # what comes below the form, once the pane's first frame is on the screen (pane_shown)
        yield PodSpecForm(PS.PodSpecAnswers, self.first, blink=self.wizard.blink, id="form",
                          first_rows=max(1, self.wizard.size.height - 9))

    def _below_form(self) -> list[Widget]:
        path = compact_input("", placeholder="file to save the YAML to", id="pe-path")
        path.cursor_blink = self.wizard.blink
        gpu_type = FieldRow("gpu_type", SelectionList[str](id="pe-gpu-type", compact=True), classes="pe-row")
        result = Static("", id="pe-result")
        result.display = False
        return [
            gpu_type,
            Static("", id="pe-gpu-type-note"),
            Static("Problems", classes="section"),
            Static(Text("checking…", style="dim"), id="pe-problems"),
            Horizontal(path, compact_button("Save", id="pe-save", disabled=True),
                       compact_button("Apply", id="pe-apply", disabled=True), classes="pe-actions"),
            Static("", id="pe-apply-note"),
            result,
            Static("YAML preview", classes="section"),
            Static(Text("checking…", style="dim"), id="pe-preview"),
        ]

    async def pane_shown(self) -> None:
        """Called by the step pane once its first frame is on the screen: the form's last rows, the
        GPU-type choice, the problems, Save / Apply and the preview are built, then the spec is
        checked."""
        if self._built:
            return
        await self.form.build_rest()
        await self.mount_all(self._below_form())
        self._built = True
        self.refresh_facts()

    @property
    def form(self) -> PodSpecForm:
        return self.query_one("#form", PodSpecForm)

    # -- facts ----------------------------------------------------------------------------------
    def facts(self) -> PS.ClusterGpuFacts | None:
        app = self.wizard
        if app.facts is None:
            return None
        return cluster_facts(app.facts, _hami_settings(app))

    def kube_context(self) -> str | None:
        kube = (self.wizard.facts or {}).get("kubernetes") or {}
        return kube.get("context") or None

    def refresh_facts(self) -> None:
        """Detection (re)ran: new GPU-type choices, a new check. Called by the step pane."""
        if not self._built:
            return  # pane_shown comes back here
        choices = PS.gpu_type_choices(self.facts())
        sl = self.query_one("#pe-gpu-type", SelectionList)
        if choices != self.choices or not sl.option_count and choices:
            self.choices = choices
            wanted = {t.upper() for t in self.types}
            sl.clear_options()
            sl.add_options([Selection(c, c, c.upper() in wanted) for c in choices])
        sl.display = bool(choices)
        self._type_note()
        self.schedule(delay=0)

    def _type_note(self) -> None:
        known = {c.upper() for c in self.choices}
        kept = [t for t in self.types if t.upper() not in known]
        note = self.query_one("#pe-gpu-type-note", Static)
        parts = []
        if not self.choices:
            parts.append("detecting the cards…" if self.wizard.facts is None else
                         "no cards with known memory detected: nothing to choose from")
        else:
            ticked = [t for t in self.types if t.upper() in known]
            parts.append(f"ticked: {', '.join(ticked)}" if ticked else "none ticked (space): any card")
        if kept:
            parts.append(f"kept from the answers: {', '.join(kept)}")
        note.update(Text("; ".join(parts), style="dim"))

    # -- the spec -------------------------------------------------------------------------------
    def spec_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(the spec as a dict of answer keys, fields that do not even parse)."""
        data, errors = self.form.raw_values()
        if self.types or self.types_given:
            data["gpu_type"] = list(self.types)
        if self.saved_output and not data.get("output"):
            data["output"] = self.saved_output  # Export replays the Save: the spec is written there
        return data, errors

    def current_answers(self) -> list[PS.PodSpecAnswers] | None:
        """The step's answers: the edited spec first, the answer file's others kept; None while
        the spec is invalid (the model's rules, or the builder's last check of these values)."""
        data, errors = self.spec_data()
        if errors:
            return None
        try:
            model = PS.PodSpecAnswers.model_validate(data)
        except ValidationError:
            return None
        with self._lock:
            if self.result is not None and self.result_data == data and not self.result.ok:
                return None
        return [model, *self.rest]

    # -- checking (debounced, in a thread) ------------------------------------------------------
    def schedule(self, delay: float | None = None) -> None:
        data, errors = self.spec_data()
        self._seq += 1
        self.check_worker(self._seq, data, errors, self.facts(), self.DEBOUNCE if delay is None else delay,
                          self.wizard.pane_shown)

    @work(thread=True, group="podspec-check", exit_on_error=False)
    def check_worker(self, seq: int, data: dict[str, Any], errors: dict[str, str],
                     facts: PS.ClusterGpuFacts | None, delay: float, shown: threading.Event) -> None:
        # the first check, started while the pane mounts, waits for it to be on the screen
        shown.wait(PANE_SHOWN_WAIT)
        # Debounce by sequence number, not by cancelling: a newer keystroke makes this worker end
        # quietly (a cancelled worker would look like an app shutting down to whoever waits on it).
        if delay:
            threading.Event().wait(delay)
        if seq != self._seq:
            return
        if errors:
            result = PS.Result(None, None, None, errors=[PS.Problem(k, f"{k}: {v}") for k, v in errors.items()])
        else:
            try:
                result = PS.make(data, facts)
            except Exception as exc:  # noqa: BLE001 — a builder bug must not take the UI down
                result = PS.Result(None, None, None, errors=[PS.Problem("", f"internal error: {type(exc).__name__}: {exc}")])
        if seq == self._seq:
            self._call_back(self._checked, seq, data, result)

    def _call_back(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the UI thread (from a worker); nothing when the app has gone meanwhile."""
        try:
            self.wizard.call_from_thread(fn, *args)
        except RuntimeError:  # the app is not running any more
            pass

    def _checked(self, seq: int, data: dict[str, Any], result: PS.Result) -> None:
        if seq != self._seq or not self.is_mounted:
            return  # a newer check is on its way
        with self._lock:
            self.result, self.result_data = result, data
        self.form.set_extra({p.field.split(".")[0]: p.message.split(": ", 1)[-1] for p in reversed(result.errors)
                             if p.field})
        self.query_one("#pe-problems", Static).update(self._problems_text(result))
        preview = self.query_one("#pe-preview", Static)
        if result.yaml is not None:
            preview.update(highlight(result.yaml, language="yaml"))
        else:
            preview.update(Text("no YAML while the spec has errors (listed above)", style="dim"))
        name = (result.spec.name if result.spec else data.get("name")) or "pod"
        self._default_path(name if isinstance(name, str) else "pod")
        self._refresh_buttons()
        msg = AnswersForm.Changed(self.form, self.current_answers())
        msg.checked = True  # type: ignore[attr-defined]
        self.post_message(msg)

    @staticmethod
    def _problems_text(result: PS.Result) -> Text:
        out = Text()
        for p in result.errors:
            out.append("✗ error ", style="bold red")
            out.append(f"{p.message}\n", style="red")
        for p in result.warnings:
            out.append("! warning ", style="bold yellow")
            out.append(f"{p.message}\n", style="yellow")
        for n in result.notes:
            out.append(f"· note {n}\n", style="dim")
        if result.ok:
            spec = result.spec
            out.append("✓ valid", style="bold green")
            if spec is not None:
                out.append(f": {spec.kind} {spec.namespace}/{spec.name}")
        out.rstrip()
        return out

    def _refresh_buttons(self) -> None:
        ok = self.result is not None and self.result.ok
        self.query_one("#pe-save", Button).disabled = not ok
        context = self.kube_context()
        self.query_one("#pe-apply", Button).disabled = not ok or self.applying or context is None
        if not ok:
            note = "Save and Apply wait for a spec without errors (listed above)"
            if context is None:
                note += "; Apply also needs a Kubernetes context"
        elif context is None:
            note = "Apply: no Kubernetes context (run the Kind step)"
        else:
            note = f"Apply: kubectl apply -f - (context {context})"
        self.query_one("#pe-apply-note", Static).update(Text(note, style="dim"))

    def _default_path(self, name: str) -> None:
        spec = self.result.spec if self.result is not None else None
        auto = (spec.output if spec is not None and spec.output else f"./{name}.yaml")
        if self._path_edited:
            return
        self._auto_path = auto
        box = self.query_one("#pe-path", Input)
        if box.value != auto:
            box.value = auto

    # -- events ---------------------------------------------------------------------------------
    def on_answers_form_changed(self, event: AnswersForm.Changed) -> None:
        if getattr(event, "checked", False):
            return  # ours, on its way to the step pane
        self.schedule()  # the field's own (model) error is already shown; the builder's follows

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        event.stop()
        known = {c.upper() for c in self.choices}
        kept = [t for t in self.types if t.upper() not in known]
        self.types = kept + list(event.selection_list.selected)
        self._type_note()
        self.schedule()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "pe-path":
            event.stop()
            self._path_edited = event.value != self._auto_path

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "pe-path":
            event.stop()
            self.save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "pe-save":
            event.stop()
            self.save()
        elif event.button.id == "pe-apply":
            event.stop()
            self.apply()

    # -- save / apply ---------------------------------------------------------------------------
    def _ready_yaml(self) -> str | None:
        data, _ = self.spec_data()
        with self._lock:
            if self.result is None or not self.result.ok or self.result_data != data:
                return None
            return self.result.yaml

    def _say(self, text: Text | str) -> None:
        box = self.query_one("#pe-result", Static)
        box.update(text)
        box.display = bool(str(text))

    def save(self) -> Path | None:
        text = self._ready_yaml()
        if text is None:
            self._say(Text("✗ nothing saved: the spec has errors (or is being checked)", style="red"))
            return None
        raw = self.query_one("#pe-path", Input).value.strip()
        if not raw:
            self._say(Text("✗ give a file to save to", style="red"))
            return None
        target = Path(raw).expanduser()
        shown = self.wizard.path_text(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, text, 0o644)
        except OSError as exc:
            self._say(Text(f"✗ could not write {shown}: {exc.strerror or exc}", style="red"))
            return None
        self._say(Text.assemble(("✓ saved ", "bold green"), f"{shown}; apply it with: kubectl apply -f {raw}"))
        self.saved_output = str(target.resolve())
        msg = AnswersForm.Changed(self.form, self.current_answers())
        msg.checked = True  # type: ignore[attr-defined]
        self.post_message(msg)
        return target

    def apply(self) -> None:
        text = self._ready_yaml()
        if text is None:
            self._say(Text("✗ nothing applied: the spec has errors (or is being checked)", style="red"))
            return
        if self.kube_context() is None:
            self._say(Text("✗ Apply needs a Kubernetes context: none was detected "
                           "(run the Kind step, or point kubectl at a cluster, then detect again)", style="red"))
            return
        if self.applying:
            return
        self.applying = True
        self._refresh_buttons()
        self._say(Text(f"applying to context {self.kube_context()}…", style="dim"))
        self.apply_worker(text)

    @work(thread=True, group="podspec-apply", exit_on_error=False)
    def apply_worker(self, text: str) -> None:
        try:
            res = self.wizard.host.runner.run(["kubectl", "apply", "-f", "-"], stdin=text, timeout=60)
        except (GpuwizardError, OSError) as exc:
            out = Text(f"✗ kubectl apply could not run: {exc}", style="red")
        else:
            if res.recorded:
                out = Text("dry run: kubectl apply -f - recorded, nothing applied", style="yellow")
            elif res.ok:
                out = Text.assemble(("✓ applied ", "bold green"), (res.stdout or "").strip())
            else:
                why = " ".join(res.tail[-3:]) or (res.stderr or "").strip()
                out = Text(f"✗ kubectl apply failed (exit {res.rc}): {why}", style="red")
        self._call_back(self._applied, out)

    def _applied(self, out: Text) -> None:
        self.applying = False
        self._say(out)
        self._refresh_buttons()
