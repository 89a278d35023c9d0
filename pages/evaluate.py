"""Evaluate: what a trained model gets right and wrong on the test set."""

import numpy as np
import pandas as pd
import streamlit as st

from kmnist_core import charts, data, models
from pages.helpers.credits import run_credit
from pages.helpers.first_model import offer_kmnist_model
from pages.helpers.formatting import duration, literal
from pages.helpers.loaders import evaluation_on_test_set, try_load_model, try_load_run_dataset
from pages.helpers.navigation import use_app_navigation
from pages.helpers.pictures import image_strip
from pages.helpers.run_picker import pick_run, usable_runs

use_app_navigation()

st.title(":material/query_stats: Evaluate")

choices = usable_runs()
offer_kmnist_model(choices)
run = pick_run("Run", choices, key="evaluate_run")
if run is None:
    st.info("There is no trained model yet.")
    st.page_link("pages/train.py", label="Train one →", icon=":material/model_training:")
    st.stop()

record = run.record
info = data.DATASETS.get(record.dataset.name)
run_credit(run)
if run.caveat:
    st.warning(f"Not a finished model: {run.caveat}.", icon=":material/stop_circle:")


def validation_metric(column) -> None:
    """The best epoch's validation accuracy: the figure the epoch was chosen by."""
    if record.best_val_accuracy is None:
        column.metric("Validation accuracy", "—", help="This run was never validated.")
        return
    column.metric("Validation accuracy", f"{record.best_val_accuracy:.2%}",
                  help=f"Epoch {record.best_epoch} of {len(record.history)}, the best on the "
                       + (f"{record.dataset.val_size:,} " if record.dataset.val_size else "")
                       + "images held out of the training set; the saved weights are that epoch's.")


model = try_load_model(run)
report = evaluation_on_test_set(run) if model is not None else None
if report is None:  # the reason is shown above; what run.json recorded is still worth showing
    left, right = st.columns(2)
    validation_metric(left)
    if record.test is not None:
        right.metric("Test accuracy (recorded at the end of training)", f"{record.test.accuracy:.2%}")
    if info is not None and info.test_set_note:
        st.caption(info.test_set_note)
    if record.history:
        st.plotly_chart(charts.training_curves(record.history), key="eval_curves")
    st.stop()
dataset = try_load_run_dataset(run)
names = report.class_names

if run.shipped:
    st.caption("📦 A model shipped with KMNIST Lab.")
if info is not None and info.warning:
    st.caption(f"⚠️ {info.warning}")
m1, m2, m3, m4, m5 = st.columns(5)
validation_metric(m1)
m2.metric("Test accuracy", f"{report.accuracy:.2%}",
          help="The official test set, scored with the saved weights; never used to choose them.")
m3.metric("Test loss", f"{report.loss:.4f}")
m4.metric("Parameters", f"{record.model.parameters:,}")
trained = record.timings.train_seconds if record.timings is not None else None
# "11 min 23 s" did not fit a fifth of a 1280 px page in the metric's large type: minutes to one decimal.
m5.metric("Training time", duration(trained) if trained is None or trained < 60 else f"{trained / 60:.1f} min",
          help=f"{duration(trained)} of training" if trained is not None else None)
if info is not None and info.test_set_note:
    st.caption(info.test_set_note)
st.caption(f"{literal(record.dataset.display_name)} · {record.config.arch} — {record.model.description} · "
           f"{len(record.history)} epochs · {len(report.labels):,} test images · trained on {record.device or '?'} · "
           f"status {run.status}")

if record.history:
    st.subheader("Training curves")
    st.plotly_chart(charts.training_curves(record.history), key="eval_curves")

st.subheader("Confusion matrix")
normalized = st.toggle("Row-normalised (share of each true class)", value=False, key="evaluate_normalized")
st.plotly_chart(charts.confusion_heatmap(report.confusion, names, normalized), key="confusion")

st.subheader("Most-confused pairs")
pairs = report.confused_pairs(8)
if not pairs:
    st.success("No confusions at all on the test set.")
for rank, pair in enumerate(pairs, 1):
    a, b = names[pair.a], names[pair.b]
    st.markdown(f"**{rank}. {literal(a)} ↔ {literal(b)}** — {pair.describe([literal(n) for n in names])}")
    if dataset is not None:
        left, right = st.columns(2)
        for column, true, predicted in ((left, pair.a, pair.b), (right, pair.b, pair.a)):
            examples = report.examples_of(true, predicted, 6)
            if examples:
                column.image(image_strip(dataset.test_images[examples], factor=2),
                             caption=f"{literal(names[true])} predicted as {literal(names[predicted])}")

st.subheader("Most confident mistakes")
if dataset is not None:
    mistakes = report.confident_mistakes(16)
    for start in range(0, len(mistakes), 8):
        for column, mistake in zip(st.columns(8), mistakes[start:start + 8]):
            column.image(charts.enlarge(dataset.test_images[mistake.index], 3))
            column.caption(f"#{mistake.index}: true **{literal(names[mistake.true])}**, predicted "
                           f"**{literal(names[mistake.predicted])}** "
                           f"({mistake.confidence:.0%}; true class {mistake.probabilities[mistake.true]:.0%})")

st.subheader("Per-class metrics")
st.dataframe(pd.DataFrame({"class": names, "precision": report.precision, "recall": report.recall,
                           "F1": report.f1, "test images": report.support}),
             hide_index=True, column_config={k: st.column_config.NumberColumn(format="%.3f")
                                             for k in ("precision", "recall", "F1")})

st.subheader("Random test predictions")
if dataset is not None:
    if st.button("Another sample"):
        st.session_state["sample_seed"] = st.session_state.get("sample_seed", 0) + 1
    picks = np.random.default_rng(st.session_state.get("sample_seed", 0)).choice(len(report.labels), 16, replace=False)
    for start in range(0, 16, 8):
        for column, index in zip(st.columns(8), picks[start:start + 8]):
            right = report.predictions[index] == report.labels[index]
            column.image(charts.enlarge(dataset.test_images[index], 3))
            column.caption(f"{'✅' if right else '❌'} {literal(names[report.predictions[index]])} "
                           f"{report.probabilities[index].max():.0%}"
                           + ("" if right else f" (is {literal(names[report.labels[index]])})"))

with st.expander("Model summary (per layer)"):
    rows = models.summarize(model)
    st.dataframe(pd.DataFrame([{"layer": r.name, "type": r.kind, "output shape": str(r.output_shape),
                                "parameters": r.parameters} for r in rows]), hide_index=True)
    st.caption(f"{sum(r.parameters for r in rows):,} parameters in all.")
