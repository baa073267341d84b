# SPDX-License-Identifier: Apache-2.0
"""Host side of the ``triton_service`` role in one compare-and-apply pass.

The service account, its directories, the restricted-API key, the launcher, the service
manager's file (supervisord.conf or the systemd unit) and the supervisord environment are read,
compared with what the role wants and changed only where they differ. A run that finds
everything in place changes nothing and starts no process; check mode reports the same
changes without making them.

Decisions are pure functions over snapshots (``group_argv``, ``user_argv``,
``service_manager_for``, ``requirement_dist``, ``launcher_script``); :func:`configure`
applies them. Commands run through an injected ``run(argv) -> (rc, stdout, stderr)``.
Errors are ``ServiceConfigError`` with a four-part message.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shlex
import stat
import string
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_host import probe_service_manager
from ansible.module_utils.triton_server_options import (
    OptionsError,
    extra_args_problems,
    native_help,
    read_options,
    write_options_cache,
)
from ansible.module_utils.triton_service import (
    MANIFEST_NAME,
    SYSTEM_PATH,
    ServiceConfigError,
    check_manifest,
    container_launch,
    read_manifest,
    server_argv,
    server_env,
)
from ansible.module_utils.triton_service_run import LAUNCHER, PREVIOUS_SUFFIX

Runner = Callable[[Sequence[str]], "tuple[int, str, str]"]

SHELL = "/usr/sbin/nologin"
COMMENT = "Triton Inference Server (tritonfleet)"
# Letters and digits only: the key ends up inside Triton's "<apis>:<header>=<key>" argument,
# where ':', '=' and ',' are syntax.
KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 48
MANAGED = "# Managed by tritonfleet (triton_service role): local changes are overwritten."
# Under the service home: the options of the release in use, read once from its --help.
OPTIONS_CACHE = "cache/tritonserver-options.json"


# --- decisions -----------------------------------------------------------------------------


def service_manager_for(requested: str, root: Path = Path("/")) -> str:
    """Return ``systemd`` or ``supervisor`` for ``requested`` (``auto``, ``systemd``, ``supervisor``).

    ``auto`` follows the host's service manager (``triton_host.probe_service_manager``, the rule
    of the ``triton_host.service_manager`` fact): systemd where systemd manages services,
    supervisord everywhere else.
    """
    if requested != "auto":
        return requested
    return "systemd" if probe_service_manager(root)[0] == "systemd" else "supervisor"


def group_argv(name: str, gid: int | None, current_gid: int | None) -> list[str] | None:
    """Return the command that makes system group ``name`` (with ``gid`` when set), or None when it is right."""
    if current_gid is None:
        return ["groupadd", "--system", *(["--gid", str(gid)] if gid is not None else []), name]
    if gid is not None and current_gid != gid:
        return ["groupmod", "--gid", str(gid), name]
    return None


@dataclass(frozen=True)
class Account:
    """A user account as the role compares it; ``groups`` are the supplementary group names."""

    uid: int | None
    group: str
    groups: tuple[str, ...]
    home: str
    shell: str = SHELL
    comment: str = COMMENT


def user_argv(name: str, wanted: Account, current: Account | None) -> list[str] | None:
    """Return the useradd/usermod command that gives ``name`` the ``wanted`` account, or None.

    A missing account is created as a system account without a home directory (the role makes
    the state directory itself); an existing one gets only the options that differ. A None
    ``wanted.uid`` keeps whatever uid the account has.
    """
    options: list[str] = []
    if current is None or (wanted.uid is not None and current.uid != wanted.uid):
        options += ["--uid", str(wanted.uid)] if wanted.uid is not None else []
    if current is None or current.group != wanted.group:
        options += ["--gid", wanted.group]
    if (current is None and wanted.groups) or (current is not None and set(current.groups) != set(wanted.groups)):
        options += ["--groups", ",".join(sorted(wanted.groups))]
    if current is None or current.shell != wanted.shell:
        options += ["--shell", wanted.shell]
    if current is None or current.home != wanted.home:
        options += ["--home-dir" if current is None else "--home", wanted.home]
    if current is None or current.comment != wanted.comment:
        options += ["--comment", wanted.comment]
    if current is None:
        return ["useradd", "--system", "--no-create-home", *options, name]
    return ["usermod", *options, name] if options else None


def requirement_dist(requirement: str) -> tuple[str, str | None]:
    """Return (normalized project name, pinned version or None) of a pip requirement or wheel path.

    ``supervisor==4.3.0`` pins 4.3.0; ``/srv/wheels/supervisor-4.3.0-py2.py3-none-any.whl`` too;
    any other requirement (``supervisor``, ``supervisor>=4``) accepts whatever version is installed.
    """
    text = requirement.strip()
    wheel = re.fullmatch(r"(?:.*/)?([A-Za-z0-9_.]+)-([^-/]+)-[^/]*\.whl", text)
    pinned = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*([^\s;,]+)", text)
    match = wheel or pinned
    if match:
        name, version = match[1], match[2]
    else:
        name, version = re.match(r"[A-Za-z0-9_.-]*", text)[0], None
    return re.sub(r"[-_.]+", "_", name).lower(), version


def dist_installed(site_packages: Sequence[Path], name: str, version: str | None) -> bool:
    """True when one of ``site_packages`` holds ``<name>-<version>.dist-info`` (any version when None)."""
    for directory in site_packages:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            match = re.fullmatch(r"(.+)-([^-]+)\.dist-info", entry)
            if match and re.sub(r"[-_.]+", "_", match[1]).lower() == name and version in (None, match[2]):
                return True
    return False


def exec_as_lines(env: Mapping[str, str], user: str, group: str) -> list[str]:
    """Shell lines (each ending in a continuation) that exec the command that follows with exactly ``env``, as ``user``.

    ``env -i`` drops everything of the caller's environment; ``setpriv`` drops root to the
    unprivileged account without a shell in between and forbids regaining privileges.
    """
    quote = shlex.quote
    lines = ["exec env -i \\"]
    lines += [f"  {quote(f'{name}={value}')} \\" for name, value in sorted(env.items())]
    lines.append(f"  setpriv --reuid={quote(user)} --regid={quote(group)} --init-groups --no-new-privs -- \\")
    return lines


def launcher_script(launch: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Return the launcher shell script for a computed launch (argv, env, container) and the role settings.

    ``settings`` keys: ``user``, ``group``, ``api_key_file``, ``model_repository``,
    ``restricted_apis``, ``api_key_header``. The script reads the key and lists one
    ``--load-model`` per ``<repository>/*/config.pbtxt`` when it starts; a native release then
    runs the server with exactly ``launch['env']`` (``env -i``) as the service user (setpriv),
    a container release runs ``launch['prepare']`` and then the engine's argv in the foreground
    (the engine runs the server as the image's user).
    """
    quote = shlex.quote
    apis = ",".join(settings["restricted_apis"])
    header = settings["api_key_header"]
    lines = [
        "#!/bin/sh",
        MANAGED,
        f"# Starts tritonserver {launch.get('server_version', '')} as {settings['user']}.",
        "# Two arguments are decided at start, not when Ansible writes this file:",
        "# - one --load-model per model directory of the active repository, because the models role",
        "#   switches releases through the repository API without rewriting this file;",
        "# - the restricted-API key, read from its root-only file so it is in no written file.",
        "# The server gets exactly the environment below (env -i), nothing of the caller's.",
        "set -eu",
        f"key=$(cat {quote(settings['api_key_file'])})",
        "set --",
        f"for config in {quote(settings['model_repository'])}/*/config.pbtxt; do",
        '  [ -f "$config" ] || continue',
        "  model=${config%/config.pbtxt}",
        '  set -- "$@" "--load-model=${model##*/}"',
        "done",
    ]
    if launch.get("container"):
        lines.append("# Container release: the engine runs the image's server, in the foreground, as the image's user.")
        prepare = launch.get("prepare") or []
        if prepare:
            lines.append("# A container left by a killed engine client would block the name; remove it first.")
        lines += [" ".join(quote(arg) for arg in argv) + " >/dev/null 2>&1 || :" for argv in prepare]
        lines.append("exec \\")
    else:
        lines += exec_as_lines(launch["env"], settings["user"], settings["group"])
    lines += [f"  {quote(arg)} \\" for arg in launch["argv"]]
    lines += [
        f'  "--http-restricted-api={apis}:{header}=$key" \\',
        f'  "--grpc-restricted-protocol={apis}:{header}=$key" \\',
        '  "$@"',
    ]
    return "\n".join(lines) + "\n"


def compute_launch(params: Mapping[str, Any], check_mode: bool) -> dict[str, Any] | None:
    """Return the launch of the release to serve: {release_dir, server_version, container, argv, prepare, env,
    help_argv, image_id}.

    The release is ``release_dir`` when given (as triton_install publishes it in the same play),
    else ``<install_prefix>/current``; its manifest is ``manifest`` when given, else read from the
    release's manifest.json. In check mode a release still to be installed (none yet, or one of
    another install method than the plan's) yields None instead of an error.
    """
    if params.get("release_dir"):
        release_dir = Path(os.path.realpath(params["release_dir"]))
    else:
        release_dir = Path(os.path.realpath(os.path.join(params["install_prefix"], "current")))
    if params.get("manifest"):
        manifest = check_manifest(params["manifest"], f"triton_install_result.manifest of {release_dir}")
    elif check_mode and not (release_dir / MANIFEST_NAME).exists():
        return None
    else:
        manifest = read_manifest(release_dir)
    options = {**params, "release_dir": str(release_dir)}
    container = manifest.get("method") == "container"
    planned = params["plan"].get("install_method")
    if container != (planned == "container") and check_mode:
        # The install of this run would replace the release (another method): nothing to compare yet.
        return None
    if container != (planned == "container"):
        raise ServiceConfigError(
            f"The release to serve ({release_dir}) was installed by method {manifest.get('method')}, but the plan "
            f"is for method {planned} (triton_service_plan.install_method). The service runs what the plan says, "
            "and renders its unit for it. Run playbooks/site.yml (preflight, then install) so both agree, or pass "
            "the plan the release was installed for."
        )
    launch: dict[str, Any] = {"prepare": [], "help_argv": None, "image_id": None}
    if container:
        launch.update(container_launch(release_dir, manifest, options))
        launch["env"] = {"PATH": SYSTEM_PATH}
    else:
        launch["argv"] = server_argv(params["plan"], options)
        launch["env"] = server_env(params["plan"], manifest, options)
    return {
        **launch,
        "release_dir": str(release_dir),
        "server_version": manifest["server_version"],
        "container": container,
    }


def check_extra_args(
    launch: Mapping[str, Any], extra_args: Sequence[str], home: Path, run: Runner, check_mode: bool
) -> None:
    """Refuse extra arguments the release's own tritonserver does not accept, before anything is written.

    The options come from the server's ``--help``: the release's binary, or for a container
    release the image's, in a throwaway container (``launch['help_argv']``). They are cached under
    ``home`` for the build in use (kept only after they were read and the arguments passed).
    """
    if not extra_args:
        return
    cache = home / OPTIONS_CACHE
    try:
        if launch["container"]:
            argv, key = launch["help_argv"], {"image_id": launch["image_id"]}
            server = f"tritonserver {launch['server_version']} of image {launch['image_id']}"
        else:
            binary = Path(launch["release_dir"]) / "bin" / "tritonserver"
            argv, key = native_help(binary, launch["env"])
            server = f"tritonserver {launch['server_version']} {binary}"
        options, cached = read_options(argv, key, server, run, cache)
    except OptionsError as err:
        raise ServiceConfigError(str(err)) from err
    problems = extra_args_problems(extra_args, options, server)
    if problems:
        raise ServiceConfigError(" ".join(problems))
    if not cached and not check_mode:
        write_options_cache(key, options, cache)


# --- applying ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a configure pass changed (or would change): names, diffs, and why the server restarts."""

    changes: list[str] = field(default_factory=list)
    diff: list[dict[str, Any]] = field(default_factory=list)
    restart_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, what: str, before: Any, after: Any, restart: bool = False) -> None:
        """Record one change with its before/after for --diff."""
        self.changes.append(what)
        self.diff.append({"before_header": what, "after_header": what, "before": before, "after": after})
        if restart:
            self.restart_reasons.append(what)


def _uid(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def read_account(name: str) -> Account | None:
    """Return the account ``name`` as the role compares it, or None when it does not exist."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    try:
        primary = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        primary = str(entry.pw_gid)
    groups = tuple(sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem and g.gr_name != primary))
    return Account(entry.pw_uid, primary, groups, entry.pw_dir, entry.pw_shell, entry.pw_gecos)


def _run_checked(run: Runner, argv: Sequence[str], what: str, remedy: str) -> None:
    rc, out, err = run(argv)
    if rc != 0:
        raise ServiceConfigError(
            f"Could not {what}: {' '.join(argv)} exited {rc} ({(err or out).strip()[-2000:]}). {remedy}"
        )


def ensure_account(params: Mapping[str, Any], check_mode: bool, run: Runner, outcome: Outcome) -> None:
    """Ensure the service group and the unprivileged system user exist with the wanted attributes."""
    group, user = params["group"], params["user"]
    current_gid = _gid(group)
    argv = group_argv(group, params["gid"], current_gid)
    if argv:
        before = {"gid": current_gid} if current_gid is not None else {"state": "absent"}
        after = {"gid": params["gid"] if params["gid"] is not None else "(next system gid)"}
        outcome.add(f"group {group}", before, after, restart=True)
        if not check_mode:
            _run_checked(run, argv, f"ensure group {group}", "Fix the group database, or set triton_service_gid.")
    wanted = Account(params["uid"], group, tuple(sorted(params["user_groups"])), params["state_dir"])
    current = read_account(user)
    argv = user_argv(user, wanted, current)
    if argv:
        before = vars(current) if current else {"state": "absent"}
        outcome.add(f"user {user}", before, vars(wanted), restart=True)
        if not check_mode:
            _run_checked(
                run,
                argv,
                f"ensure user {user}",
                "Fix the account database (a uid taken by another user?), or set triton_service_uid.",
            )


def ensure_directory(path: Path, owner: str, group: str, mode: int, check_mode: bool, outcome: Outcome) -> None:
    """Ensure ``path`` is a directory with this owner, group and mode (parents made as needed)."""
    uid, gid = _uid(owner), _gid(group)
    wanted = {"path": str(path), "state": "directory", "owner": owner, "group": group, "mode": f"{mode:04o}"}
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise ServiceConfigError(
            f"{path} is not a directory (found mode {stat.filemode(info.st_mode)}). "
            "The service needs it as a directory. Move it away and rerun."
        )
    if info is not None and (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, mode):
        return
    before = {"path": str(path), "state": "absent"}
    if info is not None:
        before = {
            "path": str(path),
            "state": "directory",
            "uid": info.st_uid,
            "gid": info.st_gid,
            "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        }
    outcome.add(str(path), before, wanted)
    if check_mode:
        return
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", errors="replace")


def write_atomic(path: Path, content: bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same directory and a rename."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError:
        os.unlink(temp)
        raise


def ensure_file(
    path: Path,
    content: str,
    mode: int,
    check_mode: bool,
    outcome: Outcome,
    restart: bool = False,
    validate: Callable[[bytes], None] | None = None,
    keep_previous: bool = False,
) -> bool:
    """Ensure the root-owned file ``path`` holds ``content`` with ``mode``; True when it changed.

    Only what differs is written: new content atomically (after ``validate``, when given, accepts
    it), or just the owner and mode. The diff shows the text before and after, like the template module.
    With ``keep_previous`` the content the running server was started from is first kept as
    ``<path>.previous`` (unless a copy from an earlier, not yet restarted change is there), for
    triton_service_run to put back when the server does not get ready on the new one.
    """
    wanted = content.encode("utf-8")
    try:
        current = path.read_bytes()
        info = path.stat()
    except FileNotFoundError:
        current, info = None, None
    if current == wanted:
        if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, mode):
            return False
        outcome.add(
            f"{path} (owner, mode)",
            f"{info.st_uid}:{info.st_gid} {stat.S_IMODE(info.st_mode):04o}\n",
            f"0:0 {mode:04o}\n",
            restart=restart,
        )
        if not check_mode:
            os.chown(path, 0, 0)
            os.chmod(path, mode)
        return True
    outcome.add(str(path), _text(current), content, restart=restart)
    if not check_mode:
        if validate is not None:
            validate(wanted)
        previous = Path(f"{path}{PREVIOUS_SUFFIX}")
        if keep_previous and current is not None and not previous.exists():
            write_atomic(previous, current, stat.S_IMODE(info.st_mode))
        write_atomic(path, wanted, mode)
    return True


def pending_restart(path: Path, outcome: Outcome) -> bool:
    """Flag a restart an earlier run left due: ``path`` changed (its ``.previous`` is there) but no
    restart on it got the server ready yet (an interrupted run). True when it did."""
    if not Path(f"{path}{PREVIOUS_SUFFIX}").exists():
        return False
    reason = f"{path} (changed by an earlier run that did not restart the server on it)"
    if str(path) not in outcome.restart_reasons:
        outcome.restart_reasons.append(reason)
    return True


def ensure_api_key(path: Path, check_mode: bool, outcome: Outcome) -> None:
    """Ensure the restricted-API key file exists (0600 root); an existing key is kept, never shown."""
    try:
        info = path.stat()
    except FileNotFoundError:
        outcome.add(str(path), "(absent)\n", f"({KEY_LENGTH}-character key, not shown)\n", restart=True)
        if not check_mode:
            key = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))
            write_atomic(path, key.encode("ascii"), 0o600)
        return
    if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) != (0, 0, 0o600):
        outcome.add(
            f"{path} (owner, mode)", f"{info.st_uid}:{info.st_gid} {stat.S_IMODE(info.st_mode):04o}\n", "0:0 0600\n"
        )
        if not check_mode:
            os.chown(path, 0, 0)
            os.chmod(path, 0o600)


def ensure_supervisor(params: Mapping[str, Any], check_mode: bool, run: Runner, outcome: Outcome) -> None:
    """Ensure supervisord is installed in its own venv: pip runs only when the pinned dist is missing."""
    venv = Path(params["supervisor_venv"])
    name, version = requirement_dist(params["supervisor_package"])
    site_packages = sorted(venv.glob("lib/python3*/site-packages"))
    if (venv / "bin" / "supervisord").exists() and dist_installed(site_packages, name, version):
        return
    outcome.add(f"{venv} (supervisord)", "(missing)\n", f"{params['supervisor_package']}\n")
    if check_mode:
        return
    remedy = (
        "supervisord is installed with pip into its own venv from triton_service_supervisor_python. "
        "Check that the interpreter has the venv module and that pip reaches an index "
        "(or set triton_service_supervisor_package to a wheel path)."
    )
    if not (venv / "bin" / "python").exists():
        _run_checked(run, [params["supervisor_python"], "-m", "venv", str(venv)], f"create the venv {venv}", remedy)
    _run_checked(
        run,
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            params["supervisor_package"],
        ],
        f"install {params['supervisor_package']} into {venv}",
        remedy,
    )


def systemd_verifier(run: Runner, analyze: str | None, unit_name: str) -> Callable[[bytes], None] | None:
    """Return a check that ``systemd-analyze verify`` accepts a unit's content (None without the tool)."""
    if analyze is None:
        return None

    def verify(content: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="tritonfleet-unit-") as temp:
            unit = Path(temp) / unit_name
            unit.write_bytes(content)
            rc, out, err = run([analyze, "verify", str(unit)])
        if rc != 0:
            raise ServiceConfigError(
                f"systemd-analyze verify rejects the new {unit_name} ({(err or out).strip()[-2000:]}). "
                "The unit is installed only when systemd accepts it; the running server is left alone. "
                "Fix the variables the error names (paths, triton_service_*), then rerun."
            )

    return verify


def configure(params: Mapping[str, Any], check_mode: bool, run: Runner, analyze: str | None) -> dict[str, Any]:
    """Compare the host with the wanted service setup and apply the difference (nothing in check mode).

    Returns {changed, service_manager, changes, restart_reasons, reload, diff, warnings, release_dir,
    server_version}. ``restart_reasons`` lists what the running server depends on that changed
    (account, key, launcher, unit); ``reload`` is true when supervisord.conf changed.
    """
    manager = service_manager_for(params["manager"])
    outcome = Outcome()
    launch = compute_launch(params, check_mode)
    if launch is not None:
        check_extra_args(launch, params.get("extra_args") or [], Path(params["home"]), run, check_mode)
    if launch is None:
        outcome.warnings.append(
            f"No installed release under {params['install_prefix']}; check mode assumes one is coming."
        )
    ensure_account(params, check_mode, run, outcome)
    home = Path(params["home"])
    ensure_directory(Path(params["state_dir"]), params["user"], params["group"], 0o750, check_mode, outcome)
    # root's service manager opens the logs here: a directory the service user could write
    # would let it plant a link that root then appends to.
    ensure_directory(Path(params["log_dir"]), "root", params["group"], 0o750, check_mode, outcome)
    for directory in (Path(params["config_dir"]), home, home / "bin"):
        ensure_directory(directory, "root", "root", 0o755, check_mode, outcome)
    ensure_api_key(Path(params["api_key_file"]), check_mode, outcome)
    launcher = home / LAUNCHER
    if launch is None:
        outcome.add(
            str(launcher),
            _text(launcher.read_bytes()) if launcher.exists() else "",
            "(written from the release still to be installed)\n",
            restart=True,
        )
    else:
        ensure_file(
            launcher, launcher_script(launch, params), 0o755, check_mode, outcome, restart=True, keep_previous=True
        )
    pending_restart(launcher, outcome)
    reload = False
    if manager == "supervisor":
        ensure_directory(Path(params["run_dir"]), "root", "root", 0o755, check_mode, outcome)
        ensure_supervisor(params, check_mode, run, outcome)
        conf = Path(params["supervisor_conf"])
        reload = ensure_file(conf, params["supervisor_config"], 0o644, check_mode, outcome, keep_previous=True)
        if reload:
            outcome.restart_reasons.append(str(conf))
        reload = pending_restart(conf, outcome) or reload
    else:
        unit = Path(params["systemd_unit_file"])
        verify = systemd_verifier(run, analyze, unit.name)
        ensure_file(
            unit, params["systemd_unit"], 0o644, check_mode, outcome, restart=True, validate=verify, keep_previous=True
        )
        pending_restart(unit, outcome)
    return {
        "changed": bool(outcome.changes),
        "service_manager": manager,
        "changes": outcome.changes,
        "restart_reasons": outcome.restart_reasons,
        "reload": reload,
        "diff": outcome.diff,
        "warnings": outcome.warnings,
        "release_dir": launch["release_dir"] if launch else None,
        "server_version": launch["server_version"] if launch else None,
    }
