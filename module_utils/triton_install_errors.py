# SPDX-License-Identifier: Apache-2.0
"""The errors of a server install (``triton_install`` role): four-part messages.

What is wrong, what was found where, what is supported, what to do. The thin modules in
``library/triton_install_*.py`` turn them into ``fail_json``.
"""

from __future__ import annotations


class InstallError(ValueError):
    """A user-facing install failure; ``str()`` is the four-part message."""


class ChecksumError(InstallError):
    """The release archive's sha256 is not the expected one."""
