# SPDX-License-Identifier: Apache-2.0
"""Benchmark: what a push rollout costs the controller per host, and ansible-runner in the EE vs ansible-playbook.

    .venv/bin/python tests/bench/bench_controller.py [--hosts 1 4 8] [--rounds 3] [--no-runner]

For each fleet size N (simulated CPU hosts, tests/fleet, one batch, ``--forks`` = max(N, 8)): a
fresh rollout and a converged rollout with ansible-playbook. Controller CPU is the user + system
time of ansible-playbook and every process it waited for (its forks, the ssh clients they run),
from ``getrusage(RUSAGE_CHILDREN)``, plus the SSH ControlPersist masters the run opened (one per
host; they daemonize, so they are neither waited for nor in the tree: their CPU is read from
/proc before they are closed after each run). The simulated hosts' own work (their sshd,
modules, servers) and the ProxyCommand relays into their namespaces are not in it, so the figure
is what a real controller would spend. Peak memory is the summed RSS of the process tree and the
SSH masters, sampled every 0.2 s. Both are printed in total and per host.

Then, on the one-host fleet: the same converged rollout run by ``ansible-runner
--process-isolation --container-image`` in the execution environment (tools/build_ee.py) and by
plain ansible-playbook, alternating, ``--rounds`` times each: median wall time, controller CPU-s
and peak memory, and the difference. The runner runs under a child subreaper, so podman's conmon
(which daemonizes) and the container's processes it reaps are counted and sampled like
ansible-playbook's forks; the relay standing in for the route to the host is not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS / "integration"), str(TESTS / "bench"), str(TESTS.parent / "tools")]

import ansible.module_utils  # noqa: E402  (path set-up above, as tests/conftest.py does)

ansible.module_utils.__path__.append(str(TESTS.parent / "module_utils"))

from bench_rollout import _busy_cpu_s, _children, _rss_kib  # noqa: E402
from fleet.harness import Fleet  # noqa: E402
from fleet.profiles import parse_spec  # noqa: E402
from podman_images import podman_env  # noqa: E402
from support.awx_runner import IMAGE, ee_image, runner_argv, runner_group_vars, runner_private_dir  # noqa: E402
from test_fleet_rollout_common import REPO_ROOT, fleet_group_vars, playbook_argv, playbook_env, write_vars  # noqa: E402


def ssh_masters(fleet: Fleet) -> set[int]:
    """The fleet's SSH ControlPersist masters (process title ``ssh: <ControlPath> [mux]``)."""
    marker = f"ssh: {fleet.workdir / 'cp'}/".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(marker):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def cpu_s(pid: int) -> float:
    """User + system CPU-s of ``pid`` and of the children it waited for (/proc/<pid>/stat fields 14-17)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class TreeSampler(threading.Thread):
    """Peak summed RSS of one process tree and the fleet's SSH masters, sampled every 0.2 s."""

    def __init__(self, root_pid: int, fleet: Fleet | None) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.fleet, self.peak_kib, self.stop = root_pid, fleet, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = _children(self.root_pid) | (ssh_masters(self.fleet) if self.fleet else set())
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(pid) for pid in pids))
            self.stop.wait(0.2)


def run_sampled(argv: list[str], env: dict[str, str], fleet: Fleet | None) -> tuple[int, str, int]:
    """Run ``argv`` from the repository: (exit status, output, peak KiB of its tree and the fleet's SSH masters)."""
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid, fleet)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop.set()
    sampler.join()
    return proc.returncode, out, sampler.peak_kib


def controller_run(fleet: Fleet, inventory: Path, reports: Path, rollout_id: str, hosts: int) -> dict:
    """One ansible-playbook rollout; controller CPU-s and peak RSS of its process tree and SSH masters."""
    knobs = {
        "triton_rollout_id": rollout_id,
        "triton_rollout_report_dir": str(reports),
        "triton_rollout_batches": ["100%"],
    }
    fleet.close_control_masters()  # every run opens its own, as a rollout from a fresh controller does
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start, busy = time.monotonic(), _busy_cpu_s()
    returncode, out, peak_kib = run_sampled(
        playbook_argv(inventory, "rollout.yml", knobs, forks=max(hosts, 8)), playbook_env(), fleet
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    masters = ssh_masters(fleet)
    ssh_cpu = sum(cpu_s(pid) for pid in masters)
    fleet.close_control_masters()
    report = json.loads((reports / "fleet" / rollout_id / "fleet.json").read_text())
    if returncode != 0 or report["counts"] != {"passed": hosts}:
        raise SystemExit(f"rollout {rollout_id} did not pass on every host (rc {returncode}):\n{out[-4000:]}")
    if len(masters) != hosts:
        raise SystemExit(f"rollout {rollout_id}: expected one SSH master per host ({hosts}), found {len(masters)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) + ssh_cpu
    return {
        "wall_s": round(time.monotonic() - start, 1),
        "busy_cpu_s": round(_busy_cpu_s() - busy, 1),
        "controller_cpu_s": round(cpu, 2),
        "ssh_masters_cpu_s": round(ssh_cpu, 2),
        "controller_cpu_s_per_host": round(cpu / hosts, 2),
        "controller_peak_mib": round(peak_kib / 1024, 1),
        "controller_peak_mib_per_host": round(peak_kib / 1024 / hosts, 1),
    }


# Runs a command as a child subreaper: podman's conmon daemonizes and would be reparented to init;
# under this it is reparented here, reaped (with the container's processes it reaped) and counted.
SUBREAPER = """\
import ctypes, json, os, resource, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
rc = subprocess.call(sys.argv[1:])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def runner_run(private: Path, ident: str) -> dict:
    """One converged rollout by ansible-runner in the EE: wall, CPU-s and peak RSS of everything it
    started (ansible-runner, podman, conmon, the container's processes), as for ansible-playbook."""
    argv = runner_argv(private, ident, "playbooks/rollout.yml", IMAGE, {"triton_rollout_batches": "100%"})
    start = time.monotonic()
    returncode, out, peak_kib = run_sampled([sys.executable, "-c", SUBREAPER, *argv], podman_env(), None)
    result = json.loads(out.strip().splitlines()[-1])
    if returncode != 0 or result["rc"] != 0:
        raise SystemExit(f"ansible-runner rollout {ident} failed:\n{out[-4000:]}")
    return {
        "wall_s": round(time.monotonic() - start, 1),
        "controller_cpu_s": round(result["cpu_s"], 2),
        "controller_peak_mib": round(peak_kib / 1024, 1),
    }


def runner_overhead(fleet: Fleet, inventory: Path, reports: Path, rounds: int) -> dict:
    """Converged rollouts of the one-host fleet, alternating: ansible-runner in the EE and ansible-playbook."""
    ee_image()
    host = next(iter(fleet.read_state()["hosts"]))
    runs: dict[str, list[dict]] = {"ansible-playbook": [], "ansible-runner-ee": []}
    group_vars = runner_group_vars(fleet_group_vars(reports))
    with runner_private_dir(fleet, inventory, [host], group_vars) as private:
        for index in range(rounds):
            runs["ansible-playbook"].append(controller_run(fleet, inventory, reports, f"plain-{index}", 1))
            runs["ansible-runner-ee"].append(runner_run(private, f"runner-{index}"))
    keys = ("wall_s", "controller_cpu_s", "controller_peak_mib")
    medians = {
        name: {key: round(statistics.median(run[key] for run in done), 2) for key in keys}
        for name, done in runs.items()
    }
    medians["overhead"] = {
        key: round(medians["ansible-runner-ee"][key] - medians["ansible-playbook"][key], 2) for key in keys
    }
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-runner", action="store_true", help="skip the ansible-runner comparison")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_controller needs root (network namespaces); run it as root.")
    fleet_group_vars(Path(tempfile.gettempdir()))  # builds the shared venv, wheels and tarball once, untimed
    for hosts in sorted(set(args.hosts)):
        with tempfile.TemporaryDirectory(prefix="tfbench-ctl-") as tmp:
            fleet = Fleet(Path(tmp) / "fleet")
            names = [{"name": f"cpu-{i}", "profile": "cpu"} for i in range(hosts)]
            inventory = fleet.up(parse_spec({"hosts": names}))
            try:
                reports = Path(tmp) / "reports"
                write_vars(inventory, fleet_group_vars(reports))
                fresh = controller_run(fleet, inventory, reports, f"ctl-{hosts}-fresh", hosts)
                converged = controller_run(fleet, inventory, reports, f"ctl-{hosts}-converged", hosts)
                print(json.dumps({"hosts": hosts, "fresh": fresh, "converged": converged}), flush=True)
                if hosts == 1 and not args.no_runner:
                    print(
                        json.dumps(
                            {"runner_vs_playbook_1_host": runner_overhead(fleet, inventory, reports, args.rounds)}
                        ),
                        flush=True,
                    )
            finally:
                fleet.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
