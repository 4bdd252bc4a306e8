"""The simulated command-line tools.

Every script in <sandbox>/.gpuwizard-sim/bin/ runs ``main(root)`` here under ``python -S``; the tool is
chosen by the script's basename. This module imports only built-in modules (os, sys, time; fcntl and
marshal via world) so a tool starts in a few milliseconds; json is imported lazily by the handlers
that need it (``_json()``), because importing it costs more than the rest of start-up.

Adding a tool: write ``def handler(ctx) -> int`` and register it with ``@tool("name")`` (or put
``TOOLS["name"] = "some.module:function"`` to import it lazily, keeping start-up fast), then make the
tool appear in bin/ by adding a predicate to ``world.TOOL_PRESENCE`` (or list it in the world's
``extra_tools``). Use the Ctx helpers: ``ctx.args``, ``ctx.world`` (read), ``ctx.mutate(fn)`` (locked
read-modify-write + host-file resync), ``ctx.out()/ctx.err()``, ``ctx.usage()`` (usage error, rc 2),
``ctx.unsupported()`` (a real invocation the simulator does not model: usage error, rc 2, flagged in
calls.jsonl).

Failure injection happens before any handler runs: rules from the env var GPUWIZARD_SIM_FAIL (a JSON
list) first, then the world's ``failures``; each rule is
``{"match": [argv prefix words], "rc": int, "stdout": str, "stderr": str, "times": N, "sleep": s,
"passthrough": bool}``; "*" in match matches any one word; the first rule that matches and is not used
up applies; each use is counted in world["failure_uses"].
"""
import os
import sys
import time

from gpuwizard.simulate import world as W

USAGE_RC = 2
INTERNAL_RC = 70

TOOLS: dict = {}


def _json():
    import json
    return json


def tool(*names):
    def deco(fn):
        for n in names:
            TOOLS[n] = fn
        return fn
    return deco


class Ctx:
    def __init__(self, root: str, name: str, args: list, prog: str):
        self.root = root
        self.name = name
        self.args = args
        self.prog = prog
        self.argv = [name] + list(args)
        self._world: dict | None = None
        self.flags: dict = {}
        self._stdin: str | None = None

    # -- world ------------------------------------------------------------------------------
    @property
    def world(self) -> dict:
        if self._world is None:
            self._world = W.load_world(self.root)
        return self._world

    def mutate(self, fn) -> dict:
        self._world = W.mutate_world(self.root, fn)
        return self._world

    # -- io -----------------------------------------------------------------------------------
    def out(self, text: str = "", end: str = "\n") -> None:
        sys.stdout.write(text + end)
        sys.stdout.flush()

    def err(self, text: str = "", end: str = "\n") -> None:
        sys.stderr.write(text + end)
        sys.stderr.flush()

    def stdin(self) -> str:
        if self._stdin is None:
            try:
                self._stdin = sys.stdin.read()
            except (OSError, ValueError):
                self._stdin = ""
        return self._stdin

    def usage(self, message: str, rc: int = USAGE_RC) -> int:
        self.err(message.rstrip("\n"))
        return rc

    def unsupported(self, hint: str | None = None) -> int:
        """A real command line the simulator does not model (yet): says so on stderr, rc 2, and is
        flagged {"unsupported": true} in calls.jsonl. Never a silent success."""
        self.flags["unsupported"] = True
        return self.usage("gpuwizard-sim: `%s` is not simulated%s" % (" ".join(self.argv), " (%s)" % hint if hint else ""))

    # -- failure injection ------------------------------------------------------------------------
    def _rules(self):
        rules = []
        env = os.environ.get("GPUWIZARD_SIM_FAIL")
        if env:
            json = _json()
            parsed = json.loads(env)
            if isinstance(parsed, dict):
                parsed = [parsed]
            for r in parsed:
                rules.append(("env:" + json.dumps(r, sort_keys=True), r))
        for i, r in enumerate(self.world.get("failures", [])):
            rules.append(("profile:%d" % i, r))
        return rules

    def take_failure(self):
        rules = [(k, r) for k, r in self._rules() if _rule_matches(r, self.argv)]
        if not rules:
            return None
        chosen = {}

        def count(world):
            uses = world.setdefault("failure_uses", {})
            for key, rule in rules:
                times = rule.get("times")
                if times is not None and uses.get(key, 0) >= int(times):
                    continue
                uses[key] = uses.get(key, 0) + 1
                chosen["rule"] = rule
                chosen["key"] = key
                return None
            return False

        with W.lock(self.root):
            world = W.load_world(self.root)
            if count(world) is not False:
                W.save_world(self.root, world)
            self._world = world
        if "rule" in chosen:
            self.flags["injected"] = chosen["key"]
        return chosen.get("rule")


def _rule_matches(rule: dict, argv: list) -> bool:
    m = rule.get("match", [])
    if isinstance(m, str):
        m = m.split()
    if len(m) > len(argv):
        return False
    return all(w == "*" or w == a for w, a in zip(m, argv, strict=False))  # argv may run on past the pattern


def _resolve(name):
    h = TOOLS.get(name)
    if isinstance(h, str):
        mod, _, fn = h.partition(":")
        __import__(mod)
        h = getattr(sys.modules[mod], fn)
        TOOLS[name] = h
    return h


def main(root: str) -> None:
    argv = list(sys.argv)
    if argv and argv[0] == "-c":  # sh trampoline: python -S -c CODE "$0" "$@"
        argv = argv[1:]
    prog = argv[0] if argv else ""
    name = os.environ.get("GPUWIZARD_SIM_TOOL") or os.path.basename(prog)
    os.environ["GPUWIZARD_SIM_ROOT"] = str(root)  # the sandbox this script belongs to, whatever the caller's env
    ctx = Ctx(root, name, argv[1:], prog)
    rc = run(ctx)
    rec = {"argv": ctx.argv, "rc": rc}
    rec.update(ctx.flags)
    try:
        W.append_call(root, rec)
    except OSError:
        pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    os._exit(rc)


def run(ctx: Ctx) -> int:
    try:
        try:
            rule = ctx.take_failure()
        except ValueError as e:
            return ctx.usage("gpuwizard-sim: GPUWIZARD_SIM_FAIL is not valid JSON: %s" % e, INTERNAL_RC)
        if rule is not None:
            if rule.get("sleep"):
                time.sleep(float(rule["sleep"]))
            if not rule.get("passthrough"):
                if rule.get("stdout"):
                    sys.stdout.write(rule["stdout"])
                if rule.get("stderr"):
                    sys.stderr.write(rule["stderr"])
                return int(rule.get("rc", 1))
        handler = _resolve(ctx.name)
        if handler is None:
            return ctx.usage("gpuwizard-sim: no simulated tool named %r" % ctx.name, 127)
        return int(handler(ctx) or 0)
    except BrokenPipeError:
        return 141
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    except Exception:  # a simulator bug: make it loud
        import traceback
        traceback.print_exc()
        ctx.flags["internal_error"] = True
        return INTERNAL_RC


# Host-layer tools (package managers, installers, keys): gpuwizard/simulate/tools_host.py, imported
# only when one of them runs.
for _name, _fn in (("apt-get", "apt_get"), ("apt-cache", "apt_cache"), ("dpkg", "dpkg"), ("dnf", "dnf"), ("rpm", "rpm"), ("ubuntu-drivers", "ubuntu_drivers"),
                   ("curl", "curl"), ("gpg", "gpg"), ("openssl", "openssl"), ("update-initramfs", "update_initramfs"),
                   ("dracut", "dracut"), ("modprobe", "modprobe"), ("sh", "sh"), ("dkms", "dkms"),
                   ("dpkg-query", "dpkg_query"), ("rmmod", "rmmod"), ("dpkg-deb", "dpkg_deb")):
    TOOLS[_name] = "gpuwizard.simulate.tools_host:" + _fn


# =============================================================================================
# small helpers


def _kv_flag(args: list, i: int, names: tuple):
    """If args[i] is one of names (as "--x v" or "--x=v"), return (value, next index)."""
    a = args[i]
    for n in names:
        if a == n:
            if i + 1 >= len(args):
                return None, -1
            return args[i + 1], i + 2
        if a.startswith(n + "=") and n.startswith("--"):
            return a[len(n) + 1:], i + 1
        if not n.startswith("--") and a.startswith(n) and len(a) > len(n):
            return a[len(n):].lstrip("="), i + 1
    return None, i


_GO_TEMPLATE_ERR = "template parsing error: template: :1: function %r not defined"


def go_template(template: str, data) -> str:
    """Evaluate the tiny subset of Go templates the wizard uses: {{.A.B}} and {{json .A}}."""
    out = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            out.append(template[pos:])
            break
        end = template.find("}}", start)
        if end < 0:
            raise ValueError("template: :1: unclosed action")
        out.append(template[pos:start])
        expr = template[start + 2:end].strip().strip("-").strip()
        as_json = False
        if expr.startswith("json "):
            as_json = True
            expr = expr[5:].strip()
        if not expr.startswith("."):
            raise ValueError(_GO_TEMPLATE_ERR % expr.split()[0] if expr else "empty action")
        val = data
        for part in [p for p in expr.split(".") if p]:
            if isinstance(val, dict) and part in val:
                val = val[part]
            else:
                val = None
                break
        if as_json:
            out.append(_json().dumps(val, sort_keys=True, separators=(",", ":")))
        elif val is None:
            out.append("<no value>")
        elif isinstance(val, bool):
            out.append("true" if val else "false")
        elif isinstance(val, (dict, list)):
            out.append(_go_print(val))
        else:
            out.append(str(val))
        pos = end + 2
    return "".join(out)


def _go_print(val) -> str:
    if isinstance(val, dict):
        return "map[" + " ".join("%s:%s" % (k, _go_print(v)) for k, v in sorted(val.items())) + "]"
    if isinstance(val, list):
        return "[" + " ".join(_go_print(v) for v in val) + "]"
    return str(val)


def _arch_go(world) -> str:
    a = world["host"].get("arch", "x86_64")
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(a, a)


def _now_asctime(world) -> str:
    return world["host"].get("now") or time.asctime()


# =============================================================================================
# nvidia-smi

SMI_NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                 "Make sure that the latest NVIDIA driver is installed and running.\n")
SMI_USAGE = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n"


def smi_gpus(world) -> list:
    """The GPUs as the driver enumerates them: PCI bus order, with index."""
    gpus = sorted(world.get("gpus", []), key=lambda g: W.pci_sysfs_name(g["slot"]))
    out = []
    for i, g in enumerate(gpus):
        g = dict(g)
        g["index"] = i
        out.append(g)
    return out


def _onoff(v) -> str:
    return "On" if v else "Off"


def render_smi_table(world) -> str:
    drv = world["driver"]
    gpus = smi_gpus(world)
    ver = drv["version"]
    cuda = drv.get("cuda_version") or "N/A"
    # The 580 branch's table has "+" where the header rule meets the columns; the 610 branch names
    # the header's fields "KMD Version" and "CUDA UMD Version" (the real 610 tables in
    # tests/fixtures/tools/nvidia-smi/*-610-*.txt). A branch is a plain number (no version
    # comparison, so the most-called tool doesn't pay ~9 ms for packaging).
    branch = int(ver.split(".", 1)[0])
    plus_sep = branch >= 580
    lines = [_now_asctime(world) + "       "]
    lines.append("+" + "-" * 89 + "+")
    if branch >= 610:
        lines.append("| NVIDIA-SMI %-22s KMD Version: %-13s CUDA UMD Version: %-9s|" % (ver, ver, cuda))
    else:
        lines.append("| NVIDIA-SMI %-22s Driver Version: %-14s CUDA Version: %-9s|" % (ver, ver, cuda))
    lines.append(("+" if plus_sep else "|") + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+")
    lines.append("| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |")
    lines.append("| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |")
    lines.append("|                                         |                        |               MIG M. |")
    lines.append("|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|")
    for g in gpus:
        name = g["name"]
        if len(name) > 31:
            name = name[:28] + "..."
        mig = g.get("mig")
        ecc = "On" if mig == "Enabled" else g.get("ecc", "0")
        c1 = "%4d  %-31s%-3s " % (g["index"], name, _onoff(g.get("persistence")))
        c2 = "%19s %3s " % (W.nvidia_bus_id(g["slot"]), _onoff(g.get("display_active")))
        c3 = "%21s " % ecc
        lines.append("|%s|%s|%s|" % (c1, c2, c3))
        fan = g.get("fan")
        fan = "N/A" if fan is None else "%d%%" % int(fan)
        c1 = " %3s   %3s    %-2s%16s / %5s " % (fan, "%dC" % g.get("temp_c", 35), g.get("perf", "P0"),
                                                  "%dW" % g.get("power_w", 25), "%dW" % g.get("power_cap_w", 70))
        c2 = "%11s / %9s " % ("%dMiB" % g.get("memory_used_mib", 0), "%dMiB" % g["memory_mib"])
        util = "N/A" if mig == "Enabled" else "%d%%" % g.get("util_pct", 0)
        c3 = "%8s%13s " % (util, g.get("compute_mode", "Default"))
        lines.append("|%s|%s|%s|" % (c1, c2, c3))
        lines.append("|%s|%s|%21s |" % (" " * 41, " " * 24, mig or "N/A"))
        lines.append("+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+")
    lines.append(" " * 89)
    lines.append("+" + "-" * 89 + "+")
    lines.append("| %-88s|" % "Processes:")
    lines.append("|  GPU   GI   CI        PID   Type   Process name                              GPU Memory |")
    lines.append("|        ID   ID                                                               Usage      |")
    lines.append("|" + "=" * 89 + "|")
    lines.append("|  %-87s|" % "No running processes found")
    lines.append("+" + "-" * 89 + "+")
    return "\n".join(lines) + "\n"


# field -> (header unit or None, getter(gpu, world, nounits) -> str)
def _mem(key):
    def get(g, w, nounits):
        v = {"memory.total": g["memory_mib"], "memory.used": g.get("memory_used_mib", 0),
             "memory.free": g["memory_mib"] - g.get("memory_used_mib", 0)}[key]
        return str(v) if nounits else "%d MiB" % v
    return get


def _mig_mode(g, w, nounits):
    return g.get("mig") or "[N/A]"


SMI_FIELDS = {
    "index": (None, lambda g, w, n: str(g["index"])),
    "name": (None, lambda g, w, n: g["name"]),
    "uuid": (None, lambda g, w, n: g["uuid"]),
    "pci.bus_id": (None, lambda g, w, n: W.nvidia_bus_id(g["slot"])),
    # still answered by branch 610, where it is deprecated in favour of the KMD version: a 610.88
    # nvidia-smi printed its value for --query-gpu=name,driver_version,... (research note
    # "Phase 023 — Source Ledger", S-05, code-search index id 59077054591)
    "driver_version": (None, lambda g, w, n: w["driver"]["version"]),
    "count": (None, lambda g, w, n: str(len(w.get("gpus", [])))),
    "memory.total": ("MiB", _mem("memory.total")),
    "memory.used": ("MiB", _mem("memory.used")),
    "memory.free": ("MiB", _mem("memory.free")),
    "mig.mode.current": (None, _mig_mode),
    "mig.mode.pending": (None, _mig_mode),
    "compute_cap": (None, lambda g, w, n: g.get("compute_cap", "[N/A]")),
    "temperature.gpu": (None, lambda g, w, n: str(g.get("temp_c", 35))),
    "utilization.gpu": ("%", lambda g, w, n: ("[N/A]" if g.get("mig") == "Enabled" else
                                               str(g.get("util_pct", 0)) + ("" if n else " %"))),
    "power.draw": ("W", lambda g, w, n: "%.2f%s" % (g.get("power_w", 25), "" if n else " W")),
    "power.limit": ("W", lambda g, w, n: "%.2f%s" % (g.get("power_cap_w", 70), "" if n else " W")),
    "persistence_mode": (None, lambda g, w, n: "Enabled" if g.get("persistence") else "Disabled"),
    "pstate": (None, lambda g, w, n: g.get("perf", "P0")),
    "compute_mode": (None, lambda g, w, n: g.get("compute_mode", "Default")),
    "serial": (None, lambda g, w, n: g.get("serial", "[N/A]")),
    "vbios_version": (None, lambda g, w, n: g.get("vbios", "[N/A]")),
    "pci.device_id": (None, lambda g, w, n: "0x%s%s" % (_pci_of(w, g).get("device", "0000").upper(),
                                                         W.NVIDIA_VENDOR.upper())),
}
SMI_ALIASES = {"gpu_name": "name", "gpu_uuid": "uuid", "gpu_bus_id": "pci.bus_id", "pci.bus_id": "pci.bus_id",
               "enforced.power.limit": "power.limit", "gpu_serial": "serial"}


def _pci_of(world, g) -> dict:
    for d in world.get("pci", []):
        if d["slot"] == g["slot"]:
            return d
    return {}


@tool("nvidia-smi")
def nvidia_smi(ctx: Ctx) -> int:
    args = ctx.args
    mode = "table"
    query = None
    fmt = None
    ids = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-L", "--list-gpus"):
            mode = "list"
            i += 1
            continue
        v, j = _kv_flag(args, i, ("--query-gpu",))
        if j != i:
            if v is None:
                return ctx.usage(SMI_USAGE)
            query, i, mode = v, j, "query"
            continue
        v, j = _kv_flag(args, i, ("--format",))
        if j != i:
            if v is None:
                return ctx.usage(SMI_USAGE)
            fmt, i = v, j
            continue
        v, j = _kv_flag(args, i, ("--id", "-i"))
        if j != i:
            if v is None:
                return ctx.usage(SMI_USAGE)
            ids, i = v, j
            continue
        if a in ("-q", "--query", "-x", "--xml-format", "-pm", "-mig", "-r", "--gpu-reset", "topo", "nvlink", "mig"):
            return ctx.unsupported()
        return ctx.usage(SMI_USAGE)

    if mode == "query" and fmt is None:
        return ctx.usage("--format must be specified when using --query-gpu. "
                         "Please run 'nvidia-smi -h' for help.\n")
    fmt_opts = []
    if fmt is not None:
        fmt_opts = [f.strip() for f in fmt.split(",")]
        if "csv" not in fmt_opts or any(f not in ("csv", "noheader", "nounits") for f in fmt_opts):
            return ctx.usage('"%s" is not a valid format. Please run \'nvidia-smi -h\' for help.\n' % fmt)
    fields = []
    if query is not None:
        for f in query.split(","):
            f = f.strip()
            f = SMI_ALIASES.get(f, f)
            if f not in SMI_FIELDS:
                return ctx.usage('Field "%s" is not a valid field to query.\n' % f)
            fields.append(f)

    w = ctx.world
    if not W.driver_loaded(w):
        ctx.out(SMI_NO_DRIVER)
        return 9
    drv = w["driver"]
    if drv.get("loaded_version") != drv["version"]:
        ctx.out("Failed to initialize NVML: Driver/library version mismatch")
        ctx.out("NVML library version: %s" % ".".join(drv["version"].split(".")[:2]))
        return 18
    gpus = smi_gpus(w)
    if ids is not None:
        wanted = [x.strip() for x in ids.split(",") if x.strip()]
        sel = []
        for x in wanted:
            m = [g for g in gpus if str(g["index"]) == x or g["uuid"] == x or W.nvidia_bus_id(g["slot"]) == x.upper()]
            if not m:
                ctx.out("No devices were found")
                return 6
            sel += m
        gpus = sel
    if not gpus:
        ctx.out("No devices were found")
        return 6

    if mode == "list":
        for g in gpus:
            ctx.out("GPU %d: %s (UUID: %s)" % (g["index"], g["name"], g["uuid"]))
        return 0
    if mode == "query":
        nounits = "nounits" in fmt_opts
        if "noheader" not in fmt_opts:
            ctx.out(", ".join(f + (" [%s]" % SMI_FIELDS[f][0] if SMI_FIELDS[f][0] else "") for f in fields))
        for g in gpus:
            ctx.out(", ".join(SMI_FIELDS[f][1](g, w, nounits) for f in fields))
        return 0
    sys.stdout.write(render_smi_table(w))
    return 0


# =============================================================================================
# nvcc

@tool("nvcc")
def nvcc(ctx: Ctx) -> int:
    tks = ctx.world.get("cuda_toolkits", [])
    if not tks:
        return ctx.usage("nvcc: command not found", 127)
    tk = None
    # /usr/local/cuda-X.Y/bin/nvcc reports X.Y; the PATH one reports the /usr/local/cuda target.
    d = os.path.dirname(os.path.abspath(ctx.prog))
    base = os.path.basename(os.path.dirname(d))
    for t in tks:
        if base == "cuda-" + t["version"]:
            tk = t
    if tk is None:
        tk = W._latest_toolkit(tks)
    if ctx.args in (["--version"], ["-V"]):
        full = tk.get("full_version") or tk["version"] + ".0"
        year = tk.get("copyright_year", 2024)
        ctx.out("nvcc: NVIDIA (R) Cuda compiler driver")
        ctx.out("Copyright (c) 2005-%s NVIDIA Corporation" % year)
        ctx.out("Built on %s" % tk.get("built_on", "Thu_Sep_12_02:18:05_PDT_2024"))
        ctx.out("Cuda compilation tools, release %s, V%s" % (tk["version"], full))
        ctx.out("Build %s" % tk.get("build", "cuda_%s.r%s/compiler.00000000_0" % (tk["version"], tk["version"])))
        return 0
    if not ctx.args:
        return ctx.usage("nvcc fatal   : No input files specified; use option --help for more information", 1)
    return ctx.unsupported()


# =============================================================================================
# lspci

LSPCI_USAGE = """lspci: invalid option -- '%s'
Usage: lspci [<switches>]

Basic display modes:
-mm\t\tProduce machine-readable output (single -m for an obsolete format)
-t\t\tShow bus tree

Display options:
-v\t\tBe verbose (-vv or -vvv for higher verbosity)
-k\t\tShow kernel drivers handling each device
-x\t\tShow hex-dump of the standard part of the config space
-b\t\tBus-centric view (addresses and IRQ's as seen by the bus)
-D\t\tAlways show domain numbers

Resolving of device ID's to names:
-n\t\tShow numeric ID's
-nn\t\tShow both textual and numeric ID's (names & numbers)

Selection of devices:
-s [[[[<domain>]:]<bus>]:][<slot>][.[<func>]]\tShow only devices in selected slots
-d [<vendor>]:[<device>][:<class>]\t\tShow only devices with specified ID's"""


def _lspci_filter_d(spec: str, dev: dict) -> bool:
    parts = spec.split(":")
    vendor = parts[0] if parts else ""
    device = parts[1] if len(parts) > 1 else ""
    klass = parts[2] if len(parts) > 2 else ""
    if vendor and vendor.lower() != dev["vendor"]:
        return False
    if device and device.lower() != dev["device"]:
        return False
    if klass and not dev["class"].startswith(klass.lower()):
        return False
    return True


def _lspci_filter_s(spec: str, dev: dict) -> bool:
    full = W.pci_sysfs_name(dev["slot"])  # dddd:bb:dd.f
    dom, bus, rest = full.split(":")
    slotdev, func = rest.split(".")
    s = spec.lower()
    sfunc = None
    if "." in s:
        s, sfunc = s.split(".", 1)
    parts = s.split(":") if s else []
    want = {}
    if len(parts) == 3:
        want = {"dom": parts[0], "bus": parts[1], "dev": parts[2]}
    elif len(parts) == 2:
        want = {"bus": parts[0], "dev": parts[1]}
    elif len(parts) == 1:
        want = {"dev": parts[0]}
    have = {"dom": dom, "bus": bus, "dev": slotdev}
    for k, v in want.items():
        if v and int(v, 16) != int(have[k], 16):
            return False
    if sfunc and int(sfunc, 16) != int(func, 16):
        return False
    return True


@tool("lspci")
def lspci(ctx: Ctx) -> int:
    numeric = 0
    domain = False
    dfilter = None
    sfilter = None
    args = ctx.args
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-d", "-s"):
            if i + 1 >= len(args):
                return ctx.usage("lspci: option requires an argument -- '%s'\n" % a[1] + LSPCI_USAGE.split("\n", 1)[1])
            if a == "-d":
                dfilter = args[i + 1]
            else:
                sfilter = args[i + 1]
            i += 2
            continue
        if a.startswith("-") and len(a) > 1 and not a.startswith("--"):
            for ch in a[1:]:
                if ch == "n":
                    numeric += 1
                elif ch == "D":
                    domain = True
                elif ch in "vkmtxbA":
                    return ctx.unsupported("-%s" % ch)
                else:
                    return ctx.usage(LSPCI_USAGE % ch)
            i += 1
            continue
        return ctx.usage(LSPCI_USAGE % a.lstrip("-")[:1])
    devs = sorted(ctx.world.get("pci", []), key=lambda d: W.pci_sysfs_name(d["slot"]))
    for d in devs:
        if dfilter and not _lspci_filter_d(dfilter, d):
            continue
        if sfilter and not _lspci_filter_s(sfilter, d):
            continue
        slot = W.pci_sysfs_name(d["slot"]) if domain else d["slot"].lower()
        rev = " (rev %s)" % d["rev"] if d.get("rev") else ""
        # (prog-if NN [...]) only appears with -v, which is not simulated
        if numeric == 1:
            ctx.out("%s %s: %s:%s%s" % (slot, d["class"], d["vendor"], d["device"], rev))
        elif numeric >= 2:
            dev_name = d.get("device_name") or "Device"
            ctx.out("%s %s [%s]: %s %s [%s:%s]%s" % (slot, d["class_name"], d["class"], d["vendor_name"],
                                                   dev_name, d["vendor"], d["device"], rev))
        else:
            dev_name = d.get("device_name") or "Device %s" % d["device"]
            ctx.out("%s %s: %s %s%s" % (slot, d["class_name"], d["vendor_name"], dev_name, rev))
    return 0


# =============================================================================================
# uname

UNAME_ORDER = "snrvmpio"


@tool("uname")
def uname(ctx: Ctx) -> int:
    h = ctx.world["host"]
    vals = {
        "s": "Linux", "n": h["hostname"], "r": h["kernel"], "v": h.get("kernel_build", "#1 SMP"),
        "m": h["arch"], "p": h.get("processor", h["arch"]), "i": h.get("hardware_platform", h["arch"]),
        "o": "GNU/Linux",
    }
    longs = {"--kernel-name": "s", "--nodename": "n", "--kernel-release": "r", "--kernel-version": "v",
             "--machine": "m", "--processor": "p", "--hardware-platform": "i", "--operating-system": "o"}
    want = set()
    all_ = False
    for a in ctx.args:
        if a == "--all":
            all_ = True
        elif a in longs:
            want.add(longs[a])
        elif a.startswith("-") and not a.startswith("--") and len(a) > 1:
            for ch in a[1:]:
                if ch == "a":
                    all_ = True
                elif ch in UNAME_ORDER:
                    want.add(ch)
                else:
                    return ctx.usage("uname: invalid option -- '%s'\nTry 'uname --help' for more information." % ch)
        elif a.startswith("--"):
            return ctx.usage("uname: unrecognized option '%s'\nTry 'uname --help' for more information." % a)
        else:
            return ctx.usage("uname: extra operand '%s'\nTry 'uname --help' for more information." % a)
    if all_:
        # -a omits -p and -i when they are "unknown"
        want |= {c for c in UNAME_ORDER if not (c in "pi" and vals[c] == "unknown")}
    if not want:
        want = {"s"}
    ctx.out(" ".join(vals[c] for c in UNAME_ORDER if c in want))
    return 0


# =============================================================================================
# mokutil

@tool("mokutil")
def mokutil(ctx: Ctx) -> int:
    h = ctx.world["host"]
    if ctx.args == ["--sb-state"]:
        if not h.get("efi"):
            # a real mokutil without EFI exits 1 (../shared/upstream/debian-12/captures/mokutil-sb-state.txt)
            ctx.err("EFI variables are not supported on this system")
            return 1
        ctx.out("SecureBoot enabled" if h.get("secure_boot") else "SecureBoot disabled")
        return 0
    if ctx.args and ctx.args[0] in ("--import", "--test-key", "--list-new"):
        from gpuwizard.simulate import tools_host
        return tools_host.mokutil_more(ctx)
    known = ("--list-enrolled", "--import", "--list-new", "--delete", "--disable-validation",
             "--enable-validation", "--test-key", "--revoke-import", "--password", "--reset")
    if ctx.args and ctx.args[0] in known:
        return ctx.unsupported()
    return ctx.usage("Usage:\n  mokutil [OPTIONS]\n\nHelp Options:\n  -h, --help\t\t\t\tShow help options\n\n"
                     "Application Options:\n  --list-enrolled\t\t\tList the enrolled keys\n"
                     "  --sb-state\t\t\t\tShow SecureBoot State")


# =============================================================================================
# reboot / shutdown

def _do_reboot(ctx: Ctx) -> int:
    root = ctx.root

    def fn(world):
        W.boot(root, world)
    ctx.mutate(fn)
    return 0


@tool("reboot")
def reboot(ctx: Ctx) -> int:
    for a in ctx.args:
        if a not in ("-f", "--force", "now", "--no-wall"):
            return ctx.usage("reboot: unrecognized option '%s'" % a)
    return _do_reboot(ctx)


@tool("shutdown")
def shutdown(ctx: Ctx) -> int:
    args = ctx.args
    if args and args[0] in ("-r", "--reboot") and all(a == "now" or a.startswith("+") for a in args[1:]):
        return _do_reboot(ctx)
    return ctx.unsupported("only `shutdown -r now` is")


# =============================================================================================
# systemctl

def _unit(name: str) -> str:
    return name[:-8] if name.endswith(".service") else name


@tool("systemctl")
def systemctl(ctx: Ctx) -> int:
    args = [a for a in ctx.args if a not in ("--no-pager", "--no-block", "--system")]
    quiet = False
    if "--quiet" in args or "-q" in args:
        quiet = True
        args = [a for a in args if a not in ("--quiet", "-q")]
    now = False
    if "--now" in args:
        now = True
        args = [a for a in args if a != "--now"]
    if not args:
        return ctx.unsupported()
    verb, units = args[0], args[1:]
    for a in args:
        if a.startswith("-"):
            return ctx.usage("systemctl: unrecognized option '%s'" % a)
    w = ctx.world
    if w["host"].get("init", "systemd") != "systemd":  # PID 1 is not systemd: nothing to talk to
        ctx.err("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
                "Failed to connect to bus: Host is down")
        return 1
    if verb == "daemon-reload":
        return 0 if not units else ctx.usage("Too many arguments.")
    if verb in ("is-active", "is-enabled", "is-failed", "status", "start", "stop", "restart", "enable",
                "disable", "reload", "try-restart"):
        if not units:
            return ctx.usage("Too few arguments.")
    else:
        return ctx.usage('Unknown command verb %s.' % verb)

    if all(W.service(w, u) is None for u in units):
        # unit files in /etc/systemd/system (the wizard's gpuwizard-resume.service) and the boot's
        # multi-user.target: gpuwizard/simulate/units.py
        from gpuwizard.simulate import units as U
        if all(U.known(ctx.root, w, u) for u in units):
            return U.systemctl(ctx, verb, units, quiet)
    if verb in ("is-active", "is-failed"):
        from gpuwizard.simulate.units import state_answer

        def state(s):
            return "active" if s and s.get("active") else ("failed" if s and s.get("failed") else "inactive")
        return state_answer(ctx, verb, [state(W.service(w, u)) for u in units], quiet)
    if verb == "is-enabled":
        rc = 0
        for u in units:
            s = W.service(w, u)
            if s is None:
                ctx.err("Failed to get unit file state for %s.service: No such file or directory" % _unit(u))
                return 1
            if not quiet:
                ctx.out("enabled" if s.get("enabled") else "disabled")
            if not s.get("enabled"):
                rc = 1
        return rc
    if verb == "status":
        rc = 0
        for u in units:
            s = W.service(w, u)
            if s is None:
                ctx.err("Unit %s.service could not be found." % _unit(u))
                return 4
            active = s.get("active")
            ctx.out("%s %s.service - %s" % ("\u25cf" if active else "\u25cb", _unit(u), s.get("description", _unit(u))))
            ctx.out("     Loaded: loaded (/lib/systemd/system/%s.service; %s; vendor preset: enabled)"
                    % (_unit(u), "enabled" if s.get("enabled") else "disabled"))
            ctx.out("     Active: %s" % ("active (running)" if active else "inactive (dead)"))
            if not active:
                rc = 3
        return rc

    missing = [u for u in units if W.service(w, u) is None]
    if missing:
        ing = {"start": "start", "stop": "stop", "restart": "restart", "reload": "reload",
               "try-restart": "try-restart", "enable": "enable", "disable": "disable"}[verb]
        if verb in ("enable", "disable"):
            ctx.err("Failed to %s unit: Unit file %s.service does not exist." % (ing, _unit(missing[0])))
            return 1
        ctx.err("Failed to %s %s.service: Unit %s.service not found." % (ing, _unit(missing[0]), _unit(missing[0])))
        return 5

    root = ctx.root
    errors = []

    def fn(world):
        for u in units:
            name = _unit(u)
            s = world["services"][name]
            if verb in ("enable", "disable"):
                s["enabled"] = verb == "enable"
                if not now:
                    continue
            if verb == "stop" or (verb == "disable" and now):
                s["active"] = False
                continue
            if verb == "try-restart" and not s.get("active"):
                continue
            # start / restart / reload / enable --now
            s["active"] = True
            s.pop("failed", None)
            if name == "docker" and world.get("docker") is not None:
                err = W.docker_reload(root, world)
                if err:
                    s["failed"] = True
                    errors.append((name, err))
            if name == "docker":
                c = world["services"].get("containerd")
                if c is not None and not c.get("active"):
                    c["active"] = True
    ctx.mutate(fn)
    if errors:
        name = errors[0][0]
        ctx.err('Job for %s.service failed because the control process exited with error code.\n'
                'See "systemctl status %s.service" and "journalctl -xeu %s.service" for details.'
                % (name, name, name))
        return 1
    return 0


# =============================================================================================
# sudo: run the target simulated tool (we are already "root" in the sandbox)

@tool("sudo")
def sudo(ctx: Ctx) -> int:
    args = list(ctx.args)
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a == "--":
            break
        if a in ("-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"):
            if args:
                args.pop(0)
    if not args:
        return ctx.usage("usage: sudo -h | -K | -k | -V\nusage: sudo [-AbEHknPS] [-u user] command [arg ...]")
    target = args[0]
    path = target if "/" in target else os.path.join(W.bin_dir(ctx.root), target)
    if not os.path.isfile(path):
        ctx.err("sudo: %s: command not found" % target)
        return 1
    ctx.flags["exec"] = True
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(path, [path] + args[1:])  # never returns (an OSError if it fails)


# =============================================================================================
# docker / containerd

DOCKER_DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


def _docker_runtimes(world) -> dict:
    cfg = (world.get("docker") or {}).get("loaded_config") or {}
    rts = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
    for name, rt in (cfg.get("runtimes") or {}).items():
        if isinstance(rt, dict):
            entry = {"path": rt.get("path", "")}
            if rt.get("args") or rt.get("runtimeArgs"):
                entry["runtimeArgs"] = rt.get("args") or rt.get("runtimeArgs")
            rts[name] = entry
    return rts


def _docker_data(world):
    d = world["docker"]
    arch = _arch_go(world)
    client = {"Version": d["version"], "ApiVersion": d.get("api_version", "1.43"),
              "DefaultAPIVersion": d.get("api_version", "1.43"), "GitCommit": d.get("build", ""),
              "GoVersion": d.get("go_version", "go1.22.2"), "Os": "linux", "Arch": arch,
              "BuildTime": d.get("built", "Mon Apr  1 12:00:00 2024"), "Context": "default"}
    server = None
    if W.service_active(world, "docker"):
        c = world.get("containerd") or {}
        server = {"Version": d["version"], "ApiVersion": d.get("api_version", "1.43"),
                  "MinAPIVersion": "1.12", "GitCommit": d.get("build", ""),
                  "GoVersion": d.get("go_version", "go1.22.2"), "Os": "linux", "Arch": arch,
                  "KernelVersion": world["host"]["kernel"], "BuildTime": d.get("built", "Mon Apr  1 12:00:00 2024"),
                  "Components": [{"Name": "Engine", "Version": d["version"]},
                                 {"Name": "containerd", "Version": c.get("version", "")},
                                 {"Name": "runc", "Version": d.get("runc_version", "1.1.12")}]}
    return {"Client": client, "Server": server}


def _docker_info_data(world) -> dict:
    d = world["docker"]
    cfg = d.get("loaded_config") or {}
    h = world["host"]
    pretty = "Linux"
    for line in h.get("os_release", "").splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip('"')
    return {
        "ID": d.get("id", "6f1c1c2e-5c1b-4b7e-9c6e-2a4c7f0e1d3a"),
        "Containers": len(_kind_nodes_running(world)), "ContainersRunning": len(_kind_nodes_running(world)),
        "ServerVersion": d["version"], "Driver": cfg.get("storage-driver", "overlay2"),
        "CgroupDriver": "systemd", "CgroupVersion": "2",
        "Runtimes": _docker_runtimes(world), "DefaultRuntime": cfg.get("default-runtime", "runc"),
        "KernelVersion": h["kernel"], "OperatingSystem": pretty, "OSType": "linux",
        "Architecture": h["arch"], "NCPU": h.get("cpus", 4), "MemTotal": h.get("memory_kib", 16000000) * 1024,
        "Name": h["hostname"], "DockerRootDir": "/var/lib/docker",
        "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"] if (cfg.get("features") or {}).get("cdi") else [],
    }


def _docker_info_empty(world) -> dict:
    """``docker info``'s object when the daemon does not answer: every server field zero, the
    client's part filled in."""
    c = _docker_data(world)["Client"]
    doc: dict = {k: (0 if isinstance(v, int) else "" if isinstance(v, str) else None)
                 for k, v in _docker_info_data(world).items()}
    doc["ClientInfo"] = {"Debug": False, "Version": c["Version"], "DefaultAPIVersion": c["DefaultAPIVersion"],
                         "GitCommit": c["GitCommit"], "GoVersion": c["GoVersion"], "Os": c["Os"], "Arch": c["Arch"],
                         "BuildTime": c["BuildTime"], "Context": "default", "Plugins": [], "Warnings": None}
    return doc


def _kind_nodes_running(world) -> list:
    if not W.service_active(world, "docker"):
        return []
    out = []
    for c in world.get("clusters", []):
        if c.get("provider", "kind") == "kind":
            out += [n.get("name") or "%s-control-plane" % c["name"] for n in c.get("nodes", [])]
    return out


def _docker_containers(world) -> list:
    """The host's containers as ``docker ps`` lists them, newest first: the Kind nodes (running
    while their cluster runs) and the world's ``docker.containers`` ({name, image, command,
    status, ports, running})."""
    out = []
    for c in world.get("clusters", []):
        if c.get("provider", "kind") != "kind":
            continue
        running = c.get("running", True)
        for n in c.get("nodes", []):
            name = n.get("name") or "%s-control-plane" % c["name"]
            role = n.get("role", "control-plane")
            out.append({"name": name, "image": n.get("image") or "kindest/node:%s" % c.get("version", "v1.31.2"),
                        "command": "/usr/local/bin/entrypoint /sbin/init", "running": running,
                        "status": "Up 2 hours" if running else "Exited (137) 5 minutes ago",
                        "ports": "127.0.0.1:%s->6443/tcp" % c.get("api_server", ":6443").rsplit(":", 1)[-1]
                        if role == "control-plane" and running else ""})
    for k in (world.get("docker") or {}).get("containers") or []:
        running = k.get("running", True)
        out.append({"name": k["name"], "image": k.get("image", "busybox"), "command": k.get("command", "sh"),
                    "running": running, "status": k.get("status") or ("Up 3 days" if running else "Exited (0) 2 days ago"),
                    "ports": k.get("ports", "")})
    return out


def docker_ps(ctx: Ctx, fmt, extra: list) -> int:
    """``docker ps [-a] [-q] [--no-trunc] [--format TEMPLATE]``, as docker 24-28 prints it: the
    table (CONTAINER ID, IMAGE, COMMAND, CREATED, STATUS, PORTS, NAMES; COMMAND quoted and cut at
    20 characters with an ellipsis), ``-q`` the 12-character ids, ``--format`` one line a container
    with the template's fields (.ID .Image .Command .Status .Ports .Names)."""
    show_all = quiet = no_trunc = False
    for a in extra:
        if a in ("-a", "--all"):
            show_all = True
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a == "--no-trunc":
            no_trunc = True
        elif a in ("-aq", "-qa"):
            show_all = quiet = True
        elif a.startswith("--"):
            return ctx.usage("unknown flag: %s\nSee 'docker ps --help'." % a.split("=", 1)[0])
        else:
            return ctx.usage("unknown shorthand flag: %r in %s\nSee 'docker ps --help'." % (a.lstrip("-")[:1], a))
    if fmt is not None and fmt.startswith("table"):
        return ctx.unsupported("docker ps --format table ... is not simulated")
    rows = []
    for k in _docker_containers(ctx.world):
        if not (k["running"] or show_all):
            continue
        full = (_suffix_hex(k["name"]) * 2)[:64]
        cmd = '"%s"' % k["command"] if no_trunc or len(k["command"]) <= 20 else '"%s…"' % k["command"][:19]
        rows.append({"ID": full if no_trunc else full[:12], "Image": k["image"], "Command": cmd,
                     "CreatedAt": "2024-11-10 09:20:11 +0000 UTC", "RunningFor": "2 hours ago", "Status": k["status"],
                     "Ports": k["ports"], "Names": k["name"], "State": "running" if k["running"] else "exited"})
    if quiet:
        for r in rows:
            ctx.out(r["ID"])
        return 0
    if fmt is not None:
        for r in rows:
            try:
                ctx.out(go_template(fmt, r))
            except ValueError as e:
                return ctx.usage(str(e))
        return 0
    cols = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
            ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
    widths = [max([len(h)] + [len(r[f]) for r in rows]) for h, f in cols]
    ctx.out("   ".join(h.ljust(w) for (h, _), w in zip(cols[:-1], widths, strict=False)) + "   " + cols[-1][0])
    for r in rows:
        ctx.out("   ".join(r[f].ljust(w) for (_, f), w in zip(cols[:-1], widths, strict=False)) + "   " + r["Names"])
    return 0


def _suffix_hex(seed: str) -> str:
    """32 stable hex digits for a container's id (an md5 would need hashlib: sum of code points is enough)."""
    n = 0
    for ch in seed:
        n = (n * 131 + ord(ch)) % (1 << 128)
    return "%032x" % n


@tool("docker")
def docker(ctx: Ctx) -> int:
    w = ctx.world
    args = list(ctx.args)
    if args in (["--version"], ["-v"]):
        d = w["docker"]
        ctx.out("Docker version %s, build %s" % (d["version"], d.get("build", "")))
        return 0
    if not args:
        ctx.out("\nUsage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers\n\n"
                "Run 'docker COMMAND --help' for more information on a command.")
        return 0
    cmd, rest = args[0], args[1:]
    fmt = None
    i = 0
    extra = []
    while i < len(rest):
        v, j = _kv_flag(rest, i, ("--format", "-f"))
        if j != i:
            if v is None:
                return ctx.usage('flag needs an argument: --format\nSee \'docker %s --help\'.' % cmd)
            fmt, i = v, j
            continue
        extra.append(rest[i])
        i += 1
    if cmd == "version":
        if extra:
            return ctx.usage("unknown flag: %s\nSee 'docker version --help'." % extra[0])
        data = _docker_data(w)
        if fmt is not None:
            if data["Server"] is None:
                if ".Server" not in fmt:
                    try:
                        ctx.out(go_template(fmt, data))
                    except ValueError as e:
                        return ctx.usage(str(e))
                ctx.err(DOCKER_DOWN)
                return 1
            try:
                ctx.out(go_template(fmt, data))
            except ValueError as e:
                return ctx.usage(str(e))
            return 0
        c = data["Client"]
        ctx.out("Client:")
        for k, v in (("Version", c["Version"]), ("API version", c["ApiVersion"]), ("Go version", c["GoVersion"]),
                     ("Git commit", c["GitCommit"]), ("Built", c["BuildTime"]), ("OS/Arch", "linux/" + c["Arch"]),
                     ("Context", "default")):
            ctx.out(" %-18s %s" % (k + ":", v))
        s = data["Server"]
        if s is None:
            ctx.err(DOCKER_DOWN)
            return 1
        ctx.out("")
        ctx.out("Server:")
        ctx.out(" Engine:")
        for k, v in (("Version", s["Version"]), ("API version", "%s (minimum version 1.12)" % s["ApiVersion"]),
                     ("Go version", s["GoVersion"]), ("Git commit", s["GitCommit"]), ("Built", s["BuildTime"]),
                     ("OS/Arch", "linux/" + s["Arch"]), ("Experimental", "false")):
            ctx.out("  %-17s %s" % (k + ":", v))
        for comp in s["Components"][1:]:
            ctx.out(" %s:" % comp["Name"])
            ctx.out("  %-17s %s" % ("Version:", comp["Version"]))
            ctx.out("  %-17s %s" % ("GitCommit:", ""))
        return 0
    if cmd == "info":
        if extra:
            return ctx.usage("unknown flag: %s\nSee 'docker info --help'." % extra[0])
        if not W.service_active(w, "docker"):
            if fmt is None:
                ctx.out("Client:\n Version:    %s\n Context:    default\n Debug Mode: false\n\nServer:"
                        % w["docker"]["version"])
                ctx.err("ERROR: " + DOCKER_DOWN + "\nerrors pretty printing info")
            else:
                # the CLI still formats its info object, the server's fields empty, then fails
                # (a real docker 28.2.2 without a daemon: tests/fixtures/tools/docker/info-json-no-daemon-28.2.2.json)
                try:
                    ctx.out(go_template(fmt, _docker_info_empty(w)))
                except ValueError as e:
                    return ctx.usage(str(e))
                ctx.err(DOCKER_DOWN)
            return 1
        info = _docker_info_data(w)
        if fmt is not None:
            try:
                ctx.out(go_template(fmt, info))
            except ValueError as e:
                return ctx.usage(str(e))
            return 0
        ctx.out("Client:\n Version:    %s\n Context:    default\n Debug Mode: false\n" % w["docker"]["version"])
        ctx.out("Server:")
        ctx.out(" Containers: %d" % info["Containers"])
        ctx.out("  Running: %d" % info["ContainersRunning"])
        ctx.out(" Server Version: %s" % info["ServerVersion"])
        ctx.out(" Storage Driver: %s" % info["Driver"])
        ctx.out(" Cgroup Driver: systemd\n Cgroup Version: 2")
        ctx.out(" Runtimes: %s" % " ".join(sorted(info["Runtimes"])))
        ctx.out(" Default Runtime: %s" % info["DefaultRuntime"])
        ctx.out(" Kernel Version: %s" % info["KernelVersion"])
        ctx.out(" Operating System: %s" % info["OperatingSystem"])
        ctx.out(" OSType: linux\n Architecture: %s" % info["Architecture"])
        ctx.out(" CPUs: %s\n Total Memory: %.2fGiB" % (info["NCPU"], info["MemTotal"] / 1024.0 ** 3))
        ctx.out(" Name: %s" % info["Name"])
        ctx.out(" Docker Root Dir: /var/lib/docker")
        return 0
    if cmd == "ps" and W.service_active(w, "docker"):
        return docker_ps(ctx, fmt, extra)
    if cmd == "run" and W.service_active(w, "docker"):
        from gpuwizard.simulate import tools_host
        return tools_host.docker_run(ctx, rest)
    if cmd in ("ps", "run", "exec", "pull", "images", "inspect", "rm", "stop", "start", "logs", "network",
               "volume", "system", "image", "container", "compose", "buildx", "login"):
        if not W.service_active(w, "docker"):
            ctx.err(DOCKER_DOWN)
            return 1
        return ctx.unsupported()
    return ctx.usage("docker: '%s' is not a docker command.\nSee 'docker --help'" % cmd)


@tool("containerd")
def containerd(ctx: Ctx) -> int:
    c = ctx.world["containerd"]
    if ctx.args in (["--version"], ["-v"]):
        ctx.out("containerd %s %s %s" % (c.get("package", "github.com/containerd/containerd"), c["version"],
                                         c.get("revision", "")))
        return 0
    return ctx.unsupported()


# =============================================================================================
# nvidia-ctk

@tool("nvidia-ctk")
def nvidia_ctk(ctx: Ctx) -> int:
    t = ctx.world["nvidia_ctk"]
    if ctx.args in (["--version"], ["-v"], ["version"]):
        ctx.out("NVIDIA Container Toolkit CLI version %s" % t["version"])
        ctx.out("commit: %s" % t.get("commit", "5bc031544833253e3ab6a36daec376cb13a4f70d"))
        return 0
    if ctx.args[:2] == ["runtime", "configure"]:
        from gpuwizard.simulate import tools_host
        return tools_host.nvidia_ctk_runtime(ctx)
    if ctx.args and ctx.args[0] in ("runtime", "config", "cdi", "hook", "system", "info"):
        return ctx.unsupported()
    return ctx.usage('Incorrect Usage: flag provided but not defined: -%s\n\nNAME:\n   NVIDIA Container Toolkit CLI - '
                     'Tools to configure the NVIDIA Container Toolkit\n\nUSAGE:\n   NVIDIA Container Toolkit CLI '
                     '[global options] command [command options]' % (ctx.args[0].lstrip("-") if ctx.args else ""))


@tool("nvidia-container-runtime")
def nvidia_container_runtime(ctx: Ctx) -> int:
    """The binary dockerd runs for the ``nvidia`` runtime; only ``--version`` is modelled."""
    t = ctx.world["nvidia_ctk"]
    if ctx.args in (["--version"], ["-v"]):
        ctx.out("NVIDIA Container Runtime version %s" % t["version"])
        ctx.out("commit: %s" % t.get("commit", "5bc031544833253e3ab6a36daec376cb13a4f70d"))
        return 0
    return ctx.unsupported()


# =============================================================================================
# kind

# The Go release a kind release was built with, for a freshly installed one that names none (v0.33.0:
# "kind v0.33.0 go1.26.7 linux/<arch>", as real installs print it).
KIND_GO = {"v0.33.0": "go1.26.7"}


@tool("kind")
def kind(ctx: Ctx) -> int:
    k = ctx.world["kind"]
    args = ctx.args
    if args in (["version"], ["--version"]):
        if args == ["--version"]:
            ctx.out("kind version %s" % k["version"].lstrip("v"))
        else:
            go = k.get("go") or KIND_GO.get(k["version"], "go1.22.6")
            ctx.out("kind %s %s linux/%s" % (k["version"], go, _arch_go(ctx.world)))
        return 0
    if args[:2] == ["get", "clusters"] and len(args) == 2:
        w = ctx.world
        if not W.service_active(w, "docker"):
            ctx.err("ERROR: failed to list clusters: command \"docker ps -a --filter label=io.x-k8s.kind.cluster "
                    "--format '{{.Label \"io.x-k8s.kind.cluster\"}}'\" failed with error: exit status 1")
            ctx.err("Command Output: " + DOCKER_DOWN)
            return 1
        names = sorted(c["name"] for c in w.get("clusters", []) if c.get("provider", "kind") == "kind")
        if not names:
            ctx.err("No kind clusters found.")
        for n in names:
            ctx.out(n)
        return 0
    if args and args[0] in ("create", "delete", "get", "load", "export", "build"):
        return ctx.unsupported()
    return ctx.usage('ERROR: unknown command "%s" for "kind"' % (args[0] if args else ""), USAGE_RC)


# =============================================================================================
# kubectl

KUBE_REFUSED = "The connection to the server %s was refused - did you specify the right host or port?"


def _cluster_for_context(world, context):
    for c in world.get("clusters", []):
        if _context_name(c) == context:
            return c
    return None


def _context_name(c) -> str:
    return c.get("context") or ("kind-%s" % c["name"] if c.get("provider", "kind") == "kind" else c["name"])


def _cluster_reachable(world, c) -> bool:
    if c.get("provider", "kind") == "kind":
        return W.service_active(world, "docker") and c.get("running", True)
    return c.get("running", True)


def _api_hostport(c) -> str:
    s = c.get("api_server", "https://127.0.0.1:6443")
    return s.split("://", 1)[-1]


def _kube_version_info(ver: str, commit: str, build_date: str, go: str, platform: str) -> dict:
    parts = ver.lstrip("v").split(".")
    return {"major": parts[0], "minor": parts[1] if len(parts) > 1 else "0", "gitVersion": ver,
            "gitCommit": commit, "gitTreeState": "clean", "buildDate": build_date,
            "goVersion": go, "compiler": "gc", "platform": platform}


def _uid_of(seed: str) -> str:
    h = _suffix_hex(seed)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


def _host_pretty_name(world) -> str:
    for line in world["host"]["os_release"].splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def node_boot_id(world, n) -> str:
    """A node's status.nodeInfo.bootID: this host's for a node on this host (a reboot changes it),
    else the node's own (``boot_id`` of a node that is another machine, or one derived from its name)."""
    if "node_gpus" not in n:
        return str(world["host"]["boot_id"])
    return str(n.get("boot_id") or _uid_of(n["name"] + "boot"))


def _kube_node(world, c, n, idx) -> dict:
    name = n.get("name") or ("%s-control-plane" % c["name"] if idx == 0 else "%s-worker%s" % (c["name"], "" if idx == 1 else idx))
    role = n.get("role", "control-plane" if idx == 0 else "worker")
    arch = n.get("arch") or _arch_go(world)
    # an existing (external) cluster's profile gives each node's role labels and annotations as its
    # distribution sets them (k3s: control-plane/master "true"; kubeadm: control-plane "")
    external = c.get("provider", "kind") != "kind"
    labels = {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if role == "control-plane" and not external:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    labels.update(n.get("labels", {}))
    annotations = {} if external else {"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock"}
    annotations.update({"node.alpha.kubernetes.io/ttl": "0",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true"})
    annotations.update(n.get("annotations", {}))
    capacity = {"cpu": "4", "ephemeral-storage": "40901312Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                "memory": "14951736Ki", "pods": "110"}
    capacity.update(n.get("capacity", {}))
    allocatable = dict(capacity)
    allocatable.update(n.get("allocatable", {}))
    ready = n.get("ready", True)
    ts = c.get("created", "2024-11-10T09:20:11Z")
    cond = lambda t, s, reason, msg: {"lastHeartbeatTime": ts, "lastTransitionTime": ts, "message": msg,  # noqa: E731
                                      "reason": reason, "status": s, "type": t}
    ip = n.get("ip", "172.18.0.%d" % (idx + 2))
    provider = ("kind://docker/%s/%s" % (c["name"], name)) if not external else n.get("provider_id")
    cidr = n.get("pod_cidr") or "10.244.%d.0/24" % idx
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if provider:
        spec["providerID"] = provider
    if n.get("taints"):
        spec["taints"] = n["taints"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"annotations": annotations, "creationTimestamp": ts, "labels": labels, "name": name,
                     "resourceVersion": str(n.get("resource_version", 1000 + idx)),
                     "uid": n.get("uid", "6a1f9b4e-2f0d-4f5c-9d3e-%012d" % idx)},
        "spec": spec,
        "status": {
            "addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": allocatable,
            "capacity": capacity,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                dict(cond("Ready", "True" if ready else "False", "KubeletReady" if ready else "KubeletNotReady",
                          "kubelet is posting ready status" if ready else "container runtime network not ready"),
                     lastTransitionTime=c.get("booted_at") if "node_gpus" not in n and c.get("booted_at") else ts),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": arch,
                         "bootID": node_boot_id(world, dict(n, name=name)),
                         "containerRuntimeVersion": n.get("container_runtime") or c.get("container_runtime",
                                                                                        "containerd://1.7.18"),
                         "kernelVersion": n.get("kernel") or world["host"]["kernel"],
                         "kubeProxyVersion": n.get("kubelet_version") or c.get("version", "v1.31.2"),
                         "kubeletVersion": n.get("kubelet_version") or c.get("version", "v1.31.2"),
                         "machineID": "0" * 32 if not external else _suffix_hex(name + "machine")[:32],
                         "operatingSystem": "linux",
                         "osImage": n.get("os_image") or c.get("os_image") or (
                             _host_pretty_name(world) if external else "Debian GNU/Linux 12 (bookworm)"),
                         "systemUUID": "0" * 32 if not external else _uid_of(name + "system")},
        },
    }


def _kube_json_out(ctx: Ctx, items: list, single: bool = False) -> None:
    """``kubectl get ... -o json``: the object itself when one was named, else a List, shaped as
    kubectl prints it (``metadata.resourceVersion`` empty: k8s.io/cli-runtime's printer)."""
    doc = items[0] if single and items else {"apiVersion": "v1", "items": items, "kind": "List",
                                             "metadata": {"resourceVersion": ""}}
    ctx.out(_json().dumps(doc, indent=4))


def _kube_strip_globals(args):
    """Remove kubectl global flags; return (args, context or None, namespace or None, error)."""
    out = []
    context = None
    namespace = None
    i = 0
    while i < len(args):
        a = args[i]
        matched = False
        for names, key in ((("--context",), "context"), (("--kubeconfig",), "kubeconfig"),
                           (("-n", "--namespace"), "namespace"), (("--request-timeout",), "timeout")):
            v, j = _kv_flag(args, i, names) if (a in names or any(a.startswith(n + "=") for n in names)) else (None, i)
            if j != i:
                if v is None:
                    return None, None, None, "error: flag needs an argument: %s" % a
                if key == "context":
                    context = v
                elif key == "namespace":
                    namespace = v
                i = j
                matched = True
                break
        if not matched:
            out.append(a)
            i += 1
    return out, context, namespace, None


def _kube_connect(ctx: Ctx, context):
    """(cluster, error rc or None). Prints the real connection errors."""
    w = ctx.world
    ctxname = context or w.get("current_context")
    if context and _cluster_for_context(w, context) is None:
        ctx.err('error: context "%s" does not exist' % context)
        return None, 1
    c = _cluster_for_context(w, ctxname) if ctxname else None
    if c is None:
        return None, "localhost:8080"
    if not _cluster_reachable(w, c):
        return None, _api_hostport(c)
    return c, None


def _kube_refused(ctx, hostport, with_memcache: bool) -> int:
    if with_memcache:
        url = ("http://%s" if hostport.startswith("localhost") else "https://%s") % hostport
        for k in range(5):
            ctx.err('E1110 11:30:16.%06d   12345 memcache.go:265] "Unhandled Error" err="couldn\'t get current '
                    'server API group list: Get \\"%s/api?timeout=32s\\": dial tcp %s: connect: connection refused"'
                    % (123456 + k, url, hostport.replace("localhost", "127.0.0.1")))
    ctx.err(KUBE_REFUSED % hostport)
    return 1


@tool("kubectl")
def kubectl(ctx: Ctx) -> int:
    w = ctx.world
    kv = w["kubectl"]
    args, context, namespace, err = _kube_strip_globals(ctx.args)
    if err:
        return ctx.usage(err)
    if not args:
        ctx.out("kubectl controls the Kubernetes cluster manager.\n\n Find more information at: "
                "https://kubernetes.io/docs/reference/kubectl/\n\nUsage:\n  kubectl [flags] [options]")
        return 0
    cmd = args[0]
    rest = args[1:]
    if cmd == "version":
        output = None
        client_only = False
        i = 0
        while i < len(rest):
            v, j = _kv_flag(rest, i, ("-o", "--output"))
            if j != i:
                if v is None:
                    return ctx.usage("error: flag needs an argument: 'o' in -o")
                output, i = v, j
                continue
            if rest[i] in ("--client", "--client=true"):
                client_only = True
                i += 1
                continue
            return ctx.usage("error: unknown flag: %s\nSee 'kubectl version --help' for usage." % rest[i])
        if output not in (None, "json", "yaml"):
            return ctx.usage("error: --output must be 'yaml' or 'json'")
        plat = "linux/" + _arch_go(w)
        client = _kube_version_info(kv["version"], kv.get("commit", "5864a4677267e6adeae276ad85882a8714d69d9d"),
                                    kv.get("build_date", "2024-10-22T20:35:25Z"), kv.get("go", "go1.22.8"), plat)
        doc = {"clientVersion": client, "kustomizeVersion": kv.get("kustomize", "v5.4.2")}
        refused = None
        if not client_only:
            c, refused = _kube_connect(ctx, context)
            if refused == 1:
                return 1
            if c is not None:
                doc["serverVersion"] = _kube_version_info(
                    c.get("version", "v1.31.2"), c.get("commit", "5864a4677267e6adeae276ad85882a8714d69d9d"),
                    c.get("build_date", "2024-10-22T20:28:14Z"), c.get("go", "go1.22.8"), plat)
        if output == "json":
            ctx.out(_json().dumps(doc, indent=2))
        elif output == "yaml":
            ctx.out(_yaml_dump(doc).rstrip("\n"))
        else:
            ctx.out("Client Version: %s" % client["gitVersion"])
            ctx.out("Kustomize Version: %s" % doc["kustomizeVersion"])
            if "serverVersion" in doc:
                ctx.out("Server Version: %s" % doc["serverVersion"]["gitVersion"])
        if refused:
            return _kube_refused(ctx, refused, False)
        return 0
    if cmd == "config":
        sub = rest[0] if rest else ""
        if sub == "current-context" and len(rest) == 1:
            cur = w.get("current_context")
            if not cur:
                ctx.err("error: current-context is not set")
                return 1
            ctx.out(cur)
            return 0
        if sub == "get-contexts":
            names = [_context_name(c) for c in w.get("clusters", [])]
            if rest[1:] in (["-o", "name"], ["--output=name"], ["-o=name"], ["--output", "name"]):
                for n in names:
                    ctx.out(n)
                return 0
            if len(rest) == 1:
                ctx.out("CURRENT   NAME%s   CLUSTER%s   AUTHINFO%s   NAMESPACE" % ("", "", ""))
                for c in w.get("clusters", []):
                    n = _context_name(c)
                    ctx.out("%-9s %s   %s   %s" % ("*" if n == w.get("current_context") else "", n, n, n))
                return 0
            return ctx.unsupported()
        if sub == "use-context" and len(rest) == 2:
            target = rest[1]
            if _cluster_for_context(w, target) is None:
                ctx.err('error: no context exists with the name: "%s"' % target)
                return 1

            def fn(world):
                world["current_context"] = target
            ctx.mutate(fn)
            ctx.out('Switched to context "%s".' % target)
            return 0
        if sub in ("view", "set-context", "set-cluster", "set-credentials", "delete-context", "rename-context",
                   "get-clusters", "unset", "set"):
            return ctx.unsupported()
        return ctx.usage('error: unknown command "%s" for "kubectl config"' % sub, USAGE_RC)
    if cmd == "get":
        if not rest:
            return ctx.usage("You must specify the type of resource to get. Use \"kubectl api-resources\" "
                             "for a complete list of supported resources.\n\nerror: Required resource not specified.",
                             1)
        kind_ = rest[0]
        output = None
        names = []
        i = 1
        while i < len(rest):
            v, j = _kv_flag(rest, i, ("-o", "--output"))
            if j != i:
                if v is None:
                    return ctx.usage("error: flag needs an argument: 'o' in -o")
                output, i = v, j
                continue
            if rest[i].startswith("-"):
                return ctx.unsupported()
            names.append(rest[i])
            i += 1
        if kind_ not in ("nodes", "node", "no"):
            c, refused = _kube_connect(ctx, context)
            if refused == 1:
                return 1
            if refused:
                return _kube_refused(ctx, refused, True)
            return ctx.unsupported()
        if output not in (None, "json", "name", "wide"):
            return ctx.unsupported()
        c, refused = _kube_connect(ctx, context)
        if refused == 1:
            return 1
        if refused:
            return _kube_refused(ctx, refused, True)
        raws = c.get("nodes", [])
        pairs = [(raw, _kube_node(w, c, raw, i)) for i, raw in enumerate(raws)]  # (world's node, API object)
        if names:
            sel = []
            for nm in names:
                m = [p for p in pairs if p[1]["metadata"]["name"] == nm]
                if not m:
                    ctx.err('Error from server (NotFound): nodes "%s" not found' % nm)
                    return 1
                sel += m
            pairs = sel
        nodes = [n for _raw, n in pairs]
        if output == "json":
            _kube_json_out(ctx, nodes, bool(names) and len(names) == 1)
            return 0
        if output == "name":
            for node in nodes:
                ctx.out("node/" + node["metadata"]["name"])
            return 0
        if not nodes:
            ctx.err("No resources found")
            return 0
        rows = [("NAME", "STATUS", "ROLES", "AGE", "VERSION")]
        for raw, node in pairs:
            ready = node["status"]["conditions"][-1]["status"] == "True"
            roles = ",".join(sorted(k.split("/", 1)[1] for k in node["metadata"]["labels"]
                                    if k.startswith("node-role.kubernetes.io/"))) or "<none>"
            rows.append((node["metadata"]["name"], "Ready" if ready else "NotReady", roles, raw.get("age", "12m"),
                         node["status"]["nodeInfo"]["kubeletVersion"]))
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        for r in rows:
            ctx.out("   ".join(r[k].ljust(widths[k]) for k in range(4)) + "   " + r[4])
        return 0
    if cmd in ("apply", "create", "delete", "label", "annotate", "describe", "logs", "exec", "wait", "rollout",
               "cluster-info", "api-resources", "patch", "taint", "cordon", "drain", "top", "run", "auth"):
        c, refused = _kube_connect(ctx, context)
        if refused == 1:
            return 1
        if refused and cmd not in ("apply", "create"):
            return _kube_refused(ctx, refused, True)
        return ctx.unsupported()
    return ctx.usage('error: unknown command "%s" for "kubectl"\nRun \'kubectl --help\' for usage.' % cmd)


def _yaml_dump(obj, indent=0) -> str:
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, k, _yaml_dump(v, indent + 1)))
            else:
                out.append("%s%s: %s\n" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            out.append("%s- %s\n" % (pad, _yaml_scalar(v)))
    return "".join(out)


def _yaml_scalar(v) -> str:
    if isinstance(v, str):
        numeric = v.replace(".", "", 1).replace("e", "", 1).lstrip("+-").isdigit()
        if v == "" or numeric or ": " in v or v[0] in "!&*[]{}|>'\"%@`#,?-" or v in ("true", "false", "null", "on", "off", "yes", "no"):
            return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return "{}" if isinstance(v, dict) else "[]"
    return str(v)


# =============================================================================================
# helm

def _helm_unreachable(ctx, hostport) -> int:
    url = ("http://%s" if hostport.startswith("localhost") else "https://%s") % hostport
    ctx.err('Error: Kubernetes cluster unreachable: Get "%s/version": dial tcp %s: connect: connection refused'
            % (url, hostport.replace("localhost", "127.0.0.1")))
    return 1


# What a released Helm build reports about itself (`helm version`), for a freshly installed one that
# names none. v4.3.0: GitCommit bec5b06ed841fe5269972d864d5177944fd5970f, go1.27.1, KubeClientVersion v1.37,
# as real v4.3.0 installs print it; `--short` gives "v4.3.0+gbec5b06" (pkg/cmd/version.go: version+g<7 hex>).
HELM_BUILDS = {
    "v3.16.2": {"commit": "13654a52f7c70a143b1dd51416d633e1071faffb", "go": "go1.22.7"},
    "v4.3.0": {"commit": "bec5b06ed841fe5269972d864d5177944fd5970f", "go": "go1.27.1", "kube_client": "v1.37"},
}


@tool("helm")
def helm(ctx: Ctx) -> int:
    w = ctx.world
    hv = w["helm"]
    args, context, namespace, err = _kube_strip_globals(ctx.args)
    # helm spells it --kube-context
    clean = []
    i = 0
    while i < len(args):
        v, j = _kv_flag(args, i, ("--kube-context",))
        if j != i:
            context, i = v, j
            continue
        clean.append(args[i])
        i += 1
    args = clean
    if err:
        return ctx.usage("Error: " + err.replace("error: ", ""))
    if not args:
        ctx.out("The Kubernetes package manager\n\nUsage:\n  helm [command]")
        return 0
    cmd, rest = args[0], args[1:]
    known = HELM_BUILDS.get(hv["version"], {})
    commit = hv.get("commit") or known.get("commit") or "13654a52f7c70a143b1dd51416d633e1071faffb"
    if cmd == "version":
        data = {"Version": hv["version"], "GitCommit": commit, "GitTreeState": "clean",
                "GoVersion": hv.get("go") or known.get("go") or "go1.22.7"}
        # Helm 4's BuildInfo adds the client-go line it was built with (internal/version/version.go)
        kube_client = hv.get("kube_client") or known.get("kube_client")
        if kube_client is not None:
            data["KubeClientVersion"] = kube_client
        if rest == ["--short"]:
            ctx.out("%s+g%s" % (hv["version"], commit[:7]))
            return 0
        if not rest:
            ctx.out("version.BuildInfo{%s}" % ", ".join('%s:"%s"' % kv for kv in data.items()))
            return 0
        if len(rest) in (1, 2) and rest[0].startswith("--template"):
            v, j = _kv_flag(rest, 0, ("--template",))
            if v is not None and j == len(rest):
                try:
                    ctx.out(go_template(v, data), end="")
                except ValueError as e:
                    return ctx.usage("Error: " + str(e))
                return 0
        return ctx.usage("Error: unknown flag: %s" % rest[0])
    if cmd in ("list", "ls"):
        output = "table"
        all_ns = False
        i = 0
        while i < len(rest):
            v, j = _kv_flag(rest, i, ("-o", "--output"))
            if j != i:
                if v is None:
                    return ctx.usage("Error: flag needs an argument: 'o' in -o")
                output, i = v, j
                continue
            if rest[i] in ("-A", "--all-namespaces"):
                all_ns = True
                i += 1
                continue
            if rest[i] in ("-a", "--all", "-q", "--short"):
                if rest[i] in ("-q", "--short"):
                    output = "short"
                i += 1
                continue
            return ctx.usage("Error: unknown flag: %s" % rest[i])
        if output not in ("table", "json", "short", "yaml"):
            return ctx.usage('Error: invalid argument "%s" for "-o, --output" flag: invalid format type' % output)
        c, refused = _kube_connect(ctx, context)
        if refused == 1:
            return 1
        if refused:
            return _helm_unreachable(ctx, refused)
        ns = namespace or "default"
        rels = [r for r in c.get("releases", []) if all_ns or r.get("namespace", "default") == ns]
        rels.sort(key=lambda r: r["name"])
        docs = [{"name": r["name"], "namespace": r.get("namespace", "default"), "revision": str(r.get("revision", 1)),
                 "updated": r.get("updated", "2024-11-10 09:36:36.713335164 +0000 UTC"),
                 "status": r.get("status", "deployed"), "chart": r["chart"],
                 "app_version": r.get("app_version", "")} for r in rels]
        if output == "json":
            ctx.out(_json().dumps(docs, separators=(",", ":")))
        elif output == "yaml":
            ctx.out(_yaml_dump(docs).rstrip("\n") if docs else "[]")
        elif output == "short":
            for d in docs:
                ctx.out(d["name"])
        else:
            rows = [("NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION")]
            rows += [(d["name"], d["namespace"], d["revision"], d["updated"], d["status"], d["chart"],
                      d["app_version"]) for d in docs]
            widths = [max(len(r[k]) for r in rows) for k in range(7)]
            for r in rows:
                ctx.out("\t".join(r[k].ljust(widths[k]) for k in range(7)).rstrip())
        return 0
    if cmd in ("repo", "install", "upgrade", "uninstall", "status", "get", "search", "dependency", "pull",
               "template", "rollback", "history", "show"):
        return ctx.unsupported()
    return ctx.usage('Error: unknown command "%s" for "helm"\nRun \'helm --help\' for usage.' % cmd)


# Cluster-layer tools (kind create/delete, kubectl pods/labels/apply/logs, helm repo/upgrade, docker
# exec/inspect into Kind nodes, nvidia-ctk config, sysctl, install, tar): gpuwizard/simulate/
# tools_cluster.py, imported only when one of them runs; what it does not model falls through to the
# handlers above.
for _name in ("kind", "kubectl", "helm", "docker", "nvidia-ctk", "sysctl", "install", "tar"):
    TOOLS[_name] = "gpuwizard.simulate.tools_cluster:" + _name.replace("-", "_")


# python3 (`-m venv`, `--version`) and a venv's python / pip (`pip install torch`, the CUDA step's PyTorch
# check): gpuwizard/simulate/tools_python.py, imported only when one of them runs.
for _name, _fn in (("python", "python"), ("python3", "python"), ("pip", "pip"), ("pip3", "pip")):
    TOOLS[_name] = "gpuwizard.simulate.tools_python:" + _fn
