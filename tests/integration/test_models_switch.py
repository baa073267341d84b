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
    Recovery,
    SwitchError,
    TritonHttp,
    activate,
    linked_release,
    point_link,
)
from ansible.module_utils.triton_release_tree import tree_digest
from support.triton_dist import CPU_PLAN, server_argv, server_env, triton_release, wait_ready

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


class Server:
    """The module's tritonserver on ``<root>/current``, which a test may restart (as the service would)."""

    def __init__(self, release: Path, root: Path, base: Path) -> None:
        self.argv = [
            *server_argv(release, root / "current", HTTP_PORT, GRPC_PORT, METRICS_PORT),
            "--load-model=add_sub",
            "--load-model=scale",
            f"--http-restricted-api=model-repository,model-config:{KEY_HEADER}={KEY}",
        ]
        self.env = server_env(release)
        self.log_path = base / "server.log"
        self.url = f"http://127.0.0.1:{HTTP_PORT}"
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if not wait_ready(self.url, self.proc, 60):
            self.stop()
            pytest.fail(f"tritonserver did not become ready: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> str | None:
        """What the service's restart does: stop, start on whatever current/ points at, wait ready."""
        self.restarts += 1
        self.stop()
        self.start()
        return None


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
    server = Server(release, root, base)
    server.start()
    client = TritonHttp(server.url, {KEY_HEADER: KEY}, timeout=120)
    yield {
        "root": root,
        "build": build_dir,
        "client": client,
        "url": server.url,
        "first": first,
        "base": base,
        "server": server,
    }
    server.stop()


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


def _lay_out(root: Path, models: dict[str, dict[str, str]]) -> str:
    """Put a release on the host as the deploy phase would (files as given, no controller checks); return its id.

    ``models`` maps a model name to its files (relative path -> text); a model named after an
    example starts from that example's files.
    """
    staging = root / "releases" / ".staging-test"
    shutil.rmtree(staging, ignore_errors=True)
    for name, files in models.items():
        if (EXAMPLES / name).is_dir():
            shutil.copytree(EXAMPLES / name, staging / name, ignore=shutil.ignore_patterns("__pycache__"))
        for relative, text in files.items():
            (staging / name / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / name / relative).write_text(text)
    release_id = tree_digest(staging)
    if (root / "releases" / release_id).exists():
        shutil.rmtree(staging)
    else:
        staging.rename(root / "releases" / release_id)
    return release_id


def _add_sub_config(name: str) -> str:
    return (EXAMPLES / "add_sub" / "config.pbtxt").read_text().replace('name: "add_sub"', f'name: "{name}"')


# add_sub's files with model.py at the top of the model directory: no numeric version directory.
NO_VERSION_MODEL = {
    "config.pbtxt": _add_sub_config("noversion"),
    "model.py": (EXAMPLES / "add_sub" / "1" / "model.py").read_text(),
}


def _serves_the_first_release(served) -> None:
    client = served["client"]
    assert linked_release(served["root"]) == served["first"]
    assert client.ready()
    assert {e["name"]: e.get("state") for e in client.index()} == {"add_sub": "READY", "scale": "READY"}
    assert _infer_add_sub(served["url"]) == [11, 22, 33, 44]


def test_model_without_a_version_directory_is_rolled_back_by_a_restart(served):
    # Triton keeps the failed model in its state map with no version: no unload removes it and
    # the server stays not ready; only the service's restart on the previous release helps.
    root, server = served["root"], served["server"]
    model_py = (EXAMPLES / "add_sub" / "1" / "model.py").read_text()
    bad = _lay_out(
        root,
        {"add_sub": {}, "scale": {}, "noversion": {"config.pbtxt": _add_sub_config("noversion"), "model.py": model_py}},
    )
    restarts = server.restarts
    with pytest.raises(SwitchError) as caught:
        activate(root, bad, served["client"], "switch", wait_s=20, recovery=Recovery(server.log_path, server.restart))
    message = str(caught.value)
    assert "at least one version must be available under the version policy of model 'noversion'" in message
    assert f"so the service was restarted on it: release {served['first']} was restored and serves again" in message
    assert caught.value.details["restarted"] is True and caught.value.details["server_ready"] is True
    assert server.restarts == restarts + 1
    _serves_the_first_release(served)


def test_python_model_without_model_py_is_bounded_and_rolled_back(served):
    # The stub exits before its first message and the backend waits for it forever: the load
    # never answers. The switch gives up after its timeout, quotes the stub's own log line,
    # and restarts the service on the previous release.
    root, server = served["root"], served["server"]
    bad = _lay_out(root, {"add_sub": {}, "scale": {}, "nopy": {"config.pbtxt": _add_sub_config("nopy"), "1/.keep": ""}})
    started = time.monotonic()
    with pytest.raises(SwitchError) as caught:
        activate(root, bad, served["client"], "switch", wait_s=15, recovery=Recovery(server.log_path, server.restart))
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "nopy: http://127.0.0.1:48010 did not answer within 15 s" in message
    assert "Python model file not found in" in message and "/nopy/1/model.py" in message
    assert f"release {served['first']} was restored and serves again" in message
    # load (15 s) + bounded unload (10 s) + readiness wait (15 s) + a restart: never the old 5 minutes.
    assert elapsed < 150, elapsed
    _serves_the_first_release(served)


def test_without_a_restart_a_rollback_that_cannot_finish_says_the_server_is_not_healthy(served):
    root, server = served["root"], served["server"]
    model_py = (EXAMPLES / "add_sub" / "1" / "model.py").read_text()
    bad = _lay_out(
        root,
        {"add_sub": {}, "scale": {}, "noversion": {"config.pbtxt": _add_sub_config("noversion"), "model.py": model_py}},
    )
    try:
        with pytest.raises(SwitchError) as caught:
            activate(root, bad, served["client"], "switch", wait_s=10, recovery=Recovery(server.log_path, None))
        assert "so the server is NOT healthy" in str(caught.value)
        assert caught.value.details["server_ready"] is False
        assert not served["client"].ready()
        # current points back all the same: a restart (or the next site run) serves the previous release.
        assert linked_release(root) == served["first"]
    finally:
        server.restart()
    _serves_the_first_release(served)


def test_deploy_phase_points_a_server_that_is_not_ready_at_the_release(served):
    # A live server that is not ready serves nothing: the deploy phase moves current, and the
    # service step restarts it there (this is how a plain site run recovers an interrupted one).
    root, server, client = served["root"], served["server"], served["client"]
    bad = _lay_out(root, {"add_sub": {}, "scale": {}, "nopy": {"config.pbtxt": _add_sub_config("nopy"), "1/.keep": ""}})
    point_link(root, "current", bad)
    try:
        assert client.load("nopy", timeout=3) and not client.ready()
        deployed = activate(root, served["first"], client, "deploy")
        assert (deployed.server_live, deployed.link_switched, deployed.pending_switch) == (True, True, False)
        assert linked_release(root) == served["first"]
    finally:
        point_link(root, "current", served["first"])
        server.restart()
    _serves_the_first_release(served)
