# SPDX-License-Identifier: Apache-2.0
"""The ``embedded`` step: tritonfleet's embedding example (examples/embedded_app) on this host.

Both variants are built with the example's own Makefile against the installed release
(``<install prefix>/current``, its ``lib/libtritonserver.so``) and run on the host's rendered
model repository (``<models root>/current``, the CPU plan's release that site_cpu left):

- the honest variant with exactly the environment and device options tritonfleet gave the
  CPU-plan server (read from the running server: the plan's runtime as applied): 0 bytes on
  every GPU by NVML is the claim;
- the hard-coded-GPU variant as the failing application ran, ignoring the plan: the same
  options, the GPUs not hidden; its bytes are the figure, and the app check must name it.

The app check (``module_utils/triton_app_check.check_app``) judges each binary, and each running
process, against the CPU plan verification recorded. On a dry run the hard-coded-GPU variant
is built and checked from its file only: running it needs a GPU.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gpuproof import REPO
from gpuproof.launch import DEVICE_ENV, DEVICE_FLAGS
from gpuproof.procs import Server, children_of, quoted, run, wait_for_line
from gpuproof.record import Step, StepFailed

EXAMPLE = "examples/embedded_app"
# The example repository's model the example serves; the kit deploys it beside its own.
EMBEDDED_MODEL = "add_sub"
READY_TEXT = " ready"
VARIANTS = ("honest", "gpu")


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


def errors_of(check: dict[str, Any]) -> list[str]:
    return [f"{f['code']}: {f['message']}" for f in check["findings"] if f["severity"] == "error"]


def app_check(kit: Any, step: Step, variant: str, binary: Path, pid: int | None, env: dict[str, str]) -> dict[str, Any]:
    """Run the app check on ``binary`` (and its process ``pid``); record its findings and bytes."""
    from ansible.module_utils.triton_app_check import check_app

    nvml, reason = kit.nvml()
    release = Path(os.path.realpath(Path(kit.setting("triton_install_prefix", "triton_install")) / "current"))
    result = check_app(
        binary,
        pid,
        kit.cpu_plan,
        env,
        kit.host.get("gpus") or [],
        str(release / "lib" / "libtritonserver.so"),
        nvml,
        reason,
        descendants=lambda p: [p, *children_of(p)],
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


def step_embedded(kit: Any, step: Step) -> None:
    example = REPO / EXAMPLE
    if not (example / "Makefile").is_file():
        step.skip(f"{EXAMPLE} is not in this tree (the embedding example of issue 12 has not landed)")
        return
    if kit.cpu_plan is None:
        raise StepFailed("site_cpu recorded no CPU plan (its verification report is missing): see site_cpu")
    server = kit.running_server("the embedded step")
    release = Path(os.path.realpath(Path(kit.setting("triton_install_prefix", "triton_install")) / "current"))
    repository = Path(kit.setting("triton_models_root", "triton_models")) / "current"
    device_args = [a for a in server["argv"] if a.partition("=")[0] in DEVICE_FLAGS]
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
    problems = []
    honest_argv = app_argv(binaries["honest"], repository, release / "backends", EMBEDDED_MODEL, device_args)
    honest = run_variant(kit, step, "honest", binaries["honest"], honest_argv, server["env"])
    memory = honest["gpu_memory"] or {}
    if errors_of(honest):
        problems.append(f"the honest variant has error findings: {errors_of(honest)}")
    if not (memory.get("measured") and memory.get("total_bytes") == 0 and not memory.get("gpus")):
        problems.append(f"the honest variant is not at 0 bytes on every GPU: {memory}")
    visible = {k: v for k, v in server["env"].items() if k not in DEVICE_ENV}
    if kit.dry_run:
        hardcoded = app_check(kit, step, "gpu", binaries["gpu"], None, visible)
        step.note("dry run: the hard-coded-GPU variant was checked from its file only (running it needs a GPU)")
    else:
        gpu_argv = app_argv(binaries["gpu"], repository, release / "backends", EMBEDDED_MODEL, device_args)
        hardcoded = run_variant(kit, step, "gpu", binaries["gpu"], gpu_argv, visible)
        if not (hardcoded["gpu_memory"] or {}).get("total_bytes"):
            problems.append(f"the hard-coded-GPU variant holds no GPU memory by NVML: {hardcoded['gpu_memory']}")
    if not errors_of(hardcoded):
        problems.append("the app check found nothing wrong with the hard-coded-GPU variant")
    if problems:
        raise StepFailed("; ".join(problems))
