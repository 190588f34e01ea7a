"""What the pages share: the model in use, the MNIST data, promotion, small image helpers.

Serving side: nothing here imports TensorFlow. Models answer through their LiteRT export
(digit.serving); training runs in a child process (digit.jobs).

Caching lives here, in the app layer: predictors with st.cache_resource (keyed on path and
modification time, so a retrained file is never served stale), MNIST with st.cache_resource
(large, read-only), evaluations with st.cache_data.
"""

from __future__ import annotations

import hmac
import os
import uuid
from dataclasses import dataclass

import cv2
import numpy as np
import streamlit as st

from digit.registry import Entry, Registry, RegistryError
from digit.serving import ModelError, Predictor
from digit.serving import load_predictor as _load_predictor

OVERRIDE_KEY = "model_override"  # a model this visitor uses in their own session only
KEPT_PREFIXES = (
    "cfg_",
    "pen_width",
    "show_steps",
    "inside_",
    "draw_mode",
)  # widget values that outlive a switch to another page
KEPT_KEY = "kept_settings"


@dataclass(frozen=True)
class ModelInUse:
    """The model answering this visitor, and why it is that one."""

    entry: Entry | None
    predictor: Predictor | None  # None when no model can be loaded at all
    session_only: bool = False
    warning: str = ""

    @property
    def engine_text(self) -> str:
        """Which engine answers, in a few words (and why Keras, where it is Keras)."""
        if self.predictor is None:
            return ""
        note = f" ({self.predictor.note})" if self.predictor.note else ""
        return f"Answering with {self.predictor.engine}{note}"


def registry() -> Registry:
    """The registry (cheap: it reads the folder on demand)."""
    return Registry()


def keep_settings() -> None:
    """Keep the Train settings and pen width when their page is not shown.

    Streamlit drops the values of widgets a run does not draw, and the sidebar's run panel reruns
    on its own (a fragment) in between: so each value is also mirrored under a key no widget has,
    and put back from there when Streamlit has dropped it.
    """
    kept = st.session_state.setdefault(KEPT_KEY, {})
    for key in [k for k in st.session_state if str(k).startswith(KEPT_PREFIXES)]:
        kept[key] = st.session_state[key] = st.session_state[key]
    for key, value in kept.items():
        if key not in st.session_state:
            st.session_state[key] = value


VIEW_KEYS = {
    "draw_mode": "Digit",
    "input_source": "Draw",
}  # the widgets that choose what a page shows, and their defaults


def note_view(page: str) -> None:
    """Called at the start of every full run (app.py): what this run shows, and whether it differs from the last.

    Recorded at the start, not the end: a run cut short by the next one (a quick stroke) still
    counts as showing what it was going to show.
    """
    view = (page, *(st.session_state.get(key, default) for key, default in VIEW_KEYS.items()))
    st.session_state["view_changed"] = view != st.session_state.get("view")
    st.session_state["view"] = view


def view_changed() -> bool:
    """True when this run shows another page or mode than the last one did: a part on it was off screen."""
    return st.session_state.get("view_changed", True)


def visitor_id() -> str:
    """A random id for this browser session: who started a training run."""
    return st.session_state.setdefault("visitor_id", uuid.uuid4().hex[:12])


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_predictor(path: str, mtime: float) -> Predictor:
    """The predictor for a model file, once per (path, mtime); an older file is exported on first use."""
    return _load_predictor(path)


def model_in_use() -> ModelInUse:
    """This visitor's model: their own choice, else the served one, else the shipped one."""
    reg = registry()
    entry, session_only = _chosen_entry(reg)
    try:
        return ModelInUse(entry, load_predictor(str(entry.path), entry.mtime), session_only)
    except ModelError as error:
        warning = f"Model {entry.name} could not be loaded ({error}); using the shipped model instead."
    shipped = reg.shipped()
    try:
        return ModelInUse(shipped, load_predictor(str(shipped.path), shipped.mtime), False, warning)
    except ModelError as error:
        return ModelInUse(None, None, False, f"No model can be loaded ({error}). Train one on the Train page.")


def _chosen_entry(reg: Registry) -> tuple[Entry, bool]:
    name = st.session_state.get(OVERRIDE_KEY)
    if name:
        try:
            entry = reg.get(name)
            if entry.looks_valid():
                return entry, True
        except RegistryError:
            pass
        st.session_state.pop(OVERRIDE_KEY, None)
    return reg.served(), False


@st.cache_resource
def training_runner():
    """The server's one training runner, shared by every visitor; it outlives reruns and module reloads."""
    from digit.jobs import Runner

    return Runner()


def promote_password() -> str | None:
    """The password that guards changing the served model, when one is configured in st.secrets."""
    try:
        value = st.secrets.get("promote_password")
    except Exception:  # no secrets.toml at all: an open deployment
        return None
    return str(value) if value else None


LOCAL_ENV = "DIGIT_LOCAL"  # set to 1 where the app runs on its user's own computer


def running_locally() -> bool:
    """True where whoever started the app said it runs on the user's own computer (DIGIT_LOCAL=1, or
    `local = true` in secrets.toml): one user, so their choices may change the app for everyone."""
    if os.environ.get(LOCAL_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True
    try:
        return bool(st.secrets.get("local", False))
    except Exception:  # no secrets.toml at all
        return False


def password_given() -> bool:
    """True when this visitor typed the configured password (never true where none is configured)."""
    required = promote_password()
    typed = str(st.session_state.get("promote_pw") or "")
    return required is not None and hmac.compare_digest(typed.encode(), required.encode())


def may_change_for_everyone() -> bool:
    """Locally, or with the password: a public server without one keeps every choice in its session."""
    return running_locally() or password_given()


def use_model(name: str) -> str:
    """Switch to `name`: for everyone where allowed, else for this visitor only. Returns what happened."""
    if may_change_for_everyone():
        registry().promote(name)
        st.session_state.pop(OVERRIDE_KEY, None)
        return f"{name} now answers for everyone."
    st.session_state[OVERRIDE_KEY] = name
    if promote_password() is None:
        why = "this is a public server: changing the model for everyone needs a password set by whoever deployed it"
    else:
        why = "wrong password" if st.session_state.get("promote_pw") else "changing it for everyone needs the password"
    return f"{name} now answers in your session only ({why})."


def is_mine(snapshot) -> bool:
    """True when this visitor started the run."""
    return snapshot.owner == visitor_id()


def may_act_on(snapshot) -> bool:
    """Stop a run, or use what it made: its owner, the password holder, or anyone on a local app."""
    return is_mine(snapshot) or may_change_for_everyone()


def whose(snapshot) -> str:
    """'you' or 'another visitor'."""
    return "you" if is_mine(snapshot) else "another visitor"


def mnist_source() -> str:
    """Where MNIST comes from: the DIGIT_MNIST_NPZ file, or '' for Keras' download."""
    from digit.config import data_path_from_env

    return str(data_path_from_env() or "")


@st.cache_resource(max_entries=2, show_spinner="Loading MNIST…")
def mnist(source: str):
    """MNIST's test set from `source`, loaded once per server (read-only: never mutate it). DataError when unreachable."""
    from digit.data import load_mnist

    return load_mnist(source or None, test_only=True)  # the server scores; the training process loads its own


MNIST_HELP = (
    "Set the environment variable DIGIT_MNIST_NPZ to a local mnist.npz "
    "(for example ../shared/data/mnist.npz), or give the server internet access so Keras can download it."
)


def enlarge(image: np.ndarray, size: int = 168) -> np.ndarray:
    """A uint8 or [0, 1] float image scaled up with nearest-neighbour, so each pixel stays a crisp square."""
    array = np.asarray(image)
    if np.issubdtype(array.dtype, np.floating):
        array = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round()
    array = array.astype(np.uint8)
    scale = size / max(array.shape[:2])
    width, height = max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale))
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_NEAREST)


def epochs_text(count: object) -> str:
    """2 -> '2 epochs', 1 -> '1 epoch'."""
    return f"{count} epoch" + ("" if count == 1 else "s")


def percent(value: float | None) -> str:
    """0.9876 -> '98.76%'; None -> 'n/a'."""
    return "n/a" if value is None else f"{value:.2%}"
