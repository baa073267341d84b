# SPDX-License-Identifier: Apache-2.0
"""ELF64 little-endian dynamic sections: read DT_NEEDED, rewrite DT_RPATH/DT_RUNPATH in place.

The pytriton wheel's binaries carry an RPATH into the wheel's own ``nvidia_pytriton.libs/``;
the wheel layout (``triton_server_layout``) rewrites it to ``$ORIGIN/<relative path to lib/>``
so ``bin/tritonserver`` and the python backend stub find ``<release>/lib`` without
``LD_LIBRARY_PATH``. The inspection (``triton_server_inspect``) reads DT_NEEDED to tell a GPU
build. No tool (patchelf) is needed on the host: the new string must fit in the old one's bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 1, 5, 15, 29


def _elf_dynamic(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """Parse an ELF64-LE image: return ([(tag, value, entry_offset)], file offset of .dynstr).

    Raises ValueError for anything that is not a dynamically linked ELF64 little-endian file.
    """
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []
    dyn_off = dyn_size = None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dyn_off, dyn_size = p_offset, p_filesz
    if dyn_off is None or dyn_size is None:
        raise ValueError("no PT_DYNAMIC segment (static binary?)")
    entries: list[tuple[int, int, int]] = []
    for off in range(dyn_off, dyn_off + dyn_size, 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        entries.append((tag, val, off))
    strtab_vaddr = next((val for tag, val, _ in entries if tag == _DT_STRTAB), None)
    if strtab_vaddr is None:
        raise ValueError("no DT_STRTAB entry")
    for vaddr, offset, filesz in loads:
        if vaddr <= strtab_vaddr < vaddr + filesz:
            return entries, strtab_vaddr - vaddr + offset
    raise ValueError("DT_STRTAB is outside every PT_LOAD segment")


def _cstring(data: bytes, offset: int) -> str:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode("utf-8", "replace")


def elf_needed(path: Path) -> list[str]:
    """Return the DT_NEEDED libraries of ``path``; [] when it is not a dynamic ELF64-LE file."""
    try:
        data = path.read_bytes()
        entries, strtab = _elf_dynamic(data)
    except (OSError, ValueError, struct.error, IndexError):
        return []
    return [_cstring(data, strtab + val) for tag, val, _ in entries if tag == _DT_NEEDED]


def elf_rpath(path: Path) -> str | None:
    """Return the DT_RUNPATH (preferred) or DT_RPATH of ``path``, or None when it has neither."""
    data = path.read_bytes()
    entries, strtab = _elf_dynamic(data)
    by_tag = {tag: val for tag, val, _ in entries}
    for tag in (_DT_RUNPATH, _DT_RPATH):
        if tag in by_tag:
            return _cstring(data, strtab + by_tag[tag])
    return None


def set_elf_rpath(path: Path, rpath: str) -> bool:
    """Overwrite the RPATH/RUNPATH string of ``path`` with ``rpath``, in place.

    The new string must fit in the old one's bytes (it is NUL-padded), and the old string must
    not be shared with another dynamic entry. Returns True when the file changed.
    Raises ValueError when the file has no RPATH or the new one does not fit.
    """
    data = bytearray(path.read_bytes())
    entries, strtab = _elf_dynamic(bytes(data))
    targets = [val for tag, val, _ in entries if tag in (_DT_RPATH, _DT_RUNPATH)]
    if not targets:
        raise ValueError(f"{path} has no RPATH/RUNPATH to rewrite")
    changed = False
    for val in targets:
        start = strtab + val
        old = _cstring(bytes(data), start)
        if old == rpath:
            continue
        old_len = len(old.encode())
        new = rpath.encode()
        if len(new) > old_len:
            raise ValueError(f"{path}: new RPATH {rpath!r} is longer than the old {old!r}")
        shared = [v for tag, v, _ in entries if tag == _DT_NEEDED and val < v <= val + old_len]
        if shared:
            raise ValueError(f"{path}: RPATH string is shared with another dynamic entry")
        data[start : start + old_len] = new + b"\x00" * (old_len - len(new))
        changed = True
    if changed:
        path.write_bytes(bytes(data))
    return changed


def is_elf(path: Path) -> bool:
    """True when ``path`` starts with the ELF magic."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False
