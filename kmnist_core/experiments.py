"""Comparing runs as the reports did: one table row per run (accuracy, test loss,
training time, epochs...), its CSV export, the per-epoch curves to overlay, and
the sweeps found among saved runs with their "value - mean ± std" table.

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


def runs_csv(runs) -> str:
    return runs_table(runs).to_csv(index=False)


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


def sweep_groups(runs) -> list[str]:
    """The sweeps among saved runs, the newest first (runs come newest first from scan_runs)."""
    groups = (run.config.group for run in runs)
    return list(dict.fromkeys(group for group in groups if sweeps.swept_param(group)))


def sweep_rows(runs, group: str, metric: str) -> list[sweeps.Row]:
    """The sweep's metric per swept value (mean ± std over its runs), numbers in ascending order
    so that lines through them do not zigzag; other values (architectures...) as first met."""
    param = sweeps.swept_param(group)
    rows = sweeps.aggregate([run for run in runs if run.config.group == group], param, metric)
    if all(isinstance(row.value, (int, float)) for row in rows):
        rows.sort(key=lambda row: row.value)
    return rows


def sweep_table(rows: list[sweeps.Row], param: str, metric: str) -> pd.DataFrame:
    """The reports' table: each value with "mean ± std" of the metric (percent for accuracies) and n."""
    unit = " (%)" if metric.endswith("accuracy") else ""
    return pd.DataFrame({
        param: [str(row.value) for row in rows],
        f"{metric}{unit}: mean ± std": [f"{sweeps.format_value(metric, row.mean)} ± "
                                        f"{sweeps.format_value(metric, row.std)}" for row in rows],
        "runs": [row.n for row in rows],
    })
