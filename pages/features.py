"""Features: what a trained model has learned - its penultimate-layer features of
test images projected to 2-D (PCA and t-SNE), and its first layer's weights as images."""

from functools import partial

import streamlit as st

from kmnist_core import charts, evaluation, features, models, runs
from pages.helpers.formatting import literal
from pages.helpers.loaders import try_load_model, try_load_run_dataset
from pages.helpers.navigation import use_app_navigation
from pages.helpers.pictures import image_strip
from pages.helpers.run_picker import pick_run, usable_runs

use_app_navigation()

SHOWN_UNITS = 64
TILES_PER_ROW = 16
TITLES = {"pca": "PCA", "tsne": "t-SNE"}


# The run's cache key (runs.cache_key) identifies the model, its normalisation and its test
# set, so those (underscored) are not hashed.
@st.cache_data(max_entries=8, show_spinner="Computing the features of the test images…")
def sample(_model, _dataset, _normalization, run_key: tuple, size: int) -> features.Sample:
    return features.sample_features(_model, _dataset, _normalization, size)


@st.cache_data(max_entries=16, show_spinner="Projecting to 2-D (t-SNE takes a few seconds per thousand points)…")
def projection(_sample: features.Sample, run_key: tuple, size: int, method: str):
    return features.project(_sample.features, method)


def remember_click(chart_key: str, run_id: str) -> None:
    points = st.session_state[chart_key].selection.points
    if points:
        st.session_state["features_picked"] = (run_id, int(points[0]["customdata"][0]))


st.title(":material/scatter_plot: Learned features")
run = pick_run("Run", usable_runs(), key="features_run")
if run is None:
    st.info("No trained model yet: train one on the Train page.")
    st.stop()
model = try_load_model(run)
dataset = try_load_run_dataset(run)
if model is None or dataset is None:
    st.stop()
class_names = run.class_names
run_key = runs.cache_key(run)

st.subheader("The test images as the model sees them")
st.caption("Each point is a test image placed by its penultimate-layer features (what the last, linear layer "
           "classifies); black rings mark the mistakes. Hover for details, click a point to see its image.")
size = st.slider("Test images (a stratified sample)", 500, 5000, 2000, step=500, key="features_size")
picked = sample(model, dataset, run.normalization, run_key, size)
for column, method in zip(st.columns(2), features.METHODS):
    with column:
        st.markdown(f"**{TITLES[method]}**")
        points = projection(picked, run_key, size, method)
        chart_key = f"features_{method}"
        st.plotly_chart(charts.embedding_scatter(points, picked.labels, picked.predictions, class_names, picked.indices),
                        key=chart_key, on_select=partial(remember_click, chart_key, run.id), selection_mode="points")

clicked_run, index = st.session_state.get("features_picked", (None, None))
if clicked_run == run.id:
    probabilities = evaluation.predict_proba(model, dataset.test_images[index:index + 1], run.normalization)[0]
    predicted = int(probabilities.argmax())
    image_col, text_col = st.columns([1, 3])
    image_col.image(charts.enlarge(dataset.test_images[index], 6))
    text_col.markdown(f"Test image **#{index}**  \ntrue class: **{literal(class_names[int(dataset.test_labels[index])])}**"
                      f"  \npredicted: **{literal(class_names[predicted])}** ({probabilities[predicted]:.0%})")

st.subheader("The first layer")
tiles = features.first_layer_images(model)
if models.is_convolutional(model):
    st.caption(f"The {len(tiles)} filters of the first convolution (bright: positive weights, dark: negative).")
else:
    side = len(tiles[0])
    source = "the 28x28 pixels" if side == 28 else f"each {side}x{side} patch"
    st.caption(f"The weights from {source} to the first layer's units, {min(len(tiles), SHOWN_UNITS)} of "
               f"{len(tiles)} shown (bright: positive weights, dark: negative).")
tiles = tiles[:SHOWN_UNITS]
factor = max(2, 84 // len(tiles[0]))  # small filters drawn bigger, all about 84 px wide
for start in range(0, len(tiles), TILES_PER_ROW):
    st.image(image_strip(tiles[start:start + TILES_PER_ROW], factor=factor))
