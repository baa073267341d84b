#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Capture, on a real host, the files triton_host_facts reads into a fixture folder:
#   <out>/root/...        the allowlisted files, byte for byte (procfs/sysfs copied with cat,
#                         since tar stores their stat size of 0); symlinks kept as symlinks
#   <out>/host.json       {"arch": "<uname -m>"}
#   <out>/nvml.json       a FakeNvml profile, when python3 can import pynvml
#   <out>/nvidia-smi.xml  `nvidia-smi -q -x`, when nvidia-smi exists
# Device nodes and binaries are recorded as empty files (only their presence is read); the dpkg
# status keeps only the packages the facts use; include/cuda.h keeps its first 64 KiB. Nothing
# is written outside <out>. Write expected.json by hand after checking the capture.
#
# Usage: tools/capture_host.sh <board-id> [out-dir]   (default out-dir: tests/fixtures/hosts/<board-id>)
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 <board-id> [out-dir]" >&2
  exit 2
fi
out=${2:-tests/fixtures/hosts/$1}
root="$out/root"
if [[ -e $root ]]; then
  echo "$root exists; remove it or pick another out-dir" >&2
  exit 1
fi
mkdir -p "$root"
root_real=$(realpath "$root")

# True when writing $1 under $root stays under $root: a captured absolute symlink
# (usr/local/cuda -> /usr/local/cuda-12.6) must never lead a write onto this host's files.
inside() {
  local dir
  dir=$(realpath -m "$root$(dirname "$1")")
  [[ $dir == "$root_real" || $dir == "$root_real"/* ]]
}

# Copy one path as a symlink (and every link it passes through) or as file contents.
capture() {
  local src=$1 hops=0
  while [[ -L $src && $hops -lt 10 ]]; do
    inside "$src" || return 0
    mkdir -p "$root$(dirname "$src")"
    cp -P "$src" "$root$src"
    local target
    target=$(readlink "$src")
    [[ $target == /* ]] || target="$(dirname "$src")/$target"
    src=$target
    hops=$((hops + 1))
  done
  if [[ -f $src && -r $src ]] && inside "$src"; then
    mkdir -p "$root$(dirname "$src")"
    if [[ $src == */include/cuda.h ]]; then
      # ~1 MiB; the probe reads CUDA_VERSION from the first 64 KiB only.
      head -c 65536 "$src" >"$root$src"
    else
      cat "$src" >"$root$src"
    fi
  fi
}

# Presence-only paths: device nodes and binaries become empty files (binaries stay executable).
mark() {
  local src=$1
  [[ -e $src ]] && inside "$src" || return 0
  mkdir -p "$root$(dirname "$src")"
  : >"$root$src"
  if [[ -x $src && ! -c $src ]]; then chmod 0755 "$root$src"; fi
}

shopt -s nullglob
for path in /etc/nv_tegra_release /etc/os-release /usr/lib/os-release \
  /proc/device-tree/model /proc/device-tree/compatible \
  /sys/firmware/devicetree/base/model /sys/firmware/devicetree/base/compatible \
  /proc/driver/nvidia/version /sys/module/nvidia/version \
  /proc/driver/nvidia/gpus/*/information \
  /usr/local/cuda /usr/local/cuda/version.json /usr/local/cuda/version.txt /usr/local/cuda/include/cuda.h \
  /usr/local/cuda-*/version.json /usr/local/cuda-*/version.txt /usr/local/cuda-*/include/cuda.h \
  /usr/include/NvInferVersion.h /usr/include/*-linux-gnu/NvInferVersion.h \
  /usr/local/tensorrt/include/NvInferVersion.h \
  /lib /lib/*-linux-gnu/libc.so.6 /usr/lib/*-linux-gnu/libc.so.6 /lib64/libc.so.6 /usr/lib64/libc.so.6 \
  /etc/cdi/*.yaml /etc/cdi/*.yml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.yml /var/run/cdi/*.json; do
  # libc.so.6 itself is a 2 MB binary: keep the link (its target names the version), not the file.
  if [[ $path == */libc.so.6 && ! -L $path ]]; then
    mark "$path"
  elif [[ $path == /lib && ! -L $path ]]; then
    continue
  else
    capture "$path"
  fi
done
for path in /lib/*-linux-gnu/libc-*.so /usr/lib/*-linux-gnu/libc-*.so; do mark "$path"; done
for path in /dev/nvhost-ctrl-gpu /dev/nvgpu/igpu0/ctrl /dev/nvidiactl /dev/nvmap /dev/nvidia-uvm \
  /dev/nvidia-uvm-tools /dev/nvidia[0-9]*; do
  mark "$path"
done
for dir in /usr/bin /usr/local/bin /bin; do
  [[ -L $dir ]] && continue
  for name in docker podman nerdctl nvidia-container-runtime nvidia-ctk nvidia-container-toolkit \
    nvidia-container-runtime-hook; do
    mark "$dir/$name"
  done
done
# Container engines: their configuration, the OCI runtimes podman searches, and what decides whether
# a container can start here (cgroup mounts, PID 1, this shell's limits and capabilities, pid_max).
for path in /usr/share/containers/containers.conf /etc/containers/containers.conf \
  /etc/containers/containers.conf.d/*.conf /etc/docker/daemon.json \
  /proc/1/comm /proc/self/limits /proc/sys/kernel/pid_max /sys/fs/cgroup/unified/cgroup.controllers; do
  capture "$path"
done
for runtime in crun runc; do
  for dir in /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin /sbin /bin /run/current-system/sw/bin \
    /usr/lib/cri-o-runc/sbin; do
    [[ -L $dir ]] || mark "$dir/$runtime"
  done
done
mkdir -p "$root/proc/self"
grep -E '^[^ ]+ /sys/fs/cgroup[ /]' /proc/self/mounts >"$root/proc/self/mounts" || true
grep -E '^(Name|Cap)' /proc/self/status >"$root/proc/self/status" || true
[[ -L /bin ]] && capture /bin

if [[ -r /var/lib/dpkg/status ]]; then
  mkdir -p "$root/var/lib/dpkg"
  awk -v RS= -v ORS='\n\n' \
    '/^Package: (libc6|nvidia-l4t-core|tensorrt|libnvinfer10|libnvinfer8|libnvinfer7|podman|docker-ce|docker\.io|moby-engine)\n/' \
    /var/lib/dpkg/status >"$root/var/lib/dpkg/status"
fi

printf '{"arch": "%s"}\n' "$(uname -m)" >"$out/host.json"

if command -v nvidia-smi >/dev/null; then
  nvidia-smi -q -x >"$out/nvidia-smi.xml" 2>&1 || true
fi

# A FakeNvml profile (tests/fakes/fake_nvml.py) from the real NVML; calls that fail are listed
# as unsupported, an init failure becomes init_error.
python3 - "$out/nvml.json" <<'PY' || echo "nvml.json not written: python3 cannot import pynvml" >&2
import json
import sys

import pynvml

def call(fn, *args):
    try:
        return getattr(pynvml, fn)(*args), None
    except pynvml.NVMLError:
        return None, fn

def text(value):
    return value.decode() if isinstance(value, bytes) else value

profile = {}
try:
    pynvml.nvmlInit()
except pynvml.NVMLError as err:
    profile["init_error"] = type(err).__name__.removeprefix("NVMLError_")
else:
    try:
        for key, fn in (("driver_version", "nvmlSystemGetDriverVersion"),
                        ("cuda_driver_version", "nvmlSystemGetCudaDriverVersion")):
            value, failed = call(fn)
            profile[key] = text(value) if not failed else {"error": "NotSupported"}
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            device, unsupported = {}, []
            for key, fn in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID"),
                            ("pci_bus_id", "nvmlDeviceGetPciInfo"),
                            ("compute_capability", "nvmlDeviceGetCudaComputeCapability"),
                            ("memory_total_bytes", "nvmlDeviceGetMemoryInfo"), ("mig_mode", "nvmlDeviceGetMigMode")):
                value, failed = call(fn, handle)
                if failed:
                    unsupported.append(fn)
                    continue
                if key == "pci_bus_id":
                    value = text(value.busId)
                elif key == "memory_total_bytes":
                    value = value.total
                elif key in ("compute_capability", "mig_mode"):
                    value = list(value)
                device[key] = text(value)
            if unsupported:
                device["unsupported"] = unsupported
            devices.append(device)
        profile["devices"] = devices
    finally:
        pynvml.nvmlShutdown()
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump(profile, handle, indent=2)
    handle.write("\n")
PY

echo "captured into $out; review the files, then write $out/expected.json"
