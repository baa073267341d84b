# SPDX-License-Identifier: Apache-2.0
"""Fleet rollout report: batch plan, per-host verdicts, JSON / Markdown / HTML rendering.

``playbooks/rollout.yml`` collects one result dict per host (``__triton_rollout_result``) and
calls the ``triton_fleet_report`` module on the controller after every batch. Everything here
is pure except :func:`write_report` and :func:`read_verify_report`, which only touch paths
under the directories they are given.

A per-host result, as the playbook records it (every key optional)::

    {"batch": 2, "started": 1764022800.1, "finished": 1764022831.9, "platform": "cpu",
     "release_before": "2.50.0", "release_after": "2.51.0", "verdict": "passed",
     "failed_task": "Ensure ...", "findings": ["..."], "plan": {"instance_kind": "KIND_CPU"},
     "models": {"add_sub": [{"name": "add_sub_0", "kind": "KIND_CPU", "count": 1, "gpus": []}]}}
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# Verdicts a host can end a rollout with. "rolled back": it failed and serves its previous
# release again; "failed": it failed and there was nothing (or no way) to roll back to.
VERDICTS = ("passed", "rolled back", "failed", "unreachable", "planned", "pending", "not reached")
FAILED_VERDICTS = ("rolled back", "failed", "unreachable")

REPORT_FILES = ("fleet.json", "fleet.md", "fleet.html")


class FleetReportError(ValueError):
    """A rollout description the report cannot be built from (bad batch size, unknown verdict)."""


def serial_to_int(value: int | str, total: int) -> int:
    """Return how many of ``total`` hosts one ``serial:`` entry takes, as Ansible counts them.

    Mirrors ``ansible.utils.helpers.pct_to_int``: ``"25%"`` of 7 hosts is ``int(7 * 0.25)``
    = 1, never less than 1; an int is taken as is; ``0`` or a negative value means "all".
    Raises FleetReportError for anything else (``"a"``, ``"10 %"``, ``1.5``).
    """
    if isinstance(value, bool):
        raise FleetReportError(_batch_error(value))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("%"):
                return int((int(text[:-1]) / 100.0) * total) or 1
            return int(text)
        except ValueError:
            raise FleetReportError(_batch_error(value)) from None
    raise FleetReportError(_batch_error(value))


DEFAULT_BATCHES: tuple[int | str, ...] = (1, "25%", "100%")


def parse_batches(value: object) -> list[int | str]:
    """Return ``triton_rollout_batches`` as ``serial:`` takes it, from any form an operator passes.

    A YAML/JSON list (``[1, "25%", "100%"]``), a list of strings as an AWX multiselect survey
    gives (``["1", "25%"]``), or one string as a text survey gives (``"1, 25%, 100%"``); empty
    or unset means the default. Raises FleetReportError for anything that is not a batch size.
    """
    if value is None or value == "" or value == []:
        return list(DEFAULT_BATCHES)
    items = [part for part in re.split(r"[,\s]+", value.strip()) if part] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        items = [items]
    sizes: list[int | str] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        serial_to_int(text, 100)  # raises for what is not a size
        sizes.append(text if isinstance(text, str) and text.endswith("%") else int(text))
    return sizes


def rollout_serial(batches: object, canary: str | None) -> dict[str, Any]:
    """The ``serial:`` of the canary play and of the batch play (one decision, read by both plays
    and by the fleet report): with an explicit canary group it runs whole and every size splits
    the rest; without one the first size picks the canary and the others split the rest (the
    last one repeats)."""
    sizes = parse_batches(batches)
    if canary:
        return {"canary": "100%", "rest": sizes}
    return {"canary": sizes[0], "rest": sizes[1:] or sizes[-1:]}


def report_root(project_dir: str, environ: dict[str, str] | None = None) -> str:
    """Where reports go: ``<runner artifacts dir>/reports`` under ansible-runner (AWX, AAP), which
    keeps its artifacts after the job while the project directory is thrown away, else
    ``<project>/reports``."""
    artifacts = (os.environ if environ is None else environ).get("AWX_ISOLATED_DATA_DIR")
    return os.path.join(artifacts, "reports") if artifacts else os.path.realpath(os.path.join(project_dir, "reports"))


def _batch_error(value: object) -> str:
    return (
        f"triton_rollout_batches has an entry that is not a batch size: {value!r} (type "
        f"{type(value).__name__}); supported: a host count (1, 2) or a percentage string "
        '("25%"); fix the entry in triton_rollout_batches.'
    )


def _serial_batches(hosts: list[str], sizes: list[int | str]) -> list[list[str]]:
    """Split ``hosts`` the way Ansible's ``_get_serialized_batches`` does for ``serial: sizes``."""
    remaining = list(hosts)
    entries = list(sizes) or [0]
    batches: list[list[str]] = []
    index = 0
    while remaining:
        count = serial_to_int(entries[min(index, len(entries) - 1)], len(hosts))
        if count <= 0:
            batches.append(remaining)
            break
        batches.append(remaining[:count])
        remaining = remaining[count:]
        index += 1
    return batches


def plan_batches(hosts: list[str], batches: list[int | str], canary: list[str] | None = None) -> list[list[str]]:
    """Return the batches ``playbooks/rollout.yml`` runs, canary first.

    ``hosts``: the rollout's targets in inventory order (after ``--limit``). ``canary``: the
    hosts of an explicit canary group; when empty, the first entry of ``batches`` picks the
    canary from ``hosts`` and the remaining entries split the rest (the last entry repeats, as
    in ``serial:``, so ``[2]`` means pairs throughout). Percentages count the
    hosts of the play they apply to (the canary play, then the hosts after the canary),
    exactly as the playbook's ``serial:`` does.
    """
    if canary:
        first = [host for host in hosts if host in canary]
        rest_sizes = list(batches)
    else:
        sizes = list(batches) or [0]
        first = _serial_batches(hosts, sizes[:1])[0] if hosts else []
        rest_sizes = sizes[1:] or sizes[-1:]
    rest = [host for host in hosts if host not in first]
    plan = [first] if first else []
    return plan + _serial_batches(rest, rest_sizes)


def _text_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if item not in (None, "")]
    return [str(value)] if value != "" else []


def _models_of(value: object) -> list[dict[str, str]]:
    """Return ``[{name, kind}]`` from a list of such dicts or from the models role's
    ``instance_groups`` (model name -> ``[{kind, count, gpus}]``); kinds of a model's groups
    are joined with commas."""
    if isinstance(value, dict):
        models = []
        for name, groups in sorted(value.items()):
            kinds = [str(group.get("kind")) for group in groups or [] if isinstance(group, dict) and group.get("kind")]
            models.append({"name": str(name), "kind": ",".join(dict.fromkeys(kinds))})
        return models
    return [
        {"name": str(model.get("name", "")), "kind": str(model.get("kind") or "")}
        for model in value or []
        if isinstance(model, dict) and model.get("name")
    ]


def normalize_host(name: str, raw: dict[str, Any] | None, batch: int | None, reached: bool) -> dict[str, Any]:
    """Return one host's report row from the raw result the playbook recorded.

    ``raw`` is None or empty for a host that recorded nothing: "unreachable" when its batch
    ran (``reached``; the connection dropped before it could record a result), "not reached"
    when the rollout stopped before its batch. Raises FleetReportError on an unknown verdict.
    """
    raw = dict(raw or {})
    verdict = raw.get("verdict") or ("unreachable" if reached else "not reached")
    if verdict not in VERDICTS:
        raise FleetReportError(
            f"host {name} recorded rollout verdict {verdict!r}; supported: {', '.join(VERDICTS)}; "
            "set __triton_rollout_result.verdict in playbooks/rollout.yml to one of them."
        )
    started, finished = raw.get("started"), raw.get("finished")
    duration = None
    if isinstance(started, (int, float)) and isinstance(finished, (int, float)) and finished >= started:
        duration = round(float(finished) - float(started), 1)
    verify = raw.get("verify_report") or {}
    findings = _text_list(raw.get("findings"))
    findings += [item for item in _text_list(verify.get("findings")) if item not in findings]
    if verdict == "unreachable" and not findings:
        findings = ["no result: the host became unreachable during its batch"]
    models = _models_of(raw.get("models"))
    return {
        "host": name,
        "batch": batch,
        "platform": raw.get("platform"),
        "release_before": raw.get("release_before"),
        "release_after": raw.get("release_after"),
        "models": models,
        # An embedded application, where the host declares one: {name, release}.
        "application": raw.get("application") or None,
        "verdict": verdict,
        "failed_task": raw.get("failed_task"),
        "duration_s": duration,
        "findings": findings,
        "plan": raw.get("plan") or {},
        "instance_groups": raw["models"] if isinstance(raw.get("models"), dict) else {},
        "verify_report": {kind: verify[kind] for kind in ("json", "md") if kind in verify},
    }


def batch_summary(number: int, total: int, rows: list[dict[str, Any]]) -> str:
    """Return the progress line for one batch: ``batch 2/3: hosts a,b — passed: a; failed: b``.

    Hosts that did not pass are grouped by verdict after the passed ones, so an operator
    reading the log sees at once which hosts need attention.
    """
    names = ",".join(row["host"] for row in rows) or "(none)"
    parts = [f"passed: {','.join(row['host'] for row in rows if row['verdict'] == 'passed') or '-'}"]
    for verdict in VERDICTS[1:]:
        hosts = [row["host"] for row in rows if row["verdict"] == verdict]
        if hosts:
            parts.append(f"{verdict}: {','.join(hosts)}")
    if not any(row["verdict"] in FAILED_VERDICTS for row in rows):
        parts.append("failed: -")
    return f"batch {number}/{total}: hosts {names} — {'; '.join(parts)}"


def batch_stops_rollout(rows: list[dict[str, Any]], canary: bool, max_fail_percentage: float) -> bool:
    """Return whether this batch's failures stop the rollout.

    The same rules Ansible applies to the playbook: any failure in the canary play
    (``any_errors_fatal``), a whole batch failed, or more than ``max_fail_percentage`` percent
    of the batch failed (strictly more, as ``max_fail_percentage`` counts).
    """
    if not rows:
        return False
    failed = sum(1 for row in rows if row["verdict"] in FAILED_VERDICTS)
    if canary:
        return failed > 0
    return failed == len(rows) or failed / len(rows) > max_fail_percentage / 100.0


def build_report(
    rollout_id: str,
    plan: list[list[str]],
    results: dict[str, dict[str, Any]],
    *,
    done_batches: int,
    max_fail_percentage: float,
    explicit_canary: bool = False,
    check_mode: bool = False,
    started: str | None = None,
    finished: str | None = None,
    final: bool = False,
) -> dict[str, Any]:
    """Return the fleet report for a rollout whose first ``done_batches`` batches have run.

    ``plan`` comes from :func:`plan_batches`; ``results`` maps host -> raw result. ``status``
    is "complete" once ``final`` (the last play ran) or every batch ran, "stopped" when a run
    batch crossed the failure threshold, else "in progress". ``explicit_canary`` only labels
    batch 1 as a canary group rather than the first batch.
    """
    if done_batches < 0 or done_batches > len(plan):
        raise FleetReportError(
            f"rollout {rollout_id} reports batch {done_batches} of a {len(plan)}-batch plan; "
            f"supported: 0..{len(plan)}; the batch counter and triton_rollout_batches disagree, rerun the rollout."
        )
    total = len(plan)
    hosts: list[dict[str, Any]] = []
    batches: list[dict[str, Any]] = []
    stopped_at = None
    for number, members in enumerate(plan, start=1):
        reached = number <= done_batches
        rows = [normalize_host(host, results.get(host) if reached else None, number, reached) for host in members]
        if not reached:
            rows = [dict(row, verdict="pending") for row in rows]
        hosts.extend(rows)
        label = "canary" if number == 1 and (explicit_canary or total > 1) else f"batch {number}"
        batch = {
            "number": number,
            "label": label,
            "hosts": members,
            "ran": reached,
            "summary": batch_summary(number, total, rows) if reached else f"batch {number}/{total}: not run",
        }
        batches.append(batch)
        if reached and stopped_at is None and batch_stops_rollout(rows, number == 1, max_fail_percentage):
            stopped_at = number
    if stopped_at is not None and stopped_at < total:
        status = "stopped"
    elif final or done_batches == total:
        status = "complete"
    else:
        status = "in progress"
    if status != "in progress":
        for row in hosts:
            if row["verdict"] == "pending":
                row["verdict"] = "not reached"
    counts = {verdict: sum(1 for row in hosts if row["verdict"] == verdict) for verdict in VERDICTS}
    return {
        "schema_version": SCHEMA_VERSION,
        "rollout_id": rollout_id,
        "check_mode": check_mode,
        "started": started,
        "finished": finished,
        "status": status,
        "stopped_at_batch": stopped_at,
        "max_fail_percentage": max_fail_percentage,
        "batches_total": total,
        "batches_done": done_batches,
        "counts": {verdict: count for verdict, count in counts.items() if count},
        "batches": batches,
        "hosts": hosts,
    }


def with_verify_reports(results: dict[str, Any], reports_dir: Path, fleet_dir: Path) -> dict[str, dict[str, Any]]:
    """Return ``results`` with each host's ``verify_report`` (links and verdict) read from ``reports_dir``.

    The one way a fleet report row learns about the host's own report, for rollouts and for
    status reports built from collected documents alike.
    """
    return {
        host: dict(raw or {}, verify_report=read_verify_report(reports_dir, host, fleet_dir / "latest"))
        for host, raw in results.items()
    }


def read_verify_report(reports_dir: Path, host: str, fleet_dir: Path) -> dict[str, Any]:
    """Return links to ``<reports_dir>/<host>/verify.{json,md}`` relative to ``fleet_dir``, plus its verdict.

    Reads ``verify.json`` (written by ``playbooks/verify.yml``) only for its top-level
    ``verdict``/``status`` and its error ``findings`` (``{severity, code, message}``); a
    missing or unreadable file gives no links.
    """
    links: dict[str, Any] = {}
    for suffix in ("json", "md"):
        path = reports_dir / host / f"verify.{suffix}"
        if path.is_file():
            links[suffix] = os.path.relpath(path, fleet_dir)
    try:
        data = json.loads((reports_dir / host / "verify.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return links
    if isinstance(data, dict):
        verdict = data.get("verdict", data.get("status"))
        if isinstance(verdict, str):
            links["verdict"] = verdict
        findings = data.get("findings")
        if isinstance(findings, list):
            # Warnings stay in the host's own report; the fleet table carries what failed it.
            links["findings"] = [
                _finding_text(item)
                for item in findings
                if item and (not isinstance(item, dict) or item.get("severity", "error") == "error")
            ]
    return links


def _finding_text(item: object) -> str:
    if isinstance(item, dict):
        text = item.get("message") or item.get("msg") or item.get("detail") or json.dumps(item, sort_keys=True)
        check = item.get("code") or item.get("check") or item.get("name")
        return f"{check}: {text}" if check else str(text)
    return str(item)


def _release(row: dict[str, Any]) -> str:
    if not row["release_before"] and not row["release_after"]:
        return "-"
    before = row["release_before"] or "none"
    after = row["release_after"] or "none"
    return before if before == after else f"{before} → {after}"


def _models(row: dict[str, Any]) -> str:
    models = ", ".join(f"{m['name']} ({m['kind']})" if m["kind"] else m["name"] for m in row["models"]) or "-"
    app = row.get("application")
    return f"{models}; application {app.get('name')} {app.get('release') or '-'}" if app else models


def _duration(row: dict[str, Any]) -> str:
    return "-" if row["duration_s"] is None else f"{row['duration_s']:.1f} s"


def _title(report: dict[str, Any]) -> str:
    return f"Fleet {'status' if report.get('kind') == 'status' else 'rollout'} {report['rollout_id']}"


def _verdict(row: dict[str, Any]) -> str:
    return f"{row['verdict']} (stale)" if row.get("stale") else row["verdict"]


def headline(report: dict[str, Any]) -> str:
    """The one-line summary at the top of every rendering of the report."""
    counts = ", ".join(f"{count} {verdict}" for verdict, count in report["counts"].items()) or "no hosts"
    if report.get("kind") == "status":
        stale = report.get("stale_hosts") or []
        return (
            f"Status {report['rollout_id']} as of {report['finished']}: {len(report['hosts'])} host(s), {counts}; "
            f"{len(stale)} stale (no report within {report['stale_intervals']} intervals)"
            + (f": {', '.join(stale)}" if stale else "")
        )
    mode = " (check mode: nothing changed)" if report["check_mode"] else ""
    stop = f" at batch {report['stopped_at_batch']}" if report["stopped_at_batch"] else ""
    return (
        f"Rollout {report['rollout_id']}: {report['status']}{stop}{mode} — "
        f"{report['batches_done']}/{report['batches_total']} batches, {counts}"
    )


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    """Return the report as Markdown: headline, one line per batch, one table row per host."""
    lines = [f"# {_title(report)}", "", headline(report), ""]
    lines += [f"- {_md_cell(batch['summary'])}" for batch in report["batches"]]
    lines += [
        "",
        "| host | platform | release | models | verdict | duration | findings | verify |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["hosts"]:
        links = row["verify_report"]
        verify = " ".join(f"[{kind}]({links[kind]})" for kind in ("md", "json") if kind in links) or "-"
        findings = "<br>".join(_md_cell(item) for item in row["findings"]) or "-"
        cells = [
            _md_cell(row["host"]),
            _md_cell(row["platform"] or "-"),
            _md_cell(_release(row)),
            _md_cell(_models(row)),
            _verdict(row),
            _duration(row),
            findings,
            verify,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f0f0f0}.passed{background:#e6f4e6}.failed,.unreachable{background:#fbe3e3}
.rolled-back{background:#fff3cd}.not-reached,.pending,.planned{color:#666}ul{margin:0;padding-left:1.2em}
.stale td:first-child{font-style:italic;text-decoration:underline dotted}
"""


def render_html(report: dict[str, Any]) -> str:
    """Return the report as one self-contained HTML page (inline CSS, no scripts, no external assets).

    Every value from a host (names, findings, model names, links) is escaped.
    """
    esc = html.escape
    rows = []
    for row in report["hosts"]:
        links = row["verify_report"]
        verify = " ".join(
            f'<a href="{esc(links[kind], quote=True)}">{kind}</a>' for kind in ("md", "json") if kind in links
        )
        findings = "".join(f"<li>{esc(item)}</li>" for item in row["findings"])
        css = row["verdict"].replace(" ", "-") + (" stale" if row.get("stale") else "")
        cells = [
            esc(row["host"]),
            esc(row["platform"] or "-"),
            esc(_release(row)),
            esc(_models(row)),
            esc(_verdict(row)),
            esc(_duration(row)),
            f"<ul>{findings}</ul>" if findings else "-",
            verify or "-",
        ]
        rows.append(f'<tr class="{css}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    batches = "".join(f"<li>{esc(batch['summary'])}</li>" for batch in report["batches"])
    header = "".join(
        f"<th>{name}</th>"
        for name in ("host", "platform", "release", "models", "verdict", "duration", "findings", "verify")
    )
    title = esc(_title(report))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><p>{esc(headline(report))}</p><ul>{batches}</ul>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )


def render_all(report: dict[str, Any]) -> dict[str, str]:
    """Return file name -> content for the three report files."""
    return {
        "fleet.json": json.dumps(report, indent=2, sort_keys=True) + "\n",
        "fleet.md": render_markdown(report),
        "fleet.html": render_html(report),
    }


def _write_if_changed(path: Path, content: str) -> bool:
    try:
        if path.read_text(encoding="utf-8") == content:
            return False
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False) as handle:
        handle.write(content)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
    return True


def write_report(fleet_root: Path, report: dict[str, Any], check_mode: bool = False) -> tuple[bool, dict[str, str]]:
    """Write the report under ``<fleet_root>/<rollout_id>/`` and point ``<fleet_root>/latest`` at it.

    ``latest`` is a relative symlink replaced atomically, so a reader never sees a half-written
    pair and the per-host links (``../../<host>/verify.md``) resolve the same from both paths.
    Returns (changed, file name -> path). In ``check_mode`` nothing is written; changed tells
    whether something would be.
    """
    rollout_dir = fleet_root / report["rollout_id"]
    contents = render_all(report)
    paths = {name: str(rollout_dir / name) for name in contents}
    latest = fleet_root / "latest"
    latest_ok = latest.is_symlink() and os.readlink(latest) == report["rollout_id"]
    if check_mode:
        unchanged = latest_ok and all(_same(Path(paths[name]), text) for name, text in contents.items())
        return not unchanged, paths
    changed = False
    for name, text in contents.items():
        changed = _write_if_changed(Path(paths[name]), text) or changed
    if not latest_ok:
        link = fleet_root / f".latest.{os.getpid()}"
        if link.is_symlink():
            link.unlink()
        os.symlink(report["rollout_id"], link)
        os.replace(link, latest)
        changed = True
    return changed, paths


def _same(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, ValueError):
        return False
