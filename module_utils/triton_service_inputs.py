# SPDX-License-Identifier: Apache-2.0
"""The service role's settings judged before any change: ports, addresses, account, API key.

Preflight runs :func:`input_problems` on the controller with the host facts (``triton_host``:
its listening sockets and the service account as the host knows it), so that nothing on the
host changes, and nothing queries a port, before a setting the service cannot use is refused.
Pure: the settings and the facts go in, one four-part message per problem comes out (what is
wrong, what was found where, what is supported, what to do).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any

from ansible.module_utils.triton_service_config import COMMENT, SHELL

ENDPOINTS = ("http", "grpc", "metrics")
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
HEADER_RE = re.compile(r"^[A-Za-z0-9-]+$")
# Shells that make an account a non-login (system) account.
NOLOGIN_SHELLS = frozenset({SHELL, "/sbin/nologin", "/bin/false", "/usr/bin/false", ""})
SERVER_BINARY = "tritonserver"


def _port(value: Any) -> int | None:
    """Return ``value`` as a TCP port, or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        port = int(str(value).strip())
    except ValueError:
        return None
    return port if 1 <= port <= 65535 else None


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _overlaps(wanted: Any, held: str) -> bool:
    """True when binding ``wanted`` collides with a socket listening on ``held`` (same port).

    A wildcard on either side (0.0.0.0, ::) takes the port on every address.
    """
    held_ip = _address(held)
    if wanted is None or held_ip is None:
        return True
    if wanted.is_unspecified or held_ip.is_unspecified:
        return True
    mapped = getattr(held_ip, "ipv4_mapped", None)
    return wanted == held_ip or (mapped is not None and wanted == mapped)


def is_own_server(exe: str | None, install_prefix: str, method: str) -> bool:
    """True when ``exe`` is a tritonserver of this deployment (a restart frees its ports).

    Native releases run ``<install_prefix>/releases/<version>/bin/tritonserver``; a container
    release runs the image's own tritonserver, whose path is the image's.
    """
    if not exe:
        return False
    path = exe.removesuffix(" (deleted)")
    if os.path.basename(path) != SERVER_BINARY:
        return False
    if method == "container":
        return True
    return path.startswith(install_prefix.rstrip("/") + "/")


def port_problems(settings: Mapping[str, Any], host: Mapping[str, Any], install_prefix: str, method: str) -> list[str]:
    """Problems of the three endpoints: bad ports or addresses, a port used twice, a port taken."""
    problems = []
    ports: dict[str, int] = {}
    for name in ENDPOINTS:
        raw_port, raw_address = settings[f"{name}_port"], settings[f"{name}_address"]
        port = _port(raw_port)
        if port is None:
            problems.append(
                f"triton_service_{name}_port is {raw_port!r}, not a TCP port (from the inventory or -e); "
                f"a port is a number from 1 to 65535; set triton_service_{name}_port to a free port "
                f"(default {DEFAULT_PORTS[name]})."
            )
        else:
            ports[name] = port
        if _address(raw_address) is None:
            problems.append(
                f"triton_service_{name}_address is {raw_address!r} (from the inventory or -e); Triton binds an IP "
                "literal (0.0.0.0, 127.0.0.1, ::), not a host name; "
                f"set triton_service_{name}_address to an IP address."
            )
    by_port: dict[int, list[str]] = {}
    for name, port in ports.items():
        by_port.setdefault(port, []).append(name)
    for port, names in sorted(by_port.items()):
        if len(names) > 1:
            variables = " and ".join(f"triton_service_{n}_port" for n in names)
            problems.append(
                f"{variables} are all {port}: one port cannot serve two endpoints (Triton refuses it: "
                f'"The server cannot listen to {names[0].upper()} requests and {names[1].upper()} requests at the '
                f'same address and port"); set the HTTP, gRPC and metrics ports to three different free ports '
                "(defaults 8000, 8001, 8002)."
            )
    for name, port in ports.items():
        wanted = _address(settings[f"{name}_address"])
        for entry in host.get("listening") or []:
            if entry.get("port") != port or not _overlaps(wanted, str(entry.get("address"))):
                continue
            if is_own_server(entry.get("exe"), install_prefix, method):
                continue
            holder = (
                f"{entry['exe']} (pid {entry['pid']})"
                if entry.get("exe")
                else "a process this preflight cannot name (not in the host's pid namespace, or the kernel)"
            )
            problems.append(
                f"triton_service_{name}_port {port} is taken on this host: {entry['address']}:{port} is held by "
                f"{holder} (triton_host.listening, from /proc/net/tcp); the server binds each endpoint's port "
                f"itself and exits at start when one is taken; set triton_service_{name}_port to a free port, or "
                "stop that process."
            )
            break
    return problems


def account_problems(settings: Mapping[str, Any], host: Mapping[str, Any]) -> list[str]:
    """Problems of the service account: root (uid or gid 0), or someone's existing login account."""
    problems = []
    user, group = str(settings["user"]), str(settings["group"])
    found = (host.get("accounts") or {}).get(user)
    uid = settings.get("uid")
    if user == "root" or str(uid).strip() == "0" or (found is not None and found["uid"] == 0):
        where = "" if found is None else f" (uid {found['uid']} on this host, from the name service)"
        problems.append(
            f"triton_service_user is {user!r}{where}, triton_service_uid is {uid!r}: the server would run as root; "
            "it runs the model repository's code and must never have root's rights; set triton_service_user to an "
            "unprivileged account the role creates (default tritonserver) and triton_service_uid to a non-zero id "
            "or null."
        )
    elif (
        found is not None
        and found["shell"] not in NOLOGIN_SHELLS
        and found["comment"] != COMMENT
        and not settings.get("allow_login_account")
    ):
        problems.append(
            f"triton_service_user is {user!r}, an existing login account on this host (uid {found['uid']}, shell "
            f"{found['shell']}, home {found['home']}; triton_host.accounts); the role makes the service account a "
            "system account without a login shell, which would lock that login out; use another name (default "
            "tritonserver), or set triton_service_allow_login_account: true to turn this account into the service "
            "account."
        )
    if group == "root" or str(settings.get("gid")).strip() == "0":
        problems.append(
            f"triton_service_group is {group!r}, triton_service_gid is {settings.get('gid')!r}: the server would run "
            "with root's group and could read root-group files; the service group is an unprivileged system group; "
            "set triton_service_group to one the role creates (default tritonserver) and triton_service_gid to a "
            "non-zero id or null."
        )
    return problems


def key_problems(settings: Mapping[str, Any]) -> list[str]:
    """Problems of the restricted-API key settings (header name, key file path)."""
    problems = []
    header, key_file = str(settings["api_key_header"] or ""), str(settings["api_key_file"] or "")
    if not HEADER_RE.match(header):
        problems.append(
            f"triton_service_api_key_header is {header!r}: every model-repository request (load, unload, index) "
            "carries the restricted-API key in this HTTP header, and the server refuses requests without it; a "
            "header name is letters, digits and dashes; set triton_service_api_key_header to one (default "
            "tritonfleet-admin-key)."
        )
    if not os.path.isabs(key_file):
        problems.append(
            f"triton_service_api_key_file is {key_file!r}: the role keeps the restricted-API key in this root-only "
            "file and the models role reads it for every repository request; it must be an absolute path; set "
            "triton_service_api_key_file to one (default /etc/tritonfleet/api-key)."
        )
    return problems


def input_problems(settings: Mapping[str, Any], host: Mapping[str, Any], install_prefix: str, method: str) -> list[str]:
    """Every problem of the service settings on this host, in a stable order ([] when none).

    ``settings``: ``{http,grpc,metrics}_{address,port}``, ``user``, ``group``, ``uid``, ``gid``,
    ``allow_login_account``, ``api_key_header``, ``api_key_file``, ``ready_timeout``.
    ``host``: the ``triton_host`` facts (``listening``, ``accounts``). ``install_prefix`` and the
    install ``method`` tell this deployment's own server from another process.
    """
    problems = port_problems(settings, host, install_prefix, method)
    problems += account_problems(settings, host)
    problems += key_problems(settings)
    timeout = settings.get("ready_timeout")
    if isinstance(timeout, bool) or not str(timeout).strip().isdigit() or int(str(timeout)) <= 0:
        problems.append(
            f"triton_service_ready_timeout is {timeout!r}: it bounds every wait for the server to become live and "
            "ready; it is a number of seconds above 0; set triton_service_ready_timeout (default 120)."
        )
    return problems
