"""The drawing canvas, with its own always-visible Clear and Undo, and the drawing kept for the session.

    image = canvas.drawing(pen_width=22, key="canvas")    # RGBA pixels, or None before the first stroke

The canvas component's own toolbar shows only while a mouse hovers over it, and never on a phone.
So the page has its own buttons, and keeps each stroke's state (the canvas's JSON and its PNG)
in the session. Undo and Clear hand the canvas an earlier state as its `initial_drawing`: the
component redraws itself when that value changes, in place (one canvas, one key, so nothing on the
page jumps and a busy server cannot leave a stale second canvas on screen to draw on). Coming back
to the page, or from Upload to Draw, shows the kept drawing again the same way.
"""

from __future__ import annotations

import cv2
import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas  # only here: it cannot be imported outside a running app

from app_pages.common import view_changed

CANVAS_SIZE = 280
HISTORY = 30  # states kept for Undo: PNGs of a few kB each


def drawing(
    pen_width: int, key: str = "canvas", width: int = CANVAS_SIZE, height: int = CANVAS_SIZE, buttons: bool = True
) -> np.ndarray | None:
    """The canvas and its Undo and Clear (`buttons=False`: the page places them itself, with `controls`).

    Returns the drawing as RGBA pixels (white ink on black), None when empty.
    """
    state = _state(key)
    if state["initial"] is None or view_changed():  # off screen in the last run: show the kept drawing
        _show_kept(state)
    history = state["history"]
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
    )
    _record(state, result)
    if buttons:
        controls(key)
    return _pixels(history[-1]["png"]) if history and _has_ink(history[-1]["json"]) else None


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
    """`history`: the states kept; `initial`: what the canvas was last told to show; `seen`: the
    canvas's value in the last run (it keeps reporting that value until the canvas sends another)."""
    return st.session_state.setdefault(f"{key}-state", {"history": [], "initial": None, "revision": 0, "seen": None})


def _show_kept(state: dict) -> None:
    """Tell the canvas to show the last state kept (an empty canvas when none).

    The revision makes each request a new value, so that Clear after Clear, or Undo back to a state
    the canvas was shown before, still redraws it.
    """
    state["revision"] += 1
    kept = state["history"][-1]["json"] if state["history"] else {"objects": []}
    state["initial"] = {**kept, "digitRevision": state["revision"]}


def _record(state: dict, result) -> None:
    """Keep what the canvas reports when it is news: a value it sent since the last run, and new.

    A run after Undo or Clear still gets the value from before them: it is not news, so the state
    taken back stays taken back until the canvas, redrawn, reports again.
    """
    history, drawing = state["history"], result.json_data
    news, state["seen"] = drawing != state["seen"], drawing
    if not news or drawing is None or result.image_data is None:
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
        state["history"].pop()
        _show_kept(state)  # the canvas shows the state before the last stroke


def _clear(key: str) -> None:
    state = _state(key)
    state["history"].clear()
    _show_kept(state)


def _has_ink(drawing: dict) -> bool:
    return bool(drawing.get("objects"))


def _pixels(png: bytes) -> np.ndarray:
    bgra = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
