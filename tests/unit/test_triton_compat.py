# SPDX-License-Identifier: Apache-2.0
"""triton_compat planning rules and every CompatError, against the shipped matrix.

Hosts are built directly as ``triton_host`` dicts (docs/architecture.md) by the builders of
tests/support/plans.py, so these tests do not depend on the facts module.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.triton_compat import (
    CompatError,
    build_plan,
    driver_supports,
    is_datacenter_gpu,
    load_matrix,
    required_driver,
    resolve_release,
    toolkit_min_driver,
)
from support.plans import (
    MATRIX_PATH,
    base_host,
    dgpu_host,
    docker_engine,
    gpu,
    jetson_host,
    podman_engine,
    with_containers,
)

PLAN_KEYS = {
    "backends",
    "release",
    "server_version",
    "install_method",
    "container_image",
    "container_tag",
    "cuda_version",
    "min_driver_version",
    "enable_gpu",
    "instance_kind",
    "gpu_ids",
    "min_compute_capability",
    "hide_gpus",
    "platform",
    "arch",
    "jetson_artifact",
    "matrix_version",
    "notes",
    "runtime",
    "container_engine",
}


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    return load_matrix(str(MATRIX_PATH))


def plan(matrix: dict[str, Any], host: dict[str, Any], release: str = "24.10", method: str = "wheel", **kw: Any):
    return build_plan(host, matrix, release, method, **kw)


def assert_four_parts(err: CompatError, wrong: list[str], found: list[str], supported: list[str], todo: list[str]):
    """Each needle must appear in its own part, and the message must be the four parts in order."""
    for part, needles in ((err.wrong, wrong), (err.found, found), (err.supported, supported), (err.todo, todo)):
        for needle in needles:
            assert needle in part, f"{needle!r} not in {part!r}"
    assert str(err) == f"{err.wrong}. Found: {err.found}. Supported: {err.supported}. To fix: {err.todo}."


# --- matrix lookups -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cuda", "expected"),
    [
        ("12.6.2", "560.35.03"),
        ("12.8.0.038", "570.26"),
        ("12.3.2", "545.23.08"),  # 12.3 U2 is not in Table 3: nearest lower update (12.3 U1)
        ("12.4", "550.54.14"),
        ("12.5.0.23", "555.42.02"),
        ("13.0.2.006", "580.95.05"),
        ("13.4.1", "615.61"),
        ("11.4.4", "470.82.01"),
        ("13.3.0", None),
        ("14.0", None),
    ],
)
def test_toolkit_min_driver(matrix, cuda, expected):
    assert toolkit_min_driver(matrix, cuda) == expected


@pytest.mark.parametrize(
    ("release", "expected", "basis"),
    [
        ("24.10", "560.35.03", "CUDA 12.6.2 full support"),
        # docs/upstream-facts.md, "CUDA and driver": the notes print 560 for 25.01 and 575 for 25.08;
        # the CUDA version decides.
        ("25.01", "570.26", "CUDA 12.8.0.038"),
        ("25.08", "580.65.06", "CUDA 13.0.0.044"),
        ("24.03", "545", "release notes of 24.03"),
        # CUDA not published: the family of the releases around it (24.08 and 24.10 are CUDA 12.6).
        ("24.09", "525", "CUDA 12.x by the releases around it (24.08 CUDA 12.6, 24.10 CUDA 12.6.2)"),
        ("25.11", "580", "CUDA 13.x by the releases around it (25.10 CUDA 13.0.2.006, 26.08 CUDA 13.4.1)"),
        # The series cannot tell: 22.12 was CUDA 11.8 (rel-22-12), 23.03 is 12.1; 25.06 is 12.9, 25.08 13.0.
        ("23.01", None, "no release with a published CUDA version on both sides of 23.01"),
        ("25.07", None, "differ in CUDA major (25.06 CUDA 12.9.1.010, 25.08 CUDA 13.0.0.044)"),
    ],
)
def test_required_driver_comes_from_cuda(matrix, release, expected, basis):
    required, why = required_driver(matrix, resolve_release(matrix, release))
    assert required == expected
    assert basis in why


@pytest.mark.parametrize(
    ("release", "driver", "datacenter", "expected"),
    [
        ("24.10", "560.35.03", False, "full"),
        ("24.10", "535.104.05", False, "minor"),
        ("24.10", "470.82.01", True, "forward:470.57"),
        ("24.10", "470.82.01", False, None),
        ("24.10", "535.54.03", True, "minor"),
        ("24.10", "510.47.03", True, None),  # R510 is not in 24.10's forward-compat list
        ("23.08", "510.47.03", True, "forward:510.47"),
        ("25.08", "575.57.08", False, None),
        ("25.08", "545.23.08", True, None),  # CUDA 13 forward compatibility is not verified
        ("25.08", "580.65.06", False, "full"),
    ],
)
def test_driver_supports(matrix, release, driver, datacenter, expected):
    assert driver_supports(matrix, resolve_release(matrix, release), driver, datacenter) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA A100-SXM4-80GB", True),
        ("NVIDIA H100 80GB HBM3", True),
        ("NVIDIA L4", True),
        ("NVIDIA L40S", True),
        ("Tesla T4", True),
        ("Tesla V100-SXM2-16GB", True),
        ("NVIDIA A10G", True),
        ("NVIDIA B200", True),
        ("NVIDIA GH200 480GB", True),
        ("NVIDIA GeForce RTX 4090", False),
        ("NVIDIA RTX A6000", False),
        ("NVIDIA RTX A2000 12GB", False),
        ("Quadro GV100", False),
        ("NVIDIA T400", False),
        (None, False),
    ],
)
def test_datacenter_classification(matrix, name, expected):
    assert is_datacenter_gpu(matrix, name) is expected


@pytest.mark.parametrize(
    ("requested", "release", "server"),
    [
        ("24.10", "24.10", "2.51.0"),
        ("2.51.0", "24.10", "2.51.0"),
        ("25.07", "25.07", "2.59.1"),
        ("2.60.0", "25.08", "2.60.0"),
    ],
)
def test_release_accepts_tag_or_server_version(matrix, requested, release, server):
    row = resolve_release(matrix, requested)
    assert (row["release"], row["server_version"]) == (release, server)


# --- plan rules ---------------------------------------------------------------------------------


def test_cpu_host_gets_cpu_plan_with_every_key(matrix):
    result = plan(matrix, base_host())
    assert set(result) == PLAN_KEYS
    assert result["instance_kind"] == "KIND_CPU"
    assert (result["enable_gpu"], result["gpu_ids"], result["hide_gpus"]) == (False, [], False)
    assert result["min_driver_version"] is None
    assert result["container_image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert (result["server_version"], result["cuda_version"]) == ("2.51.0", "12.6.2")


def test_release_given_as_server_version_plans_the_same(matrix):
    assert plan(matrix, base_host(), "2.51.0") == plan(matrix, base_host(), "24.10")


PLAN_TABLE = [
    # id, host builder, release, method, kwargs, expected subset
    (
        "dgpu-auto-all-gpus",
        lambda: dgpu_host([gpu(0, "NVIDIA A100-SXM4-80GB", "8.0"), gpu(1, "NVIDIA A100-SXM4-80GB", "8.0")]),
        "24.10",
        "wheel",
        {},
        {
            "instance_kind": "KIND_GPU",
            "gpu_ids": [0, 1],
            "enable_gpu": True,
            "min_driver_version": "560.35.03",
            "runtime.env": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
            "runtime.server_args": [],
            "runtime.gpu_build": True,
            "runtime.min_compute_capability": "6.0",
        },
    ),
    (
        "dgpu-false-hides",
        lambda: dgpu_host([gpu(0, "NVIDIA L4", "8.9")]),
        "24.10",
        "wheel",
        {"enable_gpu": "false"},
        {
            "instance_kind": "KIND_CPU",
            "gpu_ids": [],
            "enable_gpu": False,
            "hide_gpus": True,
            "runtime.env": {"CUDA_VISIBLE_DEVICES": ""},
            "runtime.server_args": [
                "--pinned-memory-pool-byte-size=0",
                "--cuda-memory-pool-byte-size=0:0",
                "--allow-gpu-metrics=false",
                "--enable-peer-access=false",
            ],
            "runtime.container_env": {"NVIDIA_VISIBLE_DEVICES": "void"},
            "runtime.container_devices": {"docker": [], "podman": []},
            "runtime.gpu_build": True,
        },
    ),
    (
        "dgpu-pinned-subset",
        lambda: dgpu_host([gpu(0, "NVIDIA L4", "8.9"), gpu(1, "NVIDIA L4", "8.9"), gpu(2, "NVIDIA L4", "8.9")]),
        "24.10",
        "wheel",
        {"gpus": [2, 0]},
        {
            "instance_kind": "KIND_GPU",
            "gpu_ids": [2, 0],
            "hide_gpus": False,
            # The third GPU stays visible (hiding it would renumber the ids) but gets no pool.
            "runtime.memory.cuda_memory_pool_bytes": {"1": 0},
            "runtime.server_args": ["--cuda-memory-pool-byte-size=1:0"],
        },
    ),
    (
        "dgpu-source-build-min-cc",
        lambda: dgpu_host([gpu(0, "Tesla V100-SXM2-16GB", "7.0")], driver="570.26"),
        "25.01",
        "source",
        {},
        {
            "instance_kind": "KIND_GPU",
            "gpu_ids": [0],
            "min_compute_capability": "6.0",
            "runtime.min_compute_capability": "6.0",
            "runtime.gpu_build": True,
        },
    ),
    (
        "dgpu-no-gpu-listed-auto",
        lambda: dgpu_host([], nvml={"usable": False, "reason": "NVMLError_DriverNotLoaded", "driver_version": None}),
        "24.10",
        "wheel",
        {},
        {
            "instance_kind": "KIND_CPU",
            "hide_gpus": True,
            "min_driver_version": "560.35.03",
            "runtime.env": {"CUDA_VISIBLE_DEVICES": ""},
            "runtime.memory.cuda_memory_pool_bytes": {},
        },
    ),
    (
        "dgpu-container-gpu",
        lambda: with_containers(dgpu_host([gpu(0, "NVIDIA H100 80GB HBM3", "9.0")], driver="580.65.06")),
        "25.08",
        "container",
        {},
        {
            "container_image": "nvcr.io/nvidia/tritonserver:25.08-py3",
            "gpu_ids": [0],
            "min_driver_version": "580.65.06",
            "runtime.container_devices": {"docker": ["--gpus", "all"], "podman": ["--device", "nvidia.com/gpu=all"]},
            "runtime.container_env": {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
            "runtime.min_compute_capability": "7.5",
        },
    ),
    (
        "dgpu-container-cpu-without-runtime",
        lambda: with_containers(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), runtime=False),
        "24.10",
        "container",
        {"enable_gpu": "false"},
        {
            "instance_kind": "KIND_CPU",
            "hide_gpus": True,
            "runtime.container_devices": {"docker": [], "podman": []},
            "runtime.container_env": {"NVIDIA_VISIBLE_DEVICES": "void"},
        },
    ),
    (
        "dgpu-container-cdi-forced",
        lambda: with_containers(dgpu_host([gpu(0, "NVIDIA L4", "8.9")])),
        "24.10",
        "container",
        {"container_gpu_mode": "cdi"},
        {
            "runtime.container_devices": {
                "docker": ["--device", "nvidia.com/gpu=all"],
                "podman": ["--device", "nvidia.com/gpu=all"],
            }
        },
    ),
    (
        "dgpu-source-cpu-plan-builds-without-gpu",
        lambda: dgpu_host([gpu(0, "NVIDIA L4", "8.9")]),
        "24.10",
        "source",
        {"enable_gpu": "false"},
        {"enable_gpu": False, "runtime.gpu_build": False, "runtime.env": {"CUDA_VISIBLE_DEVICES": ""}},
    ),
    (
        "dgpu-source-gpu-build-for-a-cpu-plan",
        lambda: dgpu_host([gpu(0, "NVIDIA L4", "8.9")]),
        "24.10",
        "source",
        {"enable_gpu": "false", "gpu_build": "true"},
        {"enable_gpu": False, "runtime.gpu_build": True},
    ),
    (
        "dgpu-cpu-only-tarball-makes-a-cpu-plan",
        lambda: dgpu_host([gpu(0, "NVIDIA L4", "8.9")]),
        "24.10",
        "tarball",
        {"gpu_build": "false"},
        {"enable_gpu": False, "hide_gpus": True, "runtime.gpu_build": False},
    ),
    (
        "cpu-x86-tarball-is-a-gpu-build",
        base_host,
        "24.10",
        "tarball",
        {},
        {"enable_gpu": False, "runtime.gpu_build": True, "runtime.env": {"CUDA_VISIBLE_DEVICES": ""}},
    ),
    (
        "jetson-nano-jp4-needs-flag",
        lambda: jetson_host("nano-jp4"),
        "2.19.0",
        "tarball",
        {},
        {
            "release": "22.02",
            "instance_kind": "KIND_GPU",
            "gpu_ids": [0],
            "min_compute_capability": "6.0",
            "cuda_version": "10.2",
            "container_image": None,
            "min_driver_version": None,
            "runtime.memory.min_supported_compute_capability": "5.3",
            "runtime.min_compute_capability": "5.3",
            "runtime.env": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
            "runtime.server_args": [
                "--pinned-memory-pool-byte-size=67108864",
                "--cuda-memory-pool-byte-size=0:67108864",
                "--min-supported-compute-capability=5.3",
                "--allow-gpu-metrics=false",
            ],
        },
    ),
    (
        "jetson-tx2-jp4-no-flag",
        lambda: jetson_host("tx2-jp4"),
        "22.02",
        "tarball",
        {},
        {"gpu_ids": [0], "runtime.memory.min_supported_compute_capability": None},
    ),
    (
        "jetson-xavier-jp5",
        lambda: jetson_host("xavier-jp5"),
        "2.35.0",
        "tarball",
        {},
        {
            "release": "23.06",
            "cuda_version": "11.4",
            "runtime.memory.min_supported_compute_capability": None,
            "gpu_ids": [0],
        },
    ),
    (
        "jetson-orin-jp6-container",
        lambda: with_containers(jetson_host("orin-jp6")),
        "24.10",
        "container",
        {},
        {
            "container_image": "nvcr.io/nvidia/tritonserver:24.10-py3-igpu",
            "container_tag": "24.10-py3-igpu",
            "runtime.container_devices": {
                "docker": ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all"],
                "podman": ["--device", "nvidia.com/gpu=all"],
            },
        },
    ),
    (
        "jetson-orin-jp60dp-tarball",
        lambda: jetson_host("orin-jp60dp"),
        "23.11",
        "tarball",
        {},
        {"server_version": "2.40.0", "instance_kind": "KIND_GPU", "cuda_version": None},
    ),
    (
        "jetson-no-nodes-auto-cpu",
        lambda: jetson_host("orin-jp6", nodes=False),
        "24.08",
        "tarball",
        {},
        # The iGPU exists even when its nodes are missing: a GPU-enabled build must not touch it.
        {
            "instance_kind": "KIND_CPU",
            "enable_gpu": False,
            "hide_gpus": True,
            "gpu_ids": [],
            "runtime.memory.cuda_memory_pool_bytes": {"0": 0},
        },
    ),
    (
        "jetson-false-hides-igpu",
        lambda: jetson_host("orin-jp6"),
        "24.08",
        "tarball",
        {"enable_gpu": "false"},
        {"instance_kind": "KIND_CPU", "hide_gpus": True},
    ),
    (
        "jetson-thor-jp7-sbsa",
        lambda: with_containers(jetson_host("thor-jp7")),
        "25.08",
        "container",
        {},
        {"container_image": "nvcr.io/nvidia/tritonserver:25.08-py3", "cuda_version": "13.0.0.044", "gpu_ids": [0]},
    ),
    (
        "jetson-source-anywhere",
        lambda: jetson_host("orin-jp6"),
        "26.08",
        "source",
        {},
        {"instance_kind": "KIND_GPU", "jetson_artifact": None, "runtime.gpu_build": True},
    ),
    (
        "jetson-orin-custom-pools",
        lambda: jetson_host("orin-jp6"),
        "24.08",
        "tarball",
        {"jetson_pool_bytes": {"pinned": 1 << 20, "cuda": 2 << 20}},
        {
            "runtime.server_args": [
                "--pinned-memory-pool-byte-size=1048576",
                "--cuda-memory-pool-byte-size=0:2097152",
                "--allow-gpu-metrics=false",
            ]
        },
    ),
]


def pick(plan_dict: dict[str, Any], dotted: str) -> Any:
    """The value at ``runtime.memory.x``-style paths of a plan."""
    value: Any = plan_dict
    for key in dotted.split("."):
        value = value[key]
    return value


@pytest.mark.parametrize(
    ("host_fn", "release", "method", "kwargs", "expected"),
    [case[1:] for case in PLAN_TABLE],
    ids=[case[0] for case in PLAN_TABLE],
)
def test_plan_rules(matrix, host_fn, release, method, kwargs, expected):
    result = plan(matrix, host_fn(), release, method, **kwargs)
    assert set(result) == PLAN_KEYS
    assert {key: pick(result, key) for key in expected} == expected


def test_gpus_below_min_cc_are_dropped_with_a_note(matrix):
    host = dgpu_host(
        [gpu(0, "NVIDIA GeForce RTX 3090", "8.6"), gpu(1, "NVIDIA GeForce GTX 1080", "6.1")], driver="570.26"
    )
    result = plan(matrix, with_containers(host), "25.01", "container")
    assert result["gpu_ids"] == [0]
    assert any("GPU 1" in note and "6.1" in note and "7.5" in note for note in result["notes"])


def test_driver_between_family_and_toolkit_minimum_runs_with_note(matrix):
    result = plan(matrix, dgpu_host([gpu(0, "NVIDIA GeForce RTX 4090", "8.9")], driver="535.104.05"))
    assert result["enable_gpu"] is True
    assert any("minor-version compatibility" in note and "535.104.05" in note for note in result["notes"])


def test_forward_compat_on_datacenter_gpu_notes_the_compat_package(matrix):
    host = with_containers(dgpu_host([gpu(0, "NVIDIA A100-SXM4-80GB", "8.0")], driver="470.82.01"))
    result = plan(matrix, host, "24.10", "container")
    assert result["gpu_ids"] == [0]
    assert any("forward compatibility" in note and "470.57" in note for note in result["notes"])
    wheel = plan(matrix, dgpu_host([gpu(0, "NVIDIA A100-SXM4-80GB", "8.0")], driver="470.82.01"))
    assert any("host's cuda-compat package" in note for note in wheel["notes"])


def test_unpublished_cuda_applies_the_family_minimum_and_says_so(matrix):
    host = with_containers(dgpu_host([gpu(0, "NVIDIA L4", "8.9")], driver="530.30.02"))
    result = plan(matrix, host, "24.09", "container")
    assert result["min_driver_version"] == "525"
    assert any("CUDA version of 24.09 is not published: the driver must be >= 525" in note for note in result["notes"])


def test_unpublished_cuda_refuses_a_driver_below_the_family(matrix):
    host = with_containers(dgpu_host([gpu(0, "NVIDIA GeForce RTX 3090", "8.6")], driver="470.256.02"))
    err = raises(matrix, host, "25.09", "container")
    assert_four_parts(
        err,
        ["NVIDIA driver 470.256.02 is too old for Triton 25.09", "CUDA not published"],
        ["470.256.02", "RTX 3090"],
        ["driver >= 580", "CUDA 13.x by the releases around it"],
        ["upgrade the driver to >= 580"],
    )


def test_a_release_the_series_cannot_place_skips_the_driver_check_with_a_note(matrix):
    host = with_containers(dgpu_host([gpu(0, "NVIDIA L4", "8.9")], driver="400.1"))
    result = plan(matrix, host, "23.01", "container")
    assert result["min_driver_version"] is None
    assert any("not checked" in note and "23.01" in note for note in result["notes"])


def test_jetson_igpu_tarball_with_unverified_name_says_so(matrix):
    result = plan(matrix, jetson_host("orin-jp6"), "24.10", "tarball")
    assert result["jetson_artifact"]["name"] is None
    assert result["jetson_artifact"]["kind"] == "tarball"
    assert any("not verified" in note for note in result["notes"])
    named = plan(matrix, jetson_host("orin-jp6"), "24.08", "tarball")
    assert named["jetson_artifact"]["name"] == "tritonserver2.49.0-igpu.tar.gz"


def test_jetson_artifact_names_the_jetpack5_update2_tarball(matrix):
    artifact = plan(matrix, jetson_host("xavier-jp5"), "23.06", "tarball")["jetson_artifact"]
    assert artifact["name"] == "tritonserver2.35.0-jetpack5.1.2-update-2.tgz"
    assert artifact["jetpack"] == "5.1.2"


def test_jetson_missing_nodes_auto_notes_cpu_plan(matrix):
    result = plan(matrix, jetson_host("orin-jp6", nodes=False), "24.08", "tarball")
    assert any("device nodes absent" in note for note in result["notes"])


# --- every failure message: wrong / found where / supported / to do -----------------------------


def raises(matrix, host, release="24.10", method="wheel", **kw) -> CompatError:
    with pytest.raises(CompatError) as info:
        plan(matrix, host, release, method, **kw)
    return info.value


def test_error_driver_too_old_no_release_fits(matrix):
    host = dgpu_host(
        [gpu(0, "NVIDIA GeForce RTX 3090", "8.6")], driver="470.256.02", driver_source="/proc/driver/nvidia/version"
    )
    err = raises(matrix, host)
    assert_four_parts(
        err,
        ["driver 470.256.02 is too old", "24.10", "12.6.2"],
        ["470.256.02", "/proc/driver/nvidia/version", "GeForce RTX 3090", "not all data-center"],
        ["560.35.03", "525", "data-center GPUs only", "470.57"],
        ["upgrade the driver to >= 560.35.03", "no release in the matrix works"],
    )


def test_error_driver_too_old_names_the_release_that_works(matrix):
    host = dgpu_host([gpu(0, "NVIDIA GeForce RTX 4090", "8.9")], driver="570.133.07")
    err = raises(matrix, host, "25.08", "source")
    assert_four_parts(
        err,
        ["too old for Triton 25.08", "CUDA 13.0.0.044"],
        ["570.133.07", "nvml", "RTX 4090"],
        ["580.65.06", ">= 580 with CUDA 13.x"],
        ['triton_release: "25.06"', "2.59.0", "newest release that works with driver 570.133.07"],
    )


def test_error_cuda13_forward_compat_not_granted_on_datacenter(matrix):
    host = dgpu_host([gpu(0, "NVIDIA A100-SXM4-80GB", "8.0")], driver="545.23.08")
    err = raises(matrix, host, "25.10", "source")
    assert_four_parts(
        err,
        ["too old for Triton 25.10"],
        ["545.23.08", "A100"],
        ["not verified for CUDA 13"],
        ['triton_release: "25.06"'],
    )


def test_error_driver_too_old_for_the_wheel_points_at_other_methods(matrix):
    err = raises(matrix, dgpu_host([gpu(0, "NVIDIA A100-SXM4-80GB", "8.0")], driver="510.47.03"))
    assert_four_parts(
        err,
        ["510.47.03 is too old for Triton 24.10"],
        ["A100"],
        ["data-center GPUs only, branches 470.57, 525.85, 535.86, 545.23"],
        ['triton_release: "23.12"', "(with triton_install_method: container, tarball or source)"],
    )


def test_error_every_gpu_below_min_cc_names_the_last_release(matrix):
    host = dgpu_host([gpu(0, "Tesla V100-SXM2-16GB", "7.0"), gpu(1, "Tesla P100-PCIE-16GB", "6.0")], driver="570.26")
    err = raises(matrix, with_containers(host), "25.01", "container")
    assert_four_parts(
        err,
        ["every GPU is below the minimum compute capability 7.5", "25.01"],
        ["GPU 0 Tesla V100-SXM2-16GB (CC 7.0)", "GPU 1 Tesla P100-PCIE-16GB (CC 6.0)", "triton_host.gpus"],
        [">= 7.5", "up to 24.12 run on >= 6.0"],
        ['triton_release: "24.12"', "2.53.0", "triton_install_method: source", "triton_enable_gpu: false"],
    )


def test_error_gpu_below_every_release_needs_a_source_build(matrix):
    err = raises(matrix, dgpu_host([gpu(0, "Tesla M60", "5.2")]))
    assert_four_parts(
        err,
        ["every GPU is below the minimum compute capability 6.0"],
        ["Tesla M60 (CC 5.2)"],
        [">= 6.0"],
        ["no prebuilt release supports CC 5.2", "--min-compute-capability=5.2"],
    )


def test_error_pinned_gpu_below_min_cc(matrix):
    host = dgpu_host([gpu(0, "NVIDIA L4", "8.9"), gpu(1, "Tesla V100-SXM2-16GB", "7.0")], driver="570.26")
    err = raises(matrix, with_containers(host), "25.01", "container", gpus=[1])
    assert_four_parts(err, ["pinned GPU is below", "7.5"], ["GPU 1 Tesla V100"], [">= 7.5"], ['"24.12"'])


def test_error_pinned_gpu_not_present(matrix):
    err = raises(matrix, dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), gpus=[0, 3])
    assert_four_parts(
        err,
        ["contradicts the host", "[3]"],
        ["GPU 0 NVIDIA L4 (CC 8.9)", "triton_host.gpus"],
        ["CUDA ids [0]"],
        ["set triton_gpus to a subset"],
    )


def test_error_enable_gpu_true_on_cpu_host(matrix):
    err = raises(matrix, base_host(), enable_gpu="true")
    assert_four_parts(
        err,
        ["contradicts the host", "triton_enable_gpu=true", "without GPU"],
        ["platform=cpu", "triton_host.reasons"],
        ["GPU plans on Jetson and dGPU hosts only"],
        ["triton_enable_gpu: auto or false"],
    )


def test_error_pinned_gpus_on_cpu_host(matrix):
    err = raises(matrix, base_host(), gpus=[0])
    assert_four_parts(err, ["triton_gpus=[0]"], ["platform=cpu"], ["dGPU hosts only"], ["triton_gpus: []"])


@pytest.mark.parametrize("host_fn", [lambda: dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), lambda: jetson_host("orin-jp6")])
def test_error_pinned_gpus_with_gpu_disabled(matrix, host_fn):
    err = raises(matrix, host_fn(), "24.08", "source", enable_gpu="false", gpus=[0])
    assert_four_parts(
        err,
        ["triton_gpus pins [0] but triton_enable_gpu is false"],
        ["triton_gpus=[0], triton_enable_gpu=false"],
        ["auto or true"],
        ["clear triton_gpus"],
    )


def test_error_gpu_plan_requested_but_gpus_not_listed(matrix):
    host = dgpu_host([], driver="550.54.15", driver_source="/proc/driver/nvidia/version")
    host["nvml"] = {"usable": False, "reason": "NVML library and kernel driver versions differ", "driver_version": None}
    err = raises(matrix, host, enable_gpu="true")
    assert_four_parts(
        err,
        ["GPUs cannot be listed"],
        ["550.54.15", "/proc/driver/nvidia/version", "versions differ"],
        ["GPU list from NVML"],
        ["triton_enable_gpu: false"],
    )


def test_error_unknown_l4t(matrix):
    host = jetson_host("orin-jp6", l4t_version="36.9.9", l4t_known=False, jetpack_version=None)
    err = raises(matrix, host, "24.08", "tarball")
    assert_four_parts(
        err,
        ["L4T", "unknown"],
        ["L4T 36.9.9 from /etc/nv_tegra_release"],
        ["module_utils/triton_host.py", "JetPack 4, 5, 6, 7"],
        ["L4T_TO_JETPACK", "flash a listed JetPack"],
    )


def test_error_jetpack_without_any_build(matrix):
    err = raises(matrix, jetson_host("orin-jp6", jetpack_version="3.3"), "24.08", "tarball")
    assert_four_parts(err, ["JetPack 3.3"], ["JetPack 3.3 (L4T 36.4.3"], ["JetPack 4, 5, 6, 7"], ["flash a supported"])


def test_error_jetpack4_has_no_build_of_the_release(matrix):
    err = raises(matrix, jetson_host("nano-jp4"), "24.10", "tarball")
    assert_four_parts(
        err,
        ["no Triton 2.51.0 (24.10) build runs on JetPack 4"],
        ["JetPack 4.6.1 (L4T 32.7.1 from /etc/nv_tegra_release)"],
        ["tritonserver2.19.0-jetpack4.6.1.tgz", "tritonserver2.17.0-jetpack4.6.tgz"],
        ['triton_release: "2.19.0"', "triton_install_method: tarball"],
    )


def test_error_jetson_tarball_needs_newer_jetpack(matrix):
    err = raises(matrix, jetson_host("nano-jp46"), "2.19.0", "tarball")
    assert_four_parts(
        err, ["needs JetPack >= 4.6.1"], ["JetPack 4.6 (L4T 32.6.1"], ["2.17.0 (21.10)"], ['triton_release: "2.17.0"']
    )


def test_error_jetpack5_too_old_for_every_tarball(matrix):
    err = raises(matrix, jetson_host("xavier-jp502"), "2.35.0", "tarball")
    assert_four_parts(
        err, ["needs JetPack >= 5.1.1"], ["JetPack 5.0.2"], ["2.34.0 (23.05)"], ["upgrade to JetPack >= 5.1"]
    )


@pytest.mark.parametrize("method", ["container", "wheel"])
def test_error_jetpack5_method_unavailable(matrix, method):
    err = raises(matrix, with_containers(jetson_host("xavier-jp5")), "23.06", method)
    assert_four_parts(
        err,
        [f"install method {method} is not available on JetPack 5"],
        [f"triton_install_method={method} on JetPack 5.1.2"],
        ["no Triton container runs there", "#6702"],
        ['triton_release: "2.35.0" with triton_install_method: tarball'],
    )


def test_error_igpu_build_glibc_missing_on_jetpack6(matrix):
    err = raises(matrix, jetson_host("orin-jp6"), "24.11", "tarball")
    assert_four_parts(
        err,
        ["2.52.0 igpu tarball", "Ubuntu 24.04", "needs glibc 2.39", "has glibc 2.35", "#8367"],
        ["glibc 2.35 on Ubuntu 22.04", "triton_host.os.glibc_version"],
        ["up to 24.10 (2.51.0) are built on Ubuntu 22.04", "inferred from the build's base image (Ubuntu 24.04"],
        ["triton_install_method: container"],
    )


def test_glibc_refusal_quotes_the_loaders_words(matrix):
    err = raises(matrix, jetson_host("orin-jp6"), "24.11", "tarball")
    assert "version `GLIBC_2.xx' not found" in err.wrong and '"GLIBC_2.36 not found"' in err.wrong
    assert "NVIDIA publishes no glibc floor" in err.supported


def test_error_igpu_release_outside_jetson_range(matrix):
    err = raises(matrix, with_containers(jetson_host("orin-jp6")), "26.03", "container")
    assert_four_parts(
        err,
        ["no Triton 2.67.0 (26.03) build runs on JetPack 6"],
        ["JetPack 6.2 (L4T 36.4.3"],
        ["igpu builds 23.11 (2.40.0) to 26.02 (2.66.0)", "up to 24.10 (2.51.0)"],
        ['triton_release: "24.10"'],
    )


def test_error_jetpack7_tarball(matrix):
    err = raises(matrix, jetson_host("thor-jp7"), "25.08", "tarball")
    assert_four_parts(
        err,
        ["tarball is not available on JetPack 7"],
        ["JetPack 7.0"],
        ["standard arm64 (SBSA)"],
        ["container or source"],
    )


def test_error_jetpack7_release_before_cuda13(matrix):
    err = raises(matrix, with_containers(jetson_host("thor-jp7")), "24.10", "container")
    assert_four_parts(err, ["JetPack 7"], ["JetPack 7.0 (L4T 38.2.0"], ["from 25.08"], ['"25.08" or newer'])


def test_error_jetson_gpu_true_without_nodes(matrix):
    err = raises(matrix, jetson_host("orin-jp6", nodes=False), "24.08", "tarball", enable_gpu="true")
    assert_four_parts(
        err,
        ["device nodes are missing"],
        ["none under /", "triton_host.gpu_device_nodes"],
        ["/dev/nvgpu/igpu0/ctrl"],
        ["triton_enable_gpu: auto or false"],
    )


def test_error_jetson_pins_a_second_gpu(matrix):
    err = raises(matrix, jetson_host("orin-jp6"), "24.08", "tarball", gpus=[1])
    assert_four_parts(err, ["one GPU, CUDA id 0"], ["Jetson iGPU Orin"], ["[0] on Jetson"], ["triton_gpus: [0]"])


def test_error_jetson_igpu_not_built_for(matrix):
    host = jetson_host("orin-jp6", igpu={"name": "Xavier", "compute_capability": "5.0"})
    err = raises(matrix, host, "24.08", "tarball")
    assert_four_parts(
        err, ["CC 5.0", "not compiled for it"], ["iGPU Xavier CC 5.0"], ["CC 8.7"], ["triton_enable_gpu: false"]
    )


def test_error_wheel_other_release(matrix):
    err = raises(matrix, base_host(), "25.01", "wheel")
    assert_four_parts(
        err,
        ["wheel cannot install Triton 2.54.0 (25.01)"],
        ["triton_install_method=wheel with triton_release=25.01"],
        ["nvidia-pytriton 0.7.0 bundles only Triton 2.51.0 (24.10)", "x86_64"],
        ['triton_release: "24.10"'],
    )


def test_error_wheel_wrong_arch(matrix):
    err = raises(matrix, base_host(arch="ppc64le"), "24.10", "wheel")
    assert_four_parts(
        err, ["not available on ppc64le"], ["arch ppc64le"], ["x86_64, aarch64 only"], ["tarball or container"]
    )


def test_the_aarch64_wheel_serves_an_arm_server(matrix):
    result = plan(matrix, base_host(arch="aarch64"), "24.10", "wheel")
    assert (result["install_method"], result["arch"], result["server_version"]) == ("wheel", "aarch64", "2.51.0")


def test_error_wheel_on_jetson_names_the_build_it_carries(matrix):
    err = raises(matrix, jetson_host("orin-jp6"), "24.10", "wheel")
    assert_four_parts(
        err,
        ["install method wheel cannot drive the Jetson iGPU"],
        ["a Jetson host, arch aarch64, JetPack 6.2"],
        ["aarch64 wheel is the Arm server (SBSA) build", "DCGM 3.2.6", "not the igpu build"],
        ["tarball (the igpu tarball) or container (the -igpu image)"],
    )


def test_error_wheel_needs_newer_glibc(matrix):
    host = base_host(
        os={"id": "ubuntu", "version_id": "20.04", "pretty_name": "Ubuntu 20.04.6 LTS", "glibc_version": "2.31"}
    )
    err = raises(matrix, host, "24.10", "wheel")
    assert_four_parts(
        err,
        ["nvidia-pytriton wheel (manylinux_2_35) needs glibc 2.35", "has glibc 2.31"],
        ["glibc 2.31 on Ubuntu 20.04.6 LTS"],
        ["no other release ships as a wheel"],
        ["container"],
    )


def test_error_tarball_needs_newer_glibc_names_newest_fitting_release(matrix):
    host = base_host(os={"id": "debian", "version_id": "12", "pretty_name": "Debian 12", "glibc_version": "2.36"})
    err = raises(matrix, host, "26.08", "tarball")
    assert_four_parts(
        err,
        ["needs glibc 2.39", "2.36"],
        ["glibc 2.36 on Debian 12"],
        ["24.10 (2.51.0)"],
        ["triton_install_method: container"],
    )


def test_error_container_without_engine(matrix):
    err = raises(matrix, base_host(), "24.10", "container")
    assert_four_parts(
        err,
        ["needs a container engine that can start the server's container"],
        ["triton_host.container_engines is empty"],
        ["docker with a running daemon, or podman"],
        ["install podman (apt-get install podman runc) or docker"],
    )


def test_error_gpu_container_without_nvidia_runtime(matrix):
    host = with_containers(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), runtime=False)
    err = raises(matrix, host, "24.10", "container")
    assert_four_parts(
        err,
        ["the GPU plan's container cannot get the GPUs"],
        ["--gpus all for docker, but no nvidia-container-runtime-hook", "triton_host.nvidia_container_runtime"],
        ["docker --gpus with the NVIDIA Container Toolkit", "CDI"],
        ["install the NVIDIA Container Toolkit", "triton_enable_gpu: false"],
    )


def test_container_engine_is_the_first_that_can_run(matrix):
    """docker's client without a daemon (the development machine) leaves podman; docker wins when both can run."""
    host = with_containers(base_host(), runtime=False, engines=[docker_engine(daemon_running=False), podman_engine()])
    assert plan(matrix, host, method="container")["container_engine"] == "podman"
    both = with_containers(base_host(), runtime=False, engines=[podman_engine(), docker_engine()])
    assert plan(matrix, both, method="container")["container_engine"] == "docker"
    assert plan(matrix, both, method="container", container_engine="podman")["container_engine"] == "podman"
    assert plan(matrix, both)["container_engine"] is None


def test_container_engine_workarounds_are_plan_notes(matrix):
    hybrid = podman_engine(cgroup_layout="hybrid", unified_controllers=["hugetlb"],
                           runtime_paths={"crun": "/usr/bin/crun", "runc": "/usr/bin/runc"})  # fmt: skip
    result = plan(matrix, with_containers(base_host(), runtime=False, engines=[hybrid]), method="container")
    assert any("tritonfleet runs it with --runtime runc" in note for note in result["notes"])


def test_error_no_engine_can_run_names_each_engines_problem(matrix):
    engines = [docker_engine(daemon_running=False), podman_engine(runtime_paths={})]
    err = raises(matrix, with_containers(base_host(), runtime=False, engines=engines), "24.10", "container")
    assert_four_parts(
        err,
        ["needs a container engine that can start the server's container"],
        ["docker at /usr/bin/docker: docker cannot start", "its daemon is not running",
         "podman at /usr/bin/podman: podman cannot start", "no OCI runtime is installed"],
        ["docker with a running daemon"],
        ["fix what the engine's message names"],
    )  # fmt: skip


def test_error_pinned_engine_that_cannot_run(matrix):
    host = with_containers(base_host(), runtime=False, engines=[docker_engine(daemon_running=False), podman_engine()])
    err = raises(matrix, host, "24.10", "container", container_engine="docker")
    assert_four_parts(
        err, ["(docker, from triton_container_engine)"], ["its daemon is not running"], ["docker"], ["fix"]
    )


def test_error_podman_gpu_plan_without_cdi_spec(matrix):
    host = with_containers(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), engines=[podman_engine()], cdi=False)
    err = raises(matrix, host, "24.10", "container")
    assert_four_parts(
        err,
        ["cannot get the GPUs"],
        ["--device nvidia.com/gpu=all for podman, but no CDI spec"],
        ["CDI devices from a CDI spec"],
        ["nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"],
    )
    with_spec = with_containers(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), engines=[podman_engine()])
    assert plan(matrix, with_spec, method="container")["runtime"]["container_devices"]["podman"] == [
        "--device",
        "nvidia.com/gpu=all",
    ]


def test_error_jetson_podman_without_a_cdi_spec(matrix):
    host = with_containers(jetson_host("orin-jp6"), engines=[podman_engine()], cdi=False)
    err = raises(matrix, host, "24.10", "container")
    assert_four_parts(
        err, ["cannot get the GPUs"], ["nvidia.com/gpu=all for podman, but no CDI spec"], ["CDI"], ["--mode=csv"]
    )


def test_error_jetson_docker_without_the_nvidia_runtime(matrix):
    host = with_containers(jetson_host("orin-jp6"), engines=[docker_engine(nvidia_runtime=False)])
    err = raises(matrix, host, "24.10", "container")
    assert_four_parts(
        err,
        ["cannot get the GPUs"],
        ["--runtime nvidia -e NVIDIA_VISIBLE_DEVICES=all for docker, whose runtimes are runc"],
        ["--runtime nvidia registered with the engine"],
        ["nvidia-ctk runtime configure --runtime=docker"],
    )


def test_error_container_on_unsupported_arch(matrix):
    err = raises(matrix, with_containers(base_host(arch="ppc64le")), "24.10", "container")
    assert_four_parts(err, ["no Triton image for ppc64le"], ["arch ppc64le"], ["x86_64, aarch64"], ["source"])


def test_error_jetson_only_release_on_dgpu(matrix):
    err = raises(matrix, dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), "2.19.0", "source")
    assert_four_parts(err, ["only as a Jetson tarball"], ["a dgpu host"], ["releases 23.01-26.08"], ['"24.10"'])


def test_error_unknown_release(matrix):
    err = raises(matrix, base_host(), "99.01")
    assert_four_parts(
        err,
        ["'99.01' is not in the compatibility matrix"],
        ["triton_release='99.01'"],
        ["23.01-26.08", "2.19.0"],
        ["quoted"],
    )


def test_error_unquoted_yaml_release(matrix):
    err = raises(matrix, base_host(), "24.1")
    assert_four_parts(err, ["'24.1'"], ["triton_release='24.1'"], ["2.30.0-2.72.0"], ['triton_release: "24.10"'])


def test_error_host_without_platform(matrix):
    err = raises(matrix, {"arch": "x86_64"})
    assert_four_parts(
        err, ["no usable platform"], ["triton_host.platform=None"], ["jetson, dgpu or cpu"], ["triton_host_facts"]
    )


def test_error_invalid_request_values(matrix):
    err = raises(matrix, base_host(), "24.10", "rpm")
    assert_four_parts(
        err, ["not valid"], ["triton_install_method='rpm'"], ["wheel, tarball, container, source"], ["supported values"]
    )


@pytest.mark.parametrize(
    ("kwargs", "found"),
    [
        ({"gpu_build": "maybe"}, "triton_gpu_build='maybe'"),
        ({"container_gpu_mode": "passthrough"}, "triton_container_gpu_mode='passthrough'"),
    ],
    ids=["gpu_build", "container_gpu_mode"],
)
def test_error_invalid_runtime_request_values(matrix, kwargs, found):
    err = raises(matrix, base_host(), "24.10", "wheel", **kwargs)
    assert_four_parts(err, ["not valid"], [found], ["gpu_build auto, true, false"], ["supported values"])


def test_error_negative_jetson_pool(matrix):
    err = raises(matrix, jetson_host("orin-jp6"), "24.08", "tarball", jetson_pool_bytes={"pinned": -1, "cuda": 0})
    assert_four_parts(
        err,
        ["pool sizes are not valid"],
        ["triton_platform_jetson_pinned_memory_pool_bytes=-1"],
        ["0 or more"],
        ["67108864"],
    )


@pytest.mark.parametrize(
    ("host_fn", "method", "artifact"),
    [
        (base_host, "wheel", "the wheel artifact"),
        (lambda: with_containers(base_host()), "container", "the container artifact"),
        (lambda: jetson_host("orin-jp6"), "tarball", "NVIDIA's Jetson tarball"),
    ],
    ids=["wheel", "container", "jetson-tarball"],
)
def test_error_cpu_only_build_declared_for_a_gpu_artifact(matrix, host_fn, method, artifact):
    err = raises(matrix, host_fn(), "24.10", method, gpu_build="false")
    assert_four_parts(
        err,
        [f"triton_gpu_build is false but {artifact} is a GPU build"],
        [f"triton_install_method={method}"],
        ["tarball method off Jetson", "source method"],
        ["triton_gpu_build: auto"],
    )


@pytest.mark.parametrize("kwargs", [{"enable_gpu": "true"}, {"gpus": [0]}], ids=["enable_gpu-true", "pinned"])
def test_error_gpu_plan_with_a_cpu_only_build(matrix, kwargs):
    err = raises(matrix, dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), "24.10", "source", gpu_build="false", **kwargs)
    assert_four_parts(
        err, ["triton_gpu_build is false", "GPU plan is requested"], ["triton_gpu_build=false"], ["GPU build"], ["auto"]
    )


def test_error_docker_gpus_mode_on_jetson(matrix):
    err = raises(matrix, with_containers(jetson_host("orin-jp6")), "24.10", "container", container_gpu_mode="gpus")
    assert_four_parts(
        err,
        ["triton_container_gpu_mode is gpus on a Jetson host"],
        ["triton_container_gpu_mode=gpus", "Jetson Orin"],
        ["--runtime nvidia", "#5641"],
        ["auto, runtime or cdi"],
    )


def test_error_matrix_unreadable(tmp_path):
    with pytest.raises(CompatError) as info:
        load_matrix(str(tmp_path / "missing.yml"))
    assert_four_parts(
        info.value,
        ["cannot be read"],
        ["missing.yml", "No such file"],
        ["matrix_version 1"],
        ["triton_platform_matrix_path"],
    )


def test_error_matrix_not_yaml(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("releases: [\n", encoding="utf-8")
    with pytest.raises(CompatError) as info:
        load_matrix(str(path))
    assert_four_parts(info.value, ["not valid YAML"], ["bad.yml"], ["matrix_version 1"], ["files/triton_matrix.yml"])


def test_error_matrix_other_version(tmp_path):
    path = tmp_path / "v2.yml"
    path.write_text("matrix_version: 2\nreleases: []\n", encoding="utf-8")
    with pytest.raises(CompatError) as info:
        load_matrix(str(path))
    assert_four_parts(
        info.value, ["unknown format"], ["matrix_version 2"], ["matrix_version 1"], ["shipped with this version"]
    )


ARTIFACT_KEYS = {"kind", "name", "server_version", "release", "jetpack", "min_jetpack", "source"}


@pytest.mark.parametrize(
    ("host_fn", "release", "method", "kind"),
    [
        (lambda: jetson_host("nano-jp4"), "2.19.0", "tarball", "tarball"),
        (lambda: jetson_host("orin-jp6"), "24.08", "tarball", "tarball"),
        (lambda: with_containers(jetson_host("orin-jp6")), "24.08", "container", "container"),
        (lambda: with_containers(jetson_host("thor-jp7")), "26.08", "container", "container"),
    ],
    ids=["jp4-tarball", "jp6-tarball", "jp6-container", "jp7-container"],
)
def test_jetson_artifact_has_the_same_keys_everywhere(matrix, host_fn, release, method, kind):
    artifact = plan(matrix, host_fn(), release, method)["jetson_artifact"]
    assert set(artifact) == ARTIFACT_KEYS
    assert artifact["kind"] == kind
    assert artifact["server_version"] == resolve_release(matrix, release)["server_version"]


@pytest.mark.parametrize(
    ("release", "method", "expected"),
    [
        ("24.10", "wheel", ["python"]),
        (
            "24.10",
            "container",
            [
                "dali",
                "fil",
                "identity",
                "onnxruntime",
                "openvino",
                "python",
                "pytorch",
                "repeat",
                "square",
                "tensorflow",
                "tensorrt",
            ],
        ),
        (
            "25.03",
            "container",
            ["dali", "fil", "identity", "onnxruntime", "openvino", "python", "pytorch", "repeat", "square", "tensorrt"],
        ),
        ("24.10", "tarball", None),
        ("24.10", "source", None),
    ],
    ids=["wheel", "container-24.10", "container-25.03-no-tensorflow", "tarball-unpublished", "source-decided-by-build"],
)
def test_plan_names_the_backends_the_install_method_provides(matrix, release, method, expected):
    host = with_containers(dgpu_host([gpu(0, "NVIDIA A100-SXM4-80GB", "8.0")], driver="580.65.06"))
    result = plan(matrix, host, release, method)
    assert result["backends"] == expected
    assert (expected is None) == any("backends of a" in note and "not published" in note for note in result["notes"])
