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
    # 8 downloads, 2 charts with 2 indexes, 12 images (2 for the host's Docker, 10 the cluster pulls),
    # 18 packages with the repository's Packages and Release
    assert f"bundle {out}: 44 files" in stdout
    return out


def built(tmp_path: Path, answers: Path, name: str, profile: str = "t4-bare") -> Path:
    """A bundle of ``answers`` made on a connected simulated ``profile`` (its own build root)."""
    out = tmp_path / name
    code, stdout, err = run("bundle", "--simulate", profile, "--root", str(tmp_path / f"build-{name}"), "--answers",
                            str(answers), "--out", str(out))
    assert code == 0, stdout + err
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
    images = {m["image"]: m["loaded_as"] for m in files.values() if m.get("pulled_by") == "host"}
    assert images == {"nvidia/cuda:12.6.2-base-ubuntu22.04": "nvidia/cuda:12.6.2-base-ubuntu22.04",
                      "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed":
                          "kindest/node:v1.36.4"}
    # the images the cluster pulls: the charts' (gpu-operator's operands on a Kind node: the driver and the
    # device plugin off, HAMi's; tests/unit/test_images.py checks them against the real renders) and the
    # check pods'
    assert {m["image"] for m in files.values() if m.get("pulled_by") == "cluster"} == {
        "nvcr.io/nvidia/gpu-operator:v26.3.3", "nvcr.io/nvidia/k8s/container-toolkit:v1.19.1",
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless", "nvcr.io/nvidia/k8s-device-plugin:v0.19.3",
        "nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.14.2", "registry.k8s.io/nfd/node-feature-discovery:v0.18.3",
        "docker.io/projecthami/hami:v2.10.0", "registry.k8s.io/kube-scheduler:v1.36.4",
        "docker.io/liangjw/kube-webhook-certgen:v1.1.1", "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04"}


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
    out = built(tmp_path, HOST, "host-bundle")
    code, stdout, err = run("plan", "--simulate", "airgapped", "--root", str(tmp_path / "s"), "--bundle", str(out),
                            "--answers", str(FULL))
    assert code == 1
    assert "8 URL(s) of the plan cannot be fetched from this host" in stdout
    assert "https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz: curl: (6) Could not resolve host: get.helm.sh" in stdout
    assert "nvidia.github.io" not in stdout.split("cannot be fetched")[1]  # the bundle has what host.yaml needs


def test_packages_and_images_a_smaller_bundle_lacks_are_named_in_the_plan(tmp_path: Path):
    """A bundle of the driver alone, a plan of host.yaml (driver, CUDA, the container toolkit) and of
    full.yaml: each step says which of its packages and images the bundle does not hold."""
    doc = yaml.safe_load(HOST.read_text())
    answers = tmp_path / "driver.yaml"
    answers.write_text(yaml.safe_dump({k: v for k, v in doc.items() if k in ("version", "detect", "driver")}))
    out = built(tmp_path, answers, "driver-bundle")
    code, stdout, err = run("plan", "--simulate", "airgapped", "--root", str(tmp_path / "s"), "--bundle", str(out),
                            "--answers", str(FULL))
    assert code == 1 and "URL(s) of the plan cannot be fetched from this host" in stdout  # kind, helm, ... too
    assert "decision: the offline bundle's packages lack cuda-toolkit-12-6: apt must fetch them" in stdout
    assert "decision: the offline bundle's packages lack nvidia-container-toolkit: apt must fetch them" in stdout
    assert "the offline bundle's packages lack nvidia-driver" not in stdout
    assert "the offline bundle lacks 3 image(s) the cluster pulls here: docker.io/projecthami/hami:v2.10.0" in stdout


def test_a_bundle_built_for_another_release_or_architecture_is_refused_before_anything_runs(full_bundle: Path,
                                                                                              tmp_path: Path):
    """The full bundle was built on Ubuntu 22.04 (x86_64). On Debian 12 its packages would be another
    release's (apt would install them with the bundle's pin): the steps that install packages are
    refused, exit 2, nothing runs; the cluster steps (charts, images of the same architecture) plan.
    Its manifest saying aarch64: every step that still uses the bundle is refused (its binaries,
    images and packages are of another architecture); the pod spec, a file it writes, is not."""
    from .test_host_layer import changing_calls

    root = tmp_path / "d12"
    sb = prepare("debian12", root)
    code, out, err = run("plan", "--simulate", "debian12", "--root", str(root), "--bundle", str(full_bundle),
                         "--answers", str(FULL))
    assert code == 2, out + err
    assert ("refused: the offline bundle's packages were resolved for Ubuntu 22.04.5 LTS (x86_64), and this host is "
            "Debian GNU/Linux 12 (bookworm) (x86_64): apt would install another release's packages here") in out
    assert "not plannable: driver (refused), cuda (refused), container (refused)" in out  # cuda: also its own reason
    code, out, err = run("--simulate", "debian12", "--root", str(root), "--bundle", str(full_bundle), "--answers", str(FULL))
    assert code == 2 and "nothing was executed" in err and "another release's packages" in err, out + err
    assert changing_calls(sb.calls()) == []

    bundle = copy_of(full_bundle, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["host"]["arch"] = "aarch64"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    root = tmp_path / "t4"
    sb = prepare("t4-bare", root)
    code, out, err = run("plan", "--simulate", "t4-bare", "--root", str(root), "--bundle", str(bundle), "--answers", str(FULL))
    assert code == 2, out + err
    assert ("refused: the offline bundle was built on Ubuntu 22.04.5 LTS (aarch64): its binaries, images and packages "
            "are for aarch64, and this host is x86_64") in out
    assert "not plannable: driver (refused), cuda (refused), container (refused), kind (refused), operator (refused), " \
           "hami (refused)\n" in out
    assert changing_calls(sb.calls()) == []


def test_what_a_manifest_or_the_host_does_not_tell_is_not_held_against_the_bundle():
    from gpuwizard.bundle import mismatch

    built = {"os": "ubuntu", "version": "22.04", "arch": "x86_64"}
    assert mismatch(built, {"os": None, "version": None, "arch": "x86_64"}, packages=True) is None
    assert mismatch({"arch": "x86_64"}, {"os": "debian", "version": "12", "arch": "x86_64"}, packages=True) is None
    assert mismatch(built, {"os": "debian", "version": "12", "arch": "x86_64"}, packages=False) is None
    assert "another release's packages" in mismatch(built, {"os": "ubuntu", "version": "24.04", "arch": "x86_64"},
                                                     packages=True)
    assert mismatch(None, {"arch": "aarch64"}, packages=True) is None  # no host in the manifest


def test_a_build_machine_without_docker_or_apt_is_told_what_it_lacks(tmp_path: Path):
    """k3s (containerd, no Docker) cannot save the images a bundle holds; rocky9 (dnf) says its
    packages are not bundled: each ends with a sentence, not a traceback."""
    answers = tmp_path / "k3s.yaml"
    answers.write_text('version: 1\nkind: {existing_context: "default"}\noperator: {}\nhami: {}\n')
    code, stdout, err = run("bundle", "--simulate", "k3s", "--root", str(tmp_path / "k3s"), "--answers", str(answers),
                            "--out", str(tmp_path / "b1"))
    assert code == 1 and "Traceback" not in err
    assert "saved with `docker pull` and `docker save`, and this machine has no docker on its PATH" in err
    code, stdout, err = run("bundle", "--simulate", "rocky9", "--root", str(tmp_path / "rocky"), "--answers", str(HOST),
                            "--out", str(tmp_path / "b2"))
    assert code == 0, stdout + err
    assert "not bundled: the dnf packages" in stdout and "nvidia-container-toolkit" in stdout
    assert not (tmp_path / "b2/packages").exists()


def test_bundle_needs_an_answer_file(tmp_path: Path):
    code, out, err = run("bundle", "--simulate", "t4-bare", "--root", str(tmp_path / "s"), "--out", str(tmp_path / "b"))
    assert code == 2 and "bundle needs the answer file of the hosts it is for: --answers FILE" in err


def _offline(sb) -> None:
    sb.mutate(lambda world: world.setdefault("network", {}).update(offline=True))


def test_a_host_with_its_drivers_installs_docker_kind_and_the_charts_from_the_bundle_offline(tmp_path: Path):
    """host-ready (driver, CUDA, the NVIDIA runtime in place) cut off from the network: the container
    check's image and the Kind node load from the bundle, kind/kubectl/helm download from it, the
    charts install from its archives, the images the cluster pulls load into the Kind node."""
    doc = yaml.safe_load(FULL.read_text())
    for key in ("driver", "cuda"):
        doc.pop(key)
    answers = tmp_path / "cluster.yaml"
    answers.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = built(tmp_path, answers, "bundle", profile="host-ready")
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
    assert {"kindest_node_v1.36.4.tar", "nvidia_cuda_12.6.2-base-ubuntu22.04.tar",
            "nvcr.io_nvidia_gpu-operator_v26.3.3.tar"} <= {Path(x).name for x in loads}
    assert ["kind", "load", "docker-image", "docker.io/projecthami/hami:v2.10.0", "--name", "gpu-cluster"] in argvs
    assert "kindest/node:v1.36.4" in world["docker_images"]  # by its tag: docker load keeps no digest
    assert "image: kindest/node:v1.36.4\n" in (root / "var/lib/gpuwizard/kind/gpu-cluster.yaml").read_text()
    fetched = world.get("fetched") or []
    assert fetched and all(u.startswith("http://127.0.0.1:") for u in fetched)
    installs = [a for a in argvs if a[:1] == ["helm"] and "upgrade" in a]
    assert installs and all(any(w.endswith(".tgz") and w.startswith(str(out.resolve())) for w in a) for a in installs)
    assert not [a for a in argvs if a[:3] == ["helm", "repo", "add"]]
    assert world.get("helm_repos") in (None, {})


def test_the_bundle_holds_the_packages_the_plan_installs_with_every_dependency(full_bundle: Path, tmp_path: Path):
    """Resolved by apt on a private state with nothing installed: dkms comes along although the
    packages only depend on it; the flat repository's index names each archive with its sha256."""
    files = json.loads((full_bundle / "manifest.json").read_text())["files"]
    assert files["packages/apt/Packages"]["requested"] == {
        "driver": ["linux-headers-5.15.0-125-generic", "nvidia-driver-565"], "cuda": ["cuda-toolkit-12-6"],
        "container": ["nvidia-container-toolkit"]}
    debs = {m["package"]: m["version"] for m in files.values() if "package" in m}
    assert debs["nvidia-driver-565"] == "565.57.01-0ubuntu0.22.04.1" and debs["dkms"] == "2.8.7-2ubuntu2.2"
    assert {"nvidia-dkms-565", "nvidia-utils-565", "cuda-nvcc-12-6", "nvidia-container-toolkit-base",
            "libnvidia-container1"} <= set(debs)
    index = (full_bundle / "packages/apt/Packages").read_text().split("\n\n")
    assert len(index) == len(debs) == 18
    for stanza in index:
        fields = dict(line.split(": ", 1) for line in stanza.strip().splitlines())
        deb = full_bundle / "packages/apt" / fields["Filename"].removeprefix("./")
        assert fields["SHA256"] == sha256_of(deb) and int(fields["Size"]) == deb.stat().st_size
    assert "SHA256:\n " + sha256_of(full_bundle / "packages/apt/Packages") in (full_bundle / "packages/apt/Release").read_text()


def test_a_second_build_fetches_no_package_again(tmp_path: Path):
    """apt's downloads stay in gpuwizard's cache between builds (a CUDA toolkit is GBs): the second
    bundle of the same answers on the same machine fetches no .deb, and holds the same packages."""
    build = tmp_path / "build"
    sums = []
    for n in (1, 2):
        code, stdout, err = run("bundle", "--simulate", "t4-bare", "--root", str(build), "--answers", str(HOST),
                                "--out", str(tmp_path / f"bundle{n}"))
        assert code == 0, stdout + err
        debs = prepare("t4-bare", build).world().get("fetched") or []
        sums.append(len([u for u in debs if u.endswith(".deb") and "/pool/" in u]))
    assert sums[0] > 0 and sums[1] == sums[0]
    assert (tmp_path / "bundle1/packages/apt/Packages").read_text() == (tmp_path / "bundle2/packages/apt/Packages").read_text()


def test_airgapped_installs_the_whole_recipe_from_the_bundle(full_bundle: Path, tmp_path: Path):
    """No name resolves: apt installs the driver, CUDA and the toolkit from the bundle's repository,
    which only gpuwizard's apt commands read (APT_CONFIG): nothing under /etc/apt names it, so the
    host's apt still works once the bundle is gone. The images the cluster pulls are loaded into the
    Kind node first: the operator, HAMi and both checks run with no registry. The bundle sits where a
    USB stick is mounted, a space in its path."""
    root = tmp_path / "s"
    full_bundle = Path(shutil.copytree(full_bundle, tmp_path / "media" / "USB DISK"))
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--bundle", str(full_bundle), "--answers", str(FULL))
    assert code == 0, out + err
    assert "all requested steps done" in out
    # the driver the bundle holds, by apt: ubuntu-drivers would choose from the host's own (stale) lists
    assert "decision: the offline bundle's driver package nvidia-driver-565, installed by apt" in out
    assert ["apt-get", "install", "-y", "nvidia-driver-565"] in [c["argv"] for c in prepare("airgapped", root).calls()]
    for line in ("the cuda-vectoradd pod's log says \"Test PASSED\"", "both sharing pods are Running",
                 "nvidia-smi in gpuwizard-share-a reports 3000 MiB"):
        assert line in out
    cluster = prepare("airgapped", root).world()["clusters"][0]
    assert set(cluster["loaded_images"]) == {m["loaded_as"] for m in json.loads(
        (full_bundle / "manifest.json").read_text())["files"].values() if m.get("pulled_by") == "cluster"}
    # done means the node has it (crictl inspecti in the node): the next plan loads nothing again
    code, again, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--bundle", str(full_bundle),
                           "--answers", str(FULL))
    assert code == 0, again + err
    assert "[done] load docker.io/projecthami/hami:v2.10.0 into the nodes of Kind cluster gpu-cluster" in again
    repo = full_bundle.resolve() / "packages/apt"
    assert f"refresh the package lists (with the offline bundle's packages: file:{repo}, for gpuwizard's apt commands only)" in out
    world = prepare("airgapped", root).world()
    for package in ("linux-headers-5.15.0-125-generic", "nvidia-driver-565", "dkms", "cuda-toolkit-12-6",
                    "nvidia-container-toolkit"):
        assert package in world["packages"], package
    assert all(u.startswith("http://127.0.0.1:") for u in world.get("fetched") or [])
    etc = "\n".join(f.read_text() for f in (root / "etc/apt").rglob("*") if f.is_file())
    assert "file:" not in etc and "127.0.0.1" not in etc
    assert not (root / "var/lib/gpuwizard/bundle").exists()  # APT_CONFIG's files lived in the session's temp dir
    # the bundle gone, the host's own apt as it was
    sb = prepare("airgapped", root)
    assert sb.run(["apt-get", "update"]).returncode == 0


def without_image(full_bundle: Path, tmp_path: Path, needle: str) -> Path:
    """A copy of the bundle without the image whose reference holds ``needle`` (a smaller or older one)."""
    bundle = copy_of(full_bundle, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    rel = next(r for r, m in manifest["files"].items() if needle in str(m.get("image")))
    del manifest["files"][rel]
    (bundle / rel).unlink()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_images_load_into_a_kind_cluster_whose_context_was_renamed(full_bundle: Path, tmp_path: Path):
    """The Kind cluster made from the bundle, its context then renamed (``kubectl config
    rename-context kind-gpu-cluster lab``): the operator and HAMi, given ``existing_context: lab``,
    still load the bundle's images into its nodes, the cluster's name read off them
    (gpu-cluster-control-plane), not off the context's name; the charts then run with no registry."""
    root = tmp_path / "s"
    host = yaml.safe_load(FULL.read_text())
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump({k: v for k, v in host.items() if k in ("version", "detect", "driver", "cuda",
                                                                            "container", "kind")}))
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--bundle", str(full_bundle), "--answers", str(first))
    assert code == 0, out + err
    sb = prepare("airgapped", root)
    assert sb.world()["clusters"][0].get("loaded_images", []) == []  # nothing the cluster pulls loaded yet

    def renamed(world: dict) -> None:
        world["clusters"][0]["context"] = "lab"
        world["current_context"] = "lab"

    sb.mutate(renamed)
    rest = tmp_path / "rest.yaml"
    rest.write_text(yaml.safe_dump({"version": 1, "kind": {"existing_context": "lab"},
                                    **{k: v for k, v in host.items() if k in ("operator", "hami")}}))
    code, plan, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--bundle", str(full_bundle),
                          "--answers", str(rest))
    assert code == 0, plan + err
    assert "load docker.io/projecthami/hami:v2.10.0 into the nodes of Kind cluster gpu-cluster" in plan
    assert "load into Kind clusters only" not in plan
    before = len(sb.calls())
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--bundle", str(full_bundle), "--answers", str(rest))
    assert code == 0, out + err
    assert "all requested steps done" in out
    loads = [c["argv"] for c in sb.calls()[before:] if c["argv"][:3] == ["kind", "load", "docker-image"]]
    assert loads and all(argv[-2:] == ["--name", "gpu-cluster"] for argv in loads)
    assert set(sb.world()["clusters"][0]["loaded_images"]) == {m["loaded_as"] for m in json.loads(
        (full_bundle / "manifest.json").read_text())["files"].values() if m.get("pulled_by") == "cluster"}


def test_a_bundle_without_hamis_hook_image_fails_the_install_as_helm_does(full_bundle: Path, tmp_path: Path):
    """HAMi's pre-install hook Job (kube-webhook-certgen) cannot pull: helm waits for it and fails the
    install; the plan had named the image."""
    bundle = without_image(full_bundle, tmp_path, "kube-webhook-certgen")
    root = tmp_path / "s"
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--bundle", str(bundle), "--answers", str(FULL))
    assert code == 1
    assert "the offline bundle lacks 1 image(s) the cluster pulls here: docker.io/liangjw/kube-webhook-certgen:v1.1.1" in out
    assert "[operator] done" in out and "[hami] failed" in out
    assert "Error: INSTALLATION FAILED: failed pre-install: timed out waiting for the condition" in out


def test_an_image_the_bundle_lacks_is_named_at_plan_time_and_fails_with_containerds_words(full_bundle: Path,
                                                                                          tmp_path: Path):
    """A bundle without dcgm-exporter's image (a smaller or older one): the plan names it; the run stops
    at the operator's pods, the image's pull failing as containerd says when the registry's name does
    not resolve, without waiting out the timeout."""
    bundle = without_image(full_bundle, tmp_path, "dcgm-exporter")
    root = tmp_path / "s"
    image = "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"
    code, out, err = run("plan", "--simulate", "airgapped", "--root", str(root), "--bundle", str(bundle), "--answers", str(FULL))
    assert code == 0, out + err
    assert f"the offline bundle lacks 1 image(s) the cluster pulls here: {image}" in out
    code, out, err = run("--simulate", "airgapped", "--root", str(root), "--bundle", str(bundle), "--answers", str(FULL))
    assert code == 1
    assert "gpu-operator pods in gpu-operator are failing" in out
    assert f'failed to pull and unpack image "{image}"' in out and "dial tcp: lookup nvcr.io: no such host" in out
