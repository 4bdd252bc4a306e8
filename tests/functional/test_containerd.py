"""`container: {runtime: containerd}` end to end on a simulated host, per nvidia-container-toolkit
version: from 1.18 nvidia-ctk writes the runtime to /etc/containerd/conf.d/99-nvidia.toml and only
adds an `imports` entry to config.toml; before, it edits config.toml. The step is judged by
containerd's effective configuration (config.toml + its imports), as containerd reads it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gpuwizard.simulate import prepare

from .test_host_layer import answers, changing_calls, sim, snapshot, state

TOML = "etc/containerd/config.toml"
DROP_IN = "etc/containerd/conf.d/99-nvidia.toml"
CRI = "io.containerd.grpc.v1.cri"
# a containerd 1.7 config as `containerd config default` shapes it (trimmed), with a comment
CONFIG = """\
# managed by hand
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.8"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
"""
CONTAINERD_DEFAULT = "container: {runtime: containerd, set_as_default: true}\n"


def host(tmp_path: Path, ctk: str, config: str | None = CONFIG) -> tuple[Path, object]:
    """The "ready" host (containerd 1.7.12 running) with nvidia-container-toolkit ``ctk`` installed."""
    root = tmp_path / "s"
    sb = prepare("ready", root)

    def toolkit(w):
        w["nvidia_ctk"]["version"] = ctk
    sb.mutate(toolkit)
    if config is not None:
        (root / TOML).parent.mkdir(parents=True, exist_ok=True)
        (root / TOML).write_text(config)
    return root, sb


def runtimes_in(text: str) -> dict:
    return tomllib.loads(text)["plugins"][CRI]["containerd"]


def test_toolkit_1_19_writes_a_drop_in_that_config_toml_imports_and_a_rerun_changes_nothing(tmp_path: Path):
    root, sb = host(tmp_path, "1.19.1")
    args = ("--answers", answers(tmp_path, CONTAINERD_DEFAULT))
    code, out, err = sim("ready", root, *args)
    assert code == 0, out + err
    assert state(root)["steps"]["container"]["status"] == "done"
    # what a user checks: the drop-in has the nvidia runtime, as the default, runc's options kept
    drop_in = runtimes_in((root / DROP_IN).read_text())
    assert drop_in["default_runtime_name"] == "nvidia"
    assert drop_in["runtimes"]["nvidia"]["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}
    # config.toml imports it and keeps its own settings (the runtime is not there)
    top = tomllib.loads((root / TOML).read_text())
    assert "/etc/containerd/conf.d/*.toml" in top["imports"] and top["root"] == "/var/lib/containerd"
    assert "nvidia" not in top["plugins"][CRI]["containerd"]["runtimes"]
    assert "containerd runs with the nvidia runtime (/etc/containerd/config.toml + /etc/containerd/conf.d/99-nvidia.toml)" in out
    # config.toml was backed up before nvidia-ctk rewrote it (its comment is gone from the new one)
    backups = list((root / "etc/containerd").glob("config.toml.gpuwizard-*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == CONFIG and "# managed by hand" not in (root / TOML).read_text()
    calls = [c["argv"] for c in sb.calls()]
    assert calls.count(["nvidia-ctk", "runtime", "configure", "--runtime=containerd", "--set-as-default"]) == 1
    assert calls.count(["systemctl", "restart", "containerd"]) == 1  # containerd restarted once, to load it
    assert calls.count(["systemctl", "restart", "containerd"]) == 1

    # a second run: everything is already done, nothing is run or written again
    before, n_calls = snapshot(root), len(sb.calls())
    code, out, err = sim("ready", root, *args)
    assert code == 0, out + err
    assert "changed" not in out and snapshot(root) == before
    assert changing_calls(sb.calls()[n_calls:]) == []


def test_toolkit_1_17_edits_config_toml_and_writes_no_drop_in(tmp_path: Path):
    root, sb = host(tmp_path, "1.17.8")
    args = ("--answers", answers(tmp_path, CONTAINERD_DEFAULT))
    code, out, err = sim("ready", root, *args)
    assert code == 0, out + err
    assert state(root)["steps"]["container"]["status"] == "done"
    assert not (root / "etc/containerd/conf.d").exists()
    node = runtimes_in((root / TOML).read_text())
    assert node["default_runtime_name"] == "nvidia" and node["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert "containerd runs with the nvidia runtime (/etc/containerd/config.toml)" in out
    before, n_calls = snapshot(root), len(sb.calls())
    code, out, err = sim("ready", root, *args)
    assert code == 0 and "changed" not in out and snapshot(root) == before, out + err
    assert changing_calls(sb.calls()[n_calls:]) == []


def test_a_runtime_already_in_a_drop_in_is_done_without_running_nvidia_ctk(tmp_path: Path):
    """config.toml alone has no nvidia runtime; the drop-in it imports has: nothing to do."""
    config = CONFIG.replace("version = 2\n", 'version = 2\nimports = ["conf.d/*.toml"]\n')  # relative to config.toml's directory
    root, sb = host(tmp_path, "1.19.1", config)
    (root / DROP_IN).parent.mkdir(parents=True, exist_ok=True)
    (root / DROP_IN).write_text(f'version = 2\n[plugins."{CRI}".containerd.runtimes.nvidia]\nruntime_type = "io.containerd.runc.v2"\n'
                                f'[plugins."{CRI}".containerd.runtimes.nvidia.options]\nBinaryName = "/usr/bin/nvidia-container-runtime"\n')
    code, out, err = sim("ready", root, "--answers", answers(tmp_path, "container: {runtime: containerd}\n"))
    assert code == 0, out + err
    assert not any(c["argv"][:2] == ["nvidia-ctk", "runtime"] for c in sb.calls())
    assert (root / TOML).read_text() == config


def test_the_plan_shows_the_files_the_installed_toolkit_writes(tmp_path: Path):
    root, sb = host(tmp_path, "1.19.1")
    before = snapshot(root)
    code, out, err = sim("ready", root, "--dry-run", "--answers", answers(tmp_path, CONTAINERD_DEFAULT))
    assert code == 0, out + err
    for text in ("$ nvidia-ctk runtime configure --runtime=containerd --set-as-default",
                 "+++ /etc/containerd/conf.d/99-nvidia.toml", '+      default_runtime_name = "nvidia"',
                 '+            BinaryName = "/usr/bin/nvidia-container-runtime"',
                 "--- /etc/containerd/config.toml", '+imports = ["/etc/containerd/conf.d/*.toml"]',
                 "back up /etc/containerd/config.toml"):
        assert text in out, text
    assert changing_calls(sb.calls()) == [] and snapshot(root) == before


@pytest.mark.parametrize("ctk,config,says", [
    ("1.19.1", '[plugins.cri.containerd]\n  snapshotter = "overlayfs"\n', "config version 1"),
    ("1.17.3", 'version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd]\n  default_runtime_name = "runc"\n',
     "does not know containerd config version 3"),
    ("1.19.1", CONFIG + "\n[plugins\n", "is not valid TOML"),
], ids=["version-1", "version-3-old-toolkit", "not-toml"])
def test_a_config_nvidia_ctk_cannot_extend_is_refused_before_any_change(tmp_path: Path, ctk, config, says):
    root, sb = host(tmp_path, ctk, config)
    before = snapshot(root)
    code, out, err = sim("ready", root, "--answers", answers(tmp_path, "container: {runtime: containerd}\n"))
    assert code == 1 and says in out, out + err
    assert snapshot(root) == before and changing_calls(sb.calls()) == []


def test_toolkit_1_18_0_drops_other_imports_and_the_step_puts_them_back(tmp_path: Path):
    config = CONFIG.replace("version = 2\n", 'version = 2\nimports = ["/etc/containerd/site.toml"]\n')
    root, sb = host(tmp_path, "1.18.0", config)
    (root / "etc/containerd/site.toml").write_text("oom_score = -500\n")
    code, out, err = sim("ready", root, "--answers", answers(tmp_path, "container: {runtime: containerd}\n"))
    assert code == 0, out + err
    assert tomllib.loads((root / TOML).read_text())["imports"] == ["/etc/containerd/site.toml", "/etc/containerd/config.d/*.toml"]
    assert "nvidia-ctk dropped the imports /etc/containerd/site.toml" in out
    assert "nvidia" in runtimes_in((root / "etc/containerd/config.d/99-nvidia.toml").read_text())["runtimes"]
    assert "(/etc/containerd/config.toml + /etc/containerd/site.toml + /etc/containerd/config.d/99-nvidia.toml)" in out


def test_a_toolkit_this_step_installs_configures_containerd_whatever_its_version(tmp_path: Path):
    """The plan cannot know the version apt will install; the run reads it before nvidia-ctk runs."""
    root, sb = host(tmp_path, "1.19.1")

    def no_toolkit(w):
        w["nvidia_ctk"] = None
    sb.mutate(no_toolkit)
    args = ("--answers", answers(tmp_path, CONTAINERD_DEFAULT))
    code, out, err = sim("ready", root, *args)
    assert code == 0, out + err
    assert state(root)["steps"]["container"]["status"] == "done" and "changed         install nvidia-container-toolkit" in out
    if (root / DROP_IN).exists():  # 1.18 and later
        assert "/etc/containerd/conf.d/*.toml" in tomllib.loads((root / TOML).read_text())["imports"]
        assert runtimes_in((root / DROP_IN).read_text())["default_runtime_name"] == "nvidia"
    else:
        assert runtimes_in((root / TOML).read_text())["default_runtime_name"] == "nvidia"
    before, n_calls = snapshot(root), len(sb.calls())
    code, out, err = sim("ready", root, *args)
    assert code == 0 and "changed" not in out and snapshot(root) == before, out + err
    assert changing_calls(sb.calls()[n_calls:]) == []
