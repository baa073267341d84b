# SPDX-License-Identifier: Apache-2.0
"""A tritonfleet deployment on this machine in a private directory, for tests and benchmarks.

Every path lies under one base directory (which must be 0755: the service user traverses it),
the server listens on loopback ports of the caller's choosing, and the service account is a
throwaway one with a fixed uid, so a real deployment of this machine (``make site``) or another
test's is neither touched nor able to block ``usermod``.

``private_site_vars(base, http_port, user, uid)``
    the paths, ports and account of such a deployment (for inventories of their own).
``local_host_vars(base, user, uid, http_port, models_src)``
    host vars of ``localhost`` for the site's roles (local connection, models from ``models_src``).
``SERVE_PLAY``
    the site's server steps after preflight, for tests that lay the release out themselves.
``LocalSite(base, http_port, user, uid, extra_vars)``
    ``inventory/local.yml`` with such variables: writes ``base/vars.yml``; ``play(playbook, *args,
    extra=None)`` runs ``playbooks/<playbook>`` and returns the CompletedProcess; ``changed(result)``
    reads the recap.
``tear_down(base, user)``
    stops the deployment's supervisord and removes its account and files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
EXAMPLES = REPO_ROOT / "examples" / "model_repository"


def private_site_vars(base: Path, http_port: int, user: str, uid: int) -> dict[str, Any]:
    """Variables that keep a deployment on this machine to itself: paths under ``base``, its ports
    (HTTP, then gRPC and metrics on the next two), a throwaway account with a fixed uid (a real
    deployment's ``tritonserver`` user is neither touched nor able to block usermod)."""
    return {
        "triton_install_prefix": str(base / "opt"),
        "triton_models_root": str(base / "models"),
        "triton_models_build_dir": str(base / "build"),
        "triton_models_src": str(EXAMPLES),
        "triton_service_user": user,
        "triton_service_group": user,
        "triton_service_uid": uid,
        "triton_service_gid": uid,
        "triton_service_config_dir": str(base / "etc"),
        "triton_service_state_dir": str(base / "state"),
        "triton_service_log_dir": str(base / "log"),
        "triton_service_home": str(base / "home"),
        "triton_service_run_dir": str(base / "run"),
        "triton_service_http_address": "127.0.0.1",
        "triton_service_grpc_address": "127.0.0.1",
        "triton_service_http_port": http_port,
        "triton_service_grpc_port": http_port + 1,
        "triton_service_metrics_port": http_port + 2,
    }


# The site's server steps after preflight (playbooks/site.yml without install: the tests lay the
# release out with the install code itself).
SERVE_PLAY = """\
- name: Deploy and serve
  hosts: all
  gather_facts: false
  roles:
    - role: triton_models
      vars:
        triton_models_phase: deploy
    - role: triton_service
    - role: triton_models
      vars:
        triton_models_phase: switch
"""


def local_host_vars(base: Path, user: str, uid: int, http_port: int, models_src: Path) -> dict[str, Any]:
    """Host vars of ``localhost`` for the site's roles; gRPC and metrics use the two ports after ``http_port``."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        **private_site_vars(base, http_port, user, uid),
        "triton_models_src": str(models_src),
        "triton_service_install_prefix": str(base / "opt"),
        "triton_service_model_repository": str(base / "models" / "current"),
        "triton_service_ready_timeout": 60,
        "triton_verify_report_dir": str(base / "reports" / "{{ inventory_hostname }}"),
    }


class LocalSite:
    """One private deployment: its base directory, ports, account and the playbook runner."""

    def __init__(self, base: Path, http_port: int, user: str, uid: int, extra_vars: dict[str, Any]) -> None:
        self.base = base
        self.http_port = http_port
        self.url = f"http://127.0.0.1:{http_port}"
        self.vars = {
            **private_site_vars(base, http_port, user, uid),
            "triton_service_ready_timeout": 90,
            "triton_service_remove_paths": [str(base / "opt"), str(base / "models")],
            "triton_verify_report_dir": str(base / "reports"),
            **extra_vars,
        }
        (base / "vars.yml").write_text(yaml.safe_dump(self.vars))

    def play(self, playbook: str, *args: str, extra: dict[str, Any] | None = None) -> subprocess.CompletedProcess:
        """``ansible-playbook -i inventory/local.yml playbooks/<playbook>`` with this site's variables."""
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", "inventory/local.yml", f"playbooks/{playbook}"]
        argv += ["-e", f"@{self.base / 'vars.yml'}", *(["-e", json.dumps(extra)] if extra else []), *args]
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
        return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)

    @property
    def supervisord_pidfile(self) -> Path:
        return self.base / "run" / "supervisord.pid"


def changed(result: subprocess.CompletedProcess) -> int:
    """The ``changed`` count of localhost in a play recap."""
    recap = [line for line in result.stdout.splitlines() if line.startswith("localhost")][-1]
    return int(recap.split("changed=")[1].split()[0])


def stop_supervisord(pidfile: Path) -> None:
    """Stop the supervisord a test deployment started (it stops its programs first)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def tear_down(base: Path, user: str) -> None:
    """Remove a test deployment: its supervisord (and programs), its account, its files."""
    stop_supervisord(base / "run" / "supervisord.pid")
    subprocess.run(["userdel", user], capture_output=True, check=False)
    subprocess.run(["groupdel", user], capture_output=True, check=False)
    shutil.rmtree(base, ignore_errors=True)
