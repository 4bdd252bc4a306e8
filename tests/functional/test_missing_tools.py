"""A minbase Debian 12 host (issue 11): no curl, no gpg. The plan downloads with gpuwizard's built-in
downloader and dearmors NVIDIA's key in Python instead of running tools the host lacks, and a run
completes. DKMS after the install: a module built only for the kernel the next boot runs means a
reboot (exit 3); none for it, a diagnosis with `dkms status` and the modprobe error.

The simulated world's internet is served to the built-in downloader through a urllib opener holding
the simulator's own URL table (gpuwizard/simulate/tools_host.py, _sim_urls), so nothing leaves this
machine."""

from __future__ import annotations

import email.message
import io
import json
import urllib.request
import urllib.response
from pathlib import Path

import pytest

from gpuwizard.simulate import prepare
from gpuwizard.simulate.tools_host import _sim_urls

from .test_host_layer import answers, sim, state

FULL = "driver: {method: package}\ncuda: {version: \"12.2\", env_file: /etc/profile.d/cuda.sh}\ncontainer: {runtime: docker}\n"


class SimInternet(urllib.request.HTTPSHandler):
    """HTTPS answers from the simulated world's URL table (200, or 404)."""

    def __init__(self, urls: dict[str, str]):
        super().__init__()
        self.urls, self.requests = urls, []

    def https_open(self, req):
        url = req.full_url
        self.requests.append(url)
        if url not in self.urls:
            raise urllib.error.HTTPError(url, 404, "Not Found", email.message.Message(), io.BytesIO(b""))
        body = self.urls[url].encode()
        headers = email.message.Message()
        headers["Content-Length"] = str(len(body))
        resp = urllib.response.addinfourl(io.BytesIO(body), headers, url, code=200)
        resp.msg = "OK"
        return resp


@pytest.fixture
def internet():
    holder = {}

    def serve(world: dict) -> SimInternet:
        holder["h"] = SimInternet(_sim_urls(world))
        urllib.request.install_opener(urllib.request.build_opener(holder["h"]))
        return holder["h"]

    yield serve
    urllib.request.install_opener(None)


def _minbase(root: Path, *absent: str) -> dict:
    sb = prepare("debian12", root)
    return sb.mutate(lambda w: w.update(absent_tools=list(absent)))


def _plan(root: Path, tmp_path: Path, text: str) -> dict:
    code, out, err = sim("debian12", root, "plan", "--json", "--answers", answers(tmp_path, text))
    assert code == 0, out + err
    return json.loads(out)


def _actions(doc: dict) -> list[dict]:
    return [a for s in doc["steps"] for a in s["actions"]]


def test_no_curl_the_built_in_downloader_fetches_and_the_run_completes(tmp_path: Path, internet):
    root = tmp_path / "s"
    world = _minbase(root, "curl")
    doc = _plan(root, tmp_path, FULL)
    acts = {a["id"]: a for a in _actions(doc) if a["id"] in ("keyring-download", "repo-key-download")}
    assert set(acts) == {"keyring-download", "repo-key-download"}
    for a in acts.values():
        assert "argv" not in a and "built-in downloader" in a["preview"][0]
    assert not [a for a in _actions(doc) if (a.get("argv") or [""])[0] == "curl"]
    net = internet(world)
    code, out, err = sim("debian12", root, "--answers", str(tmp_path / "answers.yaml"))
    assert code == 0, out + err
    assert "https://nvidia.github.io/libnvidia-container/gpgkey" in net.requests
    assert any(u.endswith("/debian12/x86_64/cuda-keyring_1.1-1_all.deb") for u in net.requests)
    calls = [c["argv"][0] for c in prepare("debian12", root).calls()]
    assert "curl" not in calls and "gpg" in calls  # gpg is there: it dearmors, as before
    assert all(s["status"] == "done" for s in state(root)["steps"].values()), state(root)["steps"]


def test_no_gpg_the_key_is_dearmored_without_it(tmp_path: Path):
    root = tmp_path / "s"
    _minbase(root, "curl", "gpg")
    doc = _plan(root, tmp_path, "container: {runtime: docker}\n")
    key = next(a for a in _actions(doc) if a["id"] == "repo-key")
    assert "argv" not in key and key["preview"] == [
        "dearmor /var/cache/gpuwizard/nvidia-container-toolkit.gpgkey -> "
        "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg (in gpuwizard: this host has no gpg)"]
    assert not [a for a in _actions(doc) if (a.get("argv") or [""])[0] in ("curl", "gpg")]


# -- DKMS after the install ---------------------------------------------------------------------------
FOREIGN = "6.18.44-fc-v857"  # the running kernel of ../shared/upstream/debian-12/captures/uname-r.txt
ARCHIVE_KERNEL = "6.1.0-57-amd64"


def _dkms_for_another_kernel(root: Path, *, boot_image: bool) -> None:
    """The real-world shape: the running kernel is not the archive's; DKMS builds only for the archive's
    kernel (captures/dkms-status.txt), so `modprobe nvidia` finds no module (captures/modprobe-nvidia.txt)."""
    sb = prepare("debian12", root)

    def fn(w):
        w["host"]["kernel"] = FOREIGN
        w["host"]["dkms_unbuildable"] = [FOREIGN]  # "tested up to Linux 6.16" (dpkg-s-nvidia-driver.txt)
    sb.mutate(fn)
    for k in (FOREIGN, ARCHIVE_KERNEL):
        (root / f"lib/modules/{k}/build").mkdir(parents=True)
    if boot_image:
        (root / "boot").mkdir(exist_ok=True)
        (root / f"boot/vmlinuz-{ARCHIVE_KERNEL}").write_text("simulated kernel image\n")


def test_modprobe_fails_but_dkms_built_for_the_next_boot_kernel_reboot(tmp_path: Path):
    root = tmp_path / "s"
    _dkms_for_another_kernel(root, boot_image=True)
    code, out, err = sim("debian12", root, "--answers", answers(tmp_path, "driver: {method: package}\n"))
    assert code == 3, out + err
    drv = state(root)["steps"]["driver"]
    assert drv["status"] == "reboot-required"
    assert f"DKMS built the NVIDIA module for {ARCHIVE_KERNEL}, the kernel the next boot runs" in drv["message"]
    assert f"nvidia-current/535.309.01, {ARCHIVE_KERNEL}, x86_64: installed" in drv["message"]
    assert f"modprobe: FATAL: Module nvidia-current not found in directory /lib/modules/{FOREIGN}" in drv["message"]


def test_modprobe_fails_and_no_module_for_the_next_boot_a_diagnosis(tmp_path: Path):
    root = tmp_path / "s"
    _dkms_for_another_kernel(root, boot_image=False)
    code, out, err = sim("debian12", root, "--answers", answers(tmp_path, "driver: {method: package}\n"))
    assert code == 1, out + err
    drv = state(root)["steps"]["driver"]
    assert drv["status"] == "failed" and drv["failed_action"] == "load-module"
    text = out + err
    assert f"`modprobe nvidia` failed on the running kernel {FOREIGN}: modprobe: FATAL: Module nvidia-current not found" in text
    assert f"`dkms status`: nvidia-current/535.309.01, {ARCHIVE_KERNEL}, x86_64: installed" in text
