# SPDX-License-Identifier: Apache-2.0
"""The server's own words from its log: what it wrote since a point in time, and its error lines.

The service writes tritonserver's stdout and stderr to one file (supervisord's
``stdout_logfile`` with ``redirect_stderr``, or systemd's ``StandardOutput=append:``). When a
restart or a model load fails, the reason is in there, not in the HTTP answer: a refused
option is glibc's ``tritonserver: unrecognized option '--x'`` above the usage text, a model
whose directory cannot be read is ``Poll failed for model directory 'x': ...`` behind the load
API's generic "failed to poll from model repository", and a python model without ``model.py``
is only the stub's ``Failed to preinitialize Python stub: Python model file not found in ...``
(the load itself never answers). Triton's own log lines look like
``E1201 19:30:00.123456 4242 model_lifecycle.cc:654] "failed to load 'x' version 1: ..."``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# How much of a log is read at most (the end of what was written since the offset).
READ_LIMIT = 256 * 1024
# Lines that state a failure: Triton's error level, and the words of the failures above.
_ERROR_LINE_RE = re.compile(
    r"^E\d{4} |unrecognized option|invalid option|Unexpected argument|Bad option|requires an argument"
    r"|doesn't allow an argument|Failed to|failed to|Poll failed|[Ee]rror:|Traceback|Exception"
)
# The usage text a refused command line prints: option lines, their descriptions, group headers.
_USAGE_LINE_RE = re.compile(r"^(  --|\t|Usage: tritonserver|\S[^:]*:$)")


def log_size(path: Path) -> int:
    """The log's current size (0 when it does not exist yet): where the next run's lines start."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_since(path: Path, offset: int) -> str:
    """What was written to ``path`` after ``offset`` (all of it when the log was rotated since), at most READ_LIMIT."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            start = offset if 0 <= offset <= size else 0
            handle.seek(max(start, size - READ_LIMIT))
            data = handle.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def error_lines(text: str, names: Iterable[str] = (), limit: int = 6) -> list[str]:
    """The server's error lines in ``text``, first seen first, without the usage text around them.

    With ``names`` (model names), lines that name one of them come first: a failed switch is
    explained by what the server said about its models. Duplicates are dropped.
    """
    found: list[str] = []
    for line in text.splitlines():
        stripped = line.rstrip()
        if not stripped or _USAGE_LINE_RE.match(stripped) or not _ERROR_LINE_RE.search(stripped):
            continue
        if stripped not in found:
            found.append(stripped)
    wanted = [n for n in names if n]
    if wanted:
        named = [line for line in found if any(f"'{n}'" in line or f"/{n}/" in line for n in wanted)]
        found = named + [line for line in found if line not in named]
    return found[:limit]
