#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: remove the server's container (and, when asked, its image) of every container release."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_container_image import ContainerError, remove_releases

DOCUMENTATION = r"""
---
module: triton_container_remove
short_description: Remove the server's container, and optionally its image, of every container release
description:
  - Reads the run specification (C(container.json)) of every release under O(install_prefix) that
    the C(container) install method wrote, and removes the named container through the engine and
    with the settings recorded there, whether it runs or not.
  - With O(remove_image), also removes each release's image (by id).
  - A host without container releases, or whose containers and images are already gone, is left
    unchanged. Run it after the service manager stopped the server and before the install prefix is deleted.
version_added: "0.1.0"
author: tritonfleet
options:
  install_prefix:
    description: Install prefix of the C(triton_install) role (C(releases/*/container.json) under it).
    type: path
    required: true
  remove_image:
    description: Also remove the releases' images.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reports what it would remove.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the server's container and image are absent
  triton_container_remove:
    install_prefix: /opt/tritonserver
    remove_image: true
"""

RETURN = r"""
actions:
  description: Engine commands run (or, in check mode, that would run), one line each.
  returned: always
  type: list
  elements: str
  sample: ["podman rm --force tritonserver", "podman rmi 5d7f1fcf3f3c"]
"""

ARGUMENT_SPEC = {
    "install_prefix": {"type": "path", "required": True},
    "remove_image": {"type": "bool", "default": False},
}


def main() -> None:
    """Remove each container release's container (and image) through its engine."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    try:
        actions = remove_releases(
            Path(module.params["install_prefix"]), run, module.params["remove_image"], module.check_mode
        )
    except ContainerError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(actions), actions=actions)


if __name__ == "__main__":
    main()
