"""Candidate changes to digit.preprocessing, measured by drawn_accuracy.py before anyone adopts them.

Each is a drop-in replacement for `digit.preprocess` built from its own pieces, so the only
difference from the shipped preprocessing is the step under test.

    python benchmarks/drawn_accuracy.py --prep mnist thickness thicken
"""

from __future__ import annotations

import cv2
import numpy as np

from digit.config import DIGIT_BOX, IMAGE_SIZE
from digit.preprocessing import centre_by_mass, fit_in_box, ink_bounding_box, ink_intensity, preprocess

# Stroke width over the digit's longer side, as `stroke_ratio` measures it: the median over
# 2,000 MNIST test digits is 0.134 (5% to 95%: 0.098 to 0.201). Canvas drawings span 0.07 to 0.31.
MNIST_STROKE_RATIO = 0.134


def stroke_width(ink: np.ndarray) -> float:
    """Estimated stroke width in pixels: four times the mean distance of ink pixels to the background."""
    mask = np.pad((ink >= 0.5).astype(np.uint8), 1)
    if not mask.any():
        return 0.0
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    return 4.0 * float(distance[mask > 0].mean())  # a band of width w has mean distance w / 4


def stroke_ratio(ink: np.ndarray) -> float:
    """Stroke width over the longer side of the ink's bounding box."""
    return stroke_width(ink) / max(ink.shape)


def normalise_thickness(
    crop: np.ndarray, thicken: bool = True, thin: bool = True, target: float = MNIST_STROKE_RATIO
) -> np.ndarray:
    """Dilate or erode a cropped digit so its stroke width over its size becomes `target` (MNIST's)."""
    width = stroke_width(crop)
    change = target * max(crop.shape) - width
    radius = round(abs(change) / 2)
    if radius < 1 or (change > 0 and not thicken) or (change < 0 and not thin):
        return crop
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    padded = np.pad(crop, radius)
    if change > 0:
        return cv2.dilate(padded, kernel)
    eroded = cv2.erode(padded, kernel)
    return eroded if (eroded >= 0.5).any() else padded


def _preprocess_with(adjust) -> callable:
    def prepare(image: np.ndarray) -> np.ndarray | None:
        gray = ink_intensity(image)
        box = ink_bounding_box(gray)
        if box is None:
            return None
        top, bottom, left, right = box
        crop = adjust(gray[top:bottom, left:right])
        box = ink_bounding_box(crop) or (0, crop.shape[0], 0, crop.shape[1])
        crop = crop[box[0] : box[1], box[2] : box[3]]
        return centre_by_mass(fit_in_box(crop, DIGIT_BOX), IMAGE_SIZE)

    return prepare


RESTROKE_SIZE = 80  # the digit is redrawn at 4x MNIST's 20-px box


def restroke(crop: np.ndarray) -> np.ndarray:
    """Thin the digit to its skeleton and redraw it with a pen of MNIST's relative width."""
    from digit import drawn

    scale = RESTROKE_SIZE / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    mask = cv2.resize(crop, size, interpolation=cv2.INTER_AREA) >= 0.5
    skeleton = drawn.thin(mask[np.newaxis])[0]
    if not skeleton.any():
        return crop
    pen = round(MNIST_STROKE_RATIO / 1.22 * RESTROKE_SIZE)  # stroke_width reads a pen about 22% wider than it is
    pad = pen
    canvas = np.zeros((size[1] + 2 * pad, size[0] + 2 * pad), np.uint8)
    segments = drawn.skeleton_segments(skeleton) + pad
    fixed = [np.round(s * 16).astype(np.int32).reshape(2, 1, 2) for s in segments]
    cv2.polylines(canvas, fixed, False, 255, thickness=pen, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def full_contrast(gray: np.ndarray) -> np.ndarray:
    """Stretch faint or coloured ink so that its strong pixels reach 1, as MNIST's do."""
    ink = gray[gray >= 0.2]
    if ink.size == 0:
        return gray
    top = float(np.percentile(ink, 90))
    return np.clip(gray / top, 0.0, 1.0) if 0.2 < top < 0.98 else gray


def _with_contrast(prepare):
    return lambda image: prepare(full_contrast(ink_intensity(image)))


PROPOSALS = {
    # The pipeline as committed before thickness normalisation: crop, fit in 20 px, centre by mass.
    "plain": _preprocess_with(lambda crop: crop),
    "restroke": _preprocess_with(restroke),
    "thickness": _preprocess_with(normalise_thickness),
    "thicken": _preprocess_with(lambda crop: normalise_thickness(crop, thin=False)),
    "thin": _preprocess_with(lambda crop: normalise_thickness(crop, thicken=False)),
    "thin@0.16": _preprocess_with(lambda crop: normalise_thickness(crop, thicken=False, target=0.16)),
    "thin@0.12": _preprocess_with(lambda crop: normalise_thickness(crop, thicken=False, target=0.12)),
    "thickness@0.12": _preprocess_with(lambda crop: normalise_thickness(crop, target=0.12)),
}


def _patched(**constants):
    """digit.preprocess with some of its module constants changed for the call (single-threaded use)."""
    import digit.preprocessing as module

    def prepare(image: np.ndarray) -> np.ndarray | None:
        saved = {name: getattr(module, name) for name in constants if hasattr(module, name)}
        if len(saved) < len(constants):
            return preprocess(image)  # a preprocessing without these knobs: unchanged
        try:
            for name, value in constants.items():
                setattr(module, name, value)
            return preprocess(image)
        finally:
            for name, value in saved.items():
                setattr(module, name, value)

    return prepare


# Knobs of the current digit.preprocess: the canvas is first shrunk to WORK_SIZE (160), and the
# cropped digit to THICKNESS_WORK_SIZE (64) before its strokes are thinned or thickened.
PROPOSALS["work280"] = _patched(WORK_SIZE=280)
PROPOSALS["thickwork96"] = _patched(THICKNESS_WORK_SIZE=96)
PROPOSALS["work280+thickwork96"] = _patched(WORK_SIZE=280, THICKNESS_WORK_SIZE=96)
PROPOSALS["contrast"] = _with_contrast(preprocess)
PROPOSALS["thin+contrast"] = _with_contrast(PROPOSALS["thin"])
