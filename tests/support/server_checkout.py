# SPDX-License-Identifier: Apache-2.0
"""A local git checkout shaped like Triton's server repository, with tests/fakes/build.py as its build.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def fake_server_checkout(root: Path, release: str = "24.10", version: str = "2.51.0") -> Path:
    """Make ``root`` a git repository on branch ``r<release>`` with the fake build.py and ``TRITON_VERSION``.

    The fake's two companions go next to it: what each release's build.py accepts
    (module_utils/triton_build_py.py) and its ELF writer (tests/fakes/minimal_elf.py).
    """
    root.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "tests" / "fakes" / "build.py", root / "build.py")
    shutil.copy2(REPO_ROOT / "tests" / "fakes" / "minimal_elf.py", root / "minimal_elf.py")
    shutil.copy2(REPO_ROOT / "module_utils" / "triton_build_py.py", root / "triton_build_py.py")
    (root / "TRITON_VERSION").write_text(f"{version}\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", f"r{release}"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fake server checkout"], check=True)
    return root
