"""Augmentation that makes MNIST look more like digits drawn with a mouse or a finger.

Applied on the fly to whole batches inside tf.data: a random affine warp (rotation, shear,
scale, shift), a smooth elastic wobble (shaky hands), and stroke-thickness changes (pens).
"""

from __future__ import annotations

import math

import tensorflow as tf

from digit.config import IMAGE_SIZE

MAX_ROTATION = math.radians(12)
MAX_SHEAR = 0.2
SCALE_RANGE = (0.8, 1.15)
MAX_SHIFT = 2.5  # pixels
ELASTIC_PIXELS = 1.2  # largest displacement of the wobble
ELASTIC_GRID = 4  # the wobble is smooth over a 4x4 grid of control points
THICKNESS_PROBABILITY = 0.5


def augment_batch(images: tf.Tensor) -> tf.Tensor:
    """Randomly distort a batch of (N, 28, 28, 1) float images in [0, 1]."""
    images = elastic(images)
    images = random_affine(images)
    images = random_thickness(images)
    return tf.clip_by_value(images, 0.0, 1.0)


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
