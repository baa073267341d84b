"""Docs-vs-spec check for every library/*.py (stands in for ansible-test validate-modules).

For each module: ``ansible-doc -M library <module>`` itself renders it (YAML that merely parses
can still be refused there: ``C(delegate_to: localhost)`` unquoted is a mapping, not a string);
DOCUMENTATION, EXAMPLES and RETURN parse as YAML; DOCUMENTATION has an ``attributes`` block
(check_mode, diff_mode, facts); and its options (names, types, defaults, choices, elements,
required, nested options) equal the module-level ARGUMENT_SPEC.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
LIBRARY = REPO_ROOT / "library"
MODULES = sorted(LIBRARY.glob("*.py"))
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_docs_check_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def normalize_spec(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The comparable part of an argument spec, with Ansible's implicit defaults made explicit."""
    result = {}
    for name, option in spec.items():
        entry = {
            "type": option.get("type", "str"),
            "default": option.get("default"),
            "choices": list(option["choices"]) if option.get("choices") is not None else None,
            "elements": option.get("elements"),
            "required": bool(option.get("required", False)),
        }
        nested = option.get("options")
        if nested is None and "suboptions" in option:
            nested = option["suboptions"]
        entry["options"] = normalize_spec(nested) if nested else None
        result[name] = entry
    return result


def test_library_has_modules():
    assert MODULES, f"no modules under {LIBRARY}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_documentation_matches_argument_spec(path: Path):
    module = load_module(path)
    docs = yaml.safe_load(module.DOCUMENTATION)
    assert docs["module"] == path.stem
    documented = normalize_spec(docs.get("options") or {})
    # Docs use "suboptions" where the spec uses "options"; normalize_spec accepts both.
    assert documented == normalize_spec(module.ARGUMENT_SPEC)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_documentation_has_attributes_examples_and_return(path: Path):
    module = load_module(path)
    docs = yaml.safe_load(module.DOCUMENTATION)
    assert {"check_mode", "diff_mode", "facts"} <= set(docs.get("attributes") or {})
    for attribute in docs["attributes"].values():
        assert attribute["support"] in {"full", "partial", "none", "N/A"}
    examples = yaml.safe_load(module.EXAMPLES)
    assert isinstance(examples, list) and examples
    returned = yaml.safe_load(module.RETURN)
    assert isinstance(returned, dict) and returned
    for name, value in returned.items():
        assert {"description", "returned", "type"} <= set(value), f"RETURN {name} lacks description/returned/type"
    assert callable(module.main)


def test_normalize_spec_sees_a_difference():
    # The comparison must be able to fail: a changed default is a difference.
    assert normalize_spec({"root": {"type": "path", "default": "/"}}) != normalize_spec(
        {"root": {"type": "path", "default": "/srv"}}
    )


def _ansible_doc(library: Path, names: list[str]) -> subprocess.CompletedProcess:
    """``ansible-doc -M <library> <names>``: the text rendering, which refuses what --json lets through."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(ANSIBLE_DOC), "-M", str(library), *names],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_ansible_doc_renders_every_module():
    """One ansible-doc run for all modules (each run costs a second); a refused module is named."""
    names = [path.stem for path in MODULES]
    proc = _ansible_doc(LIBRARY, names)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    rendered = [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("> MODULE ")]
    assert rendered == names


def test_ansible_doc_refuses_an_unquoted_mapping_in_a_description(tmp_path):
    """The check above can fail: the bug it guards against, reproduced in a scratch copy of a module."""
    bad = (
        (LIBRARY / "triton_verify_report.py")
        .read_text()
        .replace(
            '  - "Run it on the controller (C(delegate_to: localhost))."',
            "  - Run it on the controller (C(delegate_to: localhost)).",
        )
    )
    (tmp_path / "triton_verify_report.py").write_text(bad)
    proc = _ansible_doc(tmp_path, ["triton_verify_report"])
    assert proc.returncode != 0
    assert "Unable to retrieve documentation from 'triton_verify_report'" in proc.stderr
