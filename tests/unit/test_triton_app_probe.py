"""The in-process probe's parent side: tensors, request, process tree, the child protocol, and the judgement."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible.module_utils.triton_app_probe import (
    decode_tensor,
    descendants,
    encode_tensor,
    probe_findings,
    probe_request,
    run_probe,
    shared_memory_regions,
)
from ansible.module_utils.triton_runtime import RuntimeSectionError
from support.plans import dgpu_host, gpu, make_plan

# A dGPU host planned on the CPU (its GPU hidden, its pools 0), and the same host planned on its GPU.
CPU_PLAN = make_plan(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), enable_gpu="false")
GPU_PLAN = make_plan(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]))
KIND_GPU_MESSAGE = "instance group add_gpu_0 of model add_gpu has kind KIND_GPU but no GPUs are available"


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("FP32", [1.0, 2.0, 3.0]),
        ("FP16", [1.0, 2.5]),
        ("FP64", [1.5]),
        ("INT8", [-1, 2]),
        ("UINT64", [1, 2**40]),
        ("BOOL", [True, False]),
        ("BYTES", ["1", "22", ""]),
        ("BF16", [1.0, -2.0]),
    ],
)
def test_tensor_round_trip(datatype, values):
    assert decode_tensor(datatype, encode_tensor(datatype, values)) == values


def test_bytes_are_length_prefixed_little_endian():
    assert encode_tensor("BYTES", ["ab"]) == b"\x02\x00\x00\x00ab"
    assert encode_tensor("INT32", [1, 256]) == b"\x01\x00\x00\x00\x00\x01\x00\x00"


def test_request_carries_the_plans_memory_options_verbatim(tmp_path):
    request = probe_request(tmp_path / "lib.so", tmp_path / "rel", tmp_path / "repo", ["m"], CPU_PLAN, 5.0)
    assert request["memory"] == CPU_PLAN["runtime"]["memory"]
    assert request["backend_directory"] == str(tmp_path / "rel" / "backends")
    assert request["models"] == ["m"]


def test_plan_without_runtime_is_refused(tmp_path):
    with pytest.raises(RuntimeSectionError, match="The plan has no complete runtime section"):
        probe_request(tmp_path, tmp_path, tmp_path, [], {"enable_gpu": False}, 5.0)


def test_descendants_follow_parent_pids(tmp_path):
    for pid, ppid, comm in (
        (10, 1, "probe"),
        (11, 10, "triton_python_backend_stub"),
        (12, 11, "a b) (c"),
        (13, 1, "x"),
    ):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} 1 1 0\n")
    (tmp_path / "self").mkdir()
    assert descendants(tmp_path, 10) == [10, 11, 12]


def test_descendants_of_a_real_process():
    parent = subprocess.Popen(["sh", "-c", "sleep 5 & wait"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(descendants(Path("/proc"), parent.pid)) < 2:
            time.sleep(0.02)
        found = descendants(Path("/proc"), parent.pid)
    finally:
        parent.kill()
        parent.wait()
    assert found[0] == parent.pid and len(found) == 2


# ---------------------------------------------------------------------------- child protocol


def fake_child(tmp_path: Path, body: str) -> str:
    """A stand-in for the probe process (the real one needs libtritonserver: tests/integration)."""
    script = tmp_path / "child.py"
    script.write_text(body)
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    python.chmod(0o755)
    return str(python)


def test_run_probe_measures_while_loaded_then_ends_the_child(tmp_path):
    python = fake_child(
        tmp_path,
        "import json, sys, os\n"
        "request = json.loads(sys.stdin.readline())\n"
        "print(json.dumps({'event': 'loaded', 'server': {'library': request['library']}, 'options': [], "
        "'models': [{'name': m} for m in request['models']]}), flush=True)\n"
        "sys.stdin.readline()\n"
        "print(json.dumps({'event': 'stopped', 'message': None}), flush=True)\n",
    )
    measured = []
    result = run_probe(
        {"library": "/l.so", "models": ["a"]}, {}, tmp_path, 10, lambda pids: measured.append(pids) or {}, python
    )
    assert result["ran"] is True and result["reason"] is None
    # Ended by the parent once the report is in (or by itself when its stdin closed first).
    assert result["exit_code"] in (0, -15, -9)
    assert result["models"] == [{"name": "a"}] and result["server"] == {"library": "/l.so"}
    assert len(measured) == 1 and measured[0]


def test_run_probe_kills_a_hanging_child_at_its_deadline(tmp_path):
    python = fake_child(tmp_path, "import time\ntime.sleep(60)\n")
    start = time.monotonic()
    result = run_probe({}, {}, tmp_path, 1, lambda pids: {}, python)
    assert time.monotonic() - start < 10
    assert result["ran"] is False and "no answer within 1 s" in result["reason"]


def test_run_probe_reports_a_crash_with_its_log(tmp_path):
    python = fake_child(tmp_path, "import sys\nsys.stderr.write('E1201 backend crashed\\n')\nsys.exit(139)\n")
    result = run_probe({}, {}, tmp_path, 5, lambda pids: {}, python)
    assert result["ran"] is False and "exited with 139" in result["reason"]
    assert "E1201 backend crashed" in result["stderr_tail"]
    findings = probe_findings(result, CPU_PLAN)
    assert [f["code"] for f in findings] == ["probe_failed"]
    assert "E1201 backend crashed" in findings[0]["message"]


# ---------------------------------------------------------------------------- judgement


def model(name, loaded=True, message=None, groups=None, inference=None):
    return {
        "name": name,
        "loaded": loaded,
        "load_message": message,
        "instance_groups": groups if groups is not None else [{"kind": "KIND_CPU", "count": 1, "gpus": []}],
        "inference": inference,
    }


def ok_inference(outputs=None, asked="CPU"):
    return {
        "ok": True,
        "message": None,
        "outputs": outputs or [{"name": "OUTPUT0", "data": [2.0, 4.0]}],
        "allocations": [
            {
                "tensor": "OUTPUT0",
                "asked": {"memory_type": asked, "device": 0},
                "given": {"memory_type": "CPU", "device": 0},
            }
        ],
    }


def result_of(*models, memory=None):
    return {
        "ran": True,
        "reason": None,
        "server": {"library": "/opt/tritonserver/current/lib/libtritonserver.so"},
        "models": list(models),
        "gpu_memory": memory or {"measured": False, "reason": "NVML unavailable", "gpus": []},
    }


def test_clean_probe_has_no_finding():
    result = result_of(model("add_sub", inference=ok_inference()))
    expected = {"add_sub": [{"kind": "KIND_CPU", "count": 1, "gpus": []}]}
    assert probe_findings(result, CPU_PLAN, expected, {"add_sub": {"OUTPUT0": [2.0, 4.0]}}) == []


def test_kind_gpu_on_a_cpu_host_quotes_triton_and_gives_the_fix():
    findings = probe_findings(result_of(model("add_gpu", loaded=False, message=KIND_GPU_MESSAGE)), CPU_PLAN)
    assert [f["code"] for f in findings] == ["probe_load_failed"]
    assert KIND_GPU_MESSAGE in findings[0]["message"]
    assert "triton_instance_policy=auto" in findings[0]["fix"]


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        (
            model("m", groups=[{"kind": "KIND_GPU", "count": 1, "gpus": [0]}], inference=ok_inference()),
            "probe_gpu_instances",
        ),
        (
            model("m", inference={"ok": False, "message": "failed to perform CUDA copy", "allocations": []}),
            "probe_inference_failed",
        ),
        (model("m", inference=ok_inference([{"name": "OUTPUT0", "data": [0.0, 0.0]}])), "probe_wrong_output"),
        (model("m", inference=ok_inference(asked="GPU")), "probe_gpu_allocation"),
    ],
    ids=["gpu-instances", "inference", "outputs", "gpu-allocation"],
)
def test_cpu_plan_findings(entry, code):
    findings = probe_findings(result_of(entry), CPU_PLAN, None, {"m": {"OUTPUT0": [2.0, 4.0]}})
    assert code in [f["code"] for f in findings]


def test_gpu_plan_allows_gpu_instances_and_allocations():
    entry = model("m", groups=[{"kind": "KIND_GPU", "count": 1, "gpus": [0]}], inference=ok_inference(asked="GPU"))
    assert probe_findings(result_of(entry), GPU_PLAN) == []


def test_instance_groups_other_than_rendered_are_a_finding():
    expected = {"m": [{"kind": "KIND_CPU", "count": 2, "gpus": []}]}
    findings = probe_findings(result_of(model("m", inference=ok_inference())), CPU_PLAN, expected)
    assert [f["code"] for f in findings] == ["probe_instance_groups"]
    assert "server runs [KIND_CPU gpus [] count 1], intended [KIND_CPU gpus [] count 2]" in findings[0]["message"]


def test_probe_gpu_memory_on_a_cpu_plan_fails():
    memory = {
        "measured": True,
        "reason": "NVML",
        "pids": [7],
        "total_bytes": 64,
        "gpus": [{"index": 0, "used_bytes": 64, "pids": [7]}],
    }
    findings = probe_findings(result_of(model("m", inference=ok_inference()), memory=memory), CPU_PLAN)
    assert [f["code"] for f in findings] == ["probe_cpu_plan_gpu_memory"]


def test_shared_memory_regions_are_read_from_the_maps(tmp_path):
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "maps").write_text(
        "7f00-7f10 rw-s 00000000 00:19 12 /dev/shm/triton_python_backend_shm_region_abc\n"
        "7f10-7f20 r-xp 00000000 08:01 34 /usr/lib/libc.so.6\n"
        "7f20-7f30 rw-p 00000000 00:00 0\n"
    )
    assert shared_memory_regions(tmp_path, [7, 8]) == ["/dev/shm/triton_python_backend_shm_region_abc"]


def test_a_killed_child_leaves_no_shared_memory_behind(tmp_path):
    region = Path(f"/dev/shm/triton_python_backend_shm_region_test-{os.getpid()}")
    python = fake_child(
        tmp_path,
        "import mmap, os, time\n"
        f"fd = os.open('{region}', os.O_CREAT | os.O_RDWR, 0o600)\n"
        "os.ftruncate(fd, 4096)\n"
        "block = mmap.mmap(fd, 4096)\n"
        "time.sleep(60)\n",
    )
    try:
        result = run_probe({}, {}, tmp_path, 3, lambda pids: {}, python)
    finally:
        leftover = region.exists()
        region.unlink(missing_ok=True)
    assert result["ran"] is False and not leftover
    assert result["removed_shared_memory"] == [str(region)]
