#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: write the fleet rollout report (JSON, Markdown, HTML) on the controller."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.triton_fleet_report import (
    FleetReportError,
    build_report,
    plan_batches,
    with_verify_reports,
    write_report,
)
from ansible.module_utils.triton_module_run import ModuleFailure, run_as_module

DOCUMENTATION = r"""
---
module: triton_fleet_report
short_description: Write the fleet rollout report on the controller
description:
  - Merges the per-host results C(playbooks/rollout.yml) records into one fleet report under
    O(fleet_dir)/<rollout_id>/ (fleet.json, fleet.md and a self-contained fleet.html) and points
    O(fleet_dir)/latest at it.
  - Splits O(hosts) into the batches the rollout runs (canary first) and returns the progress line
    of the last batch that ran.
  - Links each host's verify report (O(reports_dir)/<host>/verify.json and verify.md) relatively.
  - "Run it on the controller: C(delegate_to: localhost) with C(run_once: true)."
version_added: "1.0.0"
author: tritonfleet
options:
  fleet_dir:
    description: Directory that holds one sub-directory per rollout and the C(latest) link.
    type: path
    required: true
  reports_dir:
    description: Directory with the per-host verify reports (<reports_dir>/<host>/verify.json).
    type: path
    required: true
  rollout_id:
    description: Name of this rollout's report directory (a UTC timestamp in the playbook).
    type: str
    required: true
  hosts:
    description: The rollout's target hosts in inventory order, after C(--limit).
    type: list
    elements: str
    required: true
  canary:
    description: Hosts of an explicit canary group; empty when the first batch is the canary.
    type: list
    elements: str
    default: []
  batches:
    description: The rollout's batch sizes (host counts or percentage strings), as C(triton_rollout_batches).
    type: list
    elements: raw
    default: ["100%"]
  results:
    description: Host name to the result dict the host recorded (C(__triton_rollout_result)).
    type: dict
    default: {}
  batches_done:
    description: How many batches have run; 0 before the first.
    type: int
    required: true
  max_fail_percentage:
    description: The rollout's C(max_fail_percentage), used to tell whether a batch stopped the rollout.
    type: float
    default: 0
  started:
    description: When the rollout started (ISO 8601, UTC).
    type: str
  finished:
    description: When the rollout finished (ISO 8601, UTC); set by the last play.
    type: str
  final:
    description: True when the last play of the rollout writes the report.
    type: bool
    default: false
  dry_run:
    description: True when the rollout runs with C(--check); the report then shows the plan, not a change.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; C(changed) tells whether the report would change.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the fleet report covers batch 2
  triton_fleet_report:
    fleet_dir: "{{ playbook_dir }}/../reports/fleet"
    reports_dir: "{{ playbook_dir }}/../reports"
    rollout_id: "20261124T221900Z"
    hosts: "{{ ansible_play_hosts_all }}"
    batches: [1, "25%", "100%"]
    results: {cpu-01: {verdict: passed, release_before: "2.50.0", release_after: "2.51.0"}}
    batches_done: 2
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
paths:
  description: File name to path of the written report files.
  returned: always
  type: dict
  sample: {fleet.json: reports/fleet/20261124T221900Z/fleet.json}
summary:
  description: Progress line of the last batch that ran, or the plan before the first batch.
  returned: always
  type: str
  sample: "batch 2/3: hosts a,b — passed: a; rolled back: b"
status:
  description: Rollout status.
  returned: always
  type: str
  sample: in progress
  choices: [in progress, stopped, complete]
batches_total:
  description: Number of batches in the plan.
  returned: always
  type: int
  sample: 3
plan:
  description: The batches, canary first, as lists of host names.
  returned: always
  type: list
  elements: list
  sample: [[a], [b, c]]
report:
  description: The report as written to fleet.json.
  returned: always
  type: dict
"""

ARGUMENT_SPEC = {
    "fleet_dir": {"type": "path", "required": True},
    "reports_dir": {"type": "path", "required": True},
    "rollout_id": {"type": "str", "required": True},
    "hosts": {"type": "list", "elements": "str", "required": True},
    "canary": {"type": "list", "elements": "str", "default": []},
    "batches": {"type": "list", "elements": "raw", "default": ["100%"]},
    "results": {"type": "dict", "default": {}},
    "batches_done": {"type": "int", "required": True},
    "max_fail_percentage": {"type": "float", "default": 0},
    "started": {"type": "str"},
    "finished": {"type": "str"},
    "final": {"type": "bool", "default": False},
    "dry_run": {"type": "bool", "default": False},
}


def run(p: dict, check_mode: bool) -> dict:
    """Plan the batches, write the report; also called in-process by the project's action plugin."""
    fleet_dir = Path(p["fleet_dir"])
    try:
        plan = plan_batches(p["hosts"], p["batches"], p["canary"])
        results = with_verify_reports(p["results"], Path(p["reports_dir"]), fleet_dir)
        report = build_report(
            p["rollout_id"],
            plan,
            results,
            done_batches=p["batches_done"],
            max_fail_percentage=p["max_fail_percentage"],
            explicit_canary=bool(p["canary"]),
            check_mode=p["dry_run"],
            started=p["started"],
            finished=p["finished"],
            final=p["final"],
        )
        changed, paths = write_report(fleet_dir, report, check_mode=check_mode)
    except FleetReportError as exc:
        raise ModuleFailure(str(exc)) from exc
    except OSError as exc:
        raise ModuleFailure(
            f"Fleet report for rollout {p['rollout_id']} could not be written under {fleet_dir}: {exc}; "
            "the report needs a writable directory on the controller; fix the permissions or set "
            "triton_rollout_report_dir to a writable path.",
            path=str(fleet_dir),
        ) from exc
    done = report["batches"][: report["batches_done"]]
    summary = done[-1]["summary"] if done else f"rollout plan: {len(plan)} batches: {plan}"
    return {
        "changed": changed,
        "paths": paths,
        "summary": summary,
        "status": report["status"],
        "batches_total": len(plan),
        "plan": plan,
        "report": report,
    }


def main() -> None:
    run_as_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
