#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: deploy an application that embeds Triton as a supervised service, checked, with rollback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_app import AppError, AppService, ReleaseMissing, deploy, make_checks, plan_release
from ansible.module_utils.triton_app_check import AppCheckError
from ansible.module_utils.triton_nvml import load_nvml
from ansible.module_utils.triton_runtime import RuntimeSectionError
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_config import Outcome, ensure_directory, service_manager_for
from ansible.module_utils.triton_service_run import log_tail

DOCUMENTATION = r"""
---
module: triton_app_deploy
short_description: Deploy an application that embeds Triton (libtritonserver) as a checked, supervised service
description:
  - Lays out the application release under O(root) (C(releases/<id>), C(current), C(previous)) from
    the source (uploaded archive or a host path), its build (O(build_command), run in the release with
    C(TRITON_HOME) set to the installed release) and a launcher that starts it as O(user) with
    exactly the environment the plan gives Triton (C(plan.runtime.env)), the release's C(lib/) on the
    loader path and the host's rendered model repository.
  - Before a new release takes over it runs the app check (ELF imports and the library it resolves to,
    against the plan) and, with O(probe), the in-process probe of the model repository through the
    release's libtritonserver with the plan's options. Error findings refuse the release; the running
    one is untouched.
  - Then points C(current) at it, restarts the program under supervisord (one file in the directory
    supervisord's configuration includes) or systemd (one unit), by the server's service-manager rule,
    waits until it stays up, and checks the running process (its environment and its GPU memory by
    NVML). On failure the previous release is put back and restarted, and the module fails with the findings.
  - A rerun with the same release changes nothing; a stopped program is started again.
version_added: "1.0.0"
author: tritonfleet
options:
  name:
    description: Application name (program C(tritonfleet-app-<name>)).
    type: str
    required: true
  root:
    description: Application root on the host.
    type: path
    required: true
  source:
    description:
      - C(digest) of the controller's source (uploaded to C(<root>/sources/<digest>.tar)),
      - or C(path) of the files on the host.
    type: dict
    required: true
  source_label:
    description: Where the source came from, for the release manifest.
    type: str
    default: ""
  command:
    description: The application's executable, relative to the release or absolute.
    type: str
    required: true
  args:
    description: Its arguments.
    type: list
    elements: str
    default: []
  env:
    description:
      - Its own environment variables.
      - Not C(CUDA_*), C(NVIDIA_*), C(TRITONFLEET_*), C(LD_*), C(PATH), C(HOME) - the plan and the launcher set those.
    type: dict
    default: {}
  server_args:
    description:
      - Append C(plan.runtime.server_args) to the arguments.
      - They are the tritonserver flags of the plan's memory and device options.
    type: bool
    default: false
  build_command:
    description: Build command run in the new release on the host (argv), or empty for none.
    type: list
    elements: str
    default: []
  build_timeout:
    description: Seconds the build may take.
    type: int
    default: 600
  plan:
    description: The plan (C(ansible_facts.triton_plan)) with its C(runtime) section.
    type: dict
    required: true
  install_prefix:
    description: Install prefix of M(triton_install_release); the application embeds C(<prefix>/current).
    type: path
    default: /opt/tritonserver
  model_repository:
    description: The host's rendered model repository.
    type: path
    default: /srv/tritonfleet/models/current
  state_dir:
    description: The application's home and working directory.
    type: path
    required: true
  user:
    description: Account the application runs as.
    type: str
    required: true
  group:
    description: Its group.
    type: str
    required: true
  manager:
    description:
      - Service manager of the application (the server's; the role passes C(triton_service_manager)).
      - C(auto) is the host's service manager as the C(triton_host.service_manager) fact decides it
        (C(triton_host.probe_service_manager)) - systemd where systemd manages services, supervisord elsewhere -
        the same decision the triton_service role reads.
    type: str
    choices: [auto, systemd, supervisor]
    default: auto
  supervisor:
    description: supervisord of the server (C(venv), C(conf), C(socket), C(include_dir)).
    type: dict
    required: true
  supervisor_program:
    description: The program section file content for supervisord.
    type: str
    required: true
  systemd_unit_dir:
    description: Directory of the systemd unit.
    type: path
    default: /etc/systemd/system
  systemd_unit:
    description: The systemd unit file content.
    type: str
    required: true
  log_file:
    description: The application's log (quoted when it does not stay up).
    type: path
    required: true
  log_tail_lines:
    description: Log lines quoted on failure.
    type: int
    default: 40
  start_timeout:
    description: Seconds the program has to be running past its start time.
    type: int
    default: 60
  keep_releases:
    description: Releases kept (current and previous never pruned).
    type: int
    default: 3
  probe:
    description: Run the in-process probe before a new release takes over.
    type: bool
    default: true
  probe_timeout:
    description: Seconds the probe may take.
    type: int
    default: 120
  expected_outputs:
    description: Model name to expected output values of the generated inputs (probe).
    type: dict
    default: {}
  host_gpus:
    description: The host's GPUs (C(triton_host.gpus)), for the compute-capability check.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    details: Reports what it would stage, build, write and restart; runs nothing.
  diff_mode:
    support: partial
    details: Shows the service file changes.
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure the embedded application runs its checked release
  triton_app_deploy:
    name: demo
    root: /opt/tritonfleet/apps/demo
    source: {digest: 0123456789abcdef}
    build_command: [make, TRITON_HOME=/opt/tritonserver/current]
    command: embedded_app
    args: [--model, add_sub]
    server_args: true
    plan: "{{ ansible_facts.triton_plan }}"
    state_dir: /var/lib/tritonfleet/apps/demo
    user: tritonserver
    group: tritonserver
    supervisor:
      venv: /opt/tritonfleet/supervisor
      conf: /etc/tritonfleet/supervisord.conf
      socket: /run/tritonfleet/supervisor.sock
      include_dir: /etc/tritonfleet/supervisor.d
    supervisor_program: "{{ lookup('template', 'program.conf.j2') }}"
    systemd_unit: "{{ lookup('template', 'app.service.j2') }}"
    log_file: /var/log/tritonfleet/app-demo.log
"""

RETURN = r"""
release:
  description: The release id the parameters describe.
  type: str
  returned: always
previous:
  description: The release C(current) pointed at before this run.
  type: str
  returned: always
source_missing:
  description: The release and its source archive are not on the host yet (upload it, then run again).
  type: bool
  returned: always
actions:
  description: What was done (or would be, in check mode).
  type: list
  elements: str
  returned: always
app_check:
  description: The app check (binary, process, environment, gpu_memory, findings) of the release that runs.
  type: dict
  returned: when it ran
probe:
  description: The in-process probe (server, options, models, gpu_memory, findings) before the switch.
  type: dict
  returned: when it ran
rolled_back:
  description: A failed release was replaced by the previous one.
  type: bool
  returned: always
"""

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "root": {"type": "path", "required": True},
    "source": {"type": "dict", "required": True},
    "source_label": {"type": "str", "default": ""},
    "command": {"type": "str", "required": True},
    "args": {"type": "list", "elements": "str", "default": []},
    "env": {"type": "dict", "default": {}},
    "server_args": {"type": "bool", "default": False},
    "build_command": {"type": "list", "elements": "str", "default": []},
    "build_timeout": {"type": "int", "default": 600},
    "plan": {"type": "dict", "required": True},
    "install_prefix": {"type": "path", "default": "/opt/tritonserver"},
    "model_repository": {"type": "path", "default": "/srv/tritonfleet/models/current"},
    "state_dir": {"type": "path", "required": True},
    "user": {"type": "str", "required": True},
    "group": {"type": "str", "required": True},
    "manager": {"type": "str", "choices": ["auto", "systemd", "supervisor"], "default": "auto"},
    "supervisor": {"type": "dict", "required": True},
    "supervisor_program": {"type": "str", "required": True},
    "systemd_unit_dir": {"type": "path", "default": "/etc/systemd/system"},
    "systemd_unit": {"type": "str", "required": True},
    "log_file": {"type": "path", "required": True},
    "log_tail_lines": {"type": "int", "default": 40},
    "start_timeout": {"type": "int", "default": 60},
    "keep_releases": {"type": "int", "default": 3},
    "probe": {"type": "bool", "default": True},
    "probe_timeout": {"type": "int", "default": 120},
    "expected_outputs": {"type": "dict", "default": {}},
    "host_gpus": {"type": "list", "elements": "dict", "default": []},
}


def main() -> None:
    """Stage, check, switch, check again; roll back on failure."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        wanted = plan_release(p)
    except ReleaseMissing as err:
        if not module.check_mode:
            module.fail_json(msg=str(err))
        # Check mode on a host whose release this run would install first.
        module.exit_json(changed=True, release=None, previous=None, source_missing=False, rolled_back=False,
                         actions=[f"deploy {p['name']} once the Triton release is installed"])  # fmt: skip
    except (AppError, RuntimeSectionError) as err:
        module.fail_json(msg=str(err))
    try:
        manager = service_manager_for(p["manager"])
        service = AppService(p, manager, module.run_command)
        outcome = Outcome()
        ensure_directory(Path(p["state_dir"]), p["user"], p["group"], 0o750, module.check_mode, outcome)
        nvml, nvml_reason = load_nvml()
        check, probe = make_checks(
            p,
            wanted["environment"],
            wanted["triton_home"],
            wanted["server_manifest"],
            wanted["library"],
            nvml,
            nvml_reason,
        )
        result = deploy(
            p,
            module.check_mode,
            service,
            lambda: wanted,
            check,
            probe,
            lambda argv, **kw: subprocess.run(argv, capture_output=True, text=True, check=False, **kw),
            lambda: log_tail(Path(p["log_file"]), p["log_tail_lines"]),
        )
        result["actions"] = outcome.changes + result["actions"]
        result["changed"] = result["changed"] or bool(outcome.changes)
    except AppError as err:
        module.fail_json(msg=str(err), **err.details)
    except (AppCheckError, ServiceConfigError, OSError) as err:
        module.fail_json(msg=f"application {p['name']}: {err}")
    diff = result.pop("diff", None)
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
