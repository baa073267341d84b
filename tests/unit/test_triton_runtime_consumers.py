# SPDX-License-Identifier: Apache-2.0
"""Every plan of the plan table, through every consumer of ``triton_plan.runtime``.

The device environment and options are decided once (``module_utils/triton_runtime.py``, called by
``triton_compat.build_plan``). This test feeds each plan of tests/unit/test_triton_compat.py's
PLAN_TABLE to every part that starts, inspects or verifies Triton and asserts they all see the
identical environment, server options, minimum compute capability and build kind:

- the service launcher (``triton_service.server_env`` / ``server_argv``),
- the container run specification (``triton_container_spec.container_run_spec``) and the service's
  container command (``triton_service.container_launch``),
- the preflight device check (the ``environment`` of roles/triton_platform/tasks/device_check.yml,
  rendered as Ansible renders it, and the check's minimum compute capability),
- verification (``triton_verify_host.device_environment`` when no server runs),
- the source build (``--enable-gpu``, ``--min-compute-capability``) and the install's build check,
- the model renderer (the minimum compute capability in Triton's invalid-gpu-id message),
- an embedded application: its launcher's environment and build environment
  (``triton_app.launch_environment``, ``build_environment``), the server options appended to its
  command line (``launch_argv``) and the app check's minimum compute capability,
- the in-process probe: the server options it sets through the C API (``triton_app_probe``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.triton_app import build_environment, launch_argv, launch_environment
from ansible.module_utils.triton_app_check import binary_findings
from ansible.module_utils.triton_app_probe import apply_options, probe_request
from ansible.module_utils.triton_container_spec import container_run_argv, container_run_spec
from ansible.module_utils.triton_device_check import check_devices
from ansible.module_utils.triton_install_errors import InstallError
from ansible.module_utils.triton_model_config import parse_config, validate
from ansible.module_utils.triton_server_inspect import check_release
from ansible.module_utils.triton_service import container_launch, server_argv, server_env
from ansible.module_utils.triton_source_build import source_build_argv
from ansible.module_utils.triton_verify_host import device_environment
from jinja2.nativetypes import NativeEnvironment
from support.plans import with_containers
from test_triton_compat import PLAN_TABLE
from test_triton_device_check import FakeCuda

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVICE_CHECK_TASKS = REPO_ROOT / "roles" / "triton_platform" / "tasks" / "device_check.yml"
CUDA_PREFIXES = ("CUDA_", "NVIDIA_")
SERVICE_OPTIONS = {
    "release_dir": "/opt/tritonserver/releases/x",
    "model_repository": "/srv/tritonfleet/models/current",
    "state_dir": "/var/lib/tritonfleet",
    "http_address": "127.0.0.1",
    "http_port": 8000,
    "grpc_address": "127.0.0.1",
    "grpc_port": 8001,
    "metrics_address": "127.0.0.1",
    "metrics_port": 8002,
    "auto_complete_config": False,
    "extra_args": ["--log-verbose=1"],
}
MANIFEST = {"server_version": "x", "gpu_build": True, "python_bin_dir": None}
CONTAINER_OPTIONS = {"models_root": "/srv/m", "engine": "docker"}
APP_HOME = "/opt/tritonserver/current"
# Flags the probe sets that the plan leaves at Triton's default (no flag in server_args), and its
# own: no metrics endpoint in-process.
TRITON_DEFAULTS = {"--allow-gpu-metrics=true", "--enable-peer-access=true"}
PROBE_OWN = {"--allow-metrics=false"}


class RecordingTriton:
    """The C API as the probe calls it (``api.call(name, *args)``), recorded instead of run."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))


def _plans() -> list[Any]:
    return [pytest.param(case, id=case[0]) for case in PLAN_TABLE]


@pytest.fixture(params=_plans())
def planned(request) -> tuple[dict[str, Any], dict[str, Any]]:
    """(host, plan) for one row of the plan table."""
    from support.plans import make_plan

    _id, host_fn, release, method, kwargs, _expected = request.param
    host = host_fn()
    return host, make_plan(host, release, method, **kwargs)


def _cuda(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith(CUDA_PREFIXES)}


def _after_endpoints(argv: list[str]) -> list[str]:
    """The server arguments after the metrics port: the device options, then the extra arguments."""
    return argv[argv.index(f"--metrics-port={SERVICE_OPTIONS['metrics_port']}") + 1 : -1]


def _device_check_environment(plan: dict[str, Any]) -> dict[str, str]:
    task = next(t for t in yaml.safe_load(DEVICE_CHECK_TASKS.read_text()) if "triton_device_check" in t)
    template = NativeEnvironment().from_string(task["environment"])
    return template.render(ansible_facts={"triton_plan": plan})


# An application linking a GPU-built libtritonserver that sets every option the plan can ask for.
EMBEDDING_APP = {
    "path": "/r/app",
    "elf": True,
    "links_triton": True,
    "needed": ["libtritonserver.so"],
    "rpath": None,
    "runpath": None,
    "library_name": "libtritonserver.so",
    "library": {"path": "/l.so", "real_path": "/l.so", "via": "RPATH", "gpu_build": True, "cuda_runtime": []},
    "cuda_device_calls": [],
    "option_setters": [
        "TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize",
        "TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize",
        "TRITONSERVER_ServerOptionsSetMinSupportedComputeCapability",
        "TRITONSERVER_ServerOptionsSetModelLoadRetryCount",
    ],
}


def test_every_process_gets_the_same_environment(planned):
    host, plan = planned
    runtime = plan["runtime"]
    seen = {
        "service": _cuda(server_env(plan, MANIFEST, SERVICE_OPTIONS)),
        "device check task": _device_check_environment(plan),
        "verification": device_environment({"found": False, "environment": {}}, plan),
        "embedded application": _cuda(launch_environment(plan, MANIFEST, APP_HOME, "/var/lib/app", "/srv/m", {})),
        "embedded application build": _cuda(build_environment(plan, APP_HOME)),
    }
    assert all(env == runtime["env"] for env in seen.values()), seen
    if plan["container_image"]:
        spec = container_run_spec(plan, with_containers(dict(host)), CONTAINER_OPTIONS)
        assert spec["env"] == {**runtime["env"], **runtime["container_env"]}
        assert spec["devices"] == runtime["container_devices"][spec["engine"]["name"]]


def test_every_server_command_line_gets_the_same_options(planned, tmp_path):
    host, plan = planned
    native = _after_endpoints(server_argv(plan, SERVICE_OPTIONS))
    assert native == plan["runtime"]["server_args"]
    # An embedded application that takes tritonserver's flags gets exactly these after its own.
    assert launch_argv(Path("/r"), "app", ["--own"], plan, True) == ["/r/app", "--own", *native]
    # The probe sets every one of them through the C API, and otherwise only Triton's defaults.
    api = RecordingTriton()
    request = probe_request(Path("/l.so"), Path("/r"), Path("/m"), [], plan, 1.0)
    applied = apply_options(api, "options", request)
    assert set(native) <= set(applied) and set(applied) - set(native) <= TRITON_DEFAULTS | PROBE_OWN, applied
    pools = [c[2:] for c in api.calls if c[0] == "TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize"]
    assert pools == [(int(g), s) for g, s in plan["runtime"]["memory"]["cuda_memory_pool_bytes"].items()]
    if plan["container_image"]:
        spec = dict(container_run_spec(plan, with_containers(dict(host)), CONTAINER_OPTIONS), image_id="0" * 64)
        (tmp_path / "container.json").write_text(json.dumps(dict(spec, argv=container_run_argv(spec))))
        container = container_launch(tmp_path, {}, {**SERVICE_OPTIONS, "plan": plan})["argv"]
        assert _after_endpoints(container) == native


def test_every_consumer_applies_the_same_minimum_compute_capability(planned):
    host, plan = planned
    runtime = plan["runtime"]
    argv = source_build_argv(plan, host, {"checkout": "/src", "build_dir": "/b", "backends": []})
    assert ("--enable-gpu" in argv) is runtime["gpu_build"]
    if runtime["gpu_build"]:
        assert f"--min-compute-capability={runtime['min_compute_capability']}" in argv
    # The device check calls a GPU with exactly the runtime's minimum "below the minimum".
    major, minor = (int(part) for part in runtime["min_compute_capability"].split("."))
    below = f"{major}.{minor - 1}" if minor else f"{major - 1}.9"
    cuda = FakeCuda([{"name": "below the minimum", "compute_capability": below}])
    result = check_devices({**plan, "enable_gpu": True, "gpu_ids": [0]}, None, cuda, {}, "/nonexistent")
    low = [f for f in result["findings"] if f["code"] == "gpu_below_min_cc"]
    assert len(low) == 1 and f"minimum supported of '{runtime['min_compute_capability']}'" in low[0]["message"]
    if plan["enable_gpu"]:
        config = parse_config("instance_group [{ kind: KIND_GPU gpus: [7] }]", "/r/m/config.pbtxt")
        (problem,) = validate(config, plan, host, runtime["gpu_build"])
        assert f"compute compatibility of {float(runtime['min_compute_capability']):.6f}" in problem.message
        # The app check finds the same GPU excluded from an embedded application.
        low_gpu = {"index": plan["gpu_ids"][0], "name": "below the minimum", "compute_capability": below}
        (excluded,) = binary_findings(EMBEDDING_APP, plan, {}, "test", [low_gpu], None)
        assert f"minimum compute capability {runtime['min_compute_capability']} excludes" in excluded["message"]


def test_the_install_accepts_exactly_the_build_kind_the_plan_names(planned):
    _host, plan = planned
    info = {"tritonserver": True, "cudart": ["libcudart.so.12"], "backends": []}
    check_release({**info, "gpu_build": plan["runtime"]["gpu_build"]}, plan["server_version"], plan, "/s")
    with pytest.raises(InstallError, match="build"):
        check_release({**info, "gpu_build": not plan["runtime"]["gpu_build"]}, plan["server_version"], plan, "/s")
