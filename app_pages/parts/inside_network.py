"""Inside the network: what each layer sees of a digit, and which strokes decided the answer.

    render_inside_network(predictor, prediction, image)          # the Draw page, under the results
    render_training_views(predictor_after, predictor_before)     # the Train page, after a run

Both are behind a toggle, closed by default, and compute nothing while closed (a toggle, not an
expander: an expander's content is made and sent with every stroke even while closed). The maths
and the pictures are in digit/explanation.py; this file only lays them out. Pictures are at most
352 px wide, so they fit a phone's 390 px screen.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages.common import mnist, mnist_source
from digit.explanation import (
    PICTURE_WIDTH,
    Explanation,
    drawing_saliency,
    every_view,
    explain_prepared,
    first_kernels,
    heat_picture,
    kernels_picture,
    note_for,
    png_bytes,
    stage_views,
    strongest,
    view_picture,
)
from digit.inference import Prediction

HEAT_SIZE = 168
TEST_DIGITS = (4, 7, 9, 3)  # shown on the Train page: the first of each in the MNIST test set
SALIENCY_HELP = (
    "Red: hiding that part (painting it black) makes the network less sure of the answer; blue: more sure. "
    "Every 5×5 patch with ink is hidden in turn and the network runs on all of them at once."
)
MAPS_HELP = (
    "Each square is one channel: a filter's response at every position of the image. Channels are sorted "
    "strongest first; one colour scale per layer, so silent channels stay dark (yellow: strong; dark blue: "
    "nothing; blue-white-red: negative-zero-positive, before an activation)."
)


def render_inside_network(predictor, prediction: Prediction | None, image: np.ndarray | None) -> None:
    """The Draw page's "Inside the network" for the current drawing or upload."""
    if not st.toggle(
        "Inside the network",
        key="inside_network",
        help="What each layer of the network sees of your digit, and which strokes decided the answer.",
    ):
        return
    if prediction is None or prediction.digit is None:
        st.caption("Draw or upload a digit to look inside the network.")
        return
    with st.spinner("Looking inside the network…"):  # seconds only once, for a model saved before layer views
        explanation = explain_prepared(predictor, prediction.model_input, prediction)
    show_saliency(explanation, image)
    show_layers(explanation)


def show_saliency(e: Explanation, image: np.ndarray | None) -> None:
    """Which regions raised or lowered the answer: over the 28x28 input, against the runner-up, over the drawing."""
    p = e.prediction
    st.markdown("**Which strokes decided the answer**")
    with pictures_row():
        heat(e.saliency, p.model_input, f"What makes it a {p.digit}")
        heat(
            e.versus(p.runner_up), p.model_input, f"A {p.digit} rather than a {p.runner_up}" + " (not sure)" * p.unsure
        )
        mapped = drawing_saliency(e.saliency, p.model_input, image) if image is not None else None
        if mapped is not None:
            heat(mapped[1], mapped[0], "The same, on your drawing")
    st.caption(SALIENCY_HELP + f" Here: {e.occluded} hidden patches.")


def heat(saliency: np.ndarray, base: np.ndarray, text: str) -> None:
    picture(heat_picture(saliency, base, HEAT_SIZE), text)


def picture(image: np.ndarray, text: str) -> None:
    """One picture at its own width (its caption wraps to it), sent as a fast-compressed PNG.

    output_format="PNG" keeps Streamlit from re-encoding it: "auto" turns an RGB PNG into a JPEG.
    """
    st.image(png_bytes(image), caption=text, width=image.shape[1], output_format="PNG")


def pictures_row():
    """Pictures side by side, as many as the screen's width holds (two heat maps a row on a phone)."""
    return st.container(horizontal=True, gap="small")


def show_layers(e: Explanation, every_layer_key: str = "inside_every_layer") -> None:
    """Each convolution's feature maps, the dense layers' units and the output; every layer on demand."""
    st.markdown("**What each layer sees**")
    if not e.layers:
        st.info(f"The layers cannot be shown for this model ({e.note}).")
        return
    st.caption(MAPS_HELP)
    views = stage_views(e)
    with pictures_row():
        for view in views:
            if view.values.ndim == 3:
                picture(view_picture(view, e), caption(view))
    for view in views:
        if view.values.ndim == 1:
            picture(view_picture(view, e), caption(view))
    if st.toggle("Every layer", key=every_layer_key, help="Batch norm, pooling, dropout and flatten too, in order."):
        show_every_layer(e)


def show_every_layer(e: Explanation) -> None:
    previous = None
    with pictures_row():
        for view in every_view(e)[1:]:
            note = note_for(view, previous)
            if note:
                st.caption(note, width=PICTURE_WIDTH)
                continue
            picture(view_picture(view, e), caption(view))
            previous = view


def caption(view) -> str:
    """A picture's caption: the layer, its shape, and its strongest channels or units."""
    if view.kind == "output":
        return f"{view.title}: the ten probabilities"
    which = "channels" if view.values.ndim == 3 else "units"
    top = ", ".join(f"#{i}" for i in strongest(view.values))
    return f"{view.title} · {view.shape_text} · strongest {which} {top}"


def render_training_views(predictor_after, predictor_before=None) -> None:
    """The Train page, after a run: the first layer's kernels and a few test digits, before and after."""
    if not st.toggle(
        "Inside the network: what training changed",
        key="inside_training",
        help="The first layer's kernels, and how the network reads a few test digits, for both models.",
    ):
        return
    models = [("Before (the model answering now)", predictor_before)] if predictor_before is not None else []
    models.append(("After (the new model)", predictor_after))
    columns = st.columns(len(models))
    for column, (label, predictor) in zip(columns, models, strict=True):
        kernels = first_kernels(predictor)
        column.markdown(f"**{label}**")
        if kernels is None:
            column.caption("Its first layer's kernels cannot be shown.")
            continue
        with column:
            picture(
                kernels_picture(kernels),
                f"The first layer's {kernels.shape[-1]} kernels (3×3): red weighs ink up, blue down",
            )
    digits = test_digits()
    if not digits:
        st.caption("MNIST is not at hand here, so no test digits can be shown.")
        return
    chosen = st.radio(
        "A test digit", list(digits), horizontal=True, key="inside_training_digit", format_func=lambda d: f"a {d}"
    )
    for column, (label, predictor) in zip(st.columns(len(models)), models, strict=True):
        with column:
            e = explain_prepared(predictor, digits[chosen])
            p = e.prediction
            st.markdown(f"{label.split(' ')[0]}: **{p.digit}** ({p.confidence:.0%} sure)")
            heat(e.saliency, p.model_input, f"What makes it a {p.digit}")
            for view in stage_views(e):
                picture(view_picture(view, e), caption(view))


def test_digits() -> dict[int, np.ndarray]:
    """The first MNIST test image of each of TEST_DIGITS, as (28, 28) model input; empty where MNIST is not at hand."""
    from digit.data import DataError

    try:
        data = mnist(mnist_source())
    except DataError:
        return {}
    found = {d: np.flatnonzero(data.y_test == d) for d in TEST_DIGITS}
    return {d: data.x_test[i[0]].astype(np.float32) / 255.0 for d, i in found.items() if i.size}
