"""The role's systemd unit and supervisord config, rendered by Ansible from the role's own
templates and variables, checked by systemd-analyze (this machine has no systemd to run it),
also through the verifier the config module runs before it installs a unit."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_config import systemd_verifier
from support.role_templates import render_role_templates

pytestmark = pytest.mark.integration

KEY = "k3yFromTheKeyFileOnlyXXXXXXXXXXXXXXXXXXXXXXXXXXX"


def _render(base: Path, plan: dict) -> Path:
    launcher = base / "opt" / "bin" / "tritonfleet-serve"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    (base / "etc").mkdir()
    (base / "etc" / "api-key").write_text(KEY)
    render_role_templates(
        "triton_service",
        ["tritonserver.service", "supervisord.conf"],
        base,
        {
            "triton_service_home": str(base / "opt"),
            "triton_service_config_dir": str(base / "etc"),
            "triton_service_log_dir": str(base / "log"),
            "triton_service_install_prefix": "/opt/tritonserver",
            "triton_service_model_repository": "/srv/tritonfleet/models/current",
            "triton_service_plan": plan,
        },
    )
    return base


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(tmp_path_factory.mktemp("unit"), {"install_method": "wheel", "platform": "cpu"})


@pytest.fixture(scope="module")
def rendered_container(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(tmp_path_factory.mktemp("container-unit"), {"install_method": "container", "platform": "cpu"})


def test_unit_passes_systemd_analyze_verify_without_warnings(rendered: Path):
    result = subprocess.run(
        ["systemd-analyze", "verify", str(rendered / "tritonserver.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_unit_runs_the_launcher_hardened_with_a_read_only_repository(rendered: Path):
    unit = (rendered / "tritonserver.service").read_text()
    lines = set(unit.splitlines())
    assert f"ExecStart={rendered}/opt/bin/tritonfleet-serve" in lines
    for directive in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "ReadOnlyPaths=-/srv/tritonfleet/models/current -/opt/tritonserver",
        "ReadWritePaths=/var/lib/tritonfleet",
        f"StandardOutput=append:{rendered}/log/tritonserver.log",
    ):
        assert directive in lines


def test_rendered_files_reference_the_key_file_not_the_key(rendered: Path):
    for name in ("tritonserver.service", "supervisord.conf"):
        text = (rendered / name).read_text()
        assert KEY not in text
        assert f"{rendered}/etc/api-key" in text
    conf = (rendered / "supervisord.conf").read_text()
    assert f"command={rendered}/opt/bin/tritonfleet-serve" in conf.splitlines()
    assert "autorestart=true" in conf.splitlines()


def run(argv: Sequence[str]) -> tuple[int, str, str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def test_the_modules_verifier_accepts_the_unit_and_rejects_a_broken_one(rendered: Path):
    """The check triton_service_config runs before it installs a new unit, with the real tool."""
    verify = systemd_verifier(run, shutil.which("systemd-analyze"), "tritonserver.service")
    verify((rendered / "tritonserver.service").read_bytes())
    broken = (rendered / "tritonserver.service").read_text().replace("ExecStart=/", "ExecStart=")
    with pytest.raises(ServiceConfigError, match="Neither a valid executable name nor an absolute path"):
        verify(broken.encode())


def test_container_unit_passes_systemd_analyze_and_leaves_the_sandbox_to_the_engine(rendered_container: Path):
    unit = rendered_container / "tritonserver.service"
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    lines = set(unit.read_text().splitlines())
    assert f"ExecStart={rendered_container}/opt/bin/tritonfleet-serve" in lines
    # The stop signal reaches the engine's client only, which hands it to the server in the container.
    assert "KillMode=mixed" in lines and "TimeoutStopSec=40" in lines
    # podman and docker need root's capabilities, the cgroup tree and their storage.
    assert not {line.split("=")[0] for line in lines} & {
        "CapabilityBoundingSet", "ProtectSystem", "NoNewPrivileges", "ProtectControlGroups", "ReadOnlyPaths",
    }  # fmt: skip
