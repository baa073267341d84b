# SPDX-License-Identifier: Apache-2.0
"""Deploy an application that embeds Triton as a supervised service, checked before and after it takes over.

Layout on the host (``root`` = ``/opt/tritonfleet/apps/<name>``)::

    sources/<source digest>.tar         the application's files as they came from the controller
    releases/<release id>/              source + build output + ``tritonfleet-launch`` + manifest.json
    current -> releases/<id>            what the service runs (``current/tritonfleet-launch``)
    previous -> releases/<id>           what a failed update goes back to

The releases live the one release lifecycle (``triton_release_lifecycle``): staged, manifest
written last, promoted by one rename, links replaced atomically, leftovers and old releases
removed as for server and model releases.

A release id hashes the source, the build command and the launcher (the command line and the
environment: ``plan.runtime.env`` verbatim, the release's ``lib/`` on the loader path, the host's
rendered model repository), so a new plan or server release is a new application release,
built and checked like any other. The launcher starts the application with exactly that
environment as the service user; supervisord (one ``[program]`` file in the directory its
configuration includes) or systemd (one unit) runs it, by the server's service-manager rule.

:func:`deploy` stages and builds a new release, checks it before it takes over (the app check
on its files, and the in-process probe of the repository with the plan's options), switches
``current`` and restarts the service, waits until it runs, checks the running process (its
environment and its GPU memory), and on any failure puts the previous release back and
restarts it. Errors are ``AppError`` with a four-part message; a failure after the switch
carries what was restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.module_utils import triton_release_lifecycle as lifecycle
from ansible.module_utils.triton_release_tree import (
    INSTANCE_GROUPS_NAME,
    ReleaseError,
    extract_archive,
    tree_files,
    write_archive,
)
from ansible.module_utils.triton_runtime import plan_runtime
from ansible.module_utils.triton_service import SYSTEM_PATH, server_env
from ansible.module_utils.triton_service_config import MANAGED, exec_as_lines

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROGRAM_PREFIX = "tritonfleet-app-"
LAUNCHER = "tritonfleet-launch"
SOURCES_DIR = "sources"
# Variables the plan decides (plan.runtime.env) or the launcher sets: an application's own
# environment may not override them.
RESERVED_PREFIXES = ("CUDA_", "NVIDIA_", "TRITONFLEET_")
RESERVED_NAMES = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PATH", "HOME")
BUILD_OUTPUT_TAIL = 3000


class AppError(ValueError):
    """A user-facing failure; ``str()`` is the four-part message, ``details`` what the report needs."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = dict(details or {})


class ReleaseMissing(AppError):
    """No Triton release is installed yet (check mode on a fresh host expects one)."""


def program_name(name: str) -> str:
    """The supervisord program / systemd unit name of application ``name``."""
    return f"{PROGRAM_PREFIX}{name}"


def check_declaration(params: Mapping[str, Any]) -> None:
    """Refuse an application declaration that cannot work, before anything changes."""
    problems = []
    if not NAME_PATTERN.match(str(params.get("name") or "")):
        problems.append(f"name {params.get('name')!r} is not lower-case letters, digits, '-' and '_' (up to 63)")
    command = str(params.get("command") or "")
    if not command or command.startswith("-"):
        problems.append(f"command {command!r} is not a path (relative to the release or absolute)")
    reserved = sorted(k for k in params.get("env") or {} if k.startswith(RESERVED_PREFIXES) or k in RESERVED_NAMES)
    if reserved:
        problems.append(f"env sets {', '.join(reserved)}, which the plan (plan.runtime.env) and the launcher decide")
    source = params.get("source") or {}
    if bool(source.get("digest")) == bool(source.get("path")):
        problems.append(
            "exactly one of a controller source (triton_app_src) or a host path (triton_app_remote_src) is needed"
        )
    if problems:
        raise AppError(
            f"The application declaration is unusable: {'; '.join(problems)} (triton_app_* variables of "
            f"{params.get('name')!r}). Supported: a name, a command inside the release or an absolute path, "
            "args, env other than CUDA_*/NVIDIA_*/TRITONFLEET_*/LD_*/PATH/HOME, one source. Fix the variables; "
            "nothing was changed."
        )


# --- source ------------------------------------------------------------------------------------


def pack_source(src: Path, build_dir: Path, name: str) -> dict[str, Any]:
    """Pack an application's source (a directory, or one file) on the controller: ``{digest, archive}``.

    The archive is written once per digest; a rerun with the same files only hashes them.
    """
    if src.is_file():
        with tempfile.TemporaryDirectory(prefix="tritonfleet-app-src-") as temporary:
            shutil.copy2(src, Path(temporary) / src.name)
            return pack_source(Path(temporary), build_dir, name)
    try:
        files = tree_files(src)
    except ReleaseError as err:
        raise AppError(
            f"The application source {src} is not a directory or file on the controller ({err}). triton_app_src "
            "names the application's files (a binary, a script, or a source tree with its build command). "
            "Fix triton_app_src, or set triton_app_remote_src for files already on the host."
        ) from err
    digest = lifecycle.tree_digest(src)
    archive = build_dir / f"app-{name}-{digest}.tar"
    if not archive.is_file():
        build_dir.mkdir(parents=True, exist_ok=True)
        write_archive(src, archive)
    return {"digest": digest, "archive": str(archive), "files": len(files)}


def _source_digest(path: Path) -> str:
    """The content digest of a host source: a directory's ``tree_digest``, or that of a tree holding one file."""
    if path.is_file():
        return lifecycle.digest_entries([lifecycle.file_entry(path.name, path)])
    return lifecycle.tree_digest(path)


def _copy_source(path: Path, staging: Path) -> None:
    if path.is_file():
        staging.mkdir(mode=0o755)
        shutil.copy2(path, staging / path.name)
    else:
        shutil.copytree(path, staging, symlinks=False, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


# --- launcher ----------------------------------------------------------------------------------


def launch_environment(
    plan: Mapping[str, Any],
    server_manifest: Mapping[str, Any],
    triton_home: str,
    state_dir: str,
    model_repository: str,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The complete environment of the application: the server's, ``plan.runtime.env`` verbatim, where Triton is.

    ``PATH``, ``LD_LIBRARY_PATH`` (``<triton_home>/lib``) and ``HOME`` are the ones the server gets
    (``triton_service.server_env``: the python backend stub needs the release's Python and lib/),
    then every variable of ``plan.runtime.env``, then the ``TRITONFLEET_*`` locations and the
    application's own variables.
    """
    runtime = plan_runtime(plan)
    env = server_env(plan, server_manifest, {"release_dir": triton_home, "state_dir": state_dir})
    env.update({str(k): str(v) for k, v in runtime["env"].items()})
    env.update(
        {
            "TRITONFLEET_TRITON_HOME": triton_home,
            "TRITONFLEET_MODEL_REPOSITORY": model_repository,
            "TRITONFLEET_BACKEND_DIRECTORY": f"{triton_home}/backends",
        }
    )
    env.update({str(k): str(v) for k, v in extra.items()})
    return env


def build_environment(plan: Mapping[str, Any], triton_home: str) -> dict[str, str]:
    """The environment of the build command: where Triton is (``TRITON_HOME``) and ``plan.runtime.env`` verbatim."""
    return {"TRITON_HOME": triton_home, **{str(k): str(v) for k, v in plan_runtime(plan)["env"].items()}}


def launch_argv(
    release: Path, command: str, args: Sequence[str], plan: Mapping[str, Any], server_args: bool
) -> list[str]:
    """The application's command line: its command (in the release unless absolute), args, plan.runtime.server_args."""
    executable = command if os.path.isabs(command) else str(release / command)
    argv = [executable, *[str(a) for a in args]]
    if server_args:
        argv += [str(a) for a in plan_runtime(plan)["server_args"]]
    return argv


def launcher_text(name: str, env: Mapping[str, str], argv: Sequence[str], user: str, group: str) -> str:
    """The launcher script of one release: ``env -i`` with exactly ``env``, ``setpriv`` to the service user, exec."""
    lines = [
        "#!/bin/sh",
        MANAGED.replace("triton_service", "triton_app"),
        f"# Starts the embedded application {name} as {user}, with the plan's device environment and nothing",
        "# of the caller's (env -i).",
        *exec_as_lines(env, user, group),
        *[f"  {shlex.quote(arg)} \\" for arg in argv[:-1]],
        f"  {shlex.quote(argv[-1])}",
    ]
    return "\n".join(lines) + "\n"


def release_id(source_digest: str, build_command: Sequence[str] | None, launcher_template: str) -> str:
    """Hash what makes a release: source, build command, launcher (``@RELEASE@`` standing for its own path)."""
    return lifecycle.digest_entries(
        [
            ("source", "-", source_digest),
            ("build", "-", json.dumps(list(build_command or []))),
            ("launcher", "x", launcher_template),
        ]
    )


# --- releases on the host (the release lifecycle of triton_release_lifecycle) ------------------


def source_archive(root: Path, digest: str) -> Path:
    """Where the source a release is made from lies on the host: ``<root>/sources/<digest>.tar``."""
    return root / SOURCES_DIR / f"{digest}.tar"


def prune_releases(root: Path, keep: int, protected: Sequence[str]) -> list[str]:
    """Prune releases as every release kind is pruned, then the uploaded sources no remaining release was made from.

    Returns the removed release ids.
    """
    removed = lifecycle.prune(root, keep, protected, check_mode=False)
    sources = root / SOURCES_DIR
    if removed and sources.is_dir():
        releases = (root / lifecycle.RELEASES_DIR).iterdir()
        in_use = {(lifecycle.complete_manifest(entry) or {}).get("source_digest") for entry in releases}
        for archive in sources.glob("*.tar"):
            if archive.stem not in in_use:
                archive.unlink()
    return removed


def stage_release(
    root: Path,
    release: str,
    source: Mapping[str, Any],
    build: Mapping[str, Any] | None,
    launcher: str,
    manifest: Mapping[str, Any],
    run: Callable[..., subprocess.CompletedProcess],
) -> Path:
    """Lay a new release out: source, build (in the staging directory), launcher, manifest last, promote.

    ``source`` is ``{digest, archive}`` (from the controller, checked against its digest) or
    ``{digest, path}`` (already on the host). Leftovers of interrupted runs go first. A failing
    build raises AppError with its output; the staging directory is removed and nothing else
    changes.
    """
    (root / lifecycle.RELEASES_DIR).mkdir(parents=True, exist_ok=True)
    lifecycle.remove_leftovers(root, check_mode=False, complete=lifecycle.has_manifest)
    staging = lifecycle.staging_dir(root, release)
    try:
        if source.get("archive"):
            try:
                extract_archive(Path(source["archive"]), staging)
            except (ReleaseError, OSError) as err:
                raise AppError(
                    f"The application's source archive {source['archive']} cannot be unpacked ({err}). It is the "
                    "archive triton_app uploads from the controller. Rerun the play (it is uploaded again)."
                ) from err
            found = lifecycle.tree_digest(staging)
        else:
            _copy_source(Path(source["path"]), staging)
            found = _source_digest(Path(source["path"]))
        if found != source["digest"]:
            raise AppError(
                f"The application's files on the host hash to {found}, not to {source['digest']} (the source the "
                "release was planned from): the copy is incomplete or the files changed meanwhile. Only files "
                "matching the planned source become a release. Rerun the play."
            )
        if build and build.get("command"):
            _build(staging, build, run)
        if (staging / lifecycle.MANIFEST_NAME).exists():
            raise AppError(
                f"The application's files hold a {lifecycle.MANIFEST_NAME} at their top level (from its source or "
                f"its build, in {staging}): that name is the release's own record, written last "
                "(docs/architecture.md, Release lifecycle). Supported: any other name at the top level, any name "
                "below it. Move or rename that file in the application and rerun; the running application is "
                "unchanged."
            )
        (staging / LAUNCHER).write_text(
            launcher.replace("@RELEASE@", str(lifecycle.release_dir(root, release))), "utf-8"
        )
        os.chmod(staging / LAUNCHER, 0o755)
        for directory, _dirs, _files in os.walk(staging):
            os.chmod(directory, 0o755)
        data = dict(
            manifest, release=release, files_sha256=lifecycle.manifest_tree_digest(staging), created=time.time()
        )
        lifecycle.write_manifest(staging, data)
        lifecycle.promote(root, staging, release)
        return lifecycle.release_dir(root, release)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _build(staging: Path, build: Mapping[str, Any], run: Callable[..., subprocess.CompletedProcess]) -> None:
    command = [str(c) for c in build["command"]]
    env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": str(staging), **{k: str(v) for k, v in build["env"].items()}}
    try:
        proc = run(command, cwd=str(staging), env=env, timeout=int(build["timeout"]))
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AppError(
            f"The application's build command {shlex.join(command)} could not run in {staging}: {err}. It runs on "
            "the host with the release's TRITON_HOME. Install the build tools (gcc, make) on the host or fix "
            "triton_app_build_command; the running application is unchanged."
        ) from err
    if proc.returncode != 0:
        output = (proc.stdout or "") + (proc.stderr or "")
        raise AppError(
            f"The application's build failed: {shlex.join(command)} exited {proc.returncode} in {staging}:\n"
            f"{output.strip()[-BUILD_OUTPUT_TAIL:]}\nA release is built on the host before it can run. Fix the "
            "build (the output above) and rerun; the running application is unchanged."
        )


def release_is_intact(root: Path, release: str) -> bool:
    """True when release ``release`` is complete and its files still hash to what its manifest recorded."""
    return lifecycle.manifest_matches(lifecycle.release_dir(root, release), {"release": release})


def check_findings(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The error findings of an app check or probe result."""
    return [f for f in result.get("findings") or [] if f.get("severity") == "error"]


def findings_text(findings: Sequence[Mapping[str, Any]]) -> str:
    """One line per finding: ``[code] message (fix: ...)``."""
    return "\n".join(f"[{f['code']}] {f['message']} (fix: {f['fix']})" for f in findings)


def wait_running(
    status: Callable[[], tuple[str, str | None]],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Poll ``status()`` -> (``running``|``starting``|``failed``, detail) until running; return why not, or None."""
    deadline = clock() + timeout
    while True:
        state, detail = status()
        if state == "running":
            return None
        if state == "failed":
            return detail or "failed"
        if clock() >= deadline:
            return f"still {detail or state} after {timeout:g} s"
        sleep(0.5)


# --- the service -------------------------------------------------------------------------------


class AppService:
    """The application's program under supervisord or systemd, through the server's own service machinery."""

    def __init__(
        self,
        params: Mapping[str, Any],
        manager: str,
        run: Callable[[Sequence[str]], tuple[int, str, str]],
        program: str | None = None,
    ) -> None:
        from ansible.module_utils.triton_service_run import supervisor_proxy

        self.params = params
        self.manager = manager
        self.run = run
        self.program = (program or program_name(params["name"])).removesuffix(".service")
        self.unit = f"{self.program}.service"
        self.proxy = supervisor_proxy(params["supervisor"]["socket"]) if manager == "supervisor" else None

    @property
    def config_path(self) -> Path:
        if self.manager == "supervisor":
            return Path(self.params["supervisor"]["include_dir"]) / f"{self.program}.conf"
        return Path(self.params["systemd_unit_dir"]) / self.unit

    def write_config(self, check_mode: bool, outcome: Any) -> bool:
        """Write the program section or unit when it differs; True when it changed."""
        from ansible.module_utils.triton_service_config import ensure_directory, ensure_file, systemd_verifier

        if self.manager == "supervisor":
            ensure_directory(self.config_path.parent, "root", "root", 0o755, check_mode, outcome)
            return ensure_file(self.config_path, self.params["supervisor_program"], 0o644, check_mode, outcome)
        verify = systemd_verifier(self.run, shutil.which("systemd-analyze"), self.unit)
        return ensure_file(self.config_path, self.params["systemd_unit"], 0o644, check_mode, outcome, validate=verify)

    def _systemctl(self, *args: str) -> str:
        rc, out, err = self.run(["systemctl", *args])
        if rc != 0:
            raise AppError(
                f"systemctl {' '.join(args)} exited {rc} ({err.strip()}). systemd runs the application as "
                f"{self.unit}. Read journalctl -u {self.unit}, fix the cause and rerun."
            )
        return out

    def restart(self, config_changed: bool) -> list[str]:
        """(Re)start the program with the release ``current`` points at now; return what was done."""
        from ansible.module_utils.triton_service_run import apply_supervisor, supervisor_status, supervisor_update

        if self.manager == "systemd":
            self._systemctl("daemon-reload")
            self._systemctl("enable", self.unit)
            self._systemctl("restart", self.unit)
            return ["daemon-reload", "enable", "restart"]
        status = supervisor_status(self.proxy, self.program)
        if status == "down":
            supervisor = self.params["supervisor"]
            argv = [f"{supervisor['venv']}/bin/supervisord", "-c", supervisor["conf"]]
            apply_supervisor(self.proxy, "start_supervisord", argv, self.program)
            return ["start_supervisord"]
        done = supervisor_update(self.proxy, self.program) if config_changed or status == "missing" else []
        if "add" in done:
            # A program added by the update starts by itself (autostart).
            return done
        apply_supervisor(self.proxy, "restart", [], self.program)
        return [*done, "restart"]

    def ensure_started(self) -> list[str]:
        """Start the program when it is not running (a rerun is the recovery path); return what was done."""
        from ansible.module_utils.triton_service_run import SUPERVISOR_UP, SYSTEMD_UP, parse_show

        if self.manager == "systemd":
            props = parse_show(self._systemctl("show", "--property=ActiveState,UnitFileState", self.unit))
            if props.get("ActiveState") in SYSTEMD_UP and props.get("UnitFileState") == "enabled":
                return []
            return self.restart(False)
        from ansible.module_utils.triton_service_run import supervisor_status

        return [] if supervisor_status(self.proxy, self.program) in SUPERVISOR_UP else self.restart(False)

    def stop(self) -> None:
        from ansible.module_utils.triton_service_run import FAULT_BAD_NAME, FAULT_NOT_RUNNING, call_ignoring

        if self.manager == "systemd":
            self.run(["systemctl", "stop", self.unit])
            return
        with contextlib.suppress(OSError):
            call_ignoring(
                self.proxy.supervisor, "stopProcess", self.program, True, codes=(FAULT_NOT_RUNNING, FAULT_BAD_NAME)
            )

    def status(self) -> tuple[str, str | None]:
        """``running`` (past its start time), ``starting`` or ``failed``, with what the manager says."""
        from ansible.module_utils.triton_service_run import parse_show, supervisor_info

        if self.manager == "systemd":
            props = parse_show(self._systemctl("show", "--property=ActiveState,SubState,NRestarts", self.unit))
            state = props.get("ActiveState")
            if state == "failed" or int(props.get("NRestarts") or 0) >= 3:
                return (
                    "failed",
                    f"systemd reports {state}/{props.get('SubState')} after {props.get('NRestarts')} restarts",
                )
            return ("running" if state == "active" else "starting"), f"{state}/{props.get('SubState')}"
        try:
            info = supervisor_info(self.proxy, self.program)
        except OSError as err:
            return "failed", f"supervisord does not answer ({err})"
        if info is None:
            return "failed", f"supervisord has no program {self.program}"
        state = str(info["statename"])
        if state == "RUNNING":
            return "running", state
        if state in ("STARTING", "BACKOFF"):
            return "starting", state
        return (
            "failed",
            f"supervisord reports {state} ({info.get('spawnerr') or 'exited: ' + str(info.get('exitstatus'))})",
        )

    def pid(self) -> int | None:
        from ansible.module_utils.triton_service_run import parse_show, supervisor_info

        if self.manager == "systemd":
            pid = int(parse_show(self._systemctl("show", "--property=MainPID", self.unit)).get("MainPID") or 0)
        else:
            try:
                info = supervisor_info(self.proxy, self.program)
            except OSError:
                return None
            pid = int((info or {}).get("pid") or 0)
        return pid or None


# --- the whole step ----------------------------------------------------------------------------


def deploy(
    params: Mapping[str, Any],
    check_mode: bool,
    service: Any,
    plan_release: Callable[[], dict[str, Any]],
    check: Callable[[Path, int | None], dict[str, Any]],
    probe: Callable[[], dict[str, Any]],
    run_build: Callable[..., subprocess.CompletedProcess],
    log_tail: Callable[[], str],
) -> dict[str, Any]:
    """Bring the application to the release the parameters describe, checked, or leave the previous one running.

    ``plan_release()`` returns ``{release, launcher, source, manifest}`` for the wanted release;
    ``check(binary, pid)`` is the app check, ``probe()`` the in-process probe (both return
    results with ``findings``); ``service`` is an :class:`AppService`. Returns the module result:
    ``{changed, release, previous, actions, app_check, probe, service_manager}``. Raises AppError
    (with ``details`` for the report) when the new release is refused or fails and was rolled back.
    """
    from ansible.module_utils.triton_service_config import Outcome

    root = Path(params["root"])
    wanted = plan_release()
    release = wanted["release"]
    target = lifecycle.release_dir(root, release)
    current = lifecycle.linked_release(root, lifecycle.CURRENT_LINK)
    actions: list[str] = []
    result: dict[str, Any] = {"changed": False, "release": release, "previous": current, "actions": actions}
    result.update(app_check=None, probe=None, service_manager=service.manager, rolled_back=False)
    missing_source = (
        not target.is_dir() and not wanted["source"].get("path") and not Path(wanted["source"]["archive"]).is_file()
    )
    if missing_source and check_mode:
        actions.append(f"upload the source, stage, build and check release {release}, then switch to it")
        result.update(changed=True, source_missing=False)
        return result
    if missing_source:
        result["source_missing"] = True
        return result
    result["source_missing"] = False
    if not release_is_intact(root, release):
        actions.append(f"stage and build release {release} into {target}")
        if not check_mode:
            stage_release(
                root, release, wanted["source"], wanted.get("build"), wanted["launcher"], wanted["manifest"], run_build
            )
    binary = Path(wanted["binary"].replace("@RELEASE@", str(target)))
    outcome = Outcome()
    config_changed = service.write_config(check_mode, outcome)
    actions += outcome.changes
    switching = current != release
    if check_mode:
        if switching:
            actions.append(
                f"check release {release}, then point {root / lifecycle.CURRENT_LINK} at it "
                f"and restart {service.program}"
            )
        result["changed"] = bool(actions)
        result["diff"] = outcome.diff
        return result
    if switching:
        # Before it takes over: the files against the plan, and the models in-process with the plan's options.
        result["app_check"] = check(binary, None)
        result["probe"] = probe() if params["probe"] else None
        refused = check_findings(result["app_check"]) + check_findings(result["probe"] or {})
        if refused:
            raise AppError(
                f"Release {release} of application {params['name']} is refused before it takes over; "
                f"{'release ' + current + ' keeps running' if current else 'nothing was running'}:\n"
                f"{findings_text(refused)}",
                {**result, "refused": True},
            )
        if current:
            lifecycle.point_link(root, lifecycle.PREVIOUS_LINK, current)
        lifecycle.point_link(root, lifecycle.CURRENT_LINK, release)
        actions.append(f"point {root / lifecycle.CURRENT_LINK} at {lifecycle.RELEASES_DIR}/{release}")
        actions += [f"{a} {service.program}" for a in service.restart(config_changed)]
    else:
        actions += [
            f"{a} {service.program}" for a in (service.restart(True) if config_changed else service.ensure_started())
        ]
    failure = wait_running(service.status, float(params["start_timeout"]))
    if failure is None:
        pid = service.pid()
        result["app_check"] = check(binary, pid, None if pid else f"{service.program} runs no process")
        failed = check_findings(result["app_check"])
    else:
        failed = [
            {
                "severity": "error",
                "code": "app_not_running",
                "model": None,
                "message": f"{service.program} does not stay up: {failure}; last lines of its log:\n{log_tail()}",
                "fix": "fix what the log says (arguments, model, library path) and rerun",
            }
        ]
    result["changed"] = bool(actions)
    if failed:
        rollback = current if switching else None
        restored = _roll_back(root, rollback, service, params, actions) if switching else "nothing (no update)"
        result["rolled_back"] = switching
        raise AppError(
            f"Application {params['name']} release {release} failed its check while running; {restored}:\n"
            f"{findings_text(failed)}",
            {**result, "findings": failed},
        )
    if not check_mode:
        protected = [r for r in (release, lifecycle.linked_release(root, lifecycle.PREVIOUS_LINK)) if r]
        actions += [f"prune release {r}" for r in prune_releases(root, int(params["keep_releases"]), protected)]
        result["changed"] = bool(actions)
    return result


def _roll_back(root: Path, previous: str | None, service: Any, params: Mapping[str, Any], actions: list[str]) -> str:
    """Put the previous release back and make it run again; return what happened, in words."""
    if previous is None:
        service.stop()
        lifecycle.remove_link(root, lifecycle.CURRENT_LINK)
        actions.append(f"stop {service.program}; remove {root / lifecycle.CURRENT_LINK} (no previous release)")
        return "the application is stopped (there was no previous release)"
    lifecycle.point_link(root, lifecycle.CURRENT_LINK, previous)
    actions.append(f"point {root / lifecycle.CURRENT_LINK} back at {lifecycle.RELEASES_DIR}/{previous}")
    actions += [f"{a} {service.program}" for a in service.restart(False)]
    failure = wait_running(service.status, float(params["start_timeout"]))
    if failure:
        return f"release {previous} was put back but does not run either ({failure})"
    return f"release {previous} was put back and runs again"


# --- what a release is made of, from the module's parameters -------------------------------------


def server_release(install_prefix: Path) -> tuple[Path, dict[str, Any], Path]:
    """The server release an application embeds: ``(release dir, manifest, library)`` under ``<prefix>/current``.

    Raises AppError for no release, a container release (its library lives in the image) or a
    release without ``lib/libtritonserver.so``.
    """
    current = install_prefix / lifecycle.CURRENT_LINK
    try:
        manifest = lifecycle.read_manifest(current)
    except lifecycle.ManifestError as err:
        manifest, reason = None, str(err)
    else:
        reason = f"{current}/manifest.json does not exist"
    if manifest is None:
        raise ReleaseMissing(
            f"No installed Triton release to embed: {reason}. An embedded application links the release "
            "triton_install lays out. Run playbooks/site.yml (or the triton_install role) on this host first."
        )
    library = current / str(manifest.get("library") or "lib/libtritonserver.so")
    if manifest.get("method") == "container" or not library.is_file():
        raise AppError(
            f"The installed release ({manifest.get('method')} method, {current}) has no lib/libtritonserver.so "
            f"(manifest library: {manifest.get('library')!r}). Embedded applications load the library of a native "
            "release: wheel, tarball or source. Install one of those (triton_install_method) for hosts that run "
            "an embedded application."
        )
    return current, manifest, library


def plan_release(params: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that makes the wanted release: its id, launcher (template), source, build, binary, manifest."""
    check_declaration(params)
    root = Path(params["root"])
    triton_home, server_manifest, library = server_release(Path(params["install_prefix"]))
    home = str(Path(params["install_prefix"]) / lifecycle.CURRENT_LINK)
    env = launch_environment(
        params["plan"], server_manifest, home, params["state_dir"], params["model_repository"], params["env"] or {}
    )
    argv = launch_argv(
        Path("@RELEASE@"), params["command"], params["args"] or [], params["plan"], params["server_args"]
    )
    launcher = launcher_text(params["name"], env, argv, params["user"], params["group"])
    source = dict(params["source"])
    if source.get("path"):
        path = Path(source["path"])
        if not path.exists():
            raise AppError(
                f"The application's files are not on the host: {path} does not exist (triton_app_remote_src). "
                "A host source is a file or directory already on the host. Fix the path or use triton_app_src."
            )
        source["digest"] = _source_digest(path)
    else:
        source["archive"] = str(source_archive(root, source["digest"]))
    build = None
    if params.get("build_command"):
        build_env = build_environment(params["plan"], home)
        build = {"command": list(params["build_command"]), "env": build_env, "timeout": params["build_timeout"]}
    release = release_id(source["digest"], params.get("build_command"), launcher)
    manifest = {
        "name": params["name"],
        "program": program_name(params["name"]),
        "source_digest": source["digest"],
        "source": source.get("path") or params.get("source_label") or source["archive"],
        "build_command": list(params.get("build_command") or []),
        "argv": [a.replace("@RELEASE@", str(lifecycle.release_dir(root, release))) for a in argv],
        "environment": env,
        "server_version": server_manifest.get("server_version"),
        "library": str(library),
    }
    return {
        "release": release,
        "launcher": launcher,
        "source": source,
        "build": build,
        "binary": argv[0],
        "manifest": manifest,
        "environment": env,
        "triton_home": triton_home,
        "server_manifest": server_manifest,
        "library": library,
    }


def make_checks(
    params: Mapping[str, Any],
    environment: Mapping[str, str],
    triton_home: Path,
    server_manifest: Mapping[str, Any],
    library: Path,
    nvml: Any | None,
    nvml_reason: str | None,
    root: Path = Path("/"),
    proc_root: Path = Path("/proc"),
) -> tuple[Callable[[Path, int | None], dict[str, Any]], Callable[[], dict[str, Any]]]:
    """The app check and the in-process probe of one application, as the deploy and verify modules run them.

    ``params`` needs ``plan``, ``host_gpus``, ``model_repository``, ``expected_outputs`` and
    ``probe_timeout``. The probe runs with the application's own environment.
    """
    from ansible.module_utils.triton_app_check import check_app
    from ansible.module_utils.triton_app_probe import descendants, probe, probe_findings
    from ansible.module_utils.triton_models_switch import release_models

    plan = params["plan"]
    # As the check names files: from the root they are read under.
    release_library = "/" + os.path.relpath(os.path.realpath(library), os.path.realpath(root))

    def check(binary: Path, pid: int | None, not_running: str | None = None) -> dict[str, Any]:
        return check_app(
            binary,
            pid,
            plan,
            environment,
            params.get("host_gpus") or [],
            release_library,
            nvml,
            nvml_reason,
            root=root,
            proc_root=proc_root,
            descendants=lambda p: descendants(proc_root, p),
            not_running=not_running,
        )

    def run_probe() -> dict[str, Any]:
        repository = Path(os.path.realpath(params["model_repository"]))
        groups_file = repository / INSTANCE_GROUPS_NAME
        try:
            expected_groups = json.loads(groups_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            expected_groups = None
        result = probe(
            Path(os.path.realpath(triton_home)),
            Path(os.path.realpath(library)),
            server_manifest,
            plan,
            repository,
            release_models(repository),
            nvml,
            nvml_reason,
            environment,
            timeout=float(params["probe_timeout"]),
        )
        result["findings"] = probe_findings(result, plan, expected_groups, params.get("expected_outputs") or {})
        result["model_repository"] = str(repository)
        return result

    return check, run_probe
