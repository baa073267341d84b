# SPDX-License-Identifier: Apache-2.0
"""Container images for tests and tools, built on this machine without any registry.

No registry but Debian's and PyPI is reachable here (lab-notes.md, "Containers"), so images are
built: a Debian root filesystem from Debian's registry (``mmdebstrap --variant=minbase``),
imported into podman, then layers on top with ``podman build``. Podman runs with the settings
``triton_host_facts`` decides for this host (``triton_host.container_engines``: runtime, cgroup
manager, ulimits), the same ones the product runs the server's container with.

Functions (each cached; safe to call from parallel pytest processes):

``podman() -> list[str]``
    ``podman`` and its global flags for this host (e.g. ``--runtime runc --cgroup-manager cgroupfs``).
``base_image(packages=("python3",), suite="bookworm") -> str``
    A Debian ``minbase`` image with ``packages``; tag ``localhost/tritonfleet-base:<suite>-<digest>``.
    Rebuilt only when the suite or the package list changes (label ``tritonfleet.inputs``).
``build_image(tag, containerfile, context, inputs) -> str``
    ``podman build`` of ``containerfile`` in ``context`` as ``tag`` (chroot isolation, the host's
    network for RUN steps, never a container network), skipped when an image ``tag`` carries the
    same ``inputs`` digest. Returns the image id.
``tritonserver_image() -> TritonImage``
    The tritonserver 2.51.0 (24.10) image in NGC's layout, from :func:`base_image` and the
    release the tests already use (``support.triton_dist``): ``/opt/tritonserver/{bin,lib,backends,
    caches}`` and ``TRITON_VERSION``, user ``triton-server`` (1000:1000), NGC's ``TRITON_SERVER_*``
    environment and ``com.nvidia.tritonserver.version`` label, python3 with numpy<2 and libpython
    for the python backend stub. Tag ``localhost/tritonfleet/tritonserver:24.10-py3``. Its
    ``podman save`` archive (docker-archive) is kept under ``tests/.work/cache/images/``: a
    machine whose podman storage lost the image loads it back instead of building again.

Command line (prints the reference and how long it took)::

    .venv/bin/python tests/support/container_images.py base [PACKAGE ...]
    .venv/bin/python tests/support/container_images.py tritonserver
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository's module_utils and tests/ importable as under pytest.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import conftest  # noqa: F401  (sets up ansible.module_utils)

from ansible.module_utils.triton_host import gather_host_facts
from ansible.module_utils.triton_release_lifecycle import file_sha256

from support.triton_dist import SERVER_VERSION, cache_lock, triton_release

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / "tests" / ".work" / "cache"
IMAGE_CACHE = CACHE_DIR / "images"
INPUTS_LABEL = "tritonfleet.inputs"
BASE_REPOSITORY = "localhost/tritonfleet-base"
TRITONSERVER_REFERENCE = "localhost/tritonfleet/tritonserver:24.10-py3"
TRITON_RELEASE = "24.10"
# NGC's image user (server build.py: "Make sure that this user to given ID 1000").
TRITON_USER, TRITON_UID = "triton-server", 1000
# Recipe of the tritonserver layer: NGC's environment, label, user and layout (server r24.10
# build.py, dockerfile_prepare_container_linux and create_dockerfile_linux), and what the python
# backend needs (python3, numpy<2, libpython3.11 for the stub). A change here rebuilds the image.
TRITONSERVER_CONTAINERFILE = f"""\
FROM {{base}}
ENV TRITON_SERVER_VERSION={SERVER_VERSION}
ENV NVIDIA_TRITON_SERVER_VERSION={TRITON_RELEASE}
LABEL com.nvidia.tritonserver.version="{SERVER_VERSION}"
ENV PATH=/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV TRITON_SERVER_GPU_ENABLED=1
ENV TRITON_SERVER_USER={TRITON_USER}
RUN useradd --uid {TRITON_UID} --user-group --create-home --shell /bin/bash {TRITON_USER} \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-numpy libpython3.11 \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt
COPY --chown={TRITON_UID}:{TRITON_UID} tritonserver tritonserver
WORKDIR /opt/tritonserver
"""


class ImageBuildError(RuntimeError):
    """An image could not be built; the message carries the failing command and its output."""


@dataclass(frozen=True)
class TritonImage:
    """A tritonserver image: its reference, id, and ``podman save`` archive with that archive's sha256."""

    reference: str
    image_id: str
    archive: Path
    archive_sha256: str
    server_version: str = SERVER_VERSION
    release: str = TRITON_RELEASE


@cache
def podman() -> list[str]:
    """``podman`` with the global flags ``triton_host_facts`` decides for this host."""
    facts = gather_host_facts("/", None, nvml_reason="not needed")
    engine = next((e for e in facts["container_engines"] if e["name"] == "podman"), None)
    if engine is None or not engine["can_run"]:
        why = "; ".join(engine["problems"]) if engine else "podman is not installed"
        raise ImageBuildError(f"podman cannot run containers here: {why}. Run tests/ensure-system-packages first.")
    return [engine["path"], *engine["global_args"]]


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv)} exited {done.returncode}:\n{(done.stderr or done.stdout)[-4000:]}")
    return done


def image_inspect(reference: str) -> dict | None:
    """``podman image inspect`` of ``reference``, or None when no such image is stored."""
    done = subprocess.run([*podman(), "image", "inspect", reference], capture_output=True, text=True, check=False)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


def _inputs_of(reference: str) -> str | None:
    found = image_inspect(reference)
    return ((found or {}).get("Labels") or {}).get(INPUTS_LABEL) if found else None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def base_image(packages: tuple[str, ...] = ("python3",), suite: str = "bookworm") -> str:
    """A Debian ``minbase`` image of ``suite`` with ``packages``, imported into podman; returns its tag."""
    packages = tuple(sorted(set(packages)))
    inputs = _digest(suite, *packages)
    tag = f"{BASE_REPOSITORY}:{suite}-{inputs}"
    with cache_lock(f"image-{inputs}"):
        if _inputs_of(tag) == inputs:
            return tag
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=IMAGE_CACHE) as work:
            rootfs = Path(work) / "rootfs.tar"
            _run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(packages)}", suite, str(rootfs)])
            _run([*podman(), "import", "--change", f"LABEL {INPUTS_LABEL}={inputs}", str(rootfs), tag])
        return tag


def build_image(tag: str, containerfile: str, context: Path, inputs: str) -> str:
    """``podman build`` of ``containerfile`` (text) in ``context`` as ``tag``, unless it has ``inputs``; its id."""
    with cache_lock(f"image-{inputs}"):
        if _inputs_of(tag) != inputs:
            (context / "Containerfile").write_text(containerfile)
            _run(
                [
                    *podman(), "build", "--quiet", "--isolation", "chroot", "--network", "host",
                    "--label", f"{INPUTS_LABEL}={inputs}", "--tag", tag, "--file", str(context / "Containerfile"),
                    str(context),
                ]
            )  # fmt: skip
        return image_inspect(tag)["Id"]


def _tritonserver_inputs(base: str) -> str:
    wheel_tree = triton_release(CACHE_DIR / "image-release")
    manifest = json.loads((wheel_tree / "manifest.json").read_text())
    return _digest(image_inspect(base)["Id"], manifest["files_sha256"], TRITONSERVER_CONTAINERFILE)


def tritonserver_image() -> TritonImage:
    """The tritonserver 2.51.0 image in NGC's layout (see the module docstring), built or loaded once."""
    base = base_image()
    inputs = _tritonserver_inputs(base)
    archive = IMAGE_CACHE / f"tritonserver-{TRITON_RELEASE}-py3-{inputs}.tar"
    with cache_lock("tritonserver-image"):
        if _inputs_of(TRITONSERVER_REFERENCE) != inputs and archive.is_file():
            _run([*podman(), "load", "--quiet", "--input", str(archive)])
        if _inputs_of(TRITONSERVER_REFERENCE) != inputs:
            _build_tritonserver(base, inputs)
        if not archive.is_file():
            for stale in IMAGE_CACHE.glob(f"tritonserver-{TRITON_RELEASE}-py3-*"):
                stale.unlink()
            partial = archive.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            _run([*podman(), "save", "--quiet", "--format", "docker-archive", "--output", str(partial),
                  TRITONSERVER_REFERENCE])  # fmt: skip
            partial.rename(archive)
        checksum = archive.with_suffix(".sha256")
        if not checksum.is_file():
            checksum.write_text(file_sha256(archive) + "\n")
        return TritonImage(
            reference=TRITONSERVER_REFERENCE,
            image_id=image_inspect(TRITONSERVER_REFERENCE)["Id"],
            archive=archive,
            archive_sha256=checksum.read_text().strip(),
        )


def _build_tritonserver(base: str, inputs: str) -> None:
    release = triton_release(CACHE_DIR / "image-release")
    with tempfile.TemporaryDirectory(prefix="tritonserver-context-", dir=IMAGE_CACHE) as work:
        context = Path(work)
        tree = context / "tritonserver"
        for name in ("bin", "lib", "backends", "caches"):
            shutil.copytree(release / name, tree / name, symlinks=True)
        # NGC's install tree carries TRITON_VERSION (server build.py copies it into the install dir).
        (tree / "TRITON_VERSION").write_text(SERVER_VERSION + "\n")
        build_image(TRITONSERVER_REFERENCE, TRITONSERVER_CONTAINERFILE.format(base=base), context, inputs)


def main(argv: list[str]) -> int:
    """Command line: ``base [PACKAGE ...]`` or ``tritonserver``; prints the image and the time taken."""
    if not argv or argv[0] not in ("base", "tritonserver"):
        print(__doc__.split("Command line")[1], file=sys.stderr)
        return 2
    start = time.monotonic()
    if argv[0] == "base":
        print(base_image(tuple(argv[1:]) or ("python3",)))
    else:
        image = tritonserver_image()
        print(f"{image.reference} {image.image_id} {image.archive} sha256={image.archive_sha256}")
    print(f"{time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
