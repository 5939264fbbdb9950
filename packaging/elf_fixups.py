"""Post-build fixes for ELF libraries in the Linux bundle: executable stack, debug info.

1. Clear the executable-stack flag (what `execstack -c` does). Why: glibc 2.41+
refuses to `dlopen` a library whose PT_GNU_STACK header asks for an executable
stack ("cannot enable executable stack as shared object requires"), and some
wheels (older CTranslate2 builds among them) ship such libraries. None of them
actually executes code on the stack, so clearing the flag is safe and needs no
extra tool (patchelf/execstack are not installed everywhere). Pure Python so the
PyInstaller spec and the tests can use it on any build machine.

2. Strip debug information (`strip --strip-debug`) from libraries that carry it:
CTranslate2's extension alone ships 63 MB of DWARF, libpython 17 MB. Only debug
sections go; symbol tables and everything the dynamic loader reads stay, so this is
safe for wheels that auditwheel rewrote (unlike a full `strip`).

3. Report the newest glibc symbol version any ELF file in the bundle needs
(`GLIBC_x.y` in its version references, as `objdump -p` / `readelf -V` list them):
the .deb's `Depends: libc6 (>= x.y)`, so apt refuses a system too old to run it
instead of the app failing at start with "version `GLIBC_x.y' not found".
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

PT_GNU_STACK = 0x6474E551
PF_X = 0x1
ELF_MAGIC = b"\x7fELF"


def _stack_flags_offset(data: bytes) -> int | None:
    """File offset of the PT_GNU_STACK header's p_flags, or None if absent / not ELF."""
    if len(data) < 64 or data[:4] != ELF_MAGIC:
        return None
    is_64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is_64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
        flags_at = 4  # p_type, p_flags, ...
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
        flags_at = 24  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags
    for i in range(phnum):
        start = phoff + i * phentsize
        if start + phentsize > len(data):
            return None
        p_type, = struct.unpack_from(endian + "I", data, start)
        if p_type == PT_GNU_STACK:
            return start + flags_at
    return None


def has_execstack(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(1 << 16)  # program headers sit near the start
    off = _stack_flags_offset(head)
    if off is None:
        return False
    endian = "<" if head[5] == 1 else ">"
    flags, = struct.unpack_from(endian + "I", head, off)
    return bool(flags & PF_X)


def clear_execstack(path: Path) -> bool:
    """Clear PF_X on PT_GNU_STACK in place. True if the file was changed."""
    with path.open("r+b") as fh:
        head = fh.read(1 << 16)
        off = _stack_flags_offset(head)
        if off is None:
            return False
        endian = "<" if head[5] == 1 else ">"
        flags, = struct.unpack_from(endian + "I", head, off)
        if not flags & PF_X:
            return False
        fh.seek(off)
        fh.write(struct.pack(endian + "I", flags & ~PF_X))
    return True


def has_debug_info(path: Path) -> bool:
    """True if the ELF file has a `.debug_info` section (read from the section headers)."""
    try:
        with path.open("rb") as fh:
            ident = fh.read(64)
            if len(ident) < 64 or ident[:4] != ELF_MAGIC or ident[4] != 2:
                return False  # 64-bit only: every platform we ship
            endian = "<" if ident[5] == 1 else ">"
            shoff, = struct.unpack_from(endian + "Q", ident, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", ident, 0x3A)
            if shoff == 0 or shnum == 0 or shstrndx >= shnum:
                return False
            fh.seek(shoff)
            table = fh.read(shentsize * shnum)
            str_off, str_size = struct.unpack_from(endian + "QQ", table, shstrndx * shentsize + 0x18)
            fh.seek(str_off)
            names = fh.read(str_size)
    except (OSError, struct.error):
        return False
    return b".debug_info\x00" in names


def strip_debug_in_tree(root: Path) -> list[tuple[Path, int]]:
    """`strip --strip-debug` every library with debug info; returns (path, bytes saved).

    Without a `strip` tool (binutils) nothing changes: the bundle is only bigger.
    """
    tool = shutil.which("strip")
    if tool is None:
        return []
    saved = []
    for path in shared_libraries(root):
        if not has_debug_info(path):
            continue
        before = path.stat().st_size
        subprocess.run([tool, "--strip-debug", str(path)], check=True)
        saved.append((path, before - path.stat().st_size))
    return saved


def shared_libraries(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and (".so" in path.name):
            yield path


def clear_execstack_in_tree(root: Path) -> list[Path]:
    """Clear the flag on every shared library under `root`; returns the ones changed."""
    return [p for p in shared_libraries(root) if clear_execstack(p)]


def elf_files(root: Path) -> Iterator[Path]:
    """Every ELF file under `root` (libraries, extension modules, executables); no symlinks."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                with path.open("rb") as fh:
                    if fh.read(4) == ELF_MAGIC:
                        yield path
            except OSError:
                continue


_GLIBC_VERSION = re.compile(rb"\bGLIBC_(\d+(?:\.\d+)+)\b")


def glibc_requirement(paths: Iterable[Path]) -> str | None:
    """Highest `GLIBC_x.y` version the files reference, e.g. "2.35"; None if none does.

    Raises RuntimeError when neither objdump nor readelf (binutils) is installed: a
    missing answer must not turn into a package without a glibc requirement.
    """
    if shutil.which("objdump"):
        base = ["objdump", "-p"]
    elif shutil.which("readelf"):
        base = ["readelf", "-V", "--wide"]
    else:
        raise RuntimeError("neither objdump nor readelf found: install binutils")
    files = [str(p) for p in paths]
    found: set[tuple[int, ...]] = set()
    for start in range(0, len(files), 200):
        proc = subprocess.run(base + files[start:start + 200], capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{base[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        found.update(tuple(int(n) for n in m.split(b".")) for m in _GLIBC_VERSION.findall(proc.stdout))
    return ".".join(map(str, max(found))) if found else None


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--glibc-requirement"]:
        # build_linux.sh: print the highest GLIBC_x.y the bundle needs (nothing if none).
        needed = glibc_requirement(p for arg in sys.argv[2:] for p in elf_files(Path(arg)))
        print(needed or "")
        sys.exit(0)
    for arg in sys.argv[1:]:
        for changed in clear_execstack_in_tree(Path(arg)):
            print(f"cleared executable stack: {changed}")
        for stripped, n in strip_debug_in_tree(Path(arg)):
            print(f"stripped {n >> 20} MB of debug info: {stripped}")
