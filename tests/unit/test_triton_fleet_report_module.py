# SPDX-License-Identifier: Apache-2.0
"""The triton_fleet_report module: documentation matches ARGUMENT_SPEC; main() writes and reports."""

from __future__ import annotations

import json
import os

import pytest
import triton_fleet_report as module
import yaml
from ansible.module_utils.testing import patch_module_args


def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) == set(module.ARGUMENT_SPEC)
    for name, spec in module.ARGUMENT_SPEC.items():
        option = doc["options"][name]
        assert option["type"] == spec["type"], name
        assert option.get("required", False) == spec.get("required", False), name
        assert option.get("default") == spec.get("default"), name
        assert option.get("elements") == spec.get("elements"), name
    assert set(doc["attributes"]) == {"check_mode", "diff_mode", "facts"}
    assert yaml.safe_load(module.RETURN)["summary"]["returned"] == "always"
    yaml.safe_load(module.EXAMPLES)


def _run(capsys, args, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def _args(tmp_path, **extra):
    args = {
        "fleet_dir": str(tmp_path / "reports" / "fleet"),
        "reports_dir": str(tmp_path / "reports"),
        "rollout_id": "20261124T221900Z",
        "hosts": ["a", "b", "c"],
        "batches": [1, "100%"],
        "results": {"a": {"verdict": "passed", "release_before": "2.50.0", "release_after": "2.51.0"}},
        "batches_done": 1,
        "max_fail_percentage": 0,
    }
    return dict(args, **extra)


def test_main_writes_report_and_returns_progress_line(tmp_path, capsys):
    (tmp_path / "reports" / "a").mkdir(parents=True)
    (tmp_path / "reports" / "a" / "verify.md").write_text("# a\n")
    result = _run(capsys, _args(tmp_path))
    assert result["changed"] is True
    assert result["summary"] == "batch 1/2: hosts a — passed: a; failed: -"
    assert result["plan"] == [["a"], ["b", "c"]]
    assert result["status"] == "in progress"
    fleet = tmp_path / "reports" / "fleet"
    assert os.readlink(fleet / "latest") == "20261124T221900Z"
    html = (fleet / "latest" / "fleet.html").read_text()
    assert 'href="../../a/verify.md"' in html
    assert (fleet / "latest" / "../../a/verify.md").is_file()
    assert _run(capsys, _args(tmp_path))["changed"] is False


def test_main_check_mode_writes_nothing(tmp_path, capsys):
    result = _run(capsys, _args(tmp_path), check_mode=True)
    assert result["changed"] is True
    assert not (tmp_path / "reports").exists()


def test_main_fails_on_bad_batch(tmp_path, capsys):
    result = _run(capsys, _args(tmp_path, batches=[1, "many"]))
    assert result["failed"] is True
    assert "triton_rollout_batches has an entry that is not a batch size: 'many'" in result["msg"]


def test_main_fails_on_unwritable_dir(tmp_path, capsys):
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the report directory should be\n")
    result = _run(capsys, _args(tmp_path))
    assert result["failed"] is True
    assert "could not be written under" in result["msg"]
    assert "triton_rollout_report_dir" in result["msg"]
