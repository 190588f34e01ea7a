"""Serving side: drawings that are not one digit, told apart before anyone trusts the model's answer.

    doubt_about(image)    # "several digits", "a scribble", or None for what may be one digit
    doubt_about_ink(ink)  # the same, for the ink preprocessing already found (digit.inference.predict)

A model trained on single digits gives a confident answer for anything: "12" on the single canvas
reads "2, 98%", a scribble "8, 100%". Two checks on the ink, neither using the model:

- several digits: the ink falls into two or more digit-sized groups side by side, by the same
  segmentation the Number mode reads numbers with (digit/number.py: strokes that overlap in x,
  such as the two strokes of a 4 or the bar of a 7, stay one digit);
- a scribble: the ink encloses more holes than any digit has (an 8 has two; a sloppy one three).

Measured on real pen-drawn digits (benchmarks/real_drawing.py, six settings, 750 digits each):
neither check fired on a single digit; "several digits" caught 98% of two digits side by side.
"""

from __future__ import annotations

import cv2
import numpy as np

from digit.preprocessing import ink_intensity

SEVERAL_DIGITS = "several digits"
SCRIBBLE = "a scribble"
MAX_HOLES = 3  # more enclosed holes than this is not a digit
HOLE_AREA = 0.002  # a hole counts when at least this share of the ink's bounding box


def doubt_about(image: np.ndarray) -> str | None:
    """Why `image` is not (surely) one digit, or None."""
    return doubt_about_ink(ink_intensity(image))


def doubt_about_ink(ink: np.ndarray) -> str | None:
    """The same for ink as the single-digit preprocessing finds it (`Steps.grayscale`, at 160 px)."""
    if _digit_groups(ink) >= 2:
        return SEVERAL_DIGITS
    if enclosed_holes(ink > 0.5) > MAX_HOLES:
        return SCRIBBLE
    return None


def _digit_groups(ink: np.ndarray) -> int:
    from digit.number import separate_digits  # digit.number imports digit.inference, which imports this module

    return separate_digits(ink)


def enclosed_holes(mask: np.ndarray) -> int:
    """Holes in the ink (background enclosed by it), ignoring pin-holes left between close strokes."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return 0
    box_area = (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
    return sum(
        1
        for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True)
        if parent >= 0 and cv2.contourArea(contour) > HOLE_AREA * box_area
    )
