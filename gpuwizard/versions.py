"""One way to compare the version strings this project meets.

Driver branches and builds (``570.26``, ``535.309.01``), CUDA releases (``12.6``, ``12.8.1``),
Kubernetes and tool releases (``v1.31.2``, ``v0.25.0``), chart versions (``v25.10.1``, ``2.7.0-rc1``)
all parse into a :class:`packaging.version.Version`, so they compare numerically part by part
(``570.26 < 570.124.06``), a missing part counts as 0 (``12.6 == 12.6.0``) and a release
candidate sorts before its release (``2.7.0-rc1 < 2.7.0 < 2.7.1``).

Not in scope: Debian/RPM package versions (``565.57.01-0ubuntu1``, epochs with ``:``) — those
have their own ordering rules (``dpkg --compare-versions``).
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

__all__ = ["Version", "at_least", "compare", "key", "major_minor", "parse"]

# "2.7.0-rc1", "2.7.0-rc.1", "1.0.0-beta.2", "v1.33.0-alpha.3": semver-style pre-release tags
# that PEP 440 spells "2.7.0rc1", "1.0.0b2". Build metadata after "+" becomes a local label.
_SEMVERISH = re.compile(
    r"^(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.~]?(?P<tag>alpha|beta|rc|pre|preview|a|b|c)[-_.]?(?P<num>\d+)?)?"
    r"(?:\+(?P<local>[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*))?$",
    re.IGNORECASE,
)


def parse(v: str | Version) -> Version:
    """``v`` as a :class:`~packaging.version.Version`: a leading "v" is dropped and semver-style
    pre-release suffixes (``-rc1``, ``-beta.2``) become pre-releases. Raises :class:`ValueError`
    (naming the string) for anything that is not a version."""
    if isinstance(v, Version):
        return v
    if not isinstance(v, str):
        raise ValueError(f"not a version string: {v!r} ({type(v).__name__})")
    text = v.strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    m = _SEMVERISH.match(text)
    if m:
        canon = m.group("release")
        if m.group("tag"):
            canon += m.group("tag").lower() + (m.group("num") or "0")
        if m.group("local"):
            canon += "+" + m.group("local").replace("-", ".")
        return Version(canon)
    try:
        return Version(text)  # anything else PEP 440 knows: "1.0.post1", "2.0.dev3"
    except InvalidVersion:
        raise ValueError(f"not a version: {v!r} (expected dotted numbers such as 12.6, 570.124.06 or v1.31.2)") from None


def key(v: str | Version) -> Version:
    """A sort key: ``sorted(versions, key=key)``, ``max(toolkits, key=lambda t: key(t["version"]))``."""
    return parse(v)


def compare(a: str | Version, b: str | Version) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b``."""
    pa, pb = parse(a), parse(b)
    return (pa > pb) - (pa < pb)


def at_least(v: str | Version, minimum: str | Version) -> bool:
    """``v >= minimum`` (``at_least("12.6.0", "12.6")`` is True; ``at_least("2.7.0-rc1", "2.7")`` is not)."""
    return parse(v) >= parse(minimum)


def major_minor(v: str | Version) -> str:
    """"12.6.2" → "12.6", "12" → "12.0", "v2.7.0-rc1" → "2.7" (pre-release and build parts dropped)."""
    release = parse(v).release
    return f"{release[0]}.{release[1] if len(release) > 1 else 0}"
