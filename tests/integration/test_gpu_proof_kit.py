# SPDX-License-Identifier: Apache-2.0
"""The GPU proof kit without a GPU, so it does not rot between GPU sessions (docs/gpu-evidence.md).

1. ``tools/gpu-proof/prepare`` assembles the deliverable carry folder (Python 3.12 wheels, the
   trimmed Triton release) under the 60 MiB limit; downloads are cached in tests/.work/gpu-proof.
2. ``tools/gpu-proof/run --dry-run`` runs inside a simulated dGPU host (tests/fleet) whose
   test-only ``libnvidia-ml.so.1`` describes one NVIDIA H200 with driver 580: real host facts
   through that library, the real plan, real ``site.yml`` on the CPU plan with a real
   tritonserver, the server started again with its GPUs visible, the embedding step (the
   in-process probe and the example's honest variant on the CPU plan, the hard-coded-GPU variant
   checked from its file), NVML readings through the library, ``remove.yml``. The carry folder
   for it is prepared for this machine's Python 3.11. The steps that need a GPU are skipped and
   say so; no figure claims to be evidence.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleet.harness import HOST_PYTHON_DIR, Fleet
from fleet.profiles import parse_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PREPARE = REPO / "tools" / "gpu-proof" / "prepare"
WORK = REPO / "tests" / ".work" / "gpu-proof"
HOST = "h200-sim"
# What KINDS.md of the device tool records for the lent machine (one H200, driver 580, CUDA 13.0).
H200 = {
    "name": HOST,
    "profile": "dgpu",
    "gpus": 1,
    "gpu_name": "NVIDIA H200",
    "gpu_memory_mib": 143771,
    "compute_capability": "9.0",
    "driver_version": "580.159.04",
    "cuda_driver_version": "13.0",
    "device_nodes": True,
}
# Paths of the simulated host's own (its overlays sit on this machine's /opt, /srv, /etc, /var).
SIM_VARS = {
    "triton_install_prefix": "/opt/tfsim-gp/tritonserver",
    "triton_models_root": "/srv/tfsim-gp/models",
    "triton_service_config_dir": "/etc/tfsim-gp",
    "triton_service_api_key_file": "/etc/tfsim-gp/api-key",
    "triton_service_state_dir": "/var/lib/tfsim-gp",
    "triton_service_log_dir": "/var/log/tfsim-gp",
    "triton_service_home": "/opt/tfsim-gp/fleet",
    "triton_service_run_dir": "/run/tfsim-gp",
    "triton_service_user": "tfsimgp",
    "triton_service_group": "tfsimgp",
    "triton_service_ready_timeout": 180,
}
OUT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def prepare(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_PYTHON), str(PREPARE), "--dest", str(dest), *args],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.fixture(scope="module")
def deliverable() -> dict[str, Any]:
    """The carry folder as a GPU session would prepare it (Python 3.12)."""
    dest = WORK / "carry-py312"
    proc = prepare(dest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"dest": dest, "manifest": json.loads((dest / "manifest.json").read_text()), "stdout": proc.stdout}


def ssh_argv(inventory: Path, host: str, command: str) -> list[str]:
    """ssh to a simulated host with the inventory's own connection settings."""
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]["dgpu"]["hosts"]
    settings = hosts[host]
    return [
        "ssh",
        "-i",
        settings["ansible_ssh_private_key_file"],
        *shlex.split(settings["ansible_ssh_common_args"]),
        f"root@{host}",
        command,
    ]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One dry run of the kit in a simulated H200 host; its output folder and record."""
    carry = WORK / "carry-py311"
    proc = prepare(carry, "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = WORK / f"out-{secrets.token_hex(3)}"
    vars_file = WORK / f"vars-{secrets.token_hex(3)}.json"
    vars_file.write_text(json.dumps(SIM_VARS))
    fleet = Fleet(tmp_path_factory.mktemp("gpu-proof") / "fleet")
    inventory = fleet.up(parse_spec({"hosts": [H200]}))
    try:
        command = (
            f"cd {shlex.quote(str(REPO))} && PYTHONUNBUFFERED=1 {HOST_PYTHON_DIR}/hostpy/bin/python "
            f"tools/gpu-proof/run --dry-run --carry {shlex.quote(str(carry))} --out {shlex.quote(str(out))} "
            f"--vars {shlex.quote(str(vars_file))} --budget 1200"
        )
        run = subprocess.run(
            ssh_argv(inventory, HOST, command), capture_output=True, text=True, timeout=1500, check=False
        )
        after = subprocess.run(
            ssh_argv(inventory, HOST, "pgrep -c tritonserver; pgrep -c -f '[e]mbedded_app'"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        record = json.loads((out / "gpu-proof.json").read_text()) if (out / "gpu-proof.json").is_file() else None
        if (out / "gpu-proof.md").is_file():
            # Kept for a look after the test (tests/.work is ignored).
            shutil.copy2(out / "gpu-proof.md", WORK / "last-dry-run.md")
        yield {"rc": run.returncode, "output": run.stdout + run.stderr, "out": out, "record": record, "after": after}
    finally:
        fleet.down()
        shutil.rmtree(out, ignore_errors=True)
        vars_file.unlink(missing_ok=True)


def steps(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in record["steps"]}


def figures(record: dict[str, Any], step: str) -> dict[str, Any]:
    return {f["key"]: f["value"] for f in record["figures"] if f["step"] == step}


def test_prepare_fills_the_carry_folder_under_the_limit(deliverable: dict[str, Any]) -> None:
    manifest = deliverable["manifest"]
    assert manifest["total_bytes"] <= 60 * 1024 * 1024
    assert manifest["python_version"] == "3.12"
    files = {w["file"] for w in manifest["wheels"]}
    assert "ansible_core-2.19.14-py3-none-any.whl" in files
    assert any(f.startswith("numpy-1.26.4-cp312-cp312-manylinux") for f in files)
    assert any(f.startswith("supervisor-4.3.0-") for f in files)
    on_disk = {p.name for p in (deliverable["dest"] / "wheels").rglob("*.whl")}
    assert on_disk == files
    assert "carry folder" in deliverable["stdout"] and "device tool call" in deliverable["stdout"]
    assert manifest["tree"]["files"] and "tools/gpu-proof/run" in manifest["tree"]["files"]


def test_the_carried_release_serves_and_embeds(deliverable: dict[str, Any]) -> None:
    archive = deliverable["dest"] / deliverable["manifest"]["triton"]["file"]
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        stub = tar.extractfile("stubs/3.12/triton_python_backend_stub").read()
    for needed in (
        "tritonserver/bin/tritonserver",
        "tritonserver/TRITON_VERSION",
        "tritonserver/backends/python/libtriton_python.so",
        "tritonserver/backends/python/triton_python_backend_utils.py",
        "stubs/3.12/triton_python_backend_stub",
    ):
        assert needed in names
    assert any(re.fullmatch(r"tritonserver/lib/libtritonserver-\w+\.so", n) for n in names)
    assert any(n.startswith("tritonserver/lib/libcudart") for n in names), "a GPU build carries its CUDA runtime"
    assert not any("libpython3" in n for n in names), "the wheel's libpython3.13 is not carried"
    assert b"$ORIGIN/../../lib" in stub, "the stub finds lib/ from backends/python/"


def test_dry_run_records_every_step_and_fails_none(dry_run: dict[str, Any]) -> None:
    record = dry_run["record"]
    assert record is not None, dry_run["output"][-4000:]
    statuses = {name: step["status"] for name, step in steps(record).items()}
    failed = {n: steps(record)[n]["reason"] for n, s in statuses.items() if s == "failed"}
    assert not failed, failed
    assert dry_run["rc"] == 0, dry_run["output"][-4000:]
    assert list(statuses) == [
        "machine",
        "install",
        "facts",
        "capture",
        "site_gpu",
        "site_gpu_again",
        "site_cpu",
        "unhidden",
        "embedded",
        "remove",
    ]
    for name in ("machine", "install", "facts", "capture", "site_cpu", "unhidden", "embedded", "remove"):
        assert statuses[name] == "passed", name


def test_dry_run_never_claims_a_gpu_step(dry_run: dict[str, Any]) -> None:
    record = dry_run["record"]
    for name in ("site_gpu", "site_gpu_again"):
        step = steps(record)[name]
        assert step["status"] == "skipped"
        assert step["reason"].startswith("dry run:")
        assert step["commands"] == []
    assert record["dry_run"] is True
    assert record["figures"] and not any(f["evidence"] for f in record["figures"])
    summary = (dry_run["out"] / "gpu-proof.md").read_text()
    assert "Nothing here is GPU evidence" in summary


def test_dry_run_reads_the_gpu_through_nvml_and_plans_it(dry_run: dict[str, Any]) -> None:
    record = dry_run["record"]
    host, plan = record["triton_host"], record["triton_plan"]
    assert host["platform"] == "dgpu"
    assert host["nvml"]["usable"] is True
    assert host["driver_version"] == "580.159.04" and host["cuda_driver_version"] == "13.0"
    assert [(g["name"], g["compute_capability"], g["memory_mib"]) for g in host["gpus"]] == [
        ("NVIDIA H200", "9.0", 143771)
    ]
    assert host["reasons"]
    assert (plan["release"], plan["server_version"]) == ("24.10", "2.51.0")
    assert plan["enable_gpu"] is True and plan["instance_kind"] == "KIND_GPU" and plan["gpu_ids"] == [0]
    facts = figures(record, "facts")
    assert facts["plan_runtime_env"] == plan["runtime"]["env"] == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    # The container method's view of the host is recorded, whatever it finds (docs/containers.md).
    assert facts["container_engines"] == [
        {k: e.get(k) for k in ("name", "path", "version", "runtime", "cgroup_manager", "can_run", "problems")}
        for e in host["container_engines"]
    ]
    assert "podman" in record["machine"]["tools"] and "nvidia-ctk" in record["machine"]["tools"]


def test_dry_run_cpu_plan_serves_on_the_cpu_at_zero_bytes(dry_run: dict[str, Any]) -> None:
    record = dry_run["record"]
    site = figures(record, "site_cpu")
    assert site["verdict"] == "passed"
    assert [(g["kind"], g["gpus"]) for g in site["instance_groups"]] == [("KIND_CPU", [])]
    assert site["outputs_ok"] is True
    assert site["server_gpu_memory_measured"] is True and site["server_gpu_memory_bytes"] == 0
    assert site["server_and_stubs_measured"] is True and site["server_and_stubs_bytes_total"] == 0
    with tarfile.open(dry_run["out"] / "gpu-proof-logs.tar.gz") as logs:
        nvml = json.loads(logs.extractfile("gpu-proof/logs/site_cpu-server_and_stubs-nvml.json").read())
    assert nvml["read"] is True
    assert [(g["name"], g["memory_total_bytes"]) for g in nvml["gpus"]] == [("NVIDIA H200", 143771 * 1024 * 1024)]
    unhidden = figures(record, "unhidden")
    assert unhidden["ready_seconds"] is not None and unhidden["server_and_stubs_measured"] is True
    # What the kit dropped is the CPU plan's runtime section, read from the plan.
    assert unhidden["plan_env"] == {"CUDA_VISIBLE_DEVICES": ""}
    assert "--pinned-memory-pool-byte-size=0" in unhidden["plan_server_args"]
    notes = " ".join(steps(record)["unhidden"]["notes"])
    assert "--pinned-memory-pool-byte-size=0" in notes and "CUDA_VISIBLE_DEVICES" in notes
    assert "(key withheld)" in notes


def test_dry_run_leaves_nothing_running_and_fits_the_device_tool(dry_run: dict[str, Any]) -> None:
    assert dry_run["after"].stdout.split() == ["0", "0"], dry_run["after"].stdout
    files = [p for p in dry_run["out"].rglob("*") if p.is_file()]
    assert 3 <= len(files) <= 8
    for path in files:
        relative = path.relative_to(dry_run["out"])
        assert len(relative.parts) <= 3 and all(OUT_NAME.match(part) for part in relative.parts)
        assert path.stat().st_size <= 16 * 1024 * 1024
    assert {p.name for p in files} >= {"gpu-proof.json", "gpu-proof.md", "gpu-proof-logs.tar.gz"}
    assert os.access(REPO / "tools" / "gpu-proof" / "run", os.X_OK)


def test_dry_run_embedding_example(dry_run: dict[str, Any]) -> None:
    step = steps(dry_run["record"])["embedded"]
    assert step["status"] == "passed", step["reason"]
    embedded = figures(dry_run["record"], "embedded")
    # The in-process probe of the CPU plan's repository: every model on the CPU, 0 bytes, no findings.
    assert embedded["probe_ran"] is True
    assert {name: [g["kind"] for g in groups] for name, groups in embedded["probe_instance_groups"].items()} == {
        "add_sub": ["KIND_CPU"],
        "gpu_add": ["KIND_CPU"],
    }
    assert embedded["probe_findings"] == []
    assert embedded["probe_gpu_memory_measured"] is True and embedded["probe_gpu_memory_bytes"] == 0
    assert embedded["honest_gpu_memory_measured"] is True and embedded["honest_gpu_memory_bytes"] == 0
    assert embedded["honest_exit_status"] == 0
    assert not any(f.startswith("error") for f in embedded["honest_app_check_findings"])
    assert any(f.startswith("error") for f in embedded["gpu_app_check_findings"])
    assert "gpu_exit_status" not in embedded, "the hard-coded-GPU variant is not run without a GPU"
    with tarfile.open(dry_run["out"] / "gpu-proof-logs.tar.gz") as logs:
        honest = json.loads(logs.extractfile("gpu-proof/logs/embedded-honest-app-check.json").read())
    # The honest variant ran with exactly the CPU plan's device variables and options.
    assert honest["environment_source"].startswith("/proc/") and honest["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    assert honest["process"]["found"] is True
