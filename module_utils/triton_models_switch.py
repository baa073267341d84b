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
longer has, and checks that every model and the server are ready. When a load fails or a model
is not ready, the previous release is restored (link back, reload, unload the new models) and
``SwitchError`` carries the server's own error text.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
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

PHASES = ("deploy", "switch")


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

    def load(self, model: str) -> str | None: ...

    def unload(self, model: str) -> str | None: ...


class TritonHttp:
    """Minimal Triton HTTP/REST client (stdlib only: managed hosts need no extra package).

    ``headers`` carries the restricted-API key header; it is sent with every request and
    never appears in errors.
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
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"error": raw.decode("utf-8", "replace").strip()}
        return status, payload

    def _probe(self, path: str) -> bool:
        try:
            return self._request("GET", path, timeout=5)[0] == 200
        except OSError:
            return False

    def live(self) -> bool:
        """True when ``/v2/health/live`` answers 200; a refused connection is False."""
        return self._probe("/v2/health/live")

    def ready(self) -> bool:
        """True when ``/v2/health/ready`` answers 200 (strict readiness: every model ready)."""
        return self._probe("/v2/health/ready")

    def index(self) -> list[dict[str, Any]]:
        """Return ``POST /v2/repository/index`` entries; raises SwitchError when refused."""
        status, payload = self._request("POST", "/v2/repository/index", {})
        if status != 200 or not isinstance(payload, list):
            raise SwitchError(
                f"the server refused the repository index at {self.url}: HTTP {status} {_error_text(payload)}; "
                "the repository API needs the restricted-API key; check api_key_header and api_key_file "
                "against the service's --http-restricted-api setting",
                {"status": status},
            )
        return payload

    def load(self, model: str) -> str | None:
        """Load (or reload) ``model``; return None on success, else the server's error text."""
        status, payload = self._request("POST", f"/v2/repository/models/{model}/load", {})
        return None if status == 200 else _error_text(payload) or f"HTTP {status}"

    def unload(self, model: str) -> str | None:
        """Ask the server to unload ``model`` (asynchronous); None on success, else the error."""
        status, payload = self._request("POST", f"/v2/repository/models/{model}/unload", {})
        return None if status == 200 else _error_text(payload) or f"HTTP {status}"


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


def _load(root: Path, client: ServerClient, model: str) -> str | None:
    refresh_mtimes(root / CURRENT_LINK / model)
    return client.load(model)


def _loaded_models(index: list[dict[str, Any]]) -> set[str]:
    return {entry["name"] for entry in index if entry.get("state") == "READY"}


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


def _rollback(
    root: Path,
    client: ServerClient,
    old: str | None,
    touched: set[str],
    wait_s: float,
) -> dict[str, str]:
    """Restore ``old`` as the served release; return ``{model: error}`` for what did not come back."""
    old_models = release_models(release_dir(root, old)) if old else []
    if old:
        point_link(root, CURRENT_LINK, old)
    else:
        remove_link(root, CURRENT_LINK)
    loaded = _loaded_models(client.index())
    errors: dict[str, str] = {}
    for model in old_models:
        if model in touched or model not in loaded:
            error = _load(root, client, model)
            if error:
                errors[model] = error
    extra = sorted(loaded - set(old_models))
    for model in extra:
        client.unload(model)
    _wait_unloaded(client, extra, wait_s)
    errors.update({m: r for m, r in _not_ready(client, old_models).items() if m not in errors})
    if not errors and not _wait_ready(client, wait_s):
        errors["server"] = f"GET /v2/health/ready is not 200 {wait_s:.0f} s after the rollback"
    return errors


def activate(
    root: Path,
    release_id: str,
    client: ServerClient,
    phase: str = "switch",
    check_mode: bool = False,
    wait_s: float = 60.0,
) -> SwitchResult:
    """Make ``release_id`` the served release of the models root ``root``.

    ``deploy`` phase (before the service step): point ``current`` at the release when there
    is none yet or no server is live (the server loads ``current`` when it starts); leave a
    live server alone and report ``pending_switch`` (also when the active release's models are
    not exactly the loaded ones, so the switch phase repairs that). ``switch`` phase: with a live server,
    switch through the repository API (see the module docstring), rolling back on any
    failure; without one, only the link moves. Idempotent: an active release whose models are
    all loaded, with nothing else loaded, is left as it is. Raises SwitchError.
    """
    new_dir = release_dir(root, release_id)
    old = linked_release(root)
    result = SwitchResult(release=release_id, previous=old, models=release_models(new_dir))
    if not new_dir.is_dir() and not check_mode:
        raise SwitchError(
            f"release {release_id} is not on the host: {new_dir} does not exist; releases are laid out by the "
            "triton_models deploy phase; run it before the switch phase"
        )
    result.server_live = client.live()
    if not result.server_live or (phase == "deploy" and old is None):
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

    previous_before = linked_release(root, PREVIOUS_LINK)
    _switch_links(root, old, release_id)
    errors: dict[str, str] = {}
    for model in result.loaded:
        error = _load(root, client, model)
        if error:
            errors[model] = error
            break
    if not errors:
        for model in result.unloaded:
            client.unload(model)
        stuck = _wait_unloaded(client, result.unloaded, wait_s)
        errors = {m: "still loaded after unload" for m in stuck}
        errors.update(_not_ready(client, new_models))
    if not errors and not _wait_ready(client, wait_s):
        errors["server"] = f"GET /v2/health/ready is not 200 {wait_s:.0f} s after the switch"
    if errors:
        rollback_errors = _rollback(root, client, old, set(result.loaded) | set(result.unloaded), wait_s)
        if previous_before:
            point_link(root, PREVIOUS_LINK, previous_before)
        else:
            remove_link(root, PREVIOUS_LINK)
        raise SwitchError(
            _failure_message(release_id, old, errors, rollback_errors),
            _failure_details(release_id, old, errors, rollback_errors),
        )
    return result


def _switch_links(root: Path, old: str | None, new: str) -> None:
    if old and old != new:
        point_link(root, PREVIOUS_LINK, old)
    point_link(root, CURRENT_LINK, new)


def _failure_message(release: str, old: str | None, errors: dict[str, str], rollback_errors: dict[str, str]) -> str:
    reasons = "; ".join(f"{model}: {text}" for model, text in errors.items())
    if rollback_errors:
        restored = (
            f"the rollback to release {old} also failed ("
            + "; ".join(f"{m}: {t}" for m, t in rollback_errors.items())
            + "), so the server is NOT healthy"
        )
    elif old:
        restored = f"release {old} was restored and serves again"
    else:
        restored = "there was no previous release; the new models were unloaded"
    return (
        f"release {release} was not activated: the server refused it ({reasons}); {restored}; a release is "
        "activated only when every model loads and is ready; fix the model named above in the source "
        "repository (see the server's message) and deploy again"
    )


def _failure_details(
    release: str, old: str | None, errors: dict[str, str], rollback_errors: dict[str, str]
) -> dict[str, Any]:
    return {
        "release": release,
        "restored_release": old,
        "rolled_back": True,
        "errors": errors,
        "rollback_errors": rollback_errors,
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
