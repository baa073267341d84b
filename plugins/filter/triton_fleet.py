# SPDX-License-Identifier: Apache-2.0
"""Filters the rollout plays template with: the batch plan and the report root (module_utils/triton_fleet_report.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ansible.module_utils
from ansible.errors import AnsibleFilterError

_PROJECT = Path(__file__).resolve().parents[2]
if str(_PROJECT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(_PROJECT / "module_utils"))

from ansible.module_utils.triton_fleet_report import FleetReportError, report_root, rollout_serial  # noqa: E402


def triton_rollout_serial(batches: Any, canary: str | None = None) -> dict[str, Any]:
    """``{canary, rest}``: the serial of the canary play and of the batch play."""
    try:
        return rollout_serial(batches, canary)
    except FleetReportError as err:
        raise AnsibleFilterError(str(err)) from None


class FilterModule:
    """tritonfleet's filters."""

    def filters(self) -> dict[str, Any]:
        return {"triton_rollout_serial": triton_rollout_serial, "triton_report_root": report_root}
