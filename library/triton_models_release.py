#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: build a host's model-repository release on the controller."""

from __future__ import annotations

import traceback
from dataclasses import replace
from pathlib import Path

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.triton_model_config import IMPORT_ERROR
from ansible.module_utils.triton_model_repository import render_settings
from ansible.module_utils.triton_models_release import (
    ReleaseError,
    build_release,
    check_overrides,
    judge_repository,
)
from ansible.module_utils.triton_module_run import ModuleFailure, run_as_module
from ansible.module_utils.triton_runtime import RuntimeSectionError, plan_runtime

DOCUMENTATION = r"""
---
module: triton_models_release
short_description: Build a host's model-repository release on the controller
description:
  - Renders every C(<model>/config.pbtxt) of the repository O(src) for one host (instance policy
    C(auto) or C(keep), per model overrides) with Triton's own schema and rules, and assembles the
    release (the source files, the rendered configs and C(instance_groups.json)) under
    O(build_dir)/<release id>.
  - The release id is a content hash of the source files and the rendered configs; the same input
    gives the same id. C(__pycache__/) and C(*.pyc) are never part of a release.
  - Refuses, before anything reaches the host, a repository the host's server would refuse, with
    Triton's message and the fix, every problem in one message. The checks are Triton's model
    configuration rules, in Triton's order (docs/model-config-rules.md) under either policy,
    the repository's layout (links leaving it, version directories, the model file each backend
    opens), the backends of the release, and the ensembles across models.
  - "Run it on the controller (C(delegate_to: localhost)); copy the release to the host afterwards."
version_added: "1.0.0"
author: tritonfleet
requirements:
  - tritonclient[grpc] and protobuf on the controller
options:
  src:
    description: Model repository on the controller (one directory per model, each with a config.pbtxt).
    type: path
    required: true
  build_dir:
    description:
      - Controller directory that receives the release as <build_dir>/<release id>.
      - Required unless O(validate_only) is set.
    type: path
  validate_only:
    description:
      - Only check the repository, build nothing, with the checks that hold for every host (layout, links,
        Triton's config rules, versions, model files, ensembles; and the backends when O(backends) is given).
        The host's instance groups are left to each host's build. The rollout runs this once before the canary.
    type: bool
    default: false
  plan:
    description:
      - The host's plan, C(ansible_facts.triton_plan); its C(runtime.gpu_build) says whether the server has GPU
        support. Not read with O(validate_only) (pass C({})).
    type: dict
    required: true
  host:
    description: The host's facts, C(ansible_facts.triton_host) (GPU compute capabilities, arch).
    type: dict
    required: true
  policy:
    description: Instance policy for models without an override.
    type: str
    choices: [auto, keep]
    default: auto
  policy_overrides:
    description: Model name to its instance policy (C(auto) or C(keep)).
    type: dict
    default: {}
  instance_counts:
    description: Model name to the instance count of each of its instance groups.
    type: dict
    default: {}
  backends:
    description:
      - The backends of the release that will serve the repository (the installed release's C(manifest.json)
        C(backends), or the plan's C(backends) before install). A model whose backend is not among them is
        refused with Triton's message. Omit when the release's backends are not known yet.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    details: In check mode the release id and configs are computed, nothing is written.
  diff_mode:
    support: none
    details: The switch module diffs the rendered configs against the host's current ones.
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the release for this host is built on the controller
  triton_models_release:
    src: "{{ playbook_dir }}/../examples/model_repository"
    build_dir: "{{ playbook_dir }}/../build/triton_models/{{ inventory_hostname }}"
    plan: "{{ ansible_facts['triton_plan'] }}"
    host: "{{ ansible_facts['triton_host'] }}"
    policy: auto
    policy_overrides: {detector: keep}
  delegate_to: localhost
"""

RETURN = r"""
release_id:
  description: Content hash naming the release.
  returned: success, unless validate_only
  type: str
  sample: 27b7725440c6d57d
path:
  description: Controller directory of the release (absent in check mode when it was not built before).
  returned: success, unless validate_only
  type: str
archive:
  description:
    - Controller path of the release packed as one uncompressed tar (C(<build_dir>/<release id>.tar)), which
      the deploy phase uploads in one transfer (absent in check mode when it was not built before).
  returned: success, unless validate_only
  type: str
models:
  description: Model names in the release (with validate_only, in the repository).
  returned: success
  type: list
  elements: str
  sample: [add_sub, scale]
configs:
  description: Model name to its rendered config.pbtxt text.
  returned: success, unless validate_only
  type: dict
instance_groups:
  description: Model name to the instance groups Triton will create, C([{name, kind, count, gpus}]).
  returned: success, unless validate_only
  type: dict
  sample: {add_sub: [{name: add_sub_0, kind: KIND_CPU, count: 1, gpus: []}]}
warnings_list:
  description: What rendering changed or kept on purpose (also emitted as warnings).
  returned: success, unless validate_only
  type: list
  elements: str
problems:
  description:
    - Every error of the repository (severity, code, model, group, message, found, supported, fix); the codes
      are listed in docs/model-config-rules.md.
  returned: failure
  type: list
  elements: dict
"""

ARGUMENT_SPEC = {
    "src": {"type": "path", "required": True},
    "build_dir": {"type": "path"},
    "validate_only": {"type": "bool", "default": False},
    "plan": {"type": "dict", "required": True},
    "host": {"type": "dict", "required": True},
    "policy": {"type": "str", "choices": ["auto", "keep"], "default": "auto"},
    "policy_overrides": {"type": "dict", "default": {}},
    "instance_counts": {"type": "dict", "default": {}},
    "backends": {"type": "list", "elements": "str"},
}


def run(params: dict, check_mode: bool) -> dict:
    """Render and assemble the release; fail with every model's problems at once.

    Also called in-process by the project's action plugin.
    """
    if IMPORT_ERROR is not None:
        raise ModuleFailure(missing_required_lib("tritonclient[grpc]"), exception=str(IMPORT_ERROR))
    src = Path(params["src"])
    if not params["validate_only"] and not params["build_dir"]:
        raise ModuleFailure(
            "build_dir is missing: a release is built into it. Found: no build_dir and validate_only false. "
            "Supported: build_dir with a build, or validate_only: true for a check. Fix: set build_dir."
        )
    try:
        counts = check_overrides(src, params["policy_overrides"], params["instance_counts"])
        # The fleet-wide check (validate_only) has no host's plan and leaves out what depends on
        # the host, the server build's GPU support included.
        gpu_build = True if params["validate_only"] else plan_runtime(params["plan"])["gpu_build"]
        render = render_settings(
            params["plan"],
            params["host"],
            params["policy"],
            gpu_build,
            params["policy_overrides"],
            counts,
            params["backends"],
        )
        if params["validate_only"]:
            check = judge_repository(src, replace(render, host_independent=True))
            return {"changed": False, "models": check.models, "warnings": check.warnings}
        build = build_release(src, Path(params["build_dir"]), render, write=not check_mode)
    except ReleaseError as err:
        raise ModuleFailure(str(err), problems=err.problems) from err
    except RuntimeSectionError as err:
        raise ModuleFailure(str(err)) from err
    except OSError as err:
        raise ModuleFailure(f"cannot build the release of {src}: {err}", exception=traceback.format_exc()) from err
    return {
        "changed": build.created,
        "release_id": build.release_id,
        "path": str(build.path),
        "archive": str(build.archive),
        "models": build.models,
        "configs": build.configs,
        "instance_groups": build.instance_groups,
        "warnings": list(build.warnings),
        "warnings_list": build.warnings,
    }


def main() -> None:
    run_as_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
