import numpy as np
import pytest
import torch

from kmnist_core import data, dataset_stats


def test_class_means_and_histogram_on_a_tiny_set():
    images = torch.tensor([[[0, 255]], [[255, 255]], [[0, 0]]], dtype=torch.uint8)
    labels = torch.tensor([0, 0, 2])
    means = dataset_stats.class_means(images, labels, 3)
    assert means.shape == (3, 1, 2) and means[0].tolist() == [[0.5, 1.0]]
    assert means[1].tolist() == [[0.0, 0.0]] and means[2].tolist() == [[0.0, 0.0]]  # class 1 has no images
    shares = dataset_stats.pixel_histogram(images)
    assert shares.shape == (256,) and shares[0] == pytest.approx(0.5) and shares[255] == pytest.approx(0.5)


def test_summary_of_the_default_splits(data_root):
    dataset = data.load_dataset("mnist", data_root)
    summary = dataset_stats.summarize(dataset)
    splits = data.make_splits(dataset)
    assert summary.class_means.shape == (10, 28, 28) and 0 <= summary.class_means.min() <= summary.class_means.max() <= 1
    assert sum(summary.class_counts["train"]) == len(splits.train_labels) == 900
    assert summary.class_counts["validation"] == [10] * 10 and sum(summary.class_counts["test"]) == 300
    assert summary.pixels["train"] == splits.normalization  # the statistics training normalises with
    assert all(np.isclose(shares.sum(), 1) for shares in summary.histograms.values())
