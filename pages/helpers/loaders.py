"""Loading what a page shows (a dataset, a run's model, its test-set evaluation) with any
failure shown in place as one line, and the result cached per run's weights."""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from kmnist_core import data, evaluation, runs
from pages.helpers.formatting import literal

log = logging.getLogger(__name__)


def _explain(what: str, error: Exception) -> None:
    """One line on the page for an error no loader foresaw (the traceback goes to the log)."""
    log.exception("%s", what)
    st.error(f"{what}: {type(error).__name__}: {error}".splitlines()[0])


def try_load_dataset(name: str, root: str | None = None) -> data.RawDataset | None:
    """The dataset, or None after showing why it is not available and what to do."""
    try:
        return data.load_dataset(name, root, download=False)
    except data.DatasetUnavailable as error:
        st.warning(str(error), icon=":material/folder_open:")
    except Exception as error:  # noqa: BLE001 - a damaged file can fail in any way
        _explain(f"The dataset {name} cannot be read", error)
    return None


def data_root_of(run: runs.Run) -> str | None:
    """The data root the run was trained from when it exists here (a shipped run was
    trained elsewhere), else None: the app's own default."""
    root = run.config.data_root
    return root if root and Path(root).is_dir() else None


def dataset_gone(run: runs.Run) -> str | None:
    """Why the run's images cannot be had when its dataset is not in this install (retired, or a
    folder since moved), else None. The run itself still loads and predicts with its class names."""
    dataset = run.record.dataset
    if data.is_available(dataset.name):
        return None
    return (f"This run's dataset, {literal(dataset.display_name)} ('{literal(dataset.name)}'), is no longer available here: "
            f"what needs its images cannot be shown, but the model still predicts its own classes.")


def try_load_run_dataset(run: runs.Run) -> data.RawDataset | None:
    """The dataset a run was trained on, or None after showing why it is not available."""
    if gone := dataset_gone(run):
        st.info(gone, icon=":material/inventory_2:")
        return None
    return try_load_dataset(run.record.dataset.name, data_root_of(run))


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _cached_model(key: tuple):
    return runs.load_model(runs.load_run(key[0]))


def try_load_model(run: runs.Run):
    """The run's model, cached per weights file; None after showing why it cannot load."""
    try:
        return _cached_model(runs.cache_key(run))
    except runs.CheckpointError as error:
        st.error(f"This model cannot be loaded: {error}")
    except Exception as error:  # noqa: BLE001
        _explain("This model cannot be loaded", error)
    return None


@st.cache_resource(max_entries=8, show_spinner="Evaluating on the test set…")
def _cached_report(key: tuple, data_root: str | None) -> evaluation.Report:
    run = runs.load_run(key[0])
    dataset = data.load_dataset(run.record.dataset.name, data_root, download=False)
    return evaluation.evaluate(_cached_model(key), dataset.test_images, dataset.test_labels,
                               run.normalization, run.class_names)


def evaluation_on_test_set(run: runs.Run) -> evaluation.Report | None:
    """The run's evaluation on its test set, cached per weights file so coming back is instant."""
    if gone := dataset_gone(run):
        st.info(gone, icon=":material/inventory_2:")
        return None
    try:
        return _cached_report(runs.cache_key(run), data_root_of(run))
    except data.DatasetUnavailable as error:
        st.warning(f"The test set of this run's dataset is not available: {error}", icon=":material/folder_open:")
    except runs.CheckpointError as error:
        st.error(f"This model cannot be loaded: {error}")
    except Exception as error:  # noqa: BLE001
        _explain("This run cannot be evaluated", error)
    return None
