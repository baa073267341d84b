#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""FAKE stand-in for Triton's ``build.py``: records its argv and writes a toy install tree.

This is NOT Triton's build.py and builds nothing. A real non-container build needs a
release-branch checkout, network access to a dozen repositories and hours of compiling; the
tests only check the role's plumbing around it. Tests copy this file as ``build.py`` into a
local git repository next to a ``TRITON_VERSION`` file.

What it does, like the real one where it matters to the role:

- ``--no-container-build`` without ``--build-dir`` fails with build.py's own message.
- Every call appends ``{"argv": [...], "dryrun": bool}`` as one JSON line to
  ``<build-dir>/fake-build-calls.jsonl``.
- ``--dryrun`` writes only a ``<build-dir>/cmake_build`` script (the real one writes build scripts)
  and no install tree.
- Otherwise it writes ``<build-dir>/opt/tritonserver/``: ``bin/tritonserver`` (a shell script
  that says it is a fake and exits 1), ``lib/libtritonserver.so`` (a text placeholder),
  ``lib/libcudart.so.12`` (placeholder) only with ``--enable-gpu``, one ``backends/<name>/``
  per ``--backend``, and ``TRITON_VERSION`` copied from the checkout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FAKE_SERVER = """#!/bin/sh
echo "fake tritonserver written by tests/fakes/build.py: not a real Triton server" >&2
exit 1
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description="FAKE Triton build.py (tests only)")
    parser.add_argument("--no-container-build", action="store_true")
    parser.add_argument("--build-dir")
    parser.add_argument("--install-dir")
    parser.add_argument("--dryrun", action="store_true")
    parser.add_argument("--enable-gpu", action="store_true")
    parser.add_argument("--backend", action="append", default=[])
    args, _unknown = parser.parse_known_args(argv)
    if args.no_container_build and not args.build_dir:
        print("error: --no-container-build requires --build-dir", file=sys.stderr)
        return 1
    build_dir = Path(args.build_dir or Path(__file__).parent / "build")
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / "fake-build-calls.jsonl").open("a") as log:
        log.write(json.dumps({"argv": argv, "dryrun": args.dryrun}) + "\n")
    if args.dryrun:
        (build_dir / "cmake_build").write_text("#!/bin/sh\n# FAKE dry run: nothing to build\n")
        return 0
    install = Path(args.install_dir or build_dir / "opt" / "tritonserver")
    (install / "bin").mkdir(parents=True, exist_ok=True)
    (install / "lib").mkdir(exist_ok=True)
    server = install / "bin" / "tritonserver"
    server.write_text(FAKE_SERVER)
    server.chmod(0o755)
    (install / "lib" / "libtritonserver.so").write_text("FAKE libtritonserver placeholder\n")
    if args.enable_gpu:
        (install / "lib" / "libcudart.so.12").write_text("FAKE CUDA runtime placeholder\n")
    for spec in args.backend:
        backend = install / "backends" / spec.split(":", 1)[0]
        backend.mkdir(parents=True, exist_ok=True)
        (backend / "FAKE").write_text("placeholder backend from tests/fakes/build.py\n")
    version = Path(__file__).with_name("TRITON_VERSION")
    if version.is_file():
        (install / "TRITON_VERSION").write_text(version.read_text())
    print(f"FAKE build.py: wrote {install}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
