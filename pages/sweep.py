"""Sweep: train once per value of one hyperparameter (and per seed) in the background,
then read the metric against the value as mean ± std over the repeats, as the reports did."""

import dataclasses
from collections import Counter

import streamlit as st

from kmnist_core import charts, data, models, runs, sweeps
from kmnist_core.config import OPTIMIZERS, SCHEDULES, TrainConfig
from pages.common import STATUS_ICONS, job_manager, use_app_navigation

use_app_navigation()

REFRESH_SECONDS = 1.5
EXAMPLE_VALUES = {"lr": "1e-3, 3e-3, 1e-2", "batch_size": "32, 64, 128", "weight_decay": "0, 1e-4, 1e-3",
                  "dropout": "0, 0.2, 0.5", "width": "0.5, 1, 2", "label_smoothing": "0, 0.1", "augment": "0, 0.5",
                  "epochs": "1, 2, 4", "arch": "mlp, lenet, cnn_small", "optimizer": "adam, adamw, sgd",
                  "schedule": "none, onecycle, cosine", "val_fraction": "0.05, 0.1, 0.2"}

st.title("🧪 Sweep a hyperparameter")
manager = job_manager()
defaults = TrainConfig()

st.subheader("New sweep")
left, right = st.columns(2)
dataset = left.selectbox("Dataset", list(data.DATASETS), key="sweep_dataset",
                         format_func=lambda name: data.DATASETS[name].display_name)
folder = left.text_input("…or the path of a folder of idx files", placeholder="/path/to/my-dataset")
arch = right.selectbox("Architecture", models.list_models(), index=models.list_models().index("lenet"), key="sweep_arch",
                       format_func=lambda name: f"{name}: {models.MODELS[name].description}")
with right.expander("Base settings: every run starts from these"):
    a, b = st.columns(2)
    epochs = a.number_input("Epochs", 1, 100, defaults.epochs, key="sweep_epochs")
    batch_size = b.number_input("Batch size", 1, 4096, defaults.batch_size)
    lr = a.number_input("Learning rate", 1e-6, 10.0, defaults.lr, format="%g", step=1e-4)
    weight_decay = b.number_input("Weight decay", 0.0, 1.0, defaults.weight_decay, format="%g", step=1e-4)
    optimizer = a.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(defaults.optimizer))
    schedule = b.selectbox("Schedule", SCHEDULES, index=SCHEDULES.index(defaults.schedule))

param_col, values_col, repeats_col = st.columns([1, 2, 1])
param = param_col.selectbox("Hyperparameter to sweep", sweeps.SWEEPABLE, key="sweep_param")
# One text box per hyperparameter, so switching back finds what was typed there.
text = values_col.text_input("Values, separated by commas", EXAMPLE_VALUES[param], key=f"sweep_values_{param}")
repeats = repeats_col.number_input("Repeats (seeds)", 1, 10, 1, key="sweep_repeats",
                                   help="Each value is trained this many times with seeds 0, 1, …; "
                                        "the reports used 3 and gave mean ± std.")

base = dataclasses.replace(defaults, dataset=folder.strip() or dataset, arch=arch, epochs=int(epochs),
                           batch_size=int(batch_size), lr=lr, weight_decay=weight_decay, optimizer=optimizer,
                           schedule=schedule)
try:
    configs = sweeps.expand(base, param, sweeps.parse_values(base, param, text), int(repeats))
except ValueError as error:
    st.error(str(error))
else:
    if st.button(f"Start sweep: {len(configs)} runs", type="primary", key="start_sweep"):
        try:
            manager.submit_many(configs)
            st.session_state["sweep_group"] = configs[0].group
        except ValueError as error:
            st.error(str(error))

st.subheader("Results")
saved, _ = runs.scan_runs()
# This process's sweeps (the newest first, some not yet on disk), then those of earlier sessions.
groups = [group for group in dict.fromkeys([job.config.group for job in manager.jobs()] + sweeps.sweep_groups(saved))
          if sweeps.swept_param(group)]
if not groups:
    st.info("No sweeps yet: start one above, or from a terminal with `python -m kmnist_core sweep`.")
    st.stop()
group = st.selectbox("Sweep", groups, key="sweep_group")
swept = sweeps.swept_param(group)
metric = st.selectbox("Metric", sweeps.METRICS, key="sweep_metric")


def group_jobs() -> list:
    return [job.snapshot() for job in manager.jobs() if job.config.group == group]


def show_progress(jobs: list) -> None:
    counts = Counter(job.status for job in jobs)
    columns = st.columns(4)
    for column, status in zip(columns, ("queued", "running", "finished")):
        column.metric(f"{STATUS_ICONS[status]} {status}", counts[status])
    columns[3].metric("⏹️ ended early", len(jobs) - sum(counts[s] for s in ("queued", "running", "finished")))
    for job in jobs:
        if job.status == "running":
            st.progress(job.progress, text=f"{job.config.name}: epoch {job.epoch}/{job.epochs_total}")
        elif job.status == "failed":
            st.error(f"{job.config.name}: {job.message}")


timer_on = any(job.active for job in group_jobs())


@st.fragment(run_every=REFRESH_SECONDS if timer_on else None)
def sweep_results() -> None:
    jobs = group_jobs()
    active = any(job.active for job in jobs)
    if jobs:
        show_progress(jobs)
    if active and st.button("Stop sweep", icon="⏹️", key="stop_sweep",
                            help="Running and queued runs stop; finished runs stay."):
        manager.stop_group(group)
    rows = sweeps.sweep_rows(runs.scan_runs()[0], group, metric)
    if any(row.mean is not None for row in rows):
        st.plotly_chart(charts.sweep_errorbars(rows, swept, metric))
        st.dataframe(sweeps.sweep_table(rows, swept, metric), hide_index=True)
    else:
        st.info("No run of this sweep has finished yet.")
    if timer_on and not active:
        st.rerun()  # the whole page again, to redraw this fragment without its timer


sweep_results()
