#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: publish a host's run status as node_exporter text-file metrics and a JSON POST."""

from __future__ import annotations

import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_status import publish

DOCUMENTATION = r"""
---
module: triton_status_publish
short_description: Publish a host's run status as text-file metrics and as a JSON POST to a collector
description:
  - Builds the status document of this run (the rollout's record of the host and its verification report) and
    keeps it in O(state_dir)/status.json (mode 0600), which also remembers when a run last passed.
  - With O(metrics_file), writes Prometheus text-format metrics for node_exporter's textfile collector
    (verdict, release served, models and ready models per instance kind, the server's GPU memory per GPU where
    NVML measured it, times of the last run and of the last successful one), replaced atomically.
  - With O(url), POSTs the status document as JSON with a C(Authorization) bearer token read from O(token_file)
    (root-owned, no access for group or others) from a detached process that retries with back-off and logs each
    attempt to O(log_file) without the token; the module returns at once, so a down or slow collector never
    delays the run.
  - Never fails the run for a publishing problem; it returns warnings instead.
version_added: "1.0.0"
author: tritonfleet
options:
  host_name:
    description: Inventory name of the host.
    type: str
    required: true
  result:
    description: The rollout's record of the host (C(__triton_rollout_result)).
    type: dict
    required: true
  verify_report:
    description: This run's verification report (C(verify.json) content); omitted when the run stopped before it.
    type: dict
  state_dir:
    description: Directory for the spooled status document and the sender's lock.
    type: path
    default: /var/lib/tritonfleet/status
  metrics_file:
    description: Metrics file in node_exporter's textfile directory (must end in C(.prom)); omitted for no metrics.
    type: path
  url:
    description: HTTP(S) endpoint the status document is POSTed to; omitted for no POST.
    type: str
  token_file:
    description: Root-only file holding the bearer token; omitted to send no C(Authorization) header.
    type: path
  ca_file:
    description: CA bundle for an O(url) whose certificate the system's CAs do not sign.
    type: path
  attempts:
    description: POST attempts before giving up.
    type: int
    default: 5
  backoff:
    description: Seconds before the second attempt; doubles for each further one.
    type: float
    default: 2.0
  timeout:
    description: Seconds one attempt may take.
    type: float
    default: 10.0
  interval:
    description: Seconds until this host's next run; readers flag a host silent for several intervals as stale.
    type: int
    default: 900
  log_file:
    description: Log of the detached sender (one line per attempt, never the token).
    type: path
    default: /var/log/tritonfleet/status.log
attributes:
  check_mode:
    support: full
    details: Nothing is written or sent; the result shows what would be published.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure this run's status is published
  triton_status_publish:
    host_name: "{{ inventory_hostname }}"
    result: "{{ __triton_rollout_result }}"
    verify_report: "{{ triton_verify_result.report | default(omit) }}"
    metrics_file: /var/lib/prometheus/node-exporter/tritonfleet.prom
    url: https://fleet.example.internal/tritonfleet/status
    token_file: /etc/tritonfleet/status-token
"""

RETURN = r"""
status:
  description: Summary of the published document.
  returned: always
  type: dict
  sample: {host: orin-1, verdict: passed, published_at: "2026-12-01T10:00:00Z",
           last_success_at: "2026-12-01T10:00:00Z", interval_s: 900}
metrics_file:
  description: Path of the metrics file, or null when metrics are off.
  returned: always
  type: str
spool:
  description: Path of the spooled status document.
  returned: always
  type: str
post:
  description: Whether a detached POST was started (C(queued), C(pid)), to which URL (without credentials), and its log.
  returned: always
  type: dict
  sample: {queued: true, pid: 4242, url: https://fleet.example.internal/tritonfleet/status,
           log_file: /var/log/tritonfleet/status.log}
"""

ARGUMENT_SPEC = {
    "host_name": {"type": "str", "required": True},
    "result": {"type": "dict", "required": True},
    "verify_report": {"type": "dict"},
    "state_dir": {"type": "path", "default": "/var/lib/tritonfleet/status"},
    "metrics_file": {"type": "path"},
    "url": {"type": "str"},
    "token_file": {"type": "path"},
    "ca_file": {"type": "path"},
    "attempts": {"type": "int", "default": 5},
    "backoff": {"type": "float", "default": 2.0},
    "timeout": {"type": "float", "default": 10.0},
    "interval": {"type": "int", "default": 900},
    "log_file": {"type": "path", "default": "/var/log/tritonfleet/status.log"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    result = publish(
        p["host_name"],
        p["result"],
        p["verify_report"],
        state_dir=Path(p["state_dir"]),
        metrics_file=Path(p["metrics_file"]) if p["metrics_file"] else None,
        url=p["url"],
        token_file=p["token_file"],
        ca_file=p["ca_file"],
        attempts=p["attempts"],
        backoff=p["backoff"],
        timeout=p["timeout"],
        interval=p["interval"],
        log_file=Path(p["log_file"]),
        check_mode=module.check_mode,
        now=time.time(),
    )
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
