"""Train: configure a run, launch it as a background job, watch it live, stop it;
or pick a saved run to evaluate, rename or delete."""

import pandas as pd
import streamlit as st

from kmnist_core import charts, data, models, runs
from kmnist_core.config import OPTIMIZERS, SCHEDULES, TrainConfig
from pages.common import STATUS_ICONS, duration, job_manager, when, use_app_navigation

use_app_navigation()

OWN_DATA = "own"
DEFAULTS = TrainConfig()

st.title("🏋️ Train")
manager = job_manager()


@st.cache_data
def parameter_counts() -> dict[str, int]:
    return {name: models.count_parameters(models.build(name)) for name in models.list_models()}


def dataset_label(name: str) -> str:
    return "Your own idx folder…" if name == OWN_DATA else data.DATASETS[name].display_name


def config_form() -> TrainConfig | None:
    """The trainer's settings; the defaults are the one-minute quick demo."""
    left, right = st.columns(2)
    dataset = left.selectbox("Dataset", [*data.DATASETS, OWN_DATA], index=list(data.DATASETS).index(DEFAULTS.dataset),
                             format_func=dataset_label)
    if dataset == OWN_DATA:
        dataset = left.text_input("Folder of MNIST-format idx files",
                                  help="train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                       "t10k-labels-idx1-ubyte (optionally in raw/), and an optional classes.txt")
    elif dataset == "kmnist10k":
        left.caption("⚠️ KMNIST10K is the official KMNIST *test* set split 8,000/2,000 for offline machines: "
                     "its accuracies are not KMNIST accuracies.")
    counts = parameter_counts()
    arch = right.selectbox("Architecture", models.list_models(), index=models.list_models().index(DEFAULTS.arch),
                           format_func=lambda n: f"{n} ({counts[n]:,} parameters) — {models.MODELS[n].description}")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 500, DEFAULTS.epochs)
    batch_size = c2.number_input("Batch size", 1, 8192, DEFAULTS.batch_size)
    lr = c3.number_input("Learning rate", 1e-6, 100.0, DEFAULTS.lr, format="%.4g")
    optimizer = c4.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULTS.optimizer))
    with st.expander("Advanced"):
        a1, a2, a3, a4 = st.columns(4)
        schedule = a1.selectbox("Schedule", SCHEDULES, index=SCHEDULES.index(DEFAULTS.schedule))
        weight_decay = a2.number_input("Weight decay", 0.0, 1.0, DEFAULTS.weight_decay, format="%.2g")
        label_smoothing = a3.number_input("Label smoothing", 0.0, 0.99, DEFAULTS.label_smoothing)
        augment = a4.slider("Augmentation strength", 0.0, 1.0, DEFAULTS.augment,
                            help="random rotation up to 15°, shift up to 3 px and scale up to 15%, times this")
        flip = a4.checkbox("Random horizontal flips", DEFAULTS.flip,
                           help="for clothing; characters and digits are not symmetric")
        b1, b2, b3, b4 = st.columns(4)
        dropout = None
        if models.MODELS[arch].has_dropout and b1.checkbox("Set dropout", help="otherwise the preset's own"):
            dropout = b1.slider("Dropout", 0.0, 0.9, 0.2)
        width = b2.number_input("Width multiplier", 0.1, 8.0, DEFAULTS.width, help="1 = the preset as published")
        val_fraction = b3.slider("Validation fraction", 0.0, 0.5, DEFAULTS.val_fraction)
        seed = b4.number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed)
        d1, d2 = st.columns(2)
        device = d1.selectbox("Device", ["auto", "cpu", "cuda", "mps"],
                              help="auto = CUDA GPU, then Apple MPS, then the CPU")
        name = d2.text_input("Run name (optional)")
    config = TrainConfig(dataset=dataset, arch=arch, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                         optimizer=optimizer, schedule=schedule, weight_decay=float(weight_decay),
                         label_smoothing=float(label_smoothing), augment=float(augment), flip=flip, dropout=dropout,
                         width=float(width), val_fraction=float(val_fraction), seed=int(seed), device=device,
                         name=name)
    try:
        return config.validate()
    except ValueError as error:
        st.error(str(error))
        return None


def start(config: TrainConfig) -> None:
    try:
        data.load_dataset(config.dataset, config.data_root, download=False)
    except data.DatasetUnavailable as error:
        if config.dataset in data.DATASETS and data.DATASETS[config.dataset].torchvision_class is not None:
            st.session_state["download_offer"] = (config, str(error))
        else:
            st.error(str(error))
        return
    submit(config)


def submit(config: TrainConfig) -> None:
    try:
        job = manager.submit(config)
    except ValueError as error:
        st.error(str(error))
        return
    st.session_state["watched_job"] = job.id
    st.session_state.pop("download_offer", None)


config = config_form()
if st.button("Start training", type="primary", disabled=config is None):
    start(config)

offer = st.session_state.get("download_offer")
if offer:
    config, message = offer
    st.warning(message, icon="📂")
    if st.button(f"Download {data.DATASETS[config.dataset].display_name} and train"):
        submit(config)  # the job downloads first (through torchvision, with a timeout), then trains
        st.rerun()


CHART_SECONDS = 5.0  # the chart is the costly part to redraw: the browser shares the CPU with training


def show_progress(job, live: bool) -> None:
    """Status, queue place, progress bar, Stop, and the outcome once it has ended."""
    snap = job.snapshot()
    c = snap.config
    dataset = dataset_label(c.dataset) if c.dataset in data.DATASETS else c.dataset
    st.markdown(f"**{STATUS_ICONS.get(snap.status, '')} {job.id}** — {c.arch} on {dataset}, "
                f"{c.epochs} epochs, batch {c.batch_size}, lr {c.lr:g} · {snap.status}"
                + (f" · {snap.phase}" if snap.status == "running" and snap.phase != "training" else ""))
    position = manager.queue_position(job)
    if position:
        st.info(f"Waiting for the {snap.device} to be free: place {position} in the queue.")
    if snap.steps_total:
        eta = snap.eta_seconds
        st.progress(snap.progress, text=f"epoch {snap.epoch}/{snap.epochs_total} · step {snap.step}/{snap.steps_total} · "
                    f"{snap.images_per_second:,.0f} images/s · "
                    + (f"ETA {duration(eta)}" if snap.status == "running" and eta is not None else duration(snap.elapsed)))
    if snap.status in ("queued", "running"):
        st.button("Stop", key=f"stop-{job.id}", on_click=manager.stop, args=(job.id,),
                  help="ends the run within a second and keeps its best checkpoint")
    if snap.status == "finished":
        m1, m2, m3 = st.columns(3)
        m1.metric("Test accuracy", f"{snap.test.accuracy:.2%}")
        m2.metric("Test loss", f"{snap.test.loss:.4f}")
        m3.metric("Time taken", duration(snap.ended - snap.started))
    elif snap.status == "failed":
        st.error(f"The run failed: {snap.message}")
    elif snap.status in ("stopped", "cancelled"):
        st.warning(f"The run was {snap.status}: {snap.message}. "
                   + ("Its best checkpoint so far is saved." if snap.status == "stopped" else ""))
    if snap.run_id and snap.status in ("finished", "stopped"):
        st.session_state["selected_run"] = snap.run_id
        st.page_link("pages/evaluate.py", label="Evaluate this run →", icon="🔎")
    if live and not snap.active:
        st.rerun()  # a whole-page rerun ends the timed refreshes, draws the final curves and lists the run


def show_curves(job) -> None:
    snap = job.snapshot()
    if snap.steps or snap.history:
        st.plotly_chart(charts.training_curves(snap.history, snap.steps, snap.steps_total // max(snap.epochs_total, 1),
                                               snap.steps_total), key=f"curves-{job.id}")


def live_panel() -> None:
    jobs = manager.jobs()
    if not jobs:
        return
    st.subheader("Training jobs")
    ids = [j.id for j in jobs]
    watched = st.session_state.get("watched_job")
    # Labels must not change while a job runs (a changed option list resets the widget).
    chosen = st.selectbox("Job", ids, index=ids.index(watched) if watched in ids else 0,
                          format_func=lambda i: f"{i}: {manager.get(i).config.arch} on {manager.get(i).config.dataset}")
    st.session_state["watched_job"] = chosen
    job = manager.get(chosen)
    # Only these two parts refresh while the job is active, each at its own pace; nothing does afterwards.
    live = job.is_active()
    if live:
        # The watching browser draws on the cores that train. Measured in Chromium: the "Running..."
        # indicator, blinking on every refresh, took a quarter of its CPU time, and the progress
        # bar's glide to each new value a fifth.
        st.html("<style>[data-testid='stStatusWidget'] {display: none} "
                "[data-testid='stProgress'] * {transition: none !important}</style>")
    st.fragment(show_progress, run_every=1.0 if live else None)(job, live)
    st.fragment(show_curves, run_every=CHART_SECONDS if live else None)(job)


live_panel()


def saved_runs_table() -> None:
    st.subheader("Saved runs")
    found, problems = runs.scan_runs()
    for problem in problems:
        st.caption(f"⚠️ skipped: {problem}")
    if not found:
        st.info("No saved runs yet: start one above.")
        return
    table = pd.DataFrame([{
        "run": ("📦 " if r.shipped else "") + r.name,
        "dataset": r.record.dataset.display_name,
        "architecture": r.config.arch,
        "date": when(r.record.created),
        "epochs": len(r.record.history),
        "best val": r.record.best_val_accuracy,
        "test": r.test_accuracy,
        "status": f"{STATUS_ICONS.get(r.status, '')} {r.status}",
    } for r in found])
    selection = st.dataframe(
        table, hide_index=True, on_select="rerun", selection_mode="single-row", key="runs_table",
        column_config={"best val": st.column_config.NumberColumn(format="percent"),
                       "test": st.column_config.NumberColumn(format="percent")})
    rows = selection.selection.rows
    if not rows:
        st.caption("Select a run to evaluate, rename or delete it.")
        return
    run = found[rows[0]]
    st.session_state["selected_run"] = run.id
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    c1.page_link("pages/evaluate.py", label=f"Evaluate {run.name} →", icon="🔎")
    c1.page_link("pages/draw.py", label="Draw with it →", icon="✏️")
    new_name = c2.text_input("Name", value=run.name, key=f"name-{run.id}")
    if c2.button("Rename", key=f"rename-{run.id}") and new_name.strip():
        try:
            runs.rename_run(run, new_name)
        except runs.CheckpointError as error:
            st.error(str(error))
        else:
            st.rerun()
    if run.shipped:
        c3.caption("Shipped model: cannot be deleted.")
    elif c3.button("Delete…", key=f"delete-{run.id}"):
        confirm_delete(run)


@st.dialog("Delete this run?")
def confirm_delete(run: runs.Run) -> None:
    st.write(f"**{run.name}** ({run.config.arch} on {run.record.dataset.display_name}) "
             "and its weights will be removed from disk.")
    if st.button("Delete", type="primary"):
        try:
            runs.delete_run(run)
        except (runs.CheckpointError, OSError) as error:
            st.error(str(error))
            return
        st.session_state.pop("selected_run", None)
        st.rerun()


saved_runs_table()
