"""tools/realroot.py's pure parts (no root needed): the mirror and the sources the root gets."""

from __future__ import annotations

from pathlib import Path

from .conftest import realroot
from .test_debian12_root import apply_preview_diff, upstream

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
ONE_LINE = "deb [arch=amd64] http://mirror.example/debian bookworm main\ndeb http://security.debian.org/debian-security bookworm-security main\n"


def test_mirror_and_sources_from_deb822():
    path = Path("/etc/apt/sources.list.d/debian.sources")
    assert realroot.mirror(path, DEB822) == "http://deb.debian.org/debian"
    out = realroot.root_sources(path, DEB822)
    assert out.count("Components: main contrib non-free non-free-firmware") == 2 and "bookworm-security" in out


def test_mirror_and_sources_from_one_line_format():
    path = Path("/etc/apt/sources.list")
    assert realroot.mirror(path, ONE_LINE) == "http://mirror.example/debian"
    assert realroot.root_sources(path, ONE_LINE).splitlines() == [
        "deb [arch=amd64] http://mirror.example/debian bookworm main contrib non-free non-free-firmware",
        "deb http://security.debian.org/debian-security bookworm-security main contrib non-free non-free-firmware",
    ]


def test_an_unreachable_mirror_is_said():
    assert "nowhere.invalid" in (realroot.mirror_reachable("http://nowhere.invalid/debian", timeout=5) or "")


def test_preview_diff_applied():
    before = '{\n    "a": 1,\n    "b": 2\n}\n'
    preview = ["$ nvidia-ctk runtime configure --runtime=docker", "--- /etc/docker/daemon.json", "+++ /etc/docker/daemon.json",
               "@@ -1,4 +1,5 @@", " {", '     "a": 1,', '-    "b": 2', '+    "b": 2,', '+    "c": 3', " }", "\\ No newline at end of file"]
    assert apply_preview_diff(before, preview) == '{\n    "a": 1,\n    "b": 2,\n    "c": 3\n}'
    assert apply_preview_diff("", ["--- /dev/null", "+++ /x", "@@ -0,0 +1,2 @@", "+{", "+}"]) == "{\n}\n"
    assert upstream("20.10.24+dfsg1-1+deb12u1") == "20.10.24" and upstream("1.6.20~ds1-1+deb12u3") == "1.6.20"
