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

The device also publishes its status after each pull (roles/triton_status): text-file metrics,
read back with prometheus_client's parser, and its status document POSTed to a collector
(tools/tritonfleet_collector.py) that the test starts inside the device's network namespace, on
the device's own loopback (the only network a simulated host has). Further pulls show that a
collector that is down, one that never answers, or one that rejects the token neither fails nor
holds up the pull, and that the device logs the rejection without the token.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleet.harness import Fleet
from fleet.profiles import parse_spec
from prometheus_client.parser import text_string_to_metric_families
from test_fleet_rollout_common import (
    REPO_ROOT,
    SERVER_VERSION,
    VENV_BIN,
    fleet_group_vars,
    host_command,
    playbook_argv,
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
METRICS = "/var/lib/prometheus/node-exporter/tritonfleet.prom"
STATUS_LOG = "/var/log/tritonfleet/status.log"
COLLECTOR_PORT = 9900
TOKEN = "pull-status-" + secrets.token_hex(8)
# Two attempts, 1 s apart, 8 s each: a collector that never answers keeps the detached sender
# busy for 17 s, longer than the rest of a converged pull takes.
STATUS_VARS = {
    "triton_status_metrics_file": METRICS,
    "triton_status_url": f"http://127.0.0.1:{COLLECTOR_PORT}/tritonfleet/status",
    "triton_status_attempts": 2,
    "triton_status_backoff": 1,
    "triton_status_timeout": 8,
}


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
        **STATUS_VARS,
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
                "triton_pull_status_token": TOKEN,
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


def _pull(inventory: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """One pull, synchronously: the very script the timer runs. Returns the run and its seconds."""
    argv = [
        str(VENV_BIN / "ansible"), "-i", str(inventory), HOST, "-m", "ansible.builtin.shell",
        "-a", f"{SCRIPT}; rc=$?; tail -n 60 /var/log/tritonfleet/pull.log; exit $rc",
    ]  # fmt: skip
    started = time.monotonic()
    pulled = subprocess.run(argv, cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, timeout=1500)
    return pulled, time.monotonic() - started


def _netns(fleet: Fleet) -> str:
    return fleet.read_state()["hosts"][HOST]["netns"]


class Collector:
    """A process in the device's network namespace listening on its loopback: the collector, or a
    listener that accepts connections and never answers (a collector that hangs)."""

    def __init__(self, fleet: Fleet, work: Path, token: str | None, silent: bool = False) -> None:
        self.dir = work / "collected"
        self.log = work / f"collector-{secrets.token_hex(2)}.log"
        if silent:
            program = [
                "-c",
                "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                f"s.bind(('127.0.0.1',{COLLECTOR_PORT}))\ns.listen(16)\nprint('listening',flush=True)\ntime.sleep(600)",
            ]
        else:
            token_file = work / "collector-token"
            token_file.write_text(f"{token}\n")
            token_file.chmod(0o600)
            program = [
                str(REPO_ROOT / "tools" / "tritonfleet_collector.py"),
                "--dir", str(self.dir), "--token-file", str(token_file), "--listen", f"127.0.0.1:{COLLECTOR_PORT}",
            ]  # fmt: skip
        self.handle = self.log.open("w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", _netns(fleet), sys.executable, *program], stdout=self.handle, stderr=self.handle
        )
        deadline = time.monotonic() + 20
        while "listening" not in self.log.read_text() and time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        assert "listening" in self.log.read_text(), self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.handle.close()


def _status_log(inventory: Path) -> str:
    return host_command(inventory, HOST, f"cat {STATUS_LOG} 2>/dev/null || true")[HOST]["stdout"]


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.fixture(scope="module")
def status_work() -> Iterator[Path]:
    work = WORK_ROOT / f"pull-status-{secrets.token_hex(3)}"
    work.mkdir(parents=True)
    yield work
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def first_pull(
    device: tuple[Fleet, Path], timer: Path, status_work: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    fleet, inventory = device
    collector = Collector(fleet, status_work, TOKEN)
    try:
        pulled, _ = _pull(inventory)
        document = collector.dir / f"{HOST}.json"
        # The POST is detached: it lands shortly after the pull returned.
        _wait_for(document.is_file, 30, f"{document} from the device's POST")
    finally:
        collector.stop()
    return pulled, collector.dir


def test_one_pull_converges_the_device(device: tuple[Fleet, Path], first_pull) -> None:
    _, inventory = device
    pulled, _ = first_pull
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


def test_pull_writes_text_file_metrics_prometheus_can_parse(device: tuple[Fleet, Path], first_pull) -> None:
    _, inventory = device
    listing = host_command(inventory, HOST, f"cat {METRICS}; ls -a $(dirname {METRICS}); stat -c %a {METRICS}")[HOST]
    text, _, rest = listing["stdout"].partition("\n.\n")
    families = {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text + "\n")
    }
    assert families["tritonfleet_info"] == {(("host", HOST), ("platform", "jetson")): 1.0}
    assert families["tritonfleet_verdict"][(("verdict", "passed"),)] == 1.0
    assert families["tritonfleet_verdict"][(("verdict", "rolled back"),)] == 0.0
    (labels,) = families["tritonfleet_release_info"]
    assert dict(labels)["server_version"] == SERVER_VERSION
    # The example repository: two python models, both KIND_CPU and READY on the device.
    assert families["tritonfleet_models_ready"] == {(("kind", "KIND_CPU"),): 2.0}
    assert families["tritonfleet_models"] == {(("kind", "KIND_CPU"),): 2.0}
    # A CPU plan (the GPU hidden): NVML per-process memory is not measured on a Jetson.
    assert "tritonfleet_server_gpu_memory_bytes" not in families
    (last_run,) = families["tritonfleet_last_run_timestamp_seconds"].values()
    assert families["tritonfleet_last_success_timestamp_seconds"] == {(): last_run}
    assert abs(time.time() - last_run) < 1800
    # Replaced atomically: no temporary file left beside it, readable by node_exporter.
    assert rest.split() == ["..", "tritonfleet.prom", "644"], rest


def test_pull_posts_its_status_to_the_collector(device: tuple[Fleet, Path], first_pull) -> None:
    _, inventory = device
    _, collected = first_pull
    document = json.loads((collected / f"{HOST}.json").read_text())
    assert (document["kind"], document["host"], document["verdict"]) == ("tritonfleet.status", HOST, "passed")
    # The pull script passes its interval plus splay (3600 + 0) for the staleness check.
    assert document["interval_s"] == 3600
    verify = host_command(inventory, HOST, f"cat {CHECKOUT}/reports/{HOST}/verify.json")[HOST]
    assert document["verify"] == json.loads(verify["stdout"])
    log = _status_log(inventory)
    assert "attempt 1/2: HTTP 204" in log and TOKEN not in log


def _fleet_status(collected: Path, reports: Path, extra: dict | None = None) -> dict:
    knobs = {"triton_fleet_status_collected_dir": str(collected), "triton_fleet_status_report_dir": str(reports)}
    argv = playbook_argv(REPO_ROOT / "inventory" / "local.yml", "fleet_status.yml", {**knobs, **(extra or {})})
    run = subprocess.run(argv, cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return json.loads((reports / "fleet" / "latest" / "fleet.json").read_text())


def test_fleet_status_from_collected_reports_reads_like_the_devices_own_report(
    device: tuple[Fleet, Path], first_pull, status_work: Path
) -> None:
    _, inventory = device
    _, collected = first_pull
    report = _fleet_status(collected, status_work / "status-reports")
    own = json.loads(host_command(inventory, HOST, f"cat {CHECKOUT}/reports/fleet/latest/fleet.json")[HOST]["stdout"])
    (own_row,) = own["hosts"]
    (row,) = report["hosts"]
    assert report["kind"] == "status" and report["stale_hosts"] == []
    skip = {"batch", "reported_at", "age_s", "interval_s", "stale"}
    assert {k: v for k, v in row.items() if k not in skip} == {k: v for k, v in own_row.items() if k not in skip}
    assert row["stale"] is False and row["interval_s"] == 3600


def test_fleet_status_flags_a_device_that_stopped_reporting(first_pull, status_work: Path) -> None:
    _, collected = first_pull
    document = json.loads((collected / f"{HOST}.json").read_text())
    aged = status_work / "collected-aged"
    aged.mkdir()
    # The same device, as if its last report came four of its intervals ago.
    document["published"] -= 4 * document["interval_s"]
    (aged / f"{HOST}.json").write_text(json.dumps(document))
    # Knobs as an AWX survey passes them: text, and empty fields for the ones left unset.
    survey = {"triton_fleet_status_stale_intervals": "3", "triton_fleet_status_id": "", "triton_fleet_status_hosts": ""}
    report = _fleet_status(aged, status_work / "aged-reports", survey)
    assert report["stale_hosts"] == [HOST]
    (row,) = report["hosts"]
    assert row["stale"] is True and row["findings"][0].startswith("stale: last report ")
    assert "| passed (stale) |" in (status_work / "aged-reports" / "fleet" / "latest" / "fleet.md").read_text()


def test_collector_down_neither_fails_nor_holds_up_the_pull(device: tuple[Fleet, Path], first_pull) -> None:
    _, inventory = device
    pulled, _ = _pull(inventory)
    assert pulled.returncode == 0, pulled.stdout[-4000:]
    assert serving(inventory, HOST)[HOST]["ready"] == 200
    _wait_for(lambda: "gave up after 2 attempt(s)" in _status_log(inventory), 30, "the sender to give up")
    log = _status_log(inventory)
    assert "attempt 1/2: ConnectionRefusedError" in log and "attempt 2/2: ConnectionRefusedError" in log


def test_collector_that_never_answers_does_not_hold_up_the_pull(
    device: tuple[Fleet, Path], first_pull, status_work: Path
) -> None:
    fleet, inventory = device
    host_command(inventory, HOST, f"truncate -s 0 {STATUS_LOG}")
    hung = Collector(fleet, status_work, None, silent=True)
    try:
        pulled, seconds = _pull(inventory)
        at_return = _status_log(inventory)
        assert pulled.returncode == 0, pulled.stdout[-4000:]
        assert serving(inventory, HOST)[HOST]["ready"] == 200
        # The sender needs 17 s to give up on a collector that never answers; the pull did not wait for it.
        assert "gave up" not in at_return, (seconds, at_return)
        _wait_for(lambda: "gave up after 2 attempt(s)" in _status_log(inventory), 45, "the sender to time out")
    finally:
        hung.stop()
    assert "attempt 1/2: TimeoutError: timed out" in _status_log(inventory)


def test_wrong_token_is_rejected_and_logged_without_the_token(
    device: tuple[Fleet, Path], first_pull, status_work: Path
) -> None:
    fleet, inventory = device
    host_command(inventory, HOST, f"truncate -s 0 {STATUS_LOG}")
    collector = Collector(fleet, status_work, "the-collector-expects-another-token")
    try:
        pulled, _ = _pull(inventory)
        assert pulled.returncode == 0, pulled.stdout[-4000:]
        _wait_for(lambda: "gave up" in _status_log(inventory), 30, "the sender to report the rejection")
    finally:
        collector.stop()
    log = _status_log(inventory)
    assert "attempt 1/2: HTTP 401 Unauthorized: the collector rejected the bearer token from" in log, log
    assert "/etc/tritonfleet/status-token" in log and "attempt 2/2" not in log
    assert "-> 401 rejected" in collector.log.read_text()
    everything = (
        log + pulled.stdout + host_command(inventory, HOST, "cat /var/log/tritonfleet/pull.log")[HOST]["stdout"]
    )
    assert TOKEN not in everything and TOKEN not in collector.log.read_text()
