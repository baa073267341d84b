"""Unit tests for the pure parts of module_utils/triton_server_check.py (the HTTP parts run against a real
server in tests/integration/test_server_check.py)."""

from __future__ import annotations

import pytest
from ansible.module_utils.triton_server_check import (
    compare_instance_groups,
    generate_inputs,
    gpu_memory_findings,
    measure_gpu_memory,
    read_api_key,
    read_pids,
)
from fakes.fake_nvml import ProcessNvml, nvml_error

MIB = 1 << 20
PER_PROCESS = "nvmlDeviceGetComputeRunningProcesses"


def nvml(*devices: list[dict], **profile) -> ProcessNvml:
    return ProcessNvml(
        {
            "devices": [
                {"name": f"gpu{i}", "uuid": f"GPU-{i}", "processes": procs, **profile.get("device", {})}
                for i, procs in enumerate(devices)
            ],
            **{k: v for k, v in profile.items() if k != "device"},
        }
    )


# ---------------------------------------------------------------- inputs from metadata

INPUT_CASES = [
    (
        "fixed-fp32",
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4]}]},
        [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1.0, 2.0, 3.0, 4.0]}],
    ),
    (
        "batched-variable",
        {"inputs": [{"name": "INPUT", "datatype": "INT64", "shape": [-1, -1]}]},
        [{"name": "INPUT", "datatype": "INT64", "shape": [1, 1], "data": [1]}],
    ),
    (
        "image-like",
        {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [-1, 2, 3, 2]}]},
        [{"name": "x", "datatype": "UINT8", "shape": [1, 2, 3, 2], "data": [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4]}],
    ),
    (
        "bool-and-bytes",
        {"inputs": [{"name": "b", "datatype": "BOOL", "shape": [3]}, {"name": "s", "datatype": "BYTES", "shape": [2]}]},
        [
            {"name": "b", "datatype": "BOOL", "shape": [3], "data": [True, False, True]},
            {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["1", "2"]},
        ],
    ),
    ("no-inputs", {"inputs": []}, []),
]


@pytest.mark.parametrize(("metadata", "expected"), [c[1:] for c in INPUT_CASES], ids=[c[0] for c in INPUT_CASES])
def test_generate_inputs_from_metadata(metadata, expected):
    assert generate_inputs(metadata) == expected


def test_generate_inputs_refuses_bf16():
    with pytest.raises(ValueError, match="BF16 cannot be sent in a JSON inference request"):
        generate_inputs({"inputs": [{"name": "x", "datatype": "BF16", "shape": [1]}]})


# ---------------------------------------------------------------- instance groups

GROUP_CASES = [
    ("same", [{"kind": "KIND_CPU", "gpus": [], "count": 2}], [{"kind": "KIND_CPU", "gpus": [], "count": 2}], None),
    (
        "order-and-names-ignored",
        [{"name": "a", "kind": "KIND_GPU", "gpus": [1, 0], "count": 1}, {"name": "b", "kind": "KIND_CPU", "count": 1}],
        [{"kind": "KIND_CPU", "gpus": [], "count": 1}, {"kind": "KIND_GPU", "gpus": [0, 1], "count": 1}],
        None,
    ),
    ("count-unspecified", [{"kind": "KIND_CPU", "gpus": [], "count": 4}], [{"kind": "KIND_CPU", "gpus": []}], None),
    (
        "kind-differs",
        [{"kind": "KIND_CPU", "gpus": [], "count": 1}],
        [{"kind": "KIND_GPU", "gpus": [0], "count": 1}],
        "server runs [KIND_CPU gpus [] count 1], intended [KIND_GPU gpus [0] count 1]",
    ),
    (
        "gpus-differ",
        [{"kind": "KIND_GPU", "gpus": [0], "count": 1}],
        [{"kind": "KIND_GPU", "gpus": [0, 1]}],
        "server runs [KIND_GPU gpus [0]], intended [KIND_GPU gpus [0, 1]]",
    ),
    (
        "count-differs",
        [{"kind": "KIND_CPU", "gpus": [], "count": 1}],
        [{"kind": "KIND_CPU", "gpus": [], "count": 2}],
        "server runs [KIND_CPU gpus [] count 1], intended [KIND_CPU gpus [] count 2]",
    ),
    (
        "extra-group",
        [{"kind": "KIND_CPU"}, {"kind": "KIND_CPU"}],
        [{"kind": "KIND_CPU"}],
        "server runs [KIND_CPU gpus []; KIND_CPU gpus []], intended [KIND_CPU gpus []]",
    ),
]


@pytest.mark.parametrize(
    ("actual", "expected", "difference"), [c[1:] for c in GROUP_CASES], ids=[c[0] for c in GROUP_CASES]
)
def test_compare_instance_groups(actual, expected, difference):
    result = compare_instance_groups(actual, expected)
    if difference is None:
        assert result is None
    else:
        assert difference in result


# ---------------------------------------------------------------- pids


def test_read_pids_combines_list_and_pidfile(tmp_path):
    pidfile = tmp_path / "tritonserver.pid"
    pidfile.write_text("4242\n")
    assert read_pids([7], str(pidfile)) == ([7, 4242], None)


@pytest.mark.parametrize("content", [None, "", "not-a-pid"], ids=["missing", "empty", "garbage"])
def test_read_pids_reports_a_bad_pidfile(tmp_path, content):
    pidfile = tmp_path / "tritonserver.pid"
    if content is not None:
        pidfile.write_text(content)
    pids, reason = read_pids([], str(pidfile))
    assert pids == []
    assert reason.startswith(f"pidfile {pidfile} holds no pid")


def test_read_pids_without_any_pid():
    assert read_pids([], None) == ([], "no server pid given (set pid or pidfile)")


# ---------------------------------------------------------------- GPU memory


def test_measure_sums_the_given_pids_per_gpu():
    fake = nvml(
        [{"pid": 10, "used": 300 * MIB}, {"pid": 99, "used": 5000 * MIB}],
        [],
        [{"pid": 10, "used": 64 * MIB}, {"pid": 11, "used": None}],
    )
    memory = measure_gpu_memory(fake, None, [10, 11])
    assert memory["measured"] is True
    assert memory["total_bytes"] == 364 * MIB
    assert memory["gpus"] == [
        {"index": 0, "uuid": "GPU-0", "used_bytes": 300 * MIB, "pids": [10]},
        {"index": 2, "uuid": "GPU-2", "used_bytes": 64 * MIB, "pids": [10, 11]},
    ]
    assert fake.calls[-1] == "nvmlShutdown"


def test_measure_process_with_unknown_memory_still_counts_as_present():
    memory = measure_gpu_memory(nvml([{"pid": 10, "used": None}]), None, [10])
    assert memory["gpus"] == [{"index": 0, "uuid": "GPU-0", "used_bytes": None, "pids": [10]}]
    assert gpu_memory_findings(memory, {"enable_gpu": False})[0]["code"] == "cpu_plan_gpu_memory"


@pytest.mark.parametrize(
    ("fake", "pids", "reason"),
    [
        (None, [1], "NVML unavailable: nvidia-ml-py missing"),
        (
            ProcessNvml({"init_error": "LibraryNotFound"}),
            [1],
            "NVML unavailable: nvmlInit failed: libnvidia-ml.so.1 not found",
        ),
        (
            ProcessNvml(
                {
                    "devices": [
                        {
                            "name": "Orin (nvgpu)",
                            "uuid": "GPU-0",
                            "unsupported": ["nvmlDeviceGetComputeRunningProcesses"],
                        }
                    ]
                }
            ),
            [1],
            "NVML per-process query failed: ",
        ),
        (ProcessNvml({"devices": []}), [], "no server pid given"),
    ],
    ids=["no-pynvml", "no-driver", "jetson-not-supported", "no-pid"],
)
def test_measure_says_it_could_not_measure(fake, pids, reason):
    memory = measure_gpu_memory(fake, "nvidia-ml-py missing", pids)
    assert memory["measured"] is False
    assert memory["reason"].startswith(reason)
    assert memory["total_bytes"] is None
    # Not measured is never a pass and never a CPU-plan failure either.
    assert gpu_memory_findings(memory, {"enable_gpu": False}) == []


def test_cpu_plan_with_gpu_memory_names_causes_and_fix():
    memory = measure_gpu_memory(nvml([{"pid": 10, "used": 64 * MIB}]), None, [10])
    (finding,) = gpu_memory_findings(memory, {"enable_gpu": False})
    assert finding["severity"] == "error"
    assert f"gpu 0: {64 * MIB} bytes (pids [10])" in finding["message"]
    for cause in ("memory pools", "ONNX Runtime GPU accelerators", "application's own code"):
        assert cause in finding["message"]
    assert 'CUDA_VISIBLE_DEVICES=""' in finding["fix"] and "--cuda-memory-pool-byte-size=<id>:0" in finding["fix"]


def test_gpu_plan_memory_is_reported_without_finding():
    memory = measure_gpu_memory(nvml([{"pid": 10, "used": 64 * MIB}]), None, [10])
    assert gpu_memory_findings(memory, {"enable_gpu": True}) == []


def test_cpu_plan_with_zero_gpu_presence_passes():
    memory = measure_gpu_memory(nvml([{"pid": 99, "used": 64 * MIB}]), None, [10])
    assert (memory["measured"], memory["total_bytes"], memory["gpus"]) == (True, 0, [])
    assert gpu_memory_findings(memory, {"enable_gpu": False}) == []


def test_nvml_error_class_is_the_real_one():
    assert isinstance(nvml_error("NotSupported"), ProcessNvml.NVMLError)


def test_read_api_key_trims_the_file_and_treats_a_missing_one_as_no_key(tmp_path):
    key = tmp_path / "api-key"
    assert read_api_key(str(key)) is None
    key.write_text("  s3cret\n")
    assert read_api_key(str(key)) == "s3cret"
    with pytest.raises(IsADirectoryError):
        read_api_key(str(tmp_path))
