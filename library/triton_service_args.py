#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: compute the tritonserver command line and environment for a plan."""

from __future__ import annotations

import os
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_service import (
    SYSTEM_PATH,
    ServiceConfigError,
    container_launch_argv,
    probe_host,
    read_manifest,
    server_argv,
    server_env,
)

DOCUMENTATION = r"""
---
module: triton_service_args
short_description: Compute the tritonserver argv and environment for a triton_plan
description:
  - Reads C(<install_prefix>/current/manifest.json) of the installed release and returns the
    server's command line and complete environment for the plan, as the C(triton_service) role
    renders them into its launcher.
  - C(--load-model) flags and the restricted-API key are not part of the result; the launcher adds
    them when the server starts.
  - Changes nothing on the host.
version_added: "0.1.0"
author: tritonfleet
options:
  plan:
    description: The plan, C(ansible_facts.triton_plan).
    type: dict
    required: true
  host_gpu_ids:
    description: CUDA ids of every GPU the host has (C(triton_host.gpus[].index)); CPU plans zero their pools.
    type: list
    elements: int
    default: []
  install_prefix:
    description: Install prefix of the triton_install role; its C(current) link names the release.
    type: path
    required: true
  model_repository:
    description: Model repository the server serves.
    type: path
    required: true
  state_dir:
    description: The service user's state directory, used as C(HOME).
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
    description: Let the server complete partial model configurations (off in a secure deployment).
    type: bool
    default: false
  jetson_pinned_memory_pool_bytes:
    description: Pinned memory pool on Jetson GPU plans (unified memory).
    type: int
    default: 67108864
  jetson_cuda_memory_pool_bytes:
    description: CUDA memory pool per GPU on Jetson GPU plans (unified memory).
    type: int
    default: 67108864
  extra_args:
    description: Extra server arguments, appended last.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Read-only. In check mode a missing release is reported with RV(installed)=false instead of failing.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Compute the server command line
  triton_service_args:
    plan: "{{ ansible_facts['triton_plan'] }}"
    host_gpu_ids: "{{ ansible_facts['triton_host']['gpus'] | map(attribute='index') | list }}"
    install_prefix: /opt/tritonserver
    model_repository: /srv/tritonfleet/models/current
    state_dir: /var/lib/tritonfleet
    http_address: 0.0.0.0
    http_port: 8000
    grpc_address: 0.0.0.0
    grpc_port: 8001
    metrics_address: 127.0.0.1
    metrics_port: 8002
  register: __triton_service_args
"""

RETURN = r"""
installed:
  description: Whether C(<install_prefix>/current/manifest.json) exists (false only in check mode).
  type: bool
  returned: always
release_dir:
  description: The release C(current) resolves to.
  type: str
  returned: when installed
  sample: /opt/tritonserver/releases/2.51.0
server_version:
  description: Triton server version from the manifest.
  type: str
  returned: when installed
  sample: 2.51.0
container:
  description:
    - The release is a C(container) release; I(argv) is then the engine's C(run) command whose
      container runs the server as the image's C(triton-server) user.
  type: bool
  returned: when installed
argv:
  description: Server command line, binary first, without C(--load-model) and the restricted-API flags.
  type: list
  elements: str
  returned: when installed
env:
  description: Complete environment of the server process.
  type: dict
  returned: when installed
  sample: {PATH: "/opt/tritonserver/venvs/python/bin:/usr/bin:/bin", CUDA_VISIBLE_DEVICES: ""}
http_probe_host:
  description: Address a local client uses to reach the HTTP endpoint (loopback for a wildcard bind).
  type: str
  returned: always
  sample: 127.0.0.1
"""

ARGUMENT_SPEC = {
    "plan": {"type": "dict", "required": True},
    "host_gpu_ids": {"type": "list", "elements": "int", "default": []},
    "install_prefix": {"type": "path", "required": True},
    "model_repository": {"type": "path", "required": True},
    "state_dir": {"type": "path", "required": True},
    "http_address": {"type": "str", "required": True},
    "http_port": {"type": "int", "required": True},
    "grpc_address": {"type": "str", "required": True},
    "grpc_port": {"type": "int", "required": True},
    "metrics_address": {"type": "str", "required": True},
    "metrics_port": {"type": "int", "required": True},
    "auto_complete_config": {"type": "bool", "default": False},
    "jetson_pinned_memory_pool_bytes": {"type": "int", "default": 67108864},
    "jetson_cuda_memory_pool_bytes": {"type": "int", "default": 67108864},
    "extra_args": {"type": "list", "elements": "str", "default": []},
}


def main() -> None:
    """Read the manifest, build argv and env, return them."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = dict(module.params)
    release_dir = Path(os.path.realpath(os.path.join(params["install_prefix"], "current")))
    try:
        probe = probe_host(params["http_address"])
        if module.check_mode and not (release_dir / "manifest.json").exists():
            module.warn(f"No installed release under {params['install_prefix']}; check mode assumes one is coming.")
            module.exit_json(changed=False, installed=False, http_probe_host=probe)
        manifest = read_manifest(release_dir)
        options = {**params, "release_dir": str(release_dir), "gpu_build": manifest["gpu_build"]}
        container = manifest.get("method") == "container"
        if container:
            argv = container_launch_argv(release_dir, manifest, options)
            env = {"PATH": SYSTEM_PATH}
        else:
            argv = server_argv(params["plan"], options)
            env = server_env(params["plan"], manifest, options)
    except ServiceConfigError as err:
        module.fail_json(msg=str(err))
    module.exit_json(
        changed=False,
        installed=True,
        release_dir=str(release_dir),
        server_version=manifest["server_version"],
        argv=argv,
        env=env,
        container=container,
        http_probe_host=probe,
    )


if __name__ == "__main__":
    main()
