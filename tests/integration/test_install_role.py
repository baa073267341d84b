# SPDX-License-Identifier: Apache-2.0
"""The triton_install role for real: ansible-playbook against localhost, prefix under tmp_path.

Methods run here: wheel (the real nvidia-pytriton wheel), tarball (built from the wheel
release, from a file and from a loopback HTTP server), source (tests/fakes/build.py in a local
git repository) and container (podman with the image built on this machine). The runtime venv is
shared by the session (``triton_install_venv_dir``), so pip runs once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from ansible.module_utils.triton_elf import elf_rpath
from ansible.module_utils.triton_host import gather_host_facts
from support.container_images import tritonserver_image
from support.plans import base_host, make_plan, with_method
from support.server_checkout import fake_server_checkout
from support.triton_dist import (
    CACHE_DIR,
    CPU_PLAN,
    build_py_venv,
    runtime_venv,
    server_argv,
    server_env,
    triton_release,
    wait_ready,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK_BIN = Path(sys.executable).with_name("ansible-playbook")
HTTP_PORT = 18040
VERSION = CPU_PLAN["server_version"]


class Run:
    """One ansible-playbook run: exit code, output, recap counters."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", self.out)
        assert recap, self.out[-3000:]
        self.changed = int(recap.group(2))
        self.failed = int(recap.group(3))


def run_role(tmp_path: Path, extra: dict, check: bool = False) -> Run:
    """Apply the role to localhost with ``extra`` as extra vars (plan included)."""
    play = tmp_path / "play.yml"
    play.write_text(
        "- name: Apply triton_install\n  hosts: localhost\n  gather_facts: false\n  roles: [triton_install]\n"
    )
    vars_file = tmp_path / f"vars-{time.monotonic_ns()}.json"
    vars_file.write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [str(PLAYBOOK_BIN), "-i", str(REPO_ROOT / "inventory" / "local.yml"), str(play), "-e", f"@{vars_file}"]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    return Run(proc)


def base_vars(prefix: Path, **more: object) -> dict:
    return {
        "triton_install_plan": CPU_PLAN,
        "triton_install_prefix": str(prefix),
        "triton_install_venv_dir": str(CACHE_DIR / "role-venv-pytriton-0.7.0"),
        "triton_install_runtime_venv_dir": str(runtime_venv()),
        **more,
    }


def manifest(prefix: Path) -> dict:
    return json.loads((prefix / "current" / "manifest.json").read_text())


def snapshot(prefix: Path) -> tuple[str, str]:
    """(current link target, manifest text): what must not move when a run fails."""
    return os.readlink(prefix / "current"), (prefix / "releases" / VERSION / "manifest.json").read_text()


@pytest.fixture(scope="session")
def wheel_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prefix with the wheel release installed by the role (first run of the session)."""
    prefix = tmp_path_factory.mktemp("wheel") / "prefix"
    first = run_role(prefix.parent, base_vars(prefix))
    assert first.rc == 0, first.out[-3000:]
    assert first.changed >= 1
    return prefix


@pytest.fixture(scope="session")
def release_tarball(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A Jetson-shaped release tarball (top-level tritonserver/) built from the wheel release."""
    work = tmp_path_factory.mktemp("tarball")
    release = triton_release(work / "prefix")
    archive = work / "dist" / f"tritonserver{VERSION}-test-cpu.tgz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for entry in ("bin", "lib", "backends", "caches"):
            tar.add(release / entry, arcname=f"tritonserver/{entry}")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture
def http_server(release_tarball: tuple[Path, str]):
    """python -m http.server on 127.0.0.1:18040 serving the tarball's directory; stopped by pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(HTTP_PORT)],
        cwd=release_tarball[0].parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not open its port"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{HTTP_PORT}/{release_tarball[0].name}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------- wheel


def test_wheel_install_lays_out_a_verified_release(wheel_prefix: Path) -> None:
    release = wheel_prefix / "releases" / VERSION
    assert os.readlink(wheel_prefix / "current") == f"releases/{VERSION}"
    data = manifest(wheel_prefix)
    assert data["method"] == "wheel"
    assert data["server_version"] == VERSION and data["release"] == "24.10"
    assert data["source"] == "pypi:nvidia-pytriton==0.7.0"
    assert data["gpu_build"] is True  # the wheel's build carries libcudart; allowed on a CPU-only host
    assert data["backends"] == ["python"]
    assert re.fullmatch(r"[0-9a-f]{64}", data["sha256"])
    assert os.access(release / "bin" / "tritonserver", os.X_OK)
    assert list((release / "lib").glob("libtritonserver*.so"))
    stub = release / "backends" / "python" / "triton_python_backend_stub"
    assert elf_rpath(stub) == "$ORIGIN/../../lib"
    python = Path(data["python_bin_dir"]) / "python3"
    subprocess.run([str(python), "-c", "import numpy"], check=True)


def test_wheel_second_run_and_check_mode_change_nothing(wheel_prefix: Path) -> None:
    before = snapshot(wheel_prefix)
    again = run_role(wheel_prefix.parent, base_vars(wheel_prefix))
    assert (again.rc, again.changed) == (0, 0), again.out[-3000:]
    checked = run_role(wheel_prefix.parent, base_vars(wheel_prefix), check=True)
    assert (checked.rc, checked.changed) == (0, 0), checked.out[-3000:]
    assert snapshot(wheel_prefix) == before


def test_check_mode_on_a_fresh_prefix_reports_and_writes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "fresh"
    venv = tmp_path / "no-venv-yet"
    checked = run_role(tmp_path, base_vars(prefix, triton_install_venv_dir=str(venv)), check=True)
    assert checked.rc == 0, checked.out[-3000:]
    assert checked.changed >= 1
    assert not prefix.exists() and not venv.exists()


def test_half_installed_leftovers_are_removed_on_the_next_run(wheel_prefix: Path) -> None:
    releases = wheel_prefix / "releases"
    staging = releases / f".staging-{VERSION}-deadbeef"
    (staging / "bin").mkdir(parents=True)
    (staging / "bin" / "tritonserver").write_text("half copied")
    no_manifest = releases / "2.50.0"
    (no_manifest / "lib").mkdir(parents=True)
    before = snapshot(wheel_prefix)
    run = run_role(wheel_prefix.parent, base_vars(wheel_prefix))
    assert run.rc == 0, run.out[-3000:]
    assert run.changed == 1
    assert not staging.exists() and not no_manifest.exists()
    assert snapshot(wheel_prefix) == before


def test_gpu_build_where_the_plan_declares_a_cpu_only_build_fails(wheel_prefix: Path) -> None:
    before = snapshot(wheel_prefix)
    # A plan for the user's own CPU-only build (triton_gpu_build: false); the wheel is a GPU build.
    cpu_build_plan = make_plan(base_host(), "24.10", "tarball", gpu_build="false")
    extra = dict(base_vars(wheel_prefix), triton_install_plan=with_method(cpu_build_plan, "wheel"))
    run = run_role(wheel_prefix.parent, extra)
    assert run.rc != 0
    assert "is a GPU build" in run.out and "declares a CPU-only build" in run.out
    assert "triton_gpu_build: auto" in run.out
    assert snapshot(wheel_prefix) == before


# ---------------------------------------------------------------------------------- tarball


def assert_serves(release: Path, work: Path) -> None:
    """Start the installed release's tritonserver on an empty repository; it must become ready."""
    repo = work / "empty-models"
    repo.mkdir()
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(server_argv(release, repo, 18020, 18021, 18022), env=server_env(release), stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert wait_ready("http://127.0.0.1:18020", proc, 60), (work / "server.log").read_text()[-3000:]
    finally:
        proc.terminate()
        proc.wait(timeout=40)
        log.close()


def tarball_vars(prefix: Path, **more: object) -> dict:
    return base_vars(prefix, triton_install_plan=make_plan(base_host(), "24.10", "tarball"), **more)


def test_tarball_from_a_local_file(tmp_path: Path, release_tarball: tuple[Path, str]) -> None:
    archive, sha = release_tarball
    prefix = tmp_path / "prefix"
    extra = tarball_vars(prefix, triton_install_tarball_path=str(archive), triton_install_tarball_sha256=sha)
    first = run_role(tmp_path, extra)
    assert first.rc == 0, first.out[-3000:]
    data = manifest(prefix)
    assert (data["method"], data["source"], data["sha256"]) == ("tarball", str(archive), sha)
    assert data["python_bin_dir"] == str(runtime_venv() / "bin")
    assert os.access(prefix / "current" / "bin" / "tritonserver", os.X_OK)
    assert (prefix / "current" / "backends" / "python" / "triton_python_backend_stub").is_file()
    assert_serves(prefix / "releases" / VERSION, tmp_path)
    again = run_role(tmp_path, extra)
    assert (again.rc, again.changed) == (0, 0), again.out[-3000:]


def test_tarball_from_a_local_http_server(tmp_path: Path, release_tarball: tuple[Path, str], http_server: str) -> None:
    archive, sha = release_tarball
    prefix = tmp_path / "prefix"
    gone = tarball_vars(prefix, triton_install_tarball_url=http_server + ".missing", triton_install_tarball_sha256=sha)
    failed = run_role(tmp_path, gone)
    assert failed.rc != 0 and "Cannot download the Triton release archive" in failed.out and "404" in failed.out
    wrong = tarball_vars(prefix, triton_install_tarball_url=http_server, triton_install_tarball_sha256="0" * 64)
    failed = run_role(tmp_path, wrong)
    assert failed.rc != 0 and "Checksum mismatch" in failed.out
    assert not list((prefix / "cache").iterdir()), "a download with the wrong checksum stays cached"
    assert not (prefix / "current").exists()
    extra = tarball_vars(prefix, triton_install_tarball_url=http_server, triton_install_tarball_sha256=sha)
    checked = run_role(tmp_path, extra, check=True)
    assert checked.rc == 0 and checked.changed >= 1, checked.out[-3000:]
    assert not list((prefix / "cache").iterdir()) and not (prefix / "current").exists()
    first = run_role(tmp_path, extra)
    assert first.rc == 0, first.out[-3000:]
    data = manifest(prefix)
    assert (data["method"], data["source"], data["sha256"]) == ("tarball", http_server, sha)
    assert (prefix / "cache" / f"{sha[:12]}-{archive.name}").is_file()
    again = run_role(tmp_path, extra)
    assert (again.rc, again.changed) == (0, 0), again.out[-3000:]


def test_wrong_checksum_fails_clearly_and_keeps_the_previous_release(
    wheel_prefix: Path, release_tarball: tuple[Path, str]
) -> None:
    archive, sha = release_tarball
    before = snapshot(wheel_prefix)
    bad = "f" * 64
    run = run_role(
        wheel_prefix.parent,
        tarball_vars(wheel_prefix, triton_install_tarball_path=str(archive), triton_install_tarball_sha256=bad),
    )
    assert run.rc != 0
    assert f"sha256 is {sha}" in run.out and f"expects {bad}" in run.out
    assert snapshot(wheel_prefix) == before
    assert not [p for p in (wheel_prefix / "releases").iterdir() if p.name.startswith(".")]


def test_missing_tarball_fails_clearly_and_keeps_the_previous_release(wheel_prefix: Path, tmp_path: Path) -> None:
    before = snapshot(wheel_prefix)
    missing = tmp_path / "nowhere" / "tritonserver2.51.0-jetpack.tgz"
    run = run_role(
        wheel_prefix.parent,
        tarball_vars(wheel_prefix, triton_install_tarball_path=str(missing), triton_install_tarball_sha256="a" * 64),
    )
    assert run.rc != 0
    assert f"{missing} does not exist" in run.out
    assert snapshot(wheel_prefix) == before


# ---------------------------------------------------------------------------------- source


@pytest.fixture
def server_repo(tmp_path: Path) -> Path:
    """A local git repository shaped like a server checkout on branch r24.10, with the fake build.py."""
    return fake_server_checkout(tmp_path / "server-repo", "24.10", VERSION)


def calls(build_dir: Path) -> list[dict]:
    log = build_dir / "fake-build-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def source_vars(prefix: Path, repo: Path, **more: object) -> dict:
    return base_vars(
        prefix,
        triton_install_plan=make_plan(base_host(), "24.10", "source"),
        triton_install_source_repo=str(repo),
        triton_install_source_backends=["ensemble", "python"],
        # build.py's venv (distro, requests), made once per machine (the role's pip task finds it complete).
        triton_install_source_build_venv_dir=str(build_py_venv()),
        **more,
    )


def test_source_method_builds_with_build_py_and_installs(tmp_path: Path, server_repo: Path) -> None:
    prefix = tmp_path / "prefix"
    build_dir = prefix / "build" / VERSION
    first = run_role(tmp_path, source_vars(prefix, server_repo))
    assert first.rc == 0, first.out[-3000:]
    (call,) = calls(build_dir)
    assert call["dryrun"] is False
    argv = call["argv"]
    assert "--no-container-build" in argv and f"--build-dir={build_dir}" in argv
    assert "--backend=ensemble:r24.10" in argv and "--backend=python:r24.10" in argv
    assert "--target-platform=linux" in argv  # never build.py's guess: Debian would be taken for RHEL
    assert call["python"] == str(build_py_venv() / "bin" / "python")
    assert not [a for a in argv if a.startswith(("--enable-gpu", "--dryrun"))]
    commit = subprocess.run(
        ["git", "-C", str(server_repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    data = manifest(prefix)
    assert (data["method"], data["source"], data["gpu_build"]) == ("source", f"{server_repo}@{commit}", False)
    # ensemble is part of core: build.py installs no backends/ensemble (docs/upstream-facts.md, "build.py").
    assert data["backends"] == ["python"]
    again = run_role(tmp_path, source_vars(prefix, server_repo))
    assert (again.rc, again.changed) == (0, 0), again.out[-3000:]
    assert len(calls(build_dir)) == 1, "a second run rebuilt an installed commit"


def test_source_method_check_mode_runs_build_py_dryrun(tmp_path: Path, server_repo: Path) -> None:
    prefix = tmp_path / "prefix"
    checkout = prefix / "src" / "server"
    subprocess.run(["git", "clone", "-q", "-b", "r24.10", str(server_repo), str(checkout)], check=True)
    checked = run_role(tmp_path, source_vars(prefix, server_repo), check=True)
    assert checked.rc == 0, checked.out[-3000:]
    assert checked.changed >= 1
    (call,) = calls(prefix / "build" / VERSION)
    assert call["dryrun"] is True and call["argv"][-1] == "--dryrun"
    assert not (prefix / "build" / VERSION / "opt").exists()
    assert not (prefix / "releases").exists() and not (prefix / "current").exists()


# ---------------------------------------------------------------------------------- container


def test_container_method_makes_the_image_present_and_writes_the_run_spec(tmp_path: Path) -> None:
    """With this machine's real facts and podman: the image the engine holds, checked and recorded by id."""
    image = tritonserver_image()
    host = gather_host_facts("/", None, nvml_reason="not needed")
    plan = make_plan(host, "24.10", "container")
    assert plan["container_engine"] == "podman"
    prefix = tmp_path / "prefix"
    extra = base_vars(prefix, triton_install_host=host, triton_install_plan=plan,
                      triton_install_container_source={"type": "registry", "image": image.reference})  # fmt: skip
    first = run_role(tmp_path, extra)
    assert first.rc == 0, first.out[-3000:]
    data = manifest(prefix)
    assert (data["method"], data["container_spec"], data["image_id"]) == ("container", "container.json", image.image_id)
    assert data["source"] == f"registry:{image.reference}" and data["gpu_build"] is True
    spec = json.loads((prefix / "current" / "container.json").read_text())
    assert spec["engine"]["name"] == "podman" and spec["engine"]["path"] == "/usr/bin/podman"
    assert spec["engine"]["global_args"][:2] == ["--runtime", "runc"]
    assert (spec["image"], spec["image_id"]) == (image.reference, image.image_id)
    assert spec["devices"] == [] and spec["env"] == {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"}
    assert spec["argv"][-1] == image.image_id  # the service appends the server's command line
    again = run_role(tmp_path, extra)
    assert (again.rc, again.changed) == (0, 0), again.out[-3000:]
    # A release for another server version is refused by what the image declares; nothing moves.
    before = snapshot(prefix)
    other = run_role(tmp_path, dict(extra, triton_install_plan=dict(plan, server_version="2.50.0", release="24.09")))
    assert other.rc != 0
    assert "is tritonserver 2.51.0 but the plan wants 2.50.0 (release 24.09)" in other.out
    assert snapshot(prefix) == before


def test_container_preflight_fails_before_any_change_without_an_engine(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    host = {"container_engines": [], "nvidia_container_runtime": {"present": False, "paths": [], "cdi_specs": []}}
    extra = base_vars(prefix, triton_install_host=host, triton_install_plan=with_method(CPU_PLAN, "container"))
    run = run_role(tmp_path, extra)
    assert run.rc != 0
    assert "the engines that can start a container on this host are []" in run.out
    assert "Rerun preflight with triton_install_method=container" in run.out
    assert not prefix.exists()
