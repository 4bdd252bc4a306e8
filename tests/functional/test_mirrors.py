"""The answer file's ``mirrors:`` and ``proxy:`` (gpuwizard/network.py) on a simulated host, with the
mirror a real HTTP server on 127.0.0.1: a copy of the simulated internet's files (the NVIDIA
repository key and cuda-keyring, the kind/kubectl/helm releases and their checksums, the chart
repositories' index.yaml), each under its mirror's base. The simulated curl and helm reach 127.0.0.1
for real and record what they fetched; the run must fetch everything from the mirror and nothing
from upstream."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from gpuwizard.network import UPSTREAM, Network, split_image
from gpuwizard.simulate import prepare
from gpuwizard.simulate import tools_cluster as SC
from gpuwizard.simulate import tools_host as SH

from ..unit.test_download import FileServer
from .cli import run

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "examples/full.yaml"
MIRRORED = ("cuda_repo", "container_toolkit_repo", "kind", "kubectl", "helm")
CHARTS = {"nvidia": "https://helm.ngc.nvidia.com/nvidia", "hami-charts": "https://project-hami.github.io/HAMi/"}


def mirrored_path(name: str) -> str:
    """Where the mirror keeps a source: under its upstream host and path, as mirrors lay out what they
    copy (the simulated apt tells NVIDIA's repositories apart by their paths)."""
    return UPSTREAM[name].split("://", 1)[1]


def mirror_files(world: dict) -> dict[str, bytes]:
    """What the mirror serves: each simulated upstream file under its upstream host and path, and an
    index.yaml per chart repository (Helm's format, its charts and versions) under charts/."""
    files: dict[str, bytes] = {}
    internet = {**SH._sim_urls(world), **SC.release_urls(world)}
    for url, body in internet.items():
        for name in MIRRORED:
            base = UPSTREAM[name]
            if url.startswith(base + "/"):
                files[f"{mirrored_path(name)}{url[len(base):]}"] = body if isinstance(body, bytes) else body.encode()
    for alias, url in CHARTS.items():
        entries = {chart: [{"version": v, "name": chart} for v in reversed(versions)]
                   for chart, versions in SC.REPOS[url].items()}
        files[f"charts/{alias}/index.yaml"] = yaml.safe_dump({"apiVersion": "v1", "entries": entries}).encode()
    return files


def answer_file(tmp_path: Path, base: str) -> Path:
    doc = yaml.safe_load(FULL.read_text())
    doc["mirrors"] = {
        **{name: f"{base}/{mirrored_path(name)}" for name in MIRRORED},
        "charts": {alias: f"{base}/charts/{alias}" for alias in CHARTS},
        "registries": {"nvcr.io": "registry.mirror.test:5000/nvcr", "docker.io": "registry.mirror.test:5000/hub",
                       "registry.k8s.io": "registry.mirror.test:5000/k8s"},
    }
    doc["proxy"] = {"http": "http://proxy.mirror.test:3128", "https": "http://proxy.mirror.test:3128",
                    "no_proxy": ["127.0.0.1", "localhost"]}
    path = tmp_path / "mirrored.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextlib.contextmanager
def mirrored_host(tmp_path: Path, profile: str, lacking: str | None = None) -> Iterator[tuple[Path, FileServer, Path]]:
    """(sandbox root, the mirror's server, the mirrored answer file) of a simulated host whose mirror
    on 127.0.0.1 copies the simulated internet (without ``lacking``, a path on the mirror)."""
    root = tmp_path / "s"
    files = mirror_files(prepare(profile, root).world())
    if lacking is not None:
        del files[lacking]
    with FileServer(files) as srv:
        yield root, srv, answer_file(tmp_path, srv.base)


def test_a_whole_run_downloads_everything_from_the_mirror_on_127_0_0_1(tmp_path: Path):
    with mirrored_host(tmp_path, "t4-bare") as (root, srv, path):
        sb = prepare("t4-bare", root)
        code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(path))
        assert code == 0, out + err
        served = [r["path"] for r in srv.requests]
    world = prepare("t4-bare", root).world()
    fetched = world.get("fetched") or []
    # every download of the run, as the simulated tools recorded it, went to the mirror
    assert fetched and all(u.startswith(srv.base + "/") for u in fetched), fetched
    assert {"nvidia.github.io/libnvidia-container/gpgkey", "charts/nvidia/index.yaml", "charts/hami-charts/index.yaml"} <= set(served)
    for name in MIRRORED:
        assert any(p.startswith(mirrored_path(name) + "/") for p in served), name
    # ...and no command of the run named an upstream base (the proxy is for what no mirror serves)
    argvs = [c["argv"] for c in sb.calls()]
    upstreams = [*UPSTREAM.values(), *CHARTS.values()]
    assert not [a for a in argvs if any(u.rstrip("/") in x for x in a for u in upstreams)]
    assert world["helm_repos"] == {alias: f"{srv.base}/charts/{alias}" for alias in CHARTS}
    # the repositories' lines name the mirror: the toolkit's list, and cuda-keyring's own list rewritten
    lists = root / "etc/apt/sources.list.d"
    assert f"{srv.base}/nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /" in (lists / "nvidia-container-toolkit.list").read_text()
    assert (lists / "cuda-ubuntu2204-x86_64.list").read_text() == (
        f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {srv.base}/developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/ /\n")
    # images gpuwizard names come from the registries' mirrors
    docker_runs = [a for a in argvs if a[:2] == ["docker", "run"]]
    assert docker_runs and all(a[-2].startswith("registry.mirror.test:5000/hub/nvidia/cuda:") for a in docker_runs)
    assert "image: registry.mirror.test:5000/hub/kindest/node:" in (root / "var/lib/gpuwizard/kind/gpu-cluster.yaml").read_text()
    # the charts' own images too, from their real defaults: gpu-operator's repositories, HAMi's registries
    releases = {r["name"]: r.get("values") or {} for c in world["clusters"] for r in c.get("releases", [])}
    assert releases["gpu-operator"]["operator"]["repository"] == "registry.mirror.test:5000/nvcr/nvidia"
    assert releases["gpu-operator"]["toolkit"]["repository"] == "registry.mirror.test:5000/nvcr/nvidia/k8s"
    assert releases["hami"]["devicePlugin"]["image"]["registry"] == "registry.mirror.test:5000/hub"
    assert releases["hami"]["scheduler"]["kubeScheduler"]["image"]["registry"] == "registry.mirror.test:5000/k8s"
    # the proxy: Docker's drop-in, and in every command's environment
    dropin = root / "etc/systemd/system/docker.service.d/http-proxy.conf"
    assert 'Environment="HTTPS_PROXY=http://proxy.mirror.test:3128"' in dropin.read_text()
    assert 'Environment="NO_PROXY=127.0.0.1,localhost"' in dropin.read_text()


def test_the_plan_says_which_mirror_each_url_came_from_and_undo_removes_the_proxy_dropin(tmp_path: Path):
    with mirrored_host(tmp_path, "t4-bare") as (root, srv, path):
        code, out, err = run("plan", "--simulate", "t4-bare", "--root", str(root), "--answers", str(path))
        assert code == 0, out + err
        for name in ("kind", "kubectl", "helm"):
            assert f"{srv.base}/{mirrored_path(name)}/" in out and f"(mirror of {UPSTREAM[name]})" in out
        assert f"Helm repository nvidia ({srv.base}/charts/nvidia, mirror of https://helm.ngc.nvidia.com/nvidia)" in out
        code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(path))
        assert code == 0, out + err
    dropin = root / "etc/systemd/system/docker.service.d/http-proxy.conf"
    assert dropin.exists()
    code, out, err = run("undo", "--simulate", "t4-bare", "--root", str(root))
    assert code == 0, out + err
    assert not dropin.exists() and not dropin.parent.exists()


def test_an_unreachable_mirror_stops_the_run_before_anything_with_curls_words(tmp_path: Path):
    root = tmp_path / "s"
    prepare("t4-bare", root)
    path = tmp_path / "a.yaml"
    path.write_text("version: 1\nmirrors: {container_toolkit_repo: 'http://127.0.0.1:9/ctk'}\ncontainer: {}\n")
    code, out, err = run("--simulate", "t4-bare", "--root", str(root), "--answers", str(path))
    assert code == 1
    assert ("  http://127.0.0.1:9/ctk/gpgkey: curl: (7) Failed to connect to 127.0.0.1 port 9 after 0 ms: "
            "Couldn't connect to server") in err
    assert "needed by [container] download NVIDIA's repository key" in err
    sb = prepare("t4-bare", root)
    assert not (sb.world().get("fetched") or []) and _changing(sb.calls()) == []


def test_network_rewrites_by_longest_base_and_reads_image_registries_as_the_runtimes_do():
    from gpuwizard.network import Mirrors

    net = Network(Mirrors(cuda_repo="http://m/repos", cuda_runfiles="http://m/cuda", urls={"https://example.org/a": "http://m/a"},
                          registries={"docker.io": "reg:5000/hub", "nvcr.io": "reg:5000/nvcr"}))
    assert net.url(f"{UPSTREAM['cuda_repo']}/ubuntu2204/x86_64/x.deb") == "http://m/repos/ubuntu2204/x86_64/x.deb"
    assert net.url(f"{UPSTREAM['cuda_runfiles']}/12.6.2/local_installers/c.run") == "http://m/cuda/12.6.2/local_installers/c.run"
    assert net.url("https://example.org/ab") == "https://example.org/ab"  # a base is a path prefix, not a string one
    assert net.url("https://example.org/a/b") == "http://m/a/b"
    assert split_image("ubuntu:22.04") == ("docker.io", "library/ubuntu:22.04")
    assert split_image("localhost:5000/x") == ("localhost:5000", "x")
    assert net.image("nvidia/cuda:12.6.2-base-ubuntu22.04") == "reg:5000/hub/nvidia/cuda:12.6.2-base-ubuntu22.04"
    assert net.image("nvcr.io/nvidia/k8s/cuda-sample:v") == "reg:5000/nvcr/nvidia/k8s/cuda-sample:v"
    assert net.image("quay.io/x/y:1") == "quay.io/x/y:1"


def test_mirror_and_proxy_answers_are_checked_with_file_line_and_column(tmp_path: Path):
    path = tmp_path / "a.yaml"
    path.write_text("version: 1\nmirrors:\n  kind: ftp://mirror/kind\n  registries: {'https://nvcr.io': x}\nproxy: {http: nope}\n")
    code, out, err = run("plan", "--simulate", "t4-bare", "--root", str(tmp_path / "s"), "--answers", str(path))
    assert code == 2
    text = out + err
    assert f"{path}:3:9: mirrors.kind" in text and "http:// or https:// URL" in text
    assert "mirrors.registries" in text and "proxy.http" in text


def test_the_tuis_export_keeps_the_sessions_mirrors_and_proxy(tmp_path: Path):
    """What the wizard exports replays the session: from the same mirrors, through the same proxy."""
    import io

    from gpuwizard.answers import parse_answers
    from gpuwizard.cli import Session, build_parser
    from gpuwizard.engine import Engine
    from gpuwizard.session import WizardSession
    from gpuwizard.state import State
    from gpuwizard.steps import registry

    given = parse_answers("version: 1\nmirrors: {helm: 'http://m/helm', registries: {nvcr.io: 'reg:5000/nvcr'}}\n"
                          "proxy: {https: 'http://p:3128', no_proxy: [localhost]}\n")
    cli = Session(build_parser().parse_args(["--simulate", "t4-bare", "--root", str(tmp_path / "s")]), unattended=True,
                  err=io.StringIO())
    engine = Engine(cli.host, State(cli.state_path), registry(), unattended=False, network=Network.of(given))
    doc = WizardSession(engine).export_doc()
    assert doc["mirrors"] == {"helm": "http://m/helm", "registries": {"nvcr.io": "reg:5000/nvcr"}}
    assert doc["proxy"] == {"https": "http://p:3128", "no_proxy": ["localhost"]}
    assert cli.host.runner.extra_env["https_proxy"] == cli.host.runner.extra_env["HTTPS_PROXY"] == "http://p:3128"


# -- the airgapped profile: no name resolves ------------------------------------------------------

def _changing(calls: list[dict]) -> list[list[str]]:
    """Commands that change a host (what `nothing was executed` rules out)."""
    changing = (["apt-get", "install"], ["apt-get", "update"], ["dpkg", "-i"], ["sh"], ["systemctl", "restart"],
                ["nvidia-ctk", "runtime"], ["kind", "create"], ["helm", "repo", "add"], ["helm", "upgrade"])
    out = []
    for c in calls:
        argv = c["argv"]
        if any(argv[:len(w)] == w for w in changing) or (argv[:1] == ["curl"] and "-I" not in " ".join(argv)
                                                            and "-fsSI" not in argv):
            out.append(argv)
    return out


def test_airgapped_stops_at_plan_time_listing_every_url_it_cannot_fetch(tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--answers", str(FULL))
    assert code == 1, out + err
    assert "10 URL(s) of the plan cannot be fetched from this host; nothing was executed:" in out
    for url in ("https://nvidia.github.io/libnvidia-container/gpgkey", "https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz",
                "https://helm.ngc.nvidia.com/nvidia/index.yaml", "https://project-hami.github.io/HAMi/index.yaml"):
        assert f"  {url}: curl: (6) Could not resolve host: {url.split('/')[2]}" in out, url
    assert "    needed by [operator] Helm repository nvidia (https://helm.ngc.nvidia.com/nvidia)" in out
    # the run: the same list, exit 1, and nothing that changes the host ran
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--answers", str(FULL))
    assert code == 1 and "cannot be fetched from this host; nothing was executed" in err
    assert _changing(prepare("airgapped", root).calls()) == []
    assert all(s.get("status", "pending") == "pending" for k, s in json_state(root)["steps"].items() if k != "detect")


def test_airgapped_with_a_mirror_on_this_machine_has_nothing_left_to_fetch(tmp_path: Path):
    with mirrored_host(tmp_path, "airgapped") as (root, srv, path):
        code, out, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--answers", str(path))
        heads = [r["path"] for r in srv.requests if r.get("method") == "HEAD"]
    assert code == 0, out + err
    assert "cannot be fetched" not in out
    # each URL was checked on the mirror, and nothing was downloaded by the plan
    assert "nvidia.github.io/libnvidia-container/gpgkey" in heads and "charts/hami-charts/index.yaml" in heads
    assert not (prepare("airgapped", root).world().get("fetched") or [])


def test_a_mirror_that_lacks_a_file_is_named_at_plan_time(tmp_path: Path):
    from gpuwizard.steps.kube import TOOL_VERSIONS

    # the kind the plan installs
    lacking = f"{mirrored_path('kind')}/{TOOL_VERSIONS['kind']}/kind-linux-amd64"
    with mirrored_host(tmp_path, "airgapped", lacking) as (root, srv, path):
        code, out, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--answers", str(path))
    assert code == 1
    assert f"  {srv.base}/{lacking}: curl: (22) The requested URL returned error: 404" in out
    assert "1 URL(s) of the plan cannot be fetched" in out


def json_state(root: Path) -> dict:
    import json

    path = root / "var/lib/gpuwizard/state.json"
    return json.loads(path.read_text()) if path.exists() else {"steps": {}}
