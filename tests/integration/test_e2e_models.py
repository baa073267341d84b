# SPDX-License-Identifier: Apache-2.0
"""End to end on this CPU-only machine (issue 4 §6): real ansible-playbook, real tritonserver.

One site per module: preflight (with the models check) → models deploy → service
(supervisord) → models switch → verify, on localhost with every path under a temporary
directory and ports 48000-48002, against a release laid out by the install role's own code
(``tests/support/triton_dist``). The tests then deploy other repositories over it:

- a KIND_GPU model under ``keep`` is refused before anything changes on the host;
- the same repository under ``auto`` deploys as KIND_CPU, serves, and the report shows it;
- a model whose ``model.py`` fails in the real server is rolled back: the previous release
  serves again and the play fails with the server's own message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.triton_report import find_server_process
from support.local_site import SERVE_PLAY, local_host_vars, tear_down
from support.triton_dist import triton_release

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
EXAMPLES = REPO_ROOT / "examples" / "model_repository"
FIXTURE_REPOS = REPO_ROOT / "tests" / "fixtures" / "repos"
HTTP_PORT = 48000  # gRPC and metrics on the two ports after it
SERVICE_USER = "tf-e2e"
SERVICE_UID = 28079
URL = f"http://127.0.0.1:{HTTP_PORT}"

SITE = """\
- name: Preflight
  hosts: all
  gather_facts: false
  roles:
    - role: triton_platform
  tasks:
    - name: Check the models before any change
      ansible.builtin.include_role:
        name: triton_models
        tasks_from: check

{serve}
- name: Verify
  ansible.builtin.import_playbook: {verify}
"""


def _copy_repo(*sources: Path, dest: Path) -> Path:
    for source in sources:
        for model in sorted(p for p in source.iterdir() if p.is_dir()):
            shutil.copytree(model, dest / model.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.fixture(scope="module")
def site():
    """A deployed, served and verified site; yields a runner for further plays."""
    # The server's user must traverse every path: pytest's own tmp dir is 0700.
    base = Path(tempfile.mkdtemp(prefix="tf-e2e-models-", dir="/tmp"))
    base.chmod(0o755)
    triton_release(base / "opt")
    host_vars = local_host_vars(base, SERVICE_USER, SERVICE_UID, HTTP_PORT, EXAMPLES)
    inventory = base / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host_vars}}}))
    playbook = base / "site.yml"
    playbook.write_text(SITE.format(serve=SERVE_PLAY, verify=REPO_ROOT / "playbooks" / "verify.yml"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")

    def run(*extra: str, play: Path = playbook) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(play), *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    first = run()
    try:
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        yield {"base": base, "run": run, "first": first}
    finally:
        tear_down(base, SERVICE_USER)


def _report(site) -> dict:
    return json.loads((site["base"] / "reports" / "localhost" / "verify.json").read_text())


def _api_key(site) -> str:
    return (site["base"] / "etc" / "api-key").read_text().strip()


def _index(site) -> list[dict]:
    request = urllib.request.Request(
        f"{URL}/v2/repository/index", data=b"{}", method="POST", headers={"tritonfleet-admin-key": _api_key(site)}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _infer(model: str, inputs: dict[str, list[float]]) -> dict[str, list[float]]:
    body = {"inputs": [{"name": n, "shape": [len(v)], "datatype": "FP32", "data": v} for n, v in inputs.items()]}
    request = urllib.request.Request(
        f"{URL}/v2/models/{model}/infer", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {o["name"]: o["data"] for o in json.load(response)["outputs"]}


def _host_state(site) -> dict:
    """What must not change when a deployment is refused: files, links, server state and pid."""
    root = site["base"] / "models"
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            files[str(path.relative_to(root))] = "-> " + os.readlink(path)
        elif path.is_file():
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "releases": sorted(p.name for p in (root / "releases").iterdir()),
        "files": files,
        "index": _index(site),
        "pid": find_server_process(Path("/proc"), HTTP_PORT)["pid"],
    }


def _current(site) -> str:
    return os.readlink(site["base"] / "models" / "current")


def test_site_serves_the_examples_and_reports_them(site):
    report = _report(site)
    assert report["verdict"] == "passed", report["findings"]
    kinds = {m["name"]: m["kinds"] for m in report["models"]}
    assert kinds == {"add_sub": ["KIND_CPU"], "scale": ["KIND_CPU"]}
    assert report["versions"]["server_version"] == "2.51.0"
    assert report["versions"]["models_release"] == Path(_current(site)).name
    assert report["gpu_memory"]["measured"] is False
    md = (site["base"] / "reports" / "localhost" / "verify.md").read_text()
    assert "**Verdict: PASSED**" in md
    assert "| add_sub | READY | KIND_CPU |" in md
    assert _infer("add_sub", {"INPUT0": [1, 2, 3, 4], "INPUT1": [4, 3, 2, 1]})["OUTPUT0"] == [5, 5, 5, 5]


def test_server_user_can_read_but_not_write_the_repository(site):
    for path in [site["base"] / "models", *sorted((site["base"] / "models").rglob("*"))]:
        info = path.lstat()
        assert info.st_uid == 0, path
        assert info.st_mode & 0o022 == 0 or path.is_symlink(), (path, oct(info.st_mode))
        assert path.is_symlink() or info.st_mode & 0o004, (path, oct(info.st_mode))


def test_second_run_changes_nothing(site):
    again = site["run"]()
    assert again.returncode == 0, again.stdout[-4000:]
    recap = [line for line in again.stdout.splitlines() if line.startswith("localhost")][-1]
    assert "changed=0" in recap, recap


def test_verify_alone_in_check_mode_writes_the_report_and_changes_nothing(site):
    report_path = site["base"] / "reports" / "localhost" / "verify.json"
    report_path.unlink()
    before = _host_state(site)

    result = site["run"]("--check", play=REPO_ROOT / "playbooks" / "verify.yml")

    assert result.returncode == 0, result.stdout[-4000:]
    recap = [line for line in result.stdout.splitlines() if line.startswith("localhost")][-1]
    assert "changed=0" in recap, recap
    assert _report(site)["verdict"] == "passed"
    assert _host_state(site) == before


def test_gpu_model_under_keep_is_refused_before_any_change(site, tmp_path):
    repo = _copy_repo(EXAMPLES, FIXTURE_REPOS / "gpu_model", dest=tmp_path / "repo")
    before = _host_state(site)

    result = site["run"]("-e", f"triton_models_src={repo}", "-e", "triton_instance_policy=keep")

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "instance group add_gpu_0 of model add_gpu has kind KIND_GPU but no GPUs are available" in output
    assert "Fix:" in output
    # Refused in preflight, by the models check: the deploy play never started.
    assert "PLAY [Deploy and serve]" not in result.stdout
    assert _host_state(site) == before


def test_check_mode_shows_the_release_and_config_diff_and_changes_nothing(site, tmp_path):
    repo = _copy_repo(EXAMPLES, FIXTURE_REPOS / "gpu_model", dest=tmp_path / "repo")
    before = _host_state(site)

    result = site["run"]("--check", "--diff", "-e", f"triton_models_src={repo}")

    assert result.returncode == 0, result.stdout[-6000:]
    assert "+++ after: add_gpu/config.pbtxt (new release)" in result.stdout
    assert "+  kind: KIND_CPU" in result.stdout
    assert _host_state(site) == before


def test_gpu_model_under_auto_serves_on_the_cpu_and_is_reported(site, tmp_path):
    repo = _copy_repo(EXAMPLES, FIXTURE_REPOS / "gpu_model", dest=tmp_path / "repo")

    result = site["run"]("-e", f"triton_models_src={repo}", "-e", "triton_instance_policy=auto")

    assert result.returncode == 0, result.stdout[-6000:]
    report = _report(site)
    assert report["verdict"] == "passed", report["findings"]
    assert {m["name"]: m["kinds"] for m in report["models"]}["add_gpu"] == ["KIND_CPU"]
    assert report["expected_instance_groups"]["add_gpu"][0]["kind"] == "KIND_CPU"
    rendered = (site["base"] / "models" / "current" / "add_gpu" / "config.pbtxt").read_text()
    assert "KIND_CPU" in rendered and "KIND_GPU" not in rendered
    assert _infer("add_gpu", {"INPUT0": [1, 1, 1, 1], "INPUT1": [2, 2, 2, 2]})["OUTPUT0"] == [3, 3, 3, 3]


def test_model_that_fails_to_load_is_rolled_back_with_the_servers_reason(site, tmp_path):
    repo = _copy_repo(EXAMPLES, dest=tmp_path / "repo")
    shutil.copy(FIXTURE_REPOS / "broken_model" / "add_sub" / "1" / "model.py", repo / "add_sub" / "1" / "model.py")
    serving = _current(site)
    pid = find_server_process(Path("/proc"), HTTP_PORT)["pid"]

    result = site["run"]("-e", f"triton_models_src={repo}")

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "tritonfleet-test: weights file add_sub.bin is missing" in output
    assert f"release {Path(serving).name} was restored" in output
    assert _current(site) == serving
    assert find_server_process(Path("/proc"), HTTP_PORT)["pid"] == pid
    states = {e["name"]: e.get("state") for e in _index(site)}
    assert states["add_sub"] == "READY"
    assert _infer("add_sub", {"INPUT0": [1, 2, 3, 4], "INPUT1": [1, 1, 1, 1]})["OUTPUT1"] == [0, 1, 2, 3]


def test_release_that_loads_but_fails_inference_is_rolled_back(site, tmp_path):
    repo = _copy_repo(EXAMPLES, dest=tmp_path / "repo")
    failing = FIXTURE_REPOS / "failing_inference" / "add_sub" / "1" / "model.py"
    shutil.copy(failing, repo / "add_sub" / "1" / "model.py")
    serving = _current(site)

    result = site["run"]("-e", f"triton_models_src={repo}")

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "inference_failed" in output
    assert "tritonfleet-test: add_sub weights are corrupt" in output
    assert f"release {Path(serving).name} was restored and serves again" in output
    assert _current(site) == serving
    assert _infer("add_sub", {"INPUT0": [1, 2, 3, 4], "INPUT1": [1, 1, 1, 1]})["OUTPUT0"] == [2, 3, 4, 5]
