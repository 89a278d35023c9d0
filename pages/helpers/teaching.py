"""What the Draw page teaches: for a drawing flagged "not one of my classes", the model's best
guess and what that class really looks like in the training set; and "How to write these",
every class beside a few of its training images.

Kuzushiji-MNIST's classes are cursive, classical forms: a modern hiragana drawn by hand is
often none of them to the model, and the cure is seeing the cursive form, not drawing the
modern one again larger.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from kmnist_core import data, runs
from pages.helpers.pictures import class_example_rows, image_strip, literal

EXAMPLES_SHOWN = 8      # of the flagged drawing's closest class
WRITING_EXAMPLES = 3    # per class in "How to write these"

ADVICE = {
    "small": "It is drawn small: if it is one of them, draw it again larger, filling most of the square.",
    "faint": "Its strokes are thin or faint: if it is one of them, draw it again larger, with a thicker pen.",
}


def explain_flag(run: runs.Run, dataset: data.RawDataset | None, closest: int, legibility: str | None) -> None:
    """Under "Not one of my classes?": why, what to do, and real examples of the closest class.
    `legibility` is drawing.small_or_faint's verdict on the drawing."""
    unlike = "This looks like none of the classes it was trained on."
    if legibility:
        st.caption(f"{unlike} {ADVICE[legibility]}")
    elif run.record.dataset.name == "kmnist":
        st.caption(f"{unlike} Kuzushiji-MNIST's classes are cursive, classical hiragana: a modern one is often "
                   "written quite differently." +
                   (" Compare with the real examples below, and see \"How to write these\"." if dataset is not None else ""))
    elif dataset is not None:
        st.caption(f"{unlike} Compare it with the real examples of the closest class below.")
    else:
        st.caption(unlike)
    if dataset is None:
        return
    picks = data.examples_per_class(dataset.train_labels, EXAMPLES_SHOWN, len(run.class_names), seed=0)[closest]
    if picks:
        st.image(_in_two_rows(dataset.train_images[picks]),
                 caption=literal(f"{run.record.dataset.display_name}'s {run.class_names[closest]} looks like these "
                                 "(real examples from the training set)"))


def _in_two_rows(images: torch.Tensor, factor: int = 3, gap: int = 2) -> np.ndarray:
    """The examples in two rows (one when they do not split evenly): big enough to read in the
    answer's narrow column, on a projector."""
    if len(images) < 2 or len(images) % 2:
        return image_strip(images, factor=factor, gap=gap)
    top, bottom = image_strip(images[:len(images) // 2], factor, gap), image_strip(images[len(images) // 2:], factor, gap)
    return np.concatenate([top, np.full((gap, top.shape[1]), 255, np.uint8), bottom])


def how_to_write(run: runs.Run, dataset: data.RawDataset | None) -> None:
    """An expander: each class's name (a kana class's modern hiragana, big) beside a few of its
    training images. Outside the drawing's fragment: it does not change with each stroke."""
    if dataset is None:
        return
    with st.expander("How to write these", icon=":material/school:"):
        if run.record.dataset.is_kana:
            st.caption("Each class's modern hiragana beside three of its cursive forms from the training set: "
                       "draw the cursive form.")
        else:
            st.caption("Each class beside three of its examples from the training set.")
        class_example_rows(dataset, WRITING_EXAMPLES)
