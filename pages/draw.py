"""Draw: sketch one character (or upload a photo of one) and see what a trained model thinks.

A view only: preprocessing, prediction and saliency are kmnist_core.drawing's,
the pictures and the chart kmnist_core.charts'.
"""

from __future__ import annotations

import html

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from kmnist_core import charts, data, drawing
from pages.helpers.credits import run_credit
from pages.helpers.first_model import offer_kmnist_model
from pages.helpers.loaders import try_load_model, try_load_run_dataset
from pages.helpers.navigation import use_app_navigation
from pages.helpers.pictures import image_strip
from pages.helpers.run_picker import pick_run, usable_runs

use_app_navigation()

CANVAS_SIZE = 280
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]
SOURCES = ("✏️ Draw", "📷 Upload a photo or scan")
EXAMPLES_SHOWN = 8


def _clear_canvas() -> None:
    # A new key mounts a fresh, empty canvas (the toolbar's reset button does the same).
    st.session_state["draw_canvas_version"] = st.session_state.get("draw_canvas_version", 0) + 1


def _big_label(name: str, is_kana: bool, confidence: float) -> str:
    if is_kana and len(name.split()) == 2:
        kana, roman = html.escape(name).split()
        headline = (f"<span style='font-size:6rem;line-height:1.05'>{kana}</span>"
                    f"<span style='font-size:2.2rem;margin-left:0.6rem'>{roman}</span>")
    else:
        size = "6rem" if len(name) <= 3 else "2.8rem"
        headline = f"<span style='font-size:{size};line-height:1.05;font-weight:600'>{html.escape(name)}</span>"
    return (f"<div>{headline}</div>"
            f"<div style='font-size:1.1rem;opacity:0.75'>{confidence:.0%} sure</div>")


st.title("✏️ Draw a character")
st.caption("Draw one character in the black square, or upload a photo of one written on paper: it is "
           "cropped, scaled and centred the way MNIST's images were made, and the model answers with "
           "one of the classes it was trained on.")

choices = usable_runs()
offer_kmnist_model(choices)
if not choices:
    st.info("There is no trained model yet. Train one, then come back and draw.", icon="🏋️")
    st.page_link("pages/train.py", label="Train a model", icon="🏋️")
    st.stop()

run = pick_run("Model", choices, key="draw_run")
model = try_load_model(run)
if model is None:
    st.stop()
class_names = run.class_names
is_kana = run.record.dataset.is_kana
st.caption(f"This model knows {len(class_names)} classes of {run.record.dataset.display_name}: "
           + ", ".join(class_names) + ". Whatever you draw, it answers with one of them.")
run_credit(run)

source = st.radio("Input", SOURCES, horizontal=True, key="draw_source", label_visibility="collapsed")
input_col, seen_col, answer_col = st.columns([1.15, 0.85, 1.3], gap="medium")

image = None                     # the drawing or the decoded upload, whatever its size
problem = None                   # why an upload could not be read
with input_col:
    if source == SOURCES[0]:
        stroke = st.slider("Stroke width", 6, 40, 20, key="draw_stroke",
                           help="MNIST's strokes are about a tenth of the character's height.")
        result = st_canvas(
            stroke_width=stroke, stroke_color="#FFFFFF", background_color="#000000",
            update_streamlit=True, height=CANVAS_SIZE, width=CANVAS_SIZE, drawing_mode="freedraw",
            return_image_data=True, key=f"draw_canvas_{st.session_state.get('draw_canvas_version', 0)}")
        st.button("Clear", icon="🧹", on_click=_clear_canvas, key="draw_clear",
                  help="Start again on an empty canvas (hover over the canvas for undo and redo).")
        image = result.image_data
    else:
        upload = st.file_uploader("A photo or scan of one character, dark on light or light on dark",
                                  type=UPLOAD_TYPES, key="draw_upload")
        if upload is not None:
            try:
                image = drawing.read_image_bytes(upload.getvalue())
            except drawing.ImageProblem as error:
                problem = str(error)
                st.error(problem, icon="🚫")
            else:
                st.image(image, caption=upload.name, width=CANVAS_SIZE)

image28 = drawing.prepare_drawing(image) if image is not None else None

if image28 is None:
    with answer_col:
        if source == SOURCES[0]:
            st.info("Draw one whole character, filling most of the square: a blank canvas or a "
                    "speck of ink gets no guess.", icon="✍️")
        elif image is not None:
            st.info("No character found in this picture (a blank page or a speck of ink gets no guess): "
                    "crop it close to one character, dark on light or light on dark.", icon="🔍")
        elif not problem:
            st.info("Upload a picture of one character, cropped close to it.", icon="📷")
    st.stop()

probabilities = drawing.predict_drawing(model, run.normalization, image28)
top = int(probabilities.argmax())
confidence = float(probabilities[top])

with seen_col:
    st.markdown("**What the model sees**")
    st.image(charts.enlarge(image28, 7), caption="28x28 pixels: cropped, scaled to 20 px, centred")

with answer_col:
    st.markdown("**Prediction**")
    st.markdown(_big_label(class_names[top], is_kana, confidence), unsafe_allow_html=True)
    runners_up = probabilities.argsort(descending=True)[1:3].tolist()
    st.caption("Next: " + ", ".join(f"{class_names[i]} ({float(probabilities[i]):.0%})" for i in runners_up))
    if confidence < 0.5:
        st.caption("Less than even odds: the model hesitates between several classes.")

    dataset = try_load_run_dataset(run)
    if dataset is not None:
        picks = data.examples_per_class(dataset.train_labels, EXAMPLES_SHOWN, len(class_names), seed=0)[top]
        if picks:
            st.image(image_strip(dataset.train_images[picks], factor=2),
                     caption=f"Real examples of {class_names[top]} from the training set")

chart_col, saliency_col = st.columns([2, 1], gap="medium")
with chart_col:
    st.markdown("**Probability of every class**")
    st.plotly_chart(charts.probability_bars(probabilities, class_names, highlight=top),
                    config={"displayModeBar": False}, key="draw_probabilities")
with saliency_col:
    st.markdown("**Which strokes drove the decision**")
    heat = drawing.saliency(model, run.normalization, image28, top)
    st.image(charts.overlay(image28, heat, factor=7),
             caption=f"Red: the pixels whose change moves the score of {class_names[top]} most "
                     "(SmoothGrad saliency). Grey: the character as the model sees it.")
