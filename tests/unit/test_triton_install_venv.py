# SPDX-License-Identifier: Apache-2.0
"""The wheel method's venv: pip runs only when the venv lacks the exact pin; paths come from the venv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import triton_install_release
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.triton_install import build_request
from ansible.module_utils.triton_install_errors import InstallError
from ansible.module_utils.triton_wheel_venv import venv_holds, wheel_request_paths, wheel_venv_commands
from support.plans import base_host, make_plan

# A CPU host's plan for a CPU-only source build (tests/support/plans.py runs the real triton_compat).
PLAN = make_plan(base_host(), "24.10", "source")


def make_venv(root: Path, dists: list[str], python: str = "3.11") -> Path:
    site = root / "lib" / f"python{python}" / "site-packages"
    site.mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to("/usr/bin/python3")
    for dist in dists:
        (site / f"{dist}.dist-info").mkdir()
    return root


def venv_spec(path: Path, requirement: str = "nvidia-pytriton==0.7.0", extra: str = "") -> dict:
    return {"path": str(path), "python": "/usr/bin/python3", "requirement": requirement, "extra_args": extra}


def test_exact_pin_present_needs_no_command(tmp_path):
    venv = make_venv(tmp_path / "v", ["nvidia_pytriton-0.7.0", "numpy-1.26.4"])
    assert venv_holds(venv, "nvidia-pytriton==0.7.0")
    assert venv_holds(venv, " Nvidia.PyTriton == 0.7.0 ")
    assert wheel_venv_commands(venv_spec(venv)) == []


@pytest.mark.parametrize(
    "requirement",
    ["nvidia-pytriton==0.7.1", "nvidia-pytriton>=0.7.0", "nvidia-pytriton", "https://x/nvidia_pytriton-0.7.0.whl"],
)
def test_other_version_or_no_exact_pin_runs_pip(tmp_path, requirement):
    venv = make_venv(tmp_path / "v", ["nvidia_pytriton-0.7.0"])
    assert not venv_holds(venv, requirement)
    commands = wheel_venv_commands(venv_spec(venv, requirement, "--no-index --find-links /srv/wheels"))
    assert commands == [
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
         "--no-index", "--find-links", "/srv/wheels", requirement],
    ]  # fmt: skip


def test_missing_venv_is_created_first(tmp_path):
    venv = tmp_path / "absent"
    commands = wheel_venv_commands(venv_spec(venv))
    assert commands[0] == ["/usr/bin/python3", "-m", "venv", str(venv)]
    assert commands[1][-1] == "nvidia-pytriton==0.7.0"
    assert wheel_request_paths(venv)["python_version"] is None


def test_request_paths_come_from_the_venv(tmp_path):
    venv = make_venv(tmp_path / "v", [], python="3.12")
    paths = wheel_request_paths(venv)
    assert paths == {
        "src": str(venv / "lib" / "python3.12" / "site-packages"),
        "python_bin_dir": str(venv / "bin"),
        "python_version": "3.12",
    }


def test_wheel_without_venv_or_paths_is_refused():
    params = {"method": "wheel", "plan": PLAN, "src": None, "python_bin_dir": None, "python_version": None}
    with pytest.raises(InstallError, match="venv"):
        build_request(params)


def test_check_mode_reports_the_venv_commands_and_changes_nothing(tmp_path, capsys):
    venv = tmp_path / "venv"
    args = {"prefix": str(tmp_path / "prefix"), "method": "wheel", "plan": PLAN, "source": "pypi:x",
            "venv": venv_spec(venv), "_ansible_check_mode": True}  # fmt: skip
    with patch_module_args(args), pytest.raises(SystemExit):
        triton_install_release.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is True
    assert result["actions"][0] == f"/usr/bin/python3 -m venv {venv}"
    assert any(action.startswith("install wheel release 2.51.0") for action in result["actions"])
    assert not venv.exists() and not (tmp_path / "prefix").exists()


def test_failing_venv_command_fails_before_the_prefix_changes(tmp_path, capsys):
    args = {"prefix": str(tmp_path / "prefix"), "method": "wheel", "plan": PLAN, "source": "pypi:x",
            "venv": dict(venv_spec(tmp_path / "venv"), python=str(tmp_path / "no-python"))}  # fmt: skip
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        triton_install_release.main()
    result = json.loads(capsys.readouterr().out)
    assert info.value.code == 1 and result["failed"] is True
    assert "no-python" in result["msg"] and "rerun" in result["msg"]
    assert not (tmp_path / "prefix").exists()
