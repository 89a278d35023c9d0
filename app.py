"""KMNIST Lab: `streamlit run app.py`. This file declares the pages and draws Home."""

import streamlit as st

st.set_page_config(page_title="KMNIST Lab", page_icon="✍️", layout="wide")


def home() -> None:
    from kmnist_core import data, training
    from pages.helpers.background_jobs import job_manager
    from pages.helpers.loaders import try_load_dataset
    from pages.helpers.pictures import class_example_rows

    st.title("✍️ KMNIST Lab")
    st.markdown(
        "Learn and teach handwritten-character classification: pick a dataset and an architecture, "
        "train it in the background while the curves grow, look at what it gets wrong, then draw a "
        "character and see what it thinks. **Kuzushiji-MNIST** holds ten cursive hiragana of classical "
        "Japanese, as written before the 1900 script reform; MNIST and Fashion-MNIST are here to compare.")

    device = training.pick_device("auto")
    left, right = st.columns(2)
    left.metric("Training device", training.describe_device(device))
    active = job_manager().active()
    right.metric("Training jobs", f"{len(active)} active" if active else "none running")
    for job in active:
        snap = job.snapshot()
        right.caption(f"{job.id}: {snap.config.arch} on {snap.config.dataset} — {snap.status}"
                      + (f", epoch {snap.epoch}/{snap.epochs_total} ({snap.progress:.0%})" if snap.step else ""))

    st.subheader("Where to go")
    cols = st.columns(4)
    for col, (page, text) in zip(cols * 2, PAGE_BLURBS):
        col.page_link(page, label=text)

    st.subheader("The datasets")
    tabs = st.tabs([data.DATASETS[name].display_name for name in SHOWN_DATASETS])
    for tab, name in zip(tabs, SHOWN_DATASETS):
        with tab:
            info = data.DATASETS[name]
            st.caption(info.description + (f" Licence: {info.licence}." if info.licence else ""))
            dataset = try_load_dataset(name)
            if dataset is not None:
                class_example_rows(dataset, per_class=10, seed=1)


SHOWN_DATASETS = ("kmnist", "mnist", "fashion")

PAGES = [
    st.Page(home, title="Home", icon="🏠", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/evaluate.py", title="Evaluate", icon="🔎"),
    st.Page("pages/draw.py", title="Draw", icon="✏️"),
    st.Page("pages/compare.py", title="Compare", icon="📊"),
    st.Page("pages/sweep.py", title="Sweep", icon="🧪"),
    st.Page("pages/dataset.py", title="Data", icon="🗂️"),
    st.Page("pages/features.py", title="Features", icon="🧭"),
]
PAGE_BLURBS = [
    (PAGES[1], "Train a model, watch it learn"),
    (PAGES[2], "Evaluate: what it gets wrong"),
    (PAGES[3], "Draw a character to classify"),
    (PAGES[4], "Compare runs side by side"),
    (PAGES[5], "Sweep a hyperparameter"),
    (PAGES[6], "Explore a dataset"),
    (PAGES[7], "See the learned features"),
]

st.navigation(PAGES).run()
