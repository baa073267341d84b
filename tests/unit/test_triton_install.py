# SPDX-License-Identifier: Apache-2.0
"""Pure logic of module_utils/triton_install.py: command lines, run specs, layout, releases."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile
from pathlib import Path

import pytest
from ansible.module_utils.triton_install import (
    LAYOUT_VERSION,
    ChecksumError,
    InstallError,
    build_request,
    check_release,
    container_run_argv,
    container_run_spec,
    detect_server_version,
    effective_enable_gpu,
    elf_needed,
    elf_rpath,
    find_install_root,
    inspect_release,
    install_release,
    link_stable_library,
    set_elf_rpath,
    source_build_argv,
    source_build_needed,
    stage_tarball_layout,
    stage_wheel_layout,
    verify_archive,
)

# ----------------------------------------------------------------------------- plans and hosts

CPU_PLAN = {"release": "24.10", "server_version": "2.51.0", "enable_gpu": False, "hide_gpus": False,
            "platform": "cpu", "arch": "x86_64", "gpu_ids": [], "min_compute_capability": "6.0",
            "min_supported_compute_capability": None}  # fmt: skip
DGPU_PLAN = dict(CPU_PLAN, enable_gpu=True, platform="dgpu", gpu_ids=[0, 1],
                 container_image="nvcr.io/nvidia/tritonserver:24.10-py3")  # fmt: skip
DGPU_CPU_PLAN = dict(CPU_PLAN, platform="dgpu", hide_gpus=True)
JP5_PLAN = dict(CPU_PLAN, release="23.06", server_version="2.35.0", enable_gpu=True, platform="jetson",
                arch="aarch64", gpu_ids=[0], min_supported_compute_capability="7.2")  # fmt: skip
JP6_PLAN = dict(CPU_PLAN, enable_gpu=True, platform="jetson", arch="aarch64", gpu_ids=[0],
                container_image="nvcr.io/nvidia/tritonserver:24.10-py3-igpu")  # fmt: skip
JP7_PLAN = dict(CPU_PLAN, release="26.02", server_version="2.66.0", enable_gpu=True, platform="jetson",
                arch="aarch64", gpu_ids=[0], min_compute_capability="7.5")  # fmt: skip

DOCKER = {"name": "docker", "path": "/usr/bin/docker"}
PODMAN = {"name": "podman", "path": "/usr/bin/podman"}
RUNTIME = {"present": True, "paths": ["/usr/bin/nvidia-container-runtime"]}
NO_RUNTIME = {"present": False, "paths": []}
CPU_HOST = {"container_engines": [DOCKER], "nvidia_container_runtime": NO_RUNTIME, "jetpack_version": None}
DGPU_HOST = {"container_engines": [DOCKER, PODMAN], "nvidia_container_runtime": RUNTIME, "jetpack_version": None}
JP5_HOST = dict(DGPU_HOST, container_engines=[DOCKER], jetpack_version="5.1.2")
JP6_HOST = dict(JP5_HOST, jetpack_version="6.2")
JP7_HOST = dict(JP5_HOST, jetpack_version="7.0")
OPTIONS = {"models_root": "/srv/tritonfleet/models", "model_repository": "/srv/tritonfleet/models/current",
           "ports": [{"name": "http", "address": "127.0.0.1", "port": 8000, "container_port": 8000}]}  # fmt: skip


# ----------------------------------------------------------------------------- enable_gpu and checks


@pytest.mark.parametrize(
    ("setting", "plan", "expected"),
    [("auto", CPU_PLAN, False), ("auto", DGPU_PLAN, True), ("true", CPU_PLAN, True), (False, DGPU_PLAN, False),
     ("False", DGPU_PLAN, False), (True, CPU_PLAN, True)],
    ids=["auto-cpu", "auto-gpu", "true", "bool-false", "string-False", "bool-true"],
)  # fmt: skip
def test_effective_enable_gpu(setting: object, plan: dict, expected: bool) -> None:
    assert effective_enable_gpu(setting, plan) is expected


def test_effective_enable_gpu_refuses_other_values() -> None:
    with pytest.raises(InstallError, match=r"'maybe'.*auto, true, false"):
        effective_enable_gpu("maybe", CPU_PLAN)


GPU_INFO = {"tritonserver": True, "gpu_build": True, "cudart": ["libcudart.so.12"], "backends": ["python"]}
CPU_INFO = dict(GPU_INFO, gpu_build=False, cudart=[])


@pytest.mark.parametrize(
    ("info", "plan", "enable_gpu"),
    [(GPU_INFO, CPU_PLAN, False), (GPU_INFO, DGPU_CPU_PLAN, False), (GPU_INFO, DGPU_PLAN, True),
     (CPU_INFO, CPU_PLAN, False), (CPU_INFO, DGPU_CPU_PLAN, False)],
    ids=["gpu-build-on-cpu-host", "gpu-build-gpus-hidden", "gpu-build-gpu-plan", "cpu-build-cpu", "cpu-build-hidden"],
)  # fmt: skip
def test_check_release_accepts(info: dict, plan: dict, enable_gpu: bool) -> None:
    check_release(info, plan["server_version"], plan, enable_gpu, "/staging")


@pytest.mark.parametrize(
    ("info", "plan", "enable_gpu", "version", "message"),
    [
        (CPU_INFO, DGPU_PLAN, True, "2.51.0", "is a CPU-only build"),
        (GPU_INFO, dict(DGPU_PLAN, enable_gpu=False), False, "2.51.0", "does not hide the host's GPUs"),
        (GPU_INFO, CPU_PLAN, False, "2.50.0", "is tritonserver 2.50.0"),
        (GPU_INFO, CPU_PLAN, False, None, "Cannot tell which Triton version"),
        (dict(GPU_INFO, tritonserver=False), CPU_PLAN, False, "2.51.0", "no executable bin/tritonserver"),
    ],
    ids=["true-with-cpu-build", "false-gpu-build-visible-gpus", "wrong-version", "unknown-version", "no-binary"],
)
def test_check_release_refuses(info: dict, plan: dict, enable_gpu: bool, version: str | None, message: str) -> None:
    with pytest.raises(InstallError, match=message) as caught:
        check_release(info, version, plan, enable_gpu, "/staging")
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
    argv = container_run_argv(spec)
    assert spec["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert not {"--gpus", "--runtime", "--device"} & set(argv)
    assert spec["env"] == {}
    assert argv[:8] == ["/usr/bin/docker", "run", "--rm", "--name", "tritonserver", "--user", "triton-server", "-v"]
    assert "/srv/tritonfleet/models:/srv/tritonfleet/models:ro" in argv
    assert "127.0.0.1:8000:8000" in argv
    assert argv[-3:] == ["tritonserver", "--model-repository=/srv/tritonfleet/models/current",
                         "--model-control-mode=explicit"]  # fmt: skip


def test_container_dgpu_docker_uses_gpus_with_the_plan_ids() -> None:
    argv = container_run_argv(container_run_spec(DGPU_PLAN, DGPU_HOST, OPTIONS))
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'
    assert "--runtime" not in argv and "CUDA_VISIBLE_DEVICES=" not in argv


def test_container_dgpu_podman_uses_cdi_devices() -> None:
    spec = container_run_spec(DGPU_PLAN, DGPU_HOST, dict(OPTIONS, engine="podman"))
    argv = container_run_argv(spec)
    assert argv[0] == "/usr/bin/podman"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--device"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert "--gpus" not in argv


def test_container_cpu_plan_on_gpu_host_hides_every_gpu() -> None:
    argv = container_run_argv(container_run_spec(DGPU_CPU_PLAN, DGPU_HOST, OPTIONS))
    assert not {"--gpus", "--runtime", "--device"} & set(argv)
    assert "CUDA_VISIBLE_DEVICES=" in argv and "NVIDIA_VISIBLE_DEVICES=void" in argv


def test_container_jetson_jp6_uses_the_igpu_image_and_nvidia_runtime() -> None:
    spec = container_run_spec(JP6_PLAN, JP6_HOST, OPTIONS)
    argv = container_run_argv(spec)
    assert spec["image"].endswith(":24.10-py3-igpu")
    assert argv[argv.index("--runtime") + 1] == "nvidia" and "--gpus" not in argv
    assert "NVIDIA_VISIBLE_DEVICES=all" in argv and "--allow-gpu-metrics=false" in argv


def test_container_jetson_jp6_image_derived_when_plan_has_none() -> None:
    plan = {k: v for k, v in JP6_PLAN.items() if k != "container_image"}
    assert container_run_spec(plan, JP6_HOST, OPTIONS)["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3-igpu"


def test_container_jetson_jp7_sbsa_uses_the_standard_image() -> None:
    spec = container_run_spec(JP7_PLAN, JP7_HOST, OPTIONS)
    assert spec["image"] == "nvcr.io/nvidia/tritonserver:26.02-py3"
    assert spec["gpu"]["runtime"] == "nvidia"


def test_container_jetson_refuses_docker_gpus_flag() -> None:
    with pytest.raises(InstallError, match="--gpus is refused there"):
        container_run_spec(JP6_PLAN, JP6_HOST, dict(OPTIONS, gpu_mode="gpus"))


def test_container_jetpack5_has_no_container() -> None:
    with pytest.raises(InstallError, match=r"no Triton container for JetPack 5\.1\.2.*tarball"):
        container_run_spec(JP5_PLAN, JP5_HOST, OPTIONS)


def test_container_without_engine_fails_clearly() -> None:
    with pytest.raises(InstallError, match=r"lists: none\)\. Supported engines: docker, podman\. Install"):
        container_run_spec(CPU_PLAN, dict(CPU_HOST, container_engines=[]), OPTIONS)


def test_container_gpu_plan_without_nvidia_runtime_fails_clearly() -> None:
    with pytest.raises(InstallError, match="no NVIDIA container runtime"):
        container_run_spec(DGPU_PLAN, dict(DGPU_HOST, nvidia_container_runtime=NO_RUNTIME), OPTIONS)


# ----------------------------------------------------------------------------- build.py argv


def build_options(**more: object) -> dict:
    return {"python": "/usr/bin/python3", "checkout": "/src/server", "build_dir": "/b", "backends": ["python"],
            "enable_gpu": False, "dryrun": False, **more}  # fmt: skip


def test_build_argv_cpu_has_no_gpu_flags() -> None:
    argv = source_build_argv(CPU_PLAN, CPU_HOST, build_options(backends=["onnxruntime", "python", "fil"]))
    assert argv[:4] == ["/usr/bin/python3", "/src/server/build.py", "--no-container-build", "--build-dir=/b"]
    assert not [a for a in argv if a.startswith(("--enable-gpu", "--target-platform", "--min-compute", "--dryrun"))]
    assert argv[-3:] == ["--backend=onnxruntime:r24.10", "--backend=python:r24.10", "--backend=fil:r24.10"]
    assert "--repo-tag=core:r24.10" in argv


def test_build_argv_cpu_refuses_gpu_only_backends() -> None:
    with pytest.raises(InstallError, match=r"tensorrt, which a CPU-only build cannot have.*identity, repeat"):
        source_build_argv(CPU_PLAN, CPU_HOST, build_options(backends=["python", "tensorrt"]))


def test_build_argv_dgpu_enables_gpu_and_metrics() -> None:
    argv = source_build_argv(DGPU_PLAN, DGPU_HOST, build_options(enable_gpu=True, backends=["tensorrt"]))
    assert {"--enable-gpu", "--enable-gpu-metrics", "--min-compute-capability=6.0"} <= set(argv)
    assert "--backend=tensorrt:r24.10" in argv and "--target-platform=igpu" not in argv


def test_build_argv_dgpu_with_cpu_plan_builds_cpu_only() -> None:
    argv = source_build_argv(DGPU_CPU_PLAN, DGPU_HOST, build_options(enable_gpu=False))
    assert not [a for a in argv if a.startswith("--enable-gpu")]


def test_build_argv_jetson_jp5_targets_igpu_with_the_board_capability() -> None:
    argv = source_build_argv(JP5_PLAN, JP5_HOST, build_options(enable_gpu=True))
    assert {"--enable-gpu", "--target-platform=igpu", "--min-compute-capability=7.2"} <= set(argv)
    assert "--enable-gpu-metrics" not in argv  # no DCGM on Jetson
    assert "--backend=python:r23.06" in argv


def test_build_argv_jetson_jp6_targets_igpu() -> None:
    assert "--target-platform=igpu" in source_build_argv(JP6_PLAN, JP6_HOST, build_options(enable_gpu=True))


def test_build_argv_jetson_jp7_sbsa_uses_the_default_target() -> None:
    argv = source_build_argv(JP7_PLAN, JP7_HOST, build_options(enable_gpu=True))
    assert not [a for a in argv if a.startswith("--target-platform")]
    assert "--min-compute-capability=7.5" in argv


def test_build_argv_dryrun_is_last() -> None:
    assert source_build_argv(CPU_PLAN, CPU_HOST, build_options(dryrun=True))[-1] == "--dryrun"


# ----------------------------------------------------------------------------- ELF RPATH


def make_elf(path: Path, needed: str = "libfoo.so", rpath: str = "$ORIGIN/../../../../nvidia_pytriton.libs") -> Path:
    """Write a minimal ELF64-LE shared object: one PT_LOAD, a PT_DYNAMIC with NEEDED, STRTAB, RPATH."""
    strtab = b"\x00" + needed.encode() + b"\x00" + rpath.encode() + b"\x00"
    dyn = struct.pack("<qQqQqQqQ", 1, 1, 5, 0x100, 15, 2 + len(needed), 0, 0)
    size = 0x200 + len(dyn)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 1, 4, 0, 0, 0, size, size, 0x1000)
    phdrs += struct.pack("<IIQQQQQQ", 2, 4, 0x200, 0x200, 0x200, len(dyn), len(dyn), 8)
    image = bytearray(size)
    image[: len(header)] = header
    image[64 : 64 + len(phdrs)] = phdrs
    image[0x100 : 0x100 + len(strtab)] = strtab
    image[0x200:] = dyn
    path.write_bytes(bytes(image))
    return path


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


def test_find_install_root_reports_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README").write_text("x")
    with pytest.raises(InstallError, match=r"top level: README, docs"):
        find_install_root(tmp_path)


# ----------------------------------------------------------------------------- releases


def request(prefix: Path, src: Path, **more: object) -> dict:
    return {"prefix": str(prefix), "method": "source", "plan": CPU_PLAN, "source": "repo@abc", "src": str(src),
            "python_bin_dir": None, "enable_gpu": False, "keep_releases": 3, **more}  # fmt: skip


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
        os.utime(old / "manifest.json", (1000 + n, 1000 + n))
    (releases / ".staging-2.51.0-0bad").mkdir()
    (releases / "2.50.0").mkdir()  # no manifest: half installed
    result = install_release(request(prefix, fake_tree(tmp_path / "build"), keep_releases=2), check_mode=False)
    assert sorted(p.name for p in releases.iterdir()) == ["2.49.0", "2.51.0"]
    assert any("remove incomplete" in a for a in result["actions"])
    assert any(a.startswith("prune old release") for a in result["actions"])


def test_source_build_needed_follows_the_installed_manifest(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    assert source_build_needed(prefix, CPU_PLAN, "repo@abc") is True
    install_release(request(prefix, fake_tree(tmp_path / "build")), check_mode=False)
    assert source_build_needed(prefix, CPU_PLAN, "repo@abc") is False
    assert source_build_needed(prefix, CPU_PLAN, "repo@def") is True


def test_container_release_holds_the_spec(tmp_path: Path) -> None:
    params = {"prefix": str(tmp_path / "p"), "method": "container", "plan": DGPU_CPU_PLAN, "source": "ngc",
              "enable_gpu": "auto", "keep_releases": 3, "host": DGPU_HOST, "container": OPTIONS}  # fmt: skip
    result = install_release(build_request(params), check_mode=False)
    spec = json.loads((tmp_path / "p" / "current" / "container.json").read_text())
    assert result["manifest"]["container_spec"] == "container.json" and result["manifest"]["gpu_build"] is True
    assert spec["env"]["CUDA_VISIBLE_DEVICES"] == ""
    assert spec["argv"] == container_run_argv(spec) and "CUDA_VISIBLE_DEVICES=" in spec["argv"]


def test_build_request_refuses_an_incomplete_plan() -> None:
    with pytest.raises(InstallError, match=r"lacks server_version.*Run the preflight"):
        build_request({"plan": {"release": "24.10", "platform": "cpu"}, "method": "wheel"})


def test_an_installed_release_is_rechecked_against_a_new_gpu_policy(tmp_path: Path) -> None:
    prefix, src = tmp_path / "prefix", fake_tree(tmp_path / "build")
    install_release(request(prefix, src), check_mode=False)
    with pytest.raises(InstallError, match="is a CPU-only build"):
        install_release(request(prefix, src, plan=DGPU_PLAN, enable_gpu=True), check_mode=False)
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
