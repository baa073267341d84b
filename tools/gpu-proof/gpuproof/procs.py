# SPDX-License-Identifier: Apache-2.0
"""Commands with a time limit and a log file, process trees, and servers started for a measurement."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gpuproof.record import Step


def quoted(argv: Sequence[str]) -> str:
    """The shell form of ``argv``, as the record shows a command."""
    return shlex.join(str(a) for a in argv)


def _kill_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(
    step: Step,
    argv: Sequence[str],
    log: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    shown: str | None = None,
) -> tuple[int | None, str]:
    """Run ``argv`` with its output (stdout and stderr) in ``log``; record it on ``step``.

    Returns ``(rc, output)``; rc is None when the command ran past ``timeout`` seconds (its
    process group is then killed). ``shown`` replaces the recorded command line (the secret-free
    form of a command whose argv holds a secret).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as handle:
        handle.write(f"$ {shown or quoted(argv)}\n")
        handle.flush()
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as err:
            handle.write(f"cannot start: {err}\n")
            rc: int | None = 127
        else:
            try:
                rc = proc.wait(timeout=max(timeout, 1.0))
            except subprocess.TimeoutExpired:
                _kill_group(proc, 10.0)
                handle.write(f"\n[gpu-proof] killed after {timeout:.0f} s\n")
                rc = None
    output = log.read_text(errors="replace")
    step.command(shown or quoted(argv), rc, time.monotonic() - started, log.name, output)
    return rc, output


def process_name(pid: int, proc_root: Path = Path("/proc")) -> str | None:
    try:
        return (proc_root / str(pid) / "comm").read_text().strip()
    except OSError:
        return None


def wait_ready(url: str, proc: subprocess.Popen[Any] | None, timeout: float) -> float | None:
    """Seconds until ``<url>/v2/health/ready`` answers 200; None on timeout or when ``proc`` exits."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc is not None and proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return round(time.monotonic() - started, 2)
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return None


class Server:
    """A tritonserver the kit starts itself (its own ports, its own log), stopped with ``stop``."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path, uid: int | None, gid: int | None):
        self.argv = [str(a) for a in argv]
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._handle = log.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            user=uid,
            group=gid,
            extra_groups=[] if gid is not None else None,
            start_new_session=True,
        )

    def stop(self, leader_first: bool = False) -> int | None:
        """Stop the process group (stubs included); return the exit status of the process started.

        ``leader_first`` sends SIGTERM to that process alone first and waits for it: an embedding
        application shuts its in-process server down itself, and its python stubs must still
        answer meanwhile.
        """
        if leader_first and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        if self.proc.poll() is None or leader_first:
            _kill_group(self.proc, 20.0)
        self._handle.close()
        return self.proc.returncode


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[Any], timeout: float) -> float | None:
    """Seconds until ``text`` appears in ``log``; None on timeout or when ``proc`` exits first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if text in log.read_text(errors="replace"):
            return round(time.monotonic() - started, 2)
        if proc.poll() is not None:
            return None
        time.sleep(0.2)
    return None
