"""The platform layer: one class per package manager (APT: Ubuntu, Debian; dnf: RHEL, Rocky, Alma
8/9/10), chosen from the target host's facts. Steps ask it for actions instead of branching on the
OS family. Never imports Textual, the steps or the simulator."""

from __future__ import annotations

from typing import Any

from .apt import Apt
from .base import ArchiveDriver, DriverInstall, Platform
from .dnf import Dnf

__all__ = ["Apt", "ArchiveDriver", "Dnf", "DriverInstall", "Platform", "family", "for_host"]

RHEL_IDS = {"rhel", "fedora", "centos", "rocky", "almalinux", "ol"}


def family(host_facts: dict[str, Any]) -> str:
    """``ubuntu``, ``debian``, ``rhel`` or ``other``, from os-release's ID and ID_LIKE."""
    ids = {host_facts.get("os") or ""} | set(host_facts.get("id_like") or [])
    if "ubuntu" in ids:
        return "ubuntu"
    if "debian" in ids:
        return "debian"
    if ids & RHEL_IDS:
        return "rhel"
    return "other"


def for_host(host_facts: dict[str, Any]) -> Platform:
    """The platform of a host (``facts["host"]``)."""
    fam = family(host_facts)
    if fam in ("ubuntu", "debian"):
        return Apt(host_facts, fam)
    if fam == "rhel":
        return Dnf(host_facts)
    return Platform(host_facts)
