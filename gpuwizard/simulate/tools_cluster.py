"""Simulated cluster tools: kind create/delete, kubectl (pods, namespaces and their deletion, labels, apply,
logs, ClusterPolicy), helm (repos add/update/remove, upgrade --install, get values, history, rollback,
uninstall), docker exec/inspect into Kind nodes, nvidia-ctk config, sysctl, install and tar (the
kind/kubectl/helm release installs).

Imported lazily (``TOOLS["kind"] = "gpuwizard.simulate.tools_cluster:kind"``); every command this
module does not model falls through to the plain handlers in ``tools`` (version, get nodes, helm
list...). Built-in modules only.

One cluster model lives in the world (``world["clusters"][i]``): nodes (labels, capacity, the host
GPUs mounted into them, whether ``/sbin/ldconfig.real`` exists), namespaces with labels, helm
releases with their values, user pods (the cuda-vectoradd check) and a settle counter. The pods of
gpu-operator and HAMi, the ClusterPolicy state, the GFD labels and each node's ``nvidia.com/gpu``
capacity are *derived* from that by :func:`reconcile`, so what verification reads is what the
install produced.

Faults (``world["cluster_faults"]``, a mapping):
  ``image_pull: "<pod name prefix>"``  that pod stays in ErrImagePull / ImagePullBackOff
  ``validator: true``                   nvidia-operator-validator's init containers fail
  ``hami_plugin_crash: true``           hami-device-plugin crash-loops
  ``hami_plugin_stale: "no-devices"``   hami-device-plugin Running but "No devices found. Waiting indefinitely."
                                        (started before the driver: HAMi#136, #713), no registration
  ``hami_plugin_stale: "physical"``     hami-device-plugin Running, the node's nvidia.com/gpu = its physical
                                        GPU count (HAMi#736); both until that pod is deleted in the node's boot
  ``settle_polls: N``                   after create/install, N reads see nodes NotReady / pods creating
  ``unreachable_registries: [host]``    pulls from these registries time out (ErrImagePull / ImagePullBackOff,
                                        the containerd error in the pod's events)
Unreachable API: stop docker (Kind) or set the cluster's ``running: false``.

Outputs are modelled on real ones: ``kind create cluster`` (kind v0.25 release notes and
kubernetes-sigs/kind docs: "Creating cluster ... ✓ Ensuring node image ..."), ``helm upgrade
--install`` ("Release \\"x\\" does not exist. Installing it now." / NAME / LAST DEPLOYED / NAMESPACE /
STATUS / REVISION / TEST SUITE), ``helm repo add/update`` as helm 3 prints them, the seed recipe's
``kubectl get pod -n gpu-operator`` table and ``kubectl logs cuda-vectoradd`` output.
"""
import os
import sys
from typing import Any

from gpuwizard.simulate import tools as T
from gpuwizard.simulate import world as W

# ---------------------------------------------------------------------------------------------
# catalogue: charts the simulated repositories hold, releases of the tools

# The charts' indexes, oldest first: the releases gpuwizard has real data for
# (../shared/upstream/charts, gpuwizard/assets/charts/keys) and a few others of the same lines.
def chart_archive(chart: str, version: str) -> bytes:
    """The simulated internet's <chart>-<version>.tgz: a real gzip'd tar holding <chart>/Chart.yaml, its
    bytes fixed (no timestamps), so its digest in the index is stable."""
    import gzip
    import io
    import tarfile

    body = ("apiVersion: v2\nname: %s\nversion: %s\ndescription: gpuwizard's simulated copy of the chart\n"
            % (chart, version)).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("%s/Chart.yaml" % chart)
        info.size, info.mtime, info.mode = len(body), 0, 0o644
        tar.addfile(info, io.BytesIO(body))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _archive_chart(path: str):
    """(name, version) from a chart archive's <chart>/Chart.yaml, or None."""
    import tarfile

    import yaml

    try:
        with tarfile.open(path, "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")), None)
            handle = tar.extractfile(member) if member is not None else None
            data = handle.read() if handle is not None else None
    except (OSError, tarfile.TarError):
        return None
    doc = yaml.safe_load(data) if data else None
    if not isinstance(doc, dict) or not doc.get("name"):
        return None
    return str(doc["name"]), str(doc.get("version"))


def repo_indexes() -> dict:
    """The simulated internet's chart repositories: <repo URL>/index.yaml for each of REPOS in Helm's
    index format (entries: {chart: [{name, version, urls, digest}, ...]}, newest first; urls absolute,
    as NVIDIA's index gives them), and each archive it names (chart_archive)."""
    import hashlib

    import yaml

    out: dict[str, bytes | str] = {}
    for url, charts in REPOS.items():
        base = url.rstrip("/")
        entries: dict[str, list[dict[str, Any]]] = {}
        for chart, versions in charts.items():
            entries[chart] = []
            for v in reversed(versions):
                archive = chart_archive(chart, v)
                tgz = "%s/charts/%s-%s.tgz" % (base, chart, v)
                out[tgz] = archive
                entries[chart].append({"name": chart, "version": v, "urls": [tgz],
                                       "digest": hashlib.sha256(archive).hexdigest()})
        out[base + "/index.yaml"] = yaml.safe_dump({"apiVersion": "v1", "entries": entries})
    return out


def tools_host_offline(world) -> bool:
    from gpuwizard.simulate import tools_host

    return tools_host.offline(world)


def _local_index(ctx, url: str):
    """{chart: [versions]} of the index.yaml a chart repository on 127.0.0.1 serves (Helm's index format:
    ``entries: {chart: [{version: ...}, ...]}``, newest first as `helm repo index` writes it), or None."""
    from gpuwizard.simulate import tools_host

    if not tools_host.is_local_url(url):
        return None
    rc, data, _message = tools_host.fetch_local(ctx, url.rstrip("/") + "/index.yaml")
    if rc:
        return None
    import yaml

    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        return None
    return {chart: sorted((str(e.get("version")) for e in items if isinstance(e, dict)), key=_version_key)
            for chart, items in entries.items() if isinstance(items, list)}


def _version_key(v: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(v.lstrip("v")))
    except InvalidVersion:
        return (1, v)


REPOS = {
    "https://helm.ngc.nvidia.com/nvidia": {"gpu-operator": [
        "v24.6.2", "v24.9.0", "v24.9.2", "v25.3.0", "v25.3.4", "v25.10.0", "v25.10.1", "v26.3.0", "v26.3.3",
        "v26.7.0"]},
    "https://project-hami.github.io/HAMi/": {"hami": [
        "2.4.1", "2.5.0", "2.5.3", "2.6.1", "2.7.0", "2.7.1", "2.8.3", "2.9.0", "2.10.0"]},
}
KIND_NODE_GPU_DIR = "/var/run/nvidia-container-devices/"
DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system", "local-path-storage")

VECTORADD_LOG = ["[Vector addition of 50000 elements]",
                 "Copy input data from the host memory to the CUDA device",
                 "CUDA kernel launch with 196 blocks of 256 threads",
                 "Copy output data from the CUDA device to the host memory",
                 "Test PASSED",
                 "Done"]

# tool release downloads: url -> (tool, version, kind)
RELEASES = {
    "kind": "https://github.com/kubernetes-sigs/kind/releases/download/%(v)s/kind-linux-%(arch)s",
    "kubectl": "https://dl.k8s.io/release/%(v)s/bin/linux/%(arch)s/kubectl",
    "helm": "https://get.helm.sh/helm-%(v)s-linux-%(arch)s.tar.gz",
}
SIM_BINARY = "gpuwizard-sim-binary %s %s\n"
SIM_TARBALL = "gpuwizard-sim-tarball %s %s %s\n"


def _sha256(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def release_urls(world) -> dict:
    """The simulated internet's copies of the kind/kubectl/helm releases and their checksum files."""
    arch = T._arch_go(world)
    out = {}
    # the older releases stay: hosts and tests that pinned them still download them
    releases = (("kind", ("v0.24.0", "v0.25.0", "v0.33.0")), ("kubectl", ("v1.31.2", "v1.36.5")),
                ("helm", ("v3.16.2", "v4.3.0")))
    for tool, versions in releases:
        for v in versions:
            url = RELEASES[tool] % {"v": v, "arch": arch}
            body = (SIM_TARBALL % (tool, v, arch)) if url.endswith(".tar.gz") else (SIM_BINARY % (tool, v))
            out[url] = body
            base = url.rsplit("/", 1)[1]
            # kind and helm publish "<sha>  <file>" (.sha256sum); kubectl publishes the bare hash (.sha256)
            if tool == "kubectl":
                out[url + ".sha256"] = _sha256(body)
            else:
                out[url + ".sha256sum"] = "%s  %s\n" % (_sha256(body), base)
    return out


# ---------------------------------------------------------------------------------------------
# helpers


def _p(ctx, path):
    """A path in an argv -> the file in the sandbox. The wizard passes root-mapped paths (as for a
    --root image); a plain system path is mapped too."""
    root = str(ctx.root).rstrip("/")
    if path == root or path.startswith(root + "/"):
        return path
    return W.host_path(ctx.root, path)


def _unmap(ctx, path):
    root = str(ctx.root).rstrip("/")
    if path == root or path.startswith(root + "/"):
        return "/" + path[len(root):].lstrip("/")
    return path


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _suffix(seed: str, n: int = 5) -> str:
    """Deterministic pod-name suffix (FNV-1a), from the alphabet Kubernetes uses."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    h = 2166136261
    for ch in seed:
        h = ((h ^ ord(ch)) * 16777619) & 0xFFFFFFFF
    out = ""
    for _ in range(n):
        out += alphabet[h % len(alphabet)]
        h //= len(alphabet)
        if h == 0:
            h = 2166136261 ^ len(out)
    return out


def _get(tree, dotted, default=None):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _cluster(world, name):
    for c in world.get("clusters", []):
        if c["name"] == name and c.get("provider", "kind") == "kind":
            return c
    return None


def _context_cluster(ctx, context):
    """(cluster or None, rc or None) — prints the real errors for a missing context / refused API."""
    c, refused = T._kube_connect(ctx, context)
    if refused == 1:
        return None, 1
    if refused:
        return None, refused
    return c, None


def _locate(world, cname):
    for i, c in enumerate(world.get("clusters", [])):
        if c["name"] == cname:
            return i
    return None


def _node_gpu_count(world, node) -> int:
    if node.get("node_gpus"):
        return len(node["node_gpus"])
    g = node.get("gpus")
    if g == "all":
        return len(world.get("gpus", []))
    if isinstance(g, list):
        return len(g)
    return 0


def _node_driver(world, node):
    """The NVIDIA driver on the machine of a node: the gpu-operator's driver container's where it runs
    there (recorded by ``reconcile``), its own (``driver:`` of a node that is another machine), else
    this host's."""
    if node.get("operator_driver"):
        return node["operator_driver"]
    if "driver" in node:
        return node["driver"]
    return world.get("driver")


# The CUDA version nvidia-smi's header prints for the driver branches the gpu-operator charts pin
# (driver.version: v24.9.2 550.144.03, v25.3.4-v26.3.3 580.x, v26.7.0 595.91.07): real nvidia-smi
# headers "Driver Version: 550.144.03 CUDA Version: 12.4", "580.126.20 ... 13.0", "595.91.07 ... 13.2"
# (find_string index ids 69439466327, 55122935089, 70381105810).
DRIVER_BRANCH_CUDA = {"550": "12.4", "570": "12.8", "575": "12.9", "580": "13.0", "590": "13.1", "595": "13.2"}


def _operator_driver(release) -> dict:
    """The driver the gpu-operator's driver container builds and loads: the chart's driver.version."""
    version = str(_get(effective_values(release), "driver.version") or "")
    return {"version": version, "cuda_version": DRIVER_BRANCH_CUDA.get(version.split(".")[0]), "kind": "gpu-operator"}


def _gfd_driver_labels(driver) -> dict:
    """The driver and CUDA labels GPU Feature Discovery puts on a node (as NVIDIA's gpu-operator docs
    show them: nvidia.com/cuda.driver-version.full=550.90.07 ... nvidia.com/cuda.runtime.minor=4)."""
    parts = (str(driver.get("version") or "").split(".") + ["", "", ""])[:3]
    labels = {"nvidia.com/cuda.driver-version.full": driver["version"],
              "nvidia.com/cuda.driver-version.major": parts[0], "nvidia.com/cuda.driver-version.minor": parts[1],
              "nvidia.com/cuda.driver-version.revision": parts[2],
              "nvidia.com/cuda.driver.major": parts[0], "nvidia.com/cuda.driver.minor": parts[1],
              "nvidia.com/cuda.driver.rev": parts[2]}
    cuda = driver.get("cuda_version")
    if cuda:
        major, _, minor = str(cuda).partition(".")
        labels.update({"nvidia.com/cuda.runtime-version.full": cuda, "nvidia.com/cuda.runtime-version.major": major,
                       "nvidia.com/cuda.runtime-version.minor": minor, "nvidia.com/cuda.runtime.major": major,
                       "nvidia.com/cuda.runtime.minor": minor})
    return {k: v for k, v in labels.items() if v}


NFD_NVIDIA_PCI = "feature.node.kubernetes.io/pci-10de.present"  # NFD's label for a node with an NVIDIA PCI device
TOOLKIT_SOCKET = "/run/containerd/containerd.sock"  # the toolkit's CONTAINERD_SOCKET default


def _toolkit_env(release) -> dict:
    """The toolkit container's env (``toolkit.env: [{name, value}]`` of the effective values)."""
    env = _get(effective_values(release), "toolkit.env") or []
    return {str(e.get("name")): str(e.get("value")) for e in env if isinstance(e, dict) and e.get("name")}


def _node_gpus(world, node) -> list:
    if node.get("node_gpus"):  # a node that is another machine: its own GPUs
        # bus id default 00:1e.0, where an AWS g4dn's T4 sits (nvidia-smi: 00000000:00:1E.0)
        return [dict(g, index=i, uuid=g.get("uuid") or "GPU-%s" % T._uid_of("%s/%d" % (node["name"], i)),
                     slot=g.get("slot") or "00:%02x.0" % (0x1e + i))
                for i, g in enumerate(node["node_gpus"])]
    gpus = T.smi_gpus(world)
    g = node.get("gpus")
    if g == "all":
        return gpus
    if isinstance(g, list):
        return [x for x in gpus if x["index"] in g]
    return []


def parse_values(text: str) -> dict:
    """The values files the wizard writes: nested ``key:`` blocks by two-space indentation, scalars
    and flow collections in JSON syntax, ``#`` comments. (Tools run without PyYAML.)"""
    json = T._json()
    root: dict = {}
    stack = [(-1, root)]
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() == "---":
            continue
        indent = len(line) - len(line.lstrip(" "))
        key, _, value = line.strip().partition(":")
        key = key.strip().strip('"')
        value = value.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value == "":
            parent[key] = {}
            stack.append((indent, parent[key]))
            continue
        try:
            parent[key] = json.loads(value)
        except ValueError:
            parent[key] = {"true": True, "false": False, "null": None}.get(value, value)
    return root


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _set_dotted(tree, dotted, value):
    json = T._json()
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    try:
        value = json.loads(value)
    except ValueError:
        pass
    node[parts[-1]] = value


# ---------------------------------------------------------------------------------------------
# chart defaults and Helm's coalescing (pkg/chartutil/coalesce.go)

KEYS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "charts", "keys")
_DEFAULTS_CACHE: dict = {}


def _hv():
    from gpuwizard import helm_values as H  # lazy: a simulated tool imports only what it uses
    return H


def chart_defaults(chart: str, version: str) -> dict:
    """The chart's own values.yaml at ``version`` (the generated key files; tools/chart_keys.py), or
    the nearest older release of the same minor (the oldest of it, if none is older); {} when
    gpuwizard has none for that line."""
    key = (chart, version)
    if key not in _DEFAULTS_CACHE:
        from gpuwizard import versions as V  # lazy, as above
        json = T._json()
        name = os.path.join(KEYS_DIR, "%s-%s.json" % (chart, version))
        if not os.path.exists(name):
            minor = V.major_minor(version)
            same = [f[len(chart) + 1:-5] for f in os.listdir(KEYS_DIR) if f.startswith(chart + "-")
                    and V.major_minor(f[len(chart) + 1:-5]) == minor] if os.path.isdir(KEYS_DIR) else []
            older = [v for v in same if V.parse(v) <= V.parse(version)]
            pick = max(older, key=V.key) if older else (min(same, key=V.key) if same else None)
            name = os.path.join(KEYS_DIR, "%s-%s.json" % (chart, pick)) if pick else ""
        tree: dict = {}
        if name:
            with open(name, encoding="utf-8") as f:
                tree = _hv().unflatten(json.load(f).get("keys") or {})
        _DEFAULTS_CACHE[key] = tree
    return T._json().loads(T._json().dumps(_DEFAULTS_CACHE[key]))


def coalesce(user, defaults, warn=None, chart="", helm3=False):
    """Helm's coalescing of user values over chart defaults (gpuwizard/helm_values.py); ``helm3``:
    Helm 3's, which keeps the chart's null defaults."""
    return _hv().coalesce(user, defaults, warn, chart, helm3)


def _split_chart(ref: str):
    """"gpu-operator-v25.10.0-rc.1" -> ("gpu-operator", "v25.10.0-rc.1"): the version starts at the
    first "-<digit>" or "-v<digit>", as in helm list's chart column."""
    parts = ref.split("-")
    for i in range(1, len(parts)):
        p = parts[i]
        if p[:1].isdigit() or (p[:1] == "v" and p[1:2].isdigit()):
            return "-".join(parts[:i]), "-".join(parts[i:])
    return ref, ""


def _version_of(release) -> str:
    return _split_chart(release["chart"])[1]


def release_defaults(release) -> dict:
    """The chart values a release's templates start from: its chart's values.yaml, or, after a
    ``--reuse-values`` upgrade, the computed values of the release before it (Helm replaces the new
    chart's values with those: pkg/action/upgrade.go reuseValues)."""
    if "chart_values" in release:
        return T._json().loads(T._json().dumps(release["chart_values"]))
    return chart_defaults(_split_chart(release["chart"])[0], _version_of(release))


def effective_values(release, warn=None, helm3=False) -> dict:
    """What the chart's templates see: the release's user values over the chart values it starts from."""
    return coalesce(release.get("values") or {}, release_defaults(release), warn, _split_chart(release["chart"])[0],
                    helm3)


def hami_derived(version: str, values: dict, kube_version: str = "v1.31.2") -> dict:
    """What HAMi's templates make of effective ``values`` at chart ``version`` (checked against
    ../shared/upstream/renders): the device plugin's nodeSelector (``nvidianodeSelector`` before
    2.8), the split count (hard-coded 10 before 2.5), the kube-scheduler image (the tag hard-coded to
    the cluster's version before 2.5; ``imageTag`` 2.5-2.6; ``image.{registry,repository,tag}`` from
    2.7, an empty tag filled from 2.10 on), the device plugin's runtimeClassName."""
    from gpuwizard import versions as V  # lazy, as above
    dp = values.get("devicePlugin") or {}
    ks = (values.get("scheduler") or {}).get("kubeScheduler") or {}
    selector = dp.get("nvidiaNodeSelector" if V.at_least(version, "2.8") else "nvidianodeSelector") or {}
    split = 10 if not V.at_least(version, "2.5") else int(dp.get("deviceSplitCount", 10))
    image = ks.get("image")

    def text(v):
        if isinstance(v, dict):  # Go's fmt of a map, as the real render shows it
            return "map[%s]" % " ".join("%s:%s" % (k, text(v[k])) for k in sorted(v))
        return str(v)
    if not V.at_least(version, "2.5"):
        sched = "%s:%s" % (text(image), kube_version)
    elif not V.at_least(version, "2.7"):
        sched = "%s:%s" % (text(image), ks.get("imageTag") or kube_version)
    else:
        img = image if isinstance(image, dict) else {}
        tag = img.get("tag") or (kube_version if V.at_least(version, "2.10") else "")
        sched = "%s/%s:%s" % (img.get("registry"), img.get("repository"), tag) if img.get("registry") else \
            "%s:%s" % (img.get("repository"), tag)
    return {"node_selector": dict(selector), "split_count": split, "scheduler_image": sched,
            "runtime_class": dp.get("runtimeClassName") or ""}


def operator_derived(values: dict) -> dict:
    """The gpu-operator components its ClusterPolicy turns on, from effective ``values``."""
    def on(k):
        return (values.get(k) or {}).get("enabled", True) is not False
    return {"driver": on("driver"), "toolkit": on("toolkit"), "device_plugin": on("devicePlugin"),
            "cdi": bool((values.get("cdi") or {}).get("enabled", False)),
            "runtime_class": (values.get("operator") or {}).get("runtimeClass", "nvidia")}


# ---------------------------------------------------------------------------------------------
# the model: derived pods, ClusterPolicy, labels and capacity


def _namespaces(c) -> dict:
    """The cluster's namespaces (materialized: the defaults plus every release's namespace)."""
    spaces = c.get("namespaces")
    if not spaces:
        spaces = {n: {"labels": {"kubernetes.io/metadata.name": n}} for n in DEFAULT_NAMESPACES}
    for r in c.get("releases", []):
        ns = r.get("namespace", "default")
        spaces.setdefault(ns, {"labels": {"kubernetes.io/metadata.name": ns}})
    c["namespaces"] = spaces
    return spaces


def _release_of(c, chart):
    for r in c.get("releases", []):
        if _split_chart(r["chart"])[0] == chart:
            return r
    return None


def _pod(name, ns, node, ready, status, restarts=0, age="2m", logs=None, reason=None, containers=1, owner=None):
    return {"name": name, "namespace": ns, "node": node, "ready": ready, "status": status,
            "restarts": restarts, "age": age, "logs": logs or [], "reason": reason, "containers": containers,
            "owner": owner}


def _ok(n):
    return "%d/%d" % (n, n)


def operator_cdi(release) -> bool:
    v = _get(effective_values(release), "cdi.enabled")
    if v is None:
        return _chart_at_least(release, "25.10")
    return bool(v)


def _chart_at_least(release, minor: str) -> bool:
    """The release's chart ("gpu-operator-v25.10.0", "hami-2.7.0") is from the ``minor`` line or later
    (a value layout changes with a minor release; its release candidates already have it)."""
    from gpuwizard import versions as V  # lazy: packaging brings re and typing, and most tools never compare
    return V.at_least(V.major_minor(_version_of(release)), minor)


def _cuda_newer(need: str, have: str) -> bool:
    """The pod's CUDA (from its image tag) is newer than what the driver supports; a tag that is
    no version asks for nothing."""
    from gpuwizard import versions as V  # lazy, as above
    try:
        return V.compare(need, have) > 0
    except ValueError:
        return False


def _remember_crds(c) -> None:
    """The CRDs a release's chart installed stay in the cluster after it (Helm never deletes CRDs)."""
    if _release_of(c, "gpu-operator") is not None and "clusterpolicies.nvidia.com" not in c.setdefault("crds", []):
        c["crds"].append("clusterpolicies.nvidia.com")


def reconcile(world, c) -> None:
    """Derive pods, node labels and capacity from the releases, nodes and faults (in place)."""
    _remember_crds(c)
    faults = world.get("cluster_faults") or {}
    kind_cluster = c.get("provider", "kind") == "kind"
    pods = [p for p in c.get("pods", []) if p.get("owner") == "user"]
    nodes = c.get("nodes", [])
    op = _release_of(c, "gpu-operator")
    hami = _release_of(c, "hami")
    plugin_on_node: dict[str, str | tuple[str, int]] = {}  # node -> "operator" | ("hami", vGPUs)
    daemonsets = []  # the node-selected DaemonSets `kubectl get daemonsets` shows
    op_ready = False
    if op:
        ns = op.get("namespace", "gpu-operator")
        vals = op.get("values") or {}
        rel = op["name"]
        driver = _get(vals, "driver.enabled", True) is not False
        toolkit = _get(vals, "toolkit.enabled", True) is not False
        plugin = _get(vals, "devicePlugin.enabled", True) is not False
        ops = [
            _pod("gpu-operator-%s-%s" % (_suffix(rel + "rs", 10), _suffix(rel)), ns, nodes[0]["name"], "1/1", "Running", age="109s"),
            _pod("%s-node-feature-discovery-gc-%s-%s" % (rel, _suffix(rel + "gc", 10), _suffix(rel + "gc2")), ns,
                 nodes[0]["name"], "1/1", "Running", age="109s"),
            _pod("%s-node-feature-discovery-master-%s-%s" % (rel, _suffix(rel + "m", 8), _suffix(rel + "m2")), ns,
                 nodes[0]["name"], "1/1", "Running", age="109s"),
        ]
        ok = True
        for n in nodes:
            ops.append(_pod("%s-node-feature-discovery-worker-%s" % (rel, _suffix(n["name"] + "nfd")), ns, n["name"],
                            "1/1", "Running", age="103s"))
            count = _node_gpu_count(world, n)
            if not count:
                continue  # a node without GPU (a control plane): NFD finds no NVIDIA device, nothing more runs there
            if not kind_cluster:
                # NFD's worker reads the node's PCI devices (vendor 10de); gpu-operator's operands select on it
                n.setdefault("labels", {})[NFD_NVIDIA_PCI] = "true"
            n.pop("operator_driver", None)
            ndrv = _node_driver(world, n)
            sfx = lambda what, name=n["name"]: _suffix(name + what)  # noqa: E731
            failing = None
            if driver and not kind_cluster and not ndrv:
                # a machine without NVIDIA driver: the driver container builds and loads it
                ops.append(_pod("nvidia-driver-daemonset-%s" % sfx("drv"), ns, n["name"], "1/1", "Running", age="95s"))
                n["operator_driver"] = _operator_driver(op)
            elif driver:
                msg = ("Could not load the NVIDIA kernel module from inside the Kind node" if kind_cluster
                       else "driver container failed to build the kernel module")
                ops.append(_pod("nvidia-driver-daemonset-%s" % sfx("drv"), ns, n["name"], "0/1", "Init:CrashLoopBackOff",
                                restarts=6, reason=msg, logs=["Stopping NVIDIA persistence daemon...",
                                                              "Unloading NVIDIA driver kernel modules...",
                                                              "Could not unload NVIDIA driver kernel modules, driver is in use"
                                                              if ndrv else msg]))
                failing = "driver"
            sock_err = None
            if toolkit:
                # the toolkit reconfigures and signals the containerd at CONTAINERD_SOCKET (default
                # /run/containerd/containerd.sock); k3s and RKE2 run theirs at /run/k3s/containerd/containerd.sock,
                # so without toolkit.env the toolkit finds no containerd (gpu-operator#406 and #522, RKE2; #238, k3s)
                sock = n.get("containerd_socket") or TOOLKIT_SOCKET
                if not kind_cluster and _toolkit_env(op).get("CONTAINERD_SOCKET", TOOLKIT_SOCKET) != sock:
                    sock_err = ("Error signaling containerd, attempt 5/6: unable to dial: dial unix "
                                "/runtime/sock-dir/containerd.sock: connect: no such file or directory")
                    ops.append(_pod("nvidia-container-toolkit-daemonset-%s" % sfx("tk"), ns, n["name"], "0/1",
                                    "CrashLoopBackOff", restarts=4, reason=sock_err,
                                    logs=['time="2024-11-10T09:37:40Z" level=info msg="Starting nvidia-toolkit"',
                                          'time="2024-11-10T09:37:52Z" level=warning msg="%s"' % sock_err,
                                          'time="2024-11-10T09:37:57Z" level=fatal msg="error running nvidia-toolkit: '
                                          'unable to setup runtime: unable to restart containerd"']))
                else:
                    ops.append(_pod("nvidia-container-toolkit-daemonset-%s" % sfx("tk"), ns, n["name"], "1/1", "Running",
                                    age="73s"))
            if faults.get("validator") or failing or sock_err or (toolkit and kind_cluster and not n.get("ldconfig_real")) \
                    or (not toolkit and not n.get("nvidia_runtime")):
                why = ("failed to run nvidia-container-cli: ldconfig.real: no such file or directory"
                       if toolkit and kind_cluster and not n.get("ldconfig_real")
                       else "toolkit validation failed: nvidia-container-toolkit is not ready" if sock_err
                       else "driver validation failed")
                ops.append(_pod("nvidia-operator-validator-%s" % sfx("val"), ns, n["name"], "0/1",
                                "Init:CrashLoopBackOff", restarts=5, reason=why,
                                logs=["time=\"2024-11-10T09:38:01Z\" level=info msg=\"version: 8f0b1ba5\"",
                                      "time=\"2024-11-10T09:38:02Z\" level=error msg=\"%s\"" % why]))
                ok = False
                continue
            ops.append(_pod("gpu-feature-discovery-%s" % sfx("gfd"), ns, n["name"], "1/1", "Running", age="71s"))
            ops.append(_pod("nvidia-cuda-validator-%s" % sfx("cv"), ns, n["name"], "0/1", "Completed", age="20s"))
            ops.append(_pod("nvidia-dcgm-exporter-%s" % sfx("dcgm"), ns, n["name"], "1/1", "Running", age="72s"))
            if plugin:
                ops.append(_pod("nvidia-device-plugin-daemonset-%s" % sfx("dp"), ns, n["name"], "1/1", "Running", age="72s"))
                plugin_on_node[n["name"]] = "operator"
            ops.append(_pod("nvidia-operator-validator-%s" % sfx("val"), ns, n["name"], "1/1", "Running", age="73s"))
            if not n.get("nvidia_runtime"):
                n["operator_runtime"] = True  # the toolkit container added it: it reverts it when it stops
            n["nvidia_runtime"] = True
            if not operator_cdi(op):
                n["nvidia_default_runtime"] = True
            labels = n.setdefault("labels", {})
            gpus = _node_gpus(world, n)
            labels["nvidia.com/gpu.present"] = "true"
            labels["nvidia.com/gpu.count"] = str(count)
            if gpus:
                labels["nvidia.com/gpu.product"] = gpus[0]["name"].replace(" ", "-")
            if (serving := _node_driver(world, n)) and serving.get("version"):
                labels.update(_gfd_driver_labels(serving))
        effective_op = effective_values(op)
        for p in ops:
            image = _operator_pod_image(op, effective_op, p["name"])
            comp = None if "-node-feature-discovery-" in p["name"] else next(
                (cn for prefix, cn in OPERATOR_POD_COMPONENTS if p["name"].startswith(prefix)), None)
            policy = (effective_op.get(comp) or {}).get("imagePullPolicy", "IfNotPresent") if comp else "IfNotPresent"
            if _unpullable(world, c, image, policy):
                _pull_back_off(p, image)
                ok = False
        prefix = faults.get("image_pull")
        for p in ops:
            if prefix and p["name"].startswith(prefix):
                p.update(ready="0/1", status="ImagePullBackOff", restarts=0,
                         reason='Back-off pulling image "nvcr.io/nvidia/%s": manifest unknown' % prefix)
                ok = False
        pods += ops
        op_ready = ok
        c["clusterpolicy"] = {"name": "cluster-policy", "state": "ready" if ok else "notReady"}
    else:
        c.pop("clusterpolicy", None)
    if hami:
        ns = hami.get("namespace", "kube-system")
        vals = hami.get("values") or {}
        rel = hami["name"]
        # what the chart's templates make of the effective values (chart defaults + user values)
        derived = hami_derived(_version_of(hami), effective_values(hami), c.get("version") or "v1.31.2")
        split = derived["split_count"]
        selector = derived["node_selector"]
        rtc = derived["runtime_class"]
        tag = derived["scheduler_image"].rsplit(":", 1)[1]
        sched = _pod("%s-scheduler-%s-%s" % (rel, _suffix(rel + "s", 9), _suffix(rel + "s2")), ns, nodes[0]["name"],
                     "2/2", "Running", age="12m", containers=2)
        image = _scheduler_image(hami, vals)
        sched["image"] = "%s:%s" % (image, tag)
        if not tag:
            sched.update(ready="0/2", status="InvalidImageName",
                         reason='Failed to apply default image tag "%s:": invalid reference format' % image)
        elif image.split("/", 1)[0] in (faults.get("unreachable_registries") or []):
            sched.update(ready="1/2", status="ImagePullBackOff", reason='Back-off pulling image "%s"' % sched["image"],
                         pull_error=_pull_timeout(sched["image"]))
        hami_image = _hami_image(hami, effective_values(hami))
        for image in (sched["image"], hami_image):
            if sched["status"] == "Running" and _unpullable(world, c, image):
                _pull_back_off(sched, image, ready="0/2")
        pods.append(sched)
        daemonsets.append({"name": "%s-device-plugin" % rel, "namespace": ns, "selector": dict(selector),
                           "nodes": [n["name"] for n in nodes if selector and
                                     all((n.get("labels") or {}).get(k) == v for k, v in selector.items())]})
        for n in nodes:
            labels = n.get("labels", {})
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            count = _node_gpu_count(world, n)
            gen = int(n.get("hami_plugin_gen", 0))  # a deleted pod comes back under a new name (DaemonSet)
            name = "%s-device-plugin-%s" % (rel, _suffix(n["name"] + "hami" + (str(gen) if gen else "")))
            # what a plugin patched stays on the node until one patches it again (nothing clears it on a
            # reboot or when the plugin stops), so a plugin that registers nothing leaves the last one
            annotations = n.setdefault("annotations", {})
            if _unpullable(world, c, hami_image):
                plugin = _pod(name, ns, n["name"], "0/2", "Running", containers=2)
                _pull_back_off(plugin, hami_image, ready="0/2")
                pods.append(plugin)
                continue
            crash = None
            if faults.get("hami_plugin_crash"):
                crash = "nvml init failed: ERROR_LIBRARY_NOT_FOUND"
            elif not count:
                crash = "no NVIDIA GPU found on node %s (is it a GPU node?)" % n["name"]
            elif op and operator_cdi(op) and rtc != "nvidia":
                crash = "Incompatible strategy detected auto; libcuda.so.1: cannot open shared object file"
            elif not n.get("nvidia_runtime"):
                crash = "could not load NVML library: libnvidia-ml.so.1: cannot open shared object file"
            elif not n.get("nvidia_default_runtime") and rtc != "nvidia":
                crash = "Incompatible strategy detected auto; libcuda.so.1: cannot open shared object file"
            if crash:
                pods.append(_pod(name, ns, n["name"], "1/2", "CrashLoopBackOff", restarts=5, containers=2, reason=crash,
                                 logs=["I1110 10:14:58.112233       1 main.go:159] Starting FS watcher.",
                                       "I1110 10:14:58.112301       1 main.go:166] Starting OS watcher.",
                                       "E1110 10:14:58.201442       1 main.go:132] %s" % crash,
                                       "F1110 10:14:58.201501       1 main.go:133] failed to start plugins"]))
                continue
            stale = faults.get("hami_plugin_stale")
            if stale and n.get("hami_restart_boot") != T.node_boot_id(world, n):
                if stale == "no-devices":
                    # the plugin started before the node's driver was loaded (after a reboot, HAMi#136, #713):
                    # with no device it waits forever (cmd/device-plugin/nvidia/main.go) and registers nothing
                    pods.append(_pod(name, ns, n["name"], "2/2", "Running", age="3m12s", containers=2,
                                     logs=["I1110 10:14:58.112233       1 main.go:159] Starting FS watcher.",
                                           "I1110 10:14:58.112301       1 main.go:166] Starting OS watcher.",
                                           "I1110 10:14:58.201442       1 main.go:251] No devices found. Waiting "
                                           "indefinitely."]))
                    continue
                # after a reboot the node advertises its physical GPU count, not its vGPUs, until the plugin
                # pod is restarted (HAMi#736): kubelet kept another registration of nvidia.com/gpu
                annotations.update(_hami_registration(world, n, hami))
                pods.append(_pod(name, ns, n["name"], "2/2", "Running", age="3m12s", containers=2,
                                 logs=["I1110 10:14:58.112233       1 main.go:159] Starting FS watcher.",
                                       "I1110 10:14:58.301501       1 register.go:213] Successfully registered "
                                       "annotation. Next check in 30s seconds..."]))
                plugin_on_node[n["name"]] = ("hami", count)
                continue
            annotations.update(_hami_registration(world, n, hami))
            pods.append(_pod(name, ns, n["name"], "2/2", "Running", age="6m31s", containers=2,
                             logs=["I1110 10:14:58.112233       1 main.go:159] Starting FS watcher.",
                                   "I1110 10:14:58.301442       1 register.go:197] Registered device plugin for 'nvidia.com/gpu' with Kubelet",
                                   "I1110 10:14:58.301501       1 plugin.go:312] Devices: %d vGPU(s) on %d GPU(s)" % (count * split, count),
                                   "I1110 10:14:58.554168       1 register.go:213] Successfully registered annotation. "
                                   "Next check in 30s seconds..."]))
            plugin_on_node[n["name"]] = ("hami", count * split)
    for n in nodes:
        # NVIDIA's own device plugin, installed before gpuwizard (`helm upgrade -i nvdp nvdp/nvidia-device-plugin
        # --namespace nvidia-device-plugin`, k8s-device-plugin's README; its DaemonSet is the release's fullname):
        # beside HAMi's the node shows whichever registered last, the physical count (HAMi#829)
        if n.get("nvidia_device_plugin") and _node_gpu_count(world, n):
            pods.append(_pod("nvdp-nvidia-device-plugin-%s" % _suffix(n["name"] + "nvdp"), "nvidia-device-plugin",
                             n["name"], "1/1", "Running", age="41d"))
            plugin_on_node[n["name"]] = "nvidia"
    for n in nodes:
        cap = n.setdefault("capacity", {})
        alloc = n.setdefault("allocatable", {})
        who = plugin_on_node.get(n["name"])
        if isinstance(who, tuple):
            cap["nvidia.com/gpu"] = alloc["nvidia.com/gpu"] = str(who[1])
        elif who == "operator" and op_ready or who == "nvidia":
            cap["nvidia.com/gpu"] = alloc["nvidia.com/gpu"] = str(_node_gpu_count(world, n))
        else:
            cap.pop("nvidia.com/gpu", None)
            alloc.pop("nvidia.com/gpu", None)
    # user pods (the vectoradd check): run where nvidia.com/gpu is allocatable
    for p in pods:
        if p.get("owner") != "user":
            continue
        if p.get("status") in ("Completed", "Error"):
            continue
        if _unpullable(world, c, p.get("image")):
            _pull_back_off(p, p["image"])
            continue
        want = p.get("gpu_request", 0)
        fits = [n for n in nodes if int(n.get("capacity", {}).get("nvidia.com/gpu", "0")) >= want] if want else nodes
        if not fits:
            p.update(status="Pending", ready="0/1", reason="0/%d nodes are available: %d Insufficient nvidia.com/gpu."
                     % (len(nodes), len(nodes)))
            continue
        need = p.get("cuda")
        have = (_node_driver(world, fits[0]) or {}).get("cuda_version")
        if need and have and _cuda_newer(need, have):
            p.update(status="Error", ready="0/1", node=fits[0]["name"],
                     reason="unsatisfied condition: cuda>=%s, please update your driver to a newer version" % need,
                     logs=["Failed to allocate device vector A (error code CUDA driver version is insufficient "
                           "for CUDA runtime version)!"])
            continue
        p.update(status="Completed", ready="0/1", node=fits[0]["name"], logs=list(VECTORADD_LOG), reason=None)
    c["pods"] = pods
    c["daemonsets"] = daemonsets
    # RuntimeClasses: the cluster's own (k3s ships nvidia when it finds nvidia-container-runtime) and the
    # one gpu-operator creates for its toolkit's runtime (operator.runtimeClass, handler nvidia)
    classes = [dict(r) for r in c.get("runtime_classes") or []]
    if op and _get(op.get("values") or {}, "toolkit.enabled", True) is not False:
        name = operator_derived(effective_values(op))["runtime_class"]
        if all(r["name"] != name for r in classes):
            classes.append({"name": name, "handler": "nvidia"})
    c["runtimeclasses"] = classes


ALIYUN_SCHEDULER = "registry.cn-hangzhou.aliyuncs.com/google_containers/kube-scheduler"
# What HAMi's device plugin patches onto its node every 30 s (pkg/device-plugin/nvidiadevice/nvinternal/
# plugin/register.go, v2.4.0-v2.10.0): before 2.8 a handshake time and ":"-terminated entries
# "uuid,count,devmem,devcore,type,numa,health" (docs/developers/protocol.md; real one in HAMi#1422);
# from 2.8 a JSON list of {"id","index","count","devmem","devcore","type","numa","mode","health"}
# (real one in HAMi#1520) and no handshake.
HAMI_REGISTER = "hami.io/node-nvidia-register"
HAMI_HANDSHAKE = "hami.io/node-handshake"


def _hami_registration(world, n, release) -> dict:
    """The annotations a running HAMi device plugin has put on node ``n``."""
    eff = effective_values(release)
    derived = hami_derived(_version_of(release), eff)
    mem_scale = float(_get(eff, "devicePlugin.deviceMemoryScaling", 1) or 1)
    core_scale = float(_get(eff, "devicePlugin.deviceCoreScaling", 1) or 1)
    devs = [{"id": g["uuid"], "index": g["index"], "count": derived["split_count"],
             "devmem": int(int(g.get("memory_mib") or 15360) * mem_scale), "devcore": int(100 * core_scale),
             "type": "NVIDIA-" + g["name"], "numa": 0, "mode": "hami-core", "health": True}
            for g in _node_gpus(world, n)]
    if _chart_at_least(release, "2.8"):
        return {HAMI_REGISTER: T._json().dumps(devs, separators=(",", ":"))}
    text = "".join("%s,%d,%d,%d,%s,%d,%s:" % (d["id"], d["count"], d["devmem"], d["devcore"], d["type"], d["numa"],
                                              "true") for d in devs)
    return {HAMI_HANDSHAKE: "Reported 2024-11-10 10:15:28.554168 +0000 UTC m=+30.442913871", HAMI_REGISTER: text}


def _scheduler_image(release, vals) -> str:
    """HAMi's kube-scheduler image without its tag, as the chart renders it: before 2.7 the whole
    name from scheduler.kubeScheduler.image, from 2.7 image.registry + "/" + image.repository
    (defaults: ../shared/upstream/charts/hami/*/values.yaml)."""
    if not _chart_at_least(release, "2.7"):
        whole = _get(vals, "scheduler.kubeScheduler.image", ALIYUN_SCHEDULER)
        return whole if isinstance(whole, str) else ALIYUN_SCHEDULER
    registry, repository = ALIYUN_SCHEDULER.split("/", 1)
    return "%s/%s" % (_get(vals, "scheduler.kubeScheduler.image.registry", registry) or registry,
                      _get(vals, "scheduler.kubeScheduler.image.repository", repository) or repository)


# What each operator pod runs (the ClusterPolicy component, or NFD's subchart), as the chart's values
# name it: <repository>/<image>:<version>, an empty version the chart's own (the renders of
# ../shared/upstream/renders show the operator and validator so); NFD's image is its subchart's.
OPERATOR_POD_COMPONENTS = (("gpu-operator-", "operator"), ("nvidia-container-toolkit-daemonset-", "toolkit"),
                           ("gpu-feature-discovery-", "gfd"), ("nvidia-dcgm-exporter-", "dcgmExporter"),
                           ("nvidia-device-plugin-daemonset-", "devicePlugin"), ("nvidia-operator-validator-", "validator"),
                           ("nvidia-cuda-validator-", "validator"), ("nvidia-driver-daemonset-", "driver"))


def _operator_pod_image(op, values, pod):
    if "-node-feature-discovery-" in pod:
        from gpuwizard.images import NFD, NFD_IMAGE  # Chart.yaml's dependency (tests/unit/test_images.py)
        return "%s:v%s" % (NFD_IMAGE, NFD.get(_version_of(op), "0"))
    comp = next((c for prefix, c in OPERATOR_POD_COMPONENTS if pod.startswith(prefix)), None)
    node = values.get(comp) if comp else None
    if not isinstance(node, dict) or not node.get("image"):
        return None
    return "%s/%s:%s" % (node.get("repository"), node["image"], node.get("version") or _version_of(op))


def _registry_image(spec, values, default_tag):
    """``registry/repository:tag`` of one of HAMi's image maps (2.7 and later), global.imageRegistry first."""
    reg = (values.get("global") or {}).get("imageRegistry") or spec.get("registry")
    tag = spec.get("tag") or default_tag
    return "%s/%s:%s" % (reg, spec.get("repository"), tag) if reg else "%s:%s" % (spec.get("repository"), tag)


def _hami_image(hami, values):
    image = (values.get("devicePlugin") or {}).get("image")
    if isinstance(image, dict):
        return _registry_image(image, values, (values.get("global") or {}).get("imageTag") or "v" + _version_of(hami))
    return "%s:%s" % (image, values.get("version") or "v" + _version_of(hami))


def _hami_hook_image(chart, effective):
    """The image of HAMi's admission hook Jobs (scheduler.patch.imageNew in the effective values)."""
    if chart != "hami":
        return None
    new = ((effective.get("scheduler") or {}).get("patch") or {}).get("imageNew")
    return _registry_image(new, effective, None) if isinstance(new, dict) else new or None


def _pull_offline(image: str) -> str:
    """containerd's error where the registry's name does not resolve (a Go DNS error: "lookup HOST: no
    such host"), in the kubelet's "Failed to pull image" event."""
    name, tag = image.rsplit(":", 1)
    host, repo = name.split("/", 1) if "/" in name and "." in name.split("/", 1)[0] else ("docker.io", name)
    return ('rpc error: code = Unknown desc = failed to pull and unpack image "%s": failed to resolve reference "%s": '
            'failed to do request: Head "https://%s/v2/%s/manifests/%s": dial tcp: lookup %s: no such host'
            % (image, image, host, repo, tag, host))


def _unpullable(world, c, image, policy="IfNotPresent") -> bool:
    """No network, and the image is not on the Kind cluster's nodes (kind load docker-image), or its
    pull policy is Always (the kubelet pulls whatever the node has: kubernetes.io/docs/concepts/
    containers/images)."""
    return bool(image) and tools_host_offline(world) and (
        policy == "Always" or image not in (c.get("loaded_images") or []))


def _pull_back_off(p, image, ready="0/1") -> None:
    """ErrImagePull, the pull's error its message (the kubelet alternates it with ImagePullBackOff,
    'Back-off pulling image "X"': pkg/kubelet/images/image_manager.go)."""
    p.update(ready=ready, status="ErrImagePull", restarts=0, image=image,
             reason=_pull_offline(image), pull_error=_pull_offline(image))


def _pull_timeout(image: str) -> str:
    """containerd's error for a registry that does not answer (kubelet event "Failed to pull image
    ...": real ones in apecloud/kubeblocks#8561 and kubernetes/kubernetes#91402)."""
    name, tag = image.rsplit(":", 1)
    host, repo = name.split("/", 1)
    return ('rpc error: code = Unknown desc = failed to pull and unpack image "%s": failed to resolve reference "%s": '
            'failed to do request: Head "https://%s/v2/%s/manifests/%s": dial tcp 47.97.242.13:443: i/o timeout'
            % (image, image, host, repo, tag))


def _view(ctx, c):
    """The cluster as a reader sees it now (reconciled copy)."""
    import copy
    w = copy.deepcopy(ctx.world)
    i = _locate(w, c["name"])
    reconcile(w, w["clusters"][i])
    _place_workloads(w, w["clusters"][i])
    return w, w["clusters"][i]


def _managed_mutate(ctx, cname, fn):
    """Mutate one cluster, reconcile it, save."""
    def outer(world):
        i = _locate(world, cname)
        c = world["clusters"][i]
        if fn(world, c) is False:
            return False
        reconcile(world, c)
    return ctx.mutate(outer)


def _settling(ctx, c) -> bool:
    """A read during settle: consumes one poll; True while the cluster still settles."""
    if int(c.get("settle", 0)) <= 0:
        return False

    def fn(world):
        i = _locate(world, c["name"])
        world["clusters"][i]["settle"] = max(0, int(world["clusters"][i].get("settle", 0)) - 1)
    ctx.mutate(fn)
    return True


# ---------------------------------------------------------------------------------------------
# kind


def _parse_kind_config(text: str) -> tuple[list[dict], str | None]:
    """(nodes [{role, image, mounts[]}], error); no nodes with an error."""
    nodes: list[dict] = []
    cur: dict | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        s = line.strip()
        if s.startswith("- role:"):
            cur = {"role": s.split(":", 1)[1].strip(), "image": None, "mounts": []}
            nodes.append(cur)
        elif s.startswith("image:") and cur is not None:
            cur["image"] = s.split(":", 1)[1].strip().strip('"')
        elif s.startswith("containerPath:") and cur is not None:
            cur["mounts"].append(s.split(":", 1)[1].strip().strip('"'))
        elif s.startswith("kind:") and s.split(":", 1)[1].strip() != "Cluster":
            return [], "unknown kind %s" % s
    if not nodes:
        nodes = [{"role": "control-plane", "image": None, "mounts": []}]
    return nodes, None


def _toml_true(text: str | None, key: str) -> bool:
    """A top-level ``key = true`` in a TOML document (the container runtime's config.toml); a file
    that is no valid TOML sets nothing."""
    import tomllib  # lazy: only `kind create cluster` reads it
    try:
        return tomllib.loads(text or "").get(key) is True
    except tomllib.TOMLDecodeError:
        return False


def kind(ctx) -> int:
    args = list(ctx.args)
    w = ctx.world
    if args[:2] == ["create", "cluster"]:
        name, config, image = "kind", None, None
        i = 2
        while i < len(args):
            for flag in ("--name", "--config", "--image", "--wait"):
                v, j = T._kv_flag(args, i, (flag,))
                if j != i:
                    if v is None:
                        return ctx.usage("ERROR: flag needs an argument: %s" % flag)
                    if flag == "--name":
                        name = v
                    elif flag == "--config":
                        config = v
                    elif flag == "--image":
                        image = v
                    i = j
                    break
            else:
                return ctx.usage("ERROR: unknown flag: %s" % args[i])
        if not W.service_active(w, "docker"):
            ctx.err("ERROR: failed to create cluster: failed to get docker info: command \"docker info --format "
                    "'{{json .}}'\" failed with error: exit status 1")
            return 1
        if _cluster(w, name) is not None:
            ctx.err('ERROR: failed to create cluster: node(s) already exist for a cluster with the name "%s"' % name)
            return 1
        nodes_cfg: list[dict] = [{"role": "control-plane", "image": None, "mounts": []}]
        if config:
            text = _read(_p(ctx, config))
            if text is None:
                ctx.err("ERROR: failed to create cluster: error reading file: open %s: no such file or directory" % config)
                return 1
            nodes_cfg, err = _parse_kind_config(text)
            if err:
                ctx.err("ERROR: failed to create cluster: %s" % err)
                return 1
        # no image given: the kind release's own default (v0.33.0: v1.37.0, per its release notes; older: v1.31.2)
        kind_default = "kindest/node:v1.37.0" if (w.get("kind") or {}).get("version") == "v0.33.0" else "kindest/node:v1.31.2"
        img = image or nodes_cfg[0].get("image") or kind_default
        # the tag: after the last ":" of the name (a mirror's registry may have a port: host:5000/kindest/node:v1.36.4)
        named = img.split("@", 1)[0]
        version = named.rsplit(":", 1)[1] if ":" in named.rsplit("/", 1)[-1] else "v1.31.2"
        toml = _read(_p(ctx, "/etc/nvidia-container-runtime/config.toml"))
        accept = _toml_true(toml, "accept-nvidia-visible-devices-as-volume-mounts")
        nvidia_default = ((w.get("docker") or {}).get("loaded_config") or {}).get("default-runtime") == "nvidia"
        settle = int((w.get("cluster_faults") or {}).get("settle_polls", 0))
        nodes = []
        workers = 0
        for k, nc in enumerate(nodes_cfg):
            if nc["role"] == "control-plane":
                nname = "%s-control-plane" % name if k == 0 else "%s-control-plane%d" % (name, k + 1)
            else:
                workers += 1
                nname = "%s-worker%s" % (name, "" if workers == 1 else workers)
            mounts = [m for m in nc["mounts"]]
            gpus = None
            devs = [m[len(KIND_NODE_GPU_DIR):] for m in mounts if m.startswith(KIND_NODE_GPU_DIR)]
            if devs and accept and nvidia_default and W.driver_loaded(w):
                gpus = "all" if "all" in devs else sorted(int(d) for d in devs if d.isdigit())
            nodes.append({"name": nname, "role": nc["role"], "labels": {}, "mounts": mounts, "gpus": gpus,
                          "ldconfig_real": False, "ready": True, "age": "2m"})
        # pkg/cluster/internal/providers/docker/images.go: an image Docker has (docker inspect --type=image,
        # by the reference as written: a loaded archive has its tag, not its digest) is used, else pulled
        if tools_host_offline(w) and img not in (w.get("docker_images") or []):
            ctx.err('Creating cluster "%s" ...' % name)
            ctx.err(" ✗ Ensuring node image (%s) 🖼" % img.split("@", 1)[0])
            ctx.err('ERROR: failed to create cluster: failed to pull image "%s": command "docker pull %s" failed with '
                    'error: exit status 1' % (img, img))
            return 1
        ctx.err('Creating cluster "%s" ...' % name)
        for line in (" ✓ Ensuring node image (%s) 🖼" % img.split("@", 1)[0], " ✓ Preparing nodes 📦 ",
                     " ✓ Writing configuration 📜", " ✓ Starting control-plane 🕹️", " ✓ Installing CNI 🔌",
                     " ✓ Installing StorageClass 💾"):
            ctx.err(line)
        if workers:
            ctx.err(" ✓ Joining worker nodes 🚜")

        def fn(world):
            world.setdefault("clusters", []).append({
                "name": name, "provider": "kind", "version": version, "image": img,
                "api_server": "https://127.0.0.1:%d" % (39127 + len(world.get("clusters", []))), "running": True,
                "created": "2024-11-10T09:20:11Z", "nodes": nodes, "releases": [], "pods": [],
                "namespaces": {n: {"labels": {"kubernetes.io/metadata.name": n}} for n in DEFAULT_NAMESPACES},
                "settle": settle})
            world["current_context"] = "kind-%s" % name
        ctx.mutate(fn)
        ctx.err('Set kubectl context to "kind-%s"' % name)
        ctx.err("You can now use your cluster with:\n\nkubectl cluster-info --context kind-%s\n" % name)
        ctx.err("Have a nice day! 👋")
        return 0
    if args[:2] == ["load", "docker-image"]:
        return _kind_load(ctx, args[2:])
    if args[:2] == ["delete", "cluster"]:
        # kind pkg/cmd/kind/delete/cluster/deletecluster.go + pkg/cluster/internal/delete/delete.go: "Deleting
        # cluster %q ...", the kubeconfig's cluster, user and context entries of kind-NAME removed (current-context
        # unset when it was that one: kubeconfig/internal/kubeconfig/remove.go), the node containers deleted and
        # "Deleted nodes: %q" (Go's %q of the name list) when there were any; no such cluster: success.
        name = "kind"
        i = 2
        while i < len(args):
            v, j = T._kv_flag(args, i, ("--name", "-n", "--kubeconfig"))
            if j == i:
                return ctx.usage("ERROR: unknown flag: %s" % args[i])
            if v is None:
                return ctx.usage("ERROR: flag needs an argument: %s" % args[i])
            if args[i].split("=")[0] in ("--name", "-n"):
                name = v
            i = j
        ctx.err('Deleting cluster "%s" ...' % name)
        if not W.service_active(w, "docker"):
            ctx.err("ERROR: failed to delete cluster \"%s\": error listing nodes: failed to list nodes: command \"docker ps -a "
                    "--filter label=io.x-k8s.kind.cluster=%s --format '{{.Names}}'\" failed with error: exit status 1"
                    % (name, name))
            return 1
        c = _cluster(w, name)
        if c is None:
            return 0  # kind deletes nothing and succeeds

        def fn(world):
            i = _locate(world, name)
            gone = world["clusters"].pop(i)
            if world.get("current_context") == "kind-%s" % name:
                world["current_context"] = None
            return gone
        ctx.mutate(fn)
        nodes = [n["name"] for n in c.get("nodes", [])]
        if nodes:
            ctx.err("Deleted nodes: [%s]" % " ".join('"%s"' % n for n in nodes))
        return 0
    if args[:2] == ["get", "nodes"]:
        name = "kind"
        v, j = T._kv_flag(args, 2, ("--name",)) if len(args) > 2 else (None, 2)
        if v is not None:
            name = v
        c = _cluster(w, name)
        if c is None:
            ctx.err('No kind nodes found for cluster "%s".' % name)
            return 0
        for n in c.get("nodes", []):
            ctx.out(n["name"])
        return 0
    return T.kind(ctx)


# ---------------------------------------------------------------------------------------------
# docker exec / inspect (Kind nodes are containers)


def _kind_load(ctx, args) -> int:
    """``kind load docker-image IMAGE... [--name N]`` (kubernetes-sigs/kind pkg/cmd/kind/load/docker-image):
    each image must be in the host's Docker; a node that lacks it gets it ("not yet present on node ...,
    loading..."), one every node has is skipped ("found to be already present on all nodes")."""
    import hashlib

    name, refs, i = "kind", [], 0
    while i < len(args):
        v, j = T._kv_flag(args, i, ("--name", "-n"))
        if j != i:
            if v is None:
                return ctx.usage("ERROR: flag needs an argument: --name")
            name, i = v, j
            continue
        if args[i].startswith("-"):
            return ctx.usage("ERROR: unknown flag: %s" % args[i])
        refs.append(args[i])
        i += 1
    if not refs:
        return ctx.usage("ERROR: requires at least 1 arg(s), only received 0")
    w = ctx.world
    have = w.get("docker_images") or []
    for ref in refs:
        if ref not in have:
            ctx.err('ERROR: image: "%s" not present locally' % ref)
            return 1
    c = _cluster(w, name)
    if c is None:
        ctx.err('ERROR: no nodes found for cluster "%s"' % name)
        return 1
    loaded = c.get("loaded_images") or []
    for ref in refs:
        digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        if ref in loaded:
            ctx.err('Image: "%s" with ID "%s" found to be already present on all nodes.' % (ref, digest))
            continue
        for n in c.get("nodes", []):
            ctx.err('Image: "%s" with ID "%s" not yet present on node "%s", loading...' % (ref, digest, n["name"]))

    def fn(world):
        cl = _cluster(world, name)
        cl["loaded_images"] = list(dict.fromkeys((cl.get("loaded_images") or []) + refs))
    ctx.mutate(fn)
    return 0


def _kind_node(world, container):
    if not W.service_active(world, "docker"):
        return None, None
    for c in world.get("clusters", []):
        if c.get("provider", "kind") != "kind" or not c.get("running", True):
            continue
        for n in c.get("nodes", []):
            if n.get("name") == container:
                return c, n
    return None, None


def docker_exec(ctx, rest) -> int:
    args = [a for a in rest if a not in ("-i", "-t", "-it", "-ti")]
    if not args:
        return ctx.usage('"docker exec" requires at least 2 arguments.')
    container, cmd = args[0], args[1:]
    c, n = _kind_node(ctx.world, container)
    if n is None:
        ctx.err("Error response from daemon: No such container: %s" % container)
        return 1
    if cmd == ["test", "-e", "/sbin/ldconfig.real"]:
        return 0 if n.get("ldconfig_real") else 1
    if cmd == ["ln", "-s", "/sbin/ldconfig", "/sbin/ldconfig.real"]:
        if n.get("ldconfig_real"):
            ctx.err("ln: failed to create symbolic link '/sbin/ldconfig.real': File exists")
            return 1

        def fn(world, cl):
            for node in cl["nodes"]:
                if node["name"] == container:
                    node["ldconfig_real"] = True
        _managed_mutate(ctx, c["name"], fn)
        return 0
    if cmd[:3] == ["crictl", "inspecti", "-q"] and len(cmd) == 4:
        # the node's containerd has the image (kind load docker-image); else crictl's error (cri-tools
        # cmd/crictl/image.go: "no such image %q present", through logrus' Fatal)
        if cmd[3] in (c.get("loaded_images") or []):
            ctx.out(T._json().dumps({"status": {"repoTags": [cmd[3]]}}))
            return 0
        ctx.err('FATA[0000] no such image "%s" present' % cmd[3])
        return 1
    if cmd == ["nvidia-smi", "-L"]:
        gpus = _node_gpus(ctx.world, n)
        if not gpus:
            ctx.err("OCI runtime exec failed: exec failed: unable to start container process: exec: \"nvidia-smi\": "
                    "executable file not found in $PATH: unknown")
            return 126
        for g in gpus:
            ctx.out("GPU %d: %s (UUID: %s)" % (g["index"], g["name"], g["uuid"]))
        return 0
    return ctx.unsupported()


def docker_inspect(ctx, rest) -> int:
    fmt = None
    names = []
    i = 0
    while i < len(rest):
        v, j = T._kv_flag(rest, i, ("--format", "-f"))
        if j != i:
            fmt, i = v, j
            continue
        names.append(rest[i])
        i += 1
    if len(names) != 1 or fmt not in ("{{json .Mounts}}",):
        return ctx.unsupported()
    c, n = _kind_node(ctx.world, names[0])
    if n is None:
        ctx.err("Error: No such object: %s" % names[0])
        return 1
    mounts = [{"Type": "bind", "Source": "/lib/modules", "Destination": "/lib/modules", "Mode": "ro", "RW": False,
               "Propagation": "rprivate"}]
    for m in n.get("mounts", []):
        mounts.append({"Type": "bind", "Source": "/dev/null", "Destination": m, "Mode": "", "RW": True,
                       "Propagation": "rprivate"})
    mounts.append({"Type": "volume", "Name": _suffix(n["name"], 12) * 4, "Source": "/var/lib/docker/volumes/x/_data",
                   "Destination": "/var", "Driver": "local", "Mode": "", "RW": True, "Propagation": ""})
    ctx.out(T._json().dumps(mounts, separators=(",", ":")))
    return 0


# ---------------------------------------------------------------------------------------------
# nvidia-ctk config --set k=v --in-place


def nvidia_ctk_config(ctx) -> int:
    args = ctx.args[1:]
    sets = []
    in_place = False
    path = "/etc/nvidia-container-runtime/config.toml"
    i = 0
    while i < len(args):
        v, j = T._kv_flag(args, i, ("--set",))
        if j != i:
            sets.append(v)
            i = j
            continue
        v, j = T._kv_flag(args, i, ("--config-file", "--config"))
        if j != i:
            path, i = v, j
            continue
        if args[i] in ("--in-place", "-i"):
            in_place = True
            i += 1
            continue
        ctx.err("Incorrect Usage: flag provided but not defined: -%s" % args[i].lstrip("-"))
        return 1
    text = _read(_p(ctx, path)) or ""
    lines = text.splitlines()
    for s in sets:
        if not s or "=" not in s:
            ctx.err("ERROR[0000] invalid --set option %r" % s)
            return 1
        k, v = s.split("=", 1)
        rendered = "%s = %s" % (k, v if v in ("true", "false") or v.isdigit() else '"%s"' % v)
        for n, line in enumerate(lines):
            bare = line.lstrip("#").strip()
            if bare.split("=", 1)[0].strip() == k and "=" in bare:
                lines[n] = rendered
                break
        else:
            lines.insert(0, rendered)
    out = "\n".join(lines) + "\n"
    if not in_place:
        sys.stdout.write(out)
        return 0
    p = _p(ctx, path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.write(out)
    return 0


# ---------------------------------------------------------------------------------------------
# sysctl, install, tar (tool release installs)


def sysctl(ctx) -> int:
    args = list(ctx.args)
    write = False
    if args and args[0] == "-w":
        write = True
        args = args[1:]
    if not args:
        return ctx.unsupported()
    for a in args:
        key, eq, val = a.partition("=")
        path = _p(ctx, "/proc/sys/" + key.replace(".", "/"))
        if eq:
            if not write:
                return ctx.usage('sysctl: "%s" must be of the form name=value with -w' % a, 255)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(val + "\n")
            ctx.out("%s = %s" % (key, val))
        else:
            cur = _read(path)
            if cur is None:
                ctx.err("sysctl: cannot stat /proc/sys/%s: No such file or directory" % key.replace(".", "/"))
                return 255
            ctx.out("%s = %s" % (key, cur.strip()))
    return 0


def install(ctx) -> int:
    """install [-o U] [-g G] -m MODE SRC DEST: copies; a simulated release binary landing in
    /usr/local/bin makes the tool exist (it appears in bin/)."""
    args = list(ctx.args)
    mode = 0o755
    pos = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-m", "-o", "-g"):
            if i + 1 >= len(args):
                return ctx.usage("install: option requires an argument -- '%s'" % a[1])
            if a == "-m":
                mode = int(args[i + 1], 8)
            i += 2
            continue
        if a.startswith("-"):
            return ctx.unsupported()
        pos.append(a)
        i += 1
    if len(pos) != 2:
        return ctx.usage("install: missing destination file operand")
    src, dest = pos
    data = _read(_p(ctx, src))
    if data is None:
        ctx.err("install: cannot stat '%s': No such file or directory" % src)
        return 1
    p = _p(ctx, dest)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.write(data)
    os.chmod(p, mode)
    dest = _unmap(ctx, dest)
    if data.startswith("gpuwizard-sim-binary ") and dest.startswith("/usr/local/bin/"):
        _, tool_name, version = data.split()[:3]
        if tool_name == os.path.basename(dest):
            def fn(world):
                info = {"version": version, "path": dest}  # the tool is there while this file is
                if tool_name == "kubectl":
                    info.update(commit="5864a4677267e6adeae276ad85882a8714d69d9d", build_date="2024-10-22T20:35:25Z",
                                go="go1.22.8", kustomize="v5.4.2")
                world[tool_name] = info
            ctx.mutate(fn)
    return 0


def tar(ctx) -> int:
    args = list(ctx.args)
    if not args or args[0] not in ("-xzf", "xzf", "-xf"):
        return ctx.unsupported()
    if len(args) < 2:
        return ctx.usage("tar: option requires an argument -- 'f'")
    src = args[1]
    dest = "."
    members = []
    i = 2
    while i < len(args):
        if args[i] == "-C" and i + 1 < len(args):
            dest = args[i + 1]
            i += 2
            continue
        members.append(args[i])
        i += 1
    data = _read(_p(ctx, src))
    if data is None:
        ctx.err("tar (child): %s: Cannot open: No such file or directory" % src)
        return 2
    if not data.startswith("gpuwizard-sim-tarball "):
        ctx.err("gzip: stdin: not in gzip format\ntar: Child returned status 1\ntar: Error is not recoverable: exiting now")
        return 2
    _, tool_name, version, arch = data.split()[:4]
    have = ["linux-%s/%s" % (arch, tool_name), "linux-%s/LICENSE" % arch, "linux-%s/README.md" % arch]
    for m in members or have:
        if m not in have:
            ctx.err("tar: %s: Not found in archive\ntar: Exiting with failure status due to previous errors" % m)
            return 2
        p = _p(ctx, os.path.join(dest, m))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            f.write(SIM_BINARY % (tool_name, version) if m.endswith("/" + tool_name) else "sim\n")
        os.chmod(p, 0o755)
    return 0


# ---------------------------------------------------------------------------------------------
# kubectl


def _pods_json(c, pods):
    items = []
    for p in pods:
        phase = {"Running": "Running", "Completed": "Succeeded", "Error": "Failed", "Pending": "Pending"}.get(
            p["status"], "Pending")
        ready = p["ready"].split("/")
        cs = []
        for k in range(p.get("containers", 1)):
            ok = k < int(ready[0])
            state = {"running": {"startedAt": "2024-11-10T09:38:01Z"}} if ok and phase == "Running" else {}
            if not ok:
                if p["status"] == "Completed":
                    state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
                elif p["status"] == "Error":
                    state = {"terminated": {"exitCode": 1, "reason": "Error"}}
                else:
                    reason = p["status"].split(":")[-1]
                    state = {"waiting": {"reason": reason, "message": p.get("reason") or ""}}
            cs.append({"name": "c%d" % k, "ready": ok, "restartCount": p.get("restarts", 0), "state": state})
        status = {"phase": phase, "containerStatuses": cs}
        if p["status"] == "Pending" and p.get("reason"):
            status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": p["reason"]}]
        meta = {"name": p["name"], "namespace": p["namespace"]}
        for key in ("labels", "annotations"):
            if p.get(key):
                meta[key] = dict(p[key])
        spec = {"nodeName": p.get("node")}
        if p.get("owner") == "workload":
            spec["schedulerName"] = p.get("scheduler") or "default-scheduler"
            spec["containers"] = [{"name": p.get("container") or "c0", "image": p.get("image"),
                                   "resources": {"limits": dict(p.get("limits") or {})}}]
            if not spec["nodeName"]:
                del spec["nodeName"]
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status})
    return items


def _pod_table(ctx, pods, all_ns):
    rows = [(["NAMESPACE"] if all_ns else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]]
    for p in pods:
        restarts = str(p.get("restarts", 0))
        if p.get("restarts"):
            restarts += " (%s ago)" % "52s"
        rows.append(([p["namespace"]] if all_ns else []) + [p["name"], p["ready"], p["status"], restarts, p.get("age", "1m")])
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        ctx.out("   ".join(r[k].ljust(widths[k]) for k in range(len(r) - 1)) + "   " + r[-1])


def kubectl(ctx) -> int:
    args, context, namespace, err = T._kube_strip_globals(ctx.args)
    if err or not args:
        return T.kubectl(ctx)
    cmd, rest = args[0], args[1:]
    if cmd == "get" and rest and rest[0] in ("nodes", "node", "no"):
        c, refused = _context_cluster(ctx, context)
        if c is not None and c.get("settle"):
            if _settling(ctx, c):
                # nodes report NotReady while the cluster settles (CNI starting)
                w, cv = _view(ctx, c)
                for n in cv["nodes"]:
                    n["ready"] = False
                ctx._world = w
                return T.kubectl(ctx)
        if c is not None:
            ctx._world, _ = _view(ctx, c)
        return T.kubectl(ctx)
    handled = ("get", "label", "create", "apply", "delete", "logs", "exec", "wait")
    if cmd not in handled:
        return T.kubectl(ctx)
    c, refused = _context_cluster(ctx, context)
    if refused == 1:
        return 1
    if refused:
        return T._kube_refused(ctx, refused, True)
    ns = namespace or "default"
    if cmd == "exec":
        return _kubectl_exec(ctx, c, rest, ns)
    if cmd == "wait":
        return _kubectl_wait(ctx, c, rest, ns)
    output = None
    all_ns = False
    flags = {}
    pos = []
    i = 0
    while i < len(rest):
        v, j = T._kv_flag(rest, i, ("-o", "--output"))
        if j != i:
            output, i = v, j
            continue
        if rest[i] in ("-A", "--all-namespaces"):
            all_ns = True
            i += 1
            continue
        for f in ("-f", "--filename", "--tail", "-c", "--container", "--timeout", "--field-selector"):
            v, j = T._kv_flag(rest, i, (f,))
            if j != i:
                flags[f.lstrip("-")[0] if f in ("-f", "--filename") else f.lstrip("-")] = v
                i = j
                break
        else:
            if rest[i] in ("--overwrite", "--ignore-not-found", "--ignore-not-found=true", "--wait=false", "--wait",
                           "--wait=true"):
                flags[rest[i].split("=")[0].lstrip("-")] = True
                i += 1
                continue
            if rest[i].startswith("-"):
                return ctx.unsupported()
            pos.append(rest[i])
            i += 1
    if cmd == "get" and pos and pos[0] in EVENT_KINDS:
        return _kubectl_events(ctx, c, ns, output, all_ns, flags.get("field-selector"))
    if cmd == "get" and pos and pos[0] in DAEMONSET_KINDS:
        return _kubectl_daemonsets(ctx, c, pos[1:], ns, output, all_ns)
    if "field-selector" in flags:
        return ctx.unsupported("--field-selector is simulated for get events only")
    if cmd == "get":
        return _kubectl_get(ctx, c, pos, ns, output, all_ns, bool(flags.get("ignore-not-found")))
    if cmd == "label":
        return _kubectl_label(ctx, c, pos, flags)
    if cmd == "create":
        if len(pos) == 2 and pos[0] in ("namespace", "ns"):
            if pos[1] in _namespaces(c):
                ctx.err('Error from server (AlreadyExists): namespaces "%s" already exists' % pos[1])
                return 1

            def fn(world, cl):
                _namespaces(cl)[pos[1]] = {"labels": {"kubernetes.io/metadata.name": pos[1]}}
            _managed_mutate(ctx, c["name"], fn)
            ctx.out("namespace/%s created" % pos[1])
            return 0
        return ctx.unsupported()
    if cmd == "apply":
        return _kubectl_apply(ctx, c, flags.get("f"), ns)
    if cmd == "delete":
        if pos and (pos[0] in ("namespace", "namespaces", "ns") or pos[0].startswith(("namespace/", "namespaces/", "ns/"))):
            names = pos[1:] if "/" not in pos[0] else [p.split("/", 1)[1] for p in pos if "/" in p]
            if "/" in pos[0] and any("/" not in p for p in pos):
                return ctx.usage("error: there is no need to specify a resource type as a separate argument when passing "
                                 "arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of "
                                 "'kubectl get resource resource/<resource_name>'", 1)
            return _kubectl_delete_namespaces(ctx, c, names, bool(flags.get("ignore-not-found")), namespace is not None)
        if len(pos) == 1 and pos[0].startswith("pod/"):
            pos = ["pod", pos[0][4:]]
        if len(pos) >= 2 and pos[0] in ("pod", "pods", "po"):
            rc = 0
            for name in pos[1:]:
                found = [p for p in c.get("pods", []) + c.get("workloads", [])
                         if p["name"] == name and p["namespace"] == ns and p.get("owner") in ("user", "workload")]
                if not found and _restart_derived(ctx, c, name, ns):
                    c = ctx.world["clusters"][_locate(ctx.world, c["name"])]
                    ctx.out('pod "%s" deleted' % name)
                    continue
                if not found:
                    if not flags.get("ignore-not-found"):
                        ctx.err('Error from server (NotFound): pods "%s" not found' % name)
                        rc = 1
                    continue

                def drop(world, cl, name=name):
                    cl["pods"] = [p for p in cl.get("pods", []) if not (p["name"] == name and p["namespace"] == ns)]
                    cl["workloads"] = [p for p in cl.get("workloads", [])
                                       if not (p["name"] == name and p["namespace"] == ns)]
                _managed_mutate(ctx, c["name"], drop)
                c = ctx.world["clusters"][_locate(ctx.world, c["name"])]
                ctx.out('pod "%s" deleted' % name)
            return rc
        return ctx.unsupported()
    if cmd == "logs":
        if len(pos) != 1:
            return ctx.unsupported()
        name = pos[0][4:] if pos[0].startswith("pod/") else pos[0]
        w, cv = _view(ctx, c)
        for p in cv["pods"]:
            if p["name"] == name and p["namespace"] == ns:
                lines = p.get("logs") or []
                if p["status"] in ("Pending", "ContainerCreating") or (p["status"].startswith("Init:") and not lines):
                    ctx.err('Error from server (BadRequest): container "c0" in pod "%s" is waiting to start: %s'
                            % (name, p["status"]))
                    return 1
                tail = flags.get("tail")
                if tail and tail.lstrip("-").isdigit() and int(tail) >= 0:
                    lines = lines[-int(tail):] if int(tail) else []
                for line in lines:
                    ctx.out(line)
                return 0
        ctx.err('Error from server (NotFound): pods "%s" not found' % name)
        return 1
    return ctx.unsupported()


IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")  # the apiserver's NamespaceLifecycle admission


def _kubectl_delete_namespaces(ctx, c, names, ignore_missing, ns_flag) -> int:
    """``kubectl delete namespace NAME... [--wait[=false]] [--ignore-not-found]``: ``namespace "NAME" deleted``
    (kubectl pkg/cmd/delete PrintObj: a cluster-scoped kind, no "from ... namespace"); an unknown one:
    ``Error from server (NotFound): namespaces "NAME" not found`` after the others are deleted, exit 1;
    default, kube-system and kube-public: ``Error from server (Forbidden): namespaces "NAME" is forbidden: this
    namespace may not be deleted`` (NamespaceLifecycle's immortal namespaces). Everything in the namespace goes
    with it: its pods and workloads, and the Helm releases whose records (Secrets) are stored there, so the
    pods the simulator derives from them go too. -n with a cluster-scoped kind gets kubectl's warning."""
    if not names:
        return ctx.usage("error: resource(s) were provided, but no name was specified", 1)
    if ns_flag:
        ctx.err("Warning: deleting cluster-scoped resources, not scoped to the provided namespace")
    spaces = _namespaces(dict(c))
    errors = []
    gone = []
    for n in names:
        if n not in spaces:
            if not ignore_missing:
                errors.append('Error from server (NotFound): namespaces "%s" not found' % n)
            continue
        if n in IMMORTAL_NAMESPACES:
            errors.append('Error from server (Forbidden): namespaces "%s" is forbidden: this namespace may not be deleted' % n)
            continue
        if n not in gone:
            gone.append(n)
    if gone:
        def fn(world, cl):
            _remember_crds(cl)
            sp = _namespaces(cl)
            for n in gone:
                sp.pop(n, None)
            cl["releases"] = [r for r in cl.get("releases", []) if r.get("namespace", "default") not in gone]
            cl["pods"] = [p for p in cl.get("pods", []) if p.get("namespace") not in gone]
            cl["workloads"] = [p for p in cl.get("workloads", []) if p.get("namespace") not in gone]
            cl["namespaces"] = sp
            if not _release_of(cl, "gpu-operator"):
                for node in cl.get("nodes", []):
                    if node.pop("operator_runtime", None):
                        node.pop("nvidia_runtime", None)
                        node.pop("nvidia_default_runtime", None)
                    node.pop("operator_driver", None)
        _managed_mutate(ctx, c["name"], fn)
    for n in gone:
        ctx.out('namespace "%s" deleted' % n)
    for e in errors:
        ctx.err(e)
    return 1 if errors else 0


def _restart_derived(ctx, c, name, ns) -> bool:
    """``kubectl delete pod`` of a pod a DaemonSet or Deployment owns: its controller starts a new one
    (another name for HAMi's device plugin, which then registers afresh). False: no such pod."""
    _, cv = _view(ctx, c)
    pod = next((p for p in cv["pods"] if p["name"] == name and p["namespace"] == ns and p.get("owner") is None), None)
    if pod is None:
        return False
    hami = _release_of(cv, "hami")
    if hami and name.startswith(hami["name"] + "-device-plugin-"):
        def fn(world, cl):
            for n in cl.get("nodes", []):
                if n["name"] == pod["node"]:
                    n["hami_plugin_gen"] = int(n.get("hami_plugin_gen", 0)) + 1
                    n["hami_restart_boot"] = T.node_boot_id(world, n)
        _managed_mutate(ctx, c["name"], fn)
    return True


EVENT_KINDS = ("events", "event", "ev", "events.v1", "events.events.k8s.io")
DAEMONSET_KINDS = ("daemonsets", "daemonset", "ds", "daemonsets.apps")


def _pod_events(p) -> list:
    """(type, reason, message, source, count) of the events a pod in this state has, in the
    kubelet's and scheduler's words (pkg/kubelet/images/image_manager.go, kuberuntime_container.go,
    the default-scheduler; a real `kubectl describe pod` list in apecloud/kubeblocks#8561)."""
    status = p.get("status", "")
    image = p.get("image") or "nvcr.io/nvidia/%s" % p["name"].rsplit("-", 1)[0]
    out = []
    if status in ("ImagePullBackOff", "ErrImagePull"):
        reason = p.get("reason") or ""
        err = p.get("pull_error") or (reason.split(": ", 1)[1] if ": " in reason else reason)
        if 'image "' in reason:
            image = reason.split('image "', 1)[1].split('"', 1)[0]
        out += [("Normal", "Pulling", 'Pulling image "%s"' % image, "kubelet", 4),
                ("Warning", "Failed", 'Failed to pull image "%s": %s' % (image, err), "kubelet", 4),
                ("Warning", "Failed", "Error: ErrImagePull", "kubelet", 4),
                ("Normal", "BackOff", 'Back-off pulling image "%s"' % image, "kubelet", 12),
                ("Warning", "Failed", "Error: ImagePullBackOff", "kubelet", 12)]
    elif status.endswith("CrashLoopBackOff"):
        out.append(("Warning", "BackOff", "Back-off restarting failed container c0 in pod %s_%s(%s)"
                    % (p["name"], p["namespace"], _uid(p["name"])), "kubelet", int(p.get("restarts") or 1) * 2))
    elif status == "InvalidImageName":
        out.append(("Warning", "InspectFailed", p.get("reason") or "", "kubelet", 6))
        out.append(("Warning", "Failed", "Error: InvalidImageName", "kubelet", 6))
    elif status == "Pending" and p.get("reason"):
        out.append(("Warning", "FailedScheduling", p["reason"] + " preemption: 0/1 nodes are available: 1 No preemption "
                    "victims found for incoming pod.", "default-scheduler", 1))
    return out


def _uid(seed: str) -> str:
    h = T._suffix_hex(seed + "uid")
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


def _kubectl_events(ctx, c, ns, output, all_ns, selector) -> int:
    """``kubectl get events [-n NS | -A] [--field-selector involvedObject.name=X] -o json``: the
    events of the pods in their state, in the real List shape (core/v1 Event: involvedObject,
    reason, message, type, count, source, first/lastTimestamp)."""
    want = {}
    for part in (selector or "").split(","):
        if part:
            k, eq, v = part.partition("=")
            if not eq or k not in ("involvedObject.name", "involvedObject.kind", "involvedObject.namespace",
                                   "type", "reason"):
                ctx.err('Error from server (BadRequest): Unable to find "/v1, Resource=events" that match label '
                        'selector "", field selector "%s": field label not supported: %s' % (selector, k))
                return 1
            want[k] = v.lstrip("=")
    w, cv = _view(ctx, c)
    items = []
    for p in cv.get("pods", []):
        if not (all_ns or p["namespace"] == ns):
            continue
        for k, (typ, reason, message, source, count) in enumerate(_pod_events(p)):
            ev = {"apiVersion": "v1", "kind": "Event", "count": count, "eventTime": None,
                  "firstTimestamp": "2024-11-10T10:14:52Z", "lastTimestamp": "2024-11-10T10:2%d:10Z" % min(k, 9),
                  "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": p["name"], "namespace": p["namespace"],
                                     "uid": _uid(p["name"]), "fieldPath": "spec.containers{c0}"},
                  "message": message, "reason": reason, "type": typ,
                  "metadata": {"name": "%s.%s" % (p["name"], _suffix(p["name"] + reason + str(k), 16)),
                               "namespace": p["namespace"], "uid": _uid(p["name"] + str(k))},
                  "reportingComponent": source, "reportingInstance": p.get("node") or "",
                  "source": {"component": source, **({"host": p["node"]} if p.get("node") and source == "kubelet" else {})}}
            fields = {"involvedObject.name": p["name"], "involvedObject.kind": "Pod",
                      "involvedObject.namespace": p["namespace"], "type": typ, "reason": reason}
            if all(fields[k2] == v for k2, v in want.items()):
                items.append(ev)
    if output == "json":
        T._kube_json_out(ctx, items)
        return 0
    if output is not None:
        return ctx.unsupported()
    if not items:
        ctx.err("No resources found in %s namespace." % ns)
        return 0
    ctx.out("LAST SEEN   TYPE      REASON   OBJECT   MESSAGE")
    for e in items:
        ctx.out("2m          %-9s %s   pod/%s   %s" % (e["type"], e["reason"], e["involvedObject"]["name"], e["message"]))
    return 0


def _kubectl_daemonsets(ctx, c, names, ns, output, all_ns) -> int:
    """``kubectl get daemonsets [NAME] -n NS -o json``: the node-selected DaemonSets of the model
    (HAMi's device plugin) in the apps/v1 shape: spec.template.spec.nodeSelector and the status
    counts (desiredNumberScheduled is 0 when no node has every label of the selector)."""
    w, cv = _view(ctx, c)
    sets = [d for d in cv.get("daemonsets", []) if all_ns or d["namespace"] == ns]
    if names:
        sets = [d for d in sets if d["name"] in names]
        if not sets:
            ctx.err('Error from server (NotFound): daemonsets.apps "%s" not found' % names[0])
            return 1
    pods = cv.get("pods", [])
    items: list = []
    for d in sets:
        desired = len(d["nodes"])
        ready = len([p for p in pods if p["name"].startswith(d["name"] + "-") and p["status"] == "Running"
                     and p["ready"].split("/")[0] == p["ready"].split("/")[1]])
        items.append({"apiVersion": "apps/v1", "kind": "DaemonSet",
                      "metadata": {"name": d["name"], "namespace": d["namespace"], "generation": 1},
                      "spec": {"selector": {"matchLabels": {"app.kubernetes.io/component": "hami-device-plugin"}},
                               "template": {"spec": {"nodeSelector": d["selector"]}}},
                      "status": {"currentNumberScheduled": desired, "desiredNumberScheduled": desired,
                                 "numberAvailable": ready, "numberMisscheduled": 0, "numberReady": ready,
                                 "observedGeneration": 1, "updatedNumberScheduled": desired}})
    if output == "json":
        T._kube_json_out(ctx, items, len(names) == 1)
        return 0
    if output is not None:
        return ctx.unsupported()
    if not items:
        ctx.err("No resources found" if all_ns else "No resources found in %s namespace." % ns)
        return 0
    ctx.out("NAME   DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE")
    for i in items:
        st = i["status"]
        sel = ",".join("%s=%s" % kv for kv in sorted(i["spec"]["template"]["spec"]["nodeSelector"].items())) or "<none>"
        ctx.out("%s   %d   %d   %d   %d   %d   %s   6m" % (i["metadata"]["name"], st["desiredNumberScheduled"],
                st["currentNumberScheduled"], st["numberReady"], st["updatedNumberScheduled"], st["numberAvailable"], sel))
    return 0


def _kubectl_get(ctx, c, pos, ns, output, all_ns, ignore_missing=False) -> int:
    if not pos:
        return ctx.usage("error: Required resource not specified.", 1)
    kind_ = pos[0]
    names = pos[1:]
    if "/" in kind_:
        kind_, one = kind_.split("/", 1)
        names = [one]
    if kind_ in ("pods", "pod", "po"):
        settling = _settling(ctx, c)
        w, cv = _view(ctx, c)
        pods = [p for p in cv["pods"] if all_ns or p["namespace"] == ns]
        if settling:
            for p in pods:
                if p.get("owner") != "user":
                    p.update(ready="0/%d" % p.get("containers", 1), status="ContainerCreating", restarts=0, logs=[])
        missing = []
        if names:
            by_name = {p["name"]: p for p in pods}
            missing = [n for n in names if n not in by_name]
            pods = [by_name[n] for n in names if n in by_name]
            if not ignore_missing:
                for n in missing:
                    ctx.err('Error from server (NotFound): pods "%s" not found' % n)
                if not pods and missing:
                    return 1
            elif not pods:
                return 0
        if output == "json":
            T._kube_json_out(ctx, _pods_json(cv, pods), bool(names) and len(names) == 1)
            return 1 if missing and not ignore_missing else 0
        if output is not None:
            return ctx.unsupported()
        if not pods:
            # kubectl's printer: "No resources found" with --all-namespaces, else "... in NS namespace."
            ctx.err("No resources found" if all_ns else "No resources found in %s namespace." % ns)
            return 0
        _pod_table(ctx, pods, all_ns)
        return 1 if missing and not ignore_missing else 0
    if kind_ in ("namespace", "namespaces", "ns"):
        spaces = _namespaces(dict(c))
        sel = names or sorted(spaces)
        for n in sel:
            if n not in spaces:
                ctx.err('Error from server (NotFound): namespaces "%s" not found' % n)
                return 1
        items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": spaces[n].get("labels", {})},
                  "status": {"phase": "Active"}} for n in sel]
        if output == "json":
            T._kube_json_out(ctx, items, len(names) == 1)
            return 0
        if output is not None:
            return ctx.unsupported()
        ctx.out("NAME%s   STATUS   AGE" % (" " * (max(len(n) for n in sel) - 4)))
        for n in sel:
            ctx.out("%s   Active   12m" % n.ljust(max(4, max(len(x) for x in sel))))
        return 0
    if kind_ in ("runtimeclasses", "runtimeclass", "runtimeclasses.node.k8s.io", "runtimeclass.node.k8s.io"):
        # cluster-scoped node.k8s.io/v1 RuntimeClass objects: name and handler (the runtime's name in containerd)
        w, cv = _view(ctx, c)
        classes = cv.get("runtimeclasses") or []
        if names:
            missing = [n for n in names if n not in {r["name"] for r in classes}]
            if missing:
                ctx.err('Error from server (NotFound): runtimeclasses.node.k8s.io "%s" not found' % missing[0])
                return 1
            classes = [r for r in classes if r["name"] in names]
        rcs: list[dict[str, Any]] = [{"apiVersion": "node.k8s.io/v1", "handler": r["handler"], "kind": "RuntimeClass",
                  "metadata": {"creationTimestamp": c.get("created", "2024-11-10T09:20:11Z"), "name": r["name"],
                               "resourceVersion": str(300 + k), "uid": _uid("runtimeclass" + r["name"])}}
                 for k, r in enumerate(classes)]
        if output == "json":
            T._kube_json_out(ctx, rcs, len(names) == 1)
            return 0
        if output == "name":
            for r in rcs:
                ctx.out("runtimeclass.node.k8s.io/" + r["metadata"]["name"])
            return 0
        if output is not None:
            return ctx.unsupported()
        if not rcs:
            ctx.err("No resources found")
            return 0
        width = max(4, max(len(r["metadata"]["name"]) for r in rcs))
        hwidth = max(7, max(len(r["handler"]) for r in rcs))
        ctx.out("%s   %s   AGE" % ("NAME".ljust(width), "HANDLER".ljust(hwidth)))
        for r in rcs:
            ctx.out("%s   %s   12m" % (r["metadata"]["name"].ljust(width), r["handler"].ljust(hwidth)))
        return 0
    if kind_ in ("clusterpolicies", "clusterpolicy", "clusterpolicies.nvidia.com"):
        w, cv = _view(ctx, c)
        cp = cv.get("clusterpolicy")
        if cp is None:
            # the CRD stays after `helm uninstall` (Helm never deletes CRDs: helm.sh/docs/chart_best_practices/
            # custom_resource_definitions), so a cluster that had gpu-operator answers "No resources found"
            if _release_of(cv, "gpu-operator") is None and "clusterpolicies.nvidia.com" not in (cv.get("crds") or []):
                ctx.err('error: the server doesn\'t have a resource type "%s"' % kind_)
                return 1
            items = []
        else:
            items = [{"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": cp["name"]},
                      "status": {"state": cp["state"]}}]
        if output == "json":
            T._kube_json_out(ctx, items)
            return 0
        if output is not None:
            return ctx.unsupported()
        if not items:
            ctx.err("No resources found")
            return 0
        ctx.out("NAME             STATUS   AGE")
        ctx.out("%-16s %-8s 2024-11-10T09:36:40Z" % (cp["name"], cp["state"]))
        return 0
    return ctx.unsupported()


def _kubectl_label(ctx, c, pos, flags) -> int:
    if len(pos) < 3 or pos[0] not in ("node", "nodes", "no", "namespace", "ns"):
        return ctx.unsupported()
    what, name, pairs = pos[0], pos[1], pos[2:]
    is_node = what in ("node", "nodes", "no")
    if is_node:
        target = next((n for n in c.get("nodes", []) if n["name"] == name), None)
        if target is None:
            ctx.err('Error from server (NotFound): nodes "%s" not found' % name)
            return 1
        labels = target.get("labels", {})
    else:
        spaces = _namespaces(dict(c))
        if name not in spaces:
            ctx.err('Error from server (NotFound): namespaces "%s" not found' % name)
            return 1
        labels = spaces[name].get("labels", {})
    changes: dict[str, str | None] = {}
    for pair in pairs:
        if pair.endswith("-") and "=" not in pair:
            changes[pair[:-1]] = None
            continue
        k, eq, v = pair.partition("=")
        if not eq:
            return ctx.usage("error: at least one label update is required", 1)
        if k in labels and labels[k] != v and not flags.get("overwrite"):
            ctx.err("error: '%s' already has a value (%s), and --overwrite is false" % (k, labels[k]))
            return 1
        changes[k] = v
    unchanged = all(labels.get(k) == v for k, v in changes.items())
    for k, v in changes.items():
        if v is None and k not in labels:
            ctx.out('label "%s" not found.' % k)  # kubectl pkg/cmd/label/label.go, on stdout
    added = [k for k, v in changes.items() if v is not None and labels.get(k) != v]
    removed = [k for k, v in changes.items() if v is None and k in labels]

    def fn(world, cl):
        if is_node:
            node = next(n for n in cl["nodes"] if n["name"] == name)
            tgt = node.setdefault("labels", {})
        else:
            tgt = _namespaces(cl)[name].setdefault("labels", {})
        for k, v in changes.items():
            if v is None:
                tgt.pop(k, None)
            else:
                tgt[k] = v
    if not unchanged:
        _managed_mutate(ctx, c["name"], fn)
    ctx.out("%s/%s %s" % ("node" if is_node else "namespace", name, _label_message(ctx, labels, changes, added, removed,
                                                                                    bool(flags.get("overwrite")))))
    return 0


def _label_message(ctx, labels, changes, added, removed, overwrite) -> str:
    """kubectl label's result word (pkg/cmd/label/label.go updateDataChangeMsg). From kubectl 1.36: "labeled"
    (only added or changed), "unlabeled" (only removed), "modified" (both), "not labeled". Up to 1.35 it
    compares the object's JSON before and after: "not labeled" when equal, else "labeled", "unlabeled" when
    the new one is shorter and --overwrite is not given (a removal without --overwrite reads "unlabeled")."""
    from gpuwizard import versions as V  # lazy: packaging brings re and typing
    version = str((ctx.world.get("kubectl") or {}).get("version") or "v1.31.2")
    if V.at_least(version.lstrip("v"), "1.36"):
        if added and removed:
            return "modified"
        return "labeled" if added else "unlabeled" if removed else "not labeled"
    if not added and not removed:
        return "not labeled"
    size = lambda d: sum(len(k) + len(v) + 6 for k, v in d.items())  # noqa: E731  ("k":"v", in the JSON)
    after = {k: v for k, v in labels.items() if k not in removed}
    after.update({k: changes[k] for k in added})
    return "unlabeled" if not overwrite and size(after) < size(labels) else "labeled"


def _kubectl_apply(ctx, c, path, ns) -> int:
    """``kubectl apply -f FILE`` / ``-f -`` (the manifest on stdin) for Pods. A pod that runs its
    image's own command to the end (the cuda-vectoradd check) is a "user" pod that reconcile runs;
    one with a command of its own or HAMi's resources (nvidia.com/gpumem, gpucores) is a long-running
    "workload" that HAMi's scheduler places (:func:`_place_workloads`)."""
    if not path:
        return ctx.usage("error: must specify one of -f and -k", 1)
    if path == "-":
        text = ctx.stdin()
    else:
        text = _read(_p(ctx, path))
        if text is None:
            ctx.err('error: the path "%s" does not exist' % path)
            return 1
    try:
        docs = [d for d in parse_manifests(text) if d]
    except ValueError as exc:
        ctx.err("error: error parsing %s: %s" % ("STDIN" if path == "-" else path, exc))
        return 1
    if not docs:
        ctx.err("error: no objects passed to apply")
        return 1
    if any(not isinstance(d, dict) or d.get("kind") != "Pod" or not (d.get("metadata") or {}).get("name") for d in docs):
        return ctx.unsupported("only Pod manifests are simulated")
    lines = []
    for doc in docs:
        meta = doc.get("metadata") or {}
        name = str(meta["name"])
        pns = str(meta.get("namespace") or ns)
        spec = doc.get("spec") or {}
        containers = spec.get("containers") or [{}]
        first = containers[0] if isinstance(containers[0], dict) else {}
        image = first.get("image")
        limits = {str(k): v for k, v in ((first.get("resources") or {}).get("limits") or {}).items()}
        gpu = int(str(limits.get("nvidia.com/gpu", 0)).strip('"') or 0)
        hami_res = any(k.startswith(("nvidia.com/gpumem", "nvidia.com/gpucores")) for k in limits)
        workload = hami_res or bool(first.get("command") or first.get("args"))
        cuda = None
        if image and "vectoradd-cuda" in image:
            cuda = image.split("vectoradd-cuda", 1)[1].split("-", 1)[0]
        exists = any(p["name"] == name and p["namespace"] == pns for p in c.get("pods", []) + c.get("workloads", []))

        def fn(world, cl, name=name, pns=pns, meta=meta, spec=spec, first=first, image=image, limits=limits, gpu=gpu,
               workload=workload, cuda=cuda):
            cl["pods"] = [p for p in cl.get("pods", []) if not (p["name"] == name and p["namespace"] == pns)]
            cl["workloads"] = [p for p in cl.get("workloads", []) if not (p["name"] == name and p["namespace"] == pns)]
            if workload:
                seq = int(cl.get("workload_seq", 0)) + 1
                cl["workload_seq"] = seq
                pod = _pod(name, pns, None, "0/1", "Pending", age="5s", owner="workload")
                pod.update(image=image, gpu_request=gpu, limits=limits, container=first.get("name"),
                           scheduler=spec.get("schedulerName"), labels=dict(meta.get("labels") or {}),
                           annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
                           seq=seq)
                cl["workloads"].append(pod)
            else:
                pod = _pod(name, pns, None, "0/1", "Pending", age="5s", owner="user")
                pod.update(image=image, gpu_request=gpu, cuda=cuda)
                cl["pods"].append(pod)
        _managed_mutate(ctx, c["name"], fn)
        c = ctx.world["clusters"][_locate(ctx.world, c["name"])]
        lines.append("pod/%s %s" % (name, "configured" if exists else "created"))
    for line in lines:
        ctx.out(line)
    return 0


def _yaml_scalar(text):
    json = T._json()
    t = text.strip()
    if t[:1] not in ('"', "'", "[", "{") and " #" in t:
        t = t.split(" #", 1)[0].rstrip()
    if t[:1] in ('"', "[", "{"):
        try:
            return json.loads(t)
        except ValueError:
            if t[:1] == "[":  # a flow list of plain words: [sleep, "3600"]
                return [_yaml_scalar(x) for x in t[1:-1].split(",") if x.strip()]
            raise ValueError("cannot read %r" % t) from None
    if t[:1] == "'":
        return t[1:-1].replace("''", "'")
    if t in ("true", "True"):
        return True
    if t in ("false", "False"):
        return False
    if t in ("null", "~", ""):
        return None
    if t.lstrip("-").isdigit():
        return int(t)
    return t


def _yaml_key(text):
    """(key, rest) when the line is ``key: value`` / ``key:``; else None."""
    t = text
    if t[:1] in ('"', "'"):
        q = t[0]
        end = t.find(q, 1)
        if end < 0 or t[end + 1:end + 2] != ":":
            return None
        return t[1:end], t[end + 2:].strip()
    if t[:1] in ("[", "{"):
        return None
    k, sep, rest = t.partition(": ")
    if sep and "#" not in k:
        return k.strip(), rest.strip()
    if t.endswith(":") and " " not in t.rstrip(":"):
        return t[:-1].strip(), ""
    return None


def _yaml_block(items, i, indent):
    if items[i][1] == "-" or items[i][1].startswith("- "):
        out = []
        while i < len(items) and items[i][0] == indent and (items[i][1] == "-" or items[i][1].startswith("- ")):
            rest = items[i][1][1:].lstrip()
            if not rest:
                i += 1
                if i < len(items) and items[i][0] > indent:
                    v, i = _yaml_block(items, i, items[i][0])
                else:
                    v = None
                out.append(v)
                continue
            if _yaml_key(rest) is not None:
                sub = indent + len(items[i][1]) - len(rest)
                items[i] = (sub, rest)
                v, i = _yaml_block(items, i, sub)
                out.append(v)
                continue
            out.append(_yaml_scalar(rest))
            i += 1
        return out, i
    out = {}
    while i < len(items) and items[i][0] == indent and not (items[i][1] == "-" or items[i][1].startswith("- ")):
        kv = _yaml_key(items[i][1])
        if kv is None:
            raise ValueError("line %r is not key: value" % items[i][1])
        key, rest = kv
        i += 1
        if rest in ("", "|", ">") or rest.startswith("#"):
            if i < len(items) and (items[i][0] > indent or (items[i][0] == indent and items[i][1].startswith("- "))):
                v, i = _yaml_block(items, i, items[i][0])
            else:
                v = None
        else:
            v = _yaml_scalar(rest)
        out[key] = v
    return out, i


def parse_manifests(text: str) -> list:
    """The Kubernetes manifests the wizard applies (its templates, PyYAML's block style from the pod
    spec builder): ``---``-separated documents of block mappings and sequences, scalars plain or
    quoted, flow lists, ``#`` comments. (Tools run without PyYAML.)"""
    docs: list = []
    chunk: list = []
    for raw in text.splitlines() + ["---"]:
        if raw.rstrip() == "---" or raw.startswith("--- "):
            items = []
            for line in chunk:
                st = line.rstrip()
                if not st.strip() or st.lstrip().startswith("#"):
                    continue
                items.append((len(st) - len(st.lstrip(" ")), st.strip()))
            if items:
                doc, j = _yaml_block(items, 0, items[0][0])
                if j != len(items):
                    raise ValueError("unexpected indentation at %r" % items[j][1])
                docs.append(doc)
            chunk = []
            continue
        chunk.append(raw)
    return docs


# HAMi's pod annotations (github.com/Project-HAMi/HAMi v2.10.0): pkg/util/types.go (vgpu-node,
# vgpu-time, bind-time, bind-phase), pkg/device/nvidia/device.go (vgpu-devices-to-allocate,
# vgpu-devices-allocated; "NVIDIA" is the device type), pkg/device/devices.go EncodePodSingleDevice
# ("UUID,TYPE,MEM,CORES" + ":" per device, ";" per container). After the device plugin's Allocate the
# to-allocate annotation has each container's entry popped (util.go patchErasedAnnotation): ";".
HAMI_ALLOCATED = "hami.io/vgpu-devices-allocated"
HAMI_TO_ALLOCATE = "hami.io/vgpu-devices-to-allocate"
HAMI_RESOURCES = ("nvidia.com/gpumem", "nvidia.com/gpumem-percentage", "nvidia.com/gpucores")
WORKLOAD_EPOCH = 1731233206  # 2024-11-10 10:06:46 UTC, the seed's afternoon


def _place_workloads(world, c) -> None:
    """Schedule the long-running pods (in a reconciled copy, in creation order) the way HAMi's
    scheduler does: onto a node whose HAMi device plugin runs, each vGPU a slice of one card with
    room left (split count, memory × deviceMemoryScaling, 100 × deviceCoreScaling cores), binpack or
    spread by the pod's hami.io/node-scheduler-policy / gpu-scheduler-policy (chart defaults binpack /
    spread); the allocation goes into the pod's annotations. Without HAMi, a pod asking for HAMi's
    resources stays Pending as the default scheduler leaves it."""
    loads = c.get("workloads") or []
    if not loads:
        return
    nodes = c.get("nodes", [])
    pods = c.get("pods", [])
    hami = _release_of(c, "hami")
    eff = effective_values(hami) if hami else {}
    sched_name = str(_get(eff, "schedulerName", "hami-scheduler")) if hami else None
    sched_up = bool(hami) and any(p["name"].startswith(hami["name"] + "-scheduler") and p["status"] == "Running"
                                  for p in pods)
    plugin_nodes = [p["node"] for p in pods if hami and p["name"].startswith(hami["name"] + "-device-plugin")
                    and p["status"] == "Running"]
    split = hami_derived(_version_of(hami), eff, c.get("version") or "v1.31.2")["split_count"] if hami else 1
    mem_scale = float(_get(eff, "devicePlugin.deviceMemoryScaling", 1) or 1)
    core_scale = float(_get(eff, "devicePlugin.deviceCoreScaling", 1) or 1)
    used: dict = {}  # (node, uuid) -> [vgpus, MiB, cores]
    for w in loads:
        p = dict(w)
        limits = p.get("limits") or {}
        want = int(str(limits.get("nvidia.com/gpu", 0)) or 0)
        hami_res = any(k in limits for k in HAMI_RESOURCES)
        p["visible"] = []
        if not want and not hami_res:
            p.update(status="Running", ready="1/1", node=nodes[0]["name"] if nodes else None)
            pods.append(p)
            continue
        sched = p.get("scheduler") or "default-scheduler"
        if not (hami and sched_up and sched in ("default-scheduler", sched_name)):
            if hami and sched == sched_name:
                reason = None  # no scheduler of that name runs: no event at all
            elif hami_res:
                reason = "0/%d nodes are available: %d Insufficient %s." % (
                    len(nodes), len(nodes), next(k for k in HAMI_RESOURCES if k in limits))
            else:
                fits = [n for n in nodes if int(n.get("capacity", {}).get("nvidia.com/gpu", "0")) >= want]
                if fits:
                    p.update(status="Running", ready="1/1", node=fits[0]["name"],
                             visible=[{"uuid": g["uuid"], "mib": None} for g in _node_gpus(world, fits[0])[:want]])
                    pods.append(p)
                    continue
                reason = "0/%d nodes are available: %d Insufficient nvidia.com/gpu." % (len(nodes), len(nodes))
            p.update(status="Pending", ready="0/1", reason=reason)
            pods.append(p)
            continue
        ann = dict(p.get("annotations") or {})
        gpu_policy = ann.get("hami.io/gpu-scheduler-policy", "spread")
        node_policy = ann.get("hami.io/node-scheduler-policy", "binpack")
        want = max(want, 1)
        choices = []
        for n in nodes:
            if n["name"] not in plugin_nodes:
                continue
            fit = []
            for g in _node_gpus(world, n):
                total = int(g.get("memory_mib") or 0) * mem_scale
                u = used.get((n["name"], g["uuid"]), [0, 0, 0])
                if "nvidia.com/gpumem" in limits:
                    mib = int(limits["nvidia.com/gpumem"])
                elif "nvidia.com/gpumem-percentage" in limits:
                    mib = int(total * int(limits["nvidia.com/gpumem-percentage"]) // 100)
                else:
                    mib = int(total)  # HAMi >= 2.7: no memory asked = the whole card
                cores = int(limits.get("nvidia.com/gpucores", 0))
                if u[0] + 1 > split or u[1] + mib > total or u[2] + cores > 100 * core_scale \
                        or (cores >= 100 and u[0]) or (u[2] >= 100):
                    continue
                fit.append((u[1], g, mib, cores))
            if len(fit) >= want:
                fit.sort(key=lambda f: (-f[0] if gpu_policy == "binpack" else f[0], f[1]["index"]))
                load = sum(v[1] for (nn, _), v in used.items() if nn == n["name"])
                choices.append((load, n, fit[:want]))
        if not choices:
            p.update(status="Pending", ready="0/1",
                     reason="0/%d nodes are available: %d NodeUnfitPod." % (len(nodes), len(nodes)))
            pods.append(p)
            continue
        choices.sort(key=lambda ch: -ch[0] if node_policy == "binpack" else ch[0])
        _, node, picked = choices[0]
        devs = ""
        for _, g, mib, cores in picked:
            u = used.setdefault((node["name"], g["uuid"]), [0, 0, 0])
            u[0], u[1], u[2] = u[0] + 1, u[1] + mib, u[2] + cores
            devs += "%s,NVIDIA,%d,%d:" % (g["uuid"], mib, cores)
            p["visible"].append({"uuid": g["uuid"], "mib": mib})
        at = str(WORKLOAD_EPOCH + int(p.get("seq") or 0))
        ann.update({HAMI_ALLOCATED: devs + ";", HAMI_TO_ALLOCATE: ";", "hami.io/vgpu-node": node["name"],
                    "hami.io/vgpu-time": at, "hami.io/bind-time": at, "hami.io/bind-phase": "success"})
        p.update(status="Running", ready="1/1", node=node["name"], annotations=ann, scheduler=sched_name)
        pods.append(p)
    c["pods"] = pods


def _exec_target(ctx, c, rest, ns):
    """(pod in a reconciled view, the command after --, rc to return or None)."""
    if "--" not in rest:
        return None, None, ctx.usage("error: you must specify at least one command for the container", 1)
    cut = rest.index("--")
    opts, command = rest[:cut], rest[cut + 1:]
    names = []
    i = 0
    while i < len(opts):
        v, j = T._kv_flag(opts, i, ("-c", "--container"))
        if j != i:
            i = j
            continue
        if opts[i] in ("-i", "-t", "-it", "-ti", "--stdin", "--tty", "-q", "--quiet"):
            i += 1
            continue
        if opts[i].startswith("-"):
            return None, None, ctx.unsupported()
        names.append(opts[i])
        i += 1
    if len(names) != 1 or not command:
        return None, None, ctx.usage("error: expected 'exec (POD | TYPE/NAME) [-c CONTAINER] [flags] -- COMMAND [args...]'", 1)
    name = names[0][4:] if names[0].startswith("pod/") else names[0]
    if "/" in name:
        return None, None, ctx.unsupported("exec is simulated for pods only")
    w, cv = _view(ctx, c)
    pod = next((p for p in cv["pods"] if p["name"] == name and p["namespace"] == ns), None)
    if pod is None:
        ctx.err('Error from server (NotFound): pods "%s" not found' % name)
        return None, None, 1
    if pod["status"] != "Running":
        if pod["status"] in ("Completed", "Error"):
            ctx.err("error: cannot exec into a container in a completed pod; current phase is %s"
                    % ("Succeeded" if pod["status"] == "Completed" else "Failed"))
        else:
            ctx.err('error: unable to upgrade connection: container not found ("%s")' % (pod.get("container") or "c0"))
        return None, None, 1
    ctx._world = w
    return pod, command, None


def _kubectl_exec(ctx, c, rest, ns) -> int:
    """``kubectl exec POD -- nvidia-smi ...`` in a pod: the GPUs it was given; in a HAMi pod each
    with HAMi's memory limit as its memory (HAMi-core's libvgpu.so answers NVML's memory queries
    with the limit) and HAMi-core's messages on stderr, as the seed recipe shows them."""
    pod, command, rc = _exec_target(ctx, c, rest, ns)
    if pod is None:
        return rc
    if command[0] != "nvidia-smi":
        return ctx.unsupported("exec is simulated for nvidia-smi only")
    visible = pod.get("visible") or []
    if not visible:
        ctx.err('error: Internal error occurred: error executing command in container: failed to exec in container: '
                'failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: '
                'exec: "nvidia-smi": executable file not found in $PATH: unknown')
        return 126
    w = ctx.world
    node: dict = next((n for n in _view(ctx, c)[1]["nodes"] if n["name"] == pod.get("node")), {})
    on_node = _node_gpus(w, node) if node else w.get("gpus", [])
    if node.get("node_gpus"):  # the pod runs on another machine: its driver (loaded), not this host's
        drv = _node_driver(w, node)
        w["driver"] = dict(drv, loaded_version=drv["version"]) if drv else None
        w["modules"] = ["nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia"] if drv else []
    gpus = []
    for v in visible:
        for g in on_node:
            if g.get("uuid") == v["uuid"]:
                g = dict(g)
                if v.get("mib") is not None:
                    g["memory_mib"], g["memory_used_mib"] = v["mib"], 0
                gpus.append(g)
    w["gpus"] = gpus
    hami = any(v.get("mib") is not None for v in visible)
    pid = 23
    if hami:
        ctx.err("[HAMI-core Msg(%d:140237381220160:libvgpu.c:836)]: Initializing....." % pid)
    ctx.args = command[1:]  # ctx.argv stays the kubectl command line (calls.jsonl records it)
    rc = T.nvidia_smi(ctx)
    if hami:
        ctx.err("[HAMI-core Msg(%d:140237381220160:multiprocess_memory_limit.c:468)]: Calling exit handler %d" % (pid, pid))
    return rc


def _kubectl_wait(ctx, c, rest, ns) -> int:
    """``kubectl wait --for=condition=Ready pod/NAME [--timeout=…]``: the simulated cluster has
    settled when it is asked, so the answer is at once."""
    cond = None
    names = []
    for a in rest:
        if a.startswith("--for="):
            cond = a[len("--for="):]
        elif a.startswith("--timeout="):
            continue
        elif a.startswith("-"):
            return ctx.unsupported()
        else:
            names.append(a)
    if cond != "condition=Ready" or not names:
        return ctx.unsupported("wait is simulated for --for=condition=Ready on pods")
    w, cv = _view(ctx, c)
    rc = 0
    for n in names:
        name = n.split("/", 1)[1] if n.startswith(("pod/", "pods/")) else n
        if "/" in name:
            return ctx.unsupported("wait is simulated for pods only")
        pod = next((p for p in cv["pods"] if p["name"] == name and p["namespace"] == ns), None)
        if pod is None:
            ctx.err('Error from server (NotFound): pods "%s" not found' % name)
            rc = 1
        elif pod["status"] == "Running" and pod["ready"].split("/")[0] == pod["ready"].split("/")[1]:
            ctx.out("pod/%s condition met" % name)
        else:
            ctx.err("error: timed out waiting for the condition on pods/%s" % name)
            rc = 1
    return rc


# ---------------------------------------------------------------------------------------------
# helm


def _helm_repos(world) -> dict:
    return world.get("helm_repos") or {}


def helm(ctx) -> int:
    args, context, namespace, err = T._kube_strip_globals(ctx.args)
    clean = []
    i = 0
    while i < len(args or []):
        v, j = T._kv_flag(args, i, ("--kube-context",))
        if j != i:
            context, i = v, j
            continue
        clean.append(args[i])
        i += 1
    args = clean
    if err or not args:
        return T.helm(ctx)
    cmd, rest = args[0], args[1:]
    w = ctx.world
    if cmd == "repo":
        sub = rest[0] if rest else ""
        if sub == "add" and len(rest) >= 3:
            name, url = rest[1], rest[2]
            extra = rest[3:]
            if [e for e in extra if e not in ("--force-update",)]:
                return ctx.unsupported()
            repos = _helm_repos(w)
            if name in repos and repos[name] == url:
                ctx.out('"%s" already exists with the same configuration, skipping' % name)
                return 0
            if name in repos and "--force-update" not in extra:
                ctx.err("Error: repository name (%s) already exists, please specify a different name" % name)
                return 1
            index = None
            if url in REPOS and tools_host_offline(w):
                import urllib.parse

                host = urllib.parse.urlsplit(url).hostname
                ctx.err('Error: looks like "%s" is not a valid chart repository or cannot be reached: Get "%s/index.yaml": '
                        'dial tcp: lookup %s on 127.0.0.53:53: server misbehaving' % (url, url.rstrip("/"), host))
                return 1
            if url not in REPOS:
                # pkg/repo/chartrepo.go DownloadIndexFile: GET <url>/index.yaml; a mirror on 127.0.0.1 is
                # reached for real and its index read (the charts and versions it lists)
                index = _local_index(ctx, url)
                if index is None:
                    ctx.err('Error: looks like "%s" is not a valid chart repository or cannot be reached: failed to fetch '
                            '%s/index.yaml : 404 Not Found' % (url, url.rstrip("/")))
                    return 1

            def fn(world):
                world.setdefault("helm_repos", {})[name] = url
                if index is not None:
                    world.setdefault("helm_indexes", {})[url] = index
            ctx.mutate(fn)
            ctx.out('"%s" has been added to your repositories' % name)
            return 0
        if sub == "update":
            repos = _helm_repos(w)
            names = rest[1:] or sorted(repos)
            for n in names:
                if n not in repos:
                    ctx.err("Error: no repositories found matching '%s'.  Nothing will be updated" % n)
                    return 1
            if not names:
                ctx.err("Error: no repositories found. You must add one before updating")
                return 1
            ctx.out("Hang tight while we grab the latest from your chart repositories...")
            for n in names:
                ctx.out('...Successfully got an update from the "%s" chart repository' % n)
            ctx.out("Update Complete. ⎈Happy Helming!⎈")
            return 0
        if sub in ("remove", "rm") and len(rest) >= 2:
            # pkg/cmd/repo_remove.go (v3.16.2 and v4): each name in turn, the first unknown one stops it
            if any(n.startswith("-") for n in rest[1:]):
                return ctx.unsupported()
            repos = _helm_repos(w)
            if not repos:
                ctx.err("Error: no repositories configured")
                return 1
            removed = []
            rc = 0
            for n in rest[1:]:
                if n not in repos or n in removed:
                    rc = 1
                    break
                removed.append(n)

            def drop(world):
                for n in removed:
                    world.setdefault("helm_repos", {}).pop(n, None)
            if removed:
                ctx.mutate(drop)
            for n in removed:
                ctx.out('"%s" has been removed from your repositories' % n)
            if rc:
                ctx.err('Error: no repo named "%s" found' % rest[1:][len(removed)])
            return rc
        if sub in ("list", "ls"):
            repos = _helm_repos(w)
            if rest[1:] in (["-o", "json"], ["--output", "json"], ["-o=json"], ["--output=json"]):
                ctx.out(T._json().dumps([{"name": k, "url": v} for k, v in sorted(repos.items())]))
                return 0
            if rest[1:]:
                return ctx.unsupported()
            if not repos:  # Helm 4 says so and exits 0 (pkg/cmd/repo_list.go at v4.2.4); Helm 3 failed
                helm4 = str((w.get("helm") or {}).get("version") or "v3").startswith("v4")
                ctx.err("no repositories to show" if helm4 else "Error: no repositories to show")
                return 0 if helm4 else 1
            ctx.out("NAME        \tURL")
            for k, v in sorted(repos.items()):
                ctx.out("%-12s\t%s" % (k, v))
            return 0
        return ctx.unsupported()
    if cmd == "get" and rest[:1] == ["values"]:
        rel = None
        output = None
        all_values = False
        i = 1
        while i < len(rest):
            v, j = T._kv_flag(rest, i, ("-o", "--output"))
            if j != i:
                output, i = v, j
                continue
            if rest[i] in ("-a", "--all"):
                all_values = True
                i += 1
                continue
            if rest[i].startswith("-"):
                return ctx.unsupported()
            rel = rest[i]
            i += 1
        if rel is None or output not in ("json", "yaml", None):
            return ctx.unsupported()
        c, refused = _context_cluster(ctx, context)
        if refused == 1:
            return 1
        if refused:
            return T._helm_unreachable(ctx, refused)
        ns = namespace or "default"
        r = next((r for r in c.get("releases", []) if r["name"] == rel and r.get("namespace", "default") == ns), None)
        if r is None:
            ctx.err("Error: release: not found")
            return 1
        # pkg/action/get_values.go: the release's config, or with --all CoalesceValues(chart, config);
        # pkg/cmd/get_values.go: the table form heads it "USER-SUPPLIED VALUES:" / "COMPUTED VALUES:"
        helm3 = str((w.get("helm") or {}).get("version") or "v3").startswith("v3")
        vals = effective_values(r, ctx.err, helm3) if all_values else (r.get("values") or {})
        if output == "json":
            ctx.out(T._json().dumps(vals, separators=(",", ":")) if vals else "null")
        else:
            if output is None:
                ctx.out("COMPUTED VALUES:" if all_values else "USER-SUPPLIED VALUES:")
            ctx.out(T._yaml_dump(vals).rstrip("\n") if vals else "null")
        return 0
    if cmd == "upgrade":
        return _helm_upgrade(ctx, rest, context, namespace)
    if cmd in ("uninstall", "delete", "del", "un"):
        return _helm_uninstall(ctx, rest, context, namespace)
    if cmd == "rollback":
        return _helm_rollback(ctx, rest, context, namespace)
    if cmd in ("history", "hist"):
        return _helm_history(ctx, rest, context, namespace)
    return T.helm(ctx)


# Where Helm 3.16.2's pkg/chartutil/coalesce.go prints each warning: Helm 3 sets log.Lshortfile
# (cmd/helm/helm.go), so a warning reads "coalesce.go:289: warning: ..."; Helm 4 leaves Go's
# standard logger as it is: "2026/12/02 18:38:45 warning: ..." (v4.2.4 sets no log flags).
_COALESCE_LINES_V3 = (("skipped value for", 237), ("cannot overwrite table", 286), ("destination for", 289))


def _helm_warn(ctx):
    import time as _t
    major = str((ctx.world.get("helm") or {}).get("version") or "v3").lstrip("v").split(".")[0]

    def warn(text):
        if major == "3":
            line = next((n for k, n in _COALESCE_LINES_V3 if k in text), 289)
            ctx.err("coalesce.go:%d: %s" % (line, text))
        else:
            ctx.err("%s %s" % (_t.strftime("%Y/%m/%d %H:%M:%S"), text))
    return warn


def _helm_upgrade(ctx, rest, context, namespace) -> int:
    install = False
    version = None
    values_files = []
    sets = []
    flags = set()
    create_ns = False
    pos = []
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in ("--install", "-i"):
            install = True
            i += 1
            continue
        if a in ("--reuse-values", "--reset-values", "--reset-then-reuse-values", "--create-namespace", "--wait",
                 "--atomic"):
            flags.add(a)
            create_ns = create_ns or a == "--create-namespace"
            i += 1
            continue
        matched = False
        for f in ("--version", "--values", "-f", "--set", "--timeout"):
            v, j = T._kv_flag(rest, i, (f,))
            if j != i:
                if v is None:
                    return ctx.usage("Error: flag needs an argument: %s" % f)
                if f == "--version":
                    version = v
                elif f in ("--values", "-f"):
                    values_files.append(v)
                elif f == "--set":
                    sets.append(v)
                i = j
                matched = True
                break
        if matched:
            continue
        if a.startswith("-"):
            return ctx.unsupported()
        pos.append(a)
        i += 1
    if len(pos) != 2:
        return ctx.usage('Error: "helm upgrade" requires 2 arguments\n\nUsage:  helm upgrade [RELEASE] [CHART] [flags]')
    rel, chart_ref = pos
    c, refused = _context_cluster(ctx, context)
    if refused == 1:
        return 1
    if refused:
        return T._helm_unreachable(ctx, refused)
    ns = namespace or "default"
    if chart_ref.endswith(".tgz") and os.path.isabs(chart_ref):
        # a chart archive on this machine (pkg/action/install.go LocateChart: a path is loaded as is; the
        # name and version are the archive's Chart.yaml, --version plays no part)
        found = _archive_chart(chart_ref)
        if found is None:
            ctx.err("Error: INSTALLATION FAILED: path \"%s\" not found" % chart_ref)
            return 1
        chart, version = found
        versions: Any = [version]
    else:
        repo, _, chart = chart_ref.partition("/")
        url = _helm_repos(ctx.world).get(repo)
        if not chart or url is None:
            ctx.err("Error: repo %s not found" % repo)
            return 1
        versions = (REPOS.get(url) or (ctx.world.get("helm_indexes") or {}).get(url) or {}).get(chart)
    if not versions:
        ctx.err('Error: chart "%s" not found in %s index. (try \'helm repo update\')' % (chart, repo))
        return 1
    version = version or versions[-1]
    if version not in versions:
        ctx.err('Error: chart "%s" matching %s not found in %s index. (try \'helm repo update\'): no chart version '
                'found for %s-%s' % (chart, version, repo, chart, version))
        return 1
    existing = next((r for r in c.get("releases", []) if r["name"] == rel and r.get("namespace", "default") == ns), None)
    if existing is None and not install:
        ctx.err('Error: UPGRADE FAILED: "%s" has no deployed releases' % rel)
        return 1
    values: dict = {}
    for vf in values_files:
        text = _read(_p(ctx, vf))
        if text is None:
            ctx.err("Error: open %s: no such file or directory" % vf)
            return 1
        values = _merge(values, parse_values(text))
    for s in sets:
        k, eq, v = s.partition("=")
        if not eq:
            ctx.err('Error: failed parsing --set data: key "%s" has no value' % k)
            return 1
        _set_dotted(values, k, v)
    chart_values = None
    if existing:  # which values the release keeps, and which chart values it starts from (helm_values.upgrade_values)
        values, chart_values = _hv().upgrade_values(
            values, existing.get("values") or {}, release_defaults(existing), chart_defaults(chart, version),
            reset="--reset-values" in flags, reuse="--reuse-values" in flags,
            reset_then_reuse="--reset-then-reuse-values" in flags)
        if "--reuse-values" not in flags or "--reset-values" in flags:
            chart_values = None  # the chart's own values.yaml
    effective = effective_values({"chart": "%s-%s" % (chart, version), "values": values,
                                  **({"chart_values": chart_values} if chart_values is not None else {})},
                                 _helm_warn(ctx))
    spaces = _namespaces(dict(c))
    if ns not in spaces and not create_ns:
        ctx.err('Error: INSTALLATION FAILED: create: failed to create: namespaces "%s" not found' % ns)
        return 1
    import time as _t
    stamp = _t.strftime("%a %b %d %H:%M:%S %Y")
    revision = (int(existing.get("revision", 1)) + 1) if existing else 1
    app = version if chart == "gpu-operator" else version
    hook_image = _hami_hook_image(chart, effective)
    if hook_image and _unpullable(ctx.world, c, hook_image):
        # HAMi's pre-install/pre-upgrade hook Job (hami-admission-create, kube-webhook-certgen: the real
        # render's helm.sh/hook) cannot pull its image: helm waits for it until its timeout (5m0s) and the
        # release is left failed. The words of helm 3 (elastic/helm-charts#1765, wireapp/wire-server-deploy#470).
        hook = "pre-upgrade" if existing else "pre-install"
        why = "timed out waiting for the condition"

        def failed(world, cl):
            _namespaces(cl).setdefault(ns, {"labels": {"kubernetes.io/metadata.name": ns}})
            cl["releases"] = [r for r in cl.get("releases", [])
                              if not (r["name"] == rel and r.get("namespace", "default") == ns)]
            entry = {"name": rel, "namespace": ns, "chart": "%s-%s" % (chart, version), "app_version": app,
                     "revision": revision, "status": "failed", "values": values,
                     "updated": _t.strftime("%Y-%m-%d %H:%M:%S.000000000 +0000 UTC")}
            entry["history"] = _next_history(existing, entry, "failed %s: %s" % (hook, why))
            cl["releases"].append(existing if existing else entry)
        _managed_mutate(ctx, c["name"], failed)
        if existing:
            ctx.err("Error: UPGRADE FAILED: pre-upgrade hooks failed: %s" % why)
        else:
            ctx.out('Release "%s" does not exist. Installing it now.' % rel)
            ctx.err("Error: INSTALLATION FAILED: failed pre-install: %s" % why)
        return 1

    def fn(world, cl):
        _namespaces(cl).setdefault(ns, {"labels": {"kubernetes.io/metadata.name": ns}})
        cl["releases"] = [r for r in cl.get("releases", []) if not (r["name"] == rel and r.get("namespace", "default") == ns)]
        entry = {"name": rel, "namespace": ns, "chart": "%s-%s" % (chart, version), "app_version": app,
                 "revision": revision, "status": "deployed", "values": values,
                 "updated": _t.strftime("%Y-%m-%d %H:%M:%S.000000000 +0000 UTC")}
        if chart_values is not None:
            entry["chart_values"] = chart_values
        entry["history"] = _next_history(existing, entry, "Upgrade complete" if existing else "Install complete")
        cl["releases"].append(entry)
        cl["settle"] = int((world.get("cluster_faults") or {}).get("settle_polls", 0))
    _managed_mutate(ctx, c["name"], fn)
    if existing:
        ctx.out('Release "%s" has been upgraded. Happy Helming!' % rel)
    else:
        ctx.out('Release "%s" does not exist. Installing it now.' % rel)
    ctx.out("NAME: %s\nLAST DEPLOYED: %s\nNAMESPACE: %s\nSTATUS: deployed\nREVISION: %d\nTEST SUITE: None"
            % (rel, stamp, ns, revision))
    return 0


# ---------------------------------------------------------------------------------------------
# helm history / rollback / uninstall (helm/helm v3.16.2 cmd/helm/{history,rollback,uninstall}.go and
# pkg/action/{history,rollback,uninstall}.go; v4.2.4 pkg/cmd/... the same texts). Each release keeps its
# revisions (``history``: revision, chart, app_version, values, chart_values, status, updated, description),
# as Helm keeps one release record (a Secret) per revision: "Install complete" / "Upgrade complete" /
# "Rollback to N", the one before a new one superseded; upgrade and rollback keep 10 (--history-max).

HELM_MAX_HISTORY = 10


def _history(release) -> list:
    """The release's revisions, oldest first (a release from a profile has only its current one)."""
    import copy
    if release.get("history"):
        return copy.deepcopy(release["history"])
    rev = int(release.get("revision", 1))
    rec = {"revision": rev, "chart": release["chart"], "app_version": release.get("app_version", ""),
           "values": copy.deepcopy(release.get("values") or {}), "status": release.get("status", "deployed"),
           "updated": release.get("updated", "2024-11-10 09:36:36.713335164 +0000 UTC"),
           "description": "Install complete" if rev == 1 else "Upgrade complete"}
    if "chart_values" in release:
        rec["chart_values"] = copy.deepcopy(release["chart_values"])
    return [rec]


def _next_history(existing, entry, description, rollback_to=None) -> list:
    import copy
    hist = _history(existing) if existing else []
    for h in hist:
        if h.get("status") == "deployed":
            h["status"] = "superseded"
    rec = {k: copy.deepcopy(entry[k]) for k in ("revision", "chart", "app_version", "values", "status", "updated")}
    if "chart_values" in entry:
        rec["chart_values"] = copy.deepcopy(entry["chart_values"])
    rec["description"] = description
    if rollback_to is not None:
        rec["rollback_revision"] = rollback_to  # Helm 4's Info.RollbackRevision
    hist.append(rec)
    if existing and len(hist) > HELM_MAX_HISTORY:  # pkg/storage removeLeastRecent: the oldest go first
        hist = hist[-HELM_MAX_HISTORY:]
    return hist


def _go_time_parts(updated):
    """A release's "updated" (Go's time.String(): "2024-11-10 09:36:36.713335164 +0000 UTC") -> parts."""
    import re
    m = re.match(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)? ([+-]\d{4})", str(updated or ""))
    if not m:
        return None
    return m.group(1), m.group(2), (m.group(3) or "").rstrip("0").rstrip("."), m.group(4)


def _rfc3339(updated) -> str:
    """Go's time.MarshalJSON (RFC 3339 with nanoseconds, trailing zeros dropped; "Z" for UTC)."""
    parts = _go_time_parts(updated)
    if parts is None:
        return ""
    date, clock, frac, off = parts
    return "%sT%s%s%s" % (date, clock, frac, "Z" if off == "+0000" else off[:3] + ":" + off[3:])


def _ansic(updated) -> str:
    """Go's time.ANSIC layout ("Mon Jan _2 15:04:05 2006"), as helm history's table prints UPDATED."""
    import time as _t
    parts = _go_time_parts(updated)
    if parts is None:
        return ""
    stamp = _t.strptime(parts[0] + " " + parts[1], "%Y-%m-%d %H:%M:%S")
    return _t.strftime("%a %b ", stamp) + ("%2d" % stamp.tm_mday) + _t.strftime(" %H:%M:%S %Y", stamp)


def _helm_release_args(ctx, rest, bool_flags, value_flags):
    """(positional args, flags) or (None, rc) for a usage error."""
    pos, flags = [], {}
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in bool_flags or (a.endswith(("=true", "=false")) and a.split("=", 1)[0] in bool_flags):
            name, _, val = a.partition("=")
            flags[name] = val != "false"
            i += 1
            continue
        matched = False
        for f in value_flags:
            v, j = T._kv_flag(rest, i, (f,))
            if j != i:
                if v is None:
                    return None, ctx.usage("Error: flag needs an argument: %s" % f)
                flags[f] = v
                i, matched = j, True
                break
        if matched:
            continue
        if a.startswith("-"):
            return None, ctx.unsupported()
        pos.append(a)
        i += 1
    return pos, flags


def _helm_cluster(ctx, context):
    c, refused = _context_cluster(ctx, context)
    if refused == 1:
        return None, 1
    if refused:
        return None, T._helm_unreachable(ctx, refused)
    return c, None


def _find_release(c, name, ns):
    return next((r for r in c.get("releases", []) if r["name"] == name and r.get("namespace", "default") == ns), None)


def _helm_uninstall(ctx, rest, context, namespace) -> int:
    """``helm uninstall NAME... [-n NS] [--wait] [--timeout D] [--ignore-not-found] [--cascade C]``:
    ``release "NAME" uninstalled`` per release; an unknown one: ``Error: uninstall: Release not loaded: NAME:
    release: not found`` (exit 1), or with --ignore-not-found the same success line (uninstall.go returns no
    error and the command still prints it). The release's objects go, so the pods, DaemonSets and ClusterPolicy
    the simulator derives from it go; its namespace and the CRDs stay (Helm deletes neither). gpu-operator's
    toolkit container reverts the containerd configuration it made when it stops (nvidia-ctk-installer
    containerd Cleanup), so a node's nvidia runtime that the operator added goes too."""
    pos, flags = _helm_release_args(ctx, rest, ("--wait", "--ignore-not-found", "--no-hooks"),
                                    ("--timeout", "--cascade", "--description"))
    if pos is None:
        return flags
    if "--keep-history" in rest or "--dry-run" in rest:
        return ctx.unsupported()
    if not pos:
        return ctx.usage('Error: "helm uninstall" requires at least 1 argument\n\nUsage:  helm uninstall RELEASE_NAME [...] '
                         '[flags]', 1)
    if flags.get("--cascade", "background") not in ("background", "foreground", "orphan"):
        ctx.err('Error: invalid cascade value (%s). Must be "background", "foreground", or "orphan"' % flags["--cascade"])
        return 1
    c, rc = _helm_cluster(ctx, context)
    if c is None:
        return rc
    ns = namespace or "default"
    for name in pos:
        rel = _find_release(c, name, ns)
        if rel is None:
            if flags.get("--ignore-not-found"):
                ctx.out('release "%s" uninstalled' % name)
                continue
            ctx.err("Error: uninstall: Release not loaded: %s: release: not found" % name)
            return 1

        chart = _split_chart(rel["chart"])[0]

        def fn(world, cl, name=name, chart=chart):
            _remember_crds(cl)
            cl["releases"] = [r for r in cl.get("releases", []) if not (r["name"] == name and r.get("namespace", "default") == ns)]
            if chart == "gpu-operator":
                for n in cl.get("nodes", []):
                    if n.pop("operator_runtime", None):
                        n.pop("nvidia_runtime", None)
                        n.pop("nvidia_default_runtime", None)
                    n.pop("operator_driver", None)
        _managed_mutate(ctx, c["name"], fn)
        c = ctx.world["clusters"][_locate(ctx.world, c["name"])]
        ctx.out('release "%s" uninstalled' % name)
    return 0


def _helm_rollback(ctx, rest, context, namespace) -> int:
    """``helm rollback NAME [REVISION] [-n NS] [--wait] [--timeout D]``: a new revision (the current one + 1)
    with the chart and values of REVISION (0 or none: the one before the current), description "Rollback to
    N", the others superseded (pkg/action/rollback.go prepareRollback); prints ``Rollback was a success! Happy
    Helming!``. Errors: ``Error: release: not found`` (no such release), ``Error: release has no N version``,
    ``Error: could not convert revision to a number: ...``, ``Error: invalid release revision`` (negative)."""
    import time as _t
    pos, flags = _helm_release_args(ctx, rest, ("--wait", "--wait-for-jobs", "--force", "--recreate-pods",
                                                "--no-hooks", "--cleanup-on-fail"),
                                    ("--timeout", "--history-max", "--description"))
    if pos is None:
        return flags
    if "--dry-run" in rest:
        return ctx.unsupported()
    if not pos or len(pos) > 2:
        return ctx.usage('Error: "helm rollback" requires at least 1 argument\n\nUsage:  helm rollback <RELEASE> '
                         '[REVISION] [flags]', 1)
    target = 0
    if len(pos) == 2:
        try:
            target = int(pos[1])
        except ValueError:
            ctx.err('Error: could not convert revision to a number: strconv.Atoi: parsing "%s": invalid syntax' % pos[1])
            return 1
    if target < 0:
        ctx.err("Error: invalid release revision")
        return 1
    c, rc = _helm_cluster(ctx, context)
    if c is None:
        return rc
    ns = namespace or "default"
    name = pos[0]
    rel = _find_release(c, name, ns)
    if rel is None:
        ctx.err("Error: release: not found")
        return 1
    current = int(rel.get("revision", 1))
    want = target or current - 1
    hist = _history(rel)
    old = next((h for h in hist if int(h["revision"]) == want), None)
    if old is None:
        ctx.err("Error: release has no %d version" % want)
        return 1

    def fn(world, cl):
        import copy
        cur = _find_release(cl, name, ns)
        entry = {"name": name, "namespace": ns, "chart": old["chart"], "app_version": old.get("app_version", ""),
                 "revision": current + 1, "status": "deployed", "values": copy.deepcopy(old.get("values") or {}),
                 "updated": _t.strftime("%Y-%m-%d %H:%M:%S.000000000 +0000 UTC", _t.gmtime())}
        if "chart_values" in old:
            entry["chart_values"] = copy.deepcopy(old["chart_values"])
        entry["history"] = _next_history(cur, entry, flags.get("--description") or "Rollback to %d" % want, want)
        cl["releases"] = [r for r in cl.get("releases", []) if r is not cur] + [entry]
        cl["settle"] = int((world.get("cluster_faults") or {}).get("settle_polls", 0))
    _managed_mutate(ctx, c["name"], fn)
    ctx.out("Rollback was a success! Happy Helming!")
    return 0


def _helm_history(ctx, rest, context, namespace) -> int:
    """``helm history NAME [-n NS] [-o table|json|yaml] [--max N]``: the revisions, oldest first (getHistory
    keeps the newest --max, default 256). JSON as Go's encoder writes the releaseInfo list: revision,
    updated (RFC 3339), status, chart, app_version, (Helm 4: rollback_revision when set,) description;
    the table's UPDATED in time.ANSIC. No such release: ``Error: release: not found``, exit 1."""
    pos, flags = _helm_release_args(ctx, rest, (), ("-o", "--output", "--max"))
    if pos is None:
        return flags
    if len(pos) != 1:
        return ctx.usage('Error: "helm history" requires 1 argument\n\nUsage:  helm history RELEASE_NAME [flags]', 1)
    output = flags.get("-o") or flags.get("--output") or "table"
    if output not in ("table", "json", "yaml"):
        return ctx.usage('Error: invalid argument "%s" for "-o, --output" flag: invalid format type' % output)
    try:
        most = int(flags.get("--max", 256))
    except ValueError:
        return ctx.usage('Error: invalid argument "%s" for "--max" flag: strconv.ParseInt: parsing "%s": invalid syntax'
                         % (flags["--max"], flags["--max"]))
    c, rc = _helm_cluster(ctx, context)
    if c is None:
        return rc
    rel = _find_release(c, pos[0], namespace or "default")
    if rel is None:
        ctx.err("Error: release: not found")
        return 1
    helm4 = str((ctx.world.get("helm") or {}).get("version") or "v3").startswith("v4")
    hist = sorted(_history(rel), key=lambda h: int(h["revision"]))[-most:] if most > 0 else []
    docs = []
    for h in hist:
        d = {"revision": int(h["revision"]), "updated": _rfc3339(h.get("updated")), "status": h.get("status", "deployed"),
             "chart": h["chart"], "app_version": h.get("app_version", "")}
        if helm4 and h.get("rollback_revision"):
            d["rollback_revision"] = int(h["rollback_revision"])
        d["description"] = h.get("description", "")
        docs.append(d)
    if output == "json":
        ctx.out(T._json().dumps(docs, separators=(",", ":"), ensure_ascii=False))
        return 0
    if output == "yaml":
        ctx.out(T._yaml_dump(docs).rstrip("\n") if docs else "[]")
        return 0
    rows = [("REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION")]
    rows += [(str(d["revision"]), _ansic(h.get("updated")), d["status"], d["chart"], d["app_version"], d["description"])
             for d, h in zip(docs, hist, strict=True)]
    widths = [max(len(r[k]) for r in rows) for k in range(6)]
    for r in rows:
        ctx.out("\t".join(r[k].ljust(widths[k]) for k in range(6)).rstrip())
    return 0


# ---------------------------------------------------------------------------------------------
# entry points for docker / nvidia-ctk sub-commands (called from tools.py)


def docker(ctx) -> int:
    args = list(ctx.args)
    if args and args[0] in ("exec", "inspect") and W.service_active(ctx.world, "docker"):
        return docker_exec(ctx, args[1:]) if args[0] == "exec" else docker_inspect(ctx, args[1:])
    if args[:1] in (["pull"], ["tag"], ["save"], ["load"]) or args[:2] == ["image", "inspect"]:
        if not W.service_active(ctx.world, "docker"):
            ctx.err(T.DOCKER_DOWN)
            return 1
        return docker_images(ctx, args)
    return T.docker(ctx)


def docker_images(ctx, args) -> int:
    """``docker pull REF``, ``docker tag SRC DST``, ``docker save -o FILE REF``, ``docker load -i FILE``,
    ``docker image inspect REF``: the host's images (world["docker_images"]). An archive is a real
    tar holding Docker's manifest.json ([{"RepoTags": [...]}]); pulls fail offline as docker run's do."""
    import io
    import json
    import tarfile

    from gpuwizard.simulate import tools_host

    w = ctx.world
    have = list(w.get("docker_images") or [])
    cmd, rest = (args[0], args[1:]) if args[0] != "image" else ("inspect", args[2:])
    if cmd == "inspect":
        if len(rest) != 1 or rest[0].startswith("-"):
            return ctx.unsupported("only `docker image inspect REF` is")
        if rest[0] not in have:
            ctx.err("Error response from daemon: No such image: %s" % rest[0])
            return 1
        ctx.out(json.dumps([{"RepoTags": [rest[0]] if "@" not in rest[0] else [], "Id": "sha256:" + "0" * 64}]))
        return 0
    if cmd == "pull":
        if len(rest) != 1 or rest[0].startswith("-"):
            return ctx.unsupported("only `docker pull REF` is")
        ref = rest[0]
        name = ref.split("@", 1)[0]
        if tools_host.offline(w) and ref not in have:
            first = name.split("/", 1)[0]
            registry = first if ("." in first or ":" in first) and "/" in name else "registry-1.docker.io"
            ctx.err('Error response from daemon: Get "https://%s/v2/": dial tcp: lookup %s on 127.0.0.53:53: server '
                    'misbehaving' % (registry, registry.split(":")[0]))
            return 1
        tag = ref.split("@", 1)[1] if "@" in ref else (name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest")
        ctx.out("%s: Pulling from %s" % (tag, name.rsplit(":", 1)[0] if "@" not in ref else name))
        ctx.out("Status: Downloaded newer image for %s" % ref)
        if ref not in have:
            ctx.mutate(lambda world: world.setdefault("docker_images", []).append(ref))
        return 0
    if cmd == "tag":
        if len(rest) != 2:
            return ctx.unsupported("only `docker tag SRC DST` is")
        if rest[0] not in have:
            ctx.err("Error response from daemon: No such image: %s" % rest[0])
            return 1
        if rest[1] not in have:
            ctx.mutate(lambda world: world.setdefault("docker_images", []).append(rest[1]))
        return 0
    if cmd == "save":
        if len(rest) < 3 or rest[0] not in ("-o", "--output"):
            return ctx.unsupported("only `docker save -o FILE REF...` is")
        out, refs = rest[1], rest[2:]
        missing = [r for r in refs if r not in have]
        if missing:
            ctx.err("Error response from daemon: reference does not exist: %s" % missing[0])
            return 1
        # a digest reference saves no tag (RepoTags null), and a loaded image has no digest: moby/moby#22011
        # ("Digest is lost after loading a saved image": docker pull NAME@sha256:..., docker save, docker load)
        manifest = json.dumps([{"Config": "blobs/sha256/" + "0" * 64, "RepoTags": [r for r in refs if "@" not in r] or None,
                                "Layers": []}]).encode()
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(manifest), 0
            tar.addfile(info, io.BytesIO(manifest))
        tools_host._write(out, raw.getvalue())
        return 0
    if cmd == "load":
        if len(rest) != 2 or rest[0] not in ("-i", "--input"):
            return ctx.unsupported("only `docker load -i FILE` is")
        try:
            with tarfile.open(rest[1]) as tar:
                member = tar.extractfile("manifest.json")
                manifest = json.loads(member.read()) if member is not None else []
        except (OSError, tarfile.TarError, KeyError, ValueError):
            ctx.err("Error: open %s: no such file or directory" % rest[1] if not os.path.exists(rest[1])
                    else "Error processing tar file(exit status 1): unexpected EOF")
            return 1
        tags = [t for entry in manifest for t in (entry.get("RepoTags") or [])]
        for t in tags:
            ctx.out("Loaded image: %s" % t)
        ctx.mutate(lambda world: world.setdefault("docker_images", []).extend(t for t in tags if t not in have))
        return 0
    return ctx.unsupported()


def nvidia_ctk(ctx) -> int:
    if ctx.args[:1] == ["config"] and "--set" in " ".join(ctx.args):
        return nvidia_ctk_config(ctx)
    return T.nvidia_ctk(ctx)
