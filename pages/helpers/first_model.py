"""The one-click first model: where a page wants a model of a dataset that has none yet,
one button downloads the dataset through torchvision and trains the quick default recipe
as a background job, then shows both steps' progress."""

from __future__ import annotations

import streamlit as st

from kmnist_core import data, runs, training
from kmnist_core.config import TrainConfig
from kmnist_core.jobs import Job
from pages.helpers.background_jobs import job_manager, watch_jobs
from pages.helpers.formatting import duration

GROUP = "first-model"  # the jobs this offer starts


@st.cache_data(ttl=600, show_spinner="Timing a few training steps on this machine…")
def _estimated_minutes(config_dict: dict, train_size: int) -> float:
    return training.estimate_seconds(TrainConfig.from_dict(config_dict), train_size) / 60


def _submit_first_model(config: TrainConfig, asked: str) -> None:
    st.session_state[asked] = job_manager().submit(config).id


def offer_download_and_train(dataset_name: str) -> None:
    """The button, or the progress of the job it started (and why the last attempt failed)."""
    info = data.DATASETS[dataset_name]
    manager = job_manager()
    job = next((j for j in manager.jobs() if j.config.dataset == dataset_name and j.config.group == GROUP), None)
    last = job.snapshot() if job is not None else None
    asked = f"offer-asked-{dataset_name}"  # the job this session started, until its failure has been shown
    if last is None or last.status in ("failed", "cancelled", "stopped"):
        retry = last is not None and last.status == "failed" and st.session_state.get(asked) == last.id
        if retry:  # to the session that asked, once; other visitors just see the offer
            del st.session_state[asked]
            st.error(f"The last attempt failed: {last.message}")
        config = TrainConfig(dataset=dataset_name, group=GROUP, name=f"first {info.display_name} model")
        minutes = _estimated_minutes(config.to_dict(), info.train_size)
        label = (("Try again: download" if retry else "Download") + f" {info.display_name} and train a model"
                 if data.needs_download(dataset_name) else f"Train a {info.display_name} model") + \
            f" (about {max(1, round(minutes))} min of training on this machine)"
        # on_click: the click counts even though the next run draws the button with another label
        st.button(label, type="primary", key=f"offer-{dataset_name}", on_click=_submit_first_model,
                  args=(config, asked))
        return

    def steps(snapshots: list[Job]) -> None:
        (snap,) = snapshots
        if snap.phase.startswith("downloading"):
            st.progress(0.0, text=f"Step 1 of 2: {snap.phase} — "
                                  f"{data.downloaded_bytes(dataset_name) / 2**20:.1f} MB so far")
        elif snap.status == "queued":
            st.info(f"Waiting for the {snap.device}: place {manager.queue_position(job)} in the queue.")
        elif snap.active:
            st.progress(snap.progress, text=f"Step 2 of 2: training {snap.config.arch} — epoch {snap.epoch}/"
                                            f"{snap.epochs_total}, {snap.progress:.0%}, ETA {duration(snap.eta_seconds)}")

    watch_jobs([job], steps, select_new_run=True)


def offer_kmnist_model(choices: list[runs.Run]) -> None:
    """No KMNIST model ships with the app (its official training images could not be had
    where the shipped models were trained), so where a page wants one, offer to make one."""
    if not any(r.record.dataset.name == "kmnist" for r in choices):
        with st.container(border=True):
            st.markdown("**No Kuzushiji-MNIST model yet.** It takes one click to get one:")
            offer_download_and_train("kmnist")
