"""The drawing canvas, with its own always-visible Clear and Undo, and the drawing kept for the session.

    image = canvas.drawing(pen_width=22, key="canvas")    # RGBA pixels, or None before the first stroke

The canvas component's own toolbar shows only while a mouse hovers over it, and never on a phone.
So the page has its own buttons, and keeps each stroke's state (the canvas's JSON and its PNG)
in the session. Undo and Clear hand the canvas an earlier state as its `initial_drawing`: the
component redraws itself when that value changes, in place (one canvas, one key, so nothing on the
page jumps and a busy server cannot leave a stale second canvas on screen to draw on). Coming back
to the page, or from Upload to Draw, shows the kept drawing again the same way.

The canvas keeps reporting its last value until it sends another, so runs after Undo or Clear
still carry what was taken back; and a run interrupted by the next one (Streamlit's fast reruns)
may finish after it. So a value counts as news when the canvas itself says it sent it (its
on_change), and what Undo and Clear took back is remembered: a run that merely carries it keeps
nothing, in whatever order the runs end.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas  # only here: it cannot be imported outside a running app

from app_pages.common import view_changed

CANVAS_SIZE = 280
HISTORY = 30  # states kept for Undo: PNGs of a few kB each
TAKEN_BACK = 2 * HISTORY  # states taken back by Undo and Clear, remembered so that none comes back


def drawing(
    pen_width: int, key: str = "canvas", width: int = CANVAS_SIZE, height: int = CANVAS_SIZE, buttons: bool = True
) -> np.ndarray | None:
    """The canvas and its Undo and Clear (`buttons=False`: the page places them itself, with `controls`).

    Returns the drawing as RGBA pixels (white ink on black), None when empty.
    """
    state = _state(key)
    if state["initial"] is None or view_changed():  # off screen in the last run: show the kept drawing
        _show_kept(state)
    result = st_canvas(
        stroke_width=pen_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=height,
        width=width,
        drawing_mode="freedraw",
        initial_drawing=state["initial"],  # changed only by Undo, Clear and a return: the canvas redraws then
        return_image_data=True,
        update_streamlit=True,
        key=key,
        on_change=partial(_sent, key),
    )
    _record(state, result)
    if buttons:
        controls(key)
    kept = _kept(state)
    return _pixels(kept["png"]) if kept else None


def kept_drawing(key: str = "canvas") -> dict | None:
    """The drawing `drawing()` last returned, as the canvas records it (fabric.js JSON: its strokes), or None."""
    kept = _kept(_state(key))
    return kept["json"] if kept else None


def _kept(state: dict) -> dict | None:
    """The last state kept, where it holds ink."""
    history = state["history"]
    return history[-1] if history and _has_ink(history[-1]["json"]) else None


def controls(key: str = "canvas") -> None:
    """Undo and Clear, always visible."""
    history = _state(key)["history"]
    undo, clear = st.columns(2)
    undo.button(
        "Undo",
        key=f"{key}-undo",
        icon=":material/undo:",
        on_click=_undo,
        args=(key,),
        disabled=not history,
        width="stretch",
    )
    clear.button(
        "Clear",
        key=f"{key}-clear",
        icon=":material/delete:",
        on_click=_clear,
        args=(key,),
        disabled=not history,
        width="stretch",
    )


def _state(key: str) -> dict:
    """`history`: the states kept; `initial`: what the canvas was last told to show; `taken_back`:
    the drawings Undo and Clear took back (and the canvas's value then); `sent`: the drawing the
    canvas last sent, as its on_change said (None since the last Undo or Clear)."""
    return st.session_state.setdefault(
        f"{key}-state", {"history": [], "initial": None, "revision": 0, "taken_back": [], "sent": None}
    )


def _show_kept(state: dict) -> None:
    """Tell the canvas to show the last state kept (an empty canvas when none).

    The revision makes each request a new value, so that Clear after Clear, or Undo back to a state
    the canvas was shown before, still redraws it.
    """
    state["revision"] += 1
    kept = state["history"][-1]["json"] if state["history"] else {"objects": []}
    state["initial"] = {**kept, "digitRevision": state["revision"]}


def _sent(key: str) -> None:
    """The canvas sent a drawing (its on_change, at the start of the run that brings it)."""
    _state(key)["sent"] = _reported(key)


def _reported(key: str) -> dict | None:
    """The drawing the canvas holds now, as the component keeps it in the session (its fabric.js JSON)."""
    return ((st.session_state.get(key) or {}).get("drawing") or {}).get("raw")


def _record(state: dict, result) -> None:
    """Keep what the canvas reports when it is a new drawing, and not the last state kept.

    New: the canvas sent it, or (a value set without the canvas, as in tests) Undo or Clear did not
    take it back. A run after Undo or Clear still carries the value from before them, in any order
    with the run of the redrawn canvas's report: the state taken back stays taken back either way.
    """
    history, drawing = state["history"], result.json_data
    if drawing is None or result.image_data is None:
        return
    if drawing != state["sent"] and drawing in state["taken_back"]:
        return
    if history and history[-1]["json"] == drawing:
        return
    if not history and not _has_ink(drawing):
        return
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(result.image_data), cv2.COLOR_RGBA2BGRA))
    if ok:
        history.append({"json": drawing, "png": png.tobytes()})
        del history[:-HISTORY]


def _undo(key: str) -> None:
    state = _state(key)
    if state["history"]:
        _take_back(state, key, [state["history"].pop()])
        _show_kept(state)  # the canvas shows the state before the last stroke


def _clear(key: str) -> None:
    state = _state(key)
    _take_back(state, key, state["history"])
    state["history"].clear()
    _show_kept(state)


def _take_back(state: dict, key: str, taken: list[dict]) -> None:
    """Remember the drawings taken back, and the canvas's value now: the run Undo or Clear starts carries it."""
    drawings = [*state["taken_back"], *(kept["json"] for kept in taken), _reported(key)]
    state["taken_back"] = [drawing for drawing in drawings if drawing is not None][-TAKEN_BACK:]
    state["sent"] = None  # so that the run Undo or Clear starts, still carrying the canvas's value, keeps nothing


def _has_ink(drawing: dict) -> bool:
    return bool(drawing.get("objects"))


def _pixels(png: bytes) -> np.ndarray:
    bgra = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
