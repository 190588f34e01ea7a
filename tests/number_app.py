"""The Draw page's Number mode alone, for tests (AppTest and Chromium): `streamlit run tests/number_app.py`."""

import streamlit as st

from app_pages.common import load_predictor, note_view
from app_pages.parts.number_mode import render_number_mode, render_number_upload
from digit.config import DEFAULT_MODEL_PATH

st.set_page_config(page_title="digit: write a number", layout="wide")
st.title("Write a number")
note_view("number")  # as app.py does: the canvas keeps its drawing from one run to the next
predictor = load_predictor(str(DEFAULT_MODEL_PATH), DEFAULT_MODEL_PATH.stat().st_mtime)
if st.radio("Input", ["Draw", "Upload"], horizontal=True, key="number_source", label_visibility="collapsed") == "Draw":
    render_number_mode(predictor, st.session_state.setdefault("pen_width", 22))
else:
    render_number_upload(predictor)
