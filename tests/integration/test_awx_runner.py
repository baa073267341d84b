# SPDX-License-Identifier: Apache-2.0
"""The project run the way AWX / Automation Platform run it: ``ansible-runner`` with
``--process-isolation --container-image`` of the execution environment (execution-environment.yml,
built offline by tools/build_ee.py, cached), the project copied into the runner's private data
directory as a project sync would, the machine credential as ``env/ssh_key`` (loaded into an
ssh-agent in the container), against a simulated host (tests/fleet).

Reaching a namespace host from the container: see tests/support/awx_runner.py (a loopback
relay stands in for the route an execution node has to its hosts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet.harness import Fleet
from fleet.profiles import parse_spec
from support.awx_runner import IMAGE, run_runner, runner_group_vars, runner_private_dir, stats_event
from support.awx_runner import ee_image as build_ee_image
from test_fleet_rollout_common import REPO_ROOT, SERVER_VERSION, fleet_group_vars, serving

pytestmark = pytest.mark.integration

HOST = "awx-cpu-1"
WORK_ROOT = REPO_ROOT / "tests" / ".work"


@pytest.fixture(scope="module")
def ee_image() -> str:
    return build_ee_image()


@pytest.fixture(scope="module")
def runner_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The fleet of one host, the relay, and a runner private data directory: (private dir, fleet inventory)."""
    fleet = Fleet(tmp_path_factory.mktemp("awx") / "fleet")
    inventory = fleet.up(parse_spec({"hosts": [{"name": HOST, "profile": "cpu"}]}), owner_pid=os.getpid())
    try:
        group_vars = runner_group_vars(fleet_group_vars(WORK_ROOT / "unused-reports"))
        with runner_private_dir(fleet, inventory, [HOST], group_vars) as private:
            yield private, inventory
    finally:
        fleet.down()


def test_runner_in_the_ee_converges_and_verifies_a_host(ee_image: str, runner_dir: tuple[Path, Path]) -> None:
    private, inventory = runner_dir
    run = run_runner(private, "site", "playbooks/site.yml", IMAGE)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert (private / "artifacts" / "site" / "rc").read_text().strip() == "0"
    stats = stats_event(private, "site")
    assert stats["failures"] == {} and HOST in stats["ok"], stats
    verify = json.loads((private / "artifacts" / "site" / "reports" / HOST / "verify.json").read_text())
    assert verify["verdict"] == "passed" and verify["versions"]["server_version"] == SERVER_VERSION
    assert not (private / "project" / "reports").exists()
    state = serving(inventory, HOST)[HOST]
    assert state["server"] == SERVER_VERSION and state["ready"] == 200, state


def test_runner_rollout_leaves_the_summary_in_the_artifacts(ee_image: str, runner_dir: tuple[Path, Path]) -> None:
    private, _ = runner_dir
    # As an AWX survey passes them: a text field and a number typed as text.
    run = run_runner(
        private,
        "rollout",
        "playbooks/rollout.yml",
        IMAGE,
        {"triton_rollout_batches": "1, 100%", "triton_rollout_max_fail_percentage": "0", "triton_rollout_id": "awx-1"},
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    stats = stats_event(private, "rollout")
    summary = stats["artifact_data"]["tritonfleet_rollout"]
    assert summary["status"] == "complete" and summary["verdicts"] == {HOST: "passed"}, summary
    assert summary["counts"] == {"passed": 1} and summary["id"] == "awx-1"
    assert summary["report"] == "/runner/artifacts/rollout/reports/fleet/awx-1/fleet.json"
    report = json.loads((private / "artifacts" / "rollout" / "reports" / "fleet" / "awx-1" / "fleet.json").read_text())
    assert [(row["host"], row["verdict"], row["release_after"]) for row in report["hosts"]] == [
        (HOST, "passed", SERVER_VERSION)
    ]
    # A converged host: the rollout changed nothing on it.
    assert stats["changed"].get(HOST, 0) == 0, stats
