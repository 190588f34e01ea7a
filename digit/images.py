"""Read image files (PNG, JPEG, BMP, WebP, GIF, ...) into numpy arrays, safely and in memory."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from digit.preprocessing import MAX_PIXELS, ImageError

MAX_FILE_BYTES = 20 * 1024 * 1024  # larger files are refused before they are decoded
WORK_PIXELS = 4_000_000  # larger images are downscaled to about this size as they are decoded
MAX_DECODED_BYTES = 100_000_000  # memory a decoded image may take; beyond it, a decompression bomb
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F")  # the modes Pillow's reduce() takes


def read_image_file(path: str | Path) -> np.ndarray:
    """Read an image file; ImageError with a one-line reason when it cannot be read."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ImageError(f"cannot open {path.name}: {error.strerror or error}") from error
    if not path.is_file():
        raise ImageError(f"{path.name} is not a file")
    _check_byte_size(size)
    try:
        data = path.read_bytes()
    except OSError as error:  # unreadable, or gone since stat()
        raise ImageError(f"cannot read {path.name}: {error.strerror or error}") from error
    return read_image_bytes(data)


def read_image_bytes(data: bytes) -> np.ndarray:
    """Decode image bytes to (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) uint8 (float32 for float TIFFs), in memory.

    Images over WORK_PIXELS come back box-averaged to about that size (preprocessing works smaller still).
    """
    _check_byte_size(len(data))
    if not data:
        raise ImageError("the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                return _decode(image)
        except ImageError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(_reason(error)) from error
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as error:
            raise ImageError(f"the image is damaged or incomplete ({_first_line(error)})") from error


def _decode(image: Image.Image) -> np.ndarray:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"the image is too large ({width}x{height}); the limit is 100 megapixels")
    if width * height > WORK_PIXELS and image.format == "JPEG":
        image.draft("L", (2048, 2048))  # let the JPEG decoder downscale: fast, little memory
    if _decoded_bytes(image) > MAX_DECODED_BYTES:
        raise ImageError(f"the image is too large to decode safely ({width}x{height} {image.mode}); use a smaller one")
    image.seek(0)  # the first frame of an animation
    image.load()
    image = _reduced(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _from_wide_integers(np.asarray(image))
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    target = {"1": "L", "L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA"}.get(image.mode)
    if target is None:  # palette, CMYK, YCbCr, ...: RGBA keeps any transparency
        target = "RGBA" if image.mode in ("P", "PA") or "transparency" in image.info else "RGB"
    return np.asarray(image.convert(target))


def _decoded_bytes(image: Image.Image) -> int:
    # Pillow keeps 1 byte a pixel for bilevel and grayscale images, 4 for the rest; palettes become RGBA.
    width, height = image.size
    return width * height * (1 if image.mode in ("1", "L") else 4)


def _reduced(image: Image.Image) -> Image.Image:
    """A large image box-averaged down to about WORK_PIXELS, before any copy of it is made."""
    factor = math.ceil(math.sqrt(image.width * image.height / WORK_PIXELS))
    return image.reduce(factor) if factor > 1 and image.mode in REDUCIBLE_MODES else image


def _from_wide_integers(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.int64)
    high = 65535 if array.max(initial=0) > 255 else 255
    return (array.clip(0, high) * (255 / high)).astype(np.uint8)


def _check_byte_size(size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ImageError(
            f"the file is too large ({size / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB"
        )


def _reason(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image file (or a format that cannot be read: use PNG, JPEG, BMP, WebP or GIF)"
    return "the image is too large to decode safely (a decompression bomb?)"


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__
