# SPDX-License-Identifier: Apache-2.0
"""Fleet scenario: playbooks/rollout.yml over six simulated hosts (tests/fleet), real SSH.

Hosts, in inventory order (groups cpu, dgpu, jetson):

- cpu-1 (canary), cpu-2, cpu-3: CPU hosts, go all the way (serve, verify, idempotent rerun);
- gpu-cpu: a dGPU host whose operator chose a CPU plan (``triton_enable_gpu: false``): serves
  with its GPUs hidden and verifies;
- gpu-2 (two fake GPUs over the fake NVML) and orin-1 (a Jetson AGX Orin on JetPack 6.2), both
  with their GPU device nodes: GPU plans. ``--check`` (device check off) renders the GPU model
  (add_gpu, written KIND_GPU) as KIND_GPU on their own GPUs; the real rollout stops them in
  preflight at the device check, because real CUDA sees no device on this machine, before
  anything on them changes.

Batches ``[1, "100%"]`` with ``max_fail_percentage: 50``: the canary, then the other five, of
which two fail (40 %), so the rollout completes. One fleet serves the whole module.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleet.harness import Fleet, netns_pids
from fleet.profiles import parse_spec
from test_fleet_rollout_common import (
    EXAMPLE_MODELS,
    REPO_ROOT,
    SERVER_VERSION,
    Run,
    fleet_group_vars,
    run_rollout,
    serving,
    write_vars,
)

pytestmark = pytest.mark.integration

SPEC = {
    "hosts": [
        {"name": "cpu-1", "profile": "cpu"},
        {"name": "cpu-2", "profile": "cpu"},
        {"name": "cpu-3", "profile": "cpu"},
        {"name": "gpu-cpu", "profile": "dgpu", "gpus": 1},
        {"name": "gpu-2", "profile": "dgpu", "gpus": 2, "device_nodes": True},
        {"name": "orin-1", "profile": "jetson", "board": "agx-orin-jp62", "device_nodes": True},
    ]
}
HOST_VARS = {"gpu-cpu": {"triton_enable_gpu": False}, "orin-1": {"triton_install_method": "tarball"}}
KNOBS = {"triton_rollout_batches": [1, "100%"], "triton_rollout_max_fail_percentage": 50}
CPU_PLANS = ["cpu-1", "cpu-2", "cpu-3", "gpu-cpu"]
GPU_PLANS = {"gpu-2": [0, 1], "orin-1": [0]}
GPU_MODELS = REPO_ROOT / "tests" / "fixtures" / "repos" / "gpu_model"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The six hosts up for the module; yields (inventory, report dir)."""
    work = tmp_path_factory.mktemp("rollout")
    fleet = Fleet(work / "fleet")
    inventory = fleet.up(parse_spec(SPEC), owner_pid=os.getpid())
    try:
        reports = work / "reports"
        # The examples (KIND_CPU by design) plus a model written for GPUs (KIND_GPU).
        models = work / "models"
        shutil.copytree(EXAMPLE_MODELS, models)
        shutil.copytree(GPU_MODELS / "add_gpu", models / "add_gpu")
        write_vars(inventory, fleet_group_vars(reports, models), HOST_VARS)
        yield inventory, reports
    finally:
        fleet.down()


@pytest.fixture(scope="module")
def first_rollout(fleet: tuple[Path, Path]) -> Run:
    inventory, reports = fleet
    return run_rollout(inventory, reports, "scenario-1", KNOBS)


def _kinds(row: dict) -> dict[str, list[tuple[str, list[int]]]]:
    return {
        model: [(group["kind"], sorted(group.get("gpus") or [])) for group in groups]
        for model, groups in row["instance_groups"].items()
    }


def test_check_mode_renders_each_hosts_plan_and_changes_nothing(fleet: tuple[Path, Path]) -> None:
    inventory, reports = fleet
    # The device check would stop the GPU plans before anything is rendered; --check with it
    # off shows what each host would get.
    run = run_rollout(
        inventory, reports, "scenario-check", {**KNOBS, "triton_platform_device_check": False}, check=True
    )
    assert run.rc == 0, run.tail()
    assert run.report["check_mode"] is True
    assert run.verdicts() == dict.fromkeys([*CPU_PLANS, *GPU_PLANS], "planned"), run.tail()
    rows = run.rows()
    for host in CPU_PLANS:
        assert rows[host]["plan"]["instance_kind"] == "KIND_CPU", host
        assert {kind for groups in _kinds(rows[host]).values() for kind, _ in groups} == {"KIND_CPU"}, host
    for host, gpu_ids in GPU_PLANS.items():
        plan = rows[host]["plan"]
        assert (plan["instance_kind"], plan["gpu_ids"]) == ("KIND_GPU", gpu_ids), (host, plan)
        kinds = _kinds(rows[host])
        assert {kind for kind, _ in kinds["add_gpu"]} == {"KIND_GPU"}, (host, kinds)
        assert sorted({gpu for _, gpus in kinds["add_gpu"] for gpu in gpus}) == gpu_ids, (host, kinds)
        # Models whose author wrote KIND_CPU stay on the CPU under the auto policy.
        assert kinds["add_sub"] == [("KIND_CPU", [])], (host, kinds)
    assert "batch 1/2 (canary): hosts cpu-1" in run.out
    assert all(state["server"] is None and state["models"] is None for state in serving(inventory).values())


def test_cpu_plans_serve_and_gpu_plans_stop_at_the_device_check(fleet: tuple[Path, Path], first_rollout: Run) -> None:
    inventory, _ = fleet
    run = first_rollout
    assert run.rc == 2, run.tail()
    assert run.report["status"] == "complete", run.tail()
    assert run.verdicts() == {**dict.fromkeys(CPU_PLANS, "passed"), **dict.fromkeys(GPU_PLANS, "failed")}
    assert "batch 1/2: hosts cpu-1 — passed: cpu-1; failed: -" in run.out
    assert (
        "batch 2/2: hosts cpu-2,cpu-3,gpu-cpu,gpu-2,orin-1 — passed: cpu-2,cpu-3,gpu-cpu; failed: gpu-2,orin-1"
        in run.out
    )
    rows = run.rows()
    for host in GPU_PLANS:
        assert "device" in rows[host]["failed_task"], rows[host]
        # Device nodes and NVML are there; the CUDA driver library is not (no GPU machine).
        assert any("cuda_unavailable" in finding for finding in rows[host]["findings"]), rows[host]["findings"]
        assert rows[host]["release_before"] is None and rows[host]["release_after"] is None
    states = serving(inventory)
    for host in CPU_PLANS:
        assert states[host]["server"] == SERVER_VERSION and states[host]["ready"] == 200, (host, states[host])
        assert rows[host]["release_after"] == SERVER_VERSION
        assert {m["kind"] for m in rows[host]["models"]} == {"KIND_CPU"}
    for host in GPU_PLANS:
        # Stopped in preflight: no release, no model repository, no server on the host.
        assert states[host] == {"server": None, "models": None, "ready": 0, "unreachable": False}, states[host]


def test_gpu_host_with_a_cpu_plan_hides_its_gpus(fleet: tuple[Path, Path], first_rollout: Run) -> None:
    inventory, _ = fleet
    assert first_rollout.verdicts()["gpu-cpu"] == "passed", first_rollout.tail()
    assert first_rollout.rows()["gpu-cpu"]["plan"] == {
        "instance_kind": "KIND_CPU",
        "gpu_ids": [],
        "install_method": "wheel",
    }
    # The host's own tritonserver: the processes of its network namespace (/proc is shared).
    host_vars = yaml.safe_load(inventory.read_text())["all"]["children"]["dgpu"]["hosts"]["gpu-cpu"]
    netns = re.search(r"ip netns exec (\S+) nc", host_vars["ansible_ssh_common_args"])[1]
    servers = [pid for pid in netns_pids(netns) if Path(f"/proc/{pid}/comm").read_text().strip() == "tritonserver"]
    assert len(servers) == 1, servers
    environ = Path(f"/proc/{servers[0]}/environ").read_bytes().split(b"\0")
    assert b"CUDA_VISIBLE_DEVICES=" in environ, environ


def test_fleet_report_files_link_the_host_reports(fleet: tuple[Path, Path], first_rollout: Run) -> None:
    _, reports = fleet
    latest = reports / "fleet" / "latest"
    assert os.readlink(latest) == "scenario-1"
    html = (latest / "fleet.html").read_text()
    markdown = (latest / "fleet.md").read_text()
    for host in CPU_PLANS:
        assert f'href="../../{host}/verify.md"' in html
        assert (latest / ".." / ".." / host / "verify.md").is_file()
        assert f"[md](../../{host}/verify.md)" in markdown
    assert "http" not in html.replace('lang="en"', "")


def test_rerun_changes_nothing_on_converged_hosts(fleet: tuple[Path, Path], first_rollout: Run) -> None:
    inventory, reports = fleet
    assert first_rollout.report is not None
    run = run_rollout(inventory, reports, "scenario-2", KNOBS)
    assert run.verdicts() == first_rollout.verdicts(), run.tail()
    for host in CPU_PLANS:
        assert run.recap[host]["changed"] == 0, (host, run.recap[host], run.tail())
    for host in GPU_PLANS:
        assert run.recap[host]["changed"] == 0 and run.recap[host]["failed"] == 1, (host, run.recap[host])
    assert all(serving(inventory, host)[host]["ready"] == 200 for host in CPU_PLANS)
