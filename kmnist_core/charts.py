"""Plotly figures and display images for the app's pages, built from plain data so
they can be tested (and used in a notebook) without Streamlit."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction, like TensorBoard's smoothing."""
    out, average = [], 0.0
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** i))
    return out


def training_curves(history: list[dict], steps: list[tuple[int, float]] | None = None,
                    steps_per_epoch: int | None = None) -> go.Figure:
    """Loss (per step, smoothed, and per epoch) beside accuracy (per epoch), train and validation."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    if steps and steps_per_epoch:
        x = [s / steps_per_epoch for s, _ in steps]
        losses = [loss for _, loss in steps]
        fig.add_trace(go.Scatter(x=x, y=losses, name="train loss per step", mode="lines", opacity=0.25,
                                 line=dict(color=COLORS[0], width=1), showlegend=False), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=smooth(losses), name="train loss (smoothed)", mode="lines",
                                 line=dict(color=COLORS[0])), 1, 1)
    epochs = [h["epoch"] for h in history]
    for key, name, color, dash in (("train", "train", COLORS[0], "dot"), ("val", "validation", COLORS[1], None)):
        if any(h.get(f"{key}_loss") is not None for h in history):
            fig.add_trace(go.Scatter(x=epochs, y=[h[f"{key}_loss"] for h in history], name=f"{name} loss",
                                     mode="lines+markers", line=dict(color=color, dash=dash)), 1, 1)
            fig.add_trace(go.Scatter(x=epochs, y=[h[f"{key}_accuracy"] for h in history], name=f"{name} accuracy",
                                     mode="lines+markers", line=dict(color=color, dash=dash)), 1, 2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def confusion_heatmap(matrix: np.ndarray, class_names: list[str], normalized: bool = False) -> go.Figure:
    """Rows are the true class, columns the prediction; counts or row shares written in each cell."""
    values = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if normalized else matrix
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
    fig = go.Figure(go.Bar(x=class_names, y=probabilities, marker_color=colors,
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
