"""Data: look at a dataset before training on it - examples and the mean image of each
class, the class balance of the splits, pixel statistics, and any image by its index."""

import pandas as pd
import streamlit as st

from kmnist_core import charts, data, dataset_stats
from pages.helpers.credits import dataset_credit
from pages.helpers.formatting import literal
from pages.helpers.loaders import try_load_dataset
from pages.helpers.navigation import use_app_navigation
from pages.helpers.pictures import class_example_rows, class_heading

use_app_navigation()

EXAMPLES_PER_CLASS = 12


@st.cache_data(max_entries=4, show_spinner="Computing the dataset's statistics…")
def summary(name: str, root: str) -> dataset_stats.DatasetSummary:
    return dataset_stats.summarize(data.load_dataset(name, root, download=False))


st.title(":material/dataset: Explore a dataset")
name = st.selectbox("Dataset", list(data.DATASETS), key="data_dataset",
                    format_func=lambda key: data.DATASETS[key].display_name)
dataset = try_load_dataset(name)
if dataset is None:
    if any(not data.needs_download(other) for other in data.DATASETS if other != name):
        st.caption("Choose another dataset above to explore it meanwhile.")
    else:
        st.caption("None of the datasets is on this machine yet. Training a model on one (Train page) downloads "
                   "it first; then come back to explore it.")
    st.stop()
info = dataset.info
stats = summary(name, str(data.default_data_root()))
st.caption(info.description + (f" Licence: {info.licence}." if info.licence else ""))
dataset_credit(info)

st.subheader("Examples of each class")
if st.button("🔀 Other examples"):
    st.session_state["data_examples_seed"] = st.session_state.get("data_examples_seed", 0) + 1
class_example_rows(dataset, EXAMPLES_PER_CLASS, seed=st.session_state.get("data_examples_seed", 0))

st.subheader("The mean image of each class")
st.caption("The average of all training images of a class: where its strokes usually are.")
for column, label, mean in zip(st.columns(info.num_classes), info.class_names, stats.class_means):
    column.image(charts.enlarge(mean, 3), caption=literal(label))

st.subheader("Class balance")
st.caption("The training set split as training does by default: a stratified 10% for validation, seed 0.")
st.plotly_chart(charts.class_balance(stats.class_counts, list(info.class_names)))

st.subheader("Pixel intensities")
st.dataframe(pd.DataFrame({"split": list(stats.pixels), "images": [sum(stats.class_counts[s]) for s in stats.pixels],
                           "mean": [n.mean for n in stats.pixels.values()],
                           "std": [n.std for n in stats.pixels.values()]}),
             hide_index=True, column_config={"mean": st.column_config.NumberColumn(format="%.4f"),
                                             "std": st.column_config.NumberColumn(format="%.4f")})
st.caption("Pixel values scaled to [0, 1]. Training normalises with the training split's mean and std.")
st.plotly_chart(charts.pixel_histogram(stats.histograms))

st.subheader("Browse by index")
split_col, index_col, image_col = st.columns([1, 1, 2])
split = split_col.radio("Official split", ("train", "test"), horizontal=True, key="data_browse_split")
images, labels = (dataset.train_images, dataset.train_labels) if split == "train" else \
    (dataset.test_images, dataset.test_labels)
index = index_col.number_input(f"Index (0-{len(labels) - 1})", 0, len(labels) - 1, 0, key=f"data_browse_{split}")
image_col.image(charts.enlarge(images[index], 6))
image_col.markdown(class_heading(info.class_names[int(labels[index])]), unsafe_allow_html=True)
