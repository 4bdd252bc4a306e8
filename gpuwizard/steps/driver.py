"""Step ``driver``: the NVIDIA kernel driver, the distribution's way or NVIDIA's .run installer.

Plans (each computed from what the host shows *now*, so a resume after the reboot re-plans):

* a working driver at ≥ the wanted version            -> nothing to do (reported as ok)
* Secure Boot on, ``secure_boot: refuse`` (default)    -> refuse, naming the two ways out
* nouveau loaded                                       -> phase 1: blacklist, rebuild the initramfs,
                                                          reboot (exit 3; ``reboot: auto`` reboots);
                                                          phase 2 after ``--resume``: the install
* kernel headers missing                               -> install them (package) / name them (runfile);
                                                          refused when the archive has none for the running
                                                          kernel (read with `apt-cache policy` at plan time)
* no loadable module support (no /proc/modules)        -> refused: no driver can load
* Debian's archive: one driver (nvidia-driver)         -> a driver.version or module: open it cannot give
                                                          is refused, naming what it offers; the plan
                                                          promises the archive's version (CUDA ceiling)
* install: ``ubuntu-drivers install`` / ``apt-get install -y nvidia-driver-<major>`` (Ubuntu),
  ``nvidia-driver`` from non-free (Debian), ``dnf module install nvidia-driver:<major>-dkms`` (RHEL);
  or the runfile: download (resume, sha256) then ``sh NVIDIA-Linux-<arch>-<ver>.run --silent --dkms``
* ``secure_boot: sign``: a key pair where that distribution's DKMS signs with it (Ubuntu:
  /var/lib/shim-signed/mok, Debian and upstream DKMS: /var/lib/dkms), ``mokutil --import`` of that
  certificate, the module signed with it; the key is enrolled at the console on the next boot
  (MokManager), which the plan stops for
* then: load the module, or reboot when it cannot load now (version mismatch after an upgrade,
  key enrolment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field, model_validator

from .. import actions as A
from .. import versions as V
from ..engine import PlannedStep, Promise, Step, StepContext
from ..errors import InvalidInput, PlanRefused, StepFailed
from ..validate import Section, Sha256, UrlOrPath, Version
from . import common as C

BLACKLIST = "/etc/modprobe.d/blacklist-nouveau.conf"
BLACKLIST_CONTENT = "# written by gpuwizard: the NVIDIA driver cannot load while nouveau holds the GPU\nblacklist nouveau\noptions nouveau modeset=0\n"
# Where Ubuntu's DKMS looks for the Machine Owner Key it signs modules with (shim-signed); the
# runfile installer is given the same pair through --module-signing-*-key.
MOK_DIR = "/var/lib/shim-signed/mok"
MOK_PRIV = MOK_DIR + "/MOK.priv"
MOK_DER = MOK_DIR + "/MOK.der"
# Debian's DKMS (and upstream DKMS 3.x, which EPEL ships) signs with /var/lib/dkms/mok.key and its
# DER certificate mok.pub ("Signing key: /var/lib/dkms/mok.key", "Public certificate (MOK):
# /var/lib/dkms/mok.pub" in a DKMS build log; ../shared/research/real-world.md, Debian 12).
DKMS_MOK_DIR = "/var/lib/dkms"


@dataclass(frozen=True)
class DriverOs:
    """What the driver step knows of one OS family, as data (a later issue moves it into the
    platform layer, one class per OS family)."""

    headers: tuple[str, ...]           # the packages with a kernel's headers, "{kernel}" filled in
    install: tuple[str, ...]           # the package manager's install command
    initramfs: tuple[str, ...]         # rebuilds the initramfs
    key_dir: str                       # where this distribution's DKMS keeps its module signing key
    key: str                           # the private key DKMS signs with
    cert: str                          # its certificate (DER): the one mokutil enrols
    key_dir_mode: int = 0o700
    kernel_package: str = ""           # the metapackage of the archive's current kernel, "{flavour}" filled in
    archive_driver: str | None = None  # a one-driver archive's package (Debian: nvidia-driver), else None
    archive_open: str | None = None    # that archive's open kernel module flavour
    archive_sources: str = ""          # where its components are enabled, for the refusal text


_APT = ("apt-get", "install", "-y")
_DNF = ("dnf", "install", "-y")
DRIVER_OS: dict[str, DriverOs] = {
    "ubuntu": DriverOs(("linux-headers-{kernel}",), _APT, ("update-initramfs", "-u"), MOK_DIR, MOK_PRIV, MOK_DER,
                       kernel_package="linux-{flavour}"),
    # Debian 12 (../shared/upstream/debian-12/apt-cache.txt): nvidia-driver 535.309.01-0+deb12u1 (non-free)
    # with nvidia-kernel-dkms of the same version; nvidia-open-kernel-dkms only at 535.261.03-1 (contrib)
    "debian": DriverOs(("linux-headers-{kernel}",), _APT, ("update-initramfs", "-u"), DKMS_MOK_DIR,
                       DKMS_MOK_DIR + "/mok.key", DKMS_MOK_DIR + "/mok.pub", 0o755, kernel_package="linux-image-{flavour}",
                       archive_driver="nvidia-driver", archive_open="nvidia-open-kernel-dkms",
                       archive_sources="the contrib and non-free components in /etc/apt/sources.list.d/debian.sources "
                                       "(Components: main contrib non-free non-free-firmware)"),
    "rhel": DriverOs(("kernel-devel-{kernel}", "kernel-headers-{kernel}"), _DNF, ("dracut", "-f"), DKMS_MOK_DIR,
                     DKMS_MOK_DIR + "/mok.key", DKMS_MOK_DIR + "/mok.pub", 0o755),
    "other": DriverOs(("kernel-devel-{kernel}",), _DNF, ("dracut", "-f"), DKMS_MOK_DIR,
                      DKMS_MOK_DIR + "/mok.key", DKMS_MOK_DIR + "/mok.pub", 0o755),
}
KERNEL_FLAVOUR = re.compile(r"^\d+\.\d+\.\d+-\d+-(?P<flavour>[a-z][a-z0-9-]*)$")  # 6.1.0-57-amd64, 5.15.0-125-generic
RUNFILE_NAME = re.compile(r"^NVIDIA-Linux-(?P<arch>[A-Za-z0-9_]+)-(?P<version>\d+(?:\.\d+){1,2})\.run$")
RUNFILE_URL = "https://download.nvidia.com/XFree86/Linux-{arch}/{version}/NVIDIA-Linux-{arch}-{version}.run"



def secure_boot_refusal(cert: str) -> str:
    return (
        "Secure Boot is enabled, and an unsigned NVIDIA kernel module would be rejected by the kernel "
        "(\"Key was rejected by service\"); gpuwizard changed nothing. Two ways out: "
        "(1) disable Secure Boot in the firmware (UEFI) setup, then run gpuwizard again; or "
        "(2) set `driver: {secure_boot: sign}` in the answer file: gpuwizard generates a signing key "
        f"({cert}, where this distribution's DKMS signs with it), signs the module with it, queues the key with "
        "`mokutil --import`, and stops for a reboot, during which you enrol the key at the console (MokManager: "
        "Enroll MOK -> Continue -> Yes -> the root password), then run `gpuwizard --resume`."
    )


SECURE_BOOT_REFUSAL = secure_boot_refusal(MOK_DER)


def wanted_version(answers: DriverAnswers) -> str:
    """'recommended', a branch ('565') or a full version; a runfile's name gives its version.
    Refuses (InvalidInput) a version that does not parse as one (``565-open``)."""
    if answers.runfile:
        m = RUNFILE_NAME.match(PurePosixPath(answers.runfile.split("?", 1)[0]).name)
        if m and answers.version == "recommended":
            return m.group("version")
    wanted = str(answers.version).lstrip("v")
    if wanted != "recommended":
        try:
            V.parse(wanted)
        except ValueError as exc:
            raise InvalidInput(f"driver.version: {exc}") from None
    return wanted


def branch(wanted: str) -> str:
    """The driver branch of a wanted version: ``565`` of ``565.57.01`` (or of ``565``)."""
    return str(V.parse(wanted).release[0])


def satisfies(installed: str | None, wanted: str) -> bool:
    """Whether the installed driver is at least the wanted one: a branch (``565``) is met by any
    release of it or of a newer branch (``565.57.01``, ``570.86.15``), a full version by itself or
    a newer one. A version nvidia-smi reports that is no version satisfies nothing."""
    if not installed:
        return False
    if wanted == "recommended":
        return True
    try:
        return V.at_least(installed, wanted)  # "565" counts as 565.0.0, which every 565.x.y meets
    except ValueError:
        return False


def default_method(host_facts: dict[str, Any]) -> str:
    return "package" if C.os_family(host_facts) in ("ubuntu", "debian", "rhel") else "runfile"


# -- the step's section of the answer file --------------------------------------------------------
class DriverAnswers(Section):
    method: Literal["package", "runfile"] | None = Field(
        None, description="How to install: the distribution's packages (default on Ubuntu/Debian) or NVIDIA's .run file."
    )
    version: Literal["recommended"] | Version = Field(
        "recommended", description="Driver version (e.g. 565.57.01 or a branch like 565), or 'recommended'."
    )
    runfile: UrlOrPath | None = Field(None, description="URL or absolute path of NVIDIA-Linux-<arch>-<ver>.run (method: runfile).")
    sha256: Sha256 | None = Field(None, description="Expected SHA-256 of the runfile; a mismatch is refused and the file never executed.")
    module: Literal["open", "proprietary"] | None = Field(None, description="Kernel module flavour (default: the installer's choice for the card).")
    secure_boot: Literal["refuse", "sign"] = Field("refuse", description="With Secure Boot on: refuse (default) or sign the module and enrol the key with mokutil.")
    reboot: Literal["prompt", "auto", "never"] = Field("prompt", description="When a reboot is needed: stop and ask (unattended: exit 3), reboot automatically, or never.")

    @model_validator(mode="after")
    def _runfile_needs_method(self) -> DriverAnswers:
        if self.runfile and self.method == "package":
            raise ValueError("runfile is given but method is 'package'; use method: runfile")
        if self.sha256 and not self.runfile:
            raise ValueError("sha256 is given without a runfile")
        return self


class DriverStep(Step[DriverAnswers]):
    id = "driver"
    title = "NVIDIA driver"
    facts_shown = ("host", "gpus", "driver")
    Answers = DriverAnswers

    # ------------------------------------------------------------------------------------------
    def plan(self, ctx: StepContext, answers: DriverAnswers) -> list[A.Action]:
        facts = ctx.facts
        host = facts["host"]
        if not facts.get("gpus"):
            raise StepFailed("no NVIDIA GPU was detected, so there is no driver to install")
        wanted = wanted_version(answers)
        method = answers.method or ("runfile" if answers.runfile else default_method(host))
        drv = facts.get("driver") or {}
        status = facts.get("driver_status")

        if status == "rm-mismatch":
            return [self._reboot_after_upgrade("an upgraded driver is installed but the old one is still loaded (NVML: driver/library version mismatch)")]
        if status == "ok" and satisfies(drv.get("version"), wanted):
            text = f"NVIDIA driver {drv['version']} is installed and loaded (CUDA {drv.get('cuda_version') or '?'})"
            if wanted != "recommended":
                text += f"; wanted {wanted}"
            return [C.Check("installed", text, lambda c: True)]

        fam = C.os_family(host)
        osf = DRIVER_OS[fam]
        kernel = host.get("kernel") or "unknown"
        no_modules = (facts.get("problems") or {}).get("modules")
        if no_modules:
            raise PlanRefused(f"{no_modules}; gpuwizard refuses to install the NVIDIA driver on this kernel and changed "
                              "nothing. Boot the distribution's kernel (it has module support), then run gpuwizard again")
        actions: list[A.Action] = []
        sign = bool(host.get("secure_boot")) and answers.secure_boot == "sign"
        if host.get("secure_boot") and answers.secure_boot == "refuse":
            return [A.Fail("secure-boot", "Secure Boot is on: refuse to install a module the kernel would reject", secure_boot_refusal(osf.cert))]
        if method == "package" and fam == "other":
            return [A.Fail("method", "no package method for this distribution", f"there is no package method for {host.get('pretty_name') or host.get('os')}; use driver.method: runfile with driver.runfile (and its sha256)")]
        runfile_src: tuple[str, str] | None = None
        if method == "runfile":
            runfile_src = self._runfile_source(answers, host, wanted)
        headers = f"/lib/modules/{kernel}/build"
        archive: ArchiveDriver | None = None
        if method == "package" and fam in ("ubuntu", "debian"):
            archive = self._apt_archive(ctx, answers, host, osf, kernel, headers, wanted)  # refuses before any change
        if method == "runfile" and not ctx.host.exists(headers):
            pkg = osf.headers[0].format(kernel=kernel)
            return [A.Fail("kernel-headers", f"kernel headers for {kernel} are missing",
                           f"the kernel headers for the running kernel {kernel} are missing ({headers} does not exist); "
                           f"the .run installer needs them to build the module: install the package {pkg} "
                           f"(e.g. `apt-get install -y {pkg}` or `dnf install -y {pkg}`), then run gpuwizard again")]

        # -- phase 1: nouveau ---------------------------------------------------------------------
        if host.get("nouveau_loaded"):
            record = ctx.action_record("reboot-nouveau") or {}
            if record.get("boot_id") and record["boot_id"] != ctx.host.boot_id():
                return [A.Fail("nouveau", "nouveau is still loaded after the reboot",
                               f"nouveau is still loaded although {BLACKLIST} blacklists it and the host rebooted; check "
                               "that the initramfs was rebuilt (update-initramfs -u / dracut -f) and that no kernel "
                               "parameter forces nouveau (e.g. nouveau.modeset=1), then run gpuwizard --resume")]
            initramfs = list(osf.initramfs)
            actions += [
                A.WriteFile("blacklist-nouveau", f"blacklist nouveau in {BLACKLIST}", BLACKLIST, BLACKLIST_CONTENT),
                C.RunIf("initramfs", "rebuild the initramfs without nouveau", initramfs,
                        done=lambda c: c.done_this_run("initramfs")),
                A.Reboot("reboot-nouveau", "reboot so that nouveau is not loaded",
                         "nouveau is blacklisted; a reboot unloads it before the NVIDIA driver is installed"),
            ]

        # -- signing key (Secure Boot: sign) ------------------------------------------------------
        if sign:  # the key this distribution's DKMS signs with: the one enrolled is the one that signs
            cert = osf.cert
            actions += [
                C.MakeDir("mok-dir", f"the directory of the key DKMS signs modules with ({osf.key_dir})", osf.key_dir,
                          mode=osf.key_dir_mode),
                A.Run("signing-key", f"generate a module signing key ({cert}; DKMS signs with {osf.key})",
                      ["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-keyout", C.hp(ctx, osf.key),
                       "-outform", "DER", "-out", C.hp(ctx, cert), "-nodes", "-days", "36500",
                       "-subj", "/CN=gpuwizard NVIDIA module signing key/"], creates=cert),
                C.RunIf("mok-import", "queue the key for enrolment (mokutil --import; MokManager asks for the root password at the next boot)",
                        ["mokutil", "--import", C.hp(ctx, cert), "--root-pw"], done=lambda c: _mok_queued(c, cert)),
            ]

        # -- headers and the install ------------------------------------------------------------------
        if method == "package":
            actions += self._package_actions(ctx, answers, host, fam, kernel, headers, wanted, archive)
        else:
            assert runfile_src is not None  # method == "runfile": resolved above
            actions += self._runfile_actions(ctx, answers, host, runfile_src, sign, osf)

        # -- load it, or reboot when it cannot load now ----------------------------------------------
        loaded_before = bool(host.get("nvidia_loaded"))
        if method == "package" and not loaded_before and not sign:
            actions.append(C.RunIf("load-module", "load the nvidia kernel module", ["modprobe", "nvidia"],
                                   done=lambda c: _works(c, wanted)))
        reason = ("the signing key must be enrolled at the console (MokManager: Enroll MOK -> Continue -> Yes -> root password) "
                  "before the signed module can load") if sign else "the new driver cannot be loaded without a reboot"
        actions.append(C.RebootUnless("reboot-driver", "reboot if the new driver cannot load now", reason,
                                      unless=lambda c: _works(c, wanted)))
        return actions

    def provides(self, ctx: StepContext, answers: DriverAnswers, plan: PlannedStep) -> list[Promise]:
        """The driver this run installs, for the steps after it (CUDA's version check, the test
        images): the version or branch its plan chose (None: the plan cannot know it)."""
        if ctx.facts.get("driver_status") == "ok" and ctx.facts.get("driver"):
            return []  # installed and loaded: the facts already say so
        version = ctx.plan_data.get("version")
        package = ctx.plan_data.get("package") or ""
        if not version:
            return []
        cuda = C.cuda_for_driver(version)
        value = {"version": version, "cuda_version": cuda, "promised": True}
        if ctx.plan_data.get("archive_only"):
            value["archive_only"] = True  # the archive has no other driver: a newer one is NVIDIA's .run file
        return [Promise("driver", value,
                        f"the driver step of this run installs NVIDIA driver {version}"
                        + (f" ({package})" if package else "") + (f", which runs CUDA up to {cuda} (NVIDIA's CUDA/driver table)" if cuda else "")),
                Promise("driver_status", "ok", f"the NVIDIA driver {version} is loaded after the driver step (and its reboot, if one is needed)")]

    # ------------------------------------------------------------------------------------------
    def _reboot_after_upgrade(self, why: str) -> A.Action:
        return C.RebootUnless("reboot-driver", "reboot to load the upgraded driver", why,
                              unless=lambda c: C.driver_now(c.host)["status"] == "ok")

    def _runfile_source(self, answers: DriverAnswers, host: dict[str, Any], wanted: str) -> tuple[str, str]:
        arch = host.get("arch") or "x86_64"
        if answers.runfile:
            name = PurePosixPath(answers.runfile.split("?", 1)[0]).name
            if not RUNFILE_NAME.match(name):
                raise StepFailed(f"driver.runfile {answers.runfile!r}: expected a file named NVIDIA-Linux-<arch>-<version>.run")
            return answers.runfile, name
        if wanted == "recommended" or len(V.parse(wanted).release) < 2:
            raise StepFailed("driver.method is runfile: set driver.version to a full version (e.g. 565.57.01) or "
                             "driver.runfile to the URL or path of NVIDIA-Linux-<arch>-<version>.run")
        name = f"NVIDIA-Linux-{arch}-{wanted}.run"
        if not RUNFILE_NAME.match(name):
            raise StepFailed(f"driver.version {wanted!r} is not an NVIDIA driver release (e.g. 565.57.01), so there is "
                             "no runfile to download; set driver.runfile to the URL or path of NVIDIA-Linux-<arch>-<version>.run")
        return RUNFILE_URL.format(arch=arch, version=wanted), name

    def _apt_archive(self, ctx: StepContext, answers: DriverAnswers, host: dict[str, Any], osf: DriverOs, kernel: str,
                     headers: str, wanted: str) -> ArchiveDriver | None:
        """What the configured APT archive holds for this plan, read with one `apt-cache policy` before
        any change; refuses (PlanRefused) what it cannot give. None: the archive cannot be read now
        (empty package lists, no apt-cache), so the plan checks again after `apt-get update`."""
        need_headers = [] if ctx.host.exists(headers) else [h.format(kernel=kernel) for h in osf.headers]
        names = need_headers + [n for n in (osf.archive_driver, osf.archive_open) if n]
        if not names:
            return None
        policy = C.apt_policy(ctx.host, names)
        if policy is None:
            if need_headers:
                ctx.decide("the package lists cannot be read yet (`apt-cache policy` found nothing): the kernel headers "
                           "are checked after `apt-get update`, before anything is installed")
            if osf.archive_driver:
                ctx.decide(f"the package lists cannot be read yet: the driver is the archive's {osf.archive_driver}, "
                           "whichever version it has (not checked against driver.version or module)")
            return None
        missing = [n for n in need_headers if not C.apt_candidate(policy, n)]
        if missing:
            raise PlanRefused(headers_refusal(osf, kernel, host.get("arch") or "x86_64", missing))
        if not osf.archive_driver:
            return None
        name = osf.archive_driver
        candidate = C.apt_candidate(policy, name)
        where = host.get("pretty_name") or host.get("os") or "this distribution"
        if not candidate:
            raise PlanRefused(f"{name} is not in the configured archive of {where} (`apt-cache policy {name}` finds no "
                              f"candidate); gpuwizard changed nothing. Enable {osf.archive_sources}, run `apt-get update`, "
                              "then run gpuwizard again")
        version = C.deb_upstream(candidate)
        offers = (f"{where}'s archive has one NVIDIA driver: {name} {candidate} (branch {branch(version)}"
                  + (f", which runs CUDA up to {C.cuda_for_driver(version)}" if C.cuda_for_driver(version) else "") + ")")
        if wanted != "recommended" and V.parse(version).release[: len(V.parse(wanted).release)] != V.parse(wanted).release:
            raise PlanRefused(f"driver.version {wanted}: {offers}, and apt installs only that candidate; gpuwizard "
                              f"changed nothing. Set driver.version to \"{branch(version)}\" (or leave it out), or install "
                              f"NVIDIA's .run file: driver: {{method: runfile, version: <a full {branch(wanted)} release>}}")
        open_pkg = None
        if answers.module == "open" and osf.archive_open:
            open_candidate = C.apt_candidate(policy, osf.archive_open)
            if not open_candidate or C.deb_upstream(open_candidate) != version:
                has = (f"only at {C.deb_upstream(open_candidate)} ({osf.archive_open} {open_candidate})" if open_candidate
                       else "not at all")
                raise PlanRefused(f"driver.module open: {offers}, and its open kernel module is in the archive {has}, "
                                  f"while {name} {version} needs the module of its own version; gpuwizard changed nothing. "
                                  "Leave driver.module out (the archive's proprietary module, nvidia-kernel-dkms), or "
                                  "install NVIDIA's .run file: driver: {method: runfile, module: open, version: <a full release>}")
            open_pkg = osf.archive_open
        ctx.decide(f"{offers}: the plan installs it" + (f" with {open_pkg}" if open_pkg else ""))
        return ArchiveDriver(name, candidate, version, open_pkg)

    def _package_actions(self, ctx: StepContext, answers: DriverAnswers, host: dict[str, Any], fam: str, kernel: str,
                         headers: str, wanted: str, archive: ArchiveDriver | None) -> list[A.Action]:
        acts: list[A.Action] = []
        osf = DRIVER_OS[fam]
        if fam == "ubuntu":
            if wanted == "recommended":
                pkg = _recommended_package(ctx) or "nvidia-driver (recommended)"
                argv = ["ubuntu-drivers", "install"]
                m = re.match(r"nvidia-driver-(\d+)", pkg)
                promised = m.group(1) if m else None
            else:
                pkg = f"nvidia-driver-{branch(wanted)}" + ("-open" if answers.module == "open" else "")
                argv = ["apt-get", "install", "-y", pkg]
                promised = branch(wanted)  # apt installs the branch's package, whatever release the archive has
            done_pkg = ["dpkg", "-s", pkg]
        elif fam == "debian":
            pkg = "nvidia-driver"
            argv = ["apt-get", "install", "-y", pkg]
            promised = None if wanted == "recommended" else wanted
            if archive is not None:  # the archive's one driver: what apt installs, whatever was asked
                argv = ["apt-get", "install", "-y", archive.package, *([archive.open_module] if archive.open_module else [])]
                promised = archive.version
            done_pkg = ["dpkg", "-s", pkg]
        else:  # rhel family: NVIDIA's CUDA repository, DKMS module stream
            stream_branch = "latest" if wanted == "recommended" else branch(wanted)
            stream = f"nvidia-driver:{stream_branch}-dkms" if answers.module != "open" else f"nvidia-driver:{stream_branch}-open"
            distro = C.nvidia_repo_distro(host)
            repo = f"/etc/yum.repos.d/cuda-{distro}.repo"
            acts.append(A.Run("cuda-repo", f"add NVIDIA's CUDA repository ({repo})",
                              ["dnf", "config-manager", "--add-repo",
                               f"https://developer.download.nvidia.com/compute/cuda/repos/{distro}/{C.repo_arch(host)}/cuda-{distro}.repo"],
                              creates=repo))
            pkg = stream
            argv = ["dnf", "-y", "module", "install", stream]
            promised = None if wanted == "recommended" else branch(wanted)
            done_pkg = ["nvidia-smi", "-L"]
        def installed(c: StepContext) -> bool:
            r = c.host.runner.probe(done_pkg)
            return bool(r and r.ok)

        if fam in ("ubuntu", "debian"):
            acts.append(C.RunIf("apt-update", "refresh the package lists", ["apt-get", "update"], env=C.APT_ENV,
                                done=lambda c: installed(c) or c.done_this_run("apt-update")))
        if not ctx.host.exists(headers):
            hdr = [h.format(kernel=kernel) for h in osf.headers]
            if fam in ("ubuntu", "debian") and archive is None:  # the archive could not be read at plan time
                arch = host.get("arch") or "x86_64"
                acts.append(C.Check("headers-in-archive", f"the archive has the kernel headers for {kernel} ({' '.join(hdr)})",
                                    lambda c: _archive_has(c, hdr), headers_refusal(osf, kernel, arch, hdr),
                                    reads=["apt-cache", "policy", *hdr]))
            acts.append(A.Run("kernel-headers", f"install the kernel headers for {kernel} ({' '.join(hdr)})", [*osf.install, *hdr],
                              creates=headers, env=C.APT_ENV if fam != "rhel" else None))
        note = " (Debian: needs the contrib and non-free components in the APT sources)" if fam == "debian" else ""
        ctx.plan_data.update(package=pkg, version=promised, archive_only=archive is not None)
        acts.append(C.RunIf("install", f"install the driver package {pkg}{note}", argv, env=C.APT_ENV if fam != "rhel" else None,
                            done=installed, timeout=3600))
        return acts

    def _runfile_actions(self, ctx: StepContext, answers: DriverAnswers, host: dict[str, Any], src: tuple[str, str],
                         sign: bool, osf: DriverOs) -> list[A.Action]:
        source, name = src
        cached = f"{C.CACHE_DIR}/{name}"
        argv = ["sh", C.hp(ctx, cached), "--silent", "--dkms"]
        if answers.module:
            argv.append(f"--kernel-module-type={answers.module}")
        if sign:
            argv += [f"--module-signing-secret-key={C.hp(ctx, osf.key)}", f"--module-signing-public-key={C.hp(ctx, osf.cert)}"]
        m = RUNFILE_NAME.match(name)
        assert m is not None  # _runfile_source refuses any other name
        version = m.group("version")
        ctx.plan_data["version"] = version
        return [
            C.Download("runfile", f"get {name}" + ("" if answers.sha256 else " (no sha256: not verified)"),
                       source, cached, answers.sha256),
            C.RunIf("install", f"run the NVIDIA installer {name} (silent, DKMS)", argv, timeout=3600,
                    done=lambda c: c.done_this_run("install")
                    or satisfies(C.driver_now(c.host)["version"], version)),
        ]

    # ------------------------------------------------------------------------------------------
    def verify(self, ctx: StepContext, answers: DriverAnswers) -> str:
        now = C.driver_now(ctx.host)
        if now["status"] == "rm-mismatch":
            raise StepFailed("nvidia-smi reports a driver/library version mismatch: the host needs a reboot")
        if now["status"] != "ok":
            raise StepFailed(f"nvidia-smi does not work: {now.get('reason') or now['status']}")
        wanted = wanted_version(answers)
        if not satisfies(now["version"], wanted):
            raise StepFailed(f"nvidia-smi reports driver {now['version']}, older than the wanted {wanted}")
        names = ", ".join(g["name"] for g in now["gpus"]) or "no GPU"
        return f"driver {now['version']} (CUDA {now['cuda_version']}); nvidia-smi sees {len(now['gpus'])} GPU(s): {names}"


def _works(ctx: StepContext, wanted: str) -> bool:
    now = C.driver_now(ctx.host)
    return now["status"] == "ok" and satisfies(now["version"], wanted)


def _mok_queued(ctx: StepContext, cert: str) -> bool:
    result = ctx.host.runner.probe(["mokutil", "--test-key", C.hp(ctx, cert)])
    text = (result.stdout + result.stderr) if result else ""
    return "already enrolled" in text or "already in the enrollment request" in text


@dataclass(frozen=True)
class ArchiveDriver:
    """The driver a one-driver archive (Debian's) installs, as `apt-cache policy` showed it."""

    package: str             # nvidia-driver
    candidate: str           # 535.309.01-0+deb12u1
    version: str             # 535.309.01
    open_module: str | None  # nvidia-open-kernel-dkms when module: open and the archive has it at that version


def headers_refusal(osf: DriverOs, kernel: str, arch: str, missing: list[str]) -> str:
    """Why a plan stops when the archive has no headers for the running kernel, and the way out."""
    m = KERNEL_FLAVOUR.match(kernel)
    flavour = m.group("flavour") if m else {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    kpkg = osf.kernel_package.format(flavour=flavour) if osf.kernel_package else "the distribution's kernel package"
    return (f"the configured archive has no kernel headers for the running kernel {kernel} (`apt-cache policy "
            f"{' '.join(missing)}`: Unable to locate package), so the NVIDIA module cannot be built for it; gpuwizard "
            "changed nothing. An archive has headers only for its current kernel: install the current kernel "
            f"(`apt-get update && apt-get install -y {kpkg}`), reboot into it, then run `gpuwizard --resume` "
            "(or the same command again when no run was saved)")


def _archive_has(ctx: StepContext, names: list[str]) -> bool:
    """Whether the archive has every package (after `apt-get update`); unknown is shown as a check to
    make while planning and left to apt-get while running."""
    policy = C.apt_policy(ctx.host, names)
    if policy is None:
        return not ctx.planning
    return all(C.apt_candidate(policy, n) for n in names)


def _recommended_package(ctx: StepContext) -> str | None:
    """The package `ubuntu-drivers devices` marks recommended (read-only probe)."""
    result = ctx.host.runner.probe(["ubuntu-drivers", "devices"], timeout=60)
    if not result or not result.ok:
        return None
    for line in result.stdout.splitlines():
        m = re.match(r"^driver\s*:\s*(\S+)\s+-\s+.*\brecommended\b", line)
        if m and m.group(1).startswith("nvidia-"):
            return m.group(1)
    return None
