"""gpuwizard.versions: the one version comparison of the project."""

from __future__ import annotations

import pytest
from packaging.version import Version

from gpuwizard import versions as V


@pytest.mark.parametrize(
    "text, expected",
    [
        ("v25.10.1", "25.10.1"),
        ("V1.31.2", "1.31.2"),
        ("2.7.0-rc1", "2.7.0rc1"),
        ("2.7.0-rc.1", "2.7.0rc1"),
        ("1.0.0-beta.2", "1.0.0b2"),
        ("v1.33.0-alpha.3", "1.33.0a3"),
        ("2.7.0rc1", "2.7.0rc1"),
        ("2.0.0-rc", "2.0.0rc0"),
        ("535.309.01", "535.309.1"),
        ("570.26", "570.26"),
        ("12.6", "12.6"),
        ("12.8.1", "12.8.1"),
        ("v0.25.0", "0.25.0"),
        ("12", "12"),
        (" 12.6 ", "12.6"),
        ("v1.30.4+k3s1", "1.30.4+k3s1"),
    ],
)
def test_parse(text: str, expected: str) -> None:
    assert V.parse(text) == Version(expected)
    assert str(V.parse(text)) == str(Version(expected))


@pytest.mark.parametrize("junk", ["", "v", "N/A", "latest", "12.x", "1.29.3-eks-adc7111", "565.57.01-0ubuntu1", "1..2"])
def test_junk_is_a_value_error_naming_the_string(junk: str) -> None:
    with pytest.raises(ValueError, match="not a version") as info:
        V.parse(junk)
    assert repr(junk) in str(info.value)


def test_non_strings_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a version string"):
        V.parse(12.6)  # type: ignore[arg-type]  # a YAML float is exactly the mistake to catch


def test_a_version_passes_through() -> None:
    v = Version("1.2.3")
    assert V.parse(v) is v


def test_release_candidates_sort_before_their_release() -> None:
    assert V.compare("2.7.0-rc1", "2.7.0") == -1
    assert V.compare("2.7.0-rc1", "2.7.1") == -1
    assert V.compare("2.7.0-rc1", "2.7.0-rc2") == -1
    assert V.compare("2.7.0-beta.2", "2.7.0-rc1") == -1
    assert V.compare("2.6.9", "2.7.0-rc1") == -1
    assert not V.at_least("2.7.0-rc1", "2.7")
    assert V.at_least("2.7.0", "2.7.0-rc1")


def test_missing_parts_count_as_zero() -> None:
    assert V.compare("12.6", "12.6.0") == 0
    assert V.key("12.6") == V.key("12.6.0")
    assert V.at_least("12.6.0", "12.6") and V.at_least("12.6", "12.6.0")
    assert V.compare("v1.31", "1.31.0") == 0


def test_parts_compare_as_numbers() -> None:
    assert V.compare("570.26", "570.124.06") == -1
    assert V.compare("535.309.01", "535.54.03") == 1
    assert V.compare("12.10", "12.9") == 1
    assert V.compare("v0.25.0", "v0.24.0") == 1
    assert V.compare("1.31.2", "v1.31.2") == 0
    assert V.at_least("580.95.05", "580")
    assert not V.at_least("575.64", "580")


def test_key_sorts() -> None:
    got = sorted(["12.8.1", "2.7.0-rc1", "12.6", "2.7.0", "v2.7.1", "570.26", "570.124.06", "12.10"], key=V.key)
    assert got == ["2.7.0-rc1", "2.7.0", "v2.7.1", "12.6", "12.8.1", "12.10", "570.26", "570.124.06"]
    assert max(["12.4", "12.6.2", "12.6"], key=V.key) == "12.6.2"


@pytest.mark.parametrize(
    "text, expected",
    [("12.6.2", "12.6"), ("12", "12.0"), ("12.6", "12.6"), ("v25.10.1", "25.10"), ("2.7.0-rc1", "2.7"), ("535.309.01", "535.309")],
)
def test_major_minor(text: str, expected: str) -> None:
    assert V.major_minor(text) == expected


def test_major_minor_of_junk_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        V.major_minor("N/A")
