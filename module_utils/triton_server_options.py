# SPDX-License-Identifier: Apache-2.0
"""The options an installed tritonserver accepts, read from its own ``--help``, and extra arguments judged by them.

``tritonserver --help`` prints ``Usage: tritonserver [options]`` and one entry per option on
stderr, then exits 1 (server ``src/main.cc``; entries from ``TritonParser::Usage`` in
``src/command_line_parser.cc``)::

      --log-verbose <integer>
            Set verbose logging level. ...
      --disable-auto-complete-config
            If set, disables the triton and backends from auto ...

An option with an argument description takes a required argument (``--name=value`` or
``--name value``), one without takes none (``Option::GetLongOption``); there are no short
options, and glibc's ``getopt_long`` accepts an unambiguous prefix of a long option. Anything
else makes the server print the usage and exit at start ("unrecognized option",
"Unexpected argument"). :func:`extra_args_problems` applies exactly these rules, so a bad
``triton_service_extra_args`` is refused before the launcher is written, not by a crash loop.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Runner = Callable[[Sequence[str]], "tuple[int, str, str]"]

_OPTION_RE = re.compile(r"^  --([A-Za-z0-9][A-Za-z0-9_-]*)(?: <(.*)>)?\s*$")
CACHE_VERSION = 1


class OptionsError(ValueError):
    """The server's options cannot be read; ``str()`` is the four-part message."""


def parse_help(text: str) -> dict[str, bool]:
    """Return ``{option name: takes an argument}`` from ``tritonserver --help`` output."""
    options = {}
    for line in text.splitlines():
        match = _OPTION_RE.match(line)
        if match:
            options[match.group(1)] = match.group(2) is not None
    return options


def _resolve(name: str, options: Mapping[str, bool]) -> tuple[str | None, list[str]]:
    """getopt_long's lookup: the exact option, else the only one ``name`` is a prefix of; (None, candidates)."""
    if name in options:
        return name, [name]
    candidates = sorted(option for option in options if option.startswith(name))
    return (candidates[0], candidates) if len(candidates) == 1 else (None, candidates)


def extra_args_problems(args: Sequence[str], options: Mapping[str, bool], server: str) -> list[str]:
    """Problems of ``args`` (appended to the server's command line) under the server's ``options``.

    ``server`` names the binary and release in the messages. Returns [] when the server accepts
    every argument as the launcher passes them.
    """
    problems = []

    def refuse(arg: str, found: str, fix: str) -> None:
        problems.append(
            f"triton_service_extra_args has {arg!r}: {found} ({server} --help); the server accepts only the long "
            f"options its --help lists and exits at start on anything else; {fix}."
        )

    position = 0
    while position < len(args):
        arg = str(args[position])
        position += 1
        if arg == "--" or not arg.startswith("--"):
            refuse(
                arg,
                "it is not an option, and no option before it takes a value"
                if arg != "--"
                else "'--' ends the options, and the server refuses every argument after it",
                "write each option as --name=value (or --name followed by its value) and remove stray words",
            )
            continue
        name, _equals, _value = arg[2:].partition("=")
        option, candidates = _resolve(name, options)
        if option is None:
            close = difflib.get_close_matches(name, options, n=3)
            found = (
                f"--{name} is ambiguous (it starts {', '.join('--' + c for c in candidates)})"
                if candidates
                else f"the server has no option --{name}"
                + (f" (closest: {', '.join('--' + c for c in close)})" if close else "")
            )
            refuse(arg, found, "remove it from triton_service_extra_args or correct it to an option --help lists")
            continue
        takes_value = options[option]
        if _equals and not takes_value:
            refuse(arg, f"--{option} takes no value", f"write it as --{option} alone")
        elif takes_value and not _equals:
            if position >= len(args):
                refuse(arg, f"--{option} needs a value and none follows", f"write it as --{option}=<value>")
            else:
                position += 1
    return problems


def binary_key(binary: Path) -> dict[str, Any]:
    """What identifies one build of the binary for the cache: path, size, modification time."""
    info = binary.stat()
    return {"binary": str(binary), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def native_help(binary: Path, env: Mapping[str, str]) -> tuple[list[str], dict[str, Any]]:
    """Return (the argv that prints ``binary``'s options, its cache key) for a server installed on the host.

    ``--help`` runs with exactly ``env`` (the server's own environment: its ``LD_LIBRARY_PATH``).
    Raises OptionsError when the binary is not there.
    """
    try:
        key = binary_key(binary)
    except OSError as err:
        raise OptionsError(
            f"Cannot read the options of the installed server: {binary}: {err.strerror}. Extra server arguments are "
            "checked against the options the installed tritonserver lists in --help. Install the release first "
            "(triton_install), or leave triton_service_extra_args empty."
        ) from err
    return ["env", "-i", *(f"{name}={value}" for name, value in sorted(env.items())), str(binary), "--help"], key


def read_options(
    argv: Sequence[str], key: Mapping[str, Any], server: str, run: Runner, cache: Path | None
) -> tuple[dict[str, bool], bool]:
    """Return (the options the server ``argv`` asks for ``--help`` accepts, whether they came from ``cache``).

    The cache holds one entry, the build in use (``key``: :func:`binary_key`, or the image id of
    a container release); without a matching entry ``argv`` runs. ``server`` names the build in
    messages. Raises OptionsError when the server cannot print its options.
    """
    if cache is not None:
        try:
            cached = json.loads(cache.read_text(encoding="utf-8"))
            if cached.get("version") == CACHE_VERSION and cached.get("key") == dict(key):
                return {str(k): bool(v) for k, v in cached["options"].items()}, True
        except (OSError, ValueError, AttributeError, KeyError):
            pass
    rc, out, err = run(argv)
    options = parse_help(f"{out}\n{err}")
    if not options:
        raise OptionsError(
            f"Cannot read the options of the installed server: {server} --help exited {rc} and listed no option "
            f"({(err or out).strip()[-500:] or 'no output'}). Extra server arguments are checked against the options "
            "the installed tritonserver lists in --help, so a release whose binary does not run cannot take any. "
            "Fix the release (rerun triton_install), or leave triton_service_extra_args empty."
        )
    return options, False


def write_options_cache(key: Mapping[str, Any], options: Mapping[str, bool], cache: Path) -> None:
    """Keep ``options`` as the cache entry of the build ``key`` (replacing the entry of any other build)."""
    cache.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    entry = {"version": CACHE_VERSION, "key": dict(key), "options": dict(options)}
    partial.write_text(json.dumps(entry, sort_keys=True), encoding="utf-8")
    os.replace(partial, cache)
