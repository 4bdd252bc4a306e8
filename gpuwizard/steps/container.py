"""Step ``container``: nvidia-container-toolkit and the NVIDIA runtime in Docker (or containerd).

* Docker absent: installed when ``install_docker: true``, else the step stops with guidance.
* An invalid daemon.json stops the step before any change, naming the file and the JSON error.
* NVIDIA's repository with its key: ``gpg --dearmor`` into a keyring + a ``signed-by`` list (apt),
  the key's fingerprint checked; a repo file (dnf). Then ``nvidia-container-toolkit``.
* daemon.json (containerd: config.toml) is backed up, then ``nvidia-ctk runtime configure
  --runtime=…`` (it keeps no backup, and up to v1.20.0 ``--cdi.enabled`` drops other ``features``):
  every key the file had survives — one nvidia-ctk dropped is put back. Then the runtime restarts,
  only when it does not run with the nvidia runtime yet.
* containerd: what counts is its effective configuration, config.toml merged with the files its
  ``imports`` name, as containerd reads it. From toolkit 1.18 nvidia-ctk writes the runtime to a
  drop-in (``/etc/containerd/conf.d/99-nvidia.toml``) and only adds an ``imports`` entry to
  config.toml; before, it edits config.toml itself. The plan shows the files the installed toolkit
  writes; a config.toml it cannot extend (not TOML, config version 1, version 3 before 1.17.4) is
  refused before any change.
* Verify: ``docker run --rm --gpus all <image> nvidia-smi`` lists the detected GPU(s); containerd:
  it runs, and its effective configuration has the nvidia runtime.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
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
from ..journal import Change, FileChange

# NVIDIA's container toolkit repositories (APT: key + signed-by list; dnf: a repo file): gpuwizard/platform
from ..platform.apt import APT_LIST as APT_LIST
from ..platform.apt import APT_LIST_CONTENT as APT_LIST_CONTENT
from ..platform.apt import KEY_CACHE as KEY_CACHE
from ..platform.apt import KEY_FINGERPRINT as KEY_FINGERPRINT
from ..platform.apt import KEY_URL as KEY_URL
from ..platform.apt import KEYRING as KEYRING
from ..platform.dnf import DNF_REPO as DNF_REPO
from ..platform.dnf import DNF_REPO_CONTENT as DNF_REPO_CONTENT
from ..validate import ImageRef, Section
from . import common as C

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


# CDI devices in `docker run --device vendor/class=name` came with Docker Engine 25.0 (moby/moby
# v25.0.0 release notes: "Add support for CDI devices under Linux", moby/moby#45134, docker/cli#4510);
# before, `--device nvidia.com/gpu=all` is taken as a path ("not an absolute path":
# ../shared/research/real-world.md).
DOCKER_CDI_SINCE = "25.0"


def refuse_cdi_before_docker_25(docker: dict[str, Any]) -> None:
    """`cdi: true` needs a Docker daemon ≥ 25; judged by the server's version (the client's when the
    daemon does not run, said so)."""
    server = docker.get("server_version")
    version = P.parse_docker_version("Docker version " + server) if server else docker.get("version")
    if not version or V.at_least(version, DOCKER_CDI_SINCE):
        return
    which = f"the Docker daemon (server) is {server}" if server else \
        f"the Docker daemon does not run; its client is {docker.get('version')}"
    raise StepFailed(f"`container: {{cdi: true}}` needs Docker {DOCKER_CDI_SINCE} or later (CDI devices came with "
                     f"Docker Engine 25.0) but {which}; nothing was changed. Upgrade Docker (Docker CE from "
                     "https://docs.docker.com/engine/install/), or set `cdi: false` to use the nvidia runtime")


def docker_configured(cfg: dict[str, Any], answers: ContainerAnswers) -> bool:
    nvidia = (cfg.get("runtimes") or {}).get("nvidia") or {}
    if "nvidia-container-runtime" not in str(nvidia.get("path", "")):
        return False
    if answers.set_as_default and cfg.get("default-runtime") != "nvidia":
        return False
    if answers.cdi and not (cfg.get("features") or {}).get("cdi"):
        return False
    return True


# -- containerd ------------------------------------------------------------------------------------
# Facts below are from NVIDIA/nvidia-container-toolkit at the tags named (cmd/nvidia-ctk/runtime/
# configure/configure.go, pkg/config/engine/containerd/*.go), from containerd/containerd's config
# loader (services/server/config/config.go@v1.7.30, cmd/containerd/server/config/config.go@v2.1.0)
# and from a real nvidia-ctk v1.19.1 run (../shared/upstream/nvidia-ctk/v1.19.1-configure-session.txt).

# The CRI plugin that holds the runtimes, by config version (containerd.go criRuntimePluginName@v1.19.1;
# containerd reads a file without ``version`` as version 1: GetVersion@v1.7.30).
CONTAINERD_CRI = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
CTK_RUNTIME_BINARY = "/usr/bin/nvidia-container-runtime"  # configure.go defaultNVIDIARuntimeExpecutablePath
# Where `nvidia-ctk runtime configure --runtime=containerd` puts the runtime (configure.go
# defaultContainerdDropInConfigFilePath): no drop-in up to v1.17.x (config.toml is edited in place),
# /etc/containerd/config.d/ in v1.18.0, /etc/containerd/conf.d/ from v1.18.1.
CTK_DROP_IN_SINCE = "1.18.0"
CTK_DROP_IN_1_18_0 = "/etc/containerd/config.d/99-nvidia.toml"
CTK_DROP_IN = "/etc/containerd/conf.d/99-nvidia.toml"
# v1.18.0 dropped the imports config.toml had (config_drop_in.go ensureImports read them as []string,
# which a file never yields); v1.18.1 keeps them (getCurrentImports).
CTK_KEEPS_IMPORTS = "1.18.1"
CTK_CONFIG_V3_SINCE = "1.17.4"  # before: "unsupported config version: 3" (containerd.go@v1.17.3)
CTK_CRI_CDI_SINCE = "1.17.5"  # before: --cdi.enabled sets a top-level enable_cdi (configure.go enableCDI@v1.17.4)
# containerd 1.x replaces a plugin's whole section with an imported file's; 2.0 merges them key by key
# (containerd commit a21e379b6, first released in v2.0.0).
CONTAINERD_MERGES_PLUGINS = "2.0"


def containerd_drop_in(ctk: str | None) -> str | None:
    """The file nvidia-ctk ``ctk`` writes the runtime to, or None when it edits config.toml itself.
    ``None`` for ``ctk`` (installed by this step from NVIDIA's repository): the current release's."""
    if ctk is None:
        return CTK_DROP_IN
    if V.compare(ctk, CTK_DROP_IN_SINCE) < 0:
        return None
    return CTK_DROP_IN_1_18_0 if V.compare(ctk, CTK_KEEPS_IMPORTS) < 0 else CTK_DROP_IN


def config_version(doc: dict[str, Any]) -> int | None:
    """The config version containerd and nvidia-ctk read from a file: 1 when it has none (None: not a number)."""
    v = doc.get("version", 1)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


@dataclass
class ContainerdConfig:
    """containerd's effective configuration: config.toml, then the files its ``imports`` name (and
    theirs), merged in that order as containerd merges them. ``problem``: a file containerd would not
    start with (not TOML, a missing import); then nothing counts as configured."""

    files: list[str]
    merged: dict[str, Any]
    problem: str | None = None
    containerd: str | None = None  # containerd's version, when known

    @classmethod
    def of_text(cls, text: str | None, path: str = CONTAINERD_TOML) -> ContainerdConfig:
        """One file taken as the whole configuration (its imports not followed)."""
        return read_containerd_config(lambda p: text if p == path else None, lambda pattern: [], path, follow=False)

    @property
    def version(self) -> int | None:
        return config_version(self.merged)

    def cri(self) -> dict[str, Any]:
        """The CRI plugin's section for the effective config version ({} when absent)."""
        plugin = CONTAINERD_CRI.get(self.version or 0)
        plugins = self.merged.get("plugins")
        node = plugins.get(plugin) if isinstance(plugins, dict) and plugin else None
        return node if isinstance(node, dict) else {}


def read_containerd_config(read: Callable[[str], str | None], glob: Callable[[str], list[str]],
                           path: str = CONTAINERD_TOML, containerd: str | None = None, *,
                           follow: bool = True) -> ContainerdConfig:
    """Read containerd's configuration as containerd does (LoadConfig@v1.7.30/@v2.1.0): ``path``, then
    every import in turn, each file once; an import relative to the directory of the file naming it;
    a pattern with ``*`` globbed (sorted), any other import must exist. ``read`` and ``glob`` take
    system paths (the step passes the host root's)."""
    merge_plugins = containerd is not None and V.at_least(containerd, CONTAINERD_MERGES_PLUGINS)
    merged: dict[str, Any] = {}
    files: list[str] = []
    pending, seen = [path], set()
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        text = read(current)
        if text is None:
            if current == path:
                continue  # no config.toml: containerd runs on its built-in defaults
            return ContainerdConfig(files, merged, f"{current} (imported by containerd's config) does not exist", containerd)
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return ContainerdConfig(files + [current], merged, f"{current} is not valid TOML ({exc})", containerd)
        files.append(current)
        _containerd_merge(merged, doc, merge_plugins)
        imports = doc.get("imports") if follow else None
        for entry in imports if isinstance(imports, list) else []:
            if not isinstance(entry, str) or not entry:
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(current), entry))
            pending += glob(target) if "*" in target else [target]
    return ContainerdConfig(files, merged, None, containerd)


def _containerd_merge(to: dict[str, Any], new: dict[str, Any], merge_plugins: bool, top: bool = True) -> None:
    """containerd's mergeConfig: a later file's values win, tables merge key by key, top-level lists
    append; containerd 1.x replaces each plugin section an imported file has as a whole."""
    for key, value in new.items():
        if top and key == "imports":
            continue  # containerd lists the files it loaded there instead
        current = to.get(key)
        if top and key == "plugins" and not merge_plugins and isinstance(value, dict) and isinstance(current, dict):
            current.update(copy.deepcopy(value))
        elif isinstance(value, dict) and isinstance(current, dict):
            _containerd_merge(current, value, merge_plugins, top=False)
        elif top and isinstance(value, list) and isinstance(current, list):
            current += [v for v in value if not (merge_plugins and v in current)]
        else:
            to[key] = copy.deepcopy(value)


def containerd_configured(config: ContainerdConfig | str | None, answers: ContainerAnswers) -> bool:
    """Whether containerd's effective configuration (a lone config.toml's text also does) has the
    nvidia runtime under the CRI plugin its config version reads: ``plugins."io.containerd.grpc.v1.cri"``
    (version 2), ``plugins."io.containerd.cri.v1.runtime"`` (version 3), ``plugins.cri`` (1); with
    ``set_as_default`` as ``default_runtime_name``; with ``cdi`` the plugin's ``enable_cdi`` (on by
    default from containerd 2.0). A config containerd would not start with configures nothing."""
    cfg = config if isinstance(config, ContainerdConfig) else ContainerdConfig.of_text(config)
    if cfg.problem:
        return False
    cri = cfg.cri()
    node = cri.get("containerd")
    if not isinstance(node, dict):
        return False
    runtimes = node.get("runtimes")
    if not isinstance(runtimes, dict) or not isinstance(runtimes.get("nvidia"), dict):
        return False
    if answers.set_as_default and node.get("default_runtime_name") != "nvidia":
        return False
    if answers.cdi:
        cdi_default = cfg.containerd is not None and V.at_least(cfg.containerd, "2.0")
        if cri.get("enable_cdi", cdi_default) is not True:
            return False
    return True


def nvidia_ctk_containerd(ctk: str | None, read: Callable[[str], str | None],
                          answers: ContainerAnswers) -> dict[str, str]:
    """The files ``nvidia-ctk runtime configure --runtime=containerd`` (toolkit ``ctk``; None: the
    current release) leaves, path -> content, for the plan's diffs. Raises StepFailed where that
    run would fail or leave containerd without the runtime (nothing is changed then)."""
    text = read(CONTAINERD_TOML)
    try:
        source = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise StepFailed(f"{CONTAINERD_TOML} is not valid TOML ({exc}): containerd does not start with it and "
                         "nvidia-ctk cannot extend it; fix it and run again. Nothing was changed") from None
    named = "the nvidia-container-toolkit this step installs" if ctk is None else f"nvidia-container-toolkit {ctk}"
    # containerd.go parseVersion: an empty file takes the default version 2, one without `version` is 1
    version = 2 if not source else config_version(source)
    if version is None:
        raise StepFailed(f"{CONTAINERD_TOML}: `version = {source.get('version')!r}` is not a config version; "
                         "nothing was changed")
    if version <= 1:
        raise StepFailed(
            f"{CONTAINERD_TOML} has no `version` line (or version {version}), so containerd and nvidia-ctk read it as config version 1 "
            "(deprecated since containerd 1.5), which nvidia-ctk configures only in part (from 1.18 into a drop-in "
            "config.toml does not import). Convert it first: `containerd config migrate` (containerd 2.x), or add "
            "`version = 2` and rename `[plugins.cri…]` to `[plugins.\"io.containerd.grpc.v1.cri\"…]` (containerd "
            "1.x), then run again. Nothing was changed")
    if version > 2 and ctk is not None and V.compare(ctk, CTK_CONFIG_V3_SINCE) < 0:
        raise StepFailed(f"{named} does not know containerd config version {version} ({CONTAINERD_TOML}); "
                         f"it does from {CTK_CONFIG_V3_SINCE}: upgrade it (`apt-get install nvidia-container-toolkit` "
                         "/ `dnf upgrade nvidia-container-toolkit`) and run again. Nothing was changed")
    if answers.cdi and ctk is not None and V.compare(ctk, CTK_CRI_CDI_SINCE) < 0:
        raise StepFailed(f"{named} writes containerd's enable_cdi where containerd does not read it (fixed in "
                         f"{CTK_CRI_CDI_SINCE}): upgrade it, or leave `cdi` unset, and run again. Nothing was changed")
    plugin = CONTAINERD_CRI.get(version, CONTAINERD_CRI[3])
    drop_in = containerd_drop_in(ctk)
    cri_source = _table(source, "plugins", plugin)
    if drop_in is None:
        # up to 1.17.x: config.toml edited in place; runc's (or the default runtime's) table copied over
        # the nvidia one, defaults only when there is none (config.go AddRuntime@v1.17.8)
        dest = copy.deepcopy(source)
    else:
        # 1.18+: the drop-in starts from config.toml's whole CRI section, as containerd 1.x replaces the
        # section (containerd.go getBaseDropInConfigTree@v1.19.1)
        dest = {"plugins": {plugin: copy.deepcopy(cri_source)}} if cri_source else {}
    dest["version"] = version
    cri = _table(dest, "plugins", plugin, make=True)
    node = _table(cri, "containerd", make=True)
    runtimes = _table(node, "runtimes", make=True)
    old_default = _table(cri_source, "containerd").get("default_runtime_name")
    low_level = ([old_default] if isinstance(old_default, str) and old_default and not old_default.startswith("nvidia")
                 else []) + ["runc", "crun"]
    source_runtimes = _table(cri_source, "containerd", "runtimes")
    options = next((copy.deepcopy(source_runtimes[r]) for r in low_level if isinstance(source_runtimes.get(r), dict)), None)
    if options is not None:
        runtimes["nvidia"] = options
    elif drop_in is not None or not isinstance(runtimes.get("nvidia"), dict):
        runtimes["nvidia"] = {"privileged_without_host_devices": False, "runtime_engine": "", "runtime_root": "",
                              "runtime_type": "io.containerd.runc.v2"}
    _table(runtimes, "nvidia", "options", make=True)["BinaryName"] = CTK_RUNTIME_BINARY
    if answers.set_as_default:
        node["default_runtime_name"] = "nvidia"
    elif drop_in is not None and node.get("default_runtime_name") == "nvidia":
        del node["default_runtime_name"]  # config.go AddRuntimeWithOptions@v1.19.1
    if answers.cdi:
        cri["enable_cdi"] = True
    if drop_in is None:
        return {CONTAINERD_TOML: toml_text(dest)}
    # config_drop_in.go ensureImports: the drop-in's directory as a *.toml pattern joins config.toml's
    # imports (v1.18.0: replaces them); an empty config.toml gets the version too
    pattern = posixpath.dirname(drop_in) + "/*.toml"
    top = copy.deepcopy(source)
    current = top.get("imports")
    kept = [i for i in current if isinstance(i, str)] if isinstance(current, list) and V.at_least(ctk or CTK_KEEPS_IMPORTS, CTK_KEEPS_IMPORTS) else []
    if not top:
        top["version"] = version
    top["imports"] = kept if pattern in kept else kept + [pattern]
    return {drop_in: toml_text(dest), CONTAINERD_TOML: toml_text(top)}


def _table(doc: dict[str, Any], *keys: str, make: bool = False) -> dict[str, Any]:
    """``doc[k1][k2]…`` when each is a table, else {}; ``make``: created on the way (a value in the
    way replaced by a table, as go-toml's SetPath does)."""
    for key in keys:
        node = doc.get(key)
        if not isinstance(node, dict):
            if not make:
                return {}
            node = doc[key] = {}
        doc = node
    return doc


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return value.isoformat() if hasattr(value, "isoformat") else json.dumps(str(value))


def toml_text(doc: dict[str, Any]) -> str:
    """TOML laid out as nvidia-ctk (go-toml v1) writes it: keys sorted, values before tables, a blank
    line before each table header, two spaces of indent per level (the v1.19.1 capture)."""
    lines: list[str] = []

    def tables(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    def table(node: dict[str, Any], path: list[str], depth: int) -> None:
        pad = "  " * depth
        lines.extend(f"{pad}{_toml_key(k)} = {_toml_value(node[k])}" for k in sorted(node)
                     if not isinstance(node[k], dict) and not tables(node[k]))
        for k in sorted(node):
            sub = [*path, _toml_key(k)]
            if isinstance(node[k], dict):
                lines.extend(["", pad + "[" + ".".join(sub) + "]"])
                table(node[k], sub, depth + 1)
            elif tables(node[k]):
                for item in node[k]:
                    lines.extend(["", pad + "[[" + ".".join(sub) + "]]"])
                    table(item, sub, depth + 1)

    table(doc, [], 0)
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines) + "\n" if lines else ""


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
    had was dropped. containerd: its effective configuration (config.toml and its imports) decides,
    and the files nvidia-ctk writes depend on the toolkit's version (``ctk``; None: installed by
    this step)."""

    id: str
    title: str
    argv: list[str]
    path: str
    answers: ContainerAnswers
    runtime: str
    ctk: str | None = None
    containerd: str | None = None

    def effective(self, ctx: StepContext) -> ContainerdConfig:
        return read_containerd_config(ctx.read_text, ctx.host.glob, self.path, self.containerd)

    def _done(self, ctx: StepContext) -> bool:
        if self.runtime == "docker":
            return docker_configured(load_json_object(self.path, ctx.read_text(self.path)), self.answers)
        return containerd_configured(self.effective(ctx), self.answers)

    def _containerd_files(self, ctx: StepContext) -> dict[str, str]:
        return nvidia_ctk_containerd(self.ctk, ctx.read_text, self.answers)

    def preview(self, ctx: StepContext) -> list[str]:
        lines = []
        written = [self.path] if self.runtime == "docker" else sorted(self._containerd_files(ctx))
        lines += [f"back up {p} -> {p}.gpuwizard-<time>.bak" for p in written if ctx.exists(p)]
        lines.append("$ " + C.cmd(self.argv))
        if self.runtime == "docker":
            old = ctx.read_text(self.path)
            planned = self.planned_file(ctx)
            return lines + unified_diff(self.path, old, planned[1] if planned else "").splitlines()
        if self.ctk is None:
            lines.append(f"(nvidia-container-toolkit from 1.18 writes the runtime to {CTK_DROP_IN} and imports it "
                         f"from {self.path}; before 1.18 it writes it into {self.path})")
        for path, text in sorted(self._containerd_files(ctx).items()):
            lines += unified_diff(path, ctx.read_text(path), text).splitlines() or [f"(no change to {path})"]
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

    def journal(self, ctx: StepContext) -> list[Change]:
        """The runtime's configuration files nvidia-ctk writes (config.toml and, from 1.18, its drop-in),
        each put back by undo, which then restarts the runtime."""
        paths = [self.path] if self.runtime == "docker" else sorted({self.path, *self._containerd_files(ctx)})
        restart = (("systemctl", "restart", self.runtime),)
        return [FileChange(p, then=restart) for p in paths] + list(self.changes)

    def apply(self, ctx: StepContext) -> None:
        if self.runtime == "containerd":
            self._apply_containerd(ctx)
            return
        before = ctx.host.read_text(self.path)
        old = load_json_object(self.path, before)
        saved = ctx.host.backup(self.path)
        if saved:
            ctx.note(f"backup of {self.path}: {saved}")
        ctx.host.runner.run(self.argv, check=True)
        if old:
            new = load_json_object(self.path, ctx.host.read_text(self.path))
            merged, lost = _restore_lost(old, json.loads(json.dumps(new)))
            if lost:
                ctx.host.write_file(self.path, json.dumps(merged, indent=4, sort_keys=True) + "\n")
                ctx.note(f"nvidia-ctk dropped {', '.join(sorted(lost))} from {self.path}; put back from {saved}")
        if not self._done(ctx):
            raise StepFailed(f"nvidia-ctk ran but {self.path} does not configure the nvidia runtime as asked")

    def _apply_containerd(self, ctx: StepContext) -> None:
        # the toolkit may have been installed by this step: its version decides what nvidia-ctk writes
        ctk = probe_version(ctx.host, ["nvidia-ctk", "--version"], P.parse_nvidia_ctk_version) or self.ctk
        predicted = nvidia_ctk_containerd(ctk, ctx.host.read_text, self.answers)  # refuses before any change
        saved: dict[str, str] = {}
        for path in sorted(predicted):
            backup = ctx.host.backup(path)
            if backup:
                saved[path] = backup
                ctx.note(f"backup of {path}: {backup}")
        before = _imports(ctx.host.read_text(self.path))
        ctx.host.runner.run(self.argv, check=True)
        after_text = ctx.host.read_text(self.path)
        after = _imports(after_text)
        lost = [i for i in before if i not in after]
        if lost and after_text is not None:
            # nvidia-ctk 1.18.0 replaces config.toml's imports with its own
            doc = tomllib.loads(after_text)
            doc["imports"] = before + [i for i in after if i not in before]
            ctx.host.write_file(self.path, toml_text(doc))
            ctx.note(f"nvidia-ctk dropped the imports {', '.join(lost)} from {self.path}; put back"
                     + (f" (backup: {saved[self.path]})" if self.path in saved else ""))
        cfg = self.effective(ctx)
        if not containerd_configured(cfg, self.answers):
            raise StepFailed(f"nvidia-ctk ran but containerd's configuration ({' + '.join(cfg.files) or 'no file'}) "
                             + (cfg.problem + "; it " if cfg.problem else "")
                             + "does not configure the nvidia runtime as asked")

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["argv"] = list(self.argv)
        data["path"] = self.path
        return data


def _imports(text: str | None) -> list[str]:
    """config.toml's ``imports`` (a file that is not TOML has none to lose)."""
    try:
        value = tomllib.loads(text or "").get("imports")
    except tomllib.TOMLDecodeError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


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

    def prefetch(self, ctx: StepContext, answers: ContainerAnswers) -> list[list[str]]:
        running = (ctx.facts.get("docker") or {}).get("running")
        return [DOCKER_RUNTIMES] if answers.runtime == "docker" and running else []

    def plan(self, ctx: StepContext, answers: ContainerAnswers) -> list[A.Action]:
        facts = ctx.facts  # host and GPUs; the container layer is probed afresh (the steps before may have changed it)
        host = facts["host"]
        docker, _problem = probe_docker(ctx.host)
        ctk = probe_version(ctx.host, ["nvidia-ctk", "--version"], P.parse_nvidia_ctk_version)
        plat = C.platform(host)
        actions: list[A.Action] = []
        runtime = answers.runtime
        containerd: str | None = None
        if runtime == "docker":
            if docker is None:
                if not answers.install_docker:
                    raise StepFailed(
                        "Docker is not installed; nothing was changed. Install it (Ubuntu/Debian: `apt-get install -y "
                        "docker.io`, or Docker CE from https://docs.docker.com/engine/install/), or set "
                        "`container: {install_docker: true}`, or use `runtime: containerd`")
                actions += plat.install_docker(ctx)
            else:
                # stop before any change when daemon.json cannot be read (names the file, line, column)
                load_json_object(DAEMON_JSON, ctx.host.read_text(DAEMON_JSON))
                if answers.cdi:
                    refuse_cdi_before_docker_25(docker)
        else:
            containerd = probe_version(ctx.host, ["containerd", "--version"], P.parse_containerd_version)
            if containerd is None:
                raise StepFailed("containerd is not installed; install it (or use runtime: docker) and run again")
            effective = read_containerd_config(ctx.read_text, ctx.host.glob, CONTAINERD_TOML, containerd)
            if effective.problem:
                raise StepFailed(f"containerd's configuration cannot be read: {effective.problem}; containerd does not "
                                 "start with it. Fix or remove that file and run again. Nothing was changed")
            nvidia_ctk_containerd(ctk, ctx.read_text, answers)  # refuses what nvidia-ctk would get wrong

        if ctk:
            actions.append(C.Check("toolkit", f"nvidia-container-toolkit {ctk} is installed", lambda c: True))
        else:
            actions += plat.container_toolkit(ctx)

        argv = ["nvidia-ctk", "runtime", "configure", f"--runtime={runtime}"]
        if answers.set_as_default:
            argv.append("--set-as-default")
        if answers.cdi:
            argv.append("--cdi.enabled")
        path = DAEMON_JSON if runtime == "docker" else CONTAINERD_TOML
        actions.append(ConfigureRuntime("configure-runtime", f"configure {runtime} for the nvidia runtime (backup of {path} first)",
                                        argv, path, answers, runtime, ctk, containerd))
        dropin = proxy_dropin(ctx, runtime)
        if dropin is not None:
            actions += [dropin, C.RunIf("proxy-reload", "systemctl daemon-reload (systemd reads the drop-in)",
                                        ["systemctl", "daemon-reload"], done=lambda c: _dropin_live(c, dropin, "proxy-reload"))]
        actions.append(plat.restart(ctx, "restart-runtime", f"restart {runtime}", runtime,
                                    done=lambda c: _runtime_live(c, runtime, answers, path) and _dropin_live(c, dropin, "restart-runtime"),
                                    disruptive=f"restarts {runtime}: its running containers stop"
                                    + (" (restart policies bring some back)" if runtime == "docker" else "")))
        if runtime == "docker":
            image = self.test_image(ctx, answers, pulled=True)
            ctx.plan_data["images"] = [image]  # what the check pulls (gpuwizard bundle saves it)
            actions += C.load_images(ctx, [image])
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
        return ["docker", "run", "--rm", "--gpus", "all", self.test_image(ctx, answers), "nvidia-smi"]

    def test_image(self, ctx: StepContext, answers: ContainerAnswers, *, pulled: bool = False) -> str:
        """The check's image as written in the answers or chosen for the driver; ``pulled``: the
        reference pulled (before an offline bundle's copy replaces it)."""
        now = C.driver_seen(ctx)
        image = answers.test_image or ctx.net.image(default_test_image(now.get("cuda_version"), ctx.facts["host"]))
        return image if pulled else ctx.net.loaded(image)

    def checks(self, ctx: StepContext, answers: ContainerAnswers) -> list[str]:
        return [] if answers.runtime == "containerd" else ["$ " + C.cmd(self.test_argv(ctx, answers))]

    def verify(self, ctx: StepContext, answers: ContainerAnswers) -> str:
        if answers.runtime == "containerd":
            result = ctx.host.runner.probe(["systemctl", "is-active", "containerd"])
            if not (result and result.ok):
                raise StepFailed("containerd is not running after the restart: see `journalctl -u containerd`")
            version = probe_version(ctx.host, ["containerd", "--version"], P.parse_containerd_version)
            cfg = read_containerd_config(ctx.host.read_text, ctx.host.glob, CONTAINERD_TOML, version)
            files = " + ".join(cfg.files) or "no configuration file"
            if not containerd_configured(cfg, answers):
                raise StepFailed(f"containerd's configuration ({files}) "
                                 + (f"cannot be read: {cfg.problem}" if cfg.problem else "has no nvidia runtime as asked"))
            return f"containerd runs with the nvidia runtime ({files})"
        docker, _problem = probe_docker(ctx.host)  # the daemon as restarted: what it loaded
        missing = (docker or {}).get("missing_runtimes") or []
        if "nvidia" in missing:
            raise StepFailed("Docker runs with the nvidia runtime configured but its binary (nvidia-container-runtime) "
                             "is not found on PATH: containers using it fail. Install it with "
                             "`apt-get install -y nvidia-container-toolkit` (dnf on RHEL), or correct the runtime's "
                             f"path in {DAEMON_JSON}, then `systemctl restart docker`")
        argv = self.test_argv(ctx, answers)
        image = argv[-2]
        result = ctx.host.runner.run(argv, timeout=900)
        if not result.ok:
            # the daemon's error, not the CLI's trailer ("See 'docker run --help'.")
            error = P.docker_cli_error(result.stderr or result.stdout)
            raise StepFailed(f"`{C.cmd(argv)}` failed (exit {result.rc}): {error or 'no output'}")
        table = P.parse_smi_table(result.stdout)
        names = [g.name for g in table.gpus] if table else []
        expected = len(ctx.facts.get("gpus") or [])
        if not names or (expected and len(names) < expected):
            raise StepFailed(f"`{C.cmd(argv)}` shows {len(names)} GPU(s), expected {expected}")
        return f"docker run --gpus all {image} nvidia-smi sees {len(names)} GPU(s): {', '.join(names)}"


def proxy_dropin(ctx: StepContext, runtime: str) -> A.WriteFile | None:
    """The answer file's proxy for the runtime's service: a systemd drop-in setting HTTP_PROXY,
    HTTPS_PROXY and NO_PROXY (Docker's docs, "Configure the daemon with systemd": the daemon pulls
    images itself and reads no shell's environment). None without ``proxy:`` or with
    ``proxy.services: false``."""
    proxy = ctx.net.proxy
    if proxy is None or not proxy.services:
        return None
    env = ctx.net.env()
    lines = [f'Environment="{name}={env[name]}"' for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY") if name in env]
    if not lines:
        return None
    path = f"/etc/systemd/system/{runtime}.service.d/http-proxy.conf"
    content = "# written by gpuwizard (the answer file's proxy:); gpuwizard undo removes it\n[Service]\n" + "\n".join(lines) + "\n"
    return A.WriteFile("proxy-dropin", f"give {runtime} the proxy ({path})", path, content, mode=0o644, backup=True,
                       then=(("systemctl", "daemon-reload"), ("systemctl", "restart", runtime)))


def _dropin_live(ctx: StepContext, dropin: A.WriteFile | None, after: str) -> bool:
    """The proxy drop-in, where there is one, is in place and was not just written, or ``after`` (the
    reload, the restart) has run since in this run."""
    if dropin is None:
        return True
    if ctx.planning:
        return ctx.read_text(dropin.path) == dropin.content
    written = ctx.done_this_run(dropin.id)
    return ctx.host.read_text(dropin.path) == dropin.content and (not written or ctx.done_this_run(after))


DOCKER_RUNTIMES = ["docker", "info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}"]  # what the daemon runs with


def _runtime_live(ctx: StepContext, runtime: str, answers: ContainerAnswers, path: str) -> bool:
    """Does the running daemon already use the configuration (so a restart would change nothing)?"""
    if runtime == "docker":
        result = ctx.host.runner.probe(DOCKER_RUNTIMES)
        if not result or not result.ok:
            return False
        runtimes, _, default = result.stdout.strip().partition("|")
        return '"nvidia"' in runtimes and (not answers.set_as_default or default == "nvidia")
    record = ctx.action_record("restart-runtime") or {}
    files = read_containerd_config(ctx.host.read_text, ctx.host.glob, path).files  # config.toml and its imports
    try:
        mtime = max(ctx.host.path(f).stat().st_mtime for f in files) if files else None
    except OSError:
        return False
    if mtime is None:
        return False
    return record.get("outcome") == "changed" and record.get("at", 0) >= mtime
