"""Simulated systemd unit files: what ``systemctl`` does with a unit that is a file in
/etc/systemd/system (written by the wizard, e.g. gpuwizard-resume.service), as opposed to the
world's built-in services (docker, containerd: ``world["services"]``).

* ``enable`` / ``disable``: the symlink ``/etc/systemd/system/<target>.wants/<unit>`` for each
  ``WantedBy=`` target of its [Install] section, with systemctl's own messages ("Created symlink …",
  "Removed …"); ``is-enabled``: enabled / disabled, or "No such file or directory" once the file is gone.
  (The link is relative, so that it resolves inside the sandbox root.)
* a boot (world.boot) queues the units enabled for multi-user.target; they start when the boot
  reaches it: ``systemctl start multi-user.target`` (once per boot). In the simulator the process that
  ran ``reboot`` lives on (a real host kills it), so the units cannot start inside ``reboot`` itself:
  whoever plays the host says when the boot reaches the target (a test, the integrator).
* ``start`` of a ``Type=oneshot`` unit runs its ``ExecStart=`` to its end, as systemctl waits for a
  oneshot job: a clean environment (PATH = the sandbox's bin dir, the unit's ``Environment=``,
  INVOCATION_ID), stdin /dev/null, the sandbox root as working directory, output to the journal
  (``.gpuwizard-sim/journal/<unit>.log``); exit status 0 -> result success (inactive: no
  RemainAfterExit), else failed (result exit-code) and systemctl's "Job for … failed" message, rc 1.

Imported only by the simulated systemctl when it meets such a unit (built-in modules only).
"""
import os
from collections.abc import Iterable

from gpuwizard.simulate import world as W

UNIT_DIR = "/etc/systemd/system"
BOOT_TARGET = "multi-user.target"
JOURNAL_DIR = "journal"



def state_answer(ctx, verb: str, states: Iterable[str], quiet: bool) -> int:
    """``systemctl is-active`` / ``is-failed`` over units in these states (active, failed, inactive):
    each state printed unless ``--quiet``; is-active exits 3 unless all are active, is-failed 0 when
    any has failed, else 1 (systemctl(1), "is-active PATTERN…", "is-failed PATTERN…")."""
    rc = 0 if verb == "is-active" else 1
    for st in states:
        if not quiet:
            ctx.out(st)
        if verb == "is-active" and st != "active":
            rc = 3
        if verb == "is-failed" and st == "failed":
            rc = 0
    return rc

def full_name(u: str) -> str:
    return u if "." in u else u + ".service"


def unit_file(root, name: str) -> str:
    return W.host_path(root, UNIT_DIR + "/" + full_name(name))


def has_unit_file(root, name: str) -> bool:
    return os.path.isfile(unit_file(root, name))


def parse(text: str) -> dict:
    """{section: {key: [values]}} of a unit file (comments, blank lines and continuations aside)."""
    sections: dict = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def read(root, name: str) -> dict:
    with open(unit_file(root, name), encoding="utf-8") as f:
        return parse(f.read())


def split_command(line: str, command: bool = True) -> list:
    """A systemd command line into words (systemd.service(5) "Command lines"): double or single
    quotes, C-style backslash escapes, ``$$`` -> ``$`` and ``%%`` -> ``%``; a leading ``-``, ``@``,
    ``+``, ``!``, ``:`` prefix of the executable is dropped."""
    words: list = []
    cur: list = []
    quote = None
    have = False
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and i + 1 < len(line):
                i += 1
                cur.append(line[i])
            elif c == quote:
                quote = None
            else:
                cur.append(c)
        elif c in "\"'":
            quote = c
            have = True
        elif c.isspace():
            if cur or have:
                words.append("".join(cur))
                cur, have = [], False
        elif c == "\\" and i + 1 < len(line):
            i += 1
            cur.append(line[i])
        else:
            cur.append(c)
        i += 1
    if cur or have:
        words.append("".join(cur))
    if command:
        words = [w.replace("$$", "\0").replace("%%", "%").replace("\0", "$") for w in words]
    else:
        words = [w.replace("%%", "%") for w in words]
    if command and words:
        words[0] = words[0].lstrip("-@+!:")
    return words


def environment(unit: dict) -> dict:
    env = {}
    for line in unit.get("Service", {}).get("Environment", []):
        for word in split_command(line, command=False) if line else []:
            if "=" in word:
                k, _, v = word.partition("=")
                env[k] = v
    return env


def wanted_by(unit: dict) -> list:
    targets = []
    for line in unit.get("Install", {}).get("WantedBy", []):
        targets += line.split()
    return targets


def _link(root, target: str, name: str) -> str:
    return W.host_path(root, "%s/%s.wants/%s" % (UNIT_DIR, target, full_name(name)))


def is_enabled(root, name: str) -> bool:
    base = W.host_path(root, UNIT_DIR)
    try:
        dirs = [d for d in os.listdir(base) if d.endswith(".wants")]
    except OSError:
        return False
    return any(os.path.lexists(os.path.join(base, d, full_name(name))) for d in dirs)


def _runtime(world: dict) -> dict:
    return world.setdefault("systemd", {}).setdefault("units", {})


def known(root, world: dict, name: str) -> bool:
    return name == BOOT_TARGET or has_unit_file(root, name) or full_name(name) in _runtime(world)


# ---------------------------------------------------------------------------------------------
# verbs

def systemctl(ctx, verb: str, units: list, quiet: bool) -> int:
    root = ctx.root
    names = [full_name(u) for u in units]
    if verb == "is-enabled":
        rc = 0
        for n in names:
            if not has_unit_file(root, n):
                ctx.err("Failed to get unit file state for %s: No such file or directory" % n)
                return 1
            on = is_enabled(root, n)
            if not quiet:
                ctx.out("enabled" if on else "disabled")
            rc = rc if on else 1
        return rc
    if verb in ("enable", "disable"):
        for n in names:
            if not has_unit_file(root, n):
                ctx.err("Failed to %s unit: Unit file %s does not exist." % (verb, n))
                return 1
        for n in names:
            targets = wanted_by(read(root, n))
            for t in targets:
                link = _link(root, t, n)
                if verb == "enable" and not os.path.lexists(link):
                    os.makedirs(os.path.dirname(link), exist_ok=True)
                    os.symlink(os.path.join("..", n), link)
                    ctx.err("Created symlink %s/%s.wants/%s \u2192 %s/%s." % (UNIT_DIR, t, n, UNIT_DIR, n))
                elif verb == "disable" and os.path.lexists(link):
                    os.remove(link)
                    ctx.err('Removed "%s/%s.wants/%s".' % (UNIT_DIR, t, n))
            if verb == "enable" and not targets:
                ctx.err("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
                        "Alias= settings in the [Install] section, and DefaultInstance= for template\nunits).")
        return 0
    if verb == "status":
        rc = 0
        for n in names:
            st = _state(ctx.world, n)
            _status(ctx, n, st)
            if st != "active":
                rc = 3
        return rc
    if verb in ("is-active", "is-failed"):
        return state_answer(ctx, verb, [_state(ctx.world, n) for n in names], quiet)
    if verb in ("start", "restart"):
        for n in names:
            if n == BOOT_TARGET:
                _reach_target(ctx)
                continue
            if not has_unit_file(root, n):
                ctx.err("Failed to start %s: Unit %s not found." % (n, n))
                return 5
            if start(ctx, n) != 0:
                ctx.err('Job for %s failed because the control process exited with error code.\n'
                        'See "systemctl status %s" and "journalctl -xeu %s" for details.' % (n, n, n[:-8] if n.endswith(".service") else n))
                return 1
        return 0
    if verb == "stop":
        return 0  # a oneshot unit without RemainAfterExit is inactive once its ExecStart ended
    return ctx.unsupported()


def _state(world: dict, name: str) -> str:
    if name == BOOT_TARGET:
        return "active" if world.get("systemd", {}).get("reached") else "inactive"
    st = world.get("systemd", {}).get("units", {}).get(name) or {}
    return "failed" if st.get("result") == "exit-code" else ("active" if st.get("active") else "inactive")


def _status(ctx, name: str, st: str) -> None:
    info = ctx.world.get("systemd", {}).get("units", {}).get(name) or {}
    loaded = has_unit_file(ctx.root, name)
    ctx.out("%s %s" % ("\u00d7" if st == "failed" else "\u25cb", name))
    ctx.out("     Loaded: %s" % ("loaded (%s/%s; %s)" % (UNIT_DIR, name, "enabled" if is_enabled(ctx.root, name) else "disabled")
                                 if loaded else "not-found (Reason: Unit %s not found.)" % name))
    if st == "failed":
        ctx.out("     Active: failed (Result: exit-code)")
        ctx.out("    Process: ExecStart=%s (code=exited, status=%d/FAILURE)" % (info.get("exec", "?"), info.get("status", 1)))
    else:
        ctx.out("     Active: %s" % ("active" if st == "active" else "inactive (dead)"))


def _reach_target(ctx) -> None:
    """The boot reaches multi-user.target: start what it wants, once per boot."""
    pending = []

    def fn(world):
        sd = world.setdefault("systemd", {})
        if sd.get("reached"):
            return False
        sd["reached"] = True
        pending.extend(sd.pop("pending", []))
    ctx.mutate(fn)
    for n in pending:
        if has_unit_file(ctx.root, n) and is_enabled(ctx.root, n):
            start(ctx, n)  # a wanted unit that fails does not fail the target


def start(ctx, name: str) -> int:
    """Run a oneshot unit's ExecStart= lines in order, to their end; returns the exit status."""
    import subprocess

    root = ctx.root
    unit = read(root, name)
    service = unit.get("Service", {})
    kind = (service.get("Type") or ["simple"])[-1]
    if kind != "oneshot":
        return ctx.unsupported("only Type=oneshot unit files are")
    env = {"PATH": W.bin_dir(root), "GPUWIZARD_SIM_ROOT": str(root), "LANG": "C.UTF-8",
           "INVOCATION_ID": W.new_uuid().replace("-", "")}
    env.update(environment(unit))
    jdir = os.path.join(W.sim_dir(root), JOURNAL_DIR)
    os.makedirs(jdir, exist_ok=True)
    status = 0
    shown = ""

    def mark(active, result=None, code=None):
        def fn(world):
            rt = _runtime(world)
            st = rt.setdefault(name, {"runs": 0})
            st["active"] = active
            if active:
                st["runs"] = st.get("runs", 0) + 1
                st.pop("result", None)
            if result is not None:
                st["result"] = result
                st["status"] = code
                st["exec"] = shown
        ctx.mutate(fn)

    mark(True)
    with open(os.path.join(jdir, name + ".log"), "a", encoding="utf-8") as journal:
        for line in service.get("ExecStart", []):
            argv = split_command(line)
            shown = " ".join(argv)
            if not argv or not os.path.isabs(argv[0]):
                journal.write("%s: Executable path is not absolute: %s\n" % (name, argv[0] if argv else ""))
                status = 203
                break
            journal.write("Starting %s: %s\n" % (name, shown))
            journal.flush()
            try:
                proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=journal,
                                      stderr=subprocess.STDOUT, cwd=str(root))
                status = proc.returncode
            except OSError as exc:
                journal.write("%s: Failed to execute %s: %s\n" % (name, argv[0], exc.strerror or exc))
                status = 203
            if status != 0:
                break
        journal.write("%s: %s (status=%d)\n" % (name, "Finished" if status == 0 else "Main process exited, code=exited", status))
    mark(False, "success" if status == 0 else "exit-code", status)
    return status
