# SPDX-License-Identifier: Apache-2.0
"""Parse, render and validate Triton ``config.pbtxt`` files for one host.

Parsing uses Triton's own schema (``tritonclient.grpc.model_config_pb2``) and protobuf's text
format, so a file accepted here is accepted by the server's parser. Rendering rewrites the
instance groups for the host's plan (``ansible_facts.triton_plan``). Validation runs Triton's
config rules (``triton_model_rules``: ``ValidateModelConfig``, ``ValidateModelIOConfig``) and
then the rules of Triton core ``NormalizeInstanceGroup``/``ValidateInstanceGroup`` and the ONNX
Runtime and OpenVINO backends, under both policies, with Triton's own wording
(docs/model-config-rules.md).

Nothing here writes files: callers write the returned text.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible.module_utils.triton_host import gpu_compute_capability
from ansible.module_utils.triton_model_load_rules import cpu_only_backend_problem, read_listing
from ansible.module_utils.triton_model_rules import (
    CPU_ONLY_BACKENDS,
    ModelListing,
    Problem,
    autocomplete,
    backend_of,
    config_problems,
)

SCHEMA_MODULE = "tritonclient.grpc.model_config_pb2"


def _load_schema() -> ModuleType:
    """Import Triton's ModelConfig schema without the rest of ``tritonclient.grpc``.

    The package's ``__init__`` pulls in grpc and numpy (0.2 s in every controller task that
    renders configs); the schema module needs only protobuf. It is registered under its own
    name, so a later ``import tritonclient.grpc`` finds it and the protobuf descriptor pool
    sees the file once.
    """
    if SCHEMA_MODULE in sys.modules:
        return sys.modules[SCHEMA_MODULE]
    package = importlib.util.find_spec("tritonclient")
    if package is None or not package.submodule_search_locations:
        raise ImportError("No module named 'tritonclient'", name="tritonclient")
    path = Path(next(iter(package.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location(SCHEMA_MODULE, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"tritonclient has no {path}", name=SCHEMA_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[SCHEMA_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[SCHEMA_MODULE]
        raise
    return module


try:
    from google.protobuf import text_format

    model_config_pb2 = _load_schema()
    IMPORT_ERROR: ImportError | None = None
except ImportError as err:  # the module reports missing_required_lib
    text_format = None
    model_config_pb2 = None
    IMPORT_ERROR = err

POLICIES = ("auto", "keep")
CONFIG_FILENAME = "config.pbtxt"
_ENSEMBLE = "ensemble"
# Backends whose KIND_CPU groups default to two instances (core SetDefaultInstanceCount).
_TWO_CPU_INSTANCE_BACKENDS = ("onnxruntime", "tensorflow")
# Accelerator names the ONNX Runtime backend knows (ort_backend src/onnxruntime.cc).
_ORT_GPU_ACCELERATORS = ("tensorrt", "cuda")
_ORT_CPU_ACCELERATORS = ("openvino",)
# OpenVINO EP is compiled only where TRITON_ENABLE_ONNXRUNTIME_OPENVINO is set (not on aarch64).
_OPENVINO_ARCHES = ("x86_64", "amd64")
_HEADER = "# Rendered by tritonfleet triton_model_config (policy {policy}); edit the source, not this file.\n"


class ModelConfigError(Exception):
    """A config cannot be parsed, rendered or served on the host; ``str()`` is the four-part message."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass
class RenderedModel:
    """The outcome of rendering one model directory's config for a host."""

    name: str
    src: str
    dest: str
    text: str
    before: str | None
    instance_groups: list[dict[str, Any]]

    @property
    def changed(self) -> bool:
        """True when ``dest`` does not already hold ``text`` byte for byte."""
        return self.before != self.text


def _kind_name(kind: int) -> str:
    return model_config_pb2.ModelInstanceGroup.Kind.Name(kind)


def parse_config(text: str, path: str, name: str | None = None) -> Any:
    """Parse ``config.pbtxt`` text into a Triton ``ModelConfig`` message.

    ``path`` names the file in messages; an empty ``name`` field is filled, as Triton does,
    from ``name`` or else the directory holding ``path``. Raises ``ModelConfigError`` with
    the file, line and column of a syntax or schema error.
    """
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        detail = re.sub(r"^\d+:\d+ : ", "", str(err)).rstrip(".")
        raise ModelConfigError(
            f"{path} line {err.GetLine()} column {err.GetColumn()}: {detail}. "
            f"Found: a config.pbtxt that Triton's ModelConfig schema rejects. "
            f"Supported: the protobuf text format of Triton's model_config.proto "
            f"(enums such as KIND_GPU, TYPE_FP32; field names as in the model configuration docs). "
            f"Fix: correct {path} at line {err.GetLine()} column {err.GetColumn()}."
        ) from err
    if not config.name:
        config.name = name or Path(path).parent.name
    return config


def to_text(config: Any) -> str:
    """Serialise a ``ModelConfig`` deterministically (fields in schema order, map keys sorted)."""
    return text_format.MessageToString(config, use_short_repeated_primitives=True)


def _is_ensemble(config: Any) -> bool:
    return config.platform == _ENSEMBLE


def _group_name(config: Any, index: int) -> str:
    group = config.instance_group[index]
    return group.name or f"{config.name}_{index}"


def _supported_gpus(plan: dict[str, Any], gpu_build: bool) -> list[int]:
    """CUDA ids Triton will accept: the plan's ids, none on a CPU-only build or CPU plan."""
    if not gpu_build or not plan.get("enable_gpu"):
        return []
    return sorted(int(gid) for gid in plan.get("gpu_ids") or [])


def _min_cc(plan: dict[str, Any]) -> str:
    """The minimum compute capability the server applies, as the plan's runtime section states it."""
    return str((plan.get("runtime") or {}).get("min_compute_capability") or "0.0")


def _resolve_kind(kind: int, listed: list[int], supported: list[int]) -> int:
    """Resolve KIND_AUTO as Triton core NormalizeInstanceGroup does."""
    groups = model_config_pb2.ModelInstanceGroup
    if kind != groups.KIND_AUTO:
        return kind
    if supported and all(gid in supported for gid in listed):
        return groups.KIND_GPU
    return groups.KIND_CPU


def effective_instance_groups(
    config: Any, plan: dict[str, Any], gpu_build: bool, backend: str | None = None
) -> list[dict[str, Any]]:
    """Return the instance groups Triton will create: ``[{name, kind, count, gpus}]``.

    Applies Triton's normalisation (default names ``<model>``/``<model>_<i>``, the backend's preferred
    group when none is written (KIND_CPU for CPU-only backends such as OpenVINO), KIND_AUTO
    resolution, empty ``gpus`` meaning every supported GPU, a count below 1 replaced by the default),
    so the result can be compared with the server's effective config (``GET /v2/models/<m>/config``).
    ``backend`` is the model's backend when the config does not name it (found from its files).
    Ensembles have none.
    """
    if _is_ensemble(config):
        return []
    groups = model_config_pb2.ModelInstanceGroup
    backend = backend or backend_of(config)
    supported = _supported_gpus(plan, gpu_build)
    entries = [
        (g.name or f"{config.name}_{i}", g.kind, list(g.gpus), g.count) for i, g in enumerate(config.instance_group)
    ]
    if not entries:
        preferred = groups.KIND_CPU if backend in CPU_ONLY_BACKENDS else groups.KIND_AUTO
        entries = [(config.name, preferred, [], 0)]
    result = []
    for name, kind, listed, count in entries:
        resolved = _resolve_kind(kind, listed, supported)
        gpus = (listed or supported) if resolved == groups.KIND_GPU else []
        if count < 1:
            two = resolved == groups.KIND_CPU and backend in _TWO_CPU_INSTANCE_BACKENDS
            count = 2 if two else 1
        result.append({"name": name, "kind": _kind_name(resolved), "count": count, "gpus": sorted(gpus)})
    return result


def _placeable_gpus(config: Any, host: dict[str, Any], supported: list[int]) -> list[int]:
    """The supported GPUs a model can run on: with ``cc_model_filenames``, those whose compute capability has
    a plan (or is unknown); all of them when none has, so validation reports the gap."""
    if not config.cc_model_filenames:
        return supported
    fitting = [g for g in supported if gpu_compute_capability(host, g) in (None, *config.cc_model_filenames)]
    return fitting or supported


def render_for_host(
    config: Any,
    plan: dict[str, Any],
    host: dict[str, Any],
    policy: str = "auto",
    gpu_build: bool = True,
    count: int | None = None,
    backend: str | None = None,
) -> tuple[Any, list[str]]:
    """Render a parsed config's instance groups for the host's plan.

    ``keep`` returns a copy unchanged. ``auto`` sets KIND_GPU with the plan's ``gpu_ids`` on GPU
    plans (a pinned subset of them is kept) and KIND_CPU on CPU plans, resolves KIND_AUTO
    explicitly, keeps KIND_MODEL (warning), keeps KIND_CPU groups on the CPU unless the model asks
    for a ``gpu_execution_accelerator`` that would otherwise run nowhere (then they move to the
    plan's GPUs), places CPU-only backends (OpenVINO) on KIND_CPU, leaves ensembles alone, sets
    every group's count to ``count`` when given, and drops ``gpu_execution_accelerator`` (warning)
    when no group is on a GPU. On a host with mixed GPUs, ``cc_model_filenames`` limits GPU
    instances to the GPUs (facts in ``host``) it has a plan for. ``backend`` is the model's backend
    when the config does not name it.
    Returns ``(rendered copy, warnings)``; call ``validate`` on the result.
    """
    if policy not in POLICIES:
        raise ModelConfigError(
            f"instance policy {policy!r} for model {config.name} is not known. Found: policy={policy!r}. "
            f"Supported: {', '.join(POLICIES)}. "
            "Fix: set triton_instance_policy (or the model's policy) to auto or keep."
        )
    rendered = model_config_pb2.ModelConfig()
    rendered.CopyFrom(config)
    if policy == "keep" or _is_ensemble(rendered):
        return rendered, []
    groups = model_config_pb2.ModelInstanceGroup
    backend = backend or backend_of(rendered)
    warnings: list[str] = []
    supported = [] if backend in CPU_ONLY_BACKENDS else _supported_gpus(plan, gpu_build)
    if plan.get("enable_gpu") and not gpu_build:
        warnings.append(
            f"model {rendered.name}: the plan wants GPUs but the installed server is a CPU-only build; "
            f"rendering KIND_CPU instance groups"
        )
    placeable = _placeable_gpus(rendered, host, supported)
    if placeable != supported:
        warnings.append(
            f"model {rendered.name}: GPU instances placed on gpus {placeable} only; cc_model_filenames has no "
            f"plan for the compute capability of gpus {sorted(set(supported) - set(placeable))}"
        )
    if not rendered.instance_group:
        rendered.instance_group.add(kind=groups.KIND_AUTO)
    accelerated = bool(rendered.optimization.execution_accelerators.gpu_execution_accelerator)
    # An accelerator on a model whose groups are all KIND_CPU would be ignored by the backend (it
    # applies GPU accelerators to GPU instances only): the author asked for the GPU.
    cpu_to_gpu = accelerated and bool(supported) and all(g.kind in (groups.KIND_CPU,) for g in rendered.instance_group)
    for index, group in enumerate(rendered.instance_group):
        name = _group_name(rendered, index)
        if group.kind == groups.KIND_MODEL:
            warnings.append(
                f"instance group {name} of model {rendered.name} has kind KIND_MODEL: kept as written, the "
                f"backend decides its devices; set kind KIND_GPU or KIND_CPU to let tritonfleet place it"
            )
        elif group.kind == groups.KIND_CPU and not cpu_to_gpu:
            if group.gpus:
                warnings.append(f"instance group {name} of model {rendered.name}: KIND_CPU lists gpus; removed them")
                del group.gpus[:]
        elif supported:
            if group.kind == groups.KIND_CPU:
                warnings.append(
                    f"instance group {name} of model {rendered.name}: KIND_CPU moved to KIND_GPU on gpus {placeable} "
                    "because the model lists a gpu_execution_accelerator, which runs only on GPU instances"
                )
            listed = list(group.gpus)
            if not listed or not set(listed) <= set(placeable):
                if listed and group.kind != groups.KIND_CPU:
                    warnings.append(
                        f"instance group {name} of model {rendered.name}: gpus {listed} are not all usable on "
                        f"this host; replaced with {placeable} from the plan's gpu_ids"
                    )
                del group.gpus[:]
                group.gpus.extend(placeable)
            group.kind = groups.KIND_GPU
        else:
            if group.kind == groups.KIND_GPU and backend in CPU_ONLY_BACKENDS:
                warnings.append(
                    f"instance group {name} of model {rendered.name}: KIND_GPU rendered as KIND_CPU, the {backend} "
                    "backend runs only on the CPU"
                )
            group.kind = groups.KIND_CPU
            del group.gpus[:]
        if count:
            group.count = count
        elif group.count < 0:
            group.count = 0
    on_gpu = any(g["kind"] == "KIND_GPU" for g in effective_instance_groups(rendered, plan, gpu_build, backend))
    accelerators = rendered.optimization.execution_accelerators
    if accelerators.gpu_execution_accelerator and not on_gpu:
        names = ", ".join(a.name for a in accelerators.gpu_execution_accelerator)
        warnings.append(
            f"model {rendered.name}: dropped gpu_execution_accelerator ({names}) because no instance group "
            f"runs on a GPU on this host"
        )
        del accelerators.gpu_execution_accelerator[:]
        if not accelerators.cpu_execution_accelerator:
            rendered.optimization.ClearField("execution_accelerators")
        if not rendered.optimization.ListFields():
            rendered.ClearField("optimization")
    return rendered, warnings


def _kind_problems(config: Any, plan: dict[str, Any], host: dict[str, Any], gpu_build: bool) -> list[Problem]:
    """core NormalizeInstanceGroup (KIND_AUTO resolution) then ValidateInstanceGroup, group by group."""
    groups = model_config_pb2.ModelInstanceGroup
    supported = _supported_gpus(plan, gpu_build)
    problems = []
    for index, group in enumerate(config.instance_group):
        name = _group_name(config, index)
        prefix = f"instance group {name} of model {config.name}"
        listed = list(group.gpus)
        resolved = _resolve_kind(group.kind, listed, supported)
        if resolved == groups.KIND_GPU and not gpu_build:
            problems.append(
                Problem(
                    "error",
                    "gpu_kind_cpu_build",
                    config.name,
                    name,
                    f"{prefix} has kind KIND_GPU but server does not support GPUs",
                    "the installed release's manifest says gpu_build: false",
                    "KIND_CPU (or KIND_AUTO) instance groups on a CPU-only build",
                    "use instance policy auto for this host, set kind: KIND_CPU, or install a GPU-enabled build",
                )
            )
        elif resolved == groups.KIND_GPU and not listed and not supported:
            problems.append(
                Problem(
                    "error",
                    "gpu_kind_no_gpu",
                    config.name,
                    name,
                    f"{prefix} has kind KIND_GPU but no GPUs are available",
                    f"plan platform={plan.get('platform')}, instance_kind={plan.get('instance_kind')}, "
                    f"gpu_ids={plan.get('gpu_ids') or []}",
                    "KIND_CPU instance groups when the plan gives Triton no GPU",
                    "use instance policy auto for this host or set kind: KIND_CPU in the model's config",
                )
            )
        elif resolved == groups.KIND_GPU:
            # Triton stops at the first id it cannot use; its list of usable GPUs may be empty.
            gid = next((g for g in listed if g not in supported), None)
            if gid is not None:
                problems.append(_invalid_gpu_problem(config, name, prefix, gid, listed, supported, plan, host))
        elif resolved in (groups.KIND_CPU, groups.KIND_MODEL) and listed:
            kind = _kind_name(resolved)
            problems.append(
                Problem(
                    "error",
                    "gpus_on_non_gpu_kind",
                    config.name,
                    name,
                    f"{prefix} has kind {kind} but specifies one or more GPUs",
                    f"kind {kind} with gpus: {listed}"
                    + (
                        " (KIND_AUTO resolves to KIND_CPU when a listed gpu is not usable)"
                        if group.kind != resolved
                        else ""
                    ),
                    "'gpus' only with KIND_GPU or KIND_AUTO",
                    "remove 'gpus' from the group or change its kind to KIND_GPU",
                )
            )
    return problems


def _invalid_gpu_problem(
    config: Any,
    name: str,
    prefix: str,
    gid: int,
    listed: list[int],
    supported: list[int],
    plan: dict[str, Any],
    host: dict[str, Any],
) -> Problem:
    usable = ", ".join(str(g) for g in supported)
    return Problem(
        "error",
        "invalid_gpu_id",
        config.name,
        name,
        f"{prefix} specifies invalid or unsupported gpu id {gid}. GPUs with at least the minimum required CUDA "
        f"compute compatibility of {float(_min_cc(plan)):.6f} are: {usable}",
        f"gpus: {listed}; compute capability of gpu {gid} in host facts: "
        f"{gpu_compute_capability(host, gid) or 'no such gpu'}; the plan gives Triton gpu_ids {supported}",
        f"gpu ids from the plan's gpu_ids {supported}" if supported else "no gpu ids: the plan gives Triton no GPU",
        f"list only gpu ids in {supported}, remove 'gpus' to use all of them, or use policy auto"
        if supported
        else "use instance policy auto for this host, or set kind: KIND_CPU and remove 'gpus'",
    )


def _accelerator_problems(
    config: Any, plan: dict[str, Any], host: dict[str, Any], on_gpu: bool, backend: str
) -> list[Problem]:
    problems = []
    accelerators = config.optimization.execution_accelerators
    gpu_names = [a.name for a in accelerators.gpu_execution_accelerator]
    cpu_names = [a.name for a in accelerators.cpu_execution_accelerator]
    if gpu_names and not on_gpu:
        problems.append(
            Problem(
                "error",
                "gpu_accelerator_on_cpu",
                config.name,
                None,
                f"model {config.name} lists gpu_execution_accelerator {gpu_names} but none of its instance groups "
                f"runs on a GPU, so Triton would silently ignore them",
                f"instance groups resolve to CPU on plan platform={plan.get('platform')}",
                "gpu_execution_accelerator only on models with a KIND_GPU instance group",
                "remove optimization.execution_accelerators.gpu_execution_accelerator or use instance policy auto",
            )
        )
    if backend != "onnxruntime":
        return problems
    arch = host.get("arch") or plan.get("arch")
    for name in gpu_names if on_gpu else []:
        if name not in _ORT_GPU_ACCELERATORS:
            problems.append(_unknown_accelerator(config, name, "gpu", _ORT_GPU_ACCELERATORS, arch))
    for name in cpu_names:
        if name not in _ORT_CPU_ACCELERATORS or (name == "openvino" and arch not in _OPENVINO_ARCHES):
            problems.append(_unknown_accelerator(config, name, "cpu", _ORT_CPU_ACCELERATORS, arch))
    return problems


def _unknown_accelerator(config: Any, name: str, side: str, known: tuple[str, ...], arch: str | None) -> Problem:
    openvino = name == "openvino"
    return Problem(
        "error",
        "unknown_accelerator",
        config.name,
        None,
        f"unknown Execution Accelerator '{name}' is requested",
        f"{side}_execution_accelerator {name!r} in model {config.name} (backend onnxruntime) on arch {arch}",
        "ONNX Runtime backend: gpu accelerators tensorrt, cuda; cpu accelerator openvino on x86_64 only "
        "(the OpenVINO execution provider is not built for aarch64)",
        f"remove the {name!r} {side}_execution_accelerator"
        + (" for aarch64 hosts (Jetson)" if openvino else f"; use one of {', '.join(known)}"),
    )


def _cc_problems(config: Any, host: dict[str, Any], effective: list[dict[str, Any]]) -> list[Problem]:
    if not config.cc_model_filenames:
        return []
    keys = sorted(config.cc_model_filenames)
    problems = []
    for group in effective:
        for gid in group["gpus"]:
            cc = gpu_compute_capability(host, gid)
            if cc is None or cc in config.cc_model_filenames:
                continue
            problems.append(
                Problem(
                    "error",
                    "cc_model_filename_missing",
                    config.name,
                    group["name"],
                    f"model {config.name} has no cc_model_filenames entry for compute capability {cc} of gpu {gid}",
                    f"cc_model_filenames keys {keys}; host facts give gpu {gid} compute capability {cc}",
                    "one cc_model_filenames entry per compute capability the model's GPUs have "
                    "(otherwise Triton falls back to default_model_filename, built for another GPU)",
                    f'add cc_model_filenames {{ key: "{cc}" value: "<plan built on a {cc} GPU>" }}',
                )
            )
    return problems


def _count_warnings(config: Any) -> list[str]:
    return [
        f"instance group {_group_name(config, i)} of model {config.name} has count {g.count}: Triton uses its default "
        "count instead (core NormalizeInstanceGroup); write count: 1 or more"
        for i, g in enumerate(config.instance_group)
        if g.count < 0
    ]


def validate(
    config: Any, plan: dict[str, Any], host: dict[str, Any], gpu_build: bool = True, backend: str | None = None
) -> list[Problem]:
    """Check a config's instance groups against the host with Triton's rules; return the problems (may be empty).

    Covers KIND_GPU without usable GPUs or on a CPU-only build, GPU ids outside the plan's
    supported set, ``gpus`` on KIND_CPU/KIND_MODEL, GPU instances of a CPU-only backend
    (OpenVINO), GPU accelerators on CPU-only models, ONNX Runtime accelerator names
    (``openvino`` is not built on aarch64) and ``cc_model_filenames`` without an entry for a used
    GPU's compute capability.
    """
    if _is_ensemble(config):
        return []
    backend = backend or backend_of(config)
    problems = _kind_problems(config, plan, host, gpu_build)
    effective = effective_instance_groups(config, plan, gpu_build, backend)
    on_gpu = any(g["kind"] == "KIND_GPU" for g in effective)
    if backend in CPU_ONLY_BACKENDS and on_gpu and not problems:
        problems.append(cpu_only_backend_problem(config, backend))
    problems += _accelerator_problems(config, plan, host, on_gpu, backend)
    if not any(p.code in ("gpu_kind_cpu_build", "gpu_kind_no_gpu", "invalid_gpu_id") for p in problems):
        problems += _cc_problems(config, host, effective)
    return problems


@dataclass
class RenderedConfig:
    """One config rendered for a host: the text to serve, the parsed messages, and what stands in the way.

    ``config_problems`` are Triton's config rules (its repository poll, the first failing one);
    ``instance_problems`` the instance-group and backend-device rules (Triton checks them when it
    creates the model, after the versions and the backend library).
    """

    text: str
    source: Any
    rendered: Any
    completed: Any
    instance_groups: list[dict[str, Any]]
    warnings: list[str]
    config_problems: list[Problem]
    instance_problems: list[Problem]

    @property
    def problems(self) -> list[Problem]:
        """The problems Triton would report, its first reason first."""
        return self.config_problems or self.instance_problems


def render_model(
    text: str,
    path: str,
    plan: dict[str, Any],
    host: dict[str, Any],
    policy: str = "auto",
    gpu_build: bool = True,
    count: int | None = None,
    name: str | None = None,
    listing: ModelListing | None = None,
    auto_complete: bool = False,
) -> RenderedConfig:
    """Parse, render and check one config for the host, under either policy.

    ``name`` is the model's directory name (default: the directory of ``path``), ``listing`` what
    the directory holds (None: unknown), ``auto_complete`` whether the server completes configs
    from model files (tritonfleet's service does not). The release of the plan keys the rules that
    changed between releases. Raises ``ModelConfigError`` only for a file the schema rejects.
    """
    directory = name or Path(path).parent.name
    source = parse_config(text, path, directory)
    backend = backend_of(autocomplete(source, directory, listing)[0])
    rendered, warnings = render_for_host(source, plan, host, policy, gpu_build, count, backend)
    # Triton judges the config it is given: the rendered one.
    completed, poll = config_problems(rendered, directory, plan.get("release"), listing, auto_complete)
    instance = [] if poll else validate(rendered, plan, host, gpu_build, backend)
    out = text if policy == "keep" else _HEADER.format(policy=policy) + to_text(rendered)
    return RenderedConfig(
        out,
        source,
        rendered,
        completed,
        effective_instance_groups(rendered, plan, gpu_build, backend),
        warnings + _count_warnings(rendered),
        poll,
        instance,
    )


def _read_optional(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def render_text(
    text: str,
    path: str,
    plan: dict[str, Any],
    host: dict[str, Any],
    policy: str = "auto",
    gpu_build: bool = True,
    count: int | None = None,
    name: str | None = None,
    listing: ModelListing | None = None,
) -> tuple[str, list[dict[str, Any]], list[str]]:
    """Parse, render and validate one config; return ``(file text, instance groups, warnings)``.

    ``keep`` returns ``text`` unchanged (comments kept); ``auto`` returns a header line plus
    ``to_text`` of the rendered config. ``listing`` is what the model directory holds (None when
    only the text is known). Raises ``ModelConfigError`` listing every error problem.
    """
    result = render_model(text, path, plan, host, policy, gpu_build, count, name, listing)
    errors = [p for p in result.problems if p.severity == "error"]
    if errors:
        raise ModelConfigError("; ".join(p.text(path) for p in errors), errors)
    return result.text, result.instance_groups, result.warnings


def render_repository(
    src: str,
    dest: str,
    plan: dict[str, Any],
    host: dict[str, Any],
    policy: str = "auto",
    gpu_build: bool = True,
    count: int | None = None,
    models: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[RenderedModel], list[str]]:
    """Render every ``<src>/<model>/config.pbtxt`` to ``<dest>/<model>/config.pbtxt``.

    ``models`` overrides ``policy``/``count`` per model name. Reads the current destination files
    to tell what changed. Returns ``(rendered models sorted by name, warnings)``; raises
    ``ModelConfigError`` with every model's errors at once, so one run shows them all.
    """
    root = Path(src)
    if not root.is_dir():
        raise ModelConfigError(
            f"model repository {src} is not a directory. Found: no directory at {src} on the controller. "
            f"Supported: a Triton model repository (<model>/config.pbtxt, <model>/<version>/...). "
            f"Fix: point repository_src at the repository directory."
        )
    rendered: list[RenderedModel] = []
    warnings: list[str] = []
    failures: list[Problem] = []
    messages: list[str] = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        config_path = model_dir / CONFIG_FILENAME
        if not config_path.is_file():
            warnings.append(f"{model_dir}: no {CONFIG_FILENAME}; left to Triton's auto-complete and not rendered")
            continue
        override = (models or {}).get(model_dir.name) or {}
        out_path = Path(dest) / model_dir.name / CONFIG_FILENAME
        try:
            text, groups, model_warnings = render_text(
                config_path.read_text(encoding="utf-8"),
                str(config_path),
                plan,
                host,
                override.get("policy") or policy,
                gpu_build,
                override.get("count") or count,
                model_dir.name,
                read_listing(model_dir),
            )
        except ModelConfigError as err:
            messages.append(str(err))
            failures += err.problems
            continue
        warnings += model_warnings
        rendered.append(
            RenderedModel(model_dir.name, str(config_path), str(out_path), text, _read_optional(out_path), groups)
        )
    if messages:
        raise ModelConfigError("; ".join(messages), failures)
    return rendered, warnings


def render_one(
    text: str,
    path: str,
    dest: str,
    plan: dict[str, Any],
    host: dict[str, Any],
    policy: str = "auto",
    gpu_build: bool = True,
    count: int | None = None,
) -> tuple[RenderedModel, list[str]]:
    """Render one config (read from ``path`` or given as text) for ``dest``; the model is named after dest's folder.

    Returns ``(rendered model, warnings)``; raises ``ModelConfigError`` like ``render_text``.
    """
    name = Path(dest).parent.name
    out, groups, warnings = render_text(text, path, plan, host, policy, gpu_build, count, name)
    return RenderedModel(name, path, dest, out, _read_optional(Path(dest)), groups), warnings
