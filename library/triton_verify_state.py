#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: read what verify compares against (installed release, models release, running server)."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_report import read_deployed

DOCUMENTATION = r"""
---
module: triton_verify_state
short_description: Read the installed Triton release, the active models release and the running server
description:
  - Reads, in one pass on the host, everything the verification compares against.
  - The installed release's C(<install_prefix>/current/manifest.json) (null when nothing is installed).
  - The active models release when C(<models_root>/current) is a symlink - its id (the link target's
    last component), the models root and the C(instance_groups.json) rendered into it (null when none
    is active).
  - The C(tritonserver) process started with C(--http-port=)O(http_port) under O(proc_root) - its pid,
    uid and the environment variables that decide what CUDA sees (C(CUDA_*), C(NVIDIA_*), C(PATH),
    C(LD_LIBRARY_PATH), C(HOME)), so the device check can run with the server's own view. The command
    line (it holds the restricted-API key) is never returned.
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
- name: Read what is installed, deployed and running
  triton_verify_state:
    install_prefix: /opt/tritonserver
    models_root: /srv/tritonfleet/models
    http_port: 8000
  register: __triton_verify_state
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
  sample: {id: 20260101T000000Z-1a2b3c4d, root: /srv/tritonfleet/models,
           instance_groups: {add_sub: [{name: add_sub_0, kind: KIND_CPU, count: 1, gpus: []}]}}
process:
  description: The running server C({found, pid, uid, environment, reason}); C(reason) says why none was found.
  returned: always
  type: dict
  sample: {found: true, pid: 4242, uid: 998, environment: {CUDA_VISIBLE_DEVICES: ""}, reason: null}
"""

ARGUMENT_SPEC = {
    "install_prefix": {"type": "path", "required": True},
    "models_root": {"type": "path", "required": True},
    "http_port": {"type": "int", "required": True},
    "proc_root": {"type": "path", "default": "/proc"},
}


def main() -> None:
    """Read the three and return them."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        result = read_deployed(Path(p["install_prefix"]), Path(p["models_root"]), Path(p["proc_root"]), p["http_port"])
    except (OSError, ValueError) as err:
        module.fail_json(
            msg=f"verify cannot read the deployed state: {err}. Looked in {p['install_prefix']}/current/manifest.json, "
            f"{p['models_root']}/current/instance_groups.json and {p['proc_root']}. Supported: the layout "
            "triton_install and triton_models write. Fix: rerun playbooks/site.yml on this host to rewrite them."
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
