"""The Draw page's Number mode: several digits written side by side on a wide canvas, read left to right.

    render_number_mode(predictor, pen_width)     # the wide canvas, and the number read after every stroke
    render_number_upload(predictor)              # the same for an uploaded photo of a written number

After each stroke: the number in large type, each digit with its confidence ("not sure" where the
model hesitates), each digit's 28x28 input, and a small copy of the drawing with the boxes where
the digits were found. Everything fits a phone's 390 px. Reading is digit.read_number (NumPy,
OpenCV and the served predictor: no TensorFlow).
"""

from __future__ import annotations

import html

import cv2
import numpy as np
import streamlit as st

from app_pages.common import enlarge
from app_pages.parts import canvas  # only in the app: it cannot be imported outside a running one
from digit.images import read_image_bytes
from digit.number import NumberReading, ink_map, read_number
from digit.preprocessing import ImageError
from digit.strokes import from_canvas

WIDE = (700, 220)  # the canvas, width x height
NARROW = (360, 150)  # on a phone: a 700 px canvas would scroll sideways under the finger
TILE = 56  # each digit's 28x28 input, enlarged; six of them with gaps fit a phone's 390 px
OVERVIEW_WIDTH = 350  # the small copy of the drawing with the boxes
BOX_COLOUR = (79, 70, 229)  # the theme's primary colour (RGB)
UPLOAD_LIMIT_MB = 10  # as the Draw page's single-digit upload
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "webp"]


def render_number_mode(predictor, pen_width: int = 22) -> None:
    """The wide canvas; after every stroke, the number read and how."""
    size = canvas_size()
    image = number_canvas(size, pen_width)
    st.caption(
        "Write a number: digits side by side, left to right (an age, a year, a phone number), "
        "one digit after the other. Digits may touch."
    )
    reading, problem = read_or_explain(predictor, image, drawn_strokes(size, image))
    show_reading(reading, image, problem, hint="Write a number on the black strip: it is read when you lift the pen.")


def render_number_upload(predictor) -> None:
    """An uploaded photo or scan of a written number, read the same way."""
    file = st.file_uploader(
        "Upload an image of a written number",
        type=UPLOAD_TYPES,
        max_upload_size=UPLOAD_LIMIT_MB,
        key="number_upload",
        help=f"PNG, JPEG, BMP or WebP, up to {UPLOAD_LIMIT_MB} MB: digits side by side, dark on light or light on dark.",
    )
    image, problem = None, ""
    if file is not None:
        try:
            image = read_image_bytes(file.getvalue())
        except ImageError as error:
            problem = f"Cannot read {file.name}: {error}"
    reading, why = read_or_explain(predictor, image)
    show_reading(reading, image, problem or why, hint="Upload a picture of a written number.")


def canvas_size() -> tuple[int, int]:
    """Wide, or narrow on a phone (a guess from the browser's user agent that the visitor can change)."""
    phone = "Mobi" in (st.context.headers.get("User-Agent") or "")
    choice = st.segmented_control(
        "Canvas",
        ["Wide", "Narrow"],
        default="Narrow" if phone else "Wide",
        key="number_canvas_size",
        label_visibility="collapsed",
        help="Narrow fits a phone's screen.",
    )
    return NARROW if choice == "Narrow" else WIDE


def number_canvas(size: tuple[int, int], pen_width: int) -> np.ndarray | None:
    """The wide canvas, white ink on black like the single-digit one; its RGBA pixels, None before the first stroke."""
    width, height = size
    st.space("medium")  # room for the canvas's own toolbar, which floats above the drawing surface on hover
    pen = max(4, round(pen_width * height / WIDE[1]))  # the same pen, relative to the canvas height
    # With the page's Undo and Clear.
    return canvas.drawing(pen, key=canvas_key(size), width=width, height=height)


def canvas_key(size: tuple[int, int]) -> str:
    """One canvas per size: a canvas cannot change size under a drawing."""
    return f"number_canvas_{size[0]}"


def drawn_strokes(size: tuple[int, int], image: np.ndarray | None) -> list[np.ndarray] | None:
    """The canvas's strokes in the image's pixels, in the order they were drawn (None where there is no drawing)."""
    drawing = canvas.kept_drawing(canvas_key(size))
    if image is None or drawing is None:
        return None
    scale = image.shape[1] / size[0]  # the canvas's pixels may be denser than its size on a high-density screen
    return [points * scale for points in from_canvas(drawing)] or None


def read_or_explain(
    predictor, image: np.ndarray | None, strokes: list[np.ndarray] | None = None
) -> tuple[NumberReading | None, str]:
    """The number in `image` (None before any input), or why the image cannot be read."""
    if image is None:
        return None, ""
    try:
        return read_number(predictor, image, strokes), ""
    except ImageError as error:
        return None, f"Cannot use this image: {error}"


def show_reading(reading: NumberReading | None, image: np.ndarray | None, problem: str, hint: str) -> None:
    """The number in large type, then each digit (its input and confidence) and where the digits were found."""
    if problem:
        st.error(problem)
    if reading is None or not reading.digits:
        st.metric("Number", "–")
        st.caption(hint)
        return
    st.html(LARGE_NUMBER)
    with st.container(key="number_read"):
        st.metric("Number", reading.number)
    for place, d in enumerate(reading.digits, start=1):
        if d.unsure:
            st.warning(f"Not sure about digit {place}: {d.digit} or {d.runner_up}?")
    st.html(digit_chips(reading))
    st.image(digit_strip(reading), caption="What the model sees, digit by digit (28×28 each, enlarged)")
    st.image(overview(image, reading), width=OVERVIEW_WIDTH, caption="Where the digits were found")


def digit_chips(reading: NumberReading) -> str:
    """Each digit and its confidence as a row of small labels, in plain HTML (cheap for server and browser)."""
    chips = "".join(
        CHIP.format(
            kind="unsure" if d.unsure else "sure",
            digit=d.digit,
            text=html.escape(f"{d.confidence:.0%}" + (f", not sure: {d.digit} or {d.runner_up}?" if d.unsure else "")),
        )
        for d in reading.digits
    )
    return CHIPS_STYLE + f'<div class="number-digits" aria-label="Digits read">{chips}</div>'


LARGE_NUMBER = "<style>.st-key-number_read [data-testid='stMetricValue'] {font-size: 3.5rem; line-height: 1.1;}</style>"
CHIP = '<span class="number-digit {kind}"><strong>{digit}</strong> {text}</span>'
CHIPS_STYLE = """<style>
.number-digits {display: flex; flex-wrap: wrap; gap: 6px; margin: 0 0 8px;}
.number-digit {padding: 2px 8px; border-radius: 12px; background: #f4f5fb; font-size: 0.85rem; color: #1f2330;}
.number-digit strong {font-size: 1rem;}
.number-digit.unsure {background: #fff4e5; color: #8a4b00;}
</style>"""


def digit_strip(reading: NumberReading, tile: int = TILE, gap: int = 8) -> np.ndarray:
    """Each digit's 28x28 input, enlarged, side by side on white (wrapped to rows of six)."""
    tiles = [enlarge(d.model_input, tile) for d in reading.digits]
    rows = [tiles[i : i + 6] for i in range(0, len(tiles), 6)]
    columns = len(rows[0])
    strip = np.full((len(rows) * (tile + gap) - gap, columns * (tile + gap) - gap), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            strip[r * (tile + gap) : r * (tile + gap) + tile, c * (tile + gap) : c * (tile + gap) + tile] = picture
    return strip


def overview(image: np.ndarray, reading: NumberReading, width: int = OVERVIEW_WIDTH) -> np.ndarray:
    """A small copy of the drawing, white ink on black, with each digit's box and what it was read as."""
    ink, _ = ink_map(image)
    scale = width / ink.shape[1]
    picture = cv2.resize(ink, (width, max(1, round(ink.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    picture = cv2.cvtColor((picture * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    picture = cv2.copyMakeBorder(picture, 18, 0, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))  # room for labels
    to_small = width / image.shape[1]
    for d in reading.digits:
        x, y, w, h = (round(v * to_small) for v in d.box)
        cv2.rectangle(picture, (x, y + 18), (x + w, y + h + 18), BOX_COLOUR, 2)
        label = (max(0, x + w // 2 - 4), max(14, y + 14))  # over the box's middle: touching digits' boxes overlap
        cv2.putText(picture, str(d.digit), label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return picture
