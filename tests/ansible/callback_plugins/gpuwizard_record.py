"""A test-only Ansible callback: every task result and the play recap, as one JSON file.

ansible-core ships no JSON callback (that one lives in ansible.posix), so tests/ansible/test_role.py
enables this one beside the default stdout callback: ANSIBLE_CALLBACK_PLUGINS=<this dir>,
ANSIBLE_CALLBACKS_ENABLED=gpuwizard_record, GPUWIZARD_ANSIBLE_RECORD=<the JSON file to write>.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: gpuwizard_record
    type: aggregate
    short_description: gpuwizard's tests - task results and stats as JSON
    description: Writes every task result and the per-host stats to $GPUWIZARD_ANSIBLE_RECORD.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gpuwizard_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict] = []

    def _add(self, status: str, result) -> None:
        self.results.append({
            "host": result.host.get_name(),
            "task": result.task.name or result.task.action,  # as written, without the role's name
            "role": result.task._role.get_name() if result.task._role else None,
            "action": result.task.action,
            "status": status,
            "result": result.result,
        })

    def v2_runner_on_ok(self, result) -> None:
        self._add("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._add("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result) -> None:
        self._add("skipped", result)

    def v2_runner_on_unreachable(self, result) -> None:
        self._add("unreachable", result)

    def v2_playbook_on_stats(self, stats) -> None:
        doc = {
            "stats": {host: stats.summarize(host) for host in sorted(stats.processed)},
            "results": self.results,
        }
        with open(os.environ["GPUWIZARD_ANSIBLE_RECORD"], "w", encoding="utf-8") as f:
            json.dump(doc, f, default=str)
