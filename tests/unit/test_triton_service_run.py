"""Keeping the server running and waiting for it (module_utils/triton_service_run.py)."""

from __future__ import annotations

import xmlrpc.client
from pathlib import Path

import pytest
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_run import (
    apply_supervisor,
    ensure_running,
    live_but_not_ready,
    log_tail,
    not_ready_message,
    parse_show,
    previous_files,
    supervisor_actions,
    supervisor_gave_up,
    supervisor_status,
    systemd_actions,
    systemd_gave_up,
    wait_ready,
)

UNIT = "tritonserver.service"

# --- supervisord ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "reload_config", "expected"),
    [
        ("RUNNING", "started", False, []),
        ("STARTING", "started", False, []),
        ("FATAL", "started", False, ["start"]),  # crashed too often: a rerun starts it again
        ("EXITED", "started", False, ["start"]),
        ("STOPPED", "started", False, ["start"]),
        ("RUNNING", "restarted", False, ["restart"]),
        ("RUNNING", "restarted", True, ["reload"]),
        ("FATAL", "started", True, ["reload"]),
        ("missing", "started", False, ["reload"]),
        ("down", "restarted", True, ["start_supervisord"]),
        ("down", "started", False, ["start_supervisord"]),
    ],
)
def test_supervisor_actions(status: str, state: str, reload_config: bool, expected: list[str]):
    assert supervisor_actions(status, state, reload_config) == expected


class FakeSupervisor:
    """supervisord's XML-RPC namespace as a proxy exposes it; records the calls."""

    def __init__(self, info: dict | Exception) -> None:
        self.info = info
        self.calls: list[tuple] = []
        self.faults: dict[str, int] = {}

    def getProcessInfo(self, name: str) -> dict:
        if isinstance(self.info, Exception):
            raise self.info
        return self.info

    def _call(self, method: str, *args) -> bool:
        self.calls.append((method, *args))
        if method in self.faults:
            raise xmlrpc.client.Fault(self.faults[method], method.upper())
        return True

    def stopProcess(self, *args) -> bool:
        return self._call("stopProcess", *args)

    def startProcess(self, *args) -> bool:
        return self._call("startProcess", *args)

    def restart(self) -> bool:
        return self._call("restart")


class Proxy:
    def __init__(self, supervisor: FakeSupervisor) -> None:
        self.supervisor = supervisor


def test_supervisor_status_reads_the_program_state_or_why_there_is_none():
    assert supervisor_status(Proxy(FakeSupervisor({"statename": "FATAL"}))) == "FATAL"
    assert supervisor_status(Proxy(FakeSupervisor(ConnectionRefusedError()))) == "down"
    assert supervisor_status(Proxy(FakeSupervisor(FileNotFoundError()))) == "down"
    assert supervisor_status(Proxy(FakeSupervisor(xmlrpc.client.Fault(10, "BAD_NAME")))) == "missing"
    with pytest.raises(ServiceConfigError, match="fault 2"):
        supervisor_status(Proxy(FakeSupervisor(xmlrpc.client.Fault(2, "UNKNOWN"))))


def test_restart_stops_then_starts_without_waiting_and_tolerates_a_stopped_server():
    rpc = FakeSupervisor({})
    rpc.faults["stopProcess"] = 70  # NOT_RUNNING
    apply_supervisor(Proxy(rpc), "restart", [])
    assert rpc.calls == [("stopProcess", "tritonserver", True), ("startProcess", "tritonserver", False)]


def test_reload_stops_the_old_server_before_supervisord_rereads_its_configuration():
    rpc = FakeSupervisor({})
    apply_supervisor(Proxy(rpc), "reload", [])
    assert rpc.calls == [("stopProcess", "tritonserver", True), ("restart",)]


def test_spawn_errors_are_left_to_the_readiness_wait_but_other_faults_fail():
    rpc = FakeSupervisor({})
    rpc.faults["startProcess"] = 50  # SPAWN_ERROR
    apply_supervisor(Proxy(rpc), "start", [])
    rpc.faults["startProcess"] = 2
    with pytest.raises(ServiceConfigError, match="fault 2"):
        apply_supervisor(Proxy(rpc), "start", [])


def test_supervisord_that_does_not_start_fails_with_the_command(tmp_path: Path):
    with pytest.raises(ServiceConfigError, match="supervisord did not start"):
        apply_supervisor(Proxy(FakeSupervisor({})), "start_supervisord", [str(tmp_path / "no-supervisord")])
    with pytest.raises(ServiceConfigError, match="answered 1"):
        apply_supervisor(Proxy(FakeSupervisor({})), "start_supervisord", ["false"])


# --- systemd -------------------------------------------------------------------------------

RUNNING = {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled", "NeedDaemonReload": "no"}


def test_running_enabled_unit_needs_nothing():
    assert systemd_actions(RUNNING, "started", UNIT) == []


def test_new_unit_is_loaded_enabled_and_started():
    props = {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": "", "NeedDaemonReload": "no"}
    assert systemd_actions(props, "started", UNIT) == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", UNIT],
        ["systemctl", "start", UNIT],
    ]


def test_failed_unit_is_started_again_and_a_changed_one_reloaded():
    assert systemd_actions({**RUNNING, "ActiveState": "failed"}, "started", UNIT) == [["systemctl", "start", UNIT]]
    assert systemd_actions({**RUNNING, "NeedDaemonReload": "yes"}, "started", UNIT) == [["systemctl", "daemon-reload"]]


def test_restart_reloads_units_first():
    assert systemd_actions(RUNNING, "restarted", UNIT) == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "restart", UNIT],
    ]


def test_parse_show_keeps_values_with_equals_signs():
    assert parse_show("ActiveState=active\nExecStart=a=b\n\n") == {"ActiveState": "active", "ExecStart": "a=b"}


def run_params(**extra) -> dict:
    return {
        "state": "started",
        "reload_config": False,
        "supervisor_venv": "/opt/tritonfleet/supervisor",
        "supervisor_conf": "/etc/tritonfleet/supervisord.conf",
        "supervisor_socket": "/run/tritonfleet/supervisor.sock",
        "systemd_unit": UNIT,
        "http_address": "0.0.0.0",
        "http_port": 8000,
        "ready_timeout": 1,
        "log_file": "/var/log/tritonfleet/tritonserver.log",
        "log_tail_lines": 5,
        **extra,
    }


def test_systemd_check_mode_reports_the_start_without_running_it():
    commands = []

    def run(argv):
        commands.append(list(argv))
        return 0, "LoadState=loaded\nActiveState=failed\nUnitFileState=enabled\nNeedDaemonReload=no\n", ""

    result = ensure_running(run_params(), "systemd", True, run)
    assert result == {"changed": True, "service_manager": "systemd", "actions": [f"start {UNIT}"],
                      "base_url": "http://127.0.0.1:8000"}  # fmt: skip
    assert [argv[:2] for argv in commands] == [["systemctl", "show"]]


def test_systemctl_failure_names_the_journal():
    def run(argv):
        if argv[1] == "show":
            return 0, "LoadState=loaded\nActiveState=inactive\nUnitFileState=enabled\n", ""
        return 1, "", "Job failed"

    with pytest.raises(ServiceConfigError, match=f"journalctl -u {UNIT}"):
        ensure_running(run_params(), "systemd", False, run)


def test_supervisor_check_mode_touches_nothing():
    rpc = FakeSupervisor({"statename": "FATAL"})
    result = ensure_running(run_params(), "supervisor", True, run=None, proxy=Proxy(rpc))
    assert result["actions"] == ["start"] and result["changed"] is True
    assert rpc.calls == []


# --- readiness -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_ready_server_answers_at_once():
    asked = []
    clock = Clock()
    assert wait_ready("http://h:1", 10, lambda url: asked.append(url) or 200, clock, clock.sleep) is None
    assert asked == ["http://h:1/v2/health/live", "http://h:1/v2/health/ready"]
    assert clock.now == 0


def test_live_and_ready_share_one_deadline():
    clock = Clock()

    def probe(url: str) -> int | str:
        if url.endswith("/live"):
            return 200 if clock.now >= 6 else "nothing (Connection refused)"
        return 400

    assert wait_ready("http://h:1", 10, probe, clock, clock.sleep) == ("ready", 400)
    assert 10 <= clock.now < 11


def test_server_that_never_answers_is_not_live():
    clock = Clock()
    assert wait_ready("http://h:1", 3, lambda url: "nothing (refused)", clock, clock.sleep) == (
        "live", "nothing (refused)",
    )  # fmt: skip


def test_a_server_the_manager_gave_up_on_fails_at_once():
    clock = Clock()
    verdicts = iter([None, None, "supervisord gave up restarting it (FATAL)"])
    failed = wait_ready("http://h:1", 120, lambda url: "nothing (refused)", clock, clock.sleep, lambda: next(verdicts))
    assert failed == ("live", "nothing (refused), and supervisord gave up restarting it (FATAL)")
    assert clock.now < 2


@pytest.mark.parametrize(("state", "expected"), [("FATAL", True), ("BACKOFF", False), ("STARTING", False)])
def test_supervisord_gives_up_only_in_fatal(state: str, expected: bool):
    reason = supervisor_gave_up(Proxy(FakeSupervisor({"statename": state})))()
    assert (reason is not None) is expected
    assert reason is None or "FATAL" in reason


@pytest.mark.parametrize(("active", "expected"), [("failed", True), ("activating", False), ("active", False)])
def test_systemd_gives_up_when_the_unit_failed(active: str, expected: bool):
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, f"ActiveState={active}\n", ""

    reason = systemd_gave_up("tritonserver.service", run)()
    assert (reason is not None) is expected
    assert calls == [["systemctl", "show", "--property=ActiveState", "tritonserver.service"]]


def test_failure_message_quotes_the_end_of_the_log(tmp_path: Path):
    log = tmp_path / "tritonserver.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    message = not_ready_message("live", "nothing (refused)", "http://127.0.0.1:8000", run_params(log_file=str(log)))
    assert message.startswith("tritonserver did not become live within triton_service_ready_timeout=1s")
    assert "line 95\nline 96" in message and "line 94" not in message
    assert "cannot read" in log_tail(tmp_path / "missing.log", 3)


@pytest.mark.parametrize(
    ("live", "ready", "expected"),
    [(200, 200, False), (200, 400, True), ("nothing (refused)", "nothing (refused)", False), (503, 400, False)],
)
def test_only_a_server_that_answers_live_but_not_ready_needs_a_restart(live, ready, expected):
    answers = {"live": live, "ready": ready}
    clock = Clock()
    found = live_but_not_ready(
        "http://127.0.0.1:8000", lambda url: answers[url.rsplit("/", 1)[1]], 5, clock, clock.sleep
    )
    assert found is expected


def test_a_server_that_gets_ready_within_the_settle_time_is_left_alone():
    clock = Clock()
    answers = iter([200, 400, 400, 200])
    assert live_but_not_ready("http://x", lambda url: next(answers), 5, clock, clock.sleep) is False


def test_the_files_with_a_previous_copy_are_the_ones_a_failed_restart_puts_back(tmp_path: Path):
    launcher, conf, unit = tmp_path / "tritonfleet-serve", tmp_path / "supervisord.conf", tmp_path / "t.service"
    for path in (launcher, conf, unit):
        path.write_text("new\n")
    params = run_params(launcher=str(launcher), supervisor_conf=str(conf), systemd_unit_file=str(unit))
    assert previous_files(params, "supervisor") == []
    Path(f"{launcher}.previous").write_text("old\n")
    Path(f"{unit}.previous").write_text("old\n")
    assert previous_files(params, "supervisor") == [launcher]
    assert previous_files(params, "systemd") == [launcher, unit]


def test_failure_message_leads_with_the_servers_error_lines_not_its_usage(tmp_path: Path):
    since = "tritonserver: unrecognized option '--bad'\nUsage: tritonserver [options]\n  --help\n\tPrint usage\n"
    message = not_ready_message("live", "nothing", "http://127.0.0.1:8000", run_params(), since)
    assert "The server said:\ntritonserver: unrecognized option '--bad'\n" in message
    assert "Print usage" not in message
