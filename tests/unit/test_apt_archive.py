"""`apt-cache policy` read as the driver step reads it: the real output of a Debian 12 root
(../shared/upstream/debian-12/apt-cache.txt), and the simulated apt-cache against it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gpuwizard import platform
from gpuwizard.engine import Call, StepContext
from gpuwizard.errors import PlanRefused
from gpuwizard.simulate import prepare
from gpuwizard.steps import common as C
from gpuwizard.steps import driver as DR
from gpuwizard.steps.driver import DriverAnswers

from ..conftest import write_tool
from .test_steps_host import ctx_for, facts

ROOT = Path(__file__).resolve().parents[2]
APT_CACHE = ROOT.parent / "shared" / "upstream" / "debian-12" / "apt-cache.txt"
needs_capture = pytest.mark.skipif(not APT_CACHE.exists(), reason=f"{APT_CACHE} (the shared upstream captures) is not here")


def real_outputs() -> dict[str, str]:
    """`$ apt-cache policy NAME` -> its stdout, as captured."""
    found: dict[str, str] = {}
    command = None
    for line in APT_CACHE.read_text().splitlines(keepends=True):
        if line.startswith("$ "):
            command = line[2:].strip()
            found[command] = ""
        elif command is not None and not line.startswith("#"):
            found[command] += line
    return {c.removeprefix("apt-cache policy "): out for c, out in found.items() if c.startswith("apt-cache policy ")}


@needs_capture
def test_parse_the_real_policy_of_a_debian_12_root():
    real = real_outputs()
    drv = C.parse_apt_policy(real["nvidia-driver"])
    assert drv == {"nvidia-driver": {"installed": None, "candidate": "535.309.01-0+deb12u1",
                                     "versions": ["535.309.01-0+deb12u1", "535.261.03-1"]}}
    curl = C.parse_apt_policy(real["curl"])["curl"]
    assert curl["installed"] == "7.88.1-10+deb12u14" and curl["candidate"] == "7.88.1-10+deb12u15"
    assert curl["versions"] == ["7.88.1-10+deb12u15", "7.88.1-10+deb12u14", "7.88.1-10+deb12u5"]
    assert C.parse_apt_policy(real["nvidia-container-toolkit"]) == {}  # not in Debian: apt prints nothing on stdout
    assert C.parse_apt_policy(real["nvidia-open-kernel-dkms"])["nvidia-open-kernel-dkms"]["candidate"] == "535.261.03-1"
    assert C.parse_apt_policy(real["pciutils"])["pciutils"]["candidate"] == "1:3.9.0-4"


def test_parse_several_names_and_a_package_without_candidate():
    text = ("linux-headers-amd64:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n"
            "dkms:\n  Installed: (none)\n  Candidate: 3.0.10-8+deb12u1\n  Version table:\n     3.0.10-8+deb12u1 500\n"
            "        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n")
    found = C.parse_apt_policy(text)
    assert C.apt_candidate(found, "linux-headers-amd64") is None and C.apt_candidate(found, "dkms") == "3.0.10-8+deb12u1"
    assert C.apt_candidate(found, "nvidia-driver") is None


@pytest.mark.parametrize("version,upstream", [
    ("535.309.01-0+deb12u1", "535.309.01"), ("1:3.9.0-4", "3.9.0"), ("30+20221128-1", "30+20221128"),
    ("11.8.89~11.8.0-5~deb12u1", "11.8.89~11.8.0"), ("535.261.03", "535.261.03"),
])
def test_debian_upstream_version(version, upstream):
    assert C.deb_upstream(version) == upstream


@pytest.mark.parametrize("kernel,package", [
    ("6.1.0-57-amd64", "linux-image-amd64"), ("6.1.0-57-cloud-amd64", "linux-image-cloud-amd64"),
    ("6.18.44-fc-v857", "linux-image-amd64"),  # no Debian flavour: the architecture's
])
def test_headers_refusal_names_the_current_kernels_package(kernel, package):
    text = DR.headers_refusal(platform.for_host(facts("debian", "12", ())["host"]), kernel, [f"linux-headers-{kernel}"])
    assert f"apt-get install -y {package}" in text and "gpuwizard --resume" in text


def test_each_distribution_enrols_the_key_its_dkms_signs_with():
    ubuntu, debian = (platform.for_host(facts(*os)["host"]) for os in (("ubuntu", "22.04"), ("debian", "12", ())))
    assert (ubuntu.key, ubuntu.cert) == ("/var/lib/shim-signed/mok/MOK.priv", "/var/lib/shim-signed/mok/MOK.der")
    assert (debian.key, debian.cert) == ("/var/lib/dkms/mok.key", "/var/lib/dkms/mok.pub")


# -- the simulated apt-cache answers as the real one --------------------------------------------------
def sim_apt_cache(tmp_path: Path, *names: str) -> subprocess.CompletedProcess[str]:
    sb = prepare("debian12", tmp_path / "s")
    return subprocess.run(["apt-cache", "policy", *names], env={**os.environ, **sb.env()},
                          capture_output=True, text=True, timeout=30)


@needs_capture
def test_simulated_policy_starts_as_the_real_one(tmp_path: Path):
    real = real_outputs()
    for name in ("nvidia-driver", "nvidia-open-kernel-dkms", "dkms", "mokutil", "pciutils"):
        r = sim_apt_cache(tmp_path / name, name)
        assert r.returncode == 0 and r.stderr == ""
        # the candidate's block as apt prints it; the real table also lists older versions after it
        assert real[name].startswith(r.stdout), (name, r.stdout, real[name])


@needs_capture
def test_simulated_policy_of_an_unknown_package(tmp_path: Path):
    r = sim_apt_cache(tmp_path, "nvidia-container-toolkit", "linux-headers-6.18.44-fc-v857")
    assert r.returncode == 0
    assert r.stdout == real_outputs()["nvidia-container-toolkit"] == ""
    assert r.stderr == "N: Unable to locate package nvidia-container-toolkit\nN: Unable to locate package linux-headers-6.18.44-fc-v857\n"


# -- the driver step's plan against an archive it reads through a stand-in apt-cache -----------------
def debian_ctx(tmp_path: Path, apt_cache_stdout: str | None):
    ctx = ctx_for(tmp_path, facts("debian", "12", (), kernel="6.1.0-57-amd64", pretty_name="Debian GNU/Linux 12 (bookworm)"))
    if apt_cache_stdout is not None:  # prints the real capture's blocks, whatever the names asked
        write_tool(tmp_path / "bin", "apt-cache", f"import sys\nsys.stdout.write({apt_cache_stdout!r})")
    return ctx


@needs_capture
def test_debian_without_non_free_is_refused_saying_which_components_to_enable(tmp_path: Path):
    real = real_outputs()
    ctx = debian_ctx(tmp_path, real["dkms"] + real["linux-headers-amd64"].replace("linux-headers-amd64:", "linux-headers-6.1.0-57-amd64:"))
    with pytest.raises(PlanRefused, match="nvidia-driver is not in the configured archive") as exc:
        DR.DriverStep().plan(ctx, DriverAnswers())
    assert "Components: main contrib non-free non-free-firmware" in str(exc.value) and "apt-get update" in str(exc.value)


def test_package_lists_not_read_yet_check_the_headers_after_apt_get_update(tmp_path: Path):
    run_ctx = debian_ctx(tmp_path, "")  # empty lists: apt-cache locates nothing, not even dkms
    ctx = StepContext(run_ctx.engine, "driver", Call(run_ctx.engine, planning=True, answers={}, run_id="r1"))
    plan = DR.DriverStep().plan(ctx, DriverAnswers())
    ids = [a.id for a in plan]
    assert ids[:3] == ["apt-update", "headers-in-archive", "kernel-headers"]
    assert not plan[1].is_done(ctx)  # shown as a check still to make
    assert any("checked after `apt-get update`" in d for d in ctx.decisions)
    assert plan[1].is_done(run_ctx)  # while running, an archive still unreadable is left to apt-get
