"""Benchmark: time fleet up, `ansible -m ping` over SSH, and down for an N-host mixed fleet.

    sudo .venv/bin/python tests/fleet/bench_fleet.py [--hosts 8] [--rounds 3]

Prints one JSON line per round and a summary; the host venv and fake NVML build are made
once before the first timed round, so the figures exclude those one-time costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import fakenvml
from fleet.harness import CACHE_DIR, REPO_ROOT, Fleet, ensure_host_python
from fleet.profiles import parse_spec

_MIX = (
    {"profile": "cpu"},
    {"profile": "jetson", "board": "agx-orin-jp62"},
    {"profile": "dgpu", "gpus": 2},
    {"profile": "jetson", "board": "orin-nano-jp61"},
    {"profile": "dgpu", "gpus": 1, "device_nodes": True},
    {"profile": "jetson", "board": "xavier-nx-jp512"},
    {"profile": "cpu"},
    {"profile": "dgpu", "gpus": 4},
)


def _round(hosts: int) -> dict[str, float]:
    spec = parse_spec({"hosts": [{"name": f"h{i}", **_MIX[i % len(_MIX)]} for i in range(hosts)]})
    with tempfile.TemporaryDirectory(prefix="tfbench-") as tmp:
        fleet = Fleet(Path(tmp) / "fleet")
        t0 = time.monotonic()
        inventory = fleet.up(spec, owner_pid=os.getpid())
        t1 = time.monotonic()
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}
        subprocess.run(
            [str(REPO_ROOT / ".venv" / "bin" / "ansible"), "-i", str(inventory), "all", "-m", "ansible.builtin.ping"],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        t2 = time.monotonic()
        fleet.down()
        t3 = time.monotonic()
    return {"hosts": hosts, "up_s": round(t1 - t0, 3), "ping_s": round(t2 - t1, 3), "down_s": round(t3 - t2, 3)}


def main() -> int:
    """Run the rounds and print their timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_host_python()
    fakenvml.build_library(CACHE_DIR / "fake-nvml")
    rounds = [_round(args.hosts) for _ in range(args.rounds)]
    for r in rounds:
        print(json.dumps(r))
    summary = {key: round(statistics.median(r[key] for r in rounds), 3) for key in ("up_s", "ping_s", "down_s")}
    print(json.dumps({"median": summary, "hosts": args.hosts, "rounds": args.rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
