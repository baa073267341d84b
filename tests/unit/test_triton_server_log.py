# SPDX-License-Identifier: Apache-2.0
"""The server's own words from its log: what it wrote since an offset, and its error lines."""

from __future__ import annotations

from ansible.module_utils.triton_server_log import error_lines, log_size, read_since

# What tritonserver 2.51.0 wrote here for a refused option (glibc's line, then the usage) and for
# failed loads (its log format: level, date, time, thread, file:line, quoted message).
REFUSED_OPTION = """\
tritonserver: unrecognized option '--no-such-flag=1'
Usage: tritonserver [options]
  --help
\tPrint usage
Logging:
  --log-verbose <integer>
\tSet verbose logging level. Zero (0) disables verbose logging and
\tvalues >= 1 enable verbose logging.
"""
FAILED_LOADS = """\
I1201 19:40:01.000001 4242 model_lifecycle.cc:472] "loading: add_sub:1"
I1201 19:40:01.500000 4243 pb_stub.cc:2064] "Failed to preinitialize Python stub: Python model file not found in \
'/srv/models/current/nopy/1/model.py'"
E1201 19:40:02.000000 4242 model_repository_manager.cc:1345] "Poll failed for model directory 'other': bad config"
E1201 19:40:02.000000 4242 model_lifecycle.cc:641] "failed to load 'add_sub' version 1: Internal: weights missing"
I1201 19:40:03.000000 4242 server.cc:676] "+---------+"
"""


def test_only_the_failure_lines_remain_without_the_usage_text():
    assert error_lines(REFUSED_OPTION) == ["tritonserver: unrecognized option '--no-such-flag=1'"]


def test_lines_about_the_named_models_come_first():
    lines = error_lines(FAILED_LOADS, names=["nopy", "add_sub"])
    assert [line.split("] ", 1)[1][:20] for line in lines] == [
        '"Failed to preinitia',
        "\"failed to load 'add",
        '"Poll failed for mod',
    ]
    assert error_lines(FAILED_LOADS, limit=1) == [FAILED_LOADS.splitlines()[1]]


def test_read_since_gives_what_was_written_after_the_offset(tmp_path):
    log = tmp_path / "server.log"
    assert log_size(log) == 0 and read_since(log, 0) == ""
    log.write_text("old line\n")
    offset = log_size(log)
    with log.open("a") as handle:
        handle.write("new line\n")
    assert read_since(log, offset) == "new line\n"
    # Rotated since (the file is shorter than the offset): all of it.
    log.write_text("rotated\n")
    assert read_since(log, offset + 100) == "rotated\n"
