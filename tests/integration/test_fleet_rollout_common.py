# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the fleet rollout tests, the pull-mode test and tests/bench/bench_rollout.py.

No tests here. Simulated hosts (tests/fleet) have only loopback, so everything a host installs
comes from files this machine prepares once and shares through /work (not overlaid):

- the ``nvidia-pytriton`` wheel (tritonserver 2.51.0) and a runtime venv holding it and numpy:
  the install role's wheel method then runs ``pip install --no-index --find-links <cache>``
  against that venv (already satisfied: no 55 MB download or unpack per host), and stages the
  release from its site-packages into each host's own install prefix;
- the supervisor wheel for the service role's supervisord environment (hosts have no systemd),
  and a numpy wheel for the python runtime venv the install role makes for tarball releases;
- for Jetson hosts (aarch64: no wheel), a release tarball built once from the wheel release.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml
from support.triton_dist import cache_lock, pytriton_wheel

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
CACHE_DIR = REPO_ROOT / "tests" / ".work" / "cache"
WHEELS_DIR = CACHE_DIR / "wheels"
SUPERVISOR = "supervisor==4.3.0"
PYTRITON_WHEEL_GLOB = "nvidia_pytriton-0.7.0-*.whl"
FLEET_VENV = CACHE_DIR / "fleet-venv-pytriton-0.7.0"
TARBALL = CACHE_DIR / "fleet-tarball" / "tritonserver2.51.0-test.tgz"
SERVER_VERSION = "2.51.0"
SIM_PREFIX = "/opt/tfsim/tritonserver"
SIM_MODELS_ROOT = "/srv/tfsim/models"
EXAMPLE_MODELS = REPO_ROOT / "examples" / "model_repository"
BROKEN_MODELS = REPO_ROOT / "tests" / "fixtures" / "repos" / "broken_model"
RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
    re.M,
)


def _pip(*args: str) -> None:
    subprocess.run([str(VENV_BIN / "pip"), "--disable-pip-version-check", "-q", *args], check=True)


def supervisor_wheel() -> Path:
    """The supervisor wheel, downloaded once into the cache (supervisor has no dependencies)."""
    with cache_lock("fleet-wheels"):
        found = sorted(WHEELS_DIR.glob("supervisor-4.3.0-*.whl"))
        if not found:
            _pip("download", "--no-deps", "-d", str(WHEELS_DIR), SUPERVISOR)
            found = sorted(WHEELS_DIR.glob("supervisor-4.3.0-*.whl"))
        return found[0]


def numpy_wheel() -> Path:
    """A numpy<2 wheel for the python backend runtime venv of tarball releases (Jetson hosts)."""
    with cache_lock("fleet-wheels"):
        found = sorted(WHEELS_DIR.glob("numpy-1.*.whl"))
        if not found:
            _pip("download", "--no-deps", "--only-binary=:all:", "-d", str(WHEELS_DIR), "numpy<2")
            found = sorted(WHEELS_DIR.glob("numpy-1.*.whl"))
        return found[0]


def fleet_venv() -> Path:
    """A venv from /usr/bin/python3 with numpy<2 and the pytriton wheel: the hosts' shared runtime."""
    wheel = pytriton_wheel()
    with cache_lock("fleet-venv"):
        if (FLEET_VENV / ".complete").exists():
            return FLEET_VENV
        shutil.rmtree(FLEET_VENV, ignore_errors=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(FLEET_VENV)], check=True)
        subprocess.run([str(FLEET_VENV / "bin" / "pip"), "install", "-q", "numpy<2", str(wheel)], check=True)
        (FLEET_VENV / ".complete").touch()
        return FLEET_VENV


PULL_VENV = CACHE_DIR / "pull-venv"
# What a device needs to be its own controller (roles/triton_pull: triton_pull_packages).
PULL_PACKAGES = ("ansible-core", "Jinja2", "protobuf", "tritonclient[grpc]", "requests", "nvidia-ml-py")


def pull_venv() -> Path:
    """A venv from /usr/bin/python3 with the pinned controller packages a pulling device runs.

    The project's .venv cannot serve: its interpreter lives under /root, which every simulated
    host replaces with a fresh home.
    """
    pins = [
        line.strip()
        for line in (REPO_ROOT / "requirements-controller.txt").read_text().splitlines()
        if line.split("==")[0].strip() in PULL_PACKAGES
    ]
    with cache_lock("pull-venv"):
        marker = PULL_VENV / ".complete"
        if marker.is_file() and marker.read_text() == "\n".join(pins):
            return PULL_VENV
        shutil.rmtree(PULL_VENV, ignore_errors=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(PULL_VENV)], check=True)
        subprocess.run([str(PULL_VENV / "bin" / "pip"), "install", "-q", *pins], check=True)
        marker.write_text("\n".join(pins))
        return PULL_VENV


def release_tarball() -> tuple[Path, str]:
    """A Jetson-shaped release tarball (top-level tritonserver/) built once from the wheel release."""
    from support.triton_dist import triton_release

    with cache_lock("fleet-tarball"):
        if not TARBALL.is_file():
            work = TARBALL.parent / "build"
            shutil.rmtree(work, ignore_errors=True)
            release = triton_release(work / "prefix")
            partial = TARBALL.with_suffix(".partial")
            with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
                for entry in ("bin", "lib", "backends", "caches"):
                    tar.add(release / entry, arcname=f"tritonserver/{entry}")
            partial.replace(TARBALL)
            shutil.rmtree(work, ignore_errors=True)
        return TARBALL, hashlib.sha256(TARBALL.read_bytes()).hexdigest()


def fleet_group_vars(report_dir: Path, models_src: Path = EXAMPLE_MODELS) -> dict[str, Any]:
    """Variables for every simulated host: offline installs, reports under ``report_dir``."""
    venv = fleet_venv()
    tarball, sha256 = release_tarball()
    return {
        "triton_release": "24.10",
        "triton_install_method": "wheel",
        "triton_install_venv_dir": str(venv),
        "triton_install_pip_extra_args": (
            f"--no-index --find-links {pytriton_wheel().parent} --find-links {numpy_wheel().parent}"
        ),
        "triton_install_tarball_path": str(tarball),
        "triton_install_tarball_sha256": sha256,
        # The Jetson runtime libraries come from apt, which a loopback-only host cannot reach;
        # the release's own libraries (lib/) are enough for the python backend here.
        "triton_install_runtime_packages": [],
        # Simulated hosts see this machine's /opt, /srv, /etc and /var as their lower layer,
        # including anything installed here for real; their own paths keep them apart (and a
        # directory from a lower layer cannot be renamed on overlayfs: EXDEV).
        "triton_install_prefix": SIM_PREFIX,
        "triton_models_root": SIM_MODELS_ROOT,
        "triton_service_config_dir": "/etc/tfsim",
        "triton_service_api_key_file": "/etc/tfsim/api-key",
        "triton_service_state_dir": "/var/lib/tfsim",
        "triton_service_log_dir": "/var/log/tfsim",
        "triton_service_home": "/opt/tfsim/fleet",
        "triton_service_run_dir": "/run/tfsim",
        "triton_service_supervisor_package": str(supervisor_wheel()),
        # Simulated hosts share this machine's /proc and start from its /etc/passwd: a
        # "tritonserver" account that other tests run servers as here makes usermod refuse
        # ("user tritonserver is currently used by process ..."). A name of their own avoids it.
        "triton_service_user": "tfsim",
        "triton_service_group": "tfsim",
        "triton_service_ready_timeout": 180,
        "triton_models_src": str(models_src),
        "triton_models_build_dir": str(report_dir.parent / "build" / "triton_models"),
        "triton_verify_report_dir": str(report_dir) + "/{{ inventory_hostname }}",
        "triton_platform_device_check": True,
    }


def write_vars(inventory: Path, group_vars: dict[str, Any], host_vars: dict[str, dict[str, Any]] | None = None) -> None:
    """Write group_vars/all.yml (and host_vars/<host>.yml) next to the fleet's inventory."""
    base = inventory.parent
    (base / "group_vars").mkdir(exist_ok=True)
    (base / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars, sort_keys=True))
    (base / "host_vars").mkdir(exist_ok=True)
    for old in (base / "host_vars").glob("*.yml"):
        old.unlink()
    for host, values in (host_vars or {}).items():
        (base / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(values, sort_keys=True))


class Run:
    """One ansible-playbook run: exit status, output, per-host recap, the fleet report it wrote."""

    def __init__(self, rc: int, out: str, report_dir: Path, rollout_id: str | None) -> None:
        self.rc = rc
        self.out = out
        self.recap = {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP_RE.finditer(out)
        }
        path = report_dir / "fleet" / (rollout_id or "latest") / "fleet.json"
        self.report = json.loads(path.read_text()) if path.is_file() else None

    def rows(self) -> dict[str, dict[str, Any]]:
        """Host name -> its row of the fleet report."""
        assert self.report is not None, self.tail()
        return {row["host"]: row for row in self.report["hosts"]}

    def verdicts(self) -> dict[str, str]:
        return {host: row["verdict"] for host, row in self.rows().items()}

    def tail(self, chars: int = 6000) -> str:
        return self.out[-chars:]


def playbook_argv(
    inventory: Path, playbook: str, extra: dict[str, Any] | None = None, check: bool = False, forks: int | None = None
) -> list[str]:
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(REPO_ROOT / "playbooks" / playbook)]
    if extra:
        argv += ["-e", json.dumps(extra)]
    if check:
        argv.append("--check")
    if forks:
        argv += ["--forks", str(forks)]
    return argv


def playbook_env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def run_rollout(
    inventory: Path,
    report_dir: Path,
    rollout_id: str,
    extra: dict[str, Any] | None = None,
    check: bool = False,
    timeout: int = 900,
) -> Run:
    """Run playbooks/rollout.yml against the fleet; the report lands in ``report_dir/fleet/<rollout_id>``."""
    knobs = {"triton_rollout_id": rollout_id, "triton_rollout_report_dir": str(report_dir), **(extra or {})}
    proc = subprocess.run(
        playbook_argv(inventory, "rollout.yml", knobs, check=check),
        cwd=REPO_ROOT,
        env=playbook_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, report_dir, rollout_id)


def netns_server_pids(netns: str) -> list[int]:
    """Pids of the tritonserver processes of a simulated host (its network namespace), sorted."""
    from fleet.harness import netns_pids

    pids = []
    for pid in netns_pids(netns):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "tritonserver":
                pids.append(pid)
        except OSError:
            continue
    return sorted(pids)


def host_command(inventory: Path, pattern: str, command: str) -> dict[str, dict[str, Any]]:
    """Run a shell command on the simulated hosts over SSH; host -> result (rc, stdout, ...)."""
    from fleet.fixtures import adhoc

    return adhoc(inventory, pattern, "ansible.builtin.shell", command)


def serving(inventory: Path, pattern: str = "all") -> dict[str, dict[str, Any]]:
    """Host -> {server: current server release, models: current model release, ready: HTTP status}."""
    script = (
        f'printf \'%s\\n\' "$(readlink {SIM_PREFIX}/current)" "$(readlink {SIM_MODELS_ROOT}/current)"; '
        "/usr/bin/python3 -c 'import urllib.request,sys\n"
        'try:\n print(urllib.request.urlopen("http://127.0.0.1:8000/v2/health/ready", timeout=5).status)\n'
        'except Exception as e:\n print(getattr(e, "code", 0))\''
    )
    states = {}
    for host, result in host_command(inventory, pattern, script).items():
        lines = [*(result.get("stdout") or "").splitlines(), "", "", "0"]
        states[host] = {
            "server": os.path.basename(lines[0]) or None,
            "models": os.path.basename(lines[1]) or None,
            "ready": int(lines[2] or 0),
            "unreachable": bool(result.get("unreachable")),
        }
    return states
