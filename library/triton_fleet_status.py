#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: build the fleet report from collected per-host status documents, on the controller."""

from __future__ import annotations

import time
from pathlib import Path

from ansible.module_utils.triton_fleet_report import FleetReportError, headline, write_report
from ansible.module_utils.triton_fleet_status import (
    FleetStatusError,
    build_status_report,
    read_collected,
    write_verify_reports,
)
from ansible.module_utils.triton_module_run import ModuleFailure, run_as_module

DOCUMENTATION = r"""
---
module: triton_fleet_status
short_description: Build the fleet report from the status documents hosts published
description:
  - Reads every C(*.json) status document in O(collected_dir) (what hosts POST with M(triton_status_publish), stored
    one file per host by the collector), writes each host's verification report to O(reports_dir)/<host>/verify.json
    and verify.md, and the fleet report (fleet.json, fleet.md, fleet.html) to O(reports_dir)/fleet/<status_id>/, with
    O(reports_dir)/fleet/latest pointing at it; the same files and rows a push rollout writes.
  - Flags as stale every host whose newest document is older than O(stale_intervals) times the interval the host
    announced, and every host of O(hosts) that never reported.
  - A file that is not a status document is listed under C(problems) and skipped.
  - "Run it on the controller: C(delegate_to: localhost) or a play on localhost."
version_added: "1.0.0"
author: tritonfleet
options:
  collected_dir:
    description: Directory with one status document per host.
    type: path
    required: true
  reports_dir:
    description: Directory for the per-host verify reports and C(fleet/).
    type: path
    required: true
  status_id:
    description: Name of this report's directory under C(fleet/).
    type: str
    required: true
  stale_intervals:
    description: A host whose last report is older than this many of its own intervals is stale.
    type: int
    default: 3
  hosts:
    description: Hosts expected to report (e.g. an inventory group); those without a document are flagged.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Nothing is written; C(changed) tells whether a file would change.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the fleet status report is written
  triton_fleet_status:
    collected_dir: /srv/tritonfleet-collector/status
    reports_dir: "{{ playbook_dir }}/../reports/status"
    status_id: "{{ now(utc=true).strftime('%Y%m%dT%H%M%SZ') }}"
    hosts: "{{ groups['edge'] }}"
"""

RETURN = r"""
summary:
  description: Headline of the report (hosts, verdict counts, stale hosts).
  returned: always
  type: str
  sample: "Status 20261201T100000Z as of 2026-12-01T10:00:00Z: 2 host(s), 2 passed; 1 stale (...): orin-7"
stale_hosts:
  description: Hosts flagged stale.
  returned: always
  type: list
  elements: str
problems:
  description: Files in O(collected_dir) that are not readable status documents, with the reason.
  returned: always
  type: list
  elements: str
paths:
  description: File name to path of the written fleet report files.
  returned: always
  type: dict
report:
  description: The report as written to fleet.json.
  returned: always
  type: dict
"""

ARGUMENT_SPEC = {
    "collected_dir": {"type": "path", "required": True},
    "reports_dir": {"type": "path", "required": True},
    "status_id": {"type": "str", "required": True},
    "stale_intervals": {"type": "int", "default": 3},
    "hosts": {"type": "list", "elements": "str", "default": []},
}


def run(p: dict, check_mode: bool) -> dict:
    """Read the collected documents, write verify reports and the fleet report; also run in-process."""
    if p["stale_intervals"] < 1:
        raise ModuleFailure(
            f"stale_intervals is {p['stale_intervals']}; supported: 1 or more; "
            "set triton_fleet_status_stale_intervals to how many missed intervals make a host stale."
        )
    reports_dir = Path(p["reports_dir"])
    try:
        documents, problems = read_collected(Path(p["collected_dir"]))
        verify_changed, _ = write_verify_reports(documents, reports_dir, check_mode)
        report = build_status_report(
            p["status_id"],
            documents,
            reports_dir=reports_dir,
            fleet_dir=reports_dir / "fleet",
            now=time.time(),
            stale_intervals=p["stale_intervals"],
            expected_hosts=p["hosts"],
            problems=problems,
        )
        changed, paths = write_report(reports_dir / "fleet", report, check_mode=check_mode)
    except (FleetStatusError, FleetReportError) as exc:
        raise ModuleFailure(str(exc)) from exc
    except OSError as exc:
        raise ModuleFailure(
            f"The fleet status report could not be written under {reports_dir}: {exc}; it needs a writable "
            "directory on the controller; fix the permissions or set triton_fleet_status_report_dir.",
            path=str(reports_dir),
        ) from exc
    return {
        "changed": changed or verify_changed,
        "summary": headline(report),
        "stale_hosts": report["stale_hosts"],
        "problems": problems,
        "paths": paths,
        "report": report,
        "warnings": [f"skipped: {problem}" for problem in problems],
    }


def main() -> None:
    run_as_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
