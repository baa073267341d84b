# SPDX-License-Identifier: Apache-2.0
"""The verification report: verdicts, findings from every check, JSON/Markdown, procfs scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.triton_report import (
    build_report,
    find_server_process,
    read_deployed,
    read_manifest,
    read_models_release,
    render_json,
    render_markdown,
    write_report,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = {"platform": "cpu", "arch": "x86_64", "os": {"pretty_name": "Debian GNU/Linux 12 (bookworm)"}, "gpus": []}
PLAN = {
    "release": "24.10",
    "server_version": "2.51.0",
    "install_method": "wheel",
    "instance_kind": "KIND_CPU",
    "gpu_ids": [],
    "hide_gpus": False,
    "enable_gpu": False,
    "notes": ["CPU-only host"],
}
MANIFEST = {"release": "24.10", "server_version": "2.51.0", "method": "wheel", "gpu_build": True}
RELEASE = {"id": "27b7725440c6d57d", "root": "/srv/m", "instance_groups": {"add_sub": [{"kind": "KIND_CPU"}]}}
DEVICES = {
    "devices": {
        "nodes": [],
        "nvml": {"usable": False, "reason": "libnvidia-ml.so.1 not found"},
        "cuda": {"available": False, "reason": "libcuda.so.1 not found", "cuda_visible_devices": ""},
    },
    "findings": [],
}
SERVER = {
    "server": {"url": "http://127.0.0.1:8000", "live": True, "ready": True, "version": "2.51.0"},
    "models": [
        {"name": "add_sub", "state": "READY", "kinds": ["KIND_CPU"], "gpus": [], "latency_ms": 1.5, "outputs_ok": True},
        {"name": "scale", "state": "READY", "kinds": ["KIND_CPU"], "gpus": [], "latency_ms": 0.5, "outputs_ok": None},
    ],
    "gpu_memory": {"measured": False, "reason": "NVML not usable: libnvidia-ml.so.1 not found"},
    "findings": [],
}


def _report(**changes):
    args = {
        "host": HOST,
        "plan": PLAN,
        "compat_error": None,
        "manifest": MANIFEST,
        "release": RELEASE,
        "device_check": DEVICES,
        "server_check": SERVER,
    }
    args.update(changes)
    return build_report("cpu-1", "2026-11-24T22:00:00Z", **args)


def test_clean_host_passes_with_every_section_filled():
    report = _report()
    assert report["verdict"] == "passed"
    assert report["summary"] == {"errors": 0, "warnings": 0, "models": 2, "models_ready": 2}
    assert report["versions"] == {
        "release": "24.10",
        "server_version": "2.51.0",
        "install_method": "wheel",
        "gpu_build": True,
        "models_release": "27b7725440c6d57d",
    }
    assert report["compatibility"] == {"verdict": "compatible", "message": None, "notes": ["CPU-only host"]}
    assert report["latency"] == {"count": 2, "median_ms": 1.0, "max_ms": 1.5}


def test_findings_keep_their_fix_and_their_check():
    server = dict(
        SERVER,
        findings=[{"severity": "error", "code": "kind_mismatch", "model": "add_sub", "message": "m", "fix": "f"}],
    )
    devices = dict(DEVICES, findings=[{"severity": "warning", "code": "w", "message": "wm", "fix": "wf"}])
    report = _report(server_check=server, device_check=devices)
    assert report["verdict"] == "failed"
    assert [(f["check"], f["severity"], f["code"], f["fix"]) for f in report["findings"]] == [
        ("device_check", "warning", "w", "wf"),
        ("server_check", "error", "kind_mismatch", "f"),
    ]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"manifest": None}, "server_not_installed"),
        ({"release": None}, "models_not_deployed"),
        ({"device_check": None}, "device_check_not_run"),
        ({"server_check": None}, "server_check_not_run"),
        ({"compat_error": "driver 470 is too old", "plan": None}, "plan_incompatible"),
    ],
    ids=["no-install", "no-release", "no-device-check", "no-server-check", "incompatible"],
)
def test_a_missing_input_is_an_error_never_a_clean_report(changes, code):
    report = _report(**changes)
    assert report["verdict"] == "failed"
    assert code in [f["code"] for f in report["findings"] if f["severity"] == "error"]


def test_incompatible_host_shows_the_verdict_and_message():
    report = _report(compat_error="driver 470 is too old for CUDA 12.6", plan=None)
    assert report["compatibility"]["verdict"] == "incompatible"
    assert "driver 470 is too old" in render_markdown(report)


def test_markdown_has_every_section_and_the_models_table():
    text = render_markdown(_report())
    for heading in ("## Platform", "## Versions", "## Plan and compatibility", "## Devices", "## Server", "## Models"):
        assert heading in text
    assert "**Verdict: PASSED**" in text
    assert "| add_sub | READY | KIND_CPU | - | KIND_CPU | 1.5 | True |" in text
    assert "NVML: not usable (libnvidia-ml.so.1 not found)" in text
    assert "Not measured: NVML not usable" in text
    assert "Inference latency: median 1.0 ms, max 1.5 ms." in text


def test_markdown_escapes_table_cells():
    server = dict(SERVER, findings=[{"severity": "error", "code": "c", "message": "a | b\nc", "fix": "x"}])
    assert "| a \\| b c | x |" in render_markdown(_report(server_check=server))


def test_json_round_trips_and_is_deterministic():
    report = _report()
    assert json.loads(render_json(report)) == report
    assert render_json(report) == render_json(_report())


def test_write_report_is_atomic_idempotent_and_check_mode_safe(tmp_path):
    report = _report()
    changed, paths = write_report(tmp_path / "reports" / "cpu-1", report, check_mode=True)
    assert changed and not (tmp_path / "reports").exists()
    assert write_report(tmp_path / "reports" / "cpu-1", report)[0] is True
    assert json.loads(Path(paths["verify.json"]).read_text())["host"] == "cpu-1"
    assert write_report(tmp_path / "reports" / "cpu-1", report)[0] is False
    assert sorted(p.name for p in (tmp_path / "reports" / "cpu-1").iterdir()) == ["verify.json", "verify.md"]


def _proc(root: Path, pid: int, comm: str, argv: list[str], uid: int, env: dict[str, str]) -> None:
    entry = root / str(pid)
    entry.mkdir(parents=True)
    (entry / "comm").write_text(comm + "\n")
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (entry / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (entry / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0")


def test_find_server_process_returns_only_the_cuda_environment(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/venv/bin:/usr/bin", "SECRET": "x", "LD_LIBRARY_PATH": "/r/lib"}
    _proc(tmp_path, 10, "tritonserver", ["/r/bin/tritonserver", "--http-port=8001"], 999, env)
    _proc(tmp_path, 20, "tritonserver", ["/r/bin/tritonserver", "--http-port=8000", "--key=k"], 998, env)
    _proc(tmp_path, 30, "python3", ["python3", "--http-port=8000"], 0, env)
    (tmp_path / "self").mkdir()
    found = find_server_process(tmp_path, 8000)
    assert (found["found"], found["pid"], found["uid"]) == (True, 20, 998)
    assert found["environment"] == {k: v for k, v in env.items() if k != "SECRET"}
    missing = find_server_process(tmp_path, 9000)
    assert (missing["found"], missing["pid"]) == (False, None)
    assert "--http-port=9000" in missing["reason"]


def _models_release(root: Path, release_id: str, groups: dict | str) -> Path:
    release = root / "releases" / release_id
    release.mkdir(parents=True)
    (release / "instance_groups.json").write_text(groups if isinstance(groups, str) else json.dumps(groups))
    return release


def test_read_manifest_is_none_until_a_release_is_installed(tmp_path):
    assert read_manifest(tmp_path / "opt") is None
    (tmp_path / "opt" / "releases" / "2.51.0").mkdir(parents=True)
    (tmp_path / "opt" / "current").symlink_to("releases/2.51.0")
    assert read_manifest(tmp_path / "opt") is None
    (tmp_path / "opt" / "releases" / "2.51.0" / "manifest.json").write_text('{"server_version": "2.51.0"}')
    assert read_manifest(tmp_path / "opt") == {"server_version": "2.51.0"}


def test_read_manifest_names_a_file_that_is_not_json(tmp_path):
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "manifest.json").write_text("{half")
    with pytest.raises(ValueError, match=r"current/manifest\.json is not valid JSON"):
        read_manifest(tmp_path)


def test_read_models_release_follows_only_the_current_link(tmp_path):
    groups = {"add_sub": [{"name": "add_sub_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]}
    _models_release(tmp_path, "20260101T000000Z-1a2b", groups)
    assert read_models_release(tmp_path) is None
    # A directory named current is not an active release: the models role only ever links it.
    (tmp_path / "current").mkdir()
    assert read_models_release(tmp_path) is None
    (tmp_path / "current").rmdir()
    (tmp_path / "current").symlink_to("releases/20260101T000000Z-1a2b")
    assert read_models_release(tmp_path) == {
        "id": "20260101T000000Z-1a2b",
        "root": str(tmp_path),
        "instance_groups": groups,
    }


def test_read_models_release_without_instance_groups_raises(tmp_path):
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    (tmp_path / "current").symlink_to("releases/r1")
    with pytest.raises(FileNotFoundError):
        read_models_release(tmp_path)
    (tmp_path / "current").unlink()
    _models_release(tmp_path, "r2", "not json")
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "r2")
    with pytest.raises(ValueError, match=r"instance_groups\.json is not valid JSON"):
        read_models_release(tmp_path)


def test_read_deployed_reads_all_three(tmp_path):
    (tmp_path / "opt" / "current").mkdir(parents=True)
    (tmp_path / "opt" / "current" / "manifest.json").write_text('{"release": "24.10"}')
    _models_release(tmp_path / "models", "r7", {"scale": []})
    (tmp_path / "models" / "current").symlink_to("releases/r7")
    _proc(
        tmp_path / "proc", 42, "tritonserver", ["tritonserver", "--http-port=8000"], 998, {"CUDA_VISIBLE_DEVICES": ""}
    )
    state = read_deployed(tmp_path / "opt", tmp_path / "models", tmp_path / "proc", 8000)
    assert state["manifest"] == {"release": "24.10"}
    assert (state["release"]["id"], state["release"]["instance_groups"]) == ("r7", {"scale": []})
    assert (state["process"]["pid"], state["process"]["environment"]) == (42, {"CUDA_VISIBLE_DEVICES": ""})
    empty = read_deployed(tmp_path / "none", tmp_path / "none", tmp_path / "proc", 9000)
    assert (empty["manifest"], empty["release"], empty["process"]["found"]) == (None, None, False)


# ----------------------------------------------------------------------------- embedded application

APP = {
    "release": {"dir": "/opt/tritonserver/current", "library": "/opt/tritonserver/current/lib/libtritonserver.so",
                "include": None, "server_version": "2.51.0", "gpu_build": True},
    "app_release": "0123456789abcdef",
    "app_check": {
        "binary": {"path": "/opt/tritonfleet/apps/demo/releases/0123/embedded_app", "elf": True, "interpreter": None,
                   "needed": ["libtritonserver-717102f0.so", "libc.so.6"],
                   "library": {"path": "/opt/tritonserver/current/lib/libtritonserver-717102f0.so", "via": "RPATH",
                               "gpu_build": True},
                   "cuda_device_calls": [],
                   "option_setters": ["TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize"]},
        "process": {"found": True, "pid": 4242, "triton_libraries": ["/opt/tritonserver/releases/2.51.0/lib/x.so"]},
        "environment": {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin"},
        "environment_source": "/proc/4242/environ",
        "gpu_memory": {"measured": False, "reason": "NVML unavailable: libnvidia-ml.so.1 not found"},
        "findings": [],
    },
    "probe": {
        "ran": True, "reason": None, "duration_ms": 900.0, "options": ["--pinned-memory-pool-byte-size=0"],
        "server": {"library": "/opt/tritonserver/releases/2.51.0/lib/libtritonserver-717102f0.so", "version": "2.51.0",
                   "api_version": "1.34"},
        "models": [{"name": "add_sub", "loaded": True, "load_message": None,
                    "instance_groups": [{"kind": "KIND_CPU", "count": 1, "gpus": []}],
                    "inference": {"ok": True, "message": None, "latency_ms": 20.0,
                                  "outputs": [{"name": "OUTPUT0", "data": [2.0, 4.0, 6.0, 8.0]}],
                                  "allocations": [{"tensor": "OUTPUT0", "asked": {"memory_type": "CPU", "device": 0},
                                                   "given": {"memory_type": "CPU", "device": 0}}]}}],
        "gpu_memory": {"measured": False, "reason": "NVML unavailable: libnvidia-ml.so.1 not found"},
        "findings": [],
    },
}  # fmt: skip


def test_embedded_application_section_passes_and_renders():
    report = _report(app=APP)
    assert report["verdict"] == "passed" and report["application"]["verdict"] == "passed"
    assert report["application"]["environment_source"] == "/proc/4242/environ"
    text = render_markdown(report)
    assert "## Embedded application" in text
    assert "Device environment (/proc/4242/environ): CUDA_VISIBLE_DEVICES=''" in text
    assert (
        "| add_sub | loaded | KIND_CPU x1 | ok | OUTPUT0=[2.0, 4.0, 6.0, 8.0] | OUTPUT0 CPU:0->CPU:0 | 20.0 |" in text
    )
    assert text.count("Not measured: NVML unavailable: libnvidia-ml.so.1 not found.") == 2  # application, probe
    assert json.loads(render_json(report))["application"]["app_release"] == "0123456789abcdef"


def test_embedded_application_findings_fail_the_host_by_check():
    finding = {"severity": "error", "code": "app_cuda_calls", "model": None, "message": "cudaMalloc", "fix": "drop it"}
    probe_finding = dict(finding, code="probe_load_failed", model="add_gpu", message="has kind KIND_GPU")
    app = {**APP, "app_check": {**APP["app_check"], "findings": [finding]},
           "probe": {**APP["probe"], "findings": [probe_finding]}}  # fmt: skip
    report = _report(app=app)
    assert report["verdict"] == "failed" and report["application"]["verdict"] == "failed"
    assert [(f["check"], f["code"]) for f in report["findings"]] == [
        ("app_check", "app_cuda_calls"),
        ("app_probe", "probe_load_failed"),
    ]


def test_application_that_could_not_be_checked_is_a_finding():
    report = _report(app={"failed": True, "msg": "No installed Triton release to embed"})
    assert report["verdict"] == "failed"
    assert report["findings"][-1]["code"] == "app_check_not_run"
    assert "No installed Triton release to embed" in report["findings"][-1]["message"]
    assert "Not checked (see the findings)." in render_markdown(report)


def test_host_without_an_application_has_no_section():
    report = _report()
    assert report["application"] is None and "## Embedded application" not in render_markdown(report)
