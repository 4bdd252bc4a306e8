"""The doctor table (the same rows as ``gpuwizard doctor``) and the blockers found by detection."""

from __future__ import annotations

import os
from typing import Any

from rich.table import Table
from rich.text import Text

from ... import doctor

COLORS = {"ok": "green", "missing": "yellow", "problem": "red"}
# a glyph per status, so the table reads the same without colour (NO_COLOR)
MARKS = {"ok": "✓", "missing": "·", "problem": "✗"}
SHORT = {"cuda_toolkit": "cuda", "container_toolkit": "nvidia-ctk", "gpu_operator": "gpu-operator"}


def doctor_table(facts: dict[str, Any], layers: tuple[str, ...] | None = None) -> Table:
    """Doctor's rows, compact: ``✓ layer  details`` (✓ ok, · missing, ✗ problem)."""
    table = Table(box=None, show_header=False, expand=True, padding=(0, 1, 0, 0))
    table.add_column("layer", no_wrap=True)
    table.add_column("details", ratio=1, overflow="fold")
    last = ""
    for layer, status, detail in doctor.rows(facts):
        shown = layer or last
        last = shown
        if layers is not None and shown not in layers:
            continue
        style = COLORS.get(status, "")
        label = Text.assemble((MARKS.get(status, "?") + " ", style), (SHORT.get(layer, layer), "bold")) if layer else Text("")
        table.add_row(label, Text(detail, style="" if status == "ok" else style))
    return table


def blockers(facts: dict[str, Any], *, real_host: bool) -> list[str]:
    """What stops the wizard (or a step) from going on, named plainly."""
    out = []
    h = facts.get("host") or {}
    if not facts.get("gpus"):
        out.append("no NVIDIA GPU found: check that the card is seated / passed through to this VM")
    if h.get("nouveau_loaded"):
        out.append("nouveau is loaded: the driver step blacklists it and needs a reboot")
    if h.get("secure_boot"):
        out.append("Secure Boot is on: the driver's module must be signed (driver: secure_boot: sign) or Secure Boot turned off")
    if real_host and os.geteuid() != 0:
        out.append("not root: run it as `sudo gpuwizard` (commands cannot ask for a password inside the wizard)")
    return out
