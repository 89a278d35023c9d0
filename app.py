"""KMNIST Lab: `streamlit run app.py`. This file declares the pages and draws Home."""

import streamlit as st

from pages.helpers.identity import current_actor, identity_badge, in_class
from pages.helpers.live_updates import keep_lists_live

st.set_page_config(page_title="KMNIST Lab", page_icon=":material/draw:", layout="wide")


def home() -> None:
    from kmnist_core import data, runs, training
    from pages.helpers.background_jobs import job_manager
    from pages.helpers.credits import dataset_credit
    from pages.helpers.formatting import literal
    from pages.helpers.loaders import try_load_dataset
    from pages.helpers.pictures import class_example_rows
    from pages.helpers.run_picker import PREFERRED_DATASET, usable_runs

    st.title(":material/draw: KMNIST Lab")
    st.markdown(
        "Learn and teach handwritten-character classification: pick a dataset and an architecture, "
        "train it in the background while the curves grow, look at what it gets wrong, then draw a "
        "character and see what it thinks. **Kuzushiji-MNIST** holds ten cursive hiragana of classical "
        "Japanese, as written before the 1900 script reform; MNIST and Fashion-MNIST are here to compare.")

    st.subheader("Start here")
    ready = runs.best_run(usable_runs(), PREFERRED_DATASET)
    draw_col, train_col = st.columns(2)
    if ready is not None and ready.is_complete:
        draw_col.page_link(DRAW, label=f"Draw a character: {literal(ready.record.dataset.display_name)} model ready")
        draw_col.caption(f"The Draw page opens on {literal(ready.display_name)} ({ready.config.arch}): it answers as "
                         "you draw.")
    else:
        draw_col.caption("No model is ready to draw with yet: train one first.")
    train_col.page_link(TRAIN, label="Train your own model and watch it learn")
    train_col.caption("Pick a dataset and an architecture, start it, and see the curves grow as it learns.")

    device = training.pick_device("auto")
    left, right = st.columns(2)
    left.metric("Training device", training.describe_device(device))
    active = job_manager().active()
    right.metric("Training jobs", f"{len(active)} active" if active else "none running")
    for job in active:
        snap = job.snapshot()
        right.caption(f"{job.id}: {snap.config.arch} on {literal(snap.config.dataset)} — {snap.status}"
                      + (f", epoch {snap.epoch}/{snap.epochs_total} ({snap.progress:.0%})" if snap.step else ""))

    st.subheader("Where to go")
    cols = st.columns(3)  # four columns cut the labels off at 1280 px wide
    for i, (page, text) in enumerate(PAGE_BLURBS):
        cols[i % len(cols)].page_link(page, label=text)

    st.subheader("The datasets")
    tabs = st.tabs([data.DATASETS[name].display_name for name in SHOWN_DATASETS])
    for tab, name in zip(tabs, SHOWN_DATASETS):
        with tab:
            info = data.DATASETS[name]
            st.caption(info.description + (f" Licence: {info.licence}." if info.licence else ""))
            dataset_credit(info)
            dataset = try_load_dataset(name)
            if dataset is not None:
                class_example_rows(dataset, per_class=10, seed=1)


SHOWN_DATASETS = ("kmnist", "mnist", "fashion")

HOME = st.Page(home, title="Home", icon=":material/home:", default=True)
TRAIN = st.Page("pages/train.py", title="Train", icon=":material/model_training:")
EVALUATE = st.Page("pages/evaluate.py", title="Evaluate", icon=":material/query_stats:")
DRAW = st.Page("pages/draw.py", title="Draw", icon=":material/edit:")
COMPARE = st.Page("pages/compare.py", title="Compare", icon=":material/bar_chart:")
SWEEP = st.Page("pages/sweep.py", title="Sweep", icon=":material/science:")
DATA = st.Page("pages/dataset.py", title="Data", icon=":material/dataset:", url_path="data")
FEATURES = st.Page("pages/features.py", title="Features", icon=":material/scatter_plot:")
CLASS = st.Page("pages/class_gallery.py", title="Class", icon=":material/gallery_thumbnail:", url_path="class")
# The teacher's page: listed only when a class key is set.
CLASS_SETTINGS = st.Page("pages/class_settings.py", title="Class settings", icon=":material/school:",
                         url_path="class-settings", visibility="visible" if in_class() else "hidden")
PAGES = [HOME, TRAIN, EVALUATE, DRAW, COMPARE, SWEEP, DATA, FEATURES, CLASS, CLASS_SETTINGS]
PAGE_BLURBS = [
    (TRAIN, "Train a model, watch it learn"),
    (EVALUATE, "Evaluate: what it gets wrong"),
    (DRAW, "Draw a character to classify"),
    (COMPARE, "Compare runs side by side"),
    (SWEEP, "Sweep a hyperparameter"),
    (DATA, "Explore a dataset"),
    (FEATURES, "See the learned features"),
]


def old_data_link() -> None:
    """/dataset, the Data page's address before it was /data: bookmarks still arrive there."""
    st.switch_page(DATA)


page = st.navigation([*PAGES, st.Page(old_data_link, title="Data", url_path="dataset", visibility="hidden")])
actor = current_actor()  # in a class, asks this browser's name once; without one, the lone user
identity_badge(actor)
keep_lists_live(actor)
page.run()
