"""Saved runs on a page: listing them (broken folders reported, not fatal), one line per
run, and the run picker that remembers the chosen run across pages."""

from __future__ import annotations

import streamlit as st

from kmnist_core import live, runs
from pages.helpers.formatting import literal
from pages.helpers.identity import current_actor
from pages.helpers.loaders import dataset_gone

SELECTED_RUN = "selected_run"  # session key: the run every picker starts on
PREFERRED_DATASET = "kmnist"   # KMNIST Lab leads with Kuzushiji-MNIST: pickers open on its best model


def select_run(run_id: str) -> None:
    """Make this run the one the pickers of every page show next."""
    st.session_state[SELECTED_RUN] = run_id


def saved_runs() -> list[runs.Run]:
    """Every readable run, newest first, shipped models included; the folders that could not
    be read are listed (with each one's reason) in a collapsed box."""
    found, problems = runs.scan_runs()
    if problems:
        with st.expander(f"⚠️ {len(problems)} run folder(s) could not be read and are skipped"):
            for problem in problems:
                st.caption(problem)
    return found


def usable_runs() -> list[runs.Run]:
    """Saved runs with weights, shipped ones included: the complete ones first, then those
    stopped, failed or partial (newest first within each). In a class, the unfinished runs
    are only their owner's: a student's stopped run does not clutter everyone's pickers."""
    me = current_actor().owner
    return runs.complete_first([r for r in saved_runs() if r.has_weights and (r.is_complete or r.owner == me)])


def run_label(run: runs.Run) -> str:
    r = run.record
    accuracy = run.test_accuracy
    dataset = r.dataset.display_name + (" (dataset no longer available)" if dataset_gone(run) else "")
    parts = [("📦 " if run.shipped else "") + run.display_name, dataset, r.config.arch,
             f"test {accuracy:.2%}" if accuracy is not None else f"⚠️ {run.caveat}"]
    return " · ".join(parts)


def pick_run(label: str, choices: list[runs.Run], key: str, prefer: str | None = PREFERRED_DATASET) -> runs.Run | None:
    """A select box of the runs, starting on the run chosen last on any page, else on the best
    complete model of the `prefer`red dataset (runs.best_run). The widget's own state is the one
    source of its value: a run chosen elsewhere (select_run) is written there before it is drawn,
    and a choice made here is remembered by its callback before the page runs again."""
    if not choices:
        return None
    by_id = {r.id: r for r in choices}
    wanted = st.session_state.get(SELECTED_RUN)
    if wanted not in by_id:
        fallback = runs.best_run(choices, prefer)
        if wanted:
            _say_what_happened(wanted, fallback)
        wanted = fallback.id
    elif (event := live.run_event(wanted)) and event.action == "renamed" and \
            st.session_state.get(f"{key}-name") not in (None, by_id[wanted].display_name):
        st.caption(f"This model was renamed by {literal(event.by)} to {literal(event.name)}.")
    st.session_state[f"{key}-name"] = by_id[wanted].display_name
    if st.session_state.get(key) != wanted:
        st.session_state[key] = wanted
    chosen = st.selectbox(label, list(by_id), key=key, format_func=lambda i: run_label(by_id[i]),
                          on_change=lambda: select_run(st.session_state[key]))
    select_run(chosen)
    return by_id[chosen]


def _say_what_happened(gone: str, fallback: runs.Run) -> None:
    """One line where the run this session had open was deleted (by its owner or the teacher)."""
    event = live.run_event(gone)
    if event is not None and event.action == "deleted":
        st.info(f"This model was deleted by {literal(event.by)}; showing {literal(fallback.display_name)}.",
                icon=":material/delete:")
