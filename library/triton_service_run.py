#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: keep tritonserver running under its service manager and wait until it is ready."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_config import service_manager_for
from ansible.module_utils.triton_service_run import ensure_running

DOCUMENTATION = r"""
---
module: triton_service_run
short_description: Ensure tritonserver runs under supervisord or systemd, then wait until it is live and ready
description:
  - supervisord - starts supervisord when it is not running, reloads it after a new configuration
    (O(reload_config)), restarts the program for O(state=restarted), and starts a stopped, exited or
    FATAL program again. It talks to supervisord over its unix socket.
  - systemd - reloads units when systemd needs it, enables the unit, starts it (or restarts it for O(state=restarted)).
  - For O(state=started), a server that answers live but not ready is restarted (its model set was left
    broken, e.g. by an interrupted switch; at start the server opens HTTP only after its models loaded).
  - Then waits until C(/v2/health/live) and C(/v2/health/ready) answer 200, both within one
    O(ready_timeout); otherwise fails with the server's error lines and the last O(log_tail_lines) lines of
    O(log_file).
  - When the server was (re)started on new service files (O(launcher), O(supervisor_conf) or
    O(systemd_unit_file) with a C(.previous) copy kept by M(triton_service_config)) and does not get ready,
    the previous files are put back and the server restarted on them before the module fails; once it is
    ready on the new files, the copies are removed.
  - A server already running and ready takes one status query and two HTTP requests.
version_added: "0.1.0"
author: tritonfleet
options:
  state:
    description: C(started) keeps a running server; C(restarted) restarts it.
    type: str
    choices: [started, restarted]
    default: started
  manager:
    description:
      - Service manager; C(auto) picks systemd where systemd manages the host's services (the rule of the
        C(triton_host.service_manager) fact), supervisord elsewhere.
    type: str
    choices: [auto, systemd, supervisor]
    default: auto
  reload_config:
    description: supervisord's configuration changed; supervisord re-reads it (restarting the server).
    type: bool
    default: false
  supervisor_venv:
    description: venv of supervisord (its C(bin/supervisord) starts the daemon).
    type: path
    required: true
  supervisor_conf:
    description: Path of C(supervisord.conf).
    type: path
    required: true
  supervisor_socket:
    description: supervisord's unix socket.
    type: path
    required: true
  systemd_unit:
    description: Name of the systemd unit.
    type: str
    default: tritonserver.service
  systemd_unit_file:
    description: Path of the systemd unit file (its C(.previous) copy is restored when a restart fails).
    type: path
  launcher:
    description: Path of the launcher (its C(.previous) copy is restored when a restart fails).
    type: path
  http_address:
    description: Address of the HTTP endpoint (a wildcard bind is probed on loopback).
    type: str
    required: true
  http_port:
    description: Port of the HTTP endpoint.
    type: int
    required: true
  ready_timeout:
    description: Seconds live and ready may take together.
    type: int
    required: true
  log_file:
    description: Server log quoted when the server is not ready.
    type: path
    required: true
  log_tail_lines:
    description: Lines of O(log_file) in the failure message.
    type: int
    default: 40
attributes:
  check_mode:
    support: full
    details: Reports what it would start or restart and does not wait.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure tritonserver runs and is live and ready
  triton_service_run:
    supervisor_venv: /opt/tritonfleet/supervisor
    supervisor_conf: /etc/tritonfleet/supervisord.conf
    supervisor_socket: /run/tritonfleet/supervisor.sock
    http_address: 0.0.0.0
    http_port: 8000
    ready_timeout: 120
    log_file: /var/log/tritonfleet/tritonserver.log
"""

RETURN = r"""
service_manager:
  description: The service manager that runs the server.
  type: str
  returned: always
  sample: supervisor
actions:
  description: What was done (or would be in check mode), in order.
  type: list
  elements: str
  returned: always
  sample: [start_supervisord]
base_url:
  description: URL the readiness probes used.
  type: str
  returned: always
  sample: http://127.0.0.1:8000
"""

ARGUMENT_SPEC = {
    "state": {"type": "str", "choices": ["started", "restarted"], "default": "started"},
    "manager": {"type": "str", "choices": ["auto", "systemd", "supervisor"], "default": "auto"},
    "reload_config": {"type": "bool", "default": False},
    "supervisor_venv": {"type": "path", "required": True},
    "supervisor_conf": {"type": "path", "required": True},
    "supervisor_socket": {"type": "path", "required": True},
    "systemd_unit": {"type": "str", "default": "tritonserver.service"},
    "systemd_unit_file": {"type": "path"},
    "launcher": {"type": "path"},
    "http_address": {"type": "str", "required": True},
    "http_port": {"type": "int", "required": True},
    "ready_timeout": {"type": "int", "required": True},
    "log_file": {"type": "path", "required": True},
    "log_tail_lines": {"type": "int", "default": 40},
}


def main() -> None:
    """Bring the server to the wanted state, wait for it, report what was done."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    manager = service_manager_for(module.params["manager"])
    try:
        result = ensure_running(module.params, manager, module.check_mode, module.run_command)
    except ServiceConfigError as err:
        module.fail_json(msg=str(err))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
