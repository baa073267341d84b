#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: judge the service role's settings against the host before any change."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: triton_service_preflight
short_description: Refuse service settings the host cannot serve, before anything changes
description:
  - Judges the C(triton_service) settings with the host facts C(triton_host) gathered by M(triton_host_facts)
    (its listening TCP sockets and the service account as the host knows it), so that preflight fails before
    the first change and before anything queries a port.
  - "Refuses: a port that is not 1-65535, an address that is not an IP literal, one port for two endpoints
    (HTTP, gRPC, metrics), a port another process holds (this deployment's own tritonserver may hold it:
    a restart frees it), the account root (uid 0) or group root (gid 0), an existing login account unless
    O(settings.allow_login_account), an API key header that is not a header name, a key file that is not an
    absolute path, a ready timeout that is not a positive number of seconds."
  - Every problem in one message, each with what is wrong, what was found where, what is supported, what to do.
  - Runs on the controller, in the controller's process (C(plugins/action/)); changes nothing.
version_added: "1.0.0"
author: tritonfleet
options:
  settings:
    description:
      - The service role's settings, C(http_address), C(http_port), C(grpc_address), C(grpc_port),
        C(metrics_address), C(metrics_port), C(user), C(group), C(uid), C(gid), C(allow_login_account),
        C(api_key_header), C(api_key_file), C(ready_timeout), as given (not converted, so that a bad value is
        reported by name).
    type: dict
    required: true
  host:
    description: The host facts (C(ansible_facts.triton_host)); C(listening) and C(accounts) are read.
    type: dict
    required: true
  install_prefix:
    description: Install prefix of the server releases; a tritonserver running from under it is this deployment's.
    type: str
    default: /opt/tritonserver
  method:
    description: Install method of the plan; a container release's tritonserver runs from the image's own path.
    type: str
    default: wheel
attributes:
  check_mode:
    support: full
    details: Computes only; runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the service settings fit the host before any change
  triton_service_preflight:
    settings:
      http_address: 0.0.0.0
      http_port: 8000
      grpc_address: 0.0.0.0
      grpc_port: 8001
      metrics_address: 127.0.0.1
      metrics_port: 8002
      user: tritonserver
      group: tritonserver
      uid: null
      gid: null
      allow_login_account: false
      api_key_header: tritonfleet-admin-key
      api_key_file: /etc/tritonfleet/api-key
      ready_timeout: 120
    host: "{{ ansible_facts['triton_host'] }}"
  delegate_to: localhost
"""

RETURN = r"""
problems:
  description: One four-part message per problem; empty when the settings fit (the module fails otherwise).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.triton_module_run import ModuleFailure, run_as_module
from ansible.module_utils.triton_service_inputs import input_problems

ARGUMENT_SPEC = {
    "settings": {"type": "dict", "required": True},
    "host": {"type": "dict", "required": True},
    "install_prefix": {"type": "str", "default": "/opt/tritonserver"},
    "method": {"type": "str", "default": "wheel"},
}


def run(params: dict, check_mode: bool) -> dict:
    """Judge the settings; also called in-process by the project's action plugin."""
    problems = input_problems(params["settings"], params["host"], params["install_prefix"], params["method"])
    if problems:
        raise ModuleFailure(" ".join(problems), problems=problems)
    return {"changed": False, "problems": []}


def main() -> None:
    run_as_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
