"""`gpuwizard bundle` on a connected simulated host, `--bundle DIR` on the airgapped one (no name
resolves): what the bundle holds is what the plan downloads, each file checked before use, served
on 127.0.0.1 for the run; charts install from their archives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from gpuwizard.download import sha256_of
from gpuwizard.simulate import prepare

from .cli import run

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "examples/full.yaml"
HOST = ROOT / "examples/host.yaml"


@pytest.fixture(scope="module")
def full_bundle(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    out = tmp / "bundle"
    code, stdout, err = run("bundle", "--simulate", "t4-bare", "--root", str(tmp / "build"), "--answers", str(FULL),
                            "--out", str(out))
    assert code == 0, stdout + err
    assert f"bundle {out}: 14 files" in stdout
    return out


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(bundle, dest)
    return dest


def test_the_bundle_holds_what_the_plan_downloads_each_with_its_sha256(full_bundle: Path):
    manifest = json.loads((full_bundle / "manifest.json").read_text())
    files = manifest["files"]
    urls = {meta["url"] for meta in files.values() if "url" in meta and "chart" not in meta}
    assert urls == {
        "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/cuda-keyring_1.1-1_all.deb",
        "https://nvidia.github.io/libnvidia-container/gpgkey",
        "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64",
        "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64.sha256sum",
        "https://dl.k8s.io/release/v1.36.5/bin/linux/amd64/kubectl",
        "https://dl.k8s.io/release/v1.36.5/bin/linux/amd64/kubectl.sha256",
        "https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz",
        "https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz.sha256sum",
    }
    for rel, meta in files.items():
        assert sha256_of(full_bundle / rel) == meta["sha256"] and (full_bundle / rel).stat().st_size == meta["size"]
    # the charts the plan installs, as archives, each repository with Helm's index of them
    charts = {(m["chart"], m["version"]) for m in files.values() if "chart" in m}
    assert charts == {("gpu-operator", "v26.3.3"), ("hami", "2.10.0")}
    index = yaml.safe_load((full_bundle / "charts/nvidia/index.yaml").read_text())
    entry = index["entries"]["gpu-operator"][0]
    assert entry["urls"] == ["gpu-operator-v26.3.3.tgz"] and entry["digest"] == files["charts/nvidia/gpu-operator-v26.3.3.tgz"]["sha256"]
    assert manifest["answers_sha256"] == sha256_of(FULL) and manifest["host"]["os"] == "ubuntu"
    # the images the host's Docker pulls, saved by their tags (docker load keeps no digest)
    images = {m["image"]: m["loaded_as"] for m in files.values() if "image" in m}
    assert images == {"nvidia/cuda:12.6.2-base-ubuntu22.04": "nvidia/cuda:12.6.2-base-ubuntu22.04",
                      "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed":
                          "kindest/node:v1.36.4"}


def test_airgapped_plans_everything_from_the_bundle_and_keeps_no_address_of_it(full_bundle: Path, tmp_path: Path):
    root = tmp_path / "s"
    code, out, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--bundle", str(full_bundle),
                         "--answers", str(FULL))
    assert code == 0, out + err
    assert "cannot be fetched" not in out
    assert "http://127.0.0.1:" in out and "(the offline bundle's copy of https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz)" in out
    # helm installs from the archives: no repository alias (it would name the bundle's port after the run)
    assert f"upgrade --install gpu-operator {full_bundle.resolve()}/charts/nvidia/gpu-operator-v26.3.3.tgz" in out
    assert "helm repo add" not in out and "helm repo update" not in out
    # a repository line outlives the run: it names NVIDIA's repository, never 127.0.0.1
    assert "+deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://nvidia.github.io/" in out


def test_a_changed_file_in_the_bundle_is_refused_before_anything_runs(full_bundle: Path, tmp_path: Path):
    bundle = copy_of(full_bundle, tmp_path)
    kind = bundle / "files/https/github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64"
    kind.write_bytes(kind.read_bytes() + b"\n# changed\n")
    root = tmp_path / "s"
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--bundle", str(bundle), "--answers", str(FULL))
    assert code == 2
    assert f"--bundle {bundle}: 1 file(s) fail their check; nothing was executed:" in err
    assert f"files/https/github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64: sha256 {sha256_of(kind)}" in err
    assert [c for c in prepare("airgapped", root).calls() if c["argv"][0] not in ("uname",)] == []
    (bundle / "charts/hami-charts/hami-2.10.0.tgz").unlink()
    code, out, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--bundle", str(bundle), "--answers", str(FULL))
    assert code == 2 and "charts/hami-charts/hami-2.10.0.tgz: missing" in err


def test_what_a_smaller_bundle_lacks_is_named_at_plan_time(tmp_path: Path):
    out = tmp_path / "host-bundle"
    code, stdout, err = run("bundle", "--simulate", "t4-bare", "--root", str(tmp_path / "build"), "--answers", str(HOST),
                            "--out", str(out))
    assert code == 0, stdout + err
    code, stdout, err = run("plan", "--simulate", "airgapped", "--root", str(tmp_path / "s"), "--bundle", str(out),
                            "--answers", str(FULL))
    assert code == 1
    assert "8 URL(s) of the plan cannot be fetched from this host" in stdout
    assert "https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz: curl: (6) Could not resolve host: get.helm.sh" in stdout
    assert "nvidia.github.io" not in stdout.split("cannot be fetched")[1]  # the bundle has what host.yaml needs


def test_bundle_needs_an_answer_file(tmp_path: Path):
    code, out, err = run("bundle", "--simulate", "t4-bare", "--root", str(tmp_path / "s"), "--out", str(tmp_path / "b"))
    assert code == 2 and "bundle needs the answer file of the hosts it is for: --answers FILE" in err


def _offline(sb) -> None:
    sb.mutate(lambda world: world.setdefault("network", {}).update(offline=True))


def test_a_host_with_its_drivers_installs_docker_kind_and_the_charts_from_the_bundle_offline(tmp_path: Path):
    """host-ready (driver, CUDA, the NVIDIA runtime in place) cut off from the network: the container
    check's image and the Kind node load from the bundle, kind/kubectl/helm download from it, the
    charts install from its archives. (The simulated cluster does not yet model image pulls offline:
    the check pods' and the charts' images are not in a bundle.)"""
    doc = yaml.safe_load(FULL.read_text())
    for key in ("driver", "cuda"):
        doc.pop(key)
    answers = tmp_path / "cluster.yaml"
    answers.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "bundle"
    code, stdout, err = run("bundle", "--simulate", "host-ready", "--root", str(tmp_path / "build"), "--answers",
                            str(answers), "--out", str(out))
    assert code == 0, stdout + err
    root = tmp_path / "s"
    sb = prepare("host-ready", root)
    _offline(sb)
    # without the bundle: stopped before anything runs
    code, stdout, err = run("--simulate", "host-ready", "--root", str(root), "--answers", str(answers))
    assert code == 1 and "cannot be fetched from this host; nothing was executed" in err
    code, stdout, err = run("--simulate", "host-ready", "--root", str(root), "--bundle", str(out), "--answers", str(answers))
    assert code == 0, stdout + err
    world = prepare("host-ready", root).world()
    argvs = [c["argv"] for c in sb.calls()]
    loads = [a[-1] for a in argvs if a[:2] == ["docker", "load"]]
    assert sorted(Path(x).name for x in loads) == ["kindest_node_v1.36.4.tar", "nvidia_cuda_12.6.2-base-ubuntu22.04.tar"]
    assert "kindest/node:v1.36.4" in world["docker_images"]  # by its tag: docker load keeps no digest
    assert "image: kindest/node:v1.36.4\n" in (root / "var/lib/gpuwizard/kind/gpu-cluster.yaml").read_text()
    fetched = world.get("fetched") or []
    assert fetched and all(u.startswith("http://127.0.0.1:") for u in fetched)
    installs = [a for a in argvs if a[:1] == ["helm"] and "upgrade" in a]
    assert installs and all(any(w.endswith(".tgz") and w.startswith(str(out.resolve())) for w in a) for a in installs)
    assert not [a for a in argvs if a[:3] == ["helm", "repo", "add"]]
    assert world.get("helm_repos") in (None, {})


def test_airgapped_stops_at_the_first_package_the_bundle_does_not_hold(full_bundle: Path, tmp_path: Path):
    """Packages are not in a bundle yet: on the bare airgapped host the run gets past the URL check
    (the bundle has every URL) and stops at the driver step's first package, with apt's words."""
    root = tmp_path / "s"
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--bundle", str(full_bundle), "--answers", str(FULL))
    assert code == 1
    assert "cannot be fetched" not in err
    assert "failed: command failed (exit 100): apt-get install -y linux-headers-5.15.0-125-generic" in out
    assert "Temporary failure resolving 'archive.ubuntu.com'" in out
