# SPDX-License-Identifier: Apache-2.0
"""The ``embedded`` step: Triton in-process on this host, against the CPU plan site_cpu verified.

Three parts, each run on the host's rendered model repository (``<models root>/current``, the
CPU plan's release that site_cpu left) through the installed release's ``libtritonserver``:

- the in-process probe (``module_utils/triton_app_probe.probe``, what verification runs for an
  embedding application): every model loaded and inferred through the C API with the plan's
  memory options, its own GPU memory by NVML, and its findings;
- examples/embedded_app's honest variant, built with the example's own Makefile, started with
  the environment the service gave the CPU-plan server and exactly the plan's device variables
  (``plan.runtime.env``) and options (``plan.runtime.server_args``): 0 bytes on every GPU by
  NVML is the claim;
- its hard-coded-GPU variant as the failing application ran, ignoring the plan: the same
  options, the plan's device variables left out (GPUs visible); its bytes are the figure, and
  the app check must name it.

The app check (``module_utils/triton_app_check.check_app``) judges each binary, and each running
process, against the CPU plan. On a dry run the hard-coded-GPU variant is built and checked
from its file only: running it needs a GPU.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gpuproof import REPO
from gpuproof.procs import Server, quoted, run, wait_for_line
from gpuproof.record import Step, StepFailed

EXAMPLE = "examples/embedded_app"
# The example repository's model the example serves; the kit deploys it beside its own.
EMBEDDED_MODEL = "add_sub"
READY_TEXT = " ready"
VARIANTS = ("honest", "gpu")
PROBE_TIMEOUT_S = 120


def app_argv(binary: Path, repository: Path, backends: Path, model: str, device_args: list[str]) -> list[str]:
    """The example's command line: one model, inferring every 200 ms until SIGTERM, the plan's device options."""
    return [
        str(binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--model={model}",
        "--iterations=0",
        "--interval-ms=200",
        *device_args,
    ]


def errors_of(result: dict[str, Any]) -> list[str]:
    return [f"{f['code']}: {f['message']}" for f in result["findings"] if f["severity"] == "error"]


def zero_on_every_gpu(memory: dict[str, Any] | None) -> bool:
    return bool(memory and memory.get("measured") and memory.get("total_bytes") == 0 and not memory.get("gpus"))


def app_check(kit: Any, step: Step, variant: str, binary: Path, pid: int | None, env: dict[str, str]) -> dict[str, Any]:
    """Run the app check on ``binary`` (and its process ``pid``); record its findings and bytes."""
    from ansible.module_utils.triton_app_check import check_app
    from ansible.module_utils.triton_app_probe import descendants

    nvml, reason = kit.nvml()
    result = check_app(
        binary,
        pid,
        kit.cpu_plan,
        env,
        kit.host.get("gpus") or [],
        str(kit.release() / "lib" / "libtritonserver.so"),
        nvml,
        reason,
        descendants=lambda p: descendants(Path("/proc"), p),
    )
    (kit.logs / f"{step.name}-{variant}-app-check.json").write_text(json.dumps(result, indent=2, default=str))
    source = "triton_app_check" + (f" on pid {pid}" if pid else " on the binary only")
    step.figure(
        f"{variant}_app_check_findings", [f"{f['severity']} {f['code']}" for f in result["findings"]], "list", source
    )
    memory = result.get("gpu_memory")
    if memory is not None:
        step.figure(f"{variant}_gpu_memory_measured", memory["measured"], "bool", f"{source}: {memory['reason']}")
        step.figure(f"{variant}_gpu_memory_bytes", memory["total_bytes"], "bytes", f"{source}, NVML per-process")
    return result


def run_variant(
    kit: Any, step: Step, variant: str, binary: Path, argv: list[str], env: dict[str, str]
) -> dict[str, Any]:
    """Start one variant, wait for its model, check it while it infers, stop it; return the check."""
    log = kit.logs / f"{step.name}-{variant}.log"
    app = Server(argv, env, log, None, None)
    try:
        ready = wait_for_line(log, READY_TEXT, app.proc, kit.timeout(120))
        step.figure(f"{variant}_ready_seconds", ready, "s", "the application's 'model ... ready' line")
        if ready is None:
            raise StepFailed(f"the {variant} variant did not get its model ready (log {log.name})")
        time.sleep(1.0)  # a few inferences, so the hard-coded variant holds its buffers
        check = app_check(kit, step, variant, binary, app.proc.pid, env)
    finally:
        rc = app.stop(leader_first=True)
        step.command(quoted(argv), rc, time.monotonic() - app.started, log.name, log.read_text(errors="replace"))
    step.figure(f"{variant}_exit_status", rc, "rc", "after SIGTERM")
    return check


def run_probe(kit: Any, step: Step, repository: Path, env: dict[str, str]) -> dict[str, Any]:
    """The in-process probe of the rendered repository with the CPU plan's options; record it."""
    from ansible.module_utils.triton_app_probe import probe, probe_findings
    from ansible.module_utils.triton_models_switch import release_models

    release = kit.release()
    models = release_models(repository)
    groups_file = repository / "instance_groups.json"
    expected_groups = json.loads(groups_file.read_text()) if groups_file.is_file() else None
    nvml, reason = kit.nvml()
    started = time.monotonic()
    result = probe(
        release,
        release / "lib" / "libtritonserver.so",
        json.loads((release / "manifest.json").read_text()),
        kit.cpu_plan,
        repository,
        models,
        nvml,
        reason,
        env,
        timeout=kit.timeout(PROBE_TIMEOUT_S),
    )
    result["findings"] = probe_findings(result, kit.cpu_plan, expected_groups, kit.expected_outputs(gpu=False))
    step.command(
        f"triton_app_probe.probe({release}/lib/libtritonserver.so, {repository}, models {models}, CPU plan)",
        0 if result["ran"] else 1,
        time.monotonic() - started,
        f"{step.name}-probe.json",
        result.get("stderr_tail") or "",
    )
    (kit.logs / f"{step.name}-probe.json").write_text(json.dumps(result, indent=2, default=str))
    source = "triton_app_probe (C API in-process, the CPU plan's memory options)"
    step.figure("probe_ran", result["ran"], "bool", f"{source}: {result['reason'] or 'completed'}")
    step.figure(
        "probe_instance_groups",
        {m["name"]: m.get("instance_groups") for m in result.get("models") or []},
        "dict",
        f"{source}, the config Triton completed",
    )
    step.figure("probe_findings", [f"{f['severity']} {f['code']}" for f in result["findings"]], "list", source)
    memory = result.get("gpu_memory") or {}
    step.figure("probe_gpu_memory_measured", memory.get("measured"), "bool", f"{source}: {memory.get('reason')}")
    step.figure("probe_gpu_memory_bytes", memory.get("total_bytes"), "bytes", f"{source}, NVML per-process")
    return result


def step_embedded(kit: Any, step: Step) -> None:
    example = REPO / EXAMPLE
    runtime = kit.cpu_runtime("the embedded step")
    server = kit.running_server("the embedded step")
    release = kit.release()
    repository = Path(os.path.realpath(Path(kit.setting("triton_models_root", "triton_models")) / "current"))
    plan_env = {str(k): str(v) for k, v in runtime["env"].items()}
    # The service's own environment for Triton processes (PATH to the runtime venv, lib/, HOME),
    # the device variables taken from the plan, not from the process.
    base_env = {k: v for k, v in server["env"].items() if k not in plan_env}
    honest_env = {**base_env, **plan_env}
    device_args = [str(a) for a in runtime["server_args"]]
    problems = []
    probed = run_probe(kit, step, repository, honest_env)
    if errors_of(probed):
        problems.append(f"the in-process probe has error findings: {errors_of(probed)}")
    if not zero_on_every_gpu(probed.get("gpu_memory")):
        problems.append(f"the in-process probe is not at 0 bytes on every GPU: {probed.get('gpu_memory')}")
    binaries = {}
    for variant in VARIANTS:
        binaries[variant] = kit.work / "embedded" / f"embedded_app_{variant}"
        binaries[variant].parent.mkdir(parents=True, exist_ok=True)
        rc, _ = run(
            step,
            ["make", "-C", str(example), f"TRITON_HOME={release}", f"VARIANT={variant}", f"TARGET={binaries[variant]}"],
            kit.log(step, f"make-{variant}"),
            kit.timeout(120),
            env=kit.env,
        )
        if rc != 0:
            raise StepFailed(f"the {variant} variant does not build against {release} (rc {rc})")
    honest_argv = app_argv(binaries["honest"], repository, release / "backends", EMBEDDED_MODEL, device_args)
    honest = run_variant(kit, step, "honest", binaries["honest"], honest_argv, honest_env)
    if errors_of(honest):
        problems.append(f"the honest variant has error findings: {errors_of(honest)}")
    if not zero_on_every_gpu(honest["gpu_memory"]):
        problems.append(f"the honest variant is not at 0 bytes on every GPU: {honest['gpu_memory']}")
    if kit.dry_run:
        hardcoded = app_check(kit, step, "gpu", binaries["gpu"], None, base_env)
        step.note("dry run: the hard-coded-GPU variant was checked from its file only (running it needs a GPU)")
    else:
        gpu_argv = app_argv(binaries["gpu"], repository, release / "backends", EMBEDDED_MODEL, device_args)
        hardcoded = run_variant(kit, step, "gpu", binaries["gpu"], gpu_argv, base_env)
        if not (hardcoded["gpu_memory"] or {}).get("total_bytes"):
            problems.append(f"the hard-coded-GPU variant holds no GPU memory by NVML: {hardcoded['gpu_memory']}")
    if not errors_of(hardcoded):
        problems.append("the app check found nothing wrong with the hard-coded-GPU variant")
    if problems:
        raise StepFailed("; ".join(problems))
