# SPDX-License-Identifier: Apache-2.0
"""Install logic for the ``triton_install`` role: one release layout, four ways to get it.

Every method ends in the same tree (docs/architecture.md, "Install layout")::

    <prefix>/releases/<server_version>/{bin,lib,backends,caches}/ + manifest.json
    <prefix>/current -> releases/<server_version>

The functions here are pure or take explicit paths; nothing imports AnsibleModule, nothing
exits. Errors are ``InstallError`` with a four-part message (what is wrong, what was found
where, what is supported, what to do). The thin modules in ``library/triton_install_*.py``
turn them into ``fail_json``.

Library search: the wheel's binaries carry an RPATH into the wheel's own
``nvidia_pytriton.libs/`` directory. The layout rewrites that RPATH in place to
``$ORIGIN/<relative path to lib/>`` (``set_elf_rpath``), so ``bin/tritonserver`` and the python
backend stub find ``<release>/lib`` without ``LD_LIBRARY_PATH`` (the service sets it as well).
Without it the stub fails to start and the server hangs in "loading" (lab-notes.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import stat
import struct
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
STAGING_PREFIX = ".staging-"
RETIRED_PREFIX = ".retired-"

# pytriton wheel version -> (Triton server version, NGC release) it bundles (lab-notes.md).
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
# Bumped when every method's tree gains something (v2: lib/libtritonserver.so): a release laid
# out by an older tritonfleet is then laid out again once.
LAYOUT_VERSION = 2

# Backends a build without TRITON_ENABLE_GPU can have (docs/customization_guide/build.md).
CPU_ONLY_BACKENDS = ("identity", "repeat", "ensemble", "square", "pytorch", "onnxruntime", "openvino", "python", "fil")
GPU_BACKENDS = ("tensorrt",)


class InstallError(ValueError):
    """A user-facing install failure; ``str()`` is the four-part message."""


class ChecksumError(InstallError):
    """The release archive's sha256 is not the expected one."""


# --------------------------------------------------------------------------------------------
# ELF: read DT_NEEDED, rewrite DT_RPATH/DT_RUNPATH in place (ELF64 little-endian only).
# --------------------------------------------------------------------------------------------

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 1, 5, 15, 29


def _elf_dynamic(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """Parse an ELF64-LE image: return ([(tag, value, entry_offset)], file offset of .dynstr).

    Raises ValueError for anything that is not a dynamically linked ELF64 little-endian file.
    """
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []
    dyn_off = dyn_size = None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dyn_off, dyn_size = p_offset, p_filesz
    if dyn_off is None or dyn_size is None:
        raise ValueError("no PT_DYNAMIC segment (static binary?)")
    entries: list[tuple[int, int, int]] = []
    for off in range(dyn_off, dyn_off + dyn_size, 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        entries.append((tag, val, off))
    strtab_vaddr = next((val for tag, val, _ in entries if tag == _DT_STRTAB), None)
    if strtab_vaddr is None:
        raise ValueError("no DT_STRTAB entry")
    for vaddr, offset, filesz in loads:
        if vaddr <= strtab_vaddr < vaddr + filesz:
            return entries, strtab_vaddr - vaddr + offset
    raise ValueError("DT_STRTAB is outside every PT_LOAD segment")


def _cstring(data: bytes, offset: int) -> str:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode("utf-8", "replace")


def elf_needed(path: Path) -> list[str]:
    """Return the DT_NEEDED libraries of ``path``; [] when it is not a dynamic ELF64-LE file."""
    try:
        data = path.read_bytes()
        entries, strtab = _elf_dynamic(data)
    except (OSError, ValueError, struct.error, IndexError):
        return []
    return [_cstring(data, strtab + val) for tag, val, _ in entries if tag == _DT_NEEDED]


def elf_rpath(path: Path) -> str | None:
    """Return the DT_RUNPATH (preferred) or DT_RPATH of ``path``, or None when it has neither."""
    data = path.read_bytes()
    entries, strtab = _elf_dynamic(data)
    by_tag = {tag: val for tag, val, _ in entries}
    for tag in (_DT_RUNPATH, _DT_RPATH):
        if tag in by_tag:
            return _cstring(data, strtab + by_tag[tag])
    return None


def set_elf_rpath(path: Path, rpath: str) -> bool:
    """Overwrite the RPATH/RUNPATH string of ``path`` with ``rpath``, in place.

    The new string must fit in the old one's bytes (it is NUL-padded), and the old string must
    not be shared with another dynamic entry. Returns True when the file changed.
    Raises ValueError when the file has no RPATH or the new one does not fit.
    """
    data = bytearray(path.read_bytes())
    entries, strtab = _elf_dynamic(bytes(data))
    targets = [val for tag, val, _ in entries if tag in (_DT_RPATH, _DT_RUNPATH)]
    if not targets:
        raise ValueError(f"{path} has no RPATH/RUNPATH to rewrite")
    changed = False
    for val in targets:
        start = strtab + val
        old = _cstring(bytes(data), start)
        if old == rpath:
            continue
        old_len = len(old.encode())
        new = rpath.encode()
        if len(new) > old_len:
            raise ValueError(f"{path}: new RPATH {rpath!r} is longer than the old {old!r}")
        shared = [v for tag, v, _ in entries if tag == _DT_NEEDED and val < v <= val + old_len]
        if shared:
            raise ValueError(f"{path}: RPATH string is shared with another dynamic entry")
        data[start : start + old_len] = new + b"\x00" * (old_len - len(new))
        changed = True
    if changed:
        path.write_bytes(bytes(data))
    return changed


# --------------------------------------------------------------------------------------------
# Layout: turn a wheel, an unpacked tarball or a build install dir into a release tree.
# --------------------------------------------------------------------------------------------


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


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
        if path.is_file() and not path.is_symlink() and path.parent != dest / "lib" and _is_elf(path):
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


def _safe_members(archive: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """Return the members of ``archive``, refusing anything that would land outside ``dest``."""
    root = dest.resolve()
    members = []
    for member in archive.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise InstallError(f"Archive member {member.name!r} is a device or fifo; a Triton release has none.")
        if target != root and root not in target.parents:
            raise InstallError(f"Archive member {member.name!r} would be written outside {dest}; refusing it.")
        if member.issym() or member.islnk():
            link_base = target.parent if member.issym() else root
            link_target = (link_base / member.linkname).resolve()
            if link_target != root and root not in link_target.parents:
                raise InstallError(f"Archive link {member.name!r} -> {member.linkname!r} points outside {dest}.")
        members.append(member)
    return members


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    actual = sha256_file(archive)
    if actual != expected_sha256.lower():
        raise ChecksumError(
            f"Checksum mismatch for the Triton release archive {archive} (source: {source}): "
            f"sha256 is {actual}, triton_install_tarball_sha256 expects {expected_sha256}. "
            "Only an archive with the expected sha256 is installed. Re-download the archive or correct "
            "triton_install_tarball_sha256; the installed release is unchanged."
        )
    return actual


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
        raise InstallError(
            f"Cannot unpack the Triton release archive {archive}: {exc}. Supported: tar, tar.gz, tar.bz2, tar.xz. "
            "Check the file is a complete download of a Triton release archive."
        ) from exc
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


# --------------------------------------------------------------------------------------------
# Inspect and verify a release tree.
# --------------------------------------------------------------------------------------------


def tree_digest(release_dir: Path) -> str:
    """Return one sha256 over every file of a release (relative path, mode, content), manifest excluded.

    Symlinks count by their target string, so a relinked library changes the digest.
    """
    digest = hashlib.sha256()
    for path in sorted(release_dir.rglob("*")):
        rel = str(path.relative_to(release_dir))
        if rel == MANIFEST_NAME or "__pycache__" in Path(rel).parts:
            continue
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            mode = stat.S_IMODE(path.stat().st_mode) & 0o111
            digest.update(f"F {rel} {mode:o} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def inspect_release(release_dir: Path) -> dict[str, Any]:
    """Describe a release tree: does it run, which backends, is it a GPU build.

    ``gpu_build`` is true when ``lib/`` carries a CUDA runtime (``libcudart*.so*``) or
    ``bin/tritonserver`` links one (Jetson tarballs use the system's CUDA). Returns
    ``{tritonserver, gpu_build, cudart, backends, triton_version_file}``.
    """
    server = release_dir / "bin" / "tritonserver"
    lib = release_dir / "lib"
    cudart_files = sorted(p.name for p in lib.glob("libcudart*.so*")) if lib.is_dir() else []
    cudart_needed = [n for n in elf_needed(server) if n.startswith("libcudart")] if server.is_file() else []
    backends_dir = release_dir / "backends"
    backends = sorted(p.name for p in backends_dir.iterdir() if p.is_dir()) if backends_dir.is_dir() else []
    version_file = release_dir / "TRITON_VERSION"
    return {
        "tritonserver": server.is_file() and os.access(server, os.X_OK),
        "gpu_build": bool(cudart_files or cudart_needed),
        "cudart": cudart_files or cudart_needed,
        "backends": backends,
        "triton_version_file": version_file.read_text().strip() if version_file.is_file() else None,
        "library": LIBRARY if (release_dir / LIBRARY).is_file() else None,
        "include": "include" if (release_dir / HEADER).is_file() else None,
    }


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


_ARTIFACT_VERSION_RE = re.compile(r"tritonserver-?(\d+\.\d+\.\d+)")


def detect_server_version(method: str, info: Mapping[str, Any], source: str, wheel_version: str | None) -> str | None:
    """Return the server version an artifact declares, or None when it declares none.

    Sources, first match wins: the wheel's version (WHEEL_SERVER_VERSIONS), a ``TRITON_VERSION``
    file at the install root (build.py trees and containers carry it), the artifact name
    (``tritonserver2.35.0-jetpack5.1.2.tgz``, ``tritonserver-2.50.0-igpu.tar.gz``).
    """
    if method == "wheel" and wheel_version in WHEEL_SERVER_VERSIONS:
        return WHEEL_SERVER_VERSIONS[wheel_version][0]
    if info.get("triton_version_file"):
        return str(info["triton_version_file"])
    match = _ARTIFACT_VERSION_RE.search(os.path.basename(source))
    return match.group(1) if match else None


def effective_enable_gpu(setting: str | bool, plan: Mapping[str, Any]) -> bool:
    """Resolve ``triton_install_enable_gpu`` (auto|true|false) against ``plan.enable_gpu``."""
    value = str(setting).strip().lower()
    if value == "auto":
        return bool(plan.get("enable_gpu"))
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise InstallError(
        f"triton_install_enable_gpu is {setting!r}. Supported: auto, true, false. "
        "Set it (or triton_enable_gpu) to one of those."
    )


def check_release(
    info: Mapping[str, Any], detected_version: str | None, plan: Mapping[str, Any], enable_gpu: bool, where: str
) -> None:
    """Raise InstallError unless the staged release runs, has the plan's version and a usable GPU build.

    Rules: a GPU build is required when ``enable_gpu``; a GPU build on a CPU install is allowed
    only when every GPU is hidden (``plan.hide_gpus``) or the host has no GPU (platform cpu).
    """
    if not info["tritonserver"]:
        raise InstallError(
            f"The staged release has no executable bin/tritonserver (staged in {where}). "
            "Every install method must produce bin/tritonserver, lib/ and backends/. "
            "Check the artifact; the previous release is unchanged."
        )
    wanted = str(plan.get("server_version"))
    if detected_version is None:
        raise InstallError(
            f"Cannot tell which Triton version the artifact is (staged in {where}): no wheel version, no "
            "TRITON_VERSION file, no version in the artifact name. "
            f"The plan wants tritonserver {wanted}. Use an artifact that names its version "
            "(e.g. tritonserver2.35.0-jetpack5.1.2.tgz) or add TRITON_VERSION at its root."
        )
    if detected_version != wanted:
        raise InstallError(
            f"The artifact is tritonserver {detected_version} (staged in {where}) but the plan wants "
            f"{wanted} (release {plan.get('release')}). Only the plan's version is installed. "
            "Use the artifact for the planned release, or change triton_release and rerun preflight."
        )
    hidden = bool(plan.get("hide_gpus")) or plan.get("platform") == "cpu"
    if enable_gpu and not info["gpu_build"]:
        raise InstallError(
            f"The artifact is a CPU-only build (no libcudart in lib/ or linked by bin/tritonserver, staged in "
            f"{where}) but GPU use is enabled (triton_install_enable_gpu / plan.enable_gpu). "
            "A GPU install needs a build with TRITON_ENABLE_GPU. Install a GPU build or set triton_enable_gpu=false."
        )
    if not enable_gpu and info["gpu_build"] and not hidden:
        raise InstallError(
            f"The artifact is a GPU build ({', '.join(info['cudart'])}, staged in {where}) and this install is "
            f"CPU-only, but the plan does not hide the host's GPUs (platform {plan.get('platform')}, hide_gpus false). "
            "A GPU build on a CPU install is allowed only with every GPU hidden. Set triton_enable_gpu=false "
            "(so preflight plans hide_gpus) or install a CPU-only build."
        )


# --------------------------------------------------------------------------------------------
# Releases: staging, manifest, current link, pruning.
# --------------------------------------------------------------------------------------------

# Manifest keys that say which artifact a release came from; equal keys + equal tree digest = up to date.
IDENTITY_KEYS = ("server_version", "release", "method", "source", "sha256", "python_bin_dir", "layout_version")


def read_manifest(release_dir: Path) -> dict[str, Any] | None:
    """Return the parsed manifest.json of a release dir, or None when absent or unreadable."""
    try:
        data = json.loads((release_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def incomplete_entries(releases_dir: Path) -> list[Path]:
    """Return leftovers of interrupted runs: staging/retired dirs and release dirs without a manifest."""
    if not releases_dir.is_dir():
        return []
    found = []
    for entry in sorted(releases_dir.iterdir()):
        leftover = entry.name.startswith((STAGING_PREFIX, RETIRED_PREFIX))
        if leftover or (entry.is_dir() and not entry.is_symlink() and read_manifest(entry) is None):
            found.append(entry)
    return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def current_target(prefix: Path) -> str | None:
    """Return the ``current`` link's target as stored (``releases/<v>``), or None."""
    link = prefix / "current"
    return os.readlink(link) if link.is_symlink() else None


def switch_current(prefix: Path, version: str) -> bool:
    """Point ``<prefix>/current`` at ``releases/<version>`` atomically; return True when it moved."""
    target = f"releases/{version}"
    if current_target(prefix) == target:
        return False
    tmp = prefix / f".current-{secrets.token_hex(4)}"
    tmp.symlink_to(target)
    os.replace(tmp, prefix / "current")
    return True


def releases_to_prune(releases_dir: Path, keep: int, protect: Iterable[str]) -> list[Path]:
    """Return complete releases beyond the newest ``keep`` (by manifest mtime), never one in ``protect``."""
    complete = [
        p for p in releases_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and read_manifest(p) is not None
    ]
    complete.sort(key=lambda p: (p / MANIFEST_NAME).stat().st_mtime, reverse=True)
    protected = set(protect)
    kept = 0
    prune = []
    for release in complete:
        if release.name in protected or kept < keep:
            kept += 1
            continue
        prune.append(release)
    return prune


def _write_manifest(release_dir: Path, manifest: Mapping[str, Any]) -> None:
    tmp = release_dir / f".{MANIFEST_NAME}.tmp"
    with tmp.open("w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, release_dir / MANIFEST_NAME)


def desired_identity(request: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the identity keys of the release a request would install, None when not yet knowable.

    Not knowable happens in check mode when an earlier step (pip, download, build) was skipped:
    the wheel or install dir does not exist yet.
    """
    plan = request["plan"]
    method = request["method"]
    sha256 = request.get("sha256")
    if method == "wheel":
        src = Path(request["src"])
        if not (src / WHEEL_SERVER_DIR).is_dir():
            return None
        sha256 = wheel_fingerprint(src)
    elif method == "container":
        spec = json.dumps(request["container_spec"], sort_keys=True).encode()
        sha256 = hashlib.sha256(spec).hexdigest()
    return {
        "server_version": str(plan["server_version"]),
        "release": str(plan["release"]),
        "method": method,
        "source": request["source"],
        "sha256": sha256,
        "python_bin_dir": request.get("python_bin_dir"),
        "layout_version": LAYOUT_VERSION,
    }


def is_up_to_date(release_dir: Path, identity: Mapping[str, Any] | None) -> bool:
    """True when ``release_dir`` has a manifest with ``identity`` and its files still match it."""
    manifest = read_manifest(release_dir)
    if manifest is None or identity is None:
        return False
    if any(manifest.get(key) != identity[key] for key in IDENTITY_KEYS):
        return False
    return manifest.get("files_sha256") == tree_digest(release_dir)


def _stage(request: Mapping[str, Any], staging: Path) -> tuple[dict[str, Any], str | None]:
    """Fill ``staging`` for the request's method; return (inspection, detected server version)."""
    method = request["method"]
    if method == "container":
        staging.mkdir(parents=True)
        spec = dict(request["container_spec"], argv=container_run_argv(request["container_spec"]))
        (staging / "container.json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
        # The image's backends/ stay inside the image: the manifest records the plan's (matrix) set.
        return {"gpu_build": True, "backends": request["plan"].get("backends"), "cudart": []}, str(
            request["plan"]["server_version"]
        )
    wheel_version = None
    if method == "wheel":
        src = Path(request["src"])
        wheel_version = wheel_server_version(src)[0]
        stage_wheel_layout(src, staging, request["python_version"])
    elif method == "tarball":
        archive = Path(request["archive"])
        verify_archive(archive, request["sha256"], request["source"])
        stage_tarball_layout(archive, staging)
    else:
        stage_tree_layout(find_install_root(Path(request["src"])), staging)
    link_stable_library(staging)
    info = inspect_release(staging)
    name_hint = request.get("archive") or request["source"]
    version = detect_server_version(method, info, str(name_hint), wheel_version)
    check_release(info, version, request["plan"], request["enable_gpu"], str(staging))
    return info, version


def install_release(request: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    """Make ``<prefix>/releases/<plan.server_version>`` the installed, current release.

    ``request`` keys: prefix, method, plan, source (what the manifest records), src (wheel
    site-packages dir or build install dir), archive + sha256 (tarball), container_spec
    (container), python_bin_dir, python_version, enable_gpu (bool), keep_releases.

    Order: remove leftovers of interrupted runs → stage into ``releases/.staging-<v>-<rand>`` →
    inspect and verify → write manifest.json last → rename into place → switch ``current`` →
    prune. A failure removes the staging dir and leaves the previous release and link as they
    were. In check mode nothing is written and the result says what would change.
    Returns {changed, release_dir, manifest, actions}.
    """
    prefix = Path(request["prefix"])
    releases = prefix / "releases"
    version = str(request["plan"]["server_version"])
    release_dir = releases / version
    actions: list[str] = [f"remove incomplete {p}" for p in incomplete_entries(releases)]
    if not check_mode:
        for leftover in incomplete_entries(releases):
            _remove(leftover)
    identity = desired_identity(request)
    manifest = read_manifest(release_dir)
    if not is_up_to_date(release_dir, identity):
        actions.append(f"install {request['method']} release {version} into {release_dir}")
        if not check_mode:
            manifest = _install_new(request, releases, release_dir, identity)
    elif request["method"] != "container":
        # Unchanged files, but the GPU policy (plan or triton_install_enable_gpu) may have moved.
        check_release(inspect_release(release_dir), version, request["plan"], request["enable_gpu"], str(release_dir))
    if current_target(prefix) != f"releases/{version}":
        actions.append(f"point {prefix / 'current'} at releases/{version}")
        if not check_mode:
            switch_current(prefix, version)
    if releases.is_dir():
        keep = max(int(request.get("keep_releases", 3)), 1)
        for old in releases_to_prune(releases, keep, protect=(version,)):
            actions.append(f"prune old release {old}")
            if not check_mode:
                shutil.rmtree(old)
    return {"changed": bool(actions), "release_dir": str(release_dir), "manifest": manifest, "actions": actions}


def _install_new(
    request: Mapping[str, Any], releases: Path, release_dir: Path, identity: Mapping[str, Any] | None
) -> dict[str, Any]:
    version = release_dir.name
    releases.mkdir(parents=True, exist_ok=True)
    staging = releases / f"{STAGING_PREFIX}{version}-{secrets.token_hex(4)}"
    done = False
    try:
        info, _ = _stage(request, staging)
        manifest = dict(identity or desired_identity(request) or {})
        manifest.update(
            {
                "manifest_version": 1,
                "gpu_build": bool(info["gpu_build"]),
                "backends": info["backends"],
                # Relative to the release; null for a container release (the library is in the image).
                "library": info.get("library"),
                "include": info.get("include"),
                "files_sha256": tree_digest(staging),
            }
        )
        if request["method"] == "container":
            manifest["container_spec"] = "container.json"
        _write_manifest(staging, manifest)
        retired = releases / f"{RETIRED_PREFIX}{version}-{secrets.token_hex(4)}"
        if release_dir.exists():
            release_dir.rename(retired)
        staging.rename(release_dir)
        done = True
        if retired.exists():
            shutil.rmtree(retired)
        return manifest
    finally:
        if not done and staging.exists():
            shutil.rmtree(staging)


# --------------------------------------------------------------------------------------------
# Container method: a run specification the service starts (no engine runs here).
# --------------------------------------------------------------------------------------------

CONTAINER_USER = "triton-server"  # the NGC image's non-root user
ENGINES = ("docker", "podman")


def jetpack_major(host: Mapping[str, Any]) -> int | None:
    """Return the JetPack major version from ``triton_host.jetpack_version`` ("6.2" -> 6), or None."""
    version = host.get("jetpack_version")
    try:
        return int(str(version).split(".", 1)[0]) if version else None
    except ValueError:
        return None


def select_engine(host: Mapping[str, Any], wanted: str) -> dict[str, str]:
    """Return ``{name, path}`` of the container engine to use (``wanted``: auto|docker|podman).

    Reads ``triton_host.container_engines``. Raises InstallError when none fits.
    """
    engines = [e for e in host.get("container_engines") or [] if e.get("name") in ENGINES]
    if wanted != "auto":
        engines = [e for e in engines if e["name"] == wanted]
    if not engines:
        seen = ", ".join(e.get("name", "?") for e in host.get("container_engines") or []) or "none"
        raise InstallError(
            f"No usable container engine for the container install method (wanted {wanted}; "
            f"triton_host.container_engines lists: {seen}). Supported engines: docker, podman. "
            "Install docker or podman (with the NVIDIA container toolkit on GPU hosts), or pick another "
            "triton_install_method."
        )
    engines.sort(key=lambda e: ENGINES.index(e["name"]))
    return {"name": engines[0]["name"], "path": engines[0].get("path") or engines[0]["name"]}


def container_image(plan: Mapping[str, Any], host: Mapping[str, Any]) -> str:
    """Return the NGC image for the plan: ``<yy.mm>-py3``, ``-igpu`` on JetPack 6; none for JetPack < 6."""
    major = jetpack_major(host)
    if plan.get("platform") == "jetson" and major is not None and major < 6:
        raise InstallError(
            f"There is no Triton container for JetPack {host.get('jetpack_version')} (triton_host.jetpack_version): "
            "NGC -igpu images need JetPack 6 and JetPack 7 uses the standard arm64 images. "
            "Use triton_install_method=tarball with the JetPack 5 release tarball."
        )
    if plan.get("container_image"):
        return str(plan["container_image"])
    suffix = "-igpu" if plan.get("platform") == "jetson" and major == 6 else ""
    return f"nvcr.io/nvidia/tritonserver:{plan['release']}-py3{suffix}"


def container_run_spec(plan: Mapping[str, Any], host: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Build the container run specification for a plan.

    ``host`` is ``ansible_facts.triton_host``; ``options``: engine (auto|docker|podman), name,
    models_root (host dir mounted read-only at the same path), model_repository (path inside),
    ports (list of {name, address, port, container_port}), shm_size, gpu_mode (auto|gpus|cdi).

    GPU access: x86 dGPU docker → ``--gpus all`` / ``--gpus "device=0,1"``; podman (or
    gpu_mode cdi) → CDI ``--device nvidia.com/gpu=<id>``; Jetson → ``--runtime nvidia`` (docker
    refuses ``--gpus`` there) or CDI with podman. CPU plans get no GPU flags, and on hosts with
    GPUs ``CUDA_VISIBLE_DEVICES=`` plus ``NVIDIA_VISIBLE_DEVICES=void`` (no injection even when
    nvidia is the default runtime).
    """
    engine = select_engine(host, str(options.get("engine", "auto")))
    platform = plan.get("platform")
    runtime_present = bool((host.get("nvidia_container_runtime") or {}).get("present"))
    enable_gpu = bool(plan.get("enable_gpu"))
    if enable_gpu and not runtime_present:
        raise InstallError(
            f"The plan uses the GPU (platform {platform}) but no NVIDIA container runtime was found "
            "(triton_host.nvidia_container_runtime.present is false). A GPU container needs the NVIDIA "
            "container toolkit (nvidia-container-runtime / CDI). Install it, or set triton_enable_gpu=false."
        )
    gpu_mode = str(options.get("gpu_mode", "auto"))
    if gpu_mode == "auto":
        gpu_mode = "cdi" if engine["name"] == "podman" else ("runtime" if platform == "jetson" else "gpus")
    ids = [str(i) for i in plan.get("gpu_ids") or []]
    gpu: dict[str, Any] = {"mode": "none", "runtime": None, "gpus": None, "devices": []}
    env: dict[str, str] = {}
    if enable_gpu:
        gpu["mode"] = gpu_mode
        if gpu_mode == "runtime":
            gpu["runtime"] = "nvidia"
            env["NVIDIA_VISIBLE_DEVICES"] = "all" if platform == "jetson" or not ids else ",".join(ids)
            env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        elif gpu_mode == "cdi":
            names = ids if ids and platform != "jetson" else ["all"]
            gpu["devices"] = [f"nvidia.com/gpu={n}" for n in names]
        elif platform == "jetson":
            raise InstallError(
                "triton_install_container_gpu_mode is gpus on a Jetson host: docker --gpus is refused there "
                '("invoking the NVIDIA Container Runtime Hook directly ... is not supported"). '
                "Supported on Jetson: runtime (--runtime nvidia) or cdi. Set triton_install_container_gpu_mode=auto."
            )
        else:
            gpu["gpus"] = "all" if not ids else f'"device={",".join(ids)}"'
    elif platform != "cpu" or plan.get("hide_gpus"):
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    models_root = str(options["models_root"])
    command = [
        "tritonserver",
        f"--model-repository={options['model_repository']}",
        "--model-control-mode=explicit",
    ]
    if platform == "jetson":
        command.append("--allow-gpu-metrics=false")
    if enable_gpu and plan.get("min_supported_compute_capability"):
        command.append(f"--min-supported-compute-capability={plan['min_supported_compute_capability']}")
    return {
        "engine": engine["name"],
        "engine_path": engine["path"],
        "name": str(options.get("name", "tritonserver")),
        "image": container_image(plan, host),
        "user": CONTAINER_USER,
        "gpu": gpu,
        "env": env,
        "mounts": [{"source": models_root, "target": models_root, "read_only": True}],
        "ports": [dict(p) for p in options.get("ports") or []],
        "shm_size": str(options.get("shm_size", "256m")),
        "command": command,
    }


def container_run_argv(spec: Mapping[str, Any]) -> list[str]:
    """Turn a run specification into the engine's ``run`` argv (foreground, ``--rm``)."""
    argv = [spec["engine_path"], "run", "--rm", "--name", spec["name"], "--user", spec["user"]]
    gpu = spec["gpu"]
    if gpu.get("runtime"):
        argv += ["--runtime", gpu["runtime"]]
    if gpu.get("gpus"):
        argv += ["--gpus", gpu["gpus"]]
    for device in gpu.get("devices") or []:
        argv += ["--device", device]
    for key, value in sorted(spec["env"].items()):
        argv += ["-e", f"{key}={value}"]
    for mount in spec["mounts"]:
        argv += ["-v", f"{mount['source']}:{mount['target']}{':ro' if mount.get('read_only') else ''}"]
    for port in spec["ports"]:
        argv += ["-p", f"{port['address']}:{port['port']}:{port['container_port']}"]
    argv += ["--shm-size", spec["shm_size"], spec["image"], *spec["command"]]
    return argv


# --------------------------------------------------------------------------------------------
# Source method: build.py command line.
# --------------------------------------------------------------------------------------------


def source_build_argv(plan: Mapping[str, Any], host: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    """Return the ``build.py`` argv for a non-container build of the plan's release.

    ``options``: python, checkout (server repo), build_dir, backends (names), enable_gpu (bool),
    dryrun (bool). GPU builds add ``--enable-gpu`` and (off Jetson, where DCGM is unavailable)
    ``--enable-gpu-metrics``; CPU builds must only ask for backends that build without GPU.
    Jetson up to JetPack 6 targets ``igpu``; JetPack 7 is SBSA and uses the default target.
    """
    enable_gpu = bool(options["enable_gpu"])
    backends = list(options.get("backends") or [])
    allowed = CPU_ONLY_BACKENDS + (GPU_BACKENDS if enable_gpu else ())
    refused = [b for b in backends if b not in allowed]
    if refused:
        raise InstallError(
            f"triton_install_source_backends asks for {', '.join(refused)}, which "
            f"{'is not a known backend' if enable_gpu else 'a CPU-only build cannot have'}. "
            f"Supported {'GPU' if enable_gpu else 'CPU-only'} backends: {', '.join(allowed)}. "
            "Remove them from triton_install_source_backends or enable the GPU."
        )
    tag = f"r{plan['release']}"
    checkout = Path(options["checkout"])
    argv = [
        str(options.get("python", "python3")),
        str(checkout / "build.py"),
        "--no-container-build",
        f"--build-dir={options['build_dir']}",
        "--enable-logging",
        "--enable-stats",
        "--enable-metrics",
        "--enable-cpu-metrics",
        "--endpoint=http",
        "--endpoint=grpc",
    ]
    for component in ("common", "core", "backend", "thirdparty"):
        argv.append(f"--repo-tag={component}:{tag}")
    if enable_gpu:
        argv.append("--enable-gpu")
        if plan.get("platform") != "jetson":
            argv.append("--enable-gpu-metrics")
        capability = plan.get("min_supported_compute_capability") or plan.get("min_compute_capability")
        if capability:
            argv.append(f"--min-compute-capability={capability}")
    major = jetpack_major(host)
    if plan.get("platform") == "jetson" and (major is None or major <= 6):
        argv.append("--target-platform=igpu")
    argv += [f"--backend={name}:{tag}" for name in backends]
    if options.get("dryrun"):
        argv.append("--dryrun")
    return argv


# --------------------------------------------------------------------------------------------
# Entry points for the thin modules.
# --------------------------------------------------------------------------------------------


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


def require_plan(plan: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the plan as a dict; raise InstallError when a key the install needs is missing."""
    plan = dict(plan or {})
    missing = [k for k in ("server_version", "release", "platform") if not plan.get(k)]
    if missing:
        raise InstallError(
            f"The install plan lacks {', '.join(missing)} (triton_install_plan, from ansible_facts.triton_plan). "
            "The plan comes from the triton_platform preflight (docs/architecture.md). "
            "Run the preflight first or pass a complete plan with -e triton_install_plan=..."
        )
    return plan


def build_request(params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the triton_install_release module's parameters into an ``install_release`` request.

    Resolves ``enable_gpu`` (auto|true|false) against the plan and, for the container method,
    builds the run specification from ``host`` and ``container``.
    """
    plan = require_plan(params["plan"])
    request = dict(params)
    request["plan"] = plan
    if params["method"] == "wheel" and params.get("venv"):
        request.update(wheel_request_paths(Path(params["venv"]["path"])))
    elif params["method"] == "wheel" and not all(params.get(k) for k in ("src", "python_bin_dir", "python_version")):
        raise InstallError(
            "The wheel method needs the venv that holds the wheel: venv (path, python, requirement) or all of "
            f"src, python_bin_dir and python_version; got src={params.get('src')!r}. Pass venv as the "
            "triton_install role does (roles/triton_install/tasks/wheel.yml)."
        )
    request["enable_gpu"] = effective_enable_gpu(params.get("enable_gpu", "auto"), plan)
    if params["method"] == "container":
        options = dict(params.get("container") or {})
        request["container_spec"] = container_run_spec(plan, params.get("host") or {}, options)
    return request


def source_build_needed(prefix: Path, plan: Mapping[str, Any], source: str) -> bool:
    """False when ``releases/<server_version>`` is a complete source build of ``source`` (repo@commit)."""
    release_dir = prefix / "releases" / str(plan["server_version"])
    manifest = read_manifest(release_dir)
    if manifest is None or manifest.get("method") != "source" or manifest.get("source") != source:
        return True
    return manifest.get("files_sha256") != tree_digest(release_dir)
