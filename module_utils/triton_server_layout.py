# SPDX-License-Identifier: Apache-2.0
"""Turn a server artifact into a release tree: the pytriton wheel, a release tarball, a build tree.

Every method ends in the same tree (docs/architecture.md, "Install layout")::

    <release>/{bin,lib,backends,caches}/

The wheel's binaries are pointed at ``<release>/lib`` by rewriting their RPATH
(``triton_elf.set_elf_rpath``): without it the python backend stub does not find the server's
libraries, fails to start and the server hangs in "loading" (measured with tritonserver 2.51.0
from ``nvidia-pytriton`` 0.7.0; docs/upstream-facts.md, "The nvidia-pytriton wheel").
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from ansible.module_utils.triton_elf import is_elf, set_elf_rpath
from ansible.module_utils.triton_install_errors import ChecksumError, InstallError
from ansible.module_utils.triton_release_lifecycle import file_sha256

# pytriton wheel version -> (Triton server version, NGC release) it bundles
# (docs/upstream-facts.md, "The nvidia-pytriton wheel").
WHEEL_SERVER_VERSIONS: dict[str, tuple[str, str]] = {"0.7.0": ("2.51.0", "24.10")}
WHEEL_DIST_NAME = "nvidia_pytriton"
WHEEL_SERVER_DIR = "pytriton/tritonserver"
WHEEL_LIBS_DIR = "nvidia_pytriton.libs"
# Directories of the wheel's server tree copied into the release, in this order.
WHEEL_TREE_DIRS = ("bin", "backends", "caches")
PYTHON_STUB = "triton_python_backend_stub"
# The stable name an embedding application links and loads (-l:libtritonserver.so, dlopen), and
# the C API header where the distribution ships one (Jetson tarballs, build.py installs).
LIBRARY = "lib/libtritonserver.so"
HEADER = "include/triton/core/tritonserver.h"


def wheel_server_version(site_dir: Path) -> tuple[str, str, str]:
    """Return (pytriton version, server version, release) of the wheel installed in ``site_dir``.

    Reads ``<site_dir>/nvidia_pytriton-<v>.dist-info``. Raises InstallError when the wheel is
    missing or its version is not in WHEEL_SERVER_VERSIONS.
    """
    dist_infos = sorted(site_dir.glob(f"{WHEEL_DIST_NAME}-*.dist-info"))
    if not dist_infos:
        raise InstallError(
            f"The nvidia-pytriton wheel is not installed: no {WHEEL_DIST_NAME}-*.dist-info under {site_dir}. "
            f"Supported wheels: nvidia-pytriton {', '.join(WHEEL_SERVER_VERSIONS)}. "
            "Install the wheel into the runtime venv (triton_install_wheel_package) and run again."
        )
    version = dist_infos[-1].name[len(WHEEL_DIST_NAME) + 1 : -len(".dist-info")]
    if version not in WHEEL_SERVER_VERSIONS:
        raise InstallError(
            f"nvidia-pytriton {version} (found in {dist_infos[-1]}) has no known Triton server version. "
            f"Supported: {', '.join(f'{k} -> tritonserver {v[0]}' for k, v in WHEEL_SERVER_VERSIONS.items())}. "
            "Set triton_install_wheel_package to a supported version or use another install method."
        )
    server_version, release = WHEEL_SERVER_VERSIONS[version]
    return version, server_version, release


def wheel_fingerprint(site_dir: Path) -> str:
    """Return the sha256 of the installed wheel's RECORD (the wheel's own hash of every file)."""
    dist_infos = sorted(site_dir.glob(f"{WHEEL_DIST_NAME}-*.dist-info"))
    if not dist_infos:
        raise InstallError(f"No {WHEEL_DIST_NAME}-*.dist-info under {site_dir}; install the wheel first.")
    return hashlib.sha256((dist_infos[-1] / "RECORD").read_bytes()).hexdigest()


def stage_wheel_layout(site_dir: Path, dest: Path, python_version: str) -> list[str]:
    """Lay the server of an installed or unzipped pytriton wheel out into ``dest``.

    ``site_dir`` holds ``pytriton/tritonserver/`` and ``nvidia_pytriton.libs/`` (a venv's
    site-packages, or the unzipped wheel). Copies ``bin``, ``backends``, ``caches`` and the libs
    into ``lib/``, copies ``python_backend_stubs/<python_version>/triton_python_backend_stub``
    into ``backends/python/`` and points every copied ELF's RPATH at ``lib/``.
    Returns the sorted relative paths written. Raises InstallError on a missing piece.
    """
    server = site_dir / WHEEL_SERVER_DIR
    libs = site_dir / WHEEL_LIBS_DIR
    stub = server / "python_backend_stubs" / python_version / PYTHON_STUB
    missing = [p for p in (server / "bin" / "tritonserver", libs, stub) if not p.exists()]
    if missing:
        stubs = sorted(p.name for p in (server / "python_backend_stubs").glob("*"))
        raise InstallError(
            f"The pytriton wheel under {site_dir} is incomplete: missing {', '.join(map(str, missing))}. "
            f"Python backend stubs in the wheel: {', '.join(stubs) or 'none'}; the runtime Python is {python_version}. "
            "Point triton_install_python at a Python whose minor version has a stub, or reinstall the wheel."
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name in WHEEL_TREE_DIRS:
        if (server / name).is_dir():
            # pip byte-compiles the backend's utils; the python backend writes its own cache at run time.
            shutil.copytree(
                server / name,
                dest / name,
                symlinks=True,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
    shutil.copytree(libs, dest / "lib", symlinks=True, dirs_exist_ok=True)
    shutil.copy2(stub, dest / "backends" / "python" / PYTHON_STUB)
    for path in sorted(dest.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.parent != dest / "lib" and is_elf(path):
            # Every binary outside lib/ pointed into the wheel's own libs dir.
            set_elf_rpath(path, "$ORIGIN/" + os.path.relpath(dest / "lib", path.parent))
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def find_install_root(unpacked: Path) -> Path:
    """Return the directory holding ``bin/tritonserver`` in an unpacked tarball or build tree.

    Accepts a flat layout (``bin/`` at the top) and one top-level directory
    (``tritonserver/bin/``). Raises InstallError otherwise.
    """
    if (unpacked / "bin" / "tritonserver").is_file():
        return unpacked
    children = [p for p in unpacked.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / "bin" / "tritonserver").is_file():
        return children[0]
    found = sorted(str(p.relative_to(unpacked)) for p in unpacked.iterdir())
    raise InstallError(
        f"No bin/tritonserver in the unpacked artifact {unpacked} (top level: {', '.join(found) or 'empty'}). "
        "Supported layouts: bin/, lib/, backends/ at the top, or under one top-level directory "
        "(tritonserver/bin/tritonserver, as in the Jetson release tarballs). "
        "Check triton_install_tarball_url/path points at a Triton server release archive."
    )


UNSAFE_FIX = (
    "A Triton release archive holds only files, directories and links inside its own tree. Use a Triton "
    "release archive (NVIDIA's Jetson tarball, or a copy of the container's /opt/tritonserver) and correct "
    "triton_install_tarball_url/path; nothing was installed."
)


def _safe_members(archive: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """Return the members of ``archive``, refusing anything that would land outside ``dest``."""
    root = dest.resolve()
    name = archive.name
    members = []
    for member in archive.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise InstallError(
                f"Archive member {member.name!r} of {name} is a device or fifo; a Triton release has none. {UNSAFE_FIX}"
            )
        if target != root and root not in target.parents:
            raise InstallError(
                f"Archive member {member.name!r} of {name} would be written outside {dest}; refusing it. {UNSAFE_FIX}"
            )
        if member.issym() or member.islnk():
            link_base = target.parent if member.issym() else root
            link_target = (link_base / member.linkname).resolve()
            if link_target != root and root not in link_target.parents:
                raise InstallError(
                    f"Archive link {member.name!r} -> {member.linkname!r} of {name} points outside {dest}. {UNSAFE_FIX}"
                )
        members.append(member)
    return members


def verify_archive(archive: Path, expected_sha256: str, source: str) -> str:
    """Check ``archive`` exists and has ``expected_sha256``; return the digest.

    Raises InstallError (missing file, wrong checksum) with the source it came from.
    """
    if not archive.is_file():
        raise InstallError(
            f"The Triton release archive is missing: {archive} does not exist (source: {source}). "
            "A tarball install needs triton_install_tarball_url or triton_install_tarball_path to name a "
            "readable .tgz/.tar.gz/.tar file. Fix the path or URL and run again; the installed release is unchanged."
        )
    actual = file_sha256(archive)
    if actual != expected_sha256.lower():
        raise ChecksumError(
            f"Checksum mismatch for the Triton release archive {archive} (source: {source}): "
            f"sha256 is {actual}, triton_install_tarball_sha256 expects {expected_sha256}. "
            "Only an archive with the expected sha256 is installed. Re-download the archive or correct "
            "triton_install_tarball_sha256; the installed release is unchanged."
        )
    return actual


def _unreadable(archive: Path, exc: BaseException) -> InstallError:
    return InstallError(
        f"Cannot unpack the Triton release archive {archive}: {exc}. Supported: tar, tar.gz, tar.bz2, tar.xz. "
        "Check the file is a complete download of a Triton release archive."
    )


def check_archive(archive: Path, expected_sha256: str, source: str, dest: Path) -> None:
    """Everything :func:`stage_tarball_layout` would refuse, without writing anything: the checksum
    (:func:`verify_archive`), a readable tar, and every member inside ``dest``."""
    verify_archive(archive, expected_sha256, source)
    try:
        with tarfile.open(archive) as handle:
            _safe_members(handle, dest / ".unpack")
    except (tarfile.TarError, EOFError) as exc:
        raise _unreadable(archive, exc) from exc


def stage_tarball_layout(archive: Path, dest: Path) -> list[str]:
    """Unpack a release tarball (flat or one top-level dir) so that ``dest`` holds bin/, lib/, ...

    Returns the sorted relative paths written.
    """
    unpack = dest / ".unpack"
    unpack.mkdir(parents=True)
    try:
        with tarfile.open(archive) as handle:
            # Python >= 3.11.4 adds its own extraction filter on top of the member check above.
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            handle.extractall(unpack, members=_safe_members(handle, unpack), **extra)
    except (tarfile.TarError, EOFError) as exc:
        raise _unreadable(archive, exc) from exc
    stage_tree_layout(find_install_root(unpack), dest, move=True)
    shutil.rmtree(unpack)
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def stage_tree_layout(install_root: Path, dest: Path, move: bool = False) -> list[str]:
    """Copy (or move) every entry of an install tree (``bin/``, ``lib/``, ...) into ``dest``.

    Used for unpacked tarballs and for build.py's ``<build-dir>/opt/tritonserver``.
    Returns the sorted relative paths written.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(install_root.iterdir()):
        if move:
            entry.rename(dest / entry.name)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dest / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, dest / entry.name, follow_symlinks=False)
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def link_stable_library(release_dir: Path) -> str | None:
    """Give the release's libtritonserver the stable name ``lib/libtritonserver.so``; return it, or None.

    The wheel ships ``libtritonserver-<hash>.so`` (its SONAME, which a program linked against the
    stable name still records); tarballs and build.py installs ship the stable name already. The
    link is relative, so it stays right when the release directory is renamed into place.
    """
    stable = release_dir / LIBRARY
    if stable.is_file():
        return LIBRARY
    shipped = (
        sorted(p for p in stable.parent.glob("libtritonserver*.so*") if p.is_file()) if stable.parent.is_dir() else []
    )
    if not shipped:
        return None
    if stable.is_symlink():
        stable.unlink()
    stable.symlink_to(shipped[0].name)
    return LIBRARY
