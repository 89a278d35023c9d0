"""The process-wide job manager, and the one way a page watches jobs while they run."""

from __future__ import annotations

import os
from typing import Callable

import streamlit as st

from kmnist_core.jobs import Job, JobManager

STATUS_ICONS = {"queued": "⏳", "running": "🏃", "finished": "✅", "stopped": "⏹️", "failed": "❌",
                "cancelled": "🚫", "interrupted": "⚠️"}
REFRESH_SECONDS = 1.0  # how often a view of running jobs redraws (the progress bar, the ETA)

View = Callable[[list[Job]], None]  # draws snapshots of the watched jobs


@st.cache_resource
def job_manager() -> JobManager:
    """One per server process: jobs survive reruns, page switches, reloads and other tabs.
    With KMNIST_RAY_ADDRESS set, its jobs train on that Ray cluster (docs/cluster.md)."""
    address = os.environ.get("KMNIST_RAY_ADDRESS")
    if not address:
        return JobManager()
    try:
        from kmnist_core import cluster
        return cluster.job_manager(address)
    except (ImportError, RuntimeError, ValueError) as error:  # not cached: the next page load tries again
        st.error(f"Training on the cluster is set up (KMNIST_RAY_ADDRESS) but cannot start: {error}. "
                 "Install requirements-cluster.txt, start the cluster, or unset the variable.", icon=":material/cloud_off:")
        st.stop()


def watch_jobs(jobs: list[Job], *views: View | tuple[View, float]) -> None:
    """Draw each view of the jobs (it gets their snapshots) now and, while any job is queued
    or running, again every REFRESH_SECONDS (or the period given with the view), redrawing
    only the view itself. When the last job ends, the first view reruns the whole page once,
    which draws everything in its final state with no timer left."""
    live = any(job.is_active() for job in jobs)
    if live:
        _quiet_busy_animations()
    for index, view in enumerate(views):
        draw, every = view if isinstance(view, tuple) else (view, REFRESH_SECONDS)
        _live_view(jobs, draw, every if live else None, rerun_when_done=live and index == 0)


def _live_view(jobs: list[Job], draw: View, every: float | None, rerun_when_done: bool) -> None:
    @st.fragment(run_every=every)
    def view() -> None:
        snapshots = [job.snapshot() for job in jobs]
        draw(snapshots)
        if rerun_when_done and not any(snap.active for snap in snapshots):
            st.rerun()  # the whole page: no timer afterwards, and the new run listed
    view()


def _quiet_busy_animations() -> None:
    # The watching browser draws on the cores that train. Measured in Chromium: the "Running..."
    # indicator, blinking on every refresh, took a quarter of its CPU time, and the progress
    # bar's glide to each new value a fifth.
    st.html("<style>[data-testid='stStatusWidget'] {display: none} "
            "[data-testid='stProgress'] * {transition: none !important}</style>")
