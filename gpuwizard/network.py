"""Where the wizard's downloads come from: the answer file's ``mirrors:`` and ``proxy:`` sections.

``mirrors:`` maps each source gpuwizard downloads from to a mirror of it:

* URL sources by name (``cuda_repo``, ``container_toolkit_repo``, ``driver_runfiles``, ``cuda_runfiles``,
  ``kind``, ``kubectl``, ``helm``), each the mirror of one upstream base URL (:data:`UPSTREAM`); a URL
  under that base is fetched from the same path under the mirror (a mirror is a copy of upstream's
  tree, as the usual mirrors of these sites are). ``urls:`` adds any other base the same way.
* ``charts:`` a Helm chart repository (by its alias: ``nvidia``, ``hami-charts``, or its URL) to the URL
  of a mirror of that repository.
* ``registries:`` a source registry (``nvcr.io``, ``registry.k8s.io``, ``docker.io``, ...) to a mirror
  (``host[:port][/path]``): the images gpuwizard names (the check pods, the Kind node, HAMi's
  kube-scheduler) are pulled from there.
* ``pip_index:`` the package index the PyTorch check installs from.

The longest matching base wins. Every URL the plan shows says which mirror it came from
(:meth:`Network.show`).

``proxy:`` ``http``/``https``/``no_proxy``: given to every command gpuwizard runs (both spellings of
each variable: curl reads the lower-case ones, Go programs either) and, with ``services: true``, to
Docker's and containerd's services through systemd drop-ins (steps/container.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# the upstream base of each named source (where gpuwizard's URLs for it start)
UPSTREAM: dict[str, str] = {
    "cuda_repo": "https://developer.download.nvidia.com/compute/cuda/repos",
    "cuda_runfiles": "https://developer.download.nvidia.com/compute/cuda",
    "container_toolkit_repo": "https://nvidia.github.io/libnvidia-container",
    "driver_runfiles": "https://download.nvidia.com/XFree86",
    "kind": "https://github.com/kubernetes-sigs/kind/releases/download",
    "kubectl": "https://dl.k8s.io",
    "helm": "https://get.helm.sh",
}

_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$")


def _url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


class Mirrors(BaseModel):
    """Mirrors of what gpuwizard downloads (gpuwizard/network.py)."""

    model_config = ConfigDict(extra="forbid", title="mirrors", defer_build=True)

    cuda_repo: str | None = Field(default=None, description=f"mirror of NVIDIA's CUDA repositories ({UPSTREAM['cuda_repo']})")
    cuda_runfiles: str | None = Field(default=None, description=f"mirror of the CUDA runfiles ({UPSTREAM['cuda_runfiles']})")
    container_toolkit_repo: str | None = Field(
        default=None, description=f"mirror of the NVIDIA Container Toolkit repository ({UPSTREAM['container_toolkit_repo']})")
    driver_runfiles: str | None = Field(default=None, description=f"mirror of the driver runfiles ({UPSTREAM['driver_runfiles']})")
    kind: str | None = Field(default=None, description=f"mirror of kind's releases ({UPSTREAM['kind']})")
    kubectl: str | None = Field(default=None, description=f"mirror of kubectl's releases ({UPSTREAM['kubectl']})")
    helm: str | None = Field(default=None, description=f"mirror of Helm's releases ({UPSTREAM['helm']})")
    urls: dict[str, str] = Field(default_factory=dict, description="any other URL base to the base of its mirror")
    charts: dict[str, str] = Field(default_factory=dict,
                                   description="a Helm chart repository (alias or URL) to the URL of its mirror")
    registries: dict[str, str] = Field(default_factory=dict,
                                       description="a container registry (nvcr.io, registry.k8s.io, docker.io, ...) to "
                                                   "its mirror (host[:port][/path])")
    pip_index: str | None = Field(default=None, description="the package index the PyTorch check installs from")

    @field_validator("cuda_repo", "cuda_runfiles", "container_toolkit_repo", "driver_runfiles", "kind", "kubectl", "helm",
                     "pip_index")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @field_validator("urls", "charts")
    @classmethod
    def _check_urls(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.rstrip("/"): _url(v) for k, v in value.items()}

    @field_validator("registries")
    @classmethod
    def _check_registries(cls, value: dict[str, str]) -> dict[str, str]:
        for source, mirror in value.items():
            for what in (source, mirror):
                if not _REGISTRY.match(what):
                    raise ValueError(f"{what!r}: expected a registry as host[:port][/path], without a scheme")
        return {k: v.rstrip("/") for k, v in value.items()}


class Proxy(BaseModel):
    """An HTTP(S) proxy for every download (gpuwizard/network.py)."""

    model_config = ConfigDict(extra="forbid", title="proxy", defer_build=True)

    http: str | None = Field(default=None, description="http_proxy: the proxy for http:// URLs")
    https: str | None = Field(default=None, description="https_proxy: the proxy for https:// URLs")
    no_proxy: list[str] = Field(default_factory=list, description="hosts, domains and CIDRs reached directly")
    services: bool = Field(True, description="also give the proxy to Docker's and containerd's services "
                                             "(systemd drop-ins, restarted; undo removes them)")

    @field_validator("http", "https")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)


DEFAULT_REGISTRY = "docker.io"


def split_image(ref: str) -> tuple[str, str]:
    """(registry, the rest) of an image reference, as the container runtimes read it: the first
    component is a registry when it has a dot or a port or is ``localhost``, else it is Docker Hub's
    (where an image with one component lives under ``library/``)."""
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DEFAULT_REGISTRY, ref if sep else f"library/{ref}"


@dataclass
class Network:
    """The mirrors and proxy of one session; empty: everything from upstream, no proxy."""

    mirrors: Mirrors = field(default_factory=lambda: Mirrors())
    proxy: Proxy | None = None
    # an offline bundle served on 127.0.0.1 (gpuwizard/bundle.py): URL base -> its copy, applied after
    # the mirrors (a bundle holds what the plan fetches)
    local_urls: dict[str, str] = field(default_factory=dict)
    # the bundle's chart archives: (chart, version) -> its .tgz on this machine; helm installs from it
    # (no repository alias is added that would name the bundle's port after the run)
    local_archives: dict[tuple[str, str], str] = field(default_factory=dict)
    # the bundle's images: the reference the plan pulls -> (its archive on this machine, the reference
    # it loads as: the tag, since `docker load` keeps no digest: moby/moby#22011)
    local_images: dict[str, tuple[str, str]] = field(default_factory=dict)

    # the offline bundle in use (its directory), None without one; and the host it was built on
    # (its manifest's "host": the facts' os, version, arch), which the target must match
    bundle: str | None = None
    bundle_host: dict[str, Any] | None = None
    # the bundle's APT repository (its directory on this machine), and the APT_CONFIG file that points
    # gpuwizard's apt commands at it (gpuwizard/packages.py)
    local_apt: str | None = None
    apt_config: str | None = None

    def archive(self, chart: str, version: str) -> str | None:
        return self.local_archives.get((chart, version))

    def loaded(self, ref: str) -> str:
        """The reference an image pulled as ``ref`` has on the host: the tag it loads as from an
        offline bundle that holds it, else ``ref`` itself."""
        local = self.local_images.get(ref)
        return local[1] if local else ref

    @classmethod
    def of(cls, answers: Any) -> Network:
        """From an answer file model (its ``mirrors`` and ``proxy`` sections)."""
        return cls(getattr(answers, "mirrors", None) or Mirrors(), getattr(answers, "proxy", None))

    def _bases(self) -> list[tuple[str, str, str]]:
        """(upstream base, mirror base, name), longest upstream first."""
        m = self.mirrors
        out = [(UPSTREAM[name], value, name) for name in UPSTREAM if (value := getattr(m, name))]
        out += [(base, value, base) for base, value in m.urls.items()]
        return sorted(out, key=lambda b: -len(b[0]))

    def _answered(self, url: str) -> tuple[str, str | None]:
        """The answer file's mirror of a URL: (the URL, the upstream base or None)."""
        for upstream, mirror, _ in self._bases():
            if url == upstream or url.startswith(upstream + "/"):
                return mirror + url[len(upstream):], upstream
        return url, None

    def mirrored(self, url: str) -> tuple[str, str | None]:
        """(the URL to fetch, the upstream base it mirrors or None): the answer file's mirror, then an
        offline bundle's copy of that."""
        fetched, origin = self._answered(url)
        for base, copy in sorted(self.local_urls.items(), key=lambda b: -len(b[0])):
            if fetched == base or fetched.startswith(base + "/"):
                return copy + fetched[len(base):], origin or base
        return fetched, origin

    def url(self, url: str) -> str:
        return self.mirrored(url)[0]

    def lasting(self, url: str) -> tuple[str, str | None]:
        """For what stays on the host after the run (a repository's line in sources.list.d, a .repo
        file): the answer file's mirror only, never an offline bundle's copy, which is served on
        127.0.0.1 for the length of one run."""
        return self._answered(url)

    def origin(self, url: str) -> str | None:
        """Where the URL to fetch for ``url`` comes from, for a plan: ``mirror of UPSTREAM``, ``the
        offline bundle's copy of ORIGINAL``, or None (``url`` itself)."""
        fetched, upstream = self.mirrored(url)
        if upstream is None:
            return None
        if any(fetched.startswith(copy + "/") for copy in self.local_urls.values()):
            return f"the offline bundle's copy of {self._answered(url)[0]}"
        return f"mirror of {upstream}"

    def show(self, url: str) -> str:
        """The URL to fetch, saying where it came from: ``URL (ORIGIN)`` (:meth:`origin`)."""
        origin = self.origin(url)
        return self.url(url) + (f" ({origin})" if origin else "")

    def chart_repo(self, alias: str, url: str) -> tuple[str, str | None]:
        """(the URL ``helm repo add`` uses for the repository, the upstream URL it mirrors or None)."""
        charts = self.mirrors.charts
        mirror = charts.get(alias) or charts.get(url.rstrip("/"))
        fetched, upstream = (mirror, url) if mirror else self._answered(url)
        return fetched, upstream and url

    def image(self, ref: str) -> str:
        """The image reference to pull: its registry's mirror in place of the registry."""
        registry, rest = split_image(ref)
        mirror = self.mirrors.registries.get(registry)
        if mirror is None and registry == DEFAULT_REGISTRY:
            mirror = self.mirrors.registries.get("index.docker.io") or self.mirrors.registries.get("registry-1.docker.io")
        return f"{mirror}/{rest}" if mirror else ref

    def registry(self, registry: str) -> str:
        """A registry's mirror (or the registry itself)."""
        return self.mirrors.registries.get(registry, registry)

    def env(self) -> dict[str, str]:
        """The proxy's environment for commands (both spellings), and APT_CONFIG where an offline
        bundle's packages are used; empty without either."""
        env: dict[str, str] = {"APT_CONFIG": self.apt_config} if self.apt_config else {}
        p = self.proxy
        if p is None:
            return env
        for name, value in (("http_proxy", p.http), ("https_proxy", p.https)):
            if value:
                env[name] = env[name.upper()] = value
        if p.no_proxy:
            env["no_proxy"] = env["NO_PROXY"] = ",".join(p.no_proxy)
        return env
