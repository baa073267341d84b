# SPDX-License-Identifier: Apache-2.0
"""In-process probe: a model repository loaded through a release's ``libtritonserver``, as an application would.

An embedding application never opens a port (HTTP and gRPC live in the ``tritonserver``
binary only), so the server check cannot reach it. The probe does what such an application
does, with the plan's options: it creates a server from the release's library through the C
API (``include/triton/core/tritonserver.h`` of Triton core, API 1.x), loads every model of the
repository, reads back the configuration Triton completed (instance groups after autofill),
runs one inference per model with generated inputs in CPU memory through its own response
allocator, and records which memory type and device Triton's allocator asked for and which
it was given. The parent measures the probe's own GPU memory with NVML while the models are
loaded.

Why Python ``ctypes`` in a child process rather than a C program: it needs no compiler on the
host (a CPU-only x86 host often has none) and runs with the interpreter the module already
runs with; the child process keeps a crash of the library or of a python-backend stub, and a
hang while loading, away from the module (the parent kills it at its deadline).

The parent side (:func:`probe_request`, :func:`run_probe`, :func:`probe_findings`) is pure or
takes injected runners; the child side (:func:`child_main`) is what runs in the child. The
child receives one JSON request on stdin, prints one JSON line when the models are loaded and
inferred (each request deleted only after Triton released it), and waits on stdin while the
parent measures NVML; the parent then ends the child's process group and removes the
python backend's shared memory it had mapped.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_runtime import plan_runtime
from ansible.module_utils.triton_server_check import (
    compare_instance_groups,
    generate_inputs,
    gpu_memory_findings,
    measure_gpu_memory,
    outputs_match,
)

# TRITONSERVER_MemoryType, TRITONSERVER_DataType and model control mode values (tritonserver.h).
MEMORY_TYPES = ("CPU", "CPU_PINNED", "GPU")
DATATYPES = (
    "INVALID",
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
    "BF16",
)
_STRUCT = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}
MODEL_CONTROL_EXPLICIT = 2
RESPONSE_COMPLETE_FINAL = 1
API_MAJOR = 1
# Values of an output quoted in the report; larger outputs are summarised by their size.
MAX_REPORTED_VALUES = 64
EXIT_TIMEOUT_SECS = 5
# Models loaded at once (Triton's default --model-load-thread-count).
MAX_PARALLEL_MODELS = 4
STDERR_TAIL_LINES = 30
# The python backend's shared memory files: deleted at an orderly shutdown, left in /dev/shm by a
# killed process (measured with 2.51.0).
SHM_REGION_PREFIX = "/dev/shm/triton_python_backend_shm_region_"


# ----------------------------------------------------------------------------------------------
# Child side: runs in the probe process.
# ----------------------------------------------------------------------------------------------

_P = ctypes.c_void_p
_ERR = ctypes.c_void_p


def _bind(lib: ctypes.CDLL) -> dict[str, Any]:
    """Declare the C API functions the probe calls (the wheel ships no header; these follow tritonserver.h)."""
    c = ctypes
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "TRITONSERVER_ApiVersion": (_ERR, [c.POINTER(c.c_uint32), c.POINTER(c.c_uint32)]),
        "TRITONSERVER_ErrorMessage": (c.c_char_p, [_ERR]),
        "TRITONSERVER_ErrorCodeString": (c.c_char_p, [_ERR]),
        "TRITONSERVER_ErrorDelete": (None, [_ERR]),
        "TRITONSERVER_ServerOptionsNew": (_ERR, [c.POINTER(_P)]),
        "TRITONSERVER_ServerOptionsDelete": (_ERR, [_P]),
        "TRITONSERVER_ServerOptionsSetModelRepositoryPath": (_ERR, [_P, c.c_char_p]),
        "TRITONSERVER_ServerOptionsSetModelControlMode": (_ERR, [_P, c.c_int]),
        "TRITONSERVER_ServerOptionsSetBackendDirectory": (_ERR, [_P, c.c_char_p]),
        "TRITONSERVER_ServerOptionsSetRepoAgentDirectory": (_ERR, [_P, c.c_char_p]),
        "TRITONSERVER_ServerOptionsSetStrictModelConfig": (_ERR, [_P, c.c_bool]),
        "TRITONSERVER_ServerOptionsSetStrictReadiness": (_ERR, [_P, c.c_bool]),
        "TRITONSERVER_ServerOptionsSetExitOnError": (_ERR, [_P, c.c_bool]),
        "TRITONSERVER_ServerOptionsSetExitTimeout": (_ERR, [_P, c.c_uint]),
        "TRITONSERVER_ServerOptionsSetMetrics": (_ERR, [_P, c.c_bool]),
        "TRITONSERVER_ServerOptionsSetGpuMetrics": (_ERR, [_P, c.c_bool]),
        "TRITONSERVER_ServerOptionsSetLogInfo": (_ERR, [_P, c.c_bool]),
        "TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize": (_ERR, [_P, c.c_uint64]),
        "TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize": (_ERR, [_P, c.c_int, c.c_uint64]),
        "TRITONSERVER_ServerOptionsSetMinSupportedComputeCapability": (_ERR, [_P, c.c_double]),
        "TRITONSERVER_ServerOptionsSetEnablePeerAccess": (_ERR, [_P, c.c_bool]),
        "TRITONSERVER_ServerOptionsSetModelLoadRetryCount": (_ERR, [_P, c.c_uint]),
        "TRITONSERVER_ServerNew": (_ERR, [c.POINTER(_P), _P]),
        "TRITONSERVER_ServerDelete": (_ERR, [_P]),
        "TRITONSERVER_ServerStop": (_ERR, [_P]),
        "TRITONSERVER_ServerMetadata": (_ERR, [_P, c.POINTER(_P)]),
        "TRITONSERVER_ServerLoadModel": (_ERR, [_P, c.c_char_p]),
        "TRITONSERVER_ServerModelConfig": (_ERR, [_P, c.c_char_p, c.c_int64, c.c_uint32, c.POINTER(_P)]),
        "TRITONSERVER_ServerModelMetadata": (_ERR, [_P, c.c_char_p, c.c_int64, c.POINTER(_P)]),
        "TRITONSERVER_MessageSerializeToJson": (_ERR, [_P, c.POINTER(c.c_char_p), c.POINTER(c.c_size_t)]),
        "TRITONSERVER_MessageDelete": (_ERR, [_P]),
        "TRITONSERVER_ResponseAllocatorNew": (_ERR, [c.POINTER(_P), _P, _P, _P]),
        "TRITONSERVER_ResponseAllocatorDelete": (_ERR, [_P]),
        "TRITONSERVER_InferenceRequestNew": (_ERR, [c.POINTER(_P), _P, c.c_char_p, c.c_int64]),
        "TRITONSERVER_InferenceRequestDelete": (_ERR, [_P]),
        "TRITONSERVER_InferenceRequestAddInput": (
            _ERR,
            [_P, c.c_char_p, c.c_int, c.POINTER(c.c_int64), c.c_uint64],
        ),
        "TRITONSERVER_InferenceRequestAppendInputData": (
            _ERR,
            [_P, c.c_char_p, c.c_void_p, c.c_size_t, c.c_int, c.c_int64],
        ),
        "TRITONSERVER_InferenceRequestAddRequestedOutput": (_ERR, [_P, c.c_char_p]),
        "TRITONSERVER_InferenceRequestSetReleaseCallback": (_ERR, [_P, _P, _P]),
        "TRITONSERVER_InferenceRequestSetResponseCallback": (_ERR, [_P, _P, _P, _P, _P]),
        "TRITONSERVER_ServerInferAsync": (_ERR, [_P, _P, _P]),
        "TRITONSERVER_InferenceResponseError": (_ERR, [_P]),
        "TRITONSERVER_InferenceResponseDelete": (_ERR, [_P]),
        "TRITONSERVER_InferenceResponseOutputCount": (_ERR, [_P, c.POINTER(c.c_uint32)]),
        "TRITONSERVER_InferenceResponseOutput": (
            _ERR,
            [
                _P,
                c.c_uint32,
                c.POINTER(c.c_char_p),
                c.POINTER(c.c_int),
                c.POINTER(c.POINTER(c.c_int64)),
                c.POINTER(c.c_uint64),
                c.POINTER(c.c_void_p),
                c.POINTER(c.c_size_t),
                c.POINTER(c.c_int),
                c.POINTER(c.c_int64),
                c.POINTER(c.c_void_p),
            ],
        ),
    }
    bound = {}
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
        bound[name] = function
    return bound


_ALLOC_FN = ctypes.CFUNCTYPE(
    _ERR,
    _P,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int64,
    _P,
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_int),
    ctypes.POINTER(ctypes.c_int64),
)
_RELEASE_FN = ctypes.CFUNCTYPE(_ERR, _P, _P, _P, ctypes.c_size_t, ctypes.c_int, ctypes.c_int64)
_REQUEST_RELEASE_FN = ctypes.CFUNCTYPE(None, _P, ctypes.c_uint32, _P)
_RESPONSE_FN = ctypes.CFUNCTYPE(None, _P, ctypes.c_uint32, _P)
# Callbacks handed to Triton, kept alive for the life of the process.
_CALLBACKS: list[tuple[Any, ...]] = []


class _Triton:
    """The C API of one loaded library, with errors turned into exceptions carrying Triton's own message."""

    def __init__(self, library: str) -> None:
        self.lib = ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
        self.fn = _bind(self.lib)

    def call(self, name: str, *args: Any) -> None:
        err = self.fn[name](*args)
        if err:
            raise TritonCallError(name, self.message(err))

    def message(self, err: int) -> str:
        text = self.fn["TRITONSERVER_ErrorMessage"](err)
        self.fn["TRITONSERVER_ErrorDelete"](err)
        # Triton ends some messages with ";\n" (one line per failed version): the words are kept.
        return text.decode("utf-8", "replace").strip() if text else ""

    def json_message(self, name: str, *args: Any) -> Any:
        message = _P()
        self.call(name, *args, ctypes.byref(message))
        try:
            base, size = ctypes.c_char_p(), ctypes.c_size_t()
            self.call("TRITONSERVER_MessageSerializeToJson", message, ctypes.byref(base), ctypes.byref(size))
            return json.loads(ctypes.string_at(base, size.value).decode("utf-8"))
        finally:
            self.fn["TRITONSERVER_MessageDelete"](message)


class TritonCallError(Exception):
    """A C API call returned an error; ``str()`` is Triton's message."""

    def __init__(self, call: str, message: str) -> None:
        super().__init__(message)
        self.call = call


def encode_tensor(datatype: str, values: Sequence[Any]) -> bytes:
    """Serialise values the way Triton expects them in CPU memory (little-endian; BYTES length-prefixed)."""
    if datatype == "BYTES":
        out = b""
        for value in values:
            raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            out += struct.pack("<I", len(raw)) + raw
        return out
    if datatype == "BF16":
        return b"".join(struct.pack("<f", float(v))[2:] for v in values)
    return struct.pack(f"<{len(values)}{_STRUCT[datatype]}", *values)


def decode_tensor(datatype: str, raw: bytes) -> list[Any]:
    """Inverse of :func:`encode_tensor` for an output buffer."""
    if datatype == "BYTES":
        values, offset = [], 0
        while offset + 4 <= len(raw):
            (length,) = struct.unpack_from("<I", raw, offset)
            values.append(raw[offset + 4 : offset + 4 + length].decode("utf-8", "replace"))
            offset += 4 + length
        return values
    if datatype == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[i : i + 2])[0] for i in range(0, len(raw), 2)]
    code = _STRUCT[datatype]
    return list(struct.unpack(f"<{len(raw) // struct.calcsize(code)}{code}", raw))


class _Inference:
    """One request's callbacks and the record of what Triton asked the allocator for."""

    def __init__(self) -> None:
        self.buffers: dict[int, ctypes.Array] = {}
        self.allocations: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.error: str | None = None
        self.responded = threading.Event()
        self.released = threading.Event()

    def alloc(
        self, _allocator, name, size, memory_type, memory_type_id, _userp, buffer, buffer_userp, actual, actual_id
    ):
        # The probe's inputs and outputs live in CPU memory: it records what Triton preferred and
        # gives plain host memory, which Triton copies into wherever the model runs.
        self.allocations.append(
            {
                "tensor": name.decode("utf-8", "replace"),
                "byte_size": int(size),
                "asked": {"memory_type": MEMORY_TYPES[memory_type], "device": int(memory_type_id)},
                "given": {"memory_type": "CPU", "device": 0},
            }
        )
        if size:
            block = ctypes.create_string_buffer(size)
            self.buffers[ctypes.addressof(block)] = block
            buffer[0] = ctypes.addressof(block)
        else:
            buffer[0] = None
        buffer_userp[0] = None
        actual[0] = 0
        actual_id[0] = 0
        return None

    def release(self, _allocator, buffer, _buffer_userp, _size, _memory_type, _memory_type_id):
        if buffer:
            self.buffers.pop(buffer, None)
        return None


def apply_options(api: _Triton, options: _P, request: Mapping[str, Any]) -> list[str]:
    """Set the server options of the request; return them as the tritonserver flags they mirror."""
    applied = []
    memory = request["memory"]
    call = api.call
    call("TRITONSERVER_ServerOptionsSetModelRepositoryPath", options, request["model_repository"].encode())
    call("TRITONSERVER_ServerOptionsSetModelControlMode", options, MODEL_CONTROL_EXPLICIT)
    call("TRITONSERVER_ServerOptionsSetBackendDirectory", options, request["backend_directory"].encode())
    call("TRITONSERVER_ServerOptionsSetRepoAgentDirectory", options, request["repoagent_directory"].encode())
    call("TRITONSERVER_ServerOptionsSetStrictModelConfig", options, False)
    call("TRITONSERVER_ServerOptionsSetStrictReadiness", options, True)
    call("TRITONSERVER_ServerOptionsSetExitOnError", options, False)
    call("TRITONSERVER_ServerOptionsSetExitTimeout", options, EXIT_TIMEOUT_SECS)
    # The C API leaves the retry count uninitialised (TritonServerOptions' constructor sets no
    # value, core src/tritonserver.cc): a model that fails to load is otherwise retried a
    # garbage number of times. tritonserver's own default is 0.
    call("TRITONSERVER_ServerOptionsSetModelLoadRetryCount", options, 0)
    # No metrics thread: the probe reports nothing to Prometheus, and a python backend's metrics
    # reporter is what crashes at exit when a server goes away too early.
    call("TRITONSERVER_ServerOptionsSetMetrics", options, False)
    call("TRITONSERVER_ServerOptionsSetGpuMetrics", options, bool(memory.get("gpu_metrics")))
    applied += ["--allow-metrics=false", f"--allow-gpu-metrics={str(bool(memory.get('gpu_metrics'))).lower()}"]
    if memory.get("pinned_memory_pool_bytes") is not None:
        size = int(memory["pinned_memory_pool_bytes"])
        call("TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize", options, size)
        applied.append(f"--pinned-memory-pool-byte-size={size}")
    for gpu, size in sorted((memory.get("cuda_memory_pool_bytes") or {}).items(), key=lambda kv: int(kv[0])):
        call("TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize", options, int(gpu), int(size))
        applied.append(f"--cuda-memory-pool-byte-size={int(gpu)}:{int(size)}")
    if memory.get("min_supported_compute_capability") is not None:
        value = float(memory["min_supported_compute_capability"])
        call("TRITONSERVER_ServerOptionsSetMinSupportedComputeCapability", options, value)
        applied.append(f"--min-supported-compute-capability={memory['min_supported_compute_capability']}")
    if memory.get("peer_access") is not None:
        call("TRITONSERVER_ServerOptionsSetEnablePeerAccess", options, bool(memory["peer_access"]))
        applied.append(f"--enable-peer-access={str(bool(memory['peer_access'])).lower()}")
    return applied


def _instance_groups(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The instance groups of Triton's completed config, in the report's shape (as Triton returns them)."""
    return [
        {
            "name": group.get("name"),
            "kind": group.get("kind"),
            "count": group.get("count"),
            "gpus": list(group.get("gpus") or []),
        }
        for group in config.get("instance_group") or []
    ]


def _infer(api: _Triton, server: _P, name: str, metadata: Mapping[str, Any], wait_s: float) -> dict[str, Any]:
    """Run one inference with generated inputs in CPU memory; return the model's ``inference`` record."""
    record: dict[str, Any] = {"ok": False, "message": None, "latency_ms": None, "inputs": [], "outputs": []}
    try:
        inputs = generate_inputs(metadata)
    except ValueError as err:
        record["message"] = f"no inference: {err}"
        record["allocations"] = []
        return record
    state = _Inference()

    def on_release(_request: int, _flags: int, _userp: int) -> None:
        state.released.set()

    def on_response(response: int, flags: int, _userp: int) -> None:
        if response:
            err = api.fn["TRITONSERVER_InferenceResponseError"](response)
            if err:
                # The response owns this error object: read it, never delete it.
                state.error = api.fn["TRITONSERVER_ErrorMessage"](err).decode("utf-8", "replace")
            else:
                state.outputs = _read_outputs(api, response)
            api.fn["TRITONSERVER_InferenceResponseDelete"](response)
        if flags & RESPONSE_COMPLETE_FINAL:
            state.responded.set()

    callbacks = (
        _ALLOC_FN(state.alloc),
        _RELEASE_FN(state.release),
        _REQUEST_RELEASE_FN(on_release),
        _RESPONSE_FN(on_response),
    )
    # Triton calls these from its own threads; they must outlive every call it may still make.
    _CALLBACKS.append(callbacks)
    alloc_fn, release_fn, request_release, response_complete = (ctypes.cast(c, ctypes.c_void_p) for c in callbacks)
    allocator, request = _P(), _P()
    buffers = []
    try:
        api.call("TRITONSERVER_ResponseAllocatorNew", ctypes.byref(allocator), alloc_fn, release_fn, None)
        api.call("TRITONSERVER_InferenceRequestNew", ctypes.byref(request), server, name.encode(), -1)
        for tensor in inputs:
            data = encode_tensor(tensor["datatype"], tensor["data"])
            block = ctypes.create_string_buffer(data, len(data))
            buffers.append(block)
            shape = (ctypes.c_int64 * len(tensor["shape"]))(*tensor["shape"])
            tensor_name = tensor["name"].encode()
            dtype = DATATYPES.index(tensor["datatype"])
            api.call("TRITONSERVER_InferenceRequestAddInput", request, tensor_name, dtype, shape, len(tensor["shape"]))
            api.call(
                "TRITONSERVER_InferenceRequestAppendInputData",
                request,
                tensor_name,
                ctypes.addressof(block),
                len(data),
                MEMORY_TYPES.index("CPU"),
                0,
            )
            record["inputs"].append({**tensor, "memory_type": "CPU", "device": 0})
        for output in metadata.get("outputs") or []:
            api.call("TRITONSERVER_InferenceRequestAddRequestedOutput", request, output["name"].encode())
        api.call("TRITONSERVER_InferenceRequestSetReleaseCallback", request, request_release, None)
        api.call("TRITONSERVER_InferenceRequestSetResponseCallback", request, allocator, None, response_complete, None)
        start = time.perf_counter()
        api.call("TRITONSERVER_ServerInferAsync", server, request, None)
        if state.responded.wait(wait_s):
            record["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
            record["ok"] = state.error is None
            record["message"] = state.error
        else:
            record["message"] = f"no response within {wait_s:g} s"
    except TritonCallError as err:
        record["message"] = f"{err.call}: {err}"
        # A request Triton never accepted is the caller's to delete at once.
        state.released.set()
    finally:
        # Triton owns an accepted request until its release callback: deleting it earlier (or
        # the server) crashes the python backend at exit.
        if request and state.released.wait(wait_s):
            api.fn["TRITONSERVER_InferenceRequestDelete"](request)
        if allocator:
            api.fn["TRITONSERVER_ResponseAllocatorDelete"](allocator)
    record["outputs"] = state.outputs
    record["allocations"] = state.allocations
    return record


def _read_outputs(api: _Triton, response: int) -> list[dict[str, Any]]:
    count = ctypes.c_uint32()
    api.call("TRITONSERVER_InferenceResponseOutputCount", response, ctypes.byref(count))
    outputs = []
    for index in range(count.value):
        name, datatype = ctypes.c_char_p(), ctypes.c_int()
        shape, dims = ctypes.POINTER(ctypes.c_int64)(), ctypes.c_uint64()
        base, size = ctypes.c_void_p(), ctypes.c_size_t()
        memory_type, memory_id, userp = ctypes.c_int(), ctypes.c_int64(), ctypes.c_void_p()
        api.call(
            "TRITONSERVER_InferenceResponseOutput",
            response,
            index,
            ctypes.byref(name),
            ctypes.byref(datatype),
            ctypes.byref(shape),
            ctypes.byref(dims),
            ctypes.byref(base),
            ctypes.byref(size),
            ctypes.byref(memory_type),
            ctypes.byref(memory_id),
            ctypes.byref(userp),
        )
        dtype = DATATYPES[datatype.value]
        raw = ctypes.string_at(base.value, size.value) if base.value and size.value else b""
        values = decode_tensor(dtype, raw) if memory_type.value != 2 else None
        outputs.append(
            {
                "name": name.value.decode("utf-8", "replace"),
                "datatype": dtype,
                "shape": [shape[i] for i in range(dims.value)],
                "memory_type": MEMORY_TYPES[memory_type.value],
                "device": memory_id.value,
                "data": values[:MAX_REPORTED_VALUES] if values is not None else None,
                "truncated": values is not None and len(values) > MAX_REPORTED_VALUES,
            }
        )
    return outputs


def _emit(stream: Any, payload: Mapping[str, Any]) -> None:
    stream.write(json.dumps(payload, default=str) + "\n")
    stream.flush()


def _probe_model(api: _Triton, server: _P, name: str, infer_timeout: float) -> dict[str, Any]:
    """Load one model, read its completed config and metadata, infer once."""
    model: dict[str, Any] = {"name": name, "loaded": False, "load_message": None, "load_ms": None}
    model.update(instance_groups=[], inference=None)
    load_start = time.perf_counter()
    try:
        api.call("TRITONSERVER_ServerLoadModel", server, name.encode())
        model["loaded"] = True
    except TritonCallError as err:
        model["load_message"] = str(err)
    model["load_ms"] = round((time.perf_counter() - load_start) * 1000, 1)
    if model["loaded"]:
        config = api.json_message("TRITONSERVER_ServerModelConfig", server, name.encode(), -1, 1)
        model["instance_groups"] = _instance_groups(config)
        model_metadata = api.json_message("TRITONSERVER_ServerModelMetadata", server, name.encode(), -1)
        model["inference"] = _infer(api, server, name, model_metadata, infer_timeout)
    return model


def run_in_process(request: Mapping[str, Any], out: Any, wait_for_parent: Callable[[], Any]) -> None:
    """The probe itself (child side): load, inspect and infer every model; report; shut down in order."""
    started = time.perf_counter()
    api = _Triton(request["library"])
    major, minor = ctypes.c_uint32(), ctypes.c_uint32()
    api.call("TRITONSERVER_ApiVersion", ctypes.byref(major), ctypes.byref(minor))
    if major.value != API_MAJOR:
        raise TritonCallError(
            "TRITONSERVER_ApiVersion",
            f"{request['library']} speaks C API {major.value}.{minor.value}; the probe declares API {API_MAJOR}.x",
        )
    options = _P()
    api.call("TRITONSERVER_ServerOptionsNew", ctypes.byref(options))
    server = _P()
    try:
        applied = apply_options(api, options, request)
        api.call("TRITONSERVER_ServerNew", ctypes.byref(server), options)
    finally:
        api.fn["TRITONSERVER_ServerOptionsDelete"](options)
    metadata = api.json_message("TRITONSERVER_ServerMetadata", server)
    result: dict[str, Any] = {
        "event": "loaded",
        "pid": os.getpid(),
        "options": applied,
        "server": {
            "name": metadata.get("name"),
            "version": metadata.get("version"),
            "extensions": metadata.get("extensions") or [],
            "api_version": f"{major.value}.{minor.value}",
            "library": request["library"],
            "created_ms": round((time.perf_counter() - started) * 1000, 1),
        },
        "models": [],
    }
    infer_timeout = float(request["infer_timeout"])
    # Models load and infer side by side, as Triton's own load threads would (the C calls release
    # the interpreter lock); a python-backend model's load is mostly its stub starting up.
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_MODELS, len(request["models"])))) as pool:
        result["models"] = list(
            pool.map(lambda name: _probe_model(api, server, name, infer_timeout), request["models"])
        )
    result["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    _emit(out, result)
    # The parent measures, then ends this process group. Should it go away instead (stdin
    # closes), the probe stops in order by itself rather than linger.
    wait_for_parent()
    api.fn["TRITONSERVER_ServerStop"](server)
    api.fn["TRITONSERVER_ServerDelete"](server)


def child_main() -> None:
    """Entry point of the probe process: one JSON request on stdin, JSON lines on stdout."""
    request = json.loads(sys.stdin.readline())
    out = sys.stdout
    try:
        run_in_process(request, out, lambda: sys.stdin.readline())
    except (TritonCallError, OSError, AttributeError) as err:
        _emit(out, {"event": "error", "message": str(err), "call": getattr(err, "call", None)})
        sys.exit(2)


# ----------------------------------------------------------------------------------------------
# Parent side: runs in the module.
# ----------------------------------------------------------------------------------------------

# The child imports this module the way the parent did: from the module's payload (sys.path)
# or, under tests, from the repository's module_utils (ansible.module_utils.__path__).
BOOTSTRAP = (
    "import json, sys\n"
    "paths, extra = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
    "sys.path[:0] = [p for p in paths if p not in sys.path]\n"
    "import ansible.module_utils\n"
    "ansible.module_utils.__path__.extend(p for p in extra if p not in ansible.module_utils.__path__)\n"
    "from ansible.module_utils.triton_app_probe import child_main\n"
    "child_main()\n"
)


def child_argv(python: str) -> list[str]:
    """The command that starts the probe process with this process's import paths."""
    import ansible.module_utils as module_utils

    return [python, "-c", BOOTSTRAP, json.dumps(sys.path), json.dumps(list(module_utils.__path__))]


def probe_request(
    library: Path,
    release_dir: Path,
    model_repository: Path,
    models: Sequence[str],
    plan: Mapping[str, Any],
    infer_timeout: float,
) -> dict[str, Any]:
    """The JSON request the child gets: library, repository, backend directories, the plan's options, models."""
    memory = plan_runtime(plan)["memory"]
    return {
        "library": str(library),
        "model_repository": str(model_repository),
        "backend_directory": str(release_dir / "backends"),
        "repoagent_directory": str(release_dir / "repoagents"),
        "memory": dict(memory),
        "models": list(models),
        "infer_timeout": infer_timeout,
    }


def descendants(proc_root: Path, pid: int) -> list[int]:
    """Return ``pid`` and every process below it (python-backend stubs are the probe's children)."""
    children: dict[int, list[int]] = {}
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return sorted(found)


def _read_line(stream: Any, deadline: float) -> str | None:
    """Read one line from the child's stdout before ``deadline``; None on timeout or end of output."""
    buffered = b""
    fd = stream.fileno()
    while not buffered.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return buffered.decode("utf-8", "replace") or None
        buffered += chunk
    return buffered.decode("utf-8", "replace")


def _tail(handle: Any, lines: int) -> str:
    handle.seek(0)
    return "\n".join(handle.read().decode("utf-8", "replace").splitlines()[-lines:])


def run_probe(
    request: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    measure: Callable[[list[int]], dict[str, Any]],
    python: str = sys.executable,
    proc_root: Path = Path("/proc"),
) -> dict[str, Any]:
    """Run the probe in a child process; return ``{ran, reason, server, options, models, gpu_memory, ...}``.

    ``measure(pids)`` measures the GPU memory of the child and its descendants while the models
    are loaded (``triton_server_check.measure_gpu_memory`` with the host's NVML). Past
    ``timeout`` seconds, or when the child dies, the child's process group is killed and the
    result says why, with the end of its stderr (Triton logs there).
    """
    import tempfile

    result: dict[str, Any] = {"ran": False, "reason": None, "server": None, "options": [], "models": []}
    result.update(gpu_memory=None, duration_ms=None, stderr_tail=None)
    started = time.monotonic()
    deadline = started + timeout
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(
            child_argv(python),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=str(cwd),
            env=dict(env),
            start_new_session=True,
        )
        try:
            child.stdin.write((json.dumps(request) + "\n").encode())
            child.stdin.flush()
            line = _read_line(child.stdout, deadline)
            loaded = json.loads(line) if line else None
            if not loaded or loaded.get("event") != "loaded":
                if line is None and time.monotonic() < deadline:
                    # End of its output before the deadline: the child is exiting; let it be reaped.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(max(0.0, deadline - time.monotonic()))
                why = (loaded or {}).get("message") or (
                    f"no answer within {timeout:g} s" if child.poll() is None else f"exited with {child.poll()}"
                )
                result["reason"] = f"the probe process failed before its report: {why}"
                return result
            result.update({k: loaded[k] for k in ("server", "options", "models")})
            result["probe_ms"] = round((time.monotonic() - started) * 1000, 1)
            result["gpu_memory"] = measure(descendants(proc_root, child.pid))
            result["ran"] = True
        except (OSError, ValueError) as err:
            result["reason"] = f"the probe process failed: {err}"
        finally:
            # The report is complete: the process group ends now. An orderly stop would add about
            # 1.3 s per python-backend stub (its queue monitors poll once a second,
            # python_backend src/pb_stub.cc) and tell nothing the report does not.
            ends = time.monotonic() if result["ran"] else deadline
            result["removed_shared_memory"] = _finish(child, ends, proc_root)
            result["exit_code"] = child.returncode
            result["stderr_tail"] = _tail(stderr, STDERR_TAIL_LINES)
            result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def shared_memory_regions(proc_root: Path, pids: Sequence[int]) -> list[str]:
    """The python backend's shared-memory files the processes have mapped (they outlive a killed process)."""
    regions = set()
    for pid in pids:
        try:
            maps = (proc_root / str(pid) / "maps").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        regions.update(
            line.split(None, 5)[5]
            for line in maps.splitlines()
            if len(line.split(None, 5)) == 6 and line.split(None, 5)[5].startswith(SHM_REGION_PREFIX)
        )
    return sorted(regions)


def _finish(child: subprocess.Popen, deadline: float, proc_root: Path) -> list[str]:
    """Let the child exit by itself until the deadline, then end its whole process group.

    Returns the shared-memory files of a killed child that were removed: the python backend
    deletes them at an orderly exit only.
    """
    with contextlib.suppress(OSError):
        child.stdin.close()
    try:
        child.wait(max(0.0, deadline - time.monotonic()))
        return []
    except subprocess.TimeoutExpired:
        pass
    regions = shared_memory_regions(proc_root, descendants(proc_root, child.pid))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(5)
            break
        except subprocess.TimeoutExpired:
            continue
    removed = []
    for region in regions:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(region)
            removed.append(region)
    return removed


def probe(
    release_dir: Path,
    library: Path,
    manifest: Mapping[str, Any],
    plan: Mapping[str, Any],
    model_repository: Path,
    models: Sequence[str],
    nvml: Any | None,
    nvml_reason: str | None,
    env: Mapping[str, str],
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Probe ``model_repository`` through ``library`` with the plan's options; return the probe record."""
    import tempfile

    request = probe_request(library, release_dir, model_repository, models, plan, max(timeout / 4, 5.0))
    with tempfile.TemporaryDirectory(prefix="tritonfleet-probe-") as home:
        return run_probe(
            request,
            {**env, "HOME": home},
            Path(home),
            timeout,
            lambda pids: measure_gpu_memory(nvml, nvml_reason, pids),
        )


_KIND_GPU_UNAVAILABLE = "has kind KIND_GPU but no GPUs are available"


def _load_fix(message: str) -> str:
    if _KIND_GPU_UNAVAILABLE in message or "does not support GPUs" in message:
        return (
            "render the model for this host with triton_instance_policy=auto (KIND_CPU on this plan), or set "
            "its instance_group kind to KIND_CPU; the application would fail to load it the same way"
        )
    if "unsupported gpu id" in message or "compute capability" in message.lower():
        return (
            "rerun preflight so the plan's minimum compute capability covers the host's GPUs, or fix the model's gpus"
        )
    return "fix the model as Triton's message says; the embedding application would fail to load it the same way"


def probe_findings(
    result: Mapping[str, Any],
    plan: Mapping[str, Any],
    expected_instance_groups: Mapping[str, Any] | None = None,
    expected_outputs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Judge a probe record against the plan, the rendered instance groups and the expected outputs."""
    findings: list[dict[str, Any]] = []

    def add(code: str, message: str, fix: str, model: str | None = None) -> None:
        findings.append({"severity": "error", "code": code, "model": model, "message": message, "fix": fix})

    if not result.get("ran"):
        add(
            "probe_failed",
            f"the in-process probe did not complete: {result.get('reason')}; last lines of its log: "
            f"{(result.get('stderr_tail') or '').strip()[-1500:] or '(none)'}",
            "fix the cause in the log (a model that crashes its backend, a missing backend), then verify again",
        )
        return findings
    if result.get("reason"):
        add("probe_unclean_exit", str(result["reason"]), "read the probe log in the report and fix the backend")
    cpu_plan = not plan.get("enable_gpu")
    expected_groups = expected_instance_groups or {}
    for model in result.get("models") or []:
        name = model["name"]
        if not model["loaded"]:
            message = model.get("load_message") or "no message"
            add(
                "probe_load_failed",
                f"model {name} does not load in-process through {result['server']['library']}: {message}",
                _load_fix(message),
                name,
            )
            continue
        groups = model.get("instance_groups") or []
        if cpu_plan and any(g.get("kind") == "KIND_GPU" for g in groups):
            add(
                "probe_gpu_instances",
                f"model {name} runs KIND_GPU instances in-process on a CPU plan: {groups}",
                "render the model with triton_instance_policy=auto, or set its instance_group kind to KIND_CPU",
                name,
            )
        if name in expected_groups:
            difference = compare_instance_groups(groups, expected_groups[name])
            if difference:
                add(
                    "probe_instance_groups",
                    f"model {name} in-process: {difference}",
                    "the library completed the config differently from the rendered one; redeploy the models "
                    "release, and check the release's backends",
                    name,
                )
        inference = model.get("inference") or {}
        if not inference.get("ok"):
            add(
                "probe_inference_failed",
                f"model {name}: one inference with generated inputs in CPU memory failed: {inference.get('message')}",
                "fix the model (its log lines are in the probe log) or its inputs",
                name,
            )
            continue
        want = (expected_outputs or {}).get(name)
        mismatch = outputs_match(inference.get("outputs") or [], want) if want else None
        if mismatch:
            add("probe_wrong_output", f"model {name} in-process: {mismatch}", "fix the model's computation", name)
        gpu_asks = [a for a in inference.get("allocations") or [] if a["asked"]["memory_type"] == "GPU"]
        if cpu_plan and gpu_asks:
            add(
                "probe_gpu_allocation",
                f"model {name}: Triton asked the response allocator for GPU memory on a CPU plan "
                f"({', '.join(a['tensor'] + ' on device ' + str(a['asked']['device']) for a in gpu_asks)})",
                "hide the GPUs (plan.runtime.env) and render the model KIND_CPU",
                name,
            )
    for finding in gpu_memory_findings(result.get("gpu_memory") or {"measured": False}, plan):
        finding = dict(finding, code="probe_" + finding["code"])
        findings.append(finding)
    return findings
