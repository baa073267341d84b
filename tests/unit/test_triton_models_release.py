# SPDX-License-Identifier: Apache-2.0
"""Release building: content ids, ignored caches, repository checks, rendering refusals."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from ansible.module_utils.triton_model_repository import render_settings
from ansible.module_utils.triton_models_release import (
    ReleaseError,
    build_release,
    check_overrides,
    model_names,
)
from ansible.module_utils.triton_release_lifecycle import is_ignored
from ansible.module_utils.triton_release_tree import extract_archive, tree_files, tree_release_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "model_repository"
GPU_MODEL = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "repos" / "gpu_model" / "add_gpu"
CPU_PLAN = {"enable_gpu": False, "instance_kind": "KIND_CPU", "gpu_ids": [], "platform": "cpu", "arch": "x86_64"}
CPU_HOST = {"platform": "cpu", "arch": "x86_64", "gpus": []}


@pytest.fixture
def repo(tmp_path):
    dest = tmp_path / "repo"
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _render(policy="auto", overrides=None, counts=None):
    return render_settings(CPU_PLAN, CPU_HOST, policy, True, overrides or {}, counts or {})


@pytest.mark.parametrize(
    ("relative", "ignored"),
    [
        ("add_sub/1/model.py", False),
        ("add_sub/1/__pycache__/model.cpython-311.pyc", True),
        ("add_sub/1/stale.pyc", True),
        ("__pycache__/x.py", True),
        ("add_sub/config.pbtxt", False),
        ("add_sub/1/model.pyo", True),
    ],
    ids=["source", "pycache", "pyc", "top-pycache", "config", "pyo"],
)
def test_is_ignored(relative, ignored):
    assert is_ignored(Path(relative)) is ignored


def test_tree_files_skip_server_caches_and_hidden_top_level(repo):
    (repo / "add_sub" / "1" / "__pycache__").mkdir()
    (repo / "add_sub" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\x00")
    (repo / ".staging-x").mkdir()
    (repo / ".staging-x" / "junk").write_text("x")
    assert [p.as_posix() for p in tree_files(repo)] == [
        "add_sub/1/model.py",
        "add_sub/config.pbtxt",
        "scale/1/model.py",
        "scale/config.pbtxt",
    ]


def test_digest_ignores_caches_and_times_but_not_bytes_or_exec_bit(repo):
    first = tree_release_id(repo)
    (repo / "scale" / "1" / "__pycache__").mkdir()
    (repo / "scale" / "1" / "__pycache__" / "model.pyc").write_bytes(b"cache")
    os.utime(repo / "scale" / "config.pbtxt", (1, 1))
    assert tree_release_id(repo) == first
    (repo / "scale" / "1" / "model.py").chmod(0o755)
    assert tree_release_id(repo) != first
    (repo / "scale" / "1" / "model.py").chmod(0o644)
    (repo / "scale" / "1" / "model.py").write_text("# changed\n")
    assert tree_release_id(repo) != first


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "holds no model"),
        ({"add_sub/1/model.py": "x"}, "model add_sub has no config.pbtxt"),
        ({"README.md": "x", "m/config.pbtxt": "name: 'm'"}, "has files at its top level: README.md"),
    ],
    ids=["empty", "no-config", "stray-file"],
)
def test_model_names_refuses_bad_repositories(tmp_path, layout, message):
    tmp_path.joinpath("repo").mkdir()
    for relative, text in layout.items():
        path = tmp_path / "repo" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(ReleaseError, match=message):
        model_names(tmp_path / "repo")


def test_missing_repository_is_refused(tmp_path):
    with pytest.raises(ReleaseError, match="is not a directory: found nothing"):
        tree_files(tmp_path / "absent")


def test_build_writes_a_release_named_by_its_content(repo, tmp_path):
    build = build_release(repo, tmp_path / "build", _render())
    assert build.created and build.path == tmp_path / "build" / build.release_id
    assert tree_release_id(build.path) == build.release_id
    assert build.models == ["add_sub", "scale"]
    groups = json.loads((build.path / "instance_groups.json").read_text())
    assert groups == build.instance_groups
    assert groups["add_sub"] == [{"name": "add_sub_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]
    assert (build.path / "add_sub" / "config.pbtxt").read_text() == build.configs["add_sub"]
    assert oct((build.path / "add_sub" / "1" / "model.py").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == [build.release_id, f"{build.release_id}.tar"]
    assert build.archive == tmp_path / "build" / f"{build.release_id}.tar"

    again = build_release(repo, tmp_path / "build", _render())
    assert (again.release_id, again.created) == (build.release_id, False)


def test_check_mode_build_gives_the_same_id_and_writes_nothing(repo, tmp_path):
    dry = build_release(repo, tmp_path / "dry", _render(), write=False)
    real = build_release(repo, tmp_path / "real", _render())
    assert dry.release_id == real.release_id
    assert not (tmp_path / "dry").exists()


def test_rendered_configs_are_part_of_the_id(repo, tmp_path):
    one = build_release(repo, tmp_path / "build", _render())
    two = build_release(repo, tmp_path / "build", _render(counts={"add_sub": 2}))
    assert one.release_id != two.release_id
    assert two.instance_groups["add_sub"][0]["count"] == 2


def test_gpu_model_under_keep_is_refused_with_tritons_words_and_every_model_is_checked(repo, tmp_path):
    shutil.copytree(GPU_MODEL, repo / "add_gpu")
    shutil.copytree(GPU_MODEL, repo / "add_gpu2")
    (repo / "add_gpu2" / "config.pbtxt").write_text(
        (GPU_MODEL / "config.pbtxt").read_text().replace('name: "add_gpu"', 'name: "add_gpu2"')
    )
    with pytest.raises(ReleaseError) as caught:
        build_release(repo, tmp_path / "build", _render("keep"))
    message = str(caught.value)
    assert "instance group add_gpu_0 of model add_gpu has kind KIND_GPU but no GPUs are available" in message
    assert "instance group add_gpu2_0 of model add_gpu2 has kind KIND_GPU" in message
    assert "Fix:" in message
    assert {p["model"] for p in caught.value.problems} == {"add_gpu", "add_gpu2"}
    assert not (tmp_path / "build").exists()


def test_gpu_model_under_auto_renders_kind_cpu(repo, tmp_path):
    shutil.copytree(GPU_MODEL, repo / "add_gpu")
    build = build_release(repo, tmp_path / "build", _render("auto", overrides={"add_sub": "keep"}))
    assert build.instance_groups["add_gpu"] == [{"name": "add_gpu_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]
    assert "KIND_GPU" not in build.configs["add_gpu"]
    assert build.configs["add_sub"] == (repo / "add_sub" / "config.pbtxt").read_text()


@pytest.mark.parametrize(
    ("policies", "counts", "message"),
    [
        ({"nope": "auto"}, {}, "triton_models_instance_policy_overrides names models that are not in the repository"),
        ({}, {"nope": 2}, "triton_models_instance_count names models that are not in the repository: nope"),
        ({"add_sub": "sometimes"}, {}, "unknown policies"),
        ({}, {"add_sub": 0}, r"triton_models_instance_count\[add_sub\] is 0"),
        ({}, {"add_sub": "two"}, "is 'two'"),
        ({}, {"add_sub": True}, "is True"),
    ],
    ids=["unknown-policy-model", "unknown-count-model", "bad-policy", "zero", "word", "bool"],
)
def test_check_overrides_refuses_typos(repo, policies, counts, message):
    with pytest.raises(ReleaseError, match=message):
        check_overrides(repo, policies, counts)


def test_check_overrides_accepts_numeric_strings(repo):
    assert check_overrides(repo, {"scale": "keep"}, {"add_sub": "3", "scale": 2}) == {"add_sub": 3, "scale": 2}


def test_the_archive_unpacks_to_the_same_release(repo, tmp_path):
    build = build_release(repo, tmp_path / "build", _render())
    unpacked = tmp_path / "host" / "staging"
    (tmp_path / "host").mkdir()
    extract_archive(build.archive, unpacked)
    assert tree_release_id(unpacked) == build.release_id
    assert oct((unpacked / "add_sub" / "1" / "model.py").stat().st_mode & 0o777) == "0o644"
    assert oct((unpacked / "add_sub").stat().st_mode & 0o777) == "0o755"
    with tarfile.open(build.archive) as tar:
        assert all(m.uid == 0 and m.uname == "" and m.isfile() for m in tar.getmembers())


@pytest.mark.parametrize("bad", ["../escape", "/etc/passwd", "link"])
def test_an_archive_with_anything_but_inward_plain_files_is_refused(tmp_path, bad):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(bad)
        if bad == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            data = b"x"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ReleaseError, match="not a plain file inside the release"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_link_leaving_the_repository_is_refused_before_anything_is_built(repo, tmp_path):
    secret = tmp_path / "outside" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0\n")
    os.symlink(secret, repo / "add_sub" / "1" / "passwd")
    with pytest.raises(ReleaseError) as caught:
        build_release(repo, tmp_path / "build", _render())
    message = str(caught.value)
    assert "add_sub/1/passwd links outside the model repository" in message
    assert f"resolves to {secret}" in message and "Fix: copy what add_sub/1/passwd needs" in message
    assert [p["code"] for p in caught.value.problems] == ["link_escapes"]
    assert not (tmp_path / "build").exists()


def test_a_link_inside_the_repository_is_released_as_a_plain_copy(repo, tmp_path):
    (repo / "add_sub" / "common.py").write_text("SHARED = 1\n")
    os.symlink("../common.py", repo / "add_sub" / "1" / "helper.py")
    build = build_release(repo, tmp_path / "build", _render())
    copied = build.path / "add_sub" / "1" / "helper.py"
    assert copied.is_file() and not copied.is_symlink()
    assert copied.read_text() == "SHARED = 1\n"
    with tarfile.open(build.archive) as tar:
        assert tar.getmember("add_sub/1/helper.py").isfile()


def test_a_backend_the_release_lacks_is_refused_with_tritons_words(repo, tmp_path):
    detector = Path(__file__).resolve().parents[2] / "examples" / "detector_repository" / "peoplenet"
    shutil.copytree(detector, repo / "peoplenet", ignore=shutil.ignore_patterns("README*"))
    (repo / "peoplenet" / "1").mkdir()
    (repo / "peoplenet" / "1" / "model.onnx").write_bytes(b"onnx")
    render = render_settings(CPU_PLAN, CPU_HOST, "auto", True, release_backends=["python"])
    with pytest.raises(ReleaseError) as caught:
        build_release(repo, tmp_path / "build", render)
    assert [p["code"] for p in caught.value.problems] == ["backend_not_found"]
    assert (
        "unable to find backend library for backend 'onnxruntime', try specifying runtime on the model "
        "configuration." in str(caught.value)
    )
    assert "the release's backends are python" in str(caught.value)
    # The same repository with the backends unknown (a release not installed yet) is built.
    assert build_release(repo, tmp_path / "build", _render()).models == ["add_sub", "peoplenet", "scale"]


LIBRARY = Path(__file__).resolve().parents[2] / "library"


def test_validate_only_checks_what_holds_for_every_host_and_builds_nothing(repo, tmp_path):
    from ansible.module_utils.triton_module_run import run_in_process

    # A KIND_GPU model under keep depends on the host: the fleet-wide check leaves it to each host.
    shutil.copytree(GPU_MODEL, repo / "add_gpu")
    args = {"src": str(repo), "validate_only": True, "plan": {}, "host": {}, "policy": "keep"}
    result = run_in_process(LIBRARY, "triton_models_release", args, check_mode=False)
    assert result.get("failed") is not True, result
    assert (result["changed"], result["models"]) == (False, ["add_gpu", "add_sub", "scale"])
    assert "release_id" not in result
    (repo / "scale" / "1" / "model.py").unlink()
    result = run_in_process(LIBRARY, "triton_models_release", args, check_mode=False)
    assert result["failed"] is True
    assert [p["code"] for p in result["problems"]] == ["model_file_missing"]
    assert "Python model file not found in 'scale/1/model.py'" in result["msg"]


def test_a_build_needs_its_build_dir(repo):
    from ansible.module_utils.triton_module_run import run_in_process

    result = run_in_process(LIBRARY, "triton_models_release", {"src": str(repo), "plan": {}, "host": {}}, False)
    assert result["failed"] is True and result["msg"].startswith("build_dir is missing")
