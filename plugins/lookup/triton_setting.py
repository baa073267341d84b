# SPDX-License-Identifier: Apache-2.0
"""Lookup ``triton_setting``: a setting of another tritonfleet role, as that role defines it."""

from __future__ import annotations

from collections import ChainMap
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template

DOCUMENTATION = r"""
name: triton_setting
short_description: A setting of another tritonfleet role, read from the one role that owns it
description:
  - Returns the value of each named variable the way the role that owns it would see it - the play's
    value when the inventory, C(-e), a fact or that role's own run set it, else that role's default
    (C(roles/<role>/defaults/main.yml)), templated with the play's variables.
  - A role that builds on another role's setting reads it with this lookup instead of repeating its
    default, so every default exists once and a role still runs where the owner is not in the play
    (C(playbooks/verify.yml) alone, a role included on its own).
  - The owner is the role whose name prefixes the variable (C(triton_service_http_port) - C(triton_service)).
options:
  _terms:
    description: Variable names, each owned by a role of this project.
    required: true
"""

EXAMPLES = r"""
- name: The models role reaches the server on the service role's port
  ansible.builtin.debug:
    msg: "http://127.0.0.1:{{ lookup('triton_setting', 'triton_service_http_port') }}"
"""

RETURN = r"""
_list:
  description: The value of each variable, templated.
  type: list
"""

_ROLES = Path(__file__).resolve().parents[2] / "roles"


@cache
def _role_defaults() -> dict[str, dict[str, Any]]:
    """Role name to its defaults/main.yml, for every role of the project."""
    defaults = {}
    for path in sorted(_ROLES.glob("*/defaults/main.yml")):
        defaults[path.parent.parent.name] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return defaults


def _trusted(value: Any) -> Any:
    """The project's own defaults are templates, as Ansible treats a role's defaults."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


@cache
def _defaults_layer() -> dict[str, Any]:
    """Every role's defaults, under the play's variables: an owner's default may build on another
    setting (the service's key file on its config directory, the app's paths on the service's)."""
    layer: dict[str, Any] = {}
    for defaults in _role_defaults().values():
        layer.update(_trusted(defaults))
    return layer


def owner_default(name: str) -> tuple[str, Any]:
    """The role that owns ``name`` (the longest role name prefixing it) and its default there."""
    roles = _role_defaults()
    owners = sorted((role for role in roles if name.startswith(role + "_")), key=len, reverse=True)
    if not owners or name not in roles[owners[0]]:
        known = ", ".join(sorted(roles))
        raise AnsibleLookupError(
            f"triton_setting: {name!r} is not a setting of any tritonfleet role (looked in the defaults/main.yml "
            f"of the role its name starts with, among {known}). A role can only read settings another role "
            "documents in its defaults; name one of those, or define the setting in its owner's defaults/main.yml."
        )
    return owners[0], roles[owners[0]][name]


class LookupModule(LookupBase):
    """See DOCUMENTATION."""

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        layered = ChainMap(variables or {}, _defaults_layer())
        templar = self._templar.copy_with_new_env(available_variables=layered)
        values = []
        for term in terms:
            owner_default(str(term))
            values.append(templar.template(layered[str(term)]))
        return values
