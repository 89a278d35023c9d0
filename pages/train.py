"""Train: configure a run, launch it as a background job, watch it live, stop it;
or pick a saved run to evaluate, rename or delete."""

import zlib

import pandas as pd
import streamlit as st

from kmnist_core import access, charts, data, models, runs
from kmnist_core.config import DEVICES, TrainConfig
from pages.helpers import projector
from pages.helpers.background_jobs import STATUS_ICONS, job_manager, watch_jobs
from pages.helpers.buttons import pressed
from pages.helpers.credits import runs_credits
from pages.helpers.formatting import duration, literal, when
from pages.helpers.identity import current_actor
from pages.helpers.live_updates import open_pages_note
from pages.helpers.navigation import use_app_navigation
from pages.helpers.run_picker import PREFERRED_DATASET, SELECTED_RUN, saved_runs, select_run
from pages.helpers.settings import setting_input

use_app_navigation()

OWN_DATA = "own"
JOB_PICKER = "train_job"  # the live panel's select box: its state is the watched job
DEFAULTS = TrainConfig()
CHART_SECONDS = 5.0  # the chart is the costly part to redraw: the browser shares the CPU with training

st.title(":material/model_training: Train")
projector.toggle()
live_area = projector.above_the_fold()  # projecting: the live jobs go first, above the form
manager = job_manager()
actor = current_actor()


@st.cache_data
def parameter_counts() -> dict[str, int]:
    return {name: models.count_parameters(models.build(name)) for name in models.list_models()}


def dataset_label(name: str) -> str:
    return "Your own idx folder…" if name == OWN_DATA else data.DATASETS[name].display_name


def config_form() -> TrainConfig | None:
    """The trainer's settings; the defaults are the one-minute quick demo."""
    left, right = st.columns(2)
    dataset = setting_input(left, "dataset", key="train_dataset", options=[*data.DATASETS, OWN_DATA],
                            value=PREFERRED_DATASET, format_func=dataset_label)
    if dataset == OWN_DATA:
        dataset = left.text_input("Folder of MNIST-format idx files", key="train_folder",
                                  help="train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                       "t10k-labels-idx1-ubyte (optionally in raw/), and an optional classes.txt")
    elif data.DATASETS[dataset].warning:
        left.caption(f"⚠️ {data.DATASETS[dataset].warning}")
    counts = parameter_counts()
    arch = setting_input(right, "arch", key="train_arch", options=models.list_models(),
                         format_func=lambda n: f"{n} ({counts[n]:,} parameters) — {models.MODELS[n].description}")
    c1, c2, c3, c4 = st.columns(4)
    values = dict(dataset=dataset, arch=arch,
                  epochs=setting_input(c1, "epochs", key="train_epochs"),
                  batch_size=setting_input(c2, "batch_size", key="train_batch_size"),
                  lr=setting_input(c3, "lr", key="train_lr", number_format="%.4g"),
                  optimizer=setting_input(c4, "optimizer", key="train_optimizer"))
    with st.expander("Advanced"):
        a1, a2, a3, a4 = st.columns(4)
        values.update(schedule=setting_input(a1, "schedule", key="train_schedule"),
                      weight_decay=setting_input(a2, "weight_decay", key="train_weight_decay", number_format="%.2g"),
                      label_smoothing=setting_input(a3, "label_smoothing", key="train_label_smoothing"),
                      augment=setting_input(a4, "augment", key="train_augment", slider=True),
                      flip=setting_input(a4, "flip", key="train_flip"))
        b1, b2, b3, b4 = st.columns(4)
        if models.MODELS[arch].has_dropout and b1.checkbox("Set dropout", help="otherwise the preset's own",
                                                           key="train_set_dropout"):
            values["dropout"] = setting_input(b1, "dropout", key="train_dropout", value=0.2, slider=True)
        values.update(width=setting_input(b2, "width", key="train_width"),
                      val_fraction=setting_input(b3, "val_fraction", key="train_val_fraction", slider=True),
                      seed=setting_input(b4, "seed", key="train_seed"))
        d1, d2, d3, d4 = st.columns(4)
        values.update(device=setting_input(d1, "device", key="train_device", options=DEVICES),
                      ema=setting_input(d2, "ema", key="train_ema", number_format="%.4g"),
                      strokes=setting_input(d3, "strokes", key="train_strokes", slider=True),
                      name=setting_input(d4, "name", key="train_name", label="Run name (optional)"))
    try:
        return TrainConfig(**values).validate()
    except ValueError as error:
        st.error(str(error))
        return None


def start(config: TrainConfig) -> None:
    try:
        data.check_split(data.load_dataset(config.dataset, config.data_root, download=False), config.val_fraction)
    except data.DatasetUnavailable as error:
        if config.dataset in data.DATASETS and data.DATASETS[config.dataset].can_download:
            st.session_state["download_offer"] = (config, str(error))
        else:
            st.error(str(error))
        return
    except Exception as error:  # noqa: BLE001 - a damaged dataset can fail in any way: one line
        st.error(f"The dataset {config.dataset} cannot be read: {type(error).__name__}: {error}".splitlines()[0])
        return
    submit(config)


def submit(config: TrainConfig) -> None:
    try:
        job = manager.submit(config, actor)
    except (ValueError, access.NotAllowed) as error:
        st.error(str(error))
        return
    st.session_state[JOB_PICKER] = job.id  # the live panel shows the new job (drawn after this)
    st.session_state.pop("download_offer", None)


config = config_form()
if pressed(st, "Start training", type="primary", disabled=config is None, key="train_start") and config is not None:
    start(config)

offer = st.session_state.get("download_offer")
if offer:
    config, message = offer
    st.warning(message, icon=":material/folder_open:")
    if st.button(f"Download {data.DATASETS[config.dataset].display_name} and train", key="train_download"):
        submit(config)  # the job downloads first (through torchvision, with a timeout), then trains
        st.rerun()


def show_progress(snapshots) -> None:
    """Status, queue place, progress bar, Stop, and the outcome once it has ended."""
    (snap,) = snapshots
    c = snap.config
    dataset = dataset_label(c.dataset) if c.dataset in data.DATASETS else c.dataset
    owner = f" · started by {literal(snap.owner)}" if snap.owner else ""
    st.markdown(f"**{STATUS_ICONS.get(snap.status, '')} {snap.id}** — {c.arch} on {literal(dataset)}, "
                f"{c.epochs} epochs, batch {c.batch_size}, lr {c.lr:g} · {snap.status}"
                + (f" · {snap.phase}" if snap.status == "running" and snap.phase != "training" else "") + owner)
    position = manager.queue_position(snap)
    if position:
        st.info(f"Waiting for the {snap.device} to be free: place {position} in the queue.")
    if snap.steps_total:
        eta = snap.eta_seconds
        st.progress(snap.progress, text=f"epoch {snap.epoch}/{snap.epochs_total} · step {snap.step}/{snap.steps_total} · "
                    f"{snap.images_per_second:,.0f} images/s · "
                    + (f"ETA {duration(eta)}" if snap.status == "running" and eta is not None else duration(snap.elapsed)))
    if snap.active and access.may(actor, snap.owner):  # the engine refuses anyone else too
        st.button("Stop", key=f"stop-{snap.id}", on_click=manager.stop, args=(snap.id, actor),
                  help="ends the run within a second and keeps its best checkpoint")
    if snap.status == "running" and (note := open_pages_note()):
        st.caption(f"{note}: the browsers showing the app share this machine's processor with the training.")
    if snap.status == "finished":
        m1, m2, m3 = st.columns(3)
        m1.metric("Test accuracy", f"{snap.test.accuracy:.2%}")
        m2.metric("Test loss", f"{snap.test.loss:.4f}")
        m3.metric("Time taken", duration(snap.ended - snap.started))
    elif snap.status == "failed":
        st.error(f"The run failed: {literal(snap.message)}")
    elif snap.status == "deleted":
        st.info(f"The run {snap.run_id} was deleted while it trained: nothing of it is kept.")
    elif snap.status == "cancelled":
        st.warning(f"The run was cancelled: {literal(snap.message)}.")
    elif snap.status == "stopped":
        kept = kept_run(snap)
        st.warning(f"The run was stopped ({literal(snap.message)}). " + what_was_kept(snap, kept))
        if kept is not None:
            # Chosen on the click only: merely shown here, a broken-off run must not become every page's model.
            if st.button("Evaluate what was kept →", icon=":material/query_stats:", key=f"evaluate-{snap.id}", on_click=select_run,
                         args=(snap.run_id,)):
                st.switch_page("pages/evaluate.py")
    if snap.run_id and snap.status == "finished":
        select_run(snap.run_id)  # for the link
        st.page_link("pages/evaluate.py", label="Evaluate this run →", icon=":material/query_stats:")


def kept_run(snap) -> runs.Run | None:
    """The run a stopped job left, if it kept any weights."""
    if not snap.run_id:
        return None
    try:
        run = runs.load_run(snap.run_id, manager.runs_dir)
    except runs.CheckpointError:
        return None
    return run if run.has_weights else None


def what_was_kept(snap, run: runs.Run | None) -> str:
    if run is None:
        return "Nothing was kept."
    record = run.record
    if record.best_epoch is None:
        return (f"Kept: the weights after {snap.step} training steps, never validated: it stopped before its first "
                "epoch ended. The lists mark such a run, and pages open on finished models first.")
    return (f"Kept: the weights of epoch {record.best_epoch} (validation accuracy {record.best_val_accuracy:.2%}), "
            f"the best of the {len(record.history)} epochs it finished; not tested, as only a finished run is.")


def show_curves(snapshots) -> None:
    (snap,) = snapshots
    if snap.steps or snap.history:
        st.plotly_chart(charts.training_curves(snap.history, snap.steps, snap.steps_total // max(snap.epochs_total, 1),
                                               snap.steps_total), key=f"curves-{snap.id}")


def live_panel() -> None:
    jobs = {job.id: job for job in manager.jobs()}
    if not jobs:
        return
    st.subheader("Training jobs")
    ids = list(jobs)
    # The widget's state is the one record of the watched job (submit sets it to a new job): a
    # changing `index` would fight the user's choice. Labels stay the same while a job runs.
    if st.session_state.get(JOB_PICKER) not in ids:  # this user's newest job, else the newest
        st.session_state[JOB_PICKER] = next((i for i in ids if jobs[i].owner == actor.owner), ids[0])
    chosen = st.selectbox("Job", ids, key=JOB_PICKER,
                          format_func=lambda i: f"{i}: {jobs[i].config.arch} on {jobs[i].config.dataset}"
                          + (f" · {jobs[i].owner}" if jobs[i].owner else ""))
    # Only these two views refresh while the job is active, each at its own pace.
    watch_jobs([jobs[chosen]], show_progress, (show_curves, CHART_SECONDS))


with live_area:
    live_panel()


def saved_runs_table() -> None:
    st.subheader("Saved runs")
    found = saved_runs()
    if not found:
        st.info("No saved runs yet: start one above.")
        return
    in_class = any(r.owner for r in found)
    table = pd.DataFrame([{
        "run": ("📦 " if r.shipped else "") + r.display_name,
        "dataset": r.record.dataset.display_name,
        "architecture": r.config.arch,
        "test": r.test_accuracy,
        "best val": r.record.best_val_accuracy,
        "status": f"{STATUS_ICONS.get(r.status, '')} {r.caveat or r.status}",
        "epochs": len(r.record.history),
        "date": when(r.record.created),
        **({"started by": r.owner} if in_class else {}),
    } for r in found])
    # A selection is a row number: keyed by the listed runs, the table starts unselected whenever
    # the list changes (a run deleted or added), rather than selecting whichever run moved there.
    listed = zlib.crc32(" ".join(r.id for r in found).encode())
    selection = st.dataframe(
        table, hide_index=True, on_select="rerun", selection_mode="single-row", key=f"runs_table_{listed:08x}",
        placeholder="—", column_config={"best val": st.column_config.NumberColumn(format="percent"),
                                        "test": st.column_config.NumberColumn(format="percent")})
    runs_credits(found)
    rows = selection.selection.rows
    if not rows:
        st.caption("Select a run to evaluate, rename or delete it.")
        return
    run = found[rows[0]]
    select_run(run.id)
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    c1.page_link("pages/evaluate.py", label=f"Evaluate {literal(run.display_name)} →", icon=":material/query_stats:")
    c1.page_link("pages/draw.py", label="Draw with it →", icon=":material/edit:")
    if run.shipped:
        c2.caption("📦 A model shipped with the app: part of the install, it cannot be renamed or deleted.")
        return
    if not access.may(actor, run.owner):  # the engine refuses anyone else too
        c2.caption(f"Started by {literal(run.owner or access.TEACHER)}: only they or the teacher may rename or "
                   "delete it.")
        return
    if run.status == "running" and c3.button("Mark interrupted", key=f"interrupted-{run.id}",
                                              help="Its training ended with a server that was stopped or "
                                                   "restarted, but it still reads as training."):
        try:
            runs.mark_interrupted(run, actor)
        except (runs.CheckpointError, OSError) as error:
            st.error(str(error))
        else:
            st.rerun()
    new_name = c2.text_input("Name", value=run.name, key=f"name-{run.id}")
    if c2.button("Rename", key=f"rename-{run.id}") and new_name.strip():
        try:
            runs.rename_run(run, new_name, actor)
        except (runs.CheckpointError, OSError) as error:
            st.error(str(error))
        else:
            st.rerun()
    if c3.button("Delete…", key=f"delete-{run.id}"):
        confirm_delete(run)


@st.dialog("Delete this run?")
def confirm_delete(run: runs.Run) -> None:
    st.write(f"**{literal(run.display_name)}** ({run.config.arch} on {literal(run.record.dataset.display_name)}) "
             "and its weights will be removed from disk.")
    if st.button("Delete", type="primary"):
        try:
            runs.delete_run(run, actor)
        except (runs.CheckpointError, OSError) as error:
            st.error(str(error))
            return
        st.session_state.pop(SELECTED_RUN, None)
        st.rerun()


saved_runs_table()
