"""containerd's effective configuration (config.toml + imports) and what nvidia-ctk writes there, per
toolkit version: the container step's reader and model, and the simulated nvidia-ctk, checked against
a real nvidia-ctk run (../shared/upstream/nvidia-ctk/v1.19.1-configure-session.txt) and against
each other."""

from __future__ import annotations

import itertools
import shutil
import tomllib
from pathlib import Path

import pytest

from gpuwizard.simulate import prepare
from gpuwizard.steps import container as K
from gpuwizard.steps.container import ContainerAnswers

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT.parent / "shared" / "upstream" / "nvidia-ctk" / "v1.19.1-configure-session.txt"
TOML = K.CONTAINERD_TOML
DROP_IN = "/etc/containerd/conf.d/99-nvidia.toml"
PLAIN = ContainerAnswers(runtime="containerd")
DEFAULT = ContainerAnswers(runtime="containerd", set_as_default=True)

FIXTURES = ROOT / "tests" / "fixtures" / "tools" / "containerd-config"
# Real `containerd config default` outputs (sources: tests/fixtures/tools/SOURCES.md, "containerd-config/"):
# containerd 1.7.28 (Ubuntu 22.04 package, config version 2, linux/amd64) and containerd 2.1.5
# (docker-ce containerd.io on EL10 aarch64, config version 3: single-quoted keys, the CRI runtime and
# image plugins split). Both keep runc's `SystemdCgroup = false` and `imports = []` as generated.
CONTAINERD_17 = (FIXTURES / "1.7.28-config-default.toml").read_text()
CONTAINERD_2X = (FIXTURES / "2.1.5-config-default.toml").read_text()


def capture_block(command: str) -> str:
    """What a `+ cat FILE` line of the capture printed (up to the next traced command)."""
    text = CAPTURE.read_text()
    start = text.index(command + "\n") + len(command) + 1
    return text[start:text.index("\n+ ", start)] + "\n"


needs_capture = pytest.mark.skipif(not CAPTURE.exists(), reason=f"{CAPTURE} (the shared upstream captures) is not here")
# The capture's config.toml before the run is a heredoc it does not echo; what nvidia-ctk left shows it
# held version 2 and the CRI plugin's `containerd.snapshotter = "overlayfs"` and nothing else (the
# drop-in copies that section whole; no runc table: "Could not infer options from runtimes [runc crun]").
CAPTURE_SOURCE = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "overlayfs"\n'


def reader(files: dict[str, str]):
    """read/glob over a dict of system paths, as the step reads them through the host root."""
    from fnmatch import fnmatchcase

    return files.get, lambda pattern: sorted(p for p in files if fnmatchcase(p, pattern))


def effective(files: dict[str, str], containerd: str | None = "1.7.12") -> K.ContainerdConfig:
    read, glob = reader(files)
    return K.read_containerd_config(read, glob, TOML, containerd)


def sandbox(tmp_path: Path, ctk: str, config: str | None, sb=None):
    """The "ready" host with nvidia-container-toolkit ``ctk`` and ``config`` as its only containerd file
    (``sb``: a sandbox to reset to that)."""
    sb = sb or prepare("ready", tmp_path / "sb")
    shutil.rmtree(sb.root / "etc/containerd", ignore_errors=True)

    def version(w):
        w["nvidia_ctk"]["version"] = ctk
    sb.mutate(version)
    conf = sb.root / TOML.lstrip("/")
    if config is not None:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(config)
    return sb


def configure(sb, *flags: str):
    return sb.run(["nvidia-ctk", "runtime", "configure", "--runtime=containerd", *flags], timeout=30)


def files_under(sb) -> dict[str, str]:
    base = sb.root / "etc/containerd"
    return {"/" + str(p.relative_to(sb.root)): p.read_text() for p in sorted(base.rglob("*")) if p.is_file()}


# -- the real run ------------------------------------------------------------------------------------
@needs_capture
def test_the_model_and_the_simulator_write_what_nvidia_ctk_1_19_1_wrote(tmp_path):
    top, drop_in = capture_block("+ cat /etc/containerd/config.toml"), capture_block(f"+ cat {DROP_IN}")
    assert K.nvidia_ctk_containerd("1.19.1", {TOML: CAPTURE_SOURCE}.get, DEFAULT) == {TOML: top, DROP_IN: drop_in}
    sb = sandbox(tmp_path, "1.19.1", CAPTURE_SOURCE)
    r = configure(sb, "--set-as-default")
    assert r.returncode == 0, r.stderr
    assert files_under(sb) == {TOML: top, DROP_IN: drop_in}
    # the log lines the capture shows, in its format
    for line in ('level=info msg="Using config version 2"',
                 'level=info msg="Using CRI runtime plugin name \\"io.containerd.grpc.v1.cri\\""',
                 'level=warning msg="Could not infer options from runtimes [runc crun]"',
                 f'level=info msg="Wrote updated config to {DROP_IN}"',
                 'level=info msg="It is recommended that containerd daemon be restarted."'):
        assert line in r.stderr, line


@needs_capture
def test_the_captured_files_read_as_containerd_reads_them():
    top, drop_in = capture_block("+ cat /etc/containerd/config.toml"), capture_block(f"+ cat {DROP_IN}")
    assert tomllib.loads(top)["imports"] == ["/etc/containerd/conf.d/*.toml"]
    both = effective({TOML: top, DROP_IN: drop_in})
    assert both.files == [TOML, DROP_IN] and both.problem is None and both.version == 2
    assert K.containerd_configured(both, DEFAULT)
    assert both.cri()["containerd"]["snapshotter"] == "overlayfs"
    # config.toml alone (what the step used to read) has no runtime: that was the bug
    assert not K.containerd_configured(top, PLAIN)
    assert not K.containerd_configured(effective({TOML: top}), PLAIN)


# -- the reader ----------------------------------------------------------------------------------------
def test_imports_relative_globbed_nested_and_each_file_once():
    files = {
        TOML: 'version = 2\nimports = ["conf.d/*.toml", "/etc/containerd/extra.toml"]\n',
        "/etc/containerd/conf.d/10-a.toml": 'version = 2\nimports = ["../nested.toml", "/etc/containerd/config.toml"]\n',
        "/etc/containerd/conf.d/99-nvidia.toml": K.nvidia_ctk_containerd("1.19.1", {TOML: ""}.get, PLAIN)[DROP_IN],
        "/etc/containerd/conf.d/notes.txt": "not toml at all [",
        "/etc/containerd/extra.toml": "oom_score = -999\n",
        "/etc/containerd/nested.toml": 'root = "/data/containerd"\n',
    }
    cfg = effective(files)
    assert cfg.problem is None
    # config.toml, its imports in order (a glob sorted), then theirs; the cycle back to config.toml read once
    assert cfg.files == [TOML, "/etc/containerd/conf.d/10-a.toml", "/etc/containerd/conf.d/99-nvidia.toml",
                         "/etc/containerd/extra.toml", "/etc/containerd/nested.toml"]
    assert cfg.merged["oom_score"] == -999 and cfg.merged["root"] == "/data/containerd"
    assert K.containerd_configured(cfg, PLAIN) and not K.containerd_configured(cfg, DEFAULT)


def test_a_missing_import_or_a_broken_drop_in_configures_nothing():
    good = K.nvidia_ctk_containerd("1.19.1", {TOML: CONTAINERD_17}.get, DEFAULT)
    assert K.containerd_configured(effective(good), DEFAULT)
    # a glob that matches nothing is fine; a named file that is absent stops containerd
    missing = {**good, TOML: good[TOML].replace('imports = ["/etc/containerd/conf.d/*.toml"]',
                                                'imports = ["/etc/containerd/conf.d/*.toml", "/etc/containerd/gone.toml"]')}
    cfg = effective(missing)
    assert cfg.problem and "/etc/containerd/gone.toml" in cfg.problem and not K.containerd_configured(cfg, PLAIN)
    broken = {**good, DROP_IN: good[DROP_IN] + "\n[plugins\n"}
    cfg = effective(broken)
    assert cfg.problem and DROP_IN in cfg.problem and not K.containerd_configured(cfg, PLAIN)
    # no config.toml at all: containerd's built-in defaults, no nvidia runtime
    assert effective({}).files == [] and not K.containerd_configured(effective({}), PLAIN)


def test_containerd_1_replaces_a_plugin_section_containerd_2_merges_it():
    """A hand-written drop-in with only the runtime: containerd 1.x's import replaces the whole CRI
    section (config.toml's default runtime is gone), 2.x merges it key by key."""
    files = {TOML: CONTAINERD_17.replace("imports = []", 'imports = ["/etc/containerd/conf.d/*.toml"]')
                                .replace('default_runtime_name = "runc"', 'default_runtime_name = "nvidia"'),
             DROP_IN: 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
                      'runtime_type = "io.containerd.runc.v2"\n'}
    v1x, v2x = effective(files, "1.7.12"), effective(files, "2.1.0")
    assert K.containerd_configured(v1x, PLAIN) and K.containerd_configured(v2x, PLAIN)
    assert not K.containerd_configured(v1x, DEFAULT) and "sandbox_image" not in v1x.cri()
    assert K.containerd_configured(v2x, DEFAULT) and v2x.cri()["containerd"]["runtimes"].keys() == {"runc", "nvidia"}


def test_the_plugin_and_cdi_follow_the_effective_version():
    files = K.nvidia_ctk_containerd("1.19.1", {TOML: CONTAINERD_2X}.get,
                                    ContainerAnswers(runtime="containerd", set_as_default=True, cdi=True))
    assert tomllib.loads(files[DROP_IN])["plugins"].keys() == {"io.containerd.cri.v1.runtime"}
    cfg = effective(files, "2.1.0")
    assert cfg.version == 3 and K.containerd_configured(cfg, ContainerAnswers(runtime="containerd", cdi=True))
    # a file without `version` is version 1 to containerd: the runtime must be under plugins.cri
    assert not K.containerd_configured('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n', PLAIN)
    assert K.containerd_configured("[plugins.cri.containerd.runtimes.nvidia]\n", PLAIN)
    # cdi asked: containerd 1.x needs enable_cdi; 2.x has it on unless turned off. 1.7's default output
    # turns it off explicitly (`enable_cdi = false`), so a config.toml generated by 1.7 and kept under 2.x
    # has no CDI; without that line 2.x's default (on) applies.
    cdi = ContainerAnswers(runtime="containerd", cdi=True)
    assert "    enable_cdi = false\n" in CONTAINERD_17
    v2 = K.nvidia_ctk_containerd("1.19.1", {TOML: CONTAINERD_17}.get, PLAIN)
    assert not K.containerd_configured(effective(v2, "1.7.12"), cdi)
    assert not K.containerd_configured(effective(v2, "2.0.0"), cdi)
    v2 = K.nvidia_ctk_containerd("1.19.1", {TOML: CONTAINERD_17.replace("    enable_cdi = false\n", "")}.get, PLAIN)
    assert not K.containerd_configured(effective(v2, "1.7.12"), cdi)
    assert K.containerd_configured(effective(v2, "2.0.0"), cdi)


# -- nvidia-ctk per toolkit version (the simulated one) -------------------------------------------------------
def test_before_1_18_the_runtime_goes_into_config_toml(tmp_path):
    # the default with the one edit every kubeadm guide makes (runc under the systemd cgroup driver)
    source = CONTAINERD_17.replace("SystemdCgroup = false", "SystemdCgroup = true")
    sb = sandbox(tmp_path, "1.17.8", source)
    assert configure(sb, "--set-as-default").returncode == 0
    files = files_under(sb)
    assert list(files) == [TOML]
    doc = tomllib.loads(files[TOML])
    node = doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    # the nvidia runtime is a copy of runc's (SystemdCgroup kept) with nvidia's binary
    runc = tomllib.loads(source)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True and runc["options"]["BinaryName"] == ""
    assert node["runtimes"]["nvidia"] == {**runc, "options": {**runc["options"], "BinaryName": "/usr/bin/nvidia-container-runtime"}}
    assert node["runtimes"]["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert node["runtimes"]["runc"] == runc
    assert node["default_runtime_name"] == "nvidia" and "imports" in doc and doc["imports"] == []
    assert K.containerd_configured(effective(files), DEFAULT)
    assert configure(sb, "--set-as-default").returncode == 0 and files_under(sb) == files  # again: the same bytes


def test_from_1_18_1_a_drop_in_and_an_import_other_imports_kept(tmp_path):
    source = CONTAINERD_17.replace("imports = []", 'imports = ["/etc/containerd/site.toml"]')
    sb = sandbox(tmp_path, "1.19.1", source)
    (sb.root / "etc/containerd/site.toml").write_text("oom_score = -500\n")
    assert configure(sb, "--set-as-default").returncode == 0
    files = files_under(sb)
    top = tomllib.loads(files[TOML])
    assert top["imports"] == ["/etc/containerd/site.toml", "/etc/containerd/conf.d/*.toml"]
    assert "nvidia" not in top["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    drop = tomllib.loads(files[DROP_IN])
    cri = drop["plugins"]["io.containerd.grpc.v1.cri"]
    # the whole CRI section of config.toml comes along (containerd 1.x replaces it by the drop-in's)
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.8" and set(cri["containerd"]["runtimes"]) == {"runc", "nvidia"}
    assert cri["containerd"]["default_runtime_name"] == "nvidia" and drop.keys() == {"version", "plugins"}
    assert drop["plugins"].keys() == {"io.containerd.grpc.v1.cri"}
    cfg = effective(files)
    assert K.containerd_configured(cfg, DEFAULT) and cfg.merged["oom_score"] == -500
    # again, and again with --set-as-default: one table each, the same files
    assert configure(sb, "--set-as-default").returncode == 0 and files_under(sb) == files
    assert files[DROP_IN].count("runtimes.nvidia]") == 1 and files[DROP_IN].count("default_runtime_name") == 1
    # without --set-as-default the drop-in no longer makes nvidia the default
    assert configure(sb).returncode == 0
    assert not K.containerd_configured(effective(files_under(sb)), DEFAULT)
    assert K.containerd_configured(effective(files_under(sb)), PLAIN)


def test_1_18_0_writes_config_d_and_drops_other_imports(tmp_path):
    source = CONTAINERD_17.replace("imports = []", 'imports = ["/etc/containerd/site.toml"]')
    sb = sandbox(tmp_path, "1.18.0", source)
    assert configure(sb).returncode == 0
    files = files_under(sb)
    assert set(files) == {TOML, "/etc/containerd/config.d/99-nvidia.toml"}
    assert tomllib.loads(files[TOML])["imports"] == ["/etc/containerd/config.d/*.toml"]


def test_no_config_toml_gets_one_with_the_import_and_version_2(tmp_path):
    sb = sandbox(tmp_path, "1.19.1", None)
    r = configure(sb)
    assert r.returncode == 0 and "Using config version 2" in r.stderr
    files = files_under(sb)
    assert files[TOML] == 'imports = ["/etc/containerd/conf.d/*.toml"]\nversion = 2\n'
    assert K.containerd_configured(effective(files), PLAIN)


def test_config_version_3_per_toolkit(tmp_path):
    sb = sandbox(tmp_path, "1.17.3", CONTAINERD_2X)
    r = configure(sb)
    assert r.returncode == 1 and "unsupported config version: 3" in r.stderr
    assert files_under(sb) == {TOML: CONTAINERD_2X}  # nothing written
    with pytest.raises(K.StepFailed, match="does not know containerd config version 3"):
        K.nvidia_ctk_containerd("1.17.3", {TOML: CONTAINERD_2X}.get, PLAIN)
    # 2.1.5's default has no array of tables (the transfer plugin's unpack_config is left empty there,
    # unlike 1.7's); append the one a user sets, in the form 1.7's default writes it
    assert "[[" not in CONTAINERD_2X
    source = CONTAINERD_2X + ("\n  [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n"
                              "    platform = 'linux/arm64/v8'\n    snapshotter = 'overlayfs'\n")
    sb = sandbox(tmp_path / "new", "1.19.1", source)
    assert configure(sb, "--set-as-default").returncode == 0
    files = files_under(sb)
    drop = tomllib.loads(files[DROP_IN])
    assert drop["version"] == 3 and drop["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["default_runtime_name"] == "nvidia"
    top = tomllib.loads(files[TOML])  # config.toml rewritten by go-toml: the array of tables survives
    assert top["plugins"]["io.containerd.transfer.v1.local"]["unpack_config"] == [{"platform": "linux/arm64/v8", "snapshotter": "overlayfs"}]
    assert top["plugins"]["io.containerd.runtime.v2.task"]["platforms"] == ["linux/arm64/v8"]
    assert K.containerd_configured(effective(files, "2.1.0"), DEFAULT)


def test_a_version_1_config_is_refused_as_nvidia_ctk_1_18_leaves_it_unconfigured(tmp_path):
    v1 = '[plugins.cri.containerd]\n  snapshotter = "overlayfs"\n'
    sb = sandbox(tmp_path, "1.19.1", v1)
    assert configure(sb).returncode == 0
    files = files_under(sb)
    assert files[TOML] == v1 and not K.containerd_configured(effective(files), PLAIN)  # the drop-in is never read
    with pytest.raises(K.StepFailed, match="config version 1"):
        K.nvidia_ctk_containerd("1.19.1", {TOML: v1}.get, PLAIN)


# -- the step's model agrees with the simulated tool ---------------------------------------------------------------
SOURCES = {"none": None, "empty": "", "capture": CAPTURE_SOURCE, "containerd-1.7": CONTAINERD_17, "containerd-2.x": CONTAINERD_2X,
           "imports": CONTAINERD_17.replace("imports = []", 'imports = ["/etc/containerd/site.toml", "/etc/containerd/conf.d/*.toml"]'),
           "nvidia-there": CONTAINERD_17.replace('default_runtime_name = "runc"', 'default_runtime_name = "nvidia"')
           + '\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n  runtime_type = "x"\n'}
CASES = [(c, s, f) for c, s, f in itertools.product(["1.17.3", "1.17.8", "1.18.0", "1.18.1", "1.19.1"], SOURCES,
                                                      [(), ("--set-as-default",), ("--set-as-default", "--cdi.enabled")])
         if not (s == "containerd-2.x" and c == "1.17.3") and not (f[-1:] == ("--cdi.enabled",) and c == "1.17.3")]


@pytest.fixture(scope="module")
def one_sandbox(tmp_path_factory):
    return prepare("ready", tmp_path_factory.mktemp("containerd") / "sb")


@pytest.mark.parametrize("ctk,source,flags", CASES, ids=[f"{c}-{s}-{len(f)}" for c, s, f in CASES])
def test_the_plan_shows_what_the_simulated_nvidia_ctk_writes(tmp_path, one_sandbox, ctk, source, flags):
    text = SOURCES[source]
    answers = ContainerAnswers(runtime="containerd", set_as_default="--set-as-default" in flags, cdi="--cdi.enabled" in flags)
    planned = K.nvidia_ctk_containerd(ctk, {TOML: text}.get if text is not None else {}.get, answers)
    sb = sandbox(tmp_path, ctk, text, one_sandbox)
    (sb.root / "etc/containerd").mkdir(parents=True, exist_ok=True)
    (sb.root / "etc/containerd/site.toml").write_text("oom_score = -500\n")  # the "imports" source names it
    r = configure(sb, *flags)
    assert r.returncode == 0, r.stderr
    after = files_under(sb)
    assert {p: after[p] for p in planned} == planned
    # nothing else written
    assert set(after) - set(planned) <= {"/etc/containerd/site.toml"} | ({TOML} if text is not None else set())
    assert K.containerd_configured(effective(after, "2.1.0" if source == "containerd-2.x" else "1.7.12"), answers)
