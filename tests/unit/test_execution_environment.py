# SPDX-License-Identifier: Apache-2.0
"""execution-environment.yml: valid for ansible-builder v3, and built from the same pins as the
controller venv (requirements-controller.txt, which requirements.txt includes)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from ansible_builder.ee_schema import validate_schema

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import build_ee  # noqa: E402  (tools/ is not a package)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.split("[")[0].lower()] = version
    return pins


def test_execution_environment_is_a_valid_v3_definition() -> None:
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    validate_schema(ee)
    assert ee["version"] == 3
    assert (REPO / ee["dependencies"]["python"]).resolve() == REPO / "requirements-controller.txt"
    assert (REPO / ee["dependencies"]["system"]).resolve() == REPO / "bindep.txt"


def test_ansible_core_and_runner_pins_are_the_controllers() -> None:
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())["dependencies"]
    controller, dev = _pins(REPO / "requirements-controller.txt"), _pins(REPO / "requirements.txt")
    assert ee["ansible_core"]["package_pip"] == f"ansible-core=={controller['ansible-core']}"
    assert ee["ansible_runner"]["package_pip"] == f"ansible-runner=={dev['ansible-runner']}"
    assert "-r requirements-controller.txt" in (REPO / "requirements.txt").read_text().splitlines()
    # One list: requirements.txt adds tools, never a second pin of a controller package.
    assert not set(controller) & set(dev)


def test_pull_devices_install_the_controllers_pins() -> None:
    defaults = yaml.safe_load((REPO / "roles" / "triton_pull" / "defaults" / "main.yml").read_text())
    controller = _pins(REPO / "requirements-controller.txt")
    for requirement in defaults["triton_pull_packages"]:
        name, version = requirement.split("==")
        assert controller[name.split("[")[0].lower()] == version, requirement


def test_base_image_gets_the_dpkg_packages_of_bindep() -> None:
    assert build_ee.dpkg_packages() == ["openssh-client"]
