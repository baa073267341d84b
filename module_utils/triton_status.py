# SPDX-License-Identifier: Apache-2.0
"""Fleet status from a device: Prometheus text-file metrics and the report POSTed as JSON.

After each run (``playbooks/rollout.yml``, which ``playbooks/pull.yml`` runs on a pulling device)
a host can publish what it ended with to places a fleet already watches:

- a metrics file for node_exporter's textfile collector (``--collector.textfile.directory``),
  which reads every ``*.prom`` file of that directory on each scrape, so the file is replaced
  atomically (written under a name without ``.prom``, then renamed);
- the status document (the rollout's record of the host plus its verification report) POSTed
  as JSON with a bearer token to an HTTP(S) endpoint, from a detached process that retries with
  back-off: the run that serves never waits for the collector.

The status document is also what ``playbooks/fleet_status.yml`` reads back
(``module_utils/triton_fleet_status.py``), so pulled and pushed fleets give the same report.
Everything here is pure except the functions named ``write_*``, ``read_*``, ``post_status`` and
``send_detached``, which only touch the paths and the URL they are given.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import ssl
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
KIND = "tritonfleet.status"
# Verdicts a host can end a real run with (module_utils/triton_fleet_report.py VERDICTS, less
# the ones only a controller assigns: planned, pending, not reached, unreachable).
RUN_VERDICTS = ("passed", "rolled back", "failed")
# Statuses worth another attempt: the collector is busy, restarting or behind a proxy that is.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "tritonfleet-status/1"


class StatusError(ValueError):
    """Settings or files the status cannot be published with; the message has the four parts."""


def iso_time(timestamp: float) -> str:
    """``1764022800.0`` -> ``"2025-11-24T22:20:00Z"``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_settings(url: str | None, attempts: int, backoff: float, timeout: float, interval: int) -> list[str]:
    """Return what is wrong with the publishing settings (empty when usable); nothing is read.

    ``url`` must be ``http://`` or ``https://`` with a host (or empty: no POST); attempts at least
    1, back-off and timeout positive, interval at least 60 s (the pull role's minimum).
    """
    problems = []
    if url:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            problems.append(
                f"triton_status_url is {redact_url(url)!r}; supported: an http:// or https:// URL with a host"
            )
    if attempts < 1:
        problems.append(f"triton_status_attempts is {attempts}; supported: 1 or more")
    if backoff <= 0 or timeout <= 0:
        problems.append(f"triton_status_backoff is {backoff} and triton_status_timeout {timeout}; supported: > 0")
    if interval < 60:
        problems.append(f"triton_status_interval is {interval} s; supported: 60 s or more")
    return problems


def redact_url(url: str) -> str:
    """The URL without user:password (a log or message never shows credentials)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.username is None and parsed.password is None:
        return url
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc += f":{parsed.port}"
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, parsed.query, parsed.fragment))


def read_token(path: Path) -> str:
    """Return the bearer token from ``path``: a regular file owned by root, unreadable to others.

    Raises StatusError when the file is missing, empty, or readable or writable by group or
    others (a token any local user can read is no credential). The token never appears in a
    message.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise StatusError(
                f"The status token file {path} is not a regular file; supported: a file owned by root with mode "
                "0600 or 0400 holding the token; point triton_status_token_file at such a file."
            )
        if info.st_uid != 0 or info.st_mode & 0o077:
            raise StatusError(
                f"The status token file {path} is owned by uid {info.st_uid} with mode "
                f"{stat.S_IMODE(info.st_mode):04o}; "
                "supported: owned by root (uid 0), no access for group or others (0600 or 0400); "
                f"run: chown root:root {path} && chmod 0600 {path}."
            )
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise StatusError(
            f"The status token file {path} does not exist; supported: a root-only file holding the collector's "
            "bearer token; create it (triton_pull_status_token does it for pulling devices) or set "
            "triton_status_token_file to an empty string for a collector without a token."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise StatusError(
            f"The status token file {path} cannot be read: {err.__class__.__name__}; supported: a readable "
            "UTF-8 file owned by root; fix the file."
        ) from None
    if not token or any(ch.isspace() for ch in token):
        raise StatusError(
            f"The status token file {path} holds {'nothing' if not token else 'whitespace inside the token'}; "
            "supported: the token alone on one line; write the collector's token into it."
        )
    return token


def models_by_kind(verify: Mapping[str, Any] | None, result: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Return instance kind -> ``{models, ready}`` for the models the host serves.

    From the verification report's ``models`` (the server's own view: state and the kinds of its
    instance groups) when there is one; else from the rollout record's rendered instance groups,
    with nothing known to be ready. A model with groups of two kinds counts under both.
    """
    kinds: dict[str, dict[str, int]] = {}
    if verify and isinstance(verify.get("models"), list):
        expected = verify.get("expected_instance_groups") or {}
        for model in verify["models"]:
            names = model.get("kinds") or sorted({g.get("kind") for g in expected.get(model.get("name"), [])})
            for kind in names or ["unknown"]:
                entry = kinds.setdefault(str(kind), {"models": 0, "ready": 0})
                entry["models"] += 1
                entry["ready"] += 1 if model.get("state") == "READY" else 0
        return kinds
    for groups in (result.get("models") or {}).values():
        for kind in sorted({g.get("kind") for g in groups or [] if isinstance(g, Mapping)} - {None}):
            kinds.setdefault(str(kind), {"models": 0, "ready": 0})["models"] += 1
    return kinds


def build_status(
    host: str,
    result: Mapping[str, Any],
    verify: Mapping[str, Any] | None,
    published: float,
    interval: int,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the status document a host publishes after a run.

    ``result`` is the rollout's record of the host (``__triton_rollout_result``: verdict,
    releases, models, plan, findings), ``verify`` this run's verification report (``verify.json``)
    or None when the run stopped before verification, ``previous`` the last document this host
    published (for the time of the last successful run). ``interval``: seconds until the next
    run, so a reader can tell a silent device from a busy one.
    """
    verdict = str(result.get("verdict") or "failed")
    last_success = published if verdict == "passed" else (previous or {}).get("last_success")
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "host": host,
        "published": published,
        "published_at": iso_time(published),
        "interval_s": int(interval),
        "verdict": verdict,
        "last_success": last_success,
        "last_success_at": iso_time(last_success) if isinstance(last_success, (int, float)) else None,
        "result": dict(result),
        "verify": dict(verify) if verify else None,
    }


def _label(value: object) -> str:
    """A label value in the text exposition format: backslash, quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    inner = ",".join(f'{name}="{_label(value)}"' for name, value in labels.items() if value is not None)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


def render_metrics(status: Mapping[str, Any]) -> str:
    """Return the status as Prometheus text exposition (format 0.0.4) for the textfile collector.

    Families: ``tritonfleet_info`` (host, platform), ``tritonfleet_verdict`` (a state set over
    passed / rolled back / failed), ``tritonfleet_release_info`` (server and models release
    served), ``tritonfleet_models`` and ``tritonfleet_models_ready`` per instance kind,
    ``tritonfleet_server_gpu_memory_bytes`` per GPU where NVML measured it,
    ``tritonfleet_last_run_timestamp_seconds`` and ``tritonfleet_last_success_timestamp_seconds``
    (absent until a run passed). node_exporter adds its own instance label.
    """
    result = status.get("result") or {}
    verify = status.get("verify") or {}
    versions = verify.get("versions") or {}
    lines: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        if not samples:
            return
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    family(
        "tritonfleet_info",
        "gauge",
        "The host as tritonfleet knows it (inventory name, platform).",
        [(_labels(host=status.get("host"), platform=result.get("platform") or "unknown"), 1)],
    )
    family(
        "tritonfleet_verdict",
        "gauge",
        "Verdict of the last tritonfleet run: 1 for the verdict it ended with.",
        [(_labels(verdict=verdict), 1 if status.get("verdict") == verdict else 0) for verdict in RUN_VERDICTS],
    )
    family(
        "tritonfleet_release_info",
        "gauge",
        "Triton server release and model repository release the host serves after the last run.",
        [
            (
                _labels(
                    server_version=result.get("release_after") or versions.get("server_version") or "none",
                    models_release=versions.get("models_release") or "unknown",
                ),
                1,
            )
        ],
    )
    kinds = models_by_kind(status.get("verify"), result)
    family(
        "tritonfleet_models",
        "gauge",
        "Models the host serves, per instance kind.",
        [(_labels(kind=kind), counts["models"]) for kind, counts in sorted(kinds.items())],
    )
    family(
        "tritonfleet_models_ready",
        "gauge",
        "Models the server reported READY in the last verification, per instance kind.",
        [(_labels(kind=kind), counts["ready"]) for kind, counts in sorted(kinds.items())],
    )
    memory = verify.get("gpu_memory") or {}
    family(
        "tritonfleet_server_gpu_memory_bytes",
        "gauge",
        "GPU memory the Triton server process uses, per GPU, as NVML measured it.",
        [
            (_labels(gpu=str(gpu.get("index")), uuid=gpu.get("uuid")), gpu["used_bytes"])
            for gpu in (memory.get("gpus") or [])
            if memory.get("measured") and isinstance(gpu.get("used_bytes"), int)
        ],
    )
    family(
        "tritonfleet_last_run_timestamp_seconds",
        "gauge",
        "When the last tritonfleet run published its status (Unix time).",
        [("", status["published"])],
    )
    if isinstance(status.get("last_success"), (int, float)):
        family(
            "tritonfleet_last_success_timestamp_seconds",
            "gauge",
            "When a tritonfleet run last passed on this host (Unix time).",
            [("", status["last_success"])],
        )
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` with ``text``: a temporary file in the same directory, fsynced, renamed.

    The temporary name starts with a dot and does not end in ``.prom``, so node_exporter never
    reads a half-written file. Raises OSError.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_previous(spool: Path) -> dict[str, Any] | None:
    """The last status document written to ``spool``, or None when there is none readable."""
    try:
        data = json.loads(spool.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == KIND else None


def backoff_delays(attempts: int, backoff: float, cap: float = 300.0) -> list[float]:
    """Seconds to wait before attempts 2..N: ``backoff``, doubling, each at most ``cap``."""
    return [min(backoff * 2**index, cap) for index in range(max(attempts - 1, 0))]


def post_status(
    url: str,
    body: bytes,
    token: str | None,
    *,
    attempts: int,
    backoff: float,
    timeout: float,
    log: Callable[[str], None],
    ca_file: str | None = None,
    token_source: str = "the token file",
    opener: Callable[..., Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST ``body`` (JSON) to ``url`` with ``Authorization: Bearer <token>``; retry with back-off.

    Retries after a connection error, a timeout or a status in RETRY_STATUSES, waiting
    :func:`backoff_delays` between attempts; any other answer ends it (401/403: the token was
    rejected). Every attempt is logged through ``log`` with the URL less its credentials and
    never with the token. Returns ``{delivered, status, attempts, reason}``; never raises for
    network errors.
    """
    shown = redact_url(url)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None
    send = opener or urllib.request.urlopen
    delays = backoff_delays(attempts, backoff)

    def say(text: str) -> None:
        log(text.replace(token, "<token>") if token else text)

    outcome: dict[str, Any] = {"delivered": False, "status": None, "attempts": 0, "reason": None}
    for attempt in range(1, attempts + 1):
        outcome["attempts"] = attempt
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        retry = False
        try:
            with send(request, timeout=timeout, context=context) as response:
                outcome.update(delivered=True, status=response.status, reason=f"HTTP {response.status}")
        except urllib.error.HTTPError as err:
            outcome.update(status=err.code, reason=f"HTTP {err.code} {err.reason}")
            retry = err.code in RETRY_STATUSES
            if err.code in (401, 403):
                outcome["reason"] += f": the collector rejected the bearer token from {token_source}"
        except OSError as err:  # URLError, timeouts, refused connections, TLS errors
            reason = getattr(err, "reason", err)
            outcome.update(status=None, reason=f"{reason.__class__.__name__}: {reason}")
            retry = True
        say(f"{iso_time(time.time())} POST {shown} attempt {attempt}/{attempts}: {outcome['reason']}")
        if outcome["delivered"] or not retry or attempt == attempts:
            break
        sleep(delays[attempt - 1])
    if not outcome["delivered"]:
        say(f"{iso_time(time.time())} POST {shown} gave up after {outcome['attempts']} attempt(s): {outcome['reason']}")
    return outcome


def _token_free(text: str) -> str:
    # A Bearer value in an exception text (never expected) is cut before anything is logged.
    return re.sub(r"Bearer\s+\S+", "Bearer <token>", text)


def append_log(path: Path) -> Callable[[str], None]:
    """A logger that appends one line per call to ``path`` (created 0640, directory 0755)."""

    def log(line: str) -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            with os.fdopen(descriptor, "a", encoding="utf-8") as stream:
                stream.write(_token_free(line) + "\n")

    return log


def send_detached(work: Callable[[], None]) -> int:
    """Run ``work`` in a grandchild that outlives the caller; return once it is started.

    Double fork with a new session: the caller (the module, whose stdout Ansible reads until
    EOF) returns at once, the grandchild has no terminal and no inherited stdio, and its exit
    is reaped by init. Returns the grandchild's pid (read from a pipe).
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover  (runs in the forked processes)
        try:
            os.close(read_end)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(write_end, str(grandchild).encode())
                os._exit(0)
            os.close(write_end)
            null = os.open(os.devnull, os.O_RDWR)
            for stream in (0, 1, 2):
                os.dup2(null, stream)
            os.chdir("/")
            work()
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        pid = int(reader.read() or 0)
    os.waitpid(child, 0)
    return pid


def deliver_spooled(
    spool: Path,
    lock: Path,
    url: str,
    token_file: str | None,
    *,
    attempts: int,
    backoff: float,
    timeout: float,
    log: Callable[[str], None],
    ca_file: str | None = None,
) -> dict[str, Any]:
    """Send the newest document in ``spool`` to ``url``, one sender at a time (``flock`` on ``lock``).

    A sender that waited for an earlier one sends what is in the spool then, so the collector
    gets the newest status. The token is read here, in the sender; a token problem is logged
    (without the token) and ends the delivery.
    """
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            body = spool.read_bytes()
        except OSError as err:
            log(f"{iso_time(time.time())} POST {redact_url(url)} skipped: spool {spool} unreadable: {err}")
            return {"delivered": False, "status": None, "attempts": 0, "reason": str(err)}
        token = None
        if token_file:
            try:
                token = read_token(Path(token_file))
            except StatusError as err:
                log(f"{iso_time(time.time())} POST {redact_url(url)} skipped: {err}")
                return {"delivered": False, "status": None, "attempts": 0, "reason": str(err)}
        return post_status(
            url,
            body,
            token,
            attempts=attempts,
            backoff=backoff,
            timeout=timeout,
            log=log,
            ca_file=ca_file,
            token_source=str(token_file),
        )


def publish(
    host: str,
    result: Mapping[str, Any],
    verify: Mapping[str, Any] | None,
    *,
    state_dir: Path,
    metrics_file: Path | None,
    url: str | None,
    token_file: str | None,
    ca_file: str | None,
    attempts: int,
    backoff: float,
    timeout: float,
    interval: int,
    log_file: Path,
    check_mode: bool,
    now: float,
    detach: Callable[[Callable[[], None]], int] = send_detached,
) -> dict[str, Any]:
    """Publish one run's status: spool it, write the metrics file, start the detached POST.

    Publishing never fails the run: a problem (bad settings, an unwritable path) comes back in
    ``warnings`` and what can still be published is. In ``check_mode`` nothing is written or
    sent. Returns ``{changed, status, metrics_file, spool, post, warnings}``; ``post`` is
    ``{queued, pid, url, log_file}`` (the URL without credentials).
    """
    problems = check_settings(url, attempts, backoff, timeout, interval)
    warnings = [f"status not posted: {problem}; fix the setting" for problem in problems]
    spool = state_dir / "status.json"
    status = build_status(host, result, verify, now, interval, read_previous(spool))
    post = {"queued": False, "pid": None, "url": redact_url(url) if url else None, "log_file": str(log_file)}
    outcome = {
        "changed": not check_mode,
        "status": {key: status[key] for key in ("host", "verdict", "published_at", "last_success_at", "interval_s")},
        "metrics_file": str(metrics_file) if metrics_file else None,
        "spool": str(spool),
        "post": post,
        "warnings": warnings,
    }
    if check_mode:
        return outcome
    try:
        write_atomic(spool, json.dumps(status, indent=2, sort_keys=True, default=str) + "\n", 0o600)
        spooled = True
    except OSError as err:
        # The sender posts the spool: an older document there must not go out as this run's.
        spooled = False
        warnings.append(
            f"status not spooled to {spool}: {err}; not posted, and the next run cannot tell when this host "
            "last passed; make triton_status_state_dir writable for root"
        )
    if metrics_file:
        try:
            write_atomic(metrics_file, render_metrics(status), 0o644)
        except OSError as err:
            warnings.append(
                f"metrics not written to {metrics_file}: {err}; node_exporter keeps the previous file; "
                "make the directory writable for root or change triton_status_metrics_file"
            )
    if url and not problems and spooled:
        log = append_log(log_file)
        post["pid"] = detach(
            lambda: deliver_spooled(
                spool,
                state_dir / "post.lock",
                url,
                token_file or None,
                attempts=attempts,
                backoff=backoff,
                timeout=timeout,
                log=log,
                ca_file=ca_file or None,
            )
        )
        post["queued"] = True
    return outcome
