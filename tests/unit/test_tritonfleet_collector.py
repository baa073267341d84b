# SPDX-License-Identifier: Apache-2.0
"""tools/tritonfleet_collector.py on a loopback port, fed by the hosts' own sender
(module_utils/triton_status.py post_status): stores documents per host, refuses wrong tokens and
bodies that are not status documents, and never logs a token."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from ansible.module_utils import triton_status as status_mod

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import tritonfleet_collector as collector_mod  # noqa: E402  (tools/ is not a package)

TOKEN = "collector-token-4f2a"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(url, storage dir) of a collector expecting TOKEN; it logs on stderr (read with capsys)."""
    store = tmp_path / "collected"
    store.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), collector_mod.handler(store, TOKEN))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tritonfleet/status", store
    finally:
        server.shutdown()
        server.server_close()


def _send(url: str, document: object, token: str | None) -> tuple[dict, list[str]]:
    lines: list[str] = []
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    outcome = status_mod.post_status(url, body, token, attempts=1, backoff=1.0, timeout=5.0, log=lines.append)
    return outcome, lines


def _document(host: str = "orin-7") -> dict:
    return status_mod.build_status(host, {"verdict": "passed"}, {"verdict": "passed"}, 1764600000.0, 900)


def test_a_status_document_is_stored_per_host(collector, capsys) -> None:
    url, store = collector
    outcome, _ = _send(url, _document(), TOKEN)
    assert (outcome["delivered"], outcome["status"]) == (True, 204)
    assert json.loads((store / "orin-7.json").read_text()) == _document()
    assert sorted(path.name for path in store.iterdir()) == ["orin-7.json"]  # no temporary file left
    assert "-> 204 stored orin-7.json" in capsys.readouterr().err


def test_a_wrong_or_missing_token_is_rejected_and_logged_without_it(collector, capsys) -> None:
    url, store = collector
    for token in ("not-the-token", None):
        outcome, lines = _send(url, _document(), token)
        assert outcome["status"] == 401 and not outcome["delivered"], outcome
        assert "attempt 1/1: HTTP 401 Unauthorized: the collector rejected the bearer token" in lines[0], lines
    assert list(store.iterdir()) == []
    log = capsys.readouterr().err
    assert log.count("-> 401 rejected") == 2
    assert "not-the-token" not in log and TOKEN not in log


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body is not JSON"),
        ({"kind": "something.else", "host": "orin-7"}, "not a tritonfleet.status document"),
        ({"kind": "tritonfleet.status", "host": "../etc/passwd"}, "names no usable host"),
        ({"kind": "tritonfleet.status", "host": ".hidden"}, "names no usable host"),
    ],
)
def test_bodies_that_are_not_status_documents_are_refused(collector, capsys, body, reason: str) -> None:
    url, store = collector
    outcome, _ = _send(url, body, TOKEN)
    assert outcome["status"] == 400 and not outcome["delivered"]
    log = capsys.readouterr().err
    assert "-> 400 " in log and reason in log, log
    assert list(store.iterdir()) == []


def test_a_newer_document_replaces_the_hosts_previous_one(collector) -> None:
    url, store = collector
    first, second = _document(), _document()
    second["verdict"] = "rolled back"
    for document in (first, second):
        assert _send(url, document, TOKEN)[0]["delivered"]
    assert json.loads((store / "orin-7.json").read_text())["verdict"] == "rolled back"
