"""Sweep: train once per value of one hyperparameter (and per seed) in the background,
then read the metric against the value as mean ± std over the repeats, as the reports did."""

import streamlit as st

from kmnist_core import access, charts, data, models, runs, sweeps
from kmnist_core.config import TrainConfig
from pages.helpers.background_jobs import STATUS_ICONS, job_manager, watch_jobs
from pages.helpers.buttons import pressed
from pages.helpers.formatting import literal
from pages.helpers.identity import current_actor
from pages.helpers.navigation import use_app_navigation
from pages.helpers.run_picker import PREFERRED_DATASET
from pages.helpers.settings import FIELDS, setting_input

use_app_navigation()

EXAMPLE_VALUES = {"lr": "1e-3, 3e-3, 1e-2", "batch_size": "32, 64, 128", "weight_decay": "0, 1e-4, 1e-3",
                  "dropout": "0, 0.2, 0.5", "width": "0.5, 1, 2", "label_smoothing": "0, 0.1", "augment": "0, 0.5",
                  "epochs": "1, 2, 4", "arch": "mlp, lenet, cnn_small", "optimizer": "adam, adamw, sgd",
                  "schedule": "none, onecycle, cosine", "val_fraction": "0.05, 0.1, 0.2"}

st.title(":material/science: Sweep a hyperparameter")
manager = job_manager()
actor = current_actor()

st.subheader("New sweep")
left, right = st.columns(2)
dataset = setting_input(left, "dataset", key="sweep_dataset", options=list(data.DATASETS),
                        value=PREFERRED_DATASET, format_func=lambda name: data.DATASETS[name].display_name)
folder = left.text_input("…or the path of a folder of idx files", placeholder="/path/to/my-dataset", key="sweep_folder")
arch = setting_input(right, "arch", key="sweep_arch", value="lenet", options=models.list_models(),
                     format_func=lambda name: f"{name}: {models.MODELS[name].description}")
with right.expander("Base settings: every run starts from these"):
    a, b = st.columns(2)
    base_values = {name: setting_input(column, name, key=f"sweep_{name}")
                   for column, name in ((a, "epochs"), (b, "batch_size"), (a, "lr"), (b, "weight_decay"),
                                        (a, "optimizer"), (b, "schedule"))}

param_col, values_col, repeats_col = st.columns([1, 2, 1])
param = param_col.selectbox("Hyperparameter to sweep", sweeps.SWEEPABLE, key="sweep_param",
                            format_func=lambda name: FIELDS[name].metadata["label"])
# One text box per hyperparameter, so switching back finds what was typed there.
text = values_col.text_input("Values, separated by commas", EXAMPLE_VALUES[param], key=f"sweep_values_{param}")
repeats = repeats_col.number_input("Repeats (seeds)", 1, 10, 1, key="sweep_repeats",
                                   help="Each value is trained this many times with seeds 0, 1, …; "
                                        "the reports used 3 and gave mean ± std.")

try:
    base = TrainConfig(dataset=folder.strip() or dataset, arch=arch, **base_values).validate()
    configs = sweeps.expand(base, param, sweeps.parse_values(base, param, text), int(repeats))
    if folder.strip():  # a wrong folder is said once here, not as a failure of every run; its files are
        # read and checked (once: the dataset is cached), so a folder of garbage files is refused too.
        data.check_split(data.load_dataset(folder.strip(), download=False), base.val_fraction)
except (ValueError, data.DatasetUnavailable) as error:
    st.error(str(error))
else:
    if pressed(st, f"Start sweep: {len(configs)} runs", type="primary", key="start_sweep"):
        try:
            manager.submit_many(configs, actor)
            st.session_state["sweep_group"] = configs[0].group
        except (ValueError, access.NotAllowed) as error:
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


def show_progress(jobs: list) -> None:
    state = sweeps.progress(jobs)
    for column, (status, count) in zip(st.columns(len(state.counts)), state.counts.items()):
        column.metric(f"{STATUS_ICONS.get(status, '')} {status}", count)
    for job in jobs:
        if job.status == "running":
            st.progress(job.progress, text=f"{literal(job.config.name)}: epoch {job.epoch}/{job.epochs_total}")
    for reason, names in state.failures:  # one box per reason, however many runs it stopped
        who = f"All {len(names)} runs" if len(names) == len(jobs) > 1 else ", ".join(map(literal, names))
        st.error(f"{who} failed: {literal(reason)}")


def sweep_results(jobs: list) -> None:
    if jobs:
        show_progress(jobs)
    mine = all(access.may(actor, job.owner) for job in jobs if job.active)  # the engine refuses others too
    if any(job.active for job in jobs) and mine:
        st.button("Stop sweep", icon=":material/stop_circle:", key="stop_sweep", on_click=manager.stop_group,
                  args=(group, actor), help="Running and queued runs stop; finished runs stay.")
    # Each refresh scans the runs again: scan_runs re-reads only the records that changed.
    rows = sweeps.sweep_rows(runs.scan_runs()[0], group, metric)
    if any(row.mean is not None for row in rows):
        st.plotly_chart(charts.sweep_errorbars(rows, swept, metric))
        st.dataframe(sweeps.sweep_table(rows, swept, metric), hide_index=True)
    else:
        st.info("No run of this sweep has finished yet.")


watch_jobs([job for job in manager.jobs() if job.config.group == group], sweep_results)
