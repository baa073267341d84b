"""triton_host_facts through Ansible itself: ad-hoc `ansible localhost -m` and a tiny playbook.

Fixture roots without an nvml.json are compared with their expected.json as a whole (a real
module run cannot take a fake NVML; it reports "not queried: root is not /" as expected.json does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
FIXTURES = REPO / "tests" / "fixtures" / "hosts"
# Fixtures whose expected.json does not depend on an injected NVML.
PLAYBOOK_FIXTURES = sorted(
    path for path in FIXTURES.iterdir() if (path / "root").is_dir() and not (path / "nvml.json").exists()
)

PLAYBOOK = """\
- name: Gather triton_host facts of fixture roots
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Gather the facts of each root
      triton_host_facts:
        root: "{{ item.root }}"
        arch: "{{ item.arch | default(omit) }}"
      loop: "{{ fixture_hosts }}"
      register: fixture_runs
    - name: Save the gathered facts
      ansible.builtin.copy:
        content: "{{ fixture_runs.results | map(attribute='ansible_facts') | list | to_json }}"
        dest: "{{ out_file }}"
        mode: "0600"
"""


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def adhoc(*args: str) -> tuple[int, dict]:
    """Run `ansible localhost -m triton_host_facts ARGS`; return (rc, result JSON)."""
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", str(REPO / "inventory/local.yml"), "-m", "triton_host_facts", *args],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    _head, sep, body = proc.stdout.partition(" => ")
    assert sep, f"no result in ansible output: {proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(body)


def expected_for(host_dir: Path) -> dict:
    return json.loads((host_dir / "expected.json").read_text())


def test_playbook_over_fixture_roots_matches_expected(tmp_path):
    hosts = []
    for host_dir in PLAYBOOK_FIXTURES:
        entry = {"root": str(host_dir / "root")}
        if (host_dir / "host.json").exists():
            entry.update(json.loads((host_dir / "host.json").read_text()))
        hosts.append(entry)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({"fixture_hosts": hosts, "out_file": str(tmp_path / "out.json")}))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventory/local.yml"), str(tmp_path / "play.yml"),
         "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "out.json").read_text())
    assert len(results) == len(PLAYBOOK_FIXTURES) >= 5
    for host_dir, facts in zip(PLAYBOOK_FIXTURES, results, strict=True):
        triton_host = facts["triton_host"]
        assert triton_host.pop("root") == str(host_dir / "root")
        assert triton_host == expected_for(host_dir), host_dir.name


def test_adhoc_fixture_root_with_arch():
    host_dir = FIXTURES / "jetson-nano-jp461"
    rc, result = adhoc("-a", f"root={host_dir / 'root'} arch=aarch64")
    assert rc == 0
    assert result["changed"] is False
    facts = result["ansible_facts"]["triton_host"]
    facts.pop("root")
    assert facts == expected_for(host_dir)


def test_adhoc_on_this_machine_is_cpu_with_nvml_reason():
    rc, result = adhoc("--check")
    assert rc == 0
    facts = result["ansible_facts"]["triton_host"]
    assert facts["root"] == "/"
    assert facts["platform"] == "cpu"
    assert facts["arch"] == os.uname().machine
    assert facts["kernel_release"] == os.uname().release
    # No driver here: NVML is skipped with the reason rather than failing.
    assert facts["nvml"] == {
        "usable": False,
        "reason": "not queried: no GPU control node (/dev/nvhost-ctrl-gpu, /dev/nvgpu/igpu0/ctrl, /dev/nvidiactl) "
        "and no /proc/driver/nvidia (no NVIDIA driver loaded)",
        "driver_version": None,
    }
    assert facts["gpus"] == []
    assert facts["reasons"][0].startswith("platform=cpu: no /etc/nv_tegra_release")


def test_adhoc_missing_root_fails_with_a_four_part_message(tmp_path):
    missing = tmp_path / "not-mounted"
    rc, result = adhoc("-a", f"root={missing}")
    assert rc != 0
    assert result["msg"].startswith(f"root {missing} is not a directory")
    assert "Set root to / or to the mount point" in result["msg"]


def test_capture_host_script_reproduces_this_machines_facts(tmp_path):
    from ansible.module_utils.triton_host import gather_host_facts

    out = tmp_path / "this-machine"
    proc = subprocess.run(
        [str(REPO / "tools/capture_host.sh"), "this-machine", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "host.json").read_text()) == {"arch": os.uname().machine}
    live = gather_host_facts(Path("/"), None, None, "live")
    captured = gather_host_facts(out / "root", None, None, "captured")
    # Only what depends on the running kernel or NVML may differ between a host and its capture,
    # the listening sockets (the running kernel's, read only for root /), and whether a docker
    # daemon answers on its socket (a socket cannot be captured).
    for facts in (live, captured):
        for key in ("root", "kernel_release", "nvml", "listening", "reasons"):
            facts.pop(key)
        for engine in facts["container_engines"]:
            if engine["name"] == "docker":
                engine.pop("can_run")
                engine.pop("problems")
    assert captured == live
