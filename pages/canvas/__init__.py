"""The Draw page's own canvas: a small Streamlit component (components v2: HTML, CSS and
JavaScript in canvas.html/.css/.js beside this file) with exactly what drawing a
character needs - a round pen, undo, redo and clear - and none of a general drawing
tool's machinery.

Why not streamlit-drawable-canvas 0.13, used before: its toolbar is invisible but still
takes clicks over the canvas's top-right corner (x 140-280, y 0-30) until the pointer
has hovered for about 0.2 s, so a stroke started there at once - and any touch, a
touch screen has no hover - was lost (10 drawings of 100 replayed in Chromium); and it
waits 200 ms after each stroke before sending the drawing (`Bc = 200` in its bundled
JavaScript). Neither can be changed from a page. This canvas sends the drawing on
pointer-up, takes pointer events (mouse, pen, touch), and keeps its buttons below the
drawing area.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, UnidentifiedImageError

HERE = Path(__file__).parent
SIZE = 280      # the canvas's pixels; it is shown smaller where its column is narrower
# A message from the browser is anyone's to craft: the canvas sends SIZE x SIZE pixels, so
# anything much larger is refused before it is decoded (a 9000x9000 PNG of 307 kB cost 1.2 GB).
MAX_SIDE = 4 * SIZE
MAX_MESSAGE_CHARS = 4 * MAX_SIDE * MAX_SIDE  # base64 of an uncompressed RGBA PNG of that size, roughly

_mount = st.components.v2.component(
    "kmnist_lab_canvas",
    html=(HERE / "canvas.html").read_text(encoding="utf-8"),
    css=(HERE / "canvas.css").read_text(encoding="utf-8"),
    js=(HERE / "canvas.js").read_text(encoding="utf-8"),
)


@dataclass
class Drawing:
    image: np.ndarray   # (SIZE, SIZE, 4) uint8 RGBA: white strokes on opaque black
    pen: int            # the widest pen of its strokes, in canvas pixels
    strokes: int


def decode(state: dict | None) -> Drawing | None:
    """The component's state -> the drawing, or None for an empty or unreadable one."""
    drawing = (state or {}).get("drawing") or {}
    url = drawing.get("png")
    if not isinstance(url, str) or ";base64," not in url or len(url) > MAX_MESSAGE_CHARS:
        return None
    try:
        image = Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1])), formats=["PNG"])
        if max(image.size) > MAX_SIDE:  # read from the header: nothing decoded yet
            return None
        image = np.asarray(image.convert("RGBA"))
        pen, strokes = int(drawing.get("pen") or 0), int(drawing.get("strokes") or 0)
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError, TypeError, Image.DecompressionBombError):
        return None
    return Drawing(image, pen, strokes)


def draw_canvas(pen: int, key: str) -> Drawing | None:
    """Mount the canvas (the same `key` keeps its strokes across reruns) with a pen `pen` px
    wide for the next strokes; the drawing so far, None while it is empty."""
    result = _mount(key=key, data={"pen": int(pen), "size": SIZE}, default={"drawing": None},
                    on_drawing_change=lambda: None, width="stretch", height="content")
    return decode({"drawing": result.get("drawing")})
