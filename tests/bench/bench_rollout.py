# SPDX-License-Identifier: Apache-2.0
"""Benchmark: playbooks/rollout.yml wall time and peak memory for 1, 4 and 8 simulated CPU hosts.

    .venv/bin/python tests/bench/bench_rollout.py [--hosts 1 4 8] [--batches '["100%"]']

For each fleet size: a fresh fleet (tests/fleet), one rollout that installs and serves Triton
on every host (fresh), then a second rollout of the same release (converged), both with
``--forks`` = max(hosts, 8). One batch by default, so the figure measures how the flow scales
with forks rather than how many batches run one after another; pass ``--batches '[1, "100%"]'``
for a canary first. Peak memory is sampled every 0.5 s: the RSS of ansible-playbook and its
forks plus every process in the fleet's namespaces (sshd, supervisord, tritonserver, python
backend stubs), summed. Prints one JSON line per run and a summary with the per-host overhead
(t(N) - t(1)) / (N - 1), the ratio t(8) / t(1) (target <= 2.5), and the CPU seconds each run
kept the machine busy: controller and simulated hosts share its cores, so busy CPU-s / cores is
the shortest wall time a run could have here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS / "integration")]

import ansible.module_utils  # noqa: E402  (path set-up above, as tests/conftest.py does)

ansible.module_utils.__path__.append(str(TESTS.parent / "module_utils"))

from fleet.harness import Fleet, netns_pids  # noqa: E402
from fleet.profiles import parse_spec  # noqa: E402
from test_fleet_rollout_common import (  # noqa: E402
    REPO_ROOT,
    fleet_group_vars,
    playbook_argv,
    playbook_env,
    write_vars,
)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> set[int]:
    """``pid`` and all its descendants, from /proc/*/stat parent links."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent and child not in found]
        found.update(kids)
        frontier.extend(kids)
    return found


def _busy_cpu_s() -> float:
    """Seconds the machine's CPUs spent busy since boot (all processes: controller and fleet)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Peak of (ansible process tree RSS + fleet namespaces RSS), sampled every 0.5 s."""

    def __init__(self, root_pid: int, namespaces: list[str]) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.namespaces = root_pid, namespaces
        self.peak_kib = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = _children(self.root_pid)
            for ns in self.namespaces:
                pids.update(netns_pids(ns))
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(pid) for pid in pids))
            self.stop.wait(0.5)


def _rollout(fleet: Fleet, inventory: Path, reports: Path, rollout_id: str, hosts: int, batches: list) -> dict:
    knobs = {
        "triton_rollout_id": rollout_id,
        "triton_rollout_report_dir": str(reports),
        "triton_rollout_batches": batches,
    }
    argv = playbook_argv(inventory, "rollout.yml", knobs, forks=max(hosts, 8))
    namespaces = [record["netns"] for record in fleet.read_state()["hosts"].values()]
    start, busy_start = time.monotonic(), _busy_cpu_s()
    proc = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=playbook_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    sampler = Sampler(proc.pid, namespaces)
    sampler.start()
    out, _ = proc.communicate()
    elapsed, busy = time.monotonic() - start, _busy_cpu_s() - busy_start
    sampler.stop.set()
    sampler.join()
    report = json.loads((reports / "fleet" / rollout_id / "fleet.json").read_text())
    if proc.returncode != 0 or report["counts"] != {"passed": hosts}:
        raise SystemExit(f"rollout {rollout_id} did not pass on every host (rc {proc.returncode}):\n{out[-4000:]}")
    return {"wall_s": round(elapsed, 1), "cpu_s": round(busy, 1), "peak_rss_mib": round(sampler.peak_kib / 1024, 1)}


def measure(hosts: int, batches: list) -> dict:
    with tempfile.TemporaryDirectory(prefix="tfbench-rollout-") as tmp:
        fleet = Fleet(Path(tmp) / "fleet")
        inventory = fleet.up(parse_spec({"hosts": [{"name": f"cpu-{i}", "profile": "cpu"} for i in range(hosts)]}))
        try:
            reports = Path(tmp) / "reports"
            write_vars(inventory, fleet_group_vars(reports))
            fresh = _rollout(fleet, inventory, reports, f"bench-{hosts}-fresh", hosts, batches)
            converged = _rollout(fleet, inventory, reports, f"bench-{hosts}-converged", hosts, batches)
        finally:
            fleet.down()
    return {"hosts": hosts, "fresh": fresh, "converged": converged}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batches", type=json.loads, default=["100%"], help="JSON list, e.g. '[1, \"100%%\"]'")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_rollout needs root (network namespaces); run it as root.")
    fleet_group_vars(Path(tempfile.gettempdir()))  # builds the shared venv, wheels and tarball once, untimed
    results = []
    for hosts in sorted(set(args.hosts)):
        result = measure(hosts, args.batches)
        results.append(result)
        print(json.dumps(result), flush=True)
    by_size = {r["hosts"]: r for r in results}
    smallest = min(by_size)
    for phase in ("fresh", "converged"):
        base = by_size[smallest][phase]["wall_s"]
        for hosts, result in sorted(by_size.items()):
            if hosts == smallest:
                continue
            wall = result[phase]["wall_s"]
            print(
                f"{phase}: {hosts} hosts {wall:.1f} s = {wall / base:.2f} x {smallest} host(s) ({base:.1f} s); "
                f"per extra host {(wall - base) / (hosts - smallest):.1f} s; "
                f"peak RSS {result[phase]['peak_rss_mib']:.0f} MiB"
            )
        # Everything (controller and simulated hosts) shares this machine's CPUs, so no run can
        # finish before its CPU work divided by the cores: the floor the ratio is measured against.
        cores = os.cpu_count() or 1
        for hosts, result in sorted(by_size.items()):
            cpu = result[phase]["cpu_s"]
            print(
                f"{phase}: {hosts} host(s) busy {cpu:.1f} CPU-s ({cpu / hosts:.1f} per host); "
                f"{cores}-core floor {cpu / cores:.1f} s vs wall {result[phase]['wall_s']:.1f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
