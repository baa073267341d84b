"""Unit tests for module_utils/triton_model_config.py: parsing, rendering and Triton's validation rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils.triton_model_config import (
    ModelConfigError,
    effective_instance_groups,
    parse_config,
    render_for_host,
    render_repository,
    render_text,
    to_text,
    validate,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DETECTOR = REPO_ROOT / "examples" / "detector_repository" / "peoplenet" / "config.pbtxt"
GOLDEN = REPO_ROOT / "tests" / "fixtures" / "render"

CPU_PLAN = {"platform": "cpu", "arch": "x86_64", "enable_gpu": False, "instance_kind": "KIND_CPU", "gpu_ids": []}
DGPU_PLAN = {
    "platform": "dgpu",
    "arch": "x86_64",
    "enable_gpu": True,
    "instance_kind": "KIND_GPU",
    "gpu_ids": [0, 1],
    "min_compute_capability": "6.0",
    "runtime": {"gpu_build": True, "min_compute_capability": "6.0"},
}
JETSON_PLAN = {
    "platform": "jetson",
    "arch": "aarch64",
    "enable_gpu": True,
    "instance_kind": "KIND_GPU",
    "gpu_ids": [0],
    "min_compute_capability": "6.0",
    "runtime": {"gpu_build": True, "min_compute_capability": "6.0"},
}
CPU_HOST = {"platform": "cpu", "arch": "x86_64", "gpus": [], "igpu": None}
DGPU_HOST = {
    "platform": "dgpu",
    "arch": "x86_64",
    "gpus": [{"index": 0, "compute_capability": "8.6"}, {"index": 1, "compute_capability": "7.5"}],
    "igpu": None,
}
JETSON_HOST = {
    "platform": "jetson",
    "arch": "aarch64",
    "gpus": [],
    "igpu": {"name": "Orin", "compute_capability": "8.7"},
}
PLATFORMS = {"cpu": (CPU_PLAN, CPU_HOST), "dgpu": (DGPU_PLAN, DGPU_HOST), "jetson": (JETSON_PLAN, JETSON_HOST)}


def cfg(body: str, name: str = "m") -> object:
    return parse_config(body, f"/repo/{name}/config.pbtxt")


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "line", "column", "detail"),
    [
        ('name: "m"\ninstance_group [ { kind: KIND_TPU } ]\n', 2, 26, "has no value named KIND_TPU"),
        ('name: "m"\n\n  batch_size: 4\n', 3, 3, 'has no field named "batch_size"'),
        ('name: "m"\ninput [ { name: "x" \n', 2, 17, 'Expected "}"'),
        ('name: "m"\nmax_batch_size: "eight"\n', 2, 17, "Couldn't parse integer"),
    ],
    ids=["bad-enum", "unknown-field", "unclosed-bracket", "wrong-type"],
)
def test_parse_error_names_file_line_and_column(text, line, column, detail):
    with pytest.raises(ModelConfigError) as err:
        parse_config(text, "/repo/m/config.pbtxt")
    message = str(err.value)
    assert message.startswith(f"/repo/m/config.pbtxt line {line} column {column}: ")
    assert detail in message
    assert "Fix: correct /repo/m/config.pbtxt" in message


def test_parse_fills_missing_name_from_directory():
    assert cfg('backend: "python"', name="add_sub").name == "add_sub"
    assert parse_config('name: "x"', "/repo/y/config.pbtxt").name == "x"


def test_to_text_is_deterministic_and_round_trips():
    config = parse_config(DETECTOR.read_text(), str(DETECTOR))
    text = to_text(config)
    assert to_text(parse_config(text, str(DETECTOR))) == text
    assert "dims: [3, 544, 960]" in text


# ---------------------------------------------------------------- rendering (policy auto)


def groups_of(body: str, platform: str, **kwargs) -> tuple[list[dict], list[str]]:
    plan, host = PLATFORMS[platform]
    rendered, warnings = render_for_host(
        cfg(body), plan, host, "auto", kwargs.get("gpu_build", True), kwargs.get("count")
    )
    return effective_instance_groups(rendered, plan, kwargs.get("gpu_build", True)), warnings


RENDER_CASES = [
    # (id, body, platform, expected [(kind, gpus, count)], warning fragment or None)
    ("gpu-on-cpu", "instance_group [{ kind: KIND_GPU count: 3 }]", "cpu", [("KIND_CPU", [], 3)], None),
    ("gpu-on-dgpu", "instance_group [{ kind: KIND_GPU }]", "dgpu", [("KIND_GPU", [0, 1], 1)], None),
    ("gpu-on-jetson", "instance_group [{ kind: KIND_GPU }]", "jetson", [("KIND_GPU", [0], 1)], None),
    ("auto-on-dgpu", "instance_group [{ kind: KIND_AUTO }]", "dgpu", [("KIND_GPU", [0, 1], 1)], None),
    ("auto-on-cpu", "instance_group [{ kind: KIND_AUTO gpus: [0] }]", "cpu", [("KIND_CPU", [], 1)], None),
    ("no-group-dgpu", 'backend: "python"', "dgpu", [("KIND_GPU", [0, 1], 1)], None),
    ("no-group-cpu-ort", 'backend: "onnxruntime"', "cpu", [("KIND_CPU", [], 2)], None),
    ("pinned-subset-kept", "instance_group [{ kind: KIND_GPU gpus: [1] }]", "dgpu", [("KIND_GPU", [1], 1)], None),
    (
        "unusable-pin-replaced",
        "instance_group [{ kind: KIND_GPU gpus: [3] }]",
        "dgpu",
        [("KIND_GPU", [0, 1], 1)],
        "gpus [3] are not all usable",
    ),
    ("cpu-kept-on-dgpu", "instance_group [{ kind: KIND_CPU count: 2 }]", "dgpu", [("KIND_CPU", [], 2)], None),
    (
        "cpu-gpus-removed",
        "instance_group [{ kind: KIND_CPU gpus: [0] }]",
        "dgpu",
        [("KIND_CPU", [], 1)],
        "KIND_CPU lists gpus",
    ),
    ("model-kept", "instance_group [{ kind: KIND_MODEL }]", "cpu", [("KIND_MODEL", [], 1)], "has kind KIND_MODEL"),
    (
        "two-groups",
        "instance_group [{ kind: KIND_GPU count: 2 }, { kind: KIND_CPU }]",
        "jetson",
        [("KIND_GPU", [0], 2), ("KIND_CPU", [], 1)],
        None,
    ),
    (
        "cpu-only-build",
        "instance_group [{ kind: KIND_GPU }]",
        "dgpu",
        [("KIND_CPU", [], 1)],
        "CPU-only build",
    ),
]


@pytest.mark.parametrize(
    ("body", "platform", "expected", "warning"), [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES]
)
def test_render_auto_places_instances_for_the_host(body, platform, expected, warning):
    gpu_build = warning != "CPU-only build"
    groups, warnings = groups_of(body, platform, gpu_build=gpu_build)
    assert [(g["kind"], g["gpus"], g["count"]) for g in groups] == expected
    if warning:
        assert any(warning in w for w in warnings), warnings
    else:
        assert warnings == []


def test_render_count_option_sets_every_group():
    groups, _ = groups_of("instance_group [{ kind: KIND_GPU count: 1 }, { kind: KIND_CPU count: 4 }]", "dgpu", count=3)
    assert [g["count"] for g in groups] == [3, 3]


def test_render_names_groups_as_triton_does():
    groups, _ = groups_of('instance_group [{ kind: KIND_CPU }, { name: "pre" kind: KIND_CPU }]', "cpu")
    assert [g["name"] for g in groups] == ["m_0", "pre"]
    # Without any group Triton adds one named after the model (policy keep leaves it so).
    assert [g["name"] for g in effective_instance_groups(cfg('backend: "python"'), CPU_PLAN, True)] == ["m"]


def test_render_places_gpu_instances_where_cc_model_filenames_has_a_plan():
    body = (
        'platform: "tensorrt_plan"\ninstance_group [{ kind: KIND_GPU }]\n'
        'cc_model_filenames [{ key: "8.6" value: "a.plan" }]'
    )
    groups, warnings = groups_of(body, "dgpu")
    assert [(g["kind"], g["gpus"]) for g in groups] == [("KIND_GPU", [0])]
    assert any("cc_model_filenames has no plan for the compute capability of gpus [1]" in w for w in warnings)
    # No plan for any GPU: nothing to choose from, so validation reports the gap instead.
    with pytest.raises(ModelConfigError, match=r"no cc_model_filenames entry for compute capability 8\.7"):
        render_text(body, "/repo/m/config.pbtxt", JETSON_PLAN, JETSON_HOST)


def test_render_leaves_ensembles_untouched():
    body = 'platform: "ensemble"\nensemble_scheduling { step [ { model_name: "a" model_version: -1 } ] }'
    config = cfg(body)
    rendered, warnings = render_for_host(config, DGPU_PLAN, DGPU_HOST, "auto")
    assert to_text(rendered) == to_text(config)
    assert warnings == []
    assert effective_instance_groups(rendered, DGPU_PLAN, True) == []


def test_render_keep_returns_the_config_unchanged():
    config = cfg("instance_group [{ kind: KIND_GPU gpus: [7] }]")
    rendered, warnings = render_for_host(config, CPU_PLAN, CPU_HOST, "keep")
    assert to_text(rendered) == to_text(config)
    assert warnings == []


def test_render_rejects_unknown_policy():
    with pytest.raises(ModelConfigError, match="instance policy 'fast'"):
        render_for_host(cfg(""), CPU_PLAN, CPU_HOST, "fast")


ACCEL = 'optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensorrt" } ] } }'
OPENVINO = 'optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }'


def test_render_drops_gpu_accelerator_on_cpu_plans_with_warning():
    rendered, warnings = render_for_host(cfg(f"instance_group [{{ kind: KIND_GPU }}]\n{ACCEL}"), CPU_PLAN, CPU_HOST)
    assert not rendered.HasField("optimization")
    assert any("dropped gpu_execution_accelerator (tensorrt)" in w for w in warnings)


def test_render_keeps_other_optimization_settings_when_dropping_accelerator():
    body = (
        "optimization { priority: PRIORITY_MAX execution_accelerators {"
        ' gpu_execution_accelerator [ { name: "tensorrt" } ] cpu_execution_accelerator [ { name: "openvino" } ] } }'
    )
    rendered, _ = render_for_host(cfg(body), CPU_PLAN, CPU_HOST)
    accelerators = rendered.optimization.execution_accelerators
    assert [a.name for a in accelerators.cpu_execution_accelerator] == ["openvino"]
    assert list(accelerators.gpu_execution_accelerator) == []
    assert rendered.optimization.priority == rendered.optimization.PRIORITY_MAX


# ---------------------------------------------------------------- validation (Triton's rules and wording)

VALIDATE_CASES = [
    # (id, body, platform, gpu_build, code, exact Triton message or fragment)
    (
        "gpu-no-gpus",
        "instance_group [{ kind: KIND_GPU }]",
        "cpu",
        True,
        "gpu_kind_no_gpu",
        "instance group m_0 of model m has kind KIND_GPU but no GPUs are available",
    ),
    (
        "gpu-cpu-build",
        "instance_group [{ kind: KIND_GPU }]",
        "dgpu",
        False,
        "gpu_kind_cpu_build",
        "instance group m_0 of model m has kind KIND_GPU but server does not support GPUs",
    ),
    (
        "invalid-gpu-id",
        'instance_group [{ name: "g" kind: KIND_GPU gpus: [0, 4] }]',
        "dgpu",
        True,
        "invalid_gpu_id",
        "instance group g of model m specifies invalid or unsupported gpu id 4. GPUs with at least the minimum "
        "required CUDA compute compatibility of 6.000000 are: 0, 1",
    ),
    (
        "cpu-with-gpus",
        "instance_group [{ kind: KIND_CPU gpus: [0] }]",
        "dgpu",
        True,
        "gpus_on_non_gpu_kind",
        "instance group m_0 of model m has kind KIND_CPU but specifies one or more GPUs",
    ),
    (
        "model-with-gpus",
        "instance_group [{ kind: KIND_MODEL gpus: [0] }]",
        "dgpu",
        True,
        "gpus_on_non_gpu_kind",
        "instance group m_0 of model m has kind KIND_MODEL but specifies one or more GPUs",
    ),
    (
        "gpu-accelerator-on-cpu",
        f"instance_group [{{ kind: KIND_CPU }}]\n{ACCEL}",
        "dgpu",
        True,
        "gpu_accelerator_on_cpu",
        "model m lists gpu_execution_accelerator ['tensorrt'] but none of its instance groups runs on a GPU",
    ),
    (
        "openvino-on-aarch64",
        f'backend: "onnxruntime"\n{OPENVINO}',
        "jetson",
        True,
        "unknown_accelerator",
        "unknown Execution Accelerator 'openvino' is requested",
    ),
    (
        "ort-unknown-gpu-accelerator",
        'backend: "onnxruntime"\ninstance_group [{ kind: KIND_GPU }]\n'
        'optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensort" } ] } }',
        "dgpu",
        True,
        "unknown_accelerator",
        "unknown Execution Accelerator 'tensort' is requested",
    ),
    (
        "cc-filename-missing",
        'platform: "tensorrt_plan"\ninstance_group [{ kind: KIND_GPU gpus: [1] }]\n'
        'cc_model_filenames [ { key: "8.6" value: "a.plan" } ]',
        "dgpu",
        True,
        "cc_model_filename_missing",
        "model m has no cc_model_filenames entry for compute capability 7.5 of gpu 1",
    ),
]


@pytest.mark.parametrize(
    ("body", "platform", "gpu_build", "code", "message"),
    [c[1:] for c in VALIDATE_CASES],
    ids=[c[0] for c in VALIDATE_CASES],
)
def test_validate_reports_triton_wording_and_a_fix(body, platform, gpu_build, code, message):
    plan, host = PLATFORMS[platform]
    problems = validate(cfg(body), plan, host, gpu_build)
    assert [p.code for p in problems] == [code]
    problem = problems[0]
    assert problem.severity == "error"
    assert problem.message.startswith(message)
    assert problem.found and problem.supported and problem.fix
    text = problem.text("/repo/m/config.pbtxt")
    assert text.startswith("/repo/m/config.pbtxt: ")
    assert ". Found: " in text and ". Supported: " in text and ". Fix: " in text


VALID_CASES = [
    ("gpu-on-dgpu", "instance_group [{ kind: KIND_GPU gpus: [0, 1] }]", "dgpu"),
    ("auto-without-gpus-on-cpu", "instance_group [{ kind: KIND_AUTO }]", "cpu"),
    (
        "openvino-on-x86",
        f'backend: "onnxruntime"\n{OPENVINO}',
        "cpu",
    ),
    (
        "cc-filename-present",
        'platform: "tensorrt_plan"\ninstance_group [{ kind: KIND_GPU }]\n'
        'cc_model_filenames [ { key: "8.6" value: "a.plan" }, { key: "7.5" value: "t4.plan" } ]',
        "dgpu",
    ),
    ("cc-filename-jetson", 'cc_model_filenames [ { key: "8.7" value: "orin.plan" } ]', "jetson"),
    ("ensemble", 'platform: "ensemble"', "cpu"),
]


@pytest.mark.parametrize(("body", "platform"), [c[1:] for c in VALID_CASES], ids=[c[0] for c in VALID_CASES])
def test_validate_accepts_configs_triton_would_load(body, platform):
    plan, host = PLATFORMS[platform]
    assert validate(cfg(body), plan, host) == []


def test_validate_uses_min_supported_compute_capability_in_message():
    plan = {**JETSON_PLAN, "runtime": {"gpu_build": True, "min_compute_capability": "5.3"}}
    (problem,) = validate(cfg("instance_group [{ kind: KIND_GPU gpus: [1] }]"), plan, JETSON_HOST)
    assert "compute compatibility of 5.300000 are: 0" in problem.message


def test_keep_policy_refuses_what_auto_fixes():
    body = f"instance_group [{{ kind: KIND_GPU }}]\n{ACCEL}"
    with pytest.raises(ModelConfigError) as err:
        render_text(body, "/repo/m/config.pbtxt", CPU_PLAN, CPU_HOST, policy="keep")
    assert [p.code for p in err.value.problems] == ["gpu_kind_no_gpu"]
    text, groups, _ = render_text(body, "/repo/m/config.pbtxt", CPU_PLAN, CPU_HOST, policy="auto")
    assert groups == [{"name": "m_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]
    assert "gpu_execution_accelerator" not in text


def test_keep_policy_returns_source_text_byte_for_byte():
    body = "# operator's comment\ninstance_group [{ kind: KIND_CPU }]\n"
    text, _, _ = render_text(body, "/repo/m/config.pbtxt", DGPU_PLAN, DGPU_HOST, policy="keep")
    assert text == body


# ---------------------------------------------------------------- golden renders of the detector example


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_detector_renders_match_golden_files(platform):
    plan, host = PLATFORMS[platform]
    text, _, _ = render_text(DETECTOR.read_text(), str(DETECTOR), plan, host)
    assert text == (GOLDEN / f"peoplenet.{platform}.pbtxt").read_text()


@pytest.mark.parametrize(
    ("platform", "groups", "accelerator"),
    [
        ("cpu", [{"name": "peoplenet_0", "kind": "KIND_CPU", "count": 1, "gpus": []}], False),
        ("dgpu", [{"name": "peoplenet_0", "kind": "KIND_GPU", "count": 1, "gpus": [0, 1]}], True),
        ("jetson", [{"name": "peoplenet_0", "kind": "KIND_GPU", "count": 1, "gpus": [0]}], True),
    ],
)
def test_detector_instance_groups_per_platform(platform, groups, accelerator):
    plan, host = PLATFORMS[platform]
    text, rendered_groups, _ = render_text(DETECTOR.read_text(), str(DETECTOR), plan, host)
    assert rendered_groups == groups
    assert ('name: "tensorrt"' in text) is accelerator


# ---------------------------------------------------------------- repository rendering


def write_model(root: Path, name: str, body: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(body)


def test_render_repository_renders_every_model_and_reports_changes(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    write_model(src, "a", 'backend: "python"\ninstance_group [{ kind: KIND_GPU }]')
    write_model(src, "b", 'backend: "onnxruntime"')
    (src / "no_config").mkdir()
    rendered, warnings = render_repository(str(src), str(dest), CPU_PLAN, CPU_HOST, models={"b": {"count": 4}})
    assert [r.name for r in rendered] == ["a", "b"]
    assert all(r.changed and r.before is None for r in rendered)
    # The rendered file has an explicit (unnamed) group, which Triton names <model>_0.
    assert rendered[1].instance_groups == [{"name": "b_0", "kind": "KIND_CPU", "count": 4, "gpus": []}]
    assert any("no_config: no config.pbtxt" in w for w in warnings)
    for model in rendered:
        Path(model.dest).parent.mkdir(parents=True)
        Path(model.dest).write_text(model.text)
    again, _ = render_repository(str(src), str(dest), CPU_PLAN, CPU_HOST, models={"b": {"count": 4}})
    assert [r.changed for r in again] == [False, False]


def test_render_repository_reports_all_broken_models_at_once(tmp_path):
    src = tmp_path / "src"
    write_model(src, "bad_syntax", "instance_group [")
    write_model(src, "bad_gpu", 'backend: "python"\ninstance_group [{ kind: KIND_GPU }]')
    write_model(src, "good", 'backend: "python"\ninstance_group [{ kind: KIND_CPU }]')
    with pytest.raises(ModelConfigError) as err:
        render_repository(str(src), str(tmp_path / "dest"), CPU_PLAN, CPU_HOST, policy="keep")
    message = str(err.value)
    assert "bad_syntax/config.pbtxt line 1 column 17" in message
    assert "instance group bad_gpu_0 of model bad_gpu has kind KIND_GPU but no GPUs are available" in message
    assert "good" not in message.replace("bad_", "")


def test_render_repository_needs_a_directory(tmp_path):
    with pytest.raises(ModelConfigError, match="is not a directory"):
        render_repository(str(tmp_path / "missing"), str(tmp_path / "dest"), CPU_PLAN, CPU_HOST)


def test_the_schema_loads_without_grpc_and_is_shared_with_tritonclient():
    from ansible.module_utils import triton_model_config

    assert triton_model_config.IMPORT_ERROR is None
    import tritonclient.grpc

    assert tritonclient.grpc.model_config_pb2 is triton_model_config.model_config_pb2
    assert triton_model_config.model_config_pb2.ModelConfig.DESCRIPTOR.full_name == "inference.ModelConfig"


# ---------------------------------------------------------------- Triton's rules the rendering follows (issue 11 §4)


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (
            "instance_group [{ kind: KIND_GPU gpus: [0] }]",
            "instance group m_0 of model m specifies invalid or unsupported gpu id 0. GPUs with at least the minimum "
            "required CUDA compute compatibility of 0.000000 are: ",
        ),
        (
            "instance_group [{ kind: KIND_GPU }]",
            "instance group m_0 of model m has kind KIND_GPU but no GPUs are available",
        ),
    ],
    ids=["listed-ids", "no-ids"],
)
def test_keep_on_a_host_without_gpus_words_listed_ids_as_triton_does(group, message):
    (problem,) = validate(cfg(f'backend: "python"\n{group}'), CPU_PLAN, CPU_HOST)
    assert problem.message == message
    assert problem.code == ("invalid_gpu_id" if "gpus" in group else "gpu_kind_no_gpu")


ORT_CPU_ACCEL = f'backend: "onnxruntime"\ninstance_group [{{ kind: KIND_CPU count: 2 }}]\n{ACCEL}'


@pytest.mark.parametrize("platform", ["dgpu", "jetson"])
def test_auto_moves_a_cpu_group_with_a_gpu_accelerator_onto_the_plans_gpus(platform):
    plan, host = PLATFORMS[platform]
    rendered, warnings = render_for_host(cfg(ORT_CPU_ACCEL), plan, host, "auto")
    groups = effective_instance_groups(rendered, plan, True)
    assert [(g["kind"], g["gpus"], g["count"]) for g in groups] == [("KIND_GPU", plan["gpu_ids"], 2)]
    assert [a.name for a in rendered.optimization.execution_accelerators.gpu_execution_accelerator] == ["tensorrt"]
    assert any("moved to KIND_GPU" in w and "gpu_execution_accelerator" in w for w in warnings)
    assert validate(rendered, plan, host) == []


def test_auto_keeps_a_plain_cpu_group_on_the_cpu_of_a_gpu_host():
    rendered, warnings = render_for_host(
        cfg('backend: "onnxruntime"\ninstance_group [{ kind: KIND_CPU }]'), DGPU_PLAN, DGPU_HOST
    )
    assert [g["kind"] for g in effective_instance_groups(rendered, DGPU_PLAN, True)] == ["KIND_CPU"]
    assert warnings == []


def test_auto_keeps_cpu_groups_beside_a_gpu_group_that_uses_the_accelerator():
    body = f'backend: "onnxruntime"\ninstance_group [{{ kind: KIND_GPU }}, {{ kind: KIND_CPU }}]\n{ACCEL}'
    rendered, _ = render_for_host(cfg(body), DGPU_PLAN, DGPU_HOST)
    assert [g["kind"] for g in effective_instance_groups(rendered, DGPU_PLAN, True)] == ["KIND_GPU", "KIND_CPU"]


def test_cpu_group_with_accelerator_on_a_cpu_plan_drops_it_and_keep_refuses_it():
    rendered, warnings = render_for_host(cfg(ORT_CPU_ACCEL), CPU_PLAN, CPU_HOST, "auto")
    assert not rendered.HasField("optimization")
    assert any("dropped gpu_execution_accelerator (tensorrt)" in w for w in warnings)
    with pytest.raises(ModelConfigError) as err:
        render_text(ORT_CPU_ACCEL, "/repo/m/config.pbtxt", DGPU_PLAN, DGPU_HOST, policy="keep")
    assert [p.code for p in err.value.problems] == ["gpu_accelerator_on_cpu"]


OPENVINO_MODEL = 'backend: "openvino"\ninstance_group [{ kind: KIND_GPU }]'


def test_openvino_runs_on_the_cpu_under_auto_and_is_refused_on_a_gpu_under_keep():
    rendered, warnings = render_for_host(cfg(OPENVINO_MODEL), DGPU_PLAN, DGPU_HOST, "auto")
    assert [g["kind"] for g in effective_instance_groups(rendered, DGPU_PLAN, True)] == ["KIND_CPU"]
    assert any("runs only on the CPU" in w for w in warnings)
    (problem,) = validate(cfg(OPENVINO_MODEL), DGPU_PLAN, DGPU_HOST)
    assert problem.message == "unable to load model 'm', Triton openVINO backend supports only CPU device"


def test_openvino_without_instance_groups_gets_its_preferred_cpu_group():
    groups = effective_instance_groups(cfg('backend: "openvino"'), DGPU_PLAN, True)
    assert groups == [{"name": "m", "kind": "KIND_CPU", "count": 1, "gpus": []}]


@pytest.mark.parametrize(("count", "expected"), [(0, 2), (-1, 2)])
def test_a_count_below_one_is_tritons_default_with_a_warning(count, expected):
    body = f'backend: "onnxruntime"\ninstance_group [{{ kind: KIND_CPU count: {count} }}]'
    _, groups, warnings = render_text(body, "/repo/m/config.pbtxt", CPU_PLAN, CPU_HOST, policy="keep")
    assert groups[0]["count"] == expected
    assert any("Triton uses its default count" in w for w in warnings) is (count < 0)


JETPACK7_HOST = {
    "platform": "jetson",
    "arch": "aarch64",
    "gpus": [{"index": 0, "name": "NVIDIA Thor", "compute_capability": None, "integrated": True}],
    "igpu": {"name": "Thor", "compute_capability": "11.0"},
}


def test_the_igpus_compute_capability_stands_in_where_nvml_has_none():
    from ansible.module_utils.triton_host import gpu_compute_capability

    assert gpu_compute_capability(JETPACK7_HOST, 0) == "11.0"
    assert gpu_compute_capability(JETSON_HOST, 0) == "8.7"
    assert gpu_compute_capability(DGPU_HOST, 1) == "7.5"
    assert gpu_compute_capability(DGPU_HOST, 5) is None
    body = 'platform: "tensorrt_plan"\ncc_model_filenames [ { key: "8.7" value: "orin.plan" } ]'
    (problem,) = validate(cfg(body), JETSON_PLAN, JETPACK7_HOST)
    assert problem.message == "model m has no cc_model_filenames entry for compute capability 11.0 of gpu 0"
