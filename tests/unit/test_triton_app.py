"""Embedded-application releases: declaration, launcher, staging and build, and the deploy flow with rollback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ansible.module_utils.triton_app import (
    LAUNCHER,
    AppError,
    check_declaration,
    deploy,
    launch_argv,
    launch_environment,
    launcher_text,
    pack_source,
    plan_release,
    prune_releases,
    release_id,
    stage_release,
    wait_running,
)
from ansible.module_utils.triton_release_lifecycle import MANIFEST_NAME, linked_release
from ansible.module_utils.triton_runtime import RuntimeSectionError
from support.plans import base_host, dgpu_host, gpu, make_plan

CPU_PLAN = make_plan(base_host())
SERVER_MANIFEST = {"server_version": "2.51.0", "python_bin_dir": "/opt/py/bin", "gpu_build": True, "method": "wheel"}


def run_real(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture
def host(tmp_path):
    """An installed server release (manifest, lib/libtritonserver.so) and an application source tree."""
    release = tmp_path / "opt" / "releases" / "2.51.0"
    (release / "lib").mkdir(parents=True)
    (release / "lib" / "libtritonserver.so").write_bytes(b"\x7fELF")
    (release / "manifest.json").write_text(json.dumps({**SERVER_MANIFEST, "library": "lib/libtritonserver.so"}))
    (tmp_path / "opt" / "current").symlink_to("releases/2.51.0")
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.sh").write_text("#!/bin/sh\necho built > out.txt\n")
    (src / "app.sh").chmod(0o755)
    return tmp_path


def params(host: Path, **overrides):
    values = {
        "name": "demo",
        "root": str(host / "apps" / "demo"),
        "source": {"path": str(host / "src")},
        "source_label": "",
        "command": "app.sh",
        "args": ["--model", "add_sub"],
        "env": {"APP_MODE": "fast"},
        "server_args": True,
        "build_command": [],
        "build_timeout": 60,
        "plan": CPU_PLAN,
        "install_prefix": str(host / "opt"),
        "model_repository": "/srv/tritonfleet/models/current",
        "state_dir": str(host / "state"),
        "user": "root",
        "group": "root",
        "probe": True,
        "start_timeout": 5,
        "keep_releases": 2,
    }
    values.update(overrides)
    return values


# ---------------------------------------------------------------------------- declaration


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"name": "Demo App"}, "name 'Demo App' is not lower-case"),
        ({"command": ""}, "command '' is not a path"),
        (
            {"env": {"CUDA_VISIBLE_DEVICES": "0", "LD_LIBRARY_PATH": "/x"}},
            "env sets CUDA_VISIBLE_DEVICES, LD_LIBRARY_PATH",
        ),
        ({"source": {"path": "/x", "digest": "ab"}}, "exactly one of a controller source"),
        ({"source": {}}, "exactly one of a controller source"),
    ],
    ids=["name", "command", "reserved-env", "two-sources", "no-source"],
)
def test_unusable_declaration_is_refused(host, overrides, words):
    with pytest.raises(AppError) as caught:
        check_declaration(params(host, **overrides))
    assert words in str(caught.value)
    assert str(caught.value).endswith("Fix the variables; nothing was changed.")


# ---------------------------------------------------------------------------- launcher


def test_environment_is_the_servers_plus_plan_runtime_verbatim():
    plan = make_plan(dgpu_host([gpu(0, "NVIDIA L4", "8.9"), gpu(1, "NVIDIA L4", "8.9")]), gpus=[1])
    env = launch_environment(plan, SERVER_MANIFEST, "/opt/tritonserver/current", "/var/lib/app", "/srv/m/current", {})
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and "CUDA_VISIBLE_DEVICES" not in env
    assert env["LD_LIBRARY_PATH"] == "/opt/tritonserver/current/lib"
    assert env["PATH"].startswith("/opt/py/bin:")
    assert env["TRITONFLEET_MODEL_REPOSITORY"] == "/srv/m/current"
    assert env["TRITONFLEET_BACKEND_DIRECTORY"] == "/opt/tritonserver/current/backends"
    cpu = launch_environment(CPU_PLAN, SERVER_MANIFEST, "/t", "/s", "/m", {"APP": "1"})
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["APP"] == "1"


def test_plan_without_runtime_is_refused():
    with pytest.raises(RuntimeSectionError, match="The plan has no complete runtime section"):
        launch_environment({"enable_gpu": False, "platform": "cpu"}, SERVER_MANIFEST, "/t", "/s", "/m", {})


def test_argv_appends_the_plans_server_args():
    argv = launch_argv(Path("/r"), "bin/app", ["--model", "m"], CPU_PLAN, True)
    assert argv == ["/r/bin/app", "--model", "m", *CPU_PLAN["runtime"]["server_args"]]
    assert "--pinned-memory-pool-byte-size=0" in argv
    assert launch_argv(Path("/r"), "/usr/bin/app", [], CPU_PLAN, False) == ["/usr/bin/app"]


def test_launcher_runs_the_command_with_exactly_its_environment(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": "", "QUOTED": "a b'c"}
    launcher = tmp_path / "launch"
    launcher.write_text(launcher_text("demo", env, ["/usr/bin/env"], "root", "root"))
    launcher.chmod(0o755)
    proc = run_real([str(launcher)], env={**os.environ, "LEAK": "1"})
    assert proc.returncode == 0, proc.stderr
    assert dict(line.split("=", 1) for line in proc.stdout.splitlines()) == env


def test_release_id_changes_with_source_build_and_launcher():
    base = release_id("s1", ["make"], "L")
    assert base == release_id("s1", ["make"], "L")
    assert (
        len(
            {
                base,
                release_id("s2", ["make"], "L"),
                release_id("s1", ["make", "V=gpu"], "L"),
                release_id("s1", ["make"], "M"),
            }
        )
        == 4
    )


# ---------------------------------------------------------------------------- source and staging


def test_packed_file_and_host_file_hash_alike(host, tmp_path):
    packed = pack_source(host / "src" / "app.sh", tmp_path / "build", "demo")
    wanted = plan_release(params(host, source={"path": str(host / "src" / "app.sh")}))
    assert packed["digest"] == wanted["source"]["digest"] and packed["files"] == 1
    again = pack_source(host / "src" / "app.sh", tmp_path / "build", "demo")
    assert again == packed and Path(packed["archive"]).is_file()


def test_stage_from_archive_builds_and_writes_manifest_last(host, tmp_path):
    packed = pack_source(host / "src", tmp_path / "build", "demo")
    p = params(host, source={"digest": packed["digest"]}, build_command=["sh", "app.sh"])
    wanted = plan_release(p)
    root = Path(p["root"])
    (root / "sources").mkdir(parents=True)
    os.link(packed["archive"], wanted["source"]["archive"])
    release = stage_release(
        root, wanted["release"], wanted["source"], wanted["build"], wanted["launcher"], wanted["manifest"], run_real
    )
    assert (release / "out.txt").read_text() == "built\n"
    manifest = json.loads((release / MANIFEST_NAME).read_text())
    assert manifest["source_digest"] == packed["digest"] and manifest["build_command"] == ["sh", "app.sh"]
    assert manifest["argv"][0] == str(release / "app.sh") and manifest["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    launcher = (release / LAUNCHER).read_text()
    assert "@RELEASE@" not in launcher and f"{release}/app.sh" in launcher
    assert not list((root / "releases").glob(".staging-*"))


def test_staging_clears_what_interrupted_runs_left(host):
    p = params(host)
    wanted = plan_release(p)
    root = Path(p["root"])
    half_made = root / "releases" / "0123abcd"
    half_made.mkdir(parents=True)
    (half_made / "app.sh").write_text("no manifest: the run died before it was complete\n")
    (root / "releases" / ".staging-feed").mkdir()
    (root / "releases" / ".retired-feed-00").mkdir()
    release = stage_release(
        root, wanted["release"], wanted["source"], None, wanted["launcher"], wanted["manifest"], run_real
    )
    assert sorted(e.name for e in (root / "releases").iterdir()) == [release.name]


def test_failed_build_leaves_no_release(host):
    (host / "src" / "fail.sh").write_text("echo 'error: no compiler' >&2; exit 3\n")
    p = params(host, build_command=["sh", "fail.sh"])
    wanted = plan_release(p)
    root = Path(p["root"])
    with pytest.raises(AppError) as caught:
        stage_release(
            root, wanted["release"], wanted["source"], wanted["build"], wanted["launcher"], wanted["manifest"], run_real
        )
    assert "exited 3" in str(caught.value) and "error: no compiler" in str(caught.value)
    assert "the running application is unchanged" in str(caught.value)
    assert list((root / "releases").iterdir()) == []


def test_source_with_its_own_top_level_manifest_is_refused(host):
    (host / "src" / "manifest.json").write_text('{"the application": "its own file"}\n')
    p = params(host)
    wanted = plan_release(p)
    root = Path(p["root"])
    with pytest.raises(AppError, match=r"hold a manifest\.json at their top level"):
        stage_release(root, wanted["release"], wanted["source"], None, wanted["launcher"], wanted["manifest"], run_real)
    assert list((root / "releases").iterdir()) == []


def test_files_that_do_not_hash_to_the_planned_source_are_refused(host):
    p = params(host)
    wanted = plan_release(p)
    (host / "src" / "app.sh").write_text("#!/bin/sh\necho changed\n")
    root = Path(p["root"])
    with pytest.raises(AppError, match=r"hash to [0-9a-f]+, not to"):
        stage_release(root, wanted["release"], wanted["source"], None, wanted["launcher"], wanted["manifest"], run_real)
    assert list((root / "releases").iterdir()) == []


def test_container_release_cannot_be_embedded(host):
    manifest = host / "opt" / "current" / "manifest.json"
    manifest.write_text(json.dumps({**SERVER_MANIFEST, "method": "container", "library": None}))
    (host / "opt" / "current" / "lib" / "libtritonserver.so").unlink()
    with pytest.raises(AppError, match="Embedded applications load the library of a native release"):
        plan_release(params(host))


def test_prune_keeps_current_and_previous(tmp_path):
    root = tmp_path / "app"
    for index, name in enumerate(["a", "b", "c", "d"]):
        release = root / "releases" / name
        release.mkdir(parents=True)
        (release / MANIFEST_NAME).write_text(json.dumps({"source_digest": name}))
        (root / "sources").mkdir(exist_ok=True)
        (root / "sources" / f"{name}.tar").write_text("x")
        os.utime(release, (1000 + index, 1000 + index))
    assert prune_releases(root, 2, ["a"]) == ["b"]
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["a", "c", "d"]
    assert sorted(p.name for p in (root / "sources").iterdir()) == ["a.tar", "c.tar", "d.tar"]


def test_wait_running_reports_why():
    now = [0.0]
    assert wait_running(lambda: ("running", "RUNNING"), 5, lambda: now[0], lambda s: None) is None
    assert (
        wait_running(lambda: ("failed", "FATAL (exited: 2)"), 5, lambda: now[0], lambda s: None) == "FATAL (exited: 2)"
    )

    def sleep(seconds):
        now[0] += seconds

    assert wait_running(lambda: ("starting", "BACKOFF"), 2, lambda: now[0], sleep) == "still BACKOFF after 2 s"


# ---------------------------------------------------------------------------- the deploy flow


class FakeService:
    """Records what the flow asks of the service manager; ``states`` are what status() answers in turn."""

    manager = "supervisor"
    program = "tritonfleet-app-demo"

    def __init__(self, states=("running",)):
        self.calls = []
        self.states = list(states)
        self.config = None

    def write_config(self, check_mode, outcome):
        if self.config is None and not check_mode:
            self.config = "written"
            outcome.add("program file", "", "x")
            return True
        return False

    def restart(self, changed):
        self.calls.append(("restart", changed))
        return ["restart"]

    def ensure_started(self):
        self.calls.append(("ensure_started",))
        return []

    def stop(self):
        self.calls.append(("stop",))

    def status(self):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return state, state.upper()

    def pid(self):
        return 4242


def run_deploy(host, service, check_findings=(), probe_findings=(), check_mode=False, **overrides):
    p = params(host, **overrides)
    wanted = plan_release(p)
    checks = []

    def check(binary, pid, not_running=None):
        checks.append((str(binary), pid))
        return {"findings": list(check_findings) if pid is None or overrides.get("fail_running") else []}

    def probe():
        checks.append(("probe",))
        return {"findings": list(probe_findings)}

    p.pop("fail_running", None)
    result = deploy(p, check_mode, service, lambda: wanted, check, probe, run_real, lambda: "log tail")
    return result, checks, wanted


ERROR = {"severity": "error", "code": "app_cuda_calls", "message": "imports cudaMalloc", "fix": "drop it"}


def test_first_deploy_checks_then_switches_and_reruns_change_nothing(host):
    service = FakeService()
    result, checks, wanted = run_deploy(host, service)
    root = host / "apps" / "demo"
    assert linked_release(root, "current") == wanted["release"] and linked_release(root, "previous") is None
    assert checks == [(str(root / "releases" / wanted["release"] / "app.sh"), None), ("probe",), (checks[2][0], 4242)]
    assert service.calls == [("restart", True)] and result["changed"] is True

    again = FakeService()
    again.config = "written"
    result, checks, _ = run_deploy(host, again)
    assert result["changed"] is False and result["actions"] == []
    # No probe without a switch: only the running process is checked.
    assert [c[1] for c in checks] == [4242] and again.calls == [("ensure_started",)]


def test_refused_release_never_takes_over(host):
    service = FakeService()
    _, _, first = run_deploy(host, service)
    (host / "src" / "app.sh").write_text("#!/bin/sh\necho v2\n")
    update = FakeService()
    update.config = "written"
    with pytest.raises(AppError) as caught:
        run_deploy(host, update, check_findings=[ERROR])
    assert f"release {first['release']} keeps running" in str(caught.value)
    assert "[app_cuda_calls] imports cudaMalloc (fix: drop it)" in str(caught.value)
    assert linked_release(host / "apps" / "demo", "current") == first["release"]
    assert update.calls == [] and caught.value.details["refused"] is True


def test_probe_finding_refuses_the_release_too(host):
    finding = {"severity": "error", "code": "probe_load_failed", "message": "model m: has kind KIND_GPU", "fix": "auto"}
    with pytest.raises(AppError, match="probe_load_failed"):
        run_deploy(host, FakeService(), probe_findings=[finding])
    assert linked_release(host / "apps" / "demo", "current") is None


def test_update_that_fails_while_running_is_rolled_back(host):
    _, _, first = run_deploy(host, FakeService())
    (host / "src" / "app.sh").write_text("#!/bin/sh\nexit 2\n")
    update = FakeService(states=["starting", "failed", "running"])
    update.config = "written"
    with pytest.raises(AppError) as caught:
        run_deploy(host, update)
    message = str(caught.value)
    assert f"release {first['release']} was put back and runs again" in message
    assert "does not stay up: FAILED" in message and "log tail" in message
    root = host / "apps" / "demo"
    assert linked_release(root, "current") == first["release"]
    assert update.calls == [("restart", False), ("restart", False)]
    assert caught.value.details["rolled_back"] is True


def test_first_release_that_fails_is_stopped(host):
    service = FakeService(states=["failed"])
    with pytest.raises(AppError, match="the application is stopped"):
        run_deploy(host, service)
    assert not (host / "apps" / "demo" / "current").exists()
    assert service.calls[-1] == ("stop",)


def test_check_mode_changes_nothing(host):
    service = FakeService()
    result, checks, wanted = run_deploy(host, service, check_mode=True)
    assert result["changed"] is True and checks == [] and service.calls == []
    assert any(a.startswith(f"stage and build release {wanted['release']}") for a in result["actions"])
    assert not (host / "apps").exists()


def test_release_whose_source_is_not_uploaded_yet_is_reported(host, tmp_path):
    packed = pack_source(host / "src", tmp_path / "build", "demo")
    result, checks, _ = run_deploy(host, FakeService(), source={"digest": packed["digest"]})
    assert result["source_missing"] is True and result["changed"] is False and checks == []


def test_check_mode_with_the_source_still_on_the_controller_says_what_would_happen(host, tmp_path):
    packed = pack_source(host / "src", tmp_path / "build", "demo")
    result, checks, wanted = run_deploy(host, FakeService(), check_mode=True, source={"digest": packed["digest"]})
    assert result["changed"] is True and result["source_missing"] is False and checks == []
    assert result["actions"] == [
        f"upload the source, stage, build and check release {wanted['release']}, then switch to it"
    ]
    assert not (host / "apps").exists()
