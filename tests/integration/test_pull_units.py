"""The pull role's systemd service and timer, rendered by Ansible from the role's own templates
and variables, checked by systemd-analyze (this machine has no systemd to run the timer; the
pidfile-daemon path is run for real in test_pull_mode.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.role_templates import render_role_templates

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pull-units")
    script = base / "bin" / "tritonfleet-pull"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    render_role_templates(
        "triton_pull",
        ["tritonfleet-pull.service", "tritonfleet-pull.timer"],
        base,
        {
            "triton_pull_bin_dir": str(base / "bin"),
            "triton_pull_repo_url": "file:///srv/git/tritonfleet.git",
            "triton_pull_interval": 900,
            "triton_pull_splay": 120,
        },
    )
    return base


def test_service_and_timer_pass_systemd_analyze_verify(rendered: Path):
    units = [str(rendered / "tritonfleet-pull.service"), str(rendered / "tritonfleet-pull.timer")]
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_timer_repeats_with_the_interval_and_splay(rendered: Path):
    timer = set((rendered / "tritonfleet-pull.timer").read_text().splitlines())
    assert {"OnActiveSec=900", "OnUnitInactiveSec=900", "RandomizedDelaySec=120", "WantedBy=timers.target"} <= timer


def test_service_runs_the_pull_script_once_per_activation(rendered: Path):
    service = set((rendered / "tritonfleet-pull.service").read_text().splitlines())
    assert {"Type=oneshot", f"ExecStart={rendered}/bin/tritonfleet-pull"} <= service
