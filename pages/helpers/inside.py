"""The Draw page's "Look inside" panel: each layer's view of the current drawing (the strongest
feature maps of a convolutional layer, the units of a dense one) and which classes each layer
pushes towards. Computed only while the toggle is on (kmnist_core.inside does the work)."""

from __future__ import annotations

import streamlit as st
import torch

from kmnist_core import charts, inside, runs
from pages.helpers.pictures import literal

MAPS_SHOWN = 16        # the strongest channels of a convolutional layer
UNITS_SHOWN = 8        # the final layer's units ranked by how much they move the answer


def look_inside(run: runs.Run, model: torch.nn.Module, image28: torch.Tensor, top: int) -> None:
    """A toggle, and when it is on the panel for the drawing `image28` (predicted class `top`)."""
    if not st.toggle("Look inside the model", key="draw_look_inside",
                     help="What each layer makes of this drawing, and which classes it pushes towards."):
        return
    seen = inside.look(model, run.normalization, image28)
    names = run.class_names
    st.caption("Bright: a strongly active unit or map (blue: negative), on one scale per layer. "
               "\"Pushes towards\": how much the layer's activity raises each class's score "
               "(gradient × activation; exact for the last layer).")
    for number, layer in enumerate(seen.layers, 1):
        text_col, picture_col = st.columns([1, 2.4], vertical_alignment="center")
        with text_col:
            st.markdown(f"**Layer {number}** · {literal(layer.title)}")
            st.caption(_what_is_shown(layer) + " " + _pushes(layer, names))
        with picture_col:
            if layer.has_maps:
                picked = inside.strongest(layer.values, MAPS_SHOWN)
                st.image(charts.map_grid(layer.values[picked]))
            else:
                st.image(charts.unit_grid(layer.values))
    st.markdown("**Which classes each layer pushes towards**")
    st.plotly_chart(charts.class_push([layer.push for layer in seen.layers],
                                      [f"Layer {n}" for n in range(1, len(seen.layers) + 1)], names),
                    config={"displayModeBar": False}, key="inside_layers")
    units = abs(seen.unit_push[:, top]).argsort()[::-1][:UNITS_SHOWN]
    st.markdown(f"**The last layer's {len(units)} units that move {literal(names[top])} most**, and where each pushes")
    st.plotly_chart(charts.class_push(list(seen.unit_push[units]), [f"unit {u}" for u in units], names),
                    config={"displayModeBar": False}, key="inside_units")


def _pushes(layer: inside.Layer, names: list[str]) -> str:
    towards = [c for c in layer.push.argsort()[::-1][:2] if layer.push[c] > 0]
    if not towards:
        return "Pushes towards no class."
    return "Pushes towards " + ", ".join(f"{literal(names[c])} ({layer.push[c]:+.1f})" for c in towards) + "."


def _what_is_shown(layer: inside.Layer) -> str:
    if layer.has_maps:
        count, height, width = layer.values.shape
        shown = min(count, MAPS_SHOWN)
        return (f"{count} feature maps of {height}x{width}" +
                (f"; the {shown} strongest shown, strongest first." if shown < count else ", strongest first."))
    return f"{len(layer.values)} units, row by row."
