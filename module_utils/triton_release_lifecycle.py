# SPDX-License-Identifier: Apache-2.0
"""The life of a release under a root: the same for server releases and model releases.

Layout (docs/architecture.md, "Release lifecycle")::

    <root>/releases/<id>/                  complete releases
    <root>/releases/.staging-<id>/         a release being made (never served)
    <root>/releases/.retired-<id>-<hex>/   a release being replaced (removed right after)
    <root>/current  -> releases/<id>       what the server serves
    <root>/previous -> releases/<id>       the rollback target (model and application releases)

Server releases (``<install prefix>``, id = server version) and embedded-application releases
(``<apps>/<name>``, id = digest of source, build command and launcher) are complete once their
``manifest.json`` exists (``has_manifest``): it is written last, into the staging directory,
before the rename. Model releases (``<models root>``, id = content digest) are complete once
their files hash to their id. All three are staged, promoted by one rename, pointed at by
relative links replaced atomically, cleaned of leftovers of interrupted runs and pruned the
same way, and hashed by ``tree_digest``. Pure functions over paths; nothing here exits or logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

RELEASES_DIR = "releases"
CURRENT_LINK = "current"
PREVIOUS_LINK = "previous"
STAGING_PREFIX = ".staging-"
RETIRED_PREFIX = ".retired-"
MANIFEST_NAME = "manifest.json"
# What a running server writes into a tree (bytecode caches): never part of a release's content.
IGNORED_DIR_NAMES = frozenset({"__pycache__"})
IGNORED_SUFFIXES = (".pyc", ".pyo")


class ManifestError(ValueError):
    """A release manifest exists but cannot be used; ``str()`` names the file and the reason."""


# --- content digest ---------------------------------------------------------------------------


def is_ignored(relative: Path) -> bool:
    """Return True for files a server writes into a tree (bytecode caches)."""
    if any(part in IGNORED_DIR_NAMES for part in relative.parts):
        return True
    return relative.name.endswith(IGNORED_SUFFIXES)


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks (server libraries and models are large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_executable(path: Path) -> bool:
    """Return True when any execute bit is set (uid-independent, unlike os.access as root)."""
    return bool(path.stat().st_mode & 0o111)


def tree_paths(root: Path, follow_links: bool = True, exclude: Iterable[str] = ()) -> list[Path]:
    """Return the entries under ``root`` that make up its content (relative, sorted).

    Server-written caches and hidden entries at the top level (``.staging-*``, a manifest's
    temporary file, editor files) are left out, as are the top-level names in ``exclude``. With
    ``follow_links`` a symlink counts as what it points to (a model repository is copied that
    way); without it a symlink is an entry of its own (a server release keeps its library links).
    """
    excluded = set(exclude)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_links):
        relative_dir = Path(dirpath).relative_to(root)
        top = relative_dir == Path(".")
        kept_dirs = []
        for name in sorted(dirnames):
            if name in IGNORED_DIR_NAMES or (top and (name.startswith(".") or name in excluded)):
                continue
            if not follow_links and os.path.islink(os.path.join(dirpath, name)):
                found.append(relative_dir / name)
                continue
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in filenames:
            relative = relative_dir / name
            if top and (name.startswith(".") or name in excluded):
                continue
            if not is_ignored(relative):
                found.append(relative)
    return sorted(found)


def digest_entries(entries: Iterable[tuple[str, str, str]]) -> str:
    """Return the hex digest of ``(relative path, kind, value)`` entries, in any order.

    ``kind`` is ``x`` (executable file) or ``-`` (other file) with the file's sha256 as value,
    or ``l`` (symlink) with its target as value.
    """
    digest = hashlib.sha256()
    for relative, kind, value in sorted(entries):
        digest.update(f"{relative}\0{kind}\0{value}\n".encode())
    return digest.hexdigest()


def file_entry(relative: str, path: Path) -> tuple[str, str, str]:
    """The digest entry of one file: its relative path, ``x`` or ``-`` and its sha256."""
    return relative, "x" if is_executable(path) else "-", file_sha256(path)


def tree_digest(root: Path, follow_links: bool = True, exclude: Iterable[str] = ()) -> str:
    """Return the content digest of a tree: paths, executable bits, bytes (and link targets).

    Timestamps, owners and server-written caches do not count, so a tree copied to a host
    hashes the same there as where it was built (``tree_paths`` says what is content).
    """
    entries = []
    for relative in tree_paths(root, follow_links, exclude):
        path = root / relative
        if not follow_links and path.is_symlink():
            entries.append((relative.as_posix(), "l", os.readlink(path)))
        else:
            entries.append(file_entry(relative.as_posix(), path))
    return digest_entries(entries)


# --- links ------------------------------------------------------------------------------------


def release_dir(root: Path, release_id: str) -> Path:
    """Return ``<root>/releases/<release_id>``."""
    return root / RELEASES_DIR / release_id


def linked_release(root: Path, name: str = CURRENT_LINK) -> str | None:
    """Return the release id the link ``<root>/<name>`` points at, or None when there is none."""
    link = root / name
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def point_link(root: Path, name: str, release_id: str) -> bool:
    """Point ``<root>/<name>`` at ``releases/<release_id>`` atomically; return True when it moved.

    The link is relative, so the tree stays valid when the root is moved or mounted elsewhere;
    readers see either the old or the new target, never a missing link.
    """
    target = f"{RELEASES_DIR}/{release_id}"
    link = root / name
    if link.is_symlink() and os.readlink(link) == target:
        return False
    temporary = root / f".{name}.tmp-{secrets.token_hex(4)}"
    os.symlink(target, temporary)
    os.replace(temporary, link)
    return True


def remove_link(root: Path, name: str) -> None:
    """Remove ``<root>/<name>`` when it is a link."""
    link = root / name
    if link.is_symlink():
        link.unlink()


# --- manifest ---------------------------------------------------------------------------------


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """Return ``<directory>/manifest.json``, or None when there is none.

    ``directory`` is a release directory or a link to one (``<prefix>/current``). Raises
    ManifestError when the file exists but cannot be read, is not JSON or not an object.
    """
    path = directory / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise ManifestError(f"{path} cannot be read ({err.strerror})") from err
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ManifestError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ManifestError(f"{path} holds a {type(data).__name__}, not an object")
    return data


def complete_manifest(directory: Path) -> dict[str, Any] | None:
    """Return the manifest of a complete release, None for a half-made one (absent or unusable manifest)."""
    try:
        return read_manifest(directory)
    except ManifestError:
        return None


def has_manifest(directory: Path) -> bool:
    """True when ``directory`` holds a usable manifest: the test of completeness for manifest-last releases."""
    return complete_manifest(directory) is not None


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` atomically and durably: the last file of a release to be written."""
    temporary = directory / f".{MANIFEST_NAME}.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, directory / MANIFEST_NAME)


def manifest_tree_digest(directory: Path) -> str:
    """The digest a manifest records (``files_sha256``): every entry but the manifest, links as links."""
    return tree_digest(directory, follow_links=False, exclude=(MANIFEST_NAME,))


def manifest_matches(directory: Path, identity: Mapping[str, Any] | None) -> bool:
    """True when ``directory`` holds a complete release whose manifest has ``identity`` and whose files are intact.

    ``identity`` holds the manifest keys that say which artifact the release came from; None
    (not knowable yet, e.g. in check mode before a skipped download) never matches.
    """
    manifest = complete_manifest(directory)
    if manifest is None or identity is None:
        return False
    if any(manifest.get(key) != value for key, value in identity.items()):
        return False
    return manifest.get("files_sha256") == manifest_tree_digest(directory)


# --- staging, promotion, leftovers, pruning ----------------------------------------------------


def staging_dir(root: Path, release_id: str) -> Path:
    """Return ``<root>/releases/.staging-<release_id>``: where a release is made before promotion."""
    return root / RELEASES_DIR / f"{STAGING_PREFIX}{release_id}"


def promote(root: Path, staging: Path, release_id: str) -> None:
    """Rename a complete ``staging`` directory to ``releases/<release_id>`` (replacing one that is there).

    A release being replaced is first renamed aside and removed only after the new one is in
    place, so ``releases/<release_id>`` never goes missing for longer than one rename.
    """
    final = release_dir(root, release_id)
    retired = root / RELEASES_DIR / f"{RETIRED_PREFIX}{release_id}-{secrets.token_hex(4)}"
    if final.exists():
        final.rename(retired)
    staging.rename(final)
    if retired.exists():
        shutil.rmtree(retired)


def leftovers(root: Path, keep: Iterable[Path] = (), complete: Callable[[Path], bool] | None = None) -> list[Path]:
    """Return what interrupted runs left under ``<root>/releases``: staging and retired entries.

    Entries in ``keep`` (this run's staging directory and upload) are not leftovers. With
    ``complete``, a release directory it calls incomplete (a server release without manifest)
    is one too.
    """
    releases = root / RELEASES_DIR
    if not releases.is_dir():
        return []
    kept = set(keep)
    found = []
    for entry in sorted(releases.iterdir()):
        if entry in kept:
            continue
        half_made = complete is not None and entry.is_dir() and not entry.is_symlink() and not complete(entry)
        if half_made or entry.name.startswith((STAGING_PREFIX, RETIRED_PREFIX)):
            found.append(entry)
    return found


def releases_to_prune(root: Path, keep: int, protected: Iterable[str]) -> list[str]:
    """Return the release ids to delete: all but the ``keep`` newest (at least one), never a protected one.

    Age is the release directory's mtime (its last top-level entry is written when it is
    made). ``protected`` holds what the links point at and this run's release.
    """
    releases = root / RELEASES_DIR
    if not releases.is_dir():
        return []
    spared = set(protected)
    entries = [p for p in releases.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
    entries.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return sorted(p.name for p in entries[max(keep, 1) :] if p.name not in spared)


def remove_leftovers(
    root: Path, check_mode: bool, keep: Iterable[Path] = (), complete: Callable[[Path], bool] | None = None
) -> list[Path]:
    """Remove (in check mode: only list) the ``leftovers`` of interrupted runs; return them."""
    found = leftovers(root, keep, complete)
    if not check_mode:
        for path in found:
            remove(path)
    return found


def prune(root: Path, keep: int, protected: Iterable[str], check_mode: bool) -> list[str]:
    """Remove (in check mode: only list) the releases ``releases_to_prune`` names; return their ids."""
    pruned = releases_to_prune(root, keep, protected)
    if not check_mode:
        for release_id in pruned:
            remove(release_dir(root, release_id))
    return pruned


def remove(path: Path) -> None:
    """Remove a release directory, a leftover directory or a file."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
