"""The app check on real ELF files (gcc-built) and a real process: imports, library resolution, plan rules."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ansible.module_utils.triton_app_check import (
    AppCheckError,
    binary_findings,
    check_app,
    gpus_hidden,
    inspect_binary,
    read_elf,
    read_process,
    resolve_library,
)
from ansible.module_utils.triton_runtime import RuntimeSectionError
from fakes.fake_nvml import ProcessNvml
from support.elf_builds import build_library, build_program, call_all
from support.plans import base_host, dgpu_host, gpu, jetson_host, make_plan, with_containers

MIB = 1024 * 1024
# Plans as preflight makes them: a CPU host; a dGPU host planned on the CPU; the same host on its
# GPU (minimum 6.0); a Jetson Nano, whose 5.3 the plan lowers the release's 6.0 minimum to.
CPU_PLAN = make_plan(base_host())
DGPU_CPU_PLAN = make_plan(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), enable_gpu="false")
GPU_PLAN = make_plan(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]))
NANO_PLAN = make_plan(jetson_host("nano-jp4"), "2.19.0", "tarball")
NANO_GPU = [{"index": 0, "name": "NVIDIA Tegra X1", "compute_capability": "5.3"}]
POOLS = ("TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize", "TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize")
MIN_CC = "TRITONSERVER_ServerOptionsSetMinSupportedComputeCapability"
RETRY = "TRITONSERVER_ServerOptionsSetModelLoadRetryCount"


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """A CUDA runtime, a GPU-built and a CPU-only libtritonserver, each in its own lib/ directory."""
    base = tmp_path_factory.mktemp("libs")
    cudart = build_library(
        "libcudart.so.12",
        "int cudaGetDeviceCount(int* n){*n=0;return 0;} int cudaMalloc(){return 2;} int cudaSetDevice(){return 100;}"
        " int cudaMemcpy(){return 100;} int cudaFree(){return 0;}",
    )
    symbols = ("TRITONSERVER_ApiVersion", *POOLS, MIN_CC, RETRY)
    body = "".join(f"int {s}(){{return 0;}}\n" for s in symbols)
    gpu = build_library(
        "libtritonserver.so",
        "int cudaGetDeviceCount(int*);\n" + body + "int init(){int n;return cudaGetDeviceCount(&n);}",
        links=[cudart],
    )
    cpu = build_library("libtritonserver.so", body + "int cpu_only(void){return 1;}\n")
    dirs = {}
    for name, lib in (("gpu", gpu), ("cpu", cpu)):
        lib_dir = base / name / "lib"
        lib_dir.mkdir(parents=True)
        shutil.copy2(lib, lib_dir / "libtritonserver.so")
        shutil.copy2(cudart, lib_dir / "libcudart.so.12")
        dirs[name] = lib_dir
    return {"cudart": cudart, "gpu": gpu, "cpu": cpu, "dirs": dirs}


def program(libs, name, *calls, cuda=False, rpath=None, runpath=False, retry=True):
    """A program linking the GPU-built library that imports ``calls`` (and, with ``retry``, the retry setter)."""
    links = [libs["gpu"], *([libs["cudart"]] if cuda else [])]
    source = call_all("TRITONSERVER_ApiVersion", *calls, *([RETRY] if retry else []))
    return build_program(name, source, links, rpath=rpath, runpath=runpath, link_dirs=[libs["cudart"].parent])


def codes(findings):
    return [f["code"] for f in findings]


# ---------------------------------------------------------------------------- reading ELF


def test_read_elf_gives_needed_rpath_and_imports(libs):
    app = program(libs, "reads", *POOLS, "cudaMalloc", "cudaSetDevice", cuda=True, rpath="$ORIGIN/../lib")
    info = read_elf(app)
    assert info["elf"] is True
    assert info["needed"][:2] == ["libtritonserver.so", "libcudart.so.12"]
    assert info["rpath"] == "$ORIGIN/../lib" and info["runpath"] is None
    assert {"cudaMalloc", "cudaSetDevice", *POOLS} <= set(info["imports"])


def test_read_elf_of_a_script_gives_its_interpreter(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("#!/usr/bin/env python3\nimport ctypes\n")
    info = read_elf(script)
    assert info == {
        "elf": False,
        "needed": [],
        "rpath": None,
        "runpath": None,
        "imports": [],
        "exports": [],
        "interpreter": "/usr/bin/env python3",
    }


def test_read_elf_refuses_a_broken_elf(tmp_path):
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9)
    with pytest.raises(AppCheckError, match="starts like an ELF file but cannot be parsed"):
        read_elf(broken)


# ---------------------------------------------------------------------------- resolution


def test_rpath_wins_over_ld_library_path(libs):
    app = program(libs, "rpath-first", rpath=str(libs["dirs"]["gpu"]))
    found = resolve_library(
        "libtritonserver.so", app, read_elf(app), {"LD_LIBRARY_PATH": str(libs["dirs"]["cpu"])}, Path("/")
    )
    assert found == {
        "name": "libtritonserver.so",
        "path": str(libs["dirs"]["gpu"] / "libtritonserver.so"),
        "via": "RPATH",
    }


def test_ld_library_path_wins_over_runpath(libs):
    app = program(libs, "runpath-later", rpath=str(libs["dirs"]["gpu"]), runpath=True)
    env = {"LD_LIBRARY_PATH": f"/nonexistent:{libs['dirs']['cpu']}"}
    found = resolve_library("libtritonserver.so", app, read_elf(app), env, Path("/"))
    assert (found["path"], found["via"]) == (str(libs["dirs"]["cpu"] / "libtritonserver.so"), "LD_LIBRARY_PATH")
    found = resolve_library("libtritonserver.so", app, read_elf(app), {}, Path("/"))
    assert (found["path"], found["via"]) == (str(libs["dirs"]["gpu"] / "libtritonserver.so"), "RUNPATH")


def test_origin_is_the_binary_directory(libs, tmp_path):
    release = tmp_path / "release"
    (release / "bin").mkdir(parents=True)
    shutil.copytree(libs["dirs"]["gpu"], release / "lib")
    app = release / "bin" / "app"
    shutil.copy2(program(libs, "origin", rpath="$ORIGIN/../lib"), app)
    found = resolve_library("libtritonserver.so", app, read_elf(app), {}, Path("/"))
    assert found["path"] == str(release / "bin" / ".." / "lib" / "libtritonserver.so") and found["via"] == "RPATH"


def test_unresolvable_library_is_an_error(libs):
    app = program(libs, "nowhere")
    files = inspect_binary(app, {"LD_LIBRARY_PATH": "/nonexistent"}, Path("/"))
    assert files["library"] is None and files["library_name"] == "libtritonserver.so"
    findings = binary_findings(files, CPU_PLAN, {"LD_LIBRARY_PATH": "/nonexistent"}, "test", [], None)
    assert codes(findings) == ["app_library_missing"]
    assert "needs libtritonserver.so but the loader finds it nowhere" in findings[0]["message"]


def test_gpu_build_is_read_from_the_resolved_library(libs):
    app = program(libs, "builds")
    gpu = inspect_binary(app, {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"])}, Path("/"))["library"]
    cpu = inspect_binary(app, {"LD_LIBRARY_PATH": str(libs["dirs"]["cpu"])}, Path("/"))["library"]
    assert (gpu["gpu_build"], gpu["cuda_runtime"]) == (True, ["libcudart.so.12"])
    assert (cpu["gpu_build"], cpu["cuda_runtime"]) == (False, [])


# ---------------------------------------------------------------------------- plan rules


def judge(libs, app, plan, env, gpus=(), release=None):
    files = inspect_binary(app, env, Path("/"))
    return binary_findings(files, plan, env, "the launcher", list(gpus), release)


def test_honest_application_on_a_cpu_plan_has_no_finding(libs):
    app = program(libs, "honest", *POOLS)
    env = {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"]), "CUDA_VISIBLE_DEVICES": ""}
    release = str(libs["dirs"]["gpu"] / "libtritonserver.so")
    assert judge(libs, app, CPU_PLAN, env, release=release) == []


def test_own_cuda_calls_on_a_cpu_plan_are_named(libs):
    app = program(libs, "gpu-variant", *POOLS, "cudaMalloc", "cudaSetDevice", "cudaMemcpy", "cudaFree", cuda=True)
    env = {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"]), "CUDA_VISIBLE_DEVICES": ""}
    findings = judge(libs, app, CPU_PLAN, env)
    assert codes(findings) == ["app_cuda_calls"]
    message, fix = findings[0]["message"], findings[0]["fix"]
    assert "imports CUDA calls of its own: cudaMalloc, cudaMemcpy, cudaSetDevice" in message
    assert "TRITONSERVER_MEMORY_GPU" in message and "plan.enable_gpu false" in message
    assert "append inputs as TRITONSERVER_MEMORY_CPU" in fix and "drop cudaMalloc, cudaMemcpy, cudaSetDevice" in fix
    # The same calls are the application's business on a GPU plan.
    assert judge(libs, app, GPU_PLAN, {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"])}) == []


@pytest.mark.parametrize(
    ("calls", "env", "lib", "expected"),
    [
        ((), {}, "gpu", ["app_gpu_library_pools"]),
        ((POOLS[0],), {}, "gpu", ["app_gpu_library_pools"]),
        (POOLS, {}, "gpu", []),
        ((), {"CUDA_VISIBLE_DEVICES": ""}, "gpu", []),
        ((), {"NVIDIA_VISIBLE_DEVICES": "void"}, "gpu", []),
        ((), {"CUDA_VISIBLE_DEVICES": "0"}, "gpu", ["app_gpu_library_pools"]),
        ((), {}, "cpu", []),
    ],
    ids=["no-setters", "pinned-only", "both-setters", "hidden", "void-devices", "gpu-visible", "cpu-only-library"],
)
def test_gpu_library_on_a_cpu_plan_needs_zero_pools_or_hidden_gpus(libs, calls, env, lib, expected):
    app = program(libs, f"pools-{len(calls)}", *calls)
    findings = judge(libs, app, CPU_PLAN, {"LD_LIBRARY_PATH": str(libs["dirs"][lib]), **env})
    assert codes(findings) == expected
    if expected:
        message = findings[0]["message"]
        assert (
            f"runs a GPU-built libtritonserver ({libs['dirs']['gpu'] / 'libtritonserver.so'}, links libcudart.so.12)"
            in message
        )
        assert "256 MiB pinned host pool and a 64 MiB CUDA pool on every visible GPU" in message
        assert 'CUDA_VISIBLE_DEVICES=""' in findings[0]["fix"]


def test_gpu_plan_that_needs_a_lower_minimum_needs_the_setter(libs):
    env = {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"])}
    without = judge(libs, program(libs, "no-cc"), NANO_PLAN, env, NANO_GPU)
    assert codes(without) == ["app_compute_capability"]
    assert "needs the minimum compute capability lowered to 5.3" in without[0]["message"]
    assert f"does not import {MIN_CC}" in without[0]["message"]
    assert judge(libs, program(libs, "with-cc", MIN_CC), NANO_PLAN, env, NANO_GPU) == []


def test_gpu_plan_whose_minimum_excludes_the_host_gpus(libs):
    # A 25.08 container plan applies the image's 7.5; the host's GPU 0 is now a 6.0 (the plan is stale).
    host = with_containers(dgpu_host([gpu(0, "NVIDIA H100 80GB HBM3", "9.0")], driver="580.65.06"))
    plan = make_plan(host, "25.08", "container")
    gpus = [{"index": 0, "name": "Tesla P100", "compute_capability": "6.0"}]
    findings = judge(libs, program(libs, "excluded", MIN_CC), plan, {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"])}, gpus)
    assert codes(findings) == ["app_compute_capability"]
    assert "minimum compute capability 7.5 excludes GPU 0 (Tesla P100, 6.0)" in findings[0]["message"]


def test_library_other_than_the_release_is_a_warning(libs):
    app = program(libs, "elsewhere", *POOLS)
    env = {"LD_LIBRARY_PATH": str(libs["dirs"]["cpu"])}
    findings = judge(libs, app, CPU_PLAN, env, release=str(libs["dirs"]["gpu"] / "libtritonserver.so"))
    assert [(f["code"], f["severity"]) for f in findings] == [("app_other_library", "warning")]


def test_binary_without_libtritonserver_is_a_warning(libs):
    app = build_program("plain", call_all("puts"))
    findings = judge(libs, app, CPU_PLAN, {})
    assert [(f["code"], f["severity"]) for f in findings] == [("app_not_linked", "warning")]


def test_script_resolves_the_library_through_its_environment(libs, tmp_path):
    script = tmp_path / "app.py"
    script.write_text("#!/usr/bin/python3\nimport ctypes\nctypes.CDLL('libtritonserver.so')\n")
    files = inspect_binary(script, {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"])}, Path("/"))
    assert files["elf"] is False and files["interpreter"] == "/usr/bin/python3"
    assert files["library"]["gpu_build"] is True and files["library"]["via"] == "LD_LIBRARY_PATH"
    findings = binary_findings(files, CPU_PLAN, {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"])}, "x", [], None)
    assert [(f["code"], f["severity"]) for f in findings] == [("app_gpu_library_pools", "warning")]


def test_plan_without_runtime_is_refused(libs):
    app = program(libs, "noruntime", *POOLS)
    with pytest.raises(RuntimeSectionError, match="The plan has no complete runtime section"):
        judge(libs, app, {"enable_gpu": False}, {})


def test_missing_binary_is_refused(tmp_path):
    with pytest.raises(AppCheckError, match="does not exist under /"):
        check_app(tmp_path / "nope", None, CPU_PLAN, {}, [], None, None, "no NVML")


@pytest.mark.parametrize(
    ("env", "hidden"),
    [
        ({"CUDA_VISIBLE_DEVICES": ""}, True),
        ({"CUDA_VISIBLE_DEVICES": "0"}, False),
        ({}, False),
        ({"NVIDIA_VISIBLE_DEVICES": "none"}, True),
    ],
)
def test_gpus_hidden(env, hidden):
    assert gpus_hidden(env) is hidden


# ---------------------------------------------------------------------------- the running process


@pytest.fixture
def running(libs):
    """The honest program, started for real with a device environment, kept alive by a sleep."""
    app = build_program(
        "sleeper",
        call_all("TRITONSERVER_ApiVersion", *POOLS, RETRY)
        .replace("return 0;\n}", "sleep(30);\n  return 0;\n}")
        .replace("int main", "unsigned sleep(unsigned);\nint main"),
        [libs["gpu"]],
        link_dirs=[libs["cudart"].parent],
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": str(libs["dirs"]["gpu"]),
        "CUDA_VISIBLE_DEVICES": "",
        "SECRET": "x",
    }
    proc = subprocess.Popen([str(app)], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "libtritonserver" not in Path(f"/proc/{proc.pid}/maps").read_text():
        time.sleep(0.02)
    yield app, proc
    proc.kill()
    proc.wait()


def test_read_process_gives_environment_and_mapped_library(running, libs):
    app, proc = running
    process = read_process(Path("/proc"), proc.pid)
    assert process["found"] is True and process["exe"] == str(app)
    assert process["environment"] == {
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": str(libs["dirs"]["gpu"]),
        "CUDA_VISIBLE_DEVICES": "",
    }
    assert process["triton_libraries"] == [str(libs["dirs"]["gpu"] / "libtritonserver.so")]
    # The CUDA runtime a GPU-built library links is mapped too: recorded, never judged.
    assert process["cuda_libraries"] == [str(libs["dirs"]["gpu"] / "libcudart.so.12")]


def test_running_process_on_a_cpu_plan_passes_with_zero_gpu_memory(running):
    _app, proc = running
    nvml = ProcessNvml({"devices": [{"name": "A100", "uuid": "GPU-0", "processes": [{"pid": 1, "used": 5 * MIB}]}]})
    result = check_app(None, proc.pid, DGPU_CPU_PLAN, None, [], None, nvml, None)
    assert result["findings"] == []
    assert result["environment_source"] == f"/proc/{proc.pid}/environ"
    assert result["gpu_memory"]["measured"] is True and result["gpu_memory"]["total_bytes"] == 0


def test_running_process_with_gpu_memory_on_a_cpu_plan_fails(running):
    app, proc = running
    nvml = ProcessNvml(
        {"devices": [{"name": "A100", "uuid": "GPU-0", "processes": [{"pid": proc.pid, "used": 64 * MIB}]}]}
    )
    result = check_app(app, proc.pid, DGPU_CPU_PLAN, None, [], None, nvml, None)
    assert codes(result["findings"]) == ["app_cpu_plan_gpu_memory"]
    assert f"gpu 0: {64 * MIB} bytes (pids [{proc.pid}])" in result["findings"][0]["message"]


def test_running_process_without_nvml_is_not_measured(running):
    app, proc = running
    result = check_app(app, proc.pid, DGPU_CPU_PLAN, None, [], None, None, "libnvidia-ml.so.1 not found")
    assert result["findings"] == []
    assert result["gpu_memory"]["measured"] is False
    assert result["gpu_memory"]["reason"] == "NVML unavailable: libnvidia-ml.so.1 not found"


def test_running_process_with_another_device_environment_fails(libs):
    app = build_program("sleeper2", "unsigned sleep(unsigned); int main(){ sleep(30); return 0; }")
    proc = subprocess.Popen([str(app)], env={"CUDA_VISIBLE_DEVICES": "0"})
    try:
        time.sleep(0.1)
        result = check_app(None, proc.pid, CPU_PLAN, None, [], None, None, "none")
    finally:
        proc.kill()
        proc.wait()
    assert "app_environment" in codes(result["findings"])
    finding = next(f for f in result["findings"] if f["code"] == "app_environment")
    assert "CUDA_VISIBLE_DEVICES='0' (plan: '')" in finding["message"]


def test_application_that_should_run_but_does_not(libs):
    app = program(libs, "stopped", *POOLS)
    env = {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"]), "CUDA_VISIBLE_DEVICES": ""}
    result = check_app(app, None, CPU_PLAN, env, [], None, None, "none", not_running="supervisord reports FATAL")
    assert codes(result["findings"]) == ["app_not_running"]
    assert "supervisord reports FATAL" in result["findings"][0]["message"]
    assert result["gpu_memory"]["measured"] is False


def test_application_that_leaves_the_load_retry_count_unset_gets_a_warning(libs):
    app = program(libs, "no-retry", *POOLS, retry=False)
    env = {"LD_LIBRARY_PATH": str(libs["dirs"]["gpu"]), "CUDA_VISIBLE_DEVICES": ""}
    findings = judge(libs, app, CPU_PLAN, env)
    assert [(f["code"], f["severity"]) for f in findings] == [("app_load_retry_unset", "warning")]
    assert f"call {RETRY}(options, 0)" in findings[0]["fix"]
