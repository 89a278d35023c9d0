"""Chart details a student reads wrong when they are off."""

import math

import numpy as np
import pytest

from kmnist_core import charts
from kmnist_core.runs import EpochRecord


def loss_axis_labels(figure) -> dict[float, str]:
    axis = figure.layout.yaxis  # the loss subplot's
    assert axis.type == "log"
    return dict(zip(axis.tickvals or (), axis.ticktext or ()))


def test_log_loss_axes_label_each_tick_with_its_full_value():
    """Issue 12, item 12: the loss axis read "2, 1, 5, 2, 0.1, 5, 2, 0.01" (plotly writes the 2s
    and 5s between decades by their first digit only), and students read "5" as five."""
    history = [EpochRecord(e, 2.3 / e ** 2, 0.5, 2.0 / e ** 2, 0.6, 1.0, float(e)) for e in range(1, 8)]
    steps = [(s, 2.5 * 0.98 ** s) for s in range(1, 200)]
    labels = loss_axis_labels(charts.training_curves(history, steps, steps_per_epoch=30))
    assert labels and all(float(text) == pytest.approx(value) for value, text in labels.items())
    assert {"0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"} <= set(labels.values())
    losses = [loss for _, loss in steps] + [h.val_loss for h in history]
    assert min(labels) <= min(losses) and max(labels) >= max(losses)   # ticks all along the curves

    # a loss that exploded spans many decades: the decades only, still written out in full
    wild = [EpochRecord(1, 9000.0, 0.1, 0.004, 0.1, 1.0, 1.0)]
    labels = loss_axis_labels(charts.training_curves(wild))
    assert list(labels.values()) == ["0.001", "0.01", "0.1", "1", "10", "100", "1000", "10000"]


def test_the_pixel_histogram_writes_its_log_ticks_out_too():
    shares = np.full(256, 1e-5)
    shares[0] = 0.8
    axis = charts.pixel_histogram({"train": shares}).layout.yaxis
    assert [float(t) for t in axis.ticktext] == pytest.approx(axis.tickvals)
    assert all("e" not in t for t in axis.ticktext) and math.isclose(min(axis.tickvals), 1e-5)


def test_curves_of_a_run_that_ended_before_its_first_epoch_say_so():
    """Issue 18: the loss charts of stopped or diverged runs looked empty."""
    empty = charts.training_curves([])
    assert [a.text for a in empty.layout.annotations if a.text.startswith("no epoch")] == ["no epoch ended"]
    early = charts.training_curves([], steps=[(1, 2.3), (2, 2.1)], steps_per_epoch=10, total_steps=100)
    assert any("loss per step" in a.text for a in early.layout.annotations)
