"""The drawn-style evaluation set: canvases shaped like the app's, deterministic, with ink and right labels."""

from __future__ import annotations

import numpy as np
import pytest

from digit import drawn
from digit.preprocessing import ink_intensity


@pytest.fixture(scope="module")
def mnist_drawn(small_mnist):
    return drawn.render_mnist_as_drawn(small_mnist.x_test, small_mnist.y_test, seed=3, n=12)


def test_mnist_drawn_are_canvases_with_their_labels(mnist_drawn, small_mnist):
    canvases, labels = mnist_drawn
    assert canvases.shape == (12, 280, 280, 4) and canvases.dtype == np.uint8
    order = np.random.default_rng(3).permutation(len(small_mnist.y_test))[:12]
    np.testing.assert_array_equal(labels, small_mnist.y_test[order])


def test_every_canvas_has_ink_but_is_mostly_background(mnist_drawn):
    canvases, _ = mnist_drawn
    for canvas in canvases:
        ink = ink_intensity(canvas)
        assert 0.01 < (ink > 0.5).mean() < 0.5


def test_rendering_is_deterministic_and_chunkable(small_mnist, mnist_drawn):
    canvases, labels = mnist_drawn
    again, _ = drawn.render_mnist_as_drawn(small_mnist.x_test, small_mnist.y_test, seed=3, n=12)
    tail, tail_labels = drawn.render_mnist_as_drawn(small_mnist.x_test, small_mnist.y_test, seed=3, n=4, start=8)
    other, _ = drawn.render_mnist_as_drawn(small_mnist.x_test, small_mnist.y_test, seed=4, n=12)
    np.testing.assert_array_equal(canvases, again)
    np.testing.assert_array_equal(canvases[8:], tail)
    np.testing.assert_array_equal(labels[8:], tail_labels)
    assert not np.array_equal(canvases, other)


def test_templates_cover_every_digit_deterministically():
    canvases, labels = drawn.render_templates(seed=1, per_digit=2)
    again, _ = drawn.render_templates(seed=1, per_digit=2)
    assert canvases.shape == (20, 280, 280, 4)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(canvases, again)
    assert all((ink_intensity(c) > 0.5).any() for c in canvases)


def test_every_digit_has_several_template_styles():
    assert sorted(drawn.TEMPLATES) == list(range(10))
    assert all(len(styles) >= 3 for styles in drawn.TEMPLATES.values())


def test_thinning_leaves_a_one_pixel_line():
    bar = np.zeros((1, 20, 30), bool)
    bar[0, 7:13, 3:27] = True
    skeleton = drawn.thin(bar)[0]
    assert skeleton.any()
    assert skeleton.sum(axis=0).max() == 1  # one pixel tall wherever it is
    assert skeleton[:, 3:27].any(axis=0).sum() >= 14  # and still spans most of the bar


@pytest.mark.parametrize("background", drawn.BACKGROUNDS)
def test_every_background_reads_as_the_same_ink(background):
    rng = np.random.default_rng(0)
    ink = np.zeros((280, 280), np.uint8)
    ink[100:180, 130:150] = 255
    canvas = drawn.as_canvas(ink, background, rng)
    assert canvas.shape == (280, 280, 4)
    seen = ink_intensity(canvas)
    assert (
        seen[140 * seen.shape[0] // 280, 140 * seen.shape[1] // 280] > 0.7
    )  # a dark pen colour is a little less than full ink
    assert seen[10, 10] == 0.0


def test_pose_stays_within_the_canvas_and_ranges():
    rng = np.random.default_rng(5)
    for _ in range(50):
        pose = drawn.random_pose(rng)
        assert 0.25 * 280 <= pose.height <= 0.9 * 280
        assert drawn.PEN_RANGE[0] <= pose.pen <= drawn.PEN_RANGE[1]
        segments = drawn.template_segments(drawn.TEMPLATES[8][0], rng)
        placed = drawn.place(segments, pose, rng)
        assert placed.min() >= pose.pen / 2 and placed.max() <= 280 - pose.pen / 2
