"""The service's host side (module_utils/triton_service_config.py): decisions, and compare-and-apply on files."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
from ansible.module_utils.triton_service import ServiceConfigError
from ansible.module_utils.triton_service_config import (
    Account,
    Outcome,
    check_extra_args,
    configure,
    dist_installed,
    ensure_api_key,
    ensure_directory,
    ensure_file,
    group_argv,
    launcher_script,
    requirement_dist,
    service_manager_for,
    user_argv,
)
from support.plans import base_host, make_plan
from test_triton_service import SERVER_OPTIONS

# --- service manager: the triton_host.service_manager rule, mapped to the service's choice ----


@pytest.mark.parametrize(("comm", "expected"), [("systemd", "systemd"), ("process_api", "supervisor")])
def test_auto_follows_the_hosts_service_manager(tmp_path: Path, comm: str, expected: str):
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "comm").write_text(f"{comm}\n")
    assert service_manager_for("auto", tmp_path) == expected
    assert service_manager_for("supervisor", tmp_path) == "supervisor"
    assert service_manager_for("systemd", tmp_path) == "systemd"


# --- account ---------------------------------------------------------------------------------

WANTED = Account(uid=28077, group="tfsvc", groups=(), home="/var/lib/tritonfleet")


def test_missing_group_is_added_as_system_group_with_its_gid():
    assert group_argv("tfsvc", 28077, None) == ["groupadd", "--system", "--gid", "28077", "tfsvc"]
    assert group_argv("tfsvc", None, None) == ["groupadd", "--system", "tfsvc"]


def test_group_changes_only_for_a_different_fixed_gid():
    assert group_argv("tfsvc", 28077, 28077) is None
    assert group_argv("tfsvc", None, 999) is None
    assert group_argv("tfsvc", 28077, 999) == ["groupmod", "--gid", "28077", "tfsvc"]


def test_missing_user_is_a_system_account_without_login_or_home_creation():
    argv = user_argv("tfsvc", WANTED, None)
    assert argv[:3] == ["useradd", "--system", "--no-create-home"]
    assert argv[-1] == "tfsvc"
    pairs = dict(zip(argv[3:-1:2], argv[4:-1:2], strict=True))
    assert pairs == {
        "--uid": "28077",
        "--gid": "tfsvc",
        "--shell": "/usr/sbin/nologin",
        "--home-dir": "/var/lib/tritonfleet",
        "--comment": "Triton Inference Server (tritonfleet)",
    }


def test_user_as_wanted_needs_no_command():
    assert user_argv("tfsvc", WANTED, WANTED) is None
    assert user_argv("tfsvc", Account(None, "tfsvc", (), WANTED.home), WANTED) is None


def test_existing_user_gets_only_the_options_that_differ():
    current = Account(28077, "tfsvc", ("video",), "/home/tfsvc", "/bin/bash")
    assert user_argv("tfsvc", WANTED, current) == [
        "usermod", "--groups", "", "--shell", "/usr/sbin/nologin", "--home", "/var/lib/tritonfleet", "tfsvc",
    ]  # fmt: skip
    jetson = Account(28077, "tfsvc", ("video",), WANTED.home)
    assert user_argv("tfsvc", jetson, WANTED) == ["usermod", "--groups", "video", "tfsvc"]


# --- supervisord's dist ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("supervisor==4.3.0", ("supervisor", "4.3.0")),
        ("/srv/wheels/supervisor-4.3.0-py2.py3-none-any.whl", ("supervisor", "4.3.0")),
        ("Supervisor", ("supervisor", None)),
        ("supervisor>=4", ("supervisor", None)),
    ],
)
def test_requirement_names_the_dist_and_its_pin(requirement: str, expected: tuple):
    assert requirement_dist(requirement) == expected


def test_dist_is_installed_only_at_the_pinned_version(tmp_path: Path):
    (tmp_path / "supervisor-4.2.5.dist-info").mkdir()
    assert dist_installed([tmp_path], "supervisor", "4.2.5")
    assert dist_installed([tmp_path], "supervisor", None)
    assert not dist_installed([tmp_path], "supervisor", "4.3.0")
    assert not dist_installed([tmp_path / "missing"], "supervisor", None)


# --- launcher --------------------------------------------------------------------------------

SETTINGS = {
    "user": "tritonserver",
    "group": "tritonserver",
    "api_key_file": "/etc/tritonfleet/api-key",
    "model_repository": "/srv/tritonfleet/models/current",
    "restricted_apis": ["model-repository", "model-config"],
    "api_key_header": "tritonfleet-admin-key",
}
NATIVE = {
    "server_version": "2.51.0",
    "container": False,
    "argv": ["/opt/tritonserver/releases/2.51.0/bin/tritonserver", "--log-info=a b"],
    "env": {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""},
}


def test_launcher_reads_the_key_and_models_at_start_and_drops_privileges():
    script = launcher_script(NATIVE, SETTINGS)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "key=$(cat /etc/tritonfleet/api-key)" in lines
    assert "for config in /srv/tritonfleet/models/current/*/config.pbtxt; do" in lines
    assert '  set -- "$@" "--load-model=${model##*/}"' in lines
    assert lines[lines.index("exec env -i \\") + 1 :][:2] == ["  CUDA_VISIBLE_DEVICES= \\", "  PATH=/usr/bin:/bin \\"]
    assert "  setpriv --reuid=tritonserver --regid=tritonserver --init-groups --no-new-privs -- \\" in lines
    assert "  '--log-info=a b' \\" in lines
    assert '  "--http-restricted-api=model-repository,model-config:tritonfleet-admin-key=$key" \\' in lines
    assert lines[-1] == '  "$@"'


def test_container_launcher_runs_the_engine_without_setpriv():
    script = launcher_script({**NATIVE, "container": True, "argv": ["/usr/bin/docker", "run", "img"]}, SETTINGS)
    assert "setpriv" not in script and "exec env -i" not in script
    assert "exec \\\n  /usr/bin/docker \\\n  run \\\n  img \\\n" in script


def test_docker_launcher_removes_a_stale_container_and_goes_on_when_there_is_none(tmp_path: Path):
    (tmp_path / "key").write_text("K3y")
    (tmp_path / "repo").mkdir()
    # The prepare step fails (no such container): the launcher still starts the engine.
    launch = {**NATIVE, "container": True, "prepare": [["sh", "-c", "echo removed >&2; exit 1"]],
              "argv": ["printf", "%s\\n", "started"]}  # fmt: skip
    script = launcher_script(
        launch, {**SETTINGS, "api_key_file": str(tmp_path / "key"), "model_repository": f"{tmp_path}/repo"}
    )
    assert "sh -c 'echo removed >&2; exit 1' >/dev/null 2>&1 || :\nexec \\\n" in script
    (tmp_path / "launcher").write_text(script)
    done = subprocess.run(["sh", str(tmp_path / "launcher")], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[0] == "started" and done.stderr == ""


# `tritonserver --help` of the 2.51.0 server, captured on stderr (exit 1).
HELP = (Path(__file__).resolve().parents[1] / "fixtures" / "tritonserver-2.51.0-help.txt").read_text()
CONTAINER_LAUNCH = {
    "container": True,
    "release_dir": "/opt/tritonserver/releases/2.51.0",
    "server_version": "2.51.0",
    "image_id": "0" * 64,
    "help_argv": ["/usr/bin/podman", "run", "--rm", "--network", "none", "0" * 64, "/opt/tritonserver/bin/tritonserver",
                  "--help"],
}  # fmt: skip


def test_container_extra_args_are_judged_by_the_images_own_server_and_cached_per_image(tmp_path: Path):
    calls = []

    def run(argv):
        calls.append(list(argv))
        return 1, "", HELP

    with pytest.raises(ServiceConfigError, match=r"has '--log-verbse=1': the server has no option --log-verbse"):
        check_extra_args(CONTAINER_LAUNCH, ["--log-verbse=1"], tmp_path, run, False)
    assert calls == [CONTAINER_LAUNCH["help_argv"]]
    assert not (tmp_path / "cache").exists()  # kept only once the arguments passed
    check_extra_args(CONTAINER_LAUNCH, ["--log-verbose", "1"], tmp_path, run, False)
    cache = json.loads((tmp_path / "cache" / "tritonserver-options.json").read_text())
    assert cache["key"] == {"image_id": "0" * 64} and cache["options"]["log-verbose"] is True
    # The same image again: no container is started; another image is read again.
    check_extra_args(CONTAINER_LAUNCH, ["--log-verbose=2"], tmp_path, run, False)
    assert len(calls) == 2
    other = {**CONTAINER_LAUNCH, "image_id": "1" * 64}
    with pytest.raises(ServiceConfigError, match=f"tritonserver 2.51.0 of image {'1' * 64}"):
        check_extra_args(other, ["--no-such-flag"], tmp_path, run, False)
    assert len(calls) == 3


def test_an_image_whose_server_lists_no_option_takes_no_extra_argument(tmp_path: Path):
    def run(argv):
        return 127, "", "exec: /opt/tritonserver/bin/tritonserver: not found"

    with pytest.raises(ServiceConfigError, match=r"--help exited 127 and listed no option .*not found"):
        check_extra_args(CONTAINER_LAUNCH, ["--log-verbose=1"], tmp_path, run, False)


def test_launcher_runs_as_posix_sh(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text("K3y")
    for model in ("add", "scale"):
        (tmp_path / "repo" / model).mkdir(parents=True)
        (tmp_path / "repo" / model / "config.pbtxt").write_text("")
    (tmp_path / "repo" / "not-a-model").mkdir()
    launch = {**NATIVE, "container": True, "argv": ["printf", "%s\\n"]}
    script = launcher_script(
        launch, {**SETTINGS, "api_key_file": str(key_file), "model_repository": f"{tmp_path}/repo"}
    )
    (tmp_path / "launcher").write_text(script)
    out = subprocess.run(["sh", str(tmp_path / "launcher")], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "--http-restricted-api=model-repository,model-config:tritonfleet-admin-key=K3y",
        "--grpc-restricted-protocol=model-repository,model-config:tritonfleet-admin-key=K3y",
        "--load-model=add",
        "--load-model=scale",
    ]


# --- files and directories: compare, then apply only the difference --------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_is_written_once_with_a_diff_then_left_alone(tmp_path: Path):
    path = tmp_path / "unit"
    path.write_text("old\n")
    outcome = Outcome()
    assert ensure_file(path, "new\n", 0o644, False, outcome, restart=True)
    assert path.read_text() == "new\n" and mode_of(path) == 0o644
    assert outcome.diff == [
        {"before_header": str(path), "after_header": str(path), "before": "old\n", "after": "new\n"}
    ]
    assert outcome.restart_reasons == [str(path)]
    again = Outcome()
    assert not ensure_file(path, "new\n", 0o644, False, again)
    assert again.changes == []


def test_file_in_check_mode_reports_without_writing(tmp_path: Path):
    path = tmp_path / "missing" / "launcher"
    outcome = Outcome()
    assert ensure_file(path, "#!/bin/sh\n", 0o755, True, outcome)
    assert not path.parent.exists()
    assert outcome.diff[0]["before"] == "" and outcome.diff[0]["after"] == "#!/bin/sh\n"


def test_file_with_the_right_content_gets_only_its_mode_fixed(tmp_path: Path):
    path = tmp_path / "conf"
    path.write_text("same\n")
    path.chmod(0o666)
    inode = path.stat().st_ino
    outcome = Outcome()
    assert ensure_file(path, "same\n", 0o644, False, outcome)
    assert mode_of(path) == 0o644 and path.stat().st_ino == inode
    assert outcome.changes == [f"{path} (owner, mode)"]


def test_rejected_content_is_not_installed(tmp_path: Path):
    path = tmp_path / "tritonserver.service"
    path.write_text("good\n")

    def reject(content: bytes) -> None:
        raise ServiceConfigError(f"rejected {content!r}")

    with pytest.raises(ServiceConfigError, match="rejected"):
        ensure_file(path, "bad\n", 0o644, False, Outcome(), validate=reject)
    assert path.read_text() == "good\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tritonserver.service"]


def test_directory_is_created_and_its_mode_repaired(tmp_path: Path):
    path = tmp_path / "a" / "state"
    outcome = Outcome()
    ensure_directory(path, "root", "root", 0o750, False, outcome)
    assert path.is_dir() and mode_of(path) == 0o750
    assert outcome.diff[0]["before"] == {"path": str(path), "state": "absent"}
    path.chmod(0o777)
    ensure_directory(path, "root", "root", 0o750, False, outcome)
    assert mode_of(path) == 0o750
    again = Outcome()
    ensure_directory(path, "root", "root", 0o750, False, again)
    assert again.changes == []


def test_a_file_where_a_directory_belongs_is_an_error(tmp_path: Path):
    (tmp_path / "log").write_text("")
    with pytest.raises(ServiceConfigError, match="not a directory"):
        ensure_directory(tmp_path / "log", "root", "root", 0o750, False, Outcome())


def test_api_key_is_generated_once_root_only_and_never_in_the_diff(tmp_path: Path):
    path = tmp_path / "api-key"
    outcome = Outcome()
    ensure_api_key(path, True, outcome)
    assert not path.exists() and outcome.restart_reasons == [str(path)]
    ensure_api_key(path, False, Outcome())
    key = path.read_text()
    assert len(key) == 48 and key.isalnum() and mode_of(path) == 0o600
    again = Outcome()
    ensure_api_key(path, False, again)
    assert path.read_text() == key and again.changes == []
    path.chmod(0o644)
    fixed = Outcome()
    ensure_api_key(path, False, fixed)
    assert mode_of(path) == 0o600 and path.read_text() == key
    assert key not in json.dumps([outcome.diff, fixed.diff])


# --- the whole pass on the systemd path (the account's commands recorded, not run) ------------


def systemd_params(tmp_path: Path) -> dict:
    release = tmp_path / "prefix" / "releases" / "2.51.0"
    release.mkdir(parents=True)
    (release / "manifest.json").write_text(
        json.dumps({"server_version": "2.51.0", "gpu_build": False, "python_bin_dir": None})
    )
    (tmp_path / "prefix" / "current").symlink_to("releases/2.51.0")
    return {
        "manager": "systemd",
        "plan": make_plan(base_host()),
        "install_prefix": str(tmp_path / "prefix"),
        "release_dir": None,
        "manifest": None,
        **SERVER_OPTIONS,
        "auto_complete_config": False,
        "extra_args": [],
        # An account that exists on every Debian host, so the directories can be chowned to it.
        "user": "nobody",
        "group": "nogroup",
        "uid": None,
        "gid": None,
        "user_groups": [],
        "state_dir": str(tmp_path / "state"),
        "log_dir": str(tmp_path / "log"),
        "config_dir": str(tmp_path / "etc"),
        "home": str(tmp_path / "opt"),
        "api_key_file": str(tmp_path / "etc" / "api-key"),
        "api_key_header": "tritonfleet-admin-key",
        "restricted_apis": ["model-repository"],
        "run_dir": str(tmp_path / "run"),
        "supervisor_venv": str(tmp_path / "opt" / "supervisor"),
        "supervisor_package": "supervisor==4.3.0",
        "supervisor_python": "/usr/bin/python3",
        "supervisor_conf": str(tmp_path / "etc" / "supervisord.conf"),
        "supervisor_config": "[supervisord]\n",
        "systemd_unit_file": str(tmp_path / "units" / "tritonserver.service"),
        "systemd_unit": "[Service]\nExecStart=/x\n",
    }


def test_systemd_pass_installs_the_verified_unit_and_nothing_of_supervisord(tmp_path: Path):
    (tmp_path / "units").mkdir()
    params = systemd_params(tmp_path)
    commands: list[list[str]] = []

    def run(argv):
        commands.append(list(argv))
        return 0, "", ""

    result = configure(params, False, run, analyze="/usr/bin/systemd-analyze")
    assert result["service_manager"] == "systemd" and result["reload"] is False
    assert [c[0] for c in commands] == ["usermod", "/usr/bin/systemd-analyze"]  # nobody's shell, home, comment
    assert commands[1][1] == "verify" and commands[1][2].endswith("/tritonserver.service")
    assert (tmp_path / "units" / "tritonserver.service").read_text() == params["systemd_unit"]
    assert str(tmp_path / "units" / "tritonserver.service") in result["restart_reasons"]
    launcher = tmp_path / "opt" / "bin" / "tritonfleet-serve"
    assert mode_of(launcher) == 0o755 and "setpriv --reuid=nobody" in launcher.read_text()
    assert not (tmp_path / "run").exists() and not (tmp_path / "etc" / "supervisord.conf").exists()
    assert mode_of(tmp_path / "etc" / "api-key") == 0o600

    commands.clear()
    rerun = configure(params, False, run, analyze="/usr/bin/systemd-analyze")
    assert rerun["changes"] == ["user nobody"]  # the recorded usermod never ran; nothing else is left to do
    assert [c[0] for c in commands] == ["usermod"]


def test_check_mode_pass_predicts_everything_and_writes_nothing(tmp_path: Path):
    params = systemd_params(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = configure(params, True, lambda argv: pytest.fail(f"ran {argv}"), analyze=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert {str(tmp_path / "state"), str(tmp_path / "etc" / "api-key"), params["systemd_unit_file"]} <= set(
        result["changes"]
    )
    assert result["changed"] is True
