# SPDX-License-Identifier: Apache-2.0
"""The wheel method's venv: the commands that make it hold the pinned wheel, and where its files are.

``triton_install_release`` runs the commands itself, only when the venv lacks the exact pin, so
a converged host costs no pip run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _dist_name(name: str) -> str:
    """A distribution name as wheel metadata directories spell it (PEP 503 folded, dashes to underscores)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def venv_site_packages(venv_dir: Path) -> tuple[Path, str] | None:
    """Return (site-packages dir, "3.11") of a venv, None while it has no interpreter."""
    if not (venv_dir / "bin" / "python").exists():
        return None
    found = sorted(venv_dir.glob("lib/python3.*/site-packages"))
    if len(found) != 1:
        return None
    return found[0], found[0].parent.name.removeprefix("python")


def venv_holds(venv_dir: Path, requirement: str) -> bool:
    """True when the venv already has exactly the pinned ``name==version`` installed.

    A requirement that is not an exact pin (a range, a URL) is never taken as satisfied:
    pip decides then, at the cost of a pip run.
    """
    pin = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*", requirement)
    located = venv_site_packages(venv_dir)
    if pin is None or located is None:
        return False
    wanted = f"{_dist_name(pin.group(1))}-{pin.group(2)}.dist-info".lower()
    return any(entry.name.lower() == wanted for entry in located[0].glob("*.dist-info"))


def wheel_venv_commands(venv: Mapping[str, Any]) -> list[list[str]]:
    """The commands that make ``venv["path"]`` hold ``venv["requirement"]``; empty when it already does.

    ``venv`` keys: path, python (the interpreter the venv is made from), requirement, extra_args.
    """
    venv_dir = Path(venv["path"])
    if venv_holds(venv_dir, venv["requirement"]):
        return []
    commands = [] if (venv_dir / "bin" / "python").exists() else [[venv["python"], "-m", "venv", str(venv_dir)]]
    pip = [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    return [*commands, [*pip, *shlex.split(venv.get("extra_args") or ""), venv["requirement"]]]


def wheel_request_paths(venv_dir: Path) -> dict[str, str | None]:
    """The wheel request's src, python_bin_dir and python_version for a venv (None before it exists)."""
    located = venv_site_packages(venv_dir)
    site_dir, python_version = located if located else (venv_dir / "missing-site-packages", None)
    return {"src": str(site_dir), "python_bin_dir": str(venv_dir / "bin"), "python_version": python_version}
