#!/usr/bin/env python3
"""Benchmark the two images built on this machine, as a fresh CI machine meets them.

Both stand on one Debian base (tools/podman_images.py). Prints:
- cold: every image and archive removed (the base too; the wheel, the Triton release and the
  EE's wheelhouse stay cached): the tritonserver test image (base from ``mmdebstrap``, import,
  server layer, saved archive), then the execution environment (EE base layer on the cached base,
  ``ansible-builder build``, saved archive) — the base is built once for both;
- cached: both again, held in podman's storage;
- restored: podman's storage lost every image, base included; both load from their archives,
  and the base is not rebuilt.

Usage: bench_images.py   (removes and rebuilds the images; run under the machine lock)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS.parent / "tools")]
import build_ee  # noqa: E402
import conftest  # noqa: E402, F401  (ansible.module_utils from this repository)
import podman_images  # noqa: E402
import yaml  # noqa: E402
from support import container_images  # noqa: E402
from support.awx_runner import IMAGE, IMAGE_ARCHIVE_DIR  # noqa: E402

BASE = f"{podman_images.BASE_REPOSITORY}:{podman_images.BASE_SUITE}-{podman_images.base_inputs()}"
EE_BASE = yaml.safe_load(build_ee.EE_FILE.read_text())["images"]["base_image"]["name"]


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def both() -> dict[str, float]:
    return {
        "tritonserver": timed(container_images.tritonserver_image),
        "ee": timed(lambda: build_ee.ensure_image(IMAGE, None, IMAGE_ARCHIVE_DIR)),
    }


def forget_images() -> None:
    references = [container_images.TRITONSERVER_REFERENCE, IMAGE, EE_BASE, BASE]
    subprocess.run([*podman_images.podman(), "rmi", "--force", *references], capture_output=True, check=False)
    subprocess.run([*podman_images.podman(), "image", "prune", "--force"], capture_output=True, check=False)


def main() -> None:
    forget_images()
    for pattern in ("tritonserver-*", "tritonfleet-ee-*"):
        for archive in container_images.IMAGE_CACHE.glob(pattern):
            archive.unlink()
    cold = both()
    cached = both()
    forget_images()
    restored = both()
    if podman_images.image_inspect(BASE) is not None:
        raise SystemExit(f"restoring from the archives built the base image {BASE} again")
    for name, label in (("tritonserver", "tritonserver test image"), ("ee", "execution environment")):
        print(f"{label:24} cold {cold[name]:6.1f} s; cached {cached[name]:5.2f} s; restored {restored[name]:5.1f} s")
    print(f"both cold (one base build): {cold['tritonserver'] + cold['ee']:6.1f} s")


if __name__ == "__main__":
    main()
