#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Build tritonfleet's execution environment (execution-environment.yml) with ansible-builder and podman.

    .venv/bin/python tools/build_ee.py [--tag localhost/tritonfleet-ee:latest] [--base-image IMAGE]
                                       [--archive-dir DIR]

1. Base image: ``--base-image`` (a Debian or Ubuntu image with python3, pip and venv), or
   tritonfleet's Debian base (tools/podman_images.py, the one the test images stand on) with a
   layer of pip, venv and the dpkg packages of bindep.txt from Debian's registry, kept while
   its inputs are the same.
2. Wheels: ``pip download`` on this machine of requirements-controller.txt, the ansible-core and
   ansible-runner pins of the EE file, its container init and ansible-builder's own build tools
   into build/ee/wheels; the image build then runs with ``--network=none``.
3. ``ansible-builder build``; an image whose label holds the digest of these inputs is reused.
   With ``--archive-dir`` its ``podman save`` archive is kept there and loaded back when podman's
   storage lacks the image (the test suite keeps it under tests/.work/cache/images/).

podman, ansible-builder and ansible-runner run with ``podman_images.podman_env()``: the runtime,
cgroup manager and ulimits the host facts decide, and the host's network as the default for
containers (never a container network). Prints the image tag.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import podman_images
import yaml

REPO = Path(__file__).resolve().parents[1]
EE_FILE = REPO / "execution-environment.yml"
CONTROLLER_REQUIREMENTS = REPO / "requirements-controller.txt"
BINDEP = REPO / "bindep.txt"
BUILD = REPO / "build" / "ee"
# What the EE base adds to tritonfleet's Debian base: pip and venv for ansible-builder's stages.
EE_BASE_PACKAGES = ("python3-pip", "python3-venv")
# What ansible-builder's builder stage installs with pip before it assembles the wheels.
BUILDER_TOOLS = ("bindep==2.14.0", "PyYAML==6.0.4", "packaging==26.4")


def dpkg_packages(bindep: Path = BINDEP) -> list[str]:
    """Package names of bindep.txt lines that apply to dpkg platforms."""
    names = []
    for line in bindep.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"^(\S+)\s*(?:\[(.*)\])?", line)
        if match and (not match[2] or "platform:dpkg" in match[2].split()):
            names.append(match[1])
    return names


def ee_base_containerfile(base: str) -> str:
    """The EE base layer on ``base``: pip, venv and bindep.txt's dpkg packages, so the offline build finds them."""
    packages = " ".join(sorted({*EE_BASE_PACKAGES, *dpkg_packages()}))
    return (
        f"FROM {base}\n"
        "RUN apt-get update -qq \\\n"
        f" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {packages} \\\n"
        " && rm -rf /var/lib/apt/lists/*\n"
    )


def ee_base_inputs() -> str:
    """The inputs digest of the EE base layer: tritonfleet's base and the layer's recipe."""
    return podman_images.digest(podman_images.base_inputs(), ee_base_containerfile("{base}"))


def ee_base_image(tag: str) -> str:
    """The EE base layer as ``tag``, built (once per inputs) on tritonfleet's Debian base."""
    inputs = ee_base_inputs()

    def build() -> None:
        BUILD.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ee-base-", dir=BUILD) as work:
            containerfile = ee_base_containerfile(podman_images.base_image())
            podman_images.build_image(tag, containerfile, Path(work), inputs)

    podman_images.cached_image(tag, inputs, build)
    return tag


def ee_inputs(base_identity: str) -> str:
    """Digest of everything the EE image is built from: its files, the build tools, the base image."""
    files = (path.read_text() for path in (EE_FILE, CONTROLLER_REQUIREMENTS, BINDEP))
    return podman_images.digest(*files, *BUILDER_TOOLS, base_identity)


def wheelhouse(dest: Path = BUILD / "wheels") -> Path:
    """Download every wheel the image build installs (cached: pip skips files already there)."""
    ee = yaml.safe_load(EE_FILE.read_text())
    pins = [
        ee["dependencies"]["ansible_core"]["package_pip"],
        ee["dependencies"]["ansible_runner"]["package_pip"],
        ee["options"]["container_init"]["package_pip"],
        *BUILDER_TOOLS,
    ]
    dest.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(dest)]
    subprocess.run([*argv, "-r", str(CONTROLLER_REQUIREMENTS), *pins], check=True)
    return dest


def build(tag: str, base: str, inputs: str) -> None:
    """``ansible-builder build`` of the EE as ``tag`` on ``base``, offline, labelled with ``inputs``."""
    wheelhouse()
    context = BUILD / "context"
    shutil.rmtree(context, ignore_errors=True)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-builder"),
            "build",
            "--file",
            str(EE_FILE),
            "--context",
            str(context),
            "--container-runtime",
            "podman",
            "--tag",
            tag,
            "--build-arg",
            f"EE_BASE_IMAGE={base}",
            "--extra-build-cli-args",
            f"--network=none --label {podman_images.INPUTS_LABEL}={inputs}",
            "--verbosity",
            "1",
        ],
        env=podman_images.podman_env(),
        cwd=REPO,
        check=True,
        text=True,
    )


def ensure_image(tag: str, base_image_ref: str | None = None, archive_dir: Path | None = None) -> str:
    """The EE image ``tag`` of the current inputs: reused, loaded from an archive in ``archive_dir``, or built."""
    if base_image_ref:
        found = podman_images.image_inspect(base_image_ref)
        if found is None:
            raise podman_images.ImageBuildError(
                f"--base-image {base_image_ref} is not in podman's storage (podman image inspect found nothing). "
                "Supported: a local Debian or Ubuntu image with python3, pip and venv. "
                "Fix: podman pull or podman load it first, or leave --base-image out to build tritonfleet's."
            )
        base, identity = base_image_ref, found["Id"]
    else:
        base = yaml.safe_load(EE_FILE.read_text())["images"]["base_image"]["name"]
        identity = ee_base_inputs()
    inputs = ee_inputs(identity)
    archive = archive_dir / f"tritonfleet-ee-{inputs}.tar" if archive_dir else None

    def build_ee() -> None:
        if not base_image_ref:
            ee_base_image(base)
        build(tag, base, inputs)

    podman_images.cached_image(tag, inputs, build_ee, archive)
    return tag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="localhost/tritonfleet-ee:latest", help="tag of the EE image")
    parser.add_argument("--base-image", help="use this base image instead of building one from Debian's packages")
    parser.add_argument("--archive-dir", type=Path, help="keep (and reuse) a podman save archive of the image here")
    args = parser.parse_args()
    print(ensure_image(args.tag, args.base_image, args.archive_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
