"""A tiny app for AppTest: the "Inside the network" parts on their own (tests/test_explain.py drives it).

Session state "image" (any image) is what the Draw part explains; "train_views" adds the Train part
(the shipped model as both before and after).
"""

import streamlit as st

from app_pages.common import load_predictor
from app_pages.parts.inside_network import render_inside_network, render_training_views
from digit.config import DEFAULT_MODEL_PATH
from digit.inference import predict

predictor = load_predictor(str(DEFAULT_MODEL_PATH), DEFAULT_MODEL_PATH.stat().st_mtime)
image = st.session_state.get("image")
prediction = predict(predictor, image) if image is not None else None
st.metric("Prediction", "–" if prediction is None or prediction.digit is None else str(prediction.digit))
render_inside_network(predictor, prediction, image)
if st.session_state.get("train_views"):
    render_training_views(predictor, predictor)
