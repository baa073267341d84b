# SPDX-License-Identifier: Apache-2.0
"""One flow, roles that talk through documented settings and results (issue 11 §3).

- The site's steps exist once: ``playbooks/tasks/preflight_host.yml`` and ``serve_host.yml``;
  preflight, site and the rollout (so pull) include them and list no step themselves.
- Every default exists once: a role reads another role's setting from its owner
  (``lookup('triton_setting', ...)``), never with a copied ``| default(...)``; a role's defaults
  define only its own variables; no path leaves a role through ``role_path``.
- Nothing outside a role reads its private (``__triton_<role>_``) variables; the results the flow
  reads are the documented ones.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLES = REPO_ROOT / "roles"
PLAYBOOKS = REPO_ROOT / "playbooks"
ROLE_NAMES = sorted(path.name for path in ROLES.iterdir() if path.is_dir())


def _lookup_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "triton_setting", REPO_ROOT / "plugins" / "lookup" / "triton_setting.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SETTING = _lookup_module()


def _defaults(role: str) -> dict[str, Any]:
    path = ROLES / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}


DEFAULTS = {role: _defaults(role) for role in ROLE_NAMES}
SETTINGS = {name: role for role, defaults in DEFAULTS.items() for name in defaults}


def _owner(name: str) -> str | None:
    owners = [role for role in ROLE_NAMES if name.startswith(role + "_")]
    return max(owners, key=len) if owners else None


def _fleet_knobs() -> set[str]:
    """The knobs of docs/architecture.md's table: user-facing, read by preflight only."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Variables a user sets", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(triton_[a-z_]+)` \|", section, re.M))


def _project_files() -> list[Path]:
    files = [p for p in ROLES.rglob("*") if p.is_file() and p.suffix in {".yml", ".j2"}]
    files += [p for p in PLAYBOOKS.rglob("*.yml")]
    return sorted(files)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


# --- one owner per default ---


def test_a_role_defines_only_its_own_variables():
    for role, defaults in DEFAULTS.items():
        foreign = [name for name in defaults if _owner(name) != role]
        assert not foreign, f"roles/{role}/defaults/main.yml defines {foreign}: only {role}_* belong there"


def test_no_setting_of_a_role_is_read_with_a_copied_default_elsewhere():
    """``triton_service_http_port | default(8000)`` outside triton_service repeats its default."""
    knobs = _fleet_knobs()
    assert {"triton_release", "triton_install_method", "triton_instance_policy"} <= knobs
    found = []
    for path in _project_files():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"(?<![\w.'\"])(triton_[a-z0-9_]+)\s*\|\s*default\(", text):
            name = match.group(1)
            in_role = path.is_relative_to(ROLES) and path.relative_to(ROLES).parts[0]
            if name in SETTINGS and SETTINGS[name] != in_role and name not in knobs:
                found.append(f"{_rel(path)}: {name} | default(...) (owned by roles/{SETTINGS[name]})")
    assert not found, "read these with lookup('triton_setting', NAME) instead:\n" + "\n".join(found)


def test_every_setting_read_from_another_role_has_its_owner():
    reads = 0
    for path in [*_project_files(), *(REPO_ROOT / "library").glob("*.py")]:
        for name in re.findall(r"lookup\('triton_setting', '([a-z0-9_]+)'\)", path.read_text(encoding="utf-8")):
            owner, _ = SETTING.owner_default(name)
            assert owner == SETTINGS[name], (path, name)
            reads += 1
    assert reads >= 30  # every role's defaults, the verify role and the flow read through it


def test_no_role_path_leaves_its_role():
    for path in _project_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "role_path" in line:
                assert ".." not in line.split("role_path", 1)[1], f"{_rel(path)}: {line.strip()}"


def test_project_paths_come_from_one_variable():
    """The example repository, build caches and reports hang off tritonfleet_project_dir."""
    group_vars = yaml.safe_load((PLAYBOOKS / "group_vars" / "all" / "tritonfleet.yml").read_text(encoding="utf-8"))
    assert group_vars == {"tritonfleet_project_dir": "{{ playbook_dir | dirname }}"}
    assert DEFAULTS["triton_models"]["triton_models_src"].startswith("{{ tritonfleet_project_dir }}/examples/")
    assert DEFAULTS["triton_models"]["triton_models_build_dir"].startswith("{{ tritonfleet_project_dir }}/build/")
    assert DEFAULTS["triton_app"]["triton_app_build_dir"].startswith("{{ tritonfleet_project_dir }}/build/")
    assert DEFAULTS["triton_verify"]["triton_verify_report_dir"].startswith(
        "{{ tritonfleet_project_dir | triton_report_root }}"
    )
    for path in PLAYBOOKS.rglob("*.yml"):
        assert "playbook_dir" not in path.read_text(encoding="utf-8") or path.parent.name == "all", path


# --- the lookup behaves as the owner's default would ---


def _lookup(names: list[str], variables: dict[str, Any]) -> list[Any]:
    templar = Templar(loader=DataLoader(), variables=variables)
    return SETTING.LookupModule(loader=DataLoader(), templar=templar).run(names, variables=variables)


def test_the_lookup_gives_the_owners_default_built_on_the_owners_other_settings():
    assert _lookup(["triton_service_http_port", "triton_service_api_key_file"], {}) == [
        8000,
        "/etc/tritonfleet/api-key",
    ]
    # A user's value of the setting the default builds on carries through, as in the owner.
    assert _lookup(["triton_service_api_key_file"], {"triton_service_config_dir": "/srv/etc"}) == ["/srv/etc/api-key"]


def test_the_lookup_gives_the_plays_value_first():
    assert _lookup(["triton_install_prefix"], {"triton_install_prefix": "/data/triton"}) == ["/data/triton"]
    assert _lookup(["triton_service_http_port"], {"triton_service_http_port": 18000}) == [18000]


def test_the_lookup_refuses_a_name_no_role_owns():
    with pytest.raises(AnsibleLookupError, match=r"'triton_service_no_such' is not a setting of any tritonfleet role"):
        _lookup(["triton_service_no_such"], {})
    with pytest.raises(AnsibleLookupError, match="define the setting in its owner's defaults"):
        _lookup(["tritonfleet_project_dir"], {})


def test_a_consumer_sees_what_the_owner_would():
    """The verify role's inputs equal the owners' defaults, and follow a user's override."""
    owners = {
        "triton_verify_install_prefix": "triton_install_prefix",
        "triton_verify_models_root": "triton_models_root",
        "triton_verify_http_port": "triton_service_http_port",
        "triton_verify_api_key_header": "triton_service_api_key_header",
        "triton_verify_api_key_file": "triton_service_api_key_file",
        "triton_verify_service_user": "triton_service_user",
    }
    for consumer, owner in owners.items():
        assert DEFAULTS["triton_verify"][consumer] == f"{{{{ lookup('triton_setting', '{owner}') }}}}", consumer
    assert _lookup(list(owners.values()), {}) == [
        DEFAULTS["triton_install"]["triton_install_prefix"],
        DEFAULTS["triton_models"]["triton_models_root"],
        DEFAULTS["triton_service"]["triton_service_http_port"],
        DEFAULTS["triton_service"]["triton_service_api_key_header"],
        "/etc/tritonfleet/api-key",
        DEFAULTS["triton_service"]["triton_service_user"],
    ]


# --- one flow ---


def _tasks(path: Path) -> list[dict[str, Any]]:
    """Every task of a task file or playbook, blocks and rescues flattened."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    out: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            out.append(item)
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
                walk(item.get(key) or [])

    walk(data)
    return out


def _steps(path: Path) -> list[tuple[str, str]]:
    """(role, entry point or phase) of every role a file runs."""
    steps = []
    for task in _tasks(path):
        for play_role in task.get("roles") or []:
            steps.append((play_role["role"], (play_role.get("vars") or {}).get("triton_models_phase", "main")))
        include = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role")
        if include:
            entry = include.get("tasks_from") or (task.get("vars") or {}).get("triton_models_phase", "main")
            steps.append((include["name"], entry))
    return steps


def _includes(path: Path) -> list[str]:
    return [
        task.get("ansible.builtin.include_tasks") or task.get("ansible.builtin.import_playbook")
        for task in _tasks(path)
        if task.get("ansible.builtin.include_tasks") or task.get("ansible.builtin.import_playbook")
    ]


PREFLIGHT_STEPS = [
    ("triton_platform", "main"),
    ("triton_service", "preflight"),
    ("triton_models", "check"),
    ("triton_app", "preflight"),
]
SERVE_STEPS = [
    ("triton_install", "main"),
    ("triton_models", "deploy"),
    ("triton_service", "main"),
    ("triton_models", "switch"),
    ("triton_app", "main"),
]


def test_the_flow_exists_once():
    assert _steps(PLAYBOOKS / "tasks" / "preflight_host.yml") == PREFLIGHT_STEPS
    assert _steps(PLAYBOOKS / "tasks" / "serve_host.yml") == SERVE_STEPS
    flow_steps = set(PREFLIGHT_STEPS + SERVE_STEPS)
    for path in [*PLAYBOOKS.glob("*.yml"), *PLAYBOOKS.glob("tasks/*.yml")]:
        if path.name in ("preflight_host.yml", "serve_host.yml"):
            continue
        # app.yml is the application's step alone, after the shared preflight.
        allowed = {("triton_app", "main")} if path.name == "app.yml" else set()
        repeated = flow_steps & set(_steps(path)) - allowed
        assert not repeated, f"{_rel(path)} runs flow steps itself: {sorted(repeated)}"


def test_site_rollout_and_pull_use_the_flow():
    assert _includes(PLAYBOOKS / "preflight.yml") == ["tasks/preflight_host.yml"]
    assert _includes(PLAYBOOKS / "app.yml") == ["preflight.yml", "verify.yml"]
    assert _includes(PLAYBOOKS / "site.yml") == ["preflight.yml", "tasks/serve_host.yml", "verify.yml"]
    rollout_host = _includes(PLAYBOOKS / "tasks" / "rollout_host.yml")
    assert rollout_host == ["preflight_host.yml", "serve_host.yml", "rollout_rollback.yml"]
    assert _includes(PLAYBOOKS / "pull.yml") == ["rollout.yml"]
    assert _includes(PLAYBOOKS / "rollout.yml") == ["tasks/rollout_host.yml", "tasks/rollout_host.yml"]


def test_nothing_outside_a_role_reads_its_private_variables():
    found = []
    for path in _project_files():
        for name in set(re.findall(r"__(triton_[a-z0-9_]+)", path.read_text(encoding="utf-8"))):
            owner = _owner(name)
            where = path.relative_to(ROLES).parts[0] if path.is_relative_to(ROLES) else None
            if owner and owner != where:
                found.append(f"{_rel(path)}: __{name}")
    assert not found, "read the owner's documented result instead:\n" + "\n".join(sorted(found))


def test_the_models_result_is_published_as_documented():
    keys = {"release_id", "switch_pending", "instance_groups"}
    published = [
        task["ansible.builtin.set_fact"]["triton_models_result"]
        for name in ("deploy.yml", "switch.yml")
        for task in _tasks(ROLES / "triton_models" / "tasks" / name)
        if "triton_models_result" in (task.get("ansible.builtin.set_fact") or {})
    ]
    assert len(published) == 2 and all(set(result) == keys for result in published)
    docs = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for key in keys:
        assert f"`{key}`" in docs.split("### Results the roles publish", 1)[1], key
    serve = (PLAYBOOKS / "tasks" / "serve_host.yml").read_text(encoding="utf-8")
    assert "when: triton_models_result['switch_pending']" in serve
