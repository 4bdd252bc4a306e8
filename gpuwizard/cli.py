"""Command line: argument parsing, mode selection, exit codes.

    gpuwizard [global options]                    the wizard (TUI), or unattended with --answers
    gpuwizard [global options] doctor [--json]    what is installed and healthy
    gpuwizard [global options] plan [--json]      what a run would do; executes nothing
    gpuwizard [global options] verify [--json]    the whole chain's health checks (exit 0 healthy, 1 not)

Global options are accepted before or after the subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from .errors import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_REBOOT,
    GpuwizardError,
    InvalidInput,
    StateError,
)

if TYPE_CHECKING:  # pragma: no cover
    from .session import WizardSession

EPILOG = """\
exit codes:
  0  every requested step done or already satisfied
  1  a step failed (state saved, log path printed)
  2  invalid input (command line or answer file): nothing executed
  3  stopped for a reboot: reboot, then run `gpuwizard --resume`
  4  another gpuwizard holds the lock

examples:
  gpuwizard --simulate t4-bare doctor          a simulated Tesla T4 host, nothing real touched
  gpuwizard --answers answers.yaml             unattended run
  gpuwizard --answers answers.yaml --output json   the same as JSON lines, the last a summary
  gpuwizard plan --answers answers.yaml        what would happen, executing nothing
  gpuwizard verify [--json]                    the whole chain's health checks (0 healthy, 1 not)
  gpuwizard --resume                           continue after a failure or the driver's reboot
"""


UNDO_DESCRIPTION = """\
Reverse what gpuwizard did, newest first, from the journal in the state file: files it created are
removed and files it changed put back (in a JSON file someone edited since, only gpuwizard's keys),
packages it installed removed (those that were there before stay), Helm releases it created
uninstalled and those it upgraded rolled back, the Kind cluster, namespaces and labels it created
removed. What changed since, or is unsafe to reverse, is refused with the reason (--force does it).
Exit codes as a run: 0 done, 1 refused or failed (state saved: run undo again), 2 bad input, 4 locked.
"""

VERIFY_DESCRIPTION = """\
The health checks of the whole chain, in order: driver, cuda, container (toolkit + runtime),
cluster, operator, hami, sharing. Which layers apply: those the answers ask for (--answers FILE,
else the answers the state file recorded), else every layer the host shows installed; the others
are skipped. Slower than doctor: it asks the cluster (nodes, releases, the ClusterPolicy, the
nodes' capacity) and runs the steps' own checks for the cluster layers; the sharing check, where
this gpuwizard has one, may start a pod. It changes no configuration and writes no state or host
file; no container is started for the host layers (the container step's `docker run` check is not
run)."""

VERIFY_EPILOG = """\
exit codes:
  0  healthy: no layer failed (and at least one was checked)
  1  not healthy: a layer failed, or nothing is installed to verify
  2  invalid input (command line, answer file or state file)

examples:
  gpuwizard verify                             what this host has installed
  gpuwizard verify --answers answers.yaml      what that answer file asks for
  gpuwizard --simulate ready verify --json     a simulated host with the whole stack
"""


def _global_options(parser: argparse.ArgumentParser, *, sub: bool, output: bool = True) -> None:
    """The options every mode honours. On subparsers their default is SUPPRESS, so a value given
    after the subcommand overrides, and one given before is kept."""
    d = (lambda v: argparse.SUPPRESS) if sub else (lambda v: v)
    g = parser.add_argument_group("global options")
    g.add_argument("--root", metavar="DIR", default=d(None), help="take every system path (/etc, /proc, /sys, /usr/local, /var) under DIR")
    g.add_argument("--state", metavar="PATH", default=d(None), help="state file (default: <root>/var/lib/gpuwizard/state.json as root, else the XDG state dir)")
    g.add_argument("--log-dir", metavar="DIR", default=d(None), help="where the per-run log file goes (default: <root>/var/log/gpuwizard as root)")
    g.add_argument("--simulate", metavar="PROFILE", default=d(None), help="run against a simulated host (a sandbox; nothing real is touched); with --root DIR the sandbox is kept in DIR")
    g.add_argument("--dry-run", action="store_true", default=d(False), help="show every command and file change; execute nothing")
    g.add_argument("--answers", metavar="FILE", default=d(None), help="YAML answer file: run unattended (with plan: the plan for it)")
    g.add_argument("--resume", action="store_true", default=d(False), help="continue the run saved in the state file (in a terminal: the wizard reopens at that step)")
    if output:  # podspec has its own -o/--output FILE
        g.add_argument("--output", choices=("text", "json"), default=d("text"),
                       help="json: one JSON object a line (\"v\": 1, \"event\"), the last a summary with the exit "
                       "code (unattended runs, plan, doctor, verify)")
    g.add_argument("--tui", action="store_true", default=d(False), help="with --answers: open the interactive wizard with its forms pre-filled instead of running unattended")
    g.add_argument("--bundle", metavar="DIR", default=d(None),
                   help="install from an offline bundle (gpuwizard bundle): every file checked first, then served on "
                   "127.0.0.1 for the run instead of the network")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuwizard",
        description="From 'there is an NVIDIA card in it' to pods sharing it through HAMi: driver, CUDA, "
        "Docker GPU runtime, Kind (or your cluster), gpu-operator, HAMi, pod specs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gpuwizard {__version__}")
    _global_options(parser, sub=False)
    subs = parser.add_subparsers(dest="command", metavar="{doctor,plan,verify,undo,bundle,podspec}")
    doctor = subs.add_parser("doctor", help="what is installed and healthy, layer by layer", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    _global_options(doctor, sub=True)
    plan = subs.add_parser("plan", help="print every command and file diff a run would make; executes nothing", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    _global_options(plan, sub=True)
    verify = subs.add_parser("verify", help="the whole chain's health checks, layer by layer: exit 0 healthy, 1 not",
                             description=VERIFY_DESCRIPTION, epilog=VERIFY_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("--json", action="store_true", help="machine-readable verdict (one JSON object)")
    _global_options(verify, sub=True)
    undo = subs.add_parser("undo", help="reverse what gpuwizard did, newest first (its plan first; --plan: only the plan)",
                           description=UNDO_DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    undo.add_argument("steps", nargs="*", metavar="STEP", help="the steps to undo (default: every step gpuwizard changed something in)")
    undo.add_argument("--plan", action="store_true", help="show what undo would do; change nothing")
    undo.add_argument("--force", action="store_true", help="also do what undo refuses as unsafe (says what, and keeps backups)")
    _global_options(undo, sub=True)
    bundle = subs.add_parser("bundle", help="on a connected machine: fetch what the answer file's plan downloads into DIR, "
                             "for --bundle DIR on a host without network", epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    bundle.add_argument("--out", metavar="DIR", required=True, help="where the bundle goes (its manifest.json lists every file)")
    _global_options(bundle, sub=True)
    from . import podspec_cli

    podspec_cli.add_parser(subs, _global_options)
    return parser



# ------------------------------------------------------------------------------------------------
class Session:
    """Everything a mode needs: the host seam, where state and logs go, the simulated sandbox."""

    def __init__(self, args: argparse.Namespace, *, unattended: bool, err: IO[str]):
        from .host import Host, Runner, privilege_prefix
        from .state import default_log_dir, default_state_path

        self.args = args
        self.sandbox = None
        env: dict[str, str] = {}
        path = None
        euid = os.geteuid()
        if args.simulate:
            from .simulate import SandboxError, prepare

            try:
                self.sandbox = prepare(args.simulate, Path(args.root) if args.root else None)
            except SandboxError as exc:
                raise InvalidInput(str(exc)) from None
            root = self.sandbox.root
            env = self.sandbox.env()
            path = env.pop("PATH")
            if not args.root:
                err.write(f"gpuwizard: simulated host '{args.simulate}' in {root} (pass --root {root} to reuse it)\n")
        elif args.root:
            root = Path(args.root)
            if not root.is_dir():
                raise InvalidInput(f"--root {args.root}: not a directory")
        else:
            root = Path("/")
        rooted = root.resolve() != Path("/")
        privilege = privilege_prefix(euid=euid, real_root=not rooted, unattended=unattended)
        self.host = Host(root, Runner(path=path, env=env, privilege=privilege, dry_run=bool(args.dry_run)))
        self.state_path = Path(args.state) if args.state else default_state_path(self.host.root, euid=euid, rooted=rooted)
        self.log_dir = Path(args.log_dir) if args.log_dir else default_log_dir(self.host.root, euid=euid, rooted=rooted)
        self.closers: list[Any] = []  # what the session started and stops when it ends (a bundle's server)

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


# ------------------------------------------------------------------------------------------------
def cmd_doctor(session: Session, out: IO[str], err: IO[str] | None = None) -> int:
    from . import doctor
    from .detect import detect

    facts = detect(session.host)
    drift = _drift(session, err)
    if drift is not None:
        facts = {**facts, "drift": drift}
    if json_output(session.args):
        from .console import json_line

        json_line(out, "doctor", facts=doctor.document(facts))
        json_line(out, "summary", exit=EXIT_OK, problems=facts.get("problems", {}))
    elif session.args.json:
        doctor.render_json(facts, out)
    elif out.isatty():
        doctor.render_rich(facts, out)
    else:
        doctor.render_text(facts, out)
    return EXIT_OK


def _drift(session: Session, err: IO[str] | None = None) -> list[Any] | None:
    """What the wizard set that is no longer so, from the state file's journal (None: no journal)."""
    from .engine import Engine
    from .state import State
    from .steps import registry
    from .undo import drift

    try:
        state = State.load(session.state_path)
    except StateError as exc:  # doctor still reports the host; the state file's own problem is said
        if err is not None:
            err.write(f"gpuwizard: no drift check: {exc}\n")
        return None
    if state is None or not state.data.get("journal"):
        return None
    memory = State(session.state_path, data=json.loads(json.dumps(state.data)))
    return drift(Engine(session.host, memory, registry(), unattended=True))


def cmd_undo(session: Session, out: IO[str], err: IO[str]) -> int:
    """``gpuwizard undo [STEP ...] [--plan] [--force]``: reverse what the journal says the wizard did,
    newest first, under the run lock; --plan shows it with the plan's renderer and changes nothing."""
    from . import undo
    from .console import ConsoleReporter, JsonReporter, LogFile, json_line
    from .engine import Engine
    from .state import RunLock, State
    from .steps import registry

    args = session.args
    force = bool(args.force)
    if session.host.dry_run:  # --dry-run: the plan, nothing else
        args.plan = True
    lock: RunLock | None = None
    log: LogFile | None = None
    try:
        if not args.plan:
            lock = RunLock(session.state_path).acquire()
        state = State.load(session.state_path)
        if state is None:
            raise StateError(f"nothing to undo: no state file at {session.state_path}")
        if args.plan:  # never saved: completing pending entries is for the real undo
            state = State(session.state_path, data=json.loads(json.dumps(state.data)))
            state.save = lambda: None  # type: ignore[method-assign]
        from .answers import from_state
        from .network import Network

        saved = from_state(state.answers, str(session.state_path)) if any(k != "version" for k in state.answers) else None
        engine = Engine(session.host, state, registry(), unattended=True, network=Network.of(saved))
        names = list(args.steps or [])
        undos = undo.plan(engine, names, force=force)
        planned = undo.planned_steps(engine, undos, force)
        code = undo.exit_code(undos, force)
        as_json = json_output(args)
        if args.plan:
            if as_json:
                for p in planned:
                    json_line(out, "undo-step", step=p.step.id, title=p.step.title, error=p.problem(), refused=p.refused,
                              notes=p.decisions, actions=[dict(a, done=d) for a, d in zip(p.described, p.done, strict=False)])
                json_line(out, "summary", exit=code, steps=[p.step.id for p in planned], executed=False)
            else:
                if not planned:
                    out.write("nothing to undo: the journal has no change of " + (" ".join(names) or "any step") + "\n")
                undo.render(planned, out)
                out.write("(undo plan only: nothing was changed)\n")
            return code
        if not planned:
            if as_json:
                json_line(out, "summary", exit=EXIT_OK, steps={}, text="nothing to undo")
            else:
                out.write("nothing to undo: the journal has no change of " + (" ".join(names) or "any step") + "\n")
            return EXIT_OK
        log = LogFile(session.log_dir)
        log.write(f"gpuwizard {__version__} pid {os.getpid()} root {session.host.root} undo {' '.join(names) or '(all)'}"
                  + (" --force" if force else ""))
        log.attach(session.host)
        engine.listeners.append(log)
        if not as_json:
            undo.render(planned, out)
        reporter: Any = JsonReporter(out) if as_json else ConsoleReporter(out)
        engine.listeners.append(reporter)
        code = undo.run(engine, names, force=force)
        log.write(f"exit {code}")
        if as_json:
            json_line(out, "summary", exit=code, steps={u.step_id: state.status(u.step_id) for u in undos},
                      log=str(log.path), state=str(session.state_path))
        elif code == EXIT_OK:
            out.write(f"undo done (log: {log.path})\n")
        else:
            err.write(f"gpuwizard: undo stopped; state saved in {session.state_path}; full log: {log.path}\n")
        return code
    finally:
        if log is not None:
            log.close()
        if lock is not None:
            lock.release()


def cmd_verify(session: Session, out: IO[str], as_json: bool) -> int:
    """``gpuwizard verify``: the layers the answers ask for (the answer file's, else the state file's),
    else those the facts show installed. Builds the engine over an in-memory state: nothing saves it."""
    from . import verify
    from .answers import from_state, load_answers, section, selected_steps
    from .documents import VerifySource
    from .engine import Engine
    from .state import State
    from .steps import registry

    args = session.args
    answers: Any = None
    source: VerifySource = "facts"
    where: str | None = None
    state: State | None = None
    if args.answers:
        answers, source, where = load_answers(args.answers), "answers", str(args.answers)
    else:
        state = State.load(session.state_path)
        if state is not None and any(key != "version" for key in state.answers):
            answers, source, where = from_state(state.answers, str(session.state_path)), "state", str(session.state_path)
    sections = {sid: section(answers, sid) for sid in selected_steps(answers)} if answers is not None else None
    memory = State(session.state_path, data=json.loads(json.dumps(state.data)) if state is not None else None)
    engine = Engine(session.host, memory, registry(), unattended=True)
    doc = verify.document(verify.Verifier(engine, sections).run(), source, where)
    if json_output(args):
        from .console import json_line

        for layer in doc["layers"]:
            json_line(out, "verify-layer", **layer)
        json_line(out, "summary", exit=doc["exit"], healthy=doc["healthy"], text=doc["summary"], source=doc["source"],
                  answers=doc.get("answers"))
    elif as_json:
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        verify.render_text(doc, out)
    return doc["exit"]


def _load_run_answers(session: Session, *, need: bool) -> tuple[Any, Any]:
    """(AnswerFile, State|None) from --answers and/or the state file."""
    from .answers import from_state, load_answers
    from .state import State

    args = session.args
    state = State.load(session.state_path)
    if args.answers:
        return load_answers(args.answers), state
    if args.resume:
        if state is None:
            raise StateError(f"nothing to resume: no state file at {session.state_path}")
        return from_state(state.answers, str(session.state_path)), state
    if need:
        raise InvalidInput("an answer file is needed here: pass --answers FILE (or --resume to use the saved run)")
    return None, state


def _prepare_engine(session: Session, *, run: bool = False) -> tuple[WizardSession, Any, list[str], dict[str, Any]]:
    """(wizard session, answers, selected step ids, their answer sections) for a plan or a run. The
    run's answers go into the state (a plan never saves it). A fresh run (not --resume) gets a new
    run id. The wizard session is the TUI's model too: both plan and run through it."""
    from .answers import section, selected_steps, to_state
    from .engine import Engine
    from .session import WizardSession
    from .state import State
    from .steps import registry

    answers, state = _load_run_answers(session, need=True)
    state = state or State(session.state_path)
    if run and not session.args.resume:
        state.new_run()
    state.data["answers"] = to_state(answers)
    selected = selected_steps(answers)
    reboot = answers.driver.reboot if answers.driver else "never"
    from .network import Network

    network = Network.of(answers)
    if getattr(session.args, "bundle", None):  # checked, then served on 127.0.0.1 until the session ends
        from . import bundle

        session.closers.append(bundle.attach(network, session.args.bundle, session.host).close)
    engine = Engine(session.host, state, registry(), unattended=True, reboot_policy=reboot, network=network)
    if reboot == "auto":
        engine.resume_service = _resume_service(session)
    sections = {sid: section(answers, sid) for sid in selected}
    return WizardSession(engine, sections), answers, selected, sections


def cmd_bundle(session: Session, out: IO[str], err: IO[str]) -> int:
    """``gpuwizard bundle --answers F --out DIR``: what the plan of F downloads, fetched into DIR."""
    from pathlib import Path

    from . import bundle

    model, _, selected, _ = _prepare_engine(session)
    planned = list(model.plan(selected).values())
    bad = [p for p in planned if p.refused or p.error]
    if bad:
        for p in bad:
            err.write(f"gpuwizard: error: [{p.step.id}] {p.problem()}\n")
        err.write("gpuwizard: the plan of these answers is not complete on this machine, so neither is a bundle of it; "
                  "see: gpuwizard plan --answers FILE\n")
        return EXIT_INVALID if any(p.refused for p in bad) else EXIT_FAILED
    target = Path(session.args.out)
    manifest = bundle.build(model.engine, planned, target, session.args.answers, lambda text: out.write(f"  {text}\n"))
    total = sum(int(f.get("size", 0)) for f in manifest["files"].values())
    out.write(f"bundle {target}: {len(manifest['files'])} files, {total / (1 << 20):.1f} MiB "
              f"(manifest: {target / bundle.MANIFEST}); on the host: gpuwizard --bundle {target} --answers "
              f"{session.args.answers}\n")
    return EXIT_OK


def plan_exit_code(planned: list[Any]) -> int:
    """The contract's plan exit codes: 2 when the answers ask for what cannot be, 1 when a step
    cannot be planned, else 0."""
    if any(p.refused for p in planned):
        return EXIT_INVALID
    if any(not p.ok for p in planned):
        return EXIT_FAILED
    return EXIT_OK


def unreachable(engine: Any, planned: list[Any]) -> list[Any]:
    """The plan's URLs this host cannot fetch (gpuwizard/reach.py); each step that needs one cannot
    be planned (its error names them)."""
    from . import reach

    missing = reach.check(engine, planned)
    needs = reach.by_step(missing)
    for p in planned:
        if p.step.id in needs and p.error is None:
            p.error = "cannot fetch " + "; ".join(f"{m.url} ({m.error})" for m in needs[p.step.id])
    return missing


def cmd_plan(session: Session, out: IO[str], as_json: bool) -> int:
    model, _, selected, _ = _prepare_engine(session)
    planned = list(model.plan(selected).values())
    missing = unreachable(model.engine, planned)
    code = plan_exit_code(planned)
    doc = [
        {
            "step": p.step.id,
            "title": p.step.title,
            "error": p.problem(),
            "refused": p.refused,
            "decisions": p.decisions,
            "assumptions": p.assumptions,
            "checks": p.checks,
            "actions": [dict(a, done=d) for a, d in zip(p.described, p.done, strict=False)],
        }
        for p in planned
    ]
    if json_output(session.args):
        from .console import json_line

        for step in doc:
            json_line(out, "plan-step", **step)
        json_line(out, "summary", exit=code, steps={s["step"]: "refused" if s["refused"] else "cannot plan" if s["error"]
                                                     else "planned" for s in doc}, executed=False)
        return code
    if as_json:
        from .console import redact

        out.write(json.dumps(redact({"steps": doc, "exit": code}), indent=2) + "\n")
        return code
    from .console import render_plan

    render_plan(planned, out)
    if missing:
        from .reach import message

        out.write(message(missing) + "\n")
    out.write("(plan only: nothing was executed)\n")
    return code


def effective_answers(answers: Any, selected: list[str], sections: dict[str, Any], steps: dict[str, Any]) -> dict[str, Any]:
    """The answer file as this run uses it: the sections of the selected steps with every default
    filled in (``detect`` included when the file leaves it out), the sections of skipped steps left
    out, any other top-level key as the model has it. For the head of the log."""
    from .console import plain

    doc: dict[str, Any] = {}
    for key, value in answers.model_dump(mode="json").items():
        if key in steps:
            if key in selected:
                doc[key] = plain(sections[key])
        elif value is not None:  # a section left out (mirrors:, proxy:) is not shown as null
            doc[key] = value
    for sid in selected:  # in run order, should the model's order ever differ
        doc.setdefault(sid, plain(sections[sid]))
    return doc


def _log_facts(log: Any, engine: Any) -> None:
    """The facts the plan is made against, detected now (each probe logged above them)."""
    try:
        facts = engine.facts()
    except Exception as exc:  # noqa: BLE001 — the plan meets it again and reports it; the log says it here
        log.write(f"facts: detection failed: {type(exc).__name__}: {exc}", flush=True)
        return
    log.write_header(facts=facts)


def _resume_service(session: Session) -> Any:
    """reboot: auto: gpuwizard-resume.service for this session, running this interpreter with the
    same root, simulated host, state file and log directory (see gpuwizard/resume_service.py)."""
    from .resume_service import ResumeService

    args = session.args
    return ResumeService.for_session(root=session.host.root if args.root else None, simulate=args.simulate,
                                     state_path=session.state_path, log_dir=session.log_dir,
                                     bundle=getattr(args, "bundle", None))


def _end_unit_run(session: Session, engine: Any, log: Any, err: IO[str]) -> None:
    """The run gpuwizard-resume.service started has ended (whatever its outcome): the unit removes
    itself, unless this run armed it again for another reboot."""
    from .resume_service import BY_HAND, UNIT, disarm

    service = getattr(engine, "resume_service", None)
    if service is not None and service.armed:
        text = f"{UNIT} stays enabled: this run stopped for another reboot and resumes after it"
    else:
        problems = disarm(session.host)
        text = (f"{UNIT} removed (disabled, unit file deleted, systemd reloaded): it ran once" if not problems else
                f"{UNIT} could not be removed completely ({'; '.join(problems)}); remove it by hand: {BY_HAND}")
    if log is not None:
        log.write(text, flush=True)
    err.write(f"gpuwizard: {text}\n")


def cmd_run(session: Session, out: IO[str], err: IO[str]) -> int:
    from .console import ConsoleReporter, JsonReporter, LogFile, json_line
    from .resume_service import UNIT, started_by_unit
    from .state import RunLock

    # the run gpuwizard-resume.service started after the boot: it removes the unit when it ends,
    # also when it cannot start (lock held, no state)
    unit_run = started_by_unit(session.args)
    unit_done = not unit_run
    engine: Any = None
    lock: RunLock | None = None
    log: LogFile | None = None
    try:
        lock = RunLock(session.state_path).acquire()
        model, answers, selected, sections = _prepare_engine(session, run=True)
        engine = model.engine
        state = engine.state
        # the log's head: who, the answers as the run uses them, then (after the probes that find
        # them) the detected facts; from here on every command is in it, probes too
        log = LogFile(session.log_dir)
        log.write(f"gpuwizard {__version__} pid {os.getpid()} root {session.host.root} steps {','.join(selected)} run {state.run_id}"
                  + (" resume" if session.args.resume else "") + (" dry-run" if session.host.dry_run else ""))
        if unit_run:
            log.write(f"started by {UNIT} after the boot; the unit is removed when this run ends")
        log.attach(session.host)
        log.write_header(answers=effective_answers(answers, selected, sections, engine.steps))
        _log_facts(log, engine)
        engine.listeners.append(log)
        # the whole recipe's plan first: what it can already tell is impossible runs nothing
        whole = list(model.plan(selected).values())
        refused = [p for p in whole if p.refused]
        if refused:
            for p in refused:
                err.write(f"gpuwizard: error: [{p.step.id}] {p.error}\n")
                log.write(f"refused [{p.step.id}] {p.error}")
            err.write("gpuwizard: nothing was executed (the plan refuses these answers; see: gpuwizard plan --answers FILE)\n")
            log.write(f"exit {EXIT_INVALID}: the plan refuses these answers; nothing was executed")
            if json_output(session.args):
                from .console import json_line

                json_line(out, "summary", exit=EXIT_INVALID, executed=False,
                          refused={p.step.id: p.error for p in refused}, log=str(log.path))
            return EXIT_INVALID
        # ...nor what the host cannot download (a closed network, a mirror that lacks a file)
        missing = unreachable(engine, whole)
        if missing:
            from .reach import message

            text = message(missing)
            err.write("gpuwizard: error: " + text + "\n")
            for line in text.splitlines():
                log.write(line)
            log.write(f"exit {EXIT_FAILED}: URLs of the plan cannot be fetched; nothing was executed")
            if json_output(session.args):
                from .console import json_line

                json_line(out, "summary", exit=EXIT_FAILED, executed=False, log=str(log.path),
                          unreachable=[{"url": m.url, "error": m.error, "steps": sorted({s for s, _ in m.needed_by})}
                                       for m in missing])
            return EXIT_FAILED
        as_json = json_output(session.args)
        reporter: Any = JsonReporter(out) if as_json else ConsoleReporter(out)
        engine.listeners.append(reporter)
        state.save()
        code = model.run(selected)
        if as_json:
            steps = {sid: state.status(sid) for sid in selected}
            json_line(out, "summary", exit=code, steps=steps, log=str(log.path), state=str(session.state_path),
                      changed=sum(1 for sid in selected for a in (state.step(sid).get("actions") or {}).values()
                                  if a.get("outcome") == "changed" and a.get("run") == state.run_id))
        if not unit_done:
            unit_done = True
            _end_unit_run(session, engine, log, err)
        log.write(f"exit {code}")
        if code == EXIT_FAILED:
            err.write(f"gpuwizard: a step failed; state saved in {session.state_path}\n")
            err.write(f"gpuwizard: full log: {log.path}\n")
            err.write("gpuwizard: fix the cause, then run: gpuwizard --resume\n")
        elif code == EXIT_REBOOT and engine.resume_service is not None and engine.resume_service.armed:
            err.write(f"gpuwizard: rebooting; state saved in {session.state_path}; after the boot {UNIT} runs "
                      "gpuwizard --resume (journalctl -u " + UNIT + "; the run's log goes to " + str(session.log_dir) + ")\n")
        elif code == EXIT_REBOOT:
            err.write(f"gpuwizard: stopped for a reboot; state saved in {session.state_path}; after the reboot run: gpuwizard --resume\n")
        elif not as_json:
            out.write(f"all requested steps done (log: {log.path})\n")
        return code
    except BaseException as exc:
        if log is not None:
            log.write(f"stopped: {type(exc).__name__}: {exc}")
        raise
    finally:
        if not unit_done:
            _end_unit_run(session, engine, log, err)
        if log is not None:
            log.close()
        if lock is not None:
            lock.release()


def json_output(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "text") == "json"


def _interactive(out: IO[str]) -> bool:
    return sys.stdin.isatty() and out.isatty()


def cmd_tui(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """The interactive wizard: no subcommand, a terminal, and no answer file (or --tui to pre-fill
    the forms from one; --resume reopens where the state file says)."""
    if not _interactive(out):
        err.write(
            "gpuwizard: error: the interactive wizard needs a terminal (stdin and stdout must be a TTY)\n"
            "  unattended:  gpuwizard --answers FILE   (see examples/)\n"
            "  inspect:     gpuwizard doctor | gpuwizard plan --answers FILE\n"
        )
        return EXIT_INVALID
    answers = None
    if args.answers:  # invalid: exit 2 before the TUI (without one, pydantic loads after the first frame)
        from .answers import load_answers

        answers = load_answers(args.answers)
    if getattr(args, "bundle", None):  # a changed or missing file: exit 2 before the TUI
        from pathlib import Path

        from .bundle import load

        load(Path(args.bundle))
    # the wizard cannot pass a sudo password prompt through: commands use `sudo -n` when not root
    session = Session(args, unattended=True, err=err)
    from .tui.app import run_tui

    return run_tui(session, answers, bool(args.resume), err=err)


def main(argv: list[str] | None = None, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for bad usage
        return int(exc.code or 0)
    try:
        if args.command == "doctor":
            session = Session(args, unattended=True, err=err)
            return cmd_doctor(session, out, err)
        if args.command == "verify":
            session = Session(args, unattended=True, err=err)
            return cmd_verify(session, out, bool(args.json))
        if args.command == "undo":
            return cmd_undo(Session(args, unattended=True, err=err), out, err)
        if args.command == "bundle":
            if not args.answers:
                raise InvalidInput("bundle needs the answer file of the hosts it is for: --answers FILE")
            session = Session(args, unattended=True, err=err)
            try:
                return cmd_bundle(session, out, err)
            finally:
                session.close()
        if args.command == "podspec":
            from . import podspec_cli

            return podspec_cli.run(args, Session(args, unattended=True, err=err), out, err)
        if args.command == "plan" or (args.dry_run and (args.answers or args.resume)):
            session = Session(args, unattended=True, err=err)
            try:
                return cmd_plan(session, out, getattr(args, "json", False))
            finally:
                session.close()
        if (args.answers and not args.tui) or (args.resume and not _interactive(out)):
            session = Session(args, unattended=True, err=err)
            try:
                return cmd_run(session, out, err)
            finally:
                session.close()
        return cmd_tui(args, out, err)
    except GpuwizardError as exc:
        err.write(f"gpuwizard: error: {exc}\n")
        if json_output(args):
            from .console import json_line

            json_line(out, "summary", exit=exc.exit_code, error=str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("gpuwizard: interrupted; the state file keeps what was done: run gpuwizard --resume to continue\n")
        return EXIT_FAILED



__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_INVALID", "EXIT_REBOOT", "EXIT_LOCKED"]
