"""Sweeps and repeats: expand one hyperparameter's values times seeds into
configs, find a sweep's runs among the saved ones, and aggregate them into mean +-
standard deviation per value, as the reports tabulated them ("0.001 - 82.79 +- 0.11")."""

from __future__ import annotations

import dataclasses
import re
import secrets
import statistics
import typing
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from .config import TrainConfig

SWEEPABLE = ("lr", "batch_size", "weight_decay", "dropout", "width", "label_smoothing", "augment",
             "epochs", "arch", "optimizer", "schedule", "val_fraction")
METRICS = ("test_accuracy", "best_val_accuracy", "test_loss", "train_seconds")
# A sweep's runs share the group id sweep-<param>-<YYYYmmdd-HHMMSS>-<4 hex digits>.
GROUP_ID = re.compile(r"sweep-(?P<param>\w+?)-\d{8}-\d{6}-[0-9a-f]{4}")


def new_group(param: str) -> str:
    return f"sweep-{param}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def swept_param(group: str) -> str | None:
    """The hyperparameter a sweep's group id names; None for a group that is not a sweep."""
    match = GROUP_ID.fullmatch(group or "")
    return match["param"] if match and match["param"] in SWEEPABLE else None


def parse_values(base: TrainConfig, param: str, text: str) -> list:
    """'1e-3, 1e-4' -> [0.001, 0.0001], typed like the config field."""
    if param not in SWEEPABLE:
        raise ValueError(f"Cannot sweep '{param}': choose one of {', '.join(SWEEPABLE)}.")
    kind = typing.get_type_hints(TrainConfig)[param]
    kind = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
    values = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        try:
            values.append(kind(item))
        except ValueError:
            raise ValueError(f"'{item}' is not a valid {kind.__name__} for {param}.") from None
    if not values:
        raise ValueError(f"Give at least one value for {param}.")
    for value in values:
        dataclasses.replace(base, **{param: value}).validate()
    return values


def expand(base: TrainConfig, param: str, values: list, repeats: int = 1) -> list[TrainConfig]:
    """One config per value and repeat; repeat r uses seed base.seed + r. All share a group id."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    group = new_group(param)
    return [dataclasses.replace(base, **{param: value}, seed=base.seed + r, group=group,
                                name=f"{param}={value} seed={base.seed + r}").validate()
            for value in values for r in range(repeats)]


def metric(run, name: str) -> float | None:
    """The run's value of one of METRICS; None where it has none (a stopped run has no test)."""
    record = run.record
    if name == "test_accuracy":
        return run.test_accuracy
    if name == "test_loss":
        return record.test.loss if record.test is not None else None
    if name == "best_val_accuracy":
        return record.best_val_accuracy
    if name == "train_seconds":
        return record.timings.train_seconds if record.timings is not None else None
    raise ValueError(f"Unknown metric '{name}': choose one of {', '.join(METRICS)}.")


@dataclass
class Row:
    value: object
    mean: float | None
    std: float | None
    n: int


def aggregate(runs: list, param: str, metric_name: str = "test_accuracy") -> list[Row]:
    """Mean and sample standard deviation of the metric per value of `param`, in the
    order the values first appear; runs without the metric (stopped, failed) are left out."""
    groups: dict = {}
    for run in runs:
        groups.setdefault(getattr(run.config, param), []).append(metric(run, metric_name))
    rows = []
    for value, found in groups.items():
        values = [v for v in found if v is not None]
        rows.append(Row(value, statistics.fmean(values) if values else None,
                        statistics.stdev(values) if len(values) > 1 else (0.0 if values else None), len(values)))
    return rows


def sweep_groups(runs) -> list[str]:
    """The sweeps among saved runs, the newest first (runs come newest first from scan_runs)."""
    return list(dict.fromkeys(run.config.group for run in runs if swept_param(run.config.group)))


def sweep_rows(runs, group: str, metric_name: str) -> list[Row]:
    """The sweep's metric per swept value (mean ± std over its runs), numbers in ascending order
    so that lines through them do not zigzag; other values (architectures...) as first met."""
    rows = aggregate([run for run in runs if run.config.group == group], swept_param(group), metric_name)
    if all(isinstance(row.value, (int, float)) for row in rows):
        rows.sort(key=lambda row: row.value)
    return rows


def format_value(metric_name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.2f}" if metric_name.endswith("accuracy") else f"{value:.4g}"


def mean_and_std(row: Row, metric_name: str) -> str:
    """The reports' "82.79 ± 0.11" (percent for accuracies)."""
    return f"{format_value(metric_name, row.mean)} ± {format_value(metric_name, row.std)}"


def metric_heading(metric_name: str) -> str:
    return f"{metric_name}{' (%)' if metric_name.endswith('accuracy') else ''}: mean ± std"


def format_table(rows: list[Row], param: str, metric_name: str) -> str:
    """The table as text, for the terminal."""
    lines = [f"{param:>14} | {metric_heading(metric_name)} (n)"]
    lines += [f"{row.value!s:>14} | {mean_and_std(row, metric_name)} ({row.n})" for row in rows]
    return "\n".join(lines)


OUTCOMES = ("queued", "running", "finished", "failed", "stopped")


@dataclass
class Progress:
    """Where a sweep's jobs stand: how many are in each state, and each distinct failure reason
    once with the runs that failed with it (offline, every run fails for the same reason)."""
    counts: dict[str, int]                # OUTCOMES in order (cancelled counts as stopped), then any other
    failures: list[tuple[str, list[str]]]  # (reason, names of the runs that failed with it)


def progress(jobs: list) -> Progress:
    """jobs: the sweep's jobs (or their snapshots), each with status, message and config.name."""
    counts = dict.fromkeys(OUTCOMES, 0)
    reasons: dict[str, list[str]] = {}
    for job in jobs:
        status = "stopped" if job.status == "cancelled" else job.status
        counts[status] = counts.get(status, 0) + 1
        if job.status == "failed":
            reasons.setdefault(job.message, []).append(job.config.name)
    return Progress(counts, list(reasons.items()))
def sweep_table(rows: list[Row], param: str, metric_name: str):
    """The same table as a DataFrame, for the Sweep page."""
    return pd.DataFrame({param: [str(row.value) for row in rows],
                         metric_heading(metric_name): [mean_and_std(row, metric_name) for row in rows],
                         "runs": [row.n for row in rows]})
