#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Build tritonfleet's execution environment (execution-environment.yml) with ansible-builder and podman.

    .venv/bin/python tools/build_ee.py [--tag localhost/tritonfleet-ee:latest] [--base-image IMAGE]
                                       [--archive-dir DIR]

1. Base image: ``--base-image`` (a Debian or Ubuntu image with python3, pip and venv), or one
   built here from Debian's packages (``mmdebstrap --variant=minbase`` with python3, pip, venv and
   the dpkg packages of bindep.txt, then ``podman import``), kept while its package list is the same.
2. Wheels: ``pip download`` on this machine of requirements-controller.txt, the ansible-core and
   ansible-runner pins of the EE file, its container init and ansible-builder's own build tools
   into build/ee/wheels; the image build then runs with ``--network=none``.
3. ``ansible-builder build``; an image whose label holds the hash of these inputs is reused.
   With ``--archive-dir`` its ``podman save`` archive is kept there and loaded back when podman's
   storage lacks the image (the test suite keeps it under tests/.work/cache/images/).

Podman runs with the containers.conf this writes (build/ee/containers.conf, passed as
CONTAINERS_CONF): runc with cgroupfs, ulimits within this machine's hard limits, and the host's
network as the default for containers (never a container network). Prints the image tag.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EE_FILE = REPO / "execution-environment.yml"
CONTROLLER_REQUIREMENTS = REPO / "requirements-controller.txt"
BINDEP = REPO / "bindep.txt"
BUILD = REPO / "build" / "ee"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates")
# What ansible-builder's builder stage installs with pip before it assembles the wheels.
BUILDER_TOOLS = ("bindep==2.14.0", "PyYAML==6.0.4", "packaging==26.4")
INPUTS_LABEL = "tritonfleet.inputs"
# The name an archive stores the image under, whatever tag it is used with.
ARCHIVE_TAG = "localhost/tritonfleet-ee:archive"


def podman_env() -> dict[str, str]:
    """The environment podman (and ansible-builder, ansible-runner) run with: our containers.conf."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 20000 if hard == resource.RLIM_INFINITY else min(hard, 20000)
    conf = BUILD / "containers.conf"
    text = (
        "# Written by tools/build_ee.py: podman on this kind of machine (see README).\n"
        "[containers]\n"
        'netns = "host"\n'
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
    )
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.is_file() or conf.read_text() != text:
        conf.write_text(text)
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def _run(argv: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, check=True, text=True, **kwargs)


def image_label(image: str, label: str, env: dict[str, str]) -> str | None:
    """The value of ``label`` on a local image, or None when the image is not there."""
    found = subprocess.run(
        ["podman", "image", "inspect", "--format", f'{{{{ index .Labels "{label}" }}}}', image],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def dpkg_packages(bindep: Path = BINDEP) -> list[str]:
    """Package names of bindep.txt lines that apply to dpkg platforms."""
    names = []
    for line in bindep.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"^(\S+)\s*(?:\[(.*)\])?", line)
        if match and (not match[2] or "platform:dpkg" in match[2].split()):
            names.append(match[1])
    return names


def base_inputs() -> str:
    """What the built base image is made of (suite and package list), as a short digest."""
    packages = sorted({*BASE_PACKAGES, *dpkg_packages()})
    return hashlib.sha256(f"{BASE_SUITE} {' '.join(packages)}".encode()).hexdigest()[:16]


def base_image(tag: str, env: dict[str, str]) -> str:
    """Build (once per package list) a Debian base image from Debian's packages and import it as ``tag``."""
    digest = base_inputs()
    if image_label(tag, INPUTS_LABEL, env) == digest:
        return tag
    packages = sorted({*BASE_PACKAGES, *dpkg_packages()})
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tritonfleet-ee-base-", dir=BUILD) as work:
        rootfs = Path(work) / "rootfs.tar"
        _run(
            ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(packages)}", BASE_SUITE, str(rootfs)],
            env,
        )
        _run(["podman", "import", "--change", f"LABEL {INPUTS_LABEL}={digest}", str(rootfs), tag], env)
    return tag


def ee_inputs(base_identity: str) -> str:
    """Digest of everything the EE image is built from: its files, the build tools, the base image."""
    digest = hashlib.sha256()
    for path in (EE_FILE, CONTROLLER_REQUIREMENTS, BINDEP):
        digest.update(path.read_bytes())
    digest.update(" ".join(BUILDER_TOOLS).encode())
    digest.update(base_identity.encode())
    return digest.hexdigest()[:16]


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


def build(tag: str, base: str, inputs: str, env: dict[str, str]) -> str:
    """``ansible-builder build`` of the EE as ``tag`` on ``base``, offline, labelled with ``inputs``."""
    wheelhouse()
    context = BUILD / "context"
    shutil.rmtree(context, ignore_errors=True)
    _run(
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
            f"--network=none --label {INPUTS_LABEL}={inputs}",
            "--verbosity",
            "1",
        ],
        env,
        cwd=REPO,
    )
    return tag


def ensure_image(tag: str, base_image_ref: str | None = None, archive_dir: Path | None = None) -> str:
    """The EE image ``tag`` of the current inputs: reused, loaded from an archive in ``archive_dir``, or built."""
    env = podman_env()
    if base_image_ref:
        base = base_image_ref
        identity = _run(["podman", "image", "inspect", "--format", "{{.Id}}", base], env, capture_output=True).stdout
    else:
        base = yaml.safe_load(EE_FILE.read_text())["images"]["base_image"]["name"]
        identity = base_inputs()
    inputs = ee_inputs(identity.strip())
    if image_label(tag, INPUTS_LABEL, env) == inputs:
        return tag
    archive = archive_dir / f"tritonfleet-ee-{inputs}.tar" if archive_dir else None
    if archive and archive.is_file():
        _run(["podman", "load", "--quiet", "--input", str(archive)], env, capture_output=True)
        # The archive holds the image under the tag it was saved with (ARCHIVE_TAG).
        _run(["podman", "tag", ARCHIVE_TAG, tag], env)
        if image_label(tag, INPUTS_LABEL, env) == inputs:
            return tag
    if not base_image_ref:
        base_image(base, env)
    build(tag, base, inputs, env)
    if archive:
        for stale in archive.parent.glob("tritonfleet-ee-*.tar"):
            stale.unlink()
        partial = archive.with_suffix(".partial")
        _run(["podman", "tag", tag, ARCHIVE_TAG], env)
        _run(["podman", "save", "--quiet", "--format", "docker-archive", "--output", str(partial), ARCHIVE_TAG], env)
        partial.rename(archive)
    return tag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="localhost/tritonfleet-ee:latest", help="tag of the EE image")
    parser.add_argument("--base-image", help="use this base image instead of building one from Debian's packages")
    parser.add_argument("--archive-dir", type=Path, help="keep (and reuse) a podman save archive of the image here")
    args = parser.parse_args()
    if args.archive_dir:
        args.archive_dir.mkdir(parents=True, exist_ok=True)
    print(ensure_image(args.tag, args.base_image, args.archive_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
