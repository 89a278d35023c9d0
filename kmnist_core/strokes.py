"""Pen strokes: making training images look like drawings, and test images re-drawn as a
person would draw them on the Draw page's canvas.

A Kuzushiji character is written with a brush (thick and thin strokes, blots); a person
draws it with a mouse or a finger: one uniform pen, of whatever width the slider says.
Measured before this module: a resnet scoring 96% on the KMNIST test images recognised
70% of the same characters re-drawn with a uniform pen, 49% at pen width 40.

- `stroke_augment` changes a training batch's stroke widths and, for part of it, thins the
  characters to their skeletons and re-strokes them with a uniform pen: torch only, the
  whole batch at once on its device, like training.augment_batch.
- `redrawn_test_set` re-draws test images on a 280x280 canvas with a uniform pen, at several
  widths, sizes and positions, and sends them through the Draw page's own preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from . import augment
from .framing import MNIST_FRAMING, Framing

SKELETON_THRESHOLD = 0.3      # of each image's strongest ink: the strokes that are thinned
CANVAS_SIZE = 280
DRAWING_SIZES = (0.6, 0.9)    # of the canvas: how much of it a drawing fills, here and in redrawn_test_set
REDRAW_DETAIL = 3             # test images are thinned at 84x84 for re-drawing
PEN_WIDTHS = (8, 16, 24, 32, 40)
WIDEST_PEN = 7.0              # in 28x28 pixels: the widest stroke `pen` draws


# Zhang-Suen thinning (Zhang & Suen, 1984) as two 256-entry tables: a pixel's 8 neighbours,
# read as one byte, say whether it may be peeled off in each sub-round. Neighbour bits:
# P2 (north) = 1, P3 (north-east) = 2, then clockwise to P9 (north-west) = 128.
_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _deletable_tables() -> torch.Tensor:
    tables = torch.zeros(2, 256, dtype=torch.bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]                    # P2 .. P9
        neighbours = sum(p)
        crossings = sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))
        p2, p3, p4, p5, p6, p7, p8, p9 = p
        if 2 <= neighbours <= 6 and crossings == 1:
            tables[0, code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
            tables[1, code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return tables


_DELETABLE = _deletable_tables()


def _neighbour_code(mask: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) float 0/1 -> each pixel's 8 neighbours as a byte (int64, for indexing).
    Shifted slices rather than a 3x3 convolution: 2x faster on the CPU for one channel."""
    height, width = mask.shape[-2:]
    padded = F.pad(mask, (1, 1, 1, 1))
    code = torch.zeros_like(mask)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        code.add_(padded[..., 1 + dy:1 + dy + height, 1 + dx:1 + dx + width], alpha=float(1 << bit))
    return code.long()


def thin(images01: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) images in [0, 1] -> their one-pixel-wide skeletons, (N, 1, H, W) float 0/1,
    on the images' device: the strokes above SKELETON_THRESHOLD of each image's maximum,
    thinned by Zhang-Suen rounds until nothing changes (each round peels a pixel off each
    side of a stroke, so half the image's side is always enough)."""
    peak = images01.amax(dim=(2, 3), keepdim=True)
    skeleton = ((images01 > SKELETON_THRESHOLD * peak) & (peak > 0)).float()
    tables = _DELETABLE.to(images01.device)
    active = torch.arange(len(skeleton), device=skeleton.device)   # the images still thinning
    for _ in range(max(images01.shape[-2:]) // 2):
        before = current = skeleton[active]
        for table in tables:
            current = current * (~table[_neighbour_code(current)]).float()
        skeleton[active] = current
        changed = (current != before).flatten(1).any(1)
        if not changed.any():
            break
        active = active[changed]    # thick strokes take more rounds: thin only what still changes
    return skeleton


def thin_all(images: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """The skeletons of a whole uint8 (N, 28, 28) training set as bool (N, 28, 28), on its device,
    for stroke_augment(..., skeletons=...): thinning once before training costs about a
    second per 60,000 images on the CPU, thinning every batch 10 ms a step."""
    return torch.cat([thin(images[i:i + chunk, None].float() / 255)[:, 0].bool()
                      for i in range(0, len(images), chunk)]) if len(images) else images.bool()


def framed_pen_widths(framing: Framing) -> tuple[float, float]:
    """The pen widths of the Draw page (PEN_WIDTHS on the 280 px canvas) as the model sees them
    once a drawing is framed: a drawing filling DRAWING_SIZES of the canvas is scaled to the
    framing's extent, its pen with it: MNIST (20 px) 1-4.8 px, Kuzushiji-MNIST (28 px) 1-6.7 px,
    within the 1-7 px that `pen` draws (a thinner pen still leaves a 1 px skeleton)."""
    low = min(PEN_WIDTHS) * framing.extent / (max(DRAWING_SIZES) * CANVAS_SIZE)
    high = max(PEN_WIDTHS) * framing.extent / (min(DRAWING_SIZES) * CANVAS_SIZE)
    return max(low, 1.0), min(max(high, 1.0), WIDEST_PEN)


def pen(skeleton: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Stroke (N, 1, H, W) 0/1 skeletons with a round pen `width` (N,) pixels wide, 1 to 7, one
    width per image: the skeleton (1 px), then dilations alternating a plus shape and a 3x3
    square (3, 5 and 7 px, near-round), blended at the widths in between, which softens the edge."""
    levels = [skeleton]
    for grow in (_thicken_cross, _thicken_square, _thicken_cross):
        levels.append(grow(levels[-1]))
    t = ((width.to(skeleton.device).view(-1, 1, 1, 1) - 1) / 2).clamp(0, len(levels) - 1)
    out = levels[0]
    for i in range(1, len(levels)):      # piecewise linear between the levels
        out = out + (t - (i - 1)).clamp(0, 1) * (levels[i] - levels[i - 1])
    return out


def _thicken_cross(x: torch.Tensor) -> torch.Tensor:
    """Grey-scale dilation by a plus-shaped element: one pixel wider each side, rounder than 3x3.
    Pairwise maxima of shifted views: a quarter of the time of stacking the five shifts, and a
    fifth of max_pool2d's on the CPU for one-channel 28x28 images."""
    padded = F.pad(x, (1, 1, 1, 1))
    out = torch.maximum(padded[..., :-2, 1:-1], padded[..., 2:, 1:-1])
    torch.maximum(out, padded[..., 1:-1, :-2], out=out)
    torch.maximum(out, padded[..., 1:-1, 2:], out=out)
    return torch.maximum(out, x, out=out)


def _thicken_square(x: torch.Tensor) -> torch.Tensor:
    """Grey-scale dilation by a 3x3 square, as a vertical then a horizontal maximum of three."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def _thin_cross(x: torch.Tensor) -> torch.Tensor:
    """Grey-scale erosion by the same plus-shaped element."""
    return -_thicken_cross(-x)


def stroke_augment(images01: torch.Tensor, strength: float, generator: torch.Generator | None,
                   skeletons: torch.Tensor | None = None, framing: Framing = MNIST_FRAMING) -> torch.Tensor:
    """Make a (N, 1, 28, 28) training batch in [0, 1] look more like drawings, on its device.

    Every image's strokes get a random width change: grey-scale erosion (thinner, never
    below the character's skeleton, so no stroke vanishes) or dilation (thicker), by a
    random amount up to a pixel on each side. A share `strength` / 2 of the images is instead
    thinned to its skeleton and re-stroked with a uniform round pen of a random width
    (the pen widths 8-40 of the Draw page's canvas, as they come out once a drawing is
    framed by the dataset's `framing`). `strength` in [0, 1] scales both; 0 returns the
    batch unchanged. `skeletons`, the batch's (N, 28, 28) skeletons from thin_all, saves
    thinning it here. The random numbers come from `generator` on
    the CPU, so a seed gives the same batch on every device."""
    if not 0 <= strength <= 1:
        raise ValueError(f"stroke augmentation strength must be in [0, 1], got {strength}")
    n = images01.shape[0]
    if strength == 0 or n == 0:
        return images01
    rand = (augment.uniform(n, 3, generator, images01.device) + 1) / 2
    x = images01
    skeleton = thin(x) if skeletons is None else skeletons.view_as(x).to(x.dtype)

    # Width change: t in [-1, 1] * strength, -1 a full erosion step (a pixel off each side),
    # 1 a full dilation step (a pixel on each side).
    t = ((rand[:, 0] * 2 - 1) * strength).view(-1, 1, 1, 1)
    thinner = torch.maximum(_thin_cross(x), skeleton * x)
    widened = x + t.clamp(min=0) * (_thicken_cross(x) - x) + (-t).clamp(min=0) * (thinner - x)

    # Re-stroked with a uniform pen, for a share strength / 2 of the batch.
    low, high = framed_pen_widths(framing)
    restroked = pen(skeleton, low + rand[:, 1] * (high - low))
    chosen = (rand[:, 2] < strength / 2).view(-1, 1, 1, 1)
    return torch.where(chosen, restroked, widened).clamp(0, 1)


@dataclass
class RedrawnSet:
    """Test images re-drawn with a pen and prepared as the Draw page prepares a drawing."""
    images: torch.Tensor       # (M, 28, 28) float in [0, 1]
    labels: torch.Tensor       # (M,)
    pen_widths: torch.Tensor   # (M,) the pen's width on the 280 px canvas
    sources: torch.Tensor      # (M,) index of the test image each one re-draws


def draw_skeleton(skeleton: np.ndarray, pen_width: int, rng: np.random.Generator) -> np.ndarray | None:
    """One (28, 28) boolean skeleton drawn on a black 280x280 canvas with a white round pen,
    its ink filling 60-90% of the canvas, somewhere on it: None for an empty skeleton."""
    ys, xs = np.nonzero(skeleton)
    if len(ys) == 0:
        return None
    span = max(ys.max() - ys.min(), xs.max() - xs.min(), 1)
    size = rng.uniform(*DRAWING_SIZES) * CANVAS_SIZE
    scale = max(size - pen_width, 1) / span
    height, width = (ys.max() - ys.min()) * scale + pen_width, (xs.max() - xs.min()) * scale + pen_width
    top = rng.uniform(0, CANVAS_SIZE - height) + pen_width / 2
    left = rng.uniform(0, CANVAS_SIZE - width) + pen_width / 2
    point = {(y, x): (left + (x - xs.min()) * scale, top + (y - ys.min()) * scale) for y, x in zip(ys, xs)}
    canvas = Image.new("L", (CANVAS_SIZE, CANVAS_SIZE), 0)
    draw = ImageDraw.Draw(canvas)
    r = pen_width / 2
    for (y, x), (cx, cy) in point.items():
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)          # round caps and joins
        for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):                   # each 8-neighbour pair once
            if (y + dy, x + dx) in point:
                draw.line((cx, cy, *point[(y + dy, x + dx)]), fill=255, width=pen_width)
    return np.asarray(canvas)


def redrawn_test_set(images: torch.Tensor, labels: torch.Tensor, pen_widths: tuple[int, ...] = PEN_WIDTHS,
                     seed: int = 0, framing: Framing = MNIST_FRAMING) -> RedrawnSet:
    """Re-draw uint8 (N, 28, 28) test images the way a person draws them on the Draw page:
    thinned to their skeletons, stroked with a uniform round pen of each width in
    `pen_widths` (canvas pixels) at a random size (60-90% of the 280 px canvas) and
    position, then prepared by drawing.prepare_drawing with `framing` (the model's
    dataset's). N * len(pen_widths) images, fewer if a skeleton comes out empty."""
    from .drawing import prepare_drawing
    rng = np.random.default_rng(seed)
    # Thinned at REDRAW_DETAIL times the resolution: a small loop (a 9's, a kana's) keeps its
    # hole, and the pen follows a smooth line rather than 28x28 pixel steps.
    fine = F.interpolate(images[:, None].float() / 255, scale_factor=REDRAW_DETAIL, mode="bilinear")
    skeleton = torch.cat([thin(fine[i:i + 256]) for i in range(0, len(fine), 256)])[:, 0].bool().numpy()
    out, kept_labels, widths, sources = [], [], [], []
    for index in range(len(images)):
        for pen_width in pen_widths:
            canvas = draw_skeleton(skeleton[index], pen_width, rng)
            prepared = prepare_drawing(canvas, framing, pen_width=pen_width) if canvas is not None else None
            if prepared is not None:
                out.append(prepared)
                kept_labels.append(int(labels[index]))
                widths.append(pen_width)
                sources.append(index)
    return RedrawnSet(torch.stack(out) if out else torch.zeros(0, 28, 28), torch.tensor(kept_labels, dtype=torch.long),
                      torch.tensor(widths), torch.tensor(sources))
