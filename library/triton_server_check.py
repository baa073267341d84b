#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: verify that a running Triton server serves what was intended."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.triton_nvml import load_nvml
from ansible.module_utils.triton_server_check import read_api_key, read_pids, verify

try:
    import requests

    REQUESTS_ERROR = None
except ImportError as err:
    REQUESTS_ERROR = err

DOCUMENTATION = r"""
module: triton_server_check
short_description: Verify a running Triton server against what was deployed
description:
  - Through the HTTP API, checks liveness and readiness, version and extensions (C(GET /v2)), that every
    deployed model is READY (C(POST /v2/repository/index)), that each model's effective config has exactly the
    intended instance kinds and GPUs, and runs a smoke inference per model with inputs generated from its metadata,
    measuring latency.
  - Measures the GPU memory the server's processes hold through NVML (C(nvmlDeviceGetComputeRunningProcesses));
    on a CPU plan it must be zero on every GPU. Without NVML the result says it could not measure, never that it
    passed.
  - Returns a structured C(report); fails after returning it when a finding is an error, unless
    I(fail_on_error=false).
version_added: "0.1.0"
author: tritonfleet
options:
  url:
    description: Base URL of the server's HTTP endpoint.
    type: str
    default: http://127.0.0.1:8000
  models:
    description: Models that must be READY; default every model the repository index shows with a state.
    type: list
    elements: str
  expected_instance_groups:
    description:
      - "Intended groups per model, C({model: [{kind, gpus, count}]}) (the C(instance_groups) result of
        triton_model_config). Count is compared only when every group of the model gives one."
    type: dict
  expected_outputs:
    description: "Expected output values per model, C({model: {output_name: [values]}}), for the generated ramp inputs."
    type: dict
  smoke_inference:
    description: Run one inference per READY model.
    type: bool
    default: true
  api_key_header:
    description: Header name of the restricted-API key (C(--http-restricted-api)); sent only with a key.
    type: str
  api_key:
    description: Value of the restricted-API key. Mutually exclusive with O(api_key_file).
    type: str
  api_key_file:
    description:
      - File on the host holding the restricted-API key (read by the module, surrounding whitespace
        trimmed, never returned). A missing file means no key, and O(api_key_header) is not sent.
      - Mutually exclusive with O(api_key).
    type: path
  pid:
    description: Pids whose GPU memory is measured (the server, or an application embedding Triton).
    type: list
    elements: int
    default: []
  pidfile:
    description: File holding the server's pid (added to I(pid)).
    type: path
  plan:
    description: The host's C(ansible_facts.triton_plan); C(enable_gpu=false) requires zero GPU memory.
    type: dict
    default: {}
  workers:
    description: Models checked at once (over one keep-alive session); 1 checks them one after another.
    type: int
    default: 4
  timeout:
    description: Seconds per HTTP request.
    type: float
    default: 10
  fail_on_error:
    description: Fail when a finding has severity C(error).
    type: bool
    default: true
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
  - nvidia-ml-py for the GPU memory measurement (optional)
"""

EXAMPLES = r"""
- name: Ensure Triton serves the deployed models as rendered
  triton_server_check:
    url: "http://127.0.0.1:{{ triton_service_http_port }}"
    expected_instance_groups: "{{ triton_models_result['instance_groups'] }}"
    pidfile: /run/tritonfleet/tritonserver.pid
    plan: "{{ ansible_facts['triton_plan'] }}"
    api_key_header: tritonfleet-admin-key
    api_key_file: /etc/tritonfleet/api-key
  register: __triton_verify_server
"""

RETURN = r"""
report:
  description: Verification report for the report writer.
  returned: always
  type: dict
  contains:
    server:
      description: C({url, live, ready, version, extensions}); null when unreachable.
      type: dict
    models:
      description: Per model C({name, version, state, reason, kinds, gpus, instance_groups, latency_ms, outputs_ok}).
      type: list
      elements: dict
    gpu_memory:
      description: C({measured, reason, pids, total_bytes, gpus}); C(measured=false) means not measured.
      type: dict
    findings:
      description: C({severity, code, model, message, fix}) entries.
      type: list
      elements: dict
    duration_ms:
      description: Time the whole check took.
      type: float
"""

ARGUMENT_SPEC = {
    "url": {"type": "str", "default": "http://127.0.0.1:8000"},
    "models": {"type": "list", "elements": "str"},
    "expected_instance_groups": {"type": "dict"},
    "expected_outputs": {"type": "dict"},
    "smoke_inference": {"type": "bool", "default": True},
    "api_key_header": {"type": "str", "no_log": False},
    "api_key": {"type": "str", "no_log": True},
    "api_key_file": {"type": "path"},
    "pid": {"type": "list", "elements": "int", "default": []},
    "pidfile": {"type": "path"},
    "plan": {"type": "dict", "default": {}},
    "workers": {"type": "int", "default": 4},
    "timeout": {"type": "float", "default": 10},
    "fail_on_error": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("api_key", "api_key_file")],
        required_by={"api_key": "api_key_header", "api_key_file": "api_key_header"},
        supports_check_mode=True,
    )
    if REQUESTS_ERROR:
        module.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_ERROR))
    p = module.params
    key = p["api_key"]
    try:
        if p["api_key_file"]:
            key = read_api_key(p["api_key_file"])
    except OSError as err:
        module.fail_json(
            msg=f"the restricted-API key cannot be read: {err}. Found: api_key_file={p['api_key_file']}. Supported: "
            "a file the connection user can read, or none. Fix: fix its permissions or rerun triton_service."
        )
    if key:
        module.no_log_values.add(key)
    pids, pid_reason = read_pids(p["pid"], p["pidfile"])
    nvml, nvml_reason = load_nvml()
    with requests.Session() as session:
        if p["api_key_header"] and key is not None:
            session.headers[p["api_key_header"]] = key
        report = verify(
            session,
            p["url"],
            p["plan"],
            nvml,
            nvml_reason,
            pids,
            pid_reason,
            models=p["models"],
            expected_instance_groups=p["expected_instance_groups"],
            expected_outputs=p["expected_outputs"],
            infer=p["smoke_inference"],
            timeout=p["timeout"],
            workers=p["workers"],
        )
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    if errors and p["fail_on_error"]:
        summary = " | ".join(f"{f['code']}: {f['message']}; fix: {f['fix']}" for f in errors)
        module.fail_json(msg=f"Triton at {p['url']} does not serve what was intended: {summary}", report=report)
    module.exit_json(changed=False, report=report)


if __name__ == "__main__":
    main()
