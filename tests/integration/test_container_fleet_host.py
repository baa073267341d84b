# SPDX-License-Identifier: Apache-2.0
"""The container method on a simulated fleet host (tests/fleet): podman inside its namespaces, over real SSH.

A fleet host has only loopback, its own mounts (overlays over /etc /opt /usr /var /srv, tmpfs on
/run /tmp /dev/shm) and this machine's kernel and limits. As started it cannot run a container:
``ip netns exec`` gives it a /sys of its own, without the cgroup filesystem, and preflight refuses
it for that, before any change. The test then arranges the host as its administrator would:

- the cgroup hierarchies mounted at /sys/fs/cgroup as on this machine (the same hierarchies,
  seen from the host's mount namespace);
- podman's storage on the host's own /run (its /etc/containers/storage.conf): the host's /var is
  an overlay, which podman's overlay driver cannot use as an upper layer;
- the image as a pre-staged archive (no registry is reachable; the install role loads it after
  checking its sha256), the way an air-gapped edge device gets it.

Then ``playbooks/site.yml`` installs, serves and verifies the container on that host like any
fleet host (the rollout tests' offline variables), and ``remove.yml`` leaves no container.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fleet.fixtures import adhoc, fleet_factory  # noqa: F401  (fixture import)
from support.container_images import tritonserver_image
from test_fleet_rollout_common import (
    RECAP_RE,
    fleet_group_vars,
    host_command,
    playbook_argv,
    playbook_env,
    write_vars,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "ctr-1"
STORAGE_CONF = """\
# podman's storage on this host's own tmpfs /run: its /var is an overlay, which podman's
# overlay driver cannot use as an upper layer.
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/run/containers/graph"
"""


def cgroup_mounts_script(mounts: str) -> str:
    """Shell commands that mount this machine's cgroup hierarchies (from its /proc/self/mounts) the same way."""
    lines = []
    for line in mounts.splitlines():
        _dev, point, kind, options, *_ = line.split()
        if kind == "tmpfs" and point == "/sys/fs/cgroup":
            lines.append("mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup")
        elif kind == "cgroup2" and point.startswith("/sys/fs/cgroup"):
            lines += [f"mkdir -p {point}", f"mount -t cgroup2 cgroup2 {point}"]
        elif kind == "cgroup" and point.startswith("/sys/fs/cgroup/"):
            flags = {"rw", "ro", "relatime", "nosuid", "nodev", "noexec"}
            subsystems = [o for o in options.split(",") if o not in flags]
            if all(o.startswith("name=") for o in subsystems):
                subsystems.insert(0, "none")
            lines += [f"mkdir -p {point}", f"mount -t cgroup -o {','.join(subsystems)} cgroup {point}"]
    return " && ".join(lines)


def _play(inventory: Path, playbook: str) -> tuple[int, str]:
    done = subprocess.run(playbook_argv(inventory, playbook), cwd=REPO_ROOT, env=playbook_env(),
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_fleet_host_serves_the_container_from_a_pre_staged_archive(fleet_factory, tmp_path):  # noqa: F811
    image = tritonserver_image()
    fleet = fleet_factory({"hosts": [{"name": HOST, "profile": "cpu"}]})
    report_dir = tmp_path / "reports"
    container = {
        "triton_install_method": "container",
        "triton_install_container_source": {
            "type": "archive",
            "path": str(image.archive),
            "sha256": image.archive_sha256,
        },
        "triton_install_container_name": "tfsim-tritonserver",
    }
    write_vars(fleet.inventory_path, {**fleet_group_vars(report_dir), **container})
    copied = adhoc(fleet.inventory_path, HOST, "ansible.builtin.copy",
                   f"dest=/etc/containers/storage.conf mode=0644 content={json.dumps(STORAGE_CONF)}")  # fmt: skip
    assert not copied[HOST].get("failed"), copied

    # As started, the host has no cgroup filesystem: refused before any change, with the fix.
    rc, out = _play(fleet.inventory_path, "site.yml")
    assert rc != 0
    assert "podman cannot start the server's container here: no cgroup filesystem is mounted at /sys/fs/cgroup" in out
    assert "Fix: mount the cgroup hierarchy" in out
    assert host_command(fleet.inventory_path, HOST, "test -e /opt/tfsim")[HOST]["rc"] != 0

    mounted = host_command(fleet.inventory_path, HOST, cgroup_mounts_script(Path("/proc/self/mounts").read_text()))
    assert mounted[HOST]["rc"] == 0, mounted
    rc, out = _play(fleet.inventory_path, "site.yml")

    assert rc == 0, out[-6000:]
    assert "container method engine podman" in out
    report = json.loads((report_dir / HOST / "verify.json").read_text())
    assert report["verdict"] == "passed", report["findings"]
    assert {m["name"]: m["kinds"] for m in report["models"]} == {"add_sub": ["KIND_CPU"], "scale": ["KIND_CPU"]}
    # JSON: a Go template's braces would be Ansible's to render.
    (running,) = json.loads(host_command(fleet.inventory_path, HOST, "podman ps --format json")[HOST]["stdout"])
    assert (running["Names"], running["ImageID"]) == (["tfsim-tritonserver"], image.image_id), running

    rc, again = _play(fleet.inventory_path, "site.yml")
    recap = {m["host"]: int(m["changed"]) for m in RECAP_RE.finditer(again)}
    assert rc == 0 and recap[HOST] == 0, again[-3000:]

    rc, out = _play(fleet.inventory_path, "remove.yml")
    assert rc == 0, out[-4000:]
    left = host_command(fleet.inventory_path, HOST, "podman ps --all --quiet")
    assert left[HOST]["stdout"].strip() == ""
