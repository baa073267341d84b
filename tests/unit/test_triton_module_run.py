# SPDX-License-Identifier: Apache-2.0
"""Controller-side modules run in-process (plugins/action/*): same validation, results and failures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.triton_module_run import load_library_module, run_in_process
from ansible.plugins.action import ActionBase
from test_triton_compat import base_host

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "library"
MATRIX_PATH = REPO / "roles" / "triton_platform" / "files" / "triton_matrix.yml"
ACTIONS = sorted((REPO / "plugins" / "action").glob("*.py"))


def module_run(capsys, name: str, args: dict) -> dict:
    """The same module run the classic way: AnsibleModule, exit_json/fail_json."""
    with patch_module_args(args), pytest.raises(SystemExit):
        load_library_module(LIBRARY, name).main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "args",
    [
        {"host": base_host(), "matrix_path": str(MATRIX_PATH), "release": "2.51.0"},
        {"host": base_host(), "matrix_path": str(MATRIX_PATH), "enable_gpu": "true"},
        {"host": base_host(), "matrix_path": str(MATRIX_PATH), "release": "99.99"},
    ],
    ids=["plan", "contradiction", "unknown-release"],
)
def test_in_process_result_equals_the_module_run(capsys, args):
    in_process = run_in_process(LIBRARY, "triton_compat", args, check_mode=False)
    classic = module_run(capsys, "triton_compat", args)
    classic.pop("invocation", None)
    assert in_process == classic
    if "release" in args and args["release"] == "99.99":
        assert in_process["failed"] is True and "99.99" in in_process["msg"]


def test_invalid_arguments_fail_with_the_supported_options():
    result = run_in_process(LIBRARY, "triton_compat", {"host": {}, "matrix_path": "/x", "bogus": 1}, False)
    assert result["failed"] is True
    assert "bogus" in result["msg"] and "matrix_path" in result["msg"] and "ansible-doc" in result["msg"]


def test_missing_required_argument_fails():
    result = run_in_process(LIBRARY, "triton_compat", {"host": {}}, False)
    assert result["failed"] is True and "matrix_path" in result["msg"]


def test_check_mode_reaches_the_module(tmp_path):
    args = {"dest": str(tmp_path / "reports"), "host_name": "h1", "generated_at": "2026-11-25T00:00:00Z"}
    checked = run_in_process(LIBRARY, "triton_verify_report", args, check_mode=True)
    assert checked["changed"] is True and not (tmp_path / "reports").exists()
    written = run_in_process(LIBRARY, "triton_verify_report", args, check_mode=False)
    assert written["changed"] is True and (tmp_path / "reports" / "verify.json").is_file()


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: p.stem)
def test_every_action_plugin_runs_its_own_library_module(path):
    assert (LIBRARY / path.name).is_file(), f"{path} has no library/{path.name} to run"
    spec = importlib.util.spec_from_file_location(f"_action_{path.stem}", path)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    assert issubclass(plugin.ActionModule, ActionBase)
    assert hasattr(load_library_module(LIBRARY, path.stem), "run")
