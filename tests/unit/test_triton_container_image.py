"""Unit tests for triton_container_image and triton_container_spec: sources, image identity, engine command lines.

Engine outputs are as podman 4.3.1 printed them on the development machine and as docker
documents them; the command lines are the specification per engine (podman runs for real in
tests/integration/test_container_*.py, docker is specification-tested only).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ansible.module_utils import triton_container_image as tci
from ansible.module_utils.triton_container_spec import container_run_argv

PODMAN = {
    "name": "podman",
    "path": "/usr/bin/podman",
    "global_args": ["--runtime", "runc", "--cgroup-manager", "cgroupfs"],
    "run_args": ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"],
}
DOCKER = {
    "name": "docker",
    "path": "/usr/bin/docker",
    "global_args": [],
    "run_args": ["--ulimit", "nofile=1048576:1048576", "--ulimit", "nproc=1048576:1048576"],
}
IMAGE_ID = "5d7f1fcf3f3c1c9e26bd5e1d7b0fbe3b1fcb2a6c4f0e1b9c0d7a3f2e1d4c5b6a"
# The fields `podman image inspect` prints that the module reads (podman 4.3.1, an image in NGC's layout).
INSPECTED = {
    "Id": IMAGE_ID,
    "RepoTags": ["localhost/tritonfleet/tritonserver:24.10-py3"],
    "Config": {
        "User": "",
        "Env": [
            "PATH=/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TRITON_SERVER_VERSION=2.51.0",
            "NVIDIA_TRITON_SERVER_VERSION=24.10",
            "TRITON_SERVER_GPU_ENABLED=1",
            "TRITON_SERVER_USER=triton-server",
        ],
        "Labels": {"com.nvidia.tritonserver.version": "2.51.0", "io.buildah.version": "1.28.2"},
    },
}
PLAN = {"server_version": "2.51.0", "release": "24.10"}


def _spec(engine: dict, devices: list[str] | None = None, env: dict | None = None) -> dict:
    return {
        "engine": engine,
        "name": "tritonserver",
        "user": "triton-server",
        "stop_timeout": 40,
        "devices": devices or [],
        "env": env if env is not None else {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"},
        "mounts": [{"source": "/srv/tritonfleet/models", "target": "/srv/tritonfleet/models", "read_only": True}],
        "shm_size": "256m",
        "image_id": IMAGE_ID,
    }


def test_registry_source_defaults_to_the_plan_image():
    assert tci.image_source({"type": "registry"}, "nvcr.io/nvidia/tritonserver:24.10-py3") == {
        "type": "registry",
        "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
        "path": None,
        "sha256": None,
        "url": None,
    }
    mirror = tci.image_source({"type": "registry", "image": "registry.local/nvidia/tritonserver:24.10-py3"}, None)
    assert mirror["image"] == "registry.local/nvidia/tritonserver:24.10-py3"


def test_archive_source_needs_path_and_checksum():
    sha = "A" * 64
    source = tci.image_source({"type": "archive", "path": "/srv/images/t.tar", "sha256": sha}, "ignored")
    assert source == {"type": "archive", "image": None, "path": "/srv/images/t.tar", "sha256": "a" * 64, "url": None}
    with pytest.raises(tci.ContainerError, match=r"^The image archive source is incomplete: path='/x', sha256='abc'"):
        tci.image_source({"type": "archive", "path": "/x", "sha256": "abc"}, None)


@pytest.mark.parametrize(
    ("source", "plan_image", "start"),
    [
        ({"type": "registry"}, None, "The container image source names no image"),
        ({"type": "ftp"}, "x", "triton_install_container_source.type is 'ftp'. Supported: registry, archive."),
    ],
    ids=["no-image", "unknown-type"],
)
def test_bad_sources_are_refused_in_four_parts(source, plan_image, start):
    with pytest.raises(tci.ContainerError) as raised:
        tci.image_source(source, plan_image)
    assert str(raised.value).startswith(start)
    assert "Supported:" in str(raised.value)


def test_archive_checksum_is_checked_before_anything(tmp_path: Path):
    archive = tmp_path / "t.tar"
    archive.write_bytes(b"not an image")
    good = hashlib.sha256(b"not an image").hexdigest()
    tci.verify_image_archive({"path": str(archive), "sha256": good, "url": None})
    with pytest.raises(tci.ArchiveChecksumError) as raised:
        tci.verify_image_archive({"path": str(archive), "sha256": "0" * 64, "url": "https://files.example/t.tar"})
    message = str(raised.value)
    assert message.startswith(f"Checksum mismatch for the image archive {archive} (from https://files.example/t.tar)")
    assert f"sha256 is {good}" in message
    assert "the running server are unchanged" in message
    with pytest.raises(tci.ContainerError, match="The image archive is missing"):
        tci.verify_image_archive({"path": str(tmp_path / "absent.tar"), "sha256": good, "url": None})


def test_image_identity_reads_what_ngc_images_declare():
    assert tci.image_identity(INSPECTED) == {
        "id": IMAGE_ID,
        "server_version": "2.51.0",
        "release": "24.10",
        "gpu_build": True,
        "user": None,
        "tags": ["localhost/tritonfleet/tritonserver:24.10-py3"],
    }
    bare = tci.image_identity({"Id": "sha256:" + IMAGE_ID, "Config": {"Env": ["PATH=/bin"]}})
    assert bare["id"] == IMAGE_ID
    assert (bare["server_version"], bare["gpu_build"]) == (None, None)


def test_check_image_wants_the_plan_version():
    tci.check_image(tci.image_identity(INSPECTED), PLAN, "x")
    with pytest.raises(tci.ContainerError, match=r"is tritonserver 2.51.0 but the plan wants 2.50.0"):
        tci.check_image(tci.image_identity(INSPECTED), {"server_version": "2.50.0", "release": "24.09"}, "x")
    with pytest.raises(tci.ContainerError, match="does not say which Triton it is"):
        tci.check_image({"server_version": None}, PLAN, "x")


@pytest.mark.parametrize(
    ("output", "refs"),
    [
        ("Storing signatures\nLoaded image: localhost/tfexp-built:1\n", ["localhost/tfexp-built:1"]),
        ("Loaded image(s): localhost/a:1,localhost/b:2\n", ["localhost/a:1", "localhost/b:2"]),
        ("Loaded image: ubuntu:22.04\n", ["ubuntu:22.04"]),
        ("Loaded image ID: sha256:" + IMAGE_ID + "\n", ["sha256:" + IMAGE_ID]),
        ("Error: payload does not match any of the supported image formats\n", []),
    ],
    ids=["podman-4.3", "podman-several", "docker", "docker-untagged", "not-an-archive"],
)
def test_loaded_references(output, refs):
    assert tci.loaded_references(output) == refs


def test_podman_run_command_line():
    assert container_run_argv(_spec(PODMAN)) == [
        "/usr/bin/podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
        "run", "--rm", "--name", "tritonserver", "--replace", "--log-driver", "passthrough",
        "--user", "triton-server", "--network", "host", "--stop-timeout", "40",
        "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
        "--env", "CUDA_VISIBLE_DEVICES=", "--env", "NVIDIA_VISIBLE_DEVICES=void",
        "--volume", "/srv/tritonfleet/models:/srv/tritonfleet/models:ro",
        "--shm-size", "256m", IMAGE_ID,
    ]  # fmt: skip


def test_docker_run_command_line_with_gpus():
    argv = container_run_argv(_spec(DOCKER, ["--gpus", "all"], {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}))
    assert argv == [
        "/usr/bin/docker", "run", "--rm", "--name", "tritonserver",
        "--user", "triton-server", "--network", "host", "--stop-timeout", "40",
        "--ulimit", "nofile=1048576:1048576", "--ulimit", "nproc=1048576:1048576",
        "--gpus", "all", "--env", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
        "--volume", "/srv/tritonfleet/models:/srv/tritonfleet/models:ro",
        "--shm-size", "256m", IMAGE_ID,
    ]  # fmt: skip
    assert "--replace" not in argv  # docker has no --replace: the launcher removes a stale container
    assert tci.remove_argv(_spec(DOCKER)) == ["/usr/bin/docker", "rm", "--force", "tritonserver"]


def test_help_runs_the_images_server_in_a_throwaway_container():
    argv = tci.help_argv(_spec(PODMAN, ["--device", "nvidia.com/gpu=all"]), "/opt/tritonserver/bin/tritonserver")
    assert argv == [
        "/usr/bin/podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
        "run", "--rm", "--network", "none", "--user", "triton-server",
        "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
        IMAGE_ID, "/opt/tritonserver/bin/tritonserver", "--help",
    ]  # fmt: skip
    # Unnamed: the server's own container (--name tritonserver, --replace) is never touched.
    assert "--name" not in argv and "--replace" not in argv


def test_jetson_forms_come_from_the_plan_verbatim():
    docker = container_run_argv(_spec(DOCKER, ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all"], {}))
    assert docker[docker.index("--runtime") : docker.index("--runtime") + 4] == [
        "--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all",
    ]  # fmt: skip
    podman = container_run_argv(_spec(PODMAN, ["--device", "nvidia.com/gpu=all"], {}))
    assert podman[podman.index("--device") + 1] == "nvidia.com/gpu=all"
    assert "-p" not in podman and "--publish" not in podman


def test_check_mode_with_an_archive_still_to_download_names_the_download_and_runs_nothing(tmp_path: Path):
    source = {"type": "archive", "path": str(tmp_path / "t.tar"), "sha256": "0" * 64, "url": "https://x/t.tar",
              "image": None}  # fmt: skip

    def run(argv):
        raise AssertionError(f"no engine call expected, got {argv}")

    image, actions = tci.ensure_image(PODMAN, source, run, check_mode=True)
    assert image is None
    assert actions == [f"download https://x/t.tar to {tmp_path / 't.tar'}", f"podman load {tmp_path / 't.tar'}"]
    # Downloaded (or a path source): the checksum is held against it before anything else, also in check mode.
    (tmp_path / "t.tar").write_bytes(b"x")
    with pytest.raises(tci.ArchiveChecksumError):
        tci.ensure_image(PODMAN, source, run, check_mode=True)
