# SPDX-License-Identifier: Apache-2.0
"""playbooks/rollout.yml checks the model repository once on the controller before the canary starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def test_a_repository_no_host_can_serve_stops_the_rollout_before_the_canary(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "model_repository", repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "scale" / "config.pbtxt").write_text(
        (repo / "scale" / "config.pbtxt").read_text().replace("max_batch_size: 8", "max_batch_size: -8")
    )
    (repo / "add_sub" / "1" / "model.py").unlink()
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [
            str(PLAYBOOK),
            "-i",
            str(REPO / "inventory" / "local.yml"),
            "playbooks/rollout.yml",
            "--check",
            "-e",
            f"triton_models_src={repo}",
            "-e",
            f"triton_rollout_report_dir={tmp_path / 'reports'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode != 0, out
    assert "Ensure the model repository passes the checks that hold for every host" in out
    assert f"model repository {repo} cannot be served (2 problems)" in out
    assert "Python model file not found in 'add_sub/1/model.py'" in out
    assert "'max_batch_size' must be non-negative value for scale" in out
    # Nothing of the canary ran: no preflight, no install.
    assert "Ensure the host passes preflight" not in out
    assert "triton_install" not in out
