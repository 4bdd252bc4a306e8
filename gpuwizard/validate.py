"""Validated value types for everything that can reach a command line or a system path.

Answers never meet a shell (every command is an argv list), but a value can still hurt as an
argument: ``--kubeconfig=/etc/shadow`` as a "cluster name", ``../../etc`` as a path, a newline in a
version that ends up in a file. Each type here accepts only what its field can legitimately be and
says what was expected when it refuses.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^v?\d+(\.\d+){0,3}([-+~][0-9A-Za-z.]+)?$")
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$")
_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_SHA256 = re.compile(r"^[a-fA-F0-9]{64}$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_@:/.=+-]{1,253}$")


def _k8s_name(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            "expected a Kubernetes name: lowercase letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters"
        )
    return value


def _version(value: str) -> str:
    if len(value) > 64 or not _VERSION.match(value):
        raise ValueError("expected a version such as 565.57.01, 12.6 or v25.10.0")
    return value


def _url(value: str) -> str:
    if len(value) > 2048 or not _URL.match(value):
        raise ValueError("expected an http(s) URL without spaces or quotes")
    return value


def _abs_path(value: str) -> str:
    if "\0" in value or "\n" in value:
        raise ValueError("expected an absolute path (no NUL or newline characters)")
    p = PurePosixPath(value)
    if not p.is_absolute() or ".." in p.parts or len(value) > 4096:
        raise ValueError("expected an absolute path without '..' components")
    return value


def _image(value: str) -> str:
    if len(value) > 512 or not _IMAGE.match(value):
        raise ValueError("expected a container image reference such as nvidia/cuda:12.6.2-base-ubuntu22.04")
    return value


def _sha256(value: str) -> str:
    if not _SHA256.match(value):
        raise ValueError("expected a SHA-256 checksum: 64 hexadecimal characters")
    return value.lower()


def _label_key(value: str) -> str:
    name = value.rsplit("/", 1)[-1]
    if len(name) > 63 or len(value) > 317 or not _LABEL_KEY.match(value):
        raise ValueError("expected a Kubernetes label key such as gpu or nvidia.com/gpu.present")
    return value


def _label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError("expected a Kubernetes label value: letters, digits, '-', '_' and '.', at most 63 characters")
    return value


def _label(value: str) -> str:
    if "=" not in value:
        raise ValueError("expected a node label as key=value, such as gpu=on")
    key, val = value.split("=", 1)
    _label_key(key)
    _label_value(val)
    return value


def _context(value: str) -> str:
    if value.startswith("-") or not _CONTEXT.match(value):
        raise ValueError("expected a kube context name (letters, digits and _@:/.=+-, not starting with '-')")
    return value


K8sName = Annotated[str, AfterValidator(_k8s_name)]
Version = Annotated[str, AfterValidator(_version)]
Url = Annotated[str, AfterValidator(_url)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
ImageRef = Annotated[str, AfterValidator(_image)]
Sha256 = Annotated[str, AfterValidator(_sha256)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
NodeLabel = Annotated[str, AfterValidator(_label)]
KubeContext = Annotated[str, AfterValidator(_context)]


def url_or_path(value: str) -> str:
    if value.startswith(("http://", "https://")):
        return _url(value)
    try:
        return _abs_path(value)
    except ValueError:
        raise ValueError("expected an http(s) URL or an absolute path") from None


UrlOrPath = Annotated[str, AfterValidator(url_or_path)]


class Section(BaseModel):
    """One step's section of the answer file: strict (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


Auto = Literal["auto"] | bool
