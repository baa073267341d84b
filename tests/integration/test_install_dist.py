# SPDX-License-Identifier: Apache-2.0
"""The wheel release layout serves for real: tritonserver 2.51.0 loads a python model and infers.

Uses tests/support/triton_dist.py (the role's own layout code). The server runs without
LD_LIBRARY_PATH, which proves the RPATH rewrite: with the wheel's original RPATH the python
backend stub cannot find lib/ and the server never becomes ready (docs/upstream-facts.md, "The nvidia-pytriton wheel").
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
from support.triton_dist import server_argv, server_env, triton_release, wait_ready

pytestmark = pytest.mark.integration

HTTP_PORT, GRPC_PORT, METRICS_PORT = 18010, 18011, 18012
MODEL_PY = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "A").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("B", (a * 2).astype(np.float32))]))
        return responses
"""
CONFIG = """backend: "python"
max_batch_size: 0
input [{ name: "A", data_type: TYPE_FP32, dims: [3] }]
output [{ name: "B", data_type: TYPE_FP32, dims: [3] }]
instance_group [{ kind: KIND_CPU, count: 1 }]
"""


def test_wheel_release_serves_a_python_model_without_ld_library_path(tmp_path: Path) -> None:
    release = triton_release(tmp_path / "triton")
    assert release == tmp_path / "triton" / "releases" / "2.51.0"
    repo = tmp_path / "models"
    (repo / "double" / "1").mkdir(parents=True)
    (repo / "double" / "config.pbtxt").write_text(CONFIG)
    (repo / "double" / "1" / "model.py").write_text(MODEL_PY)
    env = server_env(release)
    del env["LD_LIBRARY_PATH"]
    log = (tmp_path / "server.log").open("w")
    argv = [*server_argv(release, repo, HTTP_PORT, GRPC_PORT, METRICS_PORT), "--load-model=double"]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{HTTP_PORT}"
    try:
        assert wait_ready(url, proc, 60), (tmp_path / "server.log").read_text()[-3000:]
        body = json.dumps({"inputs": [{"name": "A", "shape": [3], "datatype": "FP32", "data": [1, 2, 3.5]}]})
        request = urllib.request.Request(
            f"{url}/v2/models/double/infer", body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            outputs = json.load(response)["outputs"]
        assert outputs[0]["data"] == [2.0, 4.0, 7.0]
        with urllib.request.urlopen(f"{url}/v2", timeout=5) as response:
            assert json.load(response)["version"] == "2.51.0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
