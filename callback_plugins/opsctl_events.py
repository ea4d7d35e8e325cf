"""Ansible stdout callback: one JSON object per line, for ``opsctl provision``'s live progress.

Events: ``play``, ``task``, ``result`` (host, task, status ok/changed/failed/skipped/unreachable,
message for failures only), ``stats`` (per-host counts). Results of ``no_log`` tasks are
censored by Ansible before they reach a callback, and this callback only ever prints the
``msg`` of failures, never module arguments.
"""

from __future__ import annotations

import json
import sys

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: opsctl_events
type: stdout
short_description: JSON-lines events for opsctl
description: One JSON object per line on stdout (play, task, result, stats).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "opsctl_events"

    def _emit(self, **event):
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()

    def v2_playbook_on_play_start(self, play):
        self._emit(event="play", name=play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit(event="task", name=task.get_name(), role=task._role.get_name() if task._role else None)

    def v2_playbook_on_handler_task_start(self, task):
        self._emit(event="task", name=task.get_name(), role=task._role.get_name() if task._role else None,
                   handler=True)

    def _result(self, result, status):
        res = result._result
        event = {"event": "result", "host": result._host.get_name(), "task": result._task.get_name(),
                 "status": status}
        if status in ("failed", "unreachable"):
            msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or ""
            if res.get("_ansible_no_log") or res.get("censored"):
                msg = "(output hidden: no_log task)"
            event["msg"] = str(msg)[-2000:]
        if status == "changed" and res.get("diff") and not res.get("_ansible_no_log"):
            event["diff"] = res["diff"]
        warnings = [str(w) for w in res.get("warnings") or []]
        # a warning task of its own ("Warn ...", e.g. samba's version guard); the bare name, since
        # get_name() of a role's task is "role : Warn ..."
        if status in ("ok", "changed") and str(result._task.name or "").startswith("Warn") and res.get("msg"):
            warnings.append(str(res["msg"]))
        if warnings and not res.get("_ansible_no_log"):
            event["warnings"] = [w[-2000:] for w in warnings]
        self._emit(**event)

    def v2_runner_on_ok(self, result):
        self._result(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_runner_item_on_failed(self, result):
        pass  # the loop's final result reports the failure

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for host in sorted(stats.processed):
            s = stats.summarize(host)
            hosts[host] = {k: s.get(k, 0) for k in ("ok", "changed", "failures", "unreachable", "skipped",
                                                    "rescued", "ignored")}
        self._emit(event="stats", hosts=hosts)
