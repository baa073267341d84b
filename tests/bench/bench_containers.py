#!/usr/bin/env python3
"""Benchmark the container install method on this machine against the native (wheel) one.

Prints, in one run (the image builds: tests/bench/bench_images.py):
- service start to ready, container and native: the supervised program is stopped from outside
  (``podman kill`` of the container, SIGKILL of the native server) and the clock runs from the new
  program's start (the launcher that becomes the engine's client or the server) to
  ``/v2/health/ready`` answering 200;
- the no-op converge of ``playbooks/site.yml`` for each, alternating, with medians.

Both deployments use ``inventory/local.yml`` with private paths, ports (48700 native, 48710
container) and accounts (``tests/support/local_site.py``), and are removed at the end.
Usage: bench_containers.py [ROUNDS]   (default 3)
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import conftest  # noqa: F401  (ansible.module_utils from this repository)
from ansible.module_utils.triton_service_run import supervisor_proxy
from support import container_images
from support.local_site import LocalSite, changed

SUPERVISOR_STARTSECS = 5
CONTAINER = "tf-bench-ctr"


def play_ok(site: LocalSite, playbook: str) -> tuple[float, int]:
    start = time.perf_counter()
    result = site.play(playbook)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-2000:])
        raise SystemExit(f"{playbook} failed for {site.base}")
    return elapsed, changed(result)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def process_start(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    boot = next(float(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def start_to_ready(site: LocalSite, stop) -> float:
    """Stop the supervised program with ``stop()``; time its successor from process start to ready."""
    proxy = supervisor_proxy(str(site.base / "run" / "supervisor.sock"))
    old = proxy.supervisor.getProcessInfo("tritonserver")["pid"]
    # supervisord counts an exit within startsecs of a start as a failed start: let it settle first.
    time.sleep(max(0.0, SUPERVISOR_STARTSECS + 1 - (time.time() - process_start(old))))
    stop()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pid = proxy.supervisor.getProcessInfo("tritonserver")["pid"]
        if pid not in (0, old) and ready(site.url):
            return time.time() - process_start(pid)
        time.sleep(0.02)
    raise SystemExit(f"{site.base}: no ready successor within 120 s")


def kill_native_server(site: LocalSite) -> None:
    out = subprocess.run(["pgrep", "-u", str(site.vars["triton_service_uid"]), "-x", "tritonserver"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    for pid in out.stdout.split():
        os.kill(int(pid), signal.SIGKILL)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    image = container_images.tritonserver_image()
    work = Path(tempfile.mkdtemp(prefix="tf-bench-ctr-", dir="/tmp"))
    work.chmod(0o755)
    sites = {}
    try:
        for name, port, uid, extra in (
            ("native", 48700, 28090, {"triton_install_method": "wheel"}),
            ("container", 48710, 28091, {
                "triton_install_method": "container",
                "triton_install_container_source": {"type": "registry", "image": image.reference},
                "triton_install_container_name": CONTAINER,
            }),
        ):  # fmt: skip
            (work / name).mkdir(mode=0o755)
            sites[name] = LocalSite(work / name, port, f"tf-bench-{name[:3]}", uid, extra)
        firsts = {name: play_ok(site, "site.yml")[0] for name, site in sites.items()}
        noops: dict[str, list[float]] = {name: [] for name in sites}
        for _ in range(rounds):
            for name, site in sites.items():
                elapsed, count = play_ok(site, "site.yml")
                if count:
                    raise SystemExit(f"the {name} no-op converge changed {count} tasks")
                noops[name].append(elapsed)
        podman = container_images.podman()
        starts = {
            "container": [start_to_ready(sites["container"], lambda: subprocess.run(
                [*podman, "kill", CONTAINER], capture_output=True, check=True)) for _ in range(rounds)],
            "native": [start_to_ready(sites["native"], lambda: kill_native_server(sites["native"]))
                       for _ in range(rounds)],
        }  # fmt: skip
    finally:
        for site in sites.values():
            site.play("remove.yml")
        shutil.rmtree(work, ignore_errors=True)
    for name in ("native", "container"):
        median = statistics.median(noops[name])
        print(f"{name:9} first converge {firsts[name]:6.2f} s; no-op converge median {median:5.2f} s "
              f"runs {[round(x, 2) for x in noops[name]]}")  # fmt: skip
    ratio = statistics.median(noops["container"]) / statistics.median(noops["native"])
    print(f"no-op converge, container / native:                       {ratio:7.2f}")
    for name in ("native", "container"):
        print(f"{name:9} start to ready median {statistics.median(starts[name]):5.2f} s "
              f"runs {[round(x, 2) for x in starts[name]]}")  # fmt: skip


if __name__ == "__main__":
    main()
