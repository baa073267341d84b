#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: plan a Triton install for one host from its facts and the compatibility matrix."""

from __future__ import annotations

from ansible.module_utils.triton_compat import (
    CONTAINER_ENGINE_CHOICES,
    ENABLE_GPU_CHOICES,
    GPU_BUILD_CHOICES,
    METHODS,
    CompatError,
    build_plan,
    load_matrix,
)
from ansible.module_utils.triton_module_run import ModuleFailure, run_as_module
from ansible.module_utils.triton_runtime import CONTAINER_GPU_MODES, JETSON_POOL_BYTES

DOCUMENTATION = r"""
module: triton_compat
short_description: Plan a Triton release, install method and GPU use for one host
description:
  - Checks the host's C(triton_host) facts against the Triton compatibility matrix (releases, CUDA and
    driver rules, compute capabilities, Jetson builds, glibc, install methods) and returns
    C(ansible_facts.triton_plan), the contract every later role reads (docs/architecture.md).
  - Fails, before anything changes, with a message that says what is wrong, what was found where, what is
    supported and what to do, for any combination the host cannot run.
  - Runs on the controller (C(delegate_to=localhost)); the matrix is controller-side data, one copy for the
    fleet. Changes nothing.
version_added: "0.1.0"
author: tritonfleet
options:
  host:
    description: The host's C(ansible_facts.triton_host) from C(triton_host_facts).
    type: dict
    required: true
  release:
    description: Triton release, as the container tag C(24.10) or the server version C(2.51.0); quote it in YAML.
    type: str
    default: "24.10"
  method:
    description: Install method.
    type: str
    default: wheel
    choices: [wheel, tarball, container, source]
  enable_gpu:
    description: Use a GPU when the host has a usable one (C(auto)), require one (C(true)) or plan for CPU (C(false)).
    type: str
    default: auto
    choices: [auto, "true", "false"]
  gpus:
    description: Pin a subset of CUDA device ids; empty means every usable GPU.
    type: list
    elements: int
    default: []
  gpu_build:
    description:
      - GPU support of the server build. C(auto) knows the wheel, the NGC images and the Jetson tarballs as GPU
        builds, takes an x86 tarball for one (a copy of the container's C(/opt/tritonserver)) and builds from
        source with GPU support when the plan uses a GPU.
      - C(false) declares a CPU-only build (tarball off Jetson, or source); the plan is then a CPU plan.
    type: str
    default: auto
    choices: [auto, "true", "false"]
  container_gpu_mode:
    description:
      - How a container gets the GPUs. C(auto) is C(--gpus) with docker off Jetson, C(--runtime nvidia) with docker
        on Jetson and CDI devices with podman; C(gpus), C(cdi) and C(runtime) force one way for every engine.
    type: str
    default: auto
    choices: [auto, gpus, cdi, runtime]
  container_engine:
    description:
      - Engine of the container method. C(auto) takes the first of docker and podman that can start a container on
        the host (C(triton_host.container_engines[].can_run)); C(docker) or C(podman) pins one.
      - The plan is refused when no such engine can run, or when a GPU plan's hand-over (C(--gpus), C(--runtime
        nvidia), CDI) lacks what it needs on the host (docs/containers.md).
    type: str
    default: auto
    choices: [auto, docker, podman]
  jetson_pinned_memory_pool_bytes:
    description: Pinned memory pool of a Jetson GPU plan (it comes out of the board's unified RAM).
    type: int
    default: 67108864
  jetson_cuda_memory_pool_bytes:
    description: CUDA memory pool of the iGPU in a Jetson GPU plan (unified RAM as well).
    type: int
    default: 67108864
  matrix_path:
    description: Path of the compatibility matrix on the controller.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: full
requirements:
  - PyYAML on the controller (an ansible-core dependency)
"""

EXAMPLES = r"""
- name: Ensure a Triton plan exists for this host
  triton_compat:
    host: "{{ ansible_facts['triton_host'] }}"
    release: "24.10"
    method: container
    enable_gpu: auto
    matrix_path: "{{ role_path }}/files/triton_matrix.yml"
  delegate_to: localhost
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: success
  type: dict
  contains:
    triton_plan:
      description: The plan (docs/architecture.md); every key always present.
      type: dict
      contains:
        release:
          description: Container release C(YY.MM).
          type: str
          sample: "24.10"
        server_version:
          description: Triton server version.
          type: str
          sample: "2.51.0"
        install_method:
          description: Install method.
          type: str
          choices: [wheel, tarball, container, source]
        container_image:
          description: Image that fits this host (C(-igpu) on JetPack 6); null when none does.
          type: str
          sample: nvcr.io/nvidia/tritonserver:24.10-py3
        container_tag:
          description: Tag of I(container_image).
          type: str
          sample: 24.10-py3
        container_engine:
          description: Engine that runs the server's container (container method only, else null).
          type: str
          choices: [docker, podman]
        cuda_version:
          description: CUDA version of the build; null when unverified in the matrix.
          type: str
          sample: "12.6.2"
        min_driver_version:
          description: Driver for full CUDA support, derived from the CUDA version; null off dGPU or when unknown.
          type: str
          sample: "560.35.03"
        enable_gpu:
          description: Triton will use a GPU on this host.
          type: bool
        instance_kind:
          description: Instance kind for the models.
          type: str
          choices: [KIND_GPU, KIND_CPU]
        gpu_ids:
          description: CUDA ids Triton will use; empty on CPU plans.
          type: list
          elements: int
        min_compute_capability:
          description: The build's default minimum compute capability.
          type: str
          sample: "6.0"
        hide_gpus:
          description: CPU plan on a host with GPUs; hide them from Triton.
          type: bool
        platform:
          description: Host platform.
          type: str
          choices: [jetson, dgpu, cpu]
        arch:
          description: Host architecture.
          type: str
          sample: x86_64
        jetson_artifact:
          description:
            - Jetson tarball or container to install, else null.
            - Keys C(kind), C(name), C(server_version), C(release), C(jetpack), C(min_jetpack), C(source).
          type: dict
        backends:
          description:
            - The C(backends/) the planned release provides with this install method (the matrix's C(wheel) and
              C(container) sets), checked against every model's backend before anything changes; null when not
              published (tarballs, source builds, C(-igpu) and arm64 images), then the installed release's
              manifest decides.
          type: list
          elements: str
          sample: [python]
        matrix_version:
          description: Version of the matrix the plan came from.
          type: int
          sample: 1
        notes:
          description: Decisions and caveats, one sentence each.
          type: list
          elements: str
        runtime:
          description:
            - The device environment and options of every Triton process, read verbatim by the service, the
              container run specification, the device check and verification (docs/architecture.md, "Runtime").
          type: dict
          contains:
            gpu_build:
              description: The server build has GPU support; the install refuses an artifact that differs.
              type: bool
            min_compute_capability:
              description: The minimum compute capability the server applies (the flag below, else the build's default).
              type: str
              sample: "6.0"
            env:
              description: CUDA variables of every Triton process (C(CUDA_VISIBLE_DEVICES="") on CPU plans).
              type: dict
              sample: {CUDA_DEVICE_ORDER: PCI_BUS_ID}
            container_env:
              description: Variables added inside a container (C(NVIDIA_VISIBLE_DEVICES=void) on CPU plans).
              type: dict
            memory:
              description:
                - Keys C(pinned_memory_pool_bytes) (null is Triton's default), C(cuda_memory_pool_bytes) (CUDA id to
                  bytes), C(min_supported_compute_capability) (null when the default fits), C(gpu_metrics),
                  C(peer_access).
              type: dict
            server_args:
              description: I(memory) as tritonserver flags.
              type: list
              elements: str
              sample: ["--pinned-memory-pool-byte-size=0", "--allow-gpu-metrics=false"]
            container_devices:
              description: Engine flags that hand the GPUs to a container, per engine (C(docker), C(podman)).
              type: dict
              sample: {docker: ["--gpus", "all"], podman: ["--device", "nvidia.com/gpu=all"]}
"""

ARGUMENT_SPEC = {
    "host": {"type": "dict", "required": True},
    "release": {"type": "str", "default": "24.10"},
    "method": {"type": "str", "default": "wheel", "choices": list(METHODS)},
    "enable_gpu": {"type": "str", "default": "auto", "choices": list(ENABLE_GPU_CHOICES)},
    "gpus": {"type": "list", "elements": "int", "default": []},
    "gpu_build": {"type": "str", "default": "auto", "choices": list(GPU_BUILD_CHOICES)},
    "container_gpu_mode": {"type": "str", "default": "auto", "choices": list(CONTAINER_GPU_MODES)},
    "container_engine": {"type": "str", "default": "auto", "choices": list(CONTAINER_ENGINE_CHOICES)},
    "jetson_pinned_memory_pool_bytes": {"type": "int", "default": JETSON_POOL_BYTES},
    "jetson_cuda_memory_pool_bytes": {"type": "int", "default": JETSON_POOL_BYTES},
    "matrix_path": {"type": "path", "required": True},
}


def run(params: dict, check_mode: bool) -> dict:
    """Plan for one host; also called in-process by the project's action plugin."""
    try:
        matrix = load_matrix(params["matrix_path"])
        plan = build_plan(
            params["host"],
            matrix,
            params["release"],
            params["method"],
            params["enable_gpu"],
            params["gpus"],
            params["gpu_build"],
            params["container_gpu_mode"],
            {"pinned": params["jetson_pinned_memory_pool_bytes"], "cuda": params["jetson_cuda_memory_pool_bytes"]},
            params["container_engine"],
        )
    except CompatError as err:
        raise ModuleFailure(str(err), wrong=err.wrong, found=err.found, supported=err.supported, todo=err.todo) from err
    except ValueError as err:
        raise ModuleFailure(
            f"a version in the host facts or the matrix cannot be compared: {err}. Found: triton_host of "
            f"{params['host'].get('root', '/')} and {params['matrix_path']}. Supported: dotted numeric versions "
            "such as '8.7' or '550.54.15'. To fix: re-gather triton_host with triton_host_facts, or correct the matrix."
        ) from err
    return {"changed": False, "ansible_facts": {"triton_plan": plan}}


def main() -> None:
    run_as_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
