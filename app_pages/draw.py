"""Draw: a digit drawn with mouse or finger (or an uploaded image), recognised after every stroke."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from streamlit_drawable_canvas import st_canvas  # only here: it cannot be imported outside a running app

from app_pages import corrections_ui
from app_pages.common import enlarge, model_in_use
from digit.images import read_image_bytes
from digit.inference import Prediction, predict
from digit.preprocessing import ImageError, preprocess_steps

CANVAS_SIZE = 280
UPLOAD_LIMIT_MB = 10  # the same as server.maxUploadSize in .streamlit/config.toml
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "webp"]


def canvas_image(pen_width: int) -> np.ndarray | None:
    """The canvas: white ink on black, like MNIST. Returns its RGBA pixels, None before the first stroke."""
    result = st_canvas(
        stroke_width=pen_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=CANVAS_SIZE,
        width=CANVAS_SIZE,
        drawing_mode="freedraw",
        return_image_data=True,
        update_streamlit=True,
        key="canvas",
    )
    return result.image_data


def uploaded_image() -> np.ndarray | None:
    """An uploaded image decoded in memory; st.error with the reason when it cannot be read."""
    file = st.file_uploader(
        "Upload an image of one digit",
        type=UPLOAD_TYPES,
        max_upload_size=UPLOAD_LIMIT_MB,
        key="upload",
        help=f"PNG, JPEG, BMP or WebP, up to {UPLOAD_LIMIT_MB} MB. Dark on light or light on dark both work.",
    )
    if file is None:
        return None
    try:
        return read_image_bytes(file.getvalue())
    except ImageError as error:
        st.error(f"Cannot read {file.name}: {error}")
        return None


def show_prediction(model, image: np.ndarray | None, hint: str) -> None:
    """The answer: digit, confidence, all ten probabilities and what the model saw."""
    try:
        prediction = predict(model, image) if image is not None else None
    except ImageError as error:
        st.error(f"Cannot use this image: {error}")
        prediction = None
    if prediction is None or prediction.digit is None:
        st.metric("Prediction", "–")
        st.caption(hint)
        return
    answer, sure = st.columns(2)
    answer.metric("Prediction", str(prediction.digit))
    sure.metric("Confidence", f"{prediction.confidence:.0%}")
    if prediction.unsure:
        st.warning(f"Not sure: {prediction.digit} or {prediction.runner_up}?")
    st.altair_chart(probability_chart(prediction), width="stretch")
    st.image(enlarge(prediction.model_input, 168), width=168, caption="What the model sees (28×28, enlarged)")
    corrections_ui.render_feedback(prediction, image)
    with st.expander("How the image becomes 28×28"):
        show_steps(image)


def probability_chart(prediction: Prediction) -> alt.Chart:
    """All ten probabilities as bars, the answer highlighted."""
    data = pd.DataFrame(
        {
            "digit": [str(d) for d in range(10)],
            "probability": prediction.probabilities,
            "answer": [d == prediction.digit for d in range(10)],
        }
    )
    return (
        alt.Chart(data, height=170)
        .mark_bar()
        .encode(
            x=alt.X("digit:N", axis=alt.Axis(labelAngle=0, title=None)),
            y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
            color=alt.condition(alt.datum.answer, alt.value("#4f46e5"), alt.value("#c7cbe0")),
            tooltip=["digit", alt.Tooltip("probability:Q", format=".1%")],
        )
    )


def show_steps(image: np.ndarray) -> None:
    """Each preprocessing step, MNIST's recipe: ink only, crop, fit in 20×20, centre by mass in 28×28."""
    steps = preprocess_steps(image)
    shown = [
        (steps.grayscale, "ink, background removed"),
        (steps.cropped, "cropped to the ink"),
        (steps.scaled, "longer side 20 px"),
        (steps.result, "centred in 28×28"),
    ]
    for column, (picture, caption) in zip(st.columns(4), shown, strict=True):
        if picture is not None:
            column.image(enlarge(picture, 112), caption=caption)


in_use = model_in_use()
st.title("Draw a digit")
if in_use.model is None:
    st.error(in_use.warning or "No model is available.")
    st.stop()

left, right = st.columns([1, 1], gap="large")
with left:
    source = st.radio("Input", ["Draw", "Upload"], horizontal=True, key="input_source", label_visibility="collapsed")
    if source == "Draw":
        st.space("medium")  # room for the canvas toolbar, which floats above the drawing surface
        image = canvas_image(st.session_state.setdefault("pen_width", 22))
        st.caption(
            "Draw one digit, large and centred. The toolbar above the canvas has undo, redo and clear (the bin)."
        )
        st.slider("Pen width", min_value=8, max_value=40, key="pen_width")
        hint = "Draw a digit on the black square: the answer appears when you lift the pen."
    else:
        image = uploaded_image()
        hint = "Upload a picture of one digit."
with right:
    show_prediction(in_use.model, image, hint)
