"""digit.resident: a training process hands the library code it ran once back to the kernel."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from digit import resident

MAPS = textwrap.dedent(
    """\
    55d0c0000000-55d0c0021000 r--p 00000000 08:01 131  /usr/bin/python3.11
    7f0000000000-7f0000400000 r-xp 00001000 08:01 777  /venv/lib/libtensorflow_cc.so.2
    7f0000400000-7f0000500000 rw-p 00401000 08:01 777  /venv/lib/libtensorflow_cc.so.2
    7f0000500000-7f0000600000 rw-p 00000000 00:00 0
    7f0000600000-7f0000601000 r--p 00000000 08:01 888  /data/a model with spaces.tflite
    7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0    [stack]
    7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0    [vdso]
    """
)


def test_only_read_only_file_mappings_are_chosen(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(MAPS)
    assert resident.library_mappings(str(maps)) == [
        (0x55D0C0000000, 0x55D0C0021000),  # the interpreter's code
        (0x7F0000000000, 0x7F0000400000),  # a library's code; its written data (rw-p) stays
        (0x7F0000600000, 0x7F0000601000),  # a read-only file, spaces in its name
    ]


def test_no_maps_file_means_nothing_to_release(tmp_path):
    assert resident.library_mappings(str(tmp_path / "absent")) == []


def test_off_unless_enabled():
    assert not resident._enabled, "the test process must keep its pages"
    assert resident.release_library_pages() == 0


CHILD = """
import json, mmap, os, sys, tempfile
from digit import resident

def resident_kb(path):
    # The Rss of the mapping of `path`, from /proc/self/smaps.
    lines = open("/proc/self/smaps").read().splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith(path))
    return next(int(line.split()[1]) for line in lines[at + 1:] if line.startswith("Rss:"))

# A file only this process maps: pages that another process maps too (NumPy's code in a second
# test worker, say) stay where they are, by design, and would make the figures depend on others.
with tempfile.NamedTemporaryFile(dir=sys.argv[1], delete=False) as file:
    file.write(os.urandom(1 << 16) * 512)  # 32 MB
with open(file.name, "rb") as source:
    view = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
checksum = sum(view[i] for i in range(0, len(view), 4096))  # every page touched
before = resident_kb(file.name)
resident.enable()
asked = resident.release_library_pages()
after = resident_kb(file.name)
again = sum(view[i] for i in range(0, len(view), 4096))  # read back from the file
print(json.dumps({"before": before, "after": after, "asked": asked, "same": again == checksum}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's (5.4 and later)")
def test_an_enabled_process_pages_out_read_only_file_mappings_and_reads_them_back(tmp_path):
    command = [sys.executable, "-c", CHILD, str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(done.stdout.splitlines()[-1])
    if figures["asked"] == 0:
        pytest.skip("this kernel has no MADV_PAGEOUT (Linux before 5.4)")
    assert figures["before"] >= 30_000, figures  # the 32 MB file, resident once read
    assert figures["after"] <= 1_000, figures  # handed back
    assert figures["same"], "the bytes read back are the file's"
