# SPDX-License-Identifier: Apache-2.0
"""Model-repository trees: their files, release id and packing, shared by the controller's build and the host.

The content digest is the release lifecycle's (``triton_release_lifecycle.tree_digest``); a
model release's id is its first RELEASE_ID_LENGTH hex digits. Kept apart from the build (which
needs protobuf and tritonclient for Triton's config schema) so that the host-side module
imports only the standard library.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from ansible.module_utils.triton_release_lifecycle import digest_entries, is_executable, tree_digest, tree_paths

CONFIG_NAME = "config.pbtxt"
# The rendered instance groups a release carries next to its models (read by verification).
INSTANCE_GROUPS_NAME = "instance_groups.json"
RELEASE_ID_LENGTH = 16


class ReleaseError(Exception):
    """A repository cannot become a release; the message says what to change.

    ``problems`` carries the structured config problems (``triton_model_config.Problem``
    dicts) when rendering refused one or more models.
    """

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def tree_files(root: Path) -> list[Path]:
    """Return the files of a model repository or release under ``root`` (relative, sorted).

    What counts is the release lifecycle's content (``triton_release_lifecycle.tree_paths``):
    no server-written caches, no hidden top-level entries, symlinks followed as the copy to the
    host follows them. Raises ReleaseError when ``root`` is not a directory.
    """
    if not root.is_dir():
        raise ReleaseError(
            f"model repository {root} is not a directory: found "
            f"{'nothing' if not root.exists() else 'a file'} there; a repository is a directory "
            "with one sub-directory per model; set triton_models_src to such a directory"
        )
    return tree_paths(root)


def release_id_of(entries: list[tuple[str, str, str]]) -> str:
    """Return the release id of digest entries (``triton_release_lifecycle.digest_entries``)."""
    return digest_entries(entries)[:RELEASE_ID_LENGTH]


def tree_release_id(root: Path) -> str:
    """Return the release id of a release directory: its content digest, RELEASE_ID_LENGTH hex digits.

    Timestamps, owners and server-written caches do not count, so a release copied to a host
    hashes the same there as on the controller.
    """
    return tree_digest(root)[:RELEASE_ID_LENGTH]


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
