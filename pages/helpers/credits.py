"""The credit a dataset's licence asks for, shown wherever its images or a model trained on
it appear (Kuzushiji-MNIST's CC BY-SA 4.0 asks for one)."""

from __future__ import annotations

import streamlit as st

from kmnist_core import data, runs
from pages.helpers.formatting import literal

LICENCE_PAGES = {"CC BY-SA 4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
                 "CC BY-SA 3.0": "https://creativecommons.org/licenses/by-sa/3.0/"}


def credit_line(dataset_name: str, attribution: str) -> str:
    """Markdown: the attribution and the licence it is used under, linked."""
    info = data.DATASETS.get(dataset_name)
    licence = info.licence.split(",")[0] if info is not None and info.licence else ""
    if licence in LICENCE_PAGES:
        licence = f"[{licence}]({LICENCE_PAGES[licence]})"
    return attribution + (f", used under {licence}" if licence else "") + "."


def dataset_credit(info: data.DatasetInfo) -> None:
    if info.attribution:
        st.caption("Dataset: " + credit_line(info.name, info.attribution))


def run_credit(run: runs.Run) -> None:
    """Under a model: its dataset's credit, when the licence asks for one."""
    if run.attribution:
        st.caption(f"Trained on {literal(run.record.dataset.display_name)}: " + credit_line(run.record.dataset.name,
                                                                                     run.attribution))


def runs_credits(shown: list[runs.Run]) -> None:
    """Under a table of runs: one credit per dataset of the runs that needs one."""
    credits = {(r.record.dataset.display_name, r.record.dataset.name, r.attribution) for r in shown if r.attribution}
    for display_name, name, attribution in sorted(credits):
        st.caption(f"{literal(display_name)} runs: " + credit_line(name, attribution))
