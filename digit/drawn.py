"""Drawn-style digits: what people's canvas drawings look like, made from MNIST and from templates.

A canvas drawing differs from an MNIST digit in ways that matter to the model: one pen
width for the whole digit (thin or thick), any size and place on a 280x280 canvas, a
slightly shaky line, and styles MNIST rarely has (a 1 with a long flag, a crossed 7).
Two sources, both deterministic given a seed:

    canvases, labels = render_mnist_as_drawn(x_test, y_test, seed=0, n=2000)  # MNIST re-drawn as strokes
    canvases, labels = render_templates(seed=0, per_digit=50)                 # hand-authored strokes

Each canvas is a (280, 280, 4) uint8 RGBA image like the app's canvas returns: white ink
on opaque black, ink in the alpha channel of a transparent canvas, or dark ink on white.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

CANVAS = 280
HEIGHT_RANGE = (0.25, 0.9)  # digit height as a fraction of the canvas height
PEN_RANGE = (8, 30)  # pen width in canvas pixels
MAX_PEN_RATIO = 0.25  # nobody draws a legible digit with a pen wider than a quarter of its height
MAX_ROTATION = math.radians(10)
MAX_SLANT = 0.25  # horizontal shear
WIDTH_RANGE = (0.85, 1.15)  # horizontal stretch
WOBBLE = 0.025  # slow drift of the hand, as a fraction of the digit height
TREMOR = 0.006  # fast shake, as a fraction of the digit height
UPSCALE = 4  # MNIST digits are thinned at 4x for a smooth skeleton
SHIFT = 4  # sub-pixel precision of cv2 drawing: coordinates in 1/16 px
BACKGROUNDS = ("black", "transparent", "white")

Segments = np.ndarray  # (M, 2, 2) float: M line segments, each two (x, y) points


@dataclass(frozen=True)
class Pose:
    """Where and how a digit is drawn on the canvas."""

    height: float  # outer height of the ink, pixels
    pen: int  # pen width, pixels
    rotation: float  # radians
    slant: float
    stretch: float
    position: tuple[float, float]  # where in the free space the digit sits, each in [0, 1]
    background: str


def random_pose(rng: np.random.Generator) -> Pose:
    """A random size, pen, tilt, place and canvas style, like a person's drawing."""
    height = rng.uniform(*HEIGHT_RANGE) * CANVAS
    pen = round(min(rng.uniform(*PEN_RANGE), max(PEN_RANGE[0], MAX_PEN_RATIO * height)))
    return Pose(
        height=height,
        pen=pen,
        rotation=rng.uniform(-MAX_ROTATION, MAX_ROTATION),
        slant=rng.uniform(-MAX_SLANT, MAX_SLANT),
        stretch=rng.uniform(*WIDTH_RANGE),
        position=(rng.uniform(), rng.uniform()),
        background=BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
    )


# ---------------------------------------------------------------------------------------------
# (a) MNIST digits re-drawn as pen strokes


def render_mnist_as_drawn(
    images: np.ndarray, labels: np.ndarray, seed: int = 0, n: int | None = None, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(canvases (n, 280, 280, 4) uint8, labels (n,)): MNIST digits thinned and redrawn with a pen.

    The digits are taken in a seeded random order; `start` skips the first ones of that order,
    so a long set can be rendered in chunks with the same result as all at once.
    """
    order = np.random.default_rng(seed).permutation(len(images))
    n = len(images) - start if n is None else min(n, len(images) - start)
    chosen = order[start : start + n]
    skeletons = thin(upscaled_masks(images[chosen]))
    canvases = np.empty((n, CANVAS, CANVAS, 4), np.uint8)
    for i, skeleton in enumerate(skeletons):
        rng = _mnist_rng(seed, start + i)
        canvases[i] = draw_segments(skeleton_segments(skeleton), random_pose(rng), rng)
    return canvases, np.asarray(labels)[chosen].astype(np.int64)


def upscaled_masks(images: np.ndarray) -> np.ndarray:
    """(N, 28k, 28k) bool ink masks, smoothly upscaled so that the skeletons are smooth."""
    size = images.shape[1] * UPSCALE
    masks = np.empty((len(images), size, size), bool)
    for i, image in enumerate(images):
        masks[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC) >= 110
    return masks


def thin(masks: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a batch of (N, H, W) bool masks to 1-pixel-wide skeletons."""
    image = np.pad(masks.astype(np.uint8), ((0, 0), (1, 1), (1, 1)))
    changed = True
    while changed:
        changed = False
        for first in (True, False):
            remove = _zhang_suen_removable(image, first)
            if remove.any():
                image[:, 1:-1, 1:-1][remove] = 0
                changed = True
    return image[:, 1:-1, 1:-1].astype(bool)


def _zhang_suen_removable(image: np.ndarray, first: bool) -> np.ndarray:
    """Pixels one Zhang-Suen sub-iteration deletes."""
    p = image[:, 1:-1, 1:-1]
    # Neighbours P2..P9, clockwise from north.
    n, ne, e, se = image[:, :-2, 1:-1], image[:, :-2, 2:], image[:, 1:-1, 2:], image[:, 2:, 2:]
    s, sw, w, nw = image[:, 2:, 1:-1], image[:, 2:, :-2], image[:, 1:-1, :-2], image[:, :-2, :-2]
    ring = (n, ne, e, se, s, sw, w, nw, n)
    count = n + ne + e + se + s + sw + w + nw
    transitions = sum((ring[k] < ring[k + 1]).astype(np.uint8) for k in range(8))
    corner = n & e & s | e & s & w if first else n & e & w | n & s & w
    return (p == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & (corner == 0)


def skeleton_segments(skeleton: np.ndarray) -> Segments:
    """The skeleton as segments joining 8-connected pixels, in (x, y) pixel units of the mask."""
    ys, xs = np.nonzero(skeleton)
    padded = np.pad(skeleton, 1)
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    pieces = [np.stack([points, points], axis=1)]  # a dot for every pixel keeps isolated pixels
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        linked = padded[ys + 1 + dy, xs + 1 + dx]
        pieces.append(np.stack([points[linked], points[linked] + [dx, dy]], axis=1))
    return np.concatenate(pieces)


# ---------------------------------------------------------------------------------------------
# (b) hand-authored stroke templates


def _arc(cx: float, cy: float, rx: float, ry: float, start_deg: float, end_deg: float, n: int = 24) -> list:
    """Points on an elliptic arc; angles in degrees, 0 = right, 90 = down (image coordinates)."""
    angles = np.radians(np.linspace(start_deg, end_deg, n))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Each style is a list of strokes; each stroke a polyline in a unit box (x right, y down).
TEMPLATES: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [
        [_arc(0.5, 0.5, 0.38, 0.5, -95, 275, 40)],  # closed oval
        [_arc(0.5, 0.5, 0.42, 0.5, -60, 310, 40)],  # oval with a small overlap
        [_arc(0.5, 0.5, 0.3, 0.5, -80, 265, 40)],  # narrow, a little open at the top
    ],
    1: [
        [[(0.5, 0.0), (0.5, 1.0)]],  # a plain stroke
        [[(0.15, 0.35), (0.55, 0.0), (0.55, 1.0)]],  # European: long flag
        [[(0.1, 0.38), (0.55, 0.0), (0.55, 1.0)], [(0.2, 1.0), (0.9, 1.0)]],  # long flag and a base
        [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)]],  # short flag
    ],
    2: [
        [[*_arc(0.5, 0.3, 0.38, 0.3, 200, 360, 16), *_arc(0.5, 0.3, 0.38, 0.3, 0, 40, 6), (0.05, 1.0), (0.95, 1.0)]],
        [
            [
                *_arc(0.5, 0.28, 0.4, 0.28, 190, 390, 20),
                (0.12, 0.92),
                *_arc(0.22, 0.9, 0.1, 0.09, 180, 400, 12),
                (0.95, 0.98),
            ]
        ],  # loop at the base
        [[*_arc(0.45, 0.3, 0.4, 0.3, 210, 400, 20), (0.08, 0.98), (0.95, 0.95)]],
    ],
    3: [
        [[*_arc(0.47, 0.25, 0.38, 0.25, 200, 450, 24), *_arc(0.47, 0.74, 0.42, 0.26, 270, 500, 24)]],  # two bumps
        [[(0.1, 0.0), (0.85, 0.0), (0.4, 0.42), *_arc(0.48, 0.71, 0.42, 0.29, 270, 510, 24)]],  # flat top
        [[*_arc(0.5, 0.25, 0.35, 0.25, 210, 440, 24), (0.35, 0.5), *_arc(0.5, 0.74, 0.4, 0.26, 280, 500, 24)]],
    ],
    4: [
        [[(0.45, 0.0), (0.05, 0.62), (0.95, 0.62)], [(0.72, 0.2), (0.72, 1.0)]],  # open top
        [[(0.7, 0.0), (0.02, 0.65), (0.95, 0.65)], [(0.7, 0.0), (0.7, 1.0)]],  # closed
        [[(0.2, 0.0), (0.12, 0.55), (0.95, 0.55)], [(0.75, 0.0), (0.75, 1.0)]],  # open, upright
        [[(0.25, 0.0), (0.15, 0.55), (0.8, 0.55)], [(0.78, 0.05), (0.75, 1.0)]],  # one stroke down, one across
    ],
    5: [
        [[(0.2, 0.0), (0.15, 0.45), *_arc(0.45, 0.7, 0.4, 0.3, 250, 500, 24)], [(0.2, 0.0), (0.9, 0.0)]],
        [[(0.9, 0.0), (0.2, 0.0), (0.15, 0.45), *_arc(0.47, 0.7, 0.4, 0.3, 245, 505, 24)]],  # one stroke
        [[(0.25, 0.02), (0.2, 0.48), *_arc(0.5, 0.72, 0.38, 0.28, 240, 470, 20)], [(0.25, 0.02), (0.85, 0.0)]],
    ],
    6: [
        [[*_arc(0.6, 0.6, 0.5, 0.6, 255, 180, 16), *_arc(0.5, 0.7, 0.38, 0.3, 180, -180, 32)]],
        [[(0.7, 0.0), (0.2, 0.55), *_arc(0.5, 0.72, 0.36, 0.28, 180, -170, 30)]],  # straight back
        [[*_arc(0.75, 0.75, 0.65, 0.75, 250, 180, 16), *_arc(0.45, 0.72, 0.35, 0.28, 180, 520, 32)]],
    ],
    7: [
        [[(0.05, 0.0), (0.95, 0.0), (0.35, 1.0)]],
        [[(0.05, 0.0), (0.95, 0.0), (0.4, 1.0)], [(0.35, 0.5), (0.9, 0.5)]],  # crossbar
        [[(0.05, 0.15), (0.08, 0.0), (0.95, 0.02), (0.45, 1.0)], [(0.4, 0.52), (0.88, 0.5)]],  # tick and crossbar
        [[(0.05, 0.05), (0.95, 0.0), (0.6, 0.5), (0.5, 1.0)]],  # steep
    ],
    8: [
        [
            [
                *_arc(0.5, 0.25, 0.32, 0.25, 0, -270, 24),
                *_arc(0.5, 0.74, 0.4, 0.26, 270, 630, 36),
                *_arc(0.5, 0.25, 0.32, 0.25, 90, 0, 10),
            ]
        ],
        [_arc(0.5, 0.25, 0.3, 0.25, 90, 450, 30), _arc(0.5, 0.74, 0.42, 0.26, -90, 270, 30)],  # two circles
        [
            [
                (0.85, 0.1),
                *_arc(0.5, 0.25, 0.35, 0.25, -30, -270, 20),
                (0.85, 0.82),
                *_arc(0.5, 0.76, 0.38, 0.24, 30, 200, 16),
                (0.8, 0.1),
            ]
        ],
    ],
    9: [
        [[*_arc(0.5, 0.28, 0.4, 0.28, 0, -360, 32), (0.9, 0.3), (0.85, 1.0)]],  # straight tail
        [[*_arc(0.5, 0.28, 0.4, 0.28, 10, -350, 32), *_arc(0.4, 0.35, 0.5, 0.65, 0, 100, 16)]],  # curved tail
        [[*_arc(0.45, 0.27, 0.38, 0.27, 0, -355, 32), (0.83, 0.4), (0.6, 1.0)]],  # slanted tail
    ],
}


def render_templates(
    seed: int = 0, per_digit: int = 50, digits: tuple[int, ...] = tuple(range(10))
) -> tuple[np.ndarray, np.ndarray]:
    """(canvases (10*per_digit, 280, 280, 4) uint8, labels): jittered template digits, all styles in turn."""
    labels = np.repeat(np.asarray(digits, np.int64), per_digit)
    canvases = np.empty((len(labels), CANVAS, CANVAS, 4), np.uint8)
    for i, label in enumerate(labels):
        rng = _template_rng(seed, i)
        pose = random_pose(rng)
        canvases[i] = draw_segments(
            template_segments(TEMPLATES[int(label)][template_style(i, per_digit, label)], rng), pose, rng
        )
    return canvases, labels


def template_style(i: int, per_digit: int, label: int) -> int:
    """Which of its digit's styles the i-th template canvas uses: each in turn."""
    return (i % per_digit) % len(TEMPLATES[int(label)])


def mnist_poses(seed: int, n: int, start: int = 0) -> list[Pose]:
    """The poses `render_mnist_as_drawn` gives its canvases, for analysing where a model fails."""
    return [random_pose(_mnist_rng(seed, i)) for i in range(start, start + n)]


def template_poses(seed: int, count: int) -> list[Pose]:
    """The poses of the first `count` canvases of `render_templates` with this seed."""
    return [random_pose(_template_rng(seed, i)) for i in range(count)]


def _mnist_rng(seed: int, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, i])


def _template_rng(seed: int, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, 1_000_003, i])


def template_segments(strokes: list, rng: np.random.Generator, jitter: float = 0.04) -> Segments:
    """A template's strokes, each moved and bent a little on its own, cut into short segments."""
    pieces = []
    for stroke in strokes:
        dense = _densify(np.asarray(stroke, np.float64), step=0.01)
        dense = dense + rng.normal(0.0, jitter / 2, 2) + _smooth_field(dense, rng, jitter, wavelengths=(0.5, 1.2))
        pieces.append(np.stack([dense[:-1], dense[1:]], axis=1))
    return np.concatenate(pieces)


def _densify(points: np.ndarray, step: float) -> np.ndarray:
    """Points every `step` along a polyline, so that a smooth distortion bends straight lines."""
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    out = [points[:1]]
    for a, b, length in zip(points[:-1], points[1:], lengths, strict=True):
        k = max(1, math.ceil(length / step))
        t = np.arange(1, k + 1)[:, None] / k
        out.append(a + t * (b - a))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------
# drawing


def draw_segments(segments: Segments, pose: Pose, rng: np.random.Generator) -> np.ndarray:
    """Draw segments (any units, y down) with a round pen as a (280, 280, 4) RGBA canvas."""
    placed = place(segments, pose, rng)
    ink = np.zeros((CANVAS, CANVAS), np.uint8)
    fixed = [np.round(s * (1 << SHIFT)).astype(np.int32).reshape(2, 1, 2) for s in placed]
    cv2.polylines(ink, fixed, False, 255, thickness=pose.pen, lineType=cv2.LINE_AA, shift=SHIFT)
    return as_canvas(ink, pose.background, rng)


def place(segments: Segments, pose: Pose, rng: np.random.Generator) -> Segments:
    """Tilt, slant, wobble, then scale and move the segments to their place on the canvas."""
    points = segments.reshape(-1, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    points = (points - (low + high) / 2) / max(high[1] - low[1], 0.25 * (high[0] - low[0]), 1e-9)
    points = points * [pose.stretch, 1.0]
    points[:, 0] -= pose.slant * points[:, 1]  # positive slant leans the top to the right
    cos, sin = math.cos(pose.rotation), math.sin(pose.rotation)
    points = points @ np.array([[cos, sin], [-sin, cos]])
    points = points + shaky_hand(points, rng)
    low, high = points.min(axis=0), points.max(axis=0)
    inner = pose.height - pose.pen  # the pen adds half its width on each side
    margin = pose.pen / 2 + 2
    scale = min(inner / max(high[1] - low[1], 1e-9), (CANVAS - 2 * margin) / max(high[0] - low[0], 1e-9))
    points = (points - low) * scale
    room = np.maximum(CANVAS - 2 * margin - (high - low) * scale, 0.0)
    points = points + margin + room * np.asarray(pose.position)
    return points.reshape(-1, 2, 2)


def shaky_hand(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth displacement of every point: a slow wobble and a faint fast tremor."""
    wobble = _smooth_field(points, rng, WOBBLE * rng.uniform(0.3, 1.0), wavelengths=(0.6, 1.5))
    tremor = _smooth_field(points, rng, TREMOR * rng.uniform(0.0, 1.0), wavelengths=(0.06, 0.15))
    return wobble + tremor


def _smooth_field(points: np.ndarray, rng: np.random.Generator, amplitude: float, wavelengths: tuple) -> np.ndarray:
    """A sum of three random plane waves per axis, evaluated at the points."""
    field = np.zeros_like(points)
    for axis in (0, 1):
        for _ in range(3):
            direction = rng.normal(size=2)
            direction /= np.linalg.norm(direction)
            frequency = 2 * math.pi / rng.uniform(*wavelengths)
            phase = rng.uniform(0, 2 * math.pi)
            field[:, axis] += amplitude / math.sqrt(3) * np.sin(points @ direction * frequency + phase)
    return field


def as_canvas(ink: np.ndarray, background: str, rng: np.random.Generator) -> np.ndarray:
    """A (280, 280) ink coverage as the canvas returns it: RGBA with the chosen background."""
    canvas = np.empty((*ink.shape, 4), np.uint8)
    if background == "black":
        canvas[..., :3] = ink[..., None]
        canvas[..., 3] = 255
    elif background == "white":
        shade = int(rng.integers(0, 60))  # black or a dark pen colour
        canvas[..., :3] = 255 - ((255 - shade) * (ink.astype(np.uint16)) // 255).astype(np.uint8)[..., None]
        canvas[..., 3] = 255
    elif background == "transparent":
        colour = 255 if rng.uniform() < 0.5 else 0  # white or black ink; the browser leaves (0, 0, 0, 0) outside
        canvas[..., :3] = np.where(ink[..., None] > 0, colour, 0).astype(np.uint8)
        canvas[..., 3] = ink
    else:
        raise ValueError(f"unknown background {background!r}; choose one of {', '.join(BACKGROUNDS)}")
    return canvas


def contact_sheet(
    canvases: np.ndarray, columns: int = 10, size: int = 96, captions: list[str] | None = None
) -> np.ndarray:
    """A grid of canvases as one RGB image (dark ink on light grey), to look at a set by eye."""
    from digit.preprocessing import ink_intensity

    rows = math.ceil(len(canvases) / columns)
    sheet = np.full((rows * (size + 4), columns * (size + 4), 3), 160, np.uint8)
    for i, canvas in enumerate(canvases):
        tile = cv2.resize(
            (255 - 255 * ink_intensity(canvas)).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA
        )
        tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2RGB)
        if captions:
            cv2.putText(tile, captions[i], (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (220, 0, 0), 1, cv2.LINE_AA)
        r, c = divmod(i, columns)
        sheet[r * (size + 4) + 2 : r * (size + 4) + 2 + size, c * (size + 4) + 2 : c * (size + 4) + 2 + size] = tile
    return sheet
