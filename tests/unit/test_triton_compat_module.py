# SPDX-License-Identifier: Apache-2.0
"""The triton_compat module wrapper: facts on success, four-part fail_json, check mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import triton_compat as module
from ansible.module_utils.testing import patch_module_args
from test_triton_compat import base_host, dgpu_host, gpu

MATRIX_PATH = Path(__file__).resolve().parents[2] / "roles" / "triton_platform" / "files" / "triton_matrix.yml"


def run(capsys, **args):
    params = {"host": base_host(), "matrix_path": str(MATRIX_PATH), **args}
    with patch_module_args(params), pytest.raises(SystemExit) as info:
        module.main()
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("check_mode", [False, True])
def test_plan_returned_as_facts_and_nothing_changes(capsys, check_mode):
    extra = {"_ansible_check_mode": True} if check_mode else {}
    code, result = run(capsys, release="2.51.0", **extra)
    assert code == 0
    assert result["changed"] is False
    plan = result["ansible_facts"]["triton_plan"]
    assert (plan["release"], plan["server_version"], plan["instance_kind"]) == ("24.10", "2.51.0", "KIND_CPU")


def test_compat_error_becomes_fail_json_with_parts(capsys):
    code, result = run(capsys, enable_gpu="true")
    assert code == 1
    assert result["failed"] is True
    assert result["msg"].startswith("the request contradicts the host")
    assert result["found"] in result["msg"] and result["todo"] in result["msg"]
    assert "ansible_facts" not in result


def test_garbage_version_in_facts_fails_cleanly(capsys):
    code, result = run(capsys, host=dgpu_host([gpu(0, "NVIDIA L4", "8.9")], driver="five-fifty"))
    assert code == 1
    assert "cannot be compared" in result["msg"]
    assert "five-fifty" in result["msg"]
    assert "re-gather triton_host" in result["msg"]


def test_missing_matrix_fails(capsys, tmp_path):
    code, result = run(capsys, matrix_path=str(tmp_path / "none.yml"))
    assert code == 1
    assert "cannot be read" in result["msg"]
