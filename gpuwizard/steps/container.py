"""Step ``container``: nvidia-container-toolkit and the NVIDIA runtime in Docker (or containerd).

* Docker absent: installed when ``install_docker: true``, else the step stops with guidance.
* An invalid daemon.json stops the step before any change, naming the file and the JSON error.
* NVIDIA's repository with its key: ``gpg --dearmor`` into a keyring + a ``signed-by`` list (apt),
  the key's fingerprint checked; a repo file (dnf). Then ``nvidia-container-toolkit``.
* daemon.json (containerd: config.toml) is backed up, then ``nvidia-ctk runtime configure
  --runtime=…`` (it keeps no backup, and up to v1.20.0 ``--cdi.enabled`` drops other ``features``):
  every key the file had survives — one nvidia-ctk dropped is put back. Then the runtime restarts,
  only when it does not run with the nvidia runtime yet.
* Verify: ``docker run --rm --gpus all <image> nvidia-smi`` lists the detected GPU(s).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from .. import actions as A
from .. import parsers as P
from .. import versions as V
from ..detect import probe_docker, probe_version
from ..engine import PlannedStep, Promise, Step, StepContext
from ..errors import StepFailed
from ..host import load_json_object, unified_diff
from ..validate import ImageRef, Section
from . import common as C

KEY_URL = "https://nvidia.github.io/libnvidia-container/gpgkey"
KEY_CACHE = C.CACHE_DIR + "/nvidia-container-toolkit.gpgkey"
KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
# NVIDIA's libnvidia-container signing key, as seen in NVIDIA/nvidia-container-toolkit issues #650/#1460.
KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
APT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
# https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list, with the
# signed-by the install guide's sed adds.
APT_LIST_CONTENT = (
    f"deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
)
DNF_REPO = "/etc/yum.repos.d/nvidia-container-toolkit.repo"
# https://nvidia.github.io/libnvidia-container/stable/rpm/nvidia-container-toolkit.repo (stable section)
DNF_REPO_CONTENT = """\
[nvidia-container-toolkit]
name=nvidia-container-toolkit
baseurl=https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch
repo_gpgcheck=1
gpgcheck=0
enabled=1
gpgkey=https://nvidia.github.io/libnvidia-container/gpgkey
sslverify=1
sslcacert=/etc/pki/tls/certs/ca-bundle.crt
"""
DAEMON_JSON = "/etc/docker/daemon.json"
CONTAINERD_TOML = "/etc/containerd/config.toml"
NVIDIA_RUNTIME = {"args": [], "path": "nvidia-container-runtime"}
# CUDA X.Y -> the base image tag of its latest update (hub.docker.com/r/nvidia/cuda)
BASE_IMAGES = {"11.8": "11.8.0", "12.0": "12.0.1", "12.1": "12.1.1", "12.2": "12.2.2", "12.3": "12.3.2",
               "12.4": "12.4.1", "12.5": "12.5.1", "12.6": "12.6.2", "12.8": "12.8.1", "12.9": "12.9.1"}


def default_test_image(driver_cuda: str | None, host: dict[str, Any]) -> str:
    fits = [v for v in BASE_IMAGES if V.key(v) <= V.key(driver_cuda or "0")]
    xy = max(fits, key=V.key) if fits else "11.8"
    ubuntu = "24.04" if host.get("os") == "ubuntu" and str(host.get("version")) == "24.04" and V.at_least(xy, "12.5") else "22.04"
    return f"nvidia/cuda:{BASE_IMAGES[xy]}-base-ubuntu{ubuntu}"


def nvidia_edit(answers: ContainerAnswers) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What `nvidia-ctk runtime configure --runtime=docker …` does to daemon.json (for the preview
    and for telling that it is done)."""

    def edit(cfg: dict[str, Any]) -> dict[str, Any]:
        cfg.setdefault("runtimes", {})["nvidia"] = dict(NVIDIA_RUNTIME)
        if answers.set_as_default:
            cfg["default-runtime"] = "nvidia"
        if answers.cdi:
            cfg.setdefault("features", {})["cdi"] = True
        return cfg

    return edit


def docker_configured(cfg: dict[str, Any], answers: ContainerAnswers) -> bool:
    nvidia = (cfg.get("runtimes") or {}).get("nvidia") or {}
    if "nvidia-container-runtime" not in str(nvidia.get("path", "")):
        return False
    if answers.set_as_default and cfg.get("default-runtime") != "nvidia":
        return False
    if answers.cdi and not (cfg.get("features") or {}).get("cdi"):
        return False
    return True


# The CRI plugin under which nvidia-ctk registers the nvidia runtime in containerd's config.toml, by
# the file's config version: 2 (containerd 1.x; a file without ``version`` is checked as 2, the
# layout nvidia-ctk adds to it), 3 (containerd 2.x) and the long-deprecated 1.
CONTAINERD_CRI = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}


def containerd_configured(text: str | None, answers: ContainerAnswers) -> bool:
    """Whether containerd's config.toml has the nvidia runtime (and, with ``set_as_default``, as
    ``default_runtime_name``) under the CRI plugin its config version reads:
    ``plugins."io.containerd.grpc.v1.cri".containerd`` (version 2) or
    ``plugins."io.containerd.cri.v1.runtime".containerd`` (version 3). A file that is not valid
    TOML configures nothing (containerd would not start with it)."""
    try:
        doc = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError:
        return False
    version = doc.get("version", 2)
    plugin = CONTAINERD_CRI.get(version) if isinstance(version, int) else None
    node: Any = doc
    for key in ("plugins", plugin, "containerd"):
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return False
    runtimes = node.get("runtimes")
    if not isinstance(runtimes, dict) or not isinstance(runtimes.get("nvidia"), dict):
        return False
    return not answers.set_as_default or node.get("default_runtime_name") == "nvidia"


def _restore_lost(old: Any, new: Any) -> tuple[Any, list[str]]:
    """Put back keys of ``old`` that ``new`` lost (objects only, recursively)."""
    lost: list[str] = []
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new, lost
    for key, value in old.items():
        if key not in new:
            new[key] = value
            lost.append(key)
        elif isinstance(value, dict) and isinstance(new[key], dict):
            new[key], sub = _restore_lost(value, new[key])
            lost += [f"{key}.{s}" for s in sub]
    return new, lost


@dataclass
class ConfigureRuntime(A.Action):
    """Back up the runtime's config, run ``nvidia-ctk runtime configure``, make sure nothing the file
    had was dropped."""

    id: str
    title: str
    argv: list[str]
    path: str
    answers: ContainerAnswers
    runtime: str

    def _done(self, ctx: StepContext) -> bool:
        text = ctx.read_text(self.path)
        if self.runtime == "docker":
            return docker_configured(load_json_object(self.path, text), self.answers)
        return containerd_configured(text, self.answers)

    def preview(self, ctx: StepContext) -> list[str]:
        lines = []
        if ctx.host.exists(self.path):
            lines.append(f"back up {self.path} -> {self.path}.gpuwizard-<time>.bak")
        lines.append("$ " + C.cmd(self.argv))
        if self.runtime == "docker":
            old = ctx.read_text(self.path)
            written = self.planned_file(ctx)
            lines += unified_diff(self.path, old, written[1] if written else "").splitlines()
        return lines

    def planned_file(self, ctx: StepContext) -> tuple[str, str] | None:
        """What nvidia-ctk leaves in daemon.json: the object sorted, 4-space indented, with no
        newline at the end (../shared/upstream/nvidia-ctk/v1.19.1-configure-session.txt)."""
        if self.runtime != "docker":
            return None
        cfg = load_json_object(self.path, ctx.read_text(self.path))
        new = nvidia_edit(self.answers)(json.loads(json.dumps(cfg)))
        return self.path, json.dumps(new, indent=4, sort_keys=True)

    def is_done(self, ctx: StepContext) -> bool:
        return self._done(ctx)

    def apply(self, ctx: StepContext) -> None:
        before = ctx.host.read_text(self.path)
        old = load_json_object(self.path, before) if self.runtime == "docker" else None
        saved = ctx.host.backup(self.path)
        if saved:
            ctx.note(f"backup of {self.path}: {saved}")
        ctx.host.runner.run(self.argv, check=True)
        if self.runtime == "docker" and old:
            new = load_json_object(self.path, ctx.host.read_text(self.path))
            merged, lost = _restore_lost(old, json.loads(json.dumps(new)))
            if lost:
                ctx.host.write_file(self.path, json.dumps(merged, indent=4, sort_keys=True) + "\n")
                ctx.note(f"nvidia-ctk dropped {', '.join(sorted(lost))} from {self.path}; put back from {saved}")
        if not self._done(ctx):
            raise StepFailed(f"nvidia-ctk ran but {self.path} does not configure the nvidia runtime as asked")

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["argv"] = list(self.argv)
        data["path"] = self.path
        return data


# -- the step's section of the answer file --------------------------------------------------------
class ContainerAnswers(Section):
    runtime: Literal["docker", "containerd"] = "docker"
    install_docker: bool = Field(False, description="Install Docker when it is absent (otherwise stop with guidance).")
    set_as_default: bool = Field(False, description="Make nvidia the default runtime.")
    cdi: bool = Field(False, description="Enable CDI in the runtime.")
    test_image: ImageRef | None = Field(None, description="Image for the `docker run --gpus all … nvidia-smi` check (default: a CUDA base image the driver can run).")


class ContainerStep(Step[ContainerAnswers]):
    id = "container"
    title = "Container runtime (nvidia-container-toolkit)"
    facts_shown = ("driver", "container_toolkit", "docker")
    Answers = ContainerAnswers

    def plan(self, ctx: StepContext, answers: ContainerAnswers) -> list[A.Action]:
        facts = ctx.facts  # host and GPUs; the container layer is probed afresh (the steps before may have changed it)
        host = facts["host"]
        docker, _problem = probe_docker(ctx.host)
        ctk = probe_version(ctx.host, ["nvidia-ctk", "--version"], P.parse_nvidia_ctk_version)
        fam = C.os_family(host)
        actions: list[A.Action] = []
        runtime = answers.runtime
        if runtime == "docker":
            if docker is None:
                if not answers.install_docker:
                    raise StepFailed(
                        "Docker is not installed; nothing was changed. Install it (Ubuntu/Debian: `apt-get install -y "
                        "docker.io`, or Docker CE from https://docs.docker.com/engine/install/), or set "
                        "`container: {install_docker: true}`, or use `runtime: containerd`")
                if fam not in ("ubuntu", "debian"):
                    raise StepFailed("install_docker is supported on Ubuntu/Debian (docker.io); on this host install "
                                     "Docker CE from https://docs.docker.com/engine/install/ and run again")
                actions += [
                    A.Run("install-docker", "install Docker (docker.io)", ["apt-get", "install", "-y", "docker.io"],
                          done_when=["docker", "--version"], env=C.APT_ENV, timeout=1800),
                    A.Run("start-docker", "enable and start Docker", ["systemctl", "enable", "--now", "docker"],
                          done_when=["systemctl", "is-active", "--quiet", "docker"]),
                ]
            else:
                # stop before any change when daemon.json cannot be read (names the file, line, column)
                load_json_object(DAEMON_JSON, ctx.host.read_text(DAEMON_JSON))
        elif probe_version(ctx.host, ["containerd", "--version"], P.parse_containerd_version) is None:
            raise StepFailed("containerd is not installed; install it (or use runtime: docker) and run again")

        if ctk:
            actions.append(C.Check("toolkit", f"nvidia-container-toolkit {ctk} is installed", lambda c: True))
        elif fam in ("ubuntu", "debian"):
            installed = ["nvidia-ctk", "--version"]
            actions += [
                C.MakeDir("cache-dir", f"the download cache ({C.CACHE_DIR})", C.CACHE_DIR),
                C.RunIf("repo-key-download", f"download NVIDIA's repository key ({KEY_URL})",
                        ["curl", "-fsSL", "-o", C.hp(ctx, KEY_CACHE), KEY_URL], done=lambda c: c.host.exists(KEYRING)),
                A.Run("repo-key", f"install the key as an APT keyring ({KEYRING})",
                      ["gpg", "--batch", "--yes", "--dearmor", "-o", C.hp(ctx, KEYRING), C.hp(ctx, KEY_CACHE)], creates=KEYRING),
                C.Check("repo-key-fingerprint", f"the keyring holds NVIDIA's key {KEY_FINGERPRINT}",
                        lambda c: KEY_FINGERPRINT in _fingerprints(c),
                        lambda c: f"{KEYRING} holds {', '.join(_fingerprints(c)) or 'no key'}, not NVIDIA's {KEY_FINGERPRINT}; "
                                  "it was removed and the repository was not added",
                        on_failure=lambda c: os.unlink(c.host.path(KEYRING)) if c.host.exists(KEYRING) else None),
                A.WriteFile("repo-list", f"add NVIDIA's container toolkit repository ({APT_LIST})", APT_LIST, APT_LIST_CONTENT),
                C.RunIf("apt-update", "refresh the package lists", ["apt-get", "update"], env=C.APT_ENV, done_when=installed,
                        done=lambda c: c.done_this_run("apt-update")),
                A.Run("install-toolkit", "install nvidia-container-toolkit", ["apt-get", "install", "-y", "nvidia-container-toolkit"],
                      done_when=installed, env=C.APT_ENV, timeout=1800),
            ]
        elif fam == "rhel":
            actions += [
                A.WriteFile("repo-file", f"add NVIDIA's container toolkit repository ({DNF_REPO})", DNF_REPO, DNF_REPO_CONTENT),
                A.Run("install-toolkit", "install nvidia-container-toolkit", ["dnf", "install", "-y", "nvidia-container-toolkit"],
                      done_when=["nvidia-ctk", "--version"], timeout=1800),
            ]
        else:
            raise StepFailed(f"no package source for nvidia-container-toolkit on {host.get('pretty_name') or host.get('os')}; "
                             "install it by hand (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/) and run again")

        argv = ["nvidia-ctk", "runtime", "configure", f"--runtime={runtime}"]
        if answers.set_as_default:
            argv.append("--set-as-default")
        if answers.cdi:
            argv.append("--cdi.enabled")
        path = DAEMON_JSON if runtime == "docker" else CONTAINERD_TOML
        actions.append(ConfigureRuntime("configure-runtime", f"configure {runtime} for the nvidia runtime (backup of {path} first)",
                                        argv, path, answers, runtime))
        actions.append(C.RunIf("restart-runtime", f"restart {runtime}", ["systemctl", "restart", runtime],
                               done=lambda c: _runtime_live(c, runtime, answers, path),
                               disruptive=f"restarts {runtime}: its running containers stop"
                               + (" (restart policies bring some back)" if runtime == "docker" else "")))
        return actions

    def provides(self, ctx: StepContext, answers: ContainerAnswers, plan: PlannedStep) -> list[Promise]:
        """Docker (or containerd) with the nvidia runtime, and nvidia-ctk, for the kind step."""
        out = [Promise("tools", {"nvidia-ctk": "(installed by the container step)"},
                       "nvidia-ctk is installed (the container step of this run installs nvidia-container-toolkit)")]
        if answers.runtime == "docker":
            docker = dict(ctx.facts.get("docker") or {})
            runtimes = sorted(set(docker.get("runtimes") or []) | {"nvidia"})
            value: dict[str, Any] = {"running": True, "runtimes": runtimes}
            if answers.set_as_default:
                value["default_runtime"] = "nvidia"
            if answers.cdi:
                value["cdi"] = True
            out.append(Promise("docker", value, "Docker runs with the nvidia runtime (the container step of this run "
                               "configures and restarts it)"))
        return out

    def test_argv(self, ctx: StepContext, answers: ContainerAnswers) -> list[str]:
        """The GPU check: a CUDA base image the driver can run (the driver this run installs, in a plan)."""
        now = C.driver_seen(ctx)
        image = answers.test_image or default_test_image(now.get("cuda_version"), ctx.facts["host"])
        return ["docker", "run", "--rm", "--gpus", "all", image, "nvidia-smi"]

    def checks(self, ctx: StepContext, answers: ContainerAnswers) -> list[str]:
        return [] if answers.runtime == "containerd" else ["$ " + C.cmd(self.test_argv(ctx, answers))]

    def verify(self, ctx: StepContext, answers: ContainerAnswers) -> str:
        if answers.runtime == "containerd":
            result = ctx.host.runner.probe(["systemctl", "is-active", "containerd"])
            if not (result and result.ok):
                raise StepFailed("containerd is not running after the restart: see `journalctl -u containerd`")
            return "containerd runs with the nvidia runtime (" + CONTAINERD_TOML + ")"
        argv = self.test_argv(ctx, answers)
        image = argv[-2]
        result = ctx.host.runner.run(argv, timeout=900)
        if not result.ok:
            last = (result.stderr or result.stdout).strip().splitlines()
            raise StepFailed(f"`{C.cmd(argv)}` failed (exit {result.rc}): {last[-1] if last else 'no output'}")
        table = P.parse_smi_table(result.stdout)
        names = [g.name for g in table.gpus] if table else []
        expected = len(ctx.facts.get("gpus") or [])
        if not names or (expected and len(names) < expected):
            raise StepFailed(f"`{C.cmd(argv)}` shows {len(names)} GPU(s), expected {expected}")
        return f"docker run --gpus all {image} nvidia-smi sees {len(names)} GPU(s): {', '.join(names)}"


def _fingerprints(ctx: StepContext) -> list[str]:
    result = ctx.host.runner.probe(["gpg", "--show-keys", "--with-colons", C.hp(ctx, KEYRING)])
    if not result or not result.ok:
        return []
    return [line.split(":")[9] for line in result.stdout.splitlines() if line.startswith("fpr:") and len(line.split(":")) > 9]


def _runtime_live(ctx: StepContext, runtime: str, answers: ContainerAnswers, path: str) -> bool:
    """Does the running daemon already use the configuration (so a restart would change nothing)?"""
    if runtime == "docker":
        result = ctx.host.runner.probe(["docker", "info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}"])
        if not result or not result.ok:
            return False
        runtimes, _, default = result.stdout.strip().partition("|")
        return '"nvidia"' in runtimes and (not answers.set_as_default or default == "nvidia")
    record = ctx.action_record("restart-runtime") or {}
    try:
        mtime = ctx.host.path(path).stat().st_mtime
    except OSError:
        return False
    return record.get("outcome") == "changed" and record.get("at", 0) >= mtime
