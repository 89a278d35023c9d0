"""Plotly figures and display images for the app's pages, built from plain data so
they can be tested (and used in a notebook) without Streamlit."""

from __future__ import annotations

import dataclasses
import html
import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .config import TrainConfig

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def plain(names) -> list[str]:
    """Class and run names as plotly text: plotly reads <a href>, <b>... in any label as markup,
    so a name a folder or a user gave shows literally only with its <, > and & escaped."""
    return [html.escape(str(name), quote=False) for name in names]


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction, like TensorBoard's smoothing."""
    out, average = [], 0.0
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** i))
    return out


MAX_CURVE_POINTS = 300  # per trace: the browser redraws live charts every second, on the training machine's CPU


def thin(points: list, limit: int = MAX_CURVE_POINTS) -> list:
    """At most about `limit` of the points, evenly spaced, the last one always included: a curve
    of a thousand epochs looks the same with a few hundred, and draws in a fraction of the time."""
    if len(points) <= limit:
        return list(points)
    every = -(-len(points) // limit)
    kept = points[::every]
    return kept if (len(points) - 1) % every == 0 else [*kept, points[-1]]


def training_curves(history: list, steps: list[tuple[int, float]] | None = None,
                    steps_per_epoch: int | None = None, total_steps: int | None = None) -> go.Figure:
    """Loss (per step, smoothed, and per epoch) beside accuracy (per epoch), train and validation,
    from a run's history (runs.EpochRecord rows). A live run passes its planned `total_steps`, so
    the steps drawn stay the same from one refresh to the next and the line only grows (until a
    job thins a very long history)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    if steps and steps_per_epoch:
        every = -(-(total_steps or len(steps)) // MAX_CURVE_POINTS)  # smooth over every step, draw a few hundred
        x = [s / steps_per_epoch for s, _ in steps][::every]
        losses = [loss for _, loss in steps]
        fig.add_trace(go.Scatter(x=x, y=losses[::every], name="train loss per step", mode="lines", opacity=0.25,
                                 line=dict(color=COLORS[0], width=1), showlegend=False), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=smooth(losses)[::every], name="train loss (smoothed)", mode="lines",
                                 line=dict(color=COLORS[0])), 1, 1)
    history = thin(history)
    epochs = [h.epoch for h in history]
    for key, name, color, dash in (("train", "train", COLORS[0], "dot"), ("val", "validation", COLORS[1], None)):
        if any(getattr(h, f"{key}_loss") is not None for h in history):
            fig.add_trace(go.Scatter(x=epochs, y=[getattr(h, f"{key}_loss") for h in history], name=f"{name} loss",
                                     mode="lines+markers", line=dict(color=color, dash=dash)), 1, 1)
            fig.add_trace(go.Scatter(x=epochs, y=[getattr(h, f"{key}_accuracy") for h in history],
                                     name=f"{name} accuracy", mode="lines+markers",
                                     line=dict(color=color, dash=dash)), 1, 2)
    losses = [y for trace in fig.data if trace.y is not None and "loss" in trace.name for y in trace.y]
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", **log_ticks(losses), row=1, col=1)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    if not history:  # a run stopped, or diverged, before its first epoch ended: say so, not an empty frame
        fig.add_annotation(text="no epoch ended" + (": the loss per step is all there is" if steps else ""),
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(size=14))
    return fig


def log_ticks(values) -> dict:
    """Tick positions and labels for a log axis over `values`, each label the tick's full value
    ("0.5", "0.02"): plotly's own labels the 2 and 5 between decades by their first digit alone
    (2, 1, 5, 2, 0.1...), which students read as two, one, five. 1, 2 and 5 of each decade over a
    range of up to three decades; beyond that the decades only."""
    values = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not values:
        return {}
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    steps = (1, 2, 5) if high - low <= 3 else (1,)
    ticks = [m * 10.0 ** k for k in range(low, high + 1) for m in steps]
    return dict(tickvals=ticks, ticktext=[np.format_float_positional(t, trim="-") for t in ticks])


def confusion_heatmap(matrix: np.ndarray, class_names: list[str], normalized: bool = False) -> go.Figure:
    """Rows are the true class, columns the prediction; counts or row shares written in each cell."""
    values = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if normalized else matrix
    class_names = plain(class_names)
    text = [[f"{v:.0%}" if normalized else str(int(v)) for v in row] for row in values]
    fig = go.Figure(go.Heatmap(z=values, x=class_names, y=class_names, text=text, texttemplate="%{text}",
                               colorscale="Blues", hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="predicted", type="category", side="top"),
                      yaxis=dict(title="true", type="category", autorange="reversed"))
    return fig


def probability_bars(probabilities, class_names: list[str], highlight: int | None = None) -> go.Figure:
    probabilities = [float(p) for p in probabilities]
    colors = [COLORS[1] if i == highlight else COLORS[0] for i in range(len(probabilities))]
    fig = go.Figure(go.Bar(x=plain(class_names), y=probabilities, marker_color=colors,
                           text=[f"{p:.0%}" for p in probabilities], textposition="outside"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10),
                      yaxis=dict(range=[0, 1.1], tickformat=".0%"), xaxis=dict(type="category"))
    return fig


def enlarge(image, factor: int = 4) -> np.ndarray:
    """A 28x28 image (uint8, or float in [0, 1]) as uint8, each pixel a factor x factor block, so
    browsers show crisp pixels instead of a blur."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    return array.repeat(factor, 0).repeat(factor, 1)


def overlay(image28, heat28, factor: int = 8) -> np.ndarray:
    """The image in grey with a heat map in red on top: RGB uint8, enlarged."""
    gray = enlarge(image28, factor).astype(np.float32) / 255
    heat = enlarge(heat28, factor).astype(np.float32) / 255
    rgb = np.stack([gray * 0.6 + heat * 0.9, gray * 0.6 + heat * 0.2, gray * 0.6], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


CURVE_TITLES = {"val_accuracy": "validation accuracy", "val_loss": "validation loss",
                "train_accuracy": "training accuracy", "train_loss": "training loss",
                "epoch": "epoch", "elapsed": "seconds of training"}


def compare_curves(curves: dict[str, tuple[list[float], list[float]]], metric: str, x: str = "epoch") -> go.Figure:
    """Several runs' curves of one metric overlaid (from compare.curves), one line per run."""
    fig = go.Figure([go.Scatter(x=thin(xs), y=thin(ys), name=plain([label])[0], mode="lines+markers",
                                line=dict(color=COLORS[i % len(COLORS)]))
                     for i, (label, (xs, ys)) in enumerate(curves.items())])
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), title=CURVE_TITLES.get(metric, metric),
                      xaxis_title=CURVE_TITLES.get(x, x), legend=dict(orientation="h", y=-0.25))
    if metric.endswith("accuracy"):
        fig.update_yaxes(tickformat=".1%")
    if x == "epoch":  # whole epochs only, about ten ticks at most, and half an epoch's room at each end
        first = min((min(xs) for xs, _ in curves.values() if xs), default=1)
        last = max((max(xs) for xs, _ in curves.values() if xs), default=1)
        fig.update_xaxes(dtick=max(1, math.ceil(last / 10)), range=[first - 0.5, last + 0.5])
    return fig


def _grouped_bars(series: dict[str, list[float]], class_names: list[str], percent: bool) -> go.Figure:
    fig = go.Figure([go.Bar(x=plain(class_names), y=list(values), name=plain([name])[0], marker_color=COLORS[i % len(COLORS)])
                     for i, (name, values) in enumerate(series.items())])
    fig.update_layout(barmode="group", height=340, margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(type="category"), legend=dict(orientation="h", y=-0.2))
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def per_class_bars(accuracies: dict[str, list[float]], class_names: list[str]) -> go.Figure:
    """Per-class accuracy of several runs side by side (one bar group per class, one colour per run),
    the axis starting a little below the weakest class: on a 0-100% axis, 97% and 99% look alike."""
    fig = _grouped_bars(accuracies, class_names, percent=True)
    lowest = min((min(values) for values in accuracies.values() if len(values)), default=0.0)
    floor = max(0.0, lowest - max(0.02, (1.0 - lowest) * 0.25))
    fig.update_yaxes(range=[floor, 1.0], tickformat=".1%" if floor > 0.9 else ".0%")
    return fig


def class_balance(counts: dict[str, list[int]], class_names: list[str]) -> go.Figure:
    """Images per class in each split (one colour per split)."""
    return _grouped_bars(counts, class_names, percent=False)


LOG_SCALE_PARAMS = ("lr", "weight_decay")


def sweep_errorbars(rows, param: str, metric: str) -> go.Figure:
    """A sweep's metric (mean ± sample std over repeats, from sweeps.aggregate) against the swept value."""
    rows = [row for row in rows if row.mean is not None]
    number = ":.2%" if metric.endswith("accuracy") else ":.4g"
    numeric = all(isinstance(row.value, (int, float)) and not isinstance(row.value, bool) for row in rows)
    fig = go.Figure(go.Scatter(
        x=[row.value if numeric else str(row.value) for row in rows], y=[row.mean for row in rows],
        error_y=dict(type="data", array=[row.std or 0.0 for row in rows], visible=True),
        mode="lines+markers" if numeric else "markers", marker=dict(size=9, color=COLORS[0]),
        customdata=[[row.std or 0.0, row.n] for row in rows],
        hovertemplate=f"{param} %{{x}}<br>%{{y{number}}} ± %{{customdata[0]{number}}} over %{{customdata[1]}} run(s)<extra></extra>"))
    log_x = numeric and param in LOG_SCALE_PARAMS and all(row.value > 0 for row in rows)
    label = next((f.metadata["label"] for f in dataclasses.fields(TrainConfig) if f.name == param), param)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), yaxis_title=metric.replace("_", " "),
                      xaxis=dict(title=label, type="log" if log_x else ("linear" if numeric else "category")))
    if numeric:  # ticks at the swept values themselves, not at round numbers between them
        fig.update_xaxes(tickvals=[row.value for row in rows], ticktext=[f"{row.value:g}" for row in rows])
    if metric.endswith("accuracy") and rows:
        # The error bars would stretch an autoranged axis past 100%: the range stops at 0 and 100%.
        low = min(row.mean - (row.std or 0.0) for row in rows)
        high = max(row.mean + (row.std or 0.0) for row in rows)
        pad = max(high - low, 0.002) * 0.15
        fig.update_yaxes(tickformat=".2%", range=[max(0.0, low - pad), min(1.0, high + pad)])
    return fig


def embedding_scatter(points: np.ndarray, labels, predictions, class_names: list[str], indices=None) -> go.Figure:
    """2-D points coloured by true class, one trace per class (so the legend can hide classes),
    and the mistakes ringed in black by one more trace. Each point's customdata is
    [index, true, predicted], which a click selection hands back; `indices` default to the
    rows' positions."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    class_names = plain(class_names)
    indices = np.arange(len(points)) if indices is None else np.asarray(indices)

    def trace(mask, name: str, marker: dict) -> go.Scattergl:
        return go.Scattergl(
            x=points[mask, 0], y=points[mask, 1], mode="markers", name=name, marker=marker,
            # A list, not an array: plotly sends arrays as binary, which a selection hands back as a dict.
            customdata=np.stack([indices[mask], labels[mask], predictions[mask]], axis=1).tolist(),
            text=[f"#{i} true {class_names[t]} · predicted {class_names[p]}"
                  for i, t, p in zip(indices[mask], labels[mask], predictions[mask])],
            hovertemplate="%{text}<extra></extra>")

    fig = go.Figure([trace(labels == c, class_names[c], dict(size=6, color=COLORS[c % len(COLORS)], opacity=0.8))
                     for c in np.unique(labels)])
    wrong = predictions != labels
    if wrong.any():
        fig.add_trace(trace(wrong, f"mistakes ({wrong.sum()})", dict(size=9, color="black", symbol="circle-open")))
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=10, b=10), legend=dict(itemsizing="constant"),
                      xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False))
    return fig


def pixel_histogram(histograms: dict[str, np.ndarray]) -> go.Figure:
    """The share of pixels at each intensity 0-255, one line per split, on a log scale
    (the black background outnumbers every other value by far)."""
    fig = go.Figure([go.Scatter(x=np.arange(len(shares)), y=shares, name=name, mode="lines",
                                line=dict(color=COLORS[i % len(COLORS)]))
                     for i, (name, shares) in enumerate(histograms.items())])
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.25),
                      xaxis_title="pixel value",
                      yaxis=dict(title="share of pixels", type="log",
                                 **log_ticks([v for shares in histograms.values() for v in shares])))
    return fig


def activation_colours(values: np.ndarray, scale: float) -> np.ndarray:
    """Activations as RGB uint8: positive values from black to warm white, negative ones to blue,
    both relative to `scale` (one for a whole layer, so its maps compare), clipped; NaN
    (padding) mid grey."""
    v = np.nan_to_num(values / max(scale, 1e-12), nan=0.0).clip(-1, 1)
    pos, neg = v.clip(0, 1), (-v).clip(0, 1)
    rgb = np.stack([pos, pos ** 1.5 * 0.9, pos ** 3 * 0.8 + neg], axis=-1)
    rgb[np.isnan(values)] = 0.45
    return (rgb * 255).astype(np.uint8)


def map_grid(maps: np.ndarray, columns: int = 8, tile: int = 56, gap: int = 3) -> np.ndarray:
    """Feature maps (K, H, W) as one RGB picture: a grid of `columns` tiles about `tile` px wide,
    crisp pixels, one colour scale for all (activation_colours)."""
    count, side = len(maps), max(maps.shape[1:])
    factor = max(1, round(tile / side))
    # The 99th percentile, not the maximum: one hot pixel would leave every other map black.
    scale = float(np.nanpercentile(np.abs(maps), 99)) if maps.size else 1.0
    tiles = [activation_colours(m, scale).repeat(factor, 0).repeat(factor, 1) for m in maps]
    height, width = tiles[0].shape[:2]
    rows = -(-count // columns)
    columns = min(columns, count)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for i, picture in enumerate(tiles):
        top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
        grid[top:top + height, left:left + width] = picture
    return grid


def unit_grid(units: np.ndarray, cell: int = 10) -> np.ndarray:
    """A dense layer's units (U,) as one RGB heat map: a near-square grid of cells, row by row,
    the unused cells of the last row grey."""
    columns = math.ceil(math.sqrt(len(units)))
    padded = np.full(columns * math.ceil(len(units) / columns), np.nan, dtype=np.float32)
    padded[:len(units)] = units
    return map_grid(padded.reshape(1, -1, columns), columns=1, tile=cell * columns, gap=0)


def class_push(pushes: list[np.ndarray], layer_names: list[str], class_names: list[str]) -> go.Figure:
    """Which classes each layer pushes towards: a heat map, one row per layer (from the first,
    at the top) and one column per class, red for towards and blue for against."""
    z = np.stack(pushes)
    limit = float(np.abs(z).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=z, x=list(class_names), y=list(layer_names), zmin=-limit, zmax=limit,
                               colorscale="RdBu_r", texttemplate="%{z:.1f}",
                               hovertemplate="%{y}<br>towards %{x}: %{z:.2f}<extra></extra>",
                               colorbar=dict(title="push")))
    fig.update_layout(height=80 + 40 * len(layer_names), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(type="category", side="top"), yaxis=dict(type="category", autorange="reversed"))
    return fig
