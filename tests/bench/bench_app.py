#!/usr/bin/env python3
"""Benchmark: the app check of the example application's binary, ELF read included (target <= 0.5 s), and the
in-process probe over the example model repository, cold (target <= 3 s).

Both run as a fresh process each round, as the module does on a host: the app check's figure
includes the interpreter's import of pyelftools and the read of the binary and of the
libtritonserver it resolves to; the probe's figure is the child process's whole life (library
load, server creation, two python-backend models loaded, one inference each, orderly shutdown).

Run: ``flock /tmp/tritonfleet-host.lock .venv/bin/python tests/bench/bench_app.py [rounds]``.
Prints median and max per figure; exits non-zero when a median misses its target.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parents[2]
ansible.module_utils.__path__.append(str(REPO_ROOT / "module_utils"))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from ansible.module_utils.triton_app import launch_environment  # noqa: E402 - after the module_utils path
from ansible.module_utils.triton_app_probe import probe  # noqa: E402
from support.plans import base_host, make_plan  # noqa: E402
from support.triton_dist import triton_release  # noqa: E402

CHECK_TARGET_S = 0.5
PROBE_TARGET_S = 3.0
# The plan preflight makes for a CPU-only host like this one.
PLAN = make_plan(base_host())
CHECK = """
import sys, time, json
start = time.perf_counter()
import ansible.module_utils
ansible.module_utils.__path__.append(sys.argv[1])
from ansible.module_utils.triton_app_check import check_app
from pathlib import Path
result = check_app(Path(sys.argv[2]), None, json.loads(sys.argv[3]), json.loads(sys.argv[4]), [], None, None, "bench")
assert result["binary"]["library"] is not None, result
print(time.perf_counter() - start)
"""


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="bench-app-") as temporary:
        base = Path(temporary)
        release = triton_release(base / "opt")
        manifest = json.loads((release / "manifest.json").read_text())
        binary = base / "embedded_app"
        subprocess.run(
            ["make", "-s", "-C", str(REPO_ROOT / "examples" / "embedded_app"),
             f"TRITON_HOME={base / 'opt' / 'current'}", f"TARGET={binary}"],
            check=True,
        )  # fmt: skip
        repo = base / "models"
        shutil.copytree(REPO_ROOT / "examples" / "model_repository", repo, ignore=shutil.ignore_patterns("__pycache__"))
        env = launch_environment(PLAN, manifest, str(base / "opt" / "current"), str(base), str(repo), {})
        checks = []
        for _ in range(rounds):
            out = subprocess.run(
                [sys.executable, "-c", CHECK, str(REPO_ROOT / "module_utils"), str(binary), json.dumps(PLAN),
                 json.dumps(env)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            checks.append(float(out.stdout.strip()))
        probes, phases = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            result = probe(release, release / "lib" / "libtritonserver.so", manifest, PLAN, repo, ["add_sub", "scale"],
                           None, "bench", env, timeout=60)  # fmt: skip
            probes.append(time.perf_counter() - start)
            assert result["ran"] and all(m["inference"]["ok"] for m in result["models"]), result
            phases.append(
                {
                    "server created": result["server"]["created_ms"],
                    "slowest model load": max(m["load_ms"] for m in result["models"]),
                    "slowest inference": max(m["inference"]["latency_ms"] for m in result["models"]),
                    "report after start": result["probe_ms"],
                }
            )
    check_median, probe_median = statistics.median(checks), statistics.median(probes)
    print(
        f"app check of {binary.name} (fresh interpreter, ELF read, library resolved): median {check_median:.3f} s, "
        f"max {max(checks):.3f} s over {rounds} (target <= {CHECK_TARGET_S} s)"
    )
    print(
        f"in-process probe over the example repository (2 python models), cold: median {probe_median:.2f} s, "
        f"max {max(probes):.2f} s over {rounds} (target <= {PROBE_TARGET_S} s)"
    )
    breakdown = ", ".join(f"{name} {statistics.median(p[name] for p in phases):.0f} ms" for name in phases[0])
    print(f"  probe phases (medians): {breakdown}")
    return 0 if check_median <= CHECK_TARGET_S and probe_median <= PROBE_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
