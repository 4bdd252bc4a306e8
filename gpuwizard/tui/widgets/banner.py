"""The dry-run banner: docked on the main screen and on every dialog while nothing is executed."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

DRY_RUN_TEXT = "DRY RUN — nothing is executed"


def is_dry_run(app: Any) -> bool:
    host = getattr(app, "host", None)
    return bool(getattr(host, "dry_run", False))


class DryRunBanner(Static):
    """One line, full width, below the main screen's header (docked at the top of a dialog's
    screen); the words carry the meaning, not the colour (NO_COLOR)."""

    DEFAULT_CSS = """
    DryRunBanner {
        width: 100%;
        height: 1;
        text-align: center;
        text-style: bold;
        background: $warning;
        color: $text;
    }
    """

    def __init__(self, **kw: Any):
        super().__init__(f"▲ {DRY_RUN_TEXT} ▲", classes="dry-run", **kw)
