# SPDX-License-Identifier: Apache-2.0
"""ansible-runner against simulated hosts (tests/fleet), as AWX runs a job: shared by
tests/integration/test_awx_runner.py and tests/bench/bench_controller.py.

A simulated host has no address outside its network namespace, and an execution environment
container on the host's network cannot enter that namespace (``ip netns exec`` needs setns on
``/run/netns/<ns>``: CAP_SYS_ADMIN and the mount, which an EE does not and must not have). A
:class:`Relay` on this machine's loopback forwards 127.0.0.1:<port> to the host's sshd, as a
router would; the runner inventory names the host by that address and pins its key with
``HostKeyAlias``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
sys.path.insert(0, str(REPO_ROOT / "tools"))
import podman_images  # noqa: E402  (tools/ is not a package)


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


@contextlib.contextmanager
def runner_private_dir(fleet: Any, inventory: Path, hosts: list[str], group_vars: dict[str, Any]) -> Iterator[Path]:
    """A runner private data directory for ``hosts`` of a running fleet, with one relay per host.

    ``project/``: the repository's files (tracked and new, not ignored), as a project sync
    leaves them; ``env/ssh_key``: the fleet's key (runner loads it into an ssh-agent, as AWX does
    with a machine credential); ``inventory/hosts.json``: the hosts by relay address, and
    ``group_vars``.
    """
    private = REPO_ROOT / "tests" / ".work" / f"runner-{secrets.token_hex(3)}"
    relays: list[Relay] = []
    try:
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
        harness = {
            name: values
            for group in yaml.safe_load(inventory.read_text())["all"]["children"].values()
            for name, values in (group.get("hosts") or {}).items()
        }
        (private / "env").mkdir()
        shutil.copy2(inventory.parent / "id_ed25519", private / "env" / "ssh_key")
        shutil.copy2(inventory.parent / "known_hosts", private / "known_hosts")
        entries = {}
        state = fleet.read_state()["hosts"]
        for host in hosts:
            relay = Relay(state[host]["netns"])
            relays.append(relay)
            entries[host] = {
                "ansible_host": "127.0.0.1",
                "ansible_port": relay.port,
                "ansible_user": "root",
                "ansible_python_interpreter": harness[host]["ansible_python_interpreter"],
                "ansible_ssh_common_args": (
                    f"-o HostKeyAlias={host} -o UserKnownHostsFile=/runner/known_hosts -o StrictHostKeyChecking=yes"
                ),
            }
        (private / "inventory").mkdir()
        (private / "inventory" / "hosts.json").write_text(
            json.dumps({"all": {"hosts": entries, "vars": group_vars}}, indent=2)
        )
        yield private
    finally:
        for relay in relays:
            relay.close()
        shutil.rmtree(private, ignore_errors=True)


IMAGE = "localhost/tritonfleet-ee:latest"
# The EE image's podman save archive, beside the other cached test images: a machine whose podman
# storage lost the image (or a CI run that restores tests/.work/) loads it instead of building.
IMAGE_ARCHIVE_DIR = REPO_ROOT / "tests" / ".work" / "cache" / "images"


def ee_image() -> str:
    """Build (or reuse, or load) the execution environment image with tools/build_ee.py; its tag."""
    built = subprocess.run(
        [str(VENV_BIN / "python"), str(REPO_ROOT / "tools" / "build_ee.py"), "--tag", IMAGE,
         "--archive-dir", str(IMAGE_ARCHIVE_DIR)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if built.returncode != 0:
        raise RuntimeError(f"tools/build_ee.py failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}")
    return built.stdout.strip().splitlines()[-1]


def runner_group_vars(group_vars: dict[str, Any]) -> dict[str, Any]:
    """The fleet's variables with controller-side paths as the container sees them: the models
    source in the project, reports and build cache at their defaults (the runner's artifacts)."""
    values = {k: v for k, v in group_vars.items() if k not in ("triton_models_build_dir", "triton_verify_report_dir")}
    values["triton_models_src"] = "/runner/project/examples/model_repository"
    return values


def runner_argv(
    private: Path, ident: str, playbook: str, image: str, extra: dict[str, Any] | None = None, forks: int = 8
) -> list[str]:
    """``ansible-runner run`` of ``playbook`` in the EE ``image``, on the host's network (extra vars written)."""
    (private / "env" / "extravars").write_text(json.dumps(extra or {}))
    return [
        str(VENV_BIN / "ansible-runner"), "run", str(private), "--ident", ident, "-p", playbook,
        "--forks", str(forks),
        "--process-isolation", "--process-isolation-executable", "podman", "--container-image", image,
        # The host's network (never a container network); ansible-runner, run as root here, makes
        # its private data directory root-only, so the EE's default uid 1000 could not write it.
        "--container-option=--network=host", "--container-option=--user=0",
    ]  # fmt: skip


def run_runner(
    private: Path, ident: str, playbook: str, image: str, extra: dict[str, Any] | None = None, forks: int = 8
) -> subprocess.CompletedProcess[str]:
    """Run :func:`runner_argv` with podman's settings (podman_images.podman_env)."""
    argv = runner_argv(private, ident, playbook, image, extra, forks)
    return subprocess.run(
        argv, env=podman_images.podman_env(), capture_output=True, text=True, timeout=1500, check=False
    )


def stats_event(private: Path, ident: str) -> dict[str, Any]:
    """The ``playbook_on_stats`` event data of a runner job (where set_stats data lands)."""
    for path in sorted((private / "artifacts" / ident / "job_events").glob("*.json")):
        event = json.loads(path.read_text())
        if event.get("event") == "playbook_on_stats":
            return event["event_data"]
    raise AssertionError(f"no playbook_on_stats event in {private / 'artifacts' / ident}")
