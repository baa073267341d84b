# SPDX-License-Identifier: Apache-2.0
"""A running server's command line and environment without what the plan's runtime section gave it.

What decides a Triton process's device use is ``triton_plan.runtime`` (module_utils/triton_runtime.py):
``server_args`` (pool sizes, GPU metrics, peer access, minimum compute capability) and ``env`` (the
CUDA variables). The kit reads both from the plan and never keeps its own list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Options that carry the restricted-API key: left out, so no secret reaches the record.
SECRET_FLAGS = ("--http-restricted-api", "--grpc-restricted-protocol")


def unhidden_launch(
    argv: Sequence[str],
    env: Mapping[str, str],
    runtime: Mapping[str, Any],
    ports: Mapping[str, int],
    keep: Sequence[str] = (),
) -> dict[str, Any]:
    """The same server with its GPUs visible and default pools, on ``ports`` (loopback).

    Drops the plan's ``runtime["server_args"]`` (but those whose flag is in ``keep``), the
    variables of ``runtime["env"]`` and the options holding the API key; everything else
    (binary, repository, models, backend directory) stays. Returns ``{argv, env, dropped,
    missing}``: ``missing`` lists the plan's options and variables the running server lacks
    (then it is not the server the plan describes).
    """
    plan_args = [str(a) for a in runtime["server_args"]]
    plan_env = {str(k): str(v) for k, v in runtime["env"].items()}
    out: list[str] = []
    dropped: list[str] = []
    for arg in argv:
        name, sep, _ = arg.partition("=")
        if arg in plan_args and name not in keep:
            dropped.append(arg)
        elif sep and name in SECRET_FLAGS:
            dropped.append(f"{name}=(key withheld)")
        elif sep and name.endswith("-port") and name[2:-5] in ports:
            out.append(f"{name}={ports[name[2:-5]]}")
        elif sep and name.endswith("-address") and name[2:-8] in ports:
            out.append(f"{name}=127.0.0.1")
        else:
            out.append(arg)
    new_env = {k: v for k, v in env.items() if k not in plan_env}
    dropped += [f"{k}={env[k]!r} (environment)" for k in plan_env if k in env]
    missing = [a for a in plan_args if a not in argv]
    missing += [f"{k}={v!r} (environment)" for k, v in plan_env.items() if env.get(k) != v]
    return {"argv": out, "env": new_env, "dropped": dropped, "missing": missing}
