# SPDX-License-Identifier: Apache-2.0
"""The static repository check against a real tritonserver 2.51.0: same verdict, same words.

One repository holds a model per rule this machine's server can reach (its release has the python
backend only, so the step models of the ensembles are python models). The server loads it with
the service's options (--disable-auto-complete-config); every model tritonfleet refuses must fail
in the server's log with tritonfleet's first reason, and every model it accepts must be READY.
A python model without model.py is left out: 2.51.0 never answers its load (issue 9).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.triton_model_repository import RenderSettings, check_repository
from support.triton_dist import CPU_PLAN, pytriton_wheel, server_argv, server_env, triton_release

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
MATRIX = REPO_ROOT / "roles" / "triton_platform" / "files" / "triton_matrix.yml"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 18210, 18211, 18212
MODEL_PY = (REPO_ROOT / "examples" / "model_repository" / "add_sub" / "1" / "model.py").read_text()
IO2 = (
    'input [{name: "INPUT0" data_type: TYPE_FP32 dims: [4]}, {name: "INPUT1" data_type: TYPE_FP32 dims: [4]}]\n'
    'output [{name: "OUTPUT0" data_type: TYPE_FP32 dims: [4]}, {name: "OUTPUT1" data_type: TYPE_FP32 dims: [4]}]\n'
)
CPU = "instance_group [{kind: KIND_CPU}]\n"


def python_model(body: str = "", mbs: int = 0, io: str = IO2, group: str = CPU) -> str:
    return f'backend: "python"\nmax_batch_size: {mbs}\n{io}{group}{body}'


def ensemble(steps: str, mbs: int = 0, io: str = IO2) -> str:
    return f'platform: "ensemble"\nmax_batch_size: {mbs}\n{io}ensemble_scheduling {{ step [ {steps} ] }}\n'


def step(model: str, version: int = -1, inputs: str = "", outputs: str = "") -> str:
    inputs = inputs or 'input_map {key: "INPUT0" value: "INPUT0"} input_map {key: "INPUT1" value: "INPUT1"}'
    outputs = outputs or 'output_map {key: "OUTPUT0" value: "OUTPUT0"} output_map {key: "OUTPUT1" value: "OUTPUT1"}'
    return f'{{model_name: "{model}" model_version: {version} {inputs} {outputs}}}'


# model name -> (config text or None, files under the model directory)
MODELS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "ok": (python_model(), ("1/model.py",)),
    "ok_batch4": (python_model(mbs=4), ("1/model.py",)),
    "count_zero": (python_model(group="instance_group [{kind: KIND_CPU count: 0}]\n"), ("1/model.py",)),
    "no_config": (None, ("1/model.py",)),
    "no_version": (python_model(), ("model.py",)),
    "leading_zero": (python_model(), ("01/model.py",)),
    "negative_batch": (python_model(mbs=-1), ("1/model.py",)),
    "bad_reshape": (
        python_model(io='input [{name: "X" data_type: TYPE_FP32 dims: [2, 3] reshape {shape: [5]}}]\n'),
        ("1/model.py",),
    ),
    "name_mismatch": ('name: "other"\n' + python_model(), ("1/model.py",)),
    "onnx_model": ('backend: "onnxruntime"\nmax_batch_size: 0\n' + IO2, ("1/model.onnx",)),
    "bad_runtime": (python_model('runtime: "__invalid__"\n'), ("1/model.py",)),
    "python_runtime": (python_model('runtime: "model.py"\n'), ("1/model.py",)),
    "gpu_on_cpu": (python_model(group="instance_group [{kind: KIND_GPU}]\n"), ("1/model.py",)),
    "gpu_id_listed": (python_model(group="instance_group [{kind: KIND_GPU gpus: [1]}]\n"), ("1/model.py",)),
    "ens_ok": (ensemble(step("ok")), ("1/",)),
    "ens_missing_step": (ensemble(step("absent")), ("1/",)),
    "ens_batch": (ensemble(step("ok_batch4"), mbs=8), ("1/",)),
    "ens_version": (ensemble(step("ok", version=3)), ("1/",)),
    "ens_unmapped": (ensemble(step("ok", inputs='input_map {key: "INPUT0" value: "INPUT0"}')), ("1/",)),
    "ens_shape": (
        ensemble(
            step("ok"),
            io='input [{name: "INPUT0" data_type: TYPE_FP32 dims: [8]}, {name: "INPUT1" data_type: TYPE_FP32 '
            'dims: [4]}]\noutput [{name: "OUTPUT0" data_type: TYPE_FP32 dims: [4]}, {name: "OUTPUT1" data_type: '
            "TYPE_FP32 dims: [4]}]\n",
        ),
        ("1/",),
    ),
    "ens_no_steps": ('platform: "ensemble"\nmax_batch_size: 0\n' + IO2 + "ensemble_scheduling {}\n", ("1/",)),
}


def write_repository(root: Path) -> None:
    for name, (config, files) in MODELS.items():
        model = root / name
        model.mkdir(parents=True)
        if config is not None:
            (model / "config.pbtxt").write_text(config)
        for relative in files:
            path = model / relative
            if relative.endswith("/"):
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(MODEL_PY)


def test_the_wheels_backends_are_the_matrix_wheel_backends():
    matrix = yaml.safe_load(MATRIX.read_text())
    with zipfile.ZipFile(pytriton_wheel()) as wheel:
        found = {
            Path(name).parts[3]
            for name in wheel.namelist()
            if name.startswith("pytriton/tritonserver/backends/") and len(Path(name).parts) > 4
        }
    assert sorted(found) == matrix["wheel"]["backends"]


def test_the_real_server_agrees_with_the_static_check(tmp_path):
    repo = tmp_path / "models"
    write_repository(repo)
    # The plan preflight makes here (the matrix's minimum compute capability of 24.10 included).
    plan = {**CPU_PLAN, "gpu_ids": [], "min_compute_capability": "6.0"}
    host = {"platform": "cpu", "arch": "x86_64", "gpus": []}
    check = check_repository(repo, RenderSettings(plan, host, "keep", True, release_backends=("python",)))
    refused: dict[str, str] = {}
    for problem in check.errors:
        refused.setdefault(problem.model, problem.message)
    accepted = set(MODELS) - set(refused)
    assert accepted == {"ok", "ok_batch4", "count_zero", "ens_ok"}, refused

    release = triton_release(tmp_path / "triton")
    argv = [
        *server_argv(release, repo, HTTP_PORT, GRPC_PORT, METRICS_PORT),
        "--load-model=*",
        "--exit-on-error=false",
        "--disable-auto-complete-config",
    ]
    log_path = tmp_path / "tritonserver.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, env=server_env(release), stdout=log, stderr=subprocess.STDOUT)
    try:
        index = _settled_index(proc, f"http://127.0.0.1:{HTTP_PORT}", timeout=180)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # The server names paths on the host; tritonfleet names them in the repository and the release.
    log = log_path.read_text().replace(f"{repo}/", "").replace(f"{release}/", "")
    states = {entry["name"]: entry.get("state") for entry in index}
    assert {name for name in accepted if states.get(name) == "READY"} == accepted, states
    for name, message in refused.items():
        assert states.get(name) != "READY", name
        assert message in log, f"{name}: tritonfleet says {message!r}; the server's log:\n{log[-4000:]}"


def _settled_index(proc: subprocess.Popen, url: str, timeout: float) -> list[dict]:
    """The repository index once no model is loading any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            request = urllib.request.Request(f"{url}/v2/repository/index", data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=2) as response:
                index = json.load(response)
            if index and not any(entry.get("state") == "LOADING" for entry in index):
                return index
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"tritonserver did not settle (exit code {proc.poll()})")
