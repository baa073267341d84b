#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
"""Ansible module: gather ansible_facts.triton_host (platform, L4T/JetPack, GPUs, CUDA, runtimes)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: triton_host_facts
short_description: Gather the triton_host facts of a Jetson, x86 dGPU or CPU-only host
description:
  - Reads files under O(root) (L4T release, device tree, dpkg status, NVIDIA driver version files,
    CUDA and TensorRT versions, container engines and their configuration, cgroup layout and limits)
    and, when O(root) is C(/) and an NVIDIA driver is loaded, queries NVML through nvidia-ml-py, to
    return C(ansible_facts.triton_host) with the schema of docs/architecture.md.
  - Every key is always present, C(null) or C([]) when unknown; C(reasons) says what was read where.
  - Missing NVML (Jetson before JetPack 7, CPU hosts) is reported in C(nvml.reason), not as a failure.
  - Lists the TCP ports listening on the host with the process holding each, and looks up the accounts
    named in O(accounts), so that preflight can refuse a taken port or a root or login service account.
  - Starts no subprocess and changes nothing on the host (a docker daemon socket is only connected to).
version_added: "0.1.0"
author: tritonfleet
options:
  root:
    description:
      - Directory every file is read under, to inspect a mounted root filesystem.
      - NVML is only queried when this is C(/) and a GPU device node or /proc/driver/nvidia exists.
    type: path
    default: /
  arch:
    description:
      - Architecture to report, for simulated hosts or a mounted rootfs of another architecture.
      - When unset, C(uname -m) for C(/), else the dpkg C(libc6) architecture under O(root).
    type: str
  accounts:
    description:
      - Account names to look up (the service user), reported in RV(ansible_facts.triton_host.accounts).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: full
"""

EXAMPLES = r"""
- name: Gather the Triton host facts
  triton_host_facts:

- name: Inspect a mounted aarch64 rootfs
  triton_host_facts:
    root: /mnt/jetson-rootfs
    arch: aarch64

- name: Show the platform
  ansible.builtin.debug:
    msg: "{{ ansible_facts['triton_host']['platform'] }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    triton_host:
      description: Host facts for Triton provisioning (docs/architecture.md).
      returned: always
      type: dict
      contains:
        schema_version:
          description: Version of this schema.
          type: int
          sample: 1
        root:
          description: Directory the files were read under.
          type: str
          sample: /
        platform:
          description: Jetson (L4T or tegra device tree), dgpu (NVIDIA driver or discrete GPU), else cpu.
          type: str
          choices: [jetson, dgpu, cpu]
        arch:
          description: Machine architecture.
          type: str
          sample: aarch64
        os:
          description: C(id), C(version_id), C(pretty_name) from os-release and C(glibc_version).
          type: dict
          sample: {id: ubuntu, version_id: "22.04", pretty_name: Ubuntu 22.04.5 LTS, glibc_version: "2.35"}
        kernel_release:
          description: Running kernel release; null under a mounted root.
          type: str
        l4t_version:
          description: L4T release, null off Jetson or when unparsable.
          type: str
          sample: 36.4.3
        l4t_raw:
          description: The text the L4T release was read from.
          type: str
          sample: "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: ..."
        l4t_source:
          description: Where the L4T release came from.
          type: str
          sample: /etc/nv_tegra_release
        l4t_known:
          description: Whether the L4T release is in the L4T to JetPack table; null off Jetson.
          type: bool
        jetpack_version:
          description: JetPack label for the L4T release (may carry a tag such as C(6.0 DP)); null when unknown.
          type: str
          sample: "6.2"
        soc:
          description: Tegra SoC from the device tree.
          type: str
          sample: tegra234
        board:
          description: Device-tree model.
          type: str
          sample: NVIDIA Jetson AGX Orin Developer Kit
        module:
          description: Jetson module part number from the device tree.
          type: str
          sample: p3701-0005
        module_name:
          description: Jetson module name for the part number; null when not in the table.
          type: str
          sample: Jetson AGX Orin 64GB
        igpu:
          description: Jetson iGPU C(name) and C(compute_capability) from the SoC; null off Jetson.
          type: dict
          sample: {name: Orin, compute_capability: "8.7"}
        gpu_device_nodes:
          description: GPU device nodes present (nvgpu and /dev/nvidia*).
          type: list
          elements: str
        gpu_device_nodes_present:
          description: Whether a GPU control node (/dev/nvhost-ctrl-gpu, /dev/nvgpu/igpu0/ctrl, /dev/nvidiactl) exists.
          type: bool
        driver_version:
          description: NVIDIA driver version.
          type: str
          sample: 550.54.15
        driver_source:
          description: Where the driver version came from.
          type: str
          choices: [nvml, /proc/driver/nvidia/version, /sys/module/nvidia/version]
        cuda_driver_version:
          description: Newest CUDA version the driver supports (NVML).
          type: str
          sample: "12.4"
        gpus:
          description:
            - GPUs in NVML (PCI bus) order, each with C(index), C(name), C(uuid), C(pci_bus_id),
              C(compute_capability), C(memory_mib), C(mig_mode) (enabled, disabled or null) and C(integrated).
            - From /proc/driver/nvidia/gpus when the driver is loaded but NVML is not usable.
          type: list
          elements: dict
        cuda_version:
          description: Installed CUDA toolkit version.
          type: str
          sample: 12.6.68
        tensorrt_version:
          description: Installed TensorRT version (major.minor.patch).
          type: str
          sample: 10.3.0
        nvml:
          description: C(usable), C(reason) and C(driver_version) of the NVML query.
          type: dict
          sample: {usable: false, reason: "not queried: root is not /", driver_version: null}
        container_engines:
          description:
            - Container engines found, each with the settings tritonfleet would run the server's container with
              on this host (module_utils/triton_container_engine.py, docs/containers.md).
            - C(default_runtime) and C(default_cgroup_manager) are what the engine would use by itself;
              C(runtime), C(cgroup_manager), C(ulimits), C(global_args) and C(run_args) what tritonfleet uses.
            - C(can_run) is whether it can start a container here (null when the root is not the running host);
              C(problems) says why not in four parts, C(notes) which engine default tritonfleet works around.
          type: list
          elements: dict
          sample:
            - name: podman
              path: /usr/bin/podman
              version: 4.3.1
              default_runtime: crun
              runtime: runc
              runtimes: [crun, runc]
              default_cgroup_manager: cgroupfs
              cgroup_manager: cgroupfs
              ulimits: {nofile: 20000, nproc: 32768}
              global_args: [--runtime, runc, --cgroup-manager, cgroupfs]
              run_args: [--ulimit, "nofile=20000:20000", --ulimit, "nproc=32768:32768"]
              can_run: true
              problems: []
              notes: ["podman: by default crun refuses this hybrid cgroup layout ...; tritonfleet runs it with runc"]
        nvidia_container_runtime:
          description:
            - C(present) when an NVIDIA container runtime or toolkit binary exists.
            - C(paths) lists those binaries, then CDI spec files under /etc/cdi and /var/run/cdi.
            - C(cdi_specs) lists the CDI spec files alone.
          type: dict
          sample: {present: true, paths: [/usr/bin/nvidia-ctk, /etc/cdi/nvidia.yaml], cdi_specs: [/etc/cdi/nvidia.yaml]}
        service_manager:
          description:
            - C(systemd) when systemd manages the host's services (the rule of Ansible's C(service_mgr) fact),
              else C(other); the service role runs Triton under supervisord and the pull role a pidfile daemon there.
          type: str
          choices: [systemd, other]
        listening:
          description:
            - TCP sockets listening in the host's network namespace (C(/proc/net/tcp), C(tcp6)), sorted by port,
              each with the C(pid) and executable (C(exe)) of the process holding it (null when not found).
            - Empty when O(root) is not C(/).
          type: list
          elements: dict
          sample: [{address: 0.0.0.0, port: 22, pid: 611, exe: /usr/sbin/sshd}]
        accounts:
          description:
            - Each account of O(accounts) as C(uid), C(gid), C(comment), C(home) and C(shell), or null when it
              does not exist (the name service on C(/), C(etc/passwd) under another root).
          type: dict
          sample: {tritonserver: {uid: 998, gid: 998, comment: "", home: /var/lib/tritonfleet, shell: /bin/false}}
        reasons:
          description: One line per conclusion, saying what was read where.
          type: list
          elements: str
"""

import os
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.triton_host import gather_host_facts, nvml_skip_reason
from ansible.module_utils.triton_nvml import load_nvml

ARGUMENT_SPEC = {
    "root": {"type": "path", "default": "/"},
    "arch": {"type": "str"},
    "accounts": {"type": "list", "elements": "str", "default": []},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    root = Path(module.params["root"])
    if not root.is_dir():
        module.fail_json(
            msg=f"root {root} is not a directory on {os.uname().nodename}; the facts are read from files under root. "
            "Set root to / or to the mount point of a root filesystem.",
            root=str(root),
        )
    nvml, nvml_reason = None, nvml_skip_reason(root)
    if nvml_reason is None:
        nvml, nvml_reason = load_nvml()
    facts = gather_host_facts(root, nvml, module.params["arch"], nvml_reason, module.params["accounts"])
    module.exit_json(changed=False, ansible_facts={"triton_host": facts})


if __name__ == "__main__":
    main()
