# SPDX-License-Identifier: Apache-2.0
"""Fleet status from collected per-host status documents (pull-mode devices, or any host that publishes).

A collector stores each document a host POSTs (``module_utils/triton_status.py``) as one JSON
file per host in a directory. :func:`build_status_report` turns that directory into the fleet
report a rollout writes (``module_utils/triton_fleet_report.py``: same rows, same renderers,
same per-host ``verify.json``/``verify.md`` beside it), with each row's age and the hosts that
have not reported within ``stale_intervals`` of their own interval flagged as stale.
Everything here is pure except :func:`read_collected` and :func:`write_verify_reports`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_fleet_report import build_report, with_verify_reports
from ansible.module_utils.triton_report import write_report as write_verify_report
from ansible.module_utils.triton_status import KIND, SCHEMA_VERSION, iso_time


class FleetStatusError(ValueError):
    """Collected documents the status report cannot be built from."""


def parse_document(text: str, source: str) -> dict[str, Any]:
    """Return the status document in ``text`` (read from ``source``) after checking its shape.

    Raises FleetStatusError when it is not JSON, not a tritonfleet status document of a known
    schema, or lacks the host, the publication time, the interval or the rollout record.
    """
    try:
        data = json.loads(text)
    except ValueError as err:
        raise FleetStatusError(
            f"{source} is not JSON ({err}); supported: the status documents hosts POST "
            "(triton_status_publish); remove the file or let the host publish again."
        ) from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise FleetStatusError(
            f"{source} is not a tritonfleet status document (kind {kind!r}); supported: kind {KIND!r}; "
            "keep only the documents hosts POST in the collected directory."
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise FleetStatusError(
            f"{source} has status schema_version {data.get('schema_version')!r}; supported: {SCHEMA_VERSION}; "
            "run the same tritonfleet release on the hosts and the controller."
        )
    missing = [
        key
        for key, types in (("host", str), ("published", (int, float)), ("interval_s", int), ("result", dict))
        if not isinstance(data.get(key), types)
    ]
    if missing or not data["host"]:
        raise FleetStatusError(
            f"{source} lacks {', '.join(missing) or 'host'}; supported: documents with host, published, interval_s "
            "and result; let the host publish again."
        )
    return data


def read_collected(collected_dir: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Read every ``*.json`` in ``collected_dir``: (host -> newest document, problems).

    A file that is not a status document is a problem (its message), not a failure, so one
    bad upload does not hide the fleet. When two files name the same host the newer
    publication wins. Raises FleetStatusError when the directory cannot be read.
    """
    try:
        files = sorted(path for path in collected_dir.iterdir() if path.suffix == ".json" and path.is_file())
    except OSError as err:
        raise FleetStatusError(
            f"The collected status directory {collected_dir} cannot be read: {err.strerror or err}; supported: a "
            "directory with one JSON document per host (what the collector stores); set "
            "triton_fleet_status_collected_dir to it."
        ) from None
    documents: dict[str, dict[str, Any]] = {}
    problems = []
    for path in files:
        try:
            document = parse_document(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{path} cannot be read: {err}")
            continue
        except FleetStatusError as err:
            problems.append(str(err))
            continue
        host = document["host"]
        if host not in documents or document["published"] > documents[host]["published"]:
            documents[host] = document
    return documents, problems


def staleness(document: dict[str, Any] | None, now: float, stale_intervals: int) -> dict[str, Any]:
    """Return ``{reported_at, age_s, interval_s, stale}`` for one host's newest document.

    Stale: nothing reported (``document`` None), or the last report is older than
    ``stale_intervals`` times the interval the host itself announced.
    """
    if document is None:
        return {"reported_at": None, "age_s": None, "interval_s": None, "stale": True}
    age = max(now - float(document["published"]), 0.0)
    interval = int(document["interval_s"])
    return {
        "reported_at": document.get("published_at") or iso_time(float(document["published"])),
        "age_s": round(age),
        "interval_s": interval,
        "stale": age > stale_intervals * interval,
    }


def _stale_finding(info: dict[str, Any], stale_intervals: int) -> str:
    if info["reported_at"] is None:
        return "stale: no status report collected from this host"
    return (
        f"stale: last report {info['reported_at']}, {info['age_s']} s ago, more than {stale_intervals} "
        f"interval(s) of {info['interval_s']} s"
    )


def write_verify_reports(
    documents: dict[str, dict[str, Any]], reports_dir: Path, check_mode: bool
) -> tuple[bool, list[str]]:
    """Write each document's verification report to ``<reports_dir>/<host>/verify.{json,md}``.

    The same files, byte for byte, as the verify role writes for a pushed host, so the fleet
    report links and reads them the same way. Returns (changed, host names written). Raises
    OSError.
    """
    changed, written = False, []
    for host, document in sorted(documents.items()):
        if not isinstance(document.get("verify"), dict) or "/" in host or host in ("", ".", ".."):
            continue
        host_changed, _ = write_verify_report(reports_dir / host, document["verify"], check_mode)
        changed |= host_changed
        written.append(host)
    return changed, written


def build_status_report(
    status_id: str,
    documents: dict[str, dict[str, Any]],
    *,
    reports_dir: Path,
    fleet_dir: Path,
    now: float,
    stale_intervals: int,
    expected_hosts: list[str] | None = None,
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """Return the fleet report of the collected ``documents`` as of ``now``.

    One row per host, built exactly as a rollout builds it (:func:`normalize_host` of the
    host's rollout record plus its verify report read from ``reports_dir``), then marked with
    its staleness. Hosts in ``expected_hosts`` without a document get a stale row that says
    so. ``problems`` (unreadable uploads) are kept in the report.
    """
    hosts = sorted(documents) + [host for host in expected_hosts or [] if host not in documents]
    results = with_verify_reports({host: documents[host]["result"] for host in documents}, reports_dir, fleet_dir)
    for host in hosts:
        if host not in documents:
            results[host] = {"verdict": "unreachable", "findings": []}
    report = build_report(
        status_id,
        [hosts] if hosts else [],
        results,
        done_batches=1 if hosts else 0,
        max_fail_percentage=100,
        finished=iso_time(now),
        final=True,
    )
    rows = []
    for row in report["hosts"]:
        document = documents.get(row["host"])
        info = staleness(document, now, stale_intervals)
        if info["stale"]:
            # A host that never reported has no findings of its own, only this one.
            row["findings"] = [_stale_finding(info, stale_intervals)] + (row["findings"] if document else [])
        rows.append(dict(row, **info))
    report.update(
        kind="status",
        hosts=rows,
        stale_intervals=stale_intervals,
        stale_hosts=[row["host"] for row in rows if row["stale"]],
        problems=list(problems or []),
    )
    return report
