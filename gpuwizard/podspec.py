"""HAMi pod spec builder: answers model, rules, manifest, YAML, schema check.

Pure logic: no Textual, no subprocess, no network. The CLI (`gpuwizard podspec`, the ``podspec:``
section of the answer file) and the TUI screen both call :func:`make`.

Facts about HAMi this module encodes (research/gpu-stack.md §3, HAMi ``pkg/device/nvidia``):

* ``nvidia.com/gpu`` counts PHYSICAL cards: one pod (container) never gets two slices of one card,
  so it can ask for at most as many as a single node has.
* ``nvidia.com/gpumem`` is integer MiB per card; it must fit the card's registered memory, which is
  physical MiB × ``deviceMemoryScaling`` (> 1 = oversubscription).
* ``nvidia.com/gpumem-percentage`` (0–100) is the alternative to gpumem; never both.
* ``nvidia.com/gpucores`` (0–100) is the share of the card's compute; 100 = exclusive card;
  0 (HAMi's default) = no compute limit.
* Since HAMi 2.7 ``nvidia.com/gpu`` without gpumem/percentage means the whole memory plus
  gpucores 100, i.e. exclusive card(s); so does percentage 100 without gpucores.
* Card filters are pod annotations: ``nvidia.com/use-gputype`` / ``nouse-gputype``
  (comma-separated, case-insensitive substrings of the ``nvidia-smi -L`` name),
  ``nvidia.com/use-gpuuuid`` / ``nouse-gpuuuid``, ``hami.io/gpu-scheduler-policy``.
* HAMi reads ``resources.limits``; placement uses ``nodeSelector`` (never ``nodeName``, which
  bypasses the HAMi scheduler).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from . import versions as V

__all__ = [
    "K8S_SCHEMA_VERSION",
    "RES_GPU",
    "RES_GPUMEM",
    "RES_GPUMEM_PERCENTAGE",
    "RES_GPUCORES",
    "ANN_USE_TYPE",
    "ANN_NOUSE_TYPE",
    "ANN_USE_UUID",
    "ANN_NOUSE_UUID",
    "ANN_POLICY",
    "PodSpecAnswers",
    "CardFact",
    "ClusterGpuFacts",
    "Problem",
    "CheckResult",
    "Result",
    "check",
    "build",
    "to_yaml",
    "validate_schema",
    "gpu_type_choices",
    "matching_cards",
    "make",
    "problems_from_validation_error",
    "duplicate_problems",
]

# Kubernetes version whose JSON schema (shipped inside kubernetes-validate, so offline) the
# manifests are checked against. The Pod and Deployment fields used here have been stable for
# years; 1.33 is shipped by every kubernetes-validate >= 1.33 (the installed 1.37 ships 1.25-1.37).
K8S_SCHEMA_VERSION = "1.33"

RES_GPU = "nvidia.com/gpu"
RES_GPUMEM = "nvidia.com/gpumem"
RES_GPUMEM_PERCENTAGE = "nvidia.com/gpumem-percentage"
RES_GPUCORES = "nvidia.com/gpucores"

ANN_USE_TYPE = "nvidia.com/use-gputype"
ANN_NOUSE_TYPE = "nvidia.com/nouse-gputype"
ANN_USE_UUID = "nvidia.com/use-gpuuuid"
ANN_NOUSE_UUID = "nvidia.com/nouse-gpuuuid"
ANN_POLICY = "hami.io/gpu-scheduler-policy"

DEFAULT_CONTAINER = "main"
DEPLOYMENT_LABEL = "app"

# --------------------------------------------------------------------------------------------
# Syntax rules (Kubernetes apimachinery validation, distribution/reference grammar)
# --------------------------------------------------------------------------------------------

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_LABEL_RE = re.compile(rf"^{_DNS_LABEL}$")
_DNS_SUBDOMAIN_RE = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")
_LABEL_NAME_RE = re.compile(r"^(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# Classic C_IDENTIFIER-ish rule for env names (accepted by every Kubernetes version).
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_GPU_UUID_RE = re.compile(
    r"^GPU-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

# Docker/OCI image reference (github.com/distribution/reference grammar).
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|-+)"
_PATH_COMP = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMP = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
_HOST = rf"(?:{_DOMAIN_COMP}(?:\.{_DOMAIN_COMP})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_IMAGE_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMP}(?:/{_PATH_COMP})*"
_TAG = r"\w[\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_RE = re.compile(
    rf"^(?P<name>{_IMAGE_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$", re.ASCII
)
_SHELL_CHARS = set(";&|$`<>(){}[]'\"\\*?!#~=%^,")
_IMAGE_MAX = 255 + 1 + 128 + 1 + 200  # name + :tag + @digest, bounds the regex work


def _err(msg: str) -> PydanticCustomError:
    """A validation error whose message is shown as-is (no "Value error, " prefix)."""
    return PydanticCustomError("podspec", msg)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _need_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _err(f"expected {what} (a string), got {_show(value)}")
    return value


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _check_dns_subdomain(value: str, what: str) -> str:
    if not value:
        raise _err(f"{what} must not be empty")
    if len(value) > 253:
        raise _err(f"{what} is {len(value)} characters; at most 253 allowed")
    if not _DNS_SUBDOMAIN_RE.match(value):
        raise _err(
            f"{what} {value!r} is not a DNS-1123 subdomain: use lowercase letters, digits, '-' "
            f"and '.', starting and ending with a letter or digit (e.g. 'gpu-pod')"
        )
    return value


def _check_dns_label(value: str, what: str) -> str:
    if not value:
        raise _err(f"{what} must not be empty")
    if len(value) > 63:
        raise _err(f"{what} is {len(value)} characters; at most 63 allowed")
    if not _DNS_LABEL_RE.match(value):
        raise _err(
            f"{what} {value!r} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit, no dots (e.g. 'default')"
        )
    return value


def _label_key_problem(key: str) -> str | None:
    if not key:
        return "a label key must not be empty"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix):
            return (
                f"label key {key!r}: the prefix before '/' must be a DNS subdomain "
                f"(e.g. 'kubernetes.io/hostname')"
            )
    if not name or len(name) > 63 or not _LABEL_NAME_RE.match(name):
        return (
            f"label key {key!r}: the name part must be 1-63 characters of letters, digits, '-', "
            f"'_' and '.', starting and ending with a letter or digit"
        )
    return None


def _label_value_problem(key: str, value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63 or not _LABEL_NAME_RE.match(value):
        return (
            f"label value {value!r} (key {key!r}) must be empty or 1-63 characters of letters, "
            f"digits, '-', '_' and '.', starting and ending with a letter or digit"
        )
    return None


def _coerce_int(value: Any, what: str) -> int:
    """Whole numbers only. Digit strings (from a text input) are accepted; bools/floats are not."""
    if isinstance(value, bool):
        raise _err(f"expected {what} (a whole number), got the boolean {value}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", value):
        return int(value)
    raise _err(f"expected {what} (a whole number), got {_show(value)}")


def _string_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # a lone string is a one-element list
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _err(f"expected a list of {what}, got {_show(value)}")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _err(f"expected a list of {what}; item {_show(item)} is not a string")
        out.append(item)
    return out


def _dedupe(items: list[str], key: Callable[[str], str] = lambda s: s) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


# --------------------------------------------------------------------------------------------
# Answers model
# --------------------------------------------------------------------------------------------


class PodSpecAnswers(BaseModel):
    """One pod spec, as an item of the answer file's ``podspec: [...]`` list."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    # Declaration order is validation order: cross-field rules look back at earlier fields
    # (info.data), so each error is reported at the key that breaks the rule.
    kind: Literal["Pod", "Deployment"] = Field("Pod", description="Pod or Deployment")
    name: str = Field(description="Pod (or Deployment) name: DNS-1123 subdomain, e.g. gpu-pod")
    namespace: str = Field("default", description="Namespace: DNS-1123 label")
    replicas: int | None = Field(
        None, description="Deployment only: number of pods (>= 1, default 1)"
    )
    container: str = Field(DEFAULT_CONTAINER, description="Container name: DNS-1123 label")
    image: str = Field(description="Container image reference, e.g. ubuntu:18.04")
    command: list[str] | None = Field(
        None, description="Entrypoint override as a list, e.g. [bash, -c, 'sleep 86400']"
    )
    args: list[str] | None = Field(None, description="Arguments as a list")
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables (string values)"
    )
    gpus: int = Field(1, description="Physical GPUs (nvidia.com/gpu), >= 1")
    gpumem: int | None = Field(None, description="GPU memory per card in MiB (nvidia.com/gpumem)")
    gpumem_percentage: int | None = Field(
        None, description="GPU memory per card in percent, 0-100 (nvidia.com/gpumem-percentage)"
    )
    gpucores: int | None = Field(
        None, description="Compute share per card in percent, 0-100; 100 = exclusive"
    )
    gpu_type: list[str] = Field(
        default_factory=list,
        description="Use only cards whose name contains one of these (nvidia.com/use-gputype)",
    )
    avoid_gpu_type: list[str] = Field(
        default_factory=list,
        description="Never use cards whose name contains one of these (nvidia.com/nouse-gputype)",
    )
    gpu_uuids: list[str] = Field(
        default_factory=list, description="Use only these cards (nvidia.com/use-gpuuuid)"
    )
    avoid_gpu_uuids: list[str] = Field(
        default_factory=list, description="Never use these cards (nvidia.com/nouse-gpuuuid)"
    )
    scheduler_policy: Literal["binpack", "spread", "mutex"] | None = Field(
        None, description="hami.io/gpu-scheduler-policy"
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="nodeSelector labels (string values)"
    )
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = Field(
        None, description="Pod restartPolicy; a Deployment allows only Always"
    )
    output: str | None = Field(
        None, description="File the unattended mode writes the YAML to"
    )

    # ---- strings -------------------------------------------------------------------------

    @field_validator("name", mode="before")
    @classmethod
    def _v_name(cls, v: Any, info: ValidationInfo) -> str:
        name = _check_dns_subdomain(_need_str(v, "a pod name"), "the name")
        if info.data.get("kind") == "Deployment" and len(name) > 63:
            raise _err(
                f"a Deployment's name is also its pods' '{DEPLOYMENT_LABEL}' label value, so at "
                f"most 63 characters (got {len(name)})"
            )
        return name

    @field_validator("namespace", mode="before")
    @classmethod
    def _v_namespace(cls, v: Any) -> str:
        return _check_dns_label(_need_str(v, "a namespace"), "the namespace")

    @field_validator("container", mode="before")
    @classmethod
    def _v_container(cls, v: Any) -> str:
        return _check_dns_label(_need_str(v, "a container name"), "the container name")

    @field_validator("kind", mode="before")
    @classmethod
    def _v_kind(cls, v: Any) -> str:
        if not isinstance(v, str) or v not in ("Pod", "Deployment"):
            raise _err(f"expected kind 'Pod' or 'Deployment', got {_show(v)}")
        return v

    @field_validator("image", mode="before")
    @classmethod
    def _v_image(cls, v: Any) -> str:
        image = _need_str(v, "an image reference")
        if not image:
            raise _err("must not be empty; give an image, e.g. 'ubuntu:18.04'")
        m = _IMAGE_RE.match(image) if len(image) <= _IMAGE_MAX else None  # the length bounds the regex work
        if m is None:
            hint = ""
            if any(c.isspace() or c in _SHELL_CHARS for c in image):
                hint = "; whitespace and shell characters are not allowed"
            elif re.search(r"[A-Z]", image):
                hint = "; the repository path must be lowercase"
            raise _err(
                f"{_show(image)} is not a valid image reference: expected "
                f"[registry[:port]/]path[:tag][@sha256:digest], e.g. 'ubuntu:18.04' or "
                f"'nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04'{hint}"
            )
        if len(m.group("name")) > 255:
            raise _err("the repository name is longer than 255 characters")
        return image

    @field_validator("command", "args", mode="before")
    @classmethod
    def _v_argv(cls, v: Any, info: ValidationInfo) -> list[str] | None:
        if v is None:
            return None
        if isinstance(v, str):
            raise _err(
                f"expected a list of strings, e.g. "
                f"[bash, -c, 'sleep 86400'], got the string {_show(v)}"
            )
        items = _string_list(v, "strings")
        if not items:
            raise _err(
                "an empty list; leave the key out to keep the image's default"
            )
        for item in items:
            if "\x00" in item:
                raise _err(f"item {_show(item)} contains a NUL byte")
        return items

    @field_validator("env", mode="before")
    @classmethod
    def _v_env(cls, v: Any) -> dict[str, str]:
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise _err(f"expected a mapping NAME: value, got {_show(v)}")
        out: dict[str, str] = {}
        for key, val in v.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
                raise _err(
                    f"name {_show(key)} is invalid: expected letters, digits, '_', '-' and "
                    f"'.', not starting with a digit (e.g. CUDA_VISIBLE_DEVICES)"
                )
            if not isinstance(val, str):
                raise _err(
                    f"{key}: value {_show(val)} is not a string; quote it in YAML "
                    f"(e.g. {key}: \"{val}\")"
                )
            if "\x00" in val:
                raise _err(f"{key}: value contains a NUL byte")
            out[key] = val
        return out

    @field_validator("node_selector", mode="before")
    @classmethod
    def _v_node_selector(cls, v: Any) -> dict[str, str]:
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise _err(f"expected a mapping label: value, got {_show(v)}")
        out: dict[str, str] = {}
        for key, val in v.items():
            if not isinstance(key, str):
                raise _err(f"key {_show(key)} is not a string")
            problem = _label_key_problem(key)
            if problem:
                raise _err(problem)
            if not isinstance(val, str):
                hint = ""
                if isinstance(val, bool):
                    hint = " (YAML reads on/off/yes/no/true/false as booleans)"
                example = "on" if val is True else "off" if val is False else val
                raise _err(
                    f"{key}: value {_show(val)} is not a string{hint}; quote it, "
                    f"e.g. {key}: \"{example}\""
                )
            problem = _label_value_problem(key, val)
            if problem:
                raise _err(problem)
            out[key] = val
        return out

    @field_validator("gpu_type", "avoid_gpu_type", mode="before")
    @classmethod
    def _v_types(cls, v: Any, info: ValidationInfo) -> list[str]:
        items = _string_list(v, "card name substrings")
        for item in items:
            if not item.strip():
                raise _err("empty card name substring")
            if item != item.strip():
                raise _err(
                    f"{item!r} has leading/trailing spaces, which HAMi would "
                    f"match literally; remove them"
                )
            if "," in item:
                raise _err(
                    f"{item!r} contains ',' (HAMi splits on commas); give "
                    f"one substring per list item"
                )
            if _has_control(item):
                raise _err(f"{_show(item)} contains control characters")
        items = _dedupe(items, key=str.upper)
        if info.field_name == "avoid_gpu_type":
            used = {u.upper() for u in info.data.get("gpu_type", [])}
            both = [t for t in items if t.upper() in used]
            if both:
                raise _err(
                    f"{', '.join(repr(t) for t in both)} is also in gpu_type; a "
                    f"card type cannot be used and avoided at once"
                )
        return items

    @field_validator("gpu_uuids", "avoid_gpu_uuids", mode="before")
    @classmethod
    def _v_uuids(cls, v: Any, info: ValidationInfo) -> list[str]:
        items = _string_list(v, "GPU UUIDs")
        out = []
        for item in items:
            if not _GPU_UUID_RE.match(item):
                raise _err(
                    f"{_show(item)} is not a GPU UUID; expected the form "
                    f"nvidia-smi -L prints: GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex)"
                )
            out.append("GPU-" + item[4:].lower())
        out = _dedupe(out)
        if info.field_name == "avoid_gpu_uuids":
            both = [u for u in out if u in set(info.data.get("gpu_uuids", []))]
            if both:
                raise _err(
                    f"{', '.join(both)} is also in gpu_uuids; a card cannot be "
                    f"used and avoided at once"
                )
        return out

    @field_validator("scheduler_policy", mode="before")
    @classmethod
    def _v_policy(cls, v: Any) -> Any:
        if v is not None and v not in ("binpack", "spread", "mutex"):
            raise _err(f"expected binpack, spread or mutex, got {_show(v)}")
        return v

    @field_validator("restart_policy", mode="before")
    @classmethod
    def _v_restart(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and v not in ("Always", "OnFailure", "Never"):
            raise _err(f"expected Always, OnFailure or Never, got {_show(v)}")
        if v not in (None, "Always") and info.data.get("kind") == "Deployment":
            raise _err(
                f"{v} is not allowed in a Deployment; only Always (leave the key out)"
            )
        return v

    @field_validator("output", mode="before")
    @classmethod
    def _v_output(cls, v: Any) -> str | None:
        if v is None:
            return None
        path = _need_str(v, "a file path")
        if not path.strip():
            raise _err("must be a file path, not empty")
        if "\x00" in path:
            raise _err("the path contains a NUL byte")
        if _has_control(path):
            raise _err(f"the path {_show(path)} contains control characters")
        if path.endswith("/"):
            raise _err(f"{path!r} names a directory; give a file path, e.g. {path}gpu-pod.yaml")
        return path

    # ---- numbers -------------------------------------------------------------------------

    @field_validator("gpus", mode="before")
    @classmethod
    def _v_gpus(cls, v: Any) -> int:
        n = _coerce_int(v, "the number of physical GPUs")
        if n < 1:
            raise _err(f"must be at least 1 (physical cards), got {n}")
        return n

    @field_validator("replicas", mode="before")
    @classmethod
    def _v_replicas(cls, v: Any, info: ValidationInfo) -> int | None:
        if v is None:
            return None
        n = _coerce_int(v, "the number of replicas")
        if n < 1:
            raise _err(f"must be at least 1, got {n}")
        if info.data.get("kind", "Pod") == "Pod":
            raise _err(
                f"{n} given but kind is Pod; replicas needs kind: Deployment (a Pod is one pod)"
            )
        return n

    @field_validator("gpumem", mode="before")
    @classmethod
    def _v_gpumem(cls, v: Any) -> int | None:
        if v is None:
            return None
        n = _coerce_int(v, "GPU memory in MiB")
        if n < 1:
            raise _err(f"must be at least 1 MiB, got {n}")
        return n

    @field_validator("gpumem_percentage", mode="before")
    @classmethod
    def _v_gpumem_pct(cls, v: Any, info: ValidationInfo) -> int | None:
        if v is None:
            return None
        n = _coerce_int(v, "a memory percentage")
        if not 0 <= n <= 100:
            raise _err(f"must be within 0-100 (percent of the card's memory), got {n}")
        if info.data.get("gpumem") is not None:
            raise _err(
                f"{n} % given while gpumem ({info.data['gpumem']} MiB) is set too; "
                f"HAMi takes one or the other, give only one"
            )
        return n

    @field_validator("gpucores", mode="before")
    @classmethod
    def _v_gpucores(cls, v: Any) -> int | None:
        if v is None:
            return None
        n = _coerce_int(v, "a compute percentage")
        if not 0 <= n <= 100:
            raise _err(
                f"must be within 0-100 (percent of the card's compute; 100 = "
                f"exclusive), got {n}"
            )
        return n


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardFact:
    """One physical card as detected (``nvidia-smi -L`` name, NVML total memory)."""

    name: str
    memory_mib: int
    uuid: str | None = None
    node: str | None = None  # Kubernetes node name; None = "the one node" (e.g. this host)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"CardFact.name must be a non-empty string, got {self.name!r}")
        if isinstance(self.memory_mib, bool) or not isinstance(self.memory_mib, int) or (
            self.memory_mib < 1
        ):
            raise ValueError(f"CardFact.memory_mib must be a positive int, got {self.memory_mib!r}")


@dataclass(frozen=True)
class ClusterGpuFacts:
    """What is known about the cluster's GPUs. An empty ``cards`` list means unknown."""

    cards: list[CardFact] = field(default_factory=list)
    split_count: int = 10  # devicePlugin.deviceSplitCount
    memory_scaling: float = 1.0  # devicePlugin.deviceMemoryScaling
    core_scaling: float = 1.0  # devicePlugin.deviceCoreScaling

    def __post_init__(self) -> None:
        object.__setattr__(self, "cards", list(self.cards))
        if isinstance(self.split_count, bool) or not isinstance(self.split_count, int) or (
            self.split_count < 1
        ):
            raise ValueError(f"split_count must be an int >= 1, got {self.split_count!r}")
        for attr in ("memory_scaling", "core_scaling"):
            val = getattr(self, attr)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not (
                math.isfinite(val) and val > 0
            ):
                raise ValueError(f"{attr} must be a positive number, got {val!r}")

    @property
    def known(self) -> bool:
        return bool(self.cards)

    def capacity_mib(self, card: CardFact) -> int:
        """Memory HAMi registers for the card: physical MiB × deviceMemoryScaling, floored."""
        return int(card.memory_mib * self.memory_scaling)

    @classmethod
    def from_gpu_dicts(
        cls,
        gpus: list[Mapping[str, Any]],
        node: str | None = None,
        **settings: Any,
    ) -> ClusterGpuFacts:
        """From ``doctor --json``'s ``gpus`` list (``name``, ``memory_mib``, ``uuid``)."""
        cards = [
            CardFact(
                name=str(g["name"]),
                memory_mib=int(g["memory_mib"]),
                uuid=g.get("uuid") or None,
                node=g.get("node", node),
            )
            for g in gpus
        ]
        return cls(cards=cards, **settings)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    field: str  # answer key ("gpumem", "node_selector", ...); "" for the spec as a whole
    message: str  # "<field>: <what is wrong>, <the limit/expected>" — ready to show

    def __str__(self) -> str:
        return self.message


@dataclass
class CheckResult:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informational (e.g. facts unknown)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class Result:
    """What :func:`make` returns; ``manifest``/``yaml`` are None when there are errors."""

    spec: PodSpecAnswers | None
    manifest: dict[str, Any] | None
    yaml: str | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _p(fld: str, msg: str) -> Problem:
    return Problem(fld, f"{fld}: {msg}" if fld else msg)


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def _static_errors(spec: PodSpecAnswers) -> list[Problem]:
    """Rules that need no cluster facts (also enforced by the model)."""
    out: list[Problem] = []
    if spec.gpus < 1:
        out.append(_p("gpus", f"{spec.gpus} requested; at least 1 physical GPU is required"))
    if spec.gpumem is not None and spec.gpumem_percentage is not None:
        out.append(
            _p(
                "gpumem_percentage",
                f"both gpumem ({spec.gpumem} MiB) and gpumem_percentage "
                f"({spec.gpumem_percentage} %) are set; HAMi takes one or the other, give only one",
            )
        )
    if spec.gpumem is not None and spec.gpumem < 1:
        out.append(_p("gpumem", f"{spec.gpumem} MiB requested; at least 1 MiB"))
    if spec.gpumem_percentage is not None and not 0 <= spec.gpumem_percentage <= 100:
        out.append(
            _p("gpumem_percentage", f"{spec.gpumem_percentage} is outside 0-100 (percent)")
        )
    if spec.gpucores is not None and not 0 <= spec.gpucores <= 100:
        out.append(
            _p(
                "gpucores",
                f"{spec.gpucores} is outside 0-100 (percent of the card's compute; "
                f"100 = exclusive)",
            )
        )
    if spec.kind == "Pod" and spec.replicas is not None:
        out.append(
            _p(
                "replicas",
                f"{spec.replicas} given but kind is Pod; replicas needs kind: Deployment",
            )
        )
    if spec.kind == "Deployment":
        if len(spec.name) > 63:
            out.append(
                _p(
                    "name",
                    f"a Deployment's name is also its pods' '{DEPLOYMENT_LABEL}' label value, so "
                    f"at most 63 characters (got {len(spec.name)})",
                )
            )
        if spec.restart_policy not in (None, "Always"):
            out.append(
                _p(
                    "restart_policy",
                    f"{spec.restart_policy} is not allowed in a Deployment; only Always "
                    f"(leave it out)",
                )
            )
    same_types = {t.upper() for t in spec.gpu_type} & {t.upper() for t in spec.avoid_gpu_type}
    if same_types:
        out.append(
            _p(
                "avoid_gpu_type",
                f"{sorted(same_types)} is both in gpu_type and avoid_gpu_type; it cannot be "
                f"used and avoided at once",
            )
        )
    same_uuids = set(spec.gpu_uuids) & set(spec.avoid_gpu_uuids)
    if same_uuids:
        out.append(
            _p(
                "avoid_gpu_uuids",
                f"{sorted(same_uuids)} is both in gpu_uuids and avoid_gpu_uuids; it cannot be "
                f"used and avoided at once",
            )
        )
    return out


def _static_warnings(spec: PodSpecAnswers) -> list[Problem]:
    out: list[Problem] = []
    cards = "card" if spec.gpus == 1 else f"{spec.gpus} cards"
    has_mem = spec.gpumem is not None or spec.gpumem_percentage is not None
    if not has_mem:
        if spec.gpucores is None:
            out.append(
                _p(
                    "gpus",
                    f"{spec.gpus} requested without gpumem or gpumem_percentage: since HAMi 2.7 "
                    f"that means the whole {cards}, exclusive (all memory, gpucores 100), so no "
                    f"other pod can share it; add gpumem (MiB) or gpumem_percentage to share",
                )
            )
        else:
            out.append(
                _p(
                    "gpus",
                    f"{spec.gpus} requested without gpumem or gpumem_percentage: the pod takes "
                    f"all the memory of the {cards}, so other pods cannot share it; add gpumem "
                    f"or gpumem_percentage",
                )
            )
    elif spec.gpumem_percentage == 100 and spec.gpucores is None:
        out.append(
            _p(
                "gpumem_percentage",
                f"100 without gpucores makes HAMi add gpucores 100: the whole {cards}, "
                f"exclusive; lower it or set gpucores to share the card",
            )
        )
    elif spec.gpucores is None:
        what = (
            f"gpumem {spec.gpumem} MiB"
            if spec.gpumem is not None
            else f"gpumem_percentage {spec.gpumem_percentage} %"
        )
        out.append(
            _p(
                "gpucores",
                f"not set with {what}: no compute limit, the container may use up to 100 % of "
                f"the card's compute and slow its neighbours; add gpucores (e.g. 30) to cap it",
            )
        )
    if spec.gpumem_percentage == 0:
        out.append(
            _p(
                "gpumem_percentage",
                "0 reserves no GPU memory for the container; use 1-100",
            )
        )
    if spec.gpucores == 0:
        out.append(
            _p(
                "gpucores",
                "0 sets no compute limit (HAMi's default): the container shares the card's "
                "compute without a cap, and HAMi will not place it on a card whose compute is "
                "fully allocated; use 1-100 for a guaranteed share",
            )
        )
    if spec.gpucores == 100 and has_mem and spec.gpumem_percentage != 100:
        out.append(
            _p(
                "gpucores",
                f"100 makes the {cards} exclusive: no other pod is placed on it, so the memory "
                f"not given to this pod stays idle; lower gpucores to share the card",
            )
        )
    return out


def _node_label(node: str | None) -> str:
    return f"node {node}" if node is not None else "the node"


def _names(cards: list[CardFact]) -> str:
    return ", ".join(sorted({c.name for c in cards}))


def _contains_any(name: str, subs: list[str]) -> bool:
    up = name.upper()
    return any(s.upper() in up for s in subs)


def _uuid_eq(a: str | None, b: str) -> bool:
    return a is not None and a.lower() == b.lower()


def matching_cards(
    spec: PodSpecAnswers, facts: ClusterGpuFacts
) -> tuple[list[CardFact], list[Problem], list[Problem], list[str]]:
    """Cards the spec's filters leave, with the errors/warnings/notes the filters produced."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    notes: list[str] = []
    cards = list(facts.cards)
    detected = _names(cards)

    # node_selector kubernetes.io/hostname narrows the nodes when node names are known
    host = spec.node_selector.get("kubernetes.io/hostname")
    known_nodes = sorted({c.node for c in cards if c.node is not None})
    if host is not None:
        if known_nodes:
            cards = [c for c in cards if c.node == host]
            if not cards:
                errors.append(
                    _p(
                        "node_selector",
                        f"kubernetes.io/hostname={host!r} matches no node with GPUs (nodes with "
                        f"GPUs: {', '.join(known_nodes)})",
                    )
                )
                return [], errors, warnings, notes
        else:
            notes.append("node names are unknown, so node_selector was not checked")

    if spec.gpu_type:
        unknown = [t for t in spec.gpu_type if not any(_contains_any(c.name, [t]) for c in cards)]
        kept = [c for c in cards if _contains_any(c.name, spec.gpu_type)]
        if not kept:
            errors.append(
                _p(
                    "gpu_type",
                    f"no detected card matches {', '.join(repr(t) for t in spec.gpu_type)} "
                    f"(detected: {_names(cards) or detected})",
                )
            )
            return [], errors, warnings, notes
        if unknown:
            warnings.append(
                _p(
                    "gpu_type",
                    f"{', '.join(repr(t) for t in unknown)} matches no detected card (detected: "
                    f"{_names(cards)}); the other entries still apply",
                )
            )
        cards = kept

    if spec.avoid_gpu_type:
        unknown = [
            t
            for t in spec.avoid_gpu_type
            if not any(_contains_any(c.name, [t]) for c in facts.cards)
        ]
        if unknown:
            warnings.append(
                _p(
                    "avoid_gpu_type",
                    f"{', '.join(repr(t) for t in unknown)} matches no detected card, so it "
                    f"excludes nothing (detected: {detected})",
                )
            )
        kept = [c for c in cards if not _contains_any(c.name, spec.avoid_gpu_type)]
        if not kept:
            errors.append(
                _p(
                    "avoid_gpu_type",
                    f"{', '.join(repr(t) for t in spec.avoid_gpu_type)} excludes every card "
                    f"left to choose from ({_names(cards)})",
                )
            )
            return [], errors, warnings, notes
        cards = kept

    uuids_known = any(c.uuid for c in facts.cards)
    if (spec.gpu_uuids or spec.avoid_gpu_uuids) and not uuids_known:
        notes.append("card UUIDs are unknown, so gpu_uuids/avoid_gpu_uuids were not checked")
    elif spec.gpu_uuids:
        all_uuids = [c.uuid for c in facts.cards if c.uuid]
        unknown = [u for u in spec.gpu_uuids if not any(_uuid_eq(a, u) for a in all_uuids)]
        kept = [c for c in cards if any(_uuid_eq(c.uuid, u) for u in spec.gpu_uuids)]
        if not kept:
            if len(unknown) == len(spec.gpu_uuids):
                msg = (
                    f"none of {', '.join(spec.gpu_uuids)} is a detected card "
                    f"({len(all_uuids)} detected UUIDs; see nvidia-smi -L)"
                )
            else:
                msg = (
                    f"the listed cards are all excluded by the other filters (cards left "
                    f"before: {_names(cards)})"
                )
            errors.append(_p("gpu_uuids", msg))
            return [], errors, warnings, notes
        if unknown:
            warnings.append(
                _p(
                    "gpu_uuids",
                    f"{', '.join(unknown)} is not a detected card; the others still apply",
                )
            )
        cards = kept
    if spec.avoid_gpu_uuids and uuids_known:
        all_uuids = [c.uuid for c in facts.cards if c.uuid]
        unknown = [u for u in spec.avoid_gpu_uuids if not any(_uuid_eq(a, u) for a in all_uuids)]
        if unknown:
            warnings.append(
                _p(
                    "avoid_gpu_uuids",
                    f"{', '.join(unknown)} is not a detected card, so it excludes nothing",
                )
            )
        kept = [c for c in cards if not any(_uuid_eq(c.uuid, u) for u in spec.avoid_gpu_uuids)]
        if not kept:
            errors.append(
                _p(
                    "avoid_gpu_uuids",
                    f"excludes every card left to choose from ({len(cards)} card(s): "
                    f"{_names(cards)})",
                )
            )
            return [], errors, warnings, notes
        cards = kept
    return cards, errors, warnings, notes


def _by_node(cards: list[CardFact]) -> dict[str | None, list[CardFact]]:
    groups: dict[str | None, list[CardFact]] = {}
    for c in cards:
        groups.setdefault(c.node, []).append(c)
    return groups


def _fmt_scaling(x: float) -> str:
    return f"{float(x):g}" if float(x) != int(x) else f"{float(x):.1f}"


def _per_card_pods(spec: PodSpecAnswers, facts: ClusterGpuFacts, card: CardFact) -> int:
    """How many pods like this one a single empty card could hold (for the replicas warning)."""
    n = facts.split_count
    cap = facts.capacity_mib(card)
    exclusive = (spec.gpumem is None and spec.gpumem_percentage is None) or (
        spec.gpumem_percentage == 100 and spec.gpucores is None
    )
    if exclusive or (spec.gpucores == 100 and facts.core_scaling == 1):
        return 1
    if spec.gpumem:
        n = min(n, cap // spec.gpumem)
    elif spec.gpumem_percentage:
        n = min(n, 100 // spec.gpumem_percentage)
    if spec.gpucores:
        n = min(n, int(100 * facts.core_scaling) // spec.gpucores)
    return max(n, 0)


def _fact_rules(spec: PodSpecAnswers, facts: ClusterGpuFacts, res: CheckResult) -> None:
    cards, errors, warnings, notes = matching_cards(spec, facts)
    res.errors += errors
    res.warnings += warnings
    res.notes += notes
    if not cards:
        return
    filtered = bool(
        spec.gpu_type
        or spec.avoid_gpu_type
        or spec.gpu_uuids
        or spec.avoid_gpu_uuids
        or "kubernetes.io/hostname" in spec.node_selector
    )
    matching = "matching " if filtered else ""
    groups = _by_node(cards)
    best_node, best = max(groups.items(), key=lambda kv: len(kv[1]))
    if spec.gpus > len(best):
        where = "the largest node" if len(groups) > 1 else _node_label(best_node)
        if len(groups) > 1 and best_node is not None:
            where += f" ({best_node})"
        res.errors.append(
            _p(
                "gpus",
                f"{spec.gpus} requested but {where} has {len(best)} {matching}physical "
                f"GPU{'s' if len(best) != 1 else ''} (a pod cannot take two slices of one card)",
            )
        )
        return

    scale = _fmt_scaling(facts.memory_scaling)
    if spec.gpumem is not None:
        largest = max(cards, key=lambda c: (facts.capacity_mib(c), c.name))
        smallest = min(cards, key=lambda c: (facts.capacity_mib(c), c.name))
        cap_l = facts.capacity_mib(largest)
        cap_s = facts.capacity_mib(smallest)
        if spec.gpumem > cap_l:
            which = "smallest" if cap_l == cap_s else "largest"
            res.errors.append(
                _p(
                    "gpumem",
                    f"{spec.gpumem} MiB exceeds the {which} {matching}card ({largest.name}, "
                    f"{largest.memory_mib} MiB × scaling {scale}"
                    + (f" = {cap_l} MiB" if facts.memory_scaling != 1 else "")
                    + ")",
                )
            )
            return
        fits = [c for c in cards if facts.capacity_mib(c) >= spec.gpumem]
        fit_groups = _by_node(fits)
        fit_node, fit_best = max(fit_groups.items(), key=lambda kv: len(kv[1]))
        if spec.gpus > len(fit_best):
            res.errors.append(
                _p(
                    "gpumem",
                    f"{spec.gpus} cards with at least {spec.gpumem} MiB each are needed on one "
                    f"node, but {_node_label(fit_node)} has the most: {len(fit_best)} "
                    f"({_names(fit_best)}); lower gpumem or gpus",
                )
            )
            return
        if spec.gpumem > cap_s:
            res.warnings.append(
                _p(
                    "gpumem",
                    f"{spec.gpumem} MiB exceeds the smallest {matching}card ({smallest.name}, "
                    f"{smallest.memory_mib} MiB × scaling {scale}); only {_names(fits)} can take "
                    f"it — add gpu_type to say so explicitly",
                )
            )
        if facts.memory_scaling > 1:
            over = sorted({c.name for c in fits if spec.gpumem > c.memory_mib})
            if over:
                res.warnings.append(
                    _p(
                        "gpumem",
                        f"{spec.gpumem} MiB is more than the physical memory of {', '.join(over)}; "
                        f"it fits only through deviceMemoryScaling {scale} (oversubscription: "
                        f"the excess lives in host RAM and is slow)",
                    )
                )
    elif spec.gpumem_percentage is not None and facts.memory_scaling > 1:
        if spec.gpumem_percentage * facts.memory_scaling > 100:
            res.warnings.append(
                _p(
                    "gpumem_percentage",
                    f"{spec.gpumem_percentage} % of the scaled memory (deviceMemoryScaling "
                    f"{scale}) is more than the card physically has (oversubscription: the "
                    f"excess lives in host RAM and is slow)",
                )
            )

    if spec.kind == "Deployment":
        replicas = spec.replicas or 1
        slots = sum(_per_card_pods(spec, facts, c) for c in cards)
        need = replicas * spec.gpus
        if need > slots:
            res.warnings.append(
                _p(
                    "replicas",
                    f"{replicas} replica(s) × {spec.gpus} GPU(s) need {need} card slices, but "
                    f"the {matching}cards hold at most {slots} such slices when empty "
                    f"(deviceSplitCount {facts.split_count}); some replicas will stay Pending",
                )
            )


def check(spec: PodSpecAnswers, facts: ClusterGpuFacts | None = None) -> CheckResult:
    """All rules. Without facts (None or no cards) only static rules apply; a note says so."""
    res = CheckResult()
    res.errors += _static_errors(spec)
    res.warnings += _static_warnings(spec)
    if facts is None or not facts.known:
        res.notes.append(
            "cluster GPU facts are unknown: only the static rules were checked (card count, "
            "memory and card names were not)"
        )
        return res
    if res.errors:
        return res
    _fact_rules(spec, facts, res)
    return res


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def _annotations(spec: PodSpecAnswers) -> dict[str, str]:
    ann: dict[str, str] = {}
    if spec.gpu_type:
        ann[ANN_USE_TYPE] = ",".join(spec.gpu_type)
    if spec.avoid_gpu_type:
        ann[ANN_NOUSE_TYPE] = ",".join(spec.avoid_gpu_type)
    if spec.gpu_uuids:
        ann[ANN_USE_UUID] = ",".join(spec.gpu_uuids)
    if spec.avoid_gpu_uuids:
        ann[ANN_NOUSE_UUID] = ",".join(spec.avoid_gpu_uuids)
    if spec.scheduler_policy:
        ann[ANN_POLICY] = spec.scheduler_policy
    return ann


def _limits(spec: PodSpecAnswers) -> dict[str, int]:
    limits: dict[str, int] = {RES_GPU: spec.gpus}
    if spec.gpumem is not None:
        limits[RES_GPUMEM] = spec.gpumem
    if spec.gpumem_percentage is not None:
        limits[RES_GPUMEM_PERCENTAGE] = spec.gpumem_percentage
    if spec.gpucores is not None:
        limits[RES_GPUCORES] = spec.gpucores
    return limits


def _container(spec: PodSpecAnswers) -> dict[str, Any]:
    c: dict[str, Any] = {"name": spec.container, "image": spec.image}
    if spec.command:
        c["command"] = list(spec.command)
    if spec.args:
        c["args"] = list(spec.args)
    if spec.env:
        c["env"] = [{"name": k, "value": v} for k, v in spec.env.items()]
    c["resources"] = {"limits": _limits(spec)}
    return c


def _pod_spec(spec: PodSpecAnswers) -> dict[str, Any]:
    ps: dict[str, Any] = {}
    if spec.restart_policy:
        ps["restartPolicy"] = spec.restart_policy
    if spec.node_selector:
        ps["nodeSelector"] = dict(spec.node_selector)
    ps["containers"] = [_container(spec)]
    return ps


def build(spec: PodSpecAnswers) -> dict[str, Any]:
    """The manifest as a plain dict with a stable key order (does not run the rules)."""
    ann = _annotations(spec)
    if spec.kind == "Pod":
        meta: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace}
        if ann:
            meta["annotations"] = ann
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": _pod_spec(spec)}
    labels = {DEPLOYMENT_LABEL: spec.name}
    tmeta: dict[str, Any] = {"labels": dict(labels)}
    if ann:
        tmeta["annotations"] = ann
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": dict(labels)},
        "spec": {
            "replicas": spec.replicas if spec.replicas is not None else 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": tmeta, "spec": _pod_spec(spec)},
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # never emit &anchors / *aliases
        return True


_UNSAFE_PLAIN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # PyYAML may emit NEL, LS/PS and C1 controls raw in plain or single-quoted scalars, where a
    # reader folds them into spaces; double quotes escape them, so the value round-trips exactly.
    style = '"' if _UNSAFE_PLAIN.search(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(manifest: Mapping[str, Any]) -> str:
    """Block-style YAML, keys in insertion order, no aliases, no line wrapping."""
    return yaml.dump(
        manifest,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
        indent=2,
    )


@functools.lru_cache(maxsize=16)
def _schema_validator(version: str, kind: str, api_version: str) -> tuple[Any, str]:
    """A jsonschema validator over kubernetes-validate's shipped strict schema, built once.

    Mirrors ``kubernetes_validate.validate`` (same files, same version resolution) but keeps the
    parsed 1.4 MB definitions, which makes a check ~25x faster — the TUI re-checks as you type.
    """
    import jsonschema
    from kubernetes_validate import utils as kv
    from referencing import Registry, Resource

    wanted = kv.major_minor(version.lstrip("v"))
    try:  # numerically: as strings "1.9" > "1.33"
        shipped = [v for v in kv.all_versions() if V.compare(V.major_minor(v), wanted) <= 0]
        newer_than_shipped = V.compare(wanted, V.major_minor(kv.latest_version())) > 0
    except ValueError:
        raise kv.VersionNotSupportedError(version=wanted) from None
    if not shipped or newer_than_shipped:
        raise kv.VersionNotSupportedError(version=wanted)
    resolved = shipped[-1]
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{resolved}-local-strict"
    try:
        schema = kv.schema_contents(f"{folder}/{kind.lower()}-{api}.json", version)
    except FileNotFoundError:
        raise kv.SchemaNotFoundError(version=wanted, kind=kind, api_version=api_version) from None
    defs = kv.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
    return validator, kv.major_minor(resolved)


def validate_schema(manifest: Mapping[str, Any], version: str = K8S_SCHEMA_VERSION) -> list[str]:
    """Offline check against the Kubernetes JSON schema that kubernetes-validate ships (strict:
    unknown fields are errors). Returns every problem as "path: message", empty when valid."""
    from kubernetes_validate import utils as kv  # lazy: only the schema check needs it

    data = dict(manifest)
    kind, api_version = data.get("kind"), data.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return ["(top): the manifest needs string 'apiVersion' and 'kind' keys"]
    try:
        validator, resolved = _schema_validator(version, kind, api_version)
    except (kv.SchemaNotFoundError, kv.VersionNotSupportedError, kv.InvalidSchemaError) as e:
        return [getattr(e, "message", str(e))]
    except (AttributeError, ImportError, TypeError):  # internals moved: use the public API
        try:
            kv.validate(data, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path) or "(top)"
            return [f"{path}: {e.message} (Kubernetes {e.version} schema)"]
        except (kv.SchemaNotFoundError, kv.VersionNotSupportedError, kv.InvalidSchemaError) as e:
            return [getattr(e, "message", str(e))]
        return []
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message} "
        f"(Kubernetes {resolved} schema)"
        for e in errors
    ]


def gpu_type_choices(facts: ClusterGpuFacts | None) -> list[str]:
    """Distinct detected card names, sorted — what the UI offers for gpu_type."""
    if facts is None:
        return []
    return sorted({c.name for c in facts.cards})


# --------------------------------------------------------------------------------------------
# Entry point for CLI/TUI
# --------------------------------------------------------------------------------------------


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """Pydantic errors → Problems (field = dotted key path, message names the value/expectation).

    The answer-file loader can instead use ``exc.errors()`` directly: every rule, cross-field
    ones included, is reported at the key that breaks it (``loc``), with a ready message.
    """
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err.get("loc", ())]
        fld = ".".join(([prefix] if prefix else []) + loc)
        msg = err.get("msg", "invalid")
        etype = err.get("type", "")
        if etype == "extra_forbidden":
            msg = f"unknown key; expected one of: {', '.join(PodSpecAnswers.model_fields)}"
        elif etype == "missing":
            msg = "required key is missing"
        elif etype != "podspec" and "input" in err:
            msg = f"{msg} (got {_show(err['input'])})"
        out.append(Problem(fld, f"{fld}: {msg}" if fld else msg))
    return out


def duplicate_problems(specs: list[PodSpecAnswers], prefix: str = "podspec") -> list[Problem]:
    """Across the answer file's list: one kind/namespace/name twice, or one output file twice."""
    out: list[Problem] = []
    seen: dict[tuple[str, str, str], int] = {}
    outs: dict[str, int] = {}
    for i, s in enumerate(specs):
        key = (s.kind, s.namespace, s.name)
        if key in seen:
            fld = f"{prefix}[{i}].name"
            out.append(
                Problem(fld, f"{fld}: {s.kind} {s.namespace}/{s.name} is already defined by "
                             f"{prefix}[{seen[key]}]; names must be unique")
            )
        else:
            seen[key] = i
        if s.output is not None:
            if s.output in outs:
                fld = f"{prefix}[{i}].output"
                out.append(
                    Problem(fld, f"{fld}: {s.output!r} is already written by "
                                 f"{prefix}[{outs[s.output]}]; give each spec its own file")
                )
            else:
                outs[s.output] = i
    return out


def _rules_on_the_rest(spec: Mapping[str, Any], exc: ValidationError, facts: ClusterGpuFacts | None) -> list[Problem]:
    """So that every problem is listed at once: drop the keys the model refused and check the
    remaining spec against the cluster facts too (errors about the dropped keys are not repeated)."""
    bad = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
    if not bad or bad & {"name", "image"} and not facts:
        return []
    rest = {k: v for k, v in spec.items() if k not in bad}
    rest.setdefault("name", "placeholder")
    rest.setdefault("image", "placeholder")
    try:
        partial = PodSpecAnswers.model_validate(rest)
    except ValidationError:
        return []
    return [p for p in check(partial, facts).errors if p.field.split(".")[0] not in bad]


def make(
    spec: PodSpecAnswers | Mapping[str, Any] | object,  # object: whatever a YAML file held, refused below
    facts: ClusterGpuFacts | None = None,
) -> Result:
    """Validate, check, build, dump and schema-check one spec. Nothing is produced on errors."""
    if isinstance(spec, PodSpecAnswers):
        model = spec
    elif not isinstance(spec, Mapping):
        msg = f"expected a mapping of pod spec keys (name, image, gpus, ...), got {_show(spec)}"
        return Result(None, None, None, errors=[Problem("", msg)])
    else:
        try:
            model = PodSpecAnswers.model_validate(dict(spec))
        except ValidationError as exc:
            errors = problems_from_validation_error(exc)
            return Result(None, None, None, errors=errors + _rules_on_the_rest(spec, exc, facts))
    res = check(model, facts)
    if res.errors:
        return Result(model, None, None, res.errors, res.warnings, res.notes)
    manifest = build(model)
    schema = validate_schema(manifest)
    if schema:
        errs = [Problem("manifest", f"manifest: {m}") for m in schema]
        return Result(model, None, None, errs, res.warnings, res.notes)
    return Result(model, manifest, to_yaml(manifest), [], res.warnings, res.notes)
