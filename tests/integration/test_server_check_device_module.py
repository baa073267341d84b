"""triton_device_check through ansible itself, on this machine (device nodes read under a temp root)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from support.plans import base_host, dgpu_host, gpu, make_plan

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
# Plans as preflight makes them (tests/support/plans.py runs the real triton_compat).
CPU_PLAN = make_plan(base_host())
GPU_PLAN = make_plan(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]))


def run_module(tmp_path: Path, args: dict, env: dict) -> tuple[int, dict, str]:
    tree = tmp_path / "tree"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "triton_device_check",
         "-a", json.dumps(args), "-t", str(tree)],
        cwd=REPO_ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    return proc.returncode, json.loads((tree / "localhost").read_text()), proc.stdout + proc.stderr


def test_cpu_plan_with_hidden_gpus_passes(tmp_path):
    (tmp_path / "root" / "dev").mkdir(parents=True)
    rc, result, out = run_module(
        tmp_path, {"plan": CPU_PLAN, "root": str(tmp_path / "root")}, {"CUDA_VISIBLE_DEVICES": ""}
    )
    assert rc == 0, out
    assert result["changed"] is False
    assert result["findings"] == []
    cuda = result["devices"]["cuda"]
    assert cuda["count"] == 0 and cuda["cuda_visible_devices"] == ""
    assert result["devices"]["nodes"] == []


def test_gpu_plan_without_devices_fails_before_deployment(tmp_path):
    (tmp_path / "root" / "dev").mkdir(parents=True)
    args = {"plan": GPU_PLAN, "root": str(tmp_path / "root")}
    rc, result, out = run_module(tmp_path, args, {"CUDA_VISIBLE_DEVICES": ""})
    assert rc != 0, out
    codes = [f["code"] for f in result["findings"]]
    assert codes[:3] == ["device_node_missing"] * 3
    assert codes[3] in ("cuda_unavailable", "gpu_plan_no_cuda_device")
    assert (
        "Triton cannot use the devices its plan needs: device_node_missing: /dev/nvidiactl is missing" in result["msg"]
    )

    rc, result, out = run_module(tmp_path, {**args, "fail_on_error": False}, {"CUDA_VISIBLE_DEVICES": ""})
    assert rc == 0, out
    assert len(result["findings"]) == 4


def test_absent_service_user_is_judged_as_the_running_user(tmp_path):
    """Before the first install the account does not exist: the check still runs, and says for whom."""
    dev = tmp_path / "root" / "dev"
    dev.mkdir(parents=True)
    (dev / "nvidiactl").write_bytes(b"")
    (dev / "nvidiactl").chmod(0o600)
    args = {"plan": CPU_PLAN, "root": str(tmp_path / "root"), "user": "tf-no-such-user"}
    rc, result, out = run_module(tmp_path, args, {"CUDA_VISIBLE_DEVICES": ""})
    assert rc == 0, out
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert result["access_user"] == {"requested": "tf-no-such-user", "exists": False, "judged": me}
    # The running user owns the node, so os.access grants it.
    assert [(n["path"], n["accessible"]) for n in result["devices"]["nodes"]] == [("/dev/nvidiactl", True)]

    # An existing account that is neither owner nor in the group is judged from the mode bits.
    nobody = pwd.getpwnam("nobody")
    rc, result, out = run_module(tmp_path, {**args, "user": nobody.pw_name}, {"CUDA_VISIBLE_DEVICES": ""})
    assert rc == 0, out
    assert result["access_user"] == {"requested": "nobody", "exists": True, "judged": "nobody"}
    assert [(n["path"], n["accessible"]) for n in result["devices"]["nodes"]] == [("/dev/nvidiactl", False)]
