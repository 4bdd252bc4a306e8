"""Downloads of installers (NVIDIA driver and CUDA .run files): resumable, checked, never half-trusted.

* The bytes go to ``<dest>.part``; a cut download is resumed with an HTTP ``Range`` request (by this
  call's own retries, or by the next run), and a server that ignores Range restarts it cleanly.
* Progress is reported through a callback ``progress(done_bytes, total_bytes_or_None)``.
* With a ``sha256``, the complete file is hashed before it is renamed into place; a mismatch moves
  it aside to ``<dest>.rejected`` and raises :class:`ChecksumMismatch`: the file at ``dest`` only
  ever exists verified, so an installer is never run from an unverified download.

stdlib only (``urllib.request``); ``http``/``https`` URLs only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import GpuwizardError

Progress = Callable[[int, "int | None"], None]
CHUNK = 1 << 16


class DownloadError(GpuwizardError):
    """The download did not complete; what is on disk (``.part``) is kept for a resume."""


class ChecksumMismatch(DownloadError):
    def __init__(self, url: str, expected: str, actual: str, rejected: Path):
        self.expected, self.actual, self.rejected = expected, actual, rejected
        super().__init__(
            f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; the file was "
            f"moved aside to {rejected} and NOT executed — check the URL and the sha256 in the answer file"
        )


def sha256_of(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verified(path: str | os.PathLike[str], sha256: str | None) -> bool:
    """True when ``path`` exists and (when a checksum is given) matches it."""
    p = Path(path)
    if not p.is_file():
        return False
    return sha256 is None or sha256_of(p) == sha256.lower()


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``), verify it, and return ``dest``."""
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"refusing to download {url!r}: only http(s) URLs are supported")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    attempts = 0
    while True:
        try:
            complete = _fetch_once(url, part, progress, timeout)
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code not in (408, 429, 500, 502, 503, 504):
                raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
            complete = False
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        else:
            reason = "the connection closed before the end of the file"
        if complete:
            break
        attempts += 1
        if attempts > retries:
            have = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"download of {url} was cut at {have} bytes ({reason}); the partial file {part} is kept "
                f"and the next run resumes it"
            )
    if sha256:
        actual = sha256_of(part)
        if actual != sha256.lower():
            rejected = dest.with_name(dest.name + ".rejected")
            os.replace(part, rejected)
            raise ChecksumMismatch(url, sha256.lower(), actual, rejected)
    os.replace(part, dest)
    return dest


def _fetch_once(url: str, part: Path, progress: Progress | None, timeout: float) -> bool:
    """One request; appends to ``part``. True when the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "gpuwizard", "Accept-Encoding": "identity"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 — scheme checked by the caller
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part may already be whole
            m = _RANGE.match(exc.headers.get("Content-Range", "").replace("bytes */", "bytes 0-0/"))
            if m and m.group(3) != "*" and int(m.group(3)) == have:
                return True
            part.unlink(missing_ok=True)  # the part is not a prefix of this file: start over
            return False
        raise
    with resp:
        status = resp.status
        total: int | None = None
        mode = "ab"
        if status == 206:
            m = _RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                mode, have = "wb", 0  # a range we did not ask for: start over rather than splice
                if m:
                    raise DownloadError(f"{url}: the server answered a different byte range ({m.group(0)})")
            if m and m.group(3) != "*":
                total = int(m.group(3))
        else:  # 200: the server sends the whole file (it ignored Range, or there was no part)
            mode, have = "wb", 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        done = have
        if progress:
            progress(done, total)
        with open(part, mode) as fh:
            while True:
                try:
                    block = resp.read(CHUNK)
                except http.client.IncompleteRead as exc:
                    fh.write(exc.partial)
                    done += len(exc.partial)
                    fh.flush()
                    return False
                if not block:
                    break
                fh.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
            fh.flush()
            os.fsync(fh.fileno())
    return total is None or done >= total


def copy_local(src: str | os.PathLike[str], dest: str | os.PathLike[str], *, sha256: str | None = None) -> Path:
    """A runfile given as a path: copy it into the cache (through ``.part``) and verify the copy,
    so what is executed is exactly what was checked."""
    src, dest = Path(src), Path(dest)
    if not src.is_file():
        raise DownloadError(f"{src}: no such file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    shutil.copyfile(src, part)
    if sha256:
        actual = sha256_of(part)
        if actual != sha256.lower():
            rejected = dest.with_name(dest.name + ".rejected")
            os.replace(part, rejected)
            raise ChecksumMismatch(str(src), sha256.lower(), actual, rejected)
    os.replace(part, dest)
    return dest
