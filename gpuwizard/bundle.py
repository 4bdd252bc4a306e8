"""Offline bundles: ``gpuwizard bundle --answers F --out DIR`` on a connected machine, ``gpuwizard
--bundle DIR --answers F`` on the host that has no network.

What a bundle holds is read off the plan of the answer file, as the URL check reads it
(gpuwizard/reach.py): every URL the plan's actions fetch (runfiles, kind/kubectl/helm and their
published checksums, NVIDIA's repository key and cuda-keyring package), those of actions already
done on this machine included (what it already has may not be planned at all: a kind on its PATH is
not installed, so not bundled); and every chart release the plan installs or upgrades through (the archive the repository's
``index.yaml`` names for it, as helm fetches it, checked against the index's digest), with an
``index.yaml`` per chart repository. Files are
fetched through the runner with curl (the proxy and the mirrors of the answer file apply), into
gpuwizard's cache first (a cut download resumes there), then copied into DIR with
``manifest.json``: each file's path, size, sha256 and the URL it stands for.

Layout::

    DIR/manifest.json
    DIR/files/<scheme>/<host>/<path>     one per URL, under the URL's own host and path
    DIR/charts/<alias>/index.yaml        the repository's charts, as ``helm repo index`` writes them
    DIR/charts/<alias>/<chart>-<version>.tgz

Installing from it: every file's sha256 is checked before anything runs (a missing or changed file
is refused, exit 2); the plan refuses a bundle built on another architecture, or, for the steps
that still install packages, another distribution or release (:func:`mismatch`: the manifest's
``host`` against this host's facts); then DIR is served on 127.0.0.1 for the length of the run, and each URL of the
bundle and each chart repository is fetched from there (:class:`gpuwizard.network.Network`'s local
map, applied after the answer file's mirrors). A URL the plan needs that the bundle lacks is named
by the URL check at plan time.

    DIR/images/<name_tag>.tar            `docker save` of each image the host's Docker pulls (the
                                         check image, the Kind node), by its tag
    DIR/packages/apt/                    the distribution packages the plan installs, with their
                                         dependencies, as a flat APT repository (gpuwizard/packages.py)

    DIR/images/<name_tag>.tar            also each image the cluster pulls (the charts' workloads and
                                         operands, gpuwizard/images.py; the check pods'), loaded into a
                                         Kind cluster's nodes before use (steps/kube.py cluster_images)

Not in a bundle yet: dnf hosts' packages; the driver container's image (its tag names the node's
operating system; said when bundling).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from . import __version__
from .download import sha256_of
from .errors import GpuwizardError, InvalidInput, ToolMissing
from .packages import APT_DIR

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine, PlannedStep

MANIFEST = "manifest.json"
STAGING = "/var/cache/gpuwizard/bundle"  # system path (under --root): where downloads land first


class BundleError(GpuwizardError):
    """An artifact could not be fetched while building a bundle."""


@dataclass
class Chart:
    alias: str
    url: str  # the repository's URL (as the plan adds it)
    name: str
    versions: list[str] = field(default_factory=list)


def charts(planned: list[PlannedStep]) -> list[Chart]:
    """The chart releases the plan installs or upgrades through, as the steps record them
    (``plan_data["charts"]``, steps/kube.py ``chart_ref``)."""
    found: dict[tuple[str, str], Chart] = {}
    for p in planned:
        for need in p.data.get("charts") or []:
            chart = found.setdefault((need["alias"], need["chart"]), Chart(need["alias"], need["repository"], need["chart"]))
            if need["version"] not in chart.versions:
                chart.versions.append(need["version"])
    return list(found.values())


def url_path(url: str) -> str:
    """Where a URL's file lives in a bundle: files/<scheme>/<host>/<path>."""
    parts = urllib.parse.urlsplit(url)
    path = PurePosixPath(parts.path.lstrip("/"))
    if ".." in path.parts or not path.parts:
        raise InvalidInput(f"{url}: cannot be kept in a bundle (no file name, or a '..' in its path)")
    return f"files/{parts.scheme}/{parts.netloc}/{path}"


def build(engine: Engine, planned: list[PlannedStep], out: Path, answers_path: str, say: Any) -> dict[str, Any]:
    """Fetch every artifact of the plan into ``out`` and write its manifest; returns the manifest."""
    from .reach import urls

    runner = engine.host.runner
    stage = engine.host.path(STAGING)
    stage.mkdir(parents=True, exist_ok=True, mode=0o700)
    repos = charts(planned)
    indexes = {f"{c.url.rstrip('/')}/index.yaml" for c in repos}  # written below, for the charts kept
    needed = [u for u in urls(planned, done_too=True) if u not in indexes]  # for another host: done here or not
    files: dict[str, dict[str, Any]] = {}
    for url in needed:
        rel = url_path(url)
        staged = stage / rel
        staged.parent.mkdir(parents=True, exist_ok=True)
        if not staged.is_file():
            say(f"download {url}")
            _curl(runner, url, staged)
        files[rel] = {"url": url}
    by_alias: dict[str, list[Chart]] = {}
    for chart in repos:
        by_alias.setdefault(chart.alias, []).append(chart)
    for alias, kept in by_alias.items():
        repo_dir = f"charts/{alias}"
        (stage / repo_dir).mkdir(parents=True, exist_ok=True)
        upstream = _fetch_index(runner, kept[0].url, stage / repo_dir / "upstream-index.yaml", say)
        entries: dict[str, list[dict[str, Any]]] = {}
        for chart in kept:
            for version in chart.versions:
                rel = f"{repo_dir}/{chart.name}-{version}.tgz"
                entry = next((e for e in upstream.get(chart.name) or [] if str(e.get("version")) == version), None)
                if entry is None or not entry.get("urls"):
                    raise BundleError(f"chart {chart.name} {version} is not in {chart.url}/index.yaml")
                # what helm does: the first of the entry's urls, relative to the repository's URL
                url = urllib.parse.urljoin(chart.url.rstrip("/") + "/", str(entry["urls"][0]))
                if not (stage / rel).is_file():
                    say(f"download chart {chart.name} {version} ({url})")
                    _curl(runner, url, stage / rel)
                digest = sha256_of(stage / rel)
                if entry.get("digest") and entry["digest"] != digest:
                    (stage / rel).unlink()
                    raise BundleError(f"chart {chart.name} {version} from {url}: sha256 {digest}, the repository's "
                                      f"index says {entry['digest']}")
                files[rel] = {"chart": chart.name, "version": version, "repository": chart.url, "url": url}
                entries.setdefault(chart.name, []).append(
                    {"name": chart.name, "version": version, "urls": [f"{chart.name}-{version}.tgz"], "digest": digest})
        rel = f"{repo_dir}/index.yaml"  # Helm's index format, the archives beside it
        (stage / rel).write_text(yaml.safe_dump({"apiVersion": "v1", "entries": entries}, sort_keys=True))
        files[rel] = {"repository": kept[0].url, "alias": alias}
    files.update(_packages(engine, planned, stage, files, say))
    host_images = [img for p in planned for img in (p.data.get("images") or [])]
    pulled = [img for p in planned for img in (p.data.get("cluster_images") or [])]
    for gap in dict.fromkeys(u for p in planned for u in (p.data.get("cluster_images_unknown") or [])):
        say(f"not bundled: {gap}")
    for ref in dict.fromkeys(host_images + pulled):
        loaded = tagged(ref)
        rel = f"images/{_slug(loaded)}.tar"
        if not (stage / rel).is_file():
            say(f"docker pull {ref}")
            (stage / "images").mkdir(parents=True, exist_ok=True)
            _docker(runner, ["pull", ref])
            if loaded != ref:  # saved by its tag: `docker load` keeps no digest (the archive's sha256 stands for it)
                _docker(runner, ["tag", ref, loaded])
            _docker(runner, ["save", "-o", str(stage / (rel + ".part")), loaded])
            (stage / (rel + ".part")).rename(stage / rel)
        files[rel] = {"image": ref, "loaded_as": loaded, "pulled_by": "host" if ref in host_images else "cluster"}
    out.mkdir(parents=True, exist_ok=True)
    for rel, meta in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stage / rel, target)
        meta.update(sha256=sha256_of(target), size=target.stat().st_size)
    manifest = {"version": 1, "gpuwizard": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "answers": os.path.basename(answers_path), "answers_sha256": sha256_of(answers_path),
                "host": (engine.facts().get("host") or {}), "files": dict(sorted(files.items()))}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _packages(engine: Engine, planned: list[PlannedStep], stage: Path, files: dict[str, dict[str, Any]],
              say: Any) -> dict[str, dict[str, Any]]:
    """The distribution packages the plan installs, with their dependencies (gpuwizard/packages.py)."""
    from . import packages
    from .platform import for_host

    platform = for_host(engine.facts().get("host") or {})
    by_step = packages.wanted(platform, planned)
    if not by_step:
        return {}
    if platform.manager != "apt":
        names = [n for ns in by_step.values() for n in ns]
        say(f"not bundled: the {platform.manager} packages {' '.join(names)} (only APT hosts' packages are bundled "
            "yet); the host's own repositories must have them")
        return {}
    staged = {str(meta["url"]): stage / rel for rel, meta in files.items() if meta.get("url")}
    return packages.fetch_apt(engine, platform, by_step, stage, staged, say)


def tagged(ref: str) -> str:
    """The reference an image is saved and loaded as: its name and tag, the digest dropped (a digest
    alone: a tag made of it)."""
    name, _, digest = ref.partition("@")
    if not digest:
        return ref
    if ":" in name.rsplit("/", 1)[-1]:
        return name
    return f"{name}:gpuwizard-{digest.split(':', 1)[-1][:12]}"


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ref)


def _docker(runner: Any, args: list[str]) -> None:
    try:
        result = runner.run(["docker", *args], change=False, timeout=3600)
    except ToolMissing:
        raise BundleError("the images the plan pulls are saved with `docker pull` and `docker save`, and this "
                          "machine has no docker on its PATH: build the bundle on a machine with Docker") from None
    if not result.ok:
        raise BundleError(f"`docker {' '.join(args)}` failed: {(result.stderr or result.stdout).strip() or f'exit {result.rc}'}")


def _curl(runner: Any, url: str, dest: Path) -> None:
    """``curl -fsSL -o DEST.part URL``, renamed into place once whole (a file in the cache is complete)."""
    part = dest.with_name(dest.name + ".part")
    result = runner.run(["curl", "-fsSL", "-o", str(part), url], change=False, timeout=3600)
    if not result.ok:
        raise BundleError(f"cannot fetch {url}: {(result.stderr or result.stdout).strip() or f'curl exit {result.rc}'}")
    part.rename(dest)


def _fetch_index(runner: Any, repo: str, dest: Path, say: Any) -> dict[str, list[dict[str, Any]]]:
    """A chart repository's index.yaml (its entries), fetched now (charts are added to repositories)."""
    say(f"download {repo.rstrip('/')}/index.yaml")
    _curl(runner, f"{repo.rstrip('/')}/index.yaml", dest)
    try:
        doc = yaml.safe_load(dest.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BundleError(f"{repo}/index.yaml is not a Helm repository index: {exc}") from None
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise BundleError(f"{repo}/index.yaml has no entries: not a Helm repository index")
    return entries


def load(bundle: Path) -> dict[str, Any]:
    """The bundle's manifest, every file in it checked (size and sha256) before anything uses it."""
    path = bundle / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"--bundle {bundle}: no {MANIFEST} (make one with: gpuwizard bundle --answers F --out DIR)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"--bundle {bundle}: {MANIFEST} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("version") != 1 or not isinstance(manifest.get("files"), dict):
        raise InvalidInput(f"--bundle {bundle}: {MANIFEST} is not a gpuwizard bundle manifest (version 1)")
    problems = []
    for rel, meta in manifest["files"].items():
        file = bundle / rel
        if ".." in PurePosixPath(rel).parts or not file.resolve().is_relative_to(bundle.resolve()):
            problems.append(f"{rel}: a path outside the bundle")
        elif not file.is_file():
            problems.append(f"{rel}: missing")
        else:
            try:
                actual = sha256_of(file)
            except OSError as exc:
                problems.append(f"{rel}: cannot be read ({exc.strerror or exc})")
                continue
            if actual != meta.get("sha256"):
                problems.append(f"{rel}: sha256 {actual}, the manifest says {meta.get('sha256')} (changed or corrupted)")
    if problems:
        raise InvalidInput(f"--bundle {bundle}: {len(problems)} file(s) fail their check; nothing was executed:\n  "
                           + "\n  ".join(problems))
    return manifest


class Server:
    """The bundle served on 127.0.0.1 (a port of its own) while a run uses it: only the files the
    manifest lists, each checked when the bundle was loaded."""

    def __init__(self, bundle: Path, manifest: dict[str, Any]):
        listed = {rel: bundle / rel for rel in manifest["files"]}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # the run's log has the commands
                pass

            def _file(self) -> Path | None:
                rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                return listed.get(rel)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                file = self._file()
                if file is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = file.stat().st_size
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if body:
                    with open(file, "rb") as fh:
                        shutil.copyfileobj(fh, self.wfile)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{port}"
        self.cleanup: list[Any] = []  # what else the session's use of the bundle leaves (APT_CONFIG's files)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for undo in self.cleanup:
            undo()


def use(network: Any, bundle: Path, manifest: dict[str, Any], base: str) -> None:
    """Point the session's network at the bundle: each URL base of its files at the copy served from
    ``base`` (127.0.0.1), each chart release at its archive in the bundle (helm installs from the .tgz)."""
    network.bundle = str(bundle.resolve())
    network.bundle_host = dict(manifest.get("host") or {}) or None
    for rel, meta in manifest["files"].items():
        if rel.startswith("files/"):
            _, scheme, host = rel.split("/", 3)[:3]
            network.local_urls[f"{scheme}://{host}"] = f"{base}/files/{scheme}/{host}"
        elif rel.startswith("charts/") and rel.endswith(".tgz") and meta.get("chart"):
            network.local_archives[(str(meta["chart"]), str(meta["version"]))] = str((bundle / rel).resolve())
        elif rel == f"{APT_DIR}/Packages":
            network.local_apt = str((bundle / APT_DIR).resolve())
        elif rel.startswith("images/") and meta.get("image"):
            network.local_images[str(meta["image"])] = (str((bundle / rel).resolve()), str(meta["loaded_as"]))


def _described(host: dict[str, Any]) -> str:
    name = host.get("pretty_name") or " ".join(str(host[k]) for k in ("os", "version") if host.get(k)) or "an unknown system"
    return f"{name} ({host.get('arch') or 'unknown architecture'})"


def mismatch(built: dict[str, Any] | None, target: dict[str, Any], packages: bool) -> str | None:
    """Why a bundle built on ``built`` (its manifest's host) cannot serve ``target`` (this host's
    facts) for a step that uses it, or None. Its binaries, runfiles and images are of the build
    machine's architecture; its packages (``packages``: the step still installs some) were resolved
    for the build machine's distribution and release, and apt would install them here with the
    bundle's pin. What either side does not tell (an unreadable os-release) is not held against it."""
    if not built:
        return None
    arch, here = built.get("arch"), target.get("arch")
    if arch and here and arch != here:
        return (f"the offline bundle was built on {_described(built)}: its binaries, images and packages are for "
                f"{arch}, and this host is {here} ({_described(target)}); build the bundle on a {here} machine")
    same = all(built.get(k) == target.get(k) for k in ("os", "version") if built.get(k) and target.get(k))
    if packages and not same:
        return (f"the offline bundle's packages were resolved for {_described(built)}, and this host is "
                f"{_described(target)}: apt would install another release's packages here; build the bundle on a "
                f"machine of this host's distribution and release")
    return None


def check_plan(network: Any, target: dict[str, Any], planned: list[PlannedStep]) -> None:
    """With an offline bundle in use: a bundle made for another machine (:func:`mismatch`) is
    refused where a step still uses it (before anything runs): a file it serves, an image it holds,
    a package of its repository; of its packages, what it lacks is said."""
    from .packages import installs, lacking
    from .platform import for_host
    from .reach import urls

    platform = for_host(target)
    copies = tuple(copy + "/" for copy in network.local_urls.values())
    for p in planned:
        if p.error is not None or all(p.done):
            continue
        packages = bool(network.local_apt and installs(platform, p, pending_only=True))
        images = [*(p.data.get("images") or []), *(p.data.get("cluster_images") or [])]
        uses = (packages or any(url.startswith(copies) for url in urls([p]))
                or any(ref in network.local_images for ref in images))
        why = mismatch(network.bundle_host, target, packages=packages) if uses else None
        if why:
            p.error, p.refused = why, True
    if network.local_apt:  # the bundle's packages: what it lacks, said before anything runs
        short = lacking(network, platform, planned)
        for p in planned:
            if p.step.id in short and not p.refused:
                p.decisions.append(f"the offline bundle's packages lack {', '.join(short[p.step.id])}: apt must "
                                   "fetch them from the host's own archive (else rebuild the bundle from this "
                                   "answer file)")


def attach(network: Any, where: str | os.PathLike[str], host: Any) -> Server:
    """``--bundle DIR``: every file checked (a changed or missing one refused: InvalidInput, nothing
    run), then the bundle served on 127.0.0.1 and ``network`` pointed at it; with packages, the
    host's apt commands pointed at the bundle's repository (APT_CONFIG, gpuwizard/packages.py). The
    caller closes the server when the session ends."""
    path = Path(where)
    manifest = load(path)
    server = Server(path, manifest)
    use(network, path, manifest, server.base)
    if network.local_apt:
        from . import packages

        conf_dir = tempfile.mkdtemp(prefix="gpuwizard-bundle-apt-")
        server.cleanup.append(lambda: shutil.rmtree(conf_dir, ignore_errors=True))
        network.apt_config = packages.use(host, Path(network.local_apt), Path(conf_dir))
    return server

