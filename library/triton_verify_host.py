#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: read the deployed Triton state, check the devices and the server, in one run."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.triton_cuda import CudaDriver
from ansible.module_utils.triton_nvml import load_nvml
from ansible.module_utils.triton_verify_host import verify_host

try:
    import requests

    REQUESTS_ERROR = None
except ImportError as err:
    REQUESTS_ERROR = err

DOCUMENTATION = r"""
---
module: triton_verify_host
short_description: Read the deployed Triton state and check the devices and the server, in one run
description:
  - Everything the verification asks a host, in one module run (each run costs a fork and a Python start).
  - Reads the installed release's C(<install_prefix>/current/manifest.json), the active models release
    (C(<models_root>/current) and its C(instance_groups.json)) and the C(tritonserver) process started with
    C(--http-port=)O(http_port) under O(proc_root) (its pid and CUDA environment; its command line, which holds
    the restricted-API key, is never read out).
  - Runs the device check of M(triton_device_check) for O(user) with the running server's C(CUDA_*) and
    C(NVIDIA_*) variables, or with no server running the plan's service environment (C(CUDA_VISIBLE_DEVICES="")
    for CPU plans and hidden GPUs, else C(CUDA_DEVICE_ORDER=PCI_BUS_ID)). They are set in the module's own
    environment before NVML or C(libcuda.so.1) is loaded; C(libcuda.so.1) is taken from the server's
    C(LD_LIBRARY_PATH) first, as the server's loader would.
  - Runs the server check of M(triton_server_check) against the active release's instance groups and the
    server's pid. Findings never fail the module; the report decides.
version_added: "1.0.0"
author: tritonfleet
options:
  install_prefix:
    description: Install prefix of triton_install (holds C(current/manifest.json)).
    type: path
    required: true
  models_root:
    description: Models root of triton_models (holds C(current -> releases/<id>)).
    type: path
    required: true
  http_port:
    description: HTTP port the server was started with.
    type: int
    required: true
  url:
    description: Base URL of the server's HTTP endpoint.
    type: str
    required: true
  plan:
    description: The host's C(ansible_facts.triton_plan); C({}) when there is none.
    type: dict
    default: {}
  device_check:
    description: Run the device check (false when the plan was refused or is missing).
    type: bool
    default: true
  user:
    description: Account whose device-node access is judged (the running user while it does not exist).
    type: str
  api_key_header:
    description: Header name of the restricted-API key; sent only with a key.
    type: str
  api_key_file:
    description: File on the host holding the restricted-API key (never returned); a missing file means no key.
    type: path
  expected_outputs:
    description: "Expected output values per model, C({model: {output_name: [values]}})."
    type: dict
  smoke_inference:
    description: Run one inference per READY model.
    type: bool
    default: true
  timeout:
    description: Seconds per HTTP request.
    type: float
    default: 10
  proc_root:
    description: Where procfs is mounted.
    type: path
    default: /proc
  root:
    description: Directory under which C(/dev) and the C(LD_LIBRARY_PATH) directories are read (tests).
    type: path
    default: /
attributes:
  check_mode:
    support: full
    details: Read-only (a smoke inference changes nothing); runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: none
requirements:
  - requests
  - nvidia-ml-py for the NVML view and the GPU memory measurement (optional)
"""

EXAMPLES = r"""
- name: Ensure the devices and the server match what was deployed
  triton_verify_host:
    install_prefix: /opt/tritonserver
    models_root: /srv/tritonfleet/models
    http_port: 8000
    url: http://127.0.0.1:8000
    plan: "{{ ansible_facts['triton_plan'] }}"
    user: tritonserver
    api_key_header: tritonfleet-admin-key
    api_key_file: /etc/tritonfleet/api-key
  register: __triton_verify_host
"""

RETURN = r"""
manifest:
  description: The installed release's manifest.json, or null.
  returned: always
  type: dict
  sample: {release: "24.10", server_version: "2.51.0", method: wheel, gpu_build: true}
release:
  description: The active models release C({id, root, instance_groups}), or null.
  returned: always
  type: dict
  sample: {id: r1, root: /srv/tritonfleet/models, instance_groups: {add_sub: [{kind: KIND_CPU, count: 1, gpus: []}]}}
process:
  description: The running server C({found, pid, uid, environment, reason}).
  returned: always
  type: dict
  sample: {found: true, pid: 4242, uid: 998, environment: {CUDA_VISIBLE_DEVICES: ""}, reason: null}
device_check:
  description: The device check's C({devices, findings}) (see M(triton_device_check)); null when not run.
  returned: always
  type: dict
access_user:
  description: Whose device-node access was judged, C({requested, exists, judged}); null when not run.
  returned: always
  type: dict
server_check:
  description: The server check's report C({server, models, gpu_memory, findings, duration_ms}).
  returned: always
  type: dict
"""

ARGUMENT_SPEC = {
    "install_prefix": {"type": "path", "required": True},
    "models_root": {"type": "path", "required": True},
    "http_port": {"type": "int", "required": True},
    "url": {"type": "str", "required": True},
    "plan": {"type": "dict", "default": {}},
    "device_check": {"type": "bool", "default": True},
    "user": {"type": "str"},
    "api_key_header": {"type": "str", "no_log": False},
    "api_key_file": {"type": "path"},
    "expected_outputs": {"type": "dict"},
    "smoke_inference": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 10},
    "proc_root": {"type": "path", "default": "/proc"},
    "root": {"type": "path", "default": "/"},
}


def main() -> None:
    """Read, check and return what the report task needs."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if REQUESTS_ERROR:
        module.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_ERROR))
    try:
        with requests.Session() as session:
            result = verify_host(module.params, load_nvml, CudaDriver, session, module.no_log_values.add)
    except ValueError as err:
        module.fail_json(msg=str(err))
    for finding in (result["device_check"] or {}).get("findings", []):
        if finding["severity"] == "warning":
            module.warn(f"{finding['code']}: {finding['message']}; fix: {finding['fix']}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
