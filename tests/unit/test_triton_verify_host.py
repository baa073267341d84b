"""module_utils/triton_verify_host.py: deployed state, device check with the server's CUDA view, server check.

The CUDA side runs the real ctypes binding against the test-built ``libcuda.so.1`` of
test_triton_device_check_cuda.py, which reads ``CUDA_VISIBLE_DEVICES`` through ``getenv`` as the
driver does; the server check talks to a loopback port nothing listens on (38097).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from ansible.module_utils.triton_cuda import CudaDriver
from ansible.module_utils.triton_runtime import RuntimeSectionError
from ansible.module_utils.triton_verify_host import (
    apply_cuda_environment,
    cuda_library,
    device_environment,
    verify_host,
)
from support.plans import dgpu_host, gpu, make_plan
from test_triton_device_check_cuda import FAKE_LIBCUDA_C

TWO_GPUS = dgpu_host([gpu(0, "A", "8.6"), gpu(1, "B", "7.5")])
CPU_PLAN = make_plan(TWO_GPUS, enable_gpu="false")
GPU_PLAN = make_plan(TWO_GPUS, gpus=[0])
NO_SERVER = "http://127.0.0.1:38097"
GROUPS = {"add_sub": [{"name": "add_sub_0", "kind": "KIND_GPU", "count": 1, "gpus": [0]}]}


@pytest.fixture(scope="module")
def libcuda_dir(tmp_path_factory) -> Path:
    """A directory holding the fake ``libcuda.so.1``, as a CUDA compat directory would."""
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to build the fake libcuda.so.1 (tests/ensure-system-packages installs it)"
    root = tmp_path_factory.mktemp("compat")
    (root / "fake_libcuda.c").write_text(FAKE_LIBCUDA_C)
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-o", str(root / "libcuda.so.1"), str(root / "fake_libcuda.c")], check=True
    )
    return root


@pytest.fixture
def environ(monkeypatch):
    """os.environ as a connection would leave it: a stray CUDA_VISIBLE_DEVICES, two fake GPUs."""
    for name in [k for k in os.environ if k.startswith(("CUDA_", "NVIDIA_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("NVIDIA_DRIVER_CAPABILITIES", "all")
    monkeypatch.setenv("FAKE_CUDA_DEVICES", "A|8|6;B|7|5")
    return os.environ


def _proc(root: Path, pid: int, port: int, env: dict[str, str]) -> None:
    entry = root / str(pid)
    entry.mkdir(parents=True)
    (entry / "comm").write_text("tritonserver\n")
    (entry / "cmdline").write_bytes(b"tritonserver\0--http-port=%d\0--key=secret\0" % port)
    (entry / "status").write_text("Name:\ttritonserver\nUid:\t998\t998\t998\t998\n")
    (entry / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0")


def _host(tmp_path: Path, server_env: dict[str, str] | None) -> dict:
    (tmp_path / "opt" / "current").mkdir(parents=True)
    (tmp_path / "opt" / "current" / "manifest.json").write_text('{"release": "24.10", "server_version": "2.51.0"}')
    (tmp_path / "models" / "releases" / "r1").mkdir(parents=True)
    (tmp_path / "models" / "releases" / "r1" / "instance_groups.json").write_text(json.dumps(GROUPS))
    (tmp_path / "models" / "current").symlink_to("releases/r1")
    (tmp_path / "proc").mkdir()
    (tmp_path / "dev").mkdir()
    if server_env is not None:
        _proc(tmp_path / "proc", 4242, 38096, server_env)
    return {
        "install_prefix": str(tmp_path / "opt"),
        "models_root": str(tmp_path / "models"),
        "proc_root": str(tmp_path / "proc"),
        "http_port": 38096,
        "url": NO_SERVER,
        "plan": GPU_PLAN,
        "device_check": True,
        "user": None,
        "root": str(tmp_path),
        "api_key_header": "tf-key",
        "api_key_file": str(tmp_path / "api-key"),
        "expected_outputs": None,
        "smoke_inference": True,
        "timeout": 2.0,
    }


class Recorder:
    """load_nvml and make_cuda stand-ins that note the CUDA variables in force when each is called."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, str]] = {}
        self.keys: list[str] = []

    def _cuda_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith(("CUDA_", "NVIDIA_"))}

    def load_nvml(self):
        self.seen["nvml"] = self._cuda_env()
        return None, "no NVML in this test"

    def make_cuda(self, library: str) -> CudaDriver:
        self.seen["cuda"] = self._cuda_env()
        self.seen["library"] = {"path": library}
        return CudaDriver(library)


def _run(params: dict, recorder: Recorder) -> dict:
    with requests.Session() as session:
        result = verify_host(params, recorder.load_nvml, recorder.make_cuda, session, recorder.keys.append)
        result["headers"] = dict(session.headers)
    return result


NO_PROCESS = {"found": False, "environment": {}}


def test_device_environment_is_the_servers_else_the_plans_runtime_env():
    assert device_environment(NO_PROCESS, CPU_PLAN) == {"CUDA_VISIBLE_DEVICES": ""}
    assert device_environment(NO_PROCESS, GPU_PLAN) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    running = {"found": True, "environment": {"CUDA_VISIBLE_DEVICES": "1"}}
    assert device_environment(running, CPU_PLAN) == {"CUDA_VISIBLE_DEVICES": "1"}


def test_device_environment_refuses_a_plan_without_runtime():
    old_plan = {key: value for key, value in GPU_PLAN.items() if key != "runtime"}
    with pytest.raises(RuntimeSectionError, match=r"no complete runtime section.*run preflight"):
        device_environment(NO_PROCESS, old_plan)


def test_apply_cuda_environment_replaces_only_the_cuda_variables():
    environ = {"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_VISIBLE_DEVICES": "all", "PATH": "/usr/bin", "HOME": "/root"}
    apply_cuda_environment(environ, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "PATH": "/venv/bin", "LD_LIBRARY_PATH": "/r"})
    assert environ == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "PATH": "/usr/bin", "HOME": "/root"}


def test_cuda_library_follows_the_servers_library_path(tmp_path):
    (tmp_path / "compat").mkdir()
    (tmp_path / "compat" / "libcuda.so.1").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    assert cuda_library({"LD_LIBRARY_PATH": "/empty:compat:/compat"}, str(tmp_path)) == str(
        tmp_path / "compat" / "libcuda.so.1"
    )
    assert cuda_library({"LD_LIBRARY_PATH": "/empty"}, str(tmp_path)) == "libcuda.so.1"
    assert cuda_library({}, str(tmp_path)) == "libcuda.so.1"


def test_device_check_runs_with_the_running_servers_environment(tmp_path, libcuda_dir, environ):
    # The server sees only GPU 1 and loads the compat libcuda from its LD_LIBRARY_PATH.
    server_env = {"CUDA_VISIBLE_DEVICES": "1", "LD_LIBRARY_PATH": "/r/lib:/compat", "PATH": "/r/bin"}
    params = _host(tmp_path, server_env)
    shutil.copytree(libcuda_dir, tmp_path / "compat")
    recorder = Recorder()
    result = _run(params, recorder)
    assert recorder.seen["nvml"] == recorder.seen["cuda"] == {"CUDA_VISIBLE_DEVICES": "1"}
    assert recorder.seen["library"]["path"] == str(tmp_path / "compat" / "libcuda.so.1")
    cuda = result["device_check"]["devices"]["cuda"]
    assert (cuda["available"], cuda["cuda_visible_devices"]) == (True, "1")
    assert [(d["index"], d["name"]) for d in cuda["devices"]] == [(0, "B")]
    assert set(result["device_check"]) == {"devices", "findings"}
    assert result["access_user"]["requested"] is None
    assert (result["process"]["pid"], result["release"]["instance_groups"]) == (4242, GROUPS)
    assert result["manifest"]["server_version"] == "2.51.0"
    assert result["server_check"]["gpu_memory"]["pids"] == [4242]
    assert [f["code"] for f in result["server_check"]["findings"]] == ["server_unreachable"]


def test_without_a_server_the_plans_environment_is_used(tmp_path, libcuda_dir, environ):
    params = {**_host(tmp_path, None), "plan": CPU_PLAN}
    environ["LD_LIBRARY_PATH"] = str(libcuda_dir)  # the module's own path never picks the library
    recorder = Recorder()
    result = _run(params, recorder)
    assert recorder.seen["cuda"] == {"CUDA_VISIBLE_DEVICES": ""}
    assert recorder.seen["library"]["path"] == "libcuda.so.1"
    assert result["device_check"]["devices"]["cuda"]["cuda_visible_devices"] == ""
    assert result["process"]["found"] is False
    memory = result["server_check"]["gpu_memory"]
    assert (memory["pids"], memory["reason"]) == ([], "no server pid given (set pid or pidfile)")


def test_a_refused_plan_skips_the_device_check_and_keeps_the_environment(tmp_path, environ):
    params = {**_host(tmp_path, {"CUDA_VISIBLE_DEVICES": ""}), "plan": {}, "device_check": False}
    recorder = Recorder()
    result = _run(params, recorder)
    assert (result["device_check"], result["access_user"]) == (None, None)
    assert "cuda" not in recorder.seen
    assert recorder.seen["nvml"] == {"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_DRIVER_CAPABILITIES": "all"}
    assert result["server_check"]["server"] is None


def test_the_key_is_sent_and_handed_over_for_hiding(tmp_path, environ):
    params = {**_host(tmp_path, None), "device_check": False}
    recorder = Recorder()
    assert "tf-key" not in _run(params, recorder)["headers"]
    (tmp_path / "api-key").write_text("  s3cret\n")
    result = _run(params, recorder)
    assert (result["headers"]["tf-key"], recorder.keys) == ("s3cret", ["s3cret"])


def test_an_unreadable_state_is_one_message_with_the_fix(tmp_path, environ):
    params = _host(tmp_path, None)
    (tmp_path / "opt" / "current" / "manifest.json").write_text("{half")
    with pytest.raises(
        ValueError, match=r"verify cannot read the deployed state: .*manifest\.json is not valid JSON.*Fix: rerun"
    ):
        _run(params, Recorder())


def test_a_plan_without_a_comparable_capability_is_refused(tmp_path, libcuda_dir, environ):
    environ["FAKE_CUDA_DEVICES"] = "A|8|6"
    server_env = {"CUDA_VISIBLE_DEVICES": "0", "LD_LIBRARY_PATH": "/compat"}
    params = {
        **_host(tmp_path, server_env),
        "plan": {**GPU_PLAN, "runtime": {**GPU_PLAN["runtime"], "min_compute_capability": "sm_75"}},
    }
    shutil.copytree(libcuda_dir, tmp_path / "compat")
    with pytest.raises(ValueError, match=r"compute capability cannot be compared: .*'sm_75'.*Fix: re-run preflight"):
        _run(params, Recorder())
