"""pytest helpers for tests that need simulated hosts.

In a test module (``tests/`` is on sys.path through tests/conftest.py)::

    from fleet.fixtures import adhoc, fleet_factory  # noqa: F401  (fixture import)

    def test_x(fleet_factory):
        fleet = fleet_factory({"hosts": [{"name": "cpu-1", "profile": "cpu"}]})
        result = adhoc(fleet.inventory_path, "all", "ansible.builtin.ping")
        assert result["cpu-1"]["ping"] == "pong"

Every fleet a test starts is brought down at the end of the test, pass or fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.harness import REPO_ROOT, Fleet
from fleet.profiles import parse_spec

ANSIBLE = REPO_ROOT / ".venv" / "bin" / "ansible"


def adhoc(inventory: Path, pattern: str, module: str, args: str | None = None) -> dict[str, dict[str, Any]]:
    """Run ``ansible PATTERN -m MODULE [-a ARGS]`` over real SSH; return ``{host: result}``.

    Results come from the tree callback (one JSON file per host), so failed hosts are
    returned too (with ``failed``/``unreachable``); the caller asserts on them.
    """
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}
    with tempfile.TemporaryDirectory(prefix="tf-adhoc-") as tree:
        cmd = [str(ANSIBLE), "-i", str(inventory), pattern, "-m", module, "--tree", tree]
        if args is not None:
            cmd += ["-a", args]
        subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
        return {path.name: json.loads(path.read_text()) for path in Path(tree).iterdir()}


@pytest.fixture
def fleet_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[dict[str, Any]], Fleet]]:
    """Start fleets from spec mappings; each is brought down when the test ends."""
    fleets: list[Fleet] = []

    def start(spec: dict[str, Any]) -> Fleet:
        fleet = Fleet(tmp_path_factory.mktemp("fleet"))
        fleets.append(fleet)
        fleet.up(parse_spec(spec), owner_pid=os.getpid())
        return fleet

    yield start
    for fleet in fleets:
        fleet.down()
