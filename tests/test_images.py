"""Reading image files: every bad file gives a one-line ImageError, every good one the right array."""

from __future__ import annotations

import builtins
import io
import json
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from digit.images import MAX_FILE_BYTES, read_image_bytes, read_image_file
from digit.preprocessing import ImageError, preprocess

PROJECT = Path(__file__).resolve().parents[1]
PNG_MODES = {"L": (0, 1), "RGB": (2, 3), "RGBA": (6, 4)}  # mode: (PNG colour type, bytes a pixel)


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def digit_image(height: int = 60, width: int = 50) -> np.ndarray:
    """A white '7'-ish shape on black, uint8, with only the values 0 and 255."""
    image = np.zeros((height, width), np.uint8)
    image[10:16, 10:40] = 255
    for row in range(16, 52):
        column = 38 - (row - 16) // 2
        image[row, column - 3 : column + 3] = 255
    return image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_png(width: int, height: int, mode: str = "L") -> bytes:
    """A real, all-black PNG of any size, built without holding its pixels: a decompression bomb when large."""
    colour_type, depth = PNG_MODES[mode]
    rows = 50 if height % 50 == 0 else 1
    row_bytes = 1 + width * depth  # a filter byte, then the pixels
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(row_bytes * rows)) + deflate.flush(zlib.Z_FULL_FLUSH)
    total = row_bytes * height
    # Full-flush blocks can be repeated; the Adler-32 of n zero bytes is (n mod 65521) << 16 | 1.
    stream = b"\x78\xda" + block * (height // rows) + b"\x03\x00" + struct.pack(">I", (total % 65521) << 16 | 1)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b"")


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its few bytes of data cannot fill."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = png_chunk(b"IDAT", zlib.compress(bytes(100)))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + data + png_chunk(b"IEND", b"")


def assert_refused(data: bytes, *words: str) -> str:
    with pytest.raises(ImageError) as error:
        read_image_bytes(data)
    message = str(error.value)
    assert message and "\n" not in message and len(message) < 200
    for word in words:
        assert word in message
    return message


def peak_memory_mb(path: Path) -> tuple[float, str]:
    """Extra peak memory (MB) of reading `path` in a fresh process, and what it gave."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        from digit.images import read_image_file
        from digit.preprocessing import ImageError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            outcome = str(read_image_file({str(path)!r}).shape)
        except ImageError as error:
            outcome = "ImageError: " + str(error)
        extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(extra / 1024, outcome)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    extra, outcome = done.stdout.strip().split(" ", 1)
    return float(extra), outcome


# --- broken files ----------------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image_file(path)


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.png", b"this is not an image\n"),
        ("data.jpg", json.dumps({"digit": 7}).encode()),
        ("page.gif", b"<html><body>404</body></html>"),
        ("noise.webp", bytes(range(256)) * 4),
    ],
)
def test_not_an_image_with_an_image_extension(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match="not an image") as error:
        read_image_file(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("keep", [8, 40, 0.5])
def test_truncated_png(keep):
    data = encode(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8), "PNG")
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    assert_refused(data[:cut])


def test_corrupt_png_body():
    data = bytearray(encode(np.random.default_rng(1).integers(0, 256, (100, 100), dtype=np.uint8), "PNG"))
    data[200:260] = bytes(60)
    assert_refused(bytes(data))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="cannot open"):
        read_image_file(tmp_path / "nowhere.png")
    with pytest.raises(ImageError, match="not a file"):
        read_image_file(tmp_path)


def test_oversized_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.png"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: takes no disk
    with pytest.raises(ImageError, match="too large"):
        read_image_file(path)
    with pytest.raises(ImageError, match="too large"):
        read_image_bytes(bytes(MAX_FILE_BYTES + 1))


# --- good files of every kind ---------------------------------------------------------------


def test_grayscale_png(tmp_path):
    image = digit_image()
    path = tmp_path / "gray.png"
    path.write_bytes(encode(image, "PNG"))
    np.testing.assert_array_equal(read_image_file(path), image)


def test_rgb_and_rgba_png():
    rgb = np.repeat(255 - digit_image()[..., None], 3, axis=2)
    np.testing.assert_array_equal(read_image_bytes(encode(rgb, "PNG")), rgb)
    rgba = np.zeros((*digit_image().shape, 4), np.uint8)
    rgba[..., 3] = digit_image()
    result = read_image_bytes(encode(rgba, "PNG"))
    assert result.shape == rgba.shape
    np.testing.assert_array_equal(result, rgba)


def test_16_bit_png():
    image = digit_image().astype(np.uint16) * 257
    result = read_image_bytes(encode(image, "PNG"))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, digit_image())


def test_palette_png_with_transparency():
    palette_image = Image.fromarray(digit_image()).convert("P")
    buffer = io.BytesIO()
    palette_image.save(buffer, format="PNG", transparency=0)  # black is see-through
    result = read_image_bytes(buffer.getvalue())
    assert result.shape == (*digit_image().shape, 4)
    np.testing.assert_array_equal(result[..., 3] > 0, digit_image() > 0)


def test_bilevel_png():
    buffer = io.BytesIO()
    Image.fromarray(digit_image() > 0).save(buffer, format="PNG")
    np.testing.assert_array_equal(read_image_bytes(buffer.getvalue()), digit_image())


def test_jpeg_named_png(tmp_path):
    image = digit_image()
    path = tmp_path / "photo.png"
    path.write_bytes(encode(image, "JPEG", quality=95))
    result = read_image_file(path)
    assert result.shape == image.shape
    assert np.abs(result.astype(int) - image).mean() < 8  # JPEG is lossy


def test_animated_gif_gives_the_first_frame():
    first, second = Image.fromarray(digit_image()), Image.fromarray(255 - digit_image())
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 2
    result = read_image_bytes(buffer.getvalue())
    gray = result[..., 0] if result.ndim == 3 else result
    np.testing.assert_array_equal(gray, digit_image())


@pytest.mark.parametrize("fmt, options", [("BMP", {}), ("WEBP", {"lossless": True}), ("TIFF", {})])
def test_bmp_webp_tiff(fmt, options):
    rgb = np.repeat(digit_image()[..., None], 3, axis=2)
    result = read_image_bytes(encode(rgb, fmt, **options))
    gray = result if result.ndim == 2 else result[..., 0]
    np.testing.assert_array_equal(gray, digit_image())


def test_lossy_webp():
    rgb = np.repeat(digit_image()[..., None], 3, axis=2)
    result = read_image_bytes(encode(rgb, "WEBP", quality=90))
    assert result.shape[:2] == digit_image().shape
    assert np.abs(result[..., 0].astype(int) - digit_image()).mean() < 10


def test_one_pixel_image():
    result = read_image_bytes(encode(np.full((1, 1), 200, np.uint8), "PNG"))
    assert result.shape == (1, 1) and result[0, 0] == 200
    assert preprocess(result) is None  # and the pipeline after it copes


def test_every_good_file_gives_the_same_digit_after_preprocessing(tmp_path):
    image = np.kron(digit_image(), np.ones((4, 4), np.uint8))  # 240x200
    expected = preprocess(image)
    variants = {
        "white.png": encode(image, "PNG"),
        "dark-on-light.png": encode(255 - image, "PNG"),
        "rgb.jpg": encode(np.repeat(image[..., None], 3, axis=2), "JPEG", quality=95),
        "drawing.webp": encode(255 - image, "WEBP", lossless=True),
        "drawing.bmp": encode(image, "BMP"),
        "big.png": encode(np.kron(image, np.ones((8, 8), np.uint8)), "PNG"),  # 1920x1600
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
        x = preprocess(read_image_file(tmp_path / name))
        assert x is not None, name
        assert np.abs(x - expected).mean() < 0.03, name


# --- huge images and decompression bombs ------------------------------------------------------


def test_zero_png_helper_builds_a_valid_png():
    result = read_image_bytes(zero_png(300, 200, "RGBA"))
    assert result.shape == (200, 300, 4) and result.max() == 0


@pytest.mark.parametrize("width, height", [(20_000, 20_000), (11_000, 9_500), (100_000, 1_001)])
def test_over_100_megapixels_refused_at_once(width, height):
    data = header_only_png(width, height)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        assert_refused(data, "too large")
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 10_000_000


def test_decompression_bomb_refused_quickly():
    bomb = zero_png(12_000, 12_000)  # 144 megapixels in about 140 kB
    assert len(bomb) < 1_000_000
    started = time.perf_counter()
    assert_refused(bomb, "too large")
    assert time.perf_counter() - started < 1.0


def test_bomb_under_the_pixel_limit_is_refused_without_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(zero_png(9_000, 9_000, "RGBA"))  # 81 megapixels, 324 MB decoded, about 320 kB on disk
    started = time.perf_counter()
    extra_mb, outcome = peak_memory_mb(path)
    assert outcome.startswith("ImageError") and "too large" in outcome
    assert extra_mb < 50
    assert time.perf_counter() - started < 30  # mostly the interpreter starting


def test_large_grayscale_image_is_decoded_small(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(zero_png(9_000, 9_000, "L"))  # 81 megapixels of 1 byte: allowed, downscaled while decoding
    extra_mb, outcome = peak_memory_mb(path)
    height, width = (int(v) for v in outcome.strip("()").split(", "))
    assert height * width <= 4_000_000
    assert extra_mb < 150


def test_large_image_keeps_its_digit():
    image = np.kron(digit_image(), np.ones((50, 50), np.uint8))  # 3000x2500, 7.5 megapixels
    result = read_image_bytes(encode(image, "PNG"))
    assert result.shape[0] * result.shape[1] <= 4_000_000
    x, small = preprocess(result), preprocess(digit_image())
    assert np.abs(x - small).mean() < 0.06
    assert np.corrcoef(x.ravel(), small.ravel())[0, 1] > 0.8


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    path.write_bytes(encode(digit_image(), "PNG"))

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ImageError, match=r"cannot read locked\.png: Permission denied"):
        read_image_file(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_bytes_are_decoded_in_memory(monkeypatch, fmt):
    data = encode(digit_image(), fmt)
    read_image_bytes(data)  # plugins loaded

    def no_disk(*args, **kwargs):
        raise AssertionError("touched the disk")

    for module, name in [(builtins, "open"), (tempfile, "mkstemp"), (tempfile, "NamedTemporaryFile")]:
        monkeypatch.setattr(module, name, no_disk)
    assert read_image_bytes(data).shape[:2] == digit_image().shape


SEED_FILES = [encode(digit_image(), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEED_FILES),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    st.integers(1, 10**6),
)
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about corrupt EXIF, then copes
def test_damaged_files_give_an_array_or_image_error(data, changes, keep):
    damaged = bytearray(data)
    for position, value in changes:
        damaged[position % len(damaged)] = value
    try:
        preprocess(read_image_bytes(bytes(damaged[: keep % len(damaged) + 1])))  # decoded, then prepared
    except ImageError as error:
        assert str(error) and "\n" not in str(error)
