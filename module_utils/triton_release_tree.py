# SPDX-License-Identifier: Apache-2.0
"""Content hashing of model-repository trees, shared by the controller's build and the host's switch.

Kept apart from the build (which needs protobuf and tritonclient for Triton's config schema)
so that the host-side module imports only the standard library.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.pbtxt"
IGNORED_DIR_NAMES = frozenset({"__pycache__"})
IGNORED_SUFFIXES = (".pyc", ".pyo")
RELEASE_ID_LENGTH = 16


class ReleaseError(Exception):
    """A repository cannot become a release; the message says what to change.

    ``problems`` carries the structured config problems (``triton_model_config.Problem``
    dicts) when rendering refused one or more models.
    """

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def is_ignored(relative: Path) -> bool:
    """Return True for files the server writes into a repository (bytecode caches)."""
    if any(part in IGNORED_DIR_NAMES for part in relative.parts):
        return True
    return relative.name.endswith(IGNORED_SUFFIXES)


def tree_files(root: Path) -> list[Path]:
    """Return the files under ``root`` (relative, sorted), without server-written caches.

    Hidden entries at the top level (``.staging-*``, editor files) are not part of a
    repository. Symlinks to files are followed, as the copy to the host follows them.
    Raises ReleaseError when ``root`` is not a directory.
    """
    if not root.is_dir():
        raise ReleaseError(
            f"model repository {root} is not a directory: found "
            f"{'nothing' if not root.exists() else 'a file'} there; a repository is a directory "
            "with one sub-directory per model; set triton_models_src to such a directory"
        )
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        current = Path(dirpath)
        relative_dir = current.relative_to(root)
        dirnames[:] = sorted(
            name
            for name in dirnames
            if name not in IGNORED_DIR_NAMES and not (relative_dir == Path(".") and name.startswith("."))
        )
        for name in filenames:
            relative = relative_dir / name
            if relative_dir == Path(".") and name.startswith("."):
                continue
            if not is_ignored(relative):
                found.append(relative)
    return sorted(found)


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks (model files can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_entries(entries: list[tuple[str, bool, str]]) -> str:
    """Return the release id of ``(relative path, executable, sha256)`` entries (any order)."""
    digest = hashlib.sha256()
    for relative, executable, sha in sorted(entries):
        digest.update(f"{relative}\0{'x' if executable else '-'}\0{sha}\n".encode())
    return digest.hexdigest()[:RELEASE_ID_LENGTH]


def is_executable(path: Path) -> bool:
    """Return True when any execute bit is set (uid-independent, unlike os.access as root)."""
    return bool(path.stat().st_mode & 0o111)


def tree_digest(root: Path) -> str:
    """Return the content hash of a directory tree: paths, executable bits and bytes.

    Timestamps, owners and server-written caches do not count, so a release copied to a
    host hashes the same there as on the controller. Returns RELEASE_ID_LENGTH hex digits.
    """
    return digest_entries(
        [(rel.as_posix(), is_executable(root / rel), file_sha256(root / rel)) for rel in tree_files(root)]
    )
