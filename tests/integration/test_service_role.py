"""The triton_service role on this machine, for real: supervisord, a real tritonserver 2.51.0.

One deployment is shared by the tests of this file, which run in order: converge, inspect
the running server, rerun (changed=0), --check (changed=0), --check --diff and a run with a
changed launcher (restart), a changed supervisord.conf (reload), a stopped program and a
stopped supervisord (a rerun starts them), kill the server (supervisord restarts it), break
the backend directory and a model stuck loading (the play fails with the server's own log),
remove.yml (nothing left).
Paths live in a private 0755 directory under /tmp (the service user must traverse them,
which pytest's 0700 tmp_path forbids); ports are 28020-28022; the service user is a
throwaway account, never the lead's ``tritonserver``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.triton_dist import CPU_PLAN, triton_release

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "model_repository"
ANSIBLE_PLAYBOOK = REPO_ROOT / ".venv" / "bin" / "ansible-playbook"
USER = "tfsvc-it"
# A fixed id far from the system range: simulated hosts on this machine (other mount
# namespaces, same kernel) create their own system users, whose uid numbers would collide.
USER_ID = 28077
HTTP, GRPC, METRICS = 28020, 28021, 28022
BASE_URL = f"http://127.0.0.1:{HTTP}"
KEY_HEADER = "tfit-admin-key"
PLAY = """
- name: Serve Triton
  hosts: localhost
  gather_facts: false
  roles:
    - role: triton_service
"""
RECAP = re.compile(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


class Deployment:
    """Paths, variables and helpers of one test deployment."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.prefix = base / "opt-tritonserver"
        self.models = base / "srv-tritonfleet"
        self.vars = {
            "triton_service_plan": CPU_PLAN,
            "triton_service_install_prefix": str(self.prefix),
            "triton_service_model_repository": str(self.models / "current"),
            "triton_service_http_address": "127.0.0.1",
            "triton_service_grpc_address": "127.0.0.1",
            "triton_service_http_port": HTTP,
            "triton_service_grpc_port": GRPC,
            "triton_service_metrics_port": METRICS,
            "triton_service_user": USER,
            "triton_service_group": USER,
            "triton_service_uid": USER_ID,
            "triton_service_gid": USER_ID,
            "triton_service_ready_timeout": 60,
            "triton_service_api_key_header": KEY_HEADER,
            "triton_service_config_dir": str(base / "etc"),
            "triton_service_state_dir": str(base / "var-lib"),
            "triton_service_log_dir": str(base / "var-log"),
            "triton_service_home": str(base / "opt-tritonfleet"),
            "triton_service_run_dir": str(base / "run"),
            "triton_service_remove_paths": [str(self.prefix), str(self.models)],
        }
        (base / "play.yml").write_text(PLAY)
        (base / "vars.json").write_text(json.dumps(self.vars))

    def path(self, name: str) -> Path:
        return Path(self.vars[name])

    def playbook(self, playbook: Path, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        cmd = [str(ANSIBLE_PLAYBOOK), "-i", "inventory/local.yml", str(playbook), "-e", f"@{self.base / 'vars.json'}"]
        if extra:
            cmd += ["-e", json.dumps(extra)]
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
        return subprocess.run(
            [*cmd, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    def converge(self, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        return self.playbook(self.base / "play.yml", *args, extra=extra)

    def remove(self, *args: str) -> subprocess.CompletedProcess:
        return self.playbook(REPO_ROOT / "playbooks" / "remove.yml", *args)

    def supervisord_pid(self) -> int | None:
        try:
            return int((self.path("triton_service_run_dir") / "supervisord.pid").read_text())
        except (OSError, ValueError):
            return None


def recap(result: subprocess.CompletedProcess) -> tuple[int, int, int]:
    """Return (changed, unreachable, failed) of localhost from the play recap."""
    match = RECAP.search(result.stdout)
    assert match, f"no play recap in output:\n{result.stdout}\n{result.stderr}"
    return int(match[1]), int(match[2]), int(match[3])


def server_pids() -> list[int]:
    """Pids of our tritonserver: the test user's, in this mount namespace (not a simulated host's)."""
    out = subprocess.run(
        ["pgrep", "-u", str(USER_ID), "-x", "tritonserver"], capture_output=True, text=True, check=False
    )
    own = os.readlink("/proc/self/ns/mnt")
    pids = []
    for pid in out.stdout.split():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/mnt") == own:
                pids.append(int(pid))
    return pids


def http(path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{BASE_URL}{path}", data=data, headers=headers or {})
    if path.startswith("/v2/repository/"):
        request.method = "POST"
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else ""
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_ready(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http("/v2/health/ready")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def api_key(deployment: Deployment) -> str:
    return Path(deployment.vars["triton_service_config_dir"], "api-key").read_text()


@pytest.fixture(scope="module")
def deployment():
    base = Path(tempfile.mkdtemp(prefix="tfsvc-it-", dir="/tmp"))
    base.chmod(0o755)
    dep = Deployment(base)
    triton_release(dep.prefix)
    shutil.copytree(EXAMPLES, dep.models / "releases" / "r1")
    (dep.models / "current").symlink_to("releases/r1")
    dep.first = dep.converge("-v", "--diff")
    yield dep
    dep.remove()
    # Safety net if removal itself failed: stop the supervisord this fixture started.
    pid = dep.supervisord_pid()
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    shutil.rmtree(base, ignore_errors=True)


def test_first_run_serves_every_model_ready(deployment: Deployment):
    assert recap(deployment.first)[2] == 0, deployment.first.stdout[-4000:]
    assert http("/v2/health/live")[0] == 200
    assert http("/v2/health/ready")[0] == 200
    for model in ("add_sub", "scale"):
        assert http(f"/v2/models/{model}/ready")[0] == 200


def test_inference_returns_sum_and_difference(deployment: Deployment):
    status, body = http(
        "/v2/models/add_sub/infer",
        {
            "inputs": [
                {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [0.5, 0.5, 0.5, 0.5]},
            ]
        },
    )
    assert status == 200, body
    outputs = {out["name"]: out["data"] for out in body["outputs"]}
    assert outputs == {"OUTPUT0": [1.5, 2.5, 3.5, 4.5], "OUTPUT1": [0.5, 1.5, 2.5, 3.5]}


def test_repository_api_needs_the_key_from_the_key_file(deployment: Deployment):
    status, body = http("/v2/repository/index", {})
    assert status != 200
    assert "restricted" in str(body)
    status, body = http("/v2/repository/index", {}, headers={KEY_HEADER: api_key(deployment)})
    assert status == 200
    assert {(m["name"], m["state"]) for m in body} == {("add_sub", "READY"), ("scale", "READY")}


def test_server_runs_as_the_unprivileged_user_with_gpus_hidden(deployment: Deployment):
    (pid,) = server_pids()
    uid = pwd.getpwnam(USER).pw_uid
    assert uid == USER_ID
    status = Path(f"/proc/{pid}/status").read_text()
    real, effective, saved, fs = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
    assert {int(real), int(effective), int(saved), int(fs)} == {uid}
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if item
    )
    assert environ["CUDA_VISIBLE_DEVICES"] == ""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert "--pinned-memory-pool-byte-size=0" in cmdline
    assert "--load-model=add_sub" in cmdline
    assert "--load-model=scale" in cmdline


def test_service_user_reads_but_cannot_write_repository_and_prefix(deployment: Deployment):
    for path in (deployment.models / "current" / "add_sub", deployment.prefix / "current" / "bin"):
        for check, expected in (("-r", 0), ("-w", 1)):
            result = subprocess.run(
                ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "test", check, str(path)],
                check=False,
            )
            assert result.returncode == expected, f"test {check} {path} as {USER}"


def test_key_is_root_only_and_in_no_rendered_file_or_output(deployment: Deployment):
    key_file = Path(deployment.vars["triton_service_config_dir"], "api-key")
    info = key_file.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (0, 0o600)
    key = api_key(deployment)
    assert re.fullmatch(r"[A-Za-z0-9]{48}", key)
    launcher = deployment.path("triton_service_home") / "bin" / "tritonfleet-serve"
    supervisord_conf = Path(deployment.vars["triton_service_config_dir"], "supervisord.conf")
    assert str(key_file) in launcher.read_text()
    assert str(launcher) in supervisord_conf.read_text()
    for text in (launcher.read_text(), supervisord_conf.read_text(), deployment.first.stdout):
        assert key not in text
    for log in deployment.path("triton_service_log_dir").iterdir():
        assert key not in log.read_text(errors="replace"), log


def test_second_run_changes_nothing(deployment: Deployment):
    result = deployment.converge()
    assert recap(result) == (0, 0, 0), result.stdout[-4000:]


def test_check_mode_changes_nothing(deployment: Deployment):
    result = deployment.converge("--check")
    assert recap(result) == (0, 0, 0), result.stdout[-4000:]


def test_install_result_of_the_play_names_the_release(deployment: Deployment):
    manifest = json.loads((deployment.prefix / "current" / "manifest.json").read_text())
    published = {
        "current": f"{deployment.prefix}/current",
        "release_dir": f"{deployment.prefix}/releases/2.51.0",
        "manifest": manifest,
    }
    same = deployment.converge(extra={"triton_install_result": published})
    assert recap(same) == (0, 0, 0), same.stdout[-4000:]
    # An upgrade in check mode: the release is not there yet, the launcher change is predicted.
    upgrade = {**published, "release_dir": f"{deployment.prefix}/releases/2.52.0"}
    upgrade["manifest"] = {**manifest, "server_version": "2.52.0"}
    check = deployment.converge("--check", "--diff", extra={"triton_install_result": upgrade})
    assert recap(check)[0] > 0 and recap(check)[2] == 0, check.stdout[-4000:]
    assert "releases/2.52.0/bin/tritonserver" in check.stdout


def supervisorctl(deployment: Deployment, *args: str) -> subprocess.CompletedProcess:
    home, etc = deployment.path("triton_service_home"), deployment.path("triton_service_config_dir")
    return subprocess.run(
        [str(home / "supervisor" / "bin" / "supervisorctl"), "-c", str(etc / "supervisord.conf"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_check_diff_shows_a_launcher_change_and_the_run_restarts_the_server(deployment: Deployment):
    launcher = deployment.path("triton_service_home") / "bin" / "tritonfleet-serve"
    before = launcher.read_text()
    (old,) = server_pids()
    extra = {"triton_service_extra_args": ["--log-verbose=1"]}
    check = deployment.converge("--check", "--diff", extra=extra)
    assert recap(check)[0] > 0 and recap(check)[2] == 0, check.stdout[-4000:]
    assert "+  --log-verbose=1 \\" in check.stdout
    assert launcher.read_text() == before and server_pids() == [old]
    result = deployment.converge(extra=extra)
    assert recap(result)[0] > 0 and recap(result)[2] == 0, result.stdout[-4000:]
    (new,) = server_pids()
    assert new != old
    assert "--log-verbose=1" in Path(f"/proc/{new}/cmdline").read_bytes().decode().split("\0")
    assert http("/v2/health/ready")[0] == 200
    back = deployment.converge()
    assert recap(back)[0] > 0 and recap(back)[2] == 0
    assert launcher.read_text() == before and server_pids() != [new]


def test_changed_supervisord_configuration_is_reloaded(deployment: Deployment):
    (old,) = server_pids()
    result = deployment.converge(extra={"triton_service_log_backups": 4})
    assert recap(result)[0] > 0 and recap(result)[2] == 0, result.stdout[-4000:]
    conf = deployment.path("triton_service_config_dir") / "supervisord.conf"
    assert "stdout_logfile_backups=4" in conf.read_text().splitlines()
    assert server_pids() not in ([], [old])
    assert http("/v2/health/ready")[0] == 200
    assert recap(deployment.converge())[2] == 0


def test_stopped_program_and_stopped_supervisord_are_started_again_by_a_rerun(deployment: Deployment):
    assert supervisorctl(deployment, "stop", "tritonserver").returncode == 0
    assert server_pids() == []
    result = deployment.converge()
    assert recap(result) == (1, 0, 0), result.stdout[-4000:]
    assert http("/v2/health/ready")[0] == 200
    supervisorctl(deployment, "shutdown")
    deadline = time.monotonic() + 60
    while deployment.supervisord_pid() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deployment.supervisord_pid() is None and server_pids() == []
    result = deployment.converge()
    assert recap(result) == (1, 0, 0), result.stdout[-4000:]
    assert http("/v2/health/ready")[0] == 200
    assert recap(deployment.converge()) == (0, 0, 0)


def test_killed_server_is_restarted_by_supervisord(deployment: Deployment):
    (old,) = server_pids()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not server_pids() or server_pids() == [old]):
        time.sleep(0.2)
    new = server_pids()
    assert new and new != [old]
    assert wait_ready(30)


def test_unknown_extra_argument_is_refused_before_the_launcher_is_written(deployment: Deployment):
    launcher = deployment.path("triton_service_home") / "bin" / "tritonfleet-serve"
    before, (pid,) = launcher.read_text(), server_pids()
    result = deployment.converge(extra={"triton_service_extra_args": ["--log-verbse=1", "--exit-on-eror=true"]})
    assert recap(result)[2] == 1, result.stdout[-4000:]
    out = " ".join(result.stdout.split())
    assert "triton_service_extra_args has '--log-verbse=1': the server has no option --log-verbse" in out
    assert "(closest: --log-verbose" in out and "has '--exit-on-eror=true'" in out
    assert "remove it from triton_service_extra_args or correct it to an option --help lists" in out
    assert launcher.read_text() == before and server_pids() == [pid]
    assert http("/v2/health/ready")[0] == 200
    # The options were read from the installed binary's --help and are cached per release build.
    cache = deployment.path("triton_service_home") / "cache" / "tritonserver-options.json"
    accepted = deployment.converge(extra={"triton_service_extra_args": ["--log-verbose", "1"]})
    assert recap(accepted)[2] == 0, accepted.stdout[-4000:]
    options = json.loads(cache.read_text())["options"]
    assert options["log-verbose"] is True and options["disable-auto-complete-config"] is False
    back = deployment.converge()
    assert recap(back)[2] == 0 and launcher.read_text() == before


def test_a_change_an_interrupted_run_did_not_restart_on_is_restarted_by_the_next(deployment: Deployment):
    # A run that wrote the launcher and died before its handler left the copy of the launcher the
    # server runs on; the next run sees nothing to write but restarts all the same.
    launcher = deployment.path("triton_service_home") / "bin" / "tritonfleet-serve"
    shutil.copy2(launcher, f"{launcher}.previous")
    (pid,) = server_pids()
    result = deployment.converge()
    assert recap(result)[0] > 0 and recap(result)[2] == 0, result.stdout[-4000:]
    assert "did not restart the server on it" in result.stdout
    assert server_pids() not in ([], [pid])
    assert not Path(f"{launcher}.previous").exists()
    assert recap(deployment.converge()) == (0, 0, 0)


def test_a_server_left_live_but_not_ready_is_restarted_by_a_plain_run(deployment: Deployment):
    # A model that failed to load through the repository API stays in the server's state and
    # keeps /v2/health/ready at 400 (strict readiness) although the server is live.
    broken = deployment.models / "current" / "broken"
    shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "repos" / "broken_model" / "add_sub", broken)
    config = broken / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "add_sub"', 'name: "broken"'))
    status, _body = http("/v2/repository/models/broken/load", {}, headers={KEY_HEADER: api_key(deployment)})
    shutil.rmtree(broken)
    assert status != 200
    assert http("/v2/health/live")[0] == 200 and http("/v2/health/ready")[0] == 400
    (pid,) = server_pids()
    result = deployment.converge()
    assert recap(result)[0] > 0 and recap(result)[2] == 0, result.stdout[-4000:]
    assert server_pids() not in ([], [pid])
    assert http("/v2/health/ready")[0] == 200


def test_bad_backend_directory_fails_the_play_with_the_server_log(deployment: Deployment):
    # Long enough that only supervisord giving up (FATAL after startretries) ends the wait early.
    timeout = 120
    launcher = deployment.path("triton_service_home") / "bin" / "tritonfleet-serve"
    before = launcher.read_text()
    started = time.monotonic()
    result = deployment.converge(
        extra={
            "triton_service_extra_args": [f"--backend-directory={deployment.base}/no-such-backends"],
            "triton_service_ready_timeout": timeout,
        }
    )
    elapsed = time.monotonic() - started
    assert recap(result)[2] == 1
    assert "did not become live" in result.stdout
    # The server's own words, quoted from its log file:
    assert "unable to find backend library for backend 'python'" in result.stdout
    # A server that crash-loops fails as soon as supervisord stops restarting it, not at the timeout.
    assert "supervisord gave up restarting it" in result.stdout
    assert elapsed < 60, elapsed
    # The launcher it was started from came back, and the server serves on it before the play failed.
    assert f"The previous {launcher} were restored" in result.stdout
    assert "the server is live and ready again on them" in result.stdout
    assert launcher.read_text() == before
    assert not Path(f"{launcher}.previous").exists()
    assert http("/v2/health/ready")[0] == 200
    recovered = deployment.converge()
    assert recap(recovered)[2] == 0, recovered.stdout[-4000:]
    assert http("/v2/health/ready")[0] == 200


SLOW_MODEL = """
import time


class TritonPythonModel:
    def initialize(self, args):
        print("slow model: stuck in initialize", flush=True)
        time.sleep(600)

    def execute(self, requests):
        return []
"""


def test_server_stuck_loading_fails_within_the_timeout_with_its_log(deployment: Deployment):
    slow = deployment.models / "current" / "slow"
    (slow / "1").mkdir(parents=True)
    (slow / "1" / "model.py").write_text(SLOW_MODEL)
    config = (deployment.models / "current" / "add_sub" / "config.pbtxt").read_text()
    (slow / "config.pbtxt").write_text(config.replace('name: "add_sub"', 'name: "slow"'))
    timeout = 15
    started = time.monotonic()
    # A changed launcher restarts the server, which then lists the new model at start.
    result = deployment.converge(
        extra={"triton_service_extra_args": ["--log-verbose=0"], "triton_service_ready_timeout": timeout}
    )
    elapsed = time.monotonic() - started
    assert recap(result)[2] == 1, result.stdout[-4000:]
    assert f"did not become live within triton_service_ready_timeout={timeout}s" in result.stdout
    assert "slow model: stuck in initialize" in result.stdout
    assert elapsed < timeout + 45, elapsed
    shutil.rmtree(slow)
    recovered = deployment.converge()
    assert recap(recovered)[2] == 0, recovered.stdout[-4000:]
    assert http("/v2/health/ready")[0] == 200


def test_remove_leaves_nothing_behind(deployment: Deployment):
    uid = pwd.getpwnam(USER).pw_uid
    # What a server killed with -9 leaves behind (docs/upstream-facts.md, "The nvidia-pytriton wheel"),
    # next to a region of some other server on this machine that removal must not touch.
    ours = Path(f"/dev/shm/triton_python_backend_shm_region_{deployment.base.name}-ours")
    theirs = Path(f"/dev/shm/triton_python_backend_shm_region_{deployment.base.name}-theirs")
    ours.write_bytes(b"\0")
    os.chown(ours, uid, -1)
    theirs.write_bytes(b"\0")
    try:
        result = deployment.remove()
        assert theirs.exists()
    finally:
        theirs.unlink()
    assert not ours.exists()
    assert [p for p in Path("/dev/shm").glob("triton_python_backend_shm_region_*") if p.stat().st_uid == uid] == []
    assert recap(result)[2] == 0, result.stdout[-4000:]
    assert server_pids() == []
    assert deployment.supervisord_pid() is None
    with pytest.raises(KeyError):
        pwd.getpwnam(USER)
    leftovers = [
        name
        for name, value in deployment.vars.items()
        if name.endswith(("_dir", "_prefix", "_home")) and Path(value).exists()
    ]
    assert leftovers == []
    assert not deployment.prefix.exists()
    assert not deployment.models.exists()
    assert http_refused()
    again = deployment.remove()
    assert recap(again) == (0, 0, 0)
    check = deployment.remove("--check")
    assert recap(check) == (0, 0, 0)


def http_refused() -> bool:
    try:
        http("/v2/health/live")
    except OSError:
        return True
    return False


def test_check_mode_on_a_fresh_host_predicts_without_touching_it(tmp_path: Path):
    dep = Deployment(tmp_path)
    dep.vars["triton_service_user"] = dep.vars["triton_service_group"] = "tfsvc-chk"
    (tmp_path / "vars.json").write_text(json.dumps(dep.vars))
    result = dep.converge("--check")
    changed, _, failed = recap(result)
    assert failed == 0, result.stdout[-4000:]
    assert changed > 0
    assert "No installed release" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play.yml", "vars.json"]
    with pytest.raises(KeyError):
        pwd.getpwnam("tfsvc-chk")
