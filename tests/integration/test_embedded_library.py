# SPDX-License-Identifier: Apache-2.0
"""Triton embedded in-process, for real: the wheel's libtritonserver 2.51.0, gcc, this CPU-only machine.

- examples/embedded_app built with make against a release laid out by the install code: the
  honest variant loads add_sub in-process, infers and checks its answers; the hard-coded-GPU
  variant fails on a host without a GPU;
- the in-process probe over the example repository (KIND_CPU, right outputs, pools 0) and over a
  KIND_GPU model (Triton's own message);
- the app check module (``ansible localhost -m triton_app_check``) on real binaries: the GPU
  variant's CUDA calls, a GPU-built library without pool settings, a CPU-plan process holding GPU
  memory on a simulated dGPU host (the test-only libnvidia-ml.so.1), no NVML at all;
- a simulated Jetson root with a tarball release: library and header found, GPU memory not measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from ansible.module_utils.triton_app import launch_environment
from ansible.module_utils.triton_app_probe import probe, probe_findings
from ansible.module_utils.triton_install import install_release
from fleet.fakenvml import build_library as build_fake_nvml
from support.elf_builds import build_library, build_program, call_all
from support.plans import base_host, dgpu_host, gpu, jetson_host, make_plan
from support.triton_dist import triton_release

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_APP = REPO_ROOT / "examples" / "embedded_app"
EXAMPLES = REPO_ROOT / "examples" / "model_repository"
# Plans as preflight makes them (24.10 = server 2.51.0): this CPU-only machine, and a dGPU host
# planned on the CPU (its GPU hidden, its pools 0).
CPU_PLAN = make_plan(base_host())
DGPU_CPU_PLAN = make_plan(dgpu_host([gpu(0, "NVIDIA L4", "8.9")]), enable_gpu="false")
KIND_GPU_MESSAGE = "instance group add_gpu_0 of model add_gpu has kind KIND_GPU but no GPUs are available"
ADD_SUB = {"OUTPUT0": [2.0, 4.0, 6.0, 8.0], "OUTPUT1": [0.0, 0.0, 0.0, 0.0]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A release under <base>/opt, the example repository, and both example variants built with make."""
    base = tmp_path_factory.mktemp("embedded")
    release = triton_release(base / "opt")
    repo = base / "models"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("__pycache__"))
    gpu_repo = base / "gpu-models"
    shutil.copytree(EXAMPLES / "add_sub", gpu_repo / "add_gpu", ignore=shutil.ignore_patterns("__pycache__"))
    config = gpu_repo / "add_gpu" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "add_sub"', 'name: "add_gpu"').replace("KIND_CPU", "KIND_GPU"))
    builds = {}
    for variant in ("honest", "gpu"):
        target = base / "build" / variant / "embedded_app"
        target.parent.mkdir(parents=True)
        subprocess.run(
            ["make", "-s", "-C", str(EXAMPLE_APP), f"TRITON_HOME={base / 'opt' / 'current'}", f"VARIANT={variant}",
             f"TARGET={target}"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        builds[variant] = target
    manifest = json.loads((release / "manifest.json").read_text())
    home = str(base / "opt" / "current")
    env = launch_environment(CPU_PLAN, manifest, home, str(base), str(repo), {})
    return {"base": base, "release": release, "repo": repo, "gpu_repo": gpu_repo, "builds": builds, "env": env}


def run_app(site, variant: str, *args: str) -> subprocess.CompletedProcess:
    argv = [str(site["builds"][variant]), "--iterations", "2", "--interval-ms", "10", *args]
    return subprocess.run(argv, env=site["env"], capture_output=True, text=True, timeout=120, check=False)


def test_honest_example_infers_in_process_and_checks_its_answers(site):
    proc = run_app(site, "honest", *CPU_PLAN["runtime"]["server_args"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "embedded_app (honest variant): Triton C API 1.34, model add_sub ready" in proc.stdout
    assert "frame 0: OUTPUT0 = 2 4 6 8 (CPU:0)" in proc.stdout
    assert "frame 1: OUTPUT1 = 1 1 1 1 (CPU:0)" in proc.stdout
    assert "allocator: OUTPUT0 asked CPU:0, given CPU:0 (16 bytes)" in proc.stdout
    assert proc.stdout.rstrip().endswith("embedded_app: stopped")
    # Triton's own log (stderr) shows the plan's pool setting took effect.
    assert "pinned_memory_pool_byte_size     | 0" in proc.stderr


def test_honest_example_refuses_an_option_it_does_not_know(site):
    proc = run_app(site, "honest", "--backend-config=python,shm-default-byte-size=1")
    assert proc.returncode == 2 and "unknown option --backend-config" in proc.stderr


def test_hard_coded_gpu_variant_fails_without_a_gpu(site):
    proc = run_app(site, "gpu")
    assert proc.returncode == 1
    assert "embedded_app: cudaSetDevice(0) failed:" in proc.stderr


def test_probe_over_the_example_repository(site):
    release = site["release"]
    manifest = json.loads((release / "manifest.json").read_text())
    result = probe(
        release, release / "lib" / "libtritonserver.so", manifest, CPU_PLAN, site["repo"], ["add_sub", "scale"],
        None, "libnvidia-ml.so.1 not found", site["env"], timeout=120,
    )  # fmt: skip
    assert result["ran"] is True, result["stderr_tail"]
    assert result["server"]["version"] == "2.51.0" and result["server"]["api_version"] == "1.34"
    assert "--pinned-memory-pool-byte-size=0" in result["options"]
    add_sub, scale = result["models"]
    assert add_sub["instance_groups"] == [{"name": "add_sub_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]
    assert {o["name"]: o["data"] for o in add_sub["inference"]["outputs"]} == ADD_SUB
    assert [a["asked"] for a in add_sub["inference"]["allocations"]] == [{"memory_type": "CPU", "device": 0}] * 2
    assert scale["inference"]["ok"] is True
    assert result["gpu_memory"]["measured"] is False
    expected = {"add_sub": [{"kind": "KIND_CPU", "count": 1}], "scale": [{"kind": "KIND_CPU", "count": 1}]}
    assert probe_findings(result, CPU_PLAN, expected, {"add_sub": ADD_SUB}) == []
    # The probe's process group ended after the report: its python stubs' shared memory went with it.
    assert len(result["removed_shared_memory"]) == 2
    assert not any(Path(region).exists() for region in result["removed_shared_memory"])
    # ...and its processes: the probe and one stub per model, measured while loaded, all gone.
    pids = result["gpu_memory"]["pids"]
    assert len(pids) == 3
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_probe_of_a_kind_gpu_model_quotes_triton(site):
    release = site["release"]
    manifest = json.loads((release / "manifest.json").read_text())
    result = probe(
        release, release / "lib" / "libtritonserver.so", manifest, CPU_PLAN, site["gpu_repo"], ["add_gpu"],
        None, "none", site["env"], timeout=120,
    )  # fmt: skip
    assert result["ran"] is True, (result["reason"], result["stderr_tail"])
    assert result["models"][0]["loaded"] is False
    assert KIND_GPU_MESSAGE in result["models"][0]["load_message"]
    findings = probe_findings(result, CPU_PLAN)
    assert [f["code"] for f in findings] == ["probe_load_failed"]
    assert "triton_instance_policy=auto" in findings[0]["fix"]


# ---------------------------------------------------------------------------- the module


def app_check(tmp_path: Path, args: dict, env: dict | None = None) -> tuple[int, dict]:
    tree = tmp_path / "tree"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "triton_app_check",
         "-a", json.dumps(args), "-t", str(tree)],
        cwd=REPO_ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), **(env or {})},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads((tree / "localhost").read_text())


def codes(result: dict) -> list[str]:
    return [f["code"] for f in result["findings"]]


def test_module_names_the_gpu_variants_cuda_calls(site, tmp_path):
    base = {"plan": CPU_PLAN, "install_prefix": str(site["base"] / "opt"), "environment": site["env"]}
    rc, result = app_check(tmp_path, {**base, "binary": str(site["builds"]["gpu"])})
    assert rc != 0 and codes(result) == ["app_cuda_calls"]
    finding = result["findings"][0]
    assert (
        "cudaMalloc, cudaMemcpy, cudaSetDevice" in finding["message"]
        and "TRITONSERVER_MEMORY_GPU" in finding["message"]
    )
    assert "append inputs as TRITONSERVER_MEMORY_CPU" in finding["fix"]
    assert result["app_check"]["binary"]["library"]["gpu_build"] is True

    rc, result = app_check(tmp_path, {**base, "binary": str(site["builds"]["honest"])})
    assert rc == 0 and result["findings"] == [] and result["verdict"] == "passed"
    assert result["release"]["library"] == str(site["base"] / "opt" / "current" / "lib" / "libtritonserver.so")


def test_module_finds_a_gpu_library_without_pool_settings(site, tmp_path):
    lib = site["release"] / "lib"
    plain = build_program(
        "no-pools",
        call_all(
            "TRITONSERVER_ApiVersion", "TRITONSERVER_ServerNew", "TRITONSERVER_ServerOptionsSetModelLoadRetryCount"
        ),
        [lib / "libtritonserver.so"],
        link_dirs=[lib],
    )
    env = {"LD_LIBRARY_PATH": str(lib)}
    args = {"plan": CPU_PLAN, "install_prefix": str(site["base"] / "opt"), "binary": str(plain), "environment": env}
    rc, result = app_check(tmp_path, args)
    assert rc != 0 and codes(result) == ["app_gpu_library_pools"]
    assert "links libcudart-09529672.so.12.6.77" in result["findings"][0]["message"]
    rc, result = app_check(tmp_path, {**args, "environment": {**env, "CUDA_VISIBLE_DEVICES": ""}})
    assert rc == 0 and result["findings"] == []


@pytest.fixture
def running_app(site):
    """The honest example as a running process (frames every second until stopped)."""
    argv = [str(site["builds"]["honest"]), "--iterations", "0", *CPU_PLAN["runtime"]["server_args"]]
    proc = subprocess.Popen(argv, env=site["env"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline and "frame 0" not in seen and proc.poll() is None:
        if select.select([proc.stdout], [], [], 1)[0]:
            seen += proc.stdout.readline()
    assert "frame 0" in seen, f"the example did not reach its first frame: {seen}"
    yield proc
    proc.terminate()
    proc.wait(60)


def test_cpu_plan_process_with_gpu_memory_fails_on_a_simulated_dgpu_host(site, tmp_path, running_app):
    library = build_fake_nvml(REPO_ROOT / "tests" / ".work" / "fake-nvml")
    config = tmp_path / "gpus.conf"
    config.write_text(
        "driver_version: 550.54.15\ncuda_driver_version: 12040\n"
        "gpu: 0 | NVIDIA A100-SXM4-40GB | GPU-0d3c6a52-5a36-5c43-9c2e-6f0c1a7b2b10 | 00000000:17:00.0 | 8 | 0 "
        "| 40960 | disabled\n"
        f"process: 0 | {running_app.pid} | 320\n"
    )
    nvml_env = {"LD_LIBRARY_PATH": str(library.parent), "FAKE_NVML_CONFIG": str(config)}
    args = {"plan": DGPU_CPU_PLAN, "install_prefix": str(site["base"] / "opt"), "pid": running_app.pid}
    rc, result = app_check(tmp_path, args, nvml_env)
    assert rc != 0 and codes(result) == ["app_cpu_plan_gpu_memory"]
    memory = result["app_check"]["gpu_memory"]
    assert memory["measured"] is True and memory["total_bytes"] == 320 * 1024 * 1024
    assert result["app_check"]["process"]["environment"]["CUDA_VISIBLE_DEVICES"] == ""

    # The same process with no GPU memory passes.
    config.write_text(config.read_text().replace(f"process: 0 | {running_app.pid} | 320\n", ""))
    rc, result = app_check(tmp_path, args, nvml_env)
    assert rc == 0 and result["app_check"]["gpu_memory"]["total_bytes"] == 0


def test_without_nvml_gpu_memory_is_not_measured(site, tmp_path, running_app):
    args = {"plan": CPU_PLAN, "install_prefix": str(site["base"] / "opt"), "pid": running_app.pid}
    rc, result = app_check(tmp_path, args)
    assert rc == 0 and result["verdict"] == "passed"
    memory = result["app_check"]["gpu_memory"]
    assert memory["measured"] is False and memory["reason"].startswith("NVML unavailable")
    assert result["app_check"]["process"]["triton_libraries"] == [
        str(site["release"] / "lib" / "libtritonserver-717102f0.so")
    ]


# ---------------------------------------------------------------------------- simulated Jetson


def test_jetson_root_with_a_tarball_release(tmp_path):
    """A JetPack tarball (lib/libtritonserver.so linking CUDA, include/), laid out by the install code."""
    fixture = REPO_ROOT / "tests" / "fixtures" / "hosts" / "jetson-orin-nano-jp61" / "root"
    root = tmp_path / "root"
    shutil.copytree(fixture, root, symlinks=True)
    cudart = build_library("libcudart.so.12", "int cudaGetDeviceCount(int* n){*n=1;return 0;}")
    lib = build_library(
        "libtritonserver.so",
        "int cudaGetDeviceCount(int*); int TRITONSERVER_ApiVersion(){int n; return cudaGetDeviceCount(&n);}",
        links=[cudart],
    )  # fmt: skip
    tree = tmp_path / "tritonserver"
    (tree / "bin").mkdir(parents=True)
    # JetPack tarballs link the board's CUDA runtime: the install reads the GPU build from that.
    server = build_program("tritonserver", call_all("cudaGetDeviceCount"), [cudart])
    shutil.copy2(server, tree / "bin" / "tritonserver")
    (tree / "lib").mkdir()
    shutil.copy2(lib, tree / "lib" / "libtritonserver.so")
    (tree / "include" / "triton" / "core").mkdir(parents=True)
    (tree / "include" / "triton" / "core" / "tritonserver.h").write_text("/* C API header as the tarball ships it */\n")
    (tree / "backends").mkdir()
    archive = tmp_path / "tritonserver2.51.0-igpu.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="tritonserver")
    plan = make_plan(jetson_host("orin-jp6"), "24.10", "tarball")
    install_release(
        {"prefix": str(root / "opt" / "tritonserver"), "method": "tarball", "plan": plan, "source": archive.name,
         "archive": str(archive), "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(), "python_bin_dir": None,
         "enable_gpu": True, "keep_releases": 3},
        check_mode=False,
    )  # fmt: skip
    app = root / "opt" / "detector" / "detector"
    app.parent.mkdir(parents=True)
    built = build_program(
        "detector",
        call_all("TRITONSERVER_ApiVersion"),
        [lib],
        rpath="/opt/tritonserver/current/lib",
        link_dirs=[cudart.parent],
    )  # fmt: skip
    shutil.copy2(built, app)
    sleeper = subprocess.Popen(["sleep", "30"], env={"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    try:
        args = {"plan": plan, "root": str(root), "binary": "/opt/detector/detector", "pid": sleeper.pid}
        rc, result = app_check(tmp_path, args)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert rc == 0, result.get("msg")
    assert result["release"]["include"] == "include"
    assert result["release"]["library"] == str(root / "opt" / "tritonserver" / "current" / "lib" / "libtritonserver.so")
    library = result["app_check"]["binary"]["library"]
    assert (library["path"], library["via"], library["gpu_build"]) == (
        "/opt/tritonserver/current/lib/libtritonserver.so", "RPATH", True,
    )  # fmt: skip
    memory = result["app_check"]["gpu_memory"]
    assert memory["measured"] is False and "not this host" in memory["reason"]
    assert result["verdict"] == "passed"
