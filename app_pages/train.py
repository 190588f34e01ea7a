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
    model_in_use,
    percent,
    promote_password,
    registry,
    training_runner,
    use_model,
    visitor_id,
)
from digit import jobs
from digit.config import (
    ARCHITECTURES,
    MAX_EPOCHS,
    MAX_TRAIN_IMAGES,
    SEED_RECIPE,
    ConfigError,
    FinetuneConfig,
    TrainConfig,
)
from digit.evaluation import FinetuneReport

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
ARCH_LABELS = {"cnn": "cnn: VGG-style, 200k weights (default)", "seed": "seed: the tutorial's network"}


def settings_sidebar(disabled: bool) -> None:
    """Every training setting, bounded by digit.config; values live in st.session_state."""
    for key, value in {"cfg_arch": "cnn", "cfg_epochs": 2, "cfg_limit": 10_000, **DEFAULTS}.items():
        st.session_state.setdefault(key, value)
    with st.sidebar:
        st.subheader("Training settings")
        st.selectbox(
            "Architecture",
            ARCHITECTURES,
            format_func=ARCH_LABELS.get,
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
        st.caption(f"One run at a time on this server; a run stops after {jobs.MAX_RUN_SECONDS / 60:.0f} minutes.")
        if promote_password():
            st.text_input(
                "Password",
                type="password",
                key="promote_pw",
                help="Needed to change the model for everyone; without it a model is used in your session only.",
            )


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


def stop_run() -> None:
    """Stop button: the run's process ends at once and nothing is saved."""
    if training_runner().stop(by=visitor_id()):
        notice("info", "Stopped: nothing was saved.")


def may_stop(snapshot: jobs.Snapshot) -> bool:
    """Whoever started a run may stop it; others too on an open server, or with the password."""
    password = promote_password()
    return snapshot.owner == visitor_id() or password is None or st.session_state.get("promote_pw") == password


def notice(kind: str, text: str) -> None:
    """A message shown once, on the next rerun (callbacks cannot draw)."""
    st.session_state["train_notice"] = (kind, text)


def show_notice() -> None:
    kind, text = st.session_state.pop("train_notice", (None, ""))
    if kind:
        getattr(st, kind)(text)


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
    epochs = snapshot.config.get("epochs", 0)
    epoch = snapshot.batches[-1]["epoch"] if snapshot.batches else 1
    if snapshot.state == jobs.LOADING:
        text = "Starting the training process and loading MNIST…"
    elif snapshot.kind == jobs.MEASURE:
        fold, folds = snapshot.fold or (0, 0)
        text = f"Cross-validating: fold {fold + 1} of {folds}…" if folds else "Scoring both models on MNIST…"
    elif snapshot.state == jobs.EVALUATING:
        text = "Scoring on the test set…"
    elif snapshot.state == jobs.SAVING:
        text = "Saving, and exporting it for serving (checked against Keras on the test set)…"
    elif snapshot.state == jobs.VALIDATING:
        text = f"Epoch {epoch}/{epochs} · validating…"
    elif not snapshot.steps_done:
        text = "Building the model and compiling its first training step (the slowest one)…"
    else:
        left = (
            "estimating time left" if snapshot.seconds_left is None else f"about {duration(snapshot.seconds_left)} left"
        )
        text = f"Epoch {epoch}/{epochs} · batch {snapshot.steps_done}/{snapshot.total_steps} · {left}"
    st.progress(snapshot.progress, text=text)
    who = "you" if snapshot.owner == visitor_id() else "another visitor"
    st.caption(
        f"Run {snapshot.run_id}, started by {who} {duration(snapshot.elapsed)} ago. {settings_text(snapshot.config)}"
    )


def show_curves(snapshot: jobs.Snapshot) -> None:
    """Loss and accuracy: training every few batches, validation at each epoch's end."""
    loss, accuracy = st.columns(2)
    with loss:
        st.altair_chart(curve_chart(snapshot, "loss"), width="stretch")
    with accuracy:
        st.altair_chart(curve_chart(snapshot, "accuracy"), width="stretch")


def curve_chart(snapshot: jobs.Snapshot, metric: str) -> alt.LayerChart:
    """One metric over batches: a line for training, dots joined by a line for validation."""
    rows = [{"batch": b["step"], metric: b[metric], "curve": "training"} for b in snapshot.batches if metric in b]
    val = f"val_{metric}"
    rows += [{"batch": e["step"], metric: e[val], "curve": "validation"} for e in snapshot.epochs if val in e]
    data = pd.DataFrame(rows, columns=["batch", metric, "curve"])
    scale = alt.Scale(domain=[0, 1]) if metric == "accuracy" else alt.Scale(zero=True)
    base = alt.Chart(data, title=metric.capitalize()).encode(
        x=alt.X("batch:Q", title="batch", scale=alt.Scale(domain=[0, max(snapshot.total_steps, 1)])),
        y=alt.Y(f"{metric}:Q", title=None, scale=scale),
        color=alt.Color(
            "curve:N",
            scale=alt.Scale(domain=["training", "validation"], range=["#4f46e5", "#f59e0b"]),
            legend=alt.Legend(orient="bottom", title=None),
        ),
    )
    validation = base.transform_filter(alt.datum.curve == "validation").mark_point(filled=True, size=60)
    return (base.mark_line() + validation).properties(height=260)


def show_outcome(snapshot: jobs.Snapshot) -> None:
    """How the last run ended, with its curves; a completed run can be put to use."""
    if snapshot.state == jobs.COMPLETED:
        st.success(
            f"Run {snapshot.run_id} finished in {duration(snapshot.elapsed)}: saved as **{snapshot.model_name}**."
        )
        acc, loss, use = st.columns(3, vertical_alignment="center")
        acc.metric("Test accuracy", percent(snapshot.test_accuracy))
        loss.metric("Test loss", f"{snapshot.test_loss:.4f}")
        use.button(
            "Use this model", key="use_new_model", type="primary", on_click=choose_model, args=(snapshot.model_name,)
        )
    elif snapshot.state == jobs.FAILED and snapshot.message.startswith("cannot load MNIST"):
        st.error(f"Training could not start: {snapshot.message} {MNIST_HELP}")
    elif snapshot.state in (jobs.FAILED, jobs.DIVERGED):
        st.error(f"Run {snapshot.run_id} {snapshot.state}: {snapshot.message}")
    else:
        st.info(f"Run {snapshot.run_id} {snapshot.message}")
    if snapshot.kind == jobs.MEASURE:
        if snapshot.state == jobs.COMPLETED and snapshot.report:
            corrections_ui.render_finetune_report(FinetuneReport.from_dict(snapshot.report))
        return
    st.caption(settings_text(snapshot.config))
    if snapshot.batches:
        show_curves(snapshot)
    if snapshot.state == jobs.COMPLETED and snapshot.kind == jobs.FINETUNE:
        finetune_report(snapshot)


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


def choose_model(name: str) -> None:
    """Use this model: for everyone when allowed, else in this session only."""
    notice("success", use_model(name, st.session_state.get("promote_pw", "")))
    st.session_state["saved_choice"] = name  # the list below shows the model just chosen


def saved_models() -> None:
    """Every saved model with its settings, metrics and date; pick one to use or download."""
    reg = registry()
    served = reg.served().name
    entries = [*reg.entries(), reg.shipped()]
    st.subheader("Saved models")
    table = pd.DataFrame([{"serving": e.name == served, **e.summary()} for e in entries])
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "serving": st.column_config.CheckboxColumn("serving", help="The model everyone gets"),
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "test loss": st.column_config.NumberColumn(format="%.4f"),
        },
    )
    names = [e.name for e in entries]
    name = st.selectbox("Model", names, key="saved_choice", index=names.index(served) if served in names else 0)
    entry = entries[names.index(name)]
    use, download = st.columns(2)
    use.button(
        "Use selected model",
        key="use_saved_model",
        on_click=choose_model,
        args=(name,),
        disabled=not entry.looks_valid(),
    )
    if entry.looks_valid():
        download.download_button(
            "Download .keras",
            data=entry.path.read_bytes,
            file_name=f"{name}.keras",
            mime="application/octet-stream",
            key="download_model",
        )


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


def duration(seconds: float) -> str:
    """12 -> '12 s'; 125 -> '2 min 5 s'."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"


snapshot = training_runner().snapshot()
settings_sidebar(disabled=snapshot.active)
st.title("Train")
st.write("Retrain the network on MNIST with the settings in the sidebar and watch it learn.")
start, stop, _ = st.columns([1, 1, 4])
start.button("Start training", key="train_start", type="primary", on_click=start_run, disabled=snapshot.active)
stop.button("Stop", key="train_stop", on_click=stop_run, disabled=not (snapshot.active and may_stop(snapshot)))
show_notice()
if snapshot.active:
    live_run()
elif snapshot.state != jobs.IDLE:
    show_outcome(snapshot)
st.divider()
finetune_section(snapshot)
st.divider()
saved_models()
