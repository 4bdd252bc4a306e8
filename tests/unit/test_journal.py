"""The journal's pure pieces: key diffs of JSON/TOML objects, putting keys back where they are still
as gpuwizard set them, marked blocks, and which commands install packages."""

from __future__ import annotations

import json

from gpuwizard import journal as J
from gpuwizard.undo import _revert_keys


def test_key_diff_descends_into_objects_and_says_what_was_absent():
    before = {"log-level": "warn"}
    after = {"log-level": "warn", "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    keys = J.key_diff(before, after)
    assert {J.dotted(k["key"]) for k in keys} == {"runtimes.nvidia.path", "runtimes.nvidia.args"}
    assert all(not k["had"] and k["has"] for k in keys)
    assert json.loads(json.dumps(keys)) == keys  # plain JSON, as the state file keeps it


def test_reverting_keys_keeps_what_others_added_and_drops_objects_gpuwizard_made():
    before = {"log-level": "warn", "default-runtime": "runc"}
    after = {"log-level": "warn", "default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    keys = J.key_diff(before, after)
    now = {**after, "registry-mirrors": ["https://mirror.example"]}  # another tool's key, added since
    assert _revert_keys(keys, before)(json.loads(json.dumps(now))) == {**before, "registry-mirrors": ["https://mirror.example"]}
    changed = {**after, "default-runtime": "crun"}  # someone changed one of gpuwizard's keys since: theirs stays
    assert _revert_keys(keys, before)(json.loads(json.dumps(changed)))["default-runtime"] == "crun"


def test_marked_blocks():
    marks = ("# >>> gpuwizard >>>", "# <<< gpuwizard <<<")
    block = "# >>> gpuwizard >>>\nexport PATH=/usr/local/cuda-12.6/bin${PATH:+:${PATH}}\n# <<< gpuwizard <<<\n"
    text = "alias ll='ls -l'\n" + block + "export EDITOR=vi\n"
    assert J.block_of(text, marks) == block
    assert J.replace_block(text, marks, None) == "alias ll='ls -l'\nexport EDITOR=vi\n"
    assert J.block_of("no block here\n", marks) is None


def test_which_commands_install_packages():
    assert J.package_manager(["apt-get", "install", "-y", "nvidia-driver-565"]) == "apt"
    assert J.package_manager(["apt-get", "-y", "install", "jq"]) == "apt"
    assert J.package_manager(["dpkg", "-i", "/var/cache/gpuwizard/cuda-keyring_1.1-1_all.deb"]) == "apt"
    assert J.package_manager(["ubuntu-drivers", "install"]) == "apt"
    assert J.package_manager(["dnf", "-y", "module", "install", "nvidia-driver:open-dkms"]) == "dnf"
    assert J.package_manager(["dnf", "install", "-y", "epel-release"]) == "dnf"
    assert J.package_manager(["apt-get", "update"]) is None
    assert J.package_manager(["dnf", "versionlock", "add", "*nvidia*565*"]) is None
    assert J.package_manager(["helm", "install", "hami"]) is None
