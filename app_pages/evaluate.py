"""Evaluate: how the model in use does on the MNIST test set, and where it goes wrong."""

import matplotlib

matplotlib.use("Agg")  # no display on a server

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import streamlit as st

from app_pages import corrections_ui
from app_pages.common import MNIST_HELP, enlarge, load_predictor, mnist, mnist_source, model_in_use, percent
from digit.data import DataError
from digit.evaluation import Evaluation, evaluate

MISTAKES_SHOWN = 24


@st.cache_data(max_entries=8, show_spinner="Scoring the model on the test set…")
def evaluation(path: str, mtime: float, source: str) -> Evaluation:
    """Score one model file on the test set (cached per file version, so a new model is re-scored)."""
    data = mnist(source)
    return evaluate(load_predictor(path, mtime), data.x_test, data.y_test)


def confusion_figure(confusion: np.ndarray) -> plt.Figure:
    """The confusion matrix as a heat map, counts written in each cell."""
    figure, axes = plt.subplots(figsize=(6, 5.2), dpi=110)
    shown = np.log1p(confusion)  # a log scale keeps the few mistakes visible beside ~1,000 hits
    axes.imshow(shown, cmap="Blues")
    for (true, said), count in np.ndenumerate(confusion):
        if count:
            dark = shown[true, said] > shown.max() * 0.6
            axes.text(said, true, str(count), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    axes.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit")
    axes.set_title("Confusion matrix")
    figure.tight_layout()
    return figure


def report_table(result: Evaluation) -> pd.DataFrame:
    """Precision, recall, F1 and support of each digit."""
    rows = [
        {"digit": str(d), "precision": s.precision, "recall": s.recall, "F1": s.f1, "support": s.support}
        for d, s in enumerate(result.per_class)
    ]
    return pd.DataFrame(rows)


def show_corrections_score(predictor) -> None:
    """The same scores on this visitor's own corrections, where there are any."""
    st.subheader("On your corrections")
    data = corrections_ui.corrections_for_evaluation()
    if data is None:
        st.caption("No corrections yet: tell the Draw page when it is wrong (or right) to build your own test set.")
        return
    mine = evaluate(predictor, *data)
    accuracy, loss, count = st.columns(3)
    accuracy.metric("Accuracy", percent(mine.accuracy))
    loss.metric("Loss", f"{mine.loss:.4f}")
    count.metric("Drawings", f"{mine.n:,}")
    show_mistakes(mine, data[0])


def show_mistakes(result: Evaluation, images: np.ndarray) -> None:
    """The wrong answers the model was surest of, with the true digit."""
    worst = result.confident_mistakes(MISTAKES_SHOWN)
    if len(worst) == 0:
        st.write("No mistakes at all.")
        return
    pictures = [enlarge(images[i], 84) for i in worst]
    captions = [f"true {result.labels[i]}, said {result.predictions[i]} ({result.confidences[i]:.0%})" for i in worst]
    st.image(pictures, caption=captions, width=84)


in_use = model_in_use()
st.title("Evaluate")
if in_use.predictor is None:
    st.error(in_use.warning or "No model is available.")
    st.stop()
try:
    data = mnist(mnist_source())
except DataError as error:
    st.error(f"MNIST is not reachable, so the model cannot be scored: {error} {MNIST_HELP}")
    st.stop()

result = evaluation(str(in_use.entry.path), in_use.entry.mtime, mnist_source())
st.write(f"Model **{in_use.entry.name}** on the {result.n:,} MNIST test images.")
accuracy, loss, wrong = st.columns(3)
accuracy.metric("Test accuracy", percent(result.accuracy))
loss.metric("Test loss", f"{result.loss:.4f}")
wrong.metric("Mistakes", f"{int((result.predictions != result.labels).sum()):,}")

matrix, report = st.columns([3, 2], gap="large")
with matrix:
    figure = confusion_figure(result.confusion)
    st.pyplot(figure, width="stretch", alt="Confusion matrix")
    plt.close(figure)
with report:
    st.subheader("Per digit")
    st.dataframe(
        report_table(result),
        hide_index=True,
        column_config={k: st.column_config.NumberColumn(format="%.4f") for k in ("precision", "recall", "F1")},
    )

st.subheader("The most confident mistakes")
show_mistakes(result, data.x_test)

show_corrections_score(in_use.predictor)
