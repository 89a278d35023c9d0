"""Dataset images and class names on a page."""

from __future__ import annotations

import html
import re

import numpy as np
import streamlit as st
import torch

from kmnist_core import data
from kmnist_core.charts import enlarge


def image_strip(images: torch.Tensor, factor: int = 2, gap: int = 2) -> np.ndarray:
    """Several 28x28 images side by side in one picture (one st.image instead of many)."""
    tiles = [enlarge(image, factor) for image in images]
    if not tiles:
        return np.zeros((28 * factor, 1), dtype=np.uint8)
    spacer = np.full((tiles[0].shape[0], gap), 255, dtype=np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, spacer)][:-1], axis=1)


def class_heading(label: str) -> str:
    """Markdown for a class name; a kana class ("お o") shows its modern hiragana big
    beside the romanisation."""
    kana = data.kana_and_romanisation(label)
    if kana:
        return f"<span style='font-size:2.2em'>{html.escape(kana[0])}</span> {html.escape(kana[1])}"
    return f"**{html.escape(label)}**"


def class_example_rows(dataset: data.RawDataset, per_class: int, seed: int = 0) -> None:
    """One row per class: its name, then `per_class` of its training images."""
    picks = data.examples_per_class(dataset.train_labels, per_class, dataset.info.num_classes, seed=seed)
    for label, indices in zip(dataset.info.class_names, picks):
        name_col, strip_col = st.columns([1, 6], vertical_alignment="center")
        name_col.markdown(class_heading(label), unsafe_allow_html=True)
        strip_col.image(image_strip(dataset.train_images[indices]))


def literal(text: str) -> str:
    """`text` (a class or folder name) for Streamlit's Markdown, shown as typed: every ASCII
    punctuation mark backslash-escaped, as CommonMark allows."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)
