# SPDX-License-Identifier: Apache-2.0
"""Keep tritonserver running under supervisord or systemd and wait until it is live and ready.

:func:`supervisor_actions` and :func:`systemd_actions` decide from what the service manager
reports (pure); :func:`ensure_running` reads the manager, applies the actions (none in check
mode) and :func:`wait_ready` then polls ``/v2/health/live`` and ``/v2/health/ready`` under one
deadline. supervisord is asked over its unix socket (XML-RPC, as supervisorctl does) without
starting a client process; systemd through one ``systemctl show``. Errors are
``ServiceConfigError`` with a four-part message.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_server_log import error_lines, log_size, read_since
from ansible.module_utils.triton_service import ServiceConfigError, probe_host

Runner = Callable[[Sequence[str]], "tuple[int, str, str]"]
PROGRAM = "tritonserver"
# States in which supervisord is running the program or retrying it by itself.
SUPERVISOR_UP = ("RUNNING", "STARTING", "BACKOFF")
SYSTEMD_UP = ("active", "activating", "reloading")
SHOW_PROPERTIES = "LoadState,ActiveState,UnitFileState,NeedDaemonReload"
# supervisord's XML-RPC fault codes (supervisor.xmlrpc.Faults).
FAULT_BAD_NAME, FAULT_SPAWN_ERROR, FAULT_ALREADY_STARTED, FAULT_NOT_RUNNING = 10, 50, 60, 70
# stopProcess waits for the server to drain (stopwaitsecs=40 in supervisord.conf).
RPC_TIMEOUT = 60
POLL_SECONDS = 0.5
PROBE_TIMEOUT = 2
# Seconds a live server may take to become ready again (an unload or a load in progress) before
# its model set counts as broken.
SETTLE_SECONDS = 5.0
# Next to the launcher, supervisord.conf or unit: the file the running server was started from,
# kept by triton_service_config when it writes a new one, until a restart on the new one is ready.
PREVIOUS_SUFFIX = ".previous"
# The launcher the service manager runs, under the service home.
LAUNCHER = "bin/tritonfleet-serve"


# --- decisions -----------------------------------------------------------------------------


def supervisor_actions(status: str, state: str, reload_config: bool) -> list[str]:
    """Return what brings the program to ``state`` (``started``/``restarted``), in order.

    ``status`` is ``down`` (supervisord not running), ``missing`` (it runs a configuration
    without the program) or the program's state name. A stopped, exited or FATAL program is
    started again: a rerun is the recovery path. Actions: ``start_supervisord`` (starts the
    program too), ``reload`` (new supervisord.conf; restarts the program), ``restart``, ``start``.
    """
    if status == "down":
        return ["start_supervisord"]
    if reload_config or status == "missing":
        return ["reload"]
    if state == "restarted":
        return ["restart"]
    return [] if status in SUPERVISOR_UP else ["start"]


def systemd_actions(props: Mapping[str, str], state: str, unit: str) -> list[list[str]]:
    """Return the systemctl commands that make ``unit`` enabled and ``state``, from ``systemctl show`` properties.

    systemd reloads its units first when it has not loaded this one yet or its file changed on
    disk (``NeedDaemonReload``), and always before a restart (the handler's unit may be new).
    """
    commands: list[list[str]] = []
    if state == "restarted" or props.get("LoadState") == "not-found" or props.get("NeedDaemonReload") == "yes":
        commands.append(["systemctl", "daemon-reload"])
    if props.get("UnitFileState") != "enabled":
        commands.append(["systemctl", "enable", unit])
    if state == "restarted":
        commands.append(["systemctl", "restart", unit])
    elif props.get("ActiveState") not in SYSTEMD_UP:
        commands.append(["systemctl", "start", unit])
    return commands


def parse_show(text: str) -> dict[str, str]:
    """Return the ``Key=value`` lines of ``systemctl show`` as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --- supervisord ---------------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over supervisord's unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path, self._timeout)


def supervisor_proxy(socket_path: str) -> Any:
    """Return an XML-RPC proxy to the supervisord listening on ``socket_path``."""
    return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(socket_path, RPC_TIMEOUT))


def supervisor_info(proxy: Any, program: str = PROGRAM) -> dict[str, Any] | None:
    """Return supervisord's process info of ``program`` (``statename``, ``pid``, ...), or None when it does not know it.

    Raises OSError when supervisord does not answer.
    """
    try:
        return dict(proxy.supervisor.getProcessInfo(program))
    except xmlrpc.client.Fault as fault:
        if fault.faultCode == FAULT_BAD_NAME:
            return None
        raise ServiceConfigError(
            f"supervisord answered fault {fault.faultCode} ({fault.faultString}) about {program}. "
            "A healthy supervisord reports the program's state. Check its log in triton_service_log_dir."
        ) from fault


def supervisor_status(proxy: Any, program: str = PROGRAM) -> str:
    """Return ``down``, ``missing`` or the program's state name (RUNNING, FATAL, ...)."""
    try:
        info = supervisor_info(proxy, program)
    except OSError:
        return "down"
    return "missing" if info is None else str(info["statename"])


def call_ignoring(rpc: Any, method: str, *args: Any, codes: tuple[int, ...]) -> None:
    """Call supervisord's ``method``; the fault codes in ``codes`` mean the wanted state already holds."""
    try:
        getattr(rpc, method)(*args)
    except xmlrpc.client.Fault as fault:
        if fault.faultCode not in codes:
            raise ServiceConfigError(
                f"supervisord refused {method}({args[0] if args else ''}) with fault {fault.faultCode} "
                f"({fault.faultString}). supervisord starts and stops its programs on request. "
                "Check its log in triton_service_log_dir."
            ) from fault


def supervisor_update(proxy: Any, program: str) -> list[str]:
    """Make supervisord run ``program`` as its configuration files now say, leaving every other program alone.

    What ``supervisorctl update <program>`` does: reread the configuration, then add the program
    when it is new, or replace it (stop, remove, add) when its section changed. Returns what was done.
    """
    rpc = proxy.supervisor
    added, changed, _removed = rpc.reloadConfig()[0]
    done = []
    if program in changed:
        call_ignoring(rpc, "stopProcessGroup", program, True, codes=(FAULT_NOT_RUNNING, FAULT_BAD_NAME))
        rpc.removeProcessGroup(program)
        done.append("remove")
    if program in added or program in changed:
        rpc.addProcessGroup(program)
        done.append("add")
    return done


def apply_supervisor(proxy: Any, action: str, supervisord: Sequence[str], program: str = PROGRAM) -> None:
    """Carry out one action of :func:`supervisor_actions`; spawn errors are left to the readiness wait."""
    rpc = proxy.supervisor
    if action == "start_supervisord":
        # supervisord daemonizes; no stdio of ours may stay open in the daemon.
        try:
            rc = subprocess.run(
                list(supervisord),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            ).returncode
        except OSError as err:
            rc = err.strerror
        if rc != 0:
            raise ServiceConfigError(
                f"supervisord did not start: {' '.join(supervisord)} answered {rc}. "
                "It runs from the role's venv with the role's supervisord.conf. "
                "Run that command by hand to see why (a port or socket in use, a bad path)."
            )
    elif action == "reload":
        # Stop first, so that the old server no longer answers while the new one starts.
        call_ignoring(rpc, "stopProcess", program, True, codes=(FAULT_NOT_RUNNING, FAULT_BAD_NAME))
        rpc.restart()
    elif action == "restart":
        call_ignoring(rpc, "stopProcess", program, True, codes=(FAULT_NOT_RUNNING,))
        call_ignoring(rpc, "startProcess", program, False, codes=(FAULT_ALREADY_STARTED, FAULT_SPAWN_ERROR))
    else:
        call_ignoring(rpc, "startProcess", program, False, codes=(FAULT_ALREADY_STARTED, FAULT_SPAWN_ERROR))


# --- readiness -----------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str) -> int | str:
    """Return the HTTP status of GET ``url``, or why nothing answered."""
    try:
        with _OPENER.open(url, timeout=PROBE_TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return f"nothing ({reason})"


def wait_ready(
    base_url: str,
    timeout: float,
    probe: Callable[[str], int | str] = http_status,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    gave_up: Callable[[], str | None] = lambda: None,
) -> tuple[str, int | str] | None:
    """Poll live, then ready, under one deadline; None when both answered 200, else (stage, last answer).

    ``gave_up`` says why the service manager stopped restarting the server (None while it has
    not): a crash-looping server then fails at once instead of waiting out the deadline.
    """
    deadline = clock() + timeout
    stage = "live"
    while True:
        answer = probe(f"{base_url}/v2/health/{stage}")
        if answer == 200:
            if stage == "ready":
                return None
            stage = "ready"
            continue
        reason = gave_up()
        if reason:
            return stage, f"{answer}, and {reason}"
        if clock() >= deadline:
            return stage, answer
        sleep(POLL_SECONDS)


def supervisor_gave_up(proxy: Any) -> Callable[[], str | None]:
    """``wait_ready``'s check for supervisord: FATAL means it stopped restarting the program."""

    def check() -> str | None:
        try:
            status = supervisor_status(proxy)
        except ServiceConfigError:
            return None
        if status == "FATAL":
            return "supervisord gave up restarting it (FATAL: it exited startretries times within startsecs)"
        return None

    return check


def systemd_gave_up(unit: str, run: Runner) -> Callable[[], str | None]:
    """``wait_ready``'s check for systemd: a failed unit is no longer restarted."""

    def check() -> str | None:
        rc, out, _err = run(["systemctl", "show", "--property=ActiveState", unit])
        if rc == 0 and parse_show(out).get("ActiveState") == "failed":
            return f"systemd gave up restarting it ({unit} is failed: see journalctl -u {unit})"
        return None

    return check


def log_tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of ``path``, or why it cannot be read."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read()
    except OSError as err:
        return f"(cannot read {path}: {err.strerror})"
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _log_excerpt(text: str, lines: int) -> str:
    """The last ``lines`` lines of a log excerpt, without the usage text a refused command line prints."""
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith(("  --", "\t"))]
    return "\n".join(kept[-lines:]) or "(nothing)"


def not_ready_message(
    stage: str, answer: int | str, base_url: str, params: Mapping[str, Any], since: str | None = None
) -> str:
    """The four-part failure message: the server's error lines first, then the end of its log.

    ``since`` is what the server wrote during this attempt; without it the end of the whole log
    is quoted.
    """
    log = Path(params["log_file"])
    lines = params["log_tail_lines"]
    said = error_lines(since if since is not None else log_tail(log, lines))
    excerpt = _log_excerpt(since, lines) if since is not None else log_tail(log, lines)
    return (
        f"tritonserver did not become {stage} within triton_service_ready_timeout={params['ready_timeout']}s:\n"
        f"{base_url}/v2/health/{stage} answered {answer}.\n"
        + (f"The server said:\n{chr(10).join(said)}\n" if said else "")
        + f"Last {lines} lines of {log}:\n{excerpt}\n"
        "A healthy server answers 200 on live and ready once every model it loads is READY.\n"
        "Fix the error the log shows (model config, backend directory, python runtime, server option),\n"
        "or raise triton_service_ready_timeout if loading is only slow."
    )


def previous_files(params: Mapping[str, Any], manager: str) -> list[Path]:
    """The service files that have a ``.previous`` copy: changed since the server last started on them."""
    files = [params.get("launcher")]
    files.append(params.get("supervisor_conf") if manager == "supervisor" else params.get("systemd_unit_file"))
    return [Path(f) for f in files if f and Path(f"{f}{PREVIOUS_SUFFIX}").exists()]


def restored_message(
    failed: tuple[str, int | str],
    again: tuple[str, int | str] | None,
    restored: list[Path],
    since: str,
    base_url: str,
    params: Mapping[str, Any],
) -> str:
    """The four-part message after a restart on new service files failed and the previous ones were put back."""
    stage, answer = failed
    said = error_lines(since) or [_log_excerpt(since, 5)]
    names = ", ".join(str(path) for path in restored)
    outcome = (
        "the server is live and ready again on them"
        if again is None
        else f"but it is not ready on them either ({base_url}/v2/health/{again[0]} answered {again[1]}): the host "
        "does NOT serve"
        + (" (the server was stopped; the next run starts it)" if again[0] == "live" else "")
        + "; run the play again once the cause below is fixed"
    )
    return (
        f"tritonserver did not become {stage} within triton_service_ready_timeout={params['ready_timeout']}s after "
        f"the restart on the new service files ({base_url}/v2/health/{stage} answered {answer}). The server said:\n"
        + "\n".join(said)
        + f"\nLast {params['log_tail_lines']} lines of {params['log_file']} during that start:\n"
        + _log_excerpt(since, params["log_tail_lines"])
        + f"\nThe previous {names} were restored and the server was restarted on them: {outcome}.\n"
        "A change of the service files is kept only when the server becomes live and ready on it.\n"
        "Fix what the server names (triton_service_extra_args, a path, a model) and rerun; raise "
        "triton_service_ready_timeout if the start is only slow."
    )


def _restore(files: list[Path]) -> None:
    for path in files:
        os.replace(f"{path}{PREVIOUS_SUFFIX}", path)


def _stop_hard(params: Mapping[str, Any], manager: str, run: Runner, proxy: Any) -> None:
    """Stop a server that is not live, without the graceful drain: it serves nothing, and one stuck
    loading a model would hold a graceful stop for its whole drain time (stopwaitsecs). Stopped,
    not left hanging, it is started afresh by the next run. Best effort: faults mean it is down."""
    if manager == "supervisor":
        with contextlib.suppress(xmlrpc.client.Fault, OSError):
            proxy.supervisor.stopProcess(PROGRAM, False)
        with contextlib.suppress(xmlrpc.client.Fault, OSError):
            proxy.supervisor.signalProcess(PROGRAM, "KILL")
    else:
        run(["systemctl", "kill", "--signal=SIGKILL", params["systemd_unit"]])
        run(["systemctl", "stop", params["systemd_unit"]])


def _commit(files: list[Path]) -> None:
    for path in files:
        Path(f"{path}{PREVIOUS_SUFFIX}").unlink(missing_ok=True)


def live_but_not_ready(
    base_url: str,
    probe: Callable[[str], int | str] = http_status,
    settle_s: float = SETTLE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """True when the server answers live but not ready for ``settle_s``: a model set left broken (a
    load that failed or hangs, an interrupted switch). At start the server opens HTTP only after its
    models loaded, so a live server that stays not ready longer than an unload or a load takes to
    settle will not get ready by waiting."""
    if probe(f"{base_url}/v2/health/live") != 200:
        return False
    deadline = clock() + settle_s
    while probe(f"{base_url}/v2/health/ready") != 200:
        if clock() >= deadline:
            return True
        sleep(POLL_SECONDS)
    return False


# --- the whole step ------------------------------------------------------------------------


def service_settings(config: Mapping[str, Any], manager: str) -> dict[str, Any]:
    """How the service runs, from a ``triton_service_config`` run with ``ensure_ready``: what
    :func:`ensure_running` needs besides ``state`` and ``reload_config``, plus the manager.

    The config module returns it (``service``), so that a later step of the play (the models
    switch) can restart the server the same way the handler does.
    """
    ready = config["ensure_ready"]
    return {
        "manager": manager,
        "supervisor_venv": config["supervisor_venv"],
        "supervisor_conf": config["supervisor_conf"],
        "supervisor_socket": ready["supervisor_socket"],
        "systemd_unit": ready["systemd_unit_name"],
        "systemd_unit_file": config["systemd_unit_file"],
        "launcher": str(Path(config["home"]) / LAUNCHER),
        "http_address": config["http_address"],
        "http_port": config["http_port"],
        "ready_timeout": ready["ready_timeout"],
        "log_file": ready["log_file"],
        "log_tail_lines": ready["log_tail_lines"],
    }


def ready_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ensure_running`` parameters for a ``triton_service_config`` run with ``ensure_ready``."""
    return {**service_settings(config, config["manager"]), "state": "started", "reload_config": False}


def _bring(
    params: Mapping[str, Any],
    manager: str,
    state: str,
    reload_config: bool,
    check_mode: bool,
    run: Runner,
    proxy: Any,
    base_url: str,
) -> list[str]:
    """Decide and (not in check mode) carry out what brings the server to ``state``; return the actions."""
    if manager == "supervisor":
        status = supervisor_status(proxy)
        if state == "started" and status == "RUNNING" and live_but_not_ready(base_url):
            state = "restarted"
        actions = supervisor_actions(status, state, reload_config)
        supervisord = [f"{params['supervisor_venv']}/bin/supervisord", "-c", params["supervisor_conf"]]
        for action in [] if check_mode else actions:
            apply_supervisor(proxy, action, supervisord)
        return actions
    unit = params["systemd_unit"]
    rc, out, err = run(["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState,NeedDaemonReload", unit])
    if rc != 0:
        raise ServiceConfigError(
            f"systemctl show {unit} exited {rc} ({err.strip()}). The systemd path needs a running systemd. "
            "Set triton_service_manager=supervisor on hosts whose PID 1 is not systemd."
        )
    props = parse_show(out)
    if state == "started" and props.get("ActiveState") == "active" and live_but_not_ready(base_url):
        state = "restarted"
    commands = systemd_actions(props, state, unit)
    for command in [] if check_mode else commands:
        rc, out, err = run(command)
        if rc != 0:
            raise ServiceConfigError(
                f"{' '.join(command)} exited {rc} ({err.strip()}). systemd runs the launcher as {unit}. "
                f"Read journalctl -u {unit} and the server log {params['log_file']}, fix the cause, rerun."
            )
    return [" ".join(command[1:]) for command in commands]


def ensure_running(
    params: Mapping[str, Any], manager: str, check_mode: bool, run: Runner, proxy: Any = None
) -> dict[str, Any]:
    """Bring the server to ``params['state']`` under ``manager``, then (not in check mode) wait until ready.

    ``started`` also restarts a server that answers live but not ready (its model set is broken).
    When the server was (re)started and new service files (launcher, supervisord.conf or unit,
    with a ``.previous`` copy) do not get it live and ready, the previous files are put back and
    the server restarted on them before the failure is raised; once it is ready on the new ones,
    the copies are dropped. A server that does not even get live is stopped before the failure
    (it serves nothing; the next run starts it afresh instead of waiting on a hung one). Returns
    {changed, service_manager, actions, base_url}; raises ServiceConfigError with the server's
    error lines and the end of its log.
    """
    if manager == "supervisor":
        proxy = proxy or supervisor_proxy(params["supervisor_socket"])
    base_url = f"http://{probe_host(params['http_address'])}:{params['http_port']}"
    log = Path(params["log_file"])
    offset = log_size(log)
    actions = _bring(params, manager, params["state"], params["reload_config"], check_mode, run, proxy, base_url)
    result = {"changed": bool(actions), "service_manager": manager, "actions": actions, "base_url": base_url}
    if check_mode:
        return result
    gave_up = supervisor_gave_up(proxy) if manager == "supervisor" else systemd_gave_up(params["systemd_unit"], run)
    failed = wait_ready(base_url, params["ready_timeout"], gave_up=gave_up)
    previous = previous_files(params, manager) if actions else []
    if failed is None:
        _commit(previous)
        return result
    since = read_since(log, offset)
    if not previous:
        if failed[0] == "live":
            _stop_hard(params, manager, run, proxy)
        raise ServiceConfigError(not_ready_message(*failed, base_url, params, since))
    _restore(previous)
    _stop_hard(params, manager, run, proxy)
    reload_config = manager == "supervisor" and Path(params["supervisor_conf"]) in previous
    _bring(params, manager, "restarted", reload_config, False, run, proxy, base_url)
    again = wait_ready(base_url, params["ready_timeout"], gave_up=gave_up)
    if again is not None and again[0] == "live":
        _stop_hard(params, manager, run, proxy)
    raise ServiceConfigError(restored_message(failed, again, previous, since, base_url, params))
