# SPDX-License-Identifier: Apache-2.0
"""Container images built with podman on this machine, from Debian's packages and nothing else.

The one place for what every image tritonfleet builds shares: the execution environment
(tools/build_ee.py) and the test images (tests/support/container_images.py) both stand on the
same Debian base and are cached the same way, so a fresh machine runs ``mmdebstrap`` once.

``podman() -> list[str]`` / ``podman_env() -> dict``
    podman with the settings ``triton_host_facts`` decides for this host (the podman record of
    ``triton_host.container_engines``: OCI runtime, cgroup manager, ulimits), the ones the product
    runs the server's container with: as global flags, or, for tools that start podman
    themselves (ansible-builder, ansible-runner), as a containers.conf (``CONTAINERS_CONF``) that
    also makes the host's network the default (never a container network).
``base_image() -> str``
    Debian 12 ``minbase`` with python3 and CA certificates (``mmdebstrap``, ``podman import``),
    tag ``localhost/tritonfleet-base:bookworm-<inputs>``; images add their packages in a layer.
``build_image(tag, containerfile, context, inputs)``
    ``podman build`` of a Containerfile text (chroot isolation, the host's network for RUN steps).
``cached_image(tag, inputs, build, archive) -> str``
    The image ``tag`` made of ``inputs`` (a digest of what it is built from, never of image ids):
    kept while podman holds it with that label, else loaded from ``archive`` (its ``podman save``),
    else built by ``build()`` and saved there. A machine whose podman storage lost every image
    loads the archive without building the base again.

Command line: ``.venv/bin/python tools/podman_images.py base`` prints the base image's tag.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import ansible.module_utils

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(REPO / "module_utils"))

from ansible.module_utils.triton_host import gather_host_facts  # noqa: E402

BUILD = REPO / "build" / "images"
INPUTS_LABEL = "tritonfleet.inputs"
BASE_SUITE = "bookworm"
# What every image needs; anything else goes into the image's own layer.
BASE_PACKAGES = ("ca-certificates", "python3")
BASE_REPOSITORY = "localhost/tritonfleet-base"


class ImageBuildError(RuntimeError):
    """An image could not be built; the message carries the failing command and its output."""


@cache
def podman_engine() -> dict[str, Any]:
    """The podman record of ``triton_host.container_engines`` for this machine; raises when it cannot run."""
    facts = gather_host_facts("/", None, nvml_reason="not needed")
    engine = next((e for e in facts["container_engines"] if e["name"] == "podman"), None)
    if engine is None or not engine["can_run"]:
        why = "; ".join(engine["problems"]) if engine else "podman is not installed"
        raise ImageBuildError(
            f"podman cannot run containers here: {why}. Install podman, runc and mmdebstrap "
            "(tests/ensure-system-packages does), then rerun."
        )
    return engine


def podman() -> list[str]:
    """``podman`` with the global flags the host facts decide (e.g. ``--runtime runc --cgroup-manager cgroupfs``)."""
    engine = podman_engine()
    return [engine["path"], *engine["global_args"]]


def containers_conf(engine: Mapping[str, Any]) -> str:
    """A containers.conf with ``engine``'s runtime, cgroup manager and ulimits, and the host's network."""
    ulimits = ", ".join(f'"{name}={limit}:{limit}"' for name, limit in engine["ulimits"].items())
    return (
        "# Written by tools/podman_images.py from triton_host.container_engines (podman).\n"
        "[containers]\n"
        'netns = "host"\n'
        f"default_ulimits = [{ulimits}]\n"
        "[engine]\n"
        f'runtime = "{engine["runtime"]}"\n'
        f'cgroup_manager = "{engine["cgroup_manager"]}"\n'
    )


def podman_env() -> dict[str, str]:
    """The environment for tools that run podman themselves: ``CONTAINERS_CONF`` = :func:`containers_conf`."""
    conf = BUILD / "containers.conf"
    text = containers_conf(podman_engine())
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.is_file() or conf.read_text() != text:
        conf.write_text(text)
    return dict(os.environ, CONTAINERS_CONF=str(conf))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created): serialises builders across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; raise :class:`ImageBuildError` with its output when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv)} exited {done.returncode}:\n{(done.stderr or done.stdout)[-4000:]}")
    return done


def digest(*parts: str) -> str:
    """A short digest of an image's inputs (the value of its ``tritonfleet.inputs`` label)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def image_inspect(reference: str) -> dict[str, Any] | None:
    """``podman image inspect`` of ``reference``, or None when no such image is stored."""
    done = subprocess.run([*podman(), "image", "inspect", reference], capture_output=True, text=True, check=False)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


def inputs_of(reference: str) -> str | None:
    """The ``tritonfleet.inputs`` label of a stored image, or None."""
    found = image_inspect(reference)
    return ((found or {}).get("Labels") or {}).get(INPUTS_LABEL)


def archive_tags(archive: Path) -> list[str]:
    """The references a docker-archive (``podman save --format docker-archive``) stores its image under."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        manifest = json.loads(member.read()) if member else []
    return [tag for entry in manifest for tag in entry.get("RepoTags") or []]


def cached_image(tag: str, inputs: str, build: Callable[[], None], archive: Path | None = None) -> str:
    """Image ``tag`` labelled ``inputs``: kept, loaded from ``archive``, or built by ``build()``; its id.

    ``archive`` (``<name>-<inputs>.tar``) is written once built; the files of older archives of
    the image (``<name>-*``, their checksums too) are removed then.
    """
    with file_lock(BUILD / f".lock-image-{inputs}"):
        if inputs_of(tag) != inputs and archive is not None and archive.is_file():
            run([*podman(), "load", "--quiet", "--input", str(archive)])
            stored = archive_tags(archive)
            if stored and stored[0] != tag:
                run([*podman(), "tag", stored[0], tag])
        if inputs_of(tag) != inputs:
            build()
            if inputs_of(tag) != inputs:
                raise ImageBuildError(f"building {tag} left no image labelled {INPUTS_LABEL}={inputs}")
        if archive is not None and not archive.is_file():
            archive.parent.mkdir(parents=True, exist_ok=True)
            for stale in archive.parent.glob(f"{archive.name.removesuffix(f'-{inputs}.tar')}-*"):
                stale.unlink()
            partial = archive.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            run([*podman(), "save", "--quiet", "--format", "docker-archive", "--output", str(partial), tag])
            partial.rename(archive)
        return image_inspect(tag)["Id"]


def base_inputs() -> str:
    """The inputs digest of :func:`base_image` (suite and packages): known without building it."""
    return digest(BASE_SUITE, *sorted(BASE_PACKAGES))


def base_image() -> str:
    """Debian ``minbase`` of ``BASE_SUITE`` with ``BASE_PACKAGES``, imported into podman once; its tag."""
    inputs = base_inputs()
    tag = f"{BASE_REPOSITORY}:{BASE_SUITE}-{inputs}"

    def build() -> None:
        BUILD.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=BUILD) as work:
            rootfs = Path(work) / "rootfs.tar"
            packages = ",".join(sorted(BASE_PACKAGES))
            run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={packages}", BASE_SUITE, str(rootfs)])
            run([*podman(), "import", "--change", f"LABEL {INPUTS_LABEL}={inputs}", str(rootfs), tag])

    cached_image(tag, inputs, build)
    return tag


def build_image(tag: str, containerfile: str, context: Path, inputs: str) -> None:
    """``podman build`` of ``containerfile`` (text) in ``context`` as ``tag``, labelled ``inputs``.

    Chroot isolation and the host's network for RUN steps (apt-get from Debian's registry):
    never a container network.
    """
    (context / "Containerfile").write_text(containerfile)
    run(
        [
            *podman(), "build", "--quiet", "--isolation", "chroot", "--network", "host",
            "--label", f"{INPUTS_LABEL}={inputs}", "--tag", tag, "--file", str(context / "Containerfile"),
            str(context),
        ]
    )  # fmt: skip


def main(argv: list[str]) -> int:
    """Command line: ``base`` prints the base image's tag, building it when needed."""
    if argv != ["base"]:
        print(__doc__.rsplit("Command line: ", 1)[1], file=sys.stderr)
        return 2
    print(base_image())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
