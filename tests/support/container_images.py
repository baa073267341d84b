# SPDX-License-Identifier: Apache-2.0
"""The tritonserver test image, built on this machine without any registry.

No registry but Debian's and PyPI is reachable from the test machines (docs/containers.md), so the image
the container method serves in the tests is built: a layer on tritonfleet's Debian base image,
built and cached by ``tools/podman_images.py`` (the same base the execution environment stands
on, so a fresh machine builds it once), with podman run with the settings ``triton_host_facts``
decides for this host.

``podman() -> list[str]``
    ``podman`` and its global flags for this host (``podman_images.podman``).
``tritonserver_image() -> TritonImage``
    The tritonserver 2.51.0 (24.10) image in NGC's layout, from the base image and the
    release the tests already use (``support.triton_dist``): ``/opt/tritonserver/{bin,lib,backends,
    caches}`` and ``TRITON_VERSION``, user ``triton-server`` (1000:1000), NGC's ``TRITON_SERVER_*``
    environment and ``com.nvidia.tritonserver.version`` label, python3 with numpy<2 and libpython
    for the python backend stub. Tag ``localhost/tritonfleet/tritonserver:24.10-py3``. Its
    ``podman save`` archive (docker-archive) is kept under ``tests/.work/cache/images/``: a
    machine whose podman storage lost the image loads it back instead of building again.

Command line (prints the reference and how long it took)::

    .venv/bin/python tests/support/container_images.py tritonserver
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository's module_utils and tests/ importable as under pytest.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import conftest  # noqa: F401  (sets up ansible.module_utils)

from ansible.module_utils.triton_release_lifecycle import file_sha256

from support.triton_dist import SERVER_VERSION, cache_lock, triton_release

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import podman_images  # noqa: E402  (tools/ is not a package)
from podman_images import podman  # noqa: E402, F401  (re-exported for the tests)

CACHE_DIR = REPO_ROOT / "tests" / ".work" / "cache"
IMAGE_CACHE = CACHE_DIR / "images"
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


@dataclass(frozen=True)
class TritonImage:
    """A tritonserver image: its reference, id, and ``podman save`` archive with that archive's sha256."""

    reference: str
    image_id: str
    archive: Path
    archive_sha256: str
    server_version: str = SERVER_VERSION
    release: str = TRITON_RELEASE


def tritonserver_image() -> TritonImage:
    """The tritonserver 2.51.0 image in NGC's layout (see the module docstring), built or loaded once."""
    release = triton_release(CACHE_DIR / "image-release")
    manifest = json.loads((release / "manifest.json").read_text())
    inputs = podman_images.digest(podman_images.base_inputs(), manifest["files_sha256"], TRITONSERVER_CONTAINERFILE)
    archive = IMAGE_CACHE / f"tritonserver-{TRITON_RELEASE}-py3-{inputs}.tar"

    def build() -> None:
        with tempfile.TemporaryDirectory(prefix="tritonserver-context-", dir=IMAGE_CACHE) as work:
            context = Path(work)
            tree = context / "tritonserver"
            for name in ("bin", "lib", "backends", "caches"):
                shutil.copytree(release / name, tree / name, symlinks=True)
            # NGC's install tree carries TRITON_VERSION (server build.py copies it into the install dir).
            (tree / "TRITON_VERSION").write_text(SERVER_VERSION + "\n")
            containerfile = TRITONSERVER_CONTAINERFILE.format(base=podman_images.base_image())
            podman_images.build_image(TRITONSERVER_REFERENCE, containerfile, context, inputs)

    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    image_id = podman_images.cached_image(TRITONSERVER_REFERENCE, inputs, build, archive)
    with cache_lock("tritonserver-image-sha256"):
        checksum = archive.with_suffix(".sha256")
        if not checksum.is_file():
            checksum.write_text(file_sha256(archive) + "\n")
    return TritonImage(
        reference=TRITONSERVER_REFERENCE,
        image_id=image_id,
        archive=archive,
        archive_sha256=checksum.read_text().strip(),
    )


def main(argv: list[str]) -> int:
    """Command line: ``tritonserver``; prints the image and the time taken."""
    if argv != ["tritonserver"]:
        print(__doc__.split("Command line")[1], file=sys.stderr)
        return 2
    start = time.monotonic()
    image = tritonserver_image()
    print(f"{image.reference} {image.image_id} {image.archive} sha256={image.archive_sha256}")
    print(f"{time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
