"""How long the Draw page makes people wait: preprocessing one canvas image plus one
prediction, for every architecture preset (untrained weights: the time does not depend
on them), on the CPU. Called by `python -m benchmarks`."""

from __future__ import annotations

import time

import numpy as np
import torch

from kmnist_core import drawing, models
from kmnist_core.data import Normalization

CANVAS_SIZE = 280
NORMALIZATION = Normalization(0.13, 0.31)


def synthetic_stroke(size: int = CANVAS_SIZE) -> np.ndarray:
    """A fixed canvas image: white strokes on an opaque black background, RGBA like the canvas sends."""
    image = np.zeros((size, size, 4), dtype=np.uint8)
    image[..., 3] = 255
    yy, xx = np.mgrid[0:size, 0:size]
    ring = np.abs(np.hypot(yy - size * 0.55, xx - size * 0.5) - size * 0.28) < size * 0.035
    bar = (np.abs(xx - size * 0.5) < size * 0.035) & (yy > size * 0.12) & (yy < size * 0.88)
    image[ring | bar, :3] = 255
    return image


def measure_draw_latency(repeats: int = 50) -> list[dict]:
    """Per preset: {"arch", "median_ms", "p90_ms"} of prepare_drawing + predict_drawing on one
    fixed 280x280 drawing, after two warm-up calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    image = synthetic_stroke()
    rows = []
    for arch in models.list_models():
        torch.manual_seed(0)
        model = models.build(arch).to("cpu").eval()
        for _ in range(2):
            drawing.predict_drawing(model, NORMALIZATION, drawing.prepare_drawing(image))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            drawing.predict_drawing(model, NORMALIZATION, drawing.prepare_drawing(image))
            times.append((time.perf_counter() - start) * 1000)
        rows.append({"arch": arch, "median_ms": round(float(np.percentile(times, 50)), 3),
                     "p90_ms": round(float(np.percentile(times, 90)), 3)})
    return rows

