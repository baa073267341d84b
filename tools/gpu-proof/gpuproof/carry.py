# SPDX-License-Identifier: Apache-2.0
"""``prepare``: the carry folder a bare GPU machine needs, under the device tool's size limit.

Layout of the carry folder (default ``<repo>/.gpu-proof``, ignored by git)::

    manifest.json                     what is here, from which commit, with sha256s and the tree digest
    wheels/controller/*.whl           ansible-core and what the controller side imports (installed with
                                      pip --target, first on PYTHONPATH)
    wheels/runtime/*.whl              what the roles' own pip calls install (numpy<2 for the python
                                      backend runtime venv, supervisor, pip for a venv made without it)
    triton-2.51.0-gpu-proof.tar.xz    tritonserver/ (bin, lib, backends, caches, TRITON_VERSION) and
                                      stubs/3.X/triton_python_backend_stub; ``run`` puts the stub of the
                                      machine's Python into the release and hands it to the tarball method

The release tree is laid out by the install role's own code (``triton_server_layout.stage_wheel_layout``:
RPATHs into ``lib/``, set by ``triton_elf``) from the ``nvidia-pytriton==0.7.0`` wheel that
tests/support/triton_dist.py caches, and ``lib/`` keeps only the libraries the kept binaries
need (DT_NEEDED closure): the wheel's bundled ``libpython3.13`` (31 MB, only for the 3.13 stub)
is the one it drops.

Downloads are cached under ``tests/.work/gpu-proof/`` (wheels by exact file, the archive by the
wheel's fingerprint and the layout code), so a second run needs no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpuproof import REPO

DEFAULT_DEST = REPO / ".gpu-proof"
DEFAULT_CACHE = REPO / "tests" / ".work" / "gpu-proof"
LIMIT_BYTES = 60 * 1024 * 1024  # the carry folder
TRAVEL_LIMIT_BYTES = 64 * 1024 * 1024  # working tree + carry, what the device tool sends
TARGET_PYTHON = "3.12"  # the GPU machine's python3 (KINDS.md of the device tool)
ARCHIVE_NAME = "triton-2.51.0-gpu-proof.tar.xz"
SERVER_VERSION = "2.51.0"
# Stubs in the archive: 3.12 for the GPU machine, 3.11 for this project's machines (the dry run).
# 3.13 would need the wheel's bundled libpython3.13 (31 MB).
STUB_VERSIONS = ("3.11", "3.12")
# Bump when the archive's content rules change, so a cached archive is rebuilt.
ARCHIVE_FORMAT = 2
# The project code that lays the archive out: a change to it rebuilds a cached archive too.
LAYOUT_SOURCES = ("module_utils/triton_server_layout.py", "module_utils/triton_elf.py")
# Controller-side packages pinned in requirements.txt (their pins are read from there and the
# files it includes): pyelftools is what the app check of the embedding step reads ELF with.
# Not nvidia-ml-py, requests or grpcio: the GPU machine's image has them (KINDS.md).
REQUIREMENTS_PINNED = ("ansible-core", "Jinja2", "protobuf", "tritonclient", "pyelftools")
# ansible-core's and Jinja2's own needs, at the versions requirements.txt resolves to. Not
# cryptography: only ansible-vault needs it, and the GPU machine's image lacks it.
CONTROLLER_EXTRA = ("MarkupSafe==3.0.4", "PyYAML==6.0.4", "packaging==26.4", "resolvelib==1.2.1")
# numpy for the python backend runtime venv: the newest release inside the install role's
# triton_install_runtime_venv_packages ("numpy<2") with a cp312 wheel; checked against it below.
NUMPY = "numpy==1.26.4"
PIP = "pip==25.3"
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux1_x86_64")


class PrepareError(RuntimeError):
    """A four-part message: what is wrong, what was found where, what is supported, what to do."""


def _log(message: str) -> None:
    print(f"[prepare] {message}", flush=True)


def requirement_lines(requirements: Path) -> list[str]:
    """The lines of a requirements file with its ``-r`` / ``--requirement`` includes read in place."""
    lines = []
    for line in requirements.read_text().splitlines():
        include = re.fullmatch(r"\s*(?:-r|--requirement)[\s=]+(\S+)\s*", line)
        lines += requirement_lines(requirements.parent / include.group(1)) if include else [line]
    return lines


def requirement_pins(requirements: Path, names: Iterable[str]) -> list[str]:
    """The ``name==version`` lines of ``requirements`` (includes read) for ``names`` (extras dropped: --no-deps)."""
    wanted = {n.lower() for n in names}
    pins = []
    for line in requirement_lines(requirements):
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?==(\S+)\s*", line)
        if match and match.group(1).lower() in wanted:
            pins.append(f"{match.group(1)}=={match.group(3)}")
    missing = wanted - {p.split("==")[0].lower() for p in pins}
    if missing:
        raise PrepareError(
            f"requirements.txt has no pin for {', '.join(sorted(missing))} (read {requirements} and the files it "
            "includes with -r). The kit carries the controller packages at the project's pins. Pin them there."
        )
    return pins


def role_default(role: str, key: str) -> Any:
    """A role default as written in ``roles/<role>/defaults/main.yml`` (the one place it is decided)."""
    import yaml

    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())[key]


def runtime_pins() -> list[str]:
    """numpy within the install role's runtime venv spec, the service role's supervisor pin, and pip."""
    from packaging.requirements import Requirement

    specs = [Requirement(s) for s in role_default("triton_install", "triton_install_runtime_venv_packages")]
    numpy_spec = next((r for r in specs if r.name == "numpy"), None)
    version = NUMPY.split("==")[1]
    if numpy_spec is None or not numpy_spec.specifier.contains(version):
        raise PrepareError(
            f"The kit carries {NUMPY} but the install role's triton_install_runtime_venv_packages is "
            f"{[str(s) for s in specs]} (roles/triton_install/defaults/main.yml). The kit carries what that "
            "list installs. Update NUMPY in tools/gpu-proof/gpuproof/carry.py to a version it allows."
        )
    supervisor = role_default("triton_service", "triton_service_supervisor_package")
    return [NUMPY, supervisor, PIP]


def wheel_fits(filename: str, python: str) -> bool:
    """True when a wheel file installs on CPython ``python`` (e.g. "3.12") on x86_64 Linux."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return False
    py_tags, abi, platforms = parts[-3].split("."), parts[-2], parts[-1].split(".")
    cp = "cp" + python.replace(".", "")
    if abi == cp:
        python_ok = cp in py_tags
    elif abi == "abi3":
        python_ok = any(t.startswith("cp3") and int(t[3:]) <= int(cp[3:]) for t in py_tags)
    else:
        python_ok = abi == "none" and any(t == cp or t.startswith("py3") for t in py_tags)
    return python_ok and any(t == "any" or ("linux" in t and t.endswith("x86_64")) for t in platforms)


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def cached_wheel(directory: Path, pin: str, python: str) -> Path | None:
    """A wheel for ``pin`` (``name==version``) already in ``directory`` that installs on ``python``."""
    name, version = pin.split("==")
    prefix = f"{_dist_key(name)}-{version}-"
    if not directory.is_dir():
        return None
    found = sorted(
        p for p in directory.glob("*.whl") if p.name.lower().startswith(prefix) and wheel_fits(p.name, python)
    )
    return found[0] if found else None


def download(pins: list[str], directory: Path, python: str) -> list[Path]:
    """Each pin's wheel for CPython ``python`` on manylinux x86_64: from the cache, else from the index."""
    missing = [p for p in pins if cached_wheel(directory, p, python) is None]
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        argv += ["--only-binary=:all:", "--python-version", python, "--implementation", "cp", "-d", str(directory)]
        for platform in PLATFORMS:
            argv += ["--platform", platform]
        _log(f"downloading {', '.join(missing)}")
        proc = subprocess.run([*argv, *missing], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PrepareError(
                f"pip could not download {', '.join(missing)} for CPython {python} on manylinux x86_64 "
                f"(pip said: {proc.stderr.strip()[-800:]}). The kit needs binary wheels the GPU machine can "
                "install offline. Check the network to the package index, or the pins in carry.py."
            )
    wheels = []
    for pin in pins:
        wheel = cached_wheel(directory, pin, python)
        if wheel is None:
            raise PrepareError(
                f"No wheel for {pin} on CPython {python} in {directory} after pip download. "
                "Supported: wheels for manylinux x86_64. Pick a version with such a wheel in carry.py."
            )
        wheels.append(wheel)
    return wheels


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def needed_closure(roots: Iterable[Path], lib_dir: Path, needed: Any) -> set[str]:
    """Names of ``lib_dir`` files reachable from ``roots`` through DT_NEEDED (``needed(path) -> [soname]``)."""
    keep: set[str] = set()
    todo = list(roots)
    while todo:
        for name in needed(todo.pop()):
            if name not in keep and (lib_dir / name).is_file():
                keep.add(name)
                todo.append(lib_dir / name)
    return keep


def build_tree(site: Path, stage: Path) -> dict[str, Any]:
    """Lay the wheel's server out under ``stage`` (tritonserver/ + stubs/) and trim ``lib/``.

    The layout and the ELF edits are the install role's own (``triton_server_layout``, ``triton_elf``).
    """
    from ansible.module_utils.triton_elf import elf_needed, set_elf_rpath
    from ansible.module_utils.triton_server_layout import PYTHON_STUB, WHEEL_SERVER_DIR, stage_wheel_layout

    tree = stage / "tritonserver"
    stage_wheel_layout(site, tree, STUB_VERSIONS[-1])
    # The stub travels beside the tree; run puts the one of the machine's Python into it.
    (tree / "backends" / "python" / PYTHON_STUB).unlink()
    stubs = []
    for version in STUB_VERSIONS:
        stub = stage / "stubs" / version / PYTHON_STUB
        stub.parent.mkdir(parents=True)
        shutil.copy2(site / WHEEL_SERVER_DIR / "python_backend_stubs" / version / PYTHON_STUB, stub)
        # Its place in the release is backends/python/, two levels below the release root.
        set_elf_rpath(stub, "$ORIGIN/../../lib")
        stubs.append(stub)
    (tree / "TRITON_VERSION").write_text(SERVER_VERSION + "\n")
    lib = tree / "lib"
    roots = [p for p in tree.rglob("*") if p.is_file() and lib not in p.parents and elf_needed(p)]
    keep = needed_closure([*roots, *stubs], lib, elf_needed)
    dropped = sorted(p.name for p in lib.iterdir() if p.name not in keep)
    for name in dropped:
        (lib / name).unlink()
    return {
        "stubs": list(STUB_VERSIONS),
        "dropped_libs": dropped,
        "files": sum(1 for p in stage.rglob("*") if p.is_file()),
    }


def build_archive(cache: Path, wheel_site: Path, fingerprint: str) -> tuple[Path, dict[str, Any]]:
    """The xz archive of the trimmed tree, cached by the wheel's fingerprint, the format and the layout code."""
    layout = " ".join(sha256_of(REPO / source) for source in LAYOUT_SOURCES)
    key = hashlib.sha256(f"{fingerprint} {ARCHIVE_FORMAT} {STUB_VERSIONS} {layout}".encode()).hexdigest()[:16]
    archive = cache / f"triton-{key}.tar.xz"
    info_file = archive.with_suffix(".json")
    if archive.is_file() and info_file.is_file():
        return archive, json.loads(info_file.read_text())
    stage = cache / "triton-stage"
    shutil.rmtree(stage, ignore_errors=True)
    info = build_tree(wheel_site, stage)
    _log(f"compressing the release tree ({info['files']} files) with xz; this takes a minute or two")
    partial = archive.with_suffix(".partial")
    tar_path = cache / "triton-stage.tar"
    with tarfile.open(tar_path, "w") as tar:
        for top in ("tritonserver", "stubs"):
            tar.add(stage / top, arcname=top)
    with partial.open("wb") as handle:
        subprocess.run(["xz", "-T0", "-6", "-c", str(tar_path)], stdout=handle, check=True)
    tar_path.unlink()
    shutil.rmtree(stage)
    partial.replace(archive)
    info_file.write_text(json.dumps(info, indent=2) + "\n")
    return archive, info


def travelling_files(repo: Path) -> list[str]:
    """The files the device tool sends besides carried paths: tracked, and untracked but not ignored."""
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in out.split("\0") if name and (repo / name).is_file()})


def tree_digest(repo: Path, files: Iterable[str]) -> str:
    """One sha256 over the files' paths and contents (``run`` recomputes it over the same list)."""
    digest = hashlib.sha256()
    for name in files:
        path = repo / name
        content = sha256_of(path) if path.is_file() else "missing"
        digest.update(f"{name} {content}\n".encode())
    return digest.hexdigest()


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def prepare(dest: Path, cache: Path, python: str) -> dict[str, Any]:
    """Fill ``dest`` (emptied first) and return its manifest; raise PrepareError past the limits."""
    sys.path.insert(0, str(REPO / "tests"))
    import ansible.module_utils

    ansible.module_utils.__path__.append(str(REPO / "module_utils"))
    from ansible.module_utils.triton_server_layout import wheel_fingerprint
    from support.triton_dist import pytriton_wheel, unpacked_wheel

    controller = download(
        [
            *requirement_pins(REPO / "requirements.txt", REQUIREMENTS_PINNED),
            *CONTROLLER_EXTRA,
        ],
        cache / f"wheels-cp{python.replace('.', '')}",
        python,
    )
    runtime = download(runtime_pins(), cache / f"wheels-cp{python.replace('.', '')}", python)
    wheel = pytriton_wheel()
    site = unpacked_wheel()
    archive, archive_info = build_archive(cache, site, wheel_fingerprint(site))

    shutil.rmtree(dest, ignore_errors=True)
    for group, wheels in (("controller", controller), ("runtime", runtime)):
        (dest / "wheels" / group).mkdir(parents=True)
        for path in wheels:
            shutil.copy2(path, dest / "wheels" / group / path.name)
    shutil.copy2(archive, dest / ARCHIVE_NAME)
    files = travelling_files(REPO)
    manifest = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": _git("rev-parse", "HEAD") or None,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=normal")),
        "python_version": python,
        "wheels": [
            {"group": group, "file": p.name, "bytes": p.stat().st_size, "sha256": sha256_of(p)}
            for group, ws in (("controller", controller), ("runtime", runtime))
            for p in ws
        ],
        "triton": {
            "file": ARCHIVE_NAME,
            "bytes": archive.stat().st_size,
            "sha256": sha256_of(archive),
            "server_version": SERVER_VERSION,
            "from_wheel": wheel.name,
            "from_wheel_sha256": sha256_of(wheel),
            **archive_info,
        },
        "tree": {"files": files, "digest": tree_digest(REPO, files)},
    }
    # The manifest is a few kB: its own size is counted as written without these two totals.
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    manifest["total_bytes"] = folder_bytes(dest)
    manifest["travel_bytes"] = sum((REPO / name).stat().st_size for name in files) + manifest["total_bytes"]
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_limits(manifest: dict[str, Any], dest: Path) -> None:
    """Raise PrepareError when the carry folder or everything that travels is over the device tool's limit."""
    manifest["total_bytes"] = folder_bytes(dest)
    if manifest["total_bytes"] > LIMIT_BYTES:
        raise PrepareError(
            f"The carry folder is {manifest['total_bytes']} bytes ({dest}), over the kit's limit of {LIMIT_BYTES} "
            f"bytes (60 MiB): the device tool sends at most 64 MiB with the working tree. Largest parts: "
            + ", ".join(f"{w['file']} {w['bytes']}" for w in sorted(manifest["wheels"], key=lambda w: -w["bytes"])[:3])
            + f", {manifest['triton']['file']} {manifest['triton']['bytes']}. Carry less (a trimmed archive, fewer "
            "wheels) in tools/gpu-proof/gpuproof/carry.py."
        )
    if manifest["travel_bytes"] > TRAVEL_LIMIT_BYTES:
        raise PrepareError(
            f"The working tree and the carry folder are {manifest['travel_bytes']} bytes together, over the device "
            f"tool's {TRAVEL_LIMIT_BYTES} bytes (64 MiB). The carry folder is {manifest['total_bytes']} bytes. "
            "Untracked files that git does not ignore travel too: remove or ignore large ones."
        )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="tools/gpu-proof/prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="carry folder (emptied first)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download and archive cache")
    parser.add_argument("--python-version", default=TARGET_PYTHON, help="CPython of the machine that runs the kit")
    args = parser.parse_args(argv)
    dest = args.dest.resolve()
    try:
        manifest = prepare(dest, args.cache.resolve(), args.python_version)
        for wheel in manifest["wheels"]:
            _log(f"{wheel['group']:10} {wheel['bytes']:>10}  {wheel['file']}")
        _log(f"{'triton':10} {manifest['triton']['bytes']:>10}  {manifest['triton']['file']}")
        _log(f"carry folder {dest}: {manifest['total_bytes']} bytes ({manifest['total_bytes'] / 2**20:.1f} MiB)")
        _log(f"with the working tree: {manifest['travel_bytes']} bytes ({manifest['travel_bytes'] / 2**20:.1f} MiB)")
        check_limits(manifest, dest)
    except PrepareError as err:
        print(f"prepare: {err}", file=sys.stderr)
        return 1
    carried = os.path.relpath(dest, REPO)
    _log(
        f'ready; device tool call: run(command="PYTHONUNBUFFERED=1 python3 tools/gpu-proof/run --carry {carried} '
        f'--out $OUT", carry=["{carried}"], timeout_s=480)'
    )
    return 0
