#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: promote, activate and prune model-repository releases on a host."""

from __future__ import annotations

import grp
import pwd
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_models_switch import (
    PHASES,
    Recovery,
    SwitchError,
    TritonHttp,
    activate,
    config_diffs,
    promote_staging,
    read_api_key_headers,
    unpack_upload,
)
from ansible.module_utils.triton_release_lifecycle import (
    PREVIOUS_LINK,
    linked_release,
    prune,
    release_dir,
    remove_leftovers,
)
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_run import ensure_running

DOCUMENTATION = r"""
---
module: triton_models_switch
short_description: Activate a model-repository release on a host, rolling back on failure
description:
  - Promotes a fully copied staging directory to C(<root>/releases/<release>) when its files hash to
    the release id (nothing half-copied becomes a release).
  - Phase C(deploy) points C(<root>/current) at the release when there is no current release yet or no
    server is live (the server loads C(current) when it starts); a live server is left for phase C(switch).
  - Phase C(deploy) also points C(current) at the release when the live server is not ready (it serves
    nothing then, and the service step restarts it on C(current)).
  - Phase C(switch) points C(current) at the release and, on a live server started with
    C(--model-control-mode=explicit), loads the models whose files changed, unloads the models the
    release no longer has, and checks that every model and the server are ready, each step within
    O(timeout). On any failure the previous release is restored (the new release's models unloaded by
    name, link back, models reloaded, the server ready again); when the repository API cannot get the
    server ready (Triton keeps a model without a version directory in its state, a python model without
    C(model.py) never finishes loading), or the server stopped answering, the service is restarted on the
    previous release (O(service)). Only then does the module fail, with the server's own answer and the
    lines its log (O(service.log_file)) wrote about the model.
  - Keeps the newest O(keep_releases) releases; the current and previous ones are never removed.
version_added: "1.0.0"
author: tritonfleet
options:
  root:
    description: Models root on the host (C(releases/), C(current), C(previous) live there).
    type: path
    required: true
  release:
    description: Release id to activate (from M(triton_models_release)).
    type: str
    required: true
  phase:
    description: C(deploy) (before the service step) or C(switch) (after it).
    type: str
    choices: [deploy, switch]
    default: switch
  staging:
    description: Staged copy to promote to the release first; omitted when the release is already there.
    type: path
  archive:
    description:
      - The release uploaded as one tar (from C(triton_models_release)'s RV(archive)); when the release is not
        on the host yet it is unpacked into O(staging) (only plain files inside the release are accepted), then
        promoted like a copied staging directory, and removed.
    type: path
  owner:
    description: Owner of the files unpacked from O(archive).
    type: str
    default: root
  group:
    description: Group of the files unpacked from O(archive).
    type: str
    default: root
  when_missing:
    description:
      - What to do when C(releases/<release>) is not on the host yet. C(fail) (a staged copy is still
        promoted first). C(report) returns RV(release_missing) and changes nothing, so the caller copies the
        release only then; a converged host costs one module run instead of a stat and this one.
    type: str
    choices: [fail, report]
    default: fail
  configs:
    description: Model name to the rendered config.pbtxt text; only used for C(--diff) against C(current).
    type: dict
    default: {}
  url:
    description: Base URL of the server's HTTP endpoint.
    type: str
    default: http://127.0.0.1:8000
  api_key_header:
    description: Header that carries the restricted-API key (C(--http-restricted-api)); empty when unrestricted.
    type: str
    default: ""
  api_key_file:
    description: File on the host holding the restricted-API key; read by the module, never returned.
    type: path
  keep_releases:
    description: How many releases to keep (the newest; current and previous always stay).
    type: int
    default: 3
  timeout:
    description:
      - Seconds a single load may take, and each wait (unloads, readiness) of the switch and of its rollback.
    type: int
    default: 300
  service:
    description:
      - How the service runs, as the C(service) result of M(triton_service_config) (C(manager),
        C(supervisor_venv), C(supervisor_conf), C(supervisor_socket), C(systemd_unit), C(systemd_unit_file),
        C(launcher), C(http_address), C(http_port), C(ready_timeout), C(log_file), C(log_tail_lines)).
      - With it a failed switch quotes the server log and, as a last resort, restarts the service on the
        previous release; without it (C({})) a rollback the repository API cannot finish is only reported.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    details: Reports the release it would promote, the switch it would do and the releases it would prune.
  diff_mode:
    support: full
    details: Shows each rendered config.pbtxt against the one the current release has.
  facts:
    support: none
"""

EXAMPLES = r"""
- name: Ensure release 27b7725440c6d57d is the one the server serves
  triton_models_switch:
    root: /srv/tritonfleet/models
    release: 27b7725440c6d57d
    phase: switch
    url: http://127.0.0.1:8000
    api_key_header: triton-admin-key
    api_key_file: /etc/tritonfleet/api-key
"""

RETURN = r"""
release_missing:
  description: True when O(when_missing=report) and the release is not on the host; nothing else was done.
  returned: always
  type: bool
release:
  description: The release that is (or would be) current.
  returned: always
  type: str
previous:
  description: The release that was current before, or null.
  returned: always
  type: str
promoted:
  description: Whether the staging copy became the release.
  returned: always
  type: bool
link_switched:
  description: Whether C(current) moved to the release.
  returned: always
  type: bool
server_live:
  description: Whether a server answered on O(url).
  returned: always
  type: bool
pending_switch:
  description:
    - Phase deploy only; a live server serves another release, or not exactly the active release's models,
      and phase switch will switch (or reload) it. False means phase switch has nothing to do in this run.
  returned: always
  type: bool
loaded:
  description: Models loaded (or, in check mode, to load) through the repository API.
  returned: always
  type: list
  elements: str
unloaded:
  description: Models unloaded because the release no longer has them.
  returned: always
  type: list
  elements: str
models:
  description: Models of the release.
  returned: always
  type: list
  elements: str
pruned:
  description: Old release ids removed (or, in check mode, to remove).
  returned: always
  type: list
  elements: str
errors:
  description: Model name to the server's error text, when the switch was rolled back.
  returned: failure
  type: dict
restored_release:
  description: The release served again after a rollback.
  returned: failure
  type: str
server_log:
  description: Lines the server's log wrote about the failed models during the switch.
  returned: failure
  type: list
  elements: str
restarted:
  description: Whether the service was restarted on the previous release (the repository API could not restore it).
  returned: failure
  type: bool
server_ready:
  description: Whether the server serves the previous release again after the rollback.
  returned: failure
  type: bool
"""

ARGUMENT_SPEC = {
    "root": {"type": "path", "required": True},
    "release": {"type": "str", "required": True},
    "phase": {"type": "str", "choices": list(PHASES), "default": "switch"},
    "staging": {"type": "path"},
    "archive": {"type": "path"},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "when_missing": {"type": "str", "choices": ["fail", "report"], "default": "fail"},
    "configs": {"type": "dict", "default": {}},
    "url": {"type": "str", "default": "http://127.0.0.1:8000"},
    "api_key_header": {"type": "str", "default": "", "no_log": False},
    "api_key_file": {"type": "path"},
    "keep_releases": {"type": "int", "default": 3},
    "timeout": {"type": "int", "default": 300},
    "service": {"type": "dict", "default": {}},
}


def recovery(module: AnsibleModule) -> Recovery:
    """The server log and the restart of last resort, from the service's published settings."""
    service = module.params["service"]
    if not service:
        return Recovery()

    def restart() -> str | None:
        params = {**service, "state": "restarted", "reload_config": False}
        manager = service["manager"]
        try:
            ensure_running(params, manager, False, module.run_command)
        except (ServiceConfigError, OSError) as err:
            return str(err)
        return None

    return Recovery(Path(service["log_file"]), restart)


def main() -> None:
    """Promote, activate, prune; a failed switch is rolled back before fail_json."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    root, check = Path(p["root"]), module.check_mode
    if p["when_missing"] == "report" and not release_dir(root, p["release"]).is_dir():
        module.exit_json(changed=False, release_missing=True, release=p["release"], previous=linked_release(root))
    try:
        staging = Path(p["staging"]) if p["staging"] else None
        if staging and p["archive"]:
            owner = (pwd.getpwnam(p["owner"]).pw_uid, grp.getgrnam(p["group"]).gr_gid)
            unpack_upload(root, p["release"], Path(p["archive"]), staging, owner, check)
        promoted = promote_staging(root, p["release"], staging, check) if staging else False
        diff = config_diffs(root, p["configs"]) if module._diff and linked_release(root) != p["release"] else []
        client = TritonHttp(p["url"], read_api_key_headers(p["api_key_file"], p["api_key_header"]), p["timeout"])
        result = activate(root, p["release"], client, p["phase"], check, float(p["timeout"]), recovery(module))
        protected = {r for r in (linked_release(root), linked_release(root, PREVIOUS_LINK), p["release"]) if r}
        pruned = prune(root, p["keep_releases"], protected, check)
        remove_leftovers(root, check, keep=[staging] if staging else [])
    except KeyError as err:
        module.fail_json(
            msg=f"the owner {p['owner']!r} or group {p['group']!r} of the release files does not exist on the host "
            f"({err}); set triton_models_owner and triton_models_group to an existing user and group",
        )
    except SwitchError as err:
        module.fail_json(msg=str(err), **err.details)
    except OSError as err:
        module.fail_json(msg=f"cannot activate release {p['release']} under {root}: {err}", path=str(root))
    values = result.as_dict()
    values["changed"] = values["changed"] or promoted or bool(pruned)
    module.exit_json(release_missing=False, promoted=promoted, pruned=pruned, diff=diff, **values)


if __name__ == "__main__":
    main()
