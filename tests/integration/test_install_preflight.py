"""The install role refuses a bad request before any change, with a message that says what is
wrong, what was found, what is supported and what to do (real ansible-playbook, no server)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.plans import base_host, jetson_host, make_plan, podman_engine, with_containers, with_method

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- name: Install preflight only
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the role's request checks
      ansible.builtin.include_role:
        name: triton_install
        tasks_from: preflight.yml
"""
# Plans as preflight makes them (tests/support/plans.py runs the real triton_compat).
CPU_PLAN = make_plan(base_host())
JETSON_PLAN = make_plan(jetson_host("orin-jp6"), "24.10", "tarball")
NO_ENGINE_HOST = {"container_engines": [], "nvidia_container_runtime": {"present": False, "paths": [], "cdi_specs": []}}
CONTAINER_HOST = with_containers(base_host(), runtime=False, engines=[podman_engine()])
CPU_CONTAINER_PLAN = make_plan(CONTAINER_HOST, "24.10", "container")


def run_preflight(tmp_path: Path, extra: dict) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}
    variables = {"triton_install_prefix": str(tmp_path / "prefix"), "triton_install_host": NO_ENGINE_HOST, **extra}
    return subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "ansible-playbook"), str(play), "-e", json.dumps(variables)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"triton_install_plan": with_method(JETSON_PLAN, "wheel")},
            ["cannot serve this host: platform jetson", "Arm server (SBSA) build", "Use triton_install_method=tarball"],
        ),
        (
            {
                "triton_install_plan": JETSON_PLAN,
                "triton_install_tarball_sha256": "abc",
            },
            [
                "needs an archive and its checksum",
                "triton_install_tarball_sha256 is 'abc'",
                "64-hex-digit sha256",
                "Set triton_install_tarball_url",
            ],
        ),
        (
            {"triton_install_plan": with_method(JETSON_PLAN, "container")},
            [
                "triton_install_method=container runs the server with no engine",
                "the engines that can start a container on this host are [] (triton_host.container_engines)",
                "Supported: docker or podman that can run here",
                "Rerun preflight with triton_install_method=container",
            ],
        ),
        (
            {
                "triton_install_plan": CPU_CONTAINER_PLAN,
                "triton_install_host": CONTAINER_HOST,
                "triton_install_container_source": {"type": "archive", "path": "/srv/images/t.tar"},
            },
            [
                "triton_install_container_source is {'type': 'archive', 'path': '/srv/images/t.tar'}",
                "with url or path and its 64-hex-digit sha256",
                "Set triton_install_container_source",
            ],
        ),
        (
            {"triton_install_plan": with_method(CPU_PLAN, "source"), "triton_install_source_repo": ""},
            ["needs a server repository and ref", "triton_install_source_repo is ''", "branch such as r24.10"],
        ),
        (
            {"triton_install_plan": {"release": "24.10", "install_method": "wheel"}},
            ["The install request is invalid", "plan server_version=missing", "Run the preflight first"],
        ),
    ],
    ids=[
        "wheel-on-aarch64",
        "tarball-without-checksum",
        "container-without-engine",
        "container-archive-without-checksum",
        "source-without-repo",
        "no-plan",
    ],
)
def test_bad_request_fails_before_any_change_and_says_why(tmp_path, extra, expected):
    result = run_preflight(tmp_path, extra)
    assert result.returncode != 0, result.stdout
    for fragment in expected:
        assert fragment in result.stdout, (fragment, result.stdout[-3000:])
    assert not (tmp_path / "prefix").exists()


def test_valid_request_passes(tmp_path):
    result = run_preflight(tmp_path, {"triton_install_plan": CPU_PLAN})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=" in result.stdout and "failed=0" in result.stdout
