"""triton_server_check against a REAL tritonserver 2.51.0 (tests/support/triton_dist) on loopback ports 38010-38039.

The servers run examples/model_repository in explicit mode, on the CPU (this machine has no GPU);
expected instance groups come from triton_model_config's own rendering of that repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from ansible.module_utils.triton_model_config import render_repository
from ansible.module_utils.triton_nvml import load_nvml
from ansible.module_utils.triton_server_check import check_server, verify
from support.plans import base_host
from support.triton_dist import CPU_PLAN, server_argv, server_env, triton_release

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "model_repository"
FAKE_NVML_C = REPO_ROOT / "tests" / "fakes" / "libnvidia-ml" / "fake_nvml.c"
CPU_HOST = base_host()
KEY_HEADER, KEY = "tritonfleet-key", "s3cret-test-key"
ADD_SUB_OUTPUTS = {"add_sub": {"OUTPUT0": [2.0, 4.0, 6.0, 8.0], "OUTPUT1": [0.0, 0.0, 0.0, 0.0]}}


class Server:
    """A tritonserver process started by a test, stopped by its pid."""

    def __init__(self, release: Path, repo: Path, port: int, extra: list[str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        argv = [*server_argv(release, repo, port, port + 1, port + 2), *extra]
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(argv, env=server_env(release), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/v2/health/live", timeout=1).status_code == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"tritonserver did not come up on {self.url}:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def model_repo(root: Path) -> Path:
    """A copy of examples/model_repository (the python backend writes __pycache__ into it) plus a KIND_GPU model."""
    repo = root / "models"
    shutil.copytree(EXAMPLES, repo)
    gpu = repo / "add_sub_gpu"
    shutil.copytree(repo / "add_sub", gpu)
    config = (gpu / "config.pbtxt").read_text()
    (gpu / "config.pbtxt").write_text(
        config.replace('name: "add_sub"', 'name: "add_sub_gpu"').replace("KIND_CPU", "KIND_GPU")
    )
    return repo


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return triton_release(tmp_path_factory.mktemp("triton"))


@pytest.fixture(scope="module")
def server(release, tmp_path_factory) -> Iterator[Server]:
    """add_sub and scale loaded; the model-repository API restricted to a key."""
    root = tmp_path_factory.mktemp("server")
    extra = ["--load-model=add_sub", "--load-model=scale", f"--http-restricted-api=model-repository:{KEY_HEADER}={KEY}"]
    srv = Server(release, model_repo(root), 38010, extra, root / "tritonserver.log")
    yield srv
    srv.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers[KEY_HEADER] = KEY
        yield s


def rendered_groups(tmp_path: Path) -> dict:
    models, _ = render_repository(str(EXAMPLES), str(tmp_path / "rendered"), CPU_PLAN, CPU_HOST)
    return {m.name: m.instance_groups for m in models}


def test_served_models_match_what_was_rendered(server, session, tmp_path):
    nvml, nvml_reason = load_nvml()
    report = verify(
        session,
        server.url,
        CPU_PLAN,
        nvml,
        nvml_reason,
        [server.proc.pid],
        expected_instance_groups=rendered_groups(tmp_path),
        expected_outputs=ADD_SUB_OUTPUTS,
    )
    assert report["findings"] == []
    assert report["server"]["live"] is True and report["server"]["ready"] is True
    assert report["server"]["version"] == "2.51.0"
    assert "model_repository" in report["server"]["extensions"]
    models = {m["name"]: m for m in report["models"]}
    assert sorted(models) == ["add_sub", "scale"]
    for model in models.values():
        assert model["state"] == "READY"
        assert model["kinds"] == ["KIND_CPU"] and model["gpus"] == []
        assert model["latency_ms"] > 0
    assert models["add_sub"]["instance_groups"] == [{"name": "add_sub_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]
    assert models["add_sub"]["outputs_ok"] is True


def test_gpu_memory_is_not_measured_without_nvml(server, session):
    nvml, nvml_reason = load_nvml()
    report = verify(session, server.url, CPU_PLAN, nvml, nvml_reason, [server.proc.pid], infer=False)
    memory = report["gpu_memory"]
    assert memory["measured"] is False
    assert memory["reason"].startswith("NVML unavailable")
    assert memory["total_bytes"] is None
    assert not [f for f in report["findings"] if f["code"] == "cpu_plan_gpu_memory"]


def test_wrong_outputs_are_reported(server, session):
    wrong = {"add_sub": {"OUTPUT0": [1.0, 2.0, 3.0, 4.0], "OUTPUT1": [0.0, 0.0, 0.0, 0.0]}}
    report = check_server(session, server.url, models=["add_sub"], expected_outputs=wrong)
    (finding,) = report["findings"]
    assert finding["code"] == "output_mismatch"
    assert "output OUTPUT0 is [2.0, 4.0, 6.0, 8.0], expected [1.0, 2.0, 3.0, 4.0]" in finding["message"]
    assert report["models"][0]["outputs_ok"] is False


def test_kind_mismatch_is_reported(server, session):
    expected = {"add_sub": [{"kind": "KIND_GPU", "gpus": [0], "count": 1}], "scale": [{"kind": "KIND_CPU", "gpus": []}]}
    report = check_server(session, server.url, expected_instance_groups=expected, infer=False)
    assert [(f["code"], f["model"]) for f in report["findings"]] == [("instance_group_mismatch", "add_sub")]
    assert (
        "server runs [KIND_CPU gpus [] count 1], intended [KIND_GPU gpus [0] count 1]"
        in (report["findings"][0]["message"])
    )


def test_restricted_repository_api_needs_the_key(server):
    with requests.Session() as anonymous:
        report = check_server(anonymous, server.url)
    (finding,) = report["findings"]
    assert finding["code"] == "repository_index_failed"
    assert "answered 403" in finding["message"] and KEY_HEADER in finding["message"]
    assert KEY not in json.dumps(report)


def test_unreachable_server_is_a_finding_not_an_exception():
    with requests.Session() as s:
        report = check_server(s, "http://127.0.0.1:38099", timeout=2)
    assert report["server"] is None
    assert [f["code"] for f in report["findings"]] == ["server_unreachable"]


def test_failed_and_unloaded_models_are_reported(release, tmp_path):
    srv = Server(
        release,
        model_repo(tmp_path),
        38020,
        ["--load-model=add_sub", "--load-model=scale", "--exit-timeout-secs=5"],
        tmp_path / "log",
    )
    try:
        with requests.Session() as s:
            load = s.post(f"{srv.url}/v2/repository/models/add_sub_gpu/load", json={}, timeout=30)
            assert load.status_code == 400
            assert s.post(f"{srv.url}/v2/repository/models/scale/unload", json={}, timeout=30).status_code == 200
            deadline = time.monotonic() + 30
            while s.post(f"{srv.url}/v2/repository/index", json={}).json()[-1]["state"] != "UNAVAILABLE":
                assert time.monotonic() < deadline, "scale did not finish unloading"
                time.sleep(0.2)
            report = check_server(s, srv.url, models=["add_sub", "add_sub_gpu", "scale", "missing"])
    finally:
        srv.stop()
    findings = {(f["code"], f["model"]): f["message"] for f in report["findings"]}
    assert "has kind KIND_GPU but no GPUs are available" in findings[("model_not_ready", "add_sub_gpu")]
    assert findings[("model_not_ready", "scale")] == "model scale is UNAVAILABLE: unloaded"
    assert ("model_missing", "missing") in findings
    assert ("server_not_ready", None) in findings
    states = {m["name"]: m["state"] for m in report["models"]}
    assert states == {"add_sub": "READY", "add_sub_gpu": "UNAVAILABLE", "scale": "UNAVAILABLE", "missing": None}


# ---------------------------------------------------------------- through ansible


def run_module(tmp_path: Path, args: dict, env: dict | None = None) -> tuple[int, dict, str]:
    tree = tmp_path / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "triton_server_check",
         "-a", json.dumps(args), "-t", str(tree)],
        cwd=REPO_ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    return proc.returncode, json.loads((tree / "localhost").read_text()), proc.stdout + proc.stderr


def test_module_reports_and_hides_the_key(server, tmp_path):
    pidfile = tmp_path / "tritonserver.pid"
    pidfile.write_text(f"{server.proc.pid}\n")
    args = {
        "url": server.url,
        "api_key_header": KEY_HEADER,
        "api_key": KEY,
        "pidfile": str(pidfile),
        "plan": CPU_PLAN,
        "expected_instance_groups": rendered_groups(tmp_path),
        "expected_outputs": ADD_SUB_OUTPUTS,
    }
    rc, result, out = run_module(tmp_path, args)
    assert rc == 0, out
    assert result["changed"] is False
    assert [m["state"] for m in result["report"]["models"]] == ["READY", "READY"]
    assert result["report"]["gpu_memory"]["pids"] == [server.proc.pid]
    assert KEY not in out and KEY not in json.dumps(result)


def test_module_reads_the_key_file_on_the_host(server, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    args = {"url": server.url, "api_key_header": KEY_HEADER, "api_key_file": str(key_file), "smoke_inference": False}
    rc, result, out = run_module(tmp_path, args)
    assert rc == 0, out
    assert [m["state"] for m in result["report"]["models"]] == ["READY", "READY"]
    assert KEY not in out and KEY not in json.dumps(result)

    # No key file: no key is sent, and the restricted index answers 403.
    key_file.unlink()
    rc, result, out = run_module(tmp_path, {**args, "fail_on_error": False})
    assert rc == 0, out
    assert [f["code"] for f in result["report"]["findings"]] == ["repository_index_failed"]

    rc, result, out = run_module(tmp_path, {**args, "api_key": KEY})
    assert rc != 0
    assert "mutually exclusive: api_key|api_key_file" in result["msg"]


def test_module_fails_on_mismatch_but_returns_the_report(server, tmp_path):
    args = {
        "url": server.url,
        "api_key_header": KEY_HEADER,
        "api_key": KEY,
        "expected_instance_groups": {"scale": [{"kind": "KIND_GPU", "gpus": [0]}]},
        "smoke_inference": False,
    }
    rc, result, out = run_module(tmp_path, args)
    assert rc != 0, out
    assert "instance_group_mismatch: model scale" in result["msg"]
    assert [f["code"] for f in result["report"]["findings"]] == ["instance_group_mismatch"]


def test_module_finds_gpu_memory_on_a_cpu_plan_through_nvml(server, tmp_path):
    """Real pynvml -> a test-built libnvidia-ml.so.1 that reports the real server pid on GPU 0."""
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to build the fake libnvidia-ml.so.1"
    libdir = tmp_path / "lib"
    libdir.mkdir()
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-o", str(libdir / "libnvidia-ml.so.1"), str(FAKE_NVML_C)], check=True
    )
    conf = tmp_path / "gpus.conf"
    conf.write_text(
        "driver_version: 550.54.15\ncuda_driver_version: 12040\n"
        "gpu: 0 | NVIDIA A10 | GPU-00000000-0000-0000-0000-000000000000 | 00000000:07:00.0 | 8 | 6 | 24576 | disabled\n"
        f"process: 0 | {server.proc.pid} | 320\n"
    )
    args = {"url": server.url, "api_key_header": KEY_HEADER, "api_key": KEY, "pid": [server.proc.pid],
            "plan": CPU_PLAN, "smoke_inference": False}  # fmt: skip
    env = {"LD_LIBRARY_PATH": str(libdir), "FAKE_NVML_CONFIG": str(conf)}
    rc, result, out = run_module(tmp_path, args, env)
    assert rc != 0, out
    memory = result["report"]["gpu_memory"]
    assert memory["measured"] is True
    assert memory["total_bytes"] == 320 << 20
    assert memory["gpus"][0]["pids"] == [server.proc.pid]
    assert [f["code"] for f in result["report"]["findings"]] == ["cpu_plan_gpu_memory"]


# ---------------------------------------------------------------- playbooks/verify.yml

# Records each task's action and outcome. Every action outside CONTROLLER_ONLY counts as a
# module run (~0.26 s here: a fork and a Python start); those inside cost ~0.02 s.
COUNTING_CALLBACK = """
import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tf_count"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        with open(os.environ["TF_COUNT_FILE"], "a", encoding="utf-8") as out:
            out.write(json.dumps({"play": self._play, "task": result._task.get_name(),
                                  "action": result._task.action, "status": status}) + "\\n")

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")
"""
CONTROLLER_ONLY = {
    "set_fact", "assert", "debug", "fail", "meta", "include_tasks", "include_role", "group_by", "validate_argument_spec"
}  # fmt: skip
# A play that knows the plan before verify runs, as site.yml's and the rollout's preflight do.
KNOWN_PLAN_PLAYBOOK = """\
- name: Preflight
  hosts: all
  gather_facts: false
  roles:
    - role: triton_platform

- name: Verify
  ansible.builtin.import_playbook: {verify}
"""


@pytest.fixture(scope="module")
def deployed(server, release, tmp_path_factory) -> dict:
    """The server fixture as a deployed host: install prefix, active models release, key file, inventory."""
    base = tmp_path_factory.mktemp("verify")
    models_release = base / "models" / "releases" / "r1"
    models_release.mkdir(parents=True)
    (models_release / "instance_groups.json").write_text(json.dumps(rendered_groups(base)))
    (base / "models" / "current").symlink_to("releases/r1")
    (base / "etc").mkdir()
    (base / "etc" / "api-key").write_text(KEY + "\n")
    (base / "cb").mkdir()
    (base / "cb" / "tf_count.py").write_text(COUNTING_CALLBACK)
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "triton_install_prefix": str(release.parent.parent),
        "triton_models_root": str(base / "models"),
        "triton_service_http_port": 38010,
        "triton_service_api_key_header": KEY_HEADER,
        "triton_service_api_key_file": str(base / "etc" / "api-key"),
        # No such account: the device check judges access for the running user and says so.
        "triton_service_user": "tf-verify-no-such-user",
        "triton_verify_report_dir": str(base / "reports"),
        "triton_verify_expected_outputs": ADD_SUB_OUTPUTS,
    }
    inventory = base / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": host_vars}}}))
    known = base / "known-plan.yml"
    known.write_text(KNOWN_PLAN_PLAYBOOK.format(verify=REPO_ROOT / "playbooks" / "verify.yml"))
    return {"base": base, "inventory": inventory, "known": known}


def run_playbook(deployed: dict, play: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run ``play`` against the deployed host; return the process and what each task ran."""
    counts = deployed["base"] / "counts.jsonl"
    counts.unlink(missing_ok=True)
    plugin_dirs = [str(deployed["base"] / "cb"), os.environ.get("ANSIBLE_CALLBACK_PLUGINS", "")]
    enabled = ["tf_count", os.environ.get("ANSIBLE_CALLBACKS_ENABLED", "")]
    start = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(deployed["inventory"]), str(play), *extra],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": ":".join(filter(None, plugin_dirs)),
            "ANSIBLE_CALLBACKS_ENABLED": ",".join(filter(None, enabled)),
            "TF_COUNT_FILE": str(counts),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(f"{play.name} {' '.join(extra)}: {time.monotonic() - start:.2f} s\n{proc.stdout}")
    tasks = [json.loads(line) for line in counts.read_text().splitlines()] if counts.exists() else []
    return proc, tasks


def module_runs(tasks: list[dict], play: str = "Verify") -> list[str]:
    return [
        t["task"]
        for t in tasks
        if t["play"] == play and t["status"] != "skipped" and t["action"].rsplit(".", 1)[-1] not in CONTROLLER_ONLY
    ]


def stable(report: dict) -> dict:
    """The report without what differs between two runs against the same host (time, latency)."""
    text = json.dumps(report)
    for key in ("generated_at", "duration_ms", "latency_ms", "median_ms", "max_ms"):
        text = re.sub(rf'"{key}": [^,}}]+', f'"{key}": null', text)
    return json.loads(text)


@pytest.fixture(scope="module")
def verified_alone(deployed) -> tuple[subprocess.CompletedProcess, list[dict], dict]:
    """playbooks/verify.yml on its own: the process, what each task ran, and the report."""
    proc, tasks = run_playbook(deployed, REPO_ROOT / "playbooks" / "verify.yml")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc, tasks, json.loads((deployed["base"] / "reports" / "verify.json").read_text())


def test_verify_alone_plans_checks_and_reports(verified_alone):
    proc, tasks, report = verified_alone
    assert KEY not in proc.stdout + proc.stderr
    assert report["verdict"] == "passed", report["findings"]
    assert report["plan"]["instance_kind"] == "KIND_CPU"
    assert report["versions"]["server_version"] == "2.51.0" and report["versions"]["models_release"] == "r1"
    assert report["expected_instance_groups"]["add_sub"] == [
        {"name": "add_sub_0", "kind": "KIND_CPU", "count": 1, "gpus": []}
    ]
    assert report["devices"]["cuda"]["cuda_visible_devices"] == ""
    assert [m["name"] for m in report["models"]] == ["add_sub", "scale"]
    assert all(m["outputs_ok"] is not False for m in report["models"])
    # The standalone run plans the host itself: the platform role's modules run too.
    assert any(t["action"] == "triton_host_facts" and t["status"] == "ok" for t in tasks)


def test_verify_after_preflight_runs_one_host_module_and_reports_the_same(deployed, verified_alone):
    proc, tasks = run_playbook(deployed, deployed["known"])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    # One host module reads and checks everything; the report plugin runs on the controller.
    runs = [t["action"] for t in tasks if t["play"] == "Verify" and t["task"] in module_runs(tasks)]
    assert runs == ["triton_verify_host", "triton_verify_report"], runs
    report = json.loads((deployed["base"] / "reports" / "verify.json").read_text())
    assert stable(report) == stable(verified_alone[2])


def test_verify_in_check_mode_writes_the_report_and_fails_on_an_error_finding(deployed):
    report_path = deployed["base"] / "reports" / "verify.json"
    report_path.unlink(missing_ok=True)
    wrong = json.dumps({"triton_verify_expected_outputs": {"add_sub": {"OUTPUT0": [0.0, 0.0, 0.0, 0.0]}}})
    proc, tasks = run_playbook(deployed, REPO_ROOT / "playbooks" / "verify.yml", "--check", "-e", wrong)
    assert proc.returncode != 0, proc.stdout[-6000:]
    assert "changed=0" in proc.stdout
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "failed"
    assert [(f["check"], f["code"], f["model"]) for f in report["findings"]] == [
        ("server_check", "output_mismatch", "add_sub")
    ]
    assert tasks[-1]["task"].endswith("Ensure the host has no error finding") and tasks[-1]["status"] == "failed"


def test_verify_of_a_host_with_nothing_deployed_reports_every_gap(deployed, tmp_path):
    empty = {
        "triton_install_prefix": str(tmp_path / "opt"),
        "triton_models_root": str(tmp_path / "models"),
        "triton_service_http_port": 38098,
        "triton_service_api_key_file": str(tmp_path / "api-key"),
        "triton_verify_report_dir": str(tmp_path / "reports"),
    }
    proc, _ = run_playbook(deployed, REPO_ROOT / "playbooks" / "verify.yml", "-e", json.dumps(empty))
    assert proc.returncode != 0, proc.stdout[-6000:]
    report = json.loads((tmp_path / "reports" / "verify.json").read_text())
    codes = [(f["check"], f["code"]) for f in report["findings"]]
    assert codes == [
        ("verify", "server_not_installed"),
        ("verify", "models_not_deployed"),
        ("server_check", "server_unreachable"),
    ]
    # No server runs: the device check used the plan's service environment.
    assert report["devices"]["cuda"]["cuda_visible_devices"] == ""
    assert report["gpu_memory"]["pids"] == []


def test_verify_records_a_refused_plan_in_the_report(deployed, tmp_path):
    refused = {"triton_enable_gpu": True, "triton_verify_report_dir": str(tmp_path / "reports")}
    proc, _ = run_playbook(deployed, REPO_ROOT / "playbooks" / "verify.yml", "-e", json.dumps(refused))
    assert proc.returncode != 0, proc.stdout[-6000:]
    report = json.loads((tmp_path / "reports" / "verify.json").read_text())
    assert report["compatibility"]["verdict"] == "incompatible"
    codes = [(f["check"], f["code"]) for f in report["findings"]]
    assert codes[:2] == [("compat", "plan_incompatible"), ("verify", "device_check_not_run")]
