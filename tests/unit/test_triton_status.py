# SPDX-License-Identifier: Apache-2.0
"""module_utils/triton_status.py: status document, metrics (read back by prometheus_client's own
parser), token file rules, the POST with retries against a loopback HTTP server, the detached sender."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ansible.module_utils import triton_status as status_mod
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "s3cret-token-value"

RESULT = {
    "batch": 1,
    "verdict": "passed",
    "platform": "dgpu",
    "release_before": "2.50.0",
    "release_after": "2.51.0",
    "models": {"add_sub": [{"kind": "KIND_CPU", "count": 1, "gpus": []}]},
    "plan": {"instance_kind": "KIND_GPU", "gpu_ids": [0, 1], "install_method": "wheel"},
}
VERIFY = {
    "verdict": "passed",
    "versions": {"server_version": "2.51.0", "models_release": "m-1a2b3c"},
    "models": [
        {"name": "add_sub", "state": "READY", "kinds": ["KIND_CPU"]},
        {"name": "resnet", "state": "READY", "kinds": ["KIND_GPU"]},
        {"name": "broken", "state": "UNAVAILABLE", "kinds": []},
    ],
    "expected_instance_groups": {"broken": [{"kind": "KIND_GPU", "count": 1}]},
    "gpu_memory": {
        "measured": True,
        "gpus": [
            {"index": 0, "uuid": "GPU-aaaa", "used_bytes": 3 * 2**30, "pids": [10]},
            {"index": 1, "uuid": "GPU-bbbb", "used_bytes": None, "pids": [10]},
        ],
    },
}


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_metrics_parse_with_prometheus_client_and_carry_the_run() -> None:
    status = status_mod.build_status("gpu-1", RESULT, VERIFY, 1764600000.0, 900)
    families = _families(status_mod.render_metrics(status))
    assert families["tritonfleet_info"] == [({"host": "gpu-1", "platform": "dgpu"}, 1.0)]
    assert dict((labels["verdict"], value) for labels, value in families["tritonfleet_verdict"]) == {
        "passed": 1.0,
        "rolled back": 0.0,
        "failed": 0.0,
    }
    assert families["tritonfleet_release_info"] == [({"server_version": "2.51.0", "models_release": "m-1a2b3c"}, 1.0)]
    models = {labels["kind"]: value for labels, value in families["tritonfleet_models"]}
    ready = {labels["kind"]: value for labels, value in families["tritonfleet_models_ready"]}
    # broken has no running groups; its expected kind (KIND_GPU) counts, and it is not ready.
    assert models == {"KIND_CPU": 1.0, "KIND_GPU": 2.0}
    assert ready == {"KIND_CPU": 1.0, "KIND_GPU": 1.0}
    # GPU 1's usage NVML could not tell is left out, not reported as 0.
    assert families["tritonfleet_server_gpu_memory_bytes"] == [({"gpu": "0", "uuid": "GPU-aaaa"}, float(3 * 2**30))]
    assert families["tritonfleet_last_run_timestamp_seconds"] == [({}, 1764600000.0)]
    assert families["tritonfleet_last_success_timestamp_seconds"] == [({}, 1764600000.0)]


def test_metrics_of_a_failed_first_run_have_no_last_success_and_no_gpu_memory() -> None:
    result = {"verdict": "rolled back", "platform": "jetson", "release_after": "2.40.0", "models": RESULT["models"]}
    status = status_mod.build_status('orin "7"\n', result, None, 1764600000.5, 900)
    text = status_mod.render_metrics(status)
    families = _families(text)
    assert "tritonfleet_last_success_timestamp_seconds" not in families
    assert "tritonfleet_server_gpu_memory_bytes" not in families
    assert families["tritonfleet_info"][0][0]["host"] == 'orin "7"\n'
    verdicts = {labels["verdict"]: value for labels, value in families["tritonfleet_verdict"]}
    assert verdicts == {"passed": 0.0, "rolled back": 1.0, "failed": 0.0}
    assert families["tritonfleet_release_info"][0][0]["server_version"] == "2.40.0"
    # Without a verification report the rendered groups say what runs; nothing is known ready.
    assert {labels["kind"]: value for labels, value in families["tritonfleet_models_ready"]} == {"KIND_CPU": 0.0}
    assert families["tritonfleet_last_run_timestamp_seconds"] == [({}, 1764600000.5)]


def test_last_success_survives_a_failed_run() -> None:
    first = status_mod.build_status("a", RESULT, VERIFY, 1000.0, 900)
    failed = status_mod.build_status("a", {"verdict": "failed"}, None, 2000.0, 900, previous=first)
    assert (failed["last_success"], failed["verdict"]) == (1000.0, "failed")
    assert failed["last_success_at"] == "1970-01-01T00:16:40Z"
    again = status_mod.build_status("a", RESULT, VERIFY, 3000.0, 900, previous=failed)
    assert again["last_success"] == 3000.0


@pytest.mark.parametrize(
    ("url", "attempts", "backoff", "timeout", "interval", "problem"),
    [
        ("https://collector.example:8443/status", 5, 2.0, 10.0, 900, None),
        ("", 1, 0.1, 1.0, 60, None),
        ("ftp://collector/status", 5, 2.0, 10.0, 900, "triton_status_url"),
        ("https://user:pw@/status", 5, 2.0, 10.0, 900, "triton_status_url"),
        ("http://c/s", 0, 2.0, 10.0, 900, "triton_status_attempts"),
        ("http://c/s", 1, 0.0, 10.0, 900, "triton_status_backoff"),
        ("http://c/s", 1, 1.0, 1.0, 30, "triton_status_interval"),
    ],
)
def test_check_settings(url, attempts, backoff, timeout, interval, problem) -> None:
    problems = status_mod.check_settings(url, attempts, backoff, timeout, interval)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(problem), problems
        assert "pw" not in problems[0]


def test_redact_url_drops_credentials() -> None:
    assert status_mod.redact_url("https://u:p@collector:8443/x?y=1") == "https://collector:8443/x?y=1"
    assert status_mod.redact_url("http://collector/x") == "http://collector/x"


def test_read_token_accepts_a_root_only_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    path.chmod(0o600)
    assert status_mod.read_token(path) == TOKEN


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        (TOKEN, 0o644, "mode 0644"),
        (TOKEN, 0o640, "mode 0640"),
        ("", 0o600, "holds nothing"),
        ("two words", 0o600, "whitespace inside the token"),
        (None, 0o600, "does not exist"),
    ],
)
def test_read_token_refuses_files_others_can_read_or_without_a_token(tmp_path: Path, content, mode, words) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
        path.chmod(mode)
    with pytest.raises(status_mod.StatusError) as err:
        status_mod.read_token(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert TOKEN not in str(err.value)


def test_read_token_refuses_a_file_not_owned_by_root(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(status_mod.StatusError, match="owned by uid 65534"):
        status_mod.read_token(path)


def test_backoff_doubles_and_is_capped() -> None:
    assert status_mod.backoff_delays(5, 2.0) == [2.0, 4.0, 8.0, 16.0]
    assert status_mod.backoff_delays(4, 100.0, cap=150.0) == [100.0, 150.0, 150.0]
    assert status_mod.backoff_delays(1, 2.0) == []


class _Collector:
    """A loopback HTTP server answering POSTs with scripted statuses; records what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[dict] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests.append({"auth": self.headers.get("Authorization"), "body": body})
                code = collector.statuses.pop(0) if collector.statuses else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector([])
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _post(url: str, token: str | None = TOKEN, attempts: int = 4) -> tuple[dict, list[str], list[float]]:
    lines: list[str] = []
    slept: list[float] = []
    outcome = status_mod.post_status(
        url, b'{"kind": "x"}', token, attempts=attempts, backoff=1.5, timeout=2.0, log=lines.append, sleep=slept.append
    )
    return outcome, lines, slept


def test_post_delivers_with_the_bearer_token(collector: _Collector) -> None:
    outcome, lines, slept = _post(collector.url)
    assert outcome == {"delivered": True, "status": 204, "attempts": 1, "reason": "HTTP 204"}
    assert collector.requests == [{"auth": f"Bearer {TOKEN}", "body": b'{"kind": "x"}'}]
    assert slept == [] and len(lines) == 1 and TOKEN not in lines[0]


def test_post_retries_a_busy_collector_with_back_off(collector: _Collector) -> None:
    collector.statuses[:] = [503, 429]
    outcome, lines, slept = _post(collector.url)
    assert outcome["delivered"] and outcome["attempts"] == 3
    assert slept == [1.5, 3.0]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "HTTP 503 Service Unavailable",
        "HTTP 429 Too Many Requests",
        "HTTP 204",
    ]


def test_post_stops_at_a_rejected_token_and_never_logs_it(collector: _Collector) -> None:
    collector.statuses[:] = [401]
    outcome, lines, slept = _post(collector.url)
    assert (outcome["delivered"], outcome["status"], outcome["attempts"]) == (False, 401, 1)
    assert "rejected the bearer token" in outcome["reason"]
    assert slept == [] and len(collector.requests) == 1
    assert all(TOKEN not in line for line in lines) and "gave up after 1 attempt" in lines[-1]


def test_post_to_a_closed_port_retries_then_gives_up() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]
    outcome, lines, slept = _post(f"http://127.0.0.1:{port}/status", attempts=3)
    assert (outcome["delivered"], outcome["attempts"]) == (False, 3)
    assert "ConnectionRefusedError" in outcome["reason"]
    assert slept == [1.5, 3.0] and len(lines) == 4


def test_post_to_a_collector_that_never_answers_times_out() -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        started = time.monotonic()
        lines: list[str] = []
        outcome = status_mod.post_status(
            f"http://127.0.0.1:{silent.getsockname()[1]}/",
            b"{}",
            None,
            attempts=2,
            backoff=0.1,
            timeout=0.5,
            log=lines.append,
        )
        elapsed = time.monotonic() - started
    assert not outcome["delivered"] and "timed out" in outcome["reason"], outcome
    assert elapsed < 3, elapsed


def test_send_detached_returns_before_the_work_finishes(tmp_path: Path) -> None:
    marker = tmp_path / "done"

    def work() -> None:
        time.sleep(1.0)
        marker.write_text(str(os.getpid()))

    started = time.monotonic()
    pid = status_mod.send_detached(work)
    assert time.monotonic() - started < 0.5
    assert pid > 0 and pid != os.getpid() and not marker.exists()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == str(pid)


def _publish(tmp_path: Path, url: str | None, detach, check_mode: bool = False, **extra) -> dict:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    args = {
        "state_dir": tmp_path / "state",
        "metrics_file": tmp_path / "textfile" / "tritonfleet.prom",
        "url": url,
        "token_file": str(token),
        "ca_file": None,
        "attempts": 2,
        "backoff": 0.1,
        "timeout": 2.0,
        "interval": 900,
        "log_file": tmp_path / "status.log",
        "check_mode": check_mode,
        "now": 1764600000.0,
        "detach": detach,
    }
    args.update(extra)
    return status_mod.publish("gpu-1", RESULT, VERIFY, **args)


def test_publish_writes_metrics_spool_and_posts_the_document(tmp_path: Path, collector: _Collector) -> None:
    outcome = _publish(tmp_path, collector.url, detach=lambda work: (work(), 4242)[1])
    assert outcome["post"] == {
        "queued": True,
        "pid": 4242,
        "url": collector.url,
        "log_file": str(tmp_path / "status.log"),
    }
    assert outcome["warnings"] == []
    metrics = (tmp_path / "textfile" / "tritonfleet.prom").read_text()
    assert _families(metrics)["tritonfleet_verdict"][0] == ({"verdict": "passed"}, 1.0)
    assert sorted(p.name for p in (tmp_path / "textfile").iterdir()) == ["tritonfleet.prom"]
    spool = tmp_path / "state" / "status.json"
    assert oct(spool.stat().st_mode & 0o777) == "0o600"
    posted = json.loads(collector.requests[0]["body"])
    assert posted == json.loads(spool.read_text())
    assert (posted["host"], posted["result"], posted["verify"]) == ("gpu-1", RESULT, VERIFY)
    log = (tmp_path / "status.log").read_text()
    assert "attempt 1/2: HTTP 204" in log and TOKEN not in log


def test_publish_in_check_mode_writes_and_sends_nothing(tmp_path: Path) -> None:
    def detach(work) -> int:
        raise AssertionError("nothing may be sent in check mode")

    outcome = _publish(tmp_path, "http://127.0.0.1:9/", detach=detach, check_mode=True)
    assert outcome["changed"] is False and outcome["post"]["queued"] is False
    assert outcome["status"]["verdict"] == "passed"
    assert not (tmp_path / "state").exists() and not (tmp_path / "textfile").exists()


def test_publish_with_bad_settings_still_writes_metrics_and_warns(tmp_path: Path) -> None:
    def detach(work) -> int:
        raise AssertionError("a bad URL is never posted to")

    outcome = _publish(tmp_path, "ftp://u:secret@collector/", detach=detach)
    assert outcome["post"]["queued"] is False
    assert len(outcome["warnings"]) == 1 and "triton_status_url" in outcome["warnings"][0]
    assert "secret" not in json.dumps(outcome)
    assert (tmp_path / "textfile" / "tritonfleet.prom").is_file()


def test_publish_reports_an_unwritable_metrics_path_as_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    outcome = _publish(tmp_path, None, detach=lambda work: 0, metrics_file=blocker / "tritonfleet.prom")
    assert len(outcome["warnings"]) == 1 and "metrics not written" in outcome["warnings"][0]
    assert (tmp_path / "state" / "status.json").is_file()


def test_publish_never_posts_an_older_spool_when_this_run_cannot_be_spooled(tmp_path: Path, monkeypatch) -> None:
    def detach(work) -> int:
        raise AssertionError("the previous run's document must not go out as this one")

    spool = tmp_path / "state" / "status.json"
    spool.parent.mkdir()
    spool.write_text(json.dumps({"kind": "tritonfleet.status", "host": "gpu-1", "verdict": "failed"}))
    write_atomic = status_mod.write_atomic

    def full_disk(path: Path, text: str, mode: int) -> None:
        if path == spool:
            raise OSError(28, "No space left on device")
        write_atomic(path, text, mode)

    monkeypatch.setattr(status_mod, "write_atomic", full_disk)
    outcome = _publish(tmp_path, "http://127.0.0.1:9/", detach=detach)
    assert outcome["post"]["queued"] is False
    assert len(outcome["warnings"]) == 1 and "not spooled" in outcome["warnings"][0], outcome["warnings"]
    assert _families((tmp_path / "textfile" / "tritonfleet.prom").read_text())["tritonfleet_verdict"][0] == (
        {"verdict": "passed"},
        1.0,
    )


def test_deliver_spooled_logs_a_bad_token_file_without_posting(tmp_path: Path, collector: _Collector) -> None:
    spool = tmp_path / "status.json"
    spool.write_text("{}")
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    lines: list[str] = []
    outcome = status_mod.deliver_spooled(
        spool, tmp_path / "lock", collector.url, str(token), attempts=2, backoff=0.1, timeout=1.0, log=lines.append
    )
    assert outcome["delivered"] is False and collector.requests == []
    assert "skipped" in lines[0] and "mode 0644" in lines[0] and TOKEN not in lines[0]
