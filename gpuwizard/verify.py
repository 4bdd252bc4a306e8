"""``gpuwizard verify``: the whole chain's health checks, layer by layer, in chain order.

Layers: driver, cuda, container (toolkit + runtime), cluster, operator, hami, sharing. Which ones
apply:

* with answers (``--answers FILE``, else the answers the state file recorded), the layers whose
  step the answers ask for; an asked layer that is absent fails with the reason, the others are
  skipped ("not asked for");
* without answers, every layer the host's facts (doctor's detection) show installed; a layer that is
  not installed is skipped.

How each layer is checked:

* host layers (driver, cuda, container), read-only probes only: nvidia-smi answers and the nvidia
  module is loaded (with driver answers also the driver step's version check, which is a probe);
  ``nvcc --version`` reports the wanted CUDA (the CUDA step's check without its PyTorch run); the
  Docker daemon knows the nvidia runtime and its binary is there (``docker info``; no container is
  started; a containerd host: the container step's read-only containerd check);
* cluster layers, with answers: the steps' own ``verify`` (nodes Ready and GPUs in the Kind nodes;
  the release deployed with the planned chart and values and the ClusterPolicy ready; every GPU node
  advertising GPUs × split_count); without answers the installed releases are checked as they are
  (deployed, ClusterPolicy ready and pods ready, capacity = GPUs × the release's own split count),
  not against what an answer file would install;
* sharing: the HAMi step's sharing check where this gpuwizard has one (it may start a pod).

Nothing here writes the state file, a log or any host file: the engine is built over an in-memory
state and nothing saves it.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from . import versions as V
from .documents import VerifyDocument, VerifyLayer, VerifyLayerName, VerifySource, VerifyStatus
from .engine import Call, Engine, Step, StepContext
from .errors import EXIT_FAILED, EXIT_OK, GpuwizardError, StepFailed

SETTLE_S = 300.0  # how long a cluster that is coming back (after a reboot) gets to pass its checks
POLL_S = 1.0

#: layer -> the step whose answers ask for it (and whose verify checks it)
LAYERS: dict[VerifyLayerName, str] = {
    "driver": "driver",
    "cuda": "cuda",
    "container": "container",
    "cluster": "kind",
    "operator": "operator",
    "hami": "hami",
    "sharing": "hami",
}
#: with answers, a layer is not checked when the one it stands on failed (it fails, naming that one);
#: without answers it is checked anyway (it is skipped where the facts show it absent)
NEEDS: dict[VerifyLayerName, VerifyLayerName] = {"operator": "cluster", "hami": "cluster", "sharing": "hami"}


@dataclass
class Result:
    layer: VerifyLayerName
    status: VerifyStatus
    detail: str
    asked: bool

    def as_json(self) -> VerifyLayer:
        return {"layer": self.layer, "step": LAYERS[self.layer], "status": self.status, "detail": self.detail,
                "asked": self.asked}


class _Skip(Exception):
    """The layer does not apply; ``str`` says why."""


class Verifier:
    """Runs the checks over ``engine`` (its host, its facts). ``answers``: the steps' answers the
    session asks for ({step id: section}), or None to check what the facts show installed."""

    def __init__(self, engine: Engine, answers: dict[str, Any] | None):
        self.engine = engine
        self.answers = answers
        self.call = Call(engine, planning=False, answers=answers or {}, run_id=engine.state.run_id)
        self.deadline: float | None = None  # of the cluster layers' waits (see _check)

    def ctx(self, step_id: str) -> StepContext:
        return StepContext(self.engine, step_id, self.call)

    @property
    def facts(self) -> dict[str, Any]:
        return self.engine.facts()

    def step(self, step_id: str) -> Step[Any]:
        return self.engine.steps[step_id]

    def asked(self, layer: VerifyLayerName) -> Any:
        """The answers of the layer's step when the session asks for it, else None."""
        if self.answers is None:
            return None
        return self.answers.get(LAYERS[layer])

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> list[Result]:
        results: list[Result] = []
        failed: set[VerifyLayerName] = set()
        checks: dict[VerifyLayerName, Callable[[Any], str]] = {
            "driver": self.driver, "cuda": self.cuda, "container": self.container, "cluster": self.cluster,
            "operator": self.operator, "hami": self.hami, "sharing": self.sharing,
        }
        for layer, check in checks.items():
            answers = self.asked(layer)
            asked = answers is not None
            below = NEEDS.get(layer)
            if below in failed and asked:
                # asked for and standing on a failed layer: a failure of its own, without a cascade of reasons
                results.append(Result(layer, "fail", f"not checked: the {below} layer failed", asked))
                failed.add(layer)
                continue
            if self.answers is not None and not asked:
                results.append(Result(layer, "skip", f"not asked for (no {LAYERS[layer]}: section in the answers)", False))
                continue
            try:
                detail = self._check(layer, check, answers)
            except _Skip as exc:
                results.append(Result(layer, "skip", str(exc), asked))
                continue
            except GpuwizardError as exc:
                results.append(Result(layer, "fail", str(exc), asked))
                failed.add(layer)
                continue
            except Exception as exc:  # noqa: BLE001 — a bug in a check is that layer's failure, never fatal
                results.append(Result(layer, "fail", f"internal error: {type(exc).__name__}: {exc}", asked))
                failed.add(layer)
                continue
            results.append(Result(layer, "ok", detail, asked))
        return results

    def _check(self, layer: VerifyLayerName, check: Callable[[Any], str], answers: Any) -> str:
        """One layer's check. A cluster layer that fails while the cluster is still coming back (a
        node NotReady, or Ready for less than SETTLE_S: after a reboot its pods start again) is
        checked again until it passes or SETTLE_S have passed; what was waited for is said."""
        if layer not in ("cluster", "operator", "hami"):
            return check(answers)
        from .steps.hami import STALE_FIX

        if self.deadline is None:  # one bound for all the cluster layers together
            self.deadline = time.monotonic() + SETTLE_S
        deadline = self.deadline
        waited_for: str | None = None
        start = time.monotonic()
        settled_once = False
        while True:
            try:
                detail = check(answers)
            except GpuwizardError as exc:
                if STALE_FIX in str(exc):
                    raise  # a state that waiting does not mend (a stale device plugin)
                why = self._coming_back()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                if why is None:  # settled (or it settled since the check read it): one more check decides
                    if settled_once:
                        raise
                    settled_once = True
                    continue
                waited_for = waited_for or why
                if self.engine.host.runner.cancel.wait(min(POLL_S, left)):
                    raise
                continue
            if waited_for:
                detail += f" (after waiting {time.monotonic() - start:.0f}s: {waited_for})"
            return detail

    def _coming_back(self) -> str | None:
        """Why the target cluster is still coming up: a node not Ready, or Ready for less than
        SETTLE_S (its Ready condition's lastTransitionTime); None when it is settled or silent."""
        from .steps import kube as K
        from .steps.kind import target_context

        ctx = self.ctx("kind")
        try:
            context = target_context(ctx)[0] or self._context()
        except GpuwizardError:
            context = self._context()
        if context is None:
            return None
        for n in K.nodes(ctx, context) or []:
            name = n.get("metadata", {}).get("name")
            ready: dict[str, Any] = next((c for c in n.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"), {})
            try:
                since = time.time() - datetime.fromisoformat(str(ready.get("lastTransitionTime")).replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            if since >= SETTLE_S:
                continue  # Ready, or down, for longer than a boot takes: settled (or broken)
            return f"node {name} " + ("was not Ready" if ready.get("status") != "True" else f"became Ready {since:.0f}s before")
        return None

    def _absent(self, answers: Any, what: str) -> None:
        """The layer is not installed: a failure when asked for, else skipped."""
        if answers is not None:
            raise StepFailed(f"{what} (asked for by the answers)")
        raise _Skip(what)

    # -- host layers: read-only probes ------------------------------------------------------------
    def driver(self, answers: Any) -> str:
        facts = self.facts
        status = facts.get("driver_status")
        problem = (facts.get("problems") or {}).get("driver")
        if facts.get("driver") is None and status in (None, "no-driver"):
            if not facts.get("gpus"):
                self._absent(answers, "no NVIDIA GPU and no NVIDIA driver on this host")
            self._absent(answers, "no NVIDIA driver: nvidia-smi is not installed")
        if status != "ok" or facts.get("driver") is None:
            raise StepFailed(problem or f"the NVIDIA driver does not work ({status})")
        if not facts["host"].get("nvidia_loaded"):
            raise StepFailed("nvidia-smi answers but the nvidia kernel module is not in /proc/modules")
        if answers is not None:
            summary = self.step("driver").verify(self.ctx("driver"), answers)  # nvidia-smi again, and the version
            return f"{summary}; module nvidia loaded"
        d = facts["driver"]
        gpus = facts.get("gpus") or []
        names = ", ".join(str(g.get("name")) for g in gpus) or "no GPU"
        return (f"driver {d.get('version')} (CUDA {d.get('cuda_version') or '?'}); nvidia-smi sees {len(gpus)} GPU(s): "
                f"{names}; module nvidia loaded")

    def cuda(self, answers: Any) -> str:
        found = self.facts.get("cuda_toolkit")
        if answers is not None:
            # the CUDA step's check (nvcc of the wanted version in /usr/local/cuda-X.Y/bin), without its PyTorch run
            quick = answers.model_copy(update={"pytorch_check": False}) if getattr(answers, "pytorch_check", False) else answers
            summary = str(self.step("cuda").verify(self.ctx("cuda"), quick))
            return summary + ("; the PyTorch check is not run by verify" if quick is not answers else "")
        if not found:
            raise _Skip("no CUDA toolkit (nvcc not found)")
        note = "" if found.get("on_path", True) else " (not on PATH)"
        return f"CUDA {found.get('version')} (nvcc {found.get('full_version') or '?'}) at {found.get('path') or '?'}{note}"

    def container(self, answers: Any) -> str:
        facts = self.facts
        ctk = facts.get("container_toolkit")
        docker = facts.get("docker")
        runtime = getattr(answers, "runtime", None)
        if answers is None:
            installed = ctk is not None or "nvidia" in ((docker or {}).get("runtimes") or [])
            if not installed:
                raise _Skip("no NVIDIA container toolkit (nvidia-ctk not found) and no nvidia runtime in Docker")
            runtime = "docker" if docker is not None or not (facts.get("tools") or {}).get("containerd") else "containerd"
        if runtime == "containerd":
            if ctk is None:
                raise StepFailed("nvidia-ctk not found: nvidia-container-toolkit is not installed")
            from .steps.container import ContainerAnswers

            # the container step's containerd check reads its config and asks systemctl: read-only
            a = answers if answers is not None else ContainerAnswers.model_validate({"runtime": "containerd"})
            return f"nvidia-ctk {ctk['version']}; " + str(self.step("container").verify(self.ctx("container"), a))
        return self._docker(answers, ctk, docker)

    def _docker(self, answers: Any, ctk: Any, docker: Any) -> str:
        problem = (self.facts.get("problems") or {}).get("docker")
        if ctk is None:
            raise StepFailed("nvidia-ctk not found: nvidia-container-toolkit is not installed")
        if docker is None:
            raise StepFailed("docker not found")
        if not docker.get("running"):
            raise StepFailed("the Docker daemon is not running, so its runtimes are unknown (systemctl start docker)")
        if docker.get("daemon_json_error"):
            raise StepFailed(str(docker["daemon_json_error"]))
        runtimes = docker.get("runtimes") or []
        if "nvidia" not in runtimes:
            raise StepFailed(f"Docker does not know the nvidia runtime (docker info lists: {', '.join(runtimes) or 'none'}); "
                             "`nvidia-ctk runtime configure --runtime=docker` and a restart of Docker add it")
        if "nvidia" in (docker.get("missing_runtimes") or []):
            raise StepFailed(problem or "the nvidia runtime's binary (nvidia-container-runtime) is not found")
        default = docker.get("default_runtime") or "runc"
        if getattr(answers, "set_as_default", False) and default != "nvidia":
            raise StepFailed(f"container.set_as_default: true, but Docker's default runtime is {default}")
        if getattr(answers, "cdi", False) and not docker.get("cdi"):
            raise StepFailed("container.cdi: true, but the Docker daemon has no CDI spec directories (CDI is off)")
        return (f"nvidia-ctk {ctk['version']}; Docker {docker.get('version')} runs with the nvidia runtime "
                f"(default runtime {default}); no container was started")

    # -- cluster layers: the steps' own verify ------------------------------------------------------
    def _context(self) -> str | None:
        return (self.facts.get("kubernetes") or {}).get("context")

    def cluster(self, answers: Any) -> str:
        if answers is not None:
            return str(self.step("kind").verify(self.ctx("kind"), answers))
        context = self._context()
        if context is None:
            raise _Skip("no Kubernetes cluster (no kube context)")
        from .steps.kind import KindAnswers

        return str(self.step("kind").verify(self.ctx("kind"), KindAnswers.model_validate({"existing_context": context})))

    def operator(self, answers: Any) -> str:
        if answers is not None:
            return str(self.step("operator").verify(self.ctx("operator"), answers))
        rel = self.facts.get("gpu_operator")
        context = self._context()
        if rel is None or context is None:
            raise _Skip("no gpu-operator release installed")
        from .steps import operator as O

        ctx = self.ctx("operator")
        where = f"gpu-operator {rel['chart_version']} (release {rel['release']} in {rel['namespace']})"
        if rel.get("status") != "deployed":
            raise StepFailed(f"{where} is {rel.get('status')}, not deployed")
        state = O.policy_state(ctx, context)
        if state != "ready":
            raise StepFailed(f"{where}: the ClusterPolicy is {state or 'absent'}; " + O.describe_pods(ctx, context, rel["namespace"]))
        if not O.pods_ok(ctx, context, rel["namespace"]):
            raise StepFailed(f"{where}: ClusterPolicy ready, but pods are " + O.describe_pods(ctx, context, rel["namespace"]))
        return f"{where}: deployed, ClusterPolicy ready, its pods Running or Completed"

    def hami(self, answers: Any) -> str:
        if answers is not None:
            return str(self.step("hami").verify(self.ctx("hami"), answers))
        rel = self.facts.get("hami")
        context = self._context()
        if rel is None or context is None:
            raise _Skip("no HAMi release installed")
        return self._installed_hami(rel, context)

    def _installed_hami(self, rel: dict[str, Any], context: str) -> str:
        """An installed HAMi as it is: deployed, its pods ready, and every node its device plugin
        selects advertising GPUs × the release's split count."""
        from .steps import hami as H
        from .steps import kube as K

        ctx = self.ctx("hami")
        release, ns, version = rel["release"], rel["namespace"], str(rel["chart_version"]).lstrip("v")
        where = f"HAMi {version} (release {release} in {ns})"
        if rel.get("status") != "deployed":
            raise StepFailed(f"{where} is {rel.get('status')}, not deployed")
        flat = K.flatten(K.release_values(ctx, context, release, ns) or {})
        try:
            defaults: dict[str, Any] = dict(K.chart_version(H.CHART, version).defaults)
        except GpuwizardError:
            defaults = {}
        split = int(flat.get("devicePlugin.deviceSplitCount") or defaults.get("devicePlugin.deviceSplitCount") or 10)
        if not V.at_least(version, H.SPLIT_FROM):
            split = 10  # hard-coded before 2.5.0
        key = H.selector_key(version)
        selector = {k: str(v) for k, v in (defaults.get(key) or {"gpu": "on"}).items()}
        for k, v in flat.items():
            if k.startswith(key + "."):
                name = k[len(key) + 1:]
                if v is None:
                    selector.pop(name, None)
                else:
                    selector[name] = str(v)
        pods = K.pods(ctx, context, ns)
        if pods is None:
            raise StepFailed(f"the API server of context {context} does not answer")
        bad = [f"{p['metadata']['name']}: {why}" for p in pods if p["metadata"]["name"].startswith(release + "-")
               and (why := K.pod_problem(p))]
        if bad:
            raise StepFailed(f"{where}: pods not ready: " + "; ".join(bad))
        items = K.nodes(ctx, context) or []
        chosen = [n for n in items if all((n.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in selector.items())]
        wanted = ", ".join(f"{k}={v}" for k, v in selector.items()) or "(any)"
        if not chosen:
            raise StepFailed(f"{where}: no node is labelled {wanted}, so HAMi's device plugin runs nowhere")
        parts, wrong = [], []
        for n in chosen:
            name = n["metadata"]["name"]
            have = H.capacity(n)
            label = (n.get("metadata", {}).get("labels") or {}).get("nvidia.com/gpu.count")
            count = int(label) if label and str(label).isdigit() else None
            fine = have is not None and have > 0 and (have == count * split if count is not None else have % split == 0)
            text = f"{name}: nvidia.com/gpu = {have if have is not None else 'absent'}"
            unregistered = H.registration_problem(n, count, split)
            if fine and unregistered:
                wrong.append(f"{text}, but {unregistered}")
            elif fine:
                parts.append(text + f" ({(have or 0) // split} GPU × {split}, registered with HAMi)")
            else:
                wrong.append(text + f", expected {f'{count} × {split}' if count is not None else f'a multiple of {split}'}")
        if wrong:
            raise StepFailed(f"{where}: " + "; ".join(wrong))
        return f"{where}: " + "; ".join(parts)

    def sharing(self, answers: Any) -> str:
        check = sharing_check(self.step("hami"))
        a = answers
        if a is None:
            if self.facts.get("hami") is None:
                raise _Skip("no HAMi release installed")
            from .steps.hami import HamiAnswers

            a = HamiAnswers.model_validate({})
        if getattr(a, "verify_sharing", True) is False:
            raise _Skip("hami.verify_sharing: false")
        if check is None:
            if not hasattr(a, "verify_sharing"):
                raise _Skip("this gpuwizard has no sharing check")
            if answers is not None:
                return "checked by the HAMi step's verify above (hami.verify_sharing)"
            raise _Skip("not checked without answers: the sharing check is part of the HAMi step's verify "
                        "(verify --answers FILE runs it)")
        return str(check(self.ctx("hami"), a) or "sharing check passed")


def sharing_check(hami_step: Step[Any]) -> Callable[[StepContext, Any], Any] | None:
    """The HAMi step's sharing check, where this gpuwizard has one: the step's ``verify_sharing``
    method, else ``verify_sharing`` of ``gpuwizard.steps.sharing``."""
    method = getattr(hami_step, "verify_sharing", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    try:
        module = importlib.import_module(".steps.sharing", __package__)
    except ModuleNotFoundError:
        return None
    fn = getattr(module, "verify_sharing", None)
    return fn if callable(fn) else None


# -- the verdict ------------------------------------------------------------------------------------
def verdict(results: list[Result]) -> tuple[bool, str]:
    failed = [r.layer for r in results if r.status == "fail"]
    ok = [r.layer for r in results if r.status == "ok"]
    if failed:
        return False, f"not healthy: {', '.join(failed)} failed"
    if not ok:
        return False, "not healthy: nothing to verify (no layer is installed or asked for)"
    return True, f"healthy: {', '.join(ok)} ok"


def document(results: list[Result], source: VerifySource, answers_path: str | None) -> VerifyDocument:
    healthy, summary = verdict(results)
    return {"v": 1, "healthy": healthy, "exit": EXIT_OK if healthy else EXIT_FAILED, "summary": summary,
            "source": source, "answers": answers_path,
            "layers": [r.as_json() for r in results]}


def render_text(doc: VerifyDocument, stream: IO[str]) -> None:
    words = {"ok": "ok", "fail": "FAIL", "skip": "skip"}
    stream.write({"answers": f"checking the layers {doc['answers']} asks for\n",
                  "state": f"checking the layers the run saved in {doc['answers']} asked for\n",
                  "facts": "checking the layers installed on this host (no answers given or saved)\n"}[doc["source"]])
    for layer in doc["layers"]:
        detail = layer["detail"].replace("\n", "\n" + " " * 16)
        stream.write(f"{layer['layer']:<10} {words[layer['status']]:<4}  {detail}\n")
    stream.write(f"verdict: {doc['summary']}\n")
