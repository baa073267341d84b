# SPDX-License-Identifier: Apache-2.0
"""Fleet report: batch plan (checked against Ansible's own batching), verdicts, rendering, files."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from ansible.module_utils import triton_fleet_report as report
from ansible.module_utils.triton_fleet_report import (
    FleetReportError,
    batch_stops_rollout,
    batch_summary,
    build_report,
    normalize_host,
    plan_batches,
    read_verify_report,
    render_html,
    render_markdown,
    serial_to_int,
    write_report,
)
from ansible.utils.helpers import pct_to_int

HOSTS = [f"h{i}" for i in range(1, 9)]


@pytest.mark.parametrize("value", [1, 3, "2", "25%", "10%", "29%", "50%", "100%", "1%", 0, -1])
@pytest.mark.parametrize("total", [1, 3, 7, 8, 100])
def test_serial_to_int_matches_ansible(value, total):
    assert serial_to_int(value, total) == pct_to_int(value, total)


@pytest.mark.parametrize("value", ["a", "10 %%", "x%", 1.5, True, None], ids=repr)
def test_serial_to_int_rejects_garbage(value):
    with pytest.raises(FleetReportError, match="triton_rollout_batches"):
        serial_to_int(value, 8)


@pytest.mark.parametrize(
    ("batches", "canary", "expected"),
    [
        ([1, "25%", "100%"], None, [["h1"], ["h2"], ["h3", "h4", "h5", "h6", "h7", "h8"]]),
        ([2], None, [["h1", "h2"], ["h3", "h4"], ["h5", "h6"], ["h7", "h8"]]),
        ([1, "100%"], None, [["h1"], ["h2", "h3", "h4", "h5", "h6", "h7", "h8"]]),
        ([1], None, [[host] for host in HOSTS]),
        ([], None, [HOSTS]),
        (["50%", 3], None, [["h1", "h2", "h3", "h4"], ["h5", "h6", "h7"], ["h8"]]),
        ([1, 4], ["h5", "h2"], [["h2", "h5"], ["h1"], ["h3", "h4", "h6", "h7"], ["h8"]]),
        (["100%"], ["h1"], [["h1"], ["h2", "h3", "h4", "h5", "h6", "h7", "h8"]]),
    ],
    ids=[
        "one-25pct-rest",
        "pairs",
        "canary-then-all",
        "ones",
        "no-batches",
        "pct-then-count",
        "canary-group",
        "group+all",
    ],
)
def test_plan_batches(batches, canary, expected):
    assert plan_batches(HOSTS, batches, canary) == expected


def test_plan_batches_covers_every_host_once():
    plan = plan_batches(HOSTS, [1, "25%", 2])
    flat = [host for batch in plan for host in batch]
    assert flat == HOSTS


def test_plan_batches_empty_fleet():
    assert plan_batches([], [1, "100%"]) == []


def _rows(**verdicts):
    return [normalize_host(host, {"verdict": verdict}, 2, True) for host, verdict in verdicts.items()]


def test_batch_summary_line():
    rows = _rows(a="passed", b="rolled back")
    assert batch_summary(2, 3, rows) == "batch 2/3: hosts a,b — passed: a; rolled back: b"


def test_batch_summary_all_passed_says_no_failures():
    assert batch_summary(1, 1, _rows(a="passed")) == "batch 1/1: hosts a — passed: a; failed: -"


def test_batch_summary_nothing_passed():
    line = batch_summary(3, 3, _rows(a="unreachable", b="failed"))
    assert line == "batch 3/3: hosts a,b — passed: -; failed: b; unreachable: a"


@pytest.mark.parametrize(
    ("verdicts", "canary", "pct", "stops"),
    [
        ({"a": "passed"}, True, 100, False),
        ({"a": "passed", "b": "rolled back"}, True, 100, True),
        ({"a": "passed", "b": "passed", "c": "passed", "d": "failed"}, False, 25, False),
        ({"a": "passed", "b": "passed", "c": "failed", "d": "failed"}, False, 25, True),
        ({"a": "passed", "b": "unreachable"}, False, 50, False),
        ({"a": "failed"}, False, 100, True),
        ({"a": "passed", "b": "failed"}, False, 0, True),
    ],
    ids=["canary-ok", "canary-fail", "under", "over", "at-threshold", "whole-batch", "zero-tolerance"],
)
def test_batch_stops_rollout(verdicts, canary, pct, stops):
    assert batch_stops_rollout(_rows(**verdicts), canary, pct) is stops


def test_normalize_host_duration_and_models():
    row = normalize_host(
        "a",
        {
            "verdict": "passed",
            "started": 100.0,
            "finished": 112.34,
            "models": [{"name": "add_sub", "kind": "KIND_CPU"}, {"kind": "KIND_GPU"}, "junk"],
            "findings": ["x", None, ""],
        },
        1,
        True,
    )
    assert row["duration_s"] == 12.3
    assert row["models"] == [{"name": "add_sub", "kind": "KIND_CPU"}]
    assert row["findings"] == ["x"]


def test_normalize_host_without_result():
    assert normalize_host("a", None, 2, True)["verdict"] == "unreachable"
    assert normalize_host("a", None, 2, True)["findings"]
    assert normalize_host("a", {}, 3, False)["verdict"] == "not reached"


def test_normalize_host_merges_verify_findings_and_keeps_only_links():
    raw = {
        "verdict": "rolled back",
        "findings": ["verify failed"],
        "verify_report": {
            "json": "../../a/verify.json",
            "verdict": "failed",
            "findings": ["verify failed", "model add_sub: UNAVAILABLE"],
        },
    }
    row = normalize_host("a", raw, 1, True)
    assert row["findings"] == ["verify failed", "model add_sub: UNAVAILABLE"]
    assert row["verify_report"] == {"json": "../../a/verify.json"}


def test_normalize_host_rejects_unknown_verdict():
    with pytest.raises(FleetReportError, match=r"host a recorded rollout verdict 'ok'; supported: passed"):
        normalize_host("a", {"verdict": "ok"}, 1, True)


PLAN = [["a"], ["b", "c"], ["d"]]


def test_build_report_in_progress():
    report = build_report("r1", PLAN, {"a": {"verdict": "passed"}}, done_batches=1, max_fail_percentage=0)
    assert report["status"] == "in progress"
    assert [row["verdict"] for row in report["hosts"]] == ["passed", "pending", "pending", "pending"]
    assert report["batches"][0]["label"] == "canary"
    assert report["batches"][1]["summary"] == "batch 2/3: not run"


def test_build_report_stopped_marks_rest_not_reached():
    results = {"a": {"verdict": "passed"}, "b": {"verdict": "rolled back"}, "c": {"verdict": "passed"}}
    report = build_report("r1", PLAN, results, done_batches=2, max_fail_percentage=25)
    assert report["status"] == "stopped"
    assert report["stopped_at_batch"] == 2
    assert report["hosts"][-1]["verdict"] == "not reached"
    assert report["counts"] == {"passed": 2, "rolled back": 1, "not reached": 1}


def test_build_report_under_threshold_goes_on():
    results = {"a": {"verdict": "passed"}, "b": {"verdict": "rolled back"}, "c": {"verdict": "passed"}}
    report = build_report("r1", PLAN, results, done_batches=2, max_fail_percentage=50)
    assert report["status"] == "in progress"
    assert report["stopped_at_batch"] is None


def test_build_report_canary_failure_stops():
    report = build_report("r1", PLAN, {"a": {"verdict": "rolled back"}}, done_batches=1, max_fail_percentage=100)
    assert report["status"] == "stopped"
    assert {row["host"]: row["verdict"] for row in report["hosts"]}["d"] == "not reached"


def test_build_report_complete_and_unreachable():
    results = {"a": {"verdict": "passed"}, "b": {"verdict": "passed"}, "c": {"verdict": "passed"}}
    report = build_report("r1", PLAN, results, done_batches=3, max_fail_percentage=0, final=True)
    assert report["status"] == "complete"
    assert report["hosts"][-1]["verdict"] == "unreachable"


def test_build_report_rejects_batch_counter_past_plan():
    with pytest.raises(FleetReportError, match="batch 4 of a 3-batch plan"):
        build_report("r1", PLAN, {}, done_batches=4, max_fail_percentage=0)


EVIL = '<script>alert("x")</script>&'


def _evil_report():
    results = {
        "a": {
            "verdict": "rolled back",
            "platform": "cpu",
            "release_before": "2.50.0",
            "release_after": "2.50.0",
            "findings": [EVIL, "a | b"],
            "models": [{"name": "m<1>", "kind": "KIND_CPU"}],
            "verify_report": {"json": '../../a"onload="x/verify.json'},
        },
        "b": {"verdict": "passed", "release_before": None, "release_after": "2.51.0", "started": 1, "finished": 3},
    }
    return build_report("r<1>", [["a"], ["b"]], results, done_batches=2, max_fail_percentage=100)


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_render_html_escapes_host_values():
    page = render_html(_evil_report())
    parser = _Collector()
    parser.feed(page)
    assert "script" not in {tag for tag, _ in parser.tags}
    assert EVIL in "".join(parser.text)
    assert "m<1> (KIND_CPU)" in "".join(parser.text)
    links = [attrs["href"] for tag, attrs in parser.tags if tag == "a"]
    assert links == ['../../a"onload="x/verify.json']
    assert not any("onload" in attrs for _, attrs in parser.tags)


def test_render_html_is_self_contained():
    page = render_html(_evil_report())
    parser = _Collector()
    parser.feed(page)
    tags = {tag for tag, _ in parser.tags}
    assert {"style", "table"} <= tags
    assert not tags & {"link", "script", "img", "iframe"}
    assert not re.search(r"(https?:)?//", page)


def test_render_html_rows_and_batches():
    page = render_html(_evil_report())
    assert page.count("<tr class=") == 2
    assert "2.50.0</td>" in page
    assert "none → 2.51.0" in page
    assert "batch 2/2: hosts b — passed: b; failed: -" in page
    assert "2.0 s" in page


def test_render_markdown_table():
    text = render_markdown(_evil_report())
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 3
    row_a = table[1]
    assert r"a \| b" in row_a
    assert row_a.count(" | ") == 7
    assert "- batch 1/2: hosts a — passed: -; rolled back: a" in lines


def test_write_report_files_latest_and_idempotence(tmp_path):
    report = _evil_report()
    report["rollout_id"] = "20261124T000000Z"
    changed, paths = write_report(tmp_path, report)
    assert changed
    assert json.loads(Path(paths["fleet.json"]).read_text())["rollout_id"] == "20261124T000000Z"
    assert os.readlink(tmp_path / "latest") == "20261124T000000Z"
    assert (tmp_path / "latest" / "fleet.html").read_text() == Path(paths["fleet.html"]).read_text()
    assert write_report(tmp_path, report) == (False, paths)
    assert write_report(tmp_path, report, check_mode=True) == (False, paths)


def test_write_report_check_mode_writes_nothing(tmp_path):
    report = _evil_report()
    report["rollout_id"] = "r2"
    changed, _ = write_report(tmp_path, report, check_mode=True)
    assert changed
    assert list(tmp_path.iterdir()) == []


def test_write_report_moves_latest(tmp_path):
    first, second = _evil_report(), _evil_report()
    first["rollout_id"], second["rollout_id"] = "r1", "r2"
    write_report(tmp_path, first)
    write_report(tmp_path, second)
    assert os.readlink(tmp_path / "latest") == "r2"
    assert (tmp_path / "r1" / "fleet.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "r1", "r2"]


def test_read_verify_report_links_relative(tmp_path):
    reports = tmp_path / "reports"
    (reports / "a").mkdir(parents=True)
    (reports / "a" / "verify.json").write_text(
        json.dumps(
            {
                "verdict": "failed",
                "findings": [
                    {"check": "model_ready", "message": "add_sub not ready"},
                    {"severity": "warning", "code": "slow", "message": "not in the fleet table"},
                    {"severity": "error", "code": "not_ready", "message": "scale not ready"},
                    "plain",
                ],
            }
        )
    )
    (reports / "a" / "verify.md").write_text("# a\n")
    links = read_verify_report(reports, "a", reports / "fleet" / "latest")
    assert links == {
        "json": "../../a/verify.json",
        "md": "../../a/verify.md",
        "verdict": "failed",
        "findings": ["model_ready: add_sub not ready", "not_ready: scale not ready", "plain"],
    }
    assert read_verify_report(reports, "missing", reports / "fleet" / "latest") == {}


def test_read_verify_report_garbage_json_keeps_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "verify.json").write_text("{not json")
    assert read_verify_report(tmp_path, "a", tmp_path / "fleet" / "r1") == {"json": "../../a/verify.json"}


def test_normalize_host_reads_instance_groups():
    groups = {
        "scale": [{"name": "scale_0", "kind": "KIND_GPU", "count": 1, "gpus": [0]}, {"kind": "KIND_GPU", "gpus": [1]}],
        "add_sub": [{"name": "add_sub_0", "kind": "KIND_CPU", "count": 2, "gpus": []}],
        "empty": [],
    }
    row = normalize_host("a", {"verdict": "passed", "models": groups}, 1, True)
    assert row["models"] == [
        {"name": "add_sub", "kind": "KIND_CPU"},
        {"name": "empty", "kind": ""},
        {"name": "scale", "kind": "KIND_GPU"},
    ]


def test_embedded_application_is_shown_with_the_models():
    results = {"a": {"verdict": "passed", "models": {"add_sub": [{"kind": "KIND_CPU"}]},
                     "application": {"name": "demo", "release": "0123456789abcdef"}}}  # fmt: skip
    report = build_report("r1", PLAN, results, done_batches=1, max_fail_percentage=0)
    assert report["hosts"][0]["application"] == {"name": "demo", "release": "0123456789abcdef"}
    assert "add_sub (KIND_CPU); application demo 0123456789abcdef" in render_markdown(report)
    assert "add_sub (KIND_CPU); application demo 0123456789abcdef" in render_html(report)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [1, "25%", "100%"]),
        ("", [1, "25%", "100%"]),
        ([2, "50%"], [2, "50%"]),
        (["1", "25%", "100%"], [1, "25%", "100%"]),
        ("1, 25%,100%", [1, "25%", "100%"]),
        ("3", [3]),
        (4, [4]),
    ],
)
def test_parse_batches_takes_what_surveys_and_yaml_give(value, expected):
    assert report.parse_batches(value) == expected


@pytest.mark.parametrize("value", ["1, two", [True], ["ten%"], [1.5]])
def test_parse_batches_refuses_what_is_not_a_size(value):
    with pytest.raises(report.FleetReportError, match="triton_rollout_batches has an entry that is not a batch size"):
        report.parse_batches(value)


def test_rollout_serial_is_the_plan_the_report_splits():
    assert report.rollout_serial("1, 25%, 100%", "") == {"canary": 1, "rest": ["25%", "100%"]}
    assert report.rollout_serial([2], None) == {"canary": 2, "rest": [2]}
    assert report.rollout_serial(None, "edge-canary") == {"canary": "100%", "rest": [1, "25%", "100%"]}
    hosts = [f"h{i}" for i in range(9)]
    serial = report.rollout_serial("1,25%,100%", "")
    assert report.plan_batches(hosts, [serial["canary"], *serial["rest"]]) == [
        ["h0"],
        ["h1", "h2"],
        ["h3", "h4", "h5", "h6", "h7", "h8"],
    ]


def test_report_root_is_the_runner_artifacts_dir_under_ansible_runner(tmp_path):
    assert report.report_root(str(tmp_path), {}) == str(tmp_path / "reports")
    assert report.report_root(str(tmp_path), {"AWX_ISOLATED_DATA_DIR": "/runner/artifacts/7"}) == (
        "/runner/artifacts/7/reports"
    )
