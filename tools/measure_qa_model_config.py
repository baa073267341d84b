#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Measure tritonfleet's static model-repository checks against Triton's own QA suite.

Usage: .venv/bin/python tools/measure_qa_model_config.py /path/to/qa/L0_model_config [--release 24.10]

The argument is a checkout of ``qa/L0_model_config`` of triton-inference-server/server (e.g.
``git archive r24.10 qa/L0_model_config``); its files are never copied into this repository.
The script replays the layout ``test.sh`` prepares (version directories; the model files it copies
from Triton's data sets become empty placeholders of the same name), then judges every case with
``check_repository`` on a two-GPU x86_64 host planned for the release's NGC container (policy
``keep``, the backends of that image), with auto-complete on or off as ``test.sh`` starts the
server for that case.

Statically judgeable cases: those whose ``expected`` error Triton derives from the configs, the
directory layout and the release's backends: ``noautofill_platform/*`` (each run with the five
platforms of ``test.sh``'s TRIALS; a case counts only when all five match), the ensemble, common and
custom cases of ``autofill_noplatform``, and ``special_cases``. The other ``autofill_noplatform``
cases compare the config with the model file or run the model's own auto-complete code.
A case is judged like Triton when one of tritonfleet's error messages contains one of the case's
``expected*`` texts (as ``test.sh`` greps the server log). ``autofill_noplatform_success/*`` are
cases Triton serves: refusing one of them is a false refusal.

Prints ``N/M judged like Triton``, the false refusals, and every mismatch; exits 1 when the
target (>= 95 % judged like Triton, no false refusal) is missed.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parents[1]
ansible.module_utils.__path__.append(str(REPO_ROOT / "module_utils"))

from ansible.module_utils.triton_compat import load_matrix, release_backends, resolve_release  # noqa: E402
from ansible.module_utils.triton_model_repository import RenderSettings, check_repository  # noqa: E402
from ansible.module_utils.triton_runtime import runtime_section  # noqa: E402

MATRIX = REPO_ROOT / "roles" / "triton_platform" / "files" / "triton_matrix.yml"
JUDGEABLE_AUTOFILL = ("ensemble", "common", "custom")
# test.sh starts the server for special cases with auto-complete on, except this one.
NO_AUTOFILL_SPECIAL = ("invalid_platform",)
TARGET = 0.95


def two_gpu_plan(release: str) -> tuple[dict, dict, tuple[str, ...]]:
    """A two-GPU x86_64 host planned for the release's NGC container, and that image's backends."""
    matrix = load_matrix(str(MATRIX))
    row = resolve_release(matrix, release)
    plan = {
        "release": row["release"],
        "server_version": row["server_version"],
        "install_method": "container",
        "platform": "dgpu",
        "arch": "x86_64",
        "enable_gpu": True,
        "instance_kind": "KIND_GPU",
        "gpu_ids": [0, 1],
        "min_compute_capability": row["min_compute_capability"],
        "runtime": runtime_section("dgpu", True, [0, 1], [0, 1], True, row["min_compute_capability"], None),
    }
    gpus = [{"index": i, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"} for i in (0, 1)]
    host = {"platform": "dgpu", "arch": "x86_64", "gpus": gpus, "igpu": None}
    return plan, host, tuple(release_backends(matrix, row, "container", "x86_64") or ())


# ---------------------------------------------------------------- replay of test.sh's layout


def _placeholder(source: str, target: Path, recursive: bool) -> None:
    """Stand in for what test.sh copies from Triton's data sets (unavailable here): a version directory
    (with the OpenVINO IR files where it comes from the OpenVINO models), a SavedModel directory, or a file."""
    name = Path(source).name
    if recursive and name.isdigit():
        # A whole version directory: the model files it holds, by the data set it comes from.
        target.mkdir(parents=True, exist_ok=True)
        for file in ("model.xml", "model.bin") if "openvino" in source else ():
            (target / file).write_text("")
    elif name.endswith(".savedmodel"):
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")


def _copy(args: list[str], work: Path, move: bool = False) -> None:
    recursive = args[0] == "-r"
    source, dest = args[-2], args[-1]
    # Absolute sources are Triton's data sets, which test.sh expects in its CI image.
    local = None if source.startswith(("/", "$")) else work / source
    into = dest.endswith("/.") or dest.endswith("/") or (work / dest).is_dir()
    target = work / dest.rstrip("/.").rstrip("/") / Path(source).name if into else work / dest.rstrip("/")
    if local is not None and local.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            shutil.move(local, target)
        elif local.is_dir():
            shutil.copytree(local, target, dirs_exist_ok=True)
        else:
            shutil.copy(local, target)
    elif local is None:
        _placeholder(source, target, recursive)


def _run(command: str, work: Path) -> None:
    words = shlex.split(command)
    if not words:
        return
    if words[0] == "mkdir":
        for path in words[1:]:
            if not path.startswith("-"):
                (work / path).mkdir(parents=True, exist_ok=True)
    elif words[0] in ("cp", "mv"):
        _copy(words[1:], work, move=words[0] == "mv")
    elif words[0] == "touch":
        for path in words[1:]:
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text("")
    elif words[0] == "echo" and ">>" in words:
        target = work / words[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("dummy_content\n")


def replay_layout(test_sh: str, work: Path) -> None:
    """Apply the mkdir/cp/mv/touch/echo lines that prepare the model directories, as test.sh does."""
    lines = test_sh.replace("\\\n", " ").splitlines()
    setup = lines[: next(i for i, line in enumerate(lines) if line.startswith("rm -f $SERVER_LOG_BASE"))]
    index = 0
    while index < len(setup):
        line = setup[index].strip()
        loop = re.match(r"for modelpath in (.*); do$", line)
        if loop:
            paths = loop.group(1).split()
            body = []
            index += 1
            while setup[index].strip() != "done":
                body.append(setup[index].strip())
                index += 1
            for path in paths:
                for command in body:
                    _run(command.replace("$modelpath", path), work)
        elif re.match(r"(mkdir|cp|mv|touch) ", line):
            _run(line, work)
        index += 1


# ---------------------------------------------------------------- the cases


def _trials(test_sh: str) -> list[str]:
    return re.search(r'^TRIALS="([^"]+)"', test_sh, re.M).group(1).split()


def _expected(case: Path) -> list[str]:
    return [p.read_text().strip().replace("\\[", "[").replace("\\]", "]") for p in sorted(case.glob("expected*"))]


def _repository(case: Path, dest: Path, platform: str | None = None, single: bool = False) -> Path:
    """The models directory test.sh serves for a case: the case dir as one model (``single``, or a case
    with its own config.pbtxt), else the models it holds."""
    dest.mkdir(parents=True)
    if single or (case / "config.pbtxt").exists():
        shutil.copytree(case, dest / case.name)
        config = dest / case.name / "config.pbtxt"
        if platform and config.exists():
            kept = [line for line in config.read_text().splitlines() if "platform:" not in line]
            config.write_text("\n".join(kept) + f'\nplatform: "{platform}"\n')
    else:
        for item in case.iterdir():
            if item.is_dir():
                shutil.copytree(item, dest / item.name)
    for expected in dest.rglob("expected*"):
        expected.unlink()
    return dest


def judge(case: Path, repo: Path, settings: RenderSettings) -> tuple[bool, list[str]]:
    """(judged like Triton, tritonfleet's error messages) for one rejected case."""
    check = check_repository(repo, settings)
    messages = [p.message for p in check.errors]
    # The server logs a failed load as "...: <status code>: <message>" (core Status::AsString).
    logged = messages + [f"Invalid argument: {m}" for m in messages]
    return any(e in m for e in _expected(case) for m in logged), messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("qa_dir", type=Path, help="checkout of qa/L0_model_config")
    parser.add_argument("--release", default="24.10", help="release the plan installs (default 24.10)")
    args = parser.parse_args()
    plan, host, backends = two_gpu_plan(args.release)
    keep = RenderSettings(plan, host, "keep", True, release_backends=backends)
    autofill = RenderSettings(plan, host, "keep", True, release_backends=backends, auto_complete=True)
    test_sh = (args.qa_dir / "test.sh").read_text()
    results: list[tuple[str, bool, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="qa-model-config-") as tmp:
        work = Path(tmp) / "qa"
        shutil.copytree(args.qa_dir, work)
        replay_layout(test_sh, work)
        runs = Path(tmp) / "runs"
        for case in sorted((work / "noautofill_platform").iterdir()):
            verdicts = []
            for trial in _trials(test_sh):
                repo = _repository(case, runs / f"{case.name}-{trial}", trial, single=True)
                ok, messages = judge(case, repo, keep)
                verdicts.append((ok, [f"[{trial}] {m}" for m in messages] or [f"[{trial}] accepted"]))
            results.append(
                (f"noautofill_platform/{case.name}", all(v[0] for v in verdicts), [m for v in verdicts for m in v[1]])
            )
        for group in JUDGEABLE_AUTOFILL:
            for case in sorted((work / "autofill_noplatform" / group).iterdir()):
                repo = _repository(case, runs / f"{group}-{case.name}")
                results.append((f"autofill_noplatform/{group}/{case.name}", *judge(case, repo, autofill)))
        for case in sorted((work / "special_cases").iterdir()):
            settings = keep if case.name in NO_AUTOFILL_SPECIAL else autofill
            repo = _repository(case, runs / f"special-{case.name}", single=True)
            results.append((f"special_cases/{case.name}", *judge(case, repo, settings)))
        refused = []
        served = sorted(p for p in (work / "autofill_noplatform_success").glob("*/*") if p.is_dir())
        for case in served:
            single = case.name.startswith("no_config")
            repo = _repository(case, runs / f"success-{case.parent.name}-{case.name}", single=single)
            check = check_repository(repo, autofill)
            if check.errors:
                refused.append((f"{case.parent.name}/{case.name}", [p.message for p in check.errors]))
        skipped = sorted(
            f"{p.parent.name}/{p.name}"
            for p in (work / "autofill_noplatform").glob("*/*")
            if p.is_dir() and p.parent.name not in JUDGEABLE_AUTOFILL
        )
    like = sum(ok for _name, ok, _m in results)
    print(f"Triton QA qa/L0_model_config ({args.qa_dir}), release {plan['release']} ({plan['server_version']}),")
    print(f"two-GPU x86_64 container plan, policy keep, backends {', '.join(backends)}")
    print(f"{like}/{len(results)} judged like Triton")
    print(f"false refusals: {len(refused)} of {len(served)} cases Triton serves")
    for name, messages in refused:
        print(f"  REFUSED {name}: {messages[0]}")
    print(f"not statically judgeable (the model file or the model's own code decides): {len(skipped)}")
    for name, ok, messages in results:
        if not ok:
            print(f"  MISMATCH {name}: tritonfleet: {' | '.join(messages) or 'accepted'}")
    return 0 if like >= TARGET * len(results) and not refused else 1


if __name__ == "__main__":
    sys.exit(main())
