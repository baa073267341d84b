# SPDX-License-Identifier: Apache-2.0
"""What in a running server's command line and environment decides its device use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Server options that decide device use: the CPU plan sets them, a default server has none.
DEVICE_FLAGS = (
    "--pinned-memory-pool-byte-size",
    "--cuda-memory-pool-byte-size",
    "--allow-gpu-metrics",
    "--enable-peer-access",
    "--min-supported-compute-capability",
)
DEVICE_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
# Options that carry the restricted-API key: left out, so no secret reaches the record.
SECRET_FLAGS = ("--http-restricted-api", "--grpc-restricted-protocol")


def unhidden_launch(
    argv: Sequence[str], env: Mapping[str, str], ports: Mapping[str, int], keep: Sequence[str] = ()
) -> tuple[list[str], dict[str, str], list[str]]:
    """The same server with its GPUs visible and default pools, on ``ports`` (loopback).

    Drops the device options (``DEVICE_FLAGS`` but those in ``keep``) and variables
    (``DEVICE_ENV``) and the options holding the API key; everything else (binary, repository,
    models, backend directory) stays. Returns (argv, env, what was dropped, the key shown as withheld).
    """
    out: list[str] = []
    dropped: list[str] = []
    for arg in argv:
        name, sep, _ = arg.partition("=")
        if sep and name in DEVICE_FLAGS and name not in keep:
            dropped.append(arg)
        elif sep and name in SECRET_FLAGS:
            dropped.append(f"{name}=(key withheld)")
        elif sep and name.endswith("-port") and name[2:-5] in ports:
            out.append(f"{name}={ports[name[2:-5]]}")
        elif sep and name.endswith("-address") and name[2:-8] in ports:
            out.append(f"{name}=127.0.0.1")
        else:
            out.append(arg)
    new_env = {k: v for k, v in env.items() if k not in DEVICE_ENV}
    dropped += [f"{k}={env[k]!r} (environment)" for k in DEVICE_ENV if k in env]
    return out, new_env, dropped
