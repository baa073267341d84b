# SPDX-License-Identifier: Apache-2.0
"""One calling convention for tritonfleet's controller-side modules.

A module that only computes on the controller (the plan, the models release, the report)
exposes ``run(params, check_mode) -> result`` next to its ``main()``. ``main()`` serves a
module run (AnsibleModule validates, ``run`` works, ``exit_json`` answers); the project's
action plugin of the same name calls ``run`` inside the controller's worker process, which
saves the module process (fork, payload, interpreter start: about a quarter of a second per
task per host on a small controller), with the same argument validation.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class ModuleFailure(Exception):
    """A module's failure: the message and the extra result keys fail_json would carry."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


def run_as_module(argument_spec: dict[str, Any], run: Callable[[dict, bool], dict[str, Any]]) -> None:
    """The ``main()`` of such a module run as a plain module: validate, ``run``, answer, exit."""
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode)
    except ModuleFailure as failure:
        module.fail_json(msg=failure.msg, **failure.details)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


def load_library_module(library_dir: Path, name: str) -> Any:
    """Import ``library/<name>.py`` once per process, under a private name."""
    key = f"_tritonfleet_library_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, library_dir / f"{name}.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load module {name} from {library_dir}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def run_in_process(library_dir: Path, name: str, args: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    """Validate ``args`` against the module's ARGUMENT_SPEC and call its ``run``; never raises ModuleFailure."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    module = load_library_module(library_dir, name)
    validated = ArgumentSpecValidator(module.ARGUMENT_SPEC).validate(dict(args))
    if validated.error_messages:
        errors = "; ".join(message.rstrip(".") for message in validated.error_messages)
        return {
            "failed": True,
            "msg": f"{name}: invalid arguments: {errors}. See `ansible-doc -M library {name}` for the options.",
        }
    try:
        result = module.run(validated.validated_parameters, check_mode)
    except ModuleFailure as failure:
        return {"failed": True, "msg": failure.msg, **failure.details}
    return {"changed": False, **result}


def controller_action(library_dir: Path, name: str) -> type:
    """The action plugin class that runs module ``name`` of ``library_dir`` in the controller's process."""
    from ansible.plugins.action import ActionBase

    class ControllerModuleAction(ActionBase):
        """The module's own argument spec and logic, without a module process."""

        TRANSFERS_FILES = False

        def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
            result = super().run(tmp, task_vars)
            result.update(run_in_process(library_dir, name, self._task.args, bool(self._task.check_mode)))
            return result

    return ControllerModuleAction
