# SPDX-License-Identifier: Apache-2.0
"""Ensembles across a repository: the dependency graph before anything loads, then, once the steps
load, required versions, batch sizes and the tensors along every edge (core
``ConnectDependencyGraph``, ``CircularDependencyCheck``, ``CheckNode``, ``ValidateEnsembleConfig``).

Pure functions over ``ModelState`` objects; the rows of ``triton_model_rules.RULES`` with phases
``graph`` and ``ensemble`` and docs/model-config-rules.md name their Triton sources.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.triton_model_rules import (
    WILDCARD_DIM,
    Finding,
    ModelState,
    Problem,
    dims_text,
    enum_name,
    make_problem,
)
from ansible.module_utils.triton_versions import version_at_least

# "not available or ambiguous" since 23.03 (models in several repositories); 23.01/23.02 say "not available"
# (core@r23.01/r23.03 src/model_repository_manager.cc ConnectDependencyGraph).
AMBIGUOUS_WORDING_SINCE = "23.03"


def ensemble_graph_problems(models: Mapping[str, ModelState], release: str | None = None) -> dict[str, Problem]:
    """ConnectDependencyGraph and CircularDependencyCheck for every ensemble that passed its own poll rules.

    A step model that is missing or failed the poll is 'not available'. Returns model -> problem.
    """
    available = {n for n, m in models.items() if m.failed_phase != "poll" and m.config is not None}
    problems: dict[str, Problem] = {}
    ambiguous = " or ambiguous" if release is None or version_at_least(release, AMBIGUOUS_WORDING_SINCE) else ""
    for name, model in sorted(models.items()):
        if model.failed_phase or model.config is None or not model.config.HasField("ensemble_scheduling"):
            continue
        missing = sorted({s.model_name for s in model.config.ensemble_scheduling.step} - available)
        if missing:
            problems[name] = make_problem(
                "ensemble_step_unavailable",
                name,
                (
                    f"ensemble {name} contains models that are not available{ambiguous}: {', '.join(missing)}",
                    f"steps of {name}/config.pbtxt name {', '.join(missing)}; the repository's valid models are "
                    f"{', '.join(sorted(available)) or 'none'}",
                    "ensemble steps naming models of the same repository that pass their own checks",
                    "add or fix those models, or correct the step's model_name",
                ),
            )
    for name, model in sorted(models.items()):
        if name in problems or model.failed_phase or model.config is None:
            continue
        cycle = _cycle(name, models, problems)
        if cycle:
            problems[name] = make_problem(
                "ensemble_circular",
                name,
                (
                    f"circular dependency between ensembles: {name} -> ... -> {cycle} -> {name}",
                    f"{name} reaches itself through its steps ({cycle} lists {name})",
                    "ensembles whose steps never lead back to themselves",
                    f"remove the step that names {name} from {cycle}",
                ),
            )
    return problems


def _upstreams(model: ModelState) -> list[str]:
    if model.config is None or not model.config.HasField("ensemble_scheduling"):
        return []
    return list(dict.fromkeys(s.model_name for s in model.config.ensemble_scheduling.step))


def _cycle(start: str, models: Mapping[str, ModelState], failed: Mapping[str, Problem]) -> str | None:
    """CircularDependencyCheck: the model whose step leads back to ``start``, or None."""
    seen: set[str] = set()

    def visit(current: str) -> str | None:
        for upstream in _upstreams(models[current]):
            if upstream not in models or upstream in failed or models[upstream].failed_phase == "poll":
                continue
            if upstream == start:
                return current
            if upstream in seen:
                continue
            seen.add(upstream)
            found = visit(upstream)
            if found:
                return found
        return None

    return visit(start)


@dataclass
class _Node:
    model: str
    dtype: str = ""
    dims: tuple[int, ...] = ()
    full: tuple[int, ...] = ()
    decoupled: bool = False
    label: int = 0
    visited: bool = False
    prev: list[_Node] = field(default_factory=list)
    next: list[_Node] = field(default_factory=list)
    sibling: _Node | None = None


def _node(model: str, batching: bool, io: Any, use_reshape: bool = False) -> _Node:
    dims = tuple(io.reshape.shape) if use_reshape and io.HasField("reshape") else tuple(io.dims)
    full = ((WILDCARD_DIM,) if batching else ()) + dims
    return _Node(model, enum_name(io, "data_type", io.data_type), dims, full)


def _same_dims(left: tuple[int, ...], right: tuple[int, ...]) -> bool:
    return len(left) == len(right) and all(
        a in (WILDCARD_DIM, b) or b == WILDCARD_DIM for a, b in zip(left, right, strict=True)
    )


def ensemble_problems(name: str, models: Mapping[str, ModelState]) -> list[Problem]:
    """CheckNode and ValidateEnsembleConfig for ensemble ``name``, whose steps are all loadable."""
    ensemble = models[name].config
    where = f"ensemble_scheduling of {name}/config.pbtxt"
    steps = list(ensemble.ensemble_scheduling.step)
    for step in steps:
        upstream = models[step.model_name]
        if upstream.failed_phase:
            loading = upstream.failed_phase == "load"
            version = upstream.versions[-1] if upstream.versions else 1
            detail = (
                f"which has no loaded version. Model '{step.model_name}' loading failed with error: version {version} "
                f"is at UNAVAILABLE state: {upstream.error}"
                if loading
                else f"which is not valid. Model '{step.model_name}' failed with error: {upstream.error}"
            )
            return [
                make_problem(
                    "ensemble_step_not_loaded" if loading else "ensemble_step_invalid",
                    name,
                    (
                        f"ensemble '{name}' depends on '{step.model_name}' {detail}",
                        f"step {step.model_name!r} of {where} fails its own checks",
                        "ensembles whose step models load",
                        f"fix {step.model_name} (its own message says how)",
                    ),
                )
            ]
        if step.model_version != -1 and step.model_version not in upstream.versions:
            return [
                make_problem(
                    "ensemble_required_version",
                    name,
                    (
                        f"ensemble '{name}' depends on '{step.model_name}' whose required version "
                        f"{step.model_version} is not loaded.",
                        f"step {step.model_name!r} asks model_version {step.model_version}; {step.model_name} loads "
                        f"versions {upstream.versions} under its version_policy",
                        "model_version -1 (the newest loaded) or a version the step model loads",
                        f"set model_version to -1 or one of {upstream.versions}, or add that version of "
                        f"{step.model_name}",
                    ),
                )
            ]
    batching = ensemble.max_batch_size > 0
    tensors: dict[str, _Node] = {io.name: _node(name, batching, io, True) for io in ensemble.input}
    sink = _Node(name)
    for io in ensemble.output:
        node = tensors.setdefault(io.name, _node(name, batching, io, True))
        sink.prev.append(node)
        node.next.append(sink)
    for step in steps:
        found = _step_mapping(name, step, models[step.model_name].config, ensemble.max_batch_size, tensors, where)
        if found:
            code, finding = found
            return [make_problem(code, name, finding)]
    queue: deque[_Node] = deque()
    for io in ensemble.input:
        tensors[io.name].visited = True
        queue.append(tensors[io.name])
    labels = 0
    while queue:
        current = queue.popleft()
        for nxt in current.next:
            if nxt.visited or not all(p.visited for p in nxt.prev):
                continue
            first = nxt.prev[0].label
            if any(p.label != first for p in nxt.prev):
                return [
                    make_problem(
                        "ensemble_decoupled_branching",
                        name,
                        (
                            f"in ensemble {name}, step of model '{nxt.model}' receives inputs originated from "
                            "different decoupled models",
                            f"the inputs of step {nxt.model!r} come from different decoupled steps in {where}",
                            "a step fed by at most one decoupled model's responses",
                            "route the decoupled outputs through one step, or make those steps non-decoupled",
                        ),
                    )
                ]
            if nxt.sibling is not None and nxt.sibling.visited:
                nxt.label = nxt.sibling.label
            else:
                if nxt.decoupled:
                    labels += 1
                nxt.label = labels if nxt.decoupled else first
                if nxt.sibling is not None:
                    nxt.sibling.label, nxt.sibling.visited = nxt.label, True
            nxt.visited = True
            queue.append(nxt)
    return []


def _step_mapping(
    name: str, step: Any, config: Any, ensemble_batch: int, tensors: dict[str, _Node], where: str
) -> tuple[str, Finding] | None:
    """The max batch size check and ValidateTensorMapping for one step."""
    model = step.model_name
    if 0 < config.max_batch_size < ensemble_batch:
        return "ensemble_batch_size", (
            f"ensemble {name} allows maximum batch size {ensemble_batch}, but it contains model {model} which only "
            f"allows maximum batch size to be {config.max_batch_size}",
            f"{name} max_batch_size {ensemble_batch}, step {model} max_batch_size {config.max_batch_size}",
            "an ensemble max_batch_size no larger than any batching step's",
            f"lower {name}'s max_batch_size to {config.max_batch_size} or raise {model}'s",
        )
    batching = config.max_batch_size > 0
    inputs = {io.name: io for io in config.input}
    for key, value in step.input_map.items():
        if key not in inputs:
            return "ensemble_map_unknown_input", (
                f"in ensemble {name}, ensemble tensor {value} is mapping to non-existing input {key} in model {model}",
                f"input_map key {key!r} of step {model}; {model} has inputs {sorted(inputs)} ({where})",
                "input_map keys naming inputs of the step model",
                f"use one of {sorted(inputs)} as the key",
            )
    for io in config.input:
        mapped = [value for key, value in step.input_map.items() if key == io.name]
        for value in mapped:
            found = _record(name, value, _node(model, batching, io), tensors)
            if found:
                return found
        if not mapped and not io.optional:
            return "ensemble_input_unmapped", (
                f"in ensemble {name}, input {io.name} in model {model} is not mapped to any ensemble tensors",
                f"step {model} of {where} maps {sorted(step.input_map)}, not {io.name!r}",
                "every non-optional input of a step model mapped to an ensemble tensor",
                f"add input_map {{ key: {io.name!r} value: <tensor> }} to the step",
            )
    outputs = {io.name: io for io in config.output}
    for key, value in step.output_map.items():
        if key not in outputs:
            return "ensemble_map_unknown_output", (
                f"in ensemble {name}, ensemble tensor {value} is mapped from non-existing output {key} in model "
                f"{model}",
                f"output_map key {key!r} of step {model}; {model} has outputs {sorted(outputs)} ({where})",
                "output_map keys naming outputs of the step model",
                f"use one of {sorted(outputs)} as the key",
            )
    sibling = _Node(model)
    for key, value in step.output_map.items():
        matched = [io for io in config.output if io.name == key]
        for io in matched:
            found = _record(name, value, _node(model, batching, io), tensors)
            if found:
                return found
            tensors[value].sibling = sibling
        if len(matched) > 1:
            return "ensemble_outputs_same_tensor", (
                f"in ensemble {name}, multiple outputs in model {model} are mapped to the same ensemble tensor {value}",
                f"tensor {value!r} mapped from several outputs of {model} in {where}",
                "each ensemble tensor fed by one step output",
                "map the outputs to different tensors",
            )
    decoupled = config.model_transaction_policy.decoupled
    for value in step.output_map.values():
        node = tensors[value]
        node.decoupled = decoupled
        for source in step.input_map.values():
            node.prev.append(tensors[source])
            tensors[source].next.append(node)
    return None


def _record(name: str, tensor: str, node: _Node, tensors: dict[str, _Node]) -> tuple[str, Finding] | None:
    """The first end of an ensemble tensor defines it; every other end must agree with it."""
    if tensor in tensors:
        return _consistency(name, tensor, tensors[tensor], node)
    tensors[tensor] = node
    return None


def _consistency(name: str, tensor: str, left: _Node, right: _Node) -> tuple[str, Finding] | None:
    """ValidateTensorConsistency: data type, then shape (with or without the batch dimension)."""
    prefix = f"in ensemble {name}, ensemble tensor {tensor}: "
    if left.dtype != right.dtype:
        return "ensemble_tensor_inconsistent", (
            f"{prefix}inconsistent data type: {left.dtype} is inferred from model {left.model} while {right.dtype} is "
            f"inferred from model {right.model}",
            f"tensor {tensor!r} is {left.dtype} in {left.model} and {right.dtype} in {right.model}",
            "the same data type on both ends of every ensemble tensor",
            "make the two configs agree (or convert in a step between them)",
        )
    if not _same_dims(left.dims, right.dims) and not _same_dims(left.full, right.full):
        return "ensemble_tensor_inconsistent", (
            f"{prefix}inconsistent shape: {dims_text(left.full)} is inferred from model {left.model} while "
            f"{dims_text(right.full)} is inferred from model {right.model}",
            f"tensor {tensor!r} has dims {dims_text(left.full)} in {left.model} and {dims_text(right.full)} in "
            f"{right.model}",
            "matching shapes on both ends of every ensemble tensor (-1 matches any size)",
            "make the two configs' dims agree",
        )
    return None
