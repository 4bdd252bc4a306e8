"""The driver step's facts decided at plan time, before any change, on Debian/Ubuntu (apt) hosts,
through the real CLI on simulated profiles (debian12: the real bookworm archive of
../shared/upstream/debian-12/apt-cache.txt; t4-bare: Ubuntu 22.04).

A refusal is what a user sees as exit 2, the reason and the next step, with nothing executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuwizard.simulate import prepare
from gpuwizard.simulate import world as W

from .test_host_layer import answers, changing_calls, sim, state

ROOT = Path(__file__).resolve().parents[2]
DEBIAN12 = ROOT.parent / "shared" / "upstream" / "debian-12"


def uname_r() -> str:
    """`uname -r` of the real bookworm root (captures/uname-r.txt): a kernel the archive has no headers for."""
    capture = DEBIAN12 / "captures" / "uname-r.txt"
    if not capture.exists():
        pytest.skip(f"{capture} (the shared upstream captures) is not here")
    return capture.read_text().split("[stdout]\n", 1)[1].split("\n", 1)[0]


def nothing_ran(sb) -> None:
    assert changing_calls(sb.calls()) == []
    w = sb.world()
    assert w["driver"] is None and not w.get("packages") and not w.get("cuda_toolkits")


def boot_kernel(kernel: str):
    def fn(w: dict) -> None:
        w["host"]["kernel"] = kernel
    return fn


# -- plan: what Debian's archive offers ---------------------------------------------------------------
def test_debian_plan_promises_the_archives_driver_and_picks_cuda_it_runs(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("debian12", root, "plan", "--answers", answers(tmp_path, "driver: {}\ncuda: {}\n"))
    assert code == 0, out + err
    assert "nvidia-driver 535.309.01-0+deb12u1 (branch 535, which runs CUDA up to 12.2)" in out
    assert "$ apt-get install -y linux-headers-6.1.0-57-amd64" in out and "$ apt-get install -y nvidia-driver" in out
    assert "installs NVIDIA driver 535.309.01 (nvidia-driver), which runs CUDA up to 12.2" in out
    assert "$ apt-get install -y cuda-toolkit-12-2" in out and "cuda-12.2/bin" in out
    nothing_ran(prepare("debian12", root))


def test_debian_run_installs_535_and_cuda_12_2(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = sim("debian12", root, "--answers", answers(tmp_path, "driver: {}\ncuda: {}\n"))
    assert code == 0, out + err
    assert "driver 535.309.01 (CUDA 12.2); nvidia-smi sees 1 GPU(s): Tesla T4" in out
    assert "CUDA 12.2 (nvcc V12.2.140)" in out
    assert prepare("debian12", root).world()["packages"]["nvidia-driver"] == "535.309.01-0+deb12u1"


def test_debian_cuda_newer_than_the_archives_driver_is_refused_before_anything_runs(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("debian12", root)
    code, out, err = sim("debian12", root, "--answers", answers(tmp_path, 'driver: {}\ncuda: {version: "12.6"}\n'))
    assert code == 2, out + err
    assert "[cuda] CUDA 12.6 needs driver ≥ 560.28.03, but the driver this run installs 535.309.01 runs CUDA 12.2 at most" in err
    assert 'the distribution\'s archive has no newer driver: driver: {method: runfile, version: "560.35.03"}' in err
    assert "or choose cuda.version ≤ 12.2" in err and "nothing was executed" in err
    nothing_ran(sb)


@pytest.mark.parametrize("section,says", [
    ('driver: {version: "565"}',
     ['driver.version 565: Debian GNU/Linux 12 (bookworm)\'s archive has one NVIDIA driver: nvidia-driver 535.309.01-0+deb12u1',
      'Set driver.version to "535" (or leave it out)', "method: runfile"]),
    ('driver: {version: "535.261.03"}', ["driver.version 535.261.03:", "apt installs only that candidate"]),
    ("driver: {module: open}",
     ["driver.module open:", "open kernel module is in the archive only at 535.261.03 (nvidia-open-kernel-dkms 535.261.03-1)",
      "Leave driver.module out", "module: open"]),
])
def test_debian_driver_version_or_module_the_archive_lacks_is_refused_naming_what_it_offers(tmp_path: Path, section, says):
    root = tmp_path / "s"
    sb = prepare("debian12", root)
    a = answers(tmp_path, section + "\n")
    code, out, _ = sim("debian12", root, "plan", "--answers", a)
    assert code == 2 and "refused: " in out and "not plannable: driver (refused)" in out
    for text in says:
        assert text in out
    code, out, err = sim("debian12", root, "--answers", a)
    assert code == 2 and "[driver]" in err and "nothing was executed" in err
    nothing_ran(sb)


@pytest.mark.parametrize("version", ["535", "535.309.01"])
def test_debian_driver_version_the_archive_has_is_honoured(tmp_path: Path, version):
    code, out, err = sim("debian12", tmp_path / "s", "plan", "--answers", answers(tmp_path, f'driver: {{version: "{version}"}}\n'))
    assert code == 0, out + err
    assert "$ apt-get install -y nvidia-driver" in out


# -- headers for the running kernel --------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["real-uname", "6.1.0-10-amd64"])  # not the archive's kernel; an older ABI of it
def test_no_headers_in_the_archive_for_the_running_kernel_is_refused_with_the_way_out(tmp_path: Path, kernel):
    kernel = uname_r() if kernel == "real-uname" else kernel
    root = tmp_path / "s"
    sb = prepare("debian12", root)
    sb.mutate(boot_kernel(kernel))
    code, out, err = sim("debian12", root, "--answers", answers(tmp_path, "driver: {}\n"))
    assert code == 2, out + err
    assert f"no kernel headers for the running kernel {kernel} (`apt-cache policy linux-headers-{kernel}`: Unable to locate package)" in err
    assert "install the current kernel (`apt-get update && apt-get install -y linux-image-amd64`)" in err
    assert "reboot into it, then run `gpuwizard --resume`" in err and "nothing was executed" in err
    nothing_ran(sb)
    code, out, _ = sim("debian12", root, "plan", "--answers", answers(tmp_path, "driver: {}\n"))
    assert code == 2 and "not plannable: driver (refused)" in out


# -- no module support --------------------------------------------------------------------------------
def test_a_kernel_without_module_support_refuses_the_driver_install(tmp_path: Path, monkeypatch):
    sync = W.sync_host_files

    def without_proc_modules(root, world, *a, **kw):  # a kernel built without CONFIG_MODULES has no /proc/modules
        sync(root, world, *a, **kw)
        Path(W.host_path(str(root), "/proc/modules")).unlink(missing_ok=True)

    monkeypatch.setattr(W, "sync_host_files", without_proc_modules)
    root = tmp_path / "s"
    sb = prepare("debian12", root)
    code, out, err = sim("debian12", root, "--answers", answers(tmp_path, "driver: {}\n"))
    assert code == 2, out + err
    assert "no loadable module support (no /proc/modules)" in err and "refuses to install the NVIDIA driver" in err
    assert "nothing was executed" in err
    nothing_ran(sb)


# -- Secure Boot: the key that is enrolled is the one DKMS signs with -----------------------------------
def test_debian_secure_boot_sign_enrols_the_key_debians_dkms_signs_with(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("debian12", root)
    sb.mutate(lambda w: w["host"].update(secure_boot=True))
    code, out, err = sim("debian12", root, "--answers", answers(tmp_path, "driver: {secure_boot: sign}\n"))
    assert code == 3, out + err
    assert "/var/lib/dkms/mok.pub" in out
    w = sb.world()
    assert (root / "var/lib/dkms/mok.key").exists() and not (root / "var/lib/shim-signed").exists()
    assert w["driver"]["signed"] and w["host"]["mok_pending"] == [w["driver"]["signing_key"]]
    mokutil = [c["argv"] for c in sb.calls() if c["argv"][:2] == ["mokutil", "--import"]]
    assert mokutil == [["mokutil", "--import", str(root / "var/lib/dkms/mok.pub"), "--root-pw"]]
    assert sb.run(["reboot"]).returncode == 0  # the user enrols the key in MokManager during this boot
    code, out, err = sim("debian12", root, "--resume")
    assert code == 0, out + err
    assert "driver 535.309.01" in out and state(root)["steps"]["driver"]["status"] == "done"


def test_debian_secure_boot_refusal_names_debians_key(tmp_path: Path):
    root = tmp_path / "s"
    sb = prepare("debian12", root)
    sb.mutate(lambda w: w["host"].update(secure_boot=True))
    code, out, _ = sim("debian12", root, "--answers", answers(tmp_path, "driver: {}\n"))
    assert code == 1 and "disable Secure Boot" in out and "/var/lib/dkms/mok.pub" in out
    nothing_ran(sb)


# -- the Debian 12 example, end to end ----------------------------------------------------------------
def test_the_debian12_example_runs_end_to_end_and_a_second_run_changes_nothing(tmp_path: Path):
    root = tmp_path / "s"
    example = str(ROOT / "examples" / "debian12.yaml")
    code, out, err = sim("debian12", root, "--answers", example)
    assert code == 0, out + err
    assert "driver 535.309.01 (CUDA 12.2)" in out and "CUDA 12.2 (nvcc V12.2.140)" in out
    assert "nvidia-smi sees 1 GPU(s): Tesla T4" in out
    sb = prepare("debian12", root)
    n_calls = len(sb.calls())
    code, out, err = sim("debian12", root, "--answers", example)
    assert code == 0, out + err
    assert changing_calls(sb.calls()[n_calls:]) == []
