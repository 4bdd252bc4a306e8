"""Action kinds and read-only APT probes the platform classes and the steps share (re-exported by
``gpuwizard.steps.common``, where the steps have always found them). Never imports Textual, the
steps or the simulator."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import actions as A
from ..errors import StepFailed
from ..host import Host, atomic_write, join_argv
from ..journal import Change, FileChange, TreeChange

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import StepContext

CACHE_DIR = "/var/cache/gpuwizard"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def hp(ctx: StepContext, system_path: str) -> str:
    """A system path as a command line argument: mapped under the root (identity on a real host)."""
    return str(ctx.host.path(system_path))


@dataclass
class Check(A.Action):
    """A read-only precondition. Done when it holds; applying it re-checks and fails the step with
    ``failure`` (before anything else changes) when it still does not."""

    id: str
    title: str
    check: Callable[[StepContext], bool]
    failure: str | Callable[[StepContext], str] = ""
    on_failure: Callable[[StepContext], None] | None = None
    reads: list[str] | None = None  # the read-only command it looks through, shown in the plan

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"check: {self.title}"] + ([f"  (reads: $ {join_argv(self.reads)})"] if self.reads else [])

    def is_done(self, ctx: StepContext) -> bool:
        return bool(self.check(ctx))

    def apply(self, ctx: StepContext) -> None:
        if self.check(ctx):
            return
        reason = self.failure(ctx) if callable(self.failure) else self.failure  # what is there, before the cleanup
        if self.on_failure is not None and not ctx.host.dry_run:  # a dry run changes nothing
            self.on_failure(ctx)
        raise StepFailed(reason or f"check failed: {self.title}")


@dataclass
class RunIf(A.Run):
    """A command whose done-ness needs more than a path or a probe's exit code."""

    done: Callable[[StepContext], bool] | None = None

    def __post_init__(self) -> None:
        if self.done is None:
            super().__post_init__()

    def is_done(self, ctx: StepContext) -> bool:
        if self.done is not None and self.done(ctx):
            return True
        return A.Run.is_done(self, ctx) if (self.creates or self.done_when) else False


@dataclass
class MakeDir(A.Action):
    """A directory (mode 0700 by default) that a command writes into (curl -o, openssl -keyout)."""

    id: str
    title: str
    path: str
    mode: int = 0o700

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"mkdir -m {self.mode:o} -p {self.path}"]

    def is_done(self, ctx: StepContext) -> bool:
        return ctx.host.path(self.path).is_dir()

    def journal(self, ctx: StepContext) -> list[Change]:
        return [TreeChange(self.path, drift=False), *self.changes]

    def apply(self, ctx: StepContext) -> None:
        ctx.host.make_dir(self.path, self.mode)


# -- APT (Ubuntu, Debian): what the configured archive holds, read at plan time -----------------------
# A package every Debian and Ubuntu archive has (main): when `apt-cache policy` cannot locate it either,
# the package lists are empty (never refreshed) and say nothing about the other names.
APT_SENTINEL = "dkms"
APT_VERSION_ROW = re.compile(r"^ (?:\*\*\*|   ) (\S+) -?\d+$")


def parse_apt_policy(text: str) -> dict[str, dict[str, Any]]:
    """``apt-cache policy NAME...`` (LC_ALL=C) -> {name: {installed, candidate, versions}}; a name
    APT cannot locate has no block (apt prints ``N: Unable to locate package NAME`` to stderr and
    exits 0). ``(none)`` reads as None: a virtual or pinned-away package has no candidate."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = found[line[:-1]] = {"installed": None, "candidate": None, "versions": []}
            continue
        if current is None:
            continue
        field, _, value = line.strip().partition(": ")
        if field in ("Installed", "Candidate"):
            current[field.lower()] = None if value.strip() in ("", "(none)") else value.strip()
        elif (m := APT_VERSION_ROW.match(line)) is not None:
            current["versions"].append(m.group(1))
    return found


def apt_policy(host: Host, names: list[str]) -> dict[str, dict[str, Any]] | None:
    """What the configured archive holds for some packages (one read-only ``apt-cache policy``);
    None when it cannot be told: no apt-cache, the probe failed, or the package lists are empty
    (``APT_SENTINEL`` unknown too), so that ``apt-get update`` has yet to fetch them."""
    result = host.runner.probe(["apt-cache", "policy", *dict.fromkeys([*names, APT_SENTINEL])], timeout=60)
    if result is None or not result.ok:
        return None
    found = parse_apt_policy(result.stdout)
    return found if APT_SENTINEL in found else None


def apt_candidate(policy: dict[str, dict[str, Any]], name: str) -> str | None:
    """The version ``apt-get install NAME`` installs (None: not in the archive, or no candidate)."""
    entry = policy.get(name)
    return entry["candidate"] if entry else None


def deb_upstream(version: str) -> str:
    """The upstream part of a Debian version: ``535.309.01`` of ``535.309.01-0+deb12u1``, ``3.9.0`` of
    ``1:3.9.0-4`` (epoch and Debian revision dropped)."""
    v = version.split(":", 1)[1] if ":" in version else version
    return v.rsplit("-", 1)[0] if "-" in v else v


def parse_dkms_status(text: str) -> list[dict[str, str]]:
    """``dkms status`` -> [{module, version, kernel, arch, state}]. DKMS 3.x prints
    ``nvidia-current/535.309.01, 6.1.0-57-amd64, x86_64: installed`` (Debian 12,
    ../shared/upstream/debian-12/captures/dkms-status.txt); DKMS 2.x ``nvidia, 565.57.01,
    5.15.0-125-generic, x86_64: installed``; a module only added has no kernel (``nvidia/565.57.01: added``)."""
    found: list[dict[str, str]] = []
    for line in text.splitlines():
        head, sep, state = line.strip().rpartition(": ")
        if not sep:
            continue
        parts = [p.strip() for p in head.split(",")]
        if "/" in parts[0]:
            module, _, version = parts[0].partition("/")
            rest = parts[1:]
        elif len(parts) >= 2:
            module, version, rest = parts[0], parts[1], parts[2:]
        else:
            continue
        found.append({"module": module, "version": version, "kernel": rest[0] if rest else "",
                      "arch": rest[1] if len(rest) > 1 else "", "state": state.split()[0] if state.split() else state})
    return found


# -- without curl or gpg: the built-in downloader, OpenPGP armor and fingerprints in Python -------------
@dataclass
class Fetch(A.Action):
    """Download a file with gpuwizard's own HTTP client (gpuwizard/download.py: resume, retries) where
    the host has no curl (a minbase Debian): nothing to install first, no tool run."""

    id: str
    title: str
    url: str
    dest: str  # system path
    done: Callable[[StepContext], bool] | None = None

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"download {self.url} (gpuwizard's built-in downloader: this host has no curl)", f"  -> {self.dest}"]

    def is_done(self, ctx: StepContext) -> bool:
        return bool(self.done(ctx)) if self.done is not None else ctx.host.exists(self.dest)

    def journal(self, ctx: StepContext) -> list[Change]:
        return [FileChange(self.dest, drift=False), *self.changes]

    def apply(self, ctx: StepContext) -> None:
        from .. import download as D

        if ctx.host.dry_run:
            ctx.host.runner.recorded.append(["<download>", self.url, self.dest])
            return
        try:
            D.download(self.url, ctx.host.path(self.dest))
        except D.DownloadError as exc:
            raise StepFailed(str(exc)) from None

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data.update(url=self.url, path=self.dest)
        return data


@dataclass
class Dearmor(A.Action):
    """``gpg --dearmor`` without gpg: an ASCII-armored OpenPGP key (RFC 4880 §6.2) as the binary
    keyring APT's ``signed-by`` reads, which is the armor's base64 body decoded (its CRC-24 checked)."""

    id: str
    title: str
    src: str   # system path of the armored key
    dest: str  # system path of the binary keyring

    def preview(self, ctx: StepContext) -> list[str]:
        return [f"dearmor {self.src} -> {self.dest} (in gpuwizard: this host has no gpg)"]

    def is_done(self, ctx: StepContext) -> bool:
        return ctx.host.exists(self.dest)

    def journal(self, ctx: StepContext) -> list[Change]:
        return [FileChange(self.dest), *self.changes]

    def apply(self, ctx: StepContext) -> None:
        if ctx.host.dry_run:
            ctx.host.runner.recorded.append(["<write>", self.dest])
            return
        try:
            data = dearmor(ctx.host.path(self.src).read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise StepFailed(f"{self.src} is not an ASCII-armored OpenPGP key: {exc}") from None
        ctx.host.path(self.dest).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(ctx.host.path(self.dest), data, 0o644)

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["path"] = self.dest
        return data


def _crc24(data: bytes) -> int:
    """RFC 4880 §6.1."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(text: str) -> bytes:
    """The binary of the first ``-----BEGIN PGP PUBLIC KEY BLOCK-----`` of a text: the header lines
    (up to the blank line) skipped, the base64 body decoded, the ``=XXXX`` checksum (CRC-24) checked.
    ValueError when there is none or it does not check."""
    lines = [line.strip() for line in text.splitlines()]
    try:
        start = lines.index("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        end = lines.index("-----END PGP PUBLIC KEY BLOCK-----", start)
    except ValueError:
        raise ValueError("no PGP PUBLIC KEY BLOCK") from None
    block = lines[start + 1:end]
    if "" in block:  # armor headers (Version:, Comment:) end at the first blank line
        block = block[block.index("") + 1:]
    checksum = None
    if block and block[-1].startswith("="):
        checksum = block.pop()[1:]
    try:
        data = base64.b64decode("".join(block), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64 ({exc})") from None
    if checksum is not None:
        try:
            want = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except binascii.Error:
            raise ValueError("bad armor checksum line") from None
        if _crc24(data) != want:
            raise ValueError("armor checksum (CRC-24) mismatch")
    if not data:
        raise ValueError("empty key block")
    return data


def pgp_packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet (RFC 4880 §4.2: old and new format headers)."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        head = data[i]
        if not head & 0x80:
            raise ValueError(f"not an OpenPGP packet at byte {i}")
        if head & 0x40:  # new format
            tag, i = head & 0x3F, i + 1
            first = data[i]
            if first < 192:
                length, i = first, i + 1
            elif first < 224:
                length, i = ((first - 192) << 8) + data[i + 1] + 192, i + 2
            elif first == 255:
                length, i = int.from_bytes(data[i + 1:i + 5], "big"), i + 5
            else:
                raise ValueError("partial body lengths are not used in keys")
        else:  # old format
            tag, kind, i = (head >> 2) & 0x0F, head & 0x03, i + 1
            if kind == 3:
                raise ValueError("indeterminate packet length")
            size = (1, 2, 4)[kind]
            length, i = int.from_bytes(data[i:i + size], "big"), i + size
        if i + length > len(data):
            raise ValueError("truncated packet")
        out.append((tag, data[i:i + length]))
        i += length
    return out


def pgp_fingerprints(data: bytes) -> list[str]:
    """The V4 fingerprints (RFC 4880 §12.2: SHA-1 of 0x99, a two-octet length and the key packet's
    body) of the public keys and subkeys of a binary keyring, primary first, as
    ``gpg --show-keys --with-colons`` lists them in its ``fpr`` rows."""
    found = []
    for tag, body in pgp_packets(data):
        if tag in (6, 14) and body[:1] == b"\x04":
            found.append(hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper())  # noqa: S324
    return found
