"""A whole tritonfleet deployment on this machine for end-to-end tests: inventory vars and cleanup.

Every path lies under one base directory (which must be 0755: the service user traverses it),
the server listens on loopback ports of the caller's choosing, and the service account is a
throwaway one with a fixed uid, so a real deployment on this machine (``make site``) is neither
touched nor able to block ``usermod``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

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
        "triton_install_prefix": str(base / "opt"),
        "triton_models_root": str(base / "models"),
        "triton_models_build_dir": str(base / "build"),
        "triton_models_src": str(models_src),
        "triton_service_install_prefix": str(base / "opt"),
        "triton_service_user": user,
        "triton_service_group": user,
        "triton_service_uid": uid,
        "triton_service_gid": uid,
        "triton_service_model_repository": str(base / "models" / "current"),
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
        "triton_service_ready_timeout": 60,
        "triton_verify_report_dir": str(base / "reports" / "{{ inventory_hostname }}"),
    }


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
