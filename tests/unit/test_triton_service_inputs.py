# SPDX-License-Identifier: Apache-2.0
"""The service settings judged in preflight: each rule refuses with its four parts, good settings pass."""

from __future__ import annotations

import pytest
import triton_service_preflight
from ansible.module_utils.triton_module_run import ModuleFailure
from ansible.module_utils.triton_service_inputs import input_problems, is_own_server

PREFIX = "/opt/tritonserver"
SETTINGS = {
    "http_address": "0.0.0.0",
    "http_port": 8000,
    "grpc_address": "0.0.0.0",
    "grpc_port": 8001,
    "metrics_address": "127.0.0.1",
    "metrics_port": 8002,
    "user": "tritonserver",
    "group": "tritonserver",
    "uid": None,
    "gid": None,
    "allow_login_account": False,
    "api_key_header": "tritonfleet-admin-key",
    "api_key_file": "/etc/tritonfleet/api-key",
    "ready_timeout": 120,
}
OWN_SERVER = f"{PREFIX}/releases/2.51.0/bin/tritonserver"
HOST = {
    "listening": [
        {"address": "0.0.0.0", "port": 22, "pid": 611, "exe": "/usr/sbin/sshd"},
        {"address": "0.0.0.0", "port": 8000, "pid": 4242, "exe": OWN_SERVER},
        {"address": "0.0.0.0", "port": 8001, "pid": 4242, "exe": OWN_SERVER},
        {"address": "127.0.0.1", "port": 8002, "pid": 4242, "exe": OWN_SERVER},
        {"address": "127.0.0.1", "port": 9090, "pid": 700, "exe": "/usr/bin/prometheus"},
        {"address": "::1", "port": 5432, "pid": None, "exe": None},
    ],
    "accounts": {
        "tritonserver": {
            "uid": 998,
            "gid": 998,
            "comment": "Triton Inference Server (tritonfleet)",
            "home": "/var/lib/tritonfleet",
            "shell": "/usr/sbin/nologin",
        },
        "debian": {"uid": 1000, "gid": 1000, "comment": "Debian", "home": "/home/debian", "shell": "/bin/bash"},
        "www-data": {"uid": 33, "gid": 33, "comment": "www-data", "home": "/var/www", "shell": "/usr/sbin/nologin"},
        "toor": {"uid": 0, "gid": 0, "comment": "", "home": "/root", "shell": "/bin/sh"},
    },
}


def problems(**changes):
    return input_problems({**SETTINGS, **changes}, HOST, PREFIX, "wheel")


def test_a_converged_hosts_own_ports_and_account_pass():
    assert problems() == []


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        (
            {"http_port": "80x"},
            ["triton_service_http_port is '80x', not a TCP port", "1 to 65535", "(default 8000)"],
        ),
        ({"grpc_port": 70000}, ["triton_service_grpc_port is 70000, not a TCP port"]),
        (
            {"grpc_port": 8000},
            [
                "triton_service_http_port and triton_service_grpc_port are all 8000",
                '"The server cannot listen to HTTP requests and GRPC requests at the same address and port"',
                "three different free ports",
            ],
        ),
        (
            {"metrics_port": 22},
            [
                "triton_service_metrics_port 22 is taken on this host: 0.0.0.0:22 is held by /usr/sbin/sshd (pid 611)",
                "/proc/net/tcp",
                "exits at start when one is taken",
                "set triton_service_metrics_port to a free port, or stop that process",
            ],
        ),
        ({"http_port": 9090}, ["triton_service_http_port 9090 is taken", "/usr/bin/prometheus (pid 700)"]),
        ({"http_port": 5432}, ["triton_service_http_port 5432 is taken", "cannot name"]),
        ({"http_address": "localhost"}, ["triton_service_http_address is 'localhost'", "IP literal"]),
        (
            {"user": "root"},
            ["triton_service_user is 'root'", "must never have root's rights", "default tritonserver"],
        ),
        ({"uid": 0}, ["triton_service_uid is 0: the server would run as root"]),
        ({"user": "toor"}, ["triton_service_user is 'toor' (uid 0 on this host, from the name service)"]),
        ({"group": "root"}, ["triton_service_group is 'root'", "root's group"]),
        (
            {"user": "debian"},
            [
                "triton_service_user is 'debian', an existing login account on this host (uid 1000, shell /bin/bash",
                "would lock that login out",
                "triton_service_allow_login_account: true",
            ],
        ),
        (
            {"api_key_header": ""},
            ["triton_service_api_key_header is ''", "refuses requests without it", "(default tritonfleet-admin-key)"],
        ),
        ({"api_key_header": "x key"}, ["triton_service_api_key_header is 'x key'"]),
        (
            {"api_key_file": ""},
            ["triton_service_api_key_file is ''", "absolute path", "(default /etc/tritonfleet/api-key)"],
        ),
        ({"api_key_file": "api-key"}, ["triton_service_api_key_file is 'api-key'"]),
        ({"ready_timeout": 0}, ["triton_service_ready_timeout is 0", "above 0"]),
        ({"ready_timeout": "soon"}, ["triton_service_ready_timeout is 'soon'"]),
    ],
    ids=[
        "port-not-a-number",
        "port-out-of-range",
        "http-equals-grpc",
        "port-held-by-sshd",
        "port-held-on-loopback-vs-wildcard",
        "port-held-by-an-unnamed-process",
        "address-not-ip",
        "user-root",
        "uid-zero",
        "user-with-uid-zero",
        "group-root",
        "login-account",
        "empty-key-header",
        "bad-key-header",
        "empty-key-file",
        "relative-key-file",
        "zero-timeout",
        "timeout-not-a-number",
    ],
)
def test_each_bad_setting_is_refused_with_what_to_do(changes, fragments):
    found = problems(**changes)
    assert len(found) == 1, found
    for fragment in fragments:
        assert fragment in found[0], (fragment, found[0])


def test_every_problem_is_reported_at_once():
    found = problems(user="root", api_key_header="", grpc_port=8000)
    assert len(found) == 3


def test_a_login_account_is_taken_over_only_when_allowed():
    assert problems(user="debian", allow_login_account=True) == []
    # A system account without a login shell is no one's login.
    assert problems(user="www-data") == []


def test_ports_on_other_specific_addresses_do_not_collide():
    assert problems(metrics_port=9090, metrics_address="127.0.0.2") == []
    assert problems(metrics_port=9090, metrics_address="0.0.0.0") != []


def test_without_host_facts_only_the_settings_are_judged():
    assert input_problems({**SETTINGS, "metrics_port": 22}, {}, PREFIX, "wheel") == []
    assert input_problems({**SETTINGS, "user": "root"}, {}, PREFIX, "wheel") != []


@pytest.mark.parametrize(
    ("exe", "method", "own"),
    [
        (OWN_SERVER, "wheel", True),
        (f"{OWN_SERVER} (deleted)", "tarball", True),
        ("/usr/local/bin/tritonserver", "wheel", False),
        ("/opt/tritonserver/bin/tritonserver", "container", True),
        ("/usr/sbin/sshd", "container", False),
        (None, "wheel", False),
    ],
)
def test_own_server_is_this_deployments_tritonserver(exe, method, own):
    assert is_own_server(exe, PREFIX, method) is own


def test_module_fails_with_every_problem_and_passes_good_settings():
    params = {"settings": {**SETTINGS, "user": "root"}, "host": HOST, "install_prefix": PREFIX, "method": "wheel"}
    with pytest.raises(ModuleFailure) as caught:
        triton_service_preflight.run(params, False)
    assert "triton_service_user is 'root'" in caught.value.msg
    assert caught.value.details["problems"] == problems(user="root")
    assert triton_service_preflight.run({**params, "settings": SETTINGS}, True) == {"changed": False, "problems": []}
