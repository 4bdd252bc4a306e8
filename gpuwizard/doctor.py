"""``gpuwizard doctor``: what is installed and healthy, layer by layer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

LAYERS = ("host", "gpus", "driver", "cuda_toolkit", "container_toolkit", "docker", "kubernetes", "gpu_operator", "hami")


def document(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``doctor --json`` document: the contract's layers first, then extras."""
    doc = {key: facts.get(key) for key in LAYERS}
    doc["gpu_source"] = facts.get("gpu_source")
    doc["driver_status"] = facts.get("driver_status")
    doc["tools"] = facts.get("tools", {})
    doc["problems"] = facts.get("problems", {})
    if "drift" in facts:  # with a state file: what the wizard set that has changed since (gpuwizard/undo.py)
        doc["drift"] = facts["drift"]
    return doc


def node_line(n: Mapping[str, Any]) -> str:
    """``gpu-worker-1 (worker, k3s): containerd://2.0.5, Ubuntu 24.04.1 LTS, kernel 6.8.0-51; GPUs: Tesla-T4 × 1,
    driver 565.57.01``."""
    what = ", ".join([*(n.get("roles") or []), n.get("distribution") or "?", *(["this host"] if n.get("this_host") else [])])
    parts = [p for p in (n.get("runtime"), n.get("os_image"), f"kernel {n['kernel']}" if n.get("kernel") else None) if p]
    if n.get("gpu_product") or n.get("gpu_count"):
        gpus = f"GPUs: {n.get('gpu_product') or 'NVIDIA'} × {n.get('gpu_count') or '?'}"
    elif n.get("gpu_present"):
        gpus = "GPUs: present (no GPU Feature Discovery labels)"
    else:
        gpus = "GPUs: none seen (no NFD/GFD labels, no nvidia.com/gpu capacity)"
    driver = "".join(f", driver {v}" for v in (n.get("driver_version"), n.get("driver")) if v)
    taint = f"; taints {', '.join(n['taints'])}" if n.get("taints") else ""
    extra = ""
    if n.get("toolkit"):
        extra += f"; NVIDIA toolkit from {n['toolkit']}"
    if n.get("validated") is not None:
        extra += f"; gpu-operator validation {'passed' if n['validated'] else 'not passed'}"
    if n.get("device_plugins"):
        extra += f"; nvidia.com/gpu from {', '.join(n['device_plugins'])}"
    if n.get("hami_registered") is not None:
        extra += f"; {n['hami_registered']} GPU(s) registered with HAMi"
    return f"{n.get('name')} ({what}): {', '.join(parts) or 'no node info'}; {gpus}{driver}{taint}{extra}"


def rows(facts: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(layer, status, details) — status is ok / missing / problem."""
    problems = facts.get("problems", {})
    out: list[tuple[str, str, str]] = []
    h = facts["host"]
    sb = {True: "Secure Boot on", False: "Secure Boot off", None: "Secure Boot unknown"}[h.get("secure_boot")]
    no_modules = problems.get("modules")
    host_status = "problem" if h.get("nouveau_loaded") or h.get("secure_boot") or no_modules else "ok"
    nouveau = f"nouveau {'loaded' if h.get('nouveau_loaded') else 'not loaded'}"
    out.append(
        (
            "host",
            host_status,
            f"{h.get('pretty_name') or h.get('os') or 'unknown OS'}, kernel {h.get('kernel') or '?'}, {h.get('arch') or '?'}, "
            f"{sb}, " + (f"nouveau built in; {no_modules}" if no_modules and h.get("nouveau_loaded") else no_modules or nouveau),
        )
    )
    gpus = facts.get("gpus") or []
    if gpus:
        for g in gpus:
            mem = f", {g['memory_mib']} MiB" if g.get("memory_mib") else ""
            mig = f", MIG {g['mig']}" if g.get("mig") and g.get("mig") not in ("Disabled", "N/A") else ""
            out.append(("gpus" if g is gpus[0] else "", "ok", f"{g['index']}: {g['name']}{mem} at {g.get('pci_bus_id') or '?'}{mig}"))
    else:
        out.append(("gpus", "missing", "no NVIDIA GPU found"))
    d = facts.get("driver")
    if d:
        out.append(("driver", "ok", f"{d.get('version')} (supports CUDA ≤ {d.get('cuda_version') or '?'})"))
    else:
        out.append(("driver", "problem" if "driver" in problems else "missing", problems.get("driver", "not installed")))
    c = facts.get("cuda_toolkit")
    if c:
        where = c.get("path") or "?"
        note = "" if c.get("on_path", True) else " (not on PATH)"
        out.append(("cuda_toolkit", "ok", f"{c['version']} at {where}{note}"))
    else:
        out.append(("cuda_toolkit", "missing", "nvcc not found"))
    ct = facts.get("container_toolkit")
    out.append(("container_toolkit", "ok" if ct else "missing", f"nvidia-ctk {ct['version']}" if ct else "nvidia-ctk not found"))
    dk = facts.get("docker")
    if dk:
        from . import parsers as P  # here: the wizard's first frame shows no facts, and skips its regexes

        status = "problem" if "docker" in problems or not dk.get("running") else "ok"
        # runtimes and versions as the daemon reports them (docker info / docker version); the
        # daemon's own runc shims are not listed
        if dk.get("running"):
            extra = [r for r in dk.get("runtimes") or [] if r not in P.DOCKER_BUILTIN_RUNTIMES]
            server = dk.get("server_version")
            same = server and dk.get("version") and P.parse_docker_version("Docker version " + server) == dk["version"]
            where = "running" if same else f"server {server or '?'}, running"
            detail = f"{dk.get('version')} ({where}); runtimes: {', '.join(extra) or 'none extra'}"
        else:
            detail = f"{dk.get('version')} (daemon not running: its runtimes are unknown)"
        if dk.get("default_runtime") and dk["default_runtime"] not in P.DOCKER_BUILTIN_RUNTIMES:
            detail += f"; default {dk['default_runtime']}"
        if "docker" in problems:
            detail += f"; {problems['docker']}"
        out.append(("docker", status, detail))
    else:
        out.append(("docker", "missing", "docker not found"))
    k = facts.get("kubernetes")
    if k:
        nodes = k.get("nodes") or []
        node_text = ", ".join(
            f"{n['name']}{'' if n.get('ready') else ' (NotReady)'} gpu={n.get('gpu_capacity') if n.get('gpu_capacity') is not None else 0}"
            for n in nodes
        )
        detail = f"context {k['context']}, server {k.get('server_version') or '?'}; nodes: {node_text or 'none'}"
        if k.get("runtime_classes"):
            detail += "; RuntimeClasses: " + ", ".join(f"{c['name']} (handler {c['handler']})" for c in k["runtime_classes"])
        if "kubernetes" in problems:
            detail += f"; {problems['kubernetes']}"
        out.append(("kubernetes", "problem" if "kubernetes" in problems else "ok", detail))
        for n in nodes:  # each node as the cluster reports it: what the cluster decisions rest on
            out.append(("", "ok" if n.get("ready") else "problem", node_line(n)))
    else:
        out.append(("kubernetes", "missing", "no kube context"))
    for key in ("gpu_operator", "hami"):
        rel = facts.get(key)
        if rel:
            out.append((key, "ok" if rel.get("status") == "deployed" else "problem", f"release {rel['release']} in {rel['namespace']}, chart {rel['chart_version']}, {rel['status']}"))
        else:
            out.append((key, "missing", "not installed"))
    drift = facts.get("drift")
    if drift is not None:
        if not drift:
            out.append(("drift", "ok", "what gpuwizard set is as it set it"))
        for d in drift:
            out.append(("drift", "problem", f"[{d['step']}] {d['what']}; re-apply: {d['reapply']}"))
    return out


def render_text(facts: Mapping[str, Any], stream: IO[str]) -> None:
    for layer, status, detail in rows(facts):
        stream.write(f"{layer:<18} {status:<8} {detail}\n")


def render_rich(facts: Mapping[str, Any], stream: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="gpuwizard doctor", expand=False)
    table.add_column("layer", style="bold")
    table.add_column("status")
    table.add_column("details", overflow="fold")
    colors = {"ok": "green", "missing": "yellow", "problem": "red"}
    for layer, status, detail in rows(facts):
        table.add_row(layer, f"[{colors[status]}]{status}[/]", detail)
    Console(file=stream).print(table)


def render_json(facts: Mapping[str, Any], stream: IO[str]) -> None:
    stream.write(json.dumps(document(facts), indent=2) + "\n")
