"""triton_model_config through ansible itself: check mode, diff, idempotence, byte-identical output, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.plans import base_host, dgpu_host, gpu, make_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = Path(sys.executable).parent / "ansible"
DETECTOR_REPO = REPO_ROOT / "examples" / "detector_repository"
GOLDEN = REPO_ROOT / "tests" / "fixtures" / "render"
# Hosts and the plans preflight makes for them (tests/support/plans.py runs the real triton_compat).
CPU_HOST = base_host()
CPU_PLAN = make_plan(CPU_HOST)
GPU_HOST = dgpu_host([gpu(0, "NVIDIA L4", "8.9")])
GPU_PLAN = make_plan(GPU_HOST)

pytestmark = pytest.mark.integration


def run_module(tmp_path: Path, args: dict, *flags: str) -> tuple[int, dict, str]:
    """Run the module ad hoc on localhost; return (rc, result from --tree, stdout)."""
    tree = tmp_path / "tree"
    if tree.exists():
        for old in tree.iterdir():
            old.unlink()
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(ANSIBLE), "localhost", "-m", "triton_model_config", "-a", json.dumps(args), "-t", str(tree), *flags],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads((tree / "localhost").read_text())
    return proc.returncode, result, proc.stdout + proc.stderr


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*.pbtxt"))}


def test_repository_render_is_check_mode_safe_diffable_and_idempotent(tmp_path):
    dest = tmp_path / "rendered"
    args = {"repository_src": str(DETECTOR_REPO), "dest": str(dest), "plan": CPU_PLAN, "host": CPU_HOST}

    rc, result, out = run_module(tmp_path, args, "--check", "--diff")
    assert rc == 0, out
    assert result["changed"] is True
    assert not dest.exists()
    assert "+  kind: KIND_CPU" in out
    assert "-  kind: KIND_GPU" not in out  # before is empty: the file does not exist yet

    rc, result, out = run_module(tmp_path, args)
    assert rc == 0, out
    assert result["changed"] is True
    assert result["instance_groups"] == {
        "peoplenet": [{"name": "peoplenet_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]
    }
    assert (dest / "peoplenet" / "config.pbtxt").read_bytes() == (GOLDEN / "peoplenet.cpu.pbtxt").read_bytes()
    assert "dropped gpu_execution_accelerator (tensorrt)" in out
    first = snapshot(dest)

    rc, result, out = run_module(tmp_path, args, "--diff")
    assert rc == 0, out
    assert result["changed"] is False
    assert [m["changed"] for m in result["models"]] == [False]
    assert snapshot(dest) == first


def test_single_file_diff_shows_before_and_after(tmp_path):
    dest = tmp_path / "peoplenet" / "config.pbtxt"
    dest.parent.mkdir()
    dest.write_text("# stale\n")
    args = {
        "src": str(DETECTOR_REPO / "peoplenet" / "config.pbtxt"),
        "dest": str(dest),
        "plan": GPU_PLAN,
        "host": GPU_HOST,
        "count": 2,
    }
    rc, result, out = run_module(tmp_path, args, "--check", "--diff")
    assert rc == 0, out
    assert result["changed"] is True
    assert "-# stale" in out and "+  gpus: [0]" in out and "+  count: 2" in out
    assert dest.read_text() == "# stale\n"

    rc, result, _ = run_module(tmp_path, args)
    assert result["changed"] is True
    assert result["instance_groups"]["peoplenet"] == [
        {"name": "peoplenet_0", "kind": "KIND_GPU", "count": 2, "gpus": [0]}
    ]
    rc, result, _ = run_module(tmp_path, args)
    assert (rc, result["changed"]) == (0, False)


def test_keep_policy_fails_with_tritons_message_and_writes_nothing(tmp_path):
    dest = tmp_path / "rendered"
    args = {
        "repository_src": str(DETECTOR_REPO),
        "dest": str(dest),
        "plan": CPU_PLAN,
        "host": CPU_HOST,
        "policy": "keep",
    }
    rc, result, out = run_module(tmp_path, args)
    assert rc != 0, out
    assert "instance group peoplenet_0 of model peoplenet has kind KIND_GPU but no GPUs are available" in result["msg"]
    assert [p["code"] for p in result["problems"]] == ["gpu_kind_no_gpu"]
    assert not dest.exists()


def test_syntax_error_is_reported_with_line_and_column(tmp_path):
    rc, result, _ = run_module(
        tmp_path,
        {"content": 'name: "x"\ninstance_group [ { kind: KIND_TPU } ]\n', "dest": str(tmp_path / "x" / "config.pbtxt"),
         "plan": CPU_PLAN, "host": CPU_HOST},
    )  # fmt: skip
    assert rc != 0
    assert "line 2 column 26" in result["msg"] and "KIND_TPU" in result["msg"]
