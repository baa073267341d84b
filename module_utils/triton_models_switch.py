# SPDX-License-Identifier: Apache-2.0
"""Activate a model-repository release on a host, with automatic rollback.

Layout under the models root: the release lifecycle of every release (module_utils/
triton_release_lifecycle.py, docs/architecture.md)::

    <root>/releases/<release id>/<model>/config.pbtxt ...   complete releases
    <root>/releases/.staging-<release id>/                  a copy in progress
    <root>/current  -> releases/<id>                        what the server serves
    <root>/previous -> releases/<id>                        the rollback target

The server runs with ``--model-control-mode=explicit`` on ``<root>/current``: a switch points
``current`` at the new release, loads the models whose files changed through the repository
API (``POST /v2/repository/models/<m>/load``, synchronous), unloads the models the release no
longer has, and checks that every model and the server are ready. Every request and every wait
has a deadline. When a load fails, hangs or a model is not ready, the previous release is
restored: the new release's models are unloaded by name (whatever their state), ``current``
points back, the previous models are loaded again, and the server must answer ready. When the
repository API cannot get it there, the service restarts on the previous release (an injected
``restart``). Only then does ``SwitchError`` carry the server's own reason: its answer and the
lines its log wrote about the model.

What Triton 2.51.0 does that this works around (core ``model_repository_manager.cc``,
``model_lifecycle.cc``; python_backend ``stub_launcher.cc``, ``pb_stub.cc``):

- the repository index lists only the model directories of the repository, so once ``current``
  points back, the new release's models (loaded or failed) are invisible in it, yet with
  ``--strict-readiness`` any of them that is not READY keeps ``/v2/health/ready`` at 400;
  they are unloaded by name while ``current`` still shows them;
- a model without a numeric version directory fails with "at least one version must be
  available under the version policy", but stays in the server's state map with no version,
  which no unload removes: the server stays not ready until it restarts;
- a python model without ``model.py``: the stub exits before its first message ("Python model
  file not found") and the backend waits for that message forever, so the load never answers
  and an unload of the model blocks behind it: only a restart frees the server;
- a directory the server cannot poll makes the load answer only "failed to poll from model
  repository"; the reason is the log line ``Poll failed for model directory '<m>': ...``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ansible.module_utils.triton_release_lifecycle import (
    CURRENT_LINK,
    IGNORED_DIR_NAMES,
    PREVIOUS_LINK,
    linked_release,
    point_link,
    promote,
    release_dir,
    remove_link,
    tree_digest,
)
from ansible.module_utils.triton_release_tree import CONFIG_NAME, ReleaseError, extract_archive, tree_release_id
from ansible.module_utils.triton_server_log import error_lines, log_size, read_since

PHASES = ("deploy", "switch")
# Seconds a live server may take to become ready again (an unload or a load in progress) before
# its model set counts as stuck.
SETTLE_S = 5.0


class SwitchError(Exception):
    """A release could not be activated; ``details`` holds the data behind the message."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class ServerClient(Protocol):
    """The repository API calls a switch needs (TritonHttp is the real one)."""

    def live(self) -> bool: ...

    def ready(self) -> bool: ...

    def index(self) -> list[dict[str, Any]]: ...

    def load(self, model: str, timeout: float | None = None) -> str | None: ...

    def unload(self, model: str, timeout: float | None = None) -> str | None: ...


# What _request answers when nothing did: the server did not answer in time, or is not there
# (down, restarting: NO_ANSWER_TEXT).
NO_ANSWER = 0
NO_ANSWER_TEXT = "no answer from"


class TritonHttp:
    """Minimal Triton HTTP/REST client (stdlib only: managed hosts need no extra package).

    ``headers`` carries the restricted-API key header; it is sent with every request and
    never appears in errors. Every request has a timeout (``timeout`` unless the call names
    one); no answer in time, or no server, is status ``NO_ANSWER`` with the reason.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: dict | None = None, timeout: float | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=self.headers)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        wait = timeout or self.timeout
        try:
            with _OPENER.open(request, timeout=wait) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except (OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", None) or err
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                return NO_ANSWER, {"error": f"{self.url} did not answer within {wait:.0f} s"}
            return NO_ANSWER, {"error": f"{NO_ANSWER_TEXT} {self.url}: {reason}"}
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"error": raw.decode("utf-8", "replace").strip()}
        return status, payload

    def _probe(self, path: str) -> bool:
        return self._request("GET", path, timeout=5)[0] == 200

    def live(self) -> bool:
        """True when ``/v2/health/live`` answers 200; a refused connection is False."""
        return self._probe("/v2/health/live")

    def ready(self) -> bool:
        """True when ``/v2/health/ready`` answers 200 (strict readiness: every model ready)."""
        return self._probe("/v2/health/ready")

    def index(self) -> list[dict[str, Any]]:
        """Return ``POST /v2/repository/index`` entries; raises SwitchError when refused or unanswered."""
        status, payload = self._request("POST", "/v2/repository/index", {}, timeout=30)
        if status in (401, 403):
            raise SwitchError(
                f"the server refused the repository index at {self.url}: HTTP {status} {_error_text(payload)}; "
                "the repository API needs the restricted-API key in its header; check triton_models_api_key_header "
                "and triton_models_api_key_file (by default the service's triton_service_api_key_header and "
                "triton_service_api_key_file) against the service's --http-restricted-api setting",
                {"status": status},
            )
        if status != 200 or not isinstance(payload, list):
            raise SwitchError(
                f"the server did not give its repository index at {self.url}: "
                f"{'HTTP ' + str(status) + ' ' if status else ''}{_error_text(payload)}; a live server answers it; "
                "check that the service runs (the triton_service role) and rerun",
                {"status": status},
            )
        return payload

    def load(self, model: str, timeout: float | None = None) -> str | None:
        """Load (or reload) ``model``; return None on success, else the server's error text (or why none came)."""
        status, payload = self._request("POST", f"/v2/repository/models/{model}/load", {}, timeout)
        return None if status == 200 else _error_text(payload) or f"HTTP {status}"

    def unload(self, model: str, timeout: float | None = None) -> str | None:
        """Ask the server to unload ``model`` (asynchronous); None on success, else the error."""
        status, payload = self._request("POST", f"/v2/repository/models/{model}/unload", {}, timeout)
        return None if status == 200 else _error_text(payload) or f"HTTP {status}"


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict) and "error" in payload:
        return str(payload["error"])
    return "" if payload is None else json.dumps(payload)


def read_api_key_headers(key_file: str | None, header: str | None) -> dict[str, str]:
    """Return ``{header: key}`` read from ``key_file`` (stripped), or ``{}`` without one.

    A missing key file means the service is not installed yet (first deployment): no
    server can need the key then, and a live restricted server refuses the index with a
    message naming the key. Raises SwitchError when the file exists but cannot be read.
    """
    if not key_file or not header:
        return {}
    try:
        key = Path(key_file).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise SwitchError(
            f"cannot read the restricted-API key: {key_file}: {err.strerror}; the repository API of the "
            "server needs it for load/unload; run the triton_service role first or set api_key_file to "
            "the service's key file"
        ) from err
    return {header: key}


def release_models(path: Path) -> list[str]:
    """Return the model directories of a release (those holding a config.pbtxt), sorted."""
    if not path.is_dir():
        return []
    return sorted(
        entry.name
        for entry in path.iterdir()
        if entry.is_dir() and entry.name not in IGNORED_DIR_NAMES and (entry / CONFIG_NAME).is_file()
    )


def model_digests(path: Path) -> dict[str, str]:
    """Return each model's content hash in a release (caches ignored), for change detection."""
    return {model: tree_digest(path / model) for model in release_models(path)}


def unpack_upload(
    root: Path,
    release_id: str,
    archive: Path,
    staging: Path,
    owner: tuple[int, int] | None = None,
    check_mode: bool = False,
) -> bool:
    """Unpack the uploaded release archive into a fresh ``staging`` directory; True when it did.

    Nothing happens when the release is already on the host or no archive was uploaded; a
    leftover staging copy (an interrupted run) is replaced. Every entry is given ``owner``
    (uid, gid) when set. The archive is removed once unpacked; ``promote_staging`` then checks
    that the files hash to the release id.
    """
    if check_mode or release_dir(root, release_id).is_dir() or not archive.is_file():
        return False
    if staging.exists():
        shutil.rmtree(staging)
    try:
        extract_archive(archive, staging)
    except ReleaseError as err:
        raise SwitchError(str(err)) from err
    if owner is not None:
        for directory, dirs, files in os.walk(staging):
            for name in [".", *dirs, *files]:
                os.chown(os.path.join(directory, name), *owner)
    archive.unlink()
    return True


def promote_staging(root: Path, release_id: str, staging: Path, check_mode: bool = False) -> bool:
    """Rename a fully copied staging directory to ``releases/<release_id>``.

    The staged files must hash to ``release_id`` (the controller computed it over the same
    files), so a partial or altered copy never becomes a release. Returns True when the
    release was created, False when it already existed (the staging copy is then removed).
    Raises SwitchError when neither the release nor a matching staging copy exists.
    """
    final = release_dir(root, release_id)
    if final.is_dir():
        if staging.is_dir() and not check_mode:
            shutil.rmtree(staging)
        return False
    if check_mode:
        return True
    if not staging.is_dir():
        raise SwitchError(
            f"release {release_id} is not on the host: neither {final} nor the staged copy {staging} exists; "
            "a release is staged by the triton_models deploy phase; run it (tasks_from deploy) before switching"
        )
    found = tree_release_id(staging)
    if found != release_id:
        raise SwitchError(
            f"the staged copy {staging} hashes to {found}, not to release {release_id}: the copy from the "
            "controller is incomplete or was altered; a release is promoted only when its files match the "
            "controller's build; rerun the deploy phase (the staging copy is replaced)",
            {"found": found},
        )
    promote(root, staging, release_id)
    return True


@dataclass
class SwitchResult:
    """What ``activate`` did (or, in check mode, would do)."""

    release: str
    previous: str | None
    changed: bool = False
    link_switched: bool = False
    server_live: bool = False
    pending_switch: bool = False
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the result as module return values."""
        return dict(self.__dict__)


def refresh_mtimes(model_dir: Path) -> None:
    """Set every mtime of a model directory tree to now, so the server reloads it.

    Triton reloads a loaded model only when its files look newer than the ones it loaded;
    a switch back to an older release would otherwise be a silent no-op and keep serving
    the newer files. Content, and so the release id, is unchanged.
    """
    for directory, _dirs, files in os.walk(model_dir):
        for name in files:
            os.utime(Path(directory) / name)
        os.utime(directory)


def _load(root: Path, client: ServerClient, model: str, wait_s: float) -> str | None:
    refresh_mtimes(root / CURRENT_LINK / model)
    return client.load(model, timeout=wait_s)


def _loaded_models(index: list[dict[str, Any]]) -> set[str]:
    return {entry["name"] for entry in index if entry.get("state") == "READY"}


def _states(client: ServerClient) -> dict[str, str]:
    """``{model: state}`` of the repository index (READY wins over an older version's state); {} when unanswered."""
    try:
        index = client.index()
    except SwitchError:
        return {}
    states: dict[str, str] = {}
    for entry in index:
        if entry.get("state") == "READY" or entry["name"] not in states:
            states[entry["name"]] = str(entry.get("state") or "")
    return states


def _wait_unloaded(client: ServerClient, models: list[str], wait_s: float) -> list[str]:
    """Poll the index until ``models`` are neither READY nor UNLOADING; return the stragglers."""
    deadline = time.monotonic() + wait_s
    while True:
        busy = {e["name"] for e in client.index() if e.get("state") in ("READY", "UNLOADING")}
        left = sorted(set(models) & busy)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _wait_ready(client: ServerClient, wait_s: float) -> bool:
    """Poll ``/v2/health/ready`` for up to ``wait_s``; True once it answers 200.

    A model removed from the repository is no longer in the index while it is still
    unloading, so the index alone cannot tell when the server is settled.
    """
    deadline = time.monotonic() + wait_s
    while not client.ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _not_ready(client: ServerClient, models: list[str]) -> dict[str, str]:
    """Return ``{model: reason}`` for models the index does not show READY."""
    states: dict[str, dict[str, Any]] = {}
    for entry in client.index():
        if entry.get("state") == "READY" or entry["name"] not in states:
            states[entry["name"]] = entry
    problems = {}
    for model in models:
        entry = states.get(model, {})
        if entry.get("state") != "READY":
            problems[model] = entry.get("reason") or f"state {entry.get('state', 'not loaded')}"
    return problems


# restart() restarts the service on what ``current`` points at and waits until it is ready;
# it returns None then, else why not.
Restart = Callable[[], "str | None"]


@dataclass
class Recovery:
    """How a failed switch finds the server's reason and, as a last resort, brings the server back.

    ``log_file`` is the server's log (its lines about the failed model are quoted); ``restart``
    restarts the service on the restored ``current``. Either may be None (not known here).
    """

    log_file: Path | None = None
    restart: Restart | None = None


# The reason Triton gives a model version it unloaded; any other UNAVAILABLE version failed to
# load, and that state stays until a restart (or a later successful load of the same model): no
# unload clears it. A model without any version leaves no index entry at all.
UNLOADED_REASON = "unloaded"


def _stuck_models(client: ServerClient, strays: list[str], others: list[str], failed: set[str]) -> list[str]:
    """The models whose state only a restart clears: a new model (``strays``) that failed to load or
    that the index shows LOADING or UNAVAILABLE for another reason than an unload, and any other
    model of the switch still LOADING (its load hangs; loading it again waits behind it)."""
    stuck = set(strays) & failed
    try:
        index = client.index()
    except SwitchError:
        return sorted(stuck)
    for entry in index:
        name, state = entry["name"], entry.get("state")
        hung = state == "LOADING" and name in set(strays) | set(others)
        failed_new = name in strays and state == "UNAVAILABLE" and entry.get("reason") != UNLOADED_REASON
        if hung or failed_new:
            stuck.add(name)
    return sorted(stuck)


def _restore(
    root: Path,
    client: ServerClient,
    old: str | None,
    new_models: list[str],
    touched: set[str],
    failed: set[str],
    wait_s: float,
) -> dict[str, str]:
    """Make the server serve ``old`` again through its repository API; ``{what: error}`` for what did not.

    The new release's models are unloaded by name while ``current`` still shows them (after the
    link moves back, the index no longer lists them, but a failed one would keep the server not
    ready); then ``current`` points at ``old``, its models that the switch touched or that are
    not READY are loaded, and the server must answer ready within ``wait_s``. A new model whose
    load failed or hangs (``failed``, or so in the index) leaves a state Triton keeps until it
    restarts: then there is nothing to wait for, and the error says so at once.
    """
    old_models = release_models(release_dir(root, old)) if old else []
    strays = sorted(set(new_models) - set(old_models))
    stuck = _stuck_models(client, strays, sorted(touched), failed)
    errors: dict[str, str] = {}
    for model in strays:
        # Unloading a model whose load still hangs blocks behind that load: bounded.
        error = client.unload(model, timeout=min(wait_s, 10.0))
        if error:
            errors[model] = f"unload: {error}"
    if old:
        point_link(root, CURRENT_LINK, old)
    else:
        remove_link(root, CURRENT_LINK)
    states = _states(client)
    for model in old_models:
        if model in touched or states.get(model) != "READY":
            error = _load(root, client, model, wait_s)
            if error:
                errors[model] = error
    for model in stuck:
        errors.setdefault(
            model,
            "the server keeps the failed load of this model in its state, which keeps /v2/health/ready at 400; "
            "no unload clears it, only a restart",
        )
    if stuck:
        return errors
    if not _wait_ready(client, wait_s):
        errors.setdefault("server", f"GET /v2/health/ready is not 200 {wait_s:.0f} s after the rollback")
    else:
        errors.update({m: r for m, r in _not_ready(client, old_models).items() if m not in errors})
    return errors


def activate(
    root: Path,
    release_id: str,
    client: ServerClient,
    phase: str = "switch",
    check_mode: bool = False,
    wait_s: float = 60.0,
    recovery: Recovery | None = None,
) -> SwitchResult:
    """Make ``release_id`` the served release of the models root ``root``.

    ``deploy`` phase (before the service step): point ``current`` at the release when there
    is none yet, or when no server serves (none is live, or the live one is not ready: the
    service step restarts it, and it loads ``current`` when it starts); leave a serving server
    alone and report ``pending_switch`` (also when the active release's models are not exactly
    the loaded ones, so the switch phase repairs that). ``switch`` phase: with a live server,
    switch through the repository API (see the module docstring), restoring the previous
    release on any failure, with ``recovery`` (the log to quote, the restart of last resort);
    without a live server, only the link moves. ``wait_s`` bounds each load and each wait.
    Idempotent: an active release whose models are all loaded, with nothing else loaded, is
    left as it is. Raises SwitchError.
    """
    recovery = recovery or Recovery()
    new_dir = release_dir(root, release_id)
    old = linked_release(root)
    result = SwitchResult(release=release_id, previous=old, models=release_models(new_dir))
    if not new_dir.is_dir() and not check_mode:
        raise SwitchError(
            f"release {release_id} is not on the host: {new_dir} does not exist; releases are laid out by the "
            "triton_models deploy phase; run it before the switch phase"
        )
    result.server_live = client.live()
    # Not ready for longer than an unload or a load takes to settle: the model set is stuck.
    serving = result.server_live and (phase == "switch" or _wait_ready(client, min(wait_s, SETTLE_S)))
    if not serving or (phase == "deploy" and old is None):
        result.link_switched = result.changed = old != release_id
        if result.changed and not check_mode:
            _switch_links(root, old, release_id)
        return result
    if phase == "deploy":
        # With the release already active the switch phase still has work when the server does
        # not serve exactly its models (one unloaded or failed since, another one loaded).
        result.pending_switch = old != release_id or _loaded_models(client.index()) != set(result.models)
        return result

    loaded = _loaded_models(client.index())
    new_models = result.models if new_dir.is_dir() else []
    old_dir = release_dir(root, old) if old else None
    changed_models = set(new_models)
    if old and old != release_id and old_dir.is_dir() and new_dir.is_dir():
        old_digests, new_digests = model_digests(old_dir), model_digests(new_dir)
        changed_models = {m for m in new_models if old_digests.get(m) != new_digests[m]}
    elif old == release_id:
        changed_models = set()
    result.loaded = sorted(m for m in new_models if m in changed_models or m not in loaded)
    result.unloaded = sorted(loaded - set(new_models))
    result.link_switched = old != release_id
    result.changed = bool(result.loaded or result.unloaded or result.link_switched)
    if check_mode or not result.changed:
        return result

    log_offset = log_size(recovery.log_file) if recovery.log_file else 0
    previous_before = linked_release(root, PREVIOUS_LINK)
    _switch_links(root, old, release_id)
    errors: dict[str, str] = {}
    for model in result.loaded:
        error = _load(root, client, model, wait_s)
        if error:
            errors[model] = error
            break
    try:
        if not errors:
            for model in result.unloaded:
                client.unload(model, timeout=wait_s)
            stuck = _wait_unloaded(client, result.unloaded, wait_s)
            errors = {m: "still loaded after unload" for m in stuck}
            errors.update(_not_ready(client, new_models))
        if not errors and not _wait_ready(client, wait_s):
            errors["server"] = f"GET /v2/health/ready is not 200 {wait_s:.0f} s after the switch"
    except SwitchError as err:
        errors.setdefault("server", str(err))
    if not errors:
        return result

    said = error_lines(read_since(recovery.log_file, log_offset), names=list(errors)) if recovery.log_file else []
    touched = set(result.loaded) | set(result.unloaded)
    restore_errors = _restore(root, client, old, new_models, touched, set(errors), wait_s)
    # A server that stopped answering (killed, restarted by its service manager) may have loaded
    # whatever current/ showed when it started: only a restart on the restored link is certain.
    lost = any(NO_ANSWER_TEXT in text for text in [*errors.values(), *restore_errors.values()])
    restarted, restart_error = False, None
    if (restore_errors or lost) and recovery.restart is not None and old:
        restarted = True
        restart_error = recovery.restart()
    if previous_before:
        point_link(root, PREVIOUS_LINK, previous_before)
    else:
        remove_link(root, PREVIOUS_LINK)
    details = _failure_details(release_id, old, errors, restore_errors, said, lost, restarted, restart_error)
    raise SwitchError(_failure_message(details), details)


def _switch_links(root: Path, old: str | None, new: str) -> None:
    if old and old != new:
        point_link(root, PREVIOUS_LINK, old)
    point_link(root, CURRENT_LINK, new)


def _failure_message(details: dict[str, Any]) -> str:
    release, old = details["release"], details["restored_release"]
    reasons = "; ".join(f"{model}: {text.strip()}" for model, text in details["errors"].items())
    said = f"; the server's log says: {' | '.join(details['server_log'])}" if details["server_log"] else ""
    restore = "; ".join(f"{m}: {t}" for m, t in details["rollback_errors"].items())
    why_restart = (
        "the server stopped answering during the switch"
        if details["server_lost"]
        else f"the repository API could not bring release {old} back ({restore})"
    )
    if not old:
        restored = "there was no previous release; the new models were unloaded"
        if details["rollback_errors"]:
            restored += f", but the server is not ready ({restore})"
    elif details["restarted"] and details["restart_error"] is None:
        restored = f"{why_restart}, so the service was restarted on it: release {old} was restored and serves again"
    elif details["restarted"]:
        restored = (
            f"{why_restart}, and the restart of the service on it failed too ({details['restart_error']}), so "
            "the server is NOT healthy; run the site playbook again to bring it back"
        )
    elif not details["rollback_errors"]:
        restored = f"release {old} was restored and serves again"
    else:
        restored = (
            f"the rollback to release {old} also failed ({restore}), so the server is NOT healthy; restart "
            "the service (or run the site playbook again) to bring it back"
        )
    return (
        f"release {release} was not activated: the server refused it ({reasons}){said}; {restored}; a release is "
        "activated only when every model loads and is ready; fix the model named above in the source "
        "repository (see the server's message) and deploy again"
    )


def _failure_details(
    release: str,
    old: str | None,
    errors: dict[str, str],
    rollback_errors: dict[str, str],
    server_log: list[str],
    server_lost: bool,
    restarted: bool,
    restart_error: str | None,
) -> dict[str, Any]:
    return {
        "release": release,
        "restored_release": old,
        "rolled_back": True,
        "errors": errors,
        "rollback_errors": rollback_errors,
        "server_log": server_log,
        "server_lost": server_lost,
        "restarted": restarted,
        "restart_error": restart_error,
        "server_ready": restart_error is None if restarted else not rollback_errors,
    }


def config_diffs(root: Path, configs: dict[str, str]) -> list[dict[str, str]]:
    """Return Ansible diff entries: each rendered config against the current release's file.

    Models whose text is unchanged are left out; a model new in the release diffs against
    an empty file.
    """
    current = root / CURRENT_LINK
    diffs = []
    for model in sorted(configs):
        path = current / model / CONFIG_NAME
        try:
            before = path.read_text(encoding="utf-8")
        except OSError:
            before = ""
        if before != configs[model]:
            header = f"{model}/{CONFIG_NAME}"
            diffs.append(
                {
                    "before_header": f"{path} (current)",
                    "after_header": f"{header} (new release)",
                    "before": before,
                    "after": configs[model],
                }
            )
    return diffs
