"""What a dataset looks like in numbers: the mean image of each class, the class
balance of the train / validation / test splits and their pixel statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import Normalization, RawDataset, make_splits


@dataclass
class DatasetSummary:
    class_means: np.ndarray                 # (C, 28, 28) in [0, 1], over the official training set
    class_counts: dict[str, list[int]]      # split -> images per class
    pixels: dict[str, Normalization]        # split -> mean and std of the pixels in [0, 1]
    histograms: dict[str, np.ndarray]       # split -> share of pixels at each value 0..255


def class_means(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """The average image of each class, in [0, 1] (zeros for a class with no images)."""
    sums = torch.zeros(num_classes, *images.shape[1:]).index_add_(0, labels, images.float())
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1)
    return (sums / counts[:, None, None] / 255).numpy()


def pixel_histogram(images: torch.Tensor) -> np.ndarray:
    """The share of all pixels at each intensity 0..255."""
    counts = torch.bincount(images.flatten().long(), minlength=256).double()
    return (counts / max(counts.sum().item(), 1)).numpy()


def summarize(dataset: RawDataset) -> DatasetSummary:
    """The summary over the splits training uses by default (validation 0.1, seed 0)."""
    splits = make_splits(dataset)
    num_classes = dataset.info.num_classes
    parts = {"train": (splits.train_images, splits.train_labels),
             "validation": (splits.val_images, splits.val_labels),
             "test": (splits.test_images, splits.test_labels)}
    return DatasetSummary(
        class_means(dataset.train_images, dataset.train_labels, num_classes),
        {name: torch.bincount(labels, minlength=num_classes).tolist() for name, (_, labels) in parts.items()},
        {name: Normalization.of(images) for name, (images, _) in parts.items() if len(images)},
        {name: pixel_histogram(images) for name, (images, _) in parts.items()},
    )
