# SPDX-License-Identifier: Apache-2.0
"""The triton_install_* modules: documentation matches ARGUMENT_SPEC; main() installs, fails, dry-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import triton_install_release
import triton_install_source_build
import yaml
from ansible.module_utils.testing import patch_module_args
from support.plans import base_host, make_plan
from support.server_checkout import fake_server_checkout

REPO_ROOT = Path(__file__).resolve().parents[2]
# A CPU host's plan for a CPU-only source build (tests/support/plans.py runs the real triton_compat).
PLAN = make_plan(base_host(), "24.10", "source")


@pytest.mark.parametrize("module", [triton_install_release, triton_install_source_build], ids=lambda m: m.__name__)
def test_documentation_matches_argument_spec(module) -> None:
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) == set(module.ARGUMENT_SPEC)
    for name, spec in module.ARGUMENT_SPEC.items():
        option = doc["options"][name]
        assert option["type"] == spec["type"], name
        assert option.get("required", False) == spec.get("required", False), name
        assert option.get("default") == spec.get("default"), name
        assert option.get("choices") == spec.get("choices"), name
        assert option.get("elements") == spec.get("elements"), name
    assert set(doc["attributes"]) == {"check_mode", "diff_mode", "facts"}
    assert all("returned" in entry for entry in yaml.safe_load(module.RETURN).values())
    yaml.safe_load(module.EXAMPLES)


def _run(capsys, module, args: dict, check_mode: bool = False) -> dict:
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tritonserver").write_text("#!/bin/sh\n")
    (root / "bin" / "tritonserver").chmod(0o755)
    (root / "TRITON_VERSION").write_text("2.51.0\n")
    return root


def test_release_main_installs_then_reports_no_change(tmp_path: Path, capsys) -> None:
    args = {"prefix": str(tmp_path / "p"), "method": "source", "plan": PLAN, "source": "repo@1",
            "src": str(_tree(tmp_path / "tree"))}  # fmt: skip
    first = _run(capsys, triton_install_release, args)
    assert first["changed"] is True and first["manifest"]["method"] == "source"
    assert os.readlink(tmp_path / "p" / "current") == "releases/2.51.0"
    second = _run(capsys, triton_install_release, args)
    assert second["changed"] is False


def test_release_main_bad_checksum_fails_and_drops_the_cached_download(tmp_path: Path, capsys) -> None:
    archive = tmp_path / "cache" / "abc-tritonserver2.51.0.tgz"
    archive.parent.mkdir()
    archive.write_bytes(b"not the archive")
    args = {"prefix": str(tmp_path / "p"), "method": "tarball", "plan": PLAN, "source": "http://127.0.0.1/x.tgz",
            "archive": str(archive), "sha256": "0" * 64, "remove_bad_archive": True}  # fmt: skip
    result = _run(capsys, triton_install_release, args)
    assert result["failed"] is True and "Checksum mismatch" in result["msg"]
    assert not archive.exists()


def test_source_build_main_check_mode_runs_the_dryrun(tmp_path: Path, capsys) -> None:
    checkout = fake_server_checkout(tmp_path / "server")
    args = {"prefix": str(tmp_path / "p"), "plan": PLAN, "checkout": str(checkout), "build_dir": str(tmp_path / "b"),
            "source": "repo@1", "python": "python3"}  # fmt: skip
    result = _run(capsys, triton_install_source_build, args, check_mode=True)
    assert result["changed"] is True and result["built"] is False
    assert result["argv"][-1] == "--dryrun"
    (call,) = [json.loads(line) for line in (tmp_path / "b" / "fake-build-calls.jsonl").read_text().splitlines()]
    assert call["dryrun"] is True
    assert not (tmp_path / "b" / "opt").exists()


def test_source_build_main_reports_a_failed_build(tmp_path: Path, capsys) -> None:
    checkout = tmp_path / "server"
    checkout.mkdir()
    (checkout / "build.py").write_text("import sys\nprint('cmake: no compiler', file=sys.stderr)\nsys.exit(2)\n")
    args = {"prefix": str(tmp_path / "p"), "plan": PLAN, "checkout": str(checkout), "build_dir": str(tmp_path / "b"),
            "source": "repo@1", "python": "python3"}  # fmt: skip
    result = _run(capsys, triton_install_source_build, args)
    assert result["failed"] is True and result["rc"] == 2
    assert "build.py failed with exit code 2" in result["msg"] and "no compiler" in result["stderr"]


def test_source_build_main_refuses_an_interpreter_without_build_pys_modules(tmp_path: Path, capsys) -> None:
    checkout = fake_server_checkout(tmp_path / "server")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    args = {"prefix": str(tmp_path / "p"), "plan": PLAN, "checkout": str(checkout), "build_dir": str(tmp_path / "b"),
            "source": "repo@1", "python": str(bare / "bin" / "python")}  # fmt: skip
    result = _run(capsys, triton_install_source_build, args)
    assert result["failed"] is True
    assert "build.py of release 24.10 imports distro, requests, which the interpreter" in result["msg"]
    assert "ModuleNotFoundError: No module named 'distro'" in result["msg"]
    assert "triton_install_source_build_packages" in result["msg"]
    assert not (tmp_path / "b").exists()


def test_role_defaults_match_argument_specs() -> None:
    role = REPO_ROOT / "roles" / "triton_install"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, option in options.items():
        if "default" in option:
            assert option["default"] == defaults[name], name
