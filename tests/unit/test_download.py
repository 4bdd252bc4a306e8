"""gpuwizard.download against a real HTTP server on 127.0.0.1 (with Range support written here):
cut mid-file, resume with Range, checksum mismatch refused, a server that ignores Range."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest

from gpuwizard import download as D


class FileServer:
    """Serves ``files`` (name -> bytes). ``cut`` (name -> n): the next GET of that name sends only n
    bytes then closes the connection (once). ``ignore_range``: answer 200 with the whole file."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):  # what a GET would answer, without the body (a mirror's file, checked at plan time)
                name = self.path.lstrip("/")
                server.requests.append({"path": name, "range": None, "method": "HEAD"})
                body = server.files.get(name)
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Length", "0" if body is None else str(len(body)))
                self.end_headers()

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append({"path": name, "range": rng})
                body = server.files.get(name)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                status = 200
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                chunk = body[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                limit = server.cut.pop(name, None)
                if limit is not None:
                    self.wfile.write(chunk[:limit])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with FileServer({"NVIDIA-Linux-x86_64-565.57.01.run": PAYLOAD}) as srv:
        yield srv


NAME = "NVIDIA-Linux-x86_64-565.57.01.run"


def test_whole_file_with_progress_and_checksum(server, tmp_path: Path):
    seen = []
    dest = D.download(server.url(NAME), tmp_path / NAME, sha256=SHA, progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == PAYLOAD and not D.part_path(dest).exists()
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert D.verified(dest, SHA) and not D.verified(dest, "0" * 64)


def test_cut_mid_file_keeps_the_part_and_the_next_call_resumes_with_range(server, tmp_path: Path):
    server.cut[NAME] = 100_000
    dest = tmp_path / NAME
    with pytest.raises(D.DownloadError, match="cut at 100000 bytes.*next run resumes"):
        D.download(server.url(NAME), dest, sha256=SHA, retries=0)
    assert not dest.exists() and D.part_path(dest).stat().st_size == 100_000
    D.download(server.url(NAME), dest, sha256=SHA, retries=0)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, "bytes=100000-"]


def test_a_cut_is_resumed_within_one_call(server, tmp_path: Path):
    server.cut[NAME] = 12_345
    dest = D.download(server.url(NAME), tmp_path / NAME, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == "bytes=12345-"


def test_checksum_mismatch_is_refused_and_set_aside(server, tmp_path: Path):
    dest = tmp_path / NAME
    with pytest.raises(D.ChecksumMismatch, match="NOT executed") as info:
        D.download(server.url(NAME), dest, sha256="a" * 64)
    assert not dest.exists() and not D.part_path(dest).exists()
    assert info.value.rejected.read_bytes() == PAYLOAD and info.value.actual == SHA


def test_server_ignoring_range_restarts_cleanly(server, tmp_path: Path):
    dest = tmp_path / NAME
    D.part_path(dest).write_bytes(b"garbage from an older attempt")
    server.ignore_range = True
    D.download(server.url(NAME), dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_accepted(server, tmp_path: Path):
    dest = tmp_path / NAME
    D.part_path(dest).write_bytes(PAYLOAD)
    D.download(server.url(NAME), dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD and server.requests[-1]["range"] == f"bytes={len(PAYLOAD)}-"


def test_404_and_bad_schemes(server, tmp_path: Path):
    with pytest.raises(D.DownloadError, match="HTTP 404"):
        D.download(server.url("nope.run"), tmp_path / "nope.run")
    with pytest.raises(D.DownloadError, match="only http"):
        D.download("file:///etc/passwd", tmp_path / "x")


def test_copy_local_verifies_the_copy(tmp_path: Path):
    src = tmp_path / "src.run"
    src.write_bytes(PAYLOAD)
    dest = D.copy_local(src, tmp_path / "cache" / NAME, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(D.ChecksumMismatch):
        D.copy_local(src, tmp_path / "cache2" / NAME, sha256="b" * 64)
    assert not (tmp_path / "cache2" / NAME).exists()
