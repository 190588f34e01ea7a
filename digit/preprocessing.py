"""Turn any image a user can make into a 28x28 digit the way MNIST was made.

MNIST digits were cropped to their ink, scaled so the longer side is 20 px (keeping the
aspect ratio, anti-aliased), and placed in a 28x28 field with their centre of mass at the
centre. Doing exactly that to a drawing is what makes the model recognise it.

    >>> x = preprocess(canvas_rgba)   # (28, 28) float32 in [0, 1], or None if blank
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digit.config import DIGIT_BOX, IMAGE_SIZE

MAX_PIXELS = 100_000_000  # arrays larger than this are refused, not processed
WORK_SIZE = 160  # larger images are first shrunk to this longer side: same result, much faster
INK_THRESHOLD = 0.2  # intensity (after background removal) that counts as ink
NOISE_FLOOR = 0.08  # fainter than this is background noise (paper texture, JPEG ringing)
MIN_EXTENT = 0.08  # a digit spans at least this fraction of the image's longer side
DOT_EXTENT = 0.25  # ... and a blob smaller than this that is mostly filled is a dot, not a digit
DOT_FILL = 0.6
# Stroke width over the digit's longer side, by stroke_width(): the median over 2,000 MNIST
# test digits is 0.134 (5% to 95%: 0.098 to 0.201); canvas drawings span 0.07 to 0.31.
MNIST_STROKE_RATIO = 0.134
THICKNESS_MIN_SIZE = 30  # crops smaller than this are at MNIST's own scale: left as they are
THICKNESS_WORK_SIZE = 64  # larger crops are shrunk to this first: 3x the final 20 px is plenty, and fast
SPECK_EXTENT = 0.02  # detached ink smaller than this fraction of the longer side is noise, not a stroke
SPARSE_FILL = 0.05  # ink filling less of its box than this is checked for specks (strokes fill more)


class ImageError(ValueError):
    """An array that cannot be read as an image."""


@dataclass(frozen=True)
class Steps:
    """The intermediate images of preprocessing, for showing a user what the model sees."""

    grayscale: np.ndarray  # white ink on black, [0, 1], working size
    cropped: np.ndarray | None  # the ink's bounding box
    scaled: np.ndarray | None  # longer side 20 px
    result: np.ndarray | None  # 28x28, centred by centre of mass; None when blank


def preprocess(image: np.ndarray) -> np.ndarray | None:
    """A (28, 28) float32 image in [0, 1], white ink on black; None for a blank image."""
    return preprocess_steps(image).result


def preprocess_steps(image: np.ndarray) -> Steps:
    """Run preprocessing and keep every intermediate image."""
    gray = ink_intensity(image)
    box = ink_bounding_box(gray)
    if box is None:
        return Steps(gray, None, None, None)
    top, bottom, left, right = box
    cropped = normalise_thickness(_at_most(gray[top:bottom, left:right], THICKNESS_WORK_SIZE))
    scaled = fit_in_box(cropped, DIGIT_BOX)
    return Steps(gray, cropped, scaled, centre_by_mass(scaled, IMAGE_SIZE))


def stroke_width(ink: np.ndarray) -> float:
    """Estimated stroke width in pixels: four times the mean distance of ink pixels to the background."""
    mask = np.pad((ink >= 0.5).astype(np.uint8), 1)
    if not mask.any():
        return 0.0
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    return 4.0 * float(distance[mask > 0].mean())  # a band of width w has mean distance w / 4


def normalise_thickness(crop: np.ndarray) -> np.ndarray:
    """Dilate or erode a cropped drawing so its stroke width over its size matches MNIST's.

    A pen's width is fixed in canvas pixels, so a small digit comes out bold and a large one
    thin once scaled to 20 px; MNIST's strokes are about 0.134 of the digit's size. Images
    already at MNIST's scale are left alone: at 20 px a one-pixel change is too coarse.
    """
    if max(crop.shape) < THICKNESS_MIN_SIZE:
        return crop
    change = MNIST_STROKE_RATIO * max(crop.shape) - stroke_width(crop)
    radius = round(abs(change) / 2)
    if radius < 1:
        return crop
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    padded = np.pad(crop, radius)
    if change > 0:
        return _trimmed(cv2.dilate(padded, kernel))
    eroded = cv2.erode(padded, kernel)
    return _trimmed(eroded) if (eroded >= 0.5).any() else crop


def _at_most(ink: np.ndarray, size: int) -> np.ndarray:
    return fit_in_box(ink, size) if max(ink.shape) > size else ink


def _trimmed(ink: np.ndarray) -> np.ndarray:
    """Cut away the empty margin around the ink."""
    rows = np.flatnonzero(ink.max(axis=1) >= INK_THRESHOLD)
    cols = np.flatnonzero(ink.max(axis=0) >= INK_THRESHOLD)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if rows.size else ink


def ink_intensity(image: np.ndarray) -> np.ndarray:
    """Any numpy image to float32 ink intensity in [0, 1] (1 = ink), background removed."""
    array = _checked_array(image)
    gray = _to_unit_gray(array)
    background = _background_level(gray)
    if background > 0.5:  # dark ink on a light background: flip to MNIST's white on black
        gray = 1.0 - gray
        background = 1.0 - background
    span = max(1.0 - background, 1e-6)
    ink = (gray - background) / span
    ink[ink < NOISE_FLOOR] = 0.0
    return np.clip(ink, 0.0, 1.0, out=ink)


def ink_bounding_box(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the ink, or None when it is blank, a dot or a speck."""
    mask = ink >= INK_THRESHOLD
    box = _mask_box(mask)
    if box is not None and _fill(mask, box) < SPARSE_FILL:  # sparse ink may be speckle noise: look closer
        mask = _without_specks(mask)
        box = _mask_box(mask)
    if box is None:
        return None
    top, bottom, left, right = box
    extent = max(bottom - top, right - left) / max(ink.shape)
    if extent < MIN_EXTENT:
        return None
    if extent < DOT_EXTENT and _fill(mask, box) > DOT_FILL:
        return None
    return box


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1] + 1), int(cols[0]), int(cols[-1] + 1)


def _fill(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    top, bottom, left, right = box
    return float(mask[top:bottom, left:right].mean())


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """The mask less its specks: tiny detached blobs (speckle noise) that would stretch the ink's box."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    extents = stats[:, cv2.CC_STAT_WIDTH : cv2.CC_STAT_HEIGHT + 1].max(axis=1)
    keep = extents > max(1.0, SPECK_EXTENT * max(mask.shape))
    keep[0] = False  # label 0 is the background
    return keep[labels]


def fit_in_box(ink: np.ndarray, size: int) -> np.ndarray:
    """Scale so the longer side is `size` pixels, keeping the aspect ratio (area interpolation)."""
    height, width = ink.shape
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(ink, (new_w, new_h), interpolation=interpolation)


def centre_by_mass(ink: np.ndarray, size: int) -> np.ndarray:
    """Place `ink` in a size x size field with its centre of mass at the centre."""
    height, width = ink.shape
    total = float(ink.sum())
    if total > 0:
        com_y = float((ink.sum(axis=1) * np.arange(height)).sum()) / total
        com_x = float((ink.sum(axis=0) * np.arange(width)).sum()) / total
    else:
        com_y, com_x = (height - 1) / 2, (width - 1) / 2
    centre = size / 2  # where MNIST's centres of mass sit: 14.0 +- 0.3 in pixel coordinates
    top = _clamp(round(centre - com_y), 0, size - height)
    left = _clamp(round(centre - com_x), 0, size - width)
    field = np.zeros((size, size), dtype=np.float32)
    field[top : top + height, left : left + width] = ink
    return np.clip(field, 0.0, 1.0, out=field)


def _checked_array(image: np.ndarray) -> np.ndarray:
    if image is None:
        raise ImageError("no image")
    array = np.asarray(image)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ImageError(f"an image must hold numbers, not {array.dtype}")
    if array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"an image has 1, 2, 3 or 4 channels, not {array.shape[2]}")
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise ImageError(f"an image is (H, W) or (H, W, channels), not {array.shape}")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageError(f"the image is too large ({array.shape[1]}x{array.shape[0]}); the limit is 100 megapixels")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ImageError("the image holds NaN or infinite values")
    return array


def _to_unit_gray(array: np.ndarray) -> np.ndarray:
    """float32 grayscale in [0, 1], shrunk to the working size; a varying alpha channel is the ink."""
    if array.dtype != np.uint8:  # uint8 (canvas, PNG) stays uint8 until it is small: much faster
        array = _to_unit_range(array)
    _, alpha = _split_alpha(array)
    if alpha is not None and alpha.min() < 0.98 * _full_scale(alpha):
        return _composite_on_contrast(_unit(_shrink(_gray(array))), _unit(_shrink(alpha)))
    return _unit(_shrink(_gray(array)))


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if array.ndim == 3 and array.shape[2] in (2, 4):
        return array[..., :-1], array[..., -1]
    return array, None


def _gray(color: np.ndarray) -> np.ndarray:
    """Luminance; an opaque alpha channel is ignored (OpenCV drops it without a copy)."""
    if color.ndim == 2:
        return color
    if color.shape[2] <= 2:
        return color[..., 0]
    code = cv2.COLOR_RGBA2GRAY if color.shape[2] == 4 else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(np.ascontiguousarray(color), code)


def _full_scale(array: np.ndarray) -> float:
    return 255.0 if array.dtype == np.uint8 else 1.0


def _unit(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) * np.float32(1 / 255)
    return array.astype(np.float32, copy=False)


def _composite_on_contrast(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Ink over a background of the opposite brightness, so that any ink colour shows as ink."""
    weight = float(alpha.sum())
    ink_level = float((gray * alpha).sum()) / weight if weight > 0 else 1.0
    if abs(ink_level - 0.5) <= 0.1:  # mid-grey ink: its strength is the alpha itself
        return alpha
    contrast = 1.0 - round(ink_level)
    # Scaled by the ink's own contrast, so a red or grey pen gives the same strokes as a black one.
    strength = alpha * (np.abs(gray - contrast) / abs(ink_level - contrast))
    return np.abs(contrast - np.minimum(strength, 1.0))


def _to_unit_range(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind in "iu":
        high = 255.0 if array.max(initial=0) <= 255 else float(np.iinfo(array.dtype).max)
        low = 0.0 if array.min(initial=0) >= 0 else float(array.min())
        return ((array.astype(np.float32) - low) / (high - low)).clip(0.0, 1.0)
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        return array.astype(np.float32)
    if low >= 0.0 and high <= 255.0:
        return array.astype(np.float32) / 255.0
    if high <= low:
        return np.zeros(array.shape, np.float32)
    # Halved, in the array's own precision: the span of huge finite values would overflow.
    return ((array / 2 - low / 2) / (high / 2 - low / 2)).astype(np.float32)


def _shrink(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    if max(height, width) <= WORK_SIZE:
        return gray
    if gray.dtype not in (np.uint8, np.float32):
        gray = gray.astype(np.float32)
    scale = WORK_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _background_level(gray: np.ndarray) -> float:
    """The brightness of the background: the median of the image's border."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(np.median(border))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
