#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: check an application that embeds Triton against the plan, and probe its models in-process."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_app import AppError, AppService, make_checks, server_release
from ansible.module_utils.triton_app_check import AppCheckError
from ansible.module_utils.triton_nvml import load_nvml
from ansible.module_utils.triton_release_lifecycle import CURRENT_LINK, ManifestError, read_manifest
from ansible.module_utils.triton_runtime import RuntimeSectionError
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_config import service_manager_for

DOCUMENTATION = r"""
---
module: triton_app_check
short_description: Check an application embedding Triton against the plan; probe its models in-process
description:
  - Reads the application's binary as ELF (pyelftools) - its NEEDED libraries, the CUDA entry points it
    imports itself, the Triton option setters it imports - and the libtritonserver the loader gives it
    (RPATH, LD_LIBRARY_PATH, RUNPATH, system directories), and whether that library is a GPU build.
  - Judges them against the plan (C(triton_plan) with its C(runtime) section) - CUDA allocation calls of
    its own on a CPU plan; a GPU-built library on a CPU plan without zero pools or hidden GPUs; a GPU plan
    whose minimum compute capability excludes the host's GPUs or that the application cannot lower.
  - With a running process (O(pid), or O(service) / the deployed release's program) - its environment
    against C(plan.runtime.env), and its GPU memory (and its children's) by NVML, which must be 0 on every
    GPU on a CPU plan. Without NVML (Jetson before JetPack 7) the memory is reported as not measured.
  - With O(probe) - loads the model repository in-process through the release's libtritonserver with the
    plan's options, in a child process, and reports per model the load result with Triton's message, the
    instance groups Triton completed, one inference with generated CPU inputs, and what its allocator was asked for.
  - Fails on an error finding unless O(fail_on_error=false) (verify writes the report first).
version_added: "1.0.0"
author: tritonfleet
options:
  app_root:
    description: Root of a deployed application (C(current) and its manifest give binary, environment and program).
    type: path
  binary:
    description: The application's executable or script (overrides the deployed release's).
    type: path
  environment:
    description:
      - The environment it runs with, when no process is checked.
      - Default - the environment of the deployed release's launcher.
    type: dict
  pid:
    description: Its running process.
    type: int
  service:
    description: supervisord program or systemd unit name whose main process is checked.
    type: str
  manager:
    description:
      - Service manager of the application (the server's; the role passes C(triton_service_manager)).
      - C(auto) is the host's service manager as the C(triton_host.service_manager) fact decides it
        (C(triton_host.probe_service_manager)) - systemd where systemd manages services, supervisord elsewhere -
        the same decision the triton_service role reads.
    type: str
    choices: [auto, systemd, supervisor]
    default: auto
  supervisor_socket:
    description: supervisord's socket.
    type: path
    default: /run/tritonfleet/supervisor.sock
  plan:
    description: The plan with its C(runtime) section.
    type: dict
    required: true
  install_prefix:
    description: Install prefix of the Triton release the application embeds.
    type: path
    default: /opt/tritonserver
  host_gpus:
    description: The host's GPUs (C(triton_host.gpus)).
    type: list
    elements: dict
    default: []
  probe:
    description: Run the in-process probe of O(model_repository).
    type: bool
    default: false
  model_repository:
    description: The host's rendered model repository.
    type: path
    default: /srv/tritonfleet/models/current
  expected_outputs:
    description: Model name to expected output values for the generated inputs.
    type: dict
    default: {}
  probe_timeout:
    description: Seconds the probe may take.
    type: int
    default: 120
  root:
    description: Root the files are read under (a mounted image; tests).
    type: path
    default: /
  fail_on_error:
    description: Fail when a finding is an error.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Changes nothing; the probe runs in check mode too (it loads models in a child process and stops it).
  diff_mode:
    support: none
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Check the deployed application and probe its models in-process
  triton_app_check:
    app_root: /opt/tritonfleet/apps/demo
    plan: "{{ ansible_facts.triton_plan }}"
    probe: true

- name: Check any binary against the plan
  triton_app_check:
    binary: /usr/local/bin/detector
    environment: {LD_LIBRARY_PATH: /opt/tritonserver/current/lib}
    plan: "{{ ansible_facts.triton_plan }}"
"""

RETURN = r"""
release:
  description: The Triton release the application embeds (dir, library, include, server version, gpu_build).
  type: dict
  returned: always
app_release:
  description: The deployed application release checked, or null.
  type: str
  returned: always
app_check:
  description: binary (ELF facts, library), process, environment and its source, gpu_memory, findings.
  type: dict
  returned: always
probe:
  description: The in-process probe, or null.
  type: dict
  returned: always
findings:
  description: Every finding of the check and the probe.
  type: list
  elements: dict
  returned: always
verdict:
  description: C(failed) when a finding is an error, else C(passed).
  type: str
  returned: always
"""

ARGUMENT_SPEC = {
    "app_root": {"type": "path"},
    "binary": {"type": "path"},
    "environment": {"type": "dict"},
    "pid": {"type": "int"},
    "service": {"type": "str"},
    "manager": {"type": "str", "choices": ["auto", "systemd", "supervisor"], "default": "auto"},
    "supervisor_socket": {"type": "path", "default": "/run/tritonfleet/supervisor.sock"},
    "plan": {"type": "dict", "required": True},
    "install_prefix": {"type": "path", "default": "/opt/tritonserver"},
    "host_gpus": {"type": "list", "elements": "dict", "default": []},
    "probe": {"type": "bool", "default": False},
    "model_repository": {"type": "path", "default": "/srv/tritonfleet/models/current"},
    "expected_outputs": {"type": "dict", "default": {}},
    "probe_timeout": {"type": "int", "default": 120},
    "root": {"type": "path", "default": "/"},
    "fail_on_error": {"type": "bool", "default": True},
}


def main() -> None:
    """Read the deployed application (when named), check it, probe; fail on errors unless told not to."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    root = Path(p["root"])
    try:
        triton_home, server_manifest, library = server_release(root / p["install_prefix"].lstrip("/"))
        deployed = read_manifest(Path(p["app_root"]) / CURRENT_LINK) if p["app_root"] else None
        binary = Path(p["binary"]) if p["binary"] else Path(deployed["argv"][0]) if deployed else None
        environment = p["environment"] if p["environment"] is not None else (deployed or {}).get("environment", {})
        pid, not_running = p["pid"], None
        program = p["service"] or (deployed or {}).get("program")
        if pid is None and program:
            manager = service_manager_for(p["manager"], root)
            service = AppService(
                {"supervisor": {"socket": p["supervisor_socket"]}}, manager, module.run_command, program
            )
            pid = service.pid()
            not_running = None if pid else f"{manager} runs no process for {program} ({service.status()[1]})"
        nvml, nvml_reason = load_nvml() if root == Path("/") else (None, f"files read under {root}, not this host")
        check, probe = make_checks(p, environment, triton_home, server_manifest, library, nvml, nvml_reason, root)
        app_check = check(binary, pid, not_running) if binary or pid else None
        if app_check is None:
            raise AppCheckError(
                "Nothing to check: no binary, pid, service or deployed application (app_root). The app check "
                "needs one of them. Pass app_root for an application triton_app deployed."
            )
        probed = probe() if p["probe"] else None
    except (AppError, AppCheckError, ManifestError, RuntimeSectionError, ServiceConfigError, OSError) as err:
        module.fail_json(msg=str(err))
    findings = app_check["findings"] + ((probed or {}).get("findings") or [])
    errors = [f for f in findings if f["severity"] == "error"]
    result = {
        "changed": False,
        "release": {
            "dir": str(triton_home),
            "library": str(library),
            "include": server_manifest.get("include"),
            "server_version": server_manifest.get("server_version"),
            "gpu_build": server_manifest.get("gpu_build"),
        },
        "app_release": (deployed or {}).get("release"),
        "app_check": app_check,
        "probe": probed,
        "findings": findings,
        "verdict": "failed" if errors else "passed",
    }
    if errors and p["fail_on_error"]:
        listed = "; ".join(f"[{f['code']}] {f['message']} (fix: {f['fix']})" for f in errors)
        module.fail_json(msg=f"the embedded application does not match the plan: {listed}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
