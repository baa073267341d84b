# SPDX-License-Identifier: Apache-2.0
"""tools/podman_images.py: the podman settings every image build and the execution environment's
runner use come from the host facts' podman record, and image archives are read back as saved."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import build_ee  # noqa: E402  (tools/ is not a package)
import podman_images  # noqa: E402
from ansible.module_utils.triton_container_engine import podman_engine  # noqa: E402

HOST = {
    "live": True,
    "cgroup_layout": "hybrid",
    "unified_controllers": ["memory"],
    "pid1": "bash",
    "hard_limits": {"nofile": 524288, "nproc": None},
    "pid_max": 4194304,
    "sys_resource": False,
    "runtime_paths": {"crun": "/usr/bin/crun", "runc": "/usr/sbin/runc"},
}


def test_containers_conf_carries_the_engine_decision_verbatim() -> None:
    engine = podman_engine("/usr/bin/podman", "4.3.1", {"engine.cgroup_manager": "systemd"}, HOST)
    conf = tomllib.loads(podman_images.containers_conf(engine))
    # The same runtime and cgroup manager the global flags of podman() pass.
    assert engine["global_args"] == ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    assert conf["engine"] == {"runtime": engine["runtime"], "cgroup_manager": engine["cgroup_manager"]}
    assert conf["containers"]["default_ulimits"] == [
        f"{name}={limit}:{limit}" for name, limit in engine["ulimits"].items()
    ]
    assert conf["containers"]["default_ulimits"] == ["nofile=524288:524288", "nproc=1048576:1048576"]
    assert conf["containers"]["netns"] == "host"


def test_podman_refuses_a_host_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = podman_engine("/usr/bin/podman", "4.3.1", {}, {**HOST, "runtime_paths": {}})
    facts = {"container_engines": [engine]}
    monkeypatch.setattr(podman_images, "gather_host_facts", lambda *args, **kwargs: facts)
    podman_images.podman_engine.cache_clear()
    try:
        with pytest.raises(podman_images.ImageBuildError, match=r"no OCI runtime is installed.*Install podman, runc"):
            podman_images.podman()
    finally:
        podman_images.podman_engine.cache_clear()


def _docker_archive(path: Path, manifest: list[dict]) -> Path:
    with tarfile.open(path, "w") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_tags_reads_the_references_an_archive_was_saved_under(tmp_path: Path) -> None:
    saved = [{"Config": "abc.json", "RepoTags": ["localhost/tritonfleet-ee:latest"], "Layers": []}]
    assert podman_images.archive_tags(_docker_archive(tmp_path / "a.tar", saved)) == ["localhost/tritonfleet-ee:latest"]
    untagged = [{"Config": "abc.json", "RepoTags": None, "Layers": []}]
    assert podman_images.archive_tags(_docker_archive(tmp_path / "b.tar", untagged)) == []


def test_images_are_keyed_by_inputs_not_by_image_ids() -> None:
    # Known before anything is built, so a machine that lost podman's storage finds its archives.
    assert podman_images.base_inputs() == podman_images.digest("bookworm", "ca-certificates", "python3")
    assert build_ee.ee_base_inputs() == podman_images.digest(
        podman_images.base_inputs(), build_ee.ee_base_containerfile("{base}")
    )
    assert build_ee.ee_inputs("a") != build_ee.ee_inputs("b")


def test_the_ee_base_layer_adds_pip_venv_and_bindeps_dpkg_packages() -> None:
    containerfile = build_ee.ee_base_containerfile("localhost/tritonfleet-base:bookworm-x")
    assert containerfile.startswith("FROM localhost/tritonfleet-base:bookworm-x\n")
    assert "--no-install-recommends openssh-client python3-pip python3-venv " in containerfile
