"""My corrections: the drawings this visitor labelled on the Draw page, to fine-tune the model on."""

import streamlit as st

from app_pages import corrections_ui

st.title("My corrections")
st.write(
    "Each time you tell the Draw page what a drawing really was, it is kept here with its label. "
    "Fine-tune the model on them from the Train page; score the model on them on the Evaluate page."
)
corrections_ui.render_corrections_manager()
