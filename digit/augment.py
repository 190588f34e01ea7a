"""Augmentation that makes MNIST look more like digits drawn with a mouse or a finger.

Applied on the fly to whole batches inside tf.data: a random affine warp (rotation, shear,
scale, shift), a smooth elastic wobble (shaky hands), and stroke-thickness changes (pens).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import tensorflow as tf

from digit.config import IMAGE_SIZE

MAX_ROTATION = math.radians(12)
MAX_SHEAR = 0.2
SCALE_RANGE = (0.8, 1.15)
MAX_SHIFT = 2.5  # pixels
ELASTIC_PIXELS = 1.2  # largest displacement of the wobble
ELASTIC_GRID = 4  # the wobble is smooth over a 4x4 grid of control points
THICKNESS_PROBABILITY = 0.5
AUGMENTED_FRACTION = 0.6  # the rest of each batch stays clean MNIST, which keeps test accuracy high


def augment_batch(images: tf.Tensor) -> tf.Tensor:
    """Randomly distort most images of a batch of (N, 28, 28, 1) float images in [0, 1]."""
    distorted = random_thickness(random_affine(elastic(images)))
    chosen = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < AUGMENTED_FRACTION
    return tf.clip_by_value(tf.where(chosen, distorted, images), 0.0, 1.0)


def random_affine(images: tf.Tensor) -> tf.Tensor:
    """Rotate, shear, scale and shift each image by its own random amount."""
    n = tf.shape(images)[0]
    angle = tf.random.uniform([n], -MAX_ROTATION, MAX_ROTATION)
    shear = tf.random.uniform([n], -MAX_SHEAR, MAX_SHEAR)
    scale_x = tf.random.uniform([n], *SCALE_RANGE)
    scale_y = scale_x * tf.random.uniform([n], 0.9, 1.1)
    shift = tf.random.uniform([n, 2], -MAX_SHIFT, MAX_SHIFT)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output pixel -> input pixel: rotation @ shear @ 1/scale, about the image centre.
    a00 = (cos - sin * shear) / scale_x
    a01 = (cos * shear - sin) / scale_y
    a10 = (sin + cos * shear) / scale_x
    a11 = (sin * shear + cos) / scale_y
    centre = (IMAGE_SIZE - 1) / 2
    a02 = centre - a00 * centre - a01 * centre + shift[:, 0]
    a12 = centre - a10 * centre - a11 * centre + shift[:, 1]
    zeros = tf.zeros_like(a00)
    transforms = tf.stack([a00, a01, a02, a10, a11, a12, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def elastic(images: tf.Tensor) -> tf.Tensor:
    """A smooth random displacement of every pixel, like a hand that is not quite steady."""
    n = tf.shape(images)[0]
    coarse = tf.random.uniform([n, ELASTIC_GRID, ELASTIC_GRID, 2], -ELASTIC_PIXELS, ELASTIC_PIXELS)
    flow = tf.image.resize(coarse, [IMAGE_SIZE, IMAGE_SIZE], method="bicubic")
    grid_y, grid_x = tf.meshgrid(
        tf.range(IMAGE_SIZE, dtype=tf.float32), tf.range(IMAGE_SIZE, dtype=tf.float32), indexing="ij"
    )
    return _bilinear_sample(images, grid_y + flow[..., 0], grid_x + flow[..., 1])


def _bilinear_sample(images: tf.Tensor, ys: tf.Tensor, xs: tf.Tensor) -> tf.Tensor:
    """images[b, ys, xs] with bilinear interpolation and zeros outside."""
    padded = tf.pad(images[..., 0], [[0, 0], [1, 1], [1, 1]])  # a zero frame for samples that fall outside
    ys = tf.clip_by_value(ys + 1.0, 0.0, IMAGE_SIZE + 0.999)
    xs = tf.clip_by_value(xs + 1.0, 0.0, IMAGE_SIZE + 0.999)
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = ys - y0, xs - x0
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)

    def at(y, x):
        return tf.gather_nd(padded, tf.stack([y, x], axis=-1), batch_dims=1)

    top = at(y0, x0) * (1 - wx) + at(y0, x0 + 1) * wx
    bottom = at(y0 + 1, x0) * (1 - wx) + at(y0 + 1, x0 + 1) * wx
    return (top * (1 - wy) + bottom * wy)[..., tf.newaxis]


def random_thickness(images: tf.Tensor) -> tf.Tensor:
    """Thicken or thin the strokes of about half the images, by a random amount."""
    n = tf.shape(images)[0]
    dilated = tf.nn.max_pool2d(images, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-images, 2, 1, "SAME")
    amount = tf.random.uniform([n, 1, 1, 1], -0.7, 1.0)
    amount = tf.where(tf.random.uniform([n, 1, 1, 1]) < THICKNESS_PROBABILITY, amount, 0.0)
    thicker = images + tf.maximum(amount, 0.0) * (dilated - images)
    return thicker + tf.maximum(-amount, 0.0) * (eroded - images)


STYLE_FRACTION = 0.5  # of the 1s and of the 7s that are redrawn in the European style
UPSCALE = 4  # strokes are added at 4x and scaled back, for MNIST-like anti-aliasing


def add_style_variants(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A copy of uint8 MNIST images where some 1s get a flag (and a base) and some 7s a crossbar.

    MNIST was written mostly by Americans: its 1s are bare strokes and its 7s rarely crossed, so a
    European 1 with a long flag reads as a 7. Adding those strokes to real digits teaches the
    difference: a 1's flag falls steeply from the top, a 7's bar is level.
    """
    rng = np.random.default_rng(seed)
    styled = images.copy()
    for digit, add_stroke in ((1, _add_flag), (7, _add_crossbar)):
        chosen = np.flatnonzero(labels == digit)
        chosen = chosen[rng.random(chosen.size) < STYLE_FRACTION]
        for i in chosen:
            styled[i] = _restyled(images[i], add_stroke, rng)
    return styled


def _restyled(image: np.ndarray, add_stroke, rng: np.random.Generator) -> np.ndarray:
    from digit.preprocessing import DIGIT_BOX, centre_by_mass, fit_in_box, ink_bounding_box

    big = cv2.resize(image, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_LINEAR)
    mask = big >= 128
    if mask.sum() < 10:
        return image
    add_stroke(big, mask, _pen_width(mask), rng)
    ink = big.astype(np.float32) / 255
    box = ink_bounding_box(ink)
    if box is None:
        return image
    top, bottom, left, right = box
    digit = centre_by_mass(fit_in_box(ink[top:bottom, left:right], DIGIT_BOX), IMAGE_SIZE)
    return np.round(digit * 255).astype(np.uint8)


def _pen_width(mask: np.ndarray) -> int:
    distance = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 3)
    return max(2, round(4 * float(distance[distance > 0].mean())))


def _add_flag(big: np.ndarray, mask: np.ndarray, pen: int, rng: np.random.Generator) -> None:
    rows = np.flatnonzero(mask.any(axis=1))
    top, bottom = rows[0], rows[-1]
    height = bottom - top
    x_top = float(np.flatnonzero(mask[top : top + pen].any(axis=0)).mean())
    length = height * rng.uniform(0.25, 0.85)
    angle = np.radians(rng.uniform(15, 60))  # below the horizontal: a flag falls, a 7's bar does not
    end = (x_top - length * np.cos(angle), top + pen / 2 + length * np.sin(angle))
    _line(big, (x_top, top + pen / 2), end, pen)
    if rng.random() < 0.3:  # a base, as some people write it
        x_bottom = float(np.flatnonzero(mask[bottom - pen + 1 : bottom + 1].any(axis=0)).mean())
        half = height * rng.uniform(0.15, 0.3)
        y = bottom - pen / 2
        _line(big, (x_bottom - half, y), (x_bottom + half, y), pen)


def _add_crossbar(big: np.ndarray, mask: np.ndarray, pen: int, rng: np.random.Generator) -> None:
    rows = np.flatnonzero(mask.any(axis=1))
    top, bottom = rows[0], rows[-1]
    y = top + (bottom - top) * rng.uniform(0.45, 0.6)
    columns = np.flatnonzero(mask[round(y)])
    if columns.size == 0:
        return
    x = float(columns.mean())
    half = (bottom - top) * rng.uniform(0.15, 0.28)
    tilt = (bottom - top) * rng.uniform(-0.05, 0.05)
    _line(big, (x - half, y + tilt), (x + half, y - tilt), pen)


def _line(image: np.ndarray, start: tuple[float, float], end: tuple[float, float], pen: int) -> None:
    points = [tuple(round(v * 16) for v in p) for p in (start, end)]
    cv2.line(image, points[0], points[1], 255, thickness=pen, lineType=cv2.LINE_AA, shift=4)
