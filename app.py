"""Draw a digit, watch a CNN recognise it; retrain it live.

    streamlit run app.py

The entry point only routes: one page per file in app_pages/, and the sidebar every page shares
(which model is answering). All the work is in the Streamlit-free library, digit/. This server
never imports TensorFlow: it answers with each model's LiteRT export, and training runs in a
child process of its own.
"""

import streamlit as st

from app_pages.common import keep_settings, model_in_use, note_view, percent
from app_pages.parts import runs

st.set_page_config(page_title="digit: draw a digit", page_icon="✏️", layout="wide")

train_page = st.Page("app_pages/train.py", title="Train", icon=":material/model_training:")
draw_page = st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:", default=True)
page = st.navigation(
    [
        draw_page,
        train_page,
        st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
        st.Page("app_pages/corrections.py", title="My corrections", icon=":material/fact_check:"),
    ]
)

note_view(page.url_path)
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
        st.caption(in_use.engine_text)
        if in_use.warning:
            st.warning(in_use.warning)
if page.url_path != train_page.url_path:  # the Train page shows the run in full, Start and Stop in its sidebar
    runs.render_sidebar_panel()
st.sidebar.divider()

page.run()
