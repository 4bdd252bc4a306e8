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
  ``nvidia-driver`` from non-free (Debian), ``dnf module install nvidia-driver:<stream>`` (RHEL 8/9:
  ``latest-dkms``, ``<major>-dkms``, ``open-dkms``, ``<major>-open``), ``dnf install cuda-drivers`` /
  ``nvidia-open`` (RHEL 10, no module streams); the OS-family specifics live in gpuwizard/platform;
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field, model_validator

from .. import actions as A
from .. import versions as V
from ..engine import PlannedStep, Promise, Step, StepContext
from ..errors import InvalidInput, PlanRefused, StepFailed
from ..journal import Change, FileChange, Module
from ..platform import ArchiveDriver, Platform
from ..platform.apt import MOK_DER, MOK_DIR, MOK_PRIV  # noqa: F401  (where Ubuntu's DKMS signs)
from ..platform.base import DKMS_MOK_DIR, driver_branch, nvidia_builds  # noqa: F401
from ..validate import Section, Sha256, UrlOrPath, Version
from . import common as C

BLACKLIST = "/etc/modprobe.d/blacklist-nouveau.conf"
BLACKLIST_CONTENT = "# written by gpuwizard: the NVIDIA driver cannot load while nouveau holds the GPU\nblacklist nouveau\noptions nouveau modeset=0\n"
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
    return driver_branch(wanted)


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
    return "package" if C.platform(host_facts).packages else "runfile"


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

        osf = C.platform(host)
        kernel = host.get("kernel") or "unknown"
        no_modules = (facts.get("problems") or {}).get("modules")
        if no_modules:
            raise PlanRefused(f"{no_modules}; gpuwizard refuses to install the NVIDIA driver on this kernel and changed "
                              "nothing. Boot the distribution's kernel (it has module support), then run gpuwizard again")
        actions: list[A.Action] = []
        sign = bool(host.get("secure_boot")) and answers.secure_boot == "sign"
        if host.get("secure_boot") and answers.secure_boot == "refuse":
            return [A.Fail("secure-boot", "Secure Boot is on: refuse to install a module the kernel would reject", secure_boot_refusal(osf.cert))]
        if method == "package" and not osf.packages:
            return [A.Fail("method", "no package method for this distribution", f"there is no package method for {host.get('pretty_name') or host.get('os')}; use driver.method: runfile with driver.runfile (and its sha256)")]
        runfile_src: tuple[str, str] | None = None
        if method == "runfile":
            runfile_src = self._runfile_source(answers, host, wanted)
        headers = f"/lib/modules/{kernel}/build"
        archive: ArchiveDriver | None = None
        if method == "package":
            archive = osf.driver_archive(ctx, answers.module, wanted, kernel, headers)  # refuses before any change
        if method == "runfile" and not ctx.host.exists(headers):
            pkg = osf.headers_packages(kernel)[0]
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
            actions += [
                A.WriteFile("blacklist-nouveau", f"blacklist nouveau in {BLACKLIST}", BLACKLIST, BLACKLIST_CONTENT,
                            then=(tuple(osf.initramfs),)),
                osf.rebuild_initramfs("initramfs", "rebuild the initramfs without nouveau",
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
                       "-subj", "/CN=gpuwizard NVIDIA module signing key/"], creates=cert).with_changes(
                          FileChange(osf.key), FileChange(cert)),
                C.RunIf("mok-import", "queue the key for enrolment (mokutil --import; MokManager asks for the root password at the next boot)",
                        ["mokutil", "--import", C.hp(ctx, cert), "--root-pw"], done=lambda c: _mok_queued(c, cert)),
            ]

        # -- headers and the install ------------------------------------------------------------------
        if method == "package":
            install = osf.driver_install(ctx, answers.module, wanted, kernel, headers, archive)
            ctx.plan_data.update(package=install.package, version=install.promised, archive_only=install.archive_only)
            actions += install.actions
        else:
            assert runfile_src is not None  # method == "runfile": resolved above
            actions += self._runfile_actions(ctx, answers, host, runfile_src, sign, osf)

        # -- load it, or reboot when it cannot load now ----------------------------------------------
        loaded_before = bool(host.get("nvidia_loaded"))
        reason = ("the signing key must be enrolled at the console (MokManager: Enroll MOK -> Continue -> Yes -> root password) "
                  "before the signed module can load") if sign else "the new driver cannot be loaded without a reboot"
        reboot = C.RebootUnless("reboot-driver", "reboot if the new driver cannot load now", reason,
                                unless=lambda c: _works(c, wanted))
        if method == "package" and not loaded_before and not sign:
            actions.append(LoadModule("load-module", "load the nvidia kernel module", osf, kernel, reboot,
                                      done=lambda c: _works(c, wanted)))
        actions.append(reboot)
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

    def _runfile_actions(self, ctx: StepContext, answers: DriverAnswers, host: dict[str, Any], src: tuple[str, str],
                         sign: bool, osf: Platform) -> list[A.Action]:
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
                       source, cached, answers.sha256).mirrored(ctx),
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


@dataclass
class LoadModule(A.Action):
    """``modprobe nvidia`` after a package install. ``dpkg -s`` says installed even when DKMS built
    the module for another kernel only (../shared/research/real-world.md, Debian 12: the archive's
    kernel, not the running one), so a failed modprobe asks ``dkms status``: a module built for the
    kernel the next boot runs (Platform.boot_kernel: the newest /boot/vmlinuz-*) and not the running
    one means the reboot that follows this action (exit 3, this reason); anything else fails the step
    with both outputs."""

    id: str
    title: str
    osf: Platform
    kernel: str  # the running kernel (uname -r, from the facts)
    reboot: A.Reboot  # the reboot after it, whose reason this action tells when it is needed
    done: Callable[[StepContext], bool] | None = None
    argv: list[str] = field(default_factory=lambda: ["modprobe", "nvidia"])

    def preview(self, ctx: StepContext) -> list[str]:
        return ["$ " + C.cmd(self.argv)]

    def as_json(self, ctx: StepContext) -> dict[str, Any]:
        data = super().as_json(ctx)
        data["argv"] = list(self.argv)
        return data

    def is_done(self, ctx: StepContext) -> bool:
        return bool(self.done and self.done(ctx))

    def journal(self, ctx: StepContext) -> list[Change]:
        return [Module("nvidia", ("nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia")), *self.changes]

    def apply(self, ctx: StepContext) -> None:
        result = ctx.host.runner.run(self.argv, check=False)
        if result.ok:
            return
        error = modprobe_error(result.stderr or result.stdout) or f"exit code {result.rc}"
        status = self.osf.dkms_status(ctx)
        built = sorted({e["kernel"] for e in nvidia_builds(status)})
        boot = self.osf.boot_kernel(ctx)
        shown = _dkms_lines(ctx) if status is not None else "(no dkms on this host)"
        if boot and boot != self.kernel and boot in built and self.kernel not in built:
            self.reboot.reason = (f"DKMS built the NVIDIA module for {boot}, the kernel the next boot runs, not for the running "
                                  f"kernel {self.kernel} (`dkms status`: {shown}); `modprobe nvidia`: {error}. Reboot into {boot}")
            ctx.note(self.reboot.reason)
            return
        where = (f"the next boot runs {boot}" if boot else "no kernel image in /boot says which kernel boots next")
        raise StepFailed(f"`modprobe nvidia` failed on the running kernel {self.kernel}: {error}; `dkms status`: {shown} "
                         f"({where}; DKMS has a built NVIDIA module for {', '.join(built) or 'no kernel'}). The driver package "
                         "is installed but no module loads: check the DKMS build log under /var/lib/dkms/, install the headers "
                         f"of the kernel you boot, then run gpuwizard --resume")


def modprobe_error(text: str) -> str:
    """The line of modprobe's stderr that says why: the FATAL one (``Module nvidia-current not found in
    directory /lib/modules/<release>``) before the generic ``could not insert 'nvidia'``
    (../shared/upstream/debian-12/captures/modprobe-nvidia.txt)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "FATAL" in line:
            return line
    return lines[-1] if lines else ""


def _dkms_lines(ctx: StepContext) -> str:
    result = ctx.host.runner.probe(["dkms", "status"])
    text = "; ".join(line.strip() for line in (result.stdout if result else "").splitlines() if line.strip())
    return text or "(no module)"


def _works(ctx: StepContext, wanted: str) -> bool:
    now = C.driver_now(ctx.host)
    return now["status"] == "ok" and satisfies(now["version"], wanted)


def _mok_queued(ctx: StepContext, cert: str) -> bool:
    result = ctx.host.runner.probe(["mokutil", "--test-key", C.hp(ctx, cert)])
    text = (result.stdout + result.stderr) if result else ""
    return "already enrolled" in text or "already in the enrollment request" in text


def headers_refusal(osf: Platform, kernel: str, missing: list[str]) -> str:
    """Why a plan stops when the archive has no headers for the running kernel, and the way out
    (the platform's text: gpuwizard/platform/apt.py)."""
    refusal = getattr(osf, "headers_refusal", None)
    if refusal is None:
        return f"the kernel headers for {kernel} ({' '.join(missing)}) cannot be installed on {osf.name}"
    return str(refusal(kernel, missing))
