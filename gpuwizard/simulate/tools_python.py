"""Simulated Python tools: the distribution's ``python3`` (``-m venv DIR``, ``--version``) and, inside a
venv made by it, ``python``/``python3`` (``-c "import torch"``, ``-c <the CUDA step's PyTorch check>``,
``-m pip``) and ``pip``/``pip3`` (``install torch``, ``--version``). What the CUDA step's
``pytorch_check`` runs, and nothing else: every other code or flag is "not simulated" (rc 2).

Imported lazily (``TOOLS["pip"] = "gpuwizard.simulate.tools_python:pip"``); built-in modules only.

World state: ``world["python_venvs"] = {"/host/path/of/venv": {"python": "3.10.12", "pip": "22.0.2",
"packages": {name: version}}}``. ``python3 -m venv`` makes the directory (pyvenv.cfg, lib/, include/) and
records it; world.sync_host_files writes its bin/{python,python3,pip,pip3}, the same tool scripts as the
sandbox's bin dir (world.tool_script). A tool finds its venv from its own path (``ctx.prog``).

Outputs are modelled on real ones (sources):
* ``pip install torch``: a public notebook's ``pip install -r requirements.txt`` log (pip 22-style lines,
  Python 3.10, late 2024): ``Collecting torch``, ``Downloading torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl
  (906.4 MB)``, the ``━━━…━ 906.4/906.4 MB … eta 0:00:00`` bar (shown for files over 512 KiB), torch's
  pinned dependencies and their wheel sizes, ``Installing collected packages: …`` and ``Successfully installed
  … torch-2.5.1 triton-3.1.0 …``; the install order is the one in a torch-2.5.x ``pip install`` log
  (cu121 wheels, same dependency set). ``Requirement already satisfied: torch in … (2.5.1)`` as pip prints it.
* PyPI's Linux x86_64 torch 2.5.1 wheel: ``torch.__version__ == "2.5.1+cu124"``, ``torch.version.cuda ==
  "12.4"`` (CUDA 12 minor-version compatibility: any driver of CUDA 12.x runs it).
* ``ModuleNotFoundError: No module named 'torch'``: CPython's traceback for ``python -c`` (``File "<string>"``).
"""
import os

from gpuwizard.simulate import world as W

TORCH_VERSION = "2.5.1"
TORCH_BUILD = "2.5.1+cu124"  # torch.__version__ of PyPI's Linux x86_64 wheel
TORCH_CUDA = "12.4"          # torch.version.cuda

# (distribution's os-release ID, VERSION_ID) -> (python3 version, the pip its ensurepip puts in a venv)
OS_PYTHON = {
    ("ubuntu", "20.04"): ("3.8.10", "20.0.2"),
    ("ubuntu", "22.04"): ("3.10.12", "22.0.2"),
    ("ubuntu", "24.04"): ("3.12.3", "24.0"),
    ("debian", "11"): ("3.9.2", "20.3.4"),
    ("debian", "12"): ("3.11.2", "23.0.1"),
}
DEFAULT_PYTHON = ("3.10.12", "22.0.2")
RHEL_PYTHON = ("3.9.18", "21.2.3")

# pip install torch on x86_64: (requirement as pip collects it, project, version, wheel ({py}: cp310...),
# size as pip prints it, progress-bar total or None (pip shows a bar for files over 512 KiB)), in the order
# pip 22 resolves them (torch, then its requirements, then theirs).
TORCH_WHEELS = (
    ("torch", "torch", "2.5.1", "torch-2.5.1-{py}-{py}-manylinux1_x86_64.whl", "906.4 MB", "906.4/906.4 MB"),
    ("filelock", "filelock", "3.16.1", "filelock-3.16.1-py3-none-any.whl", "16 kB", None),
    ("typing-extensions>=4.8.0", "typing-extensions", "4.12.2", "typing_extensions-4.12.2-py3-none-any.whl", "37 kB", None),
    ("networkx", "networkx", "3.4.2", "networkx-3.4.2-py3-none-any.whl", "1.7 MB", "1.7/1.7 MB"),
    ("jinja2", "jinja2", "3.1.4", "jinja2-3.1.4-py3-none-any.whl", "133 kB", None),
    ("fsspec", "fsspec", "2024.10.0", "fsspec-2024.10.0-py3-none-any.whl", "179 kB", None),
    ("nvidia-cuda-nvrtc-cu12==12.4.127", "nvidia-cuda-nvrtc-cu12", "12.4.127",
     "nvidia_cuda_nvrtc_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl", "24.6 MB", "24.6/24.6 MB"),
    ("nvidia-cuda-runtime-cu12==12.4.127", "nvidia-cuda-runtime-cu12", "12.4.127",
     "nvidia_cuda_runtime_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl", "883 kB", "883.7/883.7 kB"),
    ("nvidia-cuda-cupti-cu12==12.4.127", "nvidia-cuda-cupti-cu12", "12.4.127",
     "nvidia_cuda_cupti_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl", "13.8 MB", "13.8/13.8 MB"),
    ("nvidia-cudnn-cu12==9.1.0.70", "nvidia-cudnn-cu12", "9.1.0.70",
     "nvidia_cudnn_cu12-9.1.0.70-py3-none-manylinux2014_x86_64.whl", "664.8 MB", "664.8/664.8 MB"),
    ("nvidia-cublas-cu12==12.4.5.8", "nvidia-cublas-cu12", "12.4.5.8",
     "nvidia_cublas_cu12-12.4.5.8-py3-none-manylinux2014_x86_64.whl", "363.4 MB", "363.4/363.4 MB"),
    ("nvidia-cufft-cu12==11.2.1.3", "nvidia-cufft-cu12", "11.2.1.3",
     "nvidia_cufft_cu12-11.2.1.3-py3-none-manylinux2014_x86_64.whl", "211.5 MB", "211.5/211.5 MB"),
    ("nvidia-curand-cu12==10.3.5.147", "nvidia-curand-cu12", "10.3.5.147",
     "nvidia_curand_cu12-10.3.5.147-py3-none-manylinux2014_x86_64.whl", "56.3 MB", "56.3/56.3 MB"),
    ("nvidia-cusolver-cu12==11.6.1.9", "nvidia-cusolver-cu12", "11.6.1.9",
     "nvidia_cusolver_cu12-11.6.1.9-py3-none-manylinux2014_x86_64.whl", "127.9 MB", "127.9/127.9 MB"),
    ("nvidia-cusparse-cu12==12.3.1.170", "nvidia-cusparse-cu12", "12.3.1.170",
     "nvidia_cusparse_cu12-12.3.1.170-py3-none-manylinux2014_x86_64.whl", "207.5 MB", "207.5/207.5 MB"),
    ("nvidia-nccl-cu12==2.21.5", "nvidia-nccl-cu12", "2.21.5",
     "nvidia_nccl_cu12-2.21.5-py3-none-manylinux2014_x86_64.whl", "188.7 MB", "188.7/188.7 MB"),
    ("nvidia-nvtx-cu12==12.4.127", "nvidia-nvtx-cu12", "12.4.127",
     "nvidia_nvtx_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl", "99 kB", None),
    ("nvidia-nvjitlink-cu12==12.4.127", "nvidia-nvjitlink-cu12", "12.4.127",
     "nvidia_nvjitlink_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl", "21.1 MB", "21.1/21.1 MB"),
    ("triton==3.1.0", "triton", "3.1.0", "triton-3.1.0-{py}-{py}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
     "209.5 MB", "209.5/209.5 MB"),
    ("sympy==1.13.1", "sympy", "1.13.1", "sympy-1.13.1-py3-none-any.whl", "6.2 MB", "6.2/6.2 MB"),
    ("mpmath<1.4,>=1.1.0", "mpmath", "1.3.0", "mpmath-1.3.0-py3-none-any.whl", "536 kB", "536.2/536.2 kB"),
    ("MarkupSafe>=2.0", "MarkupSafe", "3.0.2", "MarkupSafe-3.0.2-{py}-{py}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
     "20 kB", None),
)
TORCH_INSTALL_ORDER = (
    "mpmath", "typing-extensions", "sympy", "nvidia-nvtx-cu12", "nvidia-nvjitlink-cu12", "nvidia-nccl-cu12",
    "nvidia-curand-cu12", "nvidia-cufft-cu12", "nvidia-cuda-runtime-cu12", "nvidia-cuda-nvrtc-cu12",
    "nvidia-cuda-cupti-cu12", "nvidia-cublas-cu12", "networkx", "MarkupSafe", "fsspec", "filelock", "triton",
    "nvidia-cusparse-cu12", "nvidia-cudnn-cu12", "jinja2", "nvidia-cusolver-cu12", "torch",
)
BAR = "━" * 40

TORCH_CHECK_MARKERS = ("import torch", "torch.cuda.is_available()", "torch.cuda.device_count()",
                       "torch.cuda.get_device_properties(", "CUDA is not available to PyTorch")


# ---------------------------------------------------------------------------------------------
# helpers

def _os_release(world):
    vals = {}
    for line in world["host"].get("os_release", "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            vals[k] = v.strip().strip('"')
    return vals


def python_versions(world):
    """(python3 version, venv pip version) of the host's distribution."""
    rel = _os_release(world)
    ids = set((rel.get("ID", "") + " " + rel.get("ID_LIKE", "")).split())
    found = OS_PYTHON.get((rel.get("ID", ""), rel.get("VERSION_ID", "")))
    if found:
        return found
    if ids & {"rhel", "fedora", "centos", "rocky", "almalinux"}:
        return RHEL_PYTHON
    return DEFAULT_PYTHON


def _xy(version):
    return ".".join(version.split(".")[:2])


def _real_root(ctx):
    return os.path.realpath(ctx.root)


def _host_of(ctx, real):
    """A real path under the sandbox root -> the host path it stands for; None when outside it."""
    root = _real_root(ctx)
    real = os.path.realpath(real)
    if os.path.commonpath([root, real]) != root:
        return None
    rel = os.path.relpath(real, root)
    return "/" if rel == "." else "/" + rel


def _venv_of(ctx):
    """The venv (host path) whose bin/ holds this tool, or None for the system's python3."""
    here = os.path.dirname(os.path.abspath(ctx.prog)) if ctx.prog else W.bin_dir(ctx.root)
    if os.path.realpath(here) == os.path.realpath(W.bin_dir(ctx.root)):
        return None
    return _host_of(ctx, os.path.dirname(here)) or os.path.dirname(here)


def _venv_info(ctx, venv):
    return (ctx.world.get("python_venvs") or {}).get(venv) or {}


def _site(ctx, venv):
    info = _venv_info(ctx, venv)
    return "%s/lib/python%s/site-packages" % (venv.rstrip("/"), _xy(info.get("python") or python_versions(ctx.world)[0]))


def _write(ctx, host, data, mode=0o644):
    path = W.host_path(ctx.root, host)
    if _host_of(ctx, path) is None:  # never write outside the sandbox (symlinks included)
        ctx.err("gpuwizard-sim: refusing to write %s: outside the sandbox %s" % (path, ctx.root))
        raise SystemExit(2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)
    os.chmod(path, mode)


def _no_module(ctx, name, line=1) -> int:
    ctx.err("Traceback (most recent call last):")
    ctx.err('  File "<string>", line %d, in <module>' % line)
    ctx.err("ModuleNotFoundError: No module named '%s'" % name)
    return 1


# ---------------------------------------------------------------------------------------------
# python / python3

PY_USAGE = ("usage: %s [option] ... [-c cmd | -m mod | file | -] [arg] ...\n"
            "Try `python -h' for more information.")


def python(ctx) -> int:
    args = list(ctx.args)
    venv = _venv_of(ctx)
    prog = ctx.prog or ctx.name
    pyver = (_venv_info(ctx, venv).get("python") if venv else None) or python_versions(ctx.world)[0]
    if args in (["--version"], ["-V"]):
        ctx.out("Python " + pyver)
        return 0
    if args[:1] == ["-c"]:
        if len(args) < 2:
            return ctx.usage("Argument expected for the -c option\n" + PY_USAGE % prog)
        return _run_code(ctx, venv, args[1])
    if args[:1] == ["-m"]:
        if len(args) < 2:
            return ctx.usage("Argument expected for the -m option\n" + PY_USAGE % prog)
        if args[1] == "venv":
            return _make_venv(ctx, args[2:])
        if args[1] == "pip":
            if venv is None:  # Debian/Ubuntu's python3 has no pip until python3-pip is installed
                ctx.err("/usr/bin/%s: No module named pip" % ctx.name)
                return 1
            return _pip(ctx, venv, args[2:])
    return ctx.unsupported()


def _run_code(ctx, venv, code) -> int:
    has_torch = venv is not None and "torch" in (_venv_info(ctx, venv).get("packages") or {})
    lines = code.splitlines()
    if code.strip().rstrip(";").strip() == "import torch":
        return 0 if has_torch else _no_module(ctx, "torch")
    if all(m in code for m in TORCH_CHECK_MARKERS):
        if not has_torch:
            line = next((i + 1 for i, ln in enumerate(lines) if ln.strip().startswith("import torch")), 1)
            return _no_module(ctx, "torch", line)
        return _torch_check(ctx, venv)
    return ctx.unsupported("only `import torch` and the CUDA step's PyTorch check are")


def _visible_gpus(world):
    from gpuwizard.simulate.tools import smi_gpus

    gpus = smi_gpus(world)
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return gpus
    picked = []
    for tok in cvd.split(","):  # CUDA stops at the first entry it cannot resolve
        tok = tok.strip()
        match = [g for g in gpus if str(g["index"]) == tok or (tok.startswith("GPU-") and g["uuid"].startswith(tok))]
        if not match or match[0] in picked:
            break
        picked.append(match[0])
    return picked


def _cuda_warning(ctx, venv, text):
    ctx.err("%s/torch/cuda/__init__.py:129: UserWarning: CUDA initialization: %s (Triggered internally at "
            "../c10/cuda/CUDAFunctions.cpp:108.)" % (_site(ctx, venv), text))
    ctx.err("  return torch._C._cuda_getDeviceCount() > 0")


def _torch_check(ctx, venv) -> int:
    """What the CUDA step's TORCH_CHECK prints with PyPI's torch 2.5.1 (cu124) on this host."""
    from gpuwizard import versions as V  # lazy: packaging brings re and typing
    w = ctx.world
    ctx.out("PyTorch %s CUDA %s" % (TORCH_BUILD, TORCH_CUDA))
    drv = w.get("driver")
    # the predicate nvidia-smi uses: the module is loaded and matches the installed user-space driver
    working = bool(drv) and W.driver_loaded(w) and drv.get("loaded_version") == drv.get("version")
    if drv and W.driver_loaded(w) and not working:
        _cuda_warning(ctx, venv, "Unexpected error from cudaGetDeviceCount(). Did you run some cuda functions "
                      "before calling NumCudaDevices() that might have already set an error? Error 803: system has "
                      "unsupported display driver / cuda driver combination")
    elif working and V.parse(drv.get("cuda_version") or "0").major < 12:
        cv = V.parse(drv.get("cuda_version") or "0").release + (0,)
        _cuda_warning(ctx, venv, "The NVIDIA driver on your system is too old (found version %d). Please update "
                      "your GPU driver by downloading and installing a new version from the URL: "
                      "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to install "
                      "a PyTorch version that has been compiled with your version of the CUDA driver."
                      % (cv[0] * 1000 + cv[1] * 10))
        working = False
    gpus = _visible_gpus(w) if working else []
    if not gpus:
        ctx.err("CUDA is not available to PyTorch")  # raise SystemExit("...")
        return 1
    ctx.out("%d CUDA device(s)" % len(gpus))
    for i, g in enumerate(gpus):
        ctx.out("device %d: %s, %.2f GiB, allocated 0.00 GiB, reserved 0.00 GiB" % (i, g["name"], g["memory_mib"] / 1024))
    return 0


def _make_venv(ctx, args) -> int:
    from gpuwizard import versions as V  # lazy: packaging brings re and typing
    flags = [a for a in args if a.startswith("-")]
    dirs = [a for a in args if not a.startswith("-")]
    if flags:
        return ctx.unsupported("only `python3 -m venv DIR` is")
    if not dirs:
        return ctx.usage("usage: venv [-h] [--system-site-packages] [--symlinks | --copies] [--clear] [--upgrade]\n"
                         "            [--without-pip] [--prompt PROMPT] [--upgrade-deps]\n"
                         "            ENV_DIR [ENV_DIR ...]\n"
                         "venv: error: the following arguments are required: ENV_DIR")
    pyver, pipver = python_versions(ctx.world)
    made = []
    for d in dirs:
        real = os.path.abspath(d)
        host = _host_of(ctx, real)
        if host is None or host == "/":
            ctx.err("gpuwizard-sim: refusing to create a venv at %s: outside the sandbox %s" % (d, ctx.root))
            return 2
        if os.path.exists(real) and not os.path.isdir(real):
            ctx.err("Error: [Errno 17] File exists: '%s'" % d)
            return 1
        fresh = not os.path.isfile(os.path.join(real, "pyvenv.cfg"))
        xy = _xy(pyver)
        cfg = "home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n" % pyver
        if V.at_least(xy, "3.11"):
            cfg += "executable = /usr/bin/python%s\ncommand = /usr/bin/python3 -m venv %s\n" % (xy, host)
        _write(ctx, host + "/pyvenv.cfg", cfg)
        for sub in ("bin", "include", "lib/python%s/site-packages" % xy):
            os.makedirs(os.path.join(real, sub), exist_ok=True)
        if not os.path.lexists(os.path.join(real, "lib64")):
            os.symlink("lib", os.path.join(real, "lib64"))
        made.append((host, fresh))

    def fn(world):
        venvs = world.setdefault("python_venvs", {})
        for host, fresh in made:
            if fresh or host not in venvs:
                venvs[host] = {"python": pyver, "pip": pipver, "packages": {}}
    ctx.mutate(fn)  # the world's sync writes <venv>/bin/{python,python3,pip,pip3}
    return 0  # real `python3 -m venv` prints nothing


# ---------------------------------------------------------------------------------------------
# pip / pip3 (only inside a venv: the distributions' python3 comes without pip)

def pip(ctx) -> int:
    venv = _venv_of(ctx)
    if venv is None:
        return ctx.unsupported("only a venv's pip is")
    return _pip(ctx, venv, list(ctx.args))


def _pip(ctx, venv, args) -> int:
    from gpuwizard import versions as V  # lazy: packaging brings re and typing
    info = _venv_info(ctx, venv)
    pyver = info.get("python") or python_versions(ctx.world)[0]
    pipver = info.get("pip") or python_versions(ctx.world)[1]
    site = _site(ctx, venv)
    if args in (["--version"], ["-V"]):
        ctx.out("pip %s from %s/pip (python %s)" % (pipver, site, _xy(pyver)))
        return 0
    if args[:1] != ["install"]:
        return ctx.unsupported("only `pip install torch` is")
    reqs = [a for a in args[1:] if a != "--no-cache-dir"]
    if not reqs:
        ctx.err('ERROR: You must give at least one requirement to install (see "pip help install")')
        return 1
    if reqs != ["torch"]:
        return ctx.unsupported("only `pip install torch` is")
    if ctx.world["host"].get("arch", "x86_64") != "x86_64":
        return ctx.unsupported("only x86_64 torch wheels are")
    if not V.at_least(V.major_minor(pyver), "3.9"):  # major.minor: a 3.9 pre-release counts as 3.9
        return ctx.unsupported("torch %s needs Python >= 3.9" % TORCH_VERSION)
    packages = info.get("packages") or {}
    if "torch" in packages:
        ctx.out("Requirement already satisfied: torch in %s (%s)" % (site, packages["torch"]))
        for req, name, version, _wheel, _size, _bar in TORCH_WHEELS[1:]:
            ctx.out("Requirement already satisfied: %s in %s (from torch) (%s)" % (req, site, packages.get(name, version)))
        return 0

    py = "cp" + "".join(_xy(pyver).split("."))
    for req, _name, _version, wheel, size, bar in TORCH_WHEELS:
        ctx.out("Collecting " + req)
        ctx.out("  Downloading %s (%s)" % (wheel.format(py=py), size))
        if bar:
            ctx.out("     %s %s 48.3 MB/s eta 0:00:00" % (BAR, bar))
    ctx.out("Installing collected packages: " + ", ".join(TORCH_INSTALL_ORDER))
    new = {name: version for _req, name, version, _w, _s, _b in TORCH_WHEELS}
    for name, version in sorted(new.items()):
        dist = "%s-%s.dist-info" % (name.replace("-", "_"), version)
        _write(ctx, "%s/%s/METADATA" % (site, dist), "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version))

    def fn(world):
        entry = world.setdefault("python_venvs", {}).setdefault(venv, {"python": pyver, "pip": pipver, "packages": {}})
        entry.setdefault("packages", {}).update(new)
    ctx.mutate(fn)
    ctx.out("Successfully installed " + " ".join("%s-%s" % kv for kv in sorted(new.items())))
    return 0
