# SPDX-License-Identifier: Apache-2.0
"""module_utils/triton_fleet_status.py and the triton_fleet_status module: collected status
documents give the rows a rollout report gives, stale and missing hosts are flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import triton_fleet_status as module
import yaml
from ansible.module_utils import triton_fleet_report as fleet
from ansible.module_utils import triton_fleet_status as status
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.triton_report import build_report as build_verify_report
from ansible.module_utils.triton_report import write_report as write_verify_report
from ansible.module_utils.triton_status import build_status

NOW = 1764600000.0
STALE_FIELDS = {"reported_at", "age_s", "interval_s", "stale"}


def _verify(host: str, ok: bool = True) -> dict:
    models = {"models": [{"name": "add_sub", "state": "READY" if ok else "UNAVAILABLE", "kinds": ["KIND_CPU"]}]}
    findings = [] if ok else [{"severity": "error", "code": "model_not_ready", "message": "add_sub is UNAVAILABLE"}]
    return build_verify_report(
        host,
        "2026-12-01T10:00:00Z",
        {"platform": "cpu"},
        {"release": "24.10", "instance_kind": "KIND_CPU"},
        None,
        {"release": "24.10", "server_version": "2.51.0", "method": "wheel"},
        {"id": "m-1", "instance_groups": {"add_sub": [{"kind": "KIND_CPU", "count": 1}]}},
        {"devices": {}, "findings": []},
        {"server": {"version": "2.51.0"}, "findings": findings, **models},
    )


def _result(verdict: str) -> dict:
    return {
        "batch": 2,
        "started": NOW - 100,
        "finished": NOW - 40,
        "verdict": verdict,
        "platform": "cpu",
        "release_before": "2.50.0",
        "release_after": "2.51.0" if verdict == "passed" else "2.50.0",
        "models": {"add_sub": [{"kind": "KIND_CPU", "count": 1, "gpus": []}]},
        "plan": {"instance_kind": "KIND_CPU", "gpu_ids": [], "install_method": "wheel"},
        "findings": [] if verdict == "passed" else ["verification failed"],
    }


def _collect(directory: Path, host: str, verdict: str, published: float, interval: int = 900) -> dict:
    document = build_status(host, _result(verdict), _verify(host, verdict == "passed"), published, interval)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{host}.json").write_text(json.dumps(document))
    return document


def test_collected_rows_equal_the_rollout_rows_of_the_same_hosts(tmp_path: Path) -> None:
    collected = tmp_path / "collected"
    docs = {h: _collect(collected, h, v, NOW - 60) for h, v in (("cpu-1", "passed"), ("cpu-2", "rolled back"))}
    # The rollout: the verify role's reports under reports/<host>/, the rollout's records.
    pushed_dir = tmp_path / "pushed"
    for host, doc in docs.items():
        write_verify_report(pushed_dir / host, doc["verify"])
    results = fleet.with_verify_reports({h: d["result"] for h, d in docs.items()}, pushed_dir, pushed_dir / "fleet")
    pushed = fleet.build_report("r1", [["cpu-1"], ["cpu-2"]], results, done_batches=2, max_fail_percentage=50)
    # The status report from the collected documents alone.
    documents, problems = status.read_collected(collected)
    status_dir = tmp_path / "status"
    status.write_verify_reports(documents, status_dir, check_mode=False)
    report = status.build_status_report(
        "s1", documents, reports_dir=status_dir, fleet_dir=status_dir / "fleet", now=NOW, stale_intervals=3
    )
    assert problems == [] and report["stale_hosts"] == []
    for pushed_row, status_row in zip(pushed["hosts"], report["hosts"], strict=True):
        assert {k: v for k, v in status_row.items() if k not in STALE_FIELDS | {"batch"}} == {
            k: v for k, v in pushed_row.items() if k != "batch"
        }
        assert status_row["stale"] is False and status_row["age_s"] == 60
    for host in docs:
        assert (status_dir / host / "verify.json").read_bytes() == (pushed_dir / host / "verify.json").read_bytes()
    assert report["counts"] == {"passed": 1, "rolled back": 1}


def test_stale_and_missing_hosts_are_flagged(tmp_path: Path) -> None:
    collected = tmp_path / "collected"
    _collect(collected, "fresh", "passed", NOW - 1000, interval=900)
    _collect(collected, "silent", "passed", NOW - 3 * 600 - 1, interval=600)
    documents, _ = status.read_collected(collected)
    report = status.build_status_report(
        "s1",
        documents,
        reports_dir=tmp_path,
        fleet_dir=tmp_path / "fleet",
        now=NOW,
        stale_intervals=3,
        expected_hosts=["fresh", "never"],
    )
    rows = {row["host"]: row for row in report["hosts"]}
    assert report["stale_hosts"] == ["silent", "never"]
    assert rows["fresh"]["stale"] is False
    assert (
        rows["silent"]["findings"][0].startswith("stale: last report ")
        and "3 interval(s) of 600 s" in (rows["silent"]["findings"][0])
    )
    assert rows["silent"]["verdict"] == "passed"
    assert rows["never"]["findings"] == ["stale: no status report collected from this host"]
    assert rows["never"]["verdict"] == "unreachable" and rows["never"]["reported_at"] is None
    markdown = fleet.render_markdown(report)
    assert markdown.startswith("# Fleet status s1\n")
    assert "2 stale (no report within 3 intervals): silent, never" in markdown
    assert "| passed (stale) |" in markdown
    assert 'class="passed stale"' in fleet.render_html(report)


def test_newest_document_of_a_host_wins_and_bad_files_are_problems(tmp_path: Path) -> None:
    collected = tmp_path / "collected"
    _collect(collected, "cpu-1", "passed", NOW - 500)
    newer = build_status("cpu-1", _result("rolled back"), None, NOW - 10, 900)
    (collected / "cpu-1.copy.json").write_text(json.dumps(newer))
    (collected / "junk.json").write_text("{not json")
    (collected / "other.json").write_text(json.dumps({"kind": "something-else"}))
    (collected / "notes.txt").write_text("ignored")
    documents, problems = status.read_collected(collected)
    assert list(documents) == ["cpu-1"] and documents["cpu-1"]["verdict"] == "rolled back"
    assert len(problems) == 2
    assert any("junk.json is not JSON" in p for p in problems)
    assert any("other.json is not a tritonfleet status document" in p for p in problems)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"kind": "tritonfleet.status", "schema_version": 9}, "schema_version 9; supported: 1"),
        ({"kind": "tritonfleet.status", "schema_version": 1, "host": "a"}, "lacks published, interval_s, result"),
        ([1, 2], "kind 'list'"),
    ],
)
def test_parse_document_refuses_what_it_cannot_read(document, words) -> None:
    with pytest.raises(status.FleetStatusError) as err:
        status.parse_document(json.dumps(document), "x.json")
    assert words in str(err.value) and str(err.value).startswith("x.json")


def test_unreadable_collected_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(status.FleetStatusError, match=r"cannot be read.*triton_fleet_status_collected_dir"):
        status.read_collected(tmp_path / "missing")


def test_module_documentation_matches_argument_spec() -> None:
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) == set(module.ARGUMENT_SPEC)
    for name, spec in module.ARGUMENT_SPEC.items():
        assert doc["options"][name]["type"] == spec["type"], name
        assert doc["options"][name].get("default") == spec.get("default"), name
    yaml.safe_load(module.EXAMPLES)
    assert yaml.safe_load(module.RETURN)["stale_hosts"]["returned"] == "always"


def _run(capsys, args: dict, check_mode: bool = False) -> dict:
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_module_writes_the_report_and_nothing_in_check_mode(tmp_path: Path, capsys) -> None:
    import time

    collected = tmp_path / "collected"
    _collect(collected, "cpu-1", "passed", time.time() - 30)
    _collect(collected, "cpu-2", "passed", time.time() - 10 * 900)
    args = {"collected_dir": str(collected), "reports_dir": str(tmp_path / "out"), "status_id": "s1", "hosts": []}
    dry = _run(capsys, args, check_mode=True)
    assert dry["changed"] is True and not (tmp_path / "out").exists()
    result = _run(capsys, args)
    assert result["changed"] is True and result["stale_hosts"] == ["cpu-2"]
    assert result["summary"].startswith("Status s1 as of ") and "1 stale" in result["summary"]
    written = json.loads((tmp_path / "out" / "fleet" / "latest" / "fleet.json").read_text())
    assert written == result["report"] and written["kind"] == "status"
    assert "../../cpu-1/verify.md" in (tmp_path / "out" / "fleet" / "s1" / "fleet.md").read_text()


def test_module_refuses_zero_stale_intervals(tmp_path: Path, capsys) -> None:
    args = {"collected_dir": str(tmp_path), "reports_dir": str(tmp_path), "status_id": "s1", "stale_intervals": 0}
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and "supported: 1 or more" in result["msg"]
