"""An offline bundle's APT repository as the plan reads it (gpuwizard/packages.py, platform/apt.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from gpuwizard import packages
from gpuwizard.platform import apt as P

# `apt-get -s install -y -o APT::Install-Recommends=true pciutils` on a private state with nothing
# installed, as root: the real apt 2.6.1 of a Debian 12 machine, 2026-12-04 (an excerpt, in order;
# the second Inst line's trailing "[]" as apt printed it)
APT_S = """0 upgraded, 14 newly installed, 0 to remove and 0 not upgraded.
Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])
Inst libgcc-s1 (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64]) []
Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])
Inst liblzma5 (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64])
Inst zlib1g (1:1.2.13.dfsg-1+deb12u1 Debian-Security:12/oldstable-security [amd64])
Inst pci.ids (0.0~2023.04.11-1 Debian:12.15/oldstable [all])
Inst libpci3 (1:3.9.0-4 Debian:12.15/oldstable [amd64])
Conf gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])
"""


def test_the_resolutions_archives_are_named_as_apt_saves_them():
    found = [packages.deb_name(*m.groups()) for m in packages.INST.finditer(APT_S)]
    # the file names apt 2.6.1 left in Dir::Cache::archives for that resolution (an epoch's ':' as %3a)
    assert found == ["gcc-12-base_12.2.0-14+deb12u1_amd64.deb", "libgcc-s1_12.2.0-14+deb12u1_amd64.deb",
                     "libc6_2.36-9+deb12u14_amd64.deb", "liblzma5_5.4.1-1+deb12u2_amd64.deb",
                     "zlib1g_1%3a1.2.13.dfsg-1+deb12u1_amd64.deb", "pci.ids_0.0~2023.04.11-1_all.deb",
                     "libpci3_1%3a3.9.0-4_amd64.deb"]


class Probe:
    """A host whose package lists are empty: `apt-cache policy` knows nothing yet."""

    def __init__(self, stdout: str = ""):
        self.stdout = stdout

    def probe(self, argv, timeout=None):
        return SimpleNamespace(ok=True, stdout=self.stdout)


def ctx_for(bundle: Path | None) -> SimpleNamespace:
    net = SimpleNamespace(local_apt=str(bundle) if bundle else None)
    return SimpleNamespace(net=net, host=SimpleNamespace(runner=Probe()), planning=True)


def test_before_the_update_the_plan_reads_what_the_bundle_holds(tmp_path: Path):
    repo = tmp_path / "packages/apt"
    repo.mkdir(parents=True)
    (repo / "Packages").write_text("Package: linux-headers-6.1.0-57-amd64\nVersion: 6.1.158-1\nArchitecture: amd64\n\n"
                                   "Package: nvidia-driver\nSource: nvidia-graphics-drivers\nVersion: 535.309.01-0+deb12u1\n"
                                   "Architecture: amd64\n")
    names = ["linux-headers-6.1.0-57-amd64", "nvidia-driver"]
    # the host's lists are empty (or lack them): without the bundle the plan cannot tell
    assert P.bundle_policy(ctx_for(None), names) is None
    found = P.bundle_policy(ctx_for(repo), names)
    assert found is not None
    assert {n: P.apt_candidate(found, n) for n in names} == {"linux-headers-6.1.0-57-amd64": "6.1.158-1",
                                                              "nvidia-driver": "535.309.01-0+deb12u1"}
    # a package the bundle lacks, with empty lists: still unknown
    assert P.bundle_policy(ctx_for(repo), [*names, "cuda-toolkit-12-2"]) is None
