"""Small real ELF files for tests, built with gcc and cached by their source: libraries and programs.

The app check reads ELF with pyelftools; its tests read files a real compiler and linker wrote,
so NEEDED entries, RPATH/RUNPATH and imported symbols are what the loader sees, not a fixture's
idea of them. ``build_library`` makes a shared object with a SONAME, ``build_program`` an
executable linked against such libraries (``-l:<file>``), with an RPATH or RUNPATH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

CACHE = Path(__file__).resolve().parents[2] / "tests" / ".work" / "elf-builds"


def _build(kind: str, name: str, source: str, args: Sequence[str]) -> Path:
    key = hashlib.sha256("\0".join([kind, name, source, *args]).encode()).hexdigest()[:16]
    target = CACHE / key / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    src = target.parent / f"{name}.c"
    src.write_text(source)
    partial = target.with_name(f".{name}.{os.getpid()}")
    gcc = shutil.which("gcc") or "gcc"
    proc = subprocess.run([gcc, "-O0", "-w", "-o", str(partial), str(src), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gcc could not build {name}: {proc.stderr}")
    partial.rename(target)
    return target


def build_library(name: str, source: str, soname: str | None = None, links: Sequence[Path] = ()) -> Path:
    """A shared object ``name`` (SONAME ``soname`` or ``name``) that links the libraries in ``links``."""
    args = ["-shared", "-fPIC", f"-Wl,-soname,{soname or name}"]
    for lib in links:
        args += [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath-link,{lib.parent}"]
    return _build("lib", name, source, args)


def build_program(
    name: str,
    source: str,
    links: Sequence[Path] = (),
    rpath: str | None = None,
    runpath: bool = False,
    link_dirs: Sequence[Path] = (),
) -> Path:
    """An executable linked against ``links``; ``rpath`` becomes DT_RPATH, or DT_RUNPATH with ``runpath``.

    ``link_dirs`` hold the libraries ``links`` need in turn (searched at link time only).
    """
    args = [f"-Wl,-rpath-link,{d}" for d in link_dirs]
    for lib in links:
        args += [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath-link,{lib.parent}"]
    if rpath is not None:
        args.append(f"-Wl,{'--enable-new-dtags' if runpath else '--disable-new-dtags'},-rpath,{rpath}")
    return _build("exe", name, source, args)


def declare(*functions: str) -> str:
    """C declarations of ``int f();`` for each name (the linker only needs the symbols)."""
    return "".join(f"int {f}();\n" for f in functions)


def call_all(*functions: str) -> str:
    """A ``main`` that references every function, so each becomes an import of the program."""
    body = "".join(f"  if (argc > 99) {f}();\n" for f in functions)
    return declare(*functions) + f"int main(int argc, char** argv) {{\n  (void)argv;\n{body}  return 0;\n}}\n"
