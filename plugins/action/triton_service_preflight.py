# SPDX-License-Identifier: Apache-2.0
"""Runs library/triton_service_preflight.py inside the controller's process (module_utils/triton_module_run.py)."""

from __future__ import annotations

from pathlib import Path

import ansible.module_utils

_PROJECT = Path(__file__).resolve().parents[2]
if str(_PROJECT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(_PROJECT / "module_utils"))

from ansible.module_utils.triton_module_run import controller_action  # noqa: E402  (needs the path above)

ActionModule = controller_action(_PROJECT / "library", Path(__file__).stem)
