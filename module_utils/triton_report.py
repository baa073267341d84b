# SPDX-License-Identifier: Apache-2.0
"""Per-host verification report: assemble it from the checks' results, render JSON and Markdown.

Inputs are the results ``playbooks/verify.yml`` collects: ``triton_host`` facts, the plan and
the compatibility verdict (``triton_compat``), the install manifest, the models release
(``current`` and its ``instance_groups.json``), ``triton_device_check`` (``devices`` and
``findings``) and ``triton_server_check`` (``report``). Every finding keeps its fix and says
which check raised it. Pure functions except ``write_report``, which writes atomically.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_release_lifecycle import CURRENT_LINK, linked_release
from ansible.module_utils.triton_release_lifecycle import read_manifest as lifecycle_read_manifest

SCHEMA_VERSION = 1
REPORT_FILES = ("verify.json", "verify.md")


def _finding(check: str, raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "check": check,
        "severity": raw.get("severity", "error"),
        "code": raw.get("code", check),
        "model": raw.get("model"),
        "message": raw.get("message", ""),
        "fix": raw.get("fix", ""),
    }


def _platform(host: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "platform",
        "arch",
        "os",
        "kernel_release",
        "board",
        "module_name",
        "soc",
        "l4t_version",
        "jetpack_version",
        "igpu",
        "driver_version",
        "cuda_driver_version",
        "cuda_version",
        "tensorrt_version",
        "nvml",
        "gpus",
    )
    return {key: host.get(key) for key in keys}


def _latency(models: list[dict[str, Any]]) -> dict[str, Any]:
    values = [m["latency_ms"] for m in models if isinstance(m.get("latency_ms"), (int, float))]
    if not values:
        return {"count": 0, "median_ms": None, "max_ms": None}
    return {"count": len(values), "median_ms": round(statistics.median(values), 2), "max_ms": round(max(values), 2)}


def build_report(
    host_name: str,
    generated_at: str,
    host: dict[str, Any] | None,
    plan: dict[str, Any] | None,
    compat_error: str | None,
    manifest: dict[str, Any] | None,
    release: dict[str, Any] | None,
    device_check: dict[str, Any] | None,
    server_check: dict[str, Any] | None,
    app: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the report dict written as ``verify.json`` (schema_version 1).

    ``release`` is ``{id, root, instance_groups}`` (null when no release is active);
    ``device_check`` the module result (``devices``, ``findings``); ``server_check`` its
    ``report``; ``app`` the ``triton_app_check`` result of an embedded application (null when the
    host declares none; see :func:`application_section`). Findings are
    ``{check, severity, code, model, message, fix}``; a missing
    input becomes an error finding of check ``verify``, so a report
    never looks clean because a check did not run. ``verdict`` is ``failed`` when any
    error finding exists, else ``passed``.
    """
    findings: list[dict[str, Any]] = []
    if compat_error:
        findings.append(
            _finding(
                "compat",
                {"code": "plan_incompatible", "message": compat_error, "fix": "see the message; rerun preflight"},
            )
        )
    if manifest is None:
        findings.append(
            _finding(
                "verify",
                {
                    "code": "server_not_installed",
                    "message": "no installed release: current/manifest.json is missing under the install prefix",
                    "fix": "run playbooks/site.yml (triton_install) on this host",
                },
            )
        )
    if release is None:
        findings.append(
            _finding(
                "verify",
                {
                    "code": "models_not_deployed",
                    "message": "no model release is active: the models root has no current link",
                    "fix": "run playbooks/site.yml (triton_models) on this host",
                },
            )
        )
    if device_check is None:
        findings.append(
            _finding(
                "verify",
                {
                    "code": "device_check_not_run",
                    "message": "the device check did not run (no plan for this host)",
                    "fix": "fix the compatibility finding first, then verify again",
                },
            )
        )
    else:
        findings += [_finding("device_check", f) for f in device_check.get("findings", [])]
    server = server_check or {}
    if server_check is None:
        findings.append(
            _finding(
                "verify",
                {
                    "code": "server_check_not_run",
                    "message": "the server check did not run",
                    "fix": "fix the findings above, then verify again",
                },
            )
        )
    else:
        findings += [_finding("server_check", f) for f in server.get("findings", [])]
    application = application_section(app) if app is not None else None
    if application is not None:
        findings += application["findings"]
    models = server.get("models", [])
    errors = [f for f in findings if f["severity"] == "error"]
    return {
        "schema_version": SCHEMA_VERSION,
        "host": host_name,
        "generated_at": generated_at,
        "verdict": "failed" if errors else "passed",
        "summary": {
            "errors": len(errors),
            "warnings": sum(1 for f in findings if f["severity"] == "warning"),
            "models": len(models),
            "models_ready": sum(1 for m in models if m.get("state") == "READY"),
        },
        "platform": _platform(host or {}),
        "versions": {
            "release": (manifest or {}).get("release"),
            "server_version": (manifest or {}).get("server_version"),
            "install_method": (manifest or {}).get("method"),
            "gpu_build": (manifest or {}).get("gpu_build"),
            "models_release": (release or {}).get("id"),
        },
        "plan": plan,
        "compatibility": {
            "verdict": "incompatible" if compat_error else ("compatible" if plan else "unknown"),
            "message": compat_error,
            "notes": (plan or {}).get("notes", []),
        },
        "devices": (device_check or {}).get("devices"),
        "server": server.get("server"),
        "models": models,
        "expected_instance_groups": (release or {}).get("instance_groups"),
        "gpu_memory": server.get("gpu_memory"),
        "latency": _latency(models),
        "application": application,
        "findings": findings,
    }


def application_section(app: dict[str, Any]) -> dict[str, Any]:
    """The report's ``application`` part from a ``triton_app_check`` result (a failed run becomes a finding).

    ``{release, app_release, binary, process, environment, environment_source, gpu_memory, probe,
    verdict, findings}``; findings carry check ``app_check`` or ``app_probe``.
    """
    if app.get("failed") and not app.get("app_check"):
        finding = _finding(
            "app_check",
            {
                "code": "app_check_not_run",
                "message": f"the embedded application could not be checked: {app.get('msg') or 'no message'}",
                "fix": "deploy the application (playbooks/app.yml), then verify again",
            },
        )
        return {"verdict": "failed", "findings": [finding], "release": None, "app_release": None, "binary": None}
    check = app.get("app_check") or {}
    probe = app.get("probe")
    findings = [_finding("app_check", f) for f in check.get("findings") or []]
    findings += [_finding("app_probe", f) for f in (probe or {}).get("findings") or []]
    return {
        "release": app.get("release"),
        "app_release": app.get("app_release"),
        "binary": check.get("binary"),
        "process": check.get("process"),
        "environment": check.get("environment"),
        "environment_source": check.get("environment_source"),
        "gpu_memory": check.get("gpu_memory"),
        "probe": probe,
        "verdict": "failed" if any(f["severity"] == "error" for f in findings) else "passed",
        "findings": findings,
    }


def render_json(report: dict[str, Any]) -> str:
    """Return ``verify.json`` text: sorted keys, two-space indent, newline at the end."""
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _device_lines(devices: dict[str, Any] | None) -> list[str]:
    if not devices:
        return ["Not checked."]
    nvml, cuda = devices.get("nvml") or {}, devices.get("cuda") or {}
    lines = [
        f"- NVML: {'usable' if nvml.get('usable') else 'not usable'}"
        + (f", {nvml.get('count')} GPU(s)" if nvml.get("usable") else f" ({nvml.get('reason') or 'no reason given'})"),
        f"- CUDA (with the server's environment): {'available' if cuda.get('available') else 'unavailable'}"
        + (
            f", {cuda.get('count')} device(s)"
            if cuda.get("available")
            else f" ({cuda.get('reason') or cuda.get('error') or 'no reason given'})"
        )
        + f", CUDA_VISIBLE_DEVICES={cuda.get('cuda_visible_devices')!r}",
    ]
    gpus = [
        [seen_by, g.get("index"), g.get("name"), g.get("uuid"), g.get("compute_capability")]
        for seen_by, listed in (("NVML", nvml.get("gpus")), ("CUDA", cuda.get("devices")))
        for g in listed or []
    ]
    if gpus:
        lines += ["", *_table(["seen by", "index", "name", "uuid", "compute capability"], gpus)]
    nodes = [
        [n.get("path"), n.get("exists"), n.get("accessible"), n.get("group")]
        for n in devices.get("nodes") or []
        if n.get("required") or n.get("exists")
    ]
    if nodes:
        lines += ["", *_table(["device node", "exists", "accessible", "group"], nodes)]
    return lines


def _gpu_memory_lines(memory: dict[str, Any] | None) -> list[str]:
    if not memory:
        return ["Not checked."]
    if not memory.get("measured"):
        return [f"Not measured: {memory.get('reason') or 'no reason given'}."]
    lines = [f"Measured for pid(s) {_cell(memory.get('pids'))}: {memory.get('total_bytes', 0)} bytes in total."]
    rows = [[g.get("index"), g.get("name"), g.get("used_bytes"), g.get("processes")] for g in memory.get("gpus") or []]
    if rows:
        lines += ["", *_table(["GPU", "name", "bytes used by the server", "processes"], rows)]
    return lines


def _application_lines(app: dict[str, Any]) -> list[str]:
    binary = app.get("binary")
    if not binary:
        return ["Not checked (see the findings)."]
    library = binary.get("library") or {}
    release = app.get("release") or {}
    process = app.get("process")
    environment = app.get("environment") or {}
    device_env = {k: v for k, v in environment.items() if k.startswith(("CUDA_", "NVIDIA_"))}
    lines = [
        f"- Verdict: **{app.get('verdict')}**; application release {_cell(app.get('app_release'))}",
        f"- Binary: {binary.get('path')} "
        f"({'ELF' if binary.get('elf') else 'script ' + str(binary.get('interpreter'))}), "
        f"NEEDED {_cell(binary.get('needed'))}",
        f"- libtritonserver: {_cell(library.get('path'))} via {_cell(library.get('via'))}, GPU build "
        f"{_cell(library.get('gpu_build'))}; release {_cell(release.get('dir'))} "
        f"(server {_cell(release.get('server_version'))}, "
        f"header {_cell(release.get('include'))})",
        f"- Its own CUDA calls: {_cell(binary.get('cuda_device_calls'))}; Triton option setters: "
        f"{_cell([s.removeprefix('TRITONSERVER_ServerOptionsSet') for s in binary.get('option_setters') or []])}",
        f"- Device environment ({app.get('environment_source')}): "
        + (", ".join(f"{k}={v!r}" for k, v in sorted(device_env.items())) or "none set"),
    ]
    if process is not None:
        lines.append(
            "- Process: "
            + (f"pid {process.get('pid')}" if process.get("found") else f"not running ({process.get('reason')})")
            + (f", mapped {_cell(process.get('triton_libraries'))}" if process.get("found") else "")
        )
    lines += ["", "GPU memory of the application:", "", *_gpu_memory_lines(app.get("gpu_memory"))]
    probe = app.get("probe")
    if probe:
        server = probe.get("server") or {}
        lines += [
            "",
            f"In-process probe through {_cell(server.get('library'))} (Triton {_cell(server.get('version'))}, C API "
            f"{_cell(server.get('api_version'))}), options {_cell(probe.get('options'))}, "
            + ("completed" if probe.get("ran") else f"failed: {probe.get('reason')}")
            + f" in {_cell(probe.get('duration_ms'))} ms:",
            "",
        ]
        rows = []
        for model in probe.get("models") or []:
            inference = model.get("inference") or {}
            asks = [
                f"{a['tensor']} {a['asked']['memory_type']}:{a['asked']['device']}"
                f"->{a['given']['memory_type']}:{a['given']['device']}"
                for a in inference.get("allocations") or []
            ]
            rows.append(
                [
                    model.get("name"),
                    "loaded" if model.get("loaded") else model.get("load_message"),
                    [
                        f"{g.get('kind')} x{g.get('count')}" + (f" gpus {g.get('gpus')}" if g.get("gpus") else "")
                        for g in model.get("instance_groups") or []
                    ],
                    ("ok" if inference.get("ok") else inference.get("message")) if inference else None,
                    [f"{o.get('name')}={o.get('data')}" for o in inference.get("outputs") or []],
                    asks,
                    inference.get("latency_ms"),
                ]
            )
        lines += _table(
            ["model", "load", "instance groups (Triton)", "inference", "outputs", "allocator asked->given", "ms"], rows
        )
        lines += ["", "GPU memory of the probe:", "", *_gpu_memory_lines(probe.get("gpu_memory"))]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """Return ``verify.md``: verdict, platform, versions, plan, devices, models, memory, findings."""
    platform = report.get("platform") or {}
    versions = report.get("versions") or {}
    plan = report.get("plan") or {}
    compat = report.get("compatibility") or {}
    summary = report.get("summary") or {}
    os_info = platform.get("os") or {}
    lines = [
        f"# Triton verification: {report['host']}",
        "",
        f"**Verdict: {report['verdict'].upper()}** — {summary.get('errors', 0)} error(s), "
        f"{summary.get('warnings', 0)} warning(s), {summary.get('models_ready', 0)}/{summary.get('models', 0)} "
        f"model(s) ready. Generated {report['generated_at']}.",
        "",
        "## Platform",
        "",
        *_table(
            ["platform", "arch", "OS", "board", "JetPack (L4T)", "driver", "CUDA driver", "CUDA toolkit"],
            [
                [
                    platform.get("platform"),
                    platform.get("arch"),
                    os_info.get("pretty_name"),
                    platform.get("module_name") or platform.get("board"),
                    f"{platform.get('jetpack_version')} ({platform.get('l4t_version')})"
                    if platform.get("l4t_version")
                    else None,
                    platform.get("driver_version"),
                    platform.get("cuda_driver_version"),
                    platform.get("cuda_version"),
                ]
            ],
        ),
        "",
        "## Versions",
        "",
        *_table(
            ["Triton release", "server", "install method", "GPU build", "models release"],
            [
                [
                    versions.get("release"),
                    versions.get("server_version"),
                    versions.get("install_method"),
                    versions.get("gpu_build"),
                    versions.get("models_release"),
                ]
            ],
        ),
        "",
        "## Plan and compatibility",
        "",
        f"- Verdict: **{compat.get('verdict')}**" + (f": {compat['message']}" if compat.get("message") else ""),
    ]
    if plan:
        lines.append(
            f"- Plan: Triton {plan.get('release')} ({plan.get('server_version')}) by {plan.get('install_method')}, "
            f"{plan.get('instance_kind')}, gpu_ids {plan.get('gpu_ids')}, hide_gpus {plan.get('hide_gpus')}"
        )
    lines += [f"- Note: {note}" for note in compat.get("notes") or []]
    lines += ["", "## Devices", "", *_device_lines(report.get("devices"))]
    server = report.get("server") or {}
    lines += [
        "",
        "## Server",
        "",
        f"- {server.get('url', '-')}: live {_cell(server.get('live'))}, ready {_cell(server.get('ready'))}, "
        f"version {_cell(server.get('version'))}",
        "",
        "## Models",
        "",
    ]
    models = report.get("models") or []
    expected = report.get("expected_instance_groups") or {}
    if models:
        lines += _table(
            ["model", "state", "kinds", "GPUs", "expected kinds", "latency (ms)", "outputs ok"],
            [
                [
                    m.get("name"),
                    m.get("state"),
                    m.get("kinds"),
                    m.get("gpus"),
                    sorted({g.get("kind") for g in expected.get(m.get("name"), [])}) or None,
                    m.get("latency_ms"),
                    m.get("outputs_ok"),
                ]
                for m in models
            ],
        )
        latency = report.get("latency") or {}
        lines += ["", f"Inference latency: median {latency.get('median_ms')} ms, max {latency.get('max_ms')} ms."]
    else:
        lines.append("No model reported.")
    lines += ["", "## GPU memory per process", "", *_gpu_memory_lines(report.get("gpu_memory"))]
    if report.get("application") is not None:
        lines += ["", "## Embedded application", "", *_application_lines(report["application"])]
    lines += ["", "## Findings", ""]
    findings = report.get("findings") or []
    if findings:
        lines += _table(
            ["severity", "check", "code", "model", "what", "fix"],
            [[f["severity"], f["check"], f["code"], f.get("model"), f["message"], f["fix"]] for f in findings],
        )
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def write_report(directory: Path, report: dict[str, Any], check_mode: bool = False) -> tuple[bool, dict[str, str]]:
    """Write ``verify.json`` and ``verify.md`` into ``directory`` atomically.

    Returns ``(changed, {file name: path})``; ``changed`` compares the bytes ignoring
    nothing, so a report with a new timestamp is a change. Raises OSError.
    """
    contents = {"verify.json": render_json(report), "verify.md": render_markdown(report)}
    paths = {name: str(directory / name) for name in contents}
    changed = False
    for name, text in contents.items():
        path = directory / name
        try:
            changed |= path.read_text(encoding="utf-8") != text
        except FileNotFoundError:
            changed = True
    if check_mode or not changed:
        return changed, paths
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, directory / name)
    return changed, paths


# Environment variables of the server process that decide what CUDA sees; nothing else of
# its environment is returned (the process's argv holds the API key and is never read out).
_ENV_KEYS = ("PATH", "LD_LIBRARY_PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE")
_ENV_PREFIXES = ("CUDA_", "NVIDIA_")


def filter_environment(raw_env: bytes) -> dict[str, str]:
    """Return the variables of a ``/proc/<pid>/environ`` blob that decide what CUDA and the loader see."""
    environment = {}
    for item in raw_env.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep and (key in _ENV_KEYS or key.startswith(_ENV_PREFIXES)):
            environment[key] = value
    return environment


def find_server_process(proc_root: Path, http_port: int, name: str = "tritonserver") -> dict[str, Any]:
    """Find the ``tritonserver`` process serving HTTP on ``http_port`` under ``proc_root``.

    Reads ``<proc>/<pid>/comm``, ``cmdline`` (for ``--http-port=<port>``), ``status`` (Uid)
    and ``environ``. Returns ``{found, pid, uid, environment, reason}``; ``environment``
    holds only the CUDA/NVIDIA variables and the paths the service sets, so the device
    check can run with exactly the server's view. Processes that vanish or cannot be read
    are skipped.
    """
    wanted = f"--http-port={http_port}".encode()
    for entry in sorted(proc_root.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text(encoding="utf-8").strip() != name:
                continue
            if wanted not in (entry / "cmdline").read_bytes().split(b"\0"):
                continue
            status = (entry / "status").read_text(encoding="utf-8")
            raw_env = (entry / "environ").read_bytes()
        except OSError:
            continue
        uid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), None)
        environment = filter_environment(raw_env)
        return {"found": True, "pid": int(entry.name), "uid": uid, "environment": environment, "reason": None}
    return {
        "found": False,
        "pid": None,
        "uid": None,
        "environment": {},
        "reason": f"no {name} process with --http-port={http_port} under {proc_root}",
    }


def _read_json(path: Path) -> Any:
    """Parse a JSON file; ValueError names the file (a half-written or hand-edited file)."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err


def read_manifest(install_prefix: Path) -> dict[str, Any] | None:
    """Return the installed release's ``current/manifest.json``, or None when nothing is installed.

    Raises ValueError (``ManifestError``) when the file is not a JSON object and OSError when
    ``current`` cannot be followed.
    """
    return lifecycle_read_manifest(install_prefix / CURRENT_LINK)


def read_models_release(models_root: Path) -> dict[str, Any] | None:
    """Return the active models release ``{id, root, instance_groups}``, or None when none is active.

    Active means ``<models_root>/current`` is a symlink; ``id`` is the last component of its
    target and ``instance_groups`` the ``instance_groups.json`` rendered into that release.
    Raises OSError when the link's release has no readable ``instance_groups.json`` and
    ValueError when it is not JSON.
    """
    release_id = linked_release(models_root)
    if release_id is None:
        return None
    return {
        "id": release_id,
        "root": str(models_root),
        "instance_groups": _read_json(models_root / CURRENT_LINK / "instance_groups.json"),
    }


def read_deployed(install_prefix: Path, models_root: Path, proc_root: Path, http_port: int) -> dict[str, Any]:
    """Read what verify compares against, all at once: ``{manifest, release, process}``.

    ``manifest`` is ``read_manifest``, ``release`` ``read_models_release`` and ``process``
    ``find_server_process`` for ``http_port``. Raises what they raise.
    """
    return {
        "manifest": read_manifest(install_prefix),
        "release": read_models_release(models_root),
        "process": find_server_process(proc_root, http_port),
    }
