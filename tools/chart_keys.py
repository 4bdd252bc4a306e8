#!/usr/bin/env python3
"""Generate the chart key data gpuwizard ships: per chart release, every key of that release's real
``values.yaml`` (flattened, with its default) and the ClusterPolicy fields its CRD marks deprecated.

Source: ``../shared/upstream/charts/<chart>/<tag>/`` (the released charts' own files, see
``../shared/upstream/README.md``). Output: ``gpuwizard/assets/charts/keys/<chart>-<version>.json``,
one file per release; ``<version>`` is the chart version Helm reports (``gpu-operator-v25.10.0``,
``hami-2.10.0``). Keys are dotted paths; a dot inside a key (``nvidia.com/gpu.workload``) is
written ``\\.`` as in ``helm --set``. Leaves are scalars, lists and empty maps, so the tree is
rebuilt exactly from the keys.

    python tools/chart_keys.py                 # regenerate into the package
    python tools/chart_keys.py --out DIR       # into DIR (the test compares it with the package)
    python tools/chart_keys.py --check         # exit 1 when the package differs from a regeneration
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from the checkout
from gpuwizard.steps.kube import escape_key as escape  # noqa: E402 — the key format's one home
from gpuwizard.steps.kube import flatten  # noqa: E402

SOURCE = ROOT.parent / "shared" / "upstream" / "charts"
DEST = ROOT / "gpuwizard" / "assets" / "charts" / "keys"
CHARTS = ("gpu-operator", "hami")


def chart_version(tag: str, meta: dict[str, Any]) -> str:
    """The version Helm reports for the release cut at ``tag``: the tag, spelt as the chart spells its
    versions (gpu-operator with a "v", HAMi without). Chart.yaml in git is not it: gpu-operator keeps
    the placeholder ``v1.0.0-devel`` (its release pipeline stamps the tag) and HAMi's v2.6.1 and
    v2.7.1 tags still say 2.6.0 and 2.7.0."""
    spelt = str(meta.get("version") or "v")
    return tag if spelt.startswith("v") else tag.removeprefix("v")


def deprecated_fields(crd_path: Path) -> dict[str, str]:
    """ClusterPolicy spec fields whose CRD description says they are deprecated (dotted, as values keys)."""
    if not crd_path.exists():
        return {}
    doc = yaml.safe_load(crd_path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}

    def walk(node: dict[str, Any], path: list[str]) -> None:
        for name, sub in (node.get("properties") or {}).items():
            text = " ".join(str(sub.get("description") or "").split())
            if text.lower().startswith("deprecated"):
                out[".".join(path + [escape(name)])] = text
            walk(sub, path + [escape(name)])

    for version in doc.get("spec", {}).get("versions") or []:
        spec = ((version.get("schema") or {}).get("openAPIV3Schema") or {}).get("properties", {}).get("spec") or {}
        walk(spec, [])
    return out


def generate(source: Path = SOURCE) -> dict[str, str]:
    """file name -> content, for every chart release under ``source``."""
    files: dict[str, str] = {}
    for chart in CHARTS:
        base = source / chart
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if (p / "values.yaml").exists()):
            raw = (folder / "values.yaml").read_bytes()
            values = yaml.safe_load(raw) or {}
            meta_path = folder / "Chart.yaml"
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
            version = chart_version(folder.name, meta or {})
            doc = {
                "chart": chart,
                "version": version,
                "tag": folder.name,
                "source": f"charts/{chart}/{folder.name}/values.yaml",
                "chart_yaml_version": str((meta or {}).get("version") or ""),
                "sha256": hashlib.sha256(raw).hexdigest(),
                "keys": flatten(values, key_text=escape),
                "deprecated": deprecated_fields(folder / "nvidia.com_clusterpolicies.yaml"),
            }
            files[f"{chart}-{version}.json"] = json.dumps(doc, sort_keys=True, indent=0, separators=(",", ":"),
                                                          ensure_ascii=False) + "\n"
    return files


def write(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    p.add_argument("--out", type=Path, default=DEST)
    p.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = p.parse_args(argv)
    if not args.source.is_dir():
        print(f"no chart sources at {args.source}", file=sys.stderr)
        return 2
    files = generate(args.source)
    if args.check:
        have = {f.name: f.read_text(encoding="utf-8") for f in args.out.glob("*.json")}
        diff = sorted(set(have) ^ set(files) | {n for n in files if have.get(n) != files[n]})
        for name in diff:
            print(f"differs: {name}", file=sys.stderr)
        return 1 if diff else 0
    write(args.out, files)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
