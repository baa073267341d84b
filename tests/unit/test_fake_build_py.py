# SPDX-License-Identifier: Apache-2.0
"""tests/fakes/build.py holds the role's build.py argv to what the real build.py of each release accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.triton_server_inspect import inspect_release
from ansible.module_utils.triton_source_build import source_build_argv
from support.plans import base_host, dgpu_host, gpu, jetson_host, make_plan
from support.server_checkout import fake_server_checkout


def run(checkout: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(checkout / "build.py"), *flags], capture_output=True, text=True, check=False
    )


def test_a_flag_the_releases_build_py_does_not_define_is_refused(tmp_path):
    checkout = fake_server_checkout(tmp_path / "server", "24.10")
    result = run(checkout, "--no-container-build", f"--build-dir={tmp_path / 'b'}", "--enable-everything")
    assert result.returncode == 2
    assert "unrecognized arguments: --enable-everything" in result.stderr
    assert not (tmp_path / "b").exists()


def test_an_older_build_py_lacks_flags_a_newer_one_has(tmp_path):
    checkout = fake_server_checkout(tmp_path / "server", "22.02", "2.19.0")
    result = run(checkout, "--no-container-build", f"--build-dir={tmp_path / 'b'}", "--dryrun")
    assert result.returncode == 2 and "unrecognized arguments: --dryrun" in result.stderr


def test_a_target_platform_its_help_does_not_name_is_refused(tmp_path):
    checkout = fake_server_checkout(tmp_path / "server", "23.06", "2.35.0")
    result = run(checkout, "--no-container-build", f"--build-dir={tmp_path / 'b'}", "--target-platform=igpu")
    assert result.returncode == 2 and "'linux', 'windows', 'jetpack'" in result.stderr


def test_without_a_target_platform_it_guesses_from_os_release_as_build_py_does(tmp_path):
    checkout = fake_server_checkout(tmp_path / "server", "24.10")
    result = run(checkout, "--no-container-build", f"--build-dir={tmp_path / 'b'}")
    id_like = [line for line in Path("/etc/os-release").read_text().splitlines() if line.startswith("ID_LIKE=")]
    if any("debian" in line for line in id_like):
        assert result.returncode == 0, result.stderr
    else:  # Debian itself has no ID_LIKE: build.py takes it for RHEL and looks for lib64/
        assert result.returncode == 1
        assert "install/lib64/libtritonserver.so': No such file or directory" in result.stderr


@pytest.mark.parametrize("gpu_build", [False, True], ids=["cpu", "gpu"])
def test_the_roles_argv_builds_the_tree_a_non_container_build_installs(tmp_path, gpu_build):
    checkout = fake_server_checkout(tmp_path / "server", "24.10")
    host = dgpu_host([gpu(0, "NVIDIA L4", "8.9")])
    plan = make_plan(host, "24.10", "source", enable_gpu="auto" if gpu_build else "false")
    options = {"python": sys.executable, "checkout": str(checkout), "build_dir": str(tmp_path / "b"),
               "backends": ["ensemble", "python"]}  # fmt: skip
    result = subprocess.run(source_build_argv(plan, host, options), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    install = tmp_path / "b" / "opt" / "tritonserver"
    files = sorted(str(p.relative_to(install)) for p in install.rglob("*") if p.is_file())
    assert files == [
        "LICENSE",
        "TRITON_VERSION",
        "backends/python/libtriton_python.so",
        "backends/python/triton_python_backend_stub",
        "backends/python/triton_python_backend_utils.py",
        "bin/tritonserver",
        "include/triton/core/tritonbackend.h",
        "include/triton/core/tritoncache.h",
        "include/triton/core/tritonrepoagent.h",
        "include/triton/core/tritonserver.h",
        "lib/libtritonserver.so",
        "python/tritonserver-2.51.0-py3-none-any.whl",
    ]
    info = inspect_release(install)
    assert (info["tritonserver"], info["gpu_build"], info["triton_version_file"]) == (True, gpu_build, "2.51.0")
    assert info["cudart"] == (["libcudart.so.12"] if gpu_build else [])


@pytest.mark.parametrize(
    ("release", "host_fn"),
    [("22.02", lambda: jetson_host("nano-jp4")), ("23.06", lambda: jetson_host("xavier-jp5")),
     ("24.10", lambda: jetson_host("orin-jp6")), ("26.08", lambda: jetson_host("thor-jp7")),
     ("25.08", lambda: base_host(arch="aarch64"))],
    ids=["jetpack4", "jetpack5", "jetpack6", "jetpack7", "sbsa"],
)  # fmt: skip
def test_the_roles_dry_run_passes_each_releases_build_py(tmp_path, release, host_fn):
    host = host_fn()
    plan = make_plan(host, "2.19.0" if release == "22.02" else release, "source")
    checkout = fake_server_checkout(tmp_path / "server", release, plan["server_version"])
    options = {"python": sys.executable, "checkout": str(checkout), "build_dir": str(tmp_path / "b"),
               "backends": ["python"], "dryrun": True}  # fmt: skip
    argv = source_build_argv(plan, host, options)
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
