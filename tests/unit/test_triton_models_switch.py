# SPDX-License-Identifier: Apache-2.0
"""Release layout on the host: links, promotion, pruning, diffs, key headers, no-server switches.

Switches through a live server's repository API are tested against a real tritonserver in
tests/integration/test_models_switch.py; here the client talks to a closed loopback port, the
real "no server is running" case.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import triton_models_switch
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.triton_models_switch import (
    SwitchError,
    TritonHttp,
    activate,
    config_diffs,
    linked_release,
    point_link,
    promote_staging,
    read_api_key_headers,
    release_models,
    unpack_upload,
)
from ansible.module_utils.triton_release_lifecycle import leftovers, releases_to_prune
from ansible.module_utils.triton_release_tree import tree_release_id, write_archive

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "model_repository"
# Nothing listens here (the test port range's last port, never bound by these tests).
NO_SERVER = TritonHttp("http://127.0.0.1:48099", timeout=2)


def _release(root: Path, name: str, models=("add_sub", "scale")) -> str:
    """Lay a release out the way the copy does; return its content id."""
    staging = root / "releases" / f".staging-{name}"
    for model in models:
        shutil.copytree(EXAMPLES / model, staging / model, ignore=shutil.ignore_patterns("__pycache__"))
    release_id = tree_release_id(staging)
    staging.rename(root / "releases" / release_id)
    return release_id


@pytest.fixture
def root(tmp_path):
    (tmp_path / "releases").mkdir()
    return tmp_path


def test_point_link_is_relative_and_replaces_atomically(root):
    point_link(root, "current", "aaa")
    point_link(root, "current", "bbb")
    assert os.readlink(root / "current") == "releases/bbb"
    assert linked_release(root) == "bbb"
    assert linked_release(root, "previous") is None
    assert sorted(p.name for p in root.iterdir()) == ["current", "releases"]


def test_promote_renames_a_staging_copy_that_matches_its_id(root):
    staging = root / "releases" / ".staging-x"
    shutil.copytree(EXAMPLES / "scale", staging / "scale", ignore=shutil.ignore_patterns("__pycache__"))
    release_id = tree_release_id(staging)
    assert promote_staging(root, release_id, staging) is True
    assert (root / "releases" / release_id / "scale" / "config.pbtxt").is_file()
    assert not staging.exists()
    staging.mkdir()
    assert promote_staging(root, release_id, staging) is False
    assert not staging.exists()


def test_promote_refuses_an_incomplete_copy(root):
    staging = root / "releases" / ".staging-x"
    shutil.copytree(EXAMPLES / "scale", staging / "scale", ignore=shutil.ignore_patterns("__pycache__"))
    release_id = tree_release_id(staging)
    (staging / "scale" / "1" / "model.py").unlink()
    with pytest.raises(SwitchError, match=f"hashes to [0-9a-f]+, not to release {release_id}"):
        promote_staging(root, release_id, staging)
    assert not (root / "releases" / release_id).exists()


def test_promote_without_staging_or_release_explains(root):
    with pytest.raises(SwitchError, match="run it \\(tasks_from deploy\\) before switching"):
        promote_staging(root, "0123", root / "releases" / ".staging-0123")
    assert promote_staging(root, "0123", root / "releases" / ".staging-0123", check_mode=True) is True


def test_prune_keeps_the_newest_and_protected_releases(root):
    names = ["r1", "r2", "r3", "r4", "r5"]
    for age, name in enumerate(names):
        (root / "releases" / name).mkdir()
        os.utime(root / "releases" / name, (time.time() - 1000 + age, time.time() - 1000 + age))
    (root / "releases" / ".staging-zzz").mkdir()
    assert releases_to_prune(root, 3, set()) == ["r1", "r2"]
    assert releases_to_prune(root, 3, {"r1"}) == ["r2"]
    assert releases_to_prune(root, 0, set()) == ["r1", "r2", "r3", "r4"]
    assert [p.name for p in leftovers(root)] == [".staging-zzz"]


def test_config_diffs_compare_with_the_current_release(root):
    current = _release(root, "a")
    point_link(root, "current", current)
    same = (EXAMPLES / "scale" / "config.pbtxt").read_text()
    diffs = config_diffs(root, {"scale": same, "add_sub": "name: 'add_sub'\n", "new": "name: 'new'\n"})
    assert [d["after_header"] for d in diffs] == [
        "add_sub/config.pbtxt (new release)",
        "new/config.pbtxt (new release)",
    ]
    assert diffs[0]["before"] == (EXAMPLES / "add_sub" / "config.pbtxt").read_text()
    assert diffs[1]["before"] == ""


def test_api_key_header_is_read_from_its_file(tmp_path):
    key = tmp_path / "api-key"
    key.write_text("abc123\n")
    assert read_api_key_headers(str(key), "tf-key") == {"tf-key": "abc123"}
    assert read_api_key_headers(str(tmp_path / "absent"), "tf-key") == {}
    assert read_api_key_headers(str(key), "") == {}
    with pytest.raises(SwitchError, match="cannot read the restricted-API key"):
        read_api_key_headers(str(tmp_path), "tf-key")


def test_first_deploy_points_current_at_the_release(root):
    release_id = _release(root, "a")
    planned = activate(root, release_id, NO_SERVER, "deploy", check_mode=True)
    assert (planned.changed, planned.link_switched, planned.server_live) == (True, True, False)
    assert linked_release(root) is None

    done = activate(root, release_id, NO_SERVER, "deploy")
    assert (done.changed, linked_release(root), done.models) == (True, release_id, ["add_sub", "scale"])
    assert activate(root, release_id, NO_SERVER, "deploy").changed is False


def test_without_a_server_a_switch_only_moves_the_links(root):
    first = _release(root, "a")
    second = _release(root, "b", models=("add_sub",))
    point_link(root, "current", first)
    result = activate(root, second, NO_SERVER, "switch")
    assert (result.changed, result.loaded, result.unloaded) == (True, [], [])
    assert (linked_release(root), linked_release(root, "previous")) == (second, first)
    assert release_models(root / "current") == ["add_sub"]


def test_switch_to_a_release_that_is_not_there_explains(root):
    with pytest.raises(SwitchError, match="run it before the switch phase"):
        activate(root, "feedbeef", NO_SERVER, "switch")


def _module(capsys, args: dict) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        triton_models_switch.main()
    return json.loads(capsys.readouterr().out)


def test_a_missing_release_is_reported_and_nothing_changes(root, capsys):
    present = _release(root, "a")
    point_link(root, "current", present)
    args = {"root": str(root), "release": "f" * 64, "phase": "deploy", "when_missing": "report",
            "staging": str(root / "releases" / ".staging-x"),
            "url": "http://127.0.0.1:48099", "timeout": 2}  # fmt: skip
    result = _module(capsys, args)
    assert result["release_missing"] is True and result["changed"] is False
    assert result["previous"] == present and linked_release(root) == present
    failed = _module(capsys, dict(args, when_missing="fail"))
    assert failed["failed"] is True and "f" * 64 in failed["msg"]


def test_a_release_on_the_host_is_activated_when_missing_is_reported(root, capsys):
    release_id = _release(root, "a")
    args = {"root": str(root), "release": release_id, "phase": "deploy", "when_missing": "report",
            "url": "http://127.0.0.1:48099", "timeout": 2}  # fmt: skip
    result = _module(capsys, args)
    assert result["release_missing"] is False and result["changed"] is True
    assert linked_release(root) == release_id


def test_an_uploaded_archive_becomes_the_release(root, tmp_path):
    (tmp_path / "controller" / "releases").mkdir(parents=True)
    release_id = _release(tmp_path / "controller", "a")
    archive = root / "releases" / f".staging-{release_id}.tar"
    write_archive(tmp_path / "controller" / "releases" / release_id, archive)
    staging = root / "releases" / f".staging-{release_id}"
    staging.mkdir()
    (staging / "partial-from-an-interrupted-run").write_text("x")
    assert unpack_upload(root, release_id, archive, staging, check_mode=True) is False
    assert archive.is_file()
    assert unpack_upload(root, release_id, archive, staging) is True
    assert not archive.exists() and not (staging / "partial-from-an-interrupted-run").exists()
    assert promote_staging(root, release_id, staging) is True
    assert tree_release_id(root / "releases" / release_id) == release_id
    assert unpack_upload(root, release_id, archive, staging) is False
