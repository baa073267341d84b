# SPDX-License-Identifier: Apache-2.0
"""A deployment of ``playbooks/site.yml`` on this machine from the embedded default inventory, in a private directory.

``inventory/local.yml`` (this machine, local connection) with every path under ``base``, its own
ports and a throwaway service account, so a test or benchmark never touches a real deployment of
this machine (``make site``) or another test's. Used by the container tests and benchmarks.

``private_site_vars(base, http_port, user, uid)``
    the paths, ports and account of such a deployment (for inventories of their own).
``LocalSite(base, http_port, user, uid, extra_vars)``
    writes ``base/vars.yml``; ``play(playbook, *args, extra=None)`` runs ``playbooks/<playbook>``
    with it and returns the CompletedProcess; ``changed(result)`` reads the recap.
"""

from __future__ import annotations

import json
import os
import subprocess
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
