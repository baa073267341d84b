# SPDX-License-Identifier: Apache-2.0
"""An embedded application deployed by the triton_app role, for real: ansible-playbook, supervisord, gcc, Triton 2.51.0.

One deployment per module on localhost, every path under a temporary directory: the site's
server steps (as in test_e2e_models), then playbooks/app.yml deploys examples/embedded_app,
built on the host with make, as the supervised program tritonfleet-app-demo. The tests then:

- verify it (report: KIND_CPU in-process, pools 0 and GPUs hidden, right outputs, passed) and
  rerun (changed=0, same process);
- update to the hard-coded-GPU variant: refused before it takes over, with its CUDA calls and
  what to change; the previous release keeps running, same pid;
- update to a release that dies at start: rolled back, the previous release runs again;
- declare a KIND_GPU model under policy keep: refused in preflight with Triton's wording, nothing changed.

The application reads the plan preflight computes, its runtime section included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from support.local_site import SERVE_PLAY, local_host_vars, tear_down
from support.triton_dist import triton_release

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
EXAMPLES = REPO_ROOT / "examples" / "model_repository"
HTTP_PORT = 48100  # gRPC and metrics on the two ports after it
SERVICE_USER = "tf-app-it"
SERVICE_UID = 28083
PROGRAM = "tritonfleet-app-demo"
ADD_SUB = {"OUTPUT0": [2.0, 4.0, 6.0, 8.0], "OUTPUT1": [0.0, 0.0, 0.0, 0.0]}
KIND_GPU_WORDS = "has kind KIND_GPU but no GPUs are available"

SITE = """\
- name: Preflight
  ansible.builtin.import_playbook: {preflight}

{serve}"""


@pytest.fixture(scope="module")
def site():
    base = Path(tempfile.mkdtemp(prefix="tf-e2e-app-", dir="/tmp"))
    base.chmod(0o755)
    triton_release(base / "opt")
    host_vars = local_host_vars(base, SERVICE_USER, SERVICE_UID, HTTP_PORT, EXAMPLES)
    host_vars |= {
        "triton_verify_expected_outputs": {"add_sub": ADD_SUB},
        # The application: the example, built on the host against the installed release.
        "triton_app_name": "demo",
        "triton_app_src": str(REPO_ROOT / "examples" / "embedded_app"),
        "triton_app_build_command": ["make", "VARIANT=honest"],
        "triton_app_command": "embedded_app",
        "triton_app_args": ["--model", "add_sub", "--interval-ms", "500"],
        "triton_app_server_args": True,
        "triton_app_build_dir": str(base / "build" / "apps"),
    }
    inventory = base / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host_vars}}}))
    (base / "site.yml").write_text(SITE.format(preflight=REPO_ROOT / "playbooks" / "preflight.yml", serve=SERVE_PLAY))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")

    def run(play: Path, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(play), *extra],
            env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip

    served = run(base / "site.yml")
    try:
        assert served.returncode == 0, served.stdout[-6000:] + served.stderr[-3000:]
        first = run(REPO_ROOT / "playbooks" / "app.yml")
        assert first.returncode == 0, first.stdout[-8000:] + first.stderr[-3000:]
        yield {"base": base, "run": run, "first": first}
    finally:
        tear_down(base, SERVICE_USER)


def _app_play(site, *extra: str) -> subprocess.CompletedProcess:
    return site["run"](REPO_ROOT / "playbooks" / "app.yml", *extra)


def _report(site) -> dict:
    return json.loads((site["base"] / "reports" / "localhost" / "verify.json").read_text())


def _app_root(site) -> Path:
    return site["base"] / "home" / "apps" / "demo"


def _app_pid() -> int | None:
    """The application process of the test user (its launcher execs into it)."""
    out = subprocess.run(["pgrep", "-u", str(SERVICE_UID), "-x", "embedded_app"], capture_output=True, text=True)
    own = os.readlink("/proc/self/ns/mnt")
    pids = [int(p) for p in out.stdout.split() if os.readlink(f"/proc/{p}/ns/mnt") == own]
    return pids[0] if len(pids) == 1 else None


def _recap_changed(result: subprocess.CompletedProcess) -> int:
    line = next(line for line in result.stdout.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(line.split("changed=")[1].split()[0])


def test_honest_example_passes_verification(site):
    report = _report(site)
    app = report["application"]
    assert report["verdict"] == "passed", report["findings"]
    assert app["verdict"] == "passed" and app["findings"] == []
    probe = app["probe"]
    add_sub = next(m for m in probe["models"] if m["name"] == "add_sub")
    assert [g["kind"] for g in add_sub["instance_groups"]] == ["KIND_CPU"]
    assert {o["name"]: o["data"] for o in add_sub["inference"]["outputs"]} == ADD_SUB
    assert "--pinned-memory-pool-byte-size=0" in probe["options"]
    process = app["process"]
    assert process["found"] is True and process["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    assert app["binary"]["cuda_device_calls"] == [] and app["binary"]["library"]["gpu_build"] is True
    assert app["gpu_memory"]["measured"] is False
    text = (site["base"] / "reports" / "localhost" / "verify.md").read_text()
    assert "## Embedded application" in text and "Not measured: NVML unavailable" in text
    # The application itself computes the right answers and honours the plan's pool size.
    log = (site["base"] / "log" / "app-demo.log").read_text()
    assert "frame 0: OUTPUT0 = 2 4 6 8 (CPU:0)" in log and "pinned_memory_pool_byte_size     | 0" in log


def test_rerun_changes_nothing(site):
    pid = _app_pid()
    again = _app_play(site)
    assert again.returncode == 0, again.stdout[-4000:]
    assert _recap_changed(again) == 0
    assert _app_pid() == pid is not None


def test_hard_coded_gpu_variant_is_refused_and_the_previous_release_keeps_running(site):
    root = _app_root(site)
    before, pid = os.readlink(root / "current"), _app_pid()
    result = _app_play(site, "-e", json.dumps({"triton_app_build_command": ["make", "VARIANT=gpu"]}))
    assert result.returncode != 0
    output = result.stdout
    assert "[app_cuda_calls]" in output and "cudaMalloc, cudaMemcpy, cudaSetDevice" in output
    assert "TRITONSERVER_MEMORY_GPU" in output and "append inputs as TRITONSERVER_MEMORY_CPU" in output
    assert f"release {Path(before).name} keeps running" in output
    assert os.readlink(root / "current") == before and _app_pid() == pid is not None
    assert (root / before / "embedded_app").is_file()


def test_release_that_dies_at_start_is_rolled_back(site):
    root = _app_root(site)
    before = os.readlink(root / "current")
    # Passes every static check, then exits at start: the example refuses an unknown option.
    result = _app_play(site, "-e", json.dumps({"triton_app_args": ["--model", "add_sub", "--no-such-option"]}))
    assert result.returncode != 0
    assert "does not stay up" in result.stdout and "unknown option --no-such-option" in result.stdout
    assert f"release {Path(before).name} was put back and runs again" in result.stdout
    assert os.readlink(root / "current") == before
    assert _app_pid() is not None
    verified = _app_play(site)
    assert verified.returncode == 0 and _report(site)["verdict"] == "passed"


def test_kind_gpu_model_is_refused_in_preflight_before_any_change(site, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "add_sub", repo / "add_gpu", ignore=shutil.ignore_patterns("__pycache__"))
    config = repo / "add_gpu" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "add_sub"', 'name: "add_gpu"').replace("KIND_CPU", "KIND_GPU"))

    def state() -> tuple:
        return (
            os.readlink(_app_root(site) / "current"),
            sorted(p.name for p in (_app_root(site) / "releases").iterdir()),
            os.readlink(site["base"] / "models" / "current"),
            _app_pid(),
        )

    before = state()
    extra = {"triton_models_src": str(repo), "triton_instance_policy": "keep"}
    result = _app_play(site, "-e", json.dumps(extra))
    assert result.returncode != 0
    assert KIND_GPU_WORDS in result.stdout and "instance group" in result.stdout
    assert "TASK [triton_models : " in result.stdout and "triton_app_deploy" not in result.stdout
    assert state() == before
