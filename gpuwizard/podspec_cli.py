"""``gpuwizard podspec``: the HAMi pod spec builder on the command line.

    gpuwizard podspec --name gpu-pod --image ubuntu:18.04 --container ubuntu-container \\
        --gpus 1 --gpumem 3000 --gpucores 30 -- bash -c "sleep 86400"

Everything after ``--`` is the container's command (as with ``kubectl run … --command --``).
The spec is checked against the detected cards (``--simulate`` works) and refused with every
problem listed (exit 2, nothing written) when it cannot work on them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK

if TYPE_CHECKING:
    from .cli import Session


def add_parser(subs: Any, global_options: Callable[..., object]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subs.add_parser(
        "podspec",
        help="build a HAMi pod spec (nvidia.com/gpu, gpumem, gpucores) checked against the detected cards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--name", required=True, help="Pod / Deployment name")
    p.add_argument("--namespace", default="default")
    p.add_argument("--kind", choices=["Pod", "Deployment"], default="Pod")
    p.add_argument("--replicas", type=int, help="Deployment replicas")
    p.add_argument("--container", default="main", help="container name (default: main)")
    p.add_argument("--image", required=True)
    p.add_argument("--args", dest="args_", nargs="+", metavar="ARG", help="container args")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--gpus", type=int, default=1, help="physical GPUs (HAMi vGPUs are slices of distinct cards)")
    mem = p.add_mutually_exclusive_group()
    mem.add_argument("--gpumem", type=int, metavar="MIB", help="GPU memory per card, MiB")
    mem.add_argument("--gpumem-percentage", type=int, metavar="PCT", help="GPU memory per card, percent 0-100")
    p.add_argument("--gpucores", type=int, metavar="PCT", help="compute per card, percent 0-100 (100 = exclusive)")
    p.add_argument("--gpu-type", action="append", default=[], help="only cards whose name contains this (repeatable)")
    p.add_argument("--avoid-gpu-type", action="append", default=[])
    p.add_argument("--gpu-uuid", action="append", default=[])
    p.add_argument("--avoid-gpu-uuid", action="append", default=[])
    p.add_argument("--policy", choices=["binpack", "spread", "mutex"], help="hami.io/gpu-scheduler-policy")
    p.add_argument("--node-selector", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--restart-policy", choices=["Always", "OnFailure", "Never"])
    p.add_argument("--split-count", type=int, default=10, help="HAMi devicePlugin.deviceSplitCount (default 10)")
    p.add_argument("--memory-scaling", type=float, default=1.0, help="HAMi devicePlugin.deviceMemoryScaling (default 1)")
    p.add_argument("--no-detect", action="store_true", help="check the static rules only, without detecting the cards")
    p.add_argument("-o", "--output", metavar="FILE", help="write the YAML to FILE (default: stdout)")
    p.add_argument("--apply", action="store_true", help="kubectl apply it")
    p.add_argument("--check", action="store_true", help="after --apply: exec nvidia-smi in the pod and report the memory it sees")
    p.add_argument("container_command", nargs="*", metavar="COMMAND", help="after --: the container command")
    global_options(p, sub=True, output=False)
    return p


def _pairs(values: list[str], what: str) -> tuple[dict[str, str], list[str]]:
    out, bad = {}, []
    for v in values:
        if "=" not in v:
            bad.append(f"{what}: expected KEY=VALUE, got {v!r}")
        else:
            k, val = v.split("=", 1)
            out[k] = val
    return out, bad


def spec_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    env, bad_env = _pairs(args.env, "--env")
    selector, bad_sel = _pairs(args.node_selector, "--node-selector")
    spec: dict[str, Any] = {
        "kind": args.kind,
        "name": args.name,
        "namespace": args.namespace,
        "container": args.container,
        "image": args.image,
        "gpus": args.gpus,
    }
    optional = {
        "replicas": args.replicas,
        "command": args.container_command or None,
        "args": args.args_,
        "env": env or None,
        "gpumem": args.gpumem,
        "gpumem_percentage": args.gpumem_percentage,
        "gpucores": args.gpucores,
        "gpu_type": args.gpu_type or None,
        "avoid_gpu_type": args.avoid_gpu_type or None,
        "gpu_uuids": args.gpu_uuid or None,
        "avoid_gpu_uuids": args.avoid_gpu_uuid or None,
        "scheduler_policy": args.policy,
        "node_selector": selector or None,
        "restart_policy": args.restart_policy,
    }
    spec.update({k: v for k, v in optional.items() if v is not None})
    return spec, bad_env + bad_sel


def run(args: argparse.Namespace, session: Session, out: IO[str], err: IO[str]) -> int:
    from . import podspec as PS  # pydantic models: imported only when this command runs
    from .host import atomic_write
    from .parsers import parse_smi_table
    from .steps.podspec import cluster_facts

    spec, bad = spec_from_args(args)
    if args.check and not args.apply:
        bad.append("--check needs --apply (it looks inside the running pod)")
    if bad:
        for line in bad:
            err.write(f"gpuwizard: {line}\n")
        return EXIT_INVALID
    facts = None
    if not args.no_detect:
        from .detect import detect

        facts = cluster_facts(detect(session.host), {"split_count": args.split_count, "memory_scaling": args.memory_scaling})
    result = PS.make(spec, facts)
    for note in result.notes:
        err.write(f"note: {note}\n")
    for warning in result.warnings:
        err.write(f"warning: {warning}\n")
    if not result.ok:
        err.write(f"gpuwizard: the pod spec is refused ({len(result.errors)} problem{'s' if len(result.errors) != 1 else ''}); nothing was written\n")
        for e in result.errors:
            err.write(f"  {e}\n")
        return EXIT_INVALID
    assert result.spec is not None and result.yaml is not None  # an accepted spec comes with its YAML
    if args.output:
        atomic_write(Path(args.output), result.yaml, 0o644)
        err.write(f"wrote {args.output}\n")
    else:
        out.write(result.yaml)
    if not args.apply:
        return EXIT_OK
    runner = session.host.runner
    applied = runner.run(["kubectl", "apply", "-f", "-"], stdin=result.yaml, timeout=60)
    if not applied.ok:
        err.write(f"gpuwizard: kubectl apply failed (exit {applied.rc}): {' '.join(applied.tail[-3:])}\n")
        return EXIT_FAILED
    err.write(applied.stdout)
    if not args.check:
        return EXIT_OK
    name, ns = result.spec.name, result.spec.namespace
    target = f"pod/{name}" if result.spec.kind == "Pod" else f"deployment/{name}"
    ready = runner.run(["kubectl", "wait", "-n", ns, "--for=condition=Ready" if result.spec.kind == "Pod" else "--for=condition=Available", target, "--timeout=180s"], change=False, timeout=200)
    if not ready.ok:
        err.write(f"gpuwizard: {target} did not become ready: {' '.join(ready.tail[-3:])}\n")
        return EXIT_FAILED
    seen = runner.run(["kubectl", "exec", "-n", ns, target, "--", "nvidia-smi"], change=False, timeout=60)
    table = parse_smi_table(seen.stdout) if seen.ok else None
    if not table or not table.gpus:
        err.write(f"gpuwizard: nvidia-smi in {target} did not answer: {' '.join(seen.tail[-3:])}\n")
        return EXIT_FAILED
    for gpu in table.gpus:
        out.write(f"{target} sees GPU {gpu.index} {gpu.name}: {gpu.memory_total_mib} MiB\n")
    wanted = result.spec.gpumem
    if wanted is not None and any(g.memory_total_mib != wanted for g in table.gpus):
        err.write(f"gpuwizard: the pod sees a memory limit other than the {wanted} MiB asked for: is HAMi's device plugin serving this node?\n")
        return EXIT_FAILED
    return EXIT_OK
