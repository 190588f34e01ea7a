"""Streamlit helpers for learning from the person drawing: feedback, the corrections set, fine-tuning.

    from app_pages import corrections_ui
    corrections_ui.render_feedback(prediction, image)         # Draw page, under the prediction
    corrections_ui.render_corrections_manager()               # grid, delete, clear, download, upload
    config = corrections_ui.render_finetune_controls()        # Train page: a FinetuneConfig when clicked

Each visitor's corrections live in st.session_state. They go to disk only where the app runs
locally (DIGIT_LOCAL=1, or `local = true` in .streamlit/secrets.toml) and the user ticks the box:
on a public server a file would be shared by every visitor.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import streamlit as st

from app_pages.common import epochs_text, running_locally
from digit.config import FinetuneConfig
from digit.corrections import Correction, CorrectionError, CorrectionSet
from digit.evaluation import MAX_MNIST_DROP, FinetuneReport

STATE_KEY = "corrections"
DISK_KEY = "corrections_on_disk"
FILE_ENV = "DIGIT_CORRECTIONS_FILE"
DEFAULT_FILE = Path.home() / ".digit" / "corrections.npz"
MIN_TO_FINETUNE = 10
PER_PAGE = 40
UPLOAD_LIMIT_MB = 20  # the server's limit (server.maxUploadSize); a set of 2,000 corrections is well under it
GRID_COLUMNS = 8
LEARNING_RATES = (1e-4, 2e-4, 3e-4, 5e-4, 1e-3)


# ---------------------------------------------------------------------------------------------
# where the corrections live


def corrections() -> CorrectionSet:
    """This visitor's corrections (loaded from disk first, where that is allowed and chosen)."""
    if STATE_KEY not in st.session_state:
        st.session_state.setdefault(DISK_KEY, local_storage_allowed() and corrections_file().is_file())
        st.session_state[STATE_KEY] = _load_from_disk() if st.session_state[DISK_KEY] else CorrectionSet()
    return st.session_state[STATE_KEY]


def local_storage_allowed() -> bool:
    """True where whoever started the app said it runs on the user's own computer."""
    return running_locally()


def corrections_file() -> Path:
    """Where corrections are kept on disk: $DIGIT_CORRECTIONS_FILE, else ~/.digit/corrections.npz."""
    value = os.environ.get(FILE_ENV)
    return Path(value).expanduser() if value else DEFAULT_FILE


def on_disk() -> bool:
    """True when this visitor's corrections are being written to disk."""
    return local_storage_allowed() and bool(st.session_state.get(DISK_KEY))


def _load_from_disk() -> CorrectionSet:
    try:
        return CorrectionSet.load(corrections_file())
    except (CorrectionError, OSError) as error:
        _flash("warning", f"Could not read {corrections_file()}: {error}. Starting with no corrections.")
        return CorrectionSet()


def _changed() -> None:
    """Write the set to disk after every change, where chosen."""
    if not on_disk():
        return
    try:
        corrections().save(corrections_file())
    except OSError as error:
        _flash("warning", f"Could not save to {corrections_file()}: {error}")


def _disk_toggled() -> None:
    if st.session_state.get(DISK_KEY):  # merge what was saved before with this session's, then save both
        try:
            corrections().extend(CorrectionSet.load(corrections_file()))
        except (CorrectionError, OSError) as error:
            _flash("warning", f"Could not read {corrections_file()}: {error}")
        _changed()
    else:
        corrections_file().unlink(missing_ok=True)


def render_storage_setting(key: str = "corrections") -> None:
    """Where the corrections are kept: a checkbox when running locally, a sentence otherwise."""
    corrections()  # make sure the disk choice has its default before the checkbox reads it
    if not local_storage_allowed():
        st.caption("Your corrections are kept for this session only. Download them to keep them.")
        return
    st.checkbox(
        "Keep my corrections on this computer",
        key=DISK_KEY,
        on_change=_disk_toggled,
        help=f"Saved to {corrections_file()} after every change. Unticking deletes that file; "
        "this session keeps its corrections.",
    )


# ---------------------------------------------------------------------------------------------
# Draw page: "Right" / "Wrong? It was ..."


def render_feedback(prediction, image: np.ndarray | None, key: str = "feedback") -> None:
    """Under a prediction: confirm it, or say which digit it was; both save the drawing."""
    _show_flash()
    if prediction is None or prediction.digit is None or prediction.model_input is None:
        return
    found = corrections().find(prediction.model_input)
    saved = None if found is None else corrections()[found].label
    right, remove = st.columns([3, 2], vertical_alignment="center")
    right.button(
        f"Right, it is {prediction.digit}",
        key=f"{key}-right",
        icon=":material/check:",
        on_click=_save,
        args=(prediction, image, prediction.digit),
        disabled=saved == prediction.digit,
    )
    if saved is not None:
        remove.button(
            "Remove",
            key=f"{key}-remove",
            icon=":material/undo:",
            on_click=_remove,
            args=(prediction,),
            help="Remove this drawing from your corrections",
        )
    st.caption(
        f"Saved to your corrections as **{saved}** ({len(corrections())} in all)."
        if saved is not None
        else "Wrong? It was …"
    )
    st.html(ONE_ROW_OF_TEN)
    with st.container(horizontal=True, gap="small", key=f"{key}-digits"):
        for digit in range(10):
            st.button(
                str(digit),
                key=f"{key}-{digit}",
                on_click=_save,
                args=(prediction, image, digit),
                type="primary" if saved == digit else "secondary",
                width="content",
            )


# Ten buttons in one line, down to a phone's width: they share the row instead of wrapping.
ONE_ROW_OF_TEN = """<style>
[class*="st-key-feedback-digits"] {flex-wrap: nowrap; gap: 4px;}
[class*="st-key-feedback-digits"] > div {flex: 1 1 0; min-width: 0;}
[class*="st-key-feedback-digits"] button {width: 100%; min-width: 0; padding-left: 0; padding-right: 0;}
</style>"""


def _save(prediction, image: np.ndarray | None, label: int) -> None:
    store = corrections()
    index = store.find(prediction.model_input)
    try:
        if index is None:
            store.add(prediction.model_input, image, label, predicted=prediction.digit)
        else:
            store.relabel(index, label)
    except CorrectionError as error:
        _flash("error", str(error))
        return
    _changed()
    _flash("toast", f"Saved: a {label}, {len(store)} in your corrections now.")


def _remove(prediction) -> None:
    index = corrections().find(prediction.model_input)
    if index is not None:
        corrections().delete(index)
        _changed()
        _flash("toast", "Removed from your corrections.")


# ---------------------------------------------------------------------------------------------
# the corrections set: grid, delete, clear, download, upload


def render_corrections_manager(key: str = "corrections") -> None:
    """The whole set: counts, a grid of drawings with delete buttons, clear, download and upload."""
    _show_flash()
    render_storage_setting(key)
    store = corrections()
    if len(store) == 0:
        st.info("No corrections yet. After a prediction on the Draw page, press **Right** or the right digit.")
    else:
        _summary(store)
        _grid(store, key)
        _clear_and_download(store, key)
    _upload(key)


def _summary(store: CorrectionSet) -> None:
    counts = store.counts()
    wrong = sum(item.was_wrong for item in store)
    count = len(store)
    st.write(f"**{count}** drawing{'' if count == 1 else 's'}; the model got **{wrong}** wrong.")
    st.caption("Per digit: " + " · ".join(f"{d}: {c}" for d, c in enumerate(counts)))


def _grid(store: CorrectionSet, key: str) -> None:
    items = list(enumerate(store))[::-1]  # newest first
    pages = max(1, -(-len(items) // PER_PAGE))
    page = 1
    if pages > 1:
        page = int(st.number_input("Page", 1, pages, 1, key=f"{key}-page"))
    shown = items[(page - 1) * PER_PAGE : page * PER_PAGE]
    for start in range(0, len(shown), GRID_COLUMNS):
        for column, (index, item) in zip(st.columns(GRID_COLUMNS), shown[start : start + GRID_COLUMNS], strict=False):
            with column:
                st.image(item.canvas, caption=_caption(item), width="stretch")
                st.button(
                    "Delete",
                    key=f"{key}-delete-{index}-{item.timestamp}",
                    icon=":material/delete:",
                    on_click=_delete,
                    args=(item,),
                    type="tertiary",
                )


def _caption(item: Correction) -> str:
    return (
        f"{item.label} (said {item.predicted})" if item.was_wrong else str(item.label)
    )  # short: one line under the picture


def _delete(item: Correction) -> None:
    store = corrections()
    index = next((i for i, other in enumerate(store) if other is item), None)
    if index is not None:
        store.delete(index)
        _changed()


def _clear_and_download(store: CorrectionSet, key: str) -> None:
    clear, download = st.columns(2)
    with clear.popover("Clear all", icon=":material/delete_sweep:"):
        st.write(f"Delete all {len(store)} drawings? Download them first to keep a copy.")
        st.button("Yes, delete them all", key=f"{key}-clear", type="primary", on_click=_clear)
    download.download_button(
        "Download (.npz)",
        data=store.to_npz_bytes,  # made only when clicked
        file_name="digit-corrections.npz",
        mime="application/octet-stream",
        key=f"{key}-download",
        on_click="ignore",  # no rerun: it would retire the file being made for this click
        icon=":material/download:",
    )


def _clear() -> None:
    corrections().clear()
    _changed()


def _upload(key: str) -> None:
    nonce = st.session_state.setdefault(f"{key}-upload-nonce", 0)  # a new key empties the uploader
    file = st.file_uploader(
        "Upload corrections (.npz)",
        type=["npz"],
        key=f"{key}-upload-{nonce}",
        max_upload_size=UPLOAD_LIMIT_MB,
        help="A file downloaded from this page, on this or another computer.",
    )
    if file is None:
        return
    try:
        incoming = CorrectionSet.from_npz_bytes(file.getvalue())
    except CorrectionError as error:
        st.error(f"Cannot use {file.name}: {error}")
        return
    st.write(f"{file.name} holds {len(incoming)} drawings.")
    add, replace = st.columns(2)
    add.button("Add to mine", key=f"{key}-merge", on_click=_import, args=(incoming, False, key), type="primary")
    replace.button("Replace mine", key=f"{key}-replace", on_click=_import, args=(incoming, True, key))


def _import(incoming: CorrectionSet, replace: bool, key: str) -> None:
    store = corrections()
    try:
        if replace:
            store.clear()
        added = store.extend(incoming)
    except CorrectionError as error:
        _flash("error", str(error))
        return
    _changed()
    st.session_state[f"{key}-upload-nonce"] += 1
    _flash(
        "success",
        f"Added {added} drawing{'' if added == 1 else 's'}"
        + (f" ({len(incoming) - added} were already here)." if added < len(incoming) else "."),
    )


# ---------------------------------------------------------------------------------------------
# Train page: fine-tuning


def render_finetune_controls(key: str = "finetune", disabled: bool = False) -> FinetuneConfig | None:
    """Settings and a button; returns the FinetuneConfig on the click that asks for a run, else None."""
    store = corrections()
    st.write(
        f"Fine-tune the model in use on your **{len(store)}** corrections, mixed with MNIST so it does not forget."
    )
    if len(store) < MIN_TO_FINETUNE:
        st.info(f"Save at least {MIN_TO_FINETUNE} corrections on the Draw page first (more is better: 5 per digit).")
        return None
    default = FinetuneConfig()
    with st.expander("Fine-tuning settings"):
        epochs = st.slider("Epochs", 1, 10, default.epochs, key=f"{key}-epochs", disabled=disabled)
        rate = st.select_slider(
            "Learning rate",
            LEARNING_RATES,
            value=default.learning_rate,
            format_func=lambda v: f"{v:g}",
            key=f"{key}-lr",
            disabled=disabled,
            help="Low on purpose: enough to learn your style, too little to undo MNIST.",
        )
        oversample = st.slider(
            "Times each correction is shown per epoch",
            1,
            20,
            default.oversample,
            key=f"{key}-oversample",
            disabled=disabled,
        )
        replay = st.slider(
            "MNIST images per correction shown",
            0.5,
            5.0,
            default.replay,
            step=0.5,
            key=f"{key}-replay",
            disabled=disabled,
            help="Replaying MNIST keeps the model from forgetting it.",
        )
    config = FinetuneConfig(epochs=epochs, learning_rate=float(rate), oversample=oversample, replay=float(replay))
    st.caption(finetune_settings_text(config.to_dict(), len(store)))
    clicked = st.button(
        "Fine-tune on my corrections", key=f"{key}-start", type="primary", icon=":material/tune:", disabled=disabled
    )
    return config if clicked else None


def finetune_settings_text(config: dict, corrections_count: int | None = None) -> str:
    """The settings of a fine-tuning run in one line."""
    shown = ""
    if corrections_count:
        settings = FinetuneConfig(**{k: v for k, v in config.items() if k != "kind"})
        copies = settings.copies(corrections_count)
        shown = f"{corrections_count} corrections × {copies} + up to {settings.replay_size(corrections_count, 60_000)} MNIST images, "
    return (
        f"Fine-tune: {shown}{epochs_text(config.get('epochs'))}, learning rate {config.get('learning_rate'):g}, "
        f"batch {config.get('batch_size')}, {'with' if config.get('augment') else 'without'} augmentation."
    )


def corrections_for_evaluation() -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 images, labels) of this visitor's corrections for digit.evaluate, or None when there are none."""
    store = corrections()
    return (store.images, store.labels) if len(store) else None


def render_finetune_report(report: FinetuneReport) -> None:
    """MNIST before and after (with the 0.1-point bound) and held-out accuracy on the corrections."""
    mnist, mine = st.columns(2)
    mnist.metric(
        f"MNIST test ({report.mnist_images:,} images)",
        f"{report.mnist_after:.2%}",
        delta=f"{report.mnist_change:+.2f} points",
        help=f"Before: {report.mnist_before:.2%}",
    )
    cv = report.cross_validation
    if cv is not None:
        mine.metric(
            f"Your corrections, held out ({cv.folds}-fold)",
            f"{cv.after:.1%}",
            delta=f"{100 * (cv.after - cv.before):+.1f} points",
            help=f"Before: {cv.before:.1%}. Each fold is scored by a model fine-tuned on the other folds only.",
        )
    if not report.keeps_mnist:
        st.warning(
            f"MNIST accuracy dropped by {-report.mnist_change:.2f} points, more than the "
            f"{100 * MAX_MNIST_DROP:.1f} allowed: try fewer epochs, a lower learning rate or more replay."
        )


# ---------------------------------------------------------------------------------------------


def _flash(kind: str, text: str) -> None:
    """A message shown on the next rerun (callbacks cannot draw)."""
    st.session_state["corrections-flash"] = (kind, text)


def _show_flash() -> None:
    kind, text = st.session_state.pop("corrections-flash", (None, ""))
    if kind == "toast":
        st.toast(text, icon=":material/check:")
    elif kind:
        getattr(st, kind)(text)
