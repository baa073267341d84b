#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: kill what the service user left running on this host."""

from __future__ import annotations

import os
import pwd
import signal
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_service import leftover_pids

DOCUMENTATION = r"""
---
module: triton_service_leftovers
short_description: Kill the processes a service user left on this host
description:
  - Sends SIGKILL to every process that runs as O(user) in the mount namespace of this
    module, e.g. python backend stubs orphaned when the server was killed.
  - Processes of other mount namespaces (containers, simulated hosts sharing the kernel) are
    never touched, even when their uid number is the same.
  - Does nothing when O(user) does not exist.
version_added: "0.1.0"
author: tritonfleet
options:
  user:
    description: Account whose processes are killed.
    type: str
    required: true
attributes:
  check_mode:
    support: full
    details: Reports the pids it would kill.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure no process of the service user is left
  triton_service_leftovers:
    user: tritonserver
"""

RETURN = r"""
pids:
  description: Pids killed (or, in check mode, that would be).
  type: list
  elements: int
  returned: always
  sample: [4242, 4250]
"""

ARGUMENT_SPEC = {"user": {"type": "str", "required": True}}


def main() -> None:
    """Find the user's processes in this mount namespace and kill them."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        uid = pwd.getpwnam(module.params["user"]).pw_uid
    except KeyError:
        module.exit_json(changed=False, pids=[])
    try:
        pids = leftover_pids(Path("/proc"), uid, os.readlink("/proc/self/ns/mnt"))
    except OSError as err:
        module.fail_json(
            msg=f"Cannot list processes in /proc ({err}). Leftover processes are read from /proc. "
            "Run the play with become on a host with /proc mounted."
        )
    if not module.check_mode:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
    module.exit_json(changed=bool(pids), pids=pids)


if __name__ == "__main__":
    main()
