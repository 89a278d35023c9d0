"""View helpers shared by the pages: the process-wide job manager, run pickers,
dataset loading with its error shown in place, and small display pieces.
No training or metric logic lives here: that is kmnist_core's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from kmnist_core import data, evaluation, runs
from kmnist_core.charts import enlarge
from kmnist_core.jobs import JobManager

STATUS_ICONS = {"queued": "⏳", "running": "🏃", "finished": "✅", "stopped": "⏹️", "failed": "❌",
                "cancelled": "🚫", "interrupted": "⚠️"}


def use_app_navigation() -> None:
    """Call first on every page. Until some session has run app.py's st.navigation,
    Streamlit treats the pages/ folder as old-style pages, so a deep link (say /draw)
    opened first after a restart would run the page alone, outside the app's shell.
    Clearing that flag and rerunning hands the request to app.py, which shows the page."""
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_resource
def job_manager() -> JobManager:
    """One per server process: jobs survive reruns, page switches, reloads and other tabs."""
    return JobManager()


def load_dataset(name: str, root: str | None = None) -> data.RawDataset | None:
    """The dataset, or None after showing why it is not available and what to do."""
    try:
        return data.load_dataset(name, root, download=False)
    except data.DatasetUnavailable as error:
        st.warning(str(error), icon="📂")
        return None


def data_root_of(run: runs.Run) -> str | None:
    """The data root the run was trained from when it exists here (a shipped run was
    trained elsewhere), else None: the app's own default."""
    root = run.config.data_root
    return root if root and Path(root).is_dir() else None


def load_run_dataset(run: runs.Run) -> data.RawDataset | None:
    """The dataset a run was trained on, or None after showing why it is not available."""
    return load_dataset(run.record.dataset.name, data_root_of(run))


def run_label(run: runs.Run) -> str:
    r = run.record
    accuracy = run.test_accuracy
    parts = [("📦 " if run.shipped else "") + run.name, r.dataset.display_name, r.config.arch,
             f"test {accuracy:.2%}" if accuracy is not None else run.status]
    return " · ".join(parts)


def usable_runs() -> list[runs.Run]:
    """Readable runs with weights, shipped ones included; broken folders are reported once, not fatal."""
    found, problems = runs.scan_runs()
    if problems:
        with st.expander(f"{len(problems)} run folder(s) could not be read and are skipped"):
            for problem in problems:
                st.caption(problem)
    return [r for r in found if r.has_weights]


def pick_run(label: str, choices: list[runs.Run], key: str) -> runs.Run | None:
    if not choices:
        return None
    ids = [r.id for r in choices]
    wanted = st.session_state.get("selected_run")
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox(label, ids, index=index, key=key, format_func=lambda i: run_label(choices[ids.index(i)]))
    st.session_state["selected_run"] = chosen
    return choices[ids.index(chosen)]


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _cached_model(path: str, mtime: float):
    return runs.load_model(runs.load_run(path))


def load_model(run: runs.Run):
    """The run's model, cached per weights file; None after showing why it cannot load."""
    try:
        return _cached_model(str(run.path), (run.path / runs.WEIGHTS).stat().st_mtime)
    except (runs.CheckpointError, OSError) as error:
        st.error(f"This model cannot be loaded: {error}")
        return None


@st.cache_resource(max_entries=8, show_spinner="Evaluating on the test set…")
def _cached_report(path: str, mtime: float, data_root: str | None) -> evaluation.Report:
    run = runs.load_run(path)
    dataset = data.load_dataset(run.record.dataset.name, data_root, download=False)
    return evaluation.evaluate(_cached_model(path, mtime), dataset.test_images, dataset.test_labels,
                               run.normalization, run.class_names)


def test_report(run: runs.Run) -> evaluation.Report | None:
    """The run's test-set evaluation, cached per run so coming back is instant."""
    try:
        return _cached_report(str(run.path), (run.path / runs.WEIGHTS).stat().st_mtime, data_root_of(run))
    except data.DatasetUnavailable as error:
        st.warning(f"The test set of this run's dataset is not available: {error}", icon="📂")
    except (runs.CheckpointError, OSError) as error:
        st.error(f"This model cannot be loaded: {error}")
    return None


def image_strip(images: torch.Tensor, factor: int = 2, gap: int = 2) -> np.ndarray:
    """Several 28x28 images side by side in one picture (one st.image instead of many)."""
    tiles = [enlarge(image, factor) for image in images]
    if not tiles:
        return np.zeros((28 * factor, 1), dtype=np.uint8)
    spacer = np.full((tiles[0].shape[0], gap), 255, dtype=np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, spacer)][:-1], axis=1)


def class_heading(label: str) -> str:
    """Markdown for a class name; a KMNIST class ("お o") shows its modern hiragana big
    beside the romanisation."""
    if label in data.KMNIST_CLASSES:
        kana, roman = label.split()
        return f"<span style='font-size:2.2em'>{kana}</span> {roman}"
    return f"**{label}**"


def class_example_rows(dataset: data.RawDataset, per_class: int, seed: int = 0) -> None:
    """One row per class: its name, then `per_class` of its training images."""
    picks = data.examples_per_class(dataset.train_labels, per_class, dataset.info.num_classes, seed=seed)
    for label, indices in zip(dataset.info.class_names, picks):
        name_col, strip_col = st.columns([1, 6], vertical_alignment="center")
        name_col.markdown(class_heading(label), unsafe_allow_html=True)
        strip_col.image(image_strip(dataset.train_images[indices]))


def when(timestamp: str | float | None) -> str:
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(timestamp) if isinstance(timestamp, (int, float)) else \
        datetime.fromisoformat(timestamp).astimezone()
    return f"{moment:%Y-%m-%d %H:%M}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


@st.cache_data(ttl=600, show_spinner="Timing a few training steps on this machine…")
def _estimated_minutes(config_dict: dict, train_size: int) -> float:
    from kmnist_core import training
    from kmnist_core.config import TrainConfig
    return training.estimate_seconds(TrainConfig.from_dict(config_dict), train_size) / 60


def offer_download_and_train(dataset_name: str) -> None:
    """For a downloadable dataset with no model yet: one button that downloads it through
    torchvision and trains the quick default recipe as a background job, then the
    progress of both steps."""
    from kmnist_core.config import TrainConfig
    info = data.DATASETS[dataset_name]
    manager = job_manager()
    job = next((j for j in manager.jobs() if j.config.dataset == dataset_name and j.config.group == "first-model"), None)
    last = job.snapshot() if job is not None else None
    if last is None or last.status in ("failed", "cancelled", "stopped"):
        if last is not None and last.status == "failed":
            st.error(f"The last attempt failed: {last.message}")
        config = TrainConfig(dataset=dataset_name, group="first-model", name=f"first {info.display_name} model")
        minutes = _estimated_minutes(config.to_dict(), info.train_size)
        downloading = data.needs_download(dataset_name)
        label = (f"Download {info.display_name} and train a model" if downloading else
                 f"Train a {info.display_name} model") + f" (about {max(1, round(minutes))} min of training on this machine)"
        if st.button(label, type="primary", key=f"offer-{dataset_name}"):
            manager.submit(config)
            st.rerun()
        return

    @st.fragment(run_every=1.0 if last.active else None)
    def progress() -> None:
        snap = job.snapshot()
        if snap.phase.startswith("downloading"):
            st.progress(0.0, text=f"Step 1 of 2: {snap.phase} — "
                                  f"{data.downloaded_bytes(dataset_name) / 2**20:.1f} MB so far")
        elif snap.status == "queued":
            st.info(f"Waiting for the {snap.device}: place {manager.queue_position(job)} in the queue.")
        elif snap.active:
            st.progress(snap.progress, text=f"Step 2 of 2: training {snap.config.arch} — epoch {snap.epoch}/"
                                            f"{snap.epochs_total}, {snap.progress:.0%}, ETA {duration(snap.eta_seconds)}")
        live_key = f"offer-live-{job.id}"
        if st.session_state.get(live_key) and not snap.active:
            st.session_state[live_key] = False
            st.session_state["selected_run"] = snap.run_id
            st.rerun()  # the whole page again: it picks the new model and the refresh ends
        st.session_state[live_key] = snap.active
    progress()


def offer_kmnist_model(choices: list[runs.Run]) -> None:
    """No KMNIST model ships with the app (its official training images could not be had
    where the shipped models were trained), so where a page wants one, offer to make one."""
    if not any(r.record.dataset.name == "kmnist" for r in choices):
        with st.container(border=True):
            st.markdown("**No Kuzushiji-MNIST model yet.** It takes one click to get one:")
            offer_download_and_train("kmnist")
