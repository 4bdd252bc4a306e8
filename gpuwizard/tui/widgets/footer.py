"""The key bar at the bottom: the active keys, as Textual's Footer shows them, in one widget.

Textual's Footer is a container of a widget per key, recomposed on every bindings signal (each
focus move, each ``refresh_bindings``): at start-up that was a third of the wizard's first frame.
This bar renders the same line (key and label in the footer's colours, disabled keys dimmed, the
command palette's key on the right behind a bar) as one line of text, redrawn only when the keys
change; a click on a key presses it, as on Textual's.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget

Key = tuple[str, str, str, bool]  # key, shown key, label, enabled


class KeyBar(Widget, can_focus=False):
    COMPONENT_CLASSES = {"keybar--key", "keybar--description", "keybar--disabled", "keybar--palette-bar"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        width: 1fr;
        color: $footer-foreground;
        background: $footer-background;
        .keybar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .keybar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .keybar--disabled {
            text-style: dim;
        }
        .keybar--palette-bar {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._keys: tuple[Key, ...] = ()
        self._palette: Key | None = None
        self._spans: list[tuple[int, int, str, bool]] = []  # start, end, key, enabled

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        app = self.app
        keys: list[Key] = []
        palette: Key | None = None
        seen: set[str] = set()
        for key, (_, binding, enabled, _tooltip) in screen.active_bindings.items():
            if app.ENABLE_COMMAND_PALETTE and key == app.COMMAND_PALETTE_BINDING:
                palette = (binding.key, app.get_key_display(binding), binding.description, bool(enabled))
            elif binding.show and binding.action not in seen:  # one entry per action, as the Footer
                seen.add(binding.action)
                keys.append((binding.key, app.get_key_display(binding), binding.description, bool(enabled)))
        if (tuple(keys), palette) != (self._keys, self._palette):
            self._keys, self._palette = tuple(keys), palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        label_style = self.get_component_rich_style("keybar--description")
        dim = self.get_component_rich_style("keybar--disabled")
        line = Text(no_wrap=True, overflow="crop")
        self._spans = []
        for key, shown, label, enabled in self._keys:
            start = line.cell_len
            line.append(f" {shown} ", key_style + dim if not enabled else key_style)
            if label:
                line.append(f"{label} ", label_style + dim if not enabled else label_style)
            self._spans.append((start, line.cell_len, key, enabled))
        if self._palette is not None:
            key, shown, label, enabled = self._palette
            # as Textual draws it: docked right, a bar before it, padding after
            tail = Text.assemble(("▏", self.get_component_rich_style("keybar--palette-bar")),
                                 (shown, key_style), (f" {label}", label_style), " ")
            gap = max(1, self.size.width - line.cell_len - tail.cell_len)
            line.append(" " * gap)
            start = line.cell_len
            line.append_text(tail)
            self._spans.append((start, line.cell_len, key, enabled))
        return line

    def on_resize(self, event: events.Resize) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        for start, end, key, enabled in self._spans:
            if start <= event.x < end:
                if enabled:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()
                return
