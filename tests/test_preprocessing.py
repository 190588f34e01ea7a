"""MNIST-style preprocessing: the contract, equivalence across formats and sizes, and arbitrary input."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from digit.preprocessing import MAX_PIXELS, ImageError, preprocess, preprocess_steps

CANVAS = 280


def as_canvas(digit: np.ndarray, size: int = CANVAS) -> np.ndarray:
    """A 28x28 MNIST digit blown up to a size x size uint8 ink image (white on black)."""
    return cv2.resize(digit, (size, size), interpolation=cv2.INTER_LINEAR)


def opaque_rgba(ink: np.ndarray) -> np.ndarray:
    """What the canvas returns with an opaque black background and white ink."""
    rgba = np.full((*ink.shape, 4), 255, np.uint8)
    rgba[..., :3] = ink[..., None]
    return rgba


def transparent_rgba(ink: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """What the canvas returns with a transparent background: the ink is only in alpha."""
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = ink
    return rgba


def ink_box(x: np.ndarray) -> tuple[int, int]:
    """(height, width) of the nonzero part of an image."""
    rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def centre_of_mass(x: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(x.shape)
    return float((ys * x).sum() / x.sum()), float((xs * x).sum() / x.sum())


def assert_similar(x: np.ndarray, reference: np.ndarray, mean: float = 0.02, correlation: float = 0.97) -> None:
    """Equal up to resampling: sub-pixel shifts move stroke edges, not the digit."""
    assert np.abs(x - reference).mean() < mean
    assert np.corrcoef(x.ravel(), reference.ravel())[0, 1] > correlation


def assert_valid(x: np.ndarray | None) -> None:
    """The contract: (28, 28) float32 in [0, 1], white ink on a black border."""
    assert x is not None
    assert x.shape == (28, 28)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.fixture(scope="module")
def drawing(mnist_digits) -> np.ndarray:
    """A '3' as a 280x280 uint8 ink image."""
    return as_canvas(mnist_digits[3])


@pytest.fixture(scope="module")
def reference(drawing) -> np.ndarray:
    return preprocess(drawing)


# --- the contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("digit", range(10))
def test_contract_white_ink_on_black(mnist_digits, digit):
    x = preprocess(opaque_rgba(as_canvas(mnist_digits[digit])))
    assert_valid(x)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    assert border.max() == 0.0  # the digit sits inside a 4 px margin, like MNIST
    assert x.max() > 0.9  # the strokes are bright


def test_mnist_images_go_through_nearly_unchanged(small_mnist):
    images = small_mnist.x_test
    results = [preprocess(image) for image in images]
    assert all(r is not None for r in results)
    originals = images.astype(np.float32) / 255
    mean_diff = np.array([np.abs(r - o).mean() for r, o in zip(results, originals, strict=True)])
    correlation = np.array([np.corrcoef(r.ravel(), o.ravel())[0, 1] for r, o in zip(results, originals, strict=True)])
    assert np.median(mean_diff) < 0.002
    assert np.mean(correlation > 0.97) > 0.95


def test_steps_end_in_the_same_result(drawing, reference):
    steps = preprocess_steps(drawing)
    np.testing.assert_array_equal(steps.result, reference)
    assert max(steps.scaled.shape) == 20
    assert steps.cropped.shape[0] <= steps.grayscale.shape[0]
    assert steps.grayscale.min() >= 0 and steps.grayscale.max() <= 1


# --- the same drawing in every format gives the same result ------------------------------------


FORMATS = {
    "opaque canvas, black background, white ink": opaque_rgba,
    "transparent canvas, black ink": lambda k: transparent_rgba(k, (0, 0, 0)),
    "transparent canvas, white ink": lambda k: transparent_rgba(k, (255, 255, 255)),
    "transparent canvas, red ink": lambda k: transparent_rgba(k, (200, 30, 30)),
    "transparent canvas, blue ink": lambda k: transparent_rgba(k, (20, 40, 220)),
    "opaque canvas, white background, black ink": lambda k: opaque_rgba(255 - k),
    "RGB, white background, dark ink": lambda k: np.repeat((255 - k)[..., None], 3, axis=2),
    "grayscale": lambda k: k,
    "grayscale (H, W, 1)": lambda k: k[..., None],
    "gray + alpha": lambda k: np.stack([k, np.full_like(k, 255)], axis=-1),
    "float in [0, 1]": lambda k: k / 255.0,
    "float32 in [0, 255]": lambda k: k.astype(np.float32),
    "uint16": lambda k: k.astype(np.uint16) * 257,
    "int32": lambda k: k.astype(np.int32),
}


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_gives_the_same_result(drawing, reference, name):
    x = preprocess(FORMATS[name](drawing))
    assert_valid(x)
    assert np.abs(x - reference).max() < 0.02, name


def test_bool_drawing_matches_its_uint8_twin(drawing):
    binary = drawing > 127
    x = preprocess(binary)
    assert_valid(x)
    np.testing.assert_allclose(x, preprocess(binary.astype(np.uint8) * 255), atol=1e-3)


@pytest.mark.parametrize("size", [1000, 4000])
def test_large_images_give_the_same_result(drawing, reference, size):
    x = preprocess(opaque_rgba(cv2.resize(drawing, (size, size), interpolation=cv2.INTER_LINEAR)))
    assert_valid(x)
    assert np.abs(x - reference).max() < 0.05


@pytest.mark.parametrize("size", [20, 28, 56, 100])
def test_small_images_give_nearly_the_same_result(drawing, reference, size):
    # Shrinking loses detail and small crops keep their own stroke width, so only the overall
    # picture must agree (other digits correlate at 0.55 at most).
    x = preprocess(cv2.resize(drawing, (size, size), interpolation=cv2.INTER_AREA))
    assert_valid(x)
    assert_similar(x, reference, mean=0.1, correlation=0.75)


def test_non_square_canvas_gives_the_same_result(drawing, reference):
    wide = np.zeros((CANVAS, 700), np.uint8)
    wide[:, 300:580] = drawing
    assert_similar(preprocess(wide), reference)


def test_result_does_not_depend_on_where_the_digit_is_drawn(mnist_digits):
    digit = as_canvas(mnist_digits[7], 100)
    results = []
    for top, left in [(0, 0), (180, 180), (90, 20), (10, 170)]:
        canvas = np.zeros((CANVAS, CANVAS), np.uint8)
        canvas[top : top + 100, left : left + 100] = digit
        results.append(preprocess(canvas))
    for x in results[1:]:
        assert_similar(x, results[0])


def test_a_280_canvas_takes_about_a_millisecond(drawing):
    canvas = opaque_rgba(drawing)
    preprocess(canvas)
    started = time.perf_counter()
    for _ in range(50):
        preprocess(canvas)
    per_call = (time.perf_counter() - started) / 50
    assert per_call < 0.02  # ~1 ms idle; generous for a loaded CI machine


# --- crop, scale and centre of mass -----------------------------------------------------------


@pytest.mark.parametrize("digit", range(10))
@pytest.mark.parametrize("size", [60, 250])
def test_longer_side_is_20_and_centre_of_mass_is_centred(mnist_digits, digit, size):
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    canvas[15 : 15 + size, 10 : 10 + size] = as_canvas(mnist_digits[digit], size)
    x = preprocess(canvas)
    assert_valid(x)
    assert max(ink_box(x)) == 20
    com_y, com_x = centre_of_mass(x)
    assert abs(com_y - 14) <= 0.5 and abs(com_x - 14) <= 0.5


@pytest.mark.parametrize("axes", [(100, 50), (40, 120), (120, 120)])
def test_aspect_ratio_is_kept(axes):
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    cv2.ellipse(canvas, (140, 140), (axes[1] // 2, axes[0] // 2), 0, 0, 360, 255, 12)
    height, width = ink_box(preprocess(canvas))
    expected = 20 * min(axes) / max(axes)
    assert max(height, width) == 20
    assert abs(min(height, width) - expected) <= 1.5
    assert (height >= width) == (axes[0] >= axes[1])


# --- blank and near-blank images --------------------------------------------------------------


BLANKS = {
    "black": np.zeros((CANVAS, CANVAS), np.uint8),
    "white": np.full((CANVAS, CANVAS), 255, np.uint8),
    "grey": np.full((CANVAS, CANVAS), 128, np.uint8),
    "empty opaque canvas": opaque_rgba(np.zeros((CANVAS, CANVAS), np.uint8)),
    "empty transparent canvas": np.zeros((CANVAS, CANVAS, 4), np.uint8),
    "1x1": np.zeros((1, 1), np.uint8),
    "faint noise": np.random.default_rng(0).integers(0, 20, (CANVAS, CANVAS)).astype(np.uint8),
}


@pytest.mark.parametrize("name", BLANKS)
def test_blank_images_give_none(name):
    assert preprocess(BLANKS[name]) is None


def test_a_dot_is_not_a_digit():
    for radius in (2, 9, 20):
        canvas = np.zeros((CANVAS, CANVAS), np.uint8)
        cv2.circle(canvas, (120, 160), radius, 255, -1, cv2.LINE_AA)
        assert preprocess(opaque_rgba(canvas)) is None, radius


def test_a_stray_click_is_not_a_digit():
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    cv2.line(canvas, (50, 200), (56, 203), 255, 18, cv2.LINE_AA)  # an 18 px pen, barely moved
    assert preprocess(transparent_rgba(canvas, (0, 0, 0))) is None


@pytest.mark.parametrize("specks", [3, 40, 200])
def test_speckle_noise_is_not_a_digit(specks):
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    points = np.random.default_rng(specks).integers(0, CANVAS, (specks, 2))
    canvas[points[:, 0], points[:, 1]] = 255
    assert preprocess(canvas) is None
    assert preprocess(opaque_rgba(255 - canvas)) is None  # dark specks on white paper


def test_a_short_stroke_is_a_digit():
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    cv2.line(canvas, (140, 60), (140, 220), 255, 18)  # a "1"
    assert_valid(preprocess(canvas))


# --- refused input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        None,
        np.zeros(5),
        np.zeros((2, 2, 2, 2)),
        np.zeros((0, 5)),
        np.zeros((3, 3, 5)),
        np.array([["a"]]),
        np.zeros((3, 3), complex),
        np.full((5, 5), np.nan),
        np.pad(np.full((1, 1), np.inf), 3),
    ],
    ids=["None", "1-D", "4-D", "empty", "5 channels", "strings", "complex", "NaN", "inf"],
)
def test_unusable_arrays_raise_image_error(image):
    with pytest.raises(ImageError) as error:
        preprocess(image)
    message = str(error.value)
    assert message and "\n" not in message


def test_over_100_megapixels_is_refused_quickly():
    huge = np.broadcast_to(np.uint8(0), (10_001, 10_001))  # no memory behind it
    assert huge.size > MAX_PIXELS
    started = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        preprocess(huge)
    assert time.perf_counter() - started < 0.5


def test_huge_image_within_the_limit_is_handled(drawing):
    canvas = np.zeros((8000, 8000), np.uint8)
    canvas[1000:7000, 1000:7000] = cv2.resize(drawing, (6000, 6000), interpolation=cv2.INTER_NEAREST)
    x = preprocess(canvas)
    assert_valid(x)
    assert max(ink_box(x)) == 20


# --- property tests: anything in, a valid result, None or a clear ImageError out ----------------

DTYPES = [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]
MORE_DTYPES = [np.int8, np.int64, np.uint32, np.uint64, np.float16]  # what else numpy lets a caller pass


@st.composite
def shapes(draw) -> tuple[int, ...]:
    height = draw(st.sampled_from([1, 2, 3, 28]) | st.integers(1, 300))
    width = draw(st.sampled_from([1, 2, 3, 28]) | st.integers(1, 300))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    return (height, width) if channels is None else (height, width, channels)


def elements(dtype) -> st.SearchStrategy:
    if dtype == np.bool_:
        return st.booleans()
    if np.dtype(dtype).kind == "f":
        width = np.dtype(dtype).itemsize * 8
        return st.floats(allow_nan=True, allow_infinity=True, width=width) | st.sampled_from([0.0, 1.0, 255.0])
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max)) | st.sampled_from([0, min(255, int(info.max)), int(info.max)])


@st.composite
def images(draw) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES + MORE_DTYPES))
    shape = draw(shapes())
    background = draw(st.sampled_from([0, 1, 255, "any"]))
    if background == 255 and dtype == np.int8:
        background = 127
    if background == "any":
        return draw(hnp.arrays(dtype, shape, elements=elements(dtype)))
    fill = np.array(background).astype(dtype)  # mostly one value, a few pixels of anything
    return draw(hnp.arrays(dtype, shape, elements=elements(dtype), fill=st.just(fill.item())))


def check_anything(image: np.ndarray) -> None:
    try:
        x = preprocess(image)
    except ImageError as error:
        assert str(error) and "\n" not in str(error)
        return
    if x is not None:
        assert_valid(x)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(images())
@example(np.zeros((1, 1), np.uint8))
@example(np.full((28, 28), 255, np.uint8))
@example(np.full((28, 28, 4), 255, np.uint8))
@example(np.pad(np.ones((1, 1), np.float32), 13))
@example(np.full((1, 500), np.nan))
@example(np.array([[1e308, -1e308], [0.0, 1.0]]))
@example(np.pad(np.full((5, 40), 1e300), 20))
@example(np.array([[np.iinfo(np.int32).min, np.iinfo(np.int32).max]], np.int32))
@example(np.ones((40, 1, 2), bool))
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_any_array_gives_a_result_none_or_image_error(image):
    check_anything(image)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [None, 1, 2, 3, 4])
def test_huge_arrays_within_the_limit(dtype, channels):
    shape = (2000, 1500) if channels is None else (2000, 1500, channels)
    image = np.zeros(shape, dtype)
    image[600:1400, 700:760] = 1 if dtype == np.bool_ else 200  # a "1"
    check_anything(image)
    assert preprocess(image) is not None
