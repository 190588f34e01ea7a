"""Train: retrain the network from the sidebar, watch loss and accuracy live, switch to the result.

The run itself is a child process that a digit.jobs.Runner shared by the whole server starts and
follows (common.training_runner): it goes on across reruns, page switches and closed tabs, and
every visitor sees it. This page only starts, stops and draws it; TensorFlow never loads here.
"""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import corrections_ui
from app_pages.common import (
    MNIST_HELP,
    epochs_text,
    load_predictor,
    may_act_on,
    may_change_for_everyone,
    model_in_use,
    percent,
    promote_password,
    registry,
    running_locally,
    training_runner,
    visitor_id,
    whose,
)
from app_pages.parts.inside_network import render_training_views
from app_pages.parts.runs import (
    choose_model,
    duration,
    notice,
    outcome_text,
    progress_text,
    show_notice,
    stop_run,
    use_button,
)
from digit import jobs
from digit.config import (
    ARCHITECTURE_INFO,
    ARCHITECTURES,
    MAX_EPOCHS,
    MAX_TRAIN_IMAGES,
    SEED_RECIPE,
    ConfigError,
    FinetuneConfig,
    TrainConfig,
)
from digit.evaluation import FinetuneReport
from digit.registry import RegistryError
from digit.serving import ModelError

LEARNING_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2)
BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
# Quick defaults: a couple of minutes on 2 CPU cores. The seed's recipe where it differs.
DEFAULTS = {"cfg_batch": 128, "cfg_lr": 2e-3, "cfg_augment": True, "cfg_val": 0.1}
SEED_DEFAULTS = {
    "cfg_batch": SEED_RECIPE["batch_size"],
    "cfg_lr": SEED_RECIPE["learning_rate"],
    "cfg_augment": SEED_RECIPE["augment"],
    "cfg_val": SEED_RECIPE["validation_split"],
}


def arch_label(arch: str) -> str:
    """'cnn · 469k weights': short enough for the sidebar's select box (the help says what each is)."""
    return f"{arch} · {ARCHITECTURE_INFO[arch][1] / 1000:.0f}k weights"


ARCH_HELP = "  \n".join(
    f"**{arch}**: {what}, {weights:,} weights" for arch, (what, weights) in ARCHITECTURE_INFO.items()
)


def settings_sidebar(disabled: bool) -> None:
    """Every training setting, bounded by digit.config; values live in st.session_state."""
    for key, value in {"cfg_arch": "cnn", "cfg_epochs": 2, "cfg_limit": 10_000, **DEFAULTS}.items():
        st.session_state.setdefault(key, value)
    with st.sidebar:
        st.subheader("Training settings")
        st.selectbox(
            "Architecture",
            ARCHITECTURES,
            format_func=arch_label,
            help=ARCH_HELP,
            key="cfg_arch",
            on_change=_arch_changed,
            disabled=disabled,
        )
        st.number_input("Epochs", min_value=1, max_value=MAX_EPOCHS, step=1, key="cfg_epochs", disabled=disabled)
        st.number_input(
            "Training images",
            min_value=100,
            max_value=MAX_TRAIN_IMAGES,
            step=1000,
            key="cfg_limit",
            disabled=disabled,
            help="A subset of MNIST's 60,000 for quick runs.",
        )
        st.select_slider("Batch size", BATCH_SIZES, key="cfg_batch", disabled=disabled)
        st.select_slider(
            "Learning rate", LEARNING_RATES, format_func=lambda v: f"{v:g}", key="cfg_lr", disabled=disabled
        )
        st.slider(
            "Validation split",
            0.0,
            0.5,
            step=0.05,
            key="cfg_val",
            disabled=disabled,
            help="Held out from the training images to watch overfitting.",
        )
        st.toggle(
            "Augmentation",
            key="cfg_augment",
            disabled=disabled,
            help="Random shifts, rotations and zooms: helps on drawn digits.",
        )
        st.caption(split_text(int(st.session_state.cfg_limit), float(st.session_state.cfg_val)))
        snapshot = training_runner().snapshot()
        start, stop = st.columns(2)
        start.button("Start training", key="train_start", type="primary", on_click=start_run, disabled=disabled)
        stop.button(
            "Stop", key="train_stop", on_click=stop_run, disabled=not (snapshot.active and may_act_on(snapshot))
        )
        st.caption(f"One run at a time on this server; a run stops after {jobs.MAX_RUN_SECONDS / 60:.0f} minutes.")
        if promote_password():
            st.text_input(
                "Password",
                type="password",
                key="promote_pw",
                help="Needed to change the model for everyone; without it a model is used in your session only.",
            )


def split_text(images: int, validation_split: float) -> str:
    """'9,000 images to train on, 1,000 held out to validate.'"""
    held_out = int(images * validation_split)
    if not held_out:
        return f"{images:,} images to train on, none held out."
    return f"{images - held_out:,} images to train on, {held_out:,} held out to validate."


def _arch_changed() -> None:
    st.session_state.update(SEED_DEFAULTS if st.session_state.cfg_arch == "seed" else DEFAULTS)


def config_from_settings() -> TrainConfig:
    """The TrainConfig the sidebar describes; ConfigError when a value is out of bounds."""
    state = st.session_state
    return TrainConfig.for_arch(
        state.cfg_arch,
        epochs=int(state.cfg_epochs),
        batch_size=int(state.cfg_batch),
        learning_rate=float(state.cfg_lr),
        augment=bool(state.cfg_augment),
        limit=int(state.cfg_limit),
        validation_split=round(float(state.cfg_val), 2),
    )


def start_run() -> None:
    """Start button: one run per server; a second visitor (or a double click) is told, not queued."""
    try:
        training_runner().start(config_from_settings(), owner=visitor_id())
    except ConfigError as error:
        notice("error", f"Cannot start: {error}")
    except jobs.Busy as error:
        notice("warning", f"Not started: {error}.")


@st.fragment(run_every=1.0)
def live_run() -> None:
    """Redrawn every second while a run is going on; a full rerun when it ends."""
    snapshot = training_runner().snapshot()
    if not snapshot.active:
        st.rerun()
    show_progress(snapshot)
    show_curves(snapshot)


def show_progress(snapshot: jobs.Snapshot) -> None:
    """Progress bar with epoch, batch and time left."""
    st.progress(snapshot.progress, text=progress_text(snapshot))
    st.caption(
        f"Run {snapshot.run_id}, started by {whose(snapshot)} {duration(snapshot.elapsed)} ago. "
        f"{settings_text(snapshot.config)}"
    )


def show_curves(snapshot: jobs.Snapshot) -> None:
    """Loss and accuracy: training every few batches, validation at each epoch's end."""
    loss, accuracy = st.columns(2)
    with loss:
        st.altair_chart(curve_chart(snapshot, "loss"), width="stretch")
    with accuracy:
        st.altair_chart(curve_chart(snapshot, "accuracy"), width="stretch")


def curve_chart(snapshot: jobs.Snapshot, metric: str) -> alt.LayerChart:
    """One metric over batches: a line for training, dots joined by a line for validation (where there is one)."""
    rows = [{"batch": b["step"], metric: b[metric], "curve": "training"} for b in snapshot.batches if metric in b]
    val = f"val_{metric}"
    rows += [{"batch": e["step"], metric: e[val], "curve": "validation"} for e in snapshot.epochs if val in e]
    data = pd.DataFrame(rows, columns=["batch", metric, "curve"])
    curves = ["training", "validation"] if snapshot.config.get("validation_split") else ["training"]
    high = 1.0 if metric == "accuracy" or data.empty else None  # an empty loss chart: 0 to 1, not 0 to 0
    base = alt.Chart(
        data, title=metric.capitalize()
    ).encode(
        x=alt.X(
            "batch:Q",
            title="batch",
            scale=alt.Scale(domain=[0, max(snapshot.total_steps, 1)]),
            axis=alt.Axis(tickMinStep=1, format="d"),  # whole batches, even for a one-batch run
        ),
        y=alt.Y(f"{metric}:Q", title=None, scale=alt.Scale(domain=[0, high]) if high else alt.Scale(zero=True)),
        color=alt.Color(
            "curve:N",
            scale=alt.Scale(domain=curves, range=["#4f46e5", "#f59e0b"][: len(curves)]),
            legend=alt.Legend(orient="bottom", title=None),
        ),
    )
    validation = base.transform_filter(alt.datum.curve == "validation").mark_point(filled=True, size=60)
    return (base.mark_line() + validation).properties(height=260)


def show_outcome(snapshot: jobs.Snapshot) -> None:
    """How the last run ended (and whose it was), with its curves; a completed run can be put to use."""
    text = outcome_text(snapshot)
    if snapshot.state == jobs.COMPLETED:
        st.success(text)
        if snapshot.kind != jobs.MEASURE:
            acc, loss, use = st.columns(3, vertical_alignment="center")
            acc.metric("Test accuracy", percent(snapshot.test_accuracy))
            loss.metric("Test loss", f"{snapshot.test_loss:.4f}")
            with use:
                use_button(snapshot, key="use_new_model")
            warn_if_worse(snapshot)
    elif snapshot.state == jobs.FAILED and snapshot.message.startswith("cannot load MNIST"):
        st.error(f"Training could not start: {snapshot.message} {MNIST_HELP}")
    elif snapshot.state in (jobs.FAILED, jobs.DIVERGED):
        st.error(text)
    else:
        st.info(text)
    if snapshot.kind == jobs.MEASURE:
        if snapshot.state == jobs.COMPLETED and snapshot.report:
            corrections_ui.render_finetune_report(FinetuneReport.from_dict(snapshot.report))
        return
    st.caption(settings_text(snapshot.config))
    if snapshot.batches:
        show_curves(snapshot)
    if snapshot.state == jobs.COMPLETED and snapshot.kind == jobs.FINETUNE:
        finetune_report(snapshot)
    if snapshot.state == jobs.COMPLETED:
        what_training_changed(snapshot)


def what_training_changed(snapshot: jobs.Snapshot) -> None:
    """The new model's first kernels and its views of a few test digits, beside the model answering now."""
    try:
        new = registry().get(snapshot.model_name)
        after = load_predictor(str(new.path), new.mtime)
    except (RegistryError, ModelError):
        return
    current = model_in_use()
    render_training_views(after, current.predictor if current.entry and current.entry.name != new.name else None)


def warn_if_worse(snapshot: jobs.Snapshot) -> None:
    """Before "Use this model": say so when the new model reads MNIST worse than the one answering now."""
    current = model_in_use().entry
    if current is None or current.name == snapshot.model_name or current.test_accuracy is None:
        return
    if snapshot.test_accuracy is not None and snapshot.test_accuracy < current.test_accuracy:
        st.warning(
            f"This model reads {percent(snapshot.test_accuracy)} of the MNIST test set, below the "
            f"{percent(current.test_accuracy)} of {current.name}, which answers now. Use it only to try it out."
        )


def finetune_section(snapshot: jobs.Snapshot) -> None:
    """Fine-tune the model in use on this visitor's corrections, as a run like any other."""
    st.subheader("Fine-tune on your corrections")
    config = corrections_ui.render_finetune_controls(disabled=snapshot.active)
    if config is None:
        return
    in_use, store = model_in_use(), corrections_ui.corrections()
    try:
        training_runner().start_finetune(config, in_use.entry.path, store, owner=visitor_id())
    except (ConfigError, ValueError) as error:
        notice("error", f"Cannot fine-tune: {error}")
    except jobs.Busy as error:
        notice("warning", f"Not started: {error}.")
    else:
        st.session_state["finetune_base"] = str(in_use.entry.path)
    st.rerun()


def finetune_report(snapshot: jobs.Snapshot) -> None:
    """Measure before and after (MNIST test accuracy, and the corrections held out by cross-validation), as a run."""
    base = st.session_state.get("finetune_base")
    store = corrections_ui.corrections()
    if base is None or snapshot.owner != visitor_id() or len(store) == 0:
        return
    if st.button(
        "Measure before and after",
        key=f"finetune-{snapshot.run_id}-measure",
        help="MNIST test accuracy of both models, and 5-fold cross-validation on your corrections (a few minutes)",
    ):
        tuned = registry().get(snapshot.model_name)
        try:
            config = FinetuneConfig.from_dict(snapshot.config)
            training_runner().start_measure(config, Path(base), tuned.path, store, owner=visitor_id())
        except jobs.Busy as error:
            notice("warning", f"Not started: {error}.")
        st.rerun()


def saved_models() -> None:
    """Every saved model with its settings, metrics and date; pick one to use, download, name or delete."""
    reg = registry()
    served, in_use = reg.served().name, model_in_use().entry
    entries = [*reg.entries(), reg.shipped()]
    st.subheader("Saved models")
    rows = [{"serving": e.name == served, **e.summary()} for e in entries]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={
            "serving": st.column_config.CheckboxColumn("everyone", help="The model every visitor gets", width="small"),
            "test accuracy": st.column_config.NumberColumn(format="percent"),
        },
    )
    names = [e.name for e in entries]
    by_name = dict(zip(names, entries, strict=True))
    if st.session_state.get("saved_choice") not in names:  # first visit, or the model chosen was deleted
        st.session_state["saved_choice"] = served if served in names else names[0]
    name = st.selectbox(
        "Model",
        names,
        key="saved_choice",
        format_func=lambda n: f"{by_name[n].title} · {percent(by_name[n].test_accuracy)}",
    )
    entry = by_name[name]
    use, download, rename, delete = st.columns(4, vertical_alignment="bottom")
    use.button(
        "Use selected model",
        key="use_saved_model",
        on_click=choose_model,
        args=(name,),
        disabled=not entry.looks_valid() or (in_use is not None and in_use.name == name),
    )
    if entry.looks_valid():
        download.download_button(
            "Download .keras",
            data=entry.path.read_bytes,
            file_name=f"{name}.keras",
            mime="application/octet-stream",
            key="download_model",
            on_click="ignore",  # no rerun: it would retire the file being made for this click
        )
    with rename.popover("Name it", icon=":material/edit:", disabled=entry.shipped or not may_manage(entry)):
        st.text_input("Name", value=entry.label, max_chars=40, key=f"label_{name}")
        st.button("Save the name", key="save_label", on_click=name_model, args=(name,))
    deletable = not entry.shipped and name != served and (in_use is None or in_use.name != name)
    with delete.popover("Delete", icon=":material/delete:", disabled=not (deletable and may_manage(entry))):
        st.write(f"Delete {entry.title} for good?")
        st.button("Yes, delete it", key="delete_model", type="primary", on_click=delete_model, args=(name,))


def may_manage(entry) -> bool:
    """Naming and deleting: locally, with the password, or for the visitor whose run made it."""
    return may_change_for_everyone() or entry.card.get("owner") == visitor_id() or running_locally()


def name_model(name: str) -> None:
    try:
        registry().set_label(name, st.session_state.get(f"label_{name}", ""))
    except RegistryError as error:
        notice("error", str(error))


def delete_model(name: str) -> None:
    try:
        registry().delete(name)
    except RegistryError as error:
        notice("error", f"Not deleted: {error}.")
        return
    st.session_state.pop("saved_choice", None)
    notice("success", f"{name} was deleted.")


def settings_text(config: dict) -> str:
    """The settings of a run in one line."""
    if not config:
        return ""
    if config.get("kind") == "finetune":
        return corrections_ui.finetune_settings_text(config)
    augment = "with" if config.get("augment") else "without"
    return (
        f"{config.get('arch')}, {epochs_text(config.get('epochs'))} on {config.get('limit') or 'all'} images, "
        f"batch {config.get('batch_size')}, learning rate {config.get('learning_rate'):g}, "
        f"{augment} augmentation, {config.get('validation_split', 0):.0%} held out."
    )


snapshot = training_runner().snapshot()
settings_sidebar(disabled=snapshot.active)
st.title("Train")
st.write(
    "Retrain the network on MNIST with the settings in the sidebar, press **Start training** there, and watch it learn."
)
show_notice()
if snapshot.active:
    live_run()
elif snapshot.state != jobs.IDLE:
    show_outcome(snapshot)
st.divider()
finetune_section(snapshot)
st.divider()
saved_models()
