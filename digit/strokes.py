"""Serving side: the pen strokes of a drawing, as the canvas records them (NumPy and OpenCV only).

    strokes = from_canvas(drawing)        # the canvas's fabric.js JSON -> [(N, 2) float arrays of x, y]
    masks = stroke_masks(strokes, (height, width), reach=6)    # where each stroke's ink can lie

A canvas knows more than its pixels: each stroke is a separate object, in the order it was drawn.
Digits written side by side are separate strokes even where their ink touches, and a person
finishes one digit before writing the next, so strokes tell where one digit ends far better than
ink does (digit.number reads a number from them when the canvas gives them).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = 2  # sub-pixel precision of cv2 drawing
MOVE_BACK = 0.6  # a stroke lying this much (of its width) over an earlier digit, and not over the last stroke ...
# ... was added to that digit later (a 7 crossed, a 5's flag, after the next digit): it is read with it


def from_canvas(drawing: dict | None) -> list[np.ndarray]:
    """The strokes of a streamlit-drawable-canvas drawing (fabric.js JSON), in the order they were drawn.

    A free-drawn stroke is a path of SVG commands (M, Q, L) in canvas pixels; each becomes the
    polyline through its points. Objects that are not paths, and paths without points, are skipped.
    """
    strokes = []
    for item in (drawing or {}).get("objects") or []:
        if not isinstance(item, dict) or str(item.get("type", "")).lower() != "path":
            continue
        points = _path_points(item.get("path") or [])
        if len(points):
            strokes.append(points)
    return strokes


def _path_points(commands: list) -> np.ndarray:
    """The (x, y) points of a path's commands: every coordinate pair, control points included."""
    points = []
    for command in commands:
        if not isinstance(command, list | tuple) or len(command) < 3:
            continue
        values = [v for v in command[1:] if isinstance(v, int | float)]
        points += [values[i : i + 2] for i in range(0, len(values) - 1, 2)]
    array = np.asarray(points, np.float64).reshape(-1, 2)
    return array[np.isfinite(array).all(axis=1)]


def stroke_masks(strokes: Sequence[np.ndarray], shape: tuple[int, int], reach: float) -> np.ndarray:
    """(len(strokes), height, width) bool: the pixels within `reach` of each stroke's line."""
    masks = np.zeros((len(strokes), *shape), np.uint8)
    thickness = max(1, round(2 * reach))
    for mask, stroke in zip(masks, strokes, strict=True):
        fixed = np.round(np.asarray(stroke) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)
        if len(fixed) == 1 or np.ptp(fixed, axis=0).max() == 0:
            cv2.circle(
                mask, tuple(int(v) for v in fixed[0, 0]), thickness * (1 << SHIFT) // 2, 1, -1, cv2.LINE_8, SHIFT
            )
        else:
            cv2.polylines(mask, [fixed], False, 1, thickness=thickness, lineType=cv2.LINE_8, shift=SHIFT)
    return masks.view(bool)


def digit_order(boxes: Sequence[tuple[int, int, int, int]]) -> list[int]:
    """The strokes' indexes, drawing order, with a stroke added to an earlier digit later moved back beside it.

    `boxes` are the strokes' (x, y, width, height). People finish a digit before the next, but now
    and then cross a 7 or add a 5's flag after writing its neighbour: such a stroke (lying mostly
    over an earlier stroke and not over the one before it) goes right after the earlier one.
    """
    order: list[int] = []
    for index, box in enumerate(boxes):
        over = [k for k, earlier in enumerate(order) if _covered(box, boxes[earlier]) >= MOVE_BACK]
        if order and over and _covered(box, boxes[order[-1]]) < MOVE_BACK:
            order.insert(over[-1] + 1, index)
        else:
            order.append(index)
    return order


def _covered(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> float:
    """How much of `box`'s width lies over `other`'s."""
    overlap = min(box[0] + box[2], other[0] + other[2]) - max(box[0], other[0])
    return max(0, overlap) / max(box[2], 1)
