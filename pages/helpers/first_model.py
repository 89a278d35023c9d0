"""The one-click first model: where a page wants a model of a dataset that has none yet,
one button downloads the dataset through torchvision and trains the quick default recipe
as a background job, then shows both steps' progress."""

from __future__ import annotations

import streamlit as st

from kmnist_core import data, estimates, runs
from kmnist_core.config import TrainConfig
from kmnist_core.jobs import Job
from pages.helpers.background_jobs import job_manager, watch_jobs
from pages.helpers.formatting import duration
from pages.helpers.identity import current_actor
from pages.helpers.live_updates import open_pages_note
from pages.helpers.run_picker import select_run

GROUP = "first-model"  # the jobs this offer starts


def _asked(dataset_name: str) -> str:
    """Session key: the job this session started for the dataset, until it has been followed up
    (its failure shown, or its model chosen)."""
    return f"offer-asked-{dataset_name}"


def _refused(asked: str) -> str:
    """Session key: why the engine refused the last click (a class limit)."""
    return f"{asked}-refused"


def _submit_first_model(config: TrainConfig, asked: str) -> None:
    try:
        st.session_state[asked] = job_manager().submit(config, current_actor()).id
    except ValueError as error:  # a class limit (classroom.LimitExceeded)
        st.session_state[_refused(asked)] = str(error)


def _switch_to_the_model_made(dataset_name: str) -> None:
    """Once the job this session asked for has finished, its model is the one the pickers show,
    whether the page was watching when it ended or is opened afterwards."""
    job = job_manager().get(st.session_state.get(_asked(dataset_name), ""))
    snap = job.snapshot() if job is not None else None
    if snap is not None and snap.status == "finished" and snap.run_id:
        select_run(snap.run_id)
        del st.session_state[_asked(dataset_name)]


def _estimate_text(config: TrainConfig, train_size: int) -> str:
    with st.spinner("Timing a few training steps on this machine…"):
        seconds = estimates.estimate_seconds(config, train_size, job_manager())
    if seconds is None:  # the device is training something else: no probe now
        return "its time on this machine is estimated once the running job ends"
    note = open_pages_note()
    return f"about {max(1, round(seconds / 60))} min of training on this machine" + (f"; {note}" if note else "")


def offer_download_and_train(dataset_name: str) -> None:
    """The button, or the progress of the job it started (and why the last attempt failed)."""
    info = data.DATASETS[dataset_name]
    manager = job_manager()
    job = next((j for j in manager.jobs() if j.config.dataset == dataset_name and j.config.group == GROUP), None)
    last = job.snapshot() if job is not None else None
    asked = _asked(dataset_name)
    if last is None or last.status in ("failed", "cancelled", "stopped"):
        retry = last is not None and last.status == "failed" and st.session_state.get(asked) == last.id
        if retry:  # to the session that asked, once; other visitors just see the offer
            del st.session_state[asked]
            st.error(f"The last attempt failed: {last.message}")
        config = TrainConfig(dataset=dataset_name, group=GROUP, name=f"first {info.display_name} model")
        label = (("Try again: download" if retry else "Download") + f" {info.display_name} and train a model"
                 if data.needs_download(dataset_name) else f"Train a {info.display_name} model") + \
            f" ({_estimate_text(config, info.train_size)})"
        # on_click: the click counts even though the next run draws the button with another label
        st.button(label, type="primary", key=f"offer-{dataset_name}", on_click=_submit_first_model,
                  args=(config, asked))
        if refused := st.session_state.pop(_refused(asked), None):
            st.error(refused)
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

    watch_jobs([job], steps)


def offer_kmnist_model(choices: list[runs.Run]) -> None:
    """Where a page wants a Kuzushiji-MNIST model and there is none (an install without the
    shipped ones), offer to make one; call it before the page's run picker, which then opens
    on the model this session's offer made."""
    _switch_to_the_model_made("kmnist")
    if not any(r.record.dataset.name == "kmnist" for r in choices):
        with st.container(border=True):
            st.markdown("**No Kuzushiji-MNIST model yet.** It takes one click to get one:")
            offer_download_and_train("kmnist")
