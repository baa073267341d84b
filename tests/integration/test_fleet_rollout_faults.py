# SPDX-License-Identifier: Apache-2.0
"""Fault tests of playbooks/rollout.yml over four simulated CPU hosts (tests/fleet), real SSH.

One fleet for the module, rolled out once with the example models; each test then rolls out a
new model-repository release (the examples plus one more model, so every release is distinct)
and breaks something: a canary whose new models fail to load, a later batch with a failing host
under and over the threshold, an SSH-unreachable host, a server killed mid-rollout, a run
interrupted with Ctrl-C and rerun. The tests run in file order and each reads the state it
starts from, so the assertions are about what changed, not about fixed ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet.harness import Fleet
from fleet.profiles import parse_spec
from test_fleet_rollout_common import (
    BROKEN_MODELS,
    EXAMPLE_MODELS,
    REPO_ROOT,
    Run,
    fleet_group_vars,
    netns_server_pids,
    playbook_argv,
    playbook_env,
    run_rollout,
    serving,
    write_vars,
)

pytestmark = pytest.mark.integration

HOSTS = ["cpu-a", "cpu-b", "cpu-c", "cpu-d"]
# cpu-a is the canary, then [cpu-b, cpu-c], then [cpu-d].
BATCHES = [1, 2, "100%"]


class Fixture:
    """The running fleet and how to point it at a model release."""

    def __init__(self, fleet: Fleet, inventory: Path, work: Path) -> None:
        self.fleet = fleet
        self.inventory = inventory
        self.work = work
        self.reports = work / "reports"

    def release(self, tag: str) -> Path:
        """A model repository: the examples plus a copy of add_sub named add_sub_<tag>."""
        repo = self.work / f"models-{tag}"
        if not repo.exists():
            shutil.copytree(EXAMPLE_MODELS, repo)
            shutil.copytree(EXAMPLE_MODELS / "add_sub", repo / f"add_sub_{tag}")
            config = repo / f"add_sub_{tag}" / "config.pbtxt"
            config.write_text(config.read_text().replace('name: "add_sub"', f'name: "add_sub_{tag}"'))
        return repo

    def deploy(self, models: Path, host_vars: dict[str, dict] | None = None) -> None:
        write_vars(self.inventory, fleet_group_vars(self.reports, models), host_vars)

    def rollout(self, rollout_id: str, **knobs: object) -> Run:
        return run_rollout(self.inventory, self.reports, rollout_id, {"triton_rollout_batches": BATCHES, **knobs})

    def netns(self, host: str) -> str:
        return self.fleet.read_state()["hosts"][host]["netns"]

    def server_pids(self, host: str) -> list[int]:
        return netns_server_pids(self.netns(host))


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    work = tmp_path_factory.mktemp("faults")
    fleet = Fleet(work / "fleet")
    inventory = fleet.up(parse_spec({"hosts": [{"name": h, "profile": "cpu"} for h in HOSTS]}), owner_pid=os.getpid())
    try:
        fixture = Fixture(fleet, inventory, work)
        fixture.deploy(fixture.release("base"))
        base = fixture.rollout("base")
        assert base.rc == 0 and set(base.verdicts().values()) == {"passed"}, base.tail()
        yield fixture
    finally:
        fleet.down()


def test_canary_whose_models_fail_to_load_stops_the_rollout(fx: Fixture) -> None:
    before = serving(fx.inventory)
    fx.deploy(BROKEN_MODELS)
    run = fx.rollout("canary-broken")
    assert run.rc != 0
    assert run.report["status"] == "stopped" and run.report["stopped_at_batch"] == 1, run.tail()
    assert run.verdicts() == {
        "cpu-a": "rolled back",
        "cpu-b": "not reached",
        "cpu-c": "not reached",
        "cpu-d": "not reached",
    }
    assert any("add_sub" in finding for finding in run.rows()["cpu-a"]["findings"]), run.rows()["cpu-a"]
    assert "batch 1/3: hosts cpu-a — passed: -; rolled back: cpu-a" in run.out
    assert "batch 2/3" not in run.out
    # The canary serves its previous release again; no other host changed.
    assert serving(fx.inventory) == before


def test_later_batch_failure_under_the_threshold_goes_on(fx: Fixture) -> None:
    before = serving(fx.inventory)
    fx.deploy(fx.release("under"), {"cpu-c": {"triton_models_src": str(BROKEN_MODELS)}})
    run = fx.rollout("under", triton_rollout_max_fail_percentage=50)
    assert run.report["status"] == "complete", run.tail()
    assert run.verdicts() == {"cpu-a": "passed", "cpu-b": "passed", "cpu-c": "rolled back", "cpu-d": "passed"}
    assert "batch 2/3: hosts cpu-b,cpu-c — passed: cpu-b; rolled back: cpu-c" in run.out
    after = serving(fx.inventory)
    new = {after[h]["models"] for h in ("cpu-a", "cpu-b", "cpu-d")}
    assert len(new) == 1 and new != {before["cpu-a"]["models"]}
    assert after["cpu-c"] == before["cpu-c"]
    assert all(state["ready"] == 200 for state in after.values())


def test_later_batch_failure_over_the_threshold_stops_the_rollout(fx: Fixture) -> None:
    before = serving(fx.inventory)
    fx.deploy(fx.release("over"), {"cpu-c": {"triton_models_src": str(BROKEN_MODELS)}})
    run = fx.rollout("over", triton_rollout_max_fail_percentage=40)
    assert run.rc != 0
    assert run.report["status"] == "stopped" and run.report["stopped_at_batch"] == 2, run.tail()
    assert run.verdicts() == {"cpu-a": "passed", "cpu-b": "passed", "cpu-c": "rolled back", "cpu-d": "not reached"}
    after = serving(fx.inventory)
    assert after["cpu-a"]["models"] == after["cpu-b"]["models"] != before["cpu-a"]["models"]
    # Batch 3 never ran: cpu-d keeps the release it had.
    assert after["cpu-d"] == before["cpu-d"]
    assert after["cpu-c"] == before["cpu-c"]


def test_ssh_unreachable_host_is_reported_and_counted(fx: Fixture) -> None:
    before = serving(fx.inventory)
    # Port 9 (discard) has no listener in the host's namespace: SSH cannot connect.
    ns = fx.netns("cpu-d")
    dead = {"ansible_ssh_common_args": f'-o ProxyCommand="ip netns exec {ns} nc 127.0.0.1 9"'}
    fx.deploy(fx.release("unreachable"), {"cpu-d": dead})
    run = fx.rollout("unreachable")
    assert run.rc != 0
    assert run.verdicts() == {"cpu-a": "passed", "cpu-b": "passed", "cpu-c": "passed", "cpu-d": "unreachable"}
    assert any("unreachable" in finding for finding in run.rows()["cpu-d"]["findings"])
    assert "batch 3/3: hosts cpu-d — passed: -; unreachable: cpu-d" in run.out
    fx.deploy(fx.release("unreachable"))
    assert serving(fx.inventory, "cpu-d")["cpu-d"] == before["cpu-d"]


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert proc.poll() is None, path.read_text()[-4000:]
        assert time.monotonic() < deadline, f"{text!r} not seen in {path}"
        time.sleep(0.5)


def _start(fx: Fixture, rollout_id: str, log: Path) -> subprocess.Popen:
    knobs = {
        "triton_rollout_id": rollout_id,
        "triton_rollout_report_dir": str(fx.reports),
        "triton_rollout_batches": BATCHES,
    }
    with log.open("w") as out:
        return subprocess.Popen(
            playbook_argv(fx.inventory, "rollout.yml", knobs),
            cwd=REPO_ROOT,
            env=playbook_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_server_killed_mid_rollout_converges(fx: Fixture) -> None:
    fx.deploy(fx.release("killed"))
    victims = fx.server_pids("cpu-d")
    assert victims, "cpu-d runs no tritonserver before the rollout"
    log = fx.work / "killed.log"
    proc = _start(fx, "killed", log)
    _wait_for(log, "batch 1/3 (canary)", proc)
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=1800) == 0, log.read_text()[-5000:]
    run = Run(0, log.read_text(), fx.reports, "killed")
    assert set(run.verdicts().values()) == {"passed"}, run.tail()
    state = serving(fx.inventory, "cpu-d")["cpu-d"]
    assert state["ready"] == 200 and state["models"] == serving(fx.inventory, "cpu-a")["cpu-a"]["models"]
    assert not set(fx.server_pids("cpu-d")) & set(victims)


def test_interrupted_rollout_converges_on_rerun(fx: Fixture) -> None:
    before = serving(fx.inventory)
    fx.deploy(fx.release("interrupted"))
    log = fx.work / "interrupted.log"
    proc = _start(fx, "interrupted", log)
    _wait_for(log, "batch 2/3 (batch)", proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C on the controller: the whole process group
    proc.wait(timeout=300)
    assert proc.returncode != 0
    cut = serving(fx.inventory)
    assert cut["cpu-d"] == before["cpu-d"], "cpu-d (batch 3) changed before the interrupt"
    run = fx.rollout("interrupted-rerun")
    assert run.rc == 0, run.tail()
    assert set(run.verdicts().values()) == {"passed"}
    after = serving(fx.inventory)
    assert len({state["models"] for state in after.values()}) == 1
    assert after["cpu-a"]["models"] != before["cpu-a"]["models"]
    assert all(state["ready"] == 200 for state in after.values())
