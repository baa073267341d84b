# SPDX-License-Identifier: Apache-2.0
"""module_utils/triton_release_lifecycle.py: the one lifecycle of server and model releases."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from ansible.module_utils.triton_install import install_release
from ansible.module_utils.triton_models_switch import promote_staging
from ansible.module_utils.triton_release_lifecycle import (
    ManifestError,
    complete_manifest,
    leftovers,
    linked_release,
    manifest_matches,
    manifest_tree_digest,
    point_link,
    promote,
    prune,
    read_manifest,
    release_dir,
    releases_to_prune,
    remove_leftovers,
    remove_link,
    staging_dir,
    tree_digest,
    tree_paths,
    write_manifest,
)
from ansible.module_utils.triton_release_tree import tree_release_id
from support.plans import base_host, make_plan


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


# --- content digest ----------------------------------------------------------------------------


def test_digest_is_the_model_release_format_so_existing_release_ids_stay(tmp_path):
    write(tmp_path / "m" / "config.pbtxt", 'backend: "python"\n')
    write(tmp_path / "m" / "1" / "model.py", "x = 1\n", 0o755)
    lines = []
    for rel, kind in (("m/1/model.py", "x"), ("m/config.pbtxt", "-")):
        lines.append(f"{rel}\0{kind}\0{hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest()}\n")
    assert tree_digest(tmp_path) == hashlib.sha256("".join(lines).encode()).hexdigest()
    assert tree_release_id(tmp_path) == tree_digest(tmp_path)[:16]


def test_digest_ignores_caches_hidden_top_level_entries_and_times(tmp_path):
    write(tmp_path / "bin" / "tritonserver", "#!/bin/sh\n", 0o755)
    first = tree_digest(tmp_path)
    write(tmp_path / "backends" / "python" / "__pycache__" / "x.pyc", "cache")
    write(tmp_path / "backends" / "python" / "y.pyc", "cache")
    write(tmp_path / ".manifest.json.tmp", "{}")
    os.utime(tmp_path / "bin" / "tritonserver", (1, 1))
    assert tree_digest(tmp_path) == first
    (tmp_path / "bin" / "tritonserver").chmod(0o644)
    assert tree_digest(tmp_path) != first


def test_server_digest_counts_links_by_target_and_leaves_the_manifest_out(tmp_path):
    write(tmp_path / "lib" / "libfoo.so.1", "lib")
    (tmp_path / "lib" / "libfoo.so").symlink_to("libfoo.so.1")
    first = manifest_tree_digest(tmp_path)
    assert [p.as_posix() for p in tree_paths(tmp_path, follow_links=False)] == ["lib/libfoo.so", "lib/libfoo.so.1"]
    write(tmp_path / "manifest.json", "{}")
    assert manifest_tree_digest(tmp_path) == first
    (tmp_path / "lib" / "libfoo.so").unlink()
    (tmp_path / "lib" / "libfoo.so").symlink_to("./libfoo.so.1")
    assert manifest_tree_digest(tmp_path) != first
    # Followed (a model repository copied to a host), the link is the file it points to.
    assert tree_digest(tmp_path, follow_links=True, exclude=("manifest.json",)) != first


# --- links -------------------------------------------------------------------------------------


def test_links_are_relative_and_replaced_atomically(tmp_path):
    release_dir(tmp_path, "a").mkdir(parents=True)
    release_dir(tmp_path, "b").mkdir(parents=True)
    assert linked_release(tmp_path) is None
    assert point_link(tmp_path, "current", "a") is True
    assert point_link(tmp_path, "current", "a") is False
    assert point_link(tmp_path, "current", "b") is True
    assert os.readlink(tmp_path / "current") == "releases/b"
    assert linked_release(tmp_path) == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "releases"]
    remove_link(tmp_path, "current")
    assert linked_release(tmp_path) is None


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_written_last_is_read_through_the_current_link(tmp_path):
    target = release_dir(tmp_path, "2.51.0")
    target.mkdir(parents=True)
    assert read_manifest(target) is None
    write_manifest(target, {"server_version": "2.51.0"})
    assert [p.name for p in target.iterdir()] == ["manifest.json"]
    point_link(tmp_path, "current", "2.51.0")
    assert read_manifest(tmp_path / "current") == {"server_version": "2.51.0"}
    assert read_manifest(tmp_path / "nothing") is None


@pytest.mark.parametrize(("content", "message"), [("{half", "is not valid JSON"), ("[1]", "holds a list")])
def test_an_unusable_manifest_names_the_file(tmp_path, content, message):
    write(tmp_path / "manifest.json", content)
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(tmp_path)
    assert str(tmp_path / "manifest.json") in str(err.value)
    assert complete_manifest(tmp_path) is None


def test_manifest_matches_its_identity_and_intact_files(tmp_path):
    write(tmp_path / "bin" / "tritonserver", "#!/bin/sh\n", 0o755)
    write_manifest(tmp_path, {"method": "source", "source": "r@1", "files_sha256": manifest_tree_digest(tmp_path)})
    assert manifest_matches(tmp_path, {"method": "source", "source": "r@1"})
    assert not manifest_matches(tmp_path, {"method": "source", "source": "r@2"})
    assert not manifest_matches(tmp_path, None)
    write(tmp_path / "bin" / "tritonserver", "#!/bin/sh\nexit 1\n", 0o755)
    assert not manifest_matches(tmp_path, {"method": "source", "source": "r@1"})


# --- staging, promotion, leftovers, pruning ----------------------------------------------------------


def test_promote_replaces_a_release_and_leaves_nothing_behind(tmp_path):
    write(release_dir(tmp_path, "v") / "old", "old")
    staging = staging_dir(tmp_path, "v")
    write(staging / "new", "new")
    promote(tmp_path, staging, "v")
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["v"]
    assert [p.name for p in release_dir(tmp_path, "v").iterdir()] == ["new"]


def test_leftovers_are_staging_retired_and_half_made_releases(tmp_path):
    releases = tmp_path / "releases"
    for name in (".staging-a", ".retired-b-1234", "done", "half"):
        (releases / name).mkdir(parents=True)
    write(releases / ".staging-c.tar", "")  # an upload the run that staged it did not unpack
    write(releases / "done" / "manifest.json", "{}")
    assert [p.name for p in leftovers(tmp_path)] == [".retired-b-1234", ".staging-a", ".staging-c.tar"]
    keep = [releases / ".staging-a"]
    found = leftovers(tmp_path, keep, complete=lambda d: complete_manifest(d) is not None)
    assert [p.name for p in found] == [".retired-b-1234", ".staging-c.tar", "half"]
    assert remove_leftovers(tmp_path, True, keep) == leftovers(tmp_path, keep)
    remove_leftovers(tmp_path, False, keep)
    assert sorted(p.name for p in releases.iterdir()) == [".staging-a", "done", "half"]


def test_prune_keeps_the_newest_and_every_protected_release(tmp_path):
    for age, name in enumerate(["r1", "r2", "r3", "r4"]):
        release_dir(tmp_path, name).mkdir(parents=True)
        os.utime(release_dir(tmp_path, name), (1000 + age, 1000 + age))
    assert releases_to_prune(tmp_path, 2, ()) == ["r1", "r2"]
    assert releases_to_prune(tmp_path, 2, {"r1"}) == ["r2"]
    assert releases_to_prune(tmp_path, 0, ()) == ["r1", "r2", "r3"]  # at least one stays
    assert prune(tmp_path, 2, {"r1"}, check_mode=True) == ["r2"]
    assert release_dir(tmp_path, "r2").is_dir()
    assert prune(tmp_path, 2, {"r1"}, check_mode=False) == ["r2"]
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["r1", "r3", "r4"]


# --- both kinds of release go through it -----------------------------------------------------------


def test_server_and_model_releases_share_the_layout(tmp_path):
    build = tmp_path / "build"
    write(build / "bin" / "tritonserver", "#!/bin/sh\n", 0o755)
    write(build / "TRITON_VERSION", "2.51.0\n")
    prefix = tmp_path / "opt"
    request = {"prefix": str(prefix), "method": "source", "plan": make_plan(base_host(), "24.10", "source"),
               "source": "r@1", "src": str(build), "python_bin_dir": None, "keep_releases": 2}  # fmt: skip
    install_release(request, check_mode=False)

    models = tmp_path / "models"
    staging = staging_dir(models, "x")
    write(staging / "m" / "config.pbtxt", 'backend: "python"\n')
    release_id = tree_release_id(staging)
    assert promote_staging(models, release_id, staging) is True
    point_link(models, "current", release_id)

    for root, release in ((prefix, "2.51.0"), (models, release_id)):
        assert os.readlink(root / "current") == f"releases/{release}"
        assert leftovers(root) == []
    manifest = json.loads((prefix / "current" / "manifest.json").read_text())
    assert manifest["files_sha256"] == manifest_tree_digest(release_dir(prefix, "2.51.0"))
    assert tree_release_id(release_dir(models, release_id)) == release_id
