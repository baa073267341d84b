#!/usr/bin/env python3
"""Benchmark: render + validate a generated 200-model repository (target <= 2 s), every static check of
that repository, ensembles included (target <= 1 s), and a full verification of 20 models served by a
real tritonserver 2.51.0 (target <= 3 s).

Run: ``.venv/bin/python tests/bench/bench_models.py`` (uses loopback ports 38030-38032).
Exits non-zero when a target is missed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parents[2]
# Import the project's module_utils as Ansible (and tests/conftest.py) do.
ansible.module_utils.__path__.append(str(REPO_ROOT / "module_utils"))
sys.path.insert(0, str(REPO_ROOT / "tests"))

import requests  # noqa: E402 - after the module_utils path is set up, like every import below
from ansible.module_utils.triton_model_config import render_repository  # noqa: E402
from ansible.module_utils.triton_model_repository import RenderSettings, check_repository  # noqa: E402
from ansible.module_utils.triton_nvml import load_nvml  # noqa: E402
from ansible.module_utils.triton_server_check import verify  # noqa: E402
from support.triton_dist import server_argv, server_env, triton_release  # noqa: E402

RENDER_MODELS = 200
SERVED_MODELS = 20
RENDER_TARGET_S = 2.0
VERIFY_TARGET_S = 3.0
PORT = 38030
DETECTOR = REPO_ROOT / "examples" / "detector_repository" / "peoplenet" / "config.pbtxt"
ADD_SUB = REPO_ROOT / "examples" / "model_repository" / "add_sub"
PLANS = {
    "cpu": (
        {"platform": "cpu", "arch": "x86_64", "enable_gpu": False, "instance_kind": "KIND_CPU", "gpu_ids": []},
        {"arch": "x86_64", "gpus": [], "igpu": None},
    ),
    "dgpu": (
        {"platform": "dgpu", "arch": "x86_64", "enable_gpu": True, "gpu_ids": [0, 1], "min_compute_capability": "6.0"},
        {
            "arch": "x86_64",
            "gpus": [{"index": 0, "compute_capability": "8.6"}, {"index": 1, "compute_capability": "8.6"}],
        },
    ),
    "jetson": (
        {"platform": "jetson", "arch": "aarch64", "enable_gpu": True, "gpu_ids": [0], "min_compute_capability": "6.0"},
        {"arch": "aarch64", "gpus": [], "igpu": {"compute_capability": "8.7"}},
    ),
}
ENSEMBLE = (
    'platform: "ensemble"\nmax_batch_size: 0\n'
    'input [{ name: "A" data_type: TYPE_FP32 dims: [4] }, { name: "B" data_type: TYPE_FP32 dims: [4] }]\n'
    'output [{ name: "D" data_type: TYPE_FP32 dims: [4] }]\n'
    "ensemble_scheduling { step [\n"
    '  { model_name: "{step}" model_version: -1 input_map { key: "INPUT0" value: "A" } '
    'input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT0" value: "S" } output_map { key: "OUTPUT1" '
    'value: "T" } },\n'
    '  { model_name: "{step}" model_version: -1 input_map { key: "INPUT0" value: "S" } '
    'input_map { key: "INPUT1" value: "T" } output_map { key: "OUTPUT1" value: "D" } }\n'
    "] }\n"
)
# (config, files of version 1): the detector, the python add_sub, an ONNX Runtime model with KIND_AUTO,
# and an ensemble of the python model before it.
SHAPES = [
    (DETECTOR.read_text(), ("model.onnx",)),
    ((ADD_SUB / "config.pbtxt").read_text(), ("model.py",)),
    (
        'backend: "onnxruntime"\nmax_batch_size: 8\ninput [{ name: "x" data_type: TYPE_FP32 dims: [16] }]\n'
        'output [{ name: "y" data_type: TYPE_FP32 dims: [16] }]\ninstance_group [{ kind: KIND_AUTO count: 2 }]\n',
        ("model.onnx",),
    ),
    (ENSEMBLE, ()),
]
BACKENDS = ("onnxruntime", "python")
VALIDATE_TARGET_S = 1.0


def generate_repository(root: Path, count: int) -> Path:
    """Write ``count`` servable model directories cycling through detector, python, ORT-auto and ensemble
    (each ensemble runs the python model generated just before it twice)."""
    for i in range(count):
        body, files = SHAPES[i % len(SHAPES)]
        name = f"m{i:03d}"
        model = root / name
        (model / "1").mkdir(parents=True)
        text = re.sub(r'^name: "\w+"\n', "", body, flags=re.M).replace("{step}", f"m{i - 2:03d}")
        (model / "config.pbtxt").write_text(text)
        for file in files:
            (model / "1" / file).write_text("placeholder\n")
    return root


def bench_render(tmp: Path) -> dict[str, float]:
    src = generate_repository(tmp / "repo200", RENDER_MODELS)
    timings = {}
    for platform, (plan, host) in PLANS.items():
        dest = tmp / f"out-{platform}"
        start = time.perf_counter()
        rendered, _ = render_repository(str(src), str(dest), plan, host)
        for model in rendered:
            Path(model.dest).parent.mkdir(parents=True, exist_ok=True)
            Path(model.dest).write_text(model.text)
        timings[platform] = time.perf_counter() - start
        assert len(rendered) == RENDER_MODELS
    return timings


def bench_validate(tmp: Path) -> dict[str, float]:
    """Every static check of the whole repository (layout, links, config rules, graph, versions, backends,
    instance groups, model files, ensembles) for each plan: the median of five runs."""
    src = tmp / "repo200"
    timings = {}
    for platform, (plan, host) in PLANS.items():
        settings = RenderSettings({**plan, "release": "24.10"}, host, release_backends=BACKENDS)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            check = check_repository(src, settings)
            runs.append(time.perf_counter() - start)
            if check.problems or len(check.configs) != RENDER_MODELS:
                raise SystemExit(f"the generated repository is not clean: {[p.message for p in check.problems][:3]}")
        timings[platform] = sorted(runs)[len(runs) // 2]
    return timings


def bench_module(tmp: Path) -> float:
    """One ansible ad-hoc call of triton_model_config on the 200-model repository (includes ansible start-up)."""
    plan, host = PLANS["dgpu"]
    args = {"repository_src": str(tmp / "repo200"), "dest": str(tmp / "module-out"), "plan": plan, "host": host}
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}
    ansible = Path(sys.executable).parent / "ansible"
    start = time.perf_counter()
    proc = subprocess.run(
        [str(ansible), "localhost", "-m", "triton_model_config", "-a", json.dumps(args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"module run failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def served_repository(root: Path) -> Path:
    repo = root / "served"
    for i in range(SERVED_MODELS):
        model = repo / f"add_sub_{i:02d}"
        shutil.copytree(ADD_SUB, model)
        config = (model / "config.pbtxt").read_text().replace('name: "add_sub"', f'name: "add_sub_{i:02d}"')
        (model / "config.pbtxt").write_text(config)
    return repo


def bench_verify(tmp: Path) -> tuple[list[tuple[float, dict]], float]:
    release = triton_release(tmp / "triton")
    repo = served_repository(tmp)
    plan, host = PLANS["cpu"]
    rendered, _ = render_repository(str(repo), str(tmp / "served-rendered"), plan, host)
    expected_groups = {m.name: m.instance_groups for m in rendered}
    expected_outputs = {m.name: {"OUTPUT0": [2.0, 4.0, 6.0, 8.0]} for m in rendered}
    argv = [*server_argv(release, repo, PORT, PORT + 1, PORT + 2), "--load-model=*", "--exit-timeout-secs=5"]
    log = (tmp / "tritonserver.log").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=server_env(release), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{PORT}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tritonserver did not become ready; log: {tmp / 'tritonserver.log'}")
            time.sleep(0.2)
        ready_s = time.perf_counter() - started
        nvml, nvml_reason = load_nvml()
        runs = []
        # First run: every python model instance answers its first request (cold); second: warm.
        for _ in range(2):
            with requests.Session() as session:
                start = time.perf_counter()
                report = verify(
                    session,
                    url,
                    plan,
                    nvml,
                    nvml_reason,
                    [proc.pid],
                    expected_instance_groups=expected_groups,
                    expected_outputs=expected_outputs,
                )
                runs.append((time.perf_counter() - start, report))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    return runs, ready_s


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmpdir:
        tmp = Path(tmpdir)
        render = bench_render(tmp)
        validate = bench_validate(tmp)
        module_s = bench_module(tmp)
        runs, ready_s = bench_verify(tmp)
    ok = True
    for platform, seconds in render.items():
        verdict = "ok" if seconds <= RENDER_TARGET_S else "MISSED"
        ok &= seconds <= RENDER_TARGET_S
        print(
            f"render+validate {RENDER_MODELS} models ({platform} plan): {seconds:.3f} s "
            f"(target <= {RENDER_TARGET_S} s) {verdict}"
        )
    for platform, seconds in validate.items():
        ok &= seconds <= VALIDATE_TARGET_S
        print(
            f"static validation of {RENDER_MODELS} models, {RENDER_MODELS // len(SHAPES)} of them ensembles "
            f"({platform} plan): {seconds:.3f} s (target <= {VALIDATE_TARGET_S} s) "
            f"{'ok' if seconds <= VALIDATE_TARGET_S else 'MISSED'}"
        )
    print(
        f"triton_model_config module, one ansible call, {RENDER_MODELS} models: {module_s:.2f} s "
        "(ansible start-up included)"
    )
    print(f"tritonserver with {SERVED_MODELS} python models ready after {ready_s:.1f} s")
    for label, (seconds, report) in zip(("cold", "warm"), runs, strict=True):
        findings = [f["code"] for f in report["findings"]]
        latencies = sorted(m["latency_ms"] for m in report["models"] if m["latency_ms"] is not None)
        passed = seconds <= VERIFY_TARGET_S and not findings and len(report["models"]) == SERVED_MODELS
        ok &= passed
        print(
            f"full verification of {len(report['models'])} served models ({label}): {seconds:.3f} s "
            f"(target <= {VERIFY_TARGET_S} s) {'ok' if passed else 'MISSED'}; findings {findings}; "
            f"infer latency median {latencies[len(latencies) // 2]:.1f} ms, max {latencies[-1]:.1f} ms; "
            f"gpu_memory measured={report['gpu_memory']['measured']}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
