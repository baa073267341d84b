#!/usr/bin/env python3
"""Benchmark the main job on this machine (issue 3 §5).

Prints, with medians over the runs asked for:
- the first converge of ``playbooks/site.yml`` (after ``playbooks/remove.yml``),
- a no-op second converge,
- the floor: ``ansible-playbook`` of one empty play with ``gather_facts: true`` on the same inventory,
- the ratio no-op / floor (target <= 3),
- the time from service start to ready: the supervised server is stopped by its pid, and the
  clock runs from the new server process's start to ``/v2/health/ready`` answering 200.

It runs against ``inventory/local.yml`` with the default paths and ports, so it removes any
tritonfleet deployment on this machine first and leaves a fresh one serving.
Usage: bench_site.py [ROUNDS]   (default 3 no-op and floor runs; one first converge)
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
INVENTORY = REPO / "inventory" / "local.yml"
READY_URL = "http://127.0.0.1:8000/v2/health/ready"
NOOP_RATIO_TARGET = 3.0
SUPERVISOR_STARTSECS = 5


def playbook(*args: str) -> tuple[float, int]:
    """Run ansible-playbook; return its wall time in seconds and the recap's changed count."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{BIN}:{os.environ['PATH']}")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit(f"ansible-playbook {' '.join(args)} failed with rc={proc.returncode}")
    recap = proc.stdout.split("PLAY RECAP")[-1]
    return elapsed, int(recap.split("changed=")[1].split()[0])


def server_pids() -> list[int]:
    """Pids of tritonserver processes started from the tritonfleet prefix."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if exe.endswith("/bin/tritonserver") and exe.startswith("/opt/tritonserver/"):
            pids.append(int(entry.name))
    return pids


def process_start_epoch(pid: int) -> float:
    """Wall-clock start time of ``pid`` from /proc/<pid>/stat and the boot time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])
    boot = next(
        float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
    )
    return boot + start_ticks / os.sysconf("SC_CLK_TCK")


def ready() -> bool:
    try:
        with urllib.request.urlopen(READY_URL, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_to_ready(timeout: float = 120.0) -> float:
    """Stop the supervised server by pid and time its replacement from process start to ready."""
    old = server_pids()
    if len(old) != 1:
        raise SystemExit(f"expected one tritonfleet tritonserver, found pids {old}")
    # supervisord counts an exit within startsecs (5 s) of a start as a failed start and gives up
    # after startretries: let the previous round's server reach RUNNING before stopping it.
    time.sleep(max(0.0, SUPERVISOR_STARTSECS + 1 - (time.time() - process_start_epoch(old[0]))))
    os.kill(old[0], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    new: list[int] = []
    while time.monotonic() < deadline:
        new = [pid for pid in server_pids() if pid != old[0]]
        if new and ready():
            return time.time() - process_start_epoch(new[0])
        time.sleep(0.02)
    raise SystemExit(f"server not ready {timeout}s after restart (new pids {new})")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        floor_play = Path(tmp) / "floor.yml"
        floor_play.write_text("- name: Floor\n  hosts: all\n  gather_facts: true\n  tasks: []\n")
        playbook("playbooks/remove.yml")
        first, _ = playbook("playbooks/site.yml")
        noops, floors = [], []
        for _ in range(rounds):
            elapsed, changed = playbook("playbooks/site.yml")
            if changed:
                raise SystemExit(f"the second converge changed {changed} tasks: not a no-op")
            noops.append(elapsed)
            floors.append(playbook(str(floor_play))[0])
        ready_times = [start_to_ready() for _ in range(rounds)]
    noop, floor = statistics.median(noops), statistics.median(floors)
    ratio = noop / floor
    print(f"first converge of site.yml:        {first:7.2f} s")
    print(f"no-op converge (median of {rounds}):     {noop:7.2f} s   runs {[round(x, 2) for x in noops]}")
    print(f"floor, empty play + facts (median): {floor:7.2f} s   runs {[round(x, 2) for x in floors]}")
    print(f"no-op / floor:                      {ratio:7.2f}     target <= {NOOP_RATIO_TARGET}")
    print(
        f"service start to ready (median):    {statistics.median(ready_times):7.2f} s   "
        f"runs {[round(x, 2) for x in ready_times]}"
    )
    if ratio > NOOP_RATIO_TARGET:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
