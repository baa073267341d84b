# SPDX-License-Identifier: Apache-2.0
"""Does an application that embeds Triton (libtritonserver, the C API) use the devices the plan means?

Three sources, each judged against the plan (``triton_plan``, its ``runtime`` section above all):

- the binary, read as ELF with pyelftools (a maintained parser; the host's Python carries it,
  ``playbooks/bootstrap.yml``): its ``NEEDED`` libraries, the CUDA entry points it imports
  itself, the Triton option setters it imports, and the ``libtritonserver`` the dynamic loader
  would give it (RPATH, ``LD_LIBRARY_PATH``, RUNPATH, the system directories), read in turn
  for whether it is a GPU build (it links the CUDA runtime);
- the plan: a CPU plan with a GPU-built library that the application can neither give zero
  pools nor run with hidden GPUs; CUDA allocation calls of the application's own on a CPU plan;
  a GPU plan whose minimum compute capability the application cannot lower to the host's GPUs;
- the running process, when there is one: its environment (``/proc/PID/environ``: what it was
  started with, the variables CUDA reads at initialisation), the ``libtritonserver`` it mapped,
  and the GPU memory NVML reports for it and its children (a CPU plan needs 0 on every GPU;
  without NVML, as on Jetson before JetPack 7, the report says "not measured").

What is *not* evidence and is never judged: ``libcudart``/``libcuda`` mapped in the process (a
GPU-built ``libtritonserver`` links the CUDA runtime itself and loads the driver library).
Static reading sees imports, not arguments: a CUDA runtime the application opens with
``dlopen`` is invisible here, and the NVML measurement is what catches it on a dGPU host.

Pure functions over a root path and an injected NVML object; nothing exits.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_report import filter_environment
from ansible.module_utils.triton_runtime import plan_runtime
from ansible.module_utils.triton_server_check import gpu_memory_findings, measure_gpu_memory

# The CUDA calls that put an application's own data or context on a GPU, by what they do.
CUDA_ALLOCATION = (
    "cudaMalloc",
    "cudaMallocAsync",
    "cudaMallocManaged",
    "cudaMallocPitch",
    "cudaMalloc3D",
    "cudaMallocArray",
    "cudaMallocHost",
    "cudaHostAlloc",
    "cudaHostRegister",
    "cuMemAlloc",
    "cuMemAlloc_v2",
    "cuMemAllocManaged",
    "cuMemAllocPitch",
    "cuMemAllocPitch_v2",
    "cuMemAllocAsync",
    "cuMemHostAlloc",
    "cuMemAllocHost",
    "cuMemAllocHost_v2",
)
CUDA_DEVICE = ("cudaSetDevice", "cudaInitDevice", "cuInit", "cuCtxCreate", "cuCtxCreate_v2", "cuDevicePrimaryCtxRetain")
CUDA_COPY = ("cudaMemcpy", "cudaMemcpyAsync", "cuMemcpyHtoD", "cuMemcpyHtoD_v2", "cuMemcpyDtoH", "cuMemcpyDtoH_v2")
CUDA_OWN_CALLS = frozenset(CUDA_ALLOCATION + CUDA_DEVICE + CUDA_COPY)
# Options an application must be able to set for a plan (C API names, tritonserver.h).
PINNED_POOL_SETTER = "TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize"
CUDA_POOL_SETTER = "TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize"
MIN_CC_SETTER = "TRITONSERVER_ServerOptionsSetMinSupportedComputeCapability"
# The C API leaves the load retry count uninitialised (TritonServerOptions, core src/tritonserver.cc).
RETRY_SETTER = "TRITONSERVER_ServerOptionsSetModelLoadRetryCount"
OPTION_SETTER_PREFIX = "TRITONSERVER_ServerOptionsSet"
LIBRARY_PREFIX = "libtritonserver"
CUDA_RUNTIME_PREFIX = "libcudart"
# Where the loader looks last (the cache ld.so.cache is built from these and ld.so.conf).
SYSTEM_LIBRARY_DIRS = (
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib64",
    "usr/lib64",
    "lib",
    "usr/lib",
    "usr/local/lib",
)
_CUDA_SYMBOL = re.compile(r"^(cuda[A-Z]|cu[A-Z])")


class AppCheckError(ValueError):
    """The application cannot be checked (no such file, unreadable); ``str()`` is four-part."""


def _finding(severity: str, code: str, message: str, fix: str) -> dict[str, Any]:
    return {"severity": severity, "code": code, "model": None, "message": message, "fix": fix}


# --- the binary ------------------------------------------------------------------------------


def read_elf(path: Path) -> dict[str, Any]:
    """Read the dynamic section and dynamic symbols of ``path`` with pyelftools.

    Returns ``{elf, needed, rpath, runpath, imports, exports, interpreter}``; ``elf`` is False
    (and the rest empty) for a file that is not ELF, such as a script, whose ``interpreter``
    is then its ``#!`` line. Raises AppCheckError when the file cannot be read.
    """
    # Lazy: an ELF parser is loaded only when there is a file to read (about 0.1 s).
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    info: dict[str, Any] = {"elf": False, "needed": [], "rpath": None, "runpath": None}
    info.update(imports=[], exports=[], interpreter=None)
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            if head != b"\x7fELF":
                first = handle.readline(512)
                if first.startswith(b"#!"):
                    info["interpreter"] = first[2:].decode("utf-8", "replace").strip()
                return info
            elf = ELFFile(handle)
            info["elf"] = True
            dynamic = elf.get_section_by_name(".dynamic")
            if dynamic is not None:
                for tag in dynamic.iter_tags():
                    kind = tag.entry.d_tag
                    if kind == "DT_NEEDED":
                        info["needed"].append(tag.needed)
                    elif kind == "DT_RPATH":
                        info["rpath"] = tag.rpath
                    elif kind == "DT_RUNPATH":
                        info["runpath"] = tag.runpath
            symbols = elf.get_section_by_name(".dynsym")
            if symbols is not None:
                for symbol in symbols.iter_symbols():
                    if not symbol.name:
                        continue
                    if symbol["st_shndx"] == "SHN_UNDEF":
                        info["imports"].append(symbol.name)
                    elif symbol["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK"):
                        info["exports"].append(symbol.name)
    except OSError as err:
        raise AppCheckError(
            f"The application binary {path} cannot be read ({err.strerror or err}). The app check reads an "
            "executable or script on the host. Point triton_app_check's binary at the application's file "
            "(the release's current/<command> for a deployed application)."
        ) from err
    except ELFError as err:
        raise AppCheckError(
            f"{path} starts like an ELF file but cannot be parsed ({err}). Supported: ELF executables and "
            "shared objects, and scripts. Rebuild the application or point binary at the real executable."
        ) from err
    info["imports"] = sorted(set(info["imports"]))
    info["exports"] = sorted(set(info["exports"]))
    return info


def _expand(entry: str, origin: Path) -> str:
    return entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))


def _ld_conf_dirs(root: Path) -> list[str]:
    """Directories of ``/etc/ld.so.conf`` and its ``include`` files (the loader's cache is built from them)."""
    found: list[str] = []
    pending = [root / "etc" / "ld.so.conf"]
    seen: set[Path] = set()
    while pending:
        conf = pending.pop(0)
        if conf in seen:
            continue
        seen.add(conf)
        try:
            lines = conf.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                pattern = line.split(None, 1)[1]
                base = pattern if os.path.isabs(pattern) else str(conf.parent.relative_to(root) / pattern)
                pending += sorted(Path(p) for p in glob.glob(str(root / base.lstrip("/"))))
            elif line.startswith("/"):
                found.append(line.lstrip("/"))
    return found


def resolve_library(
    name: str, binary: Path, elf: Mapping[str, Any], environment: Mapping[str, str], root: Path
) -> dict[str, Any]:
    """Find the file the dynamic loader gives ``binary`` for ``NEEDED`` entry ``name``.

    Order of ld.so(8): DT_RPATH (only without DT_RUNPATH), ``LD_LIBRARY_PATH``, DT_RUNPATH, then
    the directories of ``ld.so.conf`` and the system directories. ``$ORIGIN`` is the binary's
    directory. Returns ``{name, path, via}``; ``path`` is None when nothing is found.
    """
    if "/" in name:
        return {"name": name, "path": name if (root / name.lstrip("/")).exists() else None, "via": "absolute path"}
    origin = binary.parent
    searches: list[tuple[str, list[str]]] = []
    if elf.get("rpath") and not elf.get("runpath"):
        searches.append(("RPATH", elf["rpath"].split(":")))
    searches.append(("LD_LIBRARY_PATH", (environment.get("LD_LIBRARY_PATH") or "").split(":")))
    if elf.get("runpath"):
        searches.append(("RUNPATH", elf["runpath"].split(":")))
    searches.append(("ld.so.conf", ["/" + d for d in _ld_conf_dirs(root)]))
    searches.append(("system directories", ["/" + d for d in SYSTEM_LIBRARY_DIRS]))
    for via, directories in searches:
        for directory in directories:
            directory = _expand(directory, origin)
            if not directory or not os.path.isabs(directory):
                continue
            candidate = root / directory.lstrip("/") / name
            if candidate.is_file():
                return {"name": name, "path": "/" + str(candidate.relative_to(root)), "via": via}
    return {"name": name, "path": None, "via": None}


def library_gpu_build(library: Mapping[str, Any]) -> bool:
    """A libtritonserver is a GPU build when it links the CUDA runtime (it calls cudaGetDeviceCount at start)."""
    return any(n.startswith(CUDA_RUNTIME_PREFIX) for n in library.get("needed") or []) or any(
        s.startswith("cudaGetDeviceCount") for s in library.get("imports") or []
    )


def inspect_binary(binary: Path, environment: Mapping[str, str], root: Path) -> dict[str, Any]:
    """Everything the check reads from the files: the binary and the libtritonserver it resolves to.

    ``environment`` is the one the application runs with (for ``LD_LIBRARY_PATH``). A script
    (not ELF) loads the library by name at run time: it is resolved as ``libtritonserver.so``
    through the same search.
    """
    host_path = root / str(binary).lstrip("/")
    if not host_path.is_file():
        raise AppCheckError(
            f"The application binary {binary} does not exist under {root} (found "
            f"{'a directory' if host_path.is_dir() else 'nothing'} there). The app check reads the file a "
            "deployed application runs. Deploy the application (playbooks/app.yml) or fix the binary path."
        )
    elf = read_elf(host_path)
    imports = elf["imports"]
    wanted = [n for n in elf["needed"] if n.startswith(LIBRARY_PREFIX)] or (
        [] if elf["elf"] else ["libtritonserver.so"]
    )
    resolved = resolve_library(wanted[0], binary, elf, environment, root) if wanted else None
    library: dict[str, Any] | None = None
    if resolved and resolved["path"]:
        lib_elf = read_elf(root / resolved["path"].lstrip("/"))
        library = {
            "path": resolved["path"],
            "real_path": "/"
            + str(Path(os.path.realpath(root / resolved["path"].lstrip("/"))).relative_to(root.resolve())),
            "via": resolved["via"],
            "needed": lib_elf["needed"],
            "cuda_runtime": [n for n in lib_elf["needed"] if n.startswith(CUDA_RUNTIME_PREFIX)],
            "gpu_build": library_gpu_build(lib_elf),
        }
    return {
        "path": str(binary),
        "elf": elf["elf"],
        "interpreter": elf["interpreter"],
        "needed": elf["needed"],
        "rpath": elf["rpath"],
        "runpath": elf["runpath"],
        "links_triton": bool(wanted) and elf["elf"],
        "library_name": wanted[0] if wanted else None,
        "library": library,
        "cuda_imports": [s for s in imports if _CUDA_SYMBOL.match(s)],
        "cuda_device_calls": [s for s in imports if s in CUDA_OWN_CALLS],
        "option_setters": [s for s in imports if s.startswith(OPTION_SETTER_PREFIX)],
    }


# --- the running process ---------------------------------------------------------------------


def read_process(proc_root: Path, pid: int) -> dict[str, Any]:
    """Read a running application: its executable, the environment it started with, what it mapped.

    Returns ``{found, pid, exe, environment, triton_libraries, cuda_libraries, reason}``;
    ``environment`` holds only the variables that decide what CUDA and the loader see.
    """
    base = proc_root / str(pid)
    result: dict[str, Any] = {"found": False, "pid": pid, "exe": None, "environment": {}}
    result.update(triton_libraries=[], cuda_libraries=[], reason=None)
    try:
        raw_env = (base / "environ").read_bytes()
        maps = (base / "maps").read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        result["reason"] = f"process {pid} cannot be read under {proc_root} ({err.strerror or err})"
        return result
    try:
        result["exe"] = os.readlink(base / "exe")
    except OSError:
        result["exe"] = None
    paths = sorted({line.split(None, 5)[5] for line in maps.splitlines() if len(line.split(None, 5)) == 6})
    result.update(
        found=True,
        environment=filter_environment(raw_env),
        triton_libraries=[p for p in paths if os.path.basename(p).startswith(LIBRARY_PREFIX)],
        cuda_libraries=[p for p in paths if os.path.basename(p).startswith(("libcudart", "libcuda.so"))],
    )
    return result


def gpus_hidden(environment: Mapping[str, str]) -> bool:
    """True when CUDA sees no device with this environment (``CUDA_VISIBLE_DEVICES`` empty, or devices ``void``)."""
    if environment.get("CUDA_VISIBLE_DEVICES") == "":
        return True
    return environment.get("NVIDIA_VISIBLE_DEVICES") in ("void", "none", "")


# --- judging -----------------------------------------------------------------------------------


def binary_findings(
    binary: Mapping[str, Any],
    plan: Mapping[str, Any],
    environment: Mapping[str, str],
    env_source: str,
    host_gpus: Sequence[Mapping[str, Any]],
    release_library: str | None,
) -> list[dict[str, Any]]:
    """Judge the files against the plan; ``environment`` is the one the application runs with (from ``env_source``)."""
    findings: list[dict[str, Any]] = []
    runtime = plan_runtime(plan)
    cpu_plan = not plan.get("enable_gpu")
    name = binary["path"]
    library = binary.get("library")
    if binary["elf"] and not binary["links_triton"]:
        findings.append(
            _finding(
                "warning",
                "app_not_linked",
                f"{name} does not link libtritonserver (NEEDED: {', '.join(binary['needed']) or 'none'}): the app "
                "check cannot see which library it loads or which options it sets. Supported: applications that "
                "link the release's lib/libtritonserver.so.",
                "link the application with -l:libtritonserver.so against the release (examples/embedded_app/Makefile), "
                "or check the running process (pid) instead",
            )
        )
    if binary["library_name"] and library is None:
        findings.append(
            _finding(
                "error",
                "app_library_missing",
                f"{name} needs {binary['library_name']} but the loader finds it nowhere (RPATH {binary['rpath']!r}, "
                f"LD_LIBRARY_PATH {environment.get('LD_LIBRARY_PATH')!r} from {env_source}, RUNPATH "
                f"{binary['runpath']!r}, system directories). The application does not start.",
                "run it with the release's lib/ on LD_LIBRARY_PATH (triton_app does) or rebuild it with an RPATH "
                "to <install prefix>/current/lib",
            )
        )
    if library and release_library and os.path.realpath(library["real_path"]) != os.path.realpath(release_library):
        findings.append(
            _finding(
                "warning",
                "app_other_library",
                f"{name} resolves libtritonserver to {library['path']} (via {library['via']}), not to the release "
                f"tritonfleet manages ({release_library}): the plan was checked against that release.",
                "build the application against <install prefix>/current/lib/libtritonserver.so and drop other "
                "copies from its RPATH and LD_LIBRARY_PATH",
            )
        )
    own_calls = binary["cuda_device_calls"]
    if cpu_plan and own_calls:
        findings.append(
            _finding(
                "error",
                "app_cuda_calls",
                f"{name} imports CUDA calls of its own: {', '.join(own_calls)}. They select a GPU and place "
                "buffers in GPU memory (tensors handed to Triton as TRITONSERVER_MEMORY_GPU, a response allocator "
                "answering with GPU memory), but the plan runs Triton on the CPU (plan.enable_gpu false, "
                f"CUDA_VISIBLE_DEVICES={runtime['env'].get('CUDA_VISIBLE_DEVICES')!r}). A CPU plan supports "
                "applications whose tensors stay in CPU memory.",
                "append inputs as TRITONSERVER_MEMORY_CPU, let the response allocator give the memory type Triton "
                "asks for (CPU on this plan), and build without the CUDA code (drop "
                f"{', '.join(own_calls)}); or plan the GPU (triton_enable_gpu=true on a host with one)",
            )
        )
    setters = set(binary["option_setters"])
    if binary["links_triton"] and RETRY_SETTER not in setters:
        findings.append(
            _finding(
                "warning",
                "app_load_retry_unset",
                f"{name} does not import {RETRY_SETTER}: libtritonserver's C API leaves the model load retry "
                "count uninitialised, so a model that fails to load is retried an arbitrary number of times "
                "(tritonserver itself sets 0).",
                f"call {RETRY_SETTER}(options, 0) when creating the server options",
            )
        )
    if cpu_plan and library and library["gpu_build"] and not gpus_hidden(environment):
        missing = [s for s in (PINNED_POOL_SETTER, CUDA_POOL_SETTER) if s not in setters]
        if missing or not binary["elf"]:
            what = (
                f"imports neither {' nor '.join(missing)}"
                if binary["elf"]
                else "is a script whose option calls cannot be read"
            )
            findings.append(
                _finding(
                    "error" if binary["elf"] else "warning",
                    "app_gpu_library_pools",
                    f"{name} runs a GPU-built libtritonserver ({library['path']}, links "
                    f"{', '.join(library['cuda_runtime']) or 'the CUDA runtime'}) on a CPU plan, {what}, and its "
                    f"environment ({env_source}) does not hide the GPUs "
                    f"(CUDA_VISIBLE_DEVICES={environment.get('CUDA_VISIBLE_DEVICES', '(unset)')!r}). Such a library "
                    "reserves a 256 MiB pinned host pool and a 64 MiB CUDA pool on every visible GPU unless both pools "
                    "are 0 or the GPUs are hidden, whatever the application's own TRITON_ENABLE_GPU says.",
                    'run the application with plan.runtime.env (CUDA_VISIBLE_DEVICES=""), as triton_app does, and '
                    "set both pools to 0 (TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize(options, 0), "
                    "TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize(options, gpu, 0) per GPU: the values of "
                    "plan.runtime.memory / server_args)",
                )
            )
    if not cpu_plan:
        findings += _compute_capability_findings(name, plan, runtime, setters, binary["elf"], host_gpus)
    return findings


def _cc(value: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in str(value).split("."))
    except ValueError:
        return None


def _compute_capability_findings(
    name: str,
    plan: Mapping[str, Any],
    runtime: Mapping[str, Any],
    setters: set[str],
    elf: bool,
    host_gpus: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    findings = []
    # The value the plan sets (null: the build's default), and the minimum Triton then applies.
    wanted = runtime["memory"]["min_supported_compute_capability"]
    effective = runtime["min_compute_capability"]
    used = set(plan.get("gpu_ids") or [])
    gpus = [g for g in host_gpus if not used or g.get("index") in used]
    floor = _cc(effective) if effective else None
    excluded = [
        g for g in gpus if floor and _cc(g.get("compute_capability")) and _cc(g.get("compute_capability")) < floor
    ]
    listed = ", ".join(f"GPU {g.get('index')} ({g.get('name')}, {g.get('compute_capability')})" for g in excluded)
    if excluded:
        findings.append(
            _finding(
                "error",
                "app_compute_capability",
                f"the plan's minimum compute capability {effective} excludes {listed}: Triton in {name} "
                "would not use them (KIND_GPU models fail with 'no GPUs are available').",
                "rerun preflight so the plan sets min_supported_compute_capability for these GPUs, or use a "
                "release whose minimum includes them",
            )
        )
    elif wanted and elf and MIN_CC_SETTER not in setters:
        findings.append(
            _finding(
                "error",
                "app_compute_capability",
                f"the plan needs the minimum compute capability lowered to {wanted} for this host's GPUs "
                f"(release default {plan.get('min_compute_capability')}), but {name} does not import {MIN_CC_SETTER}: "
                "the library keeps its default and drops those GPUs.",
                f"call {MIN_CC_SETTER}(options, {wanted}) (plan.runtime.memory.min_supported_compute_capability, "
                "or the --min-supported-compute-capability flag of plan.runtime.server_args)",
            )
        )
    return findings


def process_findings(
    process: Mapping[str, Any], plan: Mapping[str, Any], memory: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Judge the running process: its environment against plan.runtime.env, its GPU memory on a CPU plan."""
    findings = []
    if not process["found"]:
        return [
            _finding(
                "error",
                "app_not_running",
                f"the application is not running: {process['reason']}. A deployed application runs under its "
                "service manager.",
                "read the application's log (triton_app_log_dir) and start it again (rerun playbooks/app.yml)",
            )
        ]
    wanted = plan_runtime(plan)["env"]
    actual = process["environment"]
    differ = {k: (actual.get(k), v) for k, v in wanted.items() if actual.get(k) != str(v)}
    if differ:
        listed = ", ".join(f"{k}={a!r} (plan: {w!r})" for k, (a, w) in sorted(differ.items()))
        findings.append(
            _finding(
                "error",
                "app_environment",
                f"process {process['pid']} started with a device environment other than the plan's: {listed}. "
                "CUDA reads these variables when it initialises.",
                "run the application under triton_app (it starts it with exactly plan.runtime.env) and restart it",
            )
        )
    findings += [dict(f, code="app_" + f["code"]) for f in gpu_memory_findings(memory, plan)]
    return findings


def check_app(
    binary: Path | None,
    pid: int | None,
    plan: Mapping[str, Any],
    environment: Mapping[str, str] | None,
    host_gpus: Sequence[Mapping[str, Any]],
    release_library: str | None,
    nvml: Any | None,
    nvml_reason: str | None,
    root: Path = Path("/"),
    proc_root: Path = Path("/proc"),
    descendants: Any = None,
    not_running: str | None = None,
) -> dict[str, Any]:
    """Check an application: its files (``binary``), and its process when ``pid`` is given.

    ``environment`` is the environment the application is given (the launcher's), used when no
    process runs; a running process's own environment wins. ``descendants(pid)`` lists the pid
    and its children for the NVML measurement; ``not_running`` says why a process that should run
    has no pid (it is then a finding). Returns ``{binary, process, environment,
    environment_source, gpu_memory, findings}``. Raises AppCheckError when there is nothing to read.
    """
    process = read_process(proc_root, pid) if pid else None
    if process is None and not_running:
        process = {"found": False, "pid": None, "exe": None, "environment": {}, "reason": not_running}
        process.update(triton_libraries=[], cuda_libraries=[])
    if binary is None and process and process["exe"]:
        binary = Path(process["exe"])
    if binary is None:
        raise AppCheckError(
            f"Nothing to check: no binary and {'no pid' if not pid else f'process {pid} has no readable executable'}. "
            "The app check needs the application's file or its running process. Pass binary, pid or service."
        )
    if process and process["found"]:
        env, source = process["environment"], f"/proc/{pid}/environ"
    else:
        env, source = dict(environment or {}), "the environment triton_app gives it"
    files = inspect_binary(binary, env, root)
    findings = binary_findings(files, plan, env, source, host_gpus, release_library)
    memory = None
    if process is not None:
        pids = descendants(process["pid"]) if descendants and process["found"] else [process["pid"]]
        memory = measure_gpu_memory(nvml, nvml_reason, pids if process["found"] else [])
        if not process["found"]:
            memory["reason"] = process["reason"]
        findings += process_findings(process, plan, memory)
    return {
        "binary": files,
        "process": process,
        "environment": env,
        "environment_source": source,
        "gpu_memory": memory,
        "findings": findings,
    }
