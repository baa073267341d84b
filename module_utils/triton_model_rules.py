# SPDX-License-Identifier: Apache-2.0
"""Triton's model-configuration rules that need no model loading, in Triton's order and wording.

Each rule is a row of ``RULES`` (code, the Triton source it comes from, the first release that
has it); docs/model-config-rules.md lists them with their upstream location and wording. The
functions here are pure: they take parsed ``ModelConfig`` messages (Triton's schema, parsed by
``triton_model_config``), what a model directory holds (``ModelListing``) and the plan's release,
and return ``Problem`` objects; they never read files, never exit.

Triton checks a model in phases and stops a model at its first error. This module holds the
repository poll (``config_problems``: ``AutoCompleteBackendFields``, ``ValidateModelConfig``,
``ValidateModelIOConfig``, the directory name); ``triton_model_load_rules`` the load (versions,
backend library, model files); ``triton_ensemble_rules`` the ensembles across models; instance
groups (``ValidateInstanceGroup``) are checked by ``triton_model_config``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.triton_versions import version_at_least

ENSEMBLE_PLATFORM = "ensemble"
PYTHON_BACKEND = "python"
PYTHON_RUNTIME = "model.py"
WILDCARD_DIM = -1
# core src/constants.h: platforms and the backends they name (GetBackendTypeFromPlatform).
PLATFORM_BACKENDS = {
    "tensorflow_graphdef": "tensorflow",
    "tensorflow_savedmodel": "tensorflow",
    "tensorrt_plan": "tensorrt",
    "onnxruntime_onnx": "onnxruntime",
    "pytorch_libtorch": "pytorch",
}
# core GetBackendType: the backends whose platform must match (others accept any platform).
TYPED_BACKENDS = frozenset(PLATFORM_BACKENDS.values())
# Version sub-directories Triton skips (core model_lifecycle.cc VersionsToLoad).
NON_VERSION_DIRS = frozenset({"warmup", "initial_state", "configs"})
# The model file each backend opens by default, per version directory, and whether it is a file
# ("file"), a directory ("dir") or either ("any"). Sources: core AutoCompleteBackendFields and
# constants.h; python_backend src/stub_launcher.cc; onnxruntime_backend src/onnxruntime.cc
# LoadModel (a directory holds model.onnx); tensorrt_backend src/model_state.cc; pytorch_backend
# src/libtorch.cc; tensorflow_backend src/tensorflow.cc; openvino_backend src/openvino.cc (the IR
# weights model.bin sit next to model.xml). Backends not listed open no file by default.
DEFAULT_MODEL_FILES: dict[str, tuple[str, str]] = {
    "python": ("model.py", "file"),
    "onnxruntime": ("model.onnx", "any"),
    "tensorrt": ("model.plan", "file"),
    "pytorch": ("model.pt", "file"),
    "openvino": ("model.xml", "file"),
    "tensorflow_savedmodel": ("model.savedmodel", "dir"),
    "tensorflow_graphdef": ("model.graphdef", "file"),
}
# Backends whose auto-complete can produce a whole config from the model file (used only when
# the server runs with auto-complete, which tritonfleet's service never does): TensorFlow
# GraphDef and unknown backends cannot (tensorflow_backend src/tensorflow.cc AutoCompleteConfig).
CONFIG_FROM_MODEL_BACKENDS = frozenset({"onnxruntime", "tensorrt", "openvino", "python", "pytorch", "tensorflow"})
# Backends that run only on the CPU; core NormalizeInstanceGroup gives them their preferred
# KIND_CPU group (openvino_backend src/openvino.cc TRITONBACKEND_GetBackendAttribute).
CPU_ONLY_BACKENDS = frozenset({"openvino"})
# core ValidateIOShape names the tensor in its messages from 24.07 ("model input 'x' has different ...");
# r24.06 and older say "model input has different ..." and "model output must specify 'data_type'" for
# inputs and outputs alike (core@r24.06 and @r24.07 src/model_config_utils.cc).
IO_NAME_WORDING_SINCE = "24.07"
# "output ... is not written" names the first tensor that is not connected from 23.08 (core@r23.08).
NOT_CONNECTED_SINCE = "23.08"


@dataclass(frozen=True)
class Problem:
    """One rule a model breaks.

    ``message`` is Triton's own wording where Triton has one, ``found`` says what was seen where,
    ``supported`` what would work, and ``fix`` what to change.
    """

    severity: str
    code: str
    model: str
    group: str | None
    message: str
    found: str
    supported: str
    fix: str

    def text(self, path: str) -> str:
        """Return the four-part message for the config or model at ``path``."""
        return f"{path}: {self.message}. Found: {self.found}. Supported: {self.supported}. Fix: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        """Return the problem as plain data for module results."""
        return {
            "severity": self.severity,
            "code": self.code,
            "model": self.model,
            "group": self.group,
            "message": self.message,
            "found": self.found,
            "supported": self.supported,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Rule:
    """A rule of Triton's (or, where ``source`` says tritonfleet, of the deployment's) and where it lives."""

    code: str
    phase: str
    source: str
    since: str | None = None


@dataclass(frozen=True)
class ModelListing:
    """What a model directory holds: its sub-directories with their entries (name -> is a directory)
    and its top-level files. Symlinks inside the repository appear as what they point to."""

    subdirs: Mapping[str, Mapping[str, bool]]
    files: frozenset[str] = frozenset()


@dataclass
class ModelState:
    """One model as the repository checks see it: its completed config, where it failed, what loads."""

    name: str
    config: Any | None
    listing: ModelListing | None
    failed_phase: str | None = None
    error: str | None = None
    versions: list[int] = field(default_factory=list)


Finding = tuple[str, str, str, str]

# Every rule, in the order Triton applies them (docs/model-config-rules.md lists the same rows).
RULES: tuple[Rule, ...] = (
    # --- the repository's layout, before Triton sees it (tritonfleet: what the release copy needs)
    Rule("repository_missing", "repository", "tritonfleet triton_model_repository.scan_repository"),
    Rule("repository_empty", "repository", "tritonfleet triton_model_repository.scan_repository"),
    Rule("stray_top_level_file", "repository", "tritonfleet triton_model_repository.scan_repository"),
    Rule("link_escapes", "repository", "tritonfleet triton_model_repository._link_problems"),
    Rule("link_dangling", "repository", "tritonfleet triton_model_repository._link_problems"),
    Rule("link_loop", "repository", "tritonfleet triton_model_repository._link_problems"),
    Rule("not_regular_file", "repository", "tritonfleet triton_model_repository._tree_problems"),
    # --- repository poll: config, server-side auto-complete, ValidateModelConfig, ValidateModelIOConfig
    Rule("config_missing", "poll", "core filesystem/api.cc ReadTextProto (auto-complete off); core model.cc Init"),
    Rule("config_syntax", "poll", "protobuf text format of common model_config.proto (core ReadTextProto)"),
    Rule("backend_undetermined", "poll", "core model_config_utils.cc AutoCompleteBackendFields"),
    Rule("platform_unknown", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("ensemble_with_backend", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("platform_backend_mismatch", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("max_batch_size_negative", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("preferred_batch_size_not_positive", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("preferred_batch_size_too_large", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("default_priority_level_range", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("priority_queue_policy_level_range", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("preserve_ordering_priority_levels", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("preserve_ordering_delay", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("sequence_response_cache", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("control_tensor_unnamed", "poll", "core model_config_utils.cc GetBooleanSequenceControlProperties"),
    Rule("control_tensor_multiple_kinds", "poll", "core model_config_utils.cc GetBooleanSequenceControlProperties"),
    Rule("control_kind_multiple", "poll", "core model_config_utils.cc GetBooleanSequenceControlProperties"),
    Rule("control_value_missing", "poll", "core model_config_utils.cc GetBooleanSequenceControlProperties"),
    Rule("control_value_ambiguous", "poll", "core model_config_utils.cc GetBooleanSequenceControlProperties"),
    Rule("control_value_count", "poll", "core model_config_utils.cc GetBooleanSequenceControlProperties"),
    Rule("control_corrid_values", "poll", "core model_config_utils.cc GetTypedSequenceControlProperties"),
    Rule("control_corrid_data_type", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("sequence_preferred_batch_size", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("sequence_slot_utilization", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("ensemble_scheduling_not_ensemble", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_instance_group", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_optimization", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_model_warmup", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_no_step", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_step_model_name", "poll", "core model_config_utils.cc BuildEnsembleGraph"),
    Rule("ensemble_step_input_map", "poll", "core model_config_utils.cc BuildEnsembleGraph"),
    Rule("ensemble_step_output_map", "poll", "core model_config_utils.cc BuildEnsembleGraph"),
    Rule("ensemble_tensor_output_twice", "poll", "core model_config_utils.cc BuildEnsembleGraph"),
    Rule("ensemble_input_unused", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_output_unused", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_output_not_written", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_tensor_unused", "poll", "core model_config_utils.cc ValidateEnsembleSchedulingConfig"),
    Rule("ensemble_scheduling_missing", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("decoupled_response_cache", "poll", "core model_config_utils.cc ValidateModelConfig"),
    Rule("io_name_missing", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_data_type_missing", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_dims_missing", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_reshape_empty_nobatch", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_dims_invalid", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_reshape_invalid", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_reshape_size", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_reshape_variable_count", "poll", "core model_config_utils.cc ValidateIOShape"),
    Rule("io_format_dims", "poll", "core model_config_utils.cc ValidateModelInput"),
    Rule("io_shape_tensor_platform", "poll", "core model_config_utils.cc ValidateModelInput/ValidateModelOutput"),
    Rule("io_non_linear_platform", "poll", "core model_config_utils.cc ValidateNonLinearFormatIO", since="24.08"),
    Rule("io_non_linear_dims", "poll", "core model_config_utils.cc ValidateNonLinearFormatIO", since="24.08"),
    Rule("batch_input_source_count", "poll", "core model_config_utils.cc ValidateBatchIO"),
    Rule("batch_input_data_type", "poll", "core model_config_utils.cc ValidateBatchIO"),
    Rule("batch_input_unknown_source", "poll", "core model_config_utils.cc ValidateBatchIO"),
    Rule("batch_output_source_count", "poll", "core model_config_utils.cc ValidateBatchIO"),
    Rule("batch_output_unknown_source", "poll", "core model_config_utils.cc ValidateBatchIO"),
    Rule("batch_output_unknown_target", "poll", "core model_config_utils.cc ValidateBatchIO"),
    Rule("batch_output_duplicate_target", "poll", "core model_config_utils.cc ValidateBatchIO"),
    Rule("directory_name_mismatch", "poll", "core model_repository_manager.cc InitializeModelInfo"),
    # --- dependency graph (ensembles), before anything loads
    Rule("ensemble_step_unavailable", "graph", "core model_repository_manager.cc ConnectDependencyGraph"),
    Rule("ensemble_circular", "graph", "core model_repository_manager.cc CircularDependencyCheck"),
    # --- load: versions, backend library, instance groups (triton_model_config), model files
    Rule("no_version_available", "load", "core model_lifecycle.cc AsyncLoad/VersionsToLoad"),
    Rule("backend_not_found", "load", "core backend_model.cc GetBackendRuntimeLibraryName"),
    Rule("runtime_not_found", "load", "core backend_model.cc GetBackendLibraryProperties"),
    Rule("runtime_escape", "load", "core backend_model.cc GetBackendLibraryProperties", since="24.01"),
    Rule("python_based_backend_not_found", "load", "core backend_model.cc GetBackendLibraryProperties"),
    Rule("gpu_kind_cpu_build", "load", "core model_config_utils.cc ValidateInstanceGroup"),
    Rule("gpu_kind_no_gpu", "load", "core model_config_utils.cc ValidateInstanceGroup"),
    Rule("invalid_gpu_id", "load", "core model_config_utils.cc ValidateInstanceGroup"),
    Rule("gpus_on_non_gpu_kind", "load", "core model_config_utils.cc NormalizeInstanceGroup/ValidateInstanceGroup"),
    Rule("cpu_only_backend_gpu_instance", "load", "openvino_backend src/openvino.cc ModelInstanceState"),
    Rule(
        "gpu_accelerator_on_cpu",
        "load",
        "tritonfleet: onnxruntime_backend applies GPU accelerators to GPU instances only",
    ),
    Rule("unknown_accelerator", "load", "onnxruntime_backend src/onnxruntime.cc ModelState::LoadModel"),
    Rule(
        "cc_model_filename_missing",
        "load",
        "tritonfleet: core backend_model_instance.cc falls back to default_model_filename",
    ),
    Rule("model_file_missing", "load", "backends: LoadModel/ReadModel of each backend (DEFAULT_MODEL_FILES)"),
    # --- ensembles, once their steps are loaded
    Rule("ensemble_step_invalid", "ensemble", "core model_repository_manager.cc CheckNode"),
    Rule("ensemble_step_not_loaded", "ensemble", "core model_repository_manager.cc CheckNode"),
    Rule("ensemble_required_version", "ensemble", "core model_repository_manager.cc CheckNode"),
    Rule("ensemble_batch_size", "ensemble", "core ensemble_scheduler/ensemble_utils.cc ValidateEnsembleConfig"),
    Rule("ensemble_map_unknown_input", "ensemble", "core ensemble_scheduler/ensemble_utils.cc ValidateTensorMapping"),
    Rule(
        "ensemble_tensor_inconsistent",
        "ensemble",
        "core ensemble_scheduler/ensemble_utils.cc ValidateTensorConsistency",
    ),
    Rule("ensemble_input_unmapped", "ensemble", "core ensemble_scheduler/ensemble_utils.cc ValidateTensorMapping"),
    Rule("ensemble_map_unknown_output", "ensemble", "core ensemble_scheduler/ensemble_utils.cc ValidateTensorMapping"),
    Rule("ensemble_outputs_same_tensor", "ensemble", "core ensemble_scheduler/ensemble_utils.cc ValidateTensorMapping"),
    Rule(
        "ensemble_decoupled_branching", "ensemble", "core ensemble_scheduler/ensemble_utils.cc ValidateEnsembleConfig"
    ),
)
RULES_BY_CODE = {rule.code: rule for rule in RULES}


def rule_applies(code: str, release: str | None) -> bool:
    """True when the plan's release has the rule (an unknown release gets every rule)."""
    since = RULES_BY_CODE[code].since
    return since is None or release is None or version_at_least(release, since)


def make_problem(code: str, model: str, finding: Finding, group: str | None = None, severity: str = "error") -> Problem:
    message, found, supported, fix = finding
    return Problem(severity, code, model, group, message, found, supported, fix)


def enum_name(message: Any, field_name: str, value: int) -> str:
    return message.DESCRIPTOR.fields_by_name[field_name].enum_type.values_by_number[value].name


def dims_text(dims: Iterable[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def backend_of(config: Any) -> str:
    """The backend a (completed) config names, or the one its platform implies."""
    return config.backend or PLATFORM_BACKENDS.get(config.platform, "")


# ---------------------------------------------------------------- server-side auto-complete


def _version_dirs(listing: ModelListing | None) -> list[str]:
    return sorted(listing.subdirs) if listing else []


def autocomplete(config: Any, model_name: str, listing: ModelListing | None) -> tuple[Any, Problem | None]:
    """Fill ``backend``, ``platform`` and ``default_model_filename`` as core AutoCompleteBackendFields does.

    Triton inspects the first sub-directory (in name order) for a known model file. ``listing``
    None means the directory is unknown (a lone config): nothing is inferred from files and an
    undeterminable backend is not reported. Returns ``(completed copy, problem or None)``.
    """
    done = type(config)()
    done.CopyFrom(config)
    if not done.name:
        done.name = model_name
    subdirs = _version_dirs(listing)
    first = listing.subdirs[subdirs[0]] if subdirs else {}
    has_version = bool(subdirs)

    def present(name: str, want_dir: bool | None = None) -> bool:
        return name in first and (want_dir is None or first[name] == want_dir)

    if not done.platform and done.backend in ("", "tensorflow"):
        if done.default_model_filename == "model.savedmodel":
            done.platform = "tensorflow_savedmodel"
        elif done.default_model_filename == "model.graphdef":
            done.platform = "tensorflow_graphdef"
        elif not done.default_model_filename and has_version:
            if present("model.savedmodel", True):
                done.platform = "tensorflow_savedmodel"
            if present("model.graphdef", False):
                done.platform = "tensorflow_graphdef"
    if done.platform in ("tensorflow_savedmodel", "tensorflow_graphdef"):
        done.backend = done.backend or "tensorflow"
        done.default_model_filename = done.default_model_filename or DEFAULT_MODEL_FILES[done.platform][0]
        return done, None
    inferred = (
        ("tensorrt", "tensorrt_plan", "model.plan", False),
        ("onnxruntime", "onnxruntime_onnx", "model.onnx", None),
        ("openvino", None, "model.xml", None),
        ("pytorch", "pytorch_libtorch", "model.pt", False),
        ("python", None, "model.py", None),
    )
    for backend, platform, filename, want_dir in inferred:
        named = (platform and done.platform == platform) or done.default_model_filename == filename
        unnamed = not done.platform and not done.default_model_filename
        if not done.backend and (named or (unnamed and has_version and present(filename, want_dir))):
            done.backend = backend
        if done.backend == backend:
            if platform and not done.platform:
                done.platform = platform
            if not done.default_model_filename and not (backend == "pytorch" and done.runtime == PYTHON_RUNTIME):
                done.default_model_filename = filename
            return done, None
    if done.backend or done.platform or done.default_model_filename or listing is None:
        return done, None
    backend = model_name.partition(".")[2]
    if not backend:
        return done, make_problem(
            "backend_undetermined",
            done.name,
            (
                f"Invalid model name: Could not determine backend for model '{model_name}' with no backend in model "
                "configuration. Expected model name of the form 'model.<backend_name>'.",
                f"no 'backend' or 'platform' in {model_name}/config.pbtxt and "
                + (
                    f"no known model file in {model_name}/{subdirs[0]}/"
                    if subdirs
                    else f"no version directory under {model_name}/"
                ),
                'a config naming its backend (backend: "python", "onnxruntime", ...) or platform, or a version '
                "directory with the backend's default model file (model.py, model.onnx, model.plan, model.pt, "
                "model.xml, model.savedmodel, model.graphdef)",
                f'add backend: "<name>" to {model_name}/config.pbtxt and put the model in {model_name}/1/',
            ),
        )
    done.backend = backend
    done.default_model_filename = f"model.{backend}"
    return done, None


def missing_config_problem(
    empty_config: Any, directory: str, listing: ModelListing | None, auto_complete: bool
) -> Problem | None:
    """A model directory without ``config.pbtxt``: refused when the server does not auto-complete configs
    (tritonfleet's service never does; core ReadTextProto's wording); with auto-complete, only where the
    backend cannot build a config from the model file (core model.cc Init)."""
    where = f"{directory}/config.pbtxt"
    supported = (
        "every model directory with its config.pbtxt: tritonfleet's service runs --disable-auto-complete-config, "
        "so Triton never writes one"
    )
    if not auto_complete:
        return make_problem(
            "config_missing",
            directory,
            (
                f"failed to open text file for read {where}: No such file or directory",
                f"model {directory} has no config.pbtxt: {directory}/ holds "
                f"{', '.join(sorted([*listing.subdirs, *listing.files])) if listing else 'nothing'}",
                supported,
                f"write {where} (name, backend, inputs, outputs, instance_group), or remove {directory}/",
            ),
        )
    completed, problem = autocomplete(empty_config, directory, listing)
    if problem:
        return problem
    backend = backend_of(completed)
    if backend in CONFIG_FROM_MODEL_BACKENDS and completed.platform != "tensorflow_graphdef":
        return None
    return make_problem(
        "config_missing",
        directory,
        (
            f"model configuration is not provided for model '{directory}'",
            f"no config.pbtxt in {directory}/ and backend {backend or 'unknown'} cannot build one from the model file",
            supported,
            f"write {where}",
        ),
    )


# ---------------------------------------------------------------- ValidateModelConfig


def _general_findings(c: Any, backend_known: bool) -> Iterable[tuple[str, Finding]]:
    where = f"{c.name}/config.pbtxt"
    if not c.backend and c.platform != ENSEMBLE_PLATFORM and backend_known:
        yield (
            "platform_unknown",
            (
                f"unexpected platform type '{c.platform}' for {c.name}",
                f"platform: {c.platform!r} and no backend in {where}",
                f"platforms {', '.join(sorted([*PLATFORM_BACKENDS, ENSEMBLE_PLATFORM]))}, or any 'backend' name",
                'correct the platform\'s spelling, or name the backend instead (backend: "onnxruntime", ...)',
            ),
        )
    elif c.backend and c.platform == ENSEMBLE_PLATFORM:
        yield (
            "ensemble_with_backend",
            (
                f"Ensemble model '{c.name}' must have platform type '{c.platform}' and empty backend type",
                f'platform: "ensemble" with backend: {c.backend!r} in {where}',
                'ensembles are scheduled by the server itself: platform "ensemble" and no backend',
                f"remove backend: {c.backend!r} from {where}",
            ),
        )
    typed = c.backend if c.backend in TYPED_BACKENDS else None
    if typed and PLATFORM_BACKENDS.get(c.platform) != typed:
        yield (
            "platform_backend_mismatch",
            (
                f"unexpected 'platform' and 'backend' pair, got:{c.platform}, {c.backend}",
                f"platform: {c.platform!r}, backend: {c.backend!r} in {where}",
                "platform and backend naming the same framework: "
                + ", ".join(f"{p}/{b}" for p, b in sorted(PLATFORM_BACKENDS.items())),
                "remove 'platform' (the backend decides) or make it match the backend",
            ),
        )
    if c.max_batch_size < 0:
        yield (
            "max_batch_size_negative",
            (
                f"'max_batch_size' must be non-negative value for {c.name}",
                f"max_batch_size: {c.max_batch_size} in {where}",
                "0 (the model does not batch) or the largest batch the model accepts",
                f"set max_batch_size to 0 or a positive number in {where}",
            ),
        )


def _dynamic_batching_findings(c: Any) -> Iterable[tuple[str, Finding]]:
    if not c.HasField("dynamic_batching"):
        return
    where = f"{c.name}/config.pbtxt"
    batching = c.dynamic_batching
    for size in batching.preferred_batch_size:
        if size <= 0:
            yield (
                "preferred_batch_size_not_positive",
                (
                    f"dynamic batching preferred size must be positive for {c.name}",
                    f"dynamic_batching.preferred_batch_size {list(batching.preferred_batch_size)} in {where}",
                    f"preferred batch sizes from 1 to max_batch_size ({c.max_batch_size})",
                    "remove the sizes below 1",
                ),
            )
        if size > c.max_batch_size:
            yield (
                "preferred_batch_size_too_large",
                (
                    f"dynamic batching preferred size must be <= max batch size for {c.name}",
                    f"preferred_batch_size {list(batching.preferred_batch_size)} with max_batch_size "
                    f"{c.max_batch_size} in {where}",
                    f"preferred batch sizes from 1 to max_batch_size ({c.max_batch_size})",
                    "lower the preferred sizes or raise max_batch_size",
                ),
            )
    levels = batching.priority_levels
    if levels:
        supported = f"priority levels 1 to priority_levels ({levels})"
        if batching.default_priority_level == 0 or batching.default_priority_level > levels:
            yield (
                "default_priority_level_range",
                (
                    f"default priority level must be in range [1, {levels}] for {c.name}",
                    f"default_priority_level: {batching.default_priority_level}, priority_levels: {levels} in {where}",
                    supported,
                    f"set default_priority_level between 1 and {levels}",
                ),
            )
        for level in batching.priority_queue_policy:
            if level == 0 or level > levels:
                yield (
                    "priority_queue_policy_level_range",
                    (
                        f"priority queue policy must have priority level in range [1, {levels}] for {c.name}",
                        f"priority_queue_policy key {level}, priority_levels: {levels} in {where}",
                        supported,
                        f"key the priority_queue_policy entries 1 to {levels}",
                    ),
                )
    if batching.preserve_ordering:
        if levels > 1:
            yield (
                "preserve_ordering_priority_levels",
                (
                    f"Only one priority level is allowed when 'preserve_ordering' is true for {c.name}",
                    f"preserve_ordering: true with priority_levels: {levels} in {where}",
                    "preserve_ordering with at most one priority level",
                    "drop preserve_ordering or the priority levels",
                ),
            )
        policies = [batching.default_queue_policy, *batching.priority_queue_policy.values()]
        delay = type(batching.default_queue_policy).DELAY
        if any(p.default_timeout_microseconds != 0 and p.timeout_action == delay for p in policies):
            yield (
                "preserve_ordering_delay",
                (
                    f"Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for {c.name}",
                    f"preserve_ordering: true and a queue policy with timeout_action: DELAY in {where}",
                    "preserve_ordering with timeout_action REJECT (or no timeout)",
                    "set timeout_action: REJECT or drop preserve_ordering",
                ),
            )


_BOOLEAN_CONTROLS = ("CONTROL_SEQUENCE_START", "CONTROL_SEQUENCE_END", "CONTROL_SEQUENCE_READY")
_CORRID_TYPES = ("TYPE_UINT64", "TYPE_INT64", "TYPE_UINT32", "TYPE_INT32", "TYPE_STRING")


def _control_findings(c: Any, kind_name: str, typed: bool) -> Iterable[tuple[str, Finding]]:
    """One pass of Get{Boolean,Typed}SequenceControlProperties for control kind ``kind_name``."""
    where = f"sequence_batching.control_input in {c.name}/config.pbtxt"
    seen_tensors: set[str] = set()
    seen_control = False
    supported = "one control tensor per control kind, each with its own name and exactly one value pair"
    for control_input in c.sequence_batching.control_input:
        if not control_input.name:
            yield (
                "control_tensor_unnamed",
                (
                    f"sequence batching control tensor must have a name for {c.name}",
                    f"a control_input without name in {where}",
                    supported,
                    "name every control_input",
                ),
            )
            return
        if control_input.name in seen_tensors:
            yield (
                "control_tensor_multiple_kinds",
                (
                    f"sequence batching control tensor '{control_input.name}' is specified for multiple control kinds "
                    f"for {c.name}",
                    f"control_input {control_input.name!r} listed twice in {where}",
                    supported,
                    f"give each control kind its own tensor instead of reusing {control_input.name!r}",
                ),
            )
            return
        seen_tensors.add(control_input.name)
        for control in control_input.control:
            if enum_name(control, "kind", control.kind) != kind_name:
                continue
            if seen_control:
                yield (
                    "control_kind_multiple",
                    (
                        f"sequence batching specifies multiple {kind_name} tensors for {c.name}",
                        f"two control_input entries with kind {kind_name} in {where}",
                        supported,
                        f"keep one {kind_name} control",
                    ),
                )
                return
            seen_control = True
            pairs = [
                (n, len(getattr(control, n)))
                for n in ("int32_false_true", "fp32_false_true", "bool_false_true")
                if len(getattr(control, n))
            ]
            if typed:
                if pairs:
                    yield (
                        "control_corrid_values",
                        (
                            "sequence batching must not specify either 'int32_false_true', 'fp32_false_true' or "
                            f"'bool_false_true' for {kind_name} for {c.name}",
                            f"{pairs[0][0]} on the {kind_name} control {control_input.name!r} in {where}",
                            f"{kind_name} takes a data_type, not false/true values",
                            f"remove {pairs[0][0]} and set data_type",
                        ),
                    )
                    return
                continue
            if not pairs:
                yield (
                    "control_value_missing",
                    (
                        "sequence batching must specify either 'int32_false_true', 'fp32_false_true' or "
                        f"'bool_false_true' for {kind_name} for {c.name}",
                        f"the {kind_name} control {control_input.name!r} has no false/true values in {where}",
                        f"{kind_name} controls with one of int32_false_true, fp32_false_true, bool_false_true",
                        "add e.g. int32_false_true: [ 0, 1 ]",
                    ),
                )
                return
            if len(pairs) > 1:
                yield (
                    "control_value_ambiguous",
                    (
                        "sequence batching specifies more than one from 'int32_false_true', 'fp32_false_true' and "
                        f"'bool_false_true' for {kind_name} for {c.name}",
                        f"{', '.join(n for n, _ in pairs)} on control {control_input.name!r} in {where}",
                        "exactly one of int32_false_true, fp32_false_true, bool_false_true",
                        "keep one of them",
                    ),
                )
                return
            name, count = pairs[0]
            if count != 2:
                yield (
                    "control_value_count",
                    (
                        f"sequence batching control '{name}' must have exactly 2 entries for {kind_name} for {c.name}",
                        f"{name} with {count} entries on control {control_input.name!r} in {where}",
                        "two entries: the false value, then the true value",
                        f"give {name} exactly two values",
                    ),
                )
                return


def _sequence_batching_findings(c: Any) -> Iterable[tuple[str, Finding]]:
    if not c.HasField("sequence_batching"):
        return
    where = f"{c.name}/config.pbtxt"
    if c.response_cache.enable:
        yield (
            "sequence_response_cache",
            (
                f"Response Cache does not currently support model {c.name} with sequence batching scheduler. Please "
                "disable the response cache.",
                f"sequence_batching and response_cache.enable: true in {where}",
                "the response cache on models without sequence batching",
                "set response_cache.enable: false",
            ),
        )
        return
    for kind_name in _BOOLEAN_CONTROLS:
        found = list(_control_findings(c, kind_name, typed=False))
        if found:
            yield found[0]
            return
    found = list(_control_findings(c, "CONTROL_SEQUENCE_CORRID", typed=True))
    if found:
        yield found[0]
        return
    for control_input in c.sequence_batching.control_input:
        for control in control_input.control:
            if enum_name(control, "kind", control.kind) != "CONTROL_SEQUENCE_CORRID":
                continue
            data_type = enum_name(control, "data_type", control.data_type)
            if data_type not in _CORRID_TYPES:
                yield (
                    "control_corrid_data_type",
                    (
                        f"unexpected data type for control CONTROL_SEQUENCE_CORRID for {c.name}. Allowed data types "
                        "are TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 and TYPE_STRING",
                        f"data_type {data_type} on control {control_input.name!r} in {where}",
                        ", ".join(_CORRID_TYPES),
                        "set one of those data types",
                    ),
                )
                return
    batching = c.sequence_batching
    if batching.HasField("oldest"):
        for size in batching.oldest.preferred_batch_size:
            if size <= 0 or size > c.max_batch_size:
                what = "be positive" if size <= 0 else "be <= max batch size"
                yield (
                    "sequence_preferred_batch_size",
                    (
                        f"sequence batching preferred batch size must {what} for {c.name}",
                        f"sequence_batching.oldest.preferred_batch_size {list(batching.oldest.preferred_batch_size)}, "
                        f"max_batch_size {c.max_batch_size} in {where}",
                        f"preferred batch sizes from 1 to max_batch_size ({c.max_batch_size})",
                        "correct the preferred batch sizes",
                    ),
                )
                return
    if batching.HasField("direct"):
        utilization = batching.direct.minimum_slot_utilization
        if utilization < 0.0 or utilization > 1.0:
            yield (
                "sequence_slot_utilization",
                (
                    f"sequence batching minimum slot utilization must be in range (0.0, 1.0] for {c.name}",
                    f"minimum_slot_utilization: {utilization} in {where}",
                    "a fraction in (0.0, 1.0]",
                    "set minimum_slot_utilization between 0 and 1",
                ),
            )


def _ensemble_findings(c: Any, release: str | None) -> Iterable[tuple[str, Finding]]:
    where = f"{c.name}/config.pbtxt"
    if not c.HasField("ensemble_scheduling"):
        if c.platform == ENSEMBLE_PLATFORM:
            yield (
                "ensemble_scheduling_missing",
                (
                    f"ensemble scheduling must be set for ensemble {c.name} whose platform is ensemble",
                    f'platform: "ensemble" without ensemble_scheduling in {where}',
                    "ensembles list their steps in ensemble_scheduling { step [...] }",
                    "add ensemble_scheduling, or set the platform or backend of the model's framework",
                ),
            )
        return
    supported = (
        'an ensemble: platform "ensemble", ensemble_scheduling with steps, no instance groups, optimization or warm-up'
    )
    checks = (
        (c.platform != ENSEMBLE_PLATFORM, "ensemble_scheduling_not_ensemble",
         f"ensemble scheduling cannot be set for model '{c.name}' whose platform is not ensemble",
         f"ensemble_scheduling with platform: {c.platform!r} in {where}",
         'set platform: "ensemble" (and no backend), or remove ensemble_scheduling'),
        (len(c.instance_group) != 0, "ensemble_instance_group",
         f"instance group should not be specified for ensemble '{c.name}'",
         f"instance_group on ensemble {where}", "remove instance_group; each step model has its own"),
        (c.HasField("optimization"), "ensemble_optimization",
         f"optimization should not be specified for ensemble '{c.name}'",
         f"optimization on ensemble {where}", "remove optimization; set it on the step models"),
        (len(c.model_warmup) != 0, "ensemble_model_warmup",
         f"model_warmup can not be specified for ensemble '{c.name}'",
         f"model_warmup on ensemble {where}", "remove model_warmup; warm the step models up instead"),
        (len(c.ensemble_scheduling.step) == 0, "ensemble_no_step",
         f"must specify 'step' for ensemble '{c.name}'",
         f"ensemble_scheduling without step in {where}", "list the step models in ensemble_scheduling.step"),
    )  # fmt: skip
    for failed, code, message, found, fix in checks:
        if failed:
            yield code, (message, found, supported, fix)
            return
    graph = _ensemble_graph(c)
    if isinstance(graph, tuple):
        yield graph
        return
    yield from _ensemble_data_flow(c, graph, release)


@dataclass
class _Tensor:
    name: str
    is_output: bool
    ready: bool = False
    prev: list[_Tensor] = field(default_factory=list)
    next: list[_Tensor] = field(default_factory=list)


def _ensemble_graph(c: Any) -> dict[str, _Tensor] | tuple[str, Finding]:
    """BuildEnsembleGraph: the ensemble tensors linked step by step, or the first finding."""
    tensors: dict[str, _Tensor] = {}
    where = f"ensemble_scheduling of {c.name}/config.pbtxt"
    for index, step in enumerate(c.ensemble_scheduling.step):
        missing = (
            ("model_name", "ensemble_step_model_name", not step.model_name),
            ("input_map", "ensemble_step_input_map", not step.input_map),
            ("output_map", "ensemble_step_output_map", not step.output_map),
        )
        for what, code, absent in missing:
            if absent:
                return code, (
                    f"must specify '{what}' in step {index} of ensemble '{c.name}'",
                    f"step {index} ({step.model_name or 'no model_name'}) without {what} in {where}",
                    "every step with model_name, input_map and output_map",
                    f"add {what} to step {index}",
                )
        produced = []
        for key, value in step.output_map.items():
            tensor = tensors.get(value)
            if tensor is not None and tensor.is_output:
                return "ensemble_tensor_output_twice", (
                    f"ensemble tensor '{value}' can appear in an output map only once for ensemble '{c.name}' step "
                    f"{index}",
                    f"{value!r} written by two output_map entries (step {index}, output {key!r}) in {where}",
                    "each ensemble tensor written by exactly one step output",
                    f"rename one of the ensemble tensors called {value!r}",
                )
            if tensor is None:
                tensor = tensors[value] = _Tensor(value, True)
            tensor.is_output = True
            produced.append(tensor)
        for value in step.input_map.values():
            tensor = tensors.setdefault(value, _Tensor(value, False))
            for out in produced:
                out.prev.append(tensor)
                tensor.next.append(out)
    return tensors


def _ensemble_data_flow(c: Any, tensors: dict[str, _Tensor], release: str | None) -> Iterable[tuple[str, Finding]]:
    where = f"ensemble_scheduling of {c.name}/config.pbtxt"
    supported = "every ensemble input read by a step, every output written from the inputs, no dangling tensor"
    queue: deque[_Tensor] = deque()
    for io in c.input:
        tensor = tensors.get(io.name)
        if tensor is None:
            yield (
                "ensemble_input_unused",
                (
                    f"ensemble input '{io.name}' for ensemble {c.name}' is not used",
                    f"input {io.name!r} is in no step's input_map in {where}",
                    supported,
                    f"map {io.name!r} to a step input or remove it from the ensemble's inputs",
                ),
            )
            return
        tensor.ready = True
        queue.append(tensor)
    while queue:
        node = queue.popleft()
        for nxt in node.next:
            if not nxt.ready and all(p.ready for p in nxt.prev):
                nxt.ready = True
                queue.append(nxt)
    outputs = set()
    for io in c.output:
        tensor = tensors.get(io.name)
        if tensor is None:
            yield (
                "ensemble_output_unused",
                (
                    f"ensemble output '{io.name}' for ensemble {c.name}' is not used",
                    f"output {io.name!r} is in no step's output_map in {where}",
                    supported,
                    f"map a step output to {io.name!r} or remove it from the ensemble's outputs",
                ),
            )
            return
        if not tensor.ready:
            message = f"output '{io.name}' for ensemble '{c.name}' is not written"
            last, prev, seen = tensor, tensor.prev, set()
            while prev:
                candidates, prev = prev, []
                for node in candidates:
                    if not node.ready and node.name not in seen:
                        seen.add(node.name)
                        last, prev = node, node.prev
                        break
            if last.name != tensor.name and (release is None or version_at_least(release, NOT_CONNECTED_SINCE)):
                message += f": at least one of its depending tensors, '{last.name}', is not connected"
            yield (
                "ensemble_output_not_written",
                (
                    message,
                    f"no path from the ensemble inputs to output {io.name!r} in {where}",
                    supported,
                    "connect the missing tensor to a step output or an ensemble input",
                ),
            )
            return
        outputs.add(io.name)
    for name, tensor in tensors.items():
        if name not in outputs and (not tensor.ready or not tensor.next):
            yield (
                "ensemble_tensor_unused",
                (
                    f"ensemble tensor '{name}' is unused in ensemble '{c.name}'",
                    f"{name!r} is {'never written' if not tensor.ready else 'read by no step'} in {where}",
                    supported,
                    f"read {name!r} in a later step, make it an ensemble output, or drop it",
                ),
            )
            return


def _io_findings(c: Any, release: str | None, auto_complete: bool) -> Iterable[tuple[str, Finding]]:
    """ValidateModelIOConfig: inputs, outputs, then batch inputs/outputs; every message ends 'for <model>'."""
    for side, ios in (("input", c.input), ("output", c.output)):
        for io in ios:
            found = _one_io(c, side, io, release, auto_complete)
            if found:
                code, (message, where, supported, fix) = found
                yield code, (f"{message} for {c.name}", where, supported, fix)
                return
    found = _batch_io(c)
    if found:
        code, (message, where, supported, fix) = found
        yield code, (f"{message} for {c.name}", where, supported, fix)


def _one_io(c: Any, side: str, io: Any, release: str | None, auto_complete: bool) -> tuple[str, Finding] | None:
    where = f"model {side} {io.name or '(unnamed)'} in {c.name}/config.pbtxt"
    named = release is None or version_at_least(release, IO_NAME_WORDING_SINCE)
    prefix = f"model {side} '{io.name}' " if named else f"model {side} "
    shape = "dims of integers >= 1 or -1 (variable size); reshape with the same element count"
    data_type = enum_name(io, "data_type", io.data_type)
    if not io.name:
        return "io_name_missing", (
            f"model {side} must specify 'name'",
            f"a model {side} without name in {c.name}/config.pbtxt",
            f"every {side} with name, data_type and dims",
            f"name the {side}",
        )
    # With auto-complete the backend fills data_type and dims from the model file before Triton validates
    # them; tritonfleet's service disables auto-complete, so they must be written.
    if data_type == "TYPE_INVALID" and not auto_complete:
        message = f"{prefix}must specify 'data_type'" if named else "model output must specify 'data_type'"
        return "io_data_type_missing", (
            message,
            f"{where} has no data_type",
            "every input and output with a data_type (TYPE_FP32, TYPE_INT64, ...)",
            f"add data_type to {side} {io.name!r}",
        )
    if not io.dims and not auto_complete:
        return "io_dims_missing", (
            f"{prefix}must specify 'dims'",
            f"{where} has no dims",
            shape,
            f"add dims to {side} {io.name!r} ([ 1 ] for one value per batch item)",
        )
    if data_type == "TYPE_INVALID" or not io.dims:
        return None
    if io.HasField("reshape") and not io.reshape.shape and c.max_batch_size == 0:
        return "io_reshape_empty_nobatch", (
            f"{prefix}cannot have empty reshape for non-batching model as scalar tensors are not supported",
            f"reshape: {{ shape: [] }} with max_batch_size 0 on {where}",
            "an empty reshape only on batching models (max_batch_size > 0)",
            "give the reshape a shape or remove it",
        )
    if any(d < 1 and d != WILDCARD_DIM for d in io.dims):
        return "io_dims_invalid", (
            f"{prefix}dimension must be integer >= 1, or -1 to indicate a variable-size dimension",
            f"dims {dims_text(io.dims)} on {where}",
            shape,
            "replace 0 and negative dims other than -1",
        )
    if io.HasField("reshape"):
        reshape = list(io.reshape.shape)
        if any(d < 1 and d != WILDCARD_DIM for d in reshape):
            return "io_reshape_invalid", (
                f"{prefix}reshape dimensions must be integer >= 1, or -1 to indicate a variable-size dimension",
                f"reshape {dims_text(reshape)} on {where}",
                shape,
                "replace 0 and negative reshape dims other than -1",
            )
        dims_size, reshape_size = _element_count(io.dims), _element_count(reshape)
        size_mismatch = (
            prefix + "has different size for dims and reshape",
            f"dims {dims_text(io.dims)} ({dims_size} elements) and reshape {dims_text(reshape)} ({reshape_size}) "
            f"on {where}",
            shape,
            "make dims and reshape hold the same number of elements",
        )
        if dims_size != reshape_size and (reshape_size != 0 or dims_size != 1):
            return "io_reshape_size", size_mismatch
        if dims_size == WILDCARD_DIM:
            left, right = _trunks(io.dims), _trunks(reshape)
            if len(left) != len(right):
                return "io_reshape_variable_count", (
                    f"{prefix}has different number of variable-size dimensions for dims and reshape",
                    f"dims {dims_text(io.dims)} and reshape {dims_text(reshape)} on {where}",
                    shape,
                    "give dims and reshape the same -1 dimensions",
                )
            if left != right:
                return "io_reshape_size", size_mismatch
    return _io_format(c, side, io, release, where)


def _io_format(c: Any, side: str, io: Any, release: str | None, where: str) -> tuple[str, Finding] | None:
    if side == "input" and enum_name(io, "format", io.format) in ("FORMAT_NHWC", "FORMAT_NCHW") and len(io.dims) != 3:
        return "io_format_dims", (
            "model input NHWC/NCHW require 3 dims",
            f"format {enum_name(io, 'format', io.format)} with dims {dims_text(io.dims)} on {where}",
            "FORMAT_NHWC/FORMAT_NCHW with exactly three dims (no batch dimension)",
            "give the input three dims or set format: FORMAT_NONE",
        )
    if c.platform != "tensorrt_plan" and io.is_shape_tensor:
        return "io_shape_tensor_platform", (
            "shape tensors are only supported for TensorRT platform",
            f"is_shape_tensor: true on {where} (platform {c.platform!r})",
            'shape tensors on platform "tensorrt_plan" only',
            "remove is_shape_tensor",
        )
    if io.is_non_linear_format_io and rule_applies("io_non_linear_platform", release):
        if c.platform != "tensorrt_plan":
            return "io_non_linear_platform", (
                "Non-linear IO format is only supported for the TensorRT platform",
                f"is_non_linear_format_io: true on {where} (platform {c.platform!r})",
                'non-linear IO format on platform "tensorrt_plan" only',
                "remove is_non_linear_format_io",
            )
        if len(io.dims) != 3:
            return "io_non_linear_dims", (
                f"Non-linear IO format {side} requires 3 dims",
                f"is_non_linear_format_io with dims {dims_text(io.dims)} on {where}",
                "non-linear IO tensors with exactly three dims",
                "give the tensor three dims",
            )
    return None


def _element_count(dims: Iterable[int]) -> int:
    """triton::common::GetElementCount: -1 with any variable dim, 0 for no dims."""
    count = None
    for d in dims:
        if d == WILDCARD_DIM:
            return WILDCARD_DIM
        count = d if count is None else count * d
    return count or 0


def _trunks(dims: Iterable[int]) -> list[int]:
    counts, current = [], 1
    for d in dims:
        if d == WILDCARD_DIM:
            counts.append(current)
            current = 1
        else:
            current *= d
    counts.append(current)
    return counts


def _batch_io(c: Any) -> tuple[str, Finding] | None:
    inputs = {io.name for io in c.input}
    outputs = {io.name for io in c.output}
    where = f"{c.name}/config.pbtxt"
    for batch in c.batch_input:
        kind = enum_name(batch, "kind", batch.kind)
        if len(batch.source_input) != 1:
            return "batch_input_source_count", (
                f"batch input kind '{kind}' expects 1 source input, got {len(batch.source_input)}",
                f"batch_input {batch.target_name or '(unnamed)'} kind {kind} with source_input "
                f"{list(batch.source_input)} in {where}",
                "exactly one source_input per batch input",
                "list one model input in source_input",
            )
        data_type = enum_name(batch, "data_type", batch.data_type)
        if data_type not in ("TYPE_INT32", "TYPE_FP32"):
            return "batch_input_data_type", (
                "batch input data type must be TYPE_INT32 or TYPE_FP32",
                f"batch_input {list(batch.target_name)} data_type {data_type} in {where}",
                "TYPE_INT32 or TYPE_FP32",
                "set data_type: TYPE_INT32 or TYPE_FP32",
            )
        for source in batch.source_input:
            if source not in inputs:
                return "batch_input_unknown_source", (
                    f"unknown source input name '{source}'",
                    f"batch_input source_input {source!r}; model inputs {sorted(inputs)} in {where}",
                    "source_input naming one of the model's inputs",
                    f"correct {source!r}",
                )
    for batch in c.batch_output:
        kind = enum_name(batch, "kind", batch.kind)
        if len(batch.source_input) != 1:
            return "batch_output_source_count", (
                f"batch output kind '{kind}' expects 1 source input, got {len(batch.source_input)}",
                f"batch_output {list(batch.target_name)} with source_input {list(batch.source_input)} in {where}",
                "exactly one source_input per batch output",
                "list one model input in source_input",
            )
        for source in batch.source_input:
            if source not in inputs:
                return "batch_output_unknown_source", (
                    f"unknown source input name '{source}'",
                    f"batch_output source_input {source!r}; model inputs {sorted(inputs)} in {where}",
                    "source_input naming one of the model's inputs",
                    f"correct {source!r}",
                )
        targets: set[str] = set()
        for target in batch.target_name:
            if target not in outputs:
                return "batch_output_unknown_target", (
                    f"unknown target output name '{target}'",
                    f"batch_output target_name {target!r}; model outputs {sorted(outputs)} in {where}",
                    "target_name naming the model's outputs, each once",
                    f"correct {target!r}",
                )
            if target in targets:
                return "batch_output_duplicate_target", (
                    f"target output name '{target}' can only be specified once",
                    f"target_name {target!r} twice in batch_output of {where}",
                    "target_name naming the model's outputs, each once",
                    f"list {target!r} once",
                )
            targets.add(target)
    return None


def config_problems(
    config: Any,
    directory: str,
    release: str | None = None,
    listing: ModelListing | None = None,
    auto_complete: bool = False,
) -> tuple[Any, list[Problem]]:
    """Run the repository-poll rules on one parsed config, in Triton's order; stop at the first error.

    ``directory`` is the model's directory name; ``listing`` what it holds (None: unknown, nothing
    is inferred from files); ``auto_complete`` whether the server completes configs from the model
    files (tritonfleet's service never does). Returns ``(completed config, [first problem])``.
    """
    completed, problem = autocomplete(config, directory, listing)
    if problem:
        return completed, [problem]
    c = completed
    for source in (
        # A lone config (no directory known) may get its backend from the model file, as Triton's would.
        _general_findings(c, bool(c.backend or c.platform or listing is not None)),
        _dynamic_batching_findings(c),
        _sequence_batching_findings(c),
        _ensemble_findings(c, release),
        _decoupled_findings(c),
        _io_findings(c, release, auto_complete),
    ):
        for code, finding in source:
            return completed, [make_problem(code, directory, finding)]
    if c.name != directory:
        return completed, [
            make_problem(
                "directory_name_mismatch",
                directory,
                (
                    f"unexpected directory name '{directory}' for model '{c.name}', directory name must equal model "
                    "name",
                    f"name: {c.name!r} in {directory}/config.pbtxt",
                    "a config name equal to its directory's name (no path separators, no '..')",
                    f"set name: {directory!r} in {directory}/config.pbtxt, or rename the directory",
                ),
            )
        ]
    return completed, []


def _decoupled_findings(c: Any) -> Iterable[tuple[str, Finding]]:
    if c.model_transaction_policy.decoupled and c.response_cache.enable:
        yield (
            "decoupled_response_cache",
            (
                f"Response Cache does not currently support model {c.name} with 'decoupled' transaction policy. Please "
                "disable the response cache.",
                f"model_transaction_policy.decoupled and response_cache.enable in {c.name}/config.pbtxt",
                "the response cache on non-decoupled models",
                "set response_cache.enable: false",
            ),
        )


def rule_codes(phase: str | None = None) -> list[str]:
    """The rule codes, in Triton's order (of one phase when given)."""
    return [r.code for r in RULES if phase is None or r.phase == phase]
