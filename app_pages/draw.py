"""Draw: a digit drawn with mouse or finger (or an uploaded image), recognised after every stroke."""

import cv2
import numpy as np
import streamlit as st

from app_pages import corrections_ui
from app_pages.common import enlarge, model_in_use
from app_pages.parts import canvas
from app_pages.parts.inside_network import render_inside_network
from app_pages.parts.number_mode import render_number_mode, render_number_upload
from digit.doubt import SCRIBBLE, SEVERAL_DIGITS
from digit.images import read_image_bytes
from digit.inference import Prediction, predict
from digit.preprocessing import ImageError, preprocess_steps

UPLOAD_LIMIT_MB = (
    10  # the page's limit; server.maxUploadSize (.streamlit/config.toml) lets a bit more through, to say so
)
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "webp"]
FORMATS = "PNG, JPEG, BMP or WebP"


def uploaded_image() -> np.ndarray | None:
    """An uploaded image decoded in memory, shown as it is; st.error with the reason when it cannot be used."""
    file = st.file_uploader(
        "Upload an image of one digit",
        type=UPLOAD_TYPES,
        key="upload",
        help=f"{FORMATS}, up to {UPLOAD_LIMIT_MB} MB. Dark on light or light on dark both work.",
    )
    if file is None:
        return None
    if file.size > UPLOAD_LIMIT_MB * 1024 * 1024:
        st.error(f"{file.name} is {file.size / 1e6:.1f} MB; the limit is {UPLOAD_LIMIT_MB} MB. Try a smaller picture.")
        return None
    try:
        image = read_image_bytes(file.getvalue())
    except ImageError as error:
        reason = f"it is not a {FORMATS} image" if "not an image file" in str(error) else str(error)
        st.error(f"Cannot read {file.name}: {reason}.")
        return None
    st.image(enlarge(image, 240) if min(image.shape[:2]) < 120 else image, width=240, caption=file.name)
    return image


def predict_or_explain(predictor, image: np.ndarray | None) -> tuple[Prediction | None, str]:
    """The prediction for `image` (None before any input), or why the image cannot be used."""
    if image is None:
        return None, ""
    try:
        return predict(predictor, image), ""
    except ImageError as error:
        return None, f"Cannot use this image: {error}"


def answer_under_canvas(prediction: Prediction | None) -> None:
    """The answer in one line under the canvas, shown only on narrow screens (a phone): there the
    columns stack and the full results start below the fold."""
    if prediction is None or prediction.digit is None:
        return
    st.html(NARROW_ONLY)
    with st.container(key="answer_under_canvas"):
        if prediction.doubt == SEVERAL_DIGITS:
            st.markdown("### Several digits? Choose **Number** above.")
        elif prediction.doubt:
            st.markdown("### That does not look like a digit.")
        elif prediction.unsure:
            st.markdown(f"### {prediction.digit} or {prediction.runner_up}? Not sure.")
        else:
            st.markdown(f"### It is a {prediction.digit} ({prediction.confidence:.0%} sure)")


NARROW_ONLY = "<style>@media (min-width: 641px) {.st-key-answer_under_canvas {display: none;}}</style>"


def show_prediction(prediction: Prediction | None, image: np.ndarray | None, hint: str, problem: str) -> None:
    """The answer: digit, confidence, all ten probabilities and what the model saw."""
    if problem:
        st.error(problem)
    if prediction is None or prediction.digit is None:
        st.metric("Prediction", "–")
        st.caption(hint)
        return
    answer, sure = st.columns(2)
    answer.metric("Prediction", str(prediction.digit))
    sure.metric("Confidence", f"{prediction.confidence:.0%}")
    if prediction.unsure:
        st.warning(doubt_text(prediction))
    st.html(probability_bars(prediction))
    st.image(enlarge(prediction.model_input, 168), width=168, caption="What the model sees (28×28, enlarged)")
    if prediction.doubt != SEVERAL_DIGITS:  # "12" is no digit's example: nothing to save as a correction
        corrections_ui.render_feedback(prediction, image)
    # A toggle, not an expander: an expander's content is sent with every stroke even while closed.
    if st.toggle("Show how the image becomes 28×28", key="show_steps"):
        show_steps(image)


def doubt_text(prediction: Prediction) -> str:
    """Why the answer is not to be trusted, and what to do about it."""
    if prediction.doubt == SEVERAL_DIGITS:
        return "This looks like several digits: this canvas reads one. To read a whole number, choose **Number** above."
    if prediction.doubt == SCRIBBLE:
        return "This does not look like a digit (more loops than any digit has). Clear it and write one digit."
    return (
        f"Not sure: {prediction.digit} or {prediction.runner_up}? Write one digit, large; "
        "for several digits side by side, choose **Number** above."
    )


def probability_bars(prediction: Prediction) -> str:
    """All ten probabilities as a bar chart in plain HTML, the answer highlighted.

    Plain HTML rather than a Vega chart: it costs the server and the browser almost nothing per
    stroke, which is what keeps a page responsive on a phone and with many visitors at once.
    """
    bars = "".join(
        BAR.format(
            digit=digit,
            height=max(1.0, 100 * probability),
            label=f"{probability:.0%}" if probability >= 0.005 else "",
            kind="answer" if digit == prediction.digit else "other",
            title=f"{digit}: {probability:.1%}",
        )
        for digit, probability in enumerate(prediction.probabilities.tolist())
    )
    summary = ", ".join(f"{d}: {p:.1%}" for d, p in enumerate(prediction.probabilities.tolist()))
    return BARS_STYLE + f'<div class="digit-bars" role="img" aria-label="Probabilities, {summary}">{bars}</div>'


BAR = (
    '<div class="digit-bar {kind}" title="{title}"><span class="value">{label}</span>'
    '<span class="track"><span class="fill" style="height:{height:.1f}%"></span></span>'
    '<span class="digit">{digit}</span></div>'
)
BARS_STYLE = """<style>
.digit-bars {display: flex; gap: 6px; align-items: stretch; height: 150px; margin: 4px 0 12px;}
.digit-bar {flex: 1; display: flex; flex-direction: column; align-items: center; min-width: 0;}
.digit-bar .value {font-size: 0.72rem; color: #5b6072; height: 1.1rem; white-space: nowrap;}
.digit-bar .track {flex: 1; width: 100%; display: flex; align-items: flex-end; background: #f4f5fb; border-radius: 4px;}
.digit-bar .fill {width: 100%; border-radius: 4px; background: #c7cbe0;}
.digit-bar.answer .fill {background: #4f46e5;}
.digit-bar.answer .value, .digit-bar.answer .digit {color: #1f2330; font-weight: 600;}
.digit-bar .digit {font-size: 0.9rem; color: #5b6072; margin-top: 2px;}
</style>"""


def show_steps(image: np.ndarray) -> None:
    """Each preprocessing step, MNIST's recipe: ink only, crop, fit in 20×20, centre by mass in 28×28."""
    steps = preprocess_steps(image)
    shown = [
        (steps.grayscale, "1. ink only"),
        (steps.cropped, "2. cropped"),
        (steps.scaled, "3. 20 px"),
        (steps.result, "4. centred, 28×28"),
    ]
    for column, (picture, caption) in zip(st.columns(4), shown, strict=True):
        if picture is not None:
            column.image(square(picture, 112), caption=caption)


def square(picture: np.ndarray, size: int) -> np.ndarray:
    """A picture enlarged into a size x size square (padded with black), so that a row of them lines up."""
    enlarged = enlarge(picture, size)
    height, width = enlarged.shape[:2]
    top, left = (size - height) // 2, (size - width) // 2
    return cv2.copyMakeBorder(
        enlarged, top, size - height - top, left, size - width - left, cv2.BORDER_CONSTANT, value=0
    )


def single_digit(predictor) -> None:
    """The default: one digit on a 280x280 canvas (or an upload), its answer and what the model saw."""
    left, right = st.columns([1, 1], gap="large")
    with left:
        source = st.radio(
            "Input", ["Draw", "Upload"], horizontal=True, key="input_source", label_visibility="collapsed"
        )
        if source == "Draw":
            st.space("medium")  # room for the canvas's own toolbar, which floats above the drawing surface on hover
            image = canvas.drawing(st.session_state.setdefault("pen_width", 22), buttons=False)
            prediction, problem = predict_or_explain(predictor, image)
            answer_under_canvas(prediction)  # first: on a phone it must show without scrolling
            canvas.controls()
            st.caption(
                "Draw one digit, large and centred. The small toolbar that appears above the canvas under a mouse "
                "has undo and clear too; its send and edit buttons are not needed here."
            )
            st.slider("Pen width", min_value=8, max_value=40, key="pen_width")
            hint = "Draw a digit on the black square: the answer appears when you lift the pen."
        else:
            image = uploaded_image()
            prediction, problem = predict_or_explain(predictor, image)
            answer_under_canvas(prediction)
            hint = "Upload a picture of one digit."
    with right:
        show_prediction(prediction, image, hint, problem)
    render_inside_network(predictor, prediction, image)


def whole_number(predictor) -> None:
    """Several digits side by side on a wide canvas (or a photo of a written number), read left to right."""
    if (
        st.radio("Input", ["Draw", "Upload"], horizontal=True, key="input_source", label_visibility="collapsed")
        == "Draw"
    ):
        render_number_mode(predictor, st.session_state.setdefault("pen_width", 22))
        st.slider("Pen width", min_value=8, max_value=40, key="pen_width")
    else:
        render_number_upload(predictor)


in_use = model_in_use()
st.title("Draw a digit")
if in_use.predictor is None:
    st.error(in_use.warning or "No model is available.")
    st.stop()
mode = st.radio(
    "Write",
    ["Digit", "Number"],
    horizontal=True,
    key="draw_mode",
    label_visibility="collapsed",
    help="Number: write several digits side by side (your age, a year), read left to right.",
)
if mode == "Number":
    whole_number(in_use.predictor)
else:
    single_digit(in_use.predictor)
