#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""FAKE stand-in for Triton's ``build.py``: checks its flags as the release's build.py would, records them,
and lays out the tree a non-container build installs.

This is NOT Triton's build.py and builds nothing. A real non-container build needs a
release-branch checkout, network access to a dozen repositories and hours of compiling; the
tests only check the role's plumbing around it. Tests copy this file as ``build.py`` into a
local git repository on a release branch (``r24.10``) next to a ``TRITON_VERSION`` file, with
its two companions ``triton_build_py.py`` (module_utils: what each release's build.py accepts,
read from build.py itself) and ``minimal_elf.py``.

What it does, like the real one where it matters to the role:

- Accepts exactly the option strings the build.py of the checkout's release branch defines and
  refuses any other as argparse does (``unrecognized arguments``, exit 2); a
  ``--target-platform`` value its help does not name is refused as well.
- Without ``--target-platform`` it guesses as build.py does (``distro.like()`` holding "debian"
  is "linux", anything else "rhel") and, for "rhel", fails where the real build fails on a
  Debian host: copying ``install/lib64/libtritonserver.so``, which CMake put in ``install/lib``.
- ``--no-container-build`` without ``--build-dir`` fails with build.py's own message.
- Every call appends ``{"argv": [...], "dryrun": bool, "python": <interpreter>}`` as one JSON line to
  ``<build-dir>/fake-build-calls.jsonl``.
- ``--dryrun`` writes only a ``<build-dir>/cmake_build`` script and no install tree.
- Otherwise it writes the install tree of build.py's core and backend build steps under
  ``<build-dir>/opt/tritonserver/`` (or ``--install-dir``): ``bin/tritonserver`` and
  ``lib/libtritonserver.so`` as minimal ELF files (``bin/tritonserver`` needs ``libcudart.so.<major>``
  with ``--enable-gpu``, as a GPU build links the CUDA runtime), ``include/triton/core/*.h``,
  ``python/tritonserver-<version>-py3-none-any.whl``, ``LICENSE``, ``TRITON_VERSION`` and one
  ``backends/<name>/`` per ``--backend`` (the python backend with its library, stub and utils;
  ``ensemble`` is part of core and gets none). Not runnable: the files are placeholders.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORE_HEADERS = ("tritonbackend.h", "tritoncache.h", "tritonrepoagent.h", "tritonserver.h")
PYTHON_BACKEND = ("libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py")
CORE_BACKENDS = ("ensemble",)


def _companion(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _release() -> str:
    branch = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return branch[1:] if branch.startswith("r") else branch


def _guessed_platform() -> str:
    """build.py's guess: /etc/os-release ID_LIKE (distro.like()) holding "debian" is linux, else rhel."""
    like = ""
    for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
        if line.startswith("ID_LIKE="):
            like = line.split("=", 1)[1].strip().strip('"')
    return "linux" if "debian" in like.split() else "rhel"


def parser_for(flags: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build.py", description="FAKE Triton build.py (tests only)")
    for flag in flags:
        parser.add_argument(flag, nargs="?", const=True, action="append")
    return parser


def lay_out(install: Path, args: argparse.Namespace, release: str, elf) -> None:
    gpu = bool(getattr(args, "enable_gpu", None))
    cudart = f"libcudart.so.{13 if tuple(map(int, release.split('.'))) >= (25, 8) else 12}"
    server = elf.write_elf(install / "bin" / "tritonserver", ["libtritonserver.so", *([cudart] if gpu else [])])
    server.chmod(0o755)
    elf.write_elf(install / "lib" / "libtritonserver.so", [cudart] if gpu else [])
    for header in CORE_HEADERS:
        (install / "include" / "triton" / "core").mkdir(parents=True, exist_ok=True)
        (install / "include" / "triton" / "core" / header).write_text(f"/* FAKE {header} */\n")
    version = (HERE / "TRITON_VERSION").read_text().strip()
    (install / "python").mkdir(exist_ok=True)
    (install / "python" / f"tritonserver-{version}-py3-none-any.whl").write_text("FAKE wheel placeholder\n")
    (install / "LICENSE").write_text("FAKE license placeholder\n")
    (install / "TRITON_VERSION").write_text(f"{version}\n")
    for spec in getattr(args, "backend", None) or []:
        name = str(spec).split(":", 1)[0]
        if name in CORE_BACKENDS:
            continue
        backend = install / "backends" / name
        backend.mkdir(parents=True, exist_ok=True)
        files = PYTHON_BACKEND if name == "python" else (f"libtriton_{name}.so",)
        for file in files:
            (backend / file).write_text(f"FAKE {name} backend placeholder\n")


def main(argv: list[str]) -> int:
    release = _release()
    build_py = _companion("triton_build_py")
    record = build_py.RELEASES.get(release)
    if record is None:
        print(f"FAKE build.py: no record of build.py for branch r{release}", file=sys.stderr)
        return 2
    parser = parser_for(tuple(sorted(build_py.flags_of(release))))
    args = parser.parse_args(argv)
    platform = (getattr(args, "target_platform", None) or [None])[-1]
    if platform is not None and platform not in record["target_platforms"]:
        parser.error(f"--target-platform {platform}: build.py of r{release} builds for {record['target_platforms']}")
    if args.no_container_build and not args.build_dir:
        print("error: --no-container-build requires --build-dir", file=sys.stderr)
        return 1
    build_dir = Path(args.build_dir[-1] if args.build_dir else HERE / "build")
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / "fake-build-calls.jsonl").open("a") as log:
        call = {"argv": argv, "dryrun": bool(getattr(args, "dryrun", None)), "python": sys.executable}
        log.write(json.dumps(call) + "\n")
    if getattr(args, "dryrun", None):
        (build_dir / "cmake_build").write_text("#!/bin/sh\n# FAKE dry run: nothing to build\n")
        return 0
    if (platform or _guessed_platform()) == "rhel":
        print(
            f"cp: cannot stat '{build_dir}/tritonserver/install/lib64/libtritonserver.so': No such file or directory",
            file=sys.stderr,
        )
        return 1
    install_dir = getattr(args, "install_dir", None)
    install = Path(install_dir[-1] if install_dir else build_dir / "opt" / "tritonserver")
    lay_out(install, args, release, _companion("minimal_elf"))
    print(f"FAKE build.py: wrote {install}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
