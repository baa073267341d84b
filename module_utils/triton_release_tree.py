# SPDX-License-Identifier: Apache-2.0
"""Content hashing and packing of model-repository trees, shared by the controller's build and the host's switch.

Kept apart from the build (which needs protobuf and tritonclient for Triton's config schema)
so that the host-side module imports only the standard library.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

CONFIG_NAME = "config.pbtxt"
# The rendered instance groups a release carries next to its models (read by verification).
INSTANCE_GROUPS_NAME = "instance_groups.json"
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


def write_archive(release_dir: Path, archive: Path) -> None:
    """Pack a release into one uncompressed tar (regular files only, sorted, no owners), atomically.

    One archive crosses to the host in one transfer, where a directory copy costs a module run
    per file. Only the execute bit of each file is kept; the host's unpack sets every mode.
    """
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for relative in tree_files(release_dir):
                info = tarfile.TarInfo(relative.as_posix())
                info.size = (release_dir / relative).stat().st_size
                info.mode = 0o755 if is_executable(release_dir / relative) else 0o644
                with (release_dir / relative).open("rb") as handle:
                    tar.addfile(info, handle)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack an archive from ``write_archive`` into the new directory ``dest``.

    Accepts only regular files with relative paths that stay inside ``dest``; modes are 0755
    for directories and executables, 0644 for the rest. Raises ReleaseError for anything else
    (the archive is then not from the controller's build), OSError when it cannot be read.
    """
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            path = PurePosixPath(member.name)
            if not member.isfile() or path.is_absolute() or ".." in path.parts or not path.parts:
                raise ReleaseError(
                    f"the release archive {archive} holds {member.name!r}, which is not a plain file inside the "
                    "release; an archive from the controller's build holds only the release's files; remove it "
                    "and rerun the deploy phase (it is uploaded again)"
                )
        dest.mkdir(mode=0o755)
        for member in members:
            target = dest.joinpath(*PurePosixPath(member.name).parts)
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise ReleaseError(f"the release archive {archive} cannot give the contents of {member.name!r}")
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
    for directory, _dirs, _files in os.walk(dest):
        os.chmod(directory, 0o755)
