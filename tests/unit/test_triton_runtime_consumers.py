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
- the model renderer (the minimum compute capability in Triton's invalid-gpu-id message).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
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


def test_every_process_gets_the_same_environment(planned):
    host, plan = planned
    runtime = plan["runtime"]
    seen = {
        "service": _cuda(server_env(plan, MANIFEST, SERVICE_OPTIONS)),
        "device check task": _device_check_environment(plan),
        "verification": device_environment({"found": False, "environment": {}}, plan),
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


def test_the_install_accepts_exactly_the_build_kind_the_plan_names(planned):
    _host, plan = planned
    info = {"tritonserver": True, "cudart": ["libcudart.so.12"], "backends": []}
    check_release({**info, "gpu_build": plan["runtime"]["gpu_build"]}, plan["server_version"], plan, "/s")
    with pytest.raises(InstallError, match="build"):
        check_release({**info, "gpu_build": not plan["runtime"]["gpu_build"]}, plan["server_version"], plan, "/s")
