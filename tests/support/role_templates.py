"""Render a role's templates with the role's own defaults and vars through a real ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- name: Render role templates
  hosts: localhost
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Render {{{{ item }}}}
      ansible.builtin.template:
        src: {role}/templates/{{{{ item }}}}.j2
        dest: "{{{{ out }}}}/{{{{ item }}}}"
        mode: "0644"
      loop: {templates}
"""


def render_role_templates(role: str, templates: list[str], out: Path, variables: dict[str, Any]) -> None:
    """Write ``out/<template>`` for each of ``roles/<role>/templates/<template>.j2``; fails the test on error."""
    playbook = out / "render.yml"
    playbook.write_text(PLAY.format(role=REPO_ROOT / "roles" / role, templates=json.dumps(templates)))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "inventory/local.yml", str(playbook),
         "-e", json.dumps({"out": str(out), **variables})],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
