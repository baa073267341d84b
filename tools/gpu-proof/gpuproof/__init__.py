# SPDX-License-Identifier: Apache-2.0
"""The GPU proof kit: ``prepare`` (here) assembles what a bare GPU machine lacks; ``run`` (there) records.

docs/gpu-evidence.md says what the kit proves and how to run it. Everything in this package
imports only the standard library at import time: ``run`` starts on a machine that has neither
ansible-core nor the project's requirements, and installs them from the carry folder first.
"""

from pathlib import Path

# The repository the kit runs in (tools/gpu-proof/gpuproof/ is three levels below it).
REPO = Path(__file__).resolve().parents[3]
