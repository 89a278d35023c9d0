"""Draw: sketch one character (or upload a photo of one) and see what a trained model thinks.

A view only: framing, preprocessing, prediction, the "not one of my classes" check and
saliency are kmnist_core's; the canvas is pages/canvas. Laid out to fit a classroom
projector (1024x768, 1280x720): the canvas, what the model sees and its answer share
one row near the top.
"""

from __future__ import annotations

import html

import streamlit as st

from kmnist_core import charts, data, drawing, framing, novelty, runs
from pages.canvas import draw_canvas
from pages.helpers import gallery_view, projector
from pages.helpers.credits import run_credit
from pages.helpers.first_model import offer_kmnist_model
from pages.helpers.formatting import literal
from pages.helpers.loaders import data_root_of, try_load_model
from pages.helpers.navigation import use_app_navigation
from pages.helpers.pictures import image_strip
from pages.helpers.run_picker import pick_run, usable_runs
from pages.helpers import teaching
from pages.helpers.inside import look_inside

use_app_navigation()

SOURCES = ("✏️ Draw", "📷 Upload a photo")
EXAMPLES_SHOWN = 8
SEEN_SCALE = 5          # the 28x28 image shown 140 px wide: beside the canvas even at 1024 px


def _dataset_if_present(run: runs.Run) -> data.RawDataset | None:
    """The run's dataset when it is on this machine, else None, quietly: predicting needs
    no dataset, only the examples strip and the novelty statistics use it."""
    try:
        return data.load_dataset(run.record.dataset.name, data_root_of(run), download=False)
    except data.DatasetUnavailable:
        return None


@st.cache_resource(max_entries=8, show_spinner=False)
def _learnt_framing(dataset_name: str, root: str) -> framing.Framing:
    # Only for a user's own idx folder: the named datasets' framings are known.
    return framing.learn_framing(data.load_dataset(dataset_name, root or None, download=False).train_images)


def _framing_of(run: runs.Run, dataset: data.RawDataset | None) -> framing.Framing:
    name = run.record.dataset.name
    if run.record.framing or name in framing.KNOWN_FRAMINGS or dataset is None:
        return framing.framing_of_record(run.record.framing, name)
    return _learnt_framing(name, data_root_of(run) or "")


@st.cache_resource(max_entries=8, show_spinner="Learning what this model's classes look like (once per model)…")
def _novelty_stats(path: str, mtime: float, dataset_present: bool, _model) -> novelty.NoveltyStats | None:
    """The run's "not one of my classes" statistics: saved beside its weights, else fitted
    now from its training data when that is here."""
    try:
        stats = novelty.load_for_run(path, _model)
    except novelty.NoveltyError:
        stats = None
    if stats is not None or not dataset_present:
        return stats
    run = runs.load_run(path)
    try:
        return novelty.fit_for_run(run, data_root_of(run))
    except (data.DatasetUnavailable, runs.CheckpointError, ValueError):
        return None


def _big_label(name: str, is_kana: bool, confidence: float) -> str:
    if is_kana and len(name.split()) == 2:
        kana, roman = html.escape(name).split()
        headline = (f"<span style='font-size:5rem;line-height:1.05'>{kana}</span>"
                    f"<span style='font-size:2rem;margin-left:0.6rem'>{roman}</span>")
    else:
        size = "5rem" if len(name) <= 3 else "2.4rem"
        headline = f"<span style='font-size:{size};line-height:1.05;font-weight:600'>{html.escape(name)}</span>"
    return (f"<div class='draw-answer'>{headline}</div>"
            f"<div style='font-size:1.1rem;opacity:0.75'>{confidence:.0%} sure</div>")


def _not_sure(name: str, confidence: float) -> str:
    return ("<div class='draw-answer' style='font-size:2.2rem;line-height:1.15;font-weight:600'>"
            "🤔 Not one of my classes?</div>"
            f"<div style='font-size:1.05rem;opacity:0.8'>Closest: {html.escape(name)} ({confidence:.0%} by the "
            "probabilities below)</div>")


@st.fragment
def drawing_and_answer(run: runs.Run, model, dataset: data.RawDataset | None, frame: framing.Framing,
                       source: str, pen: int) -> None:
    """The canvas (or the upload) and everything the model makes of it. A fragment: a stroke
    reruns only this part of the page, not the run listing and the pickers above it, so
    the answer follows the pen sooner."""
    if not run.has_weights:  # deleted since the page drew (by its owner or the teacher): the page falls back
        st.rerun(scope="app")
    dataset_name = run.record.dataset.name
    class_names = run.class_names
    is_kana = run.record.dataset.is_kana
    # The canvas's column gets its full 280 px at 1024 px wide, the sidebar open.
    layout = projector.draw_layout()   # None unless projecting
    input_col, seen_col, answer_col = layout.top if layout else st.columns([1.4, 0.6, 1.0], gap="medium")

    image = None                     # the drawing or the decoded upload, whatever its size
    pen_width = None                 # the drawing's pen, in its own pixels; unknown for a photo
    problem = None                   # why an upload could not be read
    with input_col:
        if source == SOURCES[0]:
            drawn = draw_canvas(pen, key="draw_canvas")
            if drawn is not None:
                image, pen_width = drawn.image, drawn.pen
        else:
            upload = st.file_uploader(f"A photo or scan of one character, dark on light or light on dark "
                                      f"(at most {drawing.MAX_UPLOAD_BYTES // 2**20} MB)",
                                      type=sorted(drawing.UPLOAD_FORMATS), key="draw_upload",
                                      help=f"Files over {drawing.MAX_UPLOAD_BYTES // 2**20} MB are refused: "
                                           f"crop the photo to the character, or save it smaller.")
            if upload is not None:
                try:
                    image = drawing.read_image_bytes(upload.getvalue())
                except drawing.ImageProblem as error:
                    problem = str(error)
                    st.error(problem, icon=":material/block:")
                else:
                    st.image(image, caption=literal(upload.name), width=240)

    known = f"This model knows {len(class_names)} classes of {literal(run.record.dataset.display_name)}: " + \
        ", ".join(map(literal, class_names)) + "."
    fashion_note = ("Fashion-MNIST's images are filled silhouettes: fill the shape in, as a solid white area "
                    "(outlines are mostly misread).") if dataset_name == "fashion" else ""

    image28 = drawing.prepare_drawing(image, frame, pen_width=pen_width) if image is not None else None

    if image28 is None:
        with seen_col:
            st.caption(known)
            if fashion_note:
                st.info(fashion_note, icon=":material/checkroom:")
        with answer_col:
            if source == SOURCES[0] and image is not None:
                st.info("That is only a dot or a dash: draw one whole character, filling most of the square.",
                        icon=":material/draw:")
            elif source == SOURCES[0]:
                st.info("Draw one whole character, filling most of the square: a blank canvas or a "
                        "speck of ink gets no guess.", icon=":material/draw:")
            elif image is not None:
                st.info("No character found in this picture (a blank page or a speck of ink gets no guess): "
                        "crop it close to one character, dark on light or light on dark.", icon=":material/search:")
            elif not problem:
                st.info(f"Upload a picture of one character, cropped close to it (at most "
                        f"{drawing.MAX_UPLOAD_BYTES // 2**20} MB; a file marked in red above is too large).",
                        icon=":material/photo_camera:")
        return

    probabilities = drawing.predict_drawing(model, run.normalization, image28)
    top = int(probabilities.argmax())
    confidence = float(probabilities[top])
    stats = _novelty_stats(str(run.path), (run.path / runs.WEIGHTS).stat().st_mtime, dataset is not None, model)
    unsure = stats is not None and bool(stats.flags(model, image28[None, None], run.normalization)[0])

    with seen_col:
        st.markdown("**What the model sees**")
        st.image(charts.enlarge(image28, SEEN_SCALE), caption=f"28x28, framed like {literal(run.record.dataset.display_name)}: {frame.describe()}")

    with answer_col:
        st.markdown("**Prediction**")
        if unsure:
            st.markdown(_not_sure(class_names[top], confidence), unsafe_allow_html=True)
            teaching.explain_flag(run, dataset, top, drawing.small_or_faint(image, image28))
        else:
            st.markdown(_big_label(class_names[top], is_kana, confidence), unsafe_allow_html=True)
            runners_up = probabilities.argsort(descending=True)[1:3].tolist()
            st.caption("Next: " + ", ".join(f"{literal(class_names[i])} ({float(probabilities[i]):.0%})"
                                            for i in runners_up))
            if confidence < 0.5:
                st.caption("Less than even odds: the model hesitates between several classes.")
        if stats is None:
            st.caption("The \"not one of my classes\" check needs this model's training data, which is not here.")
        gallery_view.share_button(run, image28, top)
        if dataset is not None and not unsure:
            picks = data.examples_per_class(dataset.train_labels, EXAMPLES_SHOWN, len(class_names), seed=0)[top]
            if picks:
                st.image(image_strip(dataset.train_images[picks], factor=2),
                         caption=f"Real examples of {literal(class_names[top])} from the training set")

    st.caption(known + (" " + fashion_note if fashion_note else ""))
    chart_col, saliency_col = layout.below if layout else st.columns([2, 1], gap="medium")
    with chart_col:
        st.markdown("**Probability of every class**")
        st.plotly_chart(charts.probability_bars(probabilities, class_names, highlight=top),
                        config={"displayModeBar": False}, key="draw_probabilities")
    with saliency_col:
        st.markdown("**Which strokes drove the decision**")
        heat = drawing.saliency(model, run.normalization, image28, top)
        st.image(charts.overlay(image28, heat, factor=7),
                 caption=f"Red: the ink that raised the score of {literal(class_names[top])} most (SmoothGrad × input). "
                         "Grey: the rest of the drawing as the model sees it.")
    look_inside(run, model, image28, top)


# A projector's screen is small: less of Streamlit's generous padding around this page.
st.markdown("<style>[data-testid='stMainBlockContainer']{padding:3rem 2rem 2rem 2rem}</style>",
            unsafe_allow_html=True)
st.title(":material/edit: Draw a character")
projector.toggle()

choices = usable_runs()
if not choices:
    st.info("There is no trained model yet. Train one, then come back and draw.", icon=":material/model_training:")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
    st.stop()
with st.sidebar:   # out of the drawing row's way: the canvas must fit a projector's screen
    offer_kmnist_model(choices)

model_col, source_col, pen_col = st.columns([1.6, 1, 1], vertical_alignment="bottom")
with model_col:
    run = pick_run("Model", choices, key="draw_run")
with source_col:
    source = st.radio("Input", SOURCES, horizontal=True, key="draw_source", label_visibility="collapsed")
with pen_col:
    pen = st.slider("Pen width", 6, 40, 20, key="draw_stroke", disabled=source != SOURCES[0],
                    help="MNIST's strokes are about a tenth of the character's height.")

model = try_load_model(run)
if model is None:
    st.stop()
dataset = _dataset_if_present(run)

drawing_and_answer(run, model, dataset, _framing_of(run, dataset), source, pen)
teaching.how_to_write(run, dataset)
run_credit(run)
