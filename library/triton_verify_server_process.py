#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: find the running tritonserver and the environment it runs with."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_report import find_server_process

DOCUMENTATION = r"""
---
module: triton_verify_server_process
short_description: Find the running tritonserver process, its user and its CUDA environment
description:
  - Scans O(proc_root) for a C(tritonserver) process started with C(--http-port=)O(http_port) and
    returns its pid, uid and the environment variables that decide what CUDA sees (C(CUDA_*),
    C(NVIDIA_*), C(PATH), C(LD_LIBRARY_PATH), C(HOME)), so the device check can run with the
    server's own view. The command line (it holds the restricted-API key) is never returned.
version_added: "1.0.0"
author: tritonfleet
options:
  http_port:
    description: HTTP port the server was started with.
    type: int
    required: true
  proc_root:
    description: Where procfs is mounted.
    type: path
    default: /proc
attributes:
  check_mode:
    support: full
    details: Read-only.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Read the running server's pid and environment
  triton_verify_server_process:
    http_port: 8000
"""

RETURN = r"""
found:
  description: Whether such a process runs.
  returned: always
  type: bool
pid:
  description: Its pid, or null.
  returned: always
  type: int
uid:
  description: Its real uid, or null.
  returned: always
  type: int
environment:
  description: Its CUDA-relevant environment variables.
  returned: always
  type: dict
  sample: {CUDA_VISIBLE_DEVICES: "", PATH: /opt/tritonserver/venvs/pytriton-0.7.0/bin:/usr/bin}
reason:
  description: Why no process was found, or null.
  returned: always
  type: str
"""

ARGUMENT_SPEC = {
    "http_port": {"type": "int", "required": True},
    "proc_root": {"type": "path", "default": "/proc"},
}


def main() -> None:
    """Scan procfs and return what was found."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = find_server_process(Path(module.params["proc_root"]), module.params["http_port"])
    except OSError as err:
        module.fail_json(msg=f"cannot scan {module.params['proc_root']} for tritonserver: {err}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
