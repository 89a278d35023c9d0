"""Saved runs on a page: listing them (broken folders reported, not fatal), one line per
run, and the run picker that remembers the chosen run across pages."""

from __future__ import annotations

import streamlit as st

from kmnist_core import runs
from pages.helpers.loaders import dataset_gone

SELECTED_RUN = "selected_run"  # session key: the run every picker starts on


def select_run(run_id: str) -> None:
    """Make this run the one the pickers of every page show next."""
    st.session_state[SELECTED_RUN] = run_id


def saved_runs() -> list[runs.Run]:
    """Every readable run, newest first; the folders that could not be read are listed
    (with each one's reason) in a collapsed box."""
    found, problems = runs.scan_runs()
    if problems:
        with st.expander(f"⚠️ {len(problems)} run folder(s) could not be read and are skipped"):
            for problem in problems:
                st.caption(problem)
    return found


def usable_runs() -> list[runs.Run]:
    """Saved runs with weights, shipped ones included."""
    return [r for r in saved_runs() if r.has_weights]


def run_label(run: runs.Run) -> str:
    r = run.record
    accuracy = run.test_accuracy
    dataset = r.dataset.display_name + (" (dataset no longer available)" if dataset_gone(run) else "")
    parts = [("📦 " if run.shipped else "") + run.name, dataset, r.config.arch,
             f"test {accuracy:.2%}" if accuracy is not None else run.status]
    return " · ".join(parts)


def pick_run(label: str, choices: list[runs.Run], key: str) -> runs.Run | None:
    if not choices:
        return None
    ids = [r.id for r in choices]
    wanted = st.session_state.get(SELECTED_RUN)
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox(label, ids, index=index, key=key, format_func=lambda i: run_label(choices[ids.index(i)]))
    select_run(chosen)
    return choices[ids.index(chosen)]
