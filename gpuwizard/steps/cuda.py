"""Step ``cuda``: the CUDA toolkit (never the driver bundled in its runfile), PATH and
LD_LIBRARY_PATH written once, and ``nvcc --version`` as the proof.

* A toolkit newer than the driver can run is refused before any change, naming the minimum driver
  (the driver's ceiling is the "CUDA Version" nvidia-smi reports, i.e. NVML's
  ``nvmlSystemGetCudaDriverVersion``).
* runfile: ``sh cuda_<ver>_<drv>_linux[_sbsa].run --silent --toolkit``; package: NVIDIA's ``cuda-keyring``
  (Ubuntu/Debian) or the CUDA repository (RHEL family), then ``cuda-toolkit-X-Y`` (gpuwizard/platform).
* ``env_file``: ``/etc/profile.d/cuda.sh`` (default) or a marked block in ``~/.bashrc``.
* ``pytorch_check``: the seed recipe's check (venv, torch, device count/name/memory), shown.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field

from .. import actions as A
from .. import compat
from .. import parsers as P
from .. import versions as V
from ..engine import Step, StepContext
from ..errors import InvalidInput, PlanRefused, StepFailed
from ..host import Runner
from ..journal import FileChange, TreeChange
from ..validate import AbsPath, Section, Sha256, UrlOrPath, Version
from . import common as C

CUDA_RUNFILE = re.compile(r"^cuda_(?P<full>\d+\.\d+\.\d+)_(?P<drv>\d+(?:\.\d+)*)_linux(?:_sbsa)?\.run$")
RUNFILE_URL = "https://developer.download.nvidia.com/compute/cuda/{full}/local_installers/{name}"


def runfile_name(full: str, drv: str, arch: str) -> str:
    """``cuda_12.6.2_560.35.03_linux.run``; aarch64 (arm64 servers, SBSA) has ``_sbsa`` before ``.run``
    (NVIDIA's download pages and checksum lists: cuda_12.6.2_560.35.03_linux_sbsa.run)."""
    return f"cuda_{full}_{drv}_linux" + ("_sbsa" if arch in ("aarch64", "arm64", "sbsa") else "") + ".run"
BLOCK_BEGIN = "# >>> gpuwizard: CUDA toolkit >>>"
BLOCK_END = "# <<< gpuwizard: CUDA toolkit <<<"
VENV = "/opt/gpuwizard/torch-venv"

# The seed recipe's check_cuda_pytorch.py, in English.
TORCH_CHECK = """\
import torch
print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)
if not torch.cuda.is_available():
    raise SystemExit("CUDA is not available to PyTorch")
n = torch.cuda.device_count()
print(f"{n} CUDA device(s)")
for i in range(n):
    p = torch.cuda.get_device_properties(i)
    print(f"device {i}: {torch.cuda.get_device_name(i)}, {p.total_memory / 1024 ** 3:.2f} GiB, "
          f"allocated {torch.cuda.memory_allocated(i) / 1024 ** 3:.2f} GiB, reserved {torch.cuda.memory_reserved(i) / 1024 ** 3:.2f} GiB")
"""


def env_content(home: str) -> str:
    return (
        f"# CUDA toolkit {PurePosixPath(home).name.removeprefix('cuda-')} (written by gpuwizard)\n"
        f"export PATH={home}/bin${{PATH:+:${{PATH}}}}\n"
        f"export LD_LIBRARY_PATH={home}/lib64${{LD_LIBRARY_PATH:+:${{LD_LIBRARY_PATH}}}}\n"
    )


def with_block(existing: str | None, body: str) -> str:
    """``existing`` with the gpuwizard block replaced (or appended once)."""
    block = f"{BLOCK_BEGIN}\n{body}{BLOCK_END}\n"
    text = existing or ""
    start, end = text.find(BLOCK_BEGIN), text.find(BLOCK_END)
    if start != -1 and end > start:
        tail = text[end + len(BLOCK_END):]
        return text[:start] + block + tail.removeprefix("\n")
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


def bashrc_path(ctx: StepContext) -> str:
    import os
    from pathlib import Path

    if not ctx.host.is_real_root or os.geteuid() == 0:
        return "/root/.bashrc"
    return str(Path.home() / ".bashrc")


# -- the step's section of the answer file --------------------------------------------------------
class CudaAnswers(Section):
    version: Version | None = Field(None, description="CUDA toolkit version, e.g. 12.6 (default: the newest the driver can run).")
    method: Literal["package", "runfile"] | None = Field(None, description="NVIDIA's cuda-keyring packages or the .run file.")
    runfile: UrlOrPath | None = Field(None, description="URL or absolute path of cuda_<ver>_<drv>_linux.run.")
    sha256: Sha256 | None = None
    env_file: AbsPath | Literal["~/.bashrc"] = Field(
        "/etc/profile.d/cuda.sh", description="Where PATH/LD_LIBRARY_PATH for the toolkit are written (once)."
    )
    pytorch_check: bool = Field(False, description="Afterwards, check CUDA from PyTorch in a venv (like the seed recipe's script).")


class CudaStep(Step[CudaAnswers]):
    id = "cuda"
    title = "CUDA toolkit"
    facts_shown = ("driver", "cuda_toolkit")
    Answers = CudaAnswers

    def _target(self, ctx: StepContext, answers: CudaAnswers) -> tuple[str, dict[str, Any]]:
        now = C.driver_seen(ctx)
        if answers.runfile and not answers.version:
            m = CUDA_RUNFILE.match(PurePosixPath(answers.runfile.split("?", 1)[0]).name)
            if m:
                return V.major_minor(m.group("full")), now
        if answers.version:
            try:
                return V.major_minor(answers.version), now
            except ValueError as exc:
                raise InvalidInput(f"cuda.version: {exc}") from None
        pick = C.newest_cuda_for(now.get("cuda_version"))
        if not pick:
            raise StepFailed("cuda.version is not set and there is no working driver to choose it from; set "
                             "cuda.version (e.g. \"12.6\") or install the driver first (a driver: section)")
        return pick, now

    def plan(self, ctx: StepContext, answers: CudaAnswers) -> list[A.Action]:
        xy, now = self._target(ctx, answers)
        need = C.cuda_min_driver().get(xy)
        need_text = f"driver ≥ {need}" if need else "a newer driver"
        row = compat.cuda_row(xy)  # where that minimum comes from, named in a refusal
        cite = f" (row {row.id}, source {row.source})" if row and need == row.min_driver else ""
        if now["status"] == "ok" and now.get("cuda_version") and V.key(xy) > V.key(now["cuda_version"]):
            which = "the driver this run installs" if now.get("promised") else "the installed driver"
            upgrade = f"driver: {{version: \"{(need or '').split('.')[0] or 'newer'}\"}}"
            if now.get("archive_only"):  # the distribution's archive has no newer driver (Debian 12: 535 only)
                bundled = C.CUDA_RUNFILES.get(xy, ("", need or "<a newer release>"))[1]
                upgrade = (f"the distribution's archive has no newer driver: driver: {{method: runfile, version: \"{bundled}\"}}, "
                           "NVIDIA's .run file")
            raise PlanRefused(
                f"CUDA {xy} needs {need_text}, but {which} {now['version']} runs CUDA {now['cuda_version']} "
                f"at most{cite}; nothing was changed. Upgrade the driver ({upgrade}) "
                f"or choose cuda.version ≤ {now['cuda_version']}"
            )
        actions: list[A.Action] = []
        if now["status"] != "ok":  # no working driver yet (a plan before the driver step ran)
            actions.append(C.Check(
                "driver-supports", f"the driver can run CUDA {xy} ({need_text})",
                lambda c: _driver_runs(C.driver_now(c.host), xy),
                lambda c: f"CUDA {xy} needs {need_text}: " + _driver_text(C.driver_now(c.host)) + f"{cite}; nothing was changed",
            ))
        home = f"/usr/local/cuda-{xy}"
        nvcc = home + "/bin/nvcc"
        host = ctx.facts["host"]
        plat = C.platform(host)
        method = answers.method or ("runfile" if answers.runfile or not plat.packages else "package")
        if ctx.host.exists(nvcc):
            actions.append(C.Check("toolkit", f"CUDA {xy} toolkit is installed in {home}", lambda c: True))
        elif method == "runfile":
            source, name = self._runfile(answers, xy, host)
            cached = f"{C.CACHE_DIR}/{name}"
            actions += [
                C.Download("runfile", f"get {name}" + ("" if answers.sha256 else " (no sha256: not verified)"), source, cached, answers.sha256).mirrored(ctx),
                A.Run("install", f"install the CUDA {xy} toolkit only (not the bundled driver)",
                      ["sh", C.hp(ctx, cached), "--silent", "--toolkit"], creates=nvcc, timeout=3600).with_changes(
                          TreeChange(home), FileChange("/usr/local/cuda")),
            ]
        else:  # NVIDIA's CUDA repository, the distribution's way (cuda-keyring / a dnf repo file)
            actions += plat.cuda_toolkit(ctx, xy, nvcc)

        body = env_content(home)
        if answers.env_file == "~/.bashrc":
            path = bashrc_path(ctx)
            actions.append(A.WriteFile("env", f"PATH and LD_LIBRARY_PATH for CUDA {xy} in {path} (a marked block)",
                                       path, with_block(ctx.host.read_text(path), body), block=(BLOCK_BEGIN, BLOCK_END)))
        else:
            actions.append(A.WriteFile("env", f"PATH and LD_LIBRARY_PATH for CUDA {xy} in {answers.env_file}",
                                       answers.env_file, body))
        if answers.pytorch_check:
            actions += self._pytorch_actions(ctx)
        return actions

    def _runfile(self, answers: CudaAnswers, xy: str, host: dict[str, Any]) -> tuple[str, str]:
        if answers.runfile:
            name = PurePosixPath(answers.runfile.split("?", 1)[0]).name
            m = CUDA_RUNFILE.match(name)
            if not m:
                raise StepFailed(f"cuda.runfile {answers.runfile!r}: expected a file named cuda_<version>_<driver>_linux.run")
            if V.major_minor(m.group("full")) != xy:
                raise StepFailed(f"cuda.runfile is CUDA {m.group('full')} but cuda.version is {xy}")
            return answers.runfile, name
        if xy not in C.CUDA_RUNFILES:
            raise StepFailed(f"no known runfile for CUDA {xy}; set cuda.runfile (URL or path) and its sha256")
        full, drv = C.CUDA_RUNFILES[xy]
        name = runfile_name(full, drv, host.get("arch") or "x86_64")
        return RUNFILE_URL.format(full=full, name=name), name

    def _pytorch_actions(self, ctx: StepContext) -> list[A.Action]:
        venv_pkg = C.platform(ctx.facts.get("host") or {}).python_venv()
        return venv_pkg + [
            A.Run("torch-venv", f"create a Python venv for the PyTorch check ({VENV})",
                  ["python3", "-m", "venv", C.hp(ctx, VENV)], creates=VENV + "/bin/python").with_changes(TreeChange(VENV)),
            _VenvRun("torch-install", "install PyTorch in the venv (pip install torch; needs network)" + (
                         f" from {index} (mirrors.pip_index)" if (index := ctx.net.mirrors.pip_index) else ""),
                     ["pip", "install", *(["--index-url", index] if index else []), "torch"],
                     done_when=["python", "-c", "import torch"], timeout=3600),
        ]

    def verify(self, ctx: StepContext, answers: CudaAnswers) -> str:
        xy, _ = self._target(ctx, answers)
        home = f"/usr/local/cuda-{xy}"
        runner = C.runner_with_path(ctx.host, home + "/bin")
        result = runner.probe(["nvcc", "--version"], timeout=60)
        if result is None:
            raise StepFailed(f"nvcc was not found in {home}/bin")
        parsed = P.parse_nvcc_version(result.stdout) if result.ok else None
        if parsed is None or parsed.release != xy:
            got = parsed.release if parsed else (result.stdout + result.stderr).strip()[:200]
            raise StepFailed(f"`nvcc --version` (with PATH from the env file) reports {got!r}, not CUDA {xy}")
        summary = f"CUDA {parsed.release} (nvcc V{parsed.full}) in {home}; PATH set in " + (
            bashrc_path(ctx) if answers.env_file == "~/.bashrc" else answers.env_file)
        if answers.pytorch_check:
            summary += "; " + self._pytorch_check(ctx, home)
        return summary

    def _pytorch_check(self, ctx: StepContext, home: str) -> str:
        runner = C.runner_with_path(ctx.host, VENV + "/bin", home + "/bin")
        result = runner.run(["python", "-c", TORCH_CHECK], change=False, timeout=600)
        for line in result.stdout.splitlines():
            ctx.note("pytorch: " + line)
        if not result.ok:
            raise StepFailed("the PyTorch check failed: " + ((result.stderr or result.stdout).strip().splitlines() or ["?"])[-1])
        devices = [ln for ln in result.stdout.splitlines() if ln.startswith("device ")]
        return f"PyTorch sees {len(devices)} CUDA device(s)"


class _VenvRun(A.Run):
    """A command from the PyTorch venv's bin (found on a PATH that starts there)."""

    def _runner(self, ctx: StepContext) -> Runner:
        return C.runner_with_path(ctx.host, VENV + "/bin")

    def is_done(self, ctx: StepContext) -> bool:
        result = self._runner(ctx).probe(self.done_when or ["false"], timeout=120)
        return bool(result and result.ok)

    def apply(self, ctx: StepContext) -> None:
        self._runner(ctx).run(self.argv, timeout=self.timeout, check=True, capture=False)


def _driver_runs(now: dict[str, Any], xy: str) -> bool:
    """A working driver whose CUDA ceiling (nvidia-smi's "CUDA Version") is at least CUDA ``xy``."""
    return now["status"] == "ok" and bool(now.get("cuda_version")) and V.key(xy) <= V.key(now["cuda_version"])


def _driver_text(now: dict[str, Any]) -> str:
    if now["status"] == "ok":
        return f"the driver {now['version']} runs CUDA {now.get('cuda_version')} at most"
    return f"no working NVIDIA driver ({now.get('reason') or now['status']})"
