"""What "Look inside" adds to each stroke on the Draw page: kmnist_core.inside.look plus the
pictures and charts the panel builds, per architecture preset (untrained weights: the time
does not depend on them), on the CPU, beside the saliency map every stroke already computes.
(The browser's drawing of the panel is not counted.)

    python -m benchmarks.look_inside [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.draw_latency import NORMALIZATION, synthetic_stroke
from kmnist_core import charts, drawing, inside, models
from pages.helpers.inside import MAPS_SHOWN, UNITS_SHOWN

CLASSES = [str(i) for i in range(10)]


def panel(model: torch.nn.Module, image28: torch.Tensor) -> None:
    """Everything pages/helpers/inside.py computes for one drawing, without Streamlit."""
    seen = inside.look(model, NORMALIZATION, image28)
    for layer in seen.layers:
        if layer.has_maps:
            charts.map_grid(layer.values[inside.strongest(layer.values, MAPS_SHOWN)])
        else:
            charts.unit_grid(layer.values)
    charts.class_push([layer.push for layer in seen.layers], [str(i) for i in range(len(seen.layers))], CLASSES)
    units = np.abs(seen.unit_push[:, 0]).argsort()[::-1][:UNITS_SHOWN]
    charts.class_push(list(seen.unit_push[units]), [str(u) for u in units], CLASSES)


def median_ms(work, repeats: int) -> float:
    work(), work()                                     # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    image28 = drawing.prepare_drawing(synthetic_stroke())
    print(f"{'preset':14} {'look inside ms':>15} {'saliency ms':>12}   (medians of {args.repeats}, "
          f"{torch.get_num_threads()} torch threads)")
    for arch in models.list_models():
        torch.manual_seed(0)
        model = models.build(arch).eval()
        look = median_ms(lambda: panel(model, image28), args.repeats)
        saliency = median_ms(lambda: drawing.saliency(model, NORMALIZATION, image28, 0), args.repeats)
        print(f"{arch:14} {look:15.1f} {saliency:12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
