# SPDX-License-Identifier: Apache-2.0
"""Is a running Triton server doing what was meant? Checks through its HTTP API and NVML.

Health, version and extensions (``GET /v2``), model states (``POST /v2/repository/index``),
each model's effective instance groups (``GET /v2/models/<m>/config``) against the groups
``triton_model_config`` rendered, a smoke inference per model with inputs generated from its
metadata (``GET /v2/models/<m>``), and the GPU memory the server's processes hold (NVML
``nvmlDeviceGetComputeRunningProcesses``): zero on every GPU is required on a CPU plan.

The HTTP session and the NVML object are injected; every function returns data, never exits.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.module_utils.triton_nvml import error_reason

# Filled with small ramps: positive, exact in every type, and easy to predict (add_sub: 2x).
_INT_TYPES = ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
_FLOAT_TYPES = ("FP16", "FP32", "FP64")
_CPU_PLAN_GPU_CAUSES = (
    "a GPU-enabled server build creates CUDA memory pools and contexts on every GPU it can see",
    "ONNX Runtime GPU accelerators (CUDA or TensorRT execution provider) on KIND_GPU/KIND_AUTO instances",
    "CUDA allocations in the application's own code (when Triton is embedded as a library)",
)


def _finding(severity: str, code: str, message: str, fix: str, model: str | None = None) -> dict[str, Any]:
    return {"severity": severity, "code": code, "model": model, "message": message, "fix": fix}


def _value(datatype: str, index: int) -> Any:
    ramp = index % 8 + 1
    if datatype == "BOOL":
        return index % 2 == 0
    if datatype == "BYTES":
        return str(ramp)
    if datatype in _INT_TYPES:
        return ramp
    if datatype in _FLOAT_TYPES:
        return float(ramp)
    raise ValueError(f"datatype {datatype} cannot be sent in a JSON inference request")


def generate_inputs(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Build JSON inference inputs from model metadata (``GET /v2/models/<m>``).

    Metadata shapes already carry the batch dimension (as -1) when ``max_batch_size > 0``; every
    -1 becomes 1. Values are the ramp 1, 2, ... 8, 1, ... in the input's datatype (BOOL alternates).
    Raises ValueError for datatypes JSON cannot carry (BF16).
    """
    inputs = []
    for tensor in metadata.get("inputs") or []:
        shape = [1 if int(dim) < 0 else int(dim) for dim in tensor.get("shape") or []]
        size = math.prod(shape)
        datatype = tensor["datatype"]
        data = [_value(datatype, i) for i in range(size)]
        inputs.append({"name": tensor["name"], "datatype": datatype, "shape": shape, "data": data})
    return inputs


def _group_key(group: Mapping[str, Any], with_count: bool) -> tuple[Any, ...]:
    key: tuple[Any, ...] = (group.get("kind"), tuple(sorted(int(g) for g in group.get("gpus") or [])))
    return (*key, int(group.get("count") or 0)) if with_count else key


def compare_instance_groups(actual: list[Mapping[str, Any]], expected: list[Mapping[str, Any]]) -> str | None:
    """Compare the server's effective instance groups with the intended ones.

    Groups match on kind and GPU list, and on count when every expected group gives one; order
    and names are ignored. Returns None when they match, else a description of the difference.
    """
    with_count = bool(expected) and all(g.get("count") for g in expected)
    have = sorted(_group_key(g, with_count) for g in actual)
    want = sorted(_group_key(g, with_count) for g in expected)
    if have == want:
        return None
    return f"server runs {_describe(have)}, intended {_describe(want)}"


def _describe(keys: list[tuple[Any, ...]]) -> str:
    """``[("KIND_GPU", (0, 1), 2)]`` -> ``"[KIND_GPU gpus [0, 1] count 2]"``."""
    parts = [f"{k[0]} gpus {list(k[1])}" + (f" count {k[2]}" if len(k) > 2 else "") for k in keys]
    return "[" + "; ".join(parts) + "]"


def outputs_match(outputs: list[Mapping[str, Any]], expected: Mapping[str, list[Any]]) -> str | None:
    by_name = {o.get("name"): o.get("data") for o in outputs}
    for name, want in expected.items():
        got = by_name.get(name)
        if got is None:
            return f"output {name} missing from the response (outputs: {sorted(by_name)})"
        if len(got) != len(want) or any(
            not math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
            if isinstance(b, (int, float)) and not isinstance(b, bool)
            else a != b
            for a, b in zip(got, want, strict=False)
        ):
            return f"output {name} is {got}, expected {want}"
    return None


class _Api:
    """Thin JSON helper over an injected ``requests.Session``-like object."""

    def __init__(self, session: Any, url: str, timeout: float) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str) -> Any:
        return self.session.get(self.url + path, timeout=self.timeout)

    def post(self, path: str, body: Any) -> Any:
        return self.session.post(self.url + path, json=body, timeout=self.timeout)


def _error_text(response: Any) -> str:
    try:
        return str(response.json().get("error") or response.text)
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"


def _server_info(api: _Api, findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Liveness, readiness and ``GET /v2``; None when the server cannot be reached."""
    info: dict[str, Any] = {"url": api.url, "live": False, "ready": False, "version": None, "extensions": []}
    try:
        info["live"] = api.get("/v2/health/live").status_code == 200
        info["ready"] = api.get("/v2/health/ready").status_code == 200
        meta = api.get("/v2")
    except OSError as err:
        findings.append(
            _finding(
                "error",
                "server_unreachable",
                f"Triton at {api.url} cannot be reached: {err}",
                "start the service (triton_service) and check its log; check the URL and port",
            )
        )
        return None
    if meta.status_code == 200:
        body = meta.json()
        info["version"] = body.get("version")
        info["extensions"] = body.get("extensions") or []
    if not info["live"]:
        findings.append(
            _finding("error", "server_not_live", f"{api.url}/v2/health/live is not 200", "check the server log")
        )
    if not info["ready"]:
        findings.append(
            _finding(
                "error",
                "server_not_ready",
                f"{api.url}/v2/health/ready is not 200: with --strict-readiness a model that failed to load "
                "keeps the whole server not ready",
                "see the model findings below and the server log",
            )
        )
    return info


def _index(api: _Api, findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    response = api.post("/v2/repository/index", {})
    if response.status_code != 200:
        findings.append(
            _finding(
                "error",
                "repository_index_failed",
                f"POST {api.url}/v2/repository/index answered {response.status_code}: {_error_text(response)}",
                "when the model-repository API is restricted, pass api_key_header and api_key "
                "(the key in /etc/tritonfleet/api-key)",
            )
        )
        return None
    return {entry["name"]: entry for entry in response.json()}


def _check_model(
    api: _Api,
    name: str,
    entry: Mapping[str, Any] | None,
    expected_groups: list[Mapping[str, Any]] | None,
    expected_outputs: Mapping[str, list[Any]] | None,
    infer: bool,
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    model: dict[str, Any] = {
        "name": name,
        "version": (entry or {}).get("version"),
        "state": (entry or {}).get("state"),
        "reason": (entry or {}).get("reason") or None,
        "kinds": [],
        "gpus": [],
        "instance_groups": [],
        "latency_ms": None,
        "outputs_ok": None,
    }
    if entry is None:
        findings.append(
            _finding(
                "error",
                "model_missing",
                f"model {name} is not in the server's model repository",
                "deploy the model (triton_models) and check --model-repository",
                name,
            )
        )
        return model
    if model["state"] != "READY":
        findings.append(
            _finding(
                "error",
                "model_not_ready",
                f"model {name} is {model['state'] or 'not loaded'}"
                + (f": {model['reason']}" if model["reason"] else ""),
                f"fix the cause above, then load it (POST /v2/repository/models/{name}/load or restart the service)",
                name,
            )
        )
        return model
    config = api.get(f"/v2/models/{name}/config").json()
    groups = [
        {"name": g.get("name"), "kind": g.get("kind"), "count": g.get("count"), "gpus": sorted(g.get("gpus") or [])}
        for g in config.get("instance_group") or []
    ]
    model.update(
        instance_groups=groups,
        kinds=sorted({g["kind"] for g in groups}),
        gpus=sorted({gid for g in groups for gid in g["gpus"]}),
    )
    if expected_groups is not None:
        difference = compare_instance_groups(groups, expected_groups)
        if difference:
            findings.append(
                _finding(
                    "error",
                    "instance_group_mismatch",
                    f"model {name}: {difference}",
                    "re-render the model config for this host (triton_model_config) and reload the model; "
                    "if Triton changed KIND_AUTO to KIND_CPU, the GPU was not usable (run triton_device_check)",
                    name,
                )
            )
    if infer:
        _smoke_infer(api, name, expected_outputs, model, findings)
    return model


def _smoke_infer(
    api: _Api,
    name: str,
    expected_outputs: Mapping[str, list[Any]] | None,
    model: dict[str, Any],
    findings: list[dict[str, Any]],
) -> None:
    try:
        inputs = generate_inputs(api.get(f"/v2/models/{name}").json())
    except ValueError as err:
        findings.append(
            _finding("warning", "inference_skipped", f"model {name}: {err}", "check it with a client", name)
        )
        return
    start = time.perf_counter()
    response = api.post(f"/v2/models/{name}/infer", {"inputs": inputs})
    model["latency_ms"] = round((time.perf_counter() - start) * 1000, 3)
    if response.status_code != 200:
        findings.append(
            _finding(
                "error",
                "inference_failed",
                f"model {name}: smoke inference answered {response.status_code}: {_error_text(response)}",
                "check the model's inputs and the server log",
                name,
            )
        )
        model["outputs_ok"] = False
        return
    if expected_outputs:
        mismatch = outputs_match(response.json().get("outputs") or [], expected_outputs)
        model["outputs_ok"] = mismatch is None
        if mismatch:
            findings.append(
                _finding(
                    "error",
                    "output_mismatch",
                    f"model {name}: {mismatch} (inputs: ramp 1..8 from the model metadata)",
                    "check the model version deployed and its expected_outputs",
                    name,
                )
            )


def check_server(
    session: Any,
    url: str,
    models: list[str] | None = None,
    expected_instance_groups: Mapping[str, list[Mapping[str, Any]]] | None = None,
    expected_outputs: Mapping[str, Mapping[str, list[Any]]] | None = None,
    infer: bool = True,
    timeout: float = 10.0,
    workers: int = 4,
) -> dict[str, Any]:
    """Check the server at ``url`` over an injected ``requests.Session`` (keep-alive, auth headers set on it).

    ``models`` defaults to every model the repository index shows with a state; up to ``workers``
    models are checked at once over the same session. Returns ``{server, models, findings}`` in
    model order; connection errors become a ``server_unreachable`` finding.
    """
    api = _Api(session, url, timeout)
    findings: list[dict[str, Any]] = []
    server = _server_info(api, findings)
    result: dict[str, Any] = {"server": server, "models": [], "findings": findings}
    if server is None:
        return result
    try:
        index = _index(api, findings)
        if index is None:
            return result
        names = models if models is not None else sorted(n for n, e in index.items() if e.get("state"))
        groups, outputs = expected_instance_groups or {}, expected_outputs or {}

        def one(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            own: list[dict[str, Any]] = []
            entry = index.get(name)
            model = _check_model(api, name, entry, groups.get(name), outputs.get(name), infer, own)
            return model, own

        # Models are checked concurrently: a cold first inference (python backend stub, CUDA
        # context) dominates the wall time, and models answer independently.
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names) or 1))) as pool:
            for model, own in pool.map(one, names):
                result["models"].append(model)
                findings.extend(own)
    except (OSError, ValueError) as err:
        # requests' errors are OSErrors; a non-JSON answer raises ValueError (JSONDecodeError).
        findings.append(
            _finding("error", "server_unreachable", f"Triton at {url} stopped answering: {err}", "check the server log")
        )
    return result


def read_pids(pids: list[int] | None, pidfile: str | None) -> tuple[list[int], str | None]:
    """Return the pids to measure (``pids`` plus the one in ``pidfile``) and a reason when none."""
    found = [int(p) for p in pids or []]
    if pidfile:
        try:
            with open(pidfile, encoding="ascii") as handle:
                found.append(int(handle.read().strip()))
        except (OSError, ValueError) as err:
            return found, f"pidfile {pidfile} holds no pid: {err}"
    return found, None if found else "no server pid given (set pid or pidfile)"


def read_api_key(path: str) -> str | None:
    """Return the restricted-API key stored in ``path`` (surrounding whitespace trimmed), or None when it is missing.

    Raises OSError when the file exists but cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None


def measure_gpu_memory(nvml: Any | None, nvml_reason: str | None, pids: list[int]) -> dict[str, Any]:
    """Sum the GPU memory NVML reports for ``pids`` on every GPU.

    Returns ``{measured, reason, pids, total_bytes, gpus: [{index, uuid, used_bytes, pids}]}``.
    ``measured`` is False, with the reason, when there is no pid, no NVML, or the per-process
    query is not supported (Jetson); a process on a GPU whose memory NVML cannot tell counts
    as present with ``used_bytes`` None. NVML reports pids of the host's pid namespace.
    """
    result: dict[str, Any] = {"measured": False, "reason": None, "pids": pids, "total_bytes": None, "gpus": []}
    if not pids:
        result["reason"] = "no server pid given (set pid or pidfile)"
        return result
    if nvml is None:
        result["reason"] = f"NVML unavailable: {nvml_reason}"
        return result
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        result["reason"] = f"NVML unavailable: nvmlInit failed: {error_reason(err, at_init=True)}"
        return result
    try:
        wanted = set(pids)
        total = 0
        count = nvml.nvmlDeviceGetCount()
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            mine = [p for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid in wanted]
            if not mine:
                continue
            sizes = [p.usedGpuMemory for p in mine]
            used = sum(s for s in sizes if s is not None) if any(s is not None for s in sizes) else None
            total += used or 0
            result["gpus"].append(
                {
                    "index": index,
                    "uuid": nvml.nvmlDeviceGetUUID(handle),
                    "used_bytes": used,
                    "pids": sorted({p.pid for p in mine}),
                }
            )
        result.update(measured=True, total_bytes=total, reason=f"NVML per-process query over {count} GPU(s)")
    except nvml.NVMLError as err:
        result.update(measured=False, gpus=[], reason=f"NVML per-process query failed: {error_reason(err)}")
    finally:
        # A failed shutdown leaves nothing to undo; the measurement above stands.
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
    return result


def gpu_memory_findings(memory: Mapping[str, Any], plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """On a CPU plan any GPU presence of the measured processes is an error naming the likely causes."""
    if plan.get("enable_gpu") or not memory["measured"] or not memory["gpus"]:
        return []
    where = ", ".join(f"gpu {g['index']}: {g['used_bytes']} bytes (pids {g['pids']})" for g in memory["gpus"])
    return [
        _finding(
            "error",
            "cpu_plan_gpu_memory",
            f"the plan runs Triton on the CPU but its processes hold GPU memory ({where}). Likely causes: "
            + "; ".join(_CPU_PLAN_GPU_CAUSES),
            'run the server with the plan\'s runtime env and server_args (CUDA_VISIBLE_DEVICES="", '
            "--cuda-memory-pool-byte-size=<id>:0 per GPU, --pinned-memory-pool-byte-size=0, "
            "--enable-peer-access=false); render models with instance policy auto (KIND_CPU, GPU accelerators "
            "dropped); in an embedding application, find its own CUDA allocations",
        )
    ]


def verify(
    session: Any,
    url: str,
    plan: Mapping[str, Any],
    nvml: Any | None,
    nvml_reason: str | None,
    pids: list[int],
    pid_reason: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run ``check_server`` and ``measure_gpu_memory``; return the report.

    Report: ``{server, models, gpu_memory, findings, duration_ms}``; ``options`` go to
    ``check_server`` (models, expected_instance_groups, expected_outputs, infer, timeout, workers).
    """
    start = time.perf_counter()
    report = check_server(session, url, **options)
    memory = measure_gpu_memory(nvml, nvml_reason, pids)
    if pid_reason and not memory["measured"]:
        memory["reason"] = pid_reason
    report["gpu_memory"] = memory
    report["findings"] += gpu_memory_findings(memory, plan)
    report["duration_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return report
