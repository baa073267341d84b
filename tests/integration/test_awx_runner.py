# SPDX-License-Identifier: Apache-2.0
"""The project run the way AWX / Automation Platform run it: ``ansible-runner`` with
``--process-isolation --container-image`` of the execution environment (execution-environment.yml,
built offline by tools/build_ee.py, cached), the project copied into the runner's private data
directory as a project sync would, the machine credential as ``env/ssh_key`` (loaded into an
ssh-agent in the container), against a simulated host (tests/fleet).

Reaching a namespace host from the container: the container runs on the host's network
(``--network=host``, never a container network), but a simulated host has no address outside
its own network namespace; the harness reaches its sshd with ``ip netns exec <ns> nc 127.0.0.1
22``, which needs ``setns`` on ``/run/netns/<ns>`` (CAP_SYS_ADMIN, and that mount inside the
container), which an execution environment does not have, and must not. So the test runs a
loopback relay on the machine (127.0.0.1:<port> to the host's sshd, as a router would) and the
inventory names the host by that address, its host key pinned with ``HostKeyAlias``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleet.harness import Fleet
from fleet.profiles import parse_spec
from test_fleet_rollout_common import REPO_ROOT, SERVER_VERSION, VENV_BIN, fleet_group_vars, serving

sys.path.insert(0, str(REPO_ROOT / "tools"))

pytestmark = pytest.mark.integration

HOST = "awx-cpu-1"
IMAGE = "localhost/tritonfleet-ee:latest"
WORK_ROOT = REPO_ROOT / "tests" / ".work"


class Relay:
    """127.0.0.1:<port> on this machine to 127.0.0.1:22 inside a network namespace."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.procs: list[subprocess.Popen[bytes]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "nc", "127.0.0.1", "22"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self.procs.append(proc)
            threading.Thread(target=self._pump_in, args=(conn, proc), daemon=True).start()
            threading.Thread(target=self._pump_out, args=(conn, proc), daemon=True).start()

    @staticmethod
    def _pump_in(conn: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        try:
            while data := conn.recv(65536):
                proc.stdin.write(data)
                proc.stdin.flush()
        except OSError:
            pass
        finally:
            proc.stdin.close()

    @staticmethod
    def _pump_out(conn: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        try:
            while data := proc.stdout.read1(65536):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.server.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ee_image() -> str:
    built = subprocess.run(
        [str(VENV_BIN / "python"), str(REPO_ROOT / "tools" / "build_ee.py"), "--tag", IMAGE],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def runner_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The fleet of one host, the relay, and a runner private data directory: (private dir, fleet inventory)."""
    fleet = Fleet(tmp_path_factory.mktemp("awx") / "fleet")
    inventory = fleet.up(parse_spec({"hosts": [{"name": HOST, "profile": "cpu"}]}), owner_pid=os.getpid())
    relay = Relay(fleet.read_state()["hosts"][HOST]["netns"])
    private = WORK_ROOT / f"runner-{secrets.token_hex(3)}"
    try:
        # The project sync: the repository's files (tracked and new, not ignored), nothing built.
        files = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        for name in filter(None, files):
            if (REPO_ROOT / name).is_file():
                (private / "project" / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO_ROOT / name, private / "project" / name)
        harness = yaml.safe_load(inventory.read_text())["all"]["children"]["cpu"]["hosts"][HOST]
        workdir = inventory.parent
        (private / "env").mkdir()
        shutil.copy2(workdir / "id_ed25519", private / "env" / "ssh_key")
        shutil.copy2(workdir / "known_hosts", private / "known_hosts")
        group_vars = fleet_group_vars(private / "artifacts" / "unused")
        # Controller-side paths are the container's: the project and the runner's artifacts.
        for controller_path in ("triton_models_build_dir", "triton_verify_report_dir"):
            group_vars.pop(controller_path)
        group_vars["triton_models_src"] = "/runner/project/examples/model_repository"
        host = {
            "ansible_host": "127.0.0.1",
            "ansible_port": relay.port,
            "ansible_user": "root",
            "ansible_python_interpreter": harness["ansible_python_interpreter"],
            "ansible_ssh_common_args": (
                f"-o HostKeyAlias={HOST} -o UserKnownHostsFile=/runner/known_hosts -o StrictHostKeyChecking=yes"
            ),
        }
        (private / "inventory").mkdir()
        (private / "inventory" / "hosts.json").write_text(
            json.dumps({"all": {"hosts": {HOST: host}, "vars": group_vars}}, indent=2)
        )
        yield private, inventory
    finally:
        relay.close()
        fleet.down()
        shutil.rmtree(private, ignore_errors=True)


def _runner(private: Path, ident: str, playbook: str, extra: dict | None = None) -> subprocess.CompletedProcess[str]:
    sys_path = str(REPO_ROOT / "tools")
    env_code = (
        f"import sys; sys.path.insert(0, {sys_path!r}); import build_ee, json; print(json.dumps(build_ee.podman_env()))"
    )
    env = json.loads(
        subprocess.run([str(VENV_BIN / "python"), "-c", env_code], capture_output=True, text=True, check=True).stdout
    )
    if extra:
        (private / "env" / "extravars").write_text(json.dumps(extra))
    argv = [
        str(VENV_BIN / "ansible-runner"), "run", str(private), "--ident", ident, "-p", playbook,
        "--process-isolation", "--process-isolation-executable", "podman", "--container-image", IMAGE,
        # The host's network (never a container network); ansible-runner, run as root here, makes
        # its private data directory root-only, so the EE's default uid 1000 could not write it.
        "--container-option=--network=host", "--container-option=--user=0",
    ]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1500, check=False)


def _stats(private: Path, ident: str) -> dict:
    for path in sorted((private / "artifacts" / ident / "job_events").glob("*.json")):
        event = json.loads(path.read_text())
        if event.get("event") == "playbook_on_stats":
            return event["event_data"]
    raise AssertionError(f"no playbook_on_stats event in {private / 'artifacts' / ident}")


def test_runner_in_the_ee_converges_and_verifies_a_host(ee_image: str, runner_dir: tuple[Path, Path]) -> None:
    private, inventory = runner_dir
    run = _runner(private, "site", "playbooks/site.yml")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert (private / "artifacts" / "site" / "rc").read_text().strip() == "0"
    stats = _stats(private, "site")
    assert stats["failures"] == {} and HOST in stats["ok"], stats
    verify = json.loads((private / "artifacts" / "site" / "reports" / HOST / "verify.json").read_text())
    assert verify["verdict"] == "passed" and verify["versions"]["server_version"] == SERVER_VERSION
    assert not (private / "project" / "reports").exists()
    state = serving(inventory, HOST)[HOST]
    assert state["server"] == SERVER_VERSION and state["ready"] == 200, state


def test_runner_rollout_leaves_the_summary_in_the_artifacts(ee_image: str, runner_dir: tuple[Path, Path]) -> None:
    private, _ = runner_dir
    # As an AWX survey passes them: a text field and a number typed as text.
    run = _runner(
        private,
        "rollout",
        "playbooks/rollout.yml",
        {"triton_rollout_batches": "1, 100%", "triton_rollout_max_fail_percentage": "0", "triton_rollout_id": "awx-1"},
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    stats = _stats(private, "rollout")
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
