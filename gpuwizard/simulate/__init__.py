"""Simulated hosts: a sandbox root directory plus simulated command-line tools on PATH.

A simulated host is not a second code path. ``prepare(profile)`` makes a sandbox root populated from
a host profile (gpuwizard/assets/hosts/<profile>.yaml) and a bin dir of tiny Python scripts that
behave like nvidia-smi, lspci, docker, kubectl, ... against the sandbox's world state. The wizard
runs with ``--root <sandbox>`` and PATH = ``sandbox.bin_dir`` only, so its real runner spawns real
subprocesses and does real file edits under the sandbox.

Public API::

    from gpuwizard.simulate import prepare, list_profiles, UnknownProfile, SandboxError, Sandbox
    sb = prepare("t4-bare")            # new temp dir (gpuwizard-sim-*)
    sb = prepare("t4-bare", root)      # empty/new dir: create; same-profile sandbox: reuse
    env = {**os.environ, **sb.env()}   # PATH=<bin dir>, GPUWIZARD_SIM_ROOT=<root>
    sb.world(); sb.calls(); sb.mutate(fn); sb.run([...])

Modules: ``world`` (state, locking, derived host files, tool presence; stdlib-only),
``tools`` (the simulated tools; stdlib-only, imported by every tool at start-up),
``profile`` (profile schema, YAML loading, validation; its docstring documents the schema),
``sandbox`` (prepare / Sandbox).

This package's __init__ imports nothing eagerly: the tools import ``gpuwizard.simulate.tools`` under
``python -S`` and must not pay for yaml.
"""
from __future__ import annotations

__all__ = ["prepare", "list_profiles", "Sandbox", "SandboxError", "UnknownProfile", "ProfileError",
           "sync_host_files"]


def __getattr__(name):
    if name in ("prepare", "list_profiles", "Sandbox", "SandboxError", "UnknownProfile", "ProfileError"):
        from gpuwizard.simulate import sandbox
        return getattr(sandbox, name)
    if name == "sync_host_files":
        from gpuwizard.simulate.world import sync_host_files
        return sync_host_files
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
