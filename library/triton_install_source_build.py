#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: run Triton's build.py (no container) for the plan's release."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_install import require_plan
from ansible.module_utils.triton_install_errors import InstallError
from ansible.module_utils.triton_source_build import (
    interpreter_error,
    interpreter_probe,
    source_build_argv,
    source_build_needed,
)

DOCUMENTATION = r"""
module: triton_install_source_build
short_description: Build Triton server from a release-branch checkout with build.py
description:
  - Runs C(build.py --no-container-build --build-dir) from a server checkout, with
    C(--enable-gpu)/C(--enable-gpu-metrics) only when the plan's C(runtime.gpu_build) is true,
    C(--target-platform=igpu) on Jetson up to JetPack 6, C(--min-compute-capability) from the plan's
    C(runtime.min_compute_capability) and backends limited to the CPU-only set for a CPU-only build.
  - Skips the build when C(<prefix>/releases/<server_version>) already holds a complete source
    build of the same O(source) (repo@commit).
  - In check mode runs C(build.py ... --dryrun) when the checkout exists, and reports a change.
version_added: "0.1.0"
author: tritonfleet
options:
  prefix:
    description: Install prefix; its installed release decides whether a build is needed.
    type: path
    required: true
  plan:
    description: The install plan (C(ansible_facts.triton_plan)).
    type: dict
    required: true
  host:
    description: C(ansible_facts.triton_host) (JetPack version decides the igpu target).
    type: dict
    default: {}
  checkout:
    description: The server repository checkout holding C(build.py).
    type: path
    required: true
  build_dir:
    description: build.py C(--build-dir); the install tree lands in C(<build_dir>/opt/tritonserver).
    type: path
    required: true
  source:
    description: Repo and commit (C(URL@sha)) the manifest records; equal to the installed one means no build.
    type: str
    required: true
  backends:
    description: Backends to build.
    type: list
    elements: str
    default: [ensemble, python]
  python:
    description:
      - Interpreter that runs build.py; it must import what the release's build.py imports (C(distro) and
        C(requests) from 24.09 on), which the module checks before running it.
    type: str
    default: python3
attributes:
  check_mode:
    support: full
    description:
      - Runs build.py with --dryrun (writes only build scripts under build_dir), never builds; runs nothing where
        the checkout or the interpreter is still to be made, or the release's build.py has no --dryrun.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure Triton is built from the r24.10 checkout
  triton_install_source_build:
    prefix: /opt/tritonserver
    plan: "{{ ansible_facts['triton_plan'] }}"
    checkout: /opt/tritonserver/src/server
    build_dir: /opt/tritonserver/build/2.51.0
    source: https://github.com/triton-inference-server/server.git@0123abc
"""

RETURN = r"""
argv:
  description: The build.py command line (with --dryrun in check mode).
  returned: always
  type: list
  elements: str
install_dir:
  description: Where build.py installs the server (C(<build_dir>/opt/tritonserver)).
  returned: always
  type: str
built:
  description: Whether build.py ran (false when the release is already installed from this commit).
  returned: always
  type: bool
"""

ARGUMENT_SPEC = {
    "prefix": {"type": "path", "required": True},
    "plan": {"type": "dict", "required": True},
    "host": {"type": "dict", "default": {}},
    "checkout": {"type": "path", "required": True},
    "build_dir": {"type": "path", "required": True},
    "source": {"type": "str", "required": True},
    "backends": {"type": "list", "elements": "str", "default": ["ensemble", "python"]},
    "python": {"type": "str", "default": "python3"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    install_dir = os.path.join(p["build_dir"], "opt", "tritonserver")
    try:
        plan = require_plan(p["plan"])
        options = dict(p, dryrun=module.check_mode)
        argv = source_build_argv(plan, p["host"], options)
        needed = source_build_needed(Path(p["prefix"]), plan, p["source"])
    except InstallError as exc:
        module.fail_json(msg=str(exc))
    result = {"argv": argv, "install_dir": install_dir, "built": False, "changed": needed}
    # In check mode an earlier skipped clone or venv leaves no build.py or interpreter: report, run nothing.
    runnable = os.path.isfile(argv[1]) and shutil.which(argv[0]) is not None and "--dryrun" in argv
    if not needed or (module.check_mode and not runnable):
        module.exit_json(**result)
    environ = {"LANGUAGE": "C", "LC_ALL": "C"}
    probe = interpreter_probe(argv[0], str(plan["release"]))
    if probe:
        rc, _out, err = module.run_command(probe, environ_update=environ)
        if rc != 0:
            module.fail_json(msg=str(interpreter_error(argv[0], str(plan["release"]), err)), cmd=probe)
    rc, out, err = module.run_command(argv, cwd=p["checkout"], environ_update=environ)
    if rc != 0:
        module.fail_json(
            msg=f"build.py failed with exit code {rc} in {p['checkout']} (build dir {p['build_dir']}). "
            "A non-container build needs the build dependencies of the release's Dockerfile.buildbase "
            "(see build.py --dryrun output). Read stderr, install what is missing and rerun.",
            rc=rc,
            stdout=out,
            stderr=err,
            cmd=argv,
        )
    module.exit_json(**dict(result, built=not module.check_mode, stdout_lines=out.splitlines()[-20:]))


if __name__ == "__main__":
    main()
