"""Compare: every saved run in one sortable table, then chosen runs' curves overlaid
and their per-class test accuracy side by side."""

import streamlit as st

from kmnist_core import charts, compare
from pages.helpers.credits import runs_credits
from pages.helpers.loaders import evaluation_on_test_set
from pages.helpers.navigation import use_app_navigation
from pages.helpers.run_picker import run_label, saved_runs

use_app_navigation()

st.title(":material/bar_chart: Compare runs")

found = saved_runs()
if not found:
    st.info("No saved runs yet: train one on the Train page, or start a sweep.")
    st.stop()

table = compare.runs_table(found)
left, right = st.columns(2)
datasets = left.multiselect("Datasets", sorted(table["dataset"].unique()), default=sorted(table["dataset"].unique()),
                            key="compare_datasets")
archs = right.multiselect("Architectures", sorted(table["arch"].unique()), default=sorted(table["arch"].unique()),
                          key="compare_archs")
keep = table["dataset"].isin(datasets) & table["arch"].isin(archs)
shown = [run for run, kept in zip(found, keep) if kept]

st.dataframe(
    table[keep], hide_index=True, placeholder="—",
    column_order=("name", "status", "dataset", "arch", "parameters", "epochs", "best_val_accuracy", "test_accuracy",
                  "test_loss", "train_seconds", "images_per_second", "batch_size", "lr", "device", "created", "group"),
    column_config={
        "parameters": st.column_config.NumberColumn("parameters", format="localized"),
        "best_val_accuracy": st.column_config.NumberColumn("best val accuracy", format="percent"),
        "test_accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
        "test_loss": st.column_config.NumberColumn("test loss", format="%.4f"),
        "train_seconds": st.column_config.NumberColumn("training time", format="%.1f s"),
        "images_per_second": st.column_config.NumberColumn("images/s", format="%.0f"),
        "batch_size": st.column_config.NumberColumn("batch size"),
    })
runs_credits(shown)
st.download_button("Download as CSV", compare.runs_csv(shown), file_name="kmnist-runs.csv", mime="text/csv",
                   icon=":material/download:")

st.subheader("Side by side")
by_id = {run.id: run for run in shown}
chosen_ids = st.multiselect("Runs to compare", list(by_id), default=list(by_id)[:2],
                            format_func=lambda run_id: run_label(by_id[run_id]), key="compare_runs")
chosen = [by_id[run_id] for run_id in chosen_ids]
if not chosen:
    st.stop()

x = st.radio("Against", compare.CURVE_AXES, horizontal=True, key="compare_axis",
             format_func=lambda axis: "epoch" if axis == "epoch" else "wall time (s)")
accuracy_col, loss_col = st.columns(2)
accuracy_col.plotly_chart(charts.compare_curves(compare.curves(chosen, "val_accuracy", x), "val_accuracy", x))
loss_col.plotly_chart(charts.compare_curves(compare.curves(chosen, "val_loss", x), "val_loss", x))

st.markdown("**Per-class test accuracy**")
# Runs can only share a chart when they share classes: one chart per set of class names.
by_classes: dict[tuple, dict[str, list[float]]] = {}
for run, label in zip(chosen, compare.run_labels(chosen)):
    report = evaluation_on_test_set(run) if run.has_weights else None
    if report is not None:
        by_classes.setdefault(tuple(run.class_names), {})[label] = report.recall.tolist()
for class_names, accuracies in by_classes.items():
    st.plotly_chart(charts.per_class_bars(accuracies, list(class_names)))
