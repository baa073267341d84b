"""Shared pytest setup: import the project's module_utils as Ansible would."""

from __future__ import annotations

import sys
from pathlib import Path

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parent.parent
# Modules import `ansible.module_utils.triton_*`; under pytest the same import must
# resolve to this repository's module_utils/ without installing a collection.
ansible.module_utils.__path__.append(str(REPO_ROOT / "module_utils"))
for extra in (REPO_ROOT / "library", REPO_ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
