"""The Compare page's logic: one table row per run (accuracy, test loss, training
time, epochs...) as the reports tabulated them, its CSV export, and the per-epoch
curves to overlay. A sweep's table is sweeps.py's.

Per-class accuracy needs no function here: it is the recall of an evaluation Report.
"""

from __future__ import annotations

import pandas as pd

from . import sweeps

COLUMNS = ("id", "name", "shipped", "status", "dataset", "arch", "parameters", "epochs", "batch_size", "lr",
           "best_val_accuracy", "test_accuracy", "test_loss", "train_seconds", "images_per_second", "device",
           "created", "group")
CURVE_METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
CURVE_AXES = ("epoch", "elapsed")  # elapsed: seconds since training began, at the end of each epoch


def _row(run) -> dict:
    record, config = run.record, run.config
    return {
        "id": run.id, "name": run.name, "shipped": run.shipped, "status": run.status,
        "dataset": record.dataset.display_name, "arch": config.arch, "parameters": record.model.parameters,
        "epochs": len(record.history), "batch_size": config.batch_size, "lr": config.lr,
        **{name: sweeps.metric(run, name) for name in sweeps.METRICS},
        "images_per_second": record.timings.images_per_second if record.timings is not None else None,
        "device": record.device, "created": record.created, "group": config.group,
    }


def runs_table(runs) -> pd.DataFrame:
    """One row per run, in the given order; a metric the run never reached is empty (NaN)."""
    return pd.DataFrame([_row(run) for run in runs], columns=list(COLUMNS))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula


def spreadsheet_safe(value):
    """A text cell that a spreadsheet would read as a formula (a run named =HYPERLINK(...)),
    prefixed with an apostrophe so it stays text; numbers and other cells unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def runs_csv(runs) -> str:
    return runs_table(runs).map(spreadsheet_safe).to_csv(index=False)


def run_labels(runs) -> list[str]:
    """Legend labels: each run's name, with its id added where two runs share a name."""
    names = [run.name for run in runs]
    return [f"{name} ({run.id})" if names.count(name) > 1 else name for name, run in zip(names, runs)]


def curve(history: list[dict], metric: str, x: str = "epoch") -> tuple[list[float], list[float]]:
    """The metric per epoch against the epoch number or the training time, skipping epochs
    without it (no validation split)."""
    if metric not in CURVE_METRICS or x not in CURVE_AXES:
        raise ValueError(f"Curves plot one of {', '.join(CURVE_METRICS)} against {' or '.join(CURVE_AXES)}.")
    points = [(getattr(h, x), getattr(h, metric)) for h in history if getattr(h, metric) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def curves(runs, metric: str, x: str = "epoch") -> dict[str, tuple[list[float], list[float]]]:
    """Each run's curve under its legend label, ready for charts.compare_curves."""
    return {label: curve(run.record.history, metric, x) for label, run in zip(run_labels(runs), runs)}
