"""MNIST training digits redrawn with a pen and prepared as the app prepares a drawing.

A person's drawing reaches the model through the canvas (one round pen of one width, any size)
and the app's preprocessing; an MNIST digit never did. Redrawing training digits that way, by
their skeleton, shows the model what it will be asked to read: strokes of a constant width,
loops that close up when a small digit is drawn with a thick pen, and styles that MNIST, written
mostly by Americans on paper, has few of (9s whose stem hooks to the left at the bottom).

    images = redraw_with_pen(x_train, y_train, fraction=0.5, seed=0)   # a copy, half redrawn
"""

from __future__ import annotations

import math

import numpy as np

from digit.drawn import CANVAS, Pose, draw_segments, skeleton_segments, thin, upscaled_masks
from digit.preprocessing import preprocess

PEN_RANGE = (6, 44)  # the page's pen widths and a little beyond
HEIGHT_RANGE = (0.2, 0.95)  # of the canvas
MAX_PEN_RATIO = 0.4  # pen over digit height: small digits drawn with the default pen are that bold
HOOK_PROBABILITY = 0.4  # of the redrawn 9s, those whose stem ends in a hook to the left
CHUNK = 1_000  # digits thinned at a time: bounds the memory of the 112x112 masks


def redraw_with_pen(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A copy of (N, 28, 28) uint8 MNIST images where `fraction` of them are redrawn with a pen.

    Each chosen digit is thinned to its skeleton, drawn on a 280x280 canvas with a random round
    pen, size, slant and tilt, and prepared by `digit.preprocessing.preprocess`, exactly as the
    Draw page prepares a drawing. About 6 ms a digit on one core.
    """
    rng = np.random.default_rng([seed, 7])
    chosen = np.flatnonzero(rng.random(len(images)) < fraction)
    redrawn = np.asarray(images, np.uint8).copy()
    for start in range(0, chosen.size, CHUNK):
        part = chosen[start : start + CHUNK]
        for i, skeleton in zip(part, thin(upscaled_masks(redrawn[part])), strict=True):
            digit = _redrawn(skeleton, int(labels[i]), np.random.default_rng([seed, 11, int(i)]))
            if digit is not None:
                redrawn[i] = digit
    return redrawn


def _redrawn(skeleton: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray | None:
    segments = skeleton_segments(skeleton)
    if len(segments) < 4:
        return None
    if label == 9 and rng.random() < HOOK_PROBABILITY:
        segments = with_hook(segments, rng)
    prepared = preprocess(draw_segments(segments, training_pose(rng), rng))
    return None if prepared is None else np.round(prepared * 255).astype(np.uint8)


def training_pose(rng: np.random.Generator) -> Pose:
    """A pose wider than the drawn-style test set's: thicker pens on smaller digits."""
    height = rng.uniform(*HEIGHT_RANGE) * CANVAS
    pen = round(min(rng.uniform(*PEN_RANGE), max(PEN_RANGE[0], MAX_PEN_RATIO * height)))
    return Pose(
        height=height,
        pen=pen,
        rotation=rng.uniform(-math.radians(12), math.radians(12)),
        slant=rng.uniform(-0.3, 0.3),
        stretch=rng.uniform(0.75, 1.2),
        position=(rng.uniform(), rng.uniform()),
        background="black",
    )


def with_hook(segments: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The segments of a 9 with a hook added where its stem ends, curving down and to the left."""
    points = segments.reshape(-1, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    height = high[1] - low[1]
    bottom = points[points[:, 1] >= high[1] - 0.02 * height]
    x0, y0 = bottom[:, 0].mean(), high[1]
    radius = height * rng.uniform(0.1, 0.22)
    sweep = rng.uniform(100, 170)  # degrees, from straight down round to the left and up
    angles = np.radians(np.linspace(0, sweep, 12))
    hook = np.stack([x0 - radius + radius * np.cos(angles), y0 + radius * np.sin(angles)], axis=1)
    return np.concatenate([segments, np.stack([hook[:-1], hook[1:]], axis=1)])
