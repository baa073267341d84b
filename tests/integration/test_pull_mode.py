# SPDX-License-Identifier: Apache-2.0
"""Pull mode on a simulated Jetson (tests/fleet): roles/triton_pull installs the timer, then the
installed pull script runs ``ansible-pull`` from a local git repository (``file://``) once,
synchronously, and the device converges with the same roles, verification and report.

The device (with its GPU device nodes, as a real Jetson has) runs a CPU plan with its GPU
hidden (``triton_enable_gpu: false``): a GPU plan would be stopped by the
device check, since real CUDA sees no device here (tests/integration/test_fleet_rollout.py
asserts exactly that); pull mode is about the device converging on its own, which only a plan
this machine can serve shows. The Jetson release is the tarball method (no wheel on aarch64),
built once from the wheel release; the device installs everything from files (no network).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleet.harness import Fleet
from fleet.profiles import parse_spec
from test_fleet_rollout_common import (
    REPO_ROOT,
    SERVER_VERSION,
    VENV_BIN,
    fleet_group_vars,
    host_command,
    playbook_env,
    pull_venv,
    serving,
)

pytestmark = pytest.mark.integration

HOST = "orin-pull"
CHECKOUT = "/var/lib/tritonfleet/pull/checkout"
SCRIPT = "/usr/local/sbin/tritonfleet-pull"
PIDFILE = "/run/tritonfleet-pull.pid"
# Not pytest's tmp_path: each simulated host has its own tmpfs over /tmp, /work is shared.
WORK_ROOT = REPO_ROOT / "tests" / ".work"


def _git(repo: Path, *args: str) -> str:
    env = dict(
        os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"
    )
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def project_repo() -> Iterator[Path]:
    """A git repository holding this working tree's files (tracked and new, not ignored)."""
    repo = WORK_ROOT / f"pull-repo-{secrets.token_hex(3)}"
    files = _git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, files):
        source = REPO_ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "tritonfleet under test")
    yield repo
    shutil.rmtree(repo)


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Path]]:
    fleet = Fleet(tmp_path_factory.mktemp("pull") / "fleet")
    inventory = fleet.up(
        parse_spec({"hosts": [{"name": HOST, "profile": "jetson", "board": "agx-orin-jp62", "device_nodes": True}]})
    )
    try:
        yield fleet, inventory
    finally:
        fleet.down()


def _device_inventory(inventory: Path) -> dict:
    """The device's own inventory entry: its harness vars over the local connection, plus the fleet vars."""
    harness = yaml.safe_load(inventory.read_text())["all"]["children"]["jetson"]["hosts"][HOST]
    entry = {
        # Reports and the model build cache stay in the device's checkout (the roles' defaults).
        **{
            k: v
            for k, v in fleet_group_vars(Path(CHECKOUT) / "reports").items()
            if k not in ("triton_verify_report_dir", "triton_models_build_dir")
        },
        "ansible_connection": "local",
        "ansible_python_interpreter": harness["ansible_python_interpreter"],
        "triton_host_arch": harness["triton_host_arch"],
        "triton_install_method": "tarball",
        "triton_enable_gpu": False,
        "triton_rollout_report_dir": f"{CHECKOUT}/reports",
    }
    return {"all": {"children": {"jetson": {"hosts": {HOST: entry}}}}}


def _apply_role(tmp_path: Path, inventory: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "pull-timer.yml"
    play.write_text("- name: Install the pull timer\n  hosts: all\n  gather_facts: false\n  roles: [triton_pull]\n")
    knobs = tmp_path / "pull-vars.json"
    knobs.write_text(
        json.dumps(
            {
                "triton_pull_repo_url": f"file://{repo}",
                "triton_pull_ref": "main",
                "triton_pull_interval": 3600,
                "triton_pull_splay": 0,
                # Built on this machine and seen through /work: the device cannot reach PyPI.
                "triton_pull_install_ansible": False,
                "triton_pull_venv": str(pull_venv()),
                "triton_pull_inventory": _device_inventory(inventory),
            }
        )
    )
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(play), "-e", f"@{knobs}"]
    return subprocess.run(argv, cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def timer(device: tuple[Fleet, Path], project_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, inventory = device
    work = tmp_path_factory.mktemp("timer")
    first = _apply_role(work, inventory, project_repo)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    return work


def test_timer_is_installed_as_a_pidfile_daemon(device: tuple[Fleet, Path], project_repo: Path, timer: Path) -> None:
    _, inventory = device
    check = host_command(
        inventory,
        HOST,
        f"start-stop-daemon --status --pidfile {PIDFILE} && tr '\\0' ' ' < /proc/$(cat {PIDFILE})/cmdline; echo; "
        f"cat {SCRIPT}; cat /etc/tritonfleet/pull/inventory.yml",
    )[HOST]
    assert check["rc"] == 0, check
    out = check["stdout"]
    assert "/usr/local/sbin/tritonfleet-pull-loop" in out.splitlines()[0]
    assert f"--url file://{project_repo}" in out
    assert "--limit orin-pull" in out and "--inventory /etc/tritonfleet/pull/inventory.yml" in out
    assert "playbooks/pull.yml" in out
    assert "ansible_connection: local" in out


def test_timer_role_is_idempotent(device: tuple[Fleet, Path], project_repo: Path, timer: Path) -> None:
    _, inventory = device
    again = _apply_role(timer, inventory, project_repo)
    assert again.returncode == 0, again.stdout[-4000:]
    assert f"{HOST}" in again.stdout and "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]


def test_one_pull_converges_the_device(device: tuple[Fleet, Path], project_repo: Path, timer: Path) -> None:
    _, inventory = device
    # The pull itself, synchronously: the very script the timer runs.
    argv = [
        str(VENV_BIN / "ansible"), "-i", str(inventory), HOST, "-m", "ansible.builtin.shell",
        "-a", f"{SCRIPT}; rc=$?; tail -n 60 /var/log/tritonfleet/pull.log; exit $rc",
    ]  # fmt: skip
    pulled = subprocess.run(argv, cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, timeout=1500)
    assert pulled.returncode == 0, pulled.stdout[-6000:]
    state = serving(inventory, HOST)[HOST]
    assert state["server"] == SERVER_VERSION and state["ready"] == 200, (state, pulled.stdout[-3000:])
    report = host_command(inventory, HOST, f"cat {CHECKOUT}/reports/fleet/latest/fleet.json")[HOST]
    rows = {row["host"]: row for row in json.loads(report["stdout"])["hosts"]}
    assert rows[HOST]["verdict"] == "passed"
    assert rows[HOST]["platform"] == "jetson"
    assert rows[HOST]["plan"]["instance_kind"] == "KIND_CPU"
    assert rows[HOST]["release_after"] == SERVER_VERSION
    verify = host_command(inventory, HOST, f"cat {CHECKOUT}/reports/{HOST}/verify.json")[HOST]
    assert json.loads(verify["stdout"])["verdict"] == "passed"
