#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: pack an embedded application's files on the controller into one content-addressed archive."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.triton_app import AppError, pack_source
from ansible.module_utils.triton_module_run import ModuleFailure, run_as_module

DOCUMENTATION = r"""
---
module: triton_app_source
short_description: Pack an embedded application's files on the controller into one archive named by their content hash
description:
  - Hashes O(src) (a directory, or one file) by path, executable bit and content, and writes
    C(<build_dir>/app-<name>-<digest>.tar) once per digest. The archive crosses to the host in one transfer,
    where M(triton_app_deploy) unpacks it and checks it hashes to the same digest.
  - Runs on the controller; the project's action plugin runs it inside the controller's process.
version_added: "1.0.0"
author: tritonfleet
options:
  src:
    description: The application's files on the controller.
    type: path
    required: true
  build_dir:
    description: Directory on the controller for the archive.
    type: path
    required: true
  name:
    description: Application name (part of the archive name).
    type: str
    required: true
attributes:
  check_mode:
    support: full
    details: Writes the archive in check mode too; it is a controller-side build artifact, not a host change.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the application's files are packed on the controller
  triton_app_source:
    src: examples/embedded_app
    build_dir: build/apps
    name: demo
  delegate_to: localhost
"""

RETURN = r"""
digest:
  description: Content hash of the files (the release's source digest).
  type: str
  returned: always
archive:
  description: The archive on the controller.
  type: str
  returned: always
files:
  description: Number of files packed.
  type: int
  returned: always
"""

ARGUMENT_SPEC = {
    "src": {"type": "path", "required": True},
    "build_dir": {"type": "path", "required": True},
    "name": {"type": "str", "required": True},
}


def run(params: dict, check_mode: bool) -> dict:
    """Pack (or find) the archive; also called in-process by the action plugin."""
    try:
        return {"changed": False, **pack_source(Path(params["src"]), Path(params["build_dir"]), params["name"])}
    except (AppError, OSError) as err:
        raise ModuleFailure(str(err)) from err


def main() -> None:
    run_as_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
