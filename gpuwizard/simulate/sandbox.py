"""prepare(): make (or reuse) a sandbox root for a host profile."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gpuwizard.simulate import world as W
from gpuwizard.simulate.profile import (  # noqa: F401  (re-exported)
    ProfileError,
    SandboxError,
    UnknownProfile,
    build_world,
    list_profiles,
    load_profile,
)


@dataclass
class Sandbox:
    root: Path
    profile: str
    bin_dir: Path
    created: bool

    def env(self) -> dict[str, str]:
        """Environment additions for subprocesses: PATH is the sandbox bin dir ONLY."""
        return {"PATH": str(self.bin_dir), "GPUWIZARD_SIM_ROOT": str(self.root)}

    def world(self) -> dict:
        return W.load_world(self.root)

    def calls(self) -> list[dict]:
        path = Path(W.sim_dir(self.root)) / W.CALLS_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    # -- conveniences for tests and the integrator (not needed by the wizard itself) -------------
    def mutate(self, fn) -> dict:
        """Apply fn(world) under the world lock, save, and resync host files and bin/."""
        return W.mutate_world(self.root, fn)

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """Run a command with the sandbox env (PATH = bin dir only), capturing text output."""
        env = {**os.environ, **self.env(), **kw.pop("env", {})}
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(argv, env=env, **kw)

    def host_path(self, path: str) -> Path:
        return Path(W.host_path(self.root, path))


def _precompile(root: Path) -> None:
    """Byte-compile the modules every tool imports into the sandbox's pycache prefix, so even the
    first tool run skips compilation (tools run with PYTHONDONTWRITEBYTECODE possibly set)."""
    import importlib.util
    import py_compile

    pkg = Path(W.package_parent()) / "gpuwizard"
    files = [pkg / "__init__.py", pkg / "simulate" / "__init__.py", pkg / "simulate" / "world.py",
             pkg / "simulate" / "tools.py"]
    old = sys.pycache_prefix
    try:
        sys.pycache_prefix = W.pycache_dir(root)
        for f in files:
            if f.is_file():
                cfile = importlib.util.cache_from_source(str(f))
                try:
                    if os.stat(cfile).st_mtime >= f.stat().st_mtime:
                        continue  # reused sandbox: already compiled
                except OSError:
                    pass
                try:
                    py_compile.compile(str(f), cfile=cfile, doraise=True,
                                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
                except (py_compile.PyCompileError, OSError):
                    pass  # the tool will compile it itself
    finally:
        sys.pycache_prefix = old


def _read_marker(root: Path) -> str | None:
    try:
        return (root / W.SIM_DIR / W.PROFILE_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_seed_files(root: Path, data: dict) -> None:
    docker = data.get("docker") or {}
    if docker.get("daemon_json") is not None:
        p = root / "etc/docker/daemon.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(docker["daemon_json"], indent=4) + "\n", encoding="utf-8")
    for path, content in (data.get("files") or {}).items():
        p = root / str(path).lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content, encoding="utf-8")


def _populate(root: Path, name: str, data: dict) -> None:
    sim = root / W.SIM_DIR
    (sim / W.BIN_DIR).mkdir(parents=True, exist_ok=True)
    world = build_world(name, data)
    _write_seed_files(root, data)
    W.boot(root, world)
    # explicit post-boot state from the profile
    drv_in = data.get("driver") or {}
    if "modules" in data:
        world["modules"] = list(data["modules"])
        if world.get("driver"):
            world["driver"]["loaded_version"] = world["driver"]["version"] if "nvidia" in world["modules"] else None
    if world.get("driver") and "loaded_version" in drv_in:
        world["driver"]["loaded_version"] = drv_in["loaded_version"]
        if drv_in["loaded_version"] is None:
            world["modules"] = [m for m in world["modules"] if m not in W.NVIDIA_MODULES]
        elif "nvidia" not in world["modules"]:
            world["modules"] += W.NVIDIA_MODULES
    if (data.get("host") or {}).get("reboot_required"):
        world["host"]["reboot_required"] = True
    (sim / W.CALLS_FILE).touch()
    with W.lock(root):
        W.save_world(root, world)
        W.sync_host_files(root, world)
    # the marker goes last: a half-made sandbox is not mistaken for a finished one
    (sim / W.PROFILE_FILE).write_text(name + "\n", encoding="utf-8")


def prepare(profile: str, root: Path | str | None = None) -> Sandbox:
    """Create (or reuse) the sandbox for `profile`. See the package docstring."""
    if profile not in list_profiles():
        raise UnknownProfile("unknown host profile %r; known profiles: %s" % (profile, ", ".join(list_profiles())))
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="gpuwizard-sim-"))
    root = Path(root).absolute()
    if root.exists() and not root.is_dir():
        raise SandboxError("sandbox root %s exists and is not a directory" % root)
    created = True
    if root.exists() and any(root.iterdir()):
        marker = _read_marker(root)
        if marker is None:
            raise SandboxError("refusing to use %s as a simulated host: it is not empty and is not a gpuwizard "
                               "sandbox (no %s/%s); pass an empty or new directory"
                               % (root, W.SIM_DIR, W.PROFILE_FILE))
        if marker != profile:
            raise SandboxError("%s is a sandbox of profile %r, not %r; use another directory or remove it"
                               % (root, marker, profile))
        created = False
        with W.lock(root):
            world = W.load_world(root)
            W.sync_host_files(root, world)  # bin scripts now point at this interpreter
        _precompile(root)
    else:
        data = load_profile(profile)
        root.mkdir(parents=True, exist_ok=True)
        _populate(root, profile, data)
        _precompile(root)
    return Sandbox(root=root, profile=profile, bin_dir=Path(W.bin_dir(root)), created=created)


__all__ = ["Sandbox", "SandboxError", "UnknownProfile", "ProfileError", "prepare", "list_profiles"]

if __name__ == "__main__":  # python -m gpuwizard.simulate.sandbox PROFILE [ROOT]
    sb = prepare(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    print(sb.root)
