"""The drawing canvas, with its own always-visible Clear and Undo, and the drawing kept for the session.

    image = canvas.drawing(pen_width=22, key="canvas")    # RGBA pixels, or None before the first stroke

The canvas component's own toolbar shows only while a mouse hovers over it, and never on a phone.
So the page has its own buttons, and keeps each stroke's state (the canvas's JSON and its PNG)
in the session: Undo and Clear put the canvas back to an earlier state by mounting it anew with
that drawing, and coming back to the page (or from Upload to Draw) shows the drawing again.
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
    if state["mount"] == 0 or view_changed():  # off screen in the last run: mount it again, drawing included
        _remount(state)
    history = state["history"]
    result = st_canvas(
        stroke_width=pen_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=height,
        width=width,
        drawing_mode="freedraw",
        initial_drawing=state["initial"],  # fixed for each mount: a changed value would redraw the canvas
        return_image_data=True,
        update_streamlit=True,
        key=f"{key}-{state['mount']}",
    )
    _record(history, result)
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
    return st.session_state.setdefault(f"{key}-state", {"history": [], "mount": 0, "initial": None})


def _remount(state: dict) -> None:
    """A new canvas (a new key) showing the last state kept."""
    state["mount"] += 1
    state["initial"] = state["history"][-1]["json"] if state["history"] else None


def _record(history: list[dict], result) -> None:
    """Keep the canvas's latest state when it differs from the last one kept."""
    if result.json_data is None or result.image_data is None:
        return
    if history and history[-1]["json"] == result.json_data:
        return
    if not history and not _has_ink(result.json_data):
        return
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(result.image_data), cv2.COLOR_RGBA2BGRA))
    if ok:
        history.append({"json": result.json_data, "png": png.tobytes()})
        del history[:-HISTORY]


def _undo(key: str) -> None:
    state = _state(key)
    if state["history"]:
        state["history"].pop()
        _remount(state)  # the canvas shows the state before the last stroke


def _clear(key: str) -> None:
    state = _state(key)
    state["history"].clear()
    _remount(state)


def _has_ink(drawing: dict) -> bool:
    return bool(drawing.get("objects"))


def _pixels(png: bytes) -> np.ndarray:
    bgra = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
