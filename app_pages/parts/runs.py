"""The server's training run as every page shows it: the sidebar panel, and the actions and words it shares
with the Train page (Stop, Use this model, progress text, who started it).

    runs.render_sidebar_panel()    # in app.py, for every page but Train (which shows the run in full)

While a run goes on, the panel is a fragment that redraws itself every few seconds (not the page);
with no run it is one link and costs nothing.
"""

from __future__ import annotations

import base64

import streamlit as st

from app_pages.common import (
    may_act_on,
    model_in_use,
    percent,
    promote_password,
    training_runner,
    use_model,
    visitor_id,
    whose,
)
from digit import jobs

NOTICE_KEY = "run_notice"
# The sidebar's refresh: slower than the Train page's own (1 s), since every visitor's page runs it
# while they draw.
PANEL_SECONDS = 3.0


def stop_run() -> None:
    """Stop: the run's process ends at once and nothing is saved."""
    if training_runner().stop(by=visitor_id()):
        notice("toast", "Stopped: nothing was saved.")


def choose_model(name: str) -> None:
    """Use this model: for everyone where allowed, else in this session only."""
    notice("success", use_model(name))
    st.session_state["saved_choice"] = name  # the Train page's list shows the model just chosen


def notice(kind: str, text: str) -> None:
    """A message shown once, on the next rerun (callbacks cannot draw)."""
    st.session_state[NOTICE_KEY] = (kind, text)


def show_notice() -> None:
    kind, text = st.session_state.pop(NOTICE_KEY, (None, ""))
    if kind == "toast":
        st.toast(text)
    elif kind:
        getattr(st, kind)(text)


def progress_text(snapshot: jobs.Snapshot) -> str:
    """What the run is doing, with epoch, batch and time left."""
    epochs = snapshot.config.get("epochs", 0)
    epoch = snapshot.batches[-1]["epoch"] if snapshot.batches else 1
    if snapshot.state == jobs.LOADING:
        return "Starting the training process and loading MNIST…"
    if snapshot.kind == jobs.MEASURE:
        fold, folds = snapshot.fold or (0, 0)
        return f"Cross-validating: fold {fold + 1} of {folds}…" if folds else "Scoring both models on MNIST…"
    if snapshot.state == jobs.EVALUATING:
        return "Scoring on the test set…"
    if snapshot.state == jobs.SAVING:
        return "Saving, and exporting it for serving (checked against Keras)…"
    if snapshot.state == jobs.VALIDATING:
        return f"Epoch {epoch}/{epochs} · validating…"
    if not snapshot.steps_done:
        return "Building the model and compiling its first training step…"
    left = "estimating time left" if snapshot.seconds_left is None else f"about {duration(snapshot.seconds_left)} left"
    return f"Epoch {epoch}/{epochs} · batch {snapshot.steps_done}/{snapshot.total_steps} · {left}"


def outcome_text(snapshot: jobs.Snapshot) -> str:
    """How a run ended, in one line, saying whose it was."""
    who = whose(snapshot)
    if snapshot.state == jobs.COMPLETED and snapshot.kind == jobs.MEASURE:
        return f"Run {snapshot.run_id} (by {who}) measured the fine-tune."
    if snapshot.state == jobs.COMPLETED:
        return f"Run {snapshot.run_id} (by {who}) finished in {duration(snapshot.elapsed)}: saved as **{snapshot.model_name}**."
    if snapshot.state == jobs.STOPPED and snapshot.stopped_by:
        stopper = "you" if snapshot.stopped_by == visitor_id() else "another visitor"
        return f"Run {snapshot.run_id} (by {who}) was stopped by {stopper}: {_after_colon(snapshot.message)}"
    return f"Run {snapshot.run_id} (by {who}) {snapshot.state}: {snapshot.message}"


def _after_colon(message: str) -> str:
    return message.split(": ", 1)[-1] if ": " in message else message


def duration(seconds: float) -> str:
    """12 -> '12 s'; 125 -> '2 min 5 s'."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"


def use_button(snapshot: jobs.Snapshot, key: str) -> None:
    """ "Use this model" for a completed run: for its owner (or the password holder); "In use" once it is."""
    in_use = model_in_use()
    label = "Use this model"
    if in_use.entry is not None and in_use.entry.name == snapshot.model_name:
        if not (in_use.session_only and promote_password()):
            st.button(
                "In use", key=key, disabled=True, icon=":material/check:", help="This model answers your drawings."
            )
            return
        label = "Use it for everyone"  # in this session already; the password can make it everyone's
    allowed = may_act_on(snapshot)
    st.button(
        label,
        key=key,
        type="primary",
        on_click=choose_model,
        args=(snapshot.model_name,),
        disabled=not allowed,
        help=None
        if allowed
        else "Only the visitor who started this run can use it from here (or pick it on the Train page).",
    )


def render_sidebar_panel() -> None:
    """The server's run in the sidebar: live while it goes on (its own fragment, every few seconds,
    on every page, Draw included), its result once it has ended, and a "Retrain…" link when none."""
    snapshot = training_runner().snapshot()
    with st.sidebar:
        if snapshot.active:
            _live_panel()
        elif snapshot.state != jobs.IDLE:
            _ended_panel(snapshot)
        else:
            st.page_link("app_pages/train.py", label="Retrain…", icon=":material/model_training:")


@st.fragment(run_every=PANEL_SECONDS)
def _live_panel() -> None:
    snapshot = training_runner().snapshot()
    if not snapshot.active:
        st.rerun()  # the whole page: it may show the result now
    _panel(snapshot)


def _panel(snapshot: jobs.Snapshot) -> None:
    with st.container(key="run_panel", border=True):
        what = "Measuring" if snapshot.kind == jobs.MEASURE else "Training"
        st.markdown(f"**{what}** · started by {whose(snapshot)}")
        st.progress(snapshot.progress, text=progress_text(snapshot))
        if snapshot.batches:
            latest = snapshot.batches[-1]
            line = sparkline([b["loss"] for b in snapshot.batches if "loss" in b])
            if line:  # none until the second batch
                st.html(line)
            st.caption(f"loss {latest.get('loss', 0):.3f} · accuracy {latest.get('accuracy', 0):.1%}")
        if may_act_on(snapshot):
            st.button("Stop", key="panel_stop", on_click=stop_run, icon=":material/stop:")


def _ended_panel(snapshot: jobs.Snapshot) -> None:
    with st.container(key="run_panel", border=True):
        show_notice()
        st.caption(outcome_text(snapshot))
        if snapshot.state == jobs.COMPLETED and snapshot.kind != jobs.MEASURE:
            st.markdown(f"Test accuracy **{percent(snapshot.test_accuracy)}**")
            use_button(snapshot, key="panel_use")
        st.page_link("app_pages/train.py", label="Retrain…", icon=":material/model_training:")


def sparkline(values: list[float], width: int = 220, height: int = 36) -> str:
    """A tiny line chart, an SVG image: cheap to send every second."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in enumerate(values)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="none"><polyline points="{points}" fill="none" stroke="#4f46e5" stroke-width="2"/></svg>'
    )
    # As an image: st.html's sanitiser drops inline SVG.
    source = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    label = f"training loss, from {values[0]:.2f} to {values[-1]:.2f}"
    return f'<img src="{source}" alt="{label}" title="{label}" style="width:100%;height:{height}px">'
