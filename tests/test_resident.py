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
import json, numpy, cv2
from digit import resident

def file_backed_kb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssFile"))

numpy.linalg.inv(numpy.eye(50)); cv2.resize(numpy.zeros((50, 50), numpy.uint8), (10, 10))  # touch their code
before = file_backed_kb()
resident.enable()
asked = resident.release_library_pages()
after = file_backed_kb()
numpy.linalg.inv(numpy.eye(50)); cv2.resize(numpy.zeros((50, 50), numpy.uint8), (10, 10))  # and it still runs
print(json.dumps({"before": before, "after": after, "asked": asked}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's (5.4 and later)")
def test_an_enabled_process_pages_out_its_libraries_and_keeps_working():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(done.stdout.splitlines()[-1])
    if figures["asked"] == 0:
        pytest.skip("this kernel has no MADV_PAGEOUT (Linux before 5.4)")
    # OpenCV's and NumPy's code went back; what stays is shared with other processes (libc, Python's own)
    assert figures["after"] < 0.75 * figures["before"] and figures["before"] - figures["after"] > 5_000, figures
