"""Before anything runs: can the host reach every URL the plan will fetch?

The URLs are read off the plan itself: the http(s) arguments of the commands still to run (curl's
downloads, ``helm repo add``), and the sources of gpuwizard's own downloads (runfiles, the built-in
downloader). All are checked by one ``curl -fsSI --parallel`` (HEAD requests, 8 at a time, through the
runner: the proxy, the simulated hosts), its ``--write-out`` giving each URL's outcome. A URL that
does not answer is named with the actions that need it and curl's words, so a closed network (or
a mirror that lacks a file) stops the run before it changes anything instead of halfway through.

Not covered here: the distribution's own package archive (apt/dnf reach it themselves) and image
pulls (the runtimes reach their registries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine, PlannedStep

TIMEOUT = 10  # seconds per URL (curl --max-time)
PARALLEL = 8


@dataclass
class Unreachable:
    url: str
    error: str
    needed_by: list[tuple[str, str]]  # (step id, action title)


def urls(planned: list[PlannedStep], *, done_too: bool = False) -> dict[str, list[tuple[str, str]]]:
    """URL -> the (step, action) that fetch it, for the actions still to do (``done_too``: for every
    action, as a bundle for another host wants them)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for p in planned:
        for action, done in zip(p.actions, p.done, strict=False):
            if done and not done_too:
                continue
            found: list[str] = []
            argv = getattr(action, "argv", None)
            if isinstance(argv, list):
                found += [a for a in argv if isinstance(a, str) and a.startswith(("http://", "https://"))]
                if argv[:3] == ["helm", "repo", "add"]:  # what helm fetches: the repository's index
                    found = [u.rstrip("/") + "/index.yaml" for u in found]
            for attr in ("source", "url"):
                value = getattr(action, attr, None)
                if isinstance(value, str) and value.startswith(("http://", "https://")):
                    found.append(value)
            for url in dict.fromkeys(found):
                out.setdefault(url, []).append((p.step.id, action.title))
    return out


# after each transfer: its exit code, HTTP status, URL and curl's message (curl >= 7.75: %{errormsg})
WRITE_OUT = "%{exitcode}\\t%{http_code}\\t%{url_effective}\\t%{errormsg}\\n"


def probe_argv(urls: list[str]) -> list[str]:
    """One curl for every URL: HEAD requests, PARALLEL at a time, each written to /dev/null."""
    argv = ["curl", "-fsSI", "--max-time", str(TIMEOUT), "--parallel", "--parallel-max", str(PARALLEL), "-w", WRITE_OUT]
    for url in urls:
        argv += ["-o", "/dev/null", url]
    return argv


def _probe(engine: Engine, urls: list[str]) -> dict[str, str | None]:
    """URL -> None (it answers) or what curl says is wrong with it, from one curl process (a process
    a URL was most of a plan's time on simulated hosts, whose curl is a Python program)."""
    result = engine.host.runner.probe(probe_argv(urls), timeout=TIMEOUT * (1 + len(urls) // PARALLEL) + 5)
    seen: dict[str, str | None] = {}
    for line in (result.stdout if result is not None else "").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[2] not in urls:
            continue
        rc, status, url = parts[0], parts[1], parts[2]
        message = parts[3].strip() if len(parts) > 3 else ""
        failed = rc not in ("0", "") or (status.isdigit() and int(status) >= 400)
        seen[url] = f"curl: ({rc}) {message or 'HTTP ' + status}" if failed else None
    fallback = "curl is not installed: cannot check"
    if result is not None:
        text = (result.stderr or result.stdout).strip()
        fallback = text.splitlines()[-1] if text else f"curl exit {result.rc}"
    return {url: seen[url] if url in seen else fallback for url in urls}


def check(engine: Engine, planned: list[PlannedStep]) -> list[Unreachable]:
    """The URLs of the plan the host cannot fetch (none: all answer). Skipped without curl on PATH
    (a minbase host: gpuwizard's own downloader then reports at run time)."""
    if engine.host.runner.which("curl") is None:
        return []
    needed = urls(planned)
    if not needed:
        return []
    errors = _probe(engine, list(needed))
    return [Unreachable(url, err, needed[url]) for url, err in errors.items() if err is not None]


def message(missing: list[Unreachable]) -> str:
    """What cannot be fetched, by URL, and what to do."""
    lines = [f"{len(missing)} URL(s) of the plan cannot be fetched from this host; nothing was executed:"]
    for m in missing:
        steps = ", ".join(dict.fromkeys(f"[{sid}] {title}" for sid, title in m.needed_by))
        lines.append(f"  {m.url}: {m.error}")
        lines.append(f"    needed by {steps}")
    lines.append("Give mirrors of them in the answer file's mirrors: section (or a proxy: that reaches them; or "
                 "check the mirror named), or make an offline bundle on a connected machine (gpuwizard bundle "
                 "--answers FILE --out DIR) and run with --bundle DIR.")
    return "\n".join(lines)


def by_step(missing: list[Unreachable]) -> dict[str, list[Unreachable]]:
    """Step id -> the unreachable URLs it needs."""
    out: dict[str, list[Unreachable]] = {}
    for m in missing:
        for sid in dict.fromkeys(s for s, _ in m.needed_by):
            out.setdefault(sid, []).append(m)
    return out
