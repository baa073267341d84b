"""Unit tests for module_utils/triton_versions.py (shared version helpers)."""

from __future__ import annotations

import pytest
from ansible.module_utils.triton_versions import (
    compare_versions,
    parse_version_prefix,
    version_at_least,
    version_tuple,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8.7", (8, 7)), ("36.4.3", (36, 4, 3)), (" 12.4 ", (12, 4)), ("v2.51.0", (2, 51, 0)), ("11", (11,)),
     ("08.10", (8, 10))],
    ids=["cc", "l4t", "whitespace", "v-prefix", "single", "leading-zero"],
)  # fmt: skip
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "8.", ".8", "8..7", "8.x", "1.2-3", "abc", "v", "6.0 DP", None, 8.7],
    ids=["empty", "blank", "trailing-dot", "leading-dot", "double-dot", "letter", "dash", "word", "bare-v", "tag",
         "none", "float"],
)  # fmt: skip
def test_version_tuple_rejects_garbage(text):
    with pytest.raises(ValueError):
        version_tuple(text)


@pytest.mark.parametrize(
    ("text", "parts", "expected"),
    [
        ("2.36-9+deb12u4", 2, "2.36"),
        ("10.3.0.30-1+cuda12.5", 3, "10.3.0"),
        ("1:2.3-1", None, "2.3"),
        ("6.0 DP", None, "6.0"),
        ("glibc", None, None),
        ("", None, None),
        (None, None, None),
    ],
    ids=["debian-libc", "tensorrt", "epoch", "jetpack-label", "word", "empty", "none"],
)
def test_parse_version_prefix(text, parts, expected):
    assert parse_version_prefix(text, parts) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [("8.10", "8.9", 1), ("12.4", "12.4.0", 0), ("5.3", "7.5", -1), ("550.54.15", "550.54.14", 1)],
    ids=["numeric-not-lexical", "trailing-zero", "less", "driver"],
)
def test_compare_versions(left, right, expected):
    assert compare_versions(left, right) == expected


def test_version_at_least():
    assert version_at_least("8.7", "7.5") is True
    assert version_at_least("7.2", "7.5") is False
    with pytest.raises(ValueError):
        version_at_least("N/A", "7.5")
