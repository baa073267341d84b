#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: lay a Triton release out under <prefix>/releases/<version> and switch current."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_install import build_request, container_argv, install_release
from ansible.module_utils.triton_install_errors import ChecksumError, InstallError
from ansible.module_utils.triton_wheel_venv import wheel_venv_commands

DOCUMENTATION = r"""
module: triton_install_release
short_description: Install one Triton server release atomically under a prefix
description:
  - Stages the release from a pytriton wheel (installed in a venv), a release tarball, a build.py
    install tree, or (C(container)) makes the image present and writes its run specification, into
    C(<prefix>/releases/.staging-<version>-<random>).
  - C(container) pulls a registry image only when the engine lacks it, or loads an archive after checking
    its sha256 (also in check mode, before any change); the image must declare the plan's server version
    (NGC's C(com.nvidia.tritonserver.version) label or C(TRITON_SERVER_VERSION)); the release records the
    image id, and is reinstalled when the engine no longer holds that image (docs/containers.md).
  - Verifies the staged tree (C(bin/tritonserver), the server version, GPU build against the plan),
    writes C(manifest.json) last, renames the staging dir to C(<prefix>/releases/<version>), points
    C(<prefix>/current) at it and keeps the newest O(keep_releases) releases.
  - Leftover staging dirs and release dirs without a manifest are removed first.
  - Up to date (no change) when the release's manifest has the same version, method, source,
    sha256 and python_bin_dir and its files still match the manifest's C(files_sha256).
version_added: "0.1.0"
author: tritonfleet
options:
  prefix:
    description: Install prefix (C(triton_install_prefix)).
    type: path
    required: true
  method:
    description: Where the release comes from.
    type: str
    required: true
    choices: [wheel, tarball, container, source]
  plan:
    description:
      - The install plan (C(ansible_facts.triton_plan)); needs server_version, release, platform and runtime.
      - The staged artifact must be the build its C(runtime.gpu_build) names (GPU or CPU-only).
    type: dict
    required: true
  source:
    description: What the manifest records as the artifact's origin (package spec, URL, path, repo@commit).
    type: str
    required: true
  src:
    description:
      - C(wheel) the venv's site-packages dir holding C(pytriton/tritonserver); C(source) the build's install dir.
    type: path
  archive:
    description:
      - C(tarball) the release archive on the host.
      - C(container) the downloaded image archive, deleted on a checksum mismatch with O(remove_bad_archive).
    type: path
  sha256:
    description: C(tarball) the archive's expected sha256.
    type: str
  remove_bad_archive:
    description: Delete O(archive) when its checksum is wrong (a cached download), so the next run fetches it again.
    type: bool
    default: false
  python_bin_dir:
    description:
      - bin dir of the Python (with numpy) the python backend stub runs with.
      - C(wheel) without O(venv) only; with O(venv) it is the venv's C(bin).
    type: path
  python_version:
    description:
      - Minor version of that Python (C(3.11)); picks the python backend stub.
      - C(wheel) without O(venv) only; with O(venv) it is read from the venv.
    type: str
  venv:
    description:
      - C(wheel) the venv that holds the wheel. The module makes it (C(python -m venv)) and runs pip only
        when the venv lacks the exact pin O(venv.requirement) (a requirement that is not C(name==version)
        always runs pip), then takes O(src), O(python_bin_dir) and O(python_version) from it.
      - In check mode the commands are reported in RV(actions), not run.
    type: dict
    suboptions:
      path:
        description: The venv directory.
        type: path
        required: true
      python:
        description: Interpreter the venv is made from (the python backend stub links its libpython).
        type: path
        default: /usr/bin/python3
      requirement:
        description: pip requirement that carries the server, for example C(nvidia-pytriton==0.7.0).
        type: str
        required: true
      extra_args:
        description: Extra pip arguments (an index URL, C(--no-index --find-links ...)).
        type: str
        default: ""
  keep_releases:
    description: How many complete releases to keep (the current one always stays).
    type: int
    default: 3
  host:
    description: C(ansible_facts.triton_host) (container engines, NVIDIA runtime, JetPack); used by C(container).
    type: dict
    default: {}
  container:
    description:
      - C(container) run options; the GPU flags and the environment come from the plan's C(runtime) section.
      - Keys C(engine) (the plan's C(container_engine)), C(source) (a registry source with C(type) and C(image), or an
        archive source with C(type), C(path), C(sha256), C(url) and C(image); see C(triton_install_container_source)),
        C(name), C(user), C(models_root) (mounted read-only at the same path) and C(shm_size).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description:
      - Reports the actions it would take and changes nothing.
      - A missing artifact (a download skipped in check mode) is not an error.
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the Triton release from the wheel venv is current
  triton_install_release:
    prefix: /opt/tritonserver
    method: wheel
    plan: "{{ ansible_facts['triton_plan'] }}"
    source: pypi:nvidia-pytriton==0.7.0
    venv:
      path: /opt/tritonserver/venvs/pytriton-0.7.0
      requirement: nvidia-pytriton==0.7.0
"""

RETURN = r"""
release_dir:
  description: The release directory (C(<prefix>/releases/<server_version>)).
  returned: always
  type: str
manifest:
  description: The release's manifest (null in check mode before a first install).
  returned: always
  type: dict
actions:
  description: What was (or, in check mode, would be) done, one line each.
  returned: always
  type: list
  elements: str
container_argv:
  description: The engine command line for the container method (the service runs it); null for the other methods.
  returned: always
  type: list
  elements: str
current:
  description: The C(current) link of the prefix, which points at RV(release_dir).
  returned: always
  type: str
"""

ARGUMENT_SPEC = {
    "prefix": {"type": "path", "required": True},
    "method": {"type": "str", "required": True, "choices": ["wheel", "tarball", "container", "source"]},
    "plan": {"type": "dict", "required": True},
    "source": {"type": "str", "required": True},
    "src": {"type": "path"},
    "archive": {"type": "path"},
    "sha256": {"type": "str"},
    "remove_bad_archive": {"type": "bool", "default": False},
    "python_bin_dir": {"type": "path"},
    "python_version": {"type": "str"},
    "keep_releases": {"type": "int", "default": 3},
    "host": {"type": "dict", "default": {}},
    "container": {"type": "dict", "default": {}},
    "venv": {
        "type": "dict",
        "options": {
            "path": {"type": "path", "required": True},
            "python": {"type": "path", "default": "/usr/bin/python3"},
            "requirement": {"type": "str", "required": True},
            "extra_args": {"type": "str", "default": ""},
        },
    },
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[
            ("method", "tarball", ("archive", "sha256")),
            ("method", "source", ("src",)),
        ],
    )
    venv_commands = wheel_venv_commands(module.params["venv"]) if module.params["venv"] else []
    for argv in [] if module.check_mode else venv_commands:
        try:
            rc, out, err = module.run_command(argv, handle_exceptions=False)
        except OSError as exc:
            rc, out, err = 127, "", str(exc)
        if rc != 0:
            module.fail_json(
                msg=f"Preparing the wheel's venv failed: {' '.join(argv)} exited {rc}: {(err or out).strip()[-2000:]}. "
                "Nothing under the prefix changed. Check that the interpreter has the venv module and that the "
                "package index (or triton_install_pip_extra_args) is reachable, then rerun.",
                rc=rc,
            )

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    try:
        request = build_request(module.params)
        result = install_release(request, module.check_mode, run)
    except ChecksumError as exc:
        if module.params["remove_bad_archive"] and module.params["archive"]:
            module.add_cleanup_file(module.params["archive"])
        module.fail_json(msg=str(exc), path=module.params["archive"])
    except InstallError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(
            msg=f"Installing the Triton release under {module.params['prefix']} failed: {exc}. "
            "The previous release and the current link are unchanged. Fix the cause (space, permissions) and rerun.",
            path=getattr(exc, "filename", None),
        )
    result["current"] = str(Path(module.params["prefix"]) / "current")
    result["container_argv"] = (
        container_argv(Path(result["release_dir"])) if module.params["method"] == "container" else None
    )
    if venv_commands:
        result["actions"] = [" ".join(argv) for argv in venv_commands] + result["actions"]
        result["changed"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
