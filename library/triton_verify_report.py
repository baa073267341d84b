#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: write a host's verification report (verify.json, verify.md) on the controller."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.triton_module_run import ModuleFailure, run_as_module
from ansible.module_utils.triton_report import build_report, write_report

DOCUMENTATION = r"""
---
module: triton_verify_report
short_description: Write a host's Triton verification report on the controller
description:
  - Assembles the report from the results C(playbooks/verify.yml) collects (facts, plan and
    compatibility verdict, install manifest, models release, device check, server check) and
    writes C(verify.json) and C(verify.md) into O(dest).
  - Every finding keeps its fix and the check that raised it; a check that did not run is an
    error finding, so a report never looks clean by omission.
  - "Run it on the controller (C(delegate_to: localhost))."
version_added: "1.0.0"
author: tritonfleet
options:
  dest:
    description: Directory for verify.json and verify.md (created when missing).
    type: path
    required: true
  host_name:
    description: Inventory name of the host.
    type: str
    required: true
  generated_at:
    description: Time of the verification (ISO 8601, UTC).
    type: str
    required: true
  host:
    description: C(ansible_facts.triton_host).
    type: dict
  plan:
    description: C(ansible_facts.triton_plan); null when preflight refused the host.
    type: dict
  compat_error:
    description: The compatibility check's message when it refused the host.
    type: str
  manifest:
    description: The installed release's manifest.json; null when nothing is installed.
    type: dict
  release:
    description: The active models release C({id, root, instance_groups}); null when none.
    type: dict
  device_check:
    description: The triton_device_check result (C(devices), C(findings)); null when it did not run.
    type: dict
  server_check:
    description: The triton_server_check C(report); null when it did not run.
    type: dict
  app:
    description: The M(triton_app_check) result of the host's embedded application; omitted when it declares none.
    type: dict
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; C(changed) tells whether the files would change.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the verification report is written
  triton_verify_report:
    dest: "{{ playbook_dir }}/../reports/{{ inventory_hostname }}"
    host_name: "{{ inventory_hostname }}"
    generated_at: "{{ now(utc=true).isoformat() }}"
    host: "{{ ansible_facts['triton_host'] }}"
    plan: "{{ ansible_facts['triton_plan'] }}"
    server_check: "{{ __server_check['report'] }}"
  delegate_to: localhost
"""

RETURN = r"""
verdict:
  description: C(failed) when any error finding exists, else C(passed).
  returned: always
  type: str
  sample: passed
errors:
  description: The error findings C({check, severity, code, model, message, fix}).
  returned: always
  type: list
  elements: dict
paths:
  description: File name to path of the written files.
  returned: always
  type: dict
  sample: {verify.json: reports/cpu-1/verify.json, verify.md: reports/cpu-1/verify.md}
report:
  description: The report as written to verify.json.
  returned: always
  type: dict
"""

ARGUMENT_SPEC = {
    "dest": {"type": "path", "required": True},
    "host_name": {"type": "str", "required": True},
    "generated_at": {"type": "str", "required": True},
    "host": {"type": "dict"},
    "plan": {"type": "dict"},
    "compat_error": {"type": "str"},
    "manifest": {"type": "dict"},
    "release": {"type": "dict"},
    "device_check": {"type": "dict"},
    "server_check": {"type": "dict"},
    "app": {"type": "dict"},
}


def run(params: dict, check_mode: bool) -> dict:
    """Build the report, write both files, return the verdict; also called in-process by the action plugin."""
    report = build_report(
        params["host_name"],
        params["generated_at"],
        params["host"],
        params["plan"],
        params["compat_error"],
        params["manifest"],
        params["release"],
        params["device_check"],
        params["server_check"],
        params["app"],
    )
    try:
        changed, paths = write_report(Path(params["dest"]), report, check_mode)
    except OSError as err:
        raise ModuleFailure(
            f"the verification report of {params['host_name']} cannot be written to {params['dest']}: {err}; the "
            "report needs a writable directory on the controller; fix its permissions or set triton_verify_report_dir",
            path=params["dest"],
        ) from err
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    return {"changed": changed, "verdict": report["verdict"], "errors": errors, "paths": paths, "report": report}


def main() -> None:
    run_as_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
