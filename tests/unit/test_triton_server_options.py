# SPDX-License-Identifier: Apache-2.0
"""Extra server arguments judged by the options the installed tritonserver lists in its --help."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ansible.module_utils.triton_server_options import (
    OptionsError,
    extra_args_problems,
    native_help,
    parse_help,
    read_options,
    write_options_cache,
)

# `tritonserver --help` of the 2.51.0 server in nvidia-pytriton 0.7.0, captured on stderr (exit 1).
HELP = (Path(__file__).resolve().parents[1] / "fixtures" / "tritonserver-2.51.0-help.txt").read_text()
OPTIONS = parse_help(HELP)
SERVER = "tritonserver 2.51.0 /opt/tritonserver/releases/2.51.0/bin/tritonserver"


def test_the_real_help_lists_every_option_with_whether_it_takes_a_value():
    assert len(OPTIONS) > 60
    assert OPTIONS["log-verbose"] is True
    assert OPTIONS["model-control-mode"] is True
    assert OPTIONS["cuda-memory-pool-byte-size"] is True
    assert OPTIONS["disable-auto-complete-config"] is False
    assert OPTIONS["help"] is False
    # Group headers and descriptions are not options.
    assert not any(" " in name or name.endswith(":") for name in OPTIONS)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--log-verbose=1"],
        ["--log-verbose", "1"],
        ["--disable-auto-complete-config"],
        ["--model-load-thread-count=2", "--exit-timeout-secs", "10", "--log-info=false"],
        # getopt_long takes an unambiguous prefix, as the server does.
        ["--log-verb=1"],
    ],
)
def test_what_the_server_accepts_passes(args):
    assert extra_args_problems(args, OPTIONS, SERVER) == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--no-such-flag=1"], ["has '--no-such-flag=1': the server has no option --no-such-flag"]),
        (["--log-verbse=1"], ["(closest: --log-verbose"]),
        (["--log-verbose"], ["--log-verbose needs a value and none follows", "--log-verbose=<value>"]),
        (["--disable-auto-complete-config=1"], ["--disable-auto-complete-config takes no value"]),
        (["--model=x"], ["--model is ambiguous (it starts --model-"]),
        (["verbose"], ["has 'verbose': it is not an option", "remove stray words"]),
        (["-v"], ["has '-v': it is not an option"]),
        (["--", "--log-verbose=1"], ["'--' ends the options"]),
    ],
)
def test_what_the_server_refuses_is_named_with_the_fix(args, fragments):
    problems = extra_args_problems(args, OPTIONS, SERVER)
    assert problems, args
    for fragment in fragments:
        assert fragment in problems[0], (fragment, problems[0])
    assert SERVER in problems[0]
    assert "exits at start on anything else" in problems[0]


def test_every_bad_argument_is_reported():
    assert len(extra_args_problems(["--a-b-c=1", "--log-verbose=1", "stray"], OPTIONS, SERVER)) == 2


def test_options_are_read_from_the_binary_once_per_build(tmp_path):
    binary = tmp_path / "bin" / "tritonserver"
    binary.parent.mkdir()
    # A stand-in that prints the captured usage on stderr and exits 1, as the real one does.
    (tmp_path / "help.txt").write_text(HELP)
    binary.write_text(f"#!/bin/sh\ncat {tmp_path / 'help.txt'} >&2\nexit 1\n")
    binary.chmod(0o755)
    calls = []

    def run(argv):
        calls.append(list(argv))
        import subprocess

        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    cache = tmp_path / "cache" / "options.json"
    argv, key = native_help(binary, {"LD_LIBRARY_PATH": "/x/lib"})
    assert argv == ["env", "-i", "LD_LIBRARY_PATH=/x/lib", str(binary), "--help"]
    options, cached = read_options(argv, key, SERVER, run, cache)
    assert (options, cached) == (OPTIONS, False)
    assert calls == [argv]
    assert not cache.exists()
    write_options_cache(key, options, cache)
    assert read_options(*native_help(binary, {}), SERVER, run, cache) == (OPTIONS, True) and len(calls) == 1
    # Another build of the binary (reinstalled release): read again.
    info = binary.stat()
    os.utime(binary, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert read_options(*native_help(binary, {}), SERVER, run, cache) == (OPTIONS, False) and len(calls) == 2
    assert json.loads(cache.read_text())["options"] == OPTIONS


def test_a_binary_that_does_not_print_its_options_explains(tmp_path):
    binary = tmp_path / "tritonserver"
    binary.write_text("#!/bin/sh\necho 'fake tritonserver: not a real Triton server' >&2\nexit 1\n")
    binary.chmod(0o755)

    def run(argv):
        import subprocess

        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    with pytest.raises(OptionsError, match=r"listed no option .*fake tritonserver.*leave triton_service_extra_args"):
        read_options(*native_help(binary, {}), f"tritonserver 2.51.0 {binary}", run, None)
    with pytest.raises(OptionsError, match="Install the release first"):
        native_help(tmp_path / "absent", {})
