# SPDX-License-Identifier: Apache-2.0
"""Write minimal ELF64 little-endian files: the dynamic section the install reads, nothing runnable.

One PT_LOAD over the whole file and one PT_DYNAMIC with DT_NEEDED entries, DT_STRTAB and,
when given, DT_RPATH: what module_utils/triton_elf.py reads (DT_NEEDED tells a GPU build) and
rewrites (the RPATH). Standalone, so tests/fakes/build.py can load it from its own directory.
"""

from __future__ import annotations

import struct
from pathlib import Path

_DT_NEEDED, _DT_STRTAB, _DT_RPATH = 1, 5, 15
_STRTAB_AT = 0x100
_DYNAMIC_AT = 0x200


def write_elf(path: Path, needed: list[str], rpath: str | None = None) -> Path:
    """Write ``path`` as an ELF64-LE shared object needing ``needed`` (in order), with ``rpath`` if given."""
    strings = [*needed, *([rpath] if rpath is not None else [])]
    strtab = b"\x00"
    offsets = []
    for text in strings:
        offsets.append(len(strtab))
        strtab += text.encode() + b"\x00"
    if _STRTAB_AT + len(strtab) > _DYNAMIC_AT:
        raise ValueError("names too long for a minimal ELF")
    entries = [(_DT_NEEDED, offset) for offset in offsets[: len(needed)]]
    entries.append((_DT_STRTAB, _STRTAB_AT))
    if rpath is not None:
        entries.append((_DT_RPATH, offsets[-1]))
    dynamic = b"".join(struct.pack("<qQ", tag, value) for tag, value in [*entries, (0, 0)])
    size = _DYNAMIC_AT + len(dynamic)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    program = struct.pack("<IIQQQQQQ", 1, 4, 0, 0, 0, size, size, 0x1000)
    program += struct.pack("<IIQQQQQQ", 2, 4, _DYNAMIC_AT, _DYNAMIC_AT, _DYNAMIC_AT, len(dynamic), len(dynamic), 8)
    image = bytearray(size)
    image[: len(header)] = header
    image[64 : 64 + len(program)] = program
    image[_STRTAB_AT : _STRTAB_AT + len(strtab)] = strtab
    image[_DYNAMIC_AT:] = dynamic
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(image))
    return path
