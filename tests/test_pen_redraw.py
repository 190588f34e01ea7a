"""MNIST training digits redrawn with a pen: what share, what they look like, and the 9s' hooks."""

from __future__ import annotations

import numpy as np
import pytest

from digit.drawn import skeleton_segments, thin, upscaled_masks
from digit.pen_redraw import redraw_with_pen, training_pose, with_hook
from digit.preprocessing import preprocess


@pytest.fixture(scope="module")
def digits(small_mnist) -> tuple[np.ndarray, np.ndarray]:
    return small_mnist.x_train[:200], small_mnist.y_train[:200]


def test_about_the_share_asked_for_is_redrawn_and_the_rest_is_untouched(digits):
    images, labels = digits
    redrawn = redraw_with_pen(images, labels, fraction=0.5, seed=3)
    changed = (redrawn != images).any(axis=(1, 2))
    assert redrawn.shape == images.shape and redrawn.dtype == np.uint8
    assert 0.35 < changed.mean() < 0.65
    assert (images == digits[0]).all(), "the input is not modified"


def test_no_share_changes_nothing_and_all_redraws_every_digit(digits):
    images, labels = digits
    assert (redraw_with_pen(images, labels, fraction=0.0) == images).all()
    assert (redraw_with_pen(images, labels, fraction=1.0) != images).any(axis=(1, 2)).mean() > 0.95


def test_redrawn_digits_are_prepared_as_drawings_are(digits):
    images, labels = digits
    redrawn = redraw_with_pen(images[:40], labels[:40], fraction=1.0)
    for digit in redrawn:
        ink = digit / 255
        rows, cols = np.nonzero(ink >= 0.2)
        assert max(np.ptp(rows), np.ptp(cols)) <= 21  # fitted in MNIST's 20 px box
        centre = [(ink.sum(axis=1 - axis) * np.arange(28)).sum() / ink.sum() for axis in (0, 1)]
        assert np.allclose(centre, 14, atol=1.0)  # centred by mass, as MNIST was
        assert ink.max() > 0.9 and preprocess(digit) is not None


def test_the_same_seed_gives_the_same_digits(digits):
    images, labels = digits
    first = redraw_with_pen(images[:20], labels[:20], fraction=1.0, seed=5)
    assert (first == redraw_with_pen(images[:20], labels[:20], fraction=1.0, seed=5)).all()
    assert (first != redraw_with_pen(images[:20], labels[:20], fraction=1.0, seed=6)).any()


def test_a_hook_goes_below_the_stem_and_to_its_left(small_mnist):
    nine = small_mnist.x_train[np.flatnonzero(small_mnist.y_train == 9)[0]]
    segments = skeleton_segments(thin(upscaled_masks(nine[np.newaxis]))[0])
    hooked = with_hook(segments, np.random.default_rng(0))
    before, after = segments.reshape(-1, 2), hooked.reshape(-1, 2)
    added = hooked[len(segments) :].reshape(-1, 2)
    assert len(hooked) > len(segments)
    assert after[:, 1].max() > before[:, 1].max()  # lower
    bottom_x = before[before[:, 1] >= before[:, 1].max() - 2, 0].mean()
    assert added[-1, 0] < bottom_x  # ends to the left of where the stem ended


def test_training_poses_include_bold_pens_on_small_digits():
    poses = [training_pose(np.random.default_rng(i)) for i in range(500)]
    ratios = np.array([p.pen / p.height for p in poses])
    assert ratios.max() > 0.3
    assert all(6 <= p.pen <= 44 for p in poses)
