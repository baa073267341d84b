# SPDX-License-Identifier: Apache-2.0
"""Release switching against a real tritonserver 2.51.0 (explicit model control, restricted API).

One server per module, started on ``<root>/current`` like the service does; each test moves
the served release and checks the server's own view (repository index, readiness, inference).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from ansible.module_utils.triton_model_repository import render_settings
from ansible.module_utils.triton_models_release import build_release
from ansible.module_utils.triton_models_switch import (
    SwitchError,
    TritonHttp,
    activate,
    linked_release,
    point_link,
)
from support.triton_dist import CPU_PLAN, server_argv, server_env, triton_release

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "model_repository"
BROKEN_ADD_SUB = REPO_ROOT / "tests" / "fixtures" / "repos" / "broken_model" / "add_sub"
HOST = {"platform": "cpu", "arch": "x86_64", "gpus": []}
HTTP_PORT, GRPC_PORT, METRICS_PORT = 48010, 48011, 48012
KEY_HEADER, KEY = "tf-admin-key", "s3cret-test-key"


def _build(src: Path, build_dir: Path, counts: dict[str, int] | None = None) -> str:
    render = render_settings(CPU_PLAN, HOST, "auto", True, {}, counts or {})
    return build_release(src, build_dir, render).release_id


def _install(build_dir: Path, root: Path, release_id: str) -> None:
    shutil.copytree(build_dir / release_id, root / "releases" / release_id)


def _infer_add_sub(url: str) -> list[float]:
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [10, 20, 30, 40]},
        ]
    }
    request = urllib.request.Request(
        f"{url}/v2/models/add_sub/infer", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        outputs = {o["name"]: o["data"] for o in json.load(response)["outputs"]}
    return outputs["OUTPUT0"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server on <root>/current with release A (the examples) loaded; yields the paths."""
    base = tmp_path_factory.mktemp("switch")
    release = triton_release(base / "triton")
    root, build_dir = base / "models", base / "build"
    (root / "releases").mkdir(parents=True)
    first = _build(EXAMPLES, build_dir)
    _install(build_dir, root, first)
    point_link(root, "current", first)
    argv = server_argv(release, root / "current", HTTP_PORT, GRPC_PORT, METRICS_PORT)
    argv += [
        "--load-model=add_sub",
        "--load-model=scale",
        f"--http-restricted-api=model-repository,model-config:{KEY_HEADER}={KEY}",
    ]
    log = (base / "server.log").open("wb")
    proc = subprocess.Popen(argv, env=server_env(release), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{HTTP_PORT}"
    client = TritonHttp(url, {KEY_HEADER: KEY}, timeout=120)
    deadline = time.monotonic() + 60
    while not client.ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"tritonserver did not become ready: {(base / 'server.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield {"root": root, "build": build_dir, "client": client, "url": url, "first": first, "base": base}
    proc.terminate()
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def _instance_counts(url: str, model: str) -> list[int]:
    request = urllib.request.Request(f"{url}/v2/models/{model}/config", headers={KEY_HEADER: KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return [group["count"] for group in json.load(response)["instance_group"]]


def _states(client: TritonHttp) -> dict[str, str]:
    return {e["name"]: e.get("state", "") for e in client.index()}


def test_active_release_is_left_alone(served):
    result = activate(served["root"], served["first"], served["client"], "switch")
    assert (result.changed, result.loaded, result.unloaded) == (False, [], [])


def test_deploy_phase_tells_whether_the_switch_phase_has_work(served):
    root, client, first = served["root"], served["client"], served["first"]
    served_now = activate(root, first, client, "deploy")
    assert (served_now.server_live, served_now.pending_switch, served_now.changed) == (True, False, False)
    assert client.unload("scale") is None
    deadline = time.monotonic() + 30
    while _states(client).get("scale") == "READY" and time.monotonic() < deadline:
        time.sleep(0.2)
    drifted = activate(root, first, client, "deploy")
    assert (drifted.pending_switch, drifted.changed) == (True, False)
    repaired = activate(root, first, client, "switch")
    assert repaired.loaded == ["scale"] and _states(client) == {"add_sub": "READY", "scale": "READY"}
    assert activate(root, first, client, "deploy").pending_switch is False


def test_repository_api_refuses_without_the_key(served):
    with pytest.raises(SwitchError, match="restricted-API key"):
        TritonHttp(served["url"]).index()


def test_switch_loads_changed_models_and_unloads_removed_ones(served, tmp_path):
    root, client = served["root"], served["client"]
    src = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "add_sub", src / "add_sub")
    second = _build(src, served["build"], {"add_sub": 2})
    _install(served["build"], root, second)

    planned = activate(root, second, client, "switch", check_mode=True)
    assert (planned.changed, planned.loaded, planned.unloaded) == (True, ["add_sub"], ["scale"])
    assert linked_release(root) == served["first"]

    result = activate(root, second, client, "switch")
    assert (result.loaded, result.unloaded, result.link_switched) == (["add_sub"], ["scale"], True)
    assert (linked_release(root), linked_release(root, "previous")) == (second, served["first"])
    states = _states(client)
    assert states["add_sub"] == "READY"
    assert states.get("scale") != "READY"
    assert _instance_counts(served["url"], "add_sub") == [2]
    assert _infer_add_sub(served["url"]) == [11, 22, 33, 44]

    # Back to the older release: its files are older than the loaded ones, and the
    # server must still reload them (one instance again).
    back = activate(root, served["first"], client, "switch")
    assert (back.loaded, back.unloaded) == (["add_sub", "scale"], [])
    assert _states(client) == {"add_sub": "READY", "scale": "READY"}
    assert _instance_counts(served["url"], "add_sub") == [1]


def test_failed_load_restores_previous_release_with_the_servers_reason(served, tmp_path):
    root, client = served["root"], served["client"]
    src = tmp_path / "repo"
    shutil.copytree(EXAMPLES, src, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BROKEN_ADD_SUB / "1" / "model.py", src / "add_sub" / "1" / "model.py")
    broken = _build(src, served["build"])
    _install(served["build"], root, broken)
    previous_before = linked_release(root, "previous")

    with pytest.raises(SwitchError) as caught:
        activate(root, broken, client, "switch")

    message = str(caught.value)
    assert "weights file add_sub.bin is missing" in message
    assert f"release {served['first']} was restored" in message
    assert caught.value.details["errors"].keys() == {"add_sub"}
    assert caught.value.details["rollback_errors"] == {}
    assert (linked_release(root), linked_release(root, "previous")) == (served["first"], previous_before)
    assert _states(client) == {"add_sub": "READY", "scale": "READY"}
    assert client.ready()
    assert _infer_add_sub(served["url"]) == [11, 22, 33, 44]
