#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: check that Triton's service user can see the GPUs its plan needs."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_cuda import CudaDriver
from ansible.module_utils.triton_device_check import access_for, check_devices
from ansible.module_utils.triton_nvml import load_nvml

DOCUMENTATION = r"""
module: triton_device_check
short_description: Check that the Triton service user sees the devices its plan needs
description:
  - Run it as the service user with the service's environment (C(become_user), C(environment)); it reads
    C(CUDA_VISIBLE_DEVICES) from its own environment, as the server will.
  - Lists the GPU device nodes (x86 C(/dev/nvidiactl), C(/dev/nvidia-uvm), C(/dev/nvidiaN); Jetson
    C(/dev/nvhost-ctrl-gpu) or C(/dev/nvgpu/igpu0/ctrl) and C(/dev/nvmap)) with access, group and membership.
  - Reads the NVML view (count, UUIDs) and the CUDA driver API view through C(libcuda.so.1) (C(cuInit),
    device count, names, compute capabilities, UUIDs), which is what Triton itself will see.
  - Compares them with the plan and reports findings with a severity, a code, a message and a fix; fails after
    returning them when any finding is an error, unless I(fail_on_error=false).
version_added: "0.1.0"
author: tritonfleet
options:
  plan:
    description: The host's C(ansible_facts.triton_plan).
    type: dict
    required: true
  root:
    description: Directory under which C(/dev) is read (tests and mounted roots).
    type: path
    default: /
  fail_on_error:
    description: Fail when a finding has severity C(error).
    type: bool
    default: true
  user:
    description:
      - Judge device-node access for this user from owner, group and mode bits, instead of
        the user the module runs as (root can open anything; the service user may not be able
        to read the controller-side Python). The account is looked up on the host (passwd and
        group databases).
      - When the account does not exist yet (before the first install creates it) the running
        user is judged with C(os.access), and RV(access_user) says so. Omit to judge the
        running user.
    type: str
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: none
requirements:
  - nvidia-ml-py for the NVML view (optional; without it the NVML view says why)
"""

EXAMPLES = r"""
- name: Ensure the service user can see the planned GPUs
  triton_device_check:
    plan: "{{ ansible_facts['triton_plan'] }}"
  become: true
  become_user: tritonserver
  # The server's device environment: the plan's runtime section gives it to every Triton process.
  environment: "{{ ansible_facts['triton_plan']['runtime']['env'] }}"
"""

RETURN = r"""
devices:
  description: What the service user sees.
  returned: always
  type: dict
  contains:
    nodes:
      description:
        - Device nodes with C(path), C(required), C(exists), C(accessible), C(mode), C(group),
          C(user_in_group).
      type: list
      elements: dict
    nvml:
      description: NVML view C({usable, reason, count, uuids, gpus}).
      type: dict
    cuda:
      description: CUDA driver view C({available, reason, error, count, devices, cuda_visible_devices}).
      type: dict
access_user:
  description:
    - Whose access the node results describe, C({requested, exists, judged}) - the account asked
      for in O(user) (null when omitted), whether it exists, and the account actually judged.
  returned: always
  type: dict
  sample: {requested: tritonserver, exists: false, judged: root}
findings:
  description: Problems found, each C({severity, code, message, fix}); severity is C(error) or C(warning).
  returned: always
  type: list
  elements: dict
  sample: [{severity: error, code: nvml_gpus_cuda_none, message: "NVML sees 2 GPU(s) but CUDA sees no device ...",
            fix: "unset or correct CUDA_VISIBLE_DEVICES ..."}]
"""

ARGUMENT_SPEC = {
    "plan": {"type": "dict", "required": True},
    "root": {"type": "path", "default": "/"},
    "fail_on_error": {"type": "bool", "default": True},
    "user": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    nvml, nvml_reason = load_nvml()
    access, gids, access_user = access_for(module.params["user"])
    try:
        result = check_devices(
            module.params["plan"], nvml, CudaDriver(), os.environ, module.params["root"], nvml_reason, access, gids
        )
    except ValueError as err:
        module.fail_json(
            msg=f"the plan's compute capability cannot be compared: {err}. Found: plan runtime.min_compute_capability="
            f"{(module.params['plan'].get('runtime') or {}).get('min_compute_capability')!r}. "
            "Supported: dotted numbers such as '7.5'. Fix: re-run preflight to rebuild triton_plan."
        )
    result["access_user"] = access_user
    for finding in result["findings"]:
        if finding["severity"] == "warning":
            module.warn(f"{finding['code']}: {finding['message']}; fix: {finding['fix']}")
    errors = [f for f in result["findings"] if f["severity"] == "error"]
    if errors and module.params["fail_on_error"]:
        summary = " | ".join(f"{f['code']}: {f['message']}; fix: {f['fix']}" for f in errors)
        module.fail_json(msg=f"Triton cannot use the devices its plan needs: {summary}", **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
