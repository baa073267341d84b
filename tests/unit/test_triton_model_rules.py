# SPDX-License-Identifier: Apache-2.0
"""Triton's model-configuration rules, one case of our own per rule, through the repository check.

Each case is a small repository; the expected text is Triton's own wording (core
src/model_config_utils.cc, src/backend_model.cc, src/ensemble_scheduler/ensemble_utils.cc,
src/model_repository_manager/*, the backends) as docs/model-config-rules.md lists it, checked
against a real tritonserver 2.51.0 where this machine can load the models.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from ansible.module_utils.triton_model_repository import RenderSettings, check_repository
from ansible.module_utils.triton_model_rules import RULES, rule_codes
from ansible.module_utils.triton_runtime import runtime_section

DOCS = Path(__file__).resolve().parents[2] / "docs" / "model-config-rules.md"
PLAN = {
    "release": "24.10",
    "platform": "dgpu",
    "arch": "x86_64",
    "enable_gpu": True,
    "instance_kind": "KIND_GPU",
    "gpu_ids": [0, 1],
    "min_compute_capability": "6.0",
    "runtime": runtime_section("dgpu", True, [0, 1], [0, 1], True, "6.0", None),
}
HOST = {
    "platform": "dgpu",
    "arch": "x86_64",
    "gpus": [{"index": 0, "compute_capability": "8.0"}, {"index": 1, "compute_capability": "8.0"}],
    "igpu": None,
}
BACKENDS = ("identity", "onnxruntime", "openvino", "python")
IO = 'input [{name: "IN" data_type: TYPE_FP32 dims: [4]}]\noutput [{name: "OUT" data_type: TYPE_FP32 dims: [4]}]\n'
CPU = "instance_group [{kind: KIND_CPU}]\n"
TWO_INPUTS = 'input [{name: "A" data_type: TYPE_FP32 dims: [4]}, {name: "B" data_type: TYPE_FP32 dims: [4]}]\n'
ACCELERATOR = 'optimization { execution_accelerators { gpu_execution_accelerator [{name: "tensorrt"}] } }\n'


def py(extra: str = "", mbs: int = 0, io: str = IO, group: str = CPU) -> str:
    return f'backend: "python"\nmax_batch_size: {mbs}\n{io}{group}{extra}'


def model(name: str, config: str | None, files: tuple[str, ...] = ("1/model.py",)) -> dict[str, str]:
    layout = {f"{name}/{f}": "" for f in files}
    if config is not None:
        layout[f"{name}/config.pbtxt"] = config
    return layout


def step(name: str, inputs: dict[str, str], outputs: dict[str, str], version: int = -1) -> str:
    maps = "".join(f'input_map {{key: "{k}" value: "{v}"}} ' for k, v in inputs.items())
    maps += "".join(f'output_map {{key: "{k}" value: "{v}"}} ' for k, v in outputs.items())
    return f'{{model_name: "{name}" model_version: {version} {maps}}}'


def ens(steps: list[str], io: str = IO, mbs: int = 0, extra: str = "") -> str:
    return (
        f'platform: "ensemble"\nmax_batch_size: {mbs}\n{io}ensemble_scheduling {{ step [{", ".join(steps)}] }}\n{extra}'
    )


IDENTITY = step("py", {"IN": "IN"}, {"OUT": "OUT"})
ENSEMBLE_OK = {**model("py", py()), **model("e", ens([IDENTITY]), ("1/",))}


def control(*controls: str) -> str:
    return py("sequence_batching { control_input [" + ", ".join(controls) + "] }\n", mbs=4)


def tensor(name: str, kind: str, values: str = "int32_false_true: [0, 1]") -> str:
    return f'{{name: "{name}" control [{{kind: {kind} {values}}}]}}'


# (code, repository layout {path: text; a path ending in "/" is a directory}, Triton's words, settings)
CASES: list[tuple[str, dict[str, str], str, dict]] = [
    ("config_missing", model("m", None), "failed to open text file for read m/config.pbtxt: No such file", {}),
    ("config_syntax", model("m", "max_batch_size: [\n"), "line 1 column 17", {}),
    (
        "backend_undetermined",
        model("m", "max_batch_size: 0\n", ("1/notes.txt",)),
        "Invalid model name: Could not determine backend for model 'm' with no backend in model configuration. "
        "Expected model name of the form 'model.<backend_name>'.",
        {},
    ),
    ("platform_unknown", model("m", 'platform: "tensorflo"\n'), "unexpected platform type 'tensorflo' for m", {}),
    (
        "ensemble_with_backend",
        model("m", 'platform: "ensemble"\nbackend: "python"\n'),
        "Ensemble model 'm' must have platform type 'ensemble' and empty backend type",
        {},
    ),
    (
        "platform_backend_mismatch",
        model("m", 'platform: "onnxruntime_onnx"\nbackend: "pytorch"\n'),
        "unexpected 'platform' and 'backend' pair, got:onnxruntime_onnx, pytorch",
        {},
    ),
    ("max_batch_size_negative", model("m", py(mbs=-1)), "'max_batch_size' must be non-negative value for m", {}),
    (
        "preferred_batch_size_not_positive",
        model("m", py("dynamic_batching { preferred_batch_size: [0] }\n", mbs=8)),
        "dynamic batching preferred size must be positive for m",
        {},
    ),
    (
        "preferred_batch_size_too_large",
        model("m", py("dynamic_batching { preferred_batch_size: [16] }\n", mbs=8)),
        "dynamic batching preferred size must be <= max batch size for m",
        {},
    ),
    (
        "default_priority_level_range",
        model("m", py("dynamic_batching { priority_levels: 3 default_priority_level: 4 }\n", mbs=8)),
        "default priority level must be in range [1, 3] for m",
        {},
    ),
    (
        "priority_queue_policy_level_range",
        model(
            "m",
            py(
                "dynamic_batching { priority_levels: 2 default_priority_level: 1 priority_queue_policy { key: 3 } }\n",
                8,
            ),
        ),
        "priority queue policy must have priority level in range [1, 2] for m",
        {},
    ),
    (
        "preserve_ordering_priority_levels",
        model(
            "m", py("dynamic_batching { preserve_ordering: true priority_levels: 2 default_priority_level: 1 }\n", 8)
        ),
        "Only one priority level is allowed when 'preserve_ordering' is true for m",
        {},
    ),
    (
        "preserve_ordering_delay",
        model(
            "m",
            py(
                "dynamic_batching { preserve_ordering: true default_queue_policy "
                "{ timeout_action: DELAY default_timeout_microseconds: 100 } }\n",
                8,
            ),
        ),
        "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for m",
        {},
    ),
    (
        "sequence_response_cache",
        model("m", py("sequence_batching {}\nresponse_cache { enable: true }\n", 4)),
        "Response Cache does not currently support model m with sequence batching scheduler.",
        {},
    ),
    (
        "control_tensor_unnamed",
        model("m", control("{control [{kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1]}]}")),
        "sequence batching control tensor must have a name for m",
        {},
    ),
    (
        "control_tensor_multiple_kinds",
        model(
            "m",
            control(tensor("S", "CONTROL_SEQUENCE_START"), tensor("S", "CONTROL_SEQUENCE_END")),
        ),
        "sequence batching control tensor 'S' is specified for multiple control kinds for m",
        {},
    ),
    (
        "control_kind_multiple",
        model("m", control(tensor("A", "CONTROL_SEQUENCE_END"), tensor("B", "CONTROL_SEQUENCE_END"))),
        "sequence batching specifies multiple CONTROL_SEQUENCE_END tensors for m",
        {},
    ),
    (
        "control_value_missing",
        model("m", control(tensor("R", "CONTROL_SEQUENCE_READY", ""))),
        "sequence batching must specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' for "
        "CONTROL_SEQUENCE_READY for m",
        {},
    ),
    (
        "control_value_ambiguous",
        model("m", control(tensor("S", "CONTROL_SEQUENCE_START", "int32_false_true: [0, 1] fp32_false_true: [0, 1]"))),
        "sequence batching specifies more than one from 'int32_false_true', 'fp32_false_true' and 'bool_false_true' "
        "for CONTROL_SEQUENCE_START for m",
        {},
    ),
    (
        "control_value_count",
        model("m", control(tensor("S", "CONTROL_SEQUENCE_START", "int32_false_true: [1]"))),
        "sequence batching control 'int32_false_true' must have exactly 2 entries for CONTROL_SEQUENCE_START for m",
        {},
    ),
    (
        "control_corrid_values",
        model("m", control(tensor("C", "CONTROL_SEQUENCE_CORRID"))),
        "sequence batching must not specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' for "
        "CONTROL_SEQUENCE_CORRID for m",
        {},
    ),
    (
        "control_corrid_data_type",
        model("m", control(tensor("C", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_FP32"))),
        "unexpected data type for control CONTROL_SEQUENCE_CORRID for m. Allowed data types are TYPE_UINT64, "
        "TYPE_INT64, TYPE_UINT32, TYPE_INT32 and TYPE_STRING",
        {},
    ),
    (
        "sequence_preferred_batch_size",
        model("m", py("sequence_batching { oldest { preferred_batch_size: [8] } }\n", 4)),
        "sequence batching preferred batch size must be <= max batch size for m",
        {},
    ),
    (
        "sequence_slot_utilization",
        model("m", py("sequence_batching { direct { minimum_slot_utilization: 2.0 } }\n", 4)),
        "sequence batching minimum slot utilization must be in range (0.0, 1.0] for m",
        {},
    ),
    (
        "ensemble_scheduling_not_ensemble",
        model("m", py("ensemble_scheduling { step [" + IDENTITY + "] }\n")),
        "ensemble scheduling cannot be set for model 'm' whose platform is not ensemble",
        {},
    ),
    (
        "ensemble_instance_group",
        {**model("py", py()), **model("e", ens([IDENTITY], extra=CPU), ("1/",))},
        "instance group should not be specified for ensemble 'e'",
        {},
    ),
    (
        "ensemble_optimization",
        {**model("py", py()), **model("e", ens([IDENTITY], extra="optimization { priority: PRIORITY_MAX }\n"))},
        "optimization should not be specified for ensemble 'e'",
        {},
    ),
    (
        "ensemble_model_warmup",
        {**model("py", py()), **model("e", ens([IDENTITY], extra='model_warmup [{name: "w" batch_size: 1}]\n'))},
        "model_warmup can not be specified for ensemble 'e'",
        {},
    ),
    (
        "ensemble_no_step",
        model("e", f'platform: "ensemble"\n{IO}ensemble_scheduling {{}}\n'),
        "must specify 'step' for ensemble 'e'",
        {},
    ),
    (
        "ensemble_step_model_name",
        model("e", ens(['{input_map {key: "IN" value: "IN"} output_map {key: "OUT" value: "OUT"}}'])),
        "must specify 'model_name' in step 0 of ensemble 'e'",
        {},
    ),
    (
        "ensemble_step_input_map",
        model("e", ens(['{model_name: "py" output_map {key: "OUT" value: "OUT"}}'])),
        "must specify 'input_map' in step 0 of ensemble 'e'",
        {},
    ),
    (
        "ensemble_step_output_map",
        model("e", ens(['{model_name: "py" input_map {key: "IN" value: "IN"}}'])),
        "must specify 'output_map' in step 0 of ensemble 'e'",
        {},
    ),
    (
        "ensemble_tensor_output_twice",
        model("e", ens([step("py", {"IN": "IN"}, {"OUT": "OUT"}), step("py", {"IN": "IN"}, {"OUT": "OUT"})])),
        "ensemble tensor 'OUT' can appear in an output map only once for ensemble 'e' step 1",
        {},
    ),
    (
        "ensemble_input_unused",
        model(
            "e",
            ens(
                [IDENTITY],
                io='input [{name: "IN" data_type: TYPE_FP32 dims: [4]}, {name: "X" data_type: TYPE_FP32 dims: [4]}]\n'
                'output [{name: "OUT" data_type: TYPE_FP32 dims: [4]}]\n',
            ),
        ),
        "ensemble input 'X' for ensemble e' is not used",
        {},
    ),
    (
        "ensemble_output_unused",
        model(
            "e",
            ens(
                [IDENTITY],
                io='input [{name: "IN" data_type: TYPE_FP32 dims: [4]}]\noutput [{name: "OUT" data_type: TYPE_FP32 '
                'dims: [4]}, {name: "Y" data_type: TYPE_FP32 dims: [4]}]\n',
            ),
        ),
        "ensemble output 'Y' for ensemble e' is not used",
        {},
    ),
    (
        "ensemble_output_not_written",
        model("e", ens([step("py", {"IN": "IN"}, {"OUT": "X"}), step("py2", {"A": "X", "B": "T"}, {"OUT": "OUT"})])),
        "output 'OUT' for ensemble 'e' is not written: at least one of its depending tensors, 'T', is not connected",
        {},
    ),
    (
        "ensemble_tensor_unused",
        model("e", ens([IDENTITY, step("py", {"IN": "IN"}, {"OUT": "SPARE"})])),
        "ensemble tensor 'SPARE' is unused in ensemble 'e'",
        {},
    ),
    (
        "ensemble_scheduling_missing",
        model("e", f'platform: "ensemble"\n{IO}'),
        "ensemble scheduling must be set for ensemble e whose platform is ensemble",
        {},
    ),
    (
        "decoupled_response_cache",
        model("m", py("model_transaction_policy { decoupled: true }\nresponse_cache { enable: true }\n")),
        "Response Cache does not currently support model m with 'decoupled' transaction policy.",
        {},
    ),
    (
        "io_name_missing",
        model("m", py(io="input [{data_type: TYPE_FP32 dims: [4]}]\n")),
        "model input must specify 'name' for m",
        {},
    ),
    (
        "io_data_type_missing",
        model("m", py(io='input [{name: "IN" dims: [4]}]\n')),
        "model input 'IN' must specify 'data_type' for m",
        {},
    ),
    (
        "io_dims_missing",
        model("m", py(io='input [{name: "IN" data_type: TYPE_FP32}]\n')),
        "model input 'IN' must specify 'dims' for m",
        {},
    ),
    (
        "io_reshape_empty_nobatch",
        model("m", py(io='input [{name: "IN" data_type: TYPE_FP32 dims: [1] reshape {shape: []}}]\n')),
        "model input 'IN' cannot have empty reshape for non-batching model as scalar tensors are not supported for m",
        {},
    ),
    (
        "io_dims_invalid",
        model("m", py(io='output [{name: "OUT" data_type: TYPE_FP32 dims: [0]}]\n')),
        "model output 'OUT' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for m",
        {},
    ),
    (
        "io_reshape_invalid",
        model("m", py(io='input [{name: "IN" data_type: TYPE_FP32 dims: [4] reshape {shape: [0]}}]\n')),
        "model input 'IN' reshape dimensions must be integer >= 1, or -1 to indicate a variable-size dimension for m",
        {},
    ),
    (
        "io_reshape_size",
        model("m", py(io='input [{name: "IN" data_type: TYPE_FP32 dims: [2, 3] reshape {shape: [5]}}]\n')),
        "model input 'IN' has different size for dims and reshape for m",
        {},
    ),
    (
        "io_reshape_variable_count",
        model("m", py(io='input [{name: "IN" data_type: TYPE_FP32 dims: [-1, 4] reshape {shape: [-1, 2, -1]}}]\n')),
        "model input 'IN' has different number of variable-size dimensions for dims and reshape for m",
        {},
    ),
    (
        "io_format_dims",
        model("m", py(io='input [{name: "IN" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [3, 4]}]\n')),
        "model input NHWC/NCHW require 3 dims for m",
        {},
    ),
    (
        "io_shape_tensor_platform",
        model("m", py(io='input [{name: "IN" data_type: TYPE_INT32 dims: [2] is_shape_tensor: true}]\n')),
        "shape tensors are only supported for TensorRT platform for m",
        {},
    ),
    (
        "io_non_linear_platform",
        model("m", py(io='input [{name: "IN" data_type: TYPE_FP32 dims: [3, 4, 4] is_non_linear_format_io: true}]\n')),
        "Non-linear IO format is only supported for the TensorRT platform for m",
        {},
    ),
    (
        "io_non_linear_dims",
        model(
            "m",
            'platform: "tensorrt_plan"\nmax_batch_size: 0\n'
            'input [{name: "IN" data_type: TYPE_FP32 dims: [4] is_non_linear_format_io: true}]\n',
            ("1/model.plan",),
        ),
        "Non-linear IO format input requires 3 dims for m",
        {"backends": ("tensorrt",)},
    ),
    (
        "batch_input_source_count",
        model("m", py('batch_input [{kind: BATCH_ELEMENT_COUNT target_name: "B" data_type: TYPE_INT32}]\n', 4)),
        "batch input kind 'BATCH_ELEMENT_COUNT' expects 1 source input, got 0 for m",
        {},
    ),
    (
        "batch_input_data_type",
        model(
            "m",
            py(
                'batch_input [{kind: BATCH_ELEMENT_COUNT target_name: "B" data_type: TYPE_INT8 source_input: "IN"}]\n',
                4,
            ),
        ),
        "batch input data type must be TYPE_INT32 or TYPE_FP32 for m",
        {},
    ),
    (
        "batch_input_unknown_source",
        model(
            "m",
            py(
                'batch_input [{kind: BATCH_ELEMENT_COUNT target_name: "B" data_type: TYPE_INT32 source_input: "X"}]\n',
                4,
            ),
        ),
        "unknown source input name 'X' for m",
        {},
    ),
    (
        "batch_output_source_count",
        model("m", py('batch_output [{kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "OUT"}]\n', 4)),
        "batch output kind 'BATCH_SCATTER_WITH_INPUT_SHAPE' expects 1 source input, got 0 for m",
        {},
    ),
    (
        "batch_output_unknown_source",
        model(
            "m", py('batch_output [{kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "OUT" source_input: "X"}]\n', 4)
        ),
        "unknown source input name 'X' for m",
        {},
    ),
    (
        "batch_output_unknown_target",
        model(
            "m", py('batch_output [{kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "Z" source_input: "IN"}]\n', 4)
        ),
        "unknown target output name 'Z' for m",
        {},
    ),
    (
        "batch_output_duplicate_target",
        model(
            "m",
            py(
                "batch_output [{kind: BATCH_SCATTER_WITH_INPUT_SHAPE "
                'target_name: ["OUT", "OUT"] source_input: "IN"}]\n',
                4,
            ),
        ),
        "target output name 'OUT' can only be specified once for m",
        {},
    ),
    (
        "directory_name_mismatch",
        model("m", 'name: "../other"\n' + py()),
        "unexpected directory name 'm' for model '../other', directory name must equal model name",
        {},
    ),
    (
        "ensemble_step_unavailable",
        model("e", ens([step("absent", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",)),
        "ensemble e contains models that are not available or ambiguous: absent",
        {},
    ),
    (
        "ensemble_circular",
        {
            **model("a", ens([step("b", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",)),
            **model("b", ens([step("a", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",)),
        },
        "circular dependency between ensembles: a -> ... -> b -> a",
        {},
    ),
    (
        "no_version_available",
        model("m", py(), ("model.py",)),
        "at least one version must be available under the version policy of model 'm'",
        {},
    ),
    (
        "backend_not_found",
        model("m", 'backend: "onnxruntime"\nmax_batch_size: 0\n' + IO, ("1/model.onnx",)),
        "unable to find backend library for backend 'onnxruntime', try specifying runtime on the model configuration.",
        {"backends": ("python",)},
    ),
    (
        "runtime_not_found",
        model("m", py('runtime: "__invalid_runtime__"\n')),
        "unable to find backend library '__invalid_runtime__' for model 'm', searched:",
        {},
    ),
    (
        "runtime_escape",
        model("m", py('runtime: "../lib/libtriton_python.so"\n'), ("1/model.py", "lib/libtriton_python.so")),
        "backend library name '../lib/libtriton_python.so' escapes backend directory 'm/1', for model 'm', check "
        "model config runtime field",
        {},
    ),
    (
        "python_based_backend_not_found",
        model("m", py('runtime: "model.py"\n')),
        "unable to find Python backend based backend library 'model.py' for model 'm', searched: "
        "'backends/python/model.py'",
        {},
    ),
    (
        "cpu_only_backend_gpu_instance",
        model(
            "m",
            'backend: "openvino"\nmax_batch_size: 0\n' + IO + "instance_group [{kind: KIND_GPU}]\n",
            ("1/model.xml", "1/model.bin"),
        ),
        "unable to load model 'm', Triton openVINO backend supports only CPU device",
        {},
    ),
    ("model_file_missing", model("m", py(), ("1/README",)), "Python model file not found in 'm/1/model.py'", {}),
    (
        "gpu_kind_cpu_build",
        model("m", py(group="instance_group [{kind: KIND_GPU}]\n")),
        "instance group m_0 of model m has kind KIND_GPU but server does not support GPUs",
        {"gpu_build": False},
    ),
    (
        "gpu_kind_no_gpu",
        model("m", py(group="instance_group [{kind: KIND_GPU}]\n")),
        "instance group m_0 of model m has kind KIND_GPU but no GPUs are available",
        {
            "plan": {
                "enable_gpu": False,
                "gpu_ids": [],
                "instance_kind": "KIND_CPU",
                "runtime": runtime_section("dgpu", False, [], [0, 1], True, "6.0", None),
            }
        },
    ),
    (
        "invalid_gpu_id",
        model("m", py(group="instance_group [{kind: KIND_GPU gpus: [42]}]\n")),
        "instance group m_0 of model m specifies invalid or unsupported gpu id 42. GPUs with at least the minimum "
        "required CUDA compute compatibility of 6.000000 are: 0, 1",
        {},
    ),
    (
        "gpus_on_non_gpu_kind",
        model("m", py(group="instance_group [{kind: KIND_CPU gpus: [0]}]\n")),
        "instance group m_0 of model m has kind KIND_CPU but specifies one or more GPUs",
        {},
    ),
    (
        "gpu_accelerator_on_cpu",
        model(
            "m",
            'backend: "onnxruntime"\nmax_batch_size: 0\n' + IO + CPU + ACCELERATOR,
            ("1/model.onnx",),
        ),
        "model m lists gpu_execution_accelerator ['tensorrt'] but none of its instance groups runs on a GPU",
        {},
    ),
    (
        "unknown_accelerator",
        model(
            "m",
            'backend: "onnxruntime"\nmax_batch_size: 0\n'
            + IO
            + "instance_group [{kind: KIND_GPU}]\n"
            + ACCELERATOR.replace("tensorrt", "tensort"),
            ("1/model.onnx",),
        ),
        "unknown Execution Accelerator 'tensort' is requested",
        {},
    ),
    (
        "cc_model_filename_missing",
        model(
            "m",
            'platform: "tensorrt_plan"\nmax_batch_size: 0\n' + IO + "instance_group [{kind: KIND_GPU}]\n"
            'cc_model_filenames [{key: "8.6" value: "a.plan"}]\n',
            ("1/a.plan",),
        ),
        "model m has no cc_model_filenames entry for compute capability 8.0 of gpu 0",
        {"backends": ("tensorrt",)},
    ),
    (
        "ensemble_step_invalid",
        {
            **model("py", py()),
            **model("inner", ens([step("py", {"IN": "IN"}, {"OUT": "OUT"}, version=7)]), ("1/",)),
            **model("outer", ens([step("inner", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",)),
        },
        "ensemble 'outer' depends on 'inner' which is not valid. Model 'inner' failed with error: ensemble 'inner' "
        "depends on 'py' whose required version 7 is not loaded.",
        {},
    ),
    (
        "ensemble_step_not_loaded",
        {**model("py", py(), ("1/README",)), **model("e", ens([IDENTITY]), ("1/",))},
        "ensemble 'e' depends on 'py' which has no loaded version. Model 'py' loading failed with error: version 1 is "
        "at UNAVAILABLE state: Python model file not found in 'py/1/model.py'",
        {},
    ),
    (
        "ensemble_required_version",
        {**model("py", py()), **model("e", ens([step("py", {"IN": "IN"}, {"OUT": "OUT"}, version=2)]), ("1/",))},
        "ensemble 'e' depends on 'py' whose required version 2 is not loaded.",
        {},
    ),
    (
        "ensemble_batch_size",
        {**model("py", py(mbs=2)), **model("e", ens([IDENTITY], mbs=4), ("1/",))},
        "ensemble e allows maximum batch size 4, but it contains model py which only allows maximum batch size to be 2",
        {},
    ),
    (
        "ensemble_map_unknown_input",
        {**model("py", py()), **model("e", ens([step("py", {"IN": "IN", "NOPE": "IN"}, {"OUT": "OUT"})]), ("1/",))},
        "in ensemble e, ensemble tensor IN is mapping to non-existing input NOPE in model py",
        {},
    ),
    (
        "ensemble_tensor_inconsistent",
        {
            **model("py", py()),
            **model(
                "e",
                ens(
                    [IDENTITY],
                    io='input [{name: "IN" data_type: TYPE_INT32 dims: [4]}]\n'
                    'output [{name: "OUT" data_type: TYPE_FP32 dims: [4]}]\n',
                ),
                ("1/",),
            ),
        },
        "in ensemble e, ensemble tensor IN: inconsistent data type: TYPE_INT32 is inferred from model e while "
        "TYPE_FP32 is inferred from model py",
        {},
    ),
    (
        "ensemble_input_unmapped",
        {
            **model(
                "py2",
                py(io=TWO_INPUTS + 'output [{name: "OUT" data_type: TYPE_FP32 dims: [4]}]\n'),
            ),
            **model("e", ens([step("py2", {"A": "IN"}, {"OUT": "OUT"})]), ("1/",)),
        },
        "in ensemble e, input B in model py2 is not mapped to any ensemble tensors",
        {},
    ),
    (
        "ensemble_map_unknown_output",
        {
            **model("py", py()),
            **model(
                "e",
                ens(
                    [step("py", {"IN": "IN"}, {"OUT": "OUT", "NOPE": "X"})],
                    io='input [{name: "IN" data_type: TYPE_FP32 dims: [4]}]\noutput [{name: "OUT" data_type: '
                    'TYPE_FP32 dims: [4]}, {name: "X" data_type: TYPE_FP32 dims: [4]}]\n',
                ),
                ("1/",),
            ),
        },
        "in ensemble e, ensemble tensor X is mapped from non-existing output NOPE in model py",
        {},
    ),
    (
        "ensemble_outputs_same_tensor",
        {
            **model(
                "py2",
                py(
                    io=IO.replace(
                        'output [{name: "OUT"', 'output [{name: "OUT" data_type: TYPE_FP32 dims: [4]}, {name: "OUT"'
                    )
                ),
            ),
            **model("e", ens([step("py2", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",)),
        },
        "in ensemble e, multiple outputs in model py2 are mapped to the same ensemble tensor OUT",
        {},
    ),
    (
        "ensemble_decoupled_branching",
        {
            **model("dec", py("model_transaction_policy { decoupled: true }\n")),
            **model(
                "join",
                py(io=TWO_INPUTS + 'output [{name: "OUT" data_type: TYPE_FP32 dims: [4]}]\n'),
            ),
            **model(
                "e",
                ens(
                    [
                        step("dec", {"IN": "IN"}, {"OUT": "T1"}),
                        step("dec", {"IN": "IN"}, {"OUT": "T2"}),
                        step("join", {"A": "T1", "B": "T2"}, {"OUT": "T3"}),
                        step("dec", {"IN": "T3"}, {"OUT": "OUT"}),
                    ]
                ),
                ("1/",),
            ),
        },
        "in ensemble e, step of model 'join' receives inputs originated from different decoupled models",
        {},
    ),
    ("repository_empty", {}, "holds no model", {}),
    ("stray_top_level_file", {**model("m", py()), "README.md": "x"}, "has files at its top level: README.md", {}),
    ("link_escapes", model("m", py()), "links outside the model repository", {"link": ("m/1/passwd", "/etc/passwd")}),
    ("link_dangling", model("m", py()), "which does not exist", {"link": ("m/1/gone", "missing.bin")}),
    ("link_loop", model("m", py()), "a directory that contains the link itself", {"link": ("m/1/loop", "..")}),
    ("not_regular_file", model("m", py()), "is not a regular file", {"fifo": "m/1/pipe"}),
    ("repository_missing", {}, "is not a directory", {"missing": True}),
]


def write(root: Path, layout: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for relative, text in layout.items():
        path = root / relative
        if relative.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def judge(tmp_path: Path, layout: dict[str, str], options: dict):
    root = tmp_path / "repo"
    if not options.get("missing"):
        write(root, layout)
    if "link" in options:
        link, target = options["link"]
        os.symlink(target, root / link)
    if "fifo" in options:
        os.mkfifo(root / options["fifo"])
    settings = RenderSettings(
        {**PLAN, "release": options.get("release", PLAN["release"]), **options.get("plan", {})},
        HOST,
        options.get("policy", "keep"),
        options.get("gpu_build", True),
        release_backends=options.get("backends", BACKENDS),
    )
    return check_repository(root, settings)


@pytest.mark.parametrize(("code", "layout", "words", "options"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_refuses_with_tritons_words_and_four_parts(tmp_path, code, layout, words, options):
    check = judge(tmp_path, layout, options)
    matching = [p for p in check.errors if p.code == code]
    assert matching, [(p.code, p.message) for p in check.problems]
    problem = matching[0]
    assert words in problem.message, problem.message
    assert problem.found and problem.supported and problem.fix
    assert code not in check.configs


def test_every_rule_has_a_case_and_a_documented_source():
    assert sorted({c[0] for c in CASES}) == sorted(rule_codes())
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(), re.M))
    assert documented == set(rule_codes())
    for rule in RULES:
        assert rule.source in DOCS.read_text(), rule.code


VALID = [
    ("python", model("m", py())),
    ("ensemble", ENSEMBLE_OK),
    (
        "optional-input-unmapped",
        {
            **model(
                "py2",
                py(
                    io='input [{name: "IN" data_type: TYPE_FP32 dims: [4]}, {name: "OPT" data_type: TYPE_FP32 '
                    'dims: [4] optional: true}]\noutput [{name: "OUT" data_type: TYPE_FP32 dims: [4]}]\n'
                ),
            ),
            **model("e", ens([step("py2", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",)),
        },
    ),
    (
        "batching-ensemble-of-nonbatching-step",
        {
            **model(
                "py",
                py(
                    io='input [{name: "IN" data_type: TYPE_FP32 dims: [-1, 4]}]\n'
                    'output [{name: "OUT" data_type: TYPE_FP32 dims: [-1, 4]}]\n'
                ),
            ),
            **model("e", ens([IDENTITY], mbs=8), ("1/",)),
        },
    ),
    (
        "reshape-wildcards",
        model(
            "m", py(io='input [{name: "IN" data_type: TYPE_FP32 dims: [2, 4, -1, 6] reshape {shape: [8, -1, 1, 6]}}]\n')
        ),
    ),
    (
        "model-library-in-model-dir",
        model("m", 'backend: "custom"\nmax_batch_size: 0\n' + IO + CPU, ("libtriton_custom.so", "1/")),
    ),
    ("inside-link", model("m", py(), ("1/model.py", "shared/weights.bin"))),
    ("version-policy-all", model("m", py("version_policy { all {} }\n"), ("1/model.py", "2/model.py", "notes/"))),
    ("onnx-dir-model", model("m", 'backend: "onnxruntime"\nmax_batch_size: 0\n' + IO, ("1/model.onnx/model.onnx",))),
    ("count-zero-is-triton-default", model("m", py(group="instance_group [{kind: KIND_CPU count: 0}]\n"))),
]


@pytest.mark.parametrize(("layout",), [(v[1],) for v in VALID], ids=[v[0] for v in VALID])
def test_repositories_triton_serves_are_not_refused(tmp_path, layout):
    check = judge(tmp_path, layout, {})
    assert check.errors == [], [(p.code, p.message) for p in check.errors]
    assert set(check.configs) == {p.split("/")[0] for p in layout}


def test_links_inside_the_repository_are_accepted(tmp_path):
    root = tmp_path / "repo"
    write(root, {**model("m", py(), ("common.py", "2/model.py")), **model("n", py(), ())})
    os.symlink("../common.py", root / "m" / "2" / "helper.py")
    os.symlink("../m/2", root / "n" / "1")
    settings = RenderSettings(PLAN, HOST, "keep", release_backends=BACKENDS)
    assert check_repository(root, settings).errors == []


@pytest.mark.parametrize(
    ("release", "words"),
    [
        ("24.06", "model output must specify 'data_type' for m"),
        ("24.07", "model input 'IN' must specify 'data_type' for m"),
    ],
)
def test_wording_follows_the_plans_release(tmp_path, release, words):
    check = judge(tmp_path, model("m", py(io='input [{name: "IN" dims: [4]}]\n')), {"release": release})
    assert [p.message for p in check.errors] == [words]


def test_backend_lookup_wording_before_24_01(tmp_path):
    layout = model("m", 'backend: "onnxruntime"\nmax_batch_size: 0\n' + IO, ("1/model.onnx",))
    check = judge(tmp_path, layout, {"release": "23.12", "backends": ("python",)})
    assert check.errors[0].message.startswith("unable to find 'libtriton_onnxruntime.so' for model 'm', searched:")


@pytest.mark.parametrize(("release", "refused"), [("23.12", False), ("24.01", True)])
def test_runtime_escape_is_a_rule_from_24_01(tmp_path, release, refused):
    layout = model("m", py('runtime: "../lib/libtriton_python.so"\n'), ("1/model.py", "lib/libtriton_python.so"))
    codes = [p.code for p in judge(tmp_path, layout, {"release": release}).errors]
    assert ("runtime_escape" in codes) is refused


def test_a_model_reports_tritons_first_reason_first(tmp_path):
    # Poll rules come before instance groups: Triton never gets to the KIND_GPU group here.
    body = 'backend: "python"\nmax_batch_size: -1\n' + IO + "instance_group [{kind: KIND_GPU gpus: [7]}]\n"
    check = judge(tmp_path, model("m", body), {})
    assert [p.code for p in check.errors] == ["max_batch_size_negative"]


def test_every_problem_of_the_repository_at_once(tmp_path):
    layout = {
        **model("bad_batch", py(mbs=-1)),
        **model("no_file", py(), ("1/README",)),
        **model("no_version", py(), ("model.py",)),
        **model("ok", py()),
        **model("e", ens([step("gone", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",)),
    }
    check = judge(tmp_path, layout, {})
    assert [(p.model, p.code) for p in check.errors] == [
        ("bad_batch", "max_batch_size_negative"),
        ("e", "ensemble_step_unavailable"),
        ("no_file", "model_file_missing"),
        ("no_version", "no_version_available"),
    ]
    assert set(check.configs) == {"ok"}


@pytest.mark.parametrize(("release", "suffix"), [("23.07", False), ("23.08", True)])
def test_not_written_names_the_unconnected_tensor_from_23_08(tmp_path, release, suffix):
    body = ens([step("py", {"IN": "IN"}, {"OUT": "X"}), step("py2", {"A": "X", "B": "T"}, {"OUT": "OUT"})])
    (message,) = [p.message for p in judge(tmp_path, model("e", body), {"release": release}).errors]
    assert message.startswith("output 'OUT' for ensemble 'e' is not written")
    assert message.endswith("'T', is not connected") is suffix


@pytest.mark.parametrize(
    ("release", "words"), [("23.02", "not available: absent"), ("23.03", "not available or ambiguous: absent")]
)
def test_missing_step_wording_follows_the_release(tmp_path, release, words):
    layout = model("e", ens([step("absent", {"IN": "IN"}, {"OUT": "OUT"})]), ("1/",))
    (problem,) = judge(tmp_path, layout, {"release": release}).errors
    assert problem.message == f"ensemble e contains models that are {words}"


def test_problems_name_the_model_directory_even_when_the_config_names_another(tmp_path):
    check = judge(tmp_path, {**model("m", 'name: "other"\n' + py(mbs=-1)), **model("n", 'name: "x"\n' + py())}, {})
    assert [(p.model, p.code) for p in check.errors] == [
        ("m", "max_batch_size_negative"),
        ("n", "directory_name_mismatch"),
    ]
