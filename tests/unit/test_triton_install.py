# SPDX-License-Identifier: Apache-2.0
"""The server install's pure logic: ELF, layouts, inspection, container spec, build.py argv, the install itself.

One file for the modules of a server install (triton_install, triton_elf, triton_server_layout,
triton_server_inspect, triton_container_spec, triton_source_build), sharing the plans and trees below.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from ansible.module_utils.triton_build_py import RELEASES, flags_of
from ansible.module_utils.triton_container_spec import container_run_argv, container_run_spec
from ansible.module_utils.triton_elf import elf_needed, elf_rpath, set_elf_rpath
from ansible.module_utils.triton_install import LAYOUT_VERSION, build_request, install_release
from ansible.module_utils.triton_install_errors import ChecksumError, InstallError
from ansible.module_utils.triton_server_inspect import check_release, detect_server_version, inspect_release
from ansible.module_utils.triton_server_layout import (
    find_install_root,
    link_stable_library,
    stage_tarball_layout,
    stage_wheel_layout,
    verify_archive,
)
from ansible.module_utils.triton_source_build import source_build_argv, source_build_needed
from fakes.minimal_elf import write_elf
from support.plans import (
    base_host,
    dgpu_host,
    docker_engine,
    gpu,
    jetson_host,
    make_plan,
    podman_engine,
    with_containers,
)

# ----------------------------------------------------------------------------- plans and hosts

DOCKER = docker_engine()
PODMAN = podman_engine()
CPU_HOST = with_containers(base_host(), runtime=False)
DGPU_HOST = with_containers(
    dgpu_host([gpu(0, "NVIDIA L4", "8.9"), gpu(1, "NVIDIA L4", "8.9")]), engines=[DOCKER, PODMAN]
)
NANO_HOST = jetson_host("nano-jp4")
JP5_HOST = jetson_host("xavier-jp5")
JP6_HOST = with_containers(jetson_host("orin-jp6"))
JP7_HOST = with_containers(jetson_host("thor-jp7"))
# The plans preflight makes for these hosts (tests/support/plans.py runs the real triton_compat).
CPU_PLAN = make_plan(CPU_HOST, "24.10", "container")
DGPU_PLAN = make_plan(DGPU_HOST, "24.10", "container")
DGPU_CPU_PLAN = make_plan(DGPU_HOST, "24.10", "container", enable_gpu="false")
JP6_PLAN = make_plan(JP6_HOST, "24.10", "container")
JP7_PLAN = make_plan(JP7_HOST, "26.02", "container")
CPU_SOURCE_PLAN = make_plan(base_host(), "24.10", "source")
DGPU_SOURCE_PLAN = make_plan(DGPU_HOST, "24.10", "source")
DGPU_CPU_SOURCE_PLAN = make_plan(DGPU_HOST, "24.10", "source", enable_gpu="false")
NANO_SOURCE_PLAN = make_plan(NANO_HOST, "2.19.0", "source")
JP5_SOURCE_PLAN = make_plan(JP5_HOST, "23.06", "source")
JP6_SOURCE_PLAN = make_plan(JP6_HOST, "24.10", "source")
JP7_SOURCE_PLAN = make_plan(JP7_HOST, "26.02", "source")
# A CPU plan for the user's own CPU-only x86 tarball (triton_gpu_build: false).
CPU_ONLY_BUILD_PLAN = make_plan(DGPU_HOST, "24.10", "tarball", gpu_build="false")
OPTIONS = {"models_root": "/srv/tritonfleet/models"}
IMAGE_ID = "0fabea092a8e27ea3f9cdf19007b0fac4eb065f144597f01bf99e20c683c4557"


def argv_of(spec: dict) -> list[str]:
    """The engine command line once the install knows the image's id."""
    return container_run_argv(dict(spec, image_id=IMAGE_ID))


# ----------------------------------------------------------------------------- the build kind


GPU_INFO = {"tritonserver": True, "gpu_build": True, "cudart": ["libcudart.so.12"], "backends": ["python"]}
CPU_INFO = dict(GPU_INFO, gpu_build=False, cudart=[])


@pytest.mark.parametrize(
    ("info", "plan"),
    [(GPU_INFO, CPU_PLAN), (GPU_INFO, DGPU_CPU_PLAN), (GPU_INFO, DGPU_PLAN), (CPU_INFO, CPU_ONLY_BUILD_PLAN),
     (CPU_INFO, DGPU_CPU_SOURCE_PLAN)],
    ids=["gpu-build-on-cpu-host", "gpu-build-gpus-hidden", "gpu-build-gpu-plan", "declared-cpu-build",
         "cpu-source-build"],
)  # fmt: skip
def test_check_release_accepts(info: dict, plan: dict) -> None:
    check_release(info, plan["server_version"], plan, "/staging")


@pytest.mark.parametrize(
    ("info", "plan", "version", "message"),
    [
        (CPU_INFO, DGPU_PLAN, "2.51.0", "is a CPU-only build .* expects a GPU build"),
        (CPU_INFO, CPU_PLAN, "2.51.0", "is a CPU-only build .* triton_gpu_build: false"),
        (GPU_INFO, CPU_ONLY_BUILD_PLAN, "2.51.0", "is a GPU build .* declares a CPU-only build"),
        (GPU_INFO, CPU_PLAN, "2.50.0", "is tritonserver 2.50.0"),
        (GPU_INFO, CPU_PLAN, None, "Cannot tell which Triton version"),
        (dict(GPU_INFO, tritonserver=False), CPU_PLAN, "2.51.0", "no executable bin/tritonserver"),
    ],
    ids=["gpu-plan-cpu-build", "cpu-build-not-declared", "gpu-build-declared-cpu", "wrong-version",
         "unknown-version", "no-binary"],
)  # fmt: skip
def test_check_release_refuses(info: dict, plan: dict, version: str | None, message: str) -> None:
    with pytest.raises(InstallError, match=message) as caught:
        check_release(info, version, plan, "/staging")
    assert "/staging" in str(caught.value)


@pytest.mark.parametrize(
    ("method", "info", "source", "wheel", "expected"),
    [("wheel", {}, "pypi:nvidia-pytriton==0.7.0", "0.7.0", "2.51.0"),
     ("source", {"triton_version_file": "2.51.0"}, "repo@abc", None, "2.51.0"),
     ("tarball", {}, "https://x/tritonserver2.35.0-jetpack5.1.2-update-2.tgz", None, "2.35.0"),
     ("tarball", {}, "/tmp/tritonserver-2.50.0-igpu.tar.gz", None, "2.50.0"),
     ("tarball", {}, "/tmp/server.tgz", None, None)],
    ids=["wheel", "version-file", "jetson-name", "hyphen-name", "unknown"],
)  # fmt: skip
def test_detect_server_version(method: str, info: dict, source: str, wheel: str | None, expected: str | None) -> None:
    assert detect_server_version(method, info, source, wheel) == expected


# ----------------------------------------------------------------------------- container run spec


def test_container_cpu_host_has_no_gpu_flags() -> None:
    spec = container_run_spec(CPU_PLAN, CPU_HOST, OPTIONS)
    argv = argv_of(spec)
    assert spec["source"]["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert not {"--gpus", "--runtime", "--device"} & set(argv)
    assert spec["env"] == {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"}
    assert argv[:7] == ["/usr/bin/docker", "run", "--rm", "--name", "tritonserver", "--user", "triton-server"]
    assert argv[argv.index("--network") + 1] == "host" and argv[argv.index("--stop-timeout") + 1] == "40"
    assert "/srv/tritonfleet/models:/srv/tritonfleet/models:ro" in argv
    # The server's command line is the service's (triton_service.container_launch); the image runs by id.
    assert argv[-3:] == ["--shm-size", "256m", IMAGE_ID]


def test_container_dgpu_docker_hands_over_every_gpu() -> None:
    argv = argv_of(container_run_spec(DGPU_PLAN, DGPU_HOST, OPTIONS))
    # All GPUs: a subset would renumber the CUDA ids the plan and the model configs name.
    assert argv[argv.index("--gpus") + 1] == "all"
    assert "--runtime" not in argv and "CUDA_VISIBLE_DEVICES=" not in argv
    assert {"CUDA_DEVICE_ORDER=PCI_BUS_ID", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"} <= set(argv)


def test_container_dgpu_podman_uses_cdi_devices() -> None:
    spec = container_run_spec(DGPU_PLAN, DGPU_HOST, dict(OPTIONS, engine="podman"))
    argv = argv_of(spec)
    assert argv[:5] == ["/usr/bin/podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--device"] == ["nvidia.com/gpu=all"]
    assert "--gpus" not in argv


def test_container_cpu_plan_on_gpu_host_hides_every_gpu() -> None:
    argv = argv_of(container_run_spec(DGPU_CPU_PLAN, DGPU_HOST, OPTIONS))
    assert not {"--gpus", "--runtime", "--device"} & set(argv)
    assert "CUDA_VISIBLE_DEVICES=" in argv and "NVIDIA_VISIBLE_DEVICES=void" in argv


def test_container_jetson_jp6_uses_the_igpu_image_and_nvidia_runtime() -> None:
    spec = container_run_spec(JP6_PLAN, JP6_HOST, OPTIONS)
    argv = argv_of(spec)
    assert spec["source"]["image"].endswith(":24.10-py3-igpu")
    assert argv[argv.index("--runtime") + 1] == "nvidia" and "--gpus" not in argv
    assert "NVIDIA_VISIBLE_DEVICES=all" in argv


def test_container_jetson_with_podman_uses_cdi() -> None:
    host = with_containers(jetson_host("orin-jp6"), engines=[podman_engine()])
    plan = make_plan(host, "24.10", "container")
    assert plan["container_engine"] == "podman"
    argv = argv_of(container_run_spec(plan, host, OPTIONS))
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--device"] == ["nvidia.com/gpu=all"]
    assert "--runtime" not in argv[argv.index("run") :] and "--gpus" not in argv


def test_container_needs_the_plans_image() -> None:
    plan = dict(JP6_PLAN, container_image=None)
    with pytest.raises(InstallError, match=r"no container image for this host.*Rerun preflight"):
        container_run_spec(plan, JP6_HOST, OPTIONS)


def test_container_jetson_jp7_sbsa_uses_the_standard_image() -> None:
    spec = container_run_spec(JP7_PLAN, JP7_HOST, OPTIONS)
    assert spec["source"]["image"] == "nvcr.io/nvidia/tritonserver:26.02-py3"
    assert spec["devices"] == ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all"]


def test_container_engine_that_cannot_run_fails_clearly() -> None:
    host = dict(CPU_HOST, container_engines=[docker_engine(daemon_running=False)])
    with pytest.raises(InstallError) as raised:
        container_run_spec(CPU_PLAN, host, OPTIONS)
    message = str(raised.value)
    assert message.startswith("The container engine 'docker' (triton_install_container_engine")
    assert "Found: docker: docker cannot start the server's container here: its daemon is not running" in message
    assert "Supported: docker or podman that can run containers here" in message


def test_container_mirror_and_archive_sources() -> None:
    mirror = {"type": "registry", "image": "registry.example.com/nvidia/tritonserver:24.10-py3"}
    assert container_run_spec(CPU_PLAN, CPU_HOST, dict(OPTIONS, source=mirror))["source"]["image"] == mirror["image"]
    archive = {"type": "archive", "path": "/srv/images/t.tar", "sha256": "a" * 64}
    spec = container_run_spec(dict(CPU_PLAN, container_image=None), CPU_HOST, dict(OPTIONS, source=archive))
    assert spec["source"] == {**archive, "image": None, "url": None}


# ----------------------------------------------------------------------------- build.py argv


def build_options(**more: object) -> dict:
    return {"python": "/usr/bin/python3", "checkout": "/src/server", "build_dir": "/b", "backends": ["python"],
            "dryrun": False, **more}  # fmt: skip


def test_build_argv_cpu_has_no_gpu_flags() -> None:
    argv = source_build_argv(CPU_SOURCE_PLAN, CPU_HOST, build_options(backends=["onnxruntime", "python", "fil"]))
    assert argv[:5] == ["/usr/bin/python3", "/src/server/build.py", "--no-container-build", "--build-dir=/b",
                        "--target-platform=linux"]  # fmt: skip
    assert not [a for a in argv if a.startswith(("--enable-gpu", "--min-compute", "--dryrun"))]
    assert argv[-3:] == ["--backend=onnxruntime:r24.10", "--backend=python:r24.10", "--backend=fil:r24.10"]
    assert "--repo-tag=core:r24.10" in argv


def test_build_argv_cpu_refuses_gpu_only_backends() -> None:
    with pytest.raises(InstallError, match=r"tensorrt, which a CPU-only build cannot have.*identity, repeat"):
        source_build_argv(CPU_SOURCE_PLAN, CPU_HOST, build_options(backends=["python", "tensorrt"]))


def test_build_argv_dgpu_enables_gpu_and_metrics() -> None:
    argv = source_build_argv(DGPU_SOURCE_PLAN, DGPU_HOST, build_options(backends=["tensorrt"]))
    assert {"--enable-gpu", "--enable-gpu-metrics", "--min-compute-capability=6.0"} <= set(argv)
    assert "--backend=tensorrt:r24.10" in argv and "--target-platform=linux" in argv


def test_build_argv_dgpu_with_cpu_plan_builds_cpu_only() -> None:
    argv = source_build_argv(DGPU_CPU_SOURCE_PLAN, DGPU_HOST, build_options())
    assert not [a for a in argv if a.startswith("--enable-gpu")]


def test_build_argv_jetson_nano_names_the_jetpack_target_of_its_build_py() -> None:
    # build.py of 22.02 (JetPack 4) calls the Jetson target "jetpack" and has no --enable-cpu-metrics or --dryrun.
    argv = source_build_argv(NANO_SOURCE_PLAN, NANO_HOST, build_options(dryrun=True))
    assert {"--enable-gpu", "--target-platform=jetpack", "--min-compute-capability=5.3"} <= set(argv)
    assert "--enable-gpu-metrics" not in argv  # no DCGM on Jetson
    assert "--enable-cpu-metrics" not in argv and "--dryrun" not in argv
    assert "--backend=python:r22.02" in argv


def test_build_argv_jetson_jp5_targets_jetpack() -> None:
    argv = source_build_argv(JP5_SOURCE_PLAN, JP5_HOST, build_options())
    assert {"--enable-gpu", "--target-platform=jetpack", "--min-compute-capability=6.0"} <= set(argv)
    assert "--backend=python:r23.06" in argv


def test_build_argv_jetson_jp6_targets_igpu() -> None:
    assert "--target-platform=igpu" in source_build_argv(JP6_SOURCE_PLAN, JP6_HOST, build_options())


def test_build_argv_jetson_jp7_sbsa_targets_linux() -> None:
    argv = source_build_argv(JP7_SOURCE_PLAN, JP7_HOST, build_options())
    assert "--target-platform=linux" in argv
    assert "--min-compute-capability=7.5" in argv


@pytest.mark.parametrize("release", sorted(RELEASES))
@pytest.mark.parametrize("gpu_plan", [False, True], ids=["cpu", "gpu"])
def test_build_argv_of_every_release_uses_only_its_build_py_flags(release: str, gpu_plan: bool) -> None:
    plan = make_plan(
        DGPU_HOST if gpu_plan else base_host(), "24.10", "source", enable_gpu="auto" if gpu_plan else "false"
    )
    plan = dict(plan, release=release)
    argv = source_build_argv(plan, CPU_HOST, build_options(dryrun=True))
    defined = flags_of(release)
    assert {flag.split("=", 1)[0] for flag in argv[2:]} <= defined
    assert ("--dryrun" in argv) is ("--dryrun" in defined)


def test_build_argv_refuses_a_release_without_a_build_py_record() -> None:
    with pytest.raises(
        InstallError, match=r"no record of what build.py of release 22.12 accepts.*tools/build_py_flags"
    ):
        source_build_argv(dict(CPU_SOURCE_PLAN, release="22.12"), CPU_HOST, build_options())


def test_build_argv_dryrun_is_last() -> None:
    assert source_build_argv(CPU_SOURCE_PLAN, CPU_HOST, build_options(dryrun=True))[-1] == "--dryrun"


# ----------------------------------------------------------------------------- ELF RPATH


def make_elf(path: Path, needed: str = "libfoo.so", rpath: str = "$ORIGIN/../../../../nvidia_pytriton.libs") -> Path:
    """A minimal ELF64-LE shared object needing ``needed``, with an RPATH (tests/fakes/minimal_elf.py)."""
    return write_elf(path, [needed], rpath)


def test_elf_rpath_rewrite_in_place(tmp_path: Path) -> None:
    elf = make_elf(tmp_path / "stub")
    size = elf.stat().st_size
    assert elf_needed(elf) == ["libfoo.so"]
    assert elf_rpath(elf) == "$ORIGIN/../../../../nvidia_pytriton.libs"
    assert set_elf_rpath(elf, "$ORIGIN/../../lib") is True
    assert elf_rpath(elf) == "$ORIGIN/../../lib"
    assert elf_needed(elf) == ["libfoo.so"] and elf.stat().st_size == size
    assert set_elf_rpath(elf, "$ORIGIN/../../lib") is False


def test_elf_rpath_refuses_a_longer_path(tmp_path: Path) -> None:
    elf = make_elf(tmp_path / "stub", rpath="$ORIGIN")
    with pytest.raises(ValueError, match="longer than the old"):
        set_elf_rpath(elf, "$ORIGIN/../../lib")
    assert elf_rpath(elf) == "$ORIGIN"


def test_elf_needed_of_a_script_is_empty(tmp_path: Path) -> None:
    script = tmp_path / "tritonserver"
    script.write_text("#!/bin/sh\n")
    assert elf_needed(script) == []


# ----------------------------------------------------------------------------- wheel layout


def fake_site(root: Path, stub_minors: tuple[str, ...] = ("3.11",)) -> Path:
    """A site-packages shaped like the pytriton wheel, with synthetic ELF files."""
    server = root / "pytriton" / "tritonserver"
    for sub in ("bin", "backends/python", "caches/local", "nvidia_pytriton.libs"):
        (server / sub if sub != "nvidia_pytriton.libs" else root / sub).mkdir(parents=True)
    make_elf(server / "bin" / "tritonserver", needed="libcudart-09529672.so.12.6.77",
             rpath="${ORIGIN}/../lib:$ORIGIN/../../../nvidia_pytriton.libs").chmod(0o755)  # fmt: skip
    make_elf(server / "backends" / "python" / "libtriton_python.so")
    make_elf(server / "caches" / "local" / "libtritoncache_local.so")
    (server / "backends" / "python" / "__pycache__").mkdir()
    for minor in stub_minors:
        (server / "python_backend_stubs" / minor).mkdir(parents=True)
        make_elf(server / "python_backend_stubs" / minor / "triton_python_backend_stub").chmod(0o755)
    for lib in ("libtritonserver-717102f0.so", "libcudart-09529672.so.12.6.77"):
        make_elf(root / "nvidia_pytriton.libs" / lib, rpath="$ORIGIN")
    dist = root / "nvidia_pytriton-0.7.0.dist-info"
    dist.mkdir()
    (dist / "RECORD").write_text("pytriton/tritonserver/bin/tritonserver,sha256=x,1\n")
    return root


def test_wheel_layout_copies_stub_and_points_rpaths_at_lib(tmp_path: Path) -> None:
    dest = tmp_path / "release"
    files = stage_wheel_layout(fake_site(tmp_path / "site"), dest, "3.11")
    assert "backends/python/triton_python_backend_stub" in files
    assert "lib/libtritonserver-717102f0.so" in files and "bin/tritonserver" in files
    assert not (dest / "backends" / "python" / "__pycache__").exists()
    assert elf_rpath(dest / "bin" / "tritonserver") == "$ORIGIN/../lib"
    assert elf_rpath(dest / "backends" / "python" / "triton_python_backend_stub") == "$ORIGIN/../../lib"
    assert elf_rpath(dest / "caches" / "local" / "libtritoncache_local.so") == "$ORIGIN/../../lib"
    assert elf_rpath(dest / "lib" / "libtritonserver-717102f0.so") == "$ORIGIN"
    info = inspect_release(dest)
    assert info["gpu_build"] is True and info["backends"] == ["python"]


def test_wheel_layout_without_a_stub_for_the_python_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match=r"stubs in the wheel: 3\.12; the runtime Python is 3\.11"):
        stage_wheel_layout(fake_site(tmp_path / "site", ("3.12",)), tmp_path / "release", "3.11")


# ----------------------------------------------------------------------------- tarballs


def fake_tree(root: Path, version: str | None = "2.51.0", cudart: bool = False) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "backends" / "python").mkdir(parents=True)
    server = root / "bin" / "tritonserver"
    server.write_text("#!/bin/sh\nexit 0\n")
    server.chmod(0o755)
    (root / "lib" / "libtritonserver.so").write_text("lib")
    if cudart:
        (root / "lib" / "libcudart.so.12").write_text("cuda")
    if version:
        (root / "TRITON_VERSION").write_text(version + "\n")
    return root


def make_tarball(path: Path, tree: Path, top: str | None) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for entry in sorted(tree.iterdir()):
            tar.add(entry, arcname=f"{top}/{entry.name}" if top else entry.name)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("top", ["tritonserver", None], ids=["top-level-dir", "flat"])
def test_tarball_layouts_unpack_to_the_same_tree(tmp_path: Path, top: str | None) -> None:
    archive = tmp_path / "t.tgz"
    sha = make_tarball(archive, fake_tree(tmp_path / "tree"), top)
    assert verify_archive(archive, sha.upper(), "t.tgz") == sha
    dest = tmp_path / "release"
    files = stage_tarball_layout(archive, dest)
    assert files == ["TRITON_VERSION", "bin/tritonserver", "lib/libtritonserver.so"]
    assert (dest / "bin" / "tritonserver").is_file() and os.access(dest / "bin" / "tritonserver", os.X_OK)
    assert not (dest / ".unpack").exists() and not (dest / "tritonserver").exists()


def test_tarball_checksum_mismatch_and_missing_file(tmp_path: Path) -> None:
    archive = tmp_path / "t.tgz"
    make_tarball(archive, fake_tree(tmp_path / "tree"), "tritonserver")
    with pytest.raises(ChecksumError, match=r"expects 0{64}.*installed release is unchanged"):
        verify_archive(archive, "0" * 64, "https://example.invalid/t.tgz")
    with pytest.raises(InstallError, match="does not exist"):
        verify_archive(tmp_path / "missing.tgz", "0" * 64, "missing.tgz")


def test_tarball_member_outside_the_tree_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../../evil")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(InstallError, match="outside"):
        stage_tarball_layout(archive, tmp_path / "release")
    assert not (tmp_path / "evil").exists()


def test_check_mode_judges_a_tarball_before_anything_is_made(tmp_path: Path) -> None:
    # The role runs this before it makes the release's python runtime: a bad archive is refused
    # with nothing created under the prefix.
    prefix, archive = tmp_path / "prefix", tmp_path / "t.tgz"
    sha = make_tarball(archive, fake_tree(tmp_path / "tree"), "tritonserver")
    tarball = {"method": "tarball", "archive": str(archive), "source": str(archive)}
    with pytest.raises(ChecksumError, match=r"expects 0{64}"):
        install_release(request(prefix, archive, **tarball, sha256="0" * 64), check_mode=True)
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("tritonserver/../../evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    evil_sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    with pytest.raises(
        InstallError, match=r"'tritonserver/../../evil' of .*evil.tgz would be written outside.*nothing"
    ):
        install_release(request(prefix, evil, **{**tarball, "archive": str(evil)}, sha256=evil_sha), check_mode=True)
    assert not prefix.exists() and not (tmp_path / "evil").exists()
    missing = {**tarball, "archive": str(tmp_path / "absent.tgz"), "source": str(tmp_path / "absent.tgz")}
    with pytest.raises(InstallError, match=r"absent\.tgz does not exist"):
        install_release(request(prefix, archive, **missing, sha256=sha), check_mode=True)
    assert not prefix.exists() and not (tmp_path / "evil").exists()
    dry = install_release(request(prefix, archive, **tarball, sha256=sha), check_mode=True)
    assert dry["changed"] and not prefix.exists()
    # A download check mode did not fetch is judged by the real run.
    later = {**tarball, "archive": str(tmp_path / "cache.tgz"), "source": "https://example.invalid/t.tgz"}
    assert install_release(request(prefix, archive, **later, sha256=sha), check_mode=True)["changed"]


def test_find_install_root_reports_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README").write_text("x")
    with pytest.raises(InstallError, match=r"top level: README, docs"):
        find_install_root(tmp_path)


# ----------------------------------------------------------------------------- releases


def request(prefix: Path, src: Path, **more: object) -> dict:
    return {"prefix": str(prefix), "method": "source", "plan": CPU_SOURCE_PLAN, "source": "repo@abc",
            "src": str(src), "python_bin_dir": None, "keep_releases": 3, **more}  # fmt: skip


def test_install_release_is_atomic_idempotent_and_check_mode_safe(tmp_path: Path) -> None:
    prefix, src = tmp_path / "prefix", fake_tree(tmp_path / "build")
    dry = install_release(request(prefix, src), check_mode=True)
    assert dry["changed"] and not prefix.exists()
    first = install_release(request(prefix, src), check_mode=False)
    assert first["changed"] and os.readlink(prefix / "current") == "releases/2.51.0"
    manifest = json.loads((prefix / "releases" / "2.51.0" / "manifest.json").read_text())
    assert manifest == first["manifest"]
    assert (manifest["method"], manifest["source"], manifest["gpu_build"]) == ("source", "repo@abc", False)
    second = install_release(request(prefix, src), check_mode=False)
    assert (second["changed"], second["actions"]) == (False, [])
    assert install_release(request(prefix, src), check_mode=True)["changed"] is False


def test_install_release_reinstalls_a_tampered_release(tmp_path: Path) -> None:
    prefix, src = tmp_path / "prefix", fake_tree(tmp_path / "build")
    install_release(request(prefix, src), check_mode=False)
    (prefix / "current" / "bin" / "tritonserver").write_text("#!/bin/sh\nexit 3\n")
    again = install_release(request(prefix, src), check_mode=False)
    assert again["changed"]
    assert (prefix / "current" / "bin" / "tritonserver").read_text() == "#!/bin/sh\nexit 0\n"


def test_failed_install_leaves_the_previous_release_and_no_staging(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_release(request(prefix, fake_tree(tmp_path / "good")), check_mode=False)
    before = (os.readlink(prefix / "current"), (prefix / "releases" / "2.51.0" / "manifest.json").read_text())
    bad = fake_tree(tmp_path / "bad", version="2.50.0")
    with pytest.raises(InstallError, match=r"is tritonserver 2\.50\.0"):
        install_release(request(prefix, bad, source="repo@def"), check_mode=False)
    after = (os.readlink(prefix / "current"), (prefix / "releases" / "2.51.0" / "manifest.json").read_text())
    assert after == before
    assert sorted(p.name for p in (prefix / "releases").iterdir()) == ["2.51.0"]


def test_leftovers_are_removed_and_old_releases_pruned(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    releases = prefix / "releases"
    for n, version in enumerate(("2.47.0", "2.48.0", "2.49.0")):
        old = fake_tree(releases / version, version=version)
        (old / "manifest.json").write_text("{}")
        os.utime(old, (1000 + n, 1000 + n))  # a release's age is its directory's mtime
    (releases / ".staging-2.51.0-0bad").mkdir()
    (releases / "2.50.0").mkdir()  # no manifest: half installed
    result = install_release(request(prefix, fake_tree(tmp_path / "build"), keep_releases=2), check_mode=False)
    assert sorted(p.name for p in releases.iterdir()) == ["2.49.0", "2.51.0"]
    assert any("remove incomplete" in a for a in result["actions"])
    assert any(a.startswith("prune old release") for a in result["actions"])


def test_source_build_needed_follows_the_installed_manifest(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    assert source_build_needed(prefix, CPU_SOURCE_PLAN, "repo@abc") is True
    install_release(request(prefix, fake_tree(tmp_path / "build")), check_mode=False)
    assert source_build_needed(prefix, CPU_SOURCE_PLAN, "repo@abc") is False
    assert source_build_needed(prefix, CPU_SOURCE_PLAN, "repo@def") is True


def test_build_request_refuses_an_incomplete_plan() -> None:
    with pytest.raises(InstallError, match=r"lacks server_version.*Run the preflight"):
        build_request({"plan": {"release": "24.10", "platform": "cpu"}, "method": "wheel"})


def test_build_request_refuses_a_plan_with_an_incomplete_runtime_section() -> None:
    plan = {**DGPU_CPU_PLAN, "runtime": {"env": {}}}
    with pytest.raises(InstallError, match=r"no complete runtime section \(missing gpu_build.*triton_install_plan"):
        build_request({"plan": plan, "method": "wheel"})


def test_an_installed_release_is_rechecked_against_a_new_gpu_policy(tmp_path: Path) -> None:
    prefix, src = tmp_path / "prefix", fake_tree(tmp_path / "build")
    install_release(request(prefix, src), check_mode=False)
    with pytest.raises(InstallError, match="is a CPU-only build"):
        install_release(request(prefix, src, plan=DGPU_SOURCE_PLAN), check_mode=False)
    assert os.readlink(prefix / "current") == "releases/2.51.0"


# ----------------------------------------------------------------------------- the library applications embed


def test_wheel_release_gets_the_stable_library_name(tmp_path: Path) -> None:
    dest = tmp_path / "release"
    stage_wheel_layout(fake_site(tmp_path / "site"), dest, "3.11")
    assert link_stable_library(dest) == "lib/libtritonserver.so"
    assert os.readlink(dest / "lib" / "libtritonserver.so") == "libtritonserver-717102f0.so"
    assert (inspect_release(dest)["library"], inspect_release(dest)["include"]) == ("lib/libtritonserver.so", None)


def test_release_that_ships_the_stable_name_and_header_keeps_them(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "build")
    (tree / "include" / "triton" / "core").mkdir(parents=True)
    (tree / "include" / "triton" / "core" / "tritonserver.h").write_text("/* the release's header */\n")
    prefix = tmp_path / "prefix"
    manifest = install_release(request(prefix, tree), check_mode=False)["manifest"]
    assert (manifest["library"], manifest["include"]) == ("lib/libtritonserver.so", "include")
    assert not (prefix / "current" / "lib" / "libtritonserver.so").is_symlink()


def test_release_without_libtritonserver_records_none(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "build")
    (tree / "lib" / "libtritonserver.so").unlink()
    assert link_stable_library(tree) is None
    manifest = install_release(request(tmp_path / "prefix", tree), check_mode=False)["manifest"]
    assert manifest["library"] is None


def test_release_laid_out_by_an_older_layout_is_laid_out_again(tmp_path: Path) -> None:
    prefix, src = tmp_path / "prefix", fake_tree(tmp_path / "build")
    install_release(request(prefix, src), check_mode=False)
    manifest_path = prefix / "releases" / "2.51.0" / "manifest.json"
    old = json.loads(manifest_path.read_text())
    del old["layout_version"]
    manifest_path.write_text(json.dumps(old))
    again = install_release(request(prefix, src), check_mode=False)
    assert again["changed"] and again["manifest"]["layout_version"] == LAYOUT_VERSION
