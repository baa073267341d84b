"""Version helpers shared by the tritonfleet modules.

Versions travel as strings ("8.7", "36.4.3", "550.54.15") in facts and plans; these helpers
turn them into tuples so comparisons are numeric ("8.10" > "8.9"), never lexical.
"""

from __future__ import annotations

import re

_VERSION_RE = re.compile(r"\d+(?:\.\d+)*")


def version_tuple(text: str) -> tuple[int, ...]:
    """Return the dotted numeric version in ``text`` as a tuple of ints.

    ``"8.7"`` -> ``(8, 7)``, ``" 36.4.3 "`` -> ``(36, 4, 3)``. Surrounding whitespace and a
    leading ``v`` are accepted; anything else (empty, ``"8."``, ``"8.x"``, ``"1.2-3"``) raises
    ValueError so a garbage version is never compared as if it were valid.
    """
    if not isinstance(text, str):
        raise ValueError(f"version must be a string, got {type(text).__name__}: {text!r}")
    stripped = text.strip()
    if stripped[:1] in ("v", "V"):
        stripped = stripped[1:]
    if not _VERSION_RE.fullmatch(stripped):
        raise ValueError(f"not a dotted numeric version: {text!r} (expected digits separated by dots, e.g. '8.7')")
    return tuple(int(part) for part in stripped.split("."))


def parse_version_prefix(text: str, parts: int | None = None) -> str | None:
    """Return the leading dotted numeric version in ``text``, or None when there is none.

    Used on package versions and banners: ``"2.36-9+deb12u4"`` -> ``"2.36"``,
    ``"10.3.0.30-1+cuda12.5"`` with ``parts=3`` -> ``"10.3.0"``, ``"1:2.3"`` (dpkg epoch) -> ``"2.3"``.
    ``parts`` truncates to at most that many components.
    """
    if not isinstance(text, str):
        return None
    body = text.strip()
    epoch, sep, rest = body.partition(":")
    if sep and epoch.isdigit():
        body = rest
    match = _VERSION_RE.match(body)
    if match is None:
        return None
    components = match.group(0).split(".")
    if parts is not None:
        components = components[:parts]
    return ".".join(components)


def compare_versions(left: str, right: str) -> int:
    """Compare two dotted versions numerically: -1, 0 or 1.

    Missing trailing components count as zero, so ``"12.4"`` equals ``"12.4.0"``.
    Raises ValueError when either side is not a dotted numeric version.
    """
    a, b = version_tuple(left), version_tuple(right)
    width = max(len(a), len(b))
    a += (0,) * (width - len(a))
    b += (0,) * (width - len(b))
    return (a > b) - (a < b)


def version_at_least(version: str, minimum: str) -> bool:
    """Return True when ``version`` >= ``minimum`` (numeric, trailing zeros ignored)."""
    return compare_versions(version, minimum) >= 0
