"""Hand the pages of library code that ran once back to the kernel, in a process that trains.

Importing TensorFlow runs the registration code of every op and kernel it has, and tracing a
model's first step runs its graph optimizers: about 300 MB of the libraries' code that a training
process touches once and then keeps resident for its whole life. Community Cloud counts it
against the app's 1 GB. `release_library_pages` asks Linux (5.4 and later) to page out the
read-only, file-backed mappings of the process: code and constants, which the kernel reads back
from the file on the next touch. Only what training runs again comes back (about 70 MB).
Nothing of the process' own data is touched, pages that another process also maps (the Python
interpreter the server shares) stay, and elsewhere (macOS, Windows, an older kernel) it does nothing.
It is off until `enable()`: `python -m digit train` turns it on in a process of its own, and a
program that calls the library (the test suite, a notebook) keeps its pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

MADV_PAGEOUT = 21  # linux/mman.h, since 5.4: reclaim these pages now
MAPS = "/proc/self/maps"
_enabled = False


def enable() -> None:
    """Let `release_library_pages` work in this process (one that only trains)."""
    global _enabled
    _enabled = True


def release_library_pages() -> int:
    """Page out the read-only file-backed mappings of this process; the bytes asked for (0 where unsupported)."""
    madvise = _madvise() if _enabled else None
    if madvise is None:
        return 0
    # A mapping the kernel will not page out (locked, a device's, or a kernel before 5.4: EINVAL)
    # is left as it is; the others still go.
    spans = [(start, end - start) for start, end in library_mappings()]
    return sum(length for start, length in spans if madvise(start, length, MADV_PAGEOUT) == 0)


def library_mappings(maps: str = MAPS) -> list[tuple[int, int]]:
    """(start, end) of each mapping of a file that the process cannot write: code and read-only data."""
    try:
        with open(maps) as lines:
            return [span for line in lines if (span := _read_only_file_span(line))]
    except OSError:
        return []


def _read_only_file_span(line: str) -> tuple[int, int] | None:
    # "7f01a2c00000-7f01a2e00000 r-xp 00000000 08:01 1234  /usr/lib/libfoo.so" (path may hold spaces)
    fields = line.split(maxsplit=5)
    if len(fields) < 6 or "w" in fields[1] or not fields[5].startswith("/"):
        return None  # writable (data the process changed), anonymous, or [heap], [stack], [vdso]...
    start, end = (int(address, 16) for address in fields[0].split("-"))
    return start, end


@cache
def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise
