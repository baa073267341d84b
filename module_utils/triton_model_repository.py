# SPDX-License-Identifier: Apache-2.0
"""Check a whole model repository on the controller, before any host changes, in Triton's order.

``check_repository`` reads the repository once and runs, per model, what Triton runs when it
polls and loads it: the config rules (``triton_model_rules.config_problems``), the ensemble
dependency graph, the versions the version policy loads, the backend library against the
release's backends, the instance groups rendered for the host (``triton_model_config``), the
model files, and the ensembles' data flow across models. Before that, the layout itself:
symlinks that leave the repository, dangling or looping links, special files, files at the top
level. It returns the rendered configs and every problem at once; ``validate_repository`` is the
entry point that returns only the problems.

Links inside the repository are followed: the release holds a copy of what they point to
(regular files only), so the host never sees a link.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_ensemble_rules import ensemble_graph_problems, ensemble_problems
from ansible.module_utils.triton_host import gpu_compute_capability
from ansible.module_utils.triton_model_config import (
    ModelConfigError,
    model_config_pb2,
    render_model,
)
from ansible.module_utils.triton_model_load_rules import (
    backend_problems,
    model_file_problems,
    no_version_problem,
    read_listing,
    versions_to_load,
)
from ansible.module_utils.triton_model_rules import ModelState, Problem, missing_config_problem
from ansible.module_utils.triton_release_lifecycle import IGNORED_DIR_NAMES, is_ignored
from ansible.module_utils.triton_release_tree import CONFIG_NAME, INSTANCE_GROUPS_NAME


@dataclass(frozen=True)
class RenderSettings:
    """How one host renders and judges a repository: its plan and facts, the instance policy (per model
    overrides), instance counts, whether the server is a GPU build, and the release's backends
    (None: not known yet, not checked). ``host_independent`` leaves out what depends on a host
    (its instance groups and devices): the check that holds for a whole fleet."""

    plan: dict[str, Any]
    host: dict[str, Any]
    policy: str = "auto"
    gpu_build: bool = True
    policy_overrides: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    release_backends: tuple[str, ...] | None = None
    auto_complete: bool = False
    host_independent: bool = False


@dataclass
class RepositoryCheck:
    """What ``check_repository`` found: the model names, the rendered configs and instance groups of
    the models that pass, warnings, and every problem (errors and warnings) in Triton's order."""

    models: list[str]
    configs: dict[str, str]
    instance_groups: dict[str, list[dict]]
    warnings: list[str]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """The problems that refuse the repository."""
        return [p for p in self.problems if p.severity == "error"]


def _layout_problem(code: str, model: str, message: str, found: str, supported: str, fix: str) -> Problem:
    return Problem("error", code, model, None, message, found, supported, fix)


def scan_repository(root: Path) -> tuple[list[str], list[Problem]]:
    """The model directories of a repository (sorted) and the problems of its layout.

    Refused: a missing repository, one without models, files at its top level (a repository holds
    only model directories), links that leave the repository or dangle, directory links that loop,
    and anything that is neither a regular file nor a directory. Hidden top-level entries and
    server caches (``__pycache__``, ``*.pyc``) are not part of a repository.
    """
    if not root.is_dir():
        return [], [
            _layout_problem(
                "repository_missing",
                str(root),
                f"model repository {root} is not a directory",
                f"{'nothing' if not root.exists() else 'a file'} at {root} on the controller",
                "a Triton model repository: one directory per model (<model>/config.pbtxt, <model>/<version>/...)",
                "set triton_models_src to such a directory",
            )
        ]
    names: list[str] = []
    stray: list[str] = []
    problems: list[Problem] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name in IGNORED_DIR_NAMES:
            continue
        if entry.name == INSTANCE_GROUPS_NAME and entry.is_file():
            continue
        problems += _link_problems(root, entry)
        if not entry.is_dir():
            if entry.exists():
                stray.append(entry.name)
            continue
        names.append(entry.name)
        problems += _tree_problems(root, entry)
    if stray:
        problems.append(
            _layout_problem(
                "stray_top_level_file",
                str(root),
                f"model repository {root} has files at its top level: {', '.join(stray)}",
                f"{', '.join(stray)} next to the model directories",
                "a repository holds only model directories",
                "move or remove those files",
            )
        )
    if not names and not problems:
        problems.append(
            _layout_problem(
                "repository_empty",
                str(root),
                f"model repository {root} holds no model",
                f"no sub-directory with a {CONFIG_NAME} in {root}",
                "a release needs at least one model",
                "point triton_models_src at a repository such as examples/model_repository",
            )
        )
    return names, problems


def _tree_problems(root: Path, model_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    for dirpath, dirnames, filenames in os.walk(model_dir):
        current = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIR_NAMES)
        for name in [*dirnames, *sorted(filenames)]:
            path = current / name
            if is_ignored(path.relative_to(root)):
                continue
            if path.is_symlink():
                problems += _link_problems(root, path)
            elif name in filenames and not stat.S_ISREG(path.lstat().st_mode):
                problems.append(
                    _layout_problem(
                        "not_regular_file",
                        model_dir.name,
                        f"{path.relative_to(root)} is not a regular file",
                        f"a {_file_kind(path)} at {path}",
                        "model files and directories only (a release copies regular files)",
                        f"remove {path}",
                    )
                )
    return problems


def _file_kind(path: Path) -> str:
    mode = path.lstat().st_mode
    for test, kind in ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device")):
        if test(mode):
            return kind
    return "special file"


def _link_problems(root: Path, link: Path) -> list[Problem]:
    """A link leaving the repository would deploy a controller file to the host; a dangling or looping
    one would fail the copy. Links inside the repository are deployed as copies of their targets."""
    if not link.is_symlink():
        return []
    relative = link.relative_to(root)
    model = relative.parts[0]
    target = os.readlink(link)
    real = Path(os.path.realpath(link))
    root_real = Path(os.path.realpath(root))
    supported = (
        "links that stay inside the repository (their targets are deployed as copies); files the model needs "
        "copied into the repository"
    )
    if not real.exists():
        return [
            _layout_problem(
                "link_dangling",
                model,
                f"{relative} is a link to {target}, which does not exist",
                f"{link} -> {target}",
                supported,
                f"remove {relative} or point it at a file inside {root}",
            )
        ]
    if real != root_real and root_real not in real.parents:
        return [
            _layout_problem(
                "link_escapes",
                model,
                f"{relative} links outside the model repository, to {real}",
                f"{link} -> {target} (resolves to {real}, outside {root_real})",
                supported,
                f"copy what {relative} needs into {root / model} instead of linking it, or remove the link",
            )
        ]
    parent_real = Path(os.path.realpath(link.parent))
    if real.is_dir() and (real == parent_real or real in parent_real.parents):
        return [
            _layout_problem(
                "link_loop",
                model,
                f"{relative} links to {real}, a directory that contains the link itself",
                f"{link} -> {target}",
                supported,
                f"remove {relative}",
            )
        ]
    return []


def check_repository(src: Path, settings: RenderSettings) -> RepositoryCheck:
    """Render and judge every model of ``src`` for one host, in Triton's order; never raises for a model."""
    names, problems = scan_repository(src)
    if any(p.code in ("repository_missing", "repository_empty") for p in problems):
        return RepositoryCheck([], {}, {}, [], problems)
    release = settings.plan.get("release")
    states: dict[str, ModelState] = {}
    rendered: dict[str, Any] = {}
    warnings: list[str] = []
    by_model: dict[str, list[Problem]] = {name: [] for name in names}
    for name in names:
        listing = read_listing(src / name)
        state = states[name] = ModelState(name, None, listing)
        config_path = src / name / CONFIG_NAME
        if not config_path.is_file():
            missing = missing_config_problem(model_config_pb2.ModelConfig(), name, listing, settings.auto_complete)
            _fail(state, by_model, "poll", [missing] if missing else [])
            continue
        try:
            result = render_model(
                config_path.read_text(encoding="utf-8"),
                str(config_path),
                settings.plan,
                settings.host,
                settings.policy_overrides.get(name, settings.policy),
                settings.gpu_build,
                settings.counts.get(name),
                name,
                listing,
                settings.auto_complete,
            )
        except ModelConfigError as err:
            state.failed_phase, state.error = "poll", str(err)
            by_model[name].append(
                Problem("error", "config_syntax", name, None, *_split_four_parts(str(err), str(config_path)))
            )
            continue
        rendered[name] = result
        state.config = result.completed
        # What rendering did is about one host's devices, not the fleet's.
        warnings += [] if settings.host_independent else result.warnings
        if result.config_problems:
            _fail(state, by_model, "poll", result.config_problems)
    for name, problem in ensemble_graph_problems(states, release).items():
        _fail(states[name], by_model, "graph", [problem])
    for name in names:
        state = states[name]
        if state.failed_phase or name not in rendered:
            continue
        _load_checks(state, rendered[name], settings, release, by_model, warnings)
    for name in _ensembles_in_dependency_order(states):
        state = states[name]
        if not state.failed_phase:
            _fail(state, by_model, "ensemble", ensemble_problems(name, states))
    configs = {n: r.text for n, r in rendered.items() if not states[n].failed_phase}
    groups = {n: r.instance_groups for n, r in rendered.items() if not states[n].failed_phase}
    ordered = problems + [p for name in names for p in by_model[name]]
    return RepositoryCheck(names, configs, groups, warnings, ordered)


def _fail(state: ModelState, by_model: dict[str, list[Problem]], phase: str, problems: list[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    by_model.setdefault(state.name, []).extend(problems)
    if errors and not state.failed_phase:
        state.failed_phase, state.error = phase, errors[0].message


def _load_checks(
    state: ModelState,
    result: Any,
    settings: RenderSettings,
    release: str | None,
    by_model: dict[str, list[Problem]],
    warnings: list[str],
) -> None:
    """What Triton checks when it loads the model: versions, backend library, instance groups, model files."""
    config, listing = result.completed, state.listing
    versions, notes = versions_to_load(config, listing)
    state.versions = versions
    warnings += [f"model {state.name}: {note}" for note in notes]
    # Triton stops at the first of these; the others are facts of the same repository, reported with it.
    found = [] if versions else [no_version_problem(config, listing, notes)]
    if not config.HasField("ensemble_scheduling"):
        backends = None if settings.release_backends is None else list(settings.release_backends)
        found += backend_problems(config, listing, versions, release, backends)
        found += [] if settings.host_independent else result.instance_problems
        if versions and not found:
            ccs = [
                gpu_compute_capability(settings.host, gid) if group["kind"] == "KIND_GPU" else None
                for group in result.instance_groups
                for gid in (group["gpus"] or [None])
            ]
            instance = f"{result.instance_groups[0]['name']}_0" if result.instance_groups else f"{state.name}_0"
            found = model_file_problems(config, listing, versions, ccs, instance)
    _fail(state, by_model, "load", found)


def _ensembles_in_dependency_order(states: dict[str, ModelState]) -> list[str]:
    """Ensembles after the ensembles they use as steps (a cycle was already refused by the graph rules)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in states:
            return
        seen.add(name)
        config = states[name].config
        if config is None or not config.HasField("ensemble_scheduling"):
            return
        for step in config.ensemble_scheduling.step:
            visit(step.model_name)
        order.append(name)

    for name in sorted(states):
        visit(name)
    return order


def _split_four_parts(message: str, path: str) -> tuple[str, str, str, str]:
    """A ModelConfigError's text back into its four parts (what, found, supported, fix)."""
    body = message.removeprefix(f"{path} ").removeprefix(f"{path}: ")
    what, _, rest = body.partition(". Found: ")
    found, _, rest = rest.partition(". Supported: ")
    supported, _, fix = rest.partition(". Fix: ")
    return what, found, supported, fix.rstrip(".")


def problems_message(src: Path, problems: list[Problem]) -> str:
    """Every problem of a repository in one message, four parts each, errors first."""
    errors = [p for p in problems if p.severity == "error"]
    parts = [p.text(_where(src, p)) for p in errors]
    return f"model repository {src} cannot be served ({len(errors)} problem{'s' if len(errors) != 1 else ''}): " + (
        "; ".join(parts)
    )


def _where(src: Path, problem: Problem) -> str:
    if problem.model == str(src) or problem.model.startswith("/"):
        return problem.model
    config = src / problem.model / CONFIG_NAME
    return str(config) if config.is_file() else str(src / problem.model)


def validate_repository(
    src: str | Path,
    plan: dict[str, Any],
    host: dict[str, Any],
    release_backends: list[str] | None,
    policy: str = "auto",
    gpu_build: bool = True,
    policy_overrides: dict[str, str] | None = None,
    counts: dict[str, int] | None = None,
) -> list[Problem]:
    """Every problem of the repository ``src`` for one host (empty: Triton will serve it as rendered).

    ``plan``/``host`` are the host's ``triton_plan``/``triton_host``; ``release_backends`` the
    backends of the release that will serve it (the manifest's ``backends`` once installed, the
    plan's ``backends`` before; None: unknown, not checked).
    """
    settings = render_settings(plan, host, policy, gpu_build, policy_overrides, counts, release_backends)
    return check_repository(Path(src), settings).problems


def render_settings(
    plan: dict[str, Any],
    host: dict[str, Any],
    policy: str = "auto",
    gpu_build: bool = True,
    policy_overrides: dict[str, str] | None = None,
    counts: dict[str, int] | None = None,
    release_backends: list[str] | None = None,
) -> RenderSettings:
    """How one host renders and judges a repository.

    ``policy_overrides`` and ``counts`` map model names to a policy (``auto``/``keep``) and
    an instance count; a model without an entry gets ``policy`` and its written count.
    ``release_backends`` are the backends of the release that will serve the repository (None:
    not known yet, not checked).
    """
    return RenderSettings(
        plan,
        host,
        policy,
        gpu_build,
        dict(policy_overrides or {}),
        dict(counts or {}),
        None if release_backends is None else tuple(release_backends),
    )
