"""Draw a digit, watch a CNN recognise it; retrain it live.

    streamlit run app.py

The entry point only routes: one page per file in app_pages/, and the sidebar every page shares
(which model is answering). All the work is in the Streamlit-free library, digit/.
"""

import streamlit as st

from app_pages.lean_import import import_tensorflow_lean

import_tensorflow_lean()  # first: before anything imports TensorFlow (90 MB less resident)

from app_pages.common import keep_settings, model_in_use, percent  # noqa: E402
from app_pages.rerun_cost import keep_reruns_cheap  # noqa: E402

keep_reruns_cheap()
st.set_page_config(page_title="digit: draw a digit", page_icon="✏️", layout="wide")

page = st.navigation(
    [
        st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:", default=True),
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
        st.Page("app_pages/corrections.py", title="My corrections", icon=":material/fact_check:"),
    ]
)

keep_settings()
in_use = model_in_use()
with st.sidebar, st.container(key="model_info"):
    if in_use.entry is None:
        st.error(in_use.warning)
    else:
        st.caption("Model answering" + (" (your session only)" if in_use.session_only else ""))
        st.markdown(
            f"**{in_use.entry.name}**", help="Change it on the Train page: train a new one or pick a saved one."
        )
        st.caption(f"Test accuracy {percent(in_use.entry.test_accuracy)}")
        if in_use.warning:
            st.warning(in_use.warning)
st.sidebar.divider()

page.run()
