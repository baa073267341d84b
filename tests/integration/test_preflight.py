# SPDX-License-Identifier: Apache-2.0
"""playbooks/preflight.yml for real on this CPU-only machine: plan, --check, and the refusals."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fleet.fixtures import fleet_factory  # noqa: F401  (fixture import)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
RECAP_RE = re.compile(r"^(\S+)\s+:\s+(ok=.*)$", re.MULTILINE)


def run_preflight(tmp_path: Path, inventory: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run the playbook; return the process and the PLAY RECAP as {host: {ok: n, changed: n, ...}}."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    proc = subprocess.run(
        [str(PLAYBOOK), "-i", str(inventory), "playbooks/preflight.yml", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    recap = {
        host: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in RECAP_RE.findall(proc.stdout.split("PLAY RECAP", 1)[-1])
    }
    assert recap, f"no PLAY RECAP in output:\n{proc.stdout}\n{proc.stderr}"
    return proc, recap


def preflight(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    proc, recap = run_preflight(tmp_path, REPO / "inventory" / "local.yml", *args)
    return proc, recap["localhost"]


@pytest.mark.parametrize("extra", [[], ["--check"]], ids=["run", "check"])
def test_preflight_plans_this_cpu_host(tmp_path, extra):
    proc, recap = preflight(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (recap["failed"], recap["changed"]) == (0, 0)
    assert "Platform: cpu x86_64" in proc.stdout
    assert "Plan: Triton 24.10 (2.51.0) by wheel, KIND_CPU, gpu_ids [], hide_gpus False" in proc.stdout
    assert "Build: CUDA 12.6.2, GPU build" in proc.stdout
    assert (
        "Runtime: env CUDA_VISIBLE_DEVICES=, server args --pinned-memory-pool-byte-size=0 "
        "--allow-gpu-metrics=false --enable-peer-access=false" in proc.stdout
    )


def test_preflight_follows_the_fleet_knobs(tmp_path):
    proc, recap = preflight(tmp_path, "-e", "triton_release=2.59.1", "-e", "triton_install_method=source")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recap["changed"] == 0
    assert "Plan: Triton 25.07 (2.59.1) by source, KIND_CPU" in proc.stdout
    assert "Build: CUDA unverified" in proc.stdout


def test_enable_gpu_true_fails_with_the_contradiction(tmp_path):
    proc, recap = preflight(tmp_path, "-e", "triton_enable_gpu=true")
    assert proc.returncode != 0
    assert (recap["failed"], recap["changed"]) == (1, 0)
    assert "the request contradicts the host: triton_enable_gpu=true" in proc.stdout
    assert "To fix: set triton_enable_gpu: auto or false" in proc.stdout
    assert "Plan: Triton" not in proc.stdout


def test_the_detector_example_is_refused_before_any_change_with_every_reason(tmp_path):
    detector = REPO / "examples" / "detector_repository"
    proc, recap = preflight(tmp_path, "-e", f"triton_models_src={detector}")
    assert proc.returncode != 0
    assert (recap["failed"], recap["changed"]) == (1, 0)
    out = proc.stdout
    assert f"model repository {detector} cannot be served (2 problems)" in out
    assert "at least one version must be available under the version policy of model 'peoplenet'" in out
    assert "Found: peoplenet/ has no version directory" in out
    assert "unable to find backend library for backend 'onnxruntime', try specifying runtime on the model" in out
    assert "the release's backends are python" in out
    assert out.count("Supported: ") >= 2 and out.count("Fix: ") >= 2
    assert "Plan: Triton 24.10 (2.51.0) by wheel" in out


def test_a_link_leaving_the_repository_is_refused_in_preflight(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "model_repository", repo, ignore=shutil.ignore_patterns("__pycache__"))
    os.symlink("/etc/passwd", repo / "add_sub" / "1" / "passwd")
    proc, recap = preflight(tmp_path, "-e", f"triton_models_src={repo}")
    assert (recap["failed"], recap["changed"]) == (1, 0)
    assert "add_sub/1/passwd links outside the model repository, to /etc/passwd" in proc.stdout


def test_unknown_release_fails(tmp_path):
    proc, recap = preflight(tmp_path, "--check", "-e", "triton_release=27.13")
    assert proc.returncode != 0
    assert (recap["failed"], recap["changed"]) == (1, 0)
    assert "Triton release '27.13' is not in the compatibility matrix" in proc.stdout
    assert "Supported: container releases 23.01-26.08" in proc.stdout


def test_unquoted_release_gets_the_quoting_hint(tmp_path):
    proc, recap = preflight(tmp_path, "-e", '{"triton_release": 24.10}')
    assert recap["failed"] == 1
    assert 'quote the release in YAML: triton_release: \\"24.10\\"' in proc.stdout


def test_role_argument_spec_rejects_a_bad_method(tmp_path):
    proc, recap = preflight(tmp_path, "-e", "triton_install_method=rpm")
    assert recap["failed"] == 1
    assert "triton_platform_install_method" in proc.stdout
    assert "rpm" in proc.stdout


def host_block(stdout: str, host: str) -> str:
    """The summary the debug task printed for one host."""
    match = re.search(rf"^ok: \[{host}\] => {{\n(.*?)^}}", stdout, re.MULTILINE | re.DOTALL)
    assert match, f"no summary for {host} in:\n{stdout}"
    return match.group(1)


FLEET = {
    "hosts": [
        {"name": "pf-cpu", "profile": "cpu"},
        {"name": "pf-orin", "profile": "jetson", "board": "agx-orin-jp62", "device_nodes": True},
        {"name": "pf-xavier", "profile": "jetson", "board": "xavier-nx-jp512", "device_nodes": True},
        {"name": "pf-gpu", "profile": "dgpu", "gpus": 2, "gpu_name": "NVIDIA RTX A4000", "compute_capability": "8.6"},
    ]
}


def test_preflight_plans_a_mixed_fleet_over_ssh(tmp_path, fleet_factory):  # noqa: F811  (fixture)
    """Simulated Jetson, dGPU (fake NVML) and CPU hosts: one plan each, a rejected host fails alone."""
    fleet = fleet_factory(FLEET)
    # With the device check on (the default), real CUDA sees no device on the simulated GPU
    # hosts: each GPU plan stops in preflight with the finding, the CPU host passes.
    proc, recap = run_preflight(tmp_path, fleet.inventory_path, "-e", "triton_install_method=source")
    assert {host: counts["failed"] for host, counts in recap.items()} == {
        "pf-cpu": 0,
        "pf-orin": 1,
        "pf-xavier": 1,
        "pf-gpu": 1,
    }, recap
    assert sum(counts["changed"] for counts in recap.values()) == 0
    fatal = {
        line.split("]")[0][len("fatal: [") :]: line for line in proc.stdout.splitlines() if line.startswith("fatal: [")
    }
    assert sorted(fatal) == ["pf-gpu", "pf-orin", "pf-xavier"]
    assert all("cuda_unavailable: the plan gives Triton GPUs" in line for line in fatal.values())
    assert "device_node_missing: /dev/nvidiactl is missing" in proc.stdout

    # The plans themselves, without the device check:
    proc, recap = run_preflight(
        tmp_path, fleet.inventory_path, "-e", "triton_install_method=source", "-e", "triton_platform_device_check=false"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(counts["changed"] == 0 and counts["failed"] == 0 for counts in recap.values()), recap
    assert "by source, KIND_CPU, gpu_ids []" in host_block(proc.stdout, "pf-cpu")
    gpu_host = host_block(proc.stdout, "pf-gpu")
    assert "by source, KIND_GPU, gpu_ids [0, 1]" in gpu_host
    assert "driver 550.54.15 is below 560.35.03" in gpu_host
    orin = host_block(proc.stdout, "pf-orin")
    assert "by source, KIND_GPU, gpu_ids [0]" in orin
    assert "L4T 36.4.3, JetPack 6.2, Jetson AGX Orin 64GB, iGPU Orin (CC 8.7)" in orin
    assert "CUDA 11.4" in host_block(proc.stdout, "pf-xavier")

    proc, recap = run_preflight(
        tmp_path,
        fleet.inventory_path,
        "--check",
        "-e",
        "triton_install_method=tarball",
        "-e",
        "triton_platform_device_check=false",
    )
    assert proc.returncode != 0
    assert recap["pf-xavier"]["failed"] == 1
    assert "no Triton 2.51.0 (24.10) build runs on JetPack 5" in proc.stdout
    assert 'set triton_release: \\"2.35.0\\" with triton_install_method: tarball' in proc.stdout
    assert all(recap[host]["failed"] == 0 for host in ("pf-cpu", "pf-orin", "pf-gpu")), recap
    assert sum(counts["changed"] for counts in recap.values()) == 0
    assert "24.10-py3-igpu" in host_block(proc.stdout, "pf-orin")
