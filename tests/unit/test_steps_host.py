"""Plan builders and rules of the driver, cuda and container steps (no subprocess: fake facts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuwizard import actions as A
from gpuwizard.engine import Engine, StepContext
from gpuwizard.errors import StepFailed
from gpuwizard.host import Host, Runner
from gpuwizard.state import State
from gpuwizard.steps import common as C
from gpuwizard.steps import container as K
from gpuwizard.steps import cuda as U
from gpuwizard.steps import driver as DR
from gpuwizard.steps.container import ContainerAnswers
from gpuwizard.steps.driver import DriverAnswers

T4 = {"index": 0, "name": "Tesla T4", "memory_mib": 15360}


def facts(os_id="ubuntu", version="22.04", id_like=("debian",), **host) -> dict:
    base = {"os": os_id, "version": version, "id_like": list(id_like), "kernel": "5.15.0-125-generic", "arch": "x86_64",
            "secure_boot": False, "nouveau_loaded": False, "nvidia_loaded": False, "pretty_name": f"{os_id} {version}"}
    base.update(host)
    return {"host": base, "gpus": [T4], "driver": None, "driver_status": "no-driver", "docker": None, "tools": {}}


def ctx_for(tmp_path: Path, f: dict, step: str = "driver") -> StepContext:
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "root/proc/sys/kernel/random").mkdir(parents=True, exist_ok=True)
    (tmp_path / "root/proc/sys/kernel/random/boot_id").write_text("b1\n")
    host = Host(tmp_path / "root", Runner(path=str(tmp_path / "bin")))
    engine = Engine(host, State(tmp_path / "state.json"), {}, detector=lambda h: f)
    return StepContext(engine, step)


def argvs(actions) -> list[list[str]]:
    return [a.argv for a in actions if isinstance(a, A.Run)]


@pytest.mark.parametrize("installed,wanted,ok", [
    ("565.57.01", "recommended", True), ("565.57.01", "565", True), ("550.127.05", "565", False),
    ("565.57.01", "565.57.01", True), ("565.57.01", "570.86.15", False), ("570.86.15", "565.57.01", True),
    (None, "recommended", False),
    # a branch is met by any release of it or of a newer branch, compared on its one part
    ("565.00.01", "565", True), ("570.86.15", "565", True), ("564.99.99", "565", False),
    # parts compare as numbers, not as text
    ("570.124.06", "570.26", True), ("570.26", "570.124.06", False), ("535.309.01", "535.54.03", True),
    ("565.57.01", "565.57", True), ("565.56.99", "565.57", False),
    ("N/A", "565", False), ("", "565", False),
])
def test_satisfies(installed, wanted, ok):
    assert DR.satisfies(installed, wanted) is ok


def test_branch_of_a_wanted_version():
    assert DR.branch("565") == "565" and DR.branch("565.57.01") == "565" and DR.branch("570.124.06") == "570"


def test_a_driver_version_that_is_no_version_refuses_the_plan(tmp_path):
    from gpuwizard.errors import InvalidInput

    with pytest.raises(InvalidInput, match="driver.version"):
        DR.wanted_version(DriverAnswers(version="565-open"))
    assert DR.wanted_version(DriverAnswers(version="v565.57.01")) == "565.57.01"


def test_runfile_needs_a_release_version(tmp_path):
    ctx = ctx_for(tmp_path, facts())
    (tmp_path / "root/lib/modules/5.15.0-125-generic/build").mkdir(parents=True)
    with pytest.raises(StepFailed, match="not an NVIDIA driver release"):
        DR.DriverStep().plan(ctx, DriverAnswers(method="runfile", version="565.57.01.1"))


@pytest.mark.parametrize("driver,minimum,ok", [
    ("570", "570.26", True), ("560", "560.28.03", True), ("565", "570.26", False),  # a bare branch: its newest release
    ("570.26", "570.26", True), ("570.124.06", "570.26", True), ("565.57.01", "570.26", False),
    ("560.35.03", "560.28.03", True), ("560.28.03", "560.35.03", False), ("580.65.06", "575.51.03", True),
])
def test_meets_minimum_compares_on_the_drivers_parts(driver, minimum, ok):
    assert C.meets_minimum(driver, minimum) is ok


@pytest.mark.parametrize("driver,cuda", [
    ("565", "12.6"), ("565.57.01", "12.6"), ("570", "12.8"), ("570.26", "12.8"), ("570.124.06", "12.8"),
    ("560.35.03", "12.6"), ("560.27", "12.5"), ("575.51.03", "12.9"), ("580.65.06", "13.0"), ("580", "13.0"),
    ("520.61.05", "11.8"), ("515.65.01", None), ("515", None),
])
def test_cuda_for_driver_from_nvidias_table(driver, cuda):
    assert C.cuda_for_driver(driver) == cuda


def test_wanted_version_from_the_runfile_name():
    a = DriverAnswers(runfile="https://x.example/NVIDIA-Linux-x86_64-565.57.01.run")
    assert DR.wanted_version(a) == "565.57.01"
    assert DR.wanted_version(DriverAnswers(version="550")) == "550"


def test_secure_boot_refusal_is_a_plan_of_one_failure(tmp_path):
    f = facts(secure_boot=True, nouveau_loaded=True)
    plan = DR.DriverStep().plan(ctx_for(tmp_path, f), DriverAnswers())
    assert [type(a) for a in plan] == [A.Fail]
    assert "disable Secure Boot" in plan[0].reason and "secure_boot: sign" in plan[0].reason


def test_nouveau_plan_is_two_phases(tmp_path):
    plan = DR.DriverStep().plan(ctx_for(tmp_path, facts(nouveau_loaded=True)), DriverAnswers(version="565"))
    ids = [a.id for a in plan]
    assert ids[:3] == ["blacklist-nouveau", "initramfs", "reboot-nouveau"]
    assert plan[0].content.endswith("blacklist nouveau\noptions nouveau modeset=0\n")
    assert ["apt-get", "install", "-y", "nvidia-driver-565"] in argvs(plan)
    assert ["apt-get", "install", "-y", "linux-headers-5.15.0-125-generic"] in argvs(plan)


def test_rhel_plan_uses_dracut_and_dnf(tmp_path):
    f = facts("rocky", "9.4", ("rhel", "centos", "fedora"), nouveau_loaded=True)
    plan = DR.DriverStep().plan(ctx_for(tmp_path, f), DriverAnswers(version="565"))
    runs = argvs(plan)
    assert ["dracut", "-f"] in runs
    assert ["dnf", "-y", "module", "install", "nvidia-driver:565-dkms"] in runs
    assert any(r[:3] == ["dnf", "config-manager", "--add-repo"] and r[3].endswith("/rhel9/x86_64/cuda-rhel9.repo") for r in runs)


def test_debian_uses_non_free_nvidia_driver(tmp_path):
    plan = DR.DriverStep().plan(ctx_for(tmp_path, facts("debian", "12", ())), DriverAnswers())
    assert ["apt-get", "install", "-y", "nvidia-driver"] in argvs(plan)


def test_runfile_plan_with_signing(tmp_path):
    f = facts(secure_boot=True)
    ctx = ctx_for(tmp_path, f)
    (tmp_path / "root/lib/modules/5.15.0-125-generic/build").mkdir(parents=True)
    a = DriverAnswers(version="565.57.01", method="runfile", secure_boot="sign", module="proprietary")
    plan = DR.DriverStep().plan(ctx, a)
    ids = [x.id for x in plan]
    assert ids == ["mok-dir", "signing-key", "mok-import", "runfile", "install", "reboot-driver"]
    dl = plan[3]
    assert dl.source == "https://download.nvidia.com/XFree86/Linux-x86_64/565.57.01/NVIDIA-Linux-x86_64-565.57.01.run"
    install = plan[4].argv
    assert install[:4] == ["sh", str(ctx.host.path("/var/cache/gpuwizard/NVIDIA-Linux-x86_64-565.57.01.run")), "--silent", "--dkms"]
    assert "--kernel-module-type=proprietary" in install
    assert any(x.startswith("--module-signing-public-key=") for x in install)


def test_runfile_needs_a_version(tmp_path):
    ctx = ctx_for(tmp_path, facts())
    (tmp_path / "root/lib/modules/5.15.0-125-generic/build").mkdir(parents=True)
    with pytest.raises(StepFailed, match="full version"):
        DR.DriverStep().plan(ctx, DriverAnswers(method="runfile"))


def test_cuda_tables_and_choice():
    assert C.newest_cuda_for("12.7") == "12.6" and C.newest_cuda_for("12.4") == "12.4" and C.newest_cuda_for(None) is None
    assert C.cuda_min_driver()["12.6"] == "560.28.03"
    assert C.CUDA_RUNFILES["12.6"] == ("12.6.2", "560.35.03")  # the seed's cuda_12.6.2_560.35.03_linux.run


def test_env_block_is_written_once():
    body = U.env_content("/usr/local/cuda-12.6")
    assert "export PATH=/usr/local/cuda-12.6/bin${PATH:+:${PATH}}" in body
    once = U.with_block("alias ll='ls -l'", body)
    assert U.with_block(once, body) == once
    assert once.count(U.BLOCK_BEGIN) == 1 and once.startswith("alias ll='ls -l'\n")
    newer = U.with_block(once, U.env_content("/usr/local/cuda-12.8"))
    assert "cuda-12.6" not in newer and newer.count(U.BLOCK_BEGIN) == 1


def test_default_test_image_fits_the_driver():
    assert K.default_test_image("12.7", {"os": "ubuntu", "version": "22.04"}) == "nvidia/cuda:12.6.2-base-ubuntu22.04"
    assert K.default_test_image("12.4", {"os": "ubuntu", "version": "24.04"}) == "nvidia/cuda:12.4.1-base-ubuntu22.04"
    assert K.default_test_image("12.8", {"os": "ubuntu", "version": "24.04"}) == "nvidia/cuda:12.8.1-base-ubuntu24.04"


# /etc/containerd/config.toml after `nvidia-ctk runtime configure --runtime=containerd --set-as-default` of a
# toolkit before 1.18 (which edits config.toml itself; later ones write a drop-in: test_containerd_config.py):
# containerd 1.7 (config version 2, the CRI plugin io.containerd.grpc.v1.cri) ...
CONTAINERD_V2 = """\
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "{default}"
      snapshotter = "overlayfs"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
          privileged_without_host_devices = false
          runtime_engine = ""
          runtime_root = ""
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
            BinaryName = "/usr/bin/nvidia-container-runtime"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = true
"""
# ... and containerd 2.0 (config version 3, the CRI runtime plugin io.containerd.cri.v1.runtime)
CONTAINERD_V3 = """\
version = 3
root = "/var/lib/containerd"

[plugins]
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"

  [plugins."io.containerd.cri.v1.runtime"]
    enable_cdi = true

    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "{default}"

      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes]
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia.options]
            BinaryName = "/usr/bin/nvidia-container-runtime"
            SystemdCgroup = true

        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
"""


@pytest.mark.parametrize("template", [CONTAINERD_V2, CONTAINERD_V3], ids=["version-2", "version-3"])
def test_containerd_config_toml_is_read_as_toml(template):
    plain, default = ContainerAnswers(runtime="containerd"), ContainerAnswers(runtime="containerd", set_as_default=True)
    assert K.containerd_configured(template.format(default="nvidia"), plain)
    assert K.containerd_configured(template.format(default="nvidia"), default)
    assert K.containerd_configured(template.format(default="runc"), plain)
    assert not K.containerd_configured(template.format(default="runc"), default)
    # no nvidia runtime table (the name only in a comment): not configured
    no_nvidia = template.format(default="runc").replace("runtimes.nvidia", "runtimes.kata")
    assert not K.containerd_configured(no_nvidia + '\n# [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n', plain)
    # the nvidia table of another plugin, or a runtime that is no table, is not the CRI plugin's runtime
    assert not K.containerd_configured(no_nvidia + '\n[plugins.other.containerd.runtimes.nvidia]\nruntime_type = "x"\n', plain)
    # not TOML (a broken edit): configures nothing
    assert not K.containerd_configured(template.format(default="nvidia") + "\n[plugins\n", plain)
    assert not K.containerd_configured(None, plain) and not K.containerd_configured("", plain)


def test_containerd_plugin_follows_the_config_version():
    a = ContainerAnswers(runtime="containerd", set_as_default=True)
    # a version-3 file with the runtime under the version-2 plugin name: containerd 2 does not read it there
    moved = CONTAINERD_V2.format(default="nvidia").replace("version = 2", "version = 3")
    assert not K.containerd_configured(moved, a)
    assert not K.containerd_configured(CONTAINERD_V3.format(default="nvidia").replace("version = 3", "version = 2"), a)


def test_containerd_config_the_simulated_nvidia_ctk_writes(tmp_path):
    """What the simulated nvidia-ctk leaves in a new file (and in a hand-written one) counts as configured."""
    from gpuwizard.simulate import prepare

    sb = prepare("ready", tmp_path / "sb")

    def run(sb, *argv):
        return sb.run(list(argv), timeout=30)

    conf = sb.root / "etc/containerd/config.toml"
    a = ContainerAnswers(runtime="containerd", set_as_default=True)
    assert not K.containerd_configured(conf.read_text() if conf.exists() else None, a)
    assert run(sb, "nvidia-ctk", "runtime", "configure", "--runtime=containerd").returncode == 0
    assert K.containerd_configured(conf.read_text(), ContainerAnswers(runtime="containerd"))
    assert not K.containerd_configured(conf.read_text(), a)
    assert run(sb, "nvidia-ctk", "runtime", "configure", "--runtime=containerd", "--set-as-default").returncode == 0
    assert K.containerd_configured(conf.read_text(), a)
    conf.write_text("version = 2\n[plugins.'io.containerd.grpc.v1.cri'.containerd]\ndefault_runtime_name='nvidia'\n"
                    "[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.nvidia]\nruntime_type='io.containerd.runc.v2'\n")
    assert K.containerd_configured(conf.read_text(), a)


def test_daemon_json_edit_and_lost_keys():
    a = ContainerAnswers(set_as_default=True, cdi=True)
    cfg = K.nvidia_edit(a)({"registry-mirrors": ["m"], "features": {"buildkit": True}})
    assert K.docker_configured(cfg, a) and cfg["registry-mirrors"] == ["m"] and cfg["features"] == {"buildkit": True, "cdi": True}
    assert not K.docker_configured({"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}, a)
    merged, lost = K._restore_lost({"a": 1, "features": {"buildkit": True}}, {"features": {"cdi": True}})
    assert merged == {"a": 1, "features": {"cdi": True, "buildkit": True}} and sorted(lost) == ["a", "features.buildkit"]


def test_check_and_reboot_unless_actions(tmp_path):
    ctx = ctx_for(tmp_path, facts())
    chk = C.Check("c", "holds", lambda c: False, "it does not hold")
    assert not chk.is_done(ctx)
    with pytest.raises(StepFailed, match="it does not hold"):
        chk.apply(ctx)
    rb = C.RebootUnless("r", "reboot", "why", unless=lambda c: True)
    assert rb.is_done(ctx) and isinstance(rb, A.Reboot)
    with pytest.raises(ValueError):
        C.RunIf("x", "no way to tell", ["true"])
    assert C.RunIf("x", "t", ["true"], done=lambda c: True).is_done(ctx)

