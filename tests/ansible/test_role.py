"""The Ansible collection (ansible/: gpuwizard.gpu) driven by the real ansible-core (the test extra pins it).

Every inventory host is a simulated host on this machine: `ansible_connection: local`, its own
`--simulate PROFILE --root DIR` through `gpuwizard_args`. The role installs gpuwizard from this checkout
into a venv once (the module fixture, through the role's own install tasks and the real pip module);
the hosts then share that venv, and the install task leaves it alone (a directory package is installed
only when the venv has no gpuwizard). Results come from a small recording callback
(callback_plugins/gpuwizard_record.py): every task result and the play recap's stats.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpuwizard.simulate import world as W

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"
HOST_ANSWERS = ROOT / "examples" / "host.yaml"
HOST_STEPS = {"detect", "driver", "cuda", "container"}
RUN_TASK = "Gpuwizard --answers --output json"

pytestmark = pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed (pip install -e '.[test]')")

CLUSTER_ANSWERS = """\
# the cluster layer: Kind with the host's GPU, gpu-operator, HAMi
version: 1
kind:
  cluster_name: gpu-cluster
operator: {}
hami: {}
"""


@dataclass
class Played:
    rc: int
    output: str
    stats: dict
    results: list

    def host_results(self, host: str, task: str | None = None) -> list[dict]:
        return [r for r in self.results if r["host"] == host and (task is None or r["task"].startswith(task))]

    def failure(self, host: str) -> str:
        failed = [r for r in self.host_results(host) if r["status"] == "failed"]
        assert len(failed) == 1, (host, failed, self.output)
        return str(failed[0]["result"].get("msg", ""))

    def facts(self, host: str, name: str):
        for r in reversed(self.host_results(host)):
            if r["status"] == "ok" and name in r["result"].get("ansible_facts", {}):
                return r["result"]["ansible_facts"][name]
        raise AssertionError(f"{host}: no fact {name}\n{self.output}")


class Fleet:
    """A controller set-up shared by the module: the collection on ANSIBLE_COLLECTIONS_PATH, one venv."""

    def __init__(self, base: Path):
        self.base = base
        coll = base / "collections" / "ansible_collections" / "gpuwizard"
        coll.mkdir(parents=True)
        (coll / "gpu").symlink_to(ROOT / "ansible", target_is_directory=True)
        self.venv = base / "venv"
        self.runs = 0
        self.env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(base / "collections"),
            "ANSIBLE_HOME": str(base / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(base / "ansible-home" / "tmp"),
            "ANSIBLE_REMOTE_TEMP": str(base / "ansible-home" / "remote-tmp"),
            "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "gpuwizard_record",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_FORKS": "5",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def host(self, name: str, profile: str, **extra) -> tuple[str, dict]:
        """An inventory host that is a simulated host of `profile` rooted in base/<name>/root."""
        root = self.root(name)
        hostvars = {
            "gpuwizard_args": ["--simulate", profile, "--root", str(root)],
            "gpuwizard_files_dir": str(self.base / name / "files"),
        }
        if profile == "nouveau":  # the driver step stops for a reboot: the sandbox's own, on its PATH
            hostvars["gpuwizard_reboot_command"] = ["env", f"PATH={W.bin_dir(root)}", "reboot"]
        hostvars.update(extra)
        return name, hostvars

    def root(self, name: str) -> Path:
        return self.base / name / "root"

    def prepare(self, name: str, profile: str) -> Path:
        """Make the simulated host now, through the venv's gpuwizard (read-only `doctor`), so its tools point
        at the interpreter the role's runs use."""
        root = self.root(name)
        subprocess.run([str(self.venv / "bin/gpuwizard"), "--simulate", profile, "--root", str(root), "doctor", "--output", "json"],
                       check=True, capture_output=True, text=True)
        return root

    def inventory(self, hosts: list[tuple[str, dict]], groups: dict[str, list[str]] | None = None, **allvars) -> dict:
        return {"all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "gpuwizard_package": str(ROOT),
                "gpuwizard_venv": str(self.venv),
                "gpuwizard_python": sys.executable,
                "gpuwizard_answers": str(HOST_ANSWERS),
                **allvars,
            },
            "hosts": dict(hosts),
            "children": {group: {"hosts": {h: None for h in members}} for group, members in (groups or {}).items()},
        }}

    def play(self, inventory: dict, playbook: str | Path, *args: str) -> Played:
        self.runs += 1
        run_dir = self.base / f"run{self.runs}"
        run_dir.mkdir()
        inv = run_dir / "inventory.yml"
        inv.write_text(json.dumps(inventory, indent=1))  # JSON is YAML
        record = run_dir / "record.json"
        proc = subprocess.run(
            [str(PLAYBOOK), "-i", str(inv), str(playbook), *args],
            env={**self.env, "GPUWIZARD_ANSIBLE_RECORD": str(record)},
            capture_output=True, text=True, timeout=300, cwd=run_dir,
        )
        output = proc.stdout + proc.stderr
        assert record.exists(), output
        doc = json.loads(record.read_text())
        return Played(proc.returncode, output, doc["stats"], doc["results"])

    def role_playbook(self) -> Path:
        path = self.base / "role.yml"
        if not path.exists():
            path.write_text(
                "- hosts: all\n"
                "  gather_facts: false\n"
                "  roles:\n"
                "    - gpuwizard.gpu.gpuwizard\n"
            )
        return path


def state_steps(root: Path) -> dict[str, str]:
    state = json.loads((root / "var/lib/gpuwizard/state.json").read_text())
    return {step: s["status"] for step, s in state["steps"].items()}


def sandbox_reboots(root: Path) -> list[list[str]]:
    """The `reboot` commands the simulated host has seen (its calls log)."""
    calls = Path(W.sim_dir(root)) / W.CALLS_FILE
    lines = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
    return [c["argv"] for c in map(json.loads, lines) if c["argv"][0] == "reboot"]


def host_tree(root: Path) -> dict[str, str]:
    """Every file of a simulated host outside the simulator's own bookkeeping, with its digest."""
    tree = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == W.SIM_DIR or not path.is_file():
            continue
        tree[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Fleet:
    """The collection on the controller's path and gpuwizard installed from this checkout into a fresh venv
    by the role's own install tasks (the real pip module; about 30 s on 2 cores)."""
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    install = fleet.base / "install.yml"
    install.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role:\n"
        "        name: gpuwizard.gpu.gpuwizard\n"
        "        tasks_from: install\n"
    )
    started = time.monotonic()
    played = fleet.play(fleet.inventory([fleet.host("controller", "t4-bare")]), install)
    took = time.monotonic() - started
    assert played.rc == 0, played.output
    assert played.stats["controller"]["changed"] >= 1, played.output
    pip = played.host_results("controller", "Install gpuwizard into the venv")
    assert [r["status"] for r in pip] == ["ok"] and pip[0]["result"]["changed"], played.output
    version = subprocess.run([str(fleet.venv / "bin/gpuwizard"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("gpuwizard "), version
    print(f"\nansible: gpuwizard installed into a fresh venv by the role in {took:.1f} s")
    return fleet


def test_fleet_every_host_done_then_a_second_run_changes_nothing(fleet: Fleet):
    """site.yml: the host layer on three GPU nodes (one `nouveau`: exit 3, the sandbox's reboot, resumed),
    the cluster layer once on the control host; every host ends done; the same play again: changed=0."""
    cluster = fleet.base / "cluster.yaml"
    cluster.write_text(CLUSTER_ANSWERS)
    hosts = [fleet.host("t4", "t4-bare"), fleet.host("nv", "nouveau"), fleet.host("hr", "host-ready")]
    inventory = fleet.inventory(
        hosts, groups={"gpu_nodes": ["t4", "nv", "hr"], "control": ["hr"]},
        gpuwizard_host_answers=str(HOST_ANSWERS), gpuwizard_cluster_answers=str(cluster),
    )
    site = ROOT / "ansible" / "playbooks" / "site.yml"

    first = fleet.play(inventory, site)
    assert first.rc == 0, first.output
    for name in ("t4", "nv", "hr"):
        assert first.stats[name]["failures"] == 0 and first.stats[name]["unreachable"] == 0, first.output
        steps = state_steps(fleet.root(name))
        assert HOST_STEPS <= set(steps) and set(steps.values()) == {"done"}, (name, steps)
        facts = first.facts(name, "gpuwizard_facts")
        assert facts["driver"] and facts["gpus"][0]["name"] == "Tesla T4", (name, facts)
    for name in ("t4", "nv"):  # bare hosts: the host layer changed something
        assert first.stats[name]["changed"] > 0, first.output
    # the cluster layer ran on the control host only
    assert {"kind", "operator", "hami"} <= set(state_steps(fleet.root("hr")))
    assert not {"kind", "operator", "hami"} & set(state_steps(fleet.root("t4")))
    summary = first.facts("hr", "gpuwizard_summary")
    assert summary["exit"] == 0 and summary["steps"] == {"detect": "done", "kind": "done", "operator": "done", "hami": "done"}

    # nouveau: pass 1 stopped for a reboot (exit 3), the sandbox's reboot ran, pass 2 finished
    runs = [r for r in first.host_results("nv", RUN_TASK) if r["status"] == "ok"]
    assert len(runs) == 2, first.output
    assert [r["result"]["changed"] for r in runs] == [True, True]
    reboots = [r for r in first.host_results("nv", "Reboot (gpuwizard_reboot_command)") if r["status"] == "ok"]
    assert len(reboots) == 1
    assert sandbox_reboots(fleet.root("nv")) == [["reboot"]]
    assert [r["status"] for r in first.host_results("t4", "Reboot")] == ["skipped", "skipped"]  # module, command

    second = fleet.play(inventory, site)
    assert second.rc == 0, second.output
    for name in ("t4", "nv", "hr"):
        assert second.stats[name]["changed"] == 0 and second.stats[name]["failures"] == 0, (name, second.stats, second.output)
    assert second.facts("nv", "gpuwizard_summary")["changed"] == 0
    assert not [r for r in second.results if r["task"].startswith("Reboot") and r["status"] == "ok"]
    assert sandbox_reboots(fleet.root("nv")) == [["reboot"]]

    # check mode on the done fleet: nothing planned, nothing changed, no state file touched
    states = {name: (fleet.root(name) / "var/lib/gpuwizard/state.json").read_bytes() for name in ("t4", "nv", "hr")}
    checked = fleet.play(inventory, site, "--check")
    assert checked.rc == 0, checked.output
    for name in ("t4", "nv", "hr"):
        assert checked.stats[name]["changed"] == 0 and checked.stats[name]["failures"] == 0, (name, checked.output)
        assert (fleet.root(name) / "var/lib/gpuwizard/state.json").read_bytes() == states[name]
    assert len(checked.host_results("hr", "Planned changes")) == 2  # the host layer, then the cluster layer


def test_a_failing_host_is_reported_with_its_step_message_and_log_while_the_others_finish(fleet: Fleet):
    """A host whose driver install fails (its simulated apt-get fails) fails with the step, the message,
    the output tail and the log path; a nouveau host allowed no reboot fails saying so; the other host
    ends done."""
    bad = fleet.prepare("bad", "t4-bare")
    with W.lock(bad):
        world = W.load_world(bad)
        world.setdefault("failures", []).append(
            {"match": ["apt-get", "install"], "rc": 100, "stderr": "E: Unable to fetch linux-headers: Connection timed out\n"})
        W.save_world(bad, world)
    hosts = [fleet.host("bad", "t4-bare"), fleet.host("good", "host-ready"),
             fleet.host("noreboot", "nouveau", gpuwizard_max_reboots=0)]  # exit 3 with no reboot allowed

    played = fleet.play(fleet.inventory(hosts), fleet.role_playbook())
    assert played.rc == 2, played.output  # ansible-playbook: some host failed
    assert played.stats["bad"]["failures"] == 1
    assert played.stats["good"]["failures"] == 0 and set(state_steps(fleet.root("good")).values()) == {"done"}
    msg = played.failure("bad")
    assert "step driver failed: command failed (exit 100): apt-get install" in msg, msg
    assert "output tail: E: Unable to fetch linux-headers: Connection timed out" in msg, msg
    log = msg.split("log: ", 1)[1].split(";", 1)[0]
    assert Path(log).is_file() and Path(log).is_relative_to(fleet.root("bad")), msg
    assert state_steps(fleet.root("bad"))["driver"] == "failed"
    # the failing host still reports its facts (doctor runs in the role's `always`)
    assert played.facts("bad", "gpuwizard_facts")["gpus"][0]["name"] == "Tesla T4"
    # the reboot bound: a host that still needs a reboot past gpuwizard_max_reboots fails, unrebooted
    assert "gpuwizard still needs a reboot after 0 reboot(s) (gpuwizard_max_reboots)" in played.failure("noreboot")
    assert state_steps(fleet.root("noreboot"))["driver"] == "reboot-required"
    assert sandbox_reboots(fleet.root("noreboot")) == []


def test_check_mode_plans_and_changes_nothing(fleet: Fleet):
    """--check: `gpuwizard plan` on every host; no state file, no host file changed, facts returned,
    and the pending actions reported as changes."""
    hosts = [fleet.host("ck1", "t4-bare"), fleet.host("ck2", "nouveau")]
    before = {}
    for name, hostvars in hosts:
        before[name] = host_tree(fleet.prepare(name, hostvars["gpuwizard_args"][1]))

    played = fleet.play(fleet.inventory(hosts), fleet.role_playbook(), "--check")
    assert played.rc == 0, played.output
    for name, _ in hosts:
        assert played.stats[name]["failures"] == 0
        assert not (fleet.root(name) / "var/lib/gpuwizard/state.json").exists()
        assert host_tree(fleet.root(name)) == before[name], name
        assert not played.host_results(name, RUN_TASK)
        assert played.facts(name, "gpuwizard_facts")["gpus"]
        assert not (fleet.base / name / "files").exists()  # the answer file went to a temp file, removed
    pending = {name: played.host_results(name, "Planned changes")[0]["result"] for name, _ in hosts}
    assert pending["ck1"]["changed"] and "kernel-headers" in pending["ck1"]["msg"], pending
    assert pending["ck2"]["changed"] and "blacklist-nouveau" in pending["ck2"]["msg"], pending


def test_a_malformed_answer_file_fails_the_play_before_anything_runs_anywhere(fleet: Fleet, tmp_path: Path):
    """One host's answer file is malformed: the play fails there with gpuwizard's file:line:col message
    (naming the controller's file) and no host runs gpuwizard."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndriver:\n  method: pkg\n")
    hosts = [fleet.host("m1", "t4-bare"), fleet.host("m2", "t4-bare", gpuwizard_answers=str(bad)), fleet.host("m3", "nouveau")]

    played = fleet.play(fleet.inventory(hosts), fleet.role_playbook())
    assert played.rc != 0, played.output
    assert played.stats["m2"]["failures"] == 1
    msg = played.failure("m2")
    assert f"{bad}:3:11: driver.method: expected 'package' or 'runfile' (got 'pkg')" in msg, msg
    for name in ("m1", "m2", "m3"):
        assert not played.host_results(name, RUN_TASK), played.output
        assert not (fleet.root(name) / "var/lib/gpuwizard/state.json").exists()
