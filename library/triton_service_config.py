#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: the service account, directories, key, launcher and service files in one pass."""

from __future__ import annotations

import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_config import configure
from ansible.module_utils.triton_service_run import ensure_running, ready_params, service_settings

DOCUMENTATION = r"""
---
module: triton_service_config
short_description: Ensure everything tritonserver runs from is in place, changing only what differs
description:
  - Reads and compares, then changes only what differs, in this order - the system group and
    user (C(groupadd)/C(useradd)/C(usermod)), the state, log, configuration and program directories,
    the restricted-API key (generated once, never shown), the launcher, and either the supervisord
    environment, run directory and C(supervisord.conf) or the systemd unit.
  - The launcher runs O(release_dir) when given (the C(triton_install_result) of the same play),
    else C(<install_prefix>/current), with O(manifest) or else the release's C(manifest.json); it
    lists one C(--load-model) per model directory and reads the key when it starts.
  - supervisord is installed with pip only when C(bin/supervisord) or the pinned dist-info is missing.
  - A new systemd unit is installed only after C(systemd-analyze verify) accepts it (when the tool exists).
  - Starts, stops and restarts nothing; RV(restart_reasons) and RV(reload) say whether the server must restart.
version_added: "0.1.0"
author: tritonfleet
options:
  manager:
    description:
      - Service manager; C(auto) picks systemd where systemd manages the host's services (the rule of the
        C(triton_host.service_manager) fact), supervisord elsewhere.
    type: str
    choices: [auto, systemd, supervisor]
    default: auto
  plan:
    description: The plan, C(ansible_facts.triton_plan); the server gets its C(runtime) env and server_args verbatim.
    type: dict
    required: true
  install_prefix:
    description: Install prefix of the triton_install role; its C(current) link names the release.
    type: path
    required: true
  release_dir:
    description: Release to run, as triton_install published it in this play; default C(<install_prefix>/current).
    type: path
  manifest:
    description: The manifest of that release, as published; without it the module reads the release's C(manifest.json).
    type: dict
  model_repository:
    description: Model repository the server serves.
    type: path
    required: true
  http_address:
    description: Address of the HTTP endpoint.
    type: str
    required: true
  http_port:
    description: Port of the HTTP endpoint.
    type: int
    required: true
  grpc_address:
    description: Address of the gRPC endpoint.
    type: str
    required: true
  grpc_port:
    description: Port of the gRPC endpoint.
    type: int
    required: true
  metrics_address:
    description: Address of the metrics endpoint.
    type: str
    required: true
  metrics_port:
    description: Port of the metrics endpoint.
    type: int
    required: true
  auto_complete_config:
    description: Let the server complete partial model configurations.
    type: bool
    default: false
  extra_args:
    description: Extra server arguments, appended last.
    type: list
    elements: str
    default: []
  user:
    description: Unprivileged system user the server runs as.
    type: str
    required: true
  group:
    description: Primary group of O(user).
    type: str
    required: true
  uid:
    description: Fixed uid of O(user); null keeps or picks a system uid.
    type: int
  gid:
    description: Fixed gid of O(group); null keeps or picks a system gid.
    type: int
  user_groups:
    description: Supplementary groups of O(user), exactly.
    type: list
    elements: str
    default: []
  state_dir:
    description: Home and only writable directory of O(user) (0750).
    type: path
    required: true
  log_dir:
    description: Log directory, root-owned, readable by O(group) (0750).
    type: path
    required: true
  config_dir:
    description: Configuration directory (0755 root).
    type: path
    required: true
  home:
    description: tritonfleet's program directory; the launcher is C(<home>/bin/tritonfleet-serve).
    type: path
    required: true
  api_key_file:
    description: Restricted-API key file (0600 root), generated when missing.
    type: path
    required: true
  api_key_header:
    description: Header that carries the key.
    type: str
    required: true
  restricted_apis:
    description: API categories that need the key.
    type: list
    elements: str
    required: true
  run_dir:
    description: supervisord's socket and pidfile directory (supervisord only).
    type: path
    required: true
  supervisor_venv:
    description: venv of supervisord.
    type: path
    required: true
  supervisor_package:
    description: pip requirement (C(name==version) or a wheel path) of supervisord.
    type: str
    required: true
  supervisor_python:
    description: Interpreter that creates O(supervisor_venv).
    type: path
    required: true
  supervisor_conf:
    description: Path of C(supervisord.conf).
    type: path
    required: true
  supervisor_config:
    description: Content of C(supervisord.conf).
    type: str
    required: true
  systemd_unit_file:
    description: Path of the systemd unit.
    type: path
    required: true
  systemd_unit:
    description: Content of the systemd unit.
    type: str
    required: true
  ensure_ready:
    description:
      - When nothing the running server depends on changed (no restart, no supervisord reload), also
        ensure the server runs and wait until it is live and ready, as C(triton_service_run state=started)
        does; RV(ready) then says what that did. A converged host so costs one module run for the whole
        service. When a restart is due, nothing is started here; the restart handler does it.
      - Omit to only configure.
    type: dict
    suboptions:
      supervisor_socket:
        description: supervisord's unix socket.
        type: path
        required: true
      systemd_unit_name:
        description: Name of the systemd unit.
        type: str
        default: tritonserver.service
      ready_timeout:
        description: Seconds live and ready may take together.
        type: int
        required: true
      log_file:
        description: Server log quoted when the server is not ready.
        type: path
        required: true
      log_tail_lines:
        description: Lines of O(ensure_ready.log_file) in the failure message.
        type: int
        default: 40
attributes:
  check_mode:
    support: full
    details: Reports every change without making it; a release still to be installed is warned about, not an error.
  diff_mode:
    support: full
    details: Text of the launcher and service files, attributes of the account and directories; never the key.
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the service account, directories, key, launcher and service files are in place
  triton_service_config:
    plan: "{{ ansible_facts['triton_plan'] }}"
    install_prefix: /opt/tritonserver
    model_repository: /srv/tritonfleet/models/current
    http_address: 0.0.0.0
    http_port: 8000
    grpc_address: 0.0.0.0
    grpc_port: 8001
    metrics_address: 127.0.0.1
    metrics_port: 8002
    user: tritonserver
    group: tritonserver
    state_dir: /var/lib/tritonfleet
    log_dir: /var/log/tritonfleet
    config_dir: /etc/tritonfleet
    home: /opt/tritonfleet
    api_key_file: /etc/tritonfleet/api-key
    api_key_header: tritonfleet-admin-key
    restricted_apis: [model-repository, model-config]
    run_dir: /run/tritonfleet
    supervisor_venv: /opt/tritonfleet/supervisor
    supervisor_package: supervisor==4.3.0
    supervisor_python: /usr/bin/python3
    supervisor_conf: /etc/tritonfleet/supervisord.conf
    supervisor_config: "{{ lookup('ansible.builtin.template', 'supervisord.conf.j2') }}"
    systemd_unit_file: /etc/systemd/system/tritonserver.service
    systemd_unit: "{{ lookup('ansible.builtin.template', 'tritonserver.service.j2') }}"
  register: __triton_service_config
"""

RETURN = r"""
ready:
  description:
    - What O(ensure_ready) did ({changed, service_manager, actions, base_url}); null when it did not run
      (not asked for, or a restart is due).
  type: dict
  returned: always
service_manager:
  description: The service manager that runs the server on this host.
  type: str
  returned: always
  sample: supervisor
changes:
  description: What changed (or would change in check mode).
  type: list
  elements: str
  returned: always
  sample: [user tritonserver, /opt/tritonfleet/bin/tritonfleet-serve]
restart_reasons:
  description: Changes the running server depends on (account, key, launcher, service file); non-empty means restart it.
  type: list
  elements: str
  returned: always
reload:
  description: C(supervisord.conf) changed, so supervisord must reload it.
  type: bool
  returned: always
release_dir:
  description: The release the launcher runs (null in check mode before the first install).
  type: str
  returned: always
  sample: /opt/tritonserver/releases/2.51.0
server_version:
  description: Triton server version of that release.
  type: str
  returned: always
  sample: 2.51.0
service:
  description:
    - How the service runs (with O(ensure_ready); else empty), as M(triton_service_run) takes it plus C(manager)
      (the one chosen on the host); the role publishes it as C(triton_service_result.service) for the models
      switch, which restarts the server this way when the repository API cannot restore a release.
  type: dict
  returned: always
  sample: {manager: supervisor, launcher: /opt/tritonfleet/bin/tritonfleet-serve, http_port: 8000}
"""

ARGUMENT_SPEC = {
    "manager": {"type": "str", "choices": ["auto", "systemd", "supervisor"], "default": "auto"},
    "plan": {"type": "dict", "required": True},
    "install_prefix": {"type": "path", "required": True},
    "release_dir": {"type": "path"},
    "manifest": {"type": "dict"},
    "model_repository": {"type": "path", "required": True},
    "http_address": {"type": "str", "required": True},
    "http_port": {"type": "int", "required": True},
    "grpc_address": {"type": "str", "required": True},
    "grpc_port": {"type": "int", "required": True},
    "metrics_address": {"type": "str", "required": True},
    "metrics_port": {"type": "int", "required": True},
    "auto_complete_config": {"type": "bool", "default": False},
    "extra_args": {"type": "list", "elements": "str", "default": []},
    "user": {"type": "str", "required": True},
    "group": {"type": "str", "required": True},
    "uid": {"type": "int"},
    "gid": {"type": "int"},
    "user_groups": {"type": "list", "elements": "str", "default": []},
    "state_dir": {"type": "path", "required": True},
    "log_dir": {"type": "path", "required": True},
    "config_dir": {"type": "path", "required": True},
    "home": {"type": "path", "required": True},
    "api_key_file": {"type": "path", "required": True},
    "api_key_header": {"type": "str", "required": True},
    "restricted_apis": {"type": "list", "elements": "str", "required": True},
    "run_dir": {"type": "path", "required": True},
    "supervisor_venv": {"type": "path", "required": True},
    "supervisor_package": {"type": "str", "required": True},
    "supervisor_python": {"type": "path", "required": True},
    "supervisor_conf": {"type": "path", "required": True},
    "supervisor_config": {"type": "str", "required": True},
    "systemd_unit_file": {"type": "path", "required": True},
    "systemd_unit": {"type": "str", "required": True},
    "ensure_ready": {
        "type": "dict",
        "options": {
            "supervisor_socket": {"type": "path", "required": True},
            "systemd_unit_name": {"type": "str", "default": "tritonserver.service"},
            "ready_timeout": {"type": "int", "required": True},
            "log_file": {"type": "path", "required": True},
            "log_tail_lines": {"type": "int", "default": 40},
        },
    },
}


def main() -> None:
    """Compare, apply the difference, report it."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    try:
        result = configure(module.params, module.check_mode, run, shutil.which("systemd-analyze"))
        result["ready"] = None
        result["service"] = (
            service_settings(module.params, result["service_manager"]) if module.params["ensure_ready"] else {}
        )
        if module.params["ensure_ready"] and not result["restart_reasons"] and not result["reload"]:
            result["ready"] = ensure_running(
                ready_params(module.params), result["service_manager"], module.check_mode, module.run_command
            )
            result["changed"] = result["changed"] or result["ready"]["changed"]
    except (ServiceConfigError, OSError) as err:
        module.fail_json(msg=str(err))
    for warning in result.pop("warnings"):
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
