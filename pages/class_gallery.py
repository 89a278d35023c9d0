"""Class gallery: the drawings the class shared from the Draw page, live; how well a model reads
the class's own handwriting, class by class; and the collection exported as a dataset that the
Train page trains on at once. A view only: kmnist_core.gallery keeps the drawings and its rules."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kmnist_core import gallery, runs
from pages.helpers import gallery_view, projector
from pages.helpers.loaders import try_load_model
from pages.helpers.navigation import use_app_navigation
from pages.helpers.run_picker import pick_run, usable_runs

use_app_navigation()

REFRESH_SECONDS = 2
EXPORTED = "class_export"   # session key: the folder this session exported last

st.title(":material/gallery_thumbnail: Class gallery")
projector.toggle()
st.caption("Drawings shared from the Draw page with \"Share with the class\", newest first: a red frame is a "
           "drawing the model misread. Export them as a dataset to train a model on the class's own handwriting.")

choices = usable_runs()
run = pick_run("Model to score the class's drawings with", choices, key="class_run") if choices else None
model = try_load_model(run) if run is not None else None


@st.cache_resource(max_entries=8, show_spinner=False)
def _scores(weights: tuple, ids: tuple[str, ...], _model, _run: runs.Run, _drawings) -> pd.DataFrame:
    """Per class: drawings, read right, accuracy; cached per model and set of drawings."""
    scores = gallery.accuracy_by_class(_model, _run.normalization, _drawings, _run.class_names)
    return pd.DataFrame([{"class": s.name, "drawings": s.total, "read right": s.correct, "accuracy": s.accuracy}
                         for s in scores])


def class_accuracy(drawings: list[gallery.SharedDrawing]) -> None:
    st.markdown("**The model on the class's handwriting**")
    if model is None:
        st.caption("No model to score the drawings with: train one first.")
        return
    mine = gallery.of_classes(drawings, run.class_names)
    if not mine:
        st.caption("None of the shared drawings is of this model's classes.")
        return
    table = _scores(runs.cache_key(run), tuple(d.id for d in mine), model, run, mine)
    right, total = int(table["read right"].sum()), int(table["drawings"].sum())
    st.metric("Read right", f"{right / total:.0%}", help=f"{right} of {total} drawings, each scored against the "
              "class its student meant")
    st.dataframe(table, hide_index=True, column_config={"accuracy": st.column_config.NumberColumn(format="percent")})


@st.fragment(run_every=REFRESH_SECONDS)
def live_wall() -> None:
    """The wall and the scores, redrawn every REFRESH_SECONDS as students share."""
    drawings = gallery.list_shared()
    if not drawings:
        st.info("No drawings shared yet: on the Draw page, draw a character and press \"Share with the class\".",
                icon=":material/gesture:")
        return
    wall_col, score_col = st.columns([2.2, 1], gap="medium")
    with wall_col:
        gallery_view.wall(drawings)
    with score_col:
        class_accuracy(drawings)


def export() -> None:
    st.subheader("Train on the class's handwriting")
    if run is None:
        st.caption("Export needs a model: its classes say which drawings go in.")
        return
    st.caption("Writes the drawings shared for this model's classes as an idx dataset folder: three quarters to "
               "train on, a quarter held out to test (split class by class, the same way every time).")
    if st.button("Export as a dataset", icon=":material/download:", key="class_export_button"):
        try:
            st.session_state[EXPORTED] = str(gallery.export_dataset(run.class_names))
        except (gallery.GalleryError, OSError) as error:
            st.error(str(error).splitlines()[0])
    folder = st.session_state.get(EXPORTED)
    if folder:
        st.code(folder, language=None)
        if st.button("Train on it →", icon=":material/model_training:", key="class_train_on_it"):
            st.session_state["train_dataset"] = "own"    # the Train page's "Your own idx folder…"
            st.session_state["train_folder"] = folder
            st.switch_page("pages/train.py")


live_wall()
export()
gallery_view.teacher_tools(gallery.list_shared())
