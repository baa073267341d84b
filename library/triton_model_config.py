#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: render Triton model configs for one host and validate them with Triton's rules."""

from __future__ import annotations

import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.triton_model_config import (
    IMPORT_ERROR,
    ModelConfigError,
    render_one,
    render_repository,
)
from ansible.module_utils.triton_runtime import RuntimeSectionError, plan_runtime

DOCUMENTATION = r"""
module: triton_model_config
short_description: Render and validate Triton config.pbtxt files for one host
description:
  - Parses C(config.pbtxt) with Triton's own C(ModelConfig) schema (tritonclient C(model_config_pb2)); syntax and
    schema errors name the file, line and column.
  - Under instance policy C(auto) rewrites the instance groups for the host's plan (C(ansible_facts.triton_plan))
    to C(KIND_GPU) with the plan's C(gpu_ids) on GPU plans (Jetson included), C(KIND_CPU) on CPU plans, C(KIND_AUTO)
    resolved explicitly, counts kept or set from I(count), ensembles untouched, C(KIND_MODEL) kept with a warning,
    C(gpu_execution_accelerator) dropped with a warning when no group runs on a GPU.
  - Under C(keep) leaves the file as written and validates it strictly.
  - Either way, refuses a config Triton would reject on the host, with Triton's wording plus the fix. The rules
    are Triton's config rules (C(ValidateModelConfig), C(ValidateModelIOConfig), in Triton's order, keyed to the
    plan's C(release)) and its instance-group rules (docs/model-config-rules.md). With I(repository_src) each
    model's directory decides its backend as Triton's auto-complete does.
  - Runs on the controller (C(delegate_to) localhost); the role copies the rendered files to the host. Render a
    whole repository in one call with I(repository_src).
version_added: "0.1.0"
author: tritonfleet
options:
  src:
    description: Path of one C(config.pbtxt) on the controller.
    type: path
  content:
    description: Text of one C(config.pbtxt).
    type: str
  repository_src:
    description:
      - Model repository on the controller; every C(<model>/config.pbtxt) is rendered to
        C(<dest>/<model>/config.pbtxt).
    type: path
  dest:
    description: Output file (with I(src) or I(content)) or output repository directory (with I(repository_src)).
    type: path
    required: true
  plan:
    description:
      - The host's C(ansible_facts.triton_plan) (C(enable_gpu), C(gpu_ids), C(platform), C(arch), and from its
        C(runtime) section C(gpu_build) and C(min_compute_capability)).
    type: dict
    required: true
  host:
    description: The host's C(ansible_facts.triton_host) (GPU compute capabilities, C(igpu), C(arch)).
    type: dict
    required: true
  policy:
    description: Instance policy for every model without an override.
    type: str
    choices: [auto, keep]
    default: auto
  count:
    description: Instance count for every rendered group (C(auto) only); unset keeps the counts as written.
    type: int
  model_overrides:
    description: Per-model C(policy) and C(count), keyed by model name (repository mode).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Before and after text of every config.pbtxt that changes.
  facts:
    support: none
requirements:
  - tritonclient[grpc] (for model_config_pb2) and protobuf on the controller
"""

EXAMPLES = r"""
- name: Ensure model configs are rendered for this host
  triton_model_config:
    repository_src: "{{ playbook_dir }}/../examples/model_repository"
    dest: "{{ playbook_dir }}/../build/models/{{ inventory_hostname }}"
    plan: "{{ ansible_facts['triton_plan'] }}"
    host: "{{ ansible_facts['triton_host'] }}"
    policy: auto
    model_overrides:
      peoplenet: {count: 2}
  delegate_to: localhost

- name: Ensure one config is validated as written
  triton_model_config:
    src: files/detector/config.pbtxt
    dest: /tmp/rendered/detector/config.pbtxt
    plan: "{{ ansible_facts['triton_plan'] }}"
    host: "{{ ansible_facts['triton_host'] }}"
    policy: keep
  delegate_to: localhost
"""

RETURN = r"""
models:
  description: One entry per rendered model.
  returned: always
  type: list
  elements: dict
  sample: [{name: add_sub, dest: /build/models/h1/add_sub/config.pbtxt, changed: false}]
instance_groups:
  description: Instance groups Triton will create, per model, as Triton normalises them; feed to triton_server_check.
  returned: always
  type: dict
  sample: {peoplenet: [{name: peoplenet_0, kind: KIND_GPU, count: 1, gpus: [0]}]}
problems:
  description: The rules the configs break (on failure).
  returned: failure
  type: list
  elements: dict
"""

ARGUMENT_SPEC = {
    "src": {"type": "path"},
    "content": {"type": "str"},
    "repository_src": {"type": "path"},
    "dest": {"type": "path", "required": True},
    "plan": {"type": "dict", "required": True},
    "host": {"type": "dict", "required": True},
    "policy": {"type": "str", "choices": ["auto", "keep"], "default": "auto"},
    "count": {"type": "int"},
    "model_overrides": {"type": "dict", "default": {}},
}
SOURCES = ("src", "content", "repository_src")


def _render(p: dict):
    common = (p["plan"], p["host"], p["policy"], plan_runtime(p["plan"])["gpu_build"], p["count"])
    if p["repository_src"]:
        return render_repository(p["repository_src"], p["dest"], *common, p["model_overrides"])
    if p["src"]:
        with open(p["src"], encoding="utf-8") as handle:
            text = handle.read()
        return _one(text, p["src"], p, common)
    return _one(p["content"], f"content for {p['dest']}", p, common)


def _one(text: str, path: str, p: dict, common: tuple):
    rendered, warnings = render_one(text, path, p["dest"], *common)
    return [rendered], warnings


def _write(module: AnsibleModule, path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=module.tmpdir)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    module.atomic_move(tmp, path)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[SOURCES],
        required_one_of=[SOURCES],
        supports_check_mode=True,
    )
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("tritonclient[grpc]"), exception=str(IMPORT_ERROR))
    try:
        rendered, warnings = _render(module.params)
    except ModelConfigError as err:
        module.fail_json(msg=str(err), problems=[p.as_dict() for p in err.problems])
    except RuntimeSectionError as err:
        module.fail_json(msg=str(err))
    except OSError as err:
        module.fail_json(msg=f"cannot read a model config: {err}", exception=traceback.format_exc())
    for warning in warnings:
        module.warn(warning)
    changed = [r for r in rendered if r.changed]
    if not module.check_mode:
        for model in changed:
            _write(module, model.dest, model.text)
    result = {
        "changed": bool(changed),
        "models": [{"name": r.name, "dest": r.dest, "changed": r.changed} for r in rendered],
        "instance_groups": {r.name: r.instance_groups for r in rendered},
    }
    if module._diff:
        result["diff"] = [
            {"before": r.before or "", "after": r.text, "before_header": r.dest, "after_header": r.dest}
            for r in changed
        ]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
