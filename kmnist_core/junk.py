"""Drawings that are none of a model's classes, as a person might make them on the Draw
page's 280x280 canvas: scribbles, filled shapes, letters of another script, near-blank
sketches. They measure the "I'm not sure this is one of my classes" check (novelty.py).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from . import strokes
from .drawing import prepare_drawing
from .framing import MNIST_FRAMING, Framing

KINDS = ("scribble", "filled shape", "other script", "near-blank")
# Letters of scripts none of the datasets holds, leaving out those that look like a digit
# (O, I, S, Z, B, G...): Latin, Greek and Cyrillic capitals.
OTHER_SCRIPT = "AEFHKMNRTVWXY" + "ΓΔΘΛΞΠΣΦΨΩ" + "ЖИЛФЦШЩЯ"
FONT = "DejaVuSans.ttf"     # Debian's fonts-dejavu; without it, Pillow's own font and Latin letters only
SIZE = strokes.CANVAS_SIZE


def _box(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A random box filling 50-90% of the canvas, somewhere on it: left, top, right, bottom."""
    width, height = rng.uniform(0.5, 0.9, 2) * SIZE
    left, top = rng.uniform(0, SIZE - width), rng.uniform(0, SIZE - height)
    return left, top, left + width, top + height


def _scribble(draw: ImageDraw.ImageDraw, pen: int, rng: np.random.Generator) -> None:
    left, top, right, bottom = _box(rng)
    points = [(rng.uniform(left, right), rng.uniform(top, bottom)) for _ in range(rng.integers(6, 16))]
    for a, b in zip(points, points[1:]):
        draw.line((*a, *b), fill=255, width=pen)
    for x, y in points:
        draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)


def _filled_shape(draw: ImageDraw.ImageDraw, pen: int, rng: np.random.Generator) -> None:
    left, top, right, bottom = _box(rng)
    shape = rng.integers(0, 4)
    if shape == 0:
        draw.rectangle((left, top, right, bottom), fill=255)
    elif shape == 1:
        draw.ellipse((left, top, right, bottom), fill=255)
    elif shape == 2:
        draw.polygon([(rng.uniform(left, right), top), (left, bottom), (right, bottom)], fill=255)
    else:   # a blob: a star-shaped polygon around the box's centre
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radius = rng.uniform(0.6, 1.0, 9)
        cx, cy, rx, ry = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
        draw.polygon([(cx + r * rx * np.cos(a), cy + r * ry * np.sin(a)) for a, r in zip(angles, radius)], fill=255)


def _near_blank(draw: ImageDraw.ImageDraw, pen: int, rng: np.random.Generator) -> None:
    """Two to four single clicks (dots) scattered over the canvas, at most one of them a short tick."""
    for i in range(rng.integers(2, 5)):
        x, y = rng.uniform(pen, SIZE - pen, 2)
        draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
        if i == 0 and rng.random() < 0.5:
            draw.line((x, y, x + rng.uniform(-2, 2) * pen, y + rng.uniform(-2, 2) * pen), fill=255, width=pen)


def _letters(n: int, rng: np.random.Generator) -> torch.Tensor:
    """n letters of OTHER_SCRIPT as uint8 (n, 28, 28) images, white on black, for re-drawing."""
    try:
        font, letters = ImageFont.truetype(FONT, 200), OTHER_SCRIPT
    except OSError:
        font, letters = ImageFont.load_default(200), "".join(c for c in OTHER_SCRIPT if c.isascii())
    images = []
    for letter in rng.choice(list(letters), n):
        image = Image.new("L", (SIZE, SIZE), 0)
        ImageDraw.Draw(image).text((SIZE / 2, SIZE / 2), letter, fill=255, font=font, anchor="mm")
        images.append(np.asarray(image.resize((28, 28), Image.BILINEAR)))
    return torch.from_numpy(np.stack(images)) if images else torch.zeros(0, 28, 28, dtype=torch.uint8)


def junk_canvases(kind: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """n drawings of `kind` (one of KINDS) on black 280x280 canvases, white ink, each with the
    pen width it was drawn with (one of the Draw page's 8-40)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of junk {kind!r}: one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    pens = rng.choice(strokes.PEN_WIDTHS, n)
    if kind == "other script":
        skeletons = strokes.thin(_letters(n, rng)[:, None].float() / 255)[:, 0].bool().numpy()
        drawn = [(strokes.draw_skeleton(s, int(p), rng), int(p)) for s, p in zip(skeletons, pens)]
        return [(canvas, pen) for canvas, pen in drawn if canvas is not None]
    out = []
    for pen in pens:
        canvas = Image.new("L", (SIZE, SIZE), 0)
        {"scribble": _scribble, "filled shape": _filled_shape, "near-blank": _near_blank}[kind](
            ImageDraw.Draw(canvas), int(pen), rng)
        out.append((np.asarray(canvas), int(pen)))
    return out


def junk_images(kind: str, n: int, seed: int = 0, framing: Framing = MNIST_FRAMING) -> tuple[torch.Tensor, int]:
    """The junk drawings prepared as the Draw page prepares a drawing: (M, 28, 28) in [0, 1], and
    how many of the n got no guess at all (a blank, a speck, a dot: prepare_drawing's None)."""
    prepared = [prepare_drawing(canvas, framing, pen_width=pen) for canvas, pen in junk_canvases(kind, n, seed)]
    kept = [p for p in prepared if p is not None]
    return (torch.stack(kept) if kept else torch.zeros(0, 28, 28)), n - len(kept)
