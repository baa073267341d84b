# SPDX-License-Identifier: Apache-2.0
"""The run's record: steps, the commands they ran, figures; written as JSON and as a Markdown summary.

``Recorder`` keeps one dict (schema below) and rewrites ``gpu-proof.json`` and ``gpu-proof.md``
in the output folder after every step, so a run stopped at the device tool's limit still brings
back everything up to its last finished step. ``render_markdown`` is a pure function of that dict.

Record (schema_version 1)::

    {schema_version, kit, dry_run, started_at, finished_at, duration_s, command,
     carry: <carry manifest>, tree: {files, digest, matches_carry},
     machine: <probe>, preparations: [{what, why, command}],
     steps: [{name, title, status: passed|failed|skipped, reason, started_at, duration_s,
              commands: [{command, rc, duration_s, log, tail}], notes: [..]}],
     figures: [{step, key, value, unit, source, evidence}]}

``evidence`` is false for every figure of a dry run: those readings come from the test-only
NVML library, never from a GPU.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RECORD_NAME = "gpu-proof.json"
SUMMARY_NAME = "gpu-proof.md"
TAIL_LINES = 30


class StepFailed(Exception):
    """A step's check did not hold; the message is the recorded reason."""


def utc_now() -> str:
    """The current time as ISO 8601 UTC, seconds precision."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class Step:
    """One step of the run, as recorded; the step's code adds commands, figures and notes."""

    def __init__(self, recorder: Recorder, entry: dict[str, Any]) -> None:
        self._recorder = recorder
        self.entry = entry

    @property
    def name(self) -> str:
        return str(self.entry["name"])

    def command(self, command: str, rc: int | None, duration_s: float, log: str, output: str) -> None:
        """Record one command the step ran (its shell-quoted form), with its exit status and output tail."""
        self.entry["commands"].append(
            {"command": command, "rc": rc, "duration_s": round(duration_s, 2), "log": log, "tail": tail(output)}
        )

    def figure(self, key: str, value: Any, unit: str, source: str) -> None:
        """Record one measured or read value; ``key`` is unique within the step."""
        self._recorder.record["figures"].append(
            {
                "step": self.name,
                "key": key,
                "value": value,
                "unit": unit,
                "source": source,
                "evidence": not self._recorder.record["dry_run"],
            }
        )

    def note(self, text: str) -> None:
        self.entry["notes"].append(text)


class Recorder:
    """Holds the record and writes it to ``out_dir`` after each step."""

    def __init__(self, out_dir: Path, dry_run: bool, command: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.out_dir = out_dir
        self.clock = clock
        self.started = clock()
        self.record: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kit": "tritonfleet GPU proof kit (tools/gpu-proof, docs/gpu-evidence.md)",
            "dry_run": dry_run,
            "started_at": utc_now(),
            "finished_at": None,
            "duration_s": None,
            "command": command,
            "carry": None,
            "tree": None,
            "machine": None,
            "preparations": [],
            "steps": [],
            "figures": [],
        }
        self.after_step: list[Callable[[], None]] = []

    @contextmanager
    def step(self, name: str, title: str, skip_reason: str | None = None) -> Iterator[Step]:
        """Run the body as step ``name``: a StepFailed or any exception fails it, the run goes on.

        With ``skip_reason`` the body must not run: ``step.entry["status"]`` is already
        ``skipped`` when it is entered, and callers check ``skipped(step)`` first.
        """
        entry: dict[str, Any] = {
            "name": name,
            "title": title,
            "status": "skipped" if skip_reason else "running",
            "reason": skip_reason,
            "started_at": utc_now(),
            "duration_s": None,
            "commands": [],
            "notes": [],
        }
        self.record["steps"].append(entry)
        started = self.clock()
        step = Step(self, entry)
        try:
            yield step
            if entry["status"] == "running":
                entry["status"] = "passed"
        except StepFailed as failure:
            entry.update(status="failed", reason=str(failure))
        except Exception:
            entry.update(status="failed", reason="the kit's own code failed:\n" + traceback.format_exc(limit=8))
        finally:
            entry["duration_s"] = round(self.clock() - started, 2)
            self.write()

    def finish(self) -> None:
        self.record["finished_at"] = utc_now()
        self.record["duration_s"] = round(self.clock() - self.started, 1)
        self.write()

    def write(self) -> None:
        """Write the JSON record and the Markdown summary, then run the ``after_step`` hooks."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / RECORD_NAME).write_text(json.dumps(self.record, indent=2, default=str) + "\n")
        (self.out_dir / SUMMARY_NAME).write_text(render_markdown(self.record))
        for hook in self.after_step:
            hook()


def skipped(step: Step) -> bool:
    """True when the step was entered as skipped (its body must do nothing)."""
    return step.entry["status"] == "skipped"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _bytes_text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 20:
        return f"{value} ({value / (1 << 20):.0f} MiB)"
    return _cell(value)


def render_markdown(record: dict[str, Any]) -> str:
    """The Markdown summary of a record: machine, steps, figures, failures, preparations, commands."""
    machine = record.get("machine") or {}
    gpus = machine.get("nvidia_smi_gpus") or []
    carry = record.get("carry") or {}
    lines = [f"# tritonfleet GPU proof: {record['started_at']}", ""]
    if record["dry_run"]:
        lines += [
            "**DRY RUN on a machine without a GPU: NVML readings come from the test-only libnvidia-ml; "
            "steps that need a GPU are skipped. Nothing here is GPU evidence.**",
            "",
        ]
    lines += [
        f"- Machine: {', '.join(gpus) or 'no GPU listed by nvidia-smi'}; {machine.get('os', '?')}, kernel "
        f"{machine.get('kernel', '?')}, Python {machine.get('python_version', '?')} ({machine.get('python', '?')})",
        f"- Carry: prepared {carry.get('created_at', '?')} from commit {carry.get('git_commit', '?')}"
        + (" with uncommitted changes" if carry.get("git_dirty") else "")
        + f", {carry.get('total_bytes', '?')} bytes",
        f"- Working tree: {'matches' if (record.get('tree') or {}).get('matches_carry') else 'differs from'} "
        "the tree the carry was prepared from",
        f"- Command: `{record['command']}`",
        f"- Finished: {record.get('finished_at') or 'not yet (record written after each step)'}"
        + (f", {record['duration_s']} s" if record.get("duration_s") is not None else ""),
        "",
        "## Steps",
        "",
        "| step | status | seconds | what it shows |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {s['name']} | {s['status']} | {_cell(s['duration_s'])} | {_cell(s['title'])} |" for s in record["steps"]
    ]
    lines += ["", "## Figures", "", "| step | figure | value | unit | source |", "| --- | --- | --- | --- | --- |"]
    for figure in record["figures"]:
        value = _bytes_text(figure["value"]) if figure["unit"] == "bytes" else _cell(figure["value"])
        source = figure["source"] + ("" if figure["evidence"] else " (dry run)")
        lines.append(f"| {figure['step']} | {figure['key']} | {value} | {figure['unit']} | {_cell(source)} |")
    failed = [s for s in record["steps"] if s["status"] != "passed"]
    if failed:
        lines += ["", "## Failed and skipped steps", ""]
        for step in failed:
            lines += [f"### {step['name']}: {step['status']}", "", "```", str(step["reason"] or "").strip(), "```"]
            last = next((c for c in reversed(step["commands"]) if c["rc"] != 0), None)
            if last:
                lines += ["", f"Last failing command (rc {last['rc']}): `{last['command']}`", "", "```"]
                lines += [last["tail"], "```"]
            lines.append("")
    if record["preparations"]:
        lines += ["", "## Host preparations (what the machine lacked, and what the kit did about it)", ""]
        lines += [f"- {p['what']}: {p['why']} (`{p['command']}`)" for p in record["preparations"]]
    notes = [(s["name"], n) for s in record["steps"] for n in s["notes"]]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {name}: {note}" for name, note in notes]
    lines += ["", "## Commands", "", "| step | rc | seconds | command |", "| --- | --- | --- | --- |"]
    for step in record["steps"]:
        lines += [
            f"| {step['name']} | {c['rc']} | {_cell(c['duration_s'])} | `{_cell(c['command'])}` |"
            for c in step["commands"]
        ]
    lines.append("")
    return "\n".join(lines)
