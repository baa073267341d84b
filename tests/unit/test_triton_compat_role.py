# SPDX-License-Identifier: Apache-2.0
"""Role triton_platform: defaults, argument specs and the triton_compat module agree."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import triton_compat as module
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "triton_platform"


def load(rel: str):
    return yaml.safe_load((ROLE / rel).read_text(encoding="utf-8"))


def test_defaults_and_argument_specs_have_the_same_keys():
    defaults = load("defaults/main.yml")
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    assert all(name.startswith("triton_platform_") for name in defaults)


def test_role_choices_match_the_module():
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert options["triton_platform_install_method"]["choices"] == module.ARGUMENT_SPEC["method"]["choices"]
    assert options["triton_platform_enable_gpu"]["choices"] == module.ARGUMENT_SPEC["enable_gpu"]["choices"]
    assert options["triton_platform_gpus"]["elements"] == module.ARGUMENT_SPEC["gpus"]["elements"]
    assert options["triton_platform_gpu_build"]["choices"] == module.ARGUMENT_SPEC["gpu_build"]["choices"]
    assert (
        options["triton_platform_container_gpu_mode"]["choices"]
        == module.ARGUMENT_SPEC["container_gpu_mode"]["choices"]
    )
    for pool in ("pinned", "cuda"):
        name = f"jetson_{pool}_memory_pool_bytes"
        assert options[f"triton_platform_{name}"]["default"] == module.ARGUMENT_SPEC[name]["default"]


def test_defaults_derive_from_the_fleet_knobs():
    """docs/architecture.md: each prefixed default reads its short fleet knob first."""
    defaults = load("defaults/main.yml")
    knobs = {
        "triton_platform_release": "triton_release",
        "triton_platform_install_method": "triton_install_method",
        "triton_platform_enable_gpu": "triton_enable_gpu",
        "triton_platform_gpus": "triton_gpus",
        "triton_platform_arch": "triton_host_arch",
        "triton_platform_gpu_build": "triton_gpu_build",
        "triton_platform_container_gpu_mode": "triton_container_gpu_mode",
    }
    for name, knob in knobs.items():
        assert f"{{{{ {knob} | default(" in defaults[name], name
    assert defaults["triton_platform_device_check"] is True


def test_device_check_spot_calls_the_module_with_the_plan():
    tasks = load("tasks/device_check.yml")
    check = next(t for t in tasks if "triton_device_check" in t)
    assert check["triton_device_check"]["plan"] == "{{ ansible_facts['triton_plan'] }}"
    # The server's environment is the plan's runtime env (tests/unit/test_triton_runtime_consumers.py renders it).
    assert check["environment"] == "{{ ansible_facts['triton_plan']['runtime']['env'] }}"
    include = next(t for t in load("tasks/main.yml") if "ansible.builtin.include_tasks" in t)
    assert include["ansible.builtin.include_tasks"] == "device_check.yml"
    assert include["when"] == ["triton_platform_device_check | bool", "__triton_platform_needs_device_check"]


NO_GPU_HOST = {"gpu_device_nodes_present": False, "driver_version": None, "gpus": [], "igpu": None,
               "nvml": {"usable": False}}  # fmt: skip


@pytest.mark.parametrize(
    ("plan_gpu", "host_changes", "expected"),
    [
        (False, {}, False),
        (True, {}, True),
        (False, {"driver_version": "550.54.15"}, True),
        (False, {"gpu_device_nodes_present": True}, True),
        (False, {"gpus": [{"index": 0}]}, True),
        (False, {"igpu": {"name": "Orin"}}, True),
        (False, {"nvml": {"usable": True}}, True),
    ],
    ids=["cpu-host-cpu-plan", "gpu-plan", "driver", "device-nodes", "gpus", "jetson-igpu", "nvml"],
)
def test_device_check_runs_wherever_there_is_something_to_see(plan_gpu, host_changes, expected):
    expression = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__triton_platform_needs_device_check"]
    facts = {"triton_plan": {"enable_gpu": plan_gpu}, "triton_host": {**NO_GPU_HOST, **host_changes}}
    rendered = jinja2.Environment().from_string(expression).render(ansible_facts=facts)
    assert rendered.strip() == str(expected)
